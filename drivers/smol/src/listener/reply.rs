//! Responses as this driver writes them: a status, a few headers, and either a small body or
//! a [`FillerBody`]. The head is HTTP/1.1 with `Content-Length` framing.

use bytes::Bytes;

use super::body::FillerBody;

/// What to send back for one request.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub allow: Option<&'static str>,
    pub body: ReplyBody,
}

/// A reply body.
pub(crate) enum ReplyBody {
    /// A short, complete body (errors, rejections).
    Small(Bytes),
    /// A chunk streamed from the filler.
    Fill(FillerBody),
}

/// Reason phrase for the statuses this listener sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

impl Reply {
    /// A reply with a short text body.
    pub(crate) fn text(status: u16, body: impl Into<Bytes>, content_type: &'static str) -> Reply {
        Reply {
            status,
            content_type,
            allow: None,
            body: ReplyBody::Small(body.into()),
        }
    }

    /// The response head; `close` adds `Connection: close`.
    pub(crate) fn head(&self, close: bool) -> Vec<u8> {
        let length = match &self.body {
            ReplyBody::Small(b) => b.len() as u64,
            ReplyBody::Fill(f) => f.expected_len(),
        };
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {length}\r\ncontent-type: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type
        );
        if let Some(allow) = self.allow {
            head.push_str("allow: ");
            head.push_str(allow);
            head.push_str("\r\n");
        }
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_format() {
        let mut r = Reply::text(405, "no", "text/plain");
        r.allow = Some("GET");
        assert_eq!(
            String::from_utf8(r.head(true)).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 2\r\ncontent-type: text/plain\r\nallow: GET\r\nconnection: close\r\n\r\n"
        );
    }
}
