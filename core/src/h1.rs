//! A sans-IO HTTP/1.1 codec for the fill exchange, on top of `httparse`.
//!
//! In the style of `httparse` and rustls' unbuffered API: the caller owns every buffer, feeds
//! bytes in and gets a step back. Nothing here reads, writes, sleeps or allocates, except that
//! the two encoders append to a `Vec<u8>` the caller passes. Every rule about what is acceptable
//! is decided here (and in [`crate::fill`] for the framing headers), so a driver only moves
//! bytes between these functions and its sockets.
//!
//! - Client: [`encode_fill_request`] writes the request for a
//!   [`FillDescriptor`](crate::fill::FillDescriptor);
//!   [`parse_response_head`] parses the response head ([`ResponseHead`]: status, keep-alive,
//!   body framing, and the fill verdict through [`ResponseHead::classify`]); a [`BodyDecoder`]
//!   removes the body framing and finally says whether the connection can be reused.
//! - Listener: [`parse_request_head`] parses a request head ([`RequestHead`]: method, raw
//!   request-target, version, every header value, keep-alive, whether a body follows);
//!   [`encode_response_head`] writes a response head.
//!
//! ## Limits
//!
//! Every head is bounded by a size the caller gives (`max_head`, in bytes) and by
//! [`MAX_HEADERS`] header lines; a chunked body by [`MAX_CHUNK_LINE`] bytes per chunk-size line
//! and [`MAX_TRAILERS`] bytes of trailer section. Interim (1xx) responses are skipped, at most
//! [`MAX_INTERIM_RESPONSES`] of them; `101 Switching Protocols` is an error, since the fill
//! request never asks for an upgrade.
//!
//! ## A client exchange
//!
//! ```
//! use orca_cluster_core::fill::{FillDescriptor, ResponseVerdict, Scheme};
//! use orca_cluster_core::h1::{self, Parsed};
//! use orca_cluster_core::{ChunkKey, Peer};
//!
//! let peer = Peer { ip: "10.0.0.2".parse().unwrap(), port: 8444, is_self: false };
//! let key = ChunkKey {
//!     origin_id: "o".into(), bucket: "b".into(), object_key: "k".into(), etag: "e".into(),
//!     chunk_size: 5, index: 0,
//! };
//! let desc = FillDescriptor::new(&peer, &key, 5, Scheme::Http, 8444).unwrap();
//! let mut out = Vec::new();
//! h1::encode_fill_request(&desc, "example/1.0", &mut out).unwrap();
//! // ... write `out` to the socket, then read into `buf` until the head is complete:
//! let mut buf: Vec<u8> = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel".to_vec();
//! let head = loop {
//!     match h1::parse_response_head(&buf, 16 * 1024).unwrap() {
//!         Parsed::Complete { head, consumed } => {
//!             buf.drain(..consumed);
//!             break head;
//!         }
//!         Parsed::Partial => unreachable!("read more into buf (end of stream: an error)"),
//!     }
//! };
//! let ResponseVerdict::Body(mut check) = head.classify(desc.expected_len) else {
//!     panic!("rejected or an error status");
//! };
//! let mut decoder = head.body_decoder();
//! let mut body = Vec::new();
//! let mut reads: Vec<&[u8]> = vec![b"lo\r\n0\r\n\r\n"];
//! loop {
//!     let step = decoder.decode(&buf).unwrap();
//!     let data = &buf[step.data.clone()];
//!     check.on_data(data.len()).unwrap(); // a driver hands `data` to its caller
//!     body.extend_from_slice(data);
//!     buf.drain(..step.consumed);
//!     if step.done {
//!         break;
//!     }
//!     if step.consumed == 0 {
//!         // Nothing more in `buf`: read. At end of stream call `decoder.finish()`.
//!         buf.extend_from_slice(reads.pop().expect("more bytes"));
//!     }
//! }
//! check.on_end().unwrap();
//! assert_eq!(body, b"hello");
//! assert!(decoder.is_reusable()); // return the connection to the pool
//! ```
//!
//! ## A listener connection
//!
//! ```
//! use orca_cluster_core::h1::{self, Parsed, ResponseSpec};
//!
//! let buf = b"GET /internal/fill?a=1 HTTP/1.1\r\nhost: x\r\nx-orca-internal: 1\r\n\r\n";
//! let (request, consumed) = match h1::parse_request_head(buf, 8 * 1024) {
//!     Ok(Parsed::Complete { head, consumed }) => (head, consumed),
//!     Ok(Parsed::Partial) => unreachable!("read more (end of stream: close quietly)"),
//!     Err(e) => {
//!         // Answer `e.status()` (400 or 431) with `connection: close`, then close.
//!         unreachable!("{e}")
//!     }
//! };
//! assert_eq!((request.method, request.path(), request.query()), ("GET", "/internal/fill", Some("a=1")));
//! assert_eq!(request.internal_values().collect::<Vec<_>>(), [b"1"]);
//! // The fill RPC reads no request body: answer, then close when one was announced.
//! let close = !request.keep_alive || request.has_body || request.method != "GET";
//! let mut out = Vec::new();
//! let spec = ResponseSpec {
//!     status: 200,
//!     content_type: "application/octet-stream",
//!     content_length: 5,
//!     allow: None,
//!     close,
//! };
//! h1::encode_response_head(&spec, &mut out).unwrap();
//! assert!(out.starts_with(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n"));
//! // ... write `out` and the body; `buf[consumed..]` holds the start of the next request.
//! # let _ = consumed;
//! ```

use alloc::vec::Vec;
use core::fmt;

use crate::fill::MalformedHeader;

