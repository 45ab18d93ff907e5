//! The client side: the fill request, and the response head.

use alloc::vec::Vec;

use super::body::{BodyDecoder, BodyFraming};
use super::{
    EncodeError, HeadError, MAX_HEADERS, MAX_INTERIM_RESPONSES, Parsed, Version, extend_all,
    has_close_token, is_field_value, is_visible,
};
use crate::fill::{
    CONTENT_LENGTH, DeclaredFraming, FillDescriptor, HeaderProblem, MalformedHeader,
    ResponseVerdict, TRANSFER_ENCODING, classify_declared, declared_framing,
};

/// Appends the fill request for `desc` to `out`:
///
/// ```text
/// GET <desc.path_and_query> HTTP/1.1\r\n
/// host: <desc.authority>\r\n
/// x-orca-internal: 1\r\n            (FillDescriptor::HEADERS)
/// user-agent: <user_agent>\r\n
/// accept: application/octet-stream\r\n
/// \r\n
/// ```
///
/// The target is origin-form. A value that would break the head is refused and `out` is left
/// as it was: a `path_and_query` that does not start with `/` or holds a space, control or
/// non-ASCII byte, such an `authority`, or a `user_agent` with a control or non-ASCII byte.
/// (Descriptors from [`FillDescriptor::new`] always pass.) Reserves the exact length once.
pub fn encode_fill_request(
    desc: &FillDescriptor,
    user_agent: &str,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let target = desc.path_and_query.as_bytes();
    if !is_visible(target) || !target.starts_with(b"/") {
        return Err(EncodeError {
            field: "path_and_query",
        });
    }
    if !is_visible(desc.authority.as_bytes()) {
        return Err(EncodeError { field: "authority" });
    }
    if !is_field_value(user_agent.as_bytes()) {
        return Err(EncodeError {
            field: "user-agent",
        });
    }
    let [(name, value)] = FillDescriptor::HEADERS;
    extend_all(
        out,
        &[
            FillDescriptor::METHOD.as_bytes(),
            b" ",
            target,
            b" HTTP/1.1\r\nhost: ",
            desc.authority.as_bytes(),
            b"\r\n",
            name.as_bytes(),
            b": ",
            value.as_bytes(),
            b"\r\nuser-agent: ",
            user_agent.as_bytes(),
            b"\r\naccept: application/octet-stream\r\n\r\n",
        ],
    );
    Ok(())
}

/// The parts of a final response head a fill client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseHead {
    /// The status code, 200..=999 (interim responses are skipped; below 100 is an error).
    pub status: u16,
    /// The HTTP version of the response.
    pub version: Version,
    /// Whether the connection may carry another exchange once this body has been read to its
    /// end: HTTP/1.1, no `close` token in `Connection`, and a body not delimited by the close.
    pub keep_alive: bool,
    /// The framing headers as [`declared_framing`] accepted them.
    pub declared: DeclaredFraming,
    /// How the body is delimited: [`BodyFraming::Empty`] for 204 and 304, else from
    /// `declared` (neither header: [`BodyFraming::UntilClose`]).
    pub body: BodyFraming,
}

impl ResponseHead {
    /// The fill verdict for a chunk of `expected_len` bytes (the rules of [`crate::fill`]).
    pub fn classify(&self, expected_len: u64) -> ResponseVerdict {
        classify_declared(self.status, self.declared, expected_len)
    }

    /// A decoder for this response's body.
    pub const fn body_decoder(&self) -> BodyDecoder {
        BodyDecoder::new(self.body, self.keep_alive)
    }
}

