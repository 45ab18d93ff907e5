//! Parsing an HTTP/1.1 response head with `httparse`, bounded in size and header count, and
//! deciding how the body is framed and whether the connection can be reused afterwards.
//!
//! Whether the response is *acceptable* is not decided here: the status and `Content-Length`
//! go to the core's `classify_response`.

/// Largest response head accepted: 16 KiB.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most response headers accepted: 64.
pub(crate) const MAX_HEADERS: usize = 64;

/// How the body of a response is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the peer closes the connection.
    UntilClose,
}

/// The parts of a response head the client uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    /// The status code (100..=999 as httparse accepts it).
    pub status: u16,
    /// `Content-Length` for the core's check: `None` when absent or overridden by chunked
    /// framing, `Some(u64::MAX)` when present but not one valid number (so it is rejected).
    pub content_length: Option<u64>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request once this body is fully read.
    pub keep_alive: bool,
    /// Length of the head in bytes (the body starts there).
    pub head_len: usize,
}

/// A response head that cannot be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeadError(pub String);

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value.trim_ascii()).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses the head at the start of `buf`. `Ok(None)`: incomplete, read more (an error once
/// `buf` holds [`MAX_HEAD_BYTES`] without a complete head).
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= MAX_HEAD_BYTES {
                return Err(HeadError(format!(
                    "response head larger than {MAX_HEAD_BYTES} bytes"
                )));
            }
            return Ok(None);
        }
        Err(e) => return Err(HeadError(format!("malformed response head: {e}"))),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(HeadError(format!(
            "response head larger than {MAX_HEAD_BYTES} bytes"
        )));
    }
    let status = response.code.unwrap_or(0);
    let version = response.version.unwrap_or(0);
    let mut keep_alive = version == 1;
    let mut lengths: Vec<Option<u64>> = Vec::new();
    let mut chunked = false;
    let mut other_coding = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            // A list like "5, 5" is one length repeated.
            for part in h.value.split(|&b| b == b',') {
                lengths.push(parse_length(part));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h
                .value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|t| !t.is_empty())
                .unwrap_or(b"");
            if last.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
                other_coding = false;
            } else {
                other_coding = true;
            }
        } else if h.name.eq_ignore_ascii_case("connection") && has_token(h.value, "close") {
            keep_alive = false;
        }
    }
    let declared = match lengths.split_first() {
        None => None,
        Some((first, rest)) => match first {
            Some(n) if rest.iter().all(|r| r == first) => Some(*n),
            _ => Some(u64::MAX),
        },
    };
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let (framing, content_length) = if no_body {
        (Framing::Empty, declared.filter(|_| status >= 200))
    } else if chunked || other_coding {
        // Transfer-Encoding overrides Content-Length; such a response (a smuggling pattern when
        // both are present) never leaves the connection reusable.
        if declared.is_some() {
            keep_alive = false;
        }
        if other_coding {
            keep_alive = false;
            (Framing::UntilClose, None)
        } else {
            (Framing::Chunked, None)
        }
    } else {
        match declared {
            Some(u64::MAX) => {
                keep_alive = false;
                (Framing::UntilClose, Some(u64::MAX))
            }
            Some(n) => (Framing::Length(n), Some(n)),
            None => {
                keep_alive = false;
                (Framing::UntilClose, None)
            }
        }
    };
    Ok(Some(ResponseHead {
        status,
        content_length,
        framing,
        keep_alive,
        head_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> ResponseHead {
        parse_head(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn content_length_framing() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nbody");
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(10));
        assert_eq!(h.content_length, Some(10));
        assert!(h.keep_alive);
        assert_eq!(h.head_len, 39);
    }

    #[test]
    fn partial_and_oversized_heads() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConte"), Ok(None));
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() < MAX_HEAD_BYTES + 10 {
            big.extend_from_slice(b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(parse_head(&big).is_err());
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }

    #[test]
    fn lying_or_odd_lengths_are_not_trusted() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n");
        assert_eq!(h.content_length, Some(u64::MAX));
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(h.content_length, Some(u64::MAX));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(h.content_length, Some(u64::MAX));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(7));
    }

    #[test]
    fn chunked_until_close_and_connection_close() {
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(
            (h.framing, h.content_length, h.keep_alive),
            (Framing::Chunked, None, true)
        );
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        let h = head("HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.status, 599);
    }
}