mod body;
mod client;
mod server;
#[cfg(test)]
mod tests;

pub use body::{BodyDecoder, BodyError, BodyFraming, Decoded};
pub use client::{ResponseHead, encode_fill_request, parse_response_head};
pub use server::{
    HeaderField, HeaderValues, Headers, RequestHead, ResponseSpec, check_host_count,
    encode_response_head, parse_request_head, reason_phrase,
};

/// Most header lines in one head: 100. More is [`HeadError::TooManyHeaders`]. The parser keeps
/// this many (name, value) slices on the stack (3.2 KiB on a 64-bit target).
pub const MAX_HEADERS: usize = 100;
/// Most interim (1xx) responses skipped before the final response: 8.
pub const MAX_INTERIM_RESPONSES: usize = 8;
/// Longest chunk-size line of a chunked body, extensions and CRLF included: 4 KiB.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest trailer section of a chunked body, every CRLF included: 16 KiB.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// The HTTP version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0: no keep-alive, no chunked framing.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// The outcome of parsing a head from the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The buffer does not hold a complete head yet: read more, append, and parse the whole
    /// buffer again (nothing was consumed).
    Partial,
    /// A complete head; the first `consumed` bytes of the buffer belong to it (the body or the
    /// next message starts there).
    Complete {
        /// The parsed head.
        head: T,
        /// Bytes of the buffer the head took (interim responses skipped before it included).
        consumed: usize,
    },
}

/// Why a head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeadError {
    /// The head is longer than the caller's `max_head` bytes (answered 431 by a listener).
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// More than [`MAX_HEADERS`] header lines (answered 431 by a listener).
    TooManyHeaders {
        /// The limit, in header lines.
        limit: usize,
    },
    /// A request head holds a byte that is not ASCII, or NUL.
    NotAscii,
    /// The head is not HTTP/1.x syntax; `part` names where it broke: `request line`, `method`,
    /// `request-target`, `version`, `status code`, `header name`, `header value`,
    /// `line ending`, or `host` (a request without exactly one `Host` header).
    Malformed {
        /// The part of the head that is malformed.
        part: &'static str,
    },
    /// A `Content-Length` or `Transfer-Encoding` header breaks the framing rules of
    /// [`crate::fill::declared_framing`] (a client reports it as
    /// [`crate::fill::FillCheckError::MalformedHead`], through `From`).
    Framing(MalformedHeader),
    /// A `101 Switching Protocols` response: the fill request never asks for an upgrade.
    SwitchingProtocols,
    /// More than [`MAX_INTERIM_RESPONSES`] interim (1xx) responses before the final one.
    TooManyInterim {
        /// The limit.
        limit: usize,
    },
}

impl HeadError {
    /// The status a listener answers a refused request head with (then closes): 431 for a
    /// head too large or with too many header lines, 400 otherwise.
    pub const fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge { .. } | HeadError::TooManyHeaders { .. } => 431,
            _ => 400,
        }
    }

    fn from_httparse(e: httparse::Error, token_part: &'static str) -> HeadError {
        let part = match e {
            httparse::Error::HeaderName => "header name",
            httparse::Error::HeaderValue => "header value",
            httparse::Error::NewLine => "line ending",
            httparse::Error::Status => "status code",
            httparse::Error::Token => token_part,
            httparse::Error::Version => "version",
            httparse::Error::TooManyHeaders => {
                return HeadError::TooManyHeaders { limit: MAX_HEADERS };
            }
        };
        HeadError::Malformed { part }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge { limit } => write!(f, "head: larger than {limit} bytes"),
            HeadError::TooManyHeaders { limit } => {
                write!(f, "head: more than {limit} header lines")
            }
            HeadError::NotAscii => f.write_str("head: a non-ASCII or NUL byte"),
            HeadError::Malformed { part } => write!(f, "{part}: malformed HTTP/1.1 head"),
            HeadError::Framing(e) => write!(f, "{e}"),
            HeadError::SwitchingProtocols => {
                f.write_str("status code: 101 Switching Protocols was never requested")
            }
            HeadError::TooManyInterim { limit } => {
                write!(f, "status code: more than {limit} interim (1xx) responses")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HeadError {}

impl From<MalformedHeader> for HeadError {
    fn from(e: MalformedHeader) -> HeadError {
        HeadError::Framing(e)
    }
}

/// A value an encoder refused: it would break the head (a control byte, a line break, a
/// non-ASCII byte, or a space where none may be).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncodeError {
    /// What was refused: `path_and_query`, `authority`, `user-agent`, `status`,
    /// `content-type` or `allow`.
    pub field: &'static str,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: not allowed in an HTTP/1.1 head (control, non-ASCII or misplaced space)",
            self.field
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Whether `value` may be written as a header value: visible ASCII, spaces and tabs, without
/// leading or trailing whitespace.
fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        && !value.first().is_some_and(|b| matches!(b, b' ' | b'\t'))
        && !value.last().is_some_and(|b| matches!(b, b' ' | b'\t'))
}

/// Whether `value` is non-empty visible ASCII (no space): a request-target or an authority.
fn is_visible(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// Whether a `Connection` header value lists the `close` token.
fn has_close_token(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|token| crate::fill::trim_ows(token).eq_ignore_ascii_case(b"close"))
}

/// `core::fmt::Write` into a byte vector (for numbers).
struct VecWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    use core::fmt::Write as _;
    // Writing into a Vec cannot fail.
    let _ = write!(VecWriter(out), "{n}");
}

/// The shared part of the request and response encoders: appends `parts` to `out`, reserving
/// their total length first.
fn extend_all(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.reserve(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
}