/// Parses the response head at the start of `buf`, skipping interim (1xx) responses.
///
/// `Ok(Parsed::Partial)`: read more, append it to `buf` and call again with the whole buffer.
/// `Ok(Parsed::Complete { head, consumed })`: the body starts at `buf[consumed..]`. Each head
/// (interim ones included) may take at most `max_head` bytes, else [`HeadError::TooLarge`] —
/// as soon as `buf` holds `max_head` bytes of an incomplete head. Errors:
/// [`HeadError::Malformed`] (syntax, or a status below 100), [`HeadError::TooManyHeaders`],
/// [`HeadError::SwitchingProtocols`] (101), [`HeadError::TooManyInterim`] (more than
/// [`MAX_INTERIM_RESPONSES`]), and [`HeadError::Framing`] when the `Content-Length` or
/// `Transfer-Encoding` headers break the rules of [`declared_framing`] or an HTTP/1.0 response
/// uses `Transfer-Encoding`. Header values may hold non-ASCII bytes (they are not interpreted).
/// Allocates nothing: the header slices live on the stack ([`MAX_HEADERS`]).
pub fn parse_response_head(buf: &[u8], max_head: usize) -> Result<Parsed<ResponseHead>, HeadError> {
    let mut offset = 0usize;
    let mut interim = 0usize;
    loop {
        let rest = buf.get(offset..).unwrap_or(&[]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if rest.len() >= max_head => {
                return Err(HeadError::TooLarge { limit: max_head });
            }
            Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
            Err(e) => return Err(HeadError::from_httparse(e, "status line")),
        };
        if len > max_head {
            return Err(HeadError::TooLarge { limit: max_head });
        }
        let status = response.code.unwrap_or(0);
        match status {
            0..=99 => {
                return Err(HeadError::Malformed {
                    part: "status code",
                });
            }
            101 => return Err(HeadError::SwitchingProtocols),
            100..=199 => {
                interim += 1;
                if interim > MAX_INTERIM_RESPONSES {
                    return Err(HeadError::TooManyInterim {
                        limit: MAX_INTERIM_RESPONSES,
                    });
                }
                offset += len;
                continue;
            }
            _ => {}
        }
        let version = match response.version {
            Some(0) => Version::Http10,
            _ => Version::Http11,
        };
        let fields = &*response.headers;
        let values = |name: &'static str| {
            fields
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        let declared = declared_framing(values(CONTENT_LENGTH), values(TRANSFER_ENCODING))?;
        if version == Version::Http10 && declared == DeclaredFraming::Chunked {
            return Err(HeadError::Framing(MalformedHeader {
                field: TRANSFER_ENCODING,
                problem: HeaderProblem::InHttp10,
            }));
        }
        let body = match (status, declared) {
            (204 | 304, _) => BodyFraming::Empty,
            (_, DeclaredFraming::Absent) => BodyFraming::UntilClose,
            (_, DeclaredFraming::Length(n)) => BodyFraming::Length(n),
            (_, DeclaredFraming::Chunked) => BodyFraming::Chunked,
        };
        let close = values("connection").any(has_close_token);
        let keep_alive = version == Version::Http11 && !close && body != BodyFraming::UntilClose;
        return Ok(Parsed::Complete {
            head: ResponseHead {
                status,
                version,
                keep_alive,
                declared,
                body,
            },
            consumed: offset + len,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fill::{FillCheckError, Scheme};
    use crate::{ChunkKey, Peer};
    use alloc::string::String;

    const MAX: usize = 16 * 1024;

    fn head(text: &str) -> (ResponseHead, usize) {
        match parse_response_head(text.as_bytes(), MAX) {
            Ok(Parsed::Complete { head, consumed }) => (head, consumed),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn error(text: &str) -> HeadError {
        match parse_response_head(text.as_bytes(), MAX) {
            Err(e) => e,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn framing_error(field: &'static str, problem: HeaderProblem) -> HeadError {
        HeadError::Framing(MalformedHeader { field, problem })
    }

    fn descriptor() -> FillDescriptor {
        let peer = Peer {
            ip: "127.0.0.1".parse().unwrap(),
            port: 4000,
            is_self: false,
        };
        let key = ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size: 10,
            index: 0,
        };
        FillDescriptor::new(&peer, &key, 100, Scheme::Http, 0).unwrap()
    }

    #[test]
    fn fill_request_bytes() {
        let desc = descriptor();
        let mut out = b"kept".to_vec();
        encode_fill_request(&desc, "orca-test/1", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            alloc::format!(
                "keptGET {} HTTP/1.1\r\nhost: 127.0.0.1:4000\r\nx-orca-internal: 1\r\nuser-agent: orca-test/1\r\naccept: application/octet-stream\r\n\r\n",
                desc.path_and_query
            )
        );
    }

    #[test]
    fn fill_request_refuses_values_that_break_the_head() {
        let mut out = b"x".to_vec();
        let mut desc = descriptor();
        assert_eq!(
            encode_fill_request(&desc, "a\r\nx-evil: 1", &mut out),
            Err(EncodeError {
                field: "user-agent"
            })
        );
        desc.authority.push_str("\r\nx: y");
        assert_eq!(
            encode_fill_request(&desc, "ua", &mut out),
            Err(EncodeError { field: "authority" })
        );
        let mut desc = descriptor();
        desc.path_and_query = "/a b".into();
        assert_eq!(
            encode_fill_request(&desc, "ua", &mut out),
            Err(EncodeError {
                field: "path_and_query"
            })
        );
        desc.path_and_query = "internal/fill".into();
        assert!(encode_fill_request(&desc, "ua", &mut out).is_err());
        assert_eq!(out, b"x");
    }

    #[test]
    fn content_length_framing() {
        let (h, consumed) = head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nbody");
        assert_eq!(consumed, 39);
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyFraming::Length(10));
        assert_eq!(h.declared, DeclaredFraming::Length(10));
        assert!(h.keep_alive);
        assert!(matches!(h.classify(10), ResponseVerdict::Body(_)));
        assert_eq!(
            h.classify(11),
            ResponseVerdict::Reject(FillCheckError::LengthMismatch {
                declared: 10,
                expected: 11
            })
        );
    }

    #[test]
    fn partial_and_oversized_heads() {
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nConte", MAX),
            Ok(Parsed::Partial)
        );
        assert_eq!(parse_response_head(b"", MAX), Ok(Parsed::Partial));
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        while big.len() < MAX + 10 {
            big.extend_from_slice(b"x-filler: ");
            big.extend_from_slice(&[b'a'; 500]);
            big.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            parse_response_head(&big, 4096),
            Err(HeadError::TooLarge { limit: 4096 })
        );
        // Complete, but over the limit.
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n";
        assert_eq!(
            parse_response_head(text, text.len() - 1),
            Err(HeadError::TooLarge {
                limit: text.len() - 1
            })
        );
        assert!(matches!(
            parse_response_head(text, text.len()),
            Ok(Parsed::Complete { .. })
        ));
        // Partial at exactly the limit: the head cannot fit any more.
        assert_eq!(
            parse_response_head(&text[..10], 10),
            Err(HeadError::TooLarge { limit: 10 })
        );
        assert_eq!(parse_response_head(&text[..10], 11), Ok(Parsed::Partial));
        assert_eq!(
            error("NOT HTTP\r\n\r\n"),
            HeadError::Malformed { part: "version" }
        );
        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&alloc::format!("x-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            error(&many),
            HeadError::TooManyHeaders { limit: MAX_HEADERS }
        );
    }

    #[test]
    fn strict_content_length_rules() {
        // The divergence this fixes: a repeated value, even equal, is rejected.
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"),
            framing_error(CONTENT_LENGTH, HeaderProblem::Repeated)
        );
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
            framing_error(CONTENT_LENGTH, HeaderProblem::Repeated)
        );
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            framing_error(CONTENT_LENGTH, HeaderProblem::NotDigits)
        );
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            framing_error(CONTENT_LENGTH, HeaderProblem::Overflow)
        );
        // Also on error statuses: where their body ends is unknown.
        assert_eq!(
            error("HTTP/1.1 503 Busy\r\nContent-Length: 1 0\r\n\r\n"),
            framing_error(CONTENT_LENGTH, HeaderProblem::NotDigits)
        );
        let err: FillCheckError = MalformedHeader {
            field: CONTENT_LENGTH,
            problem: HeaderProblem::Repeated,
        }
        .into();
        assert!(matches!(
            err,
            FillCheckError::MalformedHead {
                field: "content-length",
                ..
            }
        ));
    }

    #[test]
    fn transfer_encoding_rules() {
        let (h, _) = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (BodyFraming::Chunked, true));
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            framing_error(TRANSFER_ENCODING, HeaderProblem::Repeated)
        );
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
            framing_error(TRANSFER_ENCODING, HeaderProblem::UnsupportedCoding)
        );
        assert_eq!(
            error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            framing_error(TRANSFER_ENCODING, HeaderProblem::WithContentLength)
        );
        assert_eq!(
            error("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            framing_error(TRANSFER_ENCODING, HeaderProblem::InHttp10)
        );
    }

    #[test]
    fn keep_alive_and_close_delimited_bodies() {
        let (h, _) = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (BodyFraming::UntilClose, false));
        assert!(matches!(h.classify(5), ResponseVerdict::Body(_)));
        let (h, _) =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n");
        assert_eq!((h.version, h.keep_alive), (Version::Http10, false));
        let (h, _) = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (BodyFraming::Empty, true));
        let (h, _) = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Empty);
        let (h, _) =
            head("HTTP/1.1 599 Whatever\r\nx-name: caf\u{e9}\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.status, 599);
    }

    #[test]
    fn interim_responses_are_skipped_within_a_bound() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (h, consumed) = head(text);
        assert_eq!((h.status, &text[consumed..]), (200, "ok"));
        assert_eq!(
            parse_response_head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", MAX),
            Ok(Parsed::Partial)
        );
        let mut many = String::new();
        for _ in 0..=MAX_INTERIM_RESPONSES {
            many.push_str("HTTP/1.1 100 Continue\r\n\r\n");
        }
        assert_eq!(
            error(&many),
            HeadError::TooManyInterim {
                limit: MAX_INTERIM_RESPONSES
            }
        );
        assert_eq!(
            error("HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"),
            HeadError::SwitchingProtocols
        );
        assert_eq!(
            error("HTTP/1.1 099 Low\r\n\r\n"),
            HeadError::Malformed {
                part: "status code"
            }
        );
    }

    #[test]
    fn status_classes() {
        let (h, _) = head("HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n");
        assert_eq!(
            h.classify(10),
            ResponseVerdict::Reject(FillCheckError::NotCoordinator)
        );
        let (h, _) = head("HTTP/1.1 503 Busy\r\ncontent-length: 2000\r\n\r\n");
        assert!(matches!(h.classify(10), ResponseVerdict::ErrorBody(_)));
    }

    #[test]
    fn body_decoder_follows_the_head() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
        let Ok(Parsed::Complete { head, consumed }) = parse_response_head(text, MAX) else {
            panic!("complete head expected");
        };
        let mut d = head.body_decoder();
        let step = d.decode(&text[consumed..]).unwrap();
        assert_eq!(&text[consumed..][step.data], b"abc");
        assert!(step.done && d.is_reusable());
    }
}
