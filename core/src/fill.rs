//! The client side of the fill RPC: request descriptors and response checks.
//!
//! A driver asks [`FillDescriptor::new`] what to send, sends it, then lets [`classify_head`]
//! judge the status code and the framing headers and a [`BodyCheck`] count the body. Drivers
//! only move bytes; every decision about what is acceptable is made here.
//!
//! ## Response-head rules
//!
//! Both drivers apply the same rules to a response head, whatever parsed it (hyper in the tokio
//! driver, [`crate::h1`] in the smol driver). [`declared_framing`] judges the raw values of every
//! `Content-Length` and `Transfer-Encoding` header line, in this order:
//!
//! 1. `Content-Length` appears at most once, as one value: several lines, or a comma list such
//!    as `5, 5` (even with equal values), are [`HeaderProblem::Repeated`]. RFC 9112 section 6.3
//!    lets a recipient reject such a message instead of folding the values; rejecting keeps the
//!    two drivers and every intermediary from disagreeing on where the body ends.
//! 2. The `Content-Length` value, with optional whitespace (space, tab) trimmed on both sides,
//!    is one or more ASCII digits ([`HeaderProblem::NotDigits`]) and fits in a `u64`
//!    ([`HeaderProblem::Overflow`]). No sign, no `0x`, no inner whitespace.
//! 3. `Transfer-Encoding` appears at most once ([`HeaderProblem::Repeated`]) and its value, with
//!    optional whitespace trimmed, is exactly `chunked`, ASCII case-insensitive
//!    ([`HeaderProblem::UnsupportedCoding`]): no other coding, no list such as `gzip, chunked`.
//! 4. `Transfer-Encoding` together with `Content-Length` is rejected
//!    ([`HeaderProblem::WithContentLength`], naming `transfer-encoding`): that is the shape of a
//!    request-smuggling attack, and a fill response never needs both.
//!
//! A violation is [`FillCheckError::MalformedHead`] naming the header. Then the status decides
//! ([`classify_declared`]):
//!
//! - 409: [`FillCheckError::NotCoordinator`] (the caller fills locally);
//! - any other status outside 200..=299: [`ResponseVerdict::ErrorBody`], which keeps at most
//!   [`MAX_ERROR_BODY`] bytes of the body for the error message;
//! - 2xx with a `Content-Length` other than the expected chunk length:
//!   [`FillCheckError::LengthMismatch`]; otherwise [`ResponseVerdict::Body`], whose
//!   [`BodyCheck`] then counts the body (a chunked or close-delimited body is only counted).
//!
//! The framing rules run before the status is looked at: a 409 or a 503 with a malformed
//! `Content-Length` is a malformed head, since where its body ends is unknown.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use crate::chunk::{ChunkError, ChunkKey};
use crate::peer::Peer;
use crate::wire::{FILL_PATH, INTERNAL_HEADER, INTERNAL_HEADER_VALUE, encode_query};

/// At most this many bytes of an error response's body are kept (and read).
pub const MAX_ERROR_BODY: usize = 1024;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP (development only).
    Http,
    /// HTTP over mutual TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Why a descriptor could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescriptorError {
    /// The target is the local replica: fill locally instead.
    TargetIsSelf,
    /// The peer has port 0 and no internal listen port is configured.
    NoPort,
    /// The chunk's byte range is invalid.
    Chunk(ChunkError),
    /// `object_size` is zero, or the chunk starts at or past its end: there is nothing to fetch.
    EmptyChunk {
        /// The chunk index.
        index: u64,
        /// The object size in bytes.
        object_size: u64,
    },
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorError::TargetIsSelf => {
                f.write_str("peer: the target is this replica (fill locally)")
            }
            DescriptorError::NoPort => {
                f.write_str("peer: port 0 and no internal listen port configured")
            }
            DescriptorError::Chunk(e) => e.fmt(f),
            DescriptorError::EmptyChunk { index, object_size } => write!(
                f,
                "index: chunk {index} is empty in an object of {object_size} bytes"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DescriptorError {}

/// Everything a driver needs to send one fill request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillDescriptor {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The address to dial and to put in the request's authority: `ip:port`, IPv6 bracketed.
    pub authority: String,
    /// The peer's IP (what to dial).
    pub ip: IpAddr,
    /// The peer's port (what to dial); port 0 already replaced by the listen port.
    pub port: u16,
    /// `/internal/fill?<query>`.
    pub path_and_query: String,
    /// Expected length of the response body in bytes (> 0).
    pub expected_len: u64,
}

impl FillDescriptor {
    /// The HTTP method: always `GET`.
    pub const METHOD: &'static str = "GET";
    /// The extra request headers: `x-orca-internal: 1`.
    pub const HEADERS: [(&'static str, &'static str); 1] =
        [(INTERNAL_HEADER, INTERNAL_HEADER_VALUE)];

    /// Builds the request for chunk `key` of an object of `object_size` bytes from `peer`.
    /// `listen_port` replaces a peer port of 0. Asking for self is an error.
    pub fn new(
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
        scheme: Scheme,
        listen_port: u16,
    ) -> Result<FillDescriptor, DescriptorError> {
        if peer.is_self {
            return Err(DescriptorError::TargetIsSelf);
        }
        let expected_len = key
            .expected_len(object_size)
            .map_err(DescriptorError::Chunk)?;
        if expected_len == 0 {
            return Err(DescriptorError::EmptyChunk {
                index: key.index,
                object_size,
            });
        }
        let addr = peer.socket_addr(listen_port);
        if addr.port() == 0 {
            return Err(DescriptorError::NoPort);
        }
        let mut path_and_query = String::from(FILL_PATH);
        path_and_query.push('?');
        path_and_query.push_str(&encode_query(key, object_size));
        Ok(FillDescriptor {
            scheme,
            authority: alloc::format!("{addr}"),
            ip: addr.ip(),
            port: addr.port(),
            path_and_query,
            expected_len,
        })
    }

    /// The full URI, `scheme://authority/internal/fill?...`.
    pub fn uri(&self) -> String {
        alloc::format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority,
            self.path_and_query
        )
    }
}

/// Why a fill response was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FillCheckError {
    /// 409: the peer is not the coordinator in its own snapshot (membership disagreement). The
    /// caller should fill locally.
    NotCoordinator,
    /// Another non-2xx status; `body` holds at most [`MAX_ERROR_BODY`] bytes of its body.
    Status {
        /// The status code.
        code: u16,
        /// The start of the body.
        body: Vec<u8>,
    },
    /// The response declared a `Content-Length` other than the expected chunk length.
    LengthMismatch {
        /// The declared length.
        declared: u64,
        /// The expected length.
        expected: u64,
    },
    /// The body ended after `got` of `expected` bytes.
    Truncated {
        /// Bytes received.
        got: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// The body carried more than `expected` bytes.
    TooLong {
        /// Bytes expected.
        expected: u64,
    },
    /// A framing header of the response head breaks the rules of [`declared_framing`].
    MalformedHead {
        /// The header, lower-case: `content-length` or `transfer-encoding`.
        field: &'static str,
        /// What is wrong with it.
        problem: HeaderProblem,
    },
}

impl fmt::Display for FillCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FillCheckError::NotCoordinator => {
                f.write_str("peer is not the coordinator (409 Conflict)")
            }
            FillCheckError::Status { code, body } => {
                let text = String::from_utf8_lossy(body);
                write!(f, "peer answered status {code}: {}", text.trim())
            }
            FillCheckError::LengthMismatch { declared, expected } => write!(
                f,
                "content-length: peer declared {declared} bytes, chunk is {expected} bytes"
            ),
            FillCheckError::Truncated { got, expected } => {
                write!(f, "body truncated: got {got} of {expected} bytes")
            }
            FillCheckError::TooLong { expected } => {
                write!(f, "body longer than the chunk's {expected} bytes")
            }
            FillCheckError::MalformedHead { field, problem } => {
                write!(f, "{field}: malformed response head: {problem}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FillCheckError {}

/// What to do with a response, decided from its head.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// 2xx with an acceptable length: stream the body through this check.
    Body(BodyCheck),
    /// A non-2xx, non-409 status: read at most [`ErrorBody::remaining`] bytes into the collector,
    /// then report [`ErrorBody::finish`].
    ErrorBody(ErrorBody),
    /// Rejected without reading the body.
    Reject(FillCheckError),
}

/// What is wrong with a framing header; see [`declared_framing`] for the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderProblem {
    /// The header appears on several lines, or as a comma-separated list.
    Repeated,
    /// A `Content-Length` value that is not one or more ASCII digits (after trimming spaces and
    /// tabs).
    NotDigits,
    /// A `Content-Length` value larger than `u64::MAX`.
    Overflow,
    /// A `Transfer-Encoding` other than exactly `chunked`.
    UnsupportedCoding,
    /// `Transfer-Encoding` and `Content-Length` in the same head.
    WithContentLength,
    /// `Transfer-Encoding` in an HTTP/1.0 message, which cannot use it (RFC 9112 section 6.1).
    InHttp10,
    /// Refused by an HTTP parser before these rules ran, without saying which rule it broke
    /// (hyper refuses a `Content-Length` it cannot parse, e.g. `+5` or `5, 6`).
    Unparsable,
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderProblem::Repeated => "appears more than once (several lines or a list)",
            HeaderProblem::NotDigits => "not a plain decimal number",
            HeaderProblem::Overflow => "larger than 2^64 - 1",
            HeaderProblem::UnsupportedCoding => "a coding other than exactly `chunked`",
            HeaderProblem::WithContentLength => "present together with content-length",
            HeaderProblem::InHttp10 => "not allowed in an HTTP/1.0 message",
            HeaderProblem::Unparsable => "refused by the HTTP parser",
        })
    }
}

/// A framing header that breaks the rules of [`declared_framing`]; converts into
/// [`FillCheckError::MalformedHead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MalformedHeader {
    /// The header, lower-case: [`CONTENT_LENGTH`] or [`TRANSFER_ENCODING`].
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: HeaderProblem,
}

impl fmt::Display for MalformedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for MalformedHeader {}

impl From<MalformedHeader> for FillCheckError {
    fn from(e: MalformedHeader) -> FillCheckError {
        FillCheckError::MalformedHead {
            field: e.field,
            problem: e.problem,
        }
    }
}

/// Name of the `Content-Length` header, lower-case.
pub const CONTENT_LENGTH: &str = "content-length";
/// Name of the `Transfer-Encoding` header, lower-case.
pub const TRANSFER_ENCODING: &str = "transfer-encoding";

/// How a message's framing headers delimit its body, once [`declared_framing`] accepted them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclaredFraming {
    /// Neither header: a response body then runs until the connection closes (a request has
    /// no body).
    Absent,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Trims optional whitespace (space, tab) on both sides.
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or(&[])
}

/// Parses one `Content-Length` value: ASCII digits after trimming spaces and tabs.
fn parse_content_length(value: &[u8]) -> Result<u64, HeaderProblem> {
    if value.contains(&b',') {
        return Err(HeaderProblem::Repeated);
    }
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HeaderProblem::NotDigits);
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(HeaderProblem::Overflow)
    })
}

/// Judges the framing headers of a message: the raw value of every `Content-Length` line and of
/// every `Transfer-Encoding` line, in any order within each kind (e.g. hyper's
/// `headers.get_all(CONTENT_LENGTH).iter().map(HeaderValue::as_bytes)`). The rules, checked in
/// the order of the module documentation, are the same for both drivers; the first violation
/// is returned. Allocates nothing.
pub fn declared_framing<'c, 't>(
    content_length: impl IntoIterator<Item = &'c [u8]>,
    transfer_encoding: impl IntoIterator<Item = &'t [u8]>,
) -> Result<DeclaredFraming, MalformedHeader> {
    let bad_length = |problem| MalformedHeader {
        field: CONTENT_LENGTH,
        problem,
    };
    let bad_coding = |problem| MalformedHeader {
        field: TRANSFER_ENCODING,
        problem,
    };
    let mut lengths = content_length.into_iter();
    let length = match lengths.next() {
        None => None,
        Some(value) => {
            if lengths.next().is_some() {
                return Err(bad_length(HeaderProblem::Repeated));
            }
            Some(parse_content_length(value).map_err(bad_length)?)
        }
    };
    let mut codings = transfer_encoding.into_iter();
    let chunked = match codings.next() {
        None => false,
        Some(value) => {
            if codings.next().is_some() || value.contains(&b',') {
                return Err(bad_coding(HeaderProblem::Repeated));
            }
            if !trim_ows(value).eq_ignore_ascii_case(b"chunked") {
                return Err(bad_coding(HeaderProblem::UnsupportedCoding));
            }
            true
        }
    };
    match (length, chunked) {
        (Some(_), true) => Err(bad_coding(HeaderProblem::WithContentLength)),
        (Some(n), false) => Ok(DeclaredFraming::Length(n)),
        (None, true) => Ok(DeclaredFraming::Chunked),
        (None, false) => Ok(DeclaredFraming::Absent),
    }
}

/// Judges a response head for a chunk of `expected_len` bytes: `status`, and the raw values of
/// every `Content-Length` and `Transfer-Encoding` line (see [`declared_framing`]; pass empty
/// iterators for HTTP/2, which has no `Transfer-Encoding`). This is [`declared_framing`] then
/// [`classify_declared`]; the rules are in the module documentation.
pub fn classify_head<'c, 't>(
    status: u16,
    content_length: impl IntoIterator<Item = &'c [u8]>,
    transfer_encoding: impl IntoIterator<Item = &'t [u8]>,
    expected_len: u64,
) -> ResponseVerdict {
    match declared_framing(content_length, transfer_encoding) {
        Ok(declared) => classify_declared(status, declared, expected_len),
        Err(e) => ResponseVerdict::Reject(e.into()),
    }
}

/// Judges a response whose framing headers [`declared_framing`] already accepted: 409 is
/// [`FillCheckError::NotCoordinator`], another non-2xx an [`ErrorBody`], a 2xx a [`BodyCheck`]
/// unless it declares a `Content-Length` other than `expected_len`.
pub fn classify_declared(
    status: u16,
    declared: DeclaredFraming,
    expected_len: u64,
) -> ResponseVerdict {
    match status {
        409 => ResponseVerdict::Reject(FillCheckError::NotCoordinator),
        200..=299 => match declared {
            DeclaredFraming::Length(declared) if declared != expected_len => {
                ResponseVerdict::Reject(FillCheckError::LengthMismatch {
                    declared,
                    expected: expected_len,
                })
            }
            _ => ResponseVerdict::Body(BodyCheck::new(expected_len)),
        },
        code => ResponseVerdict::ErrorBody(ErrorBody {
            code,
            body: Vec::new(),
        }),
    }
}

/// Judges a response head from an already parsed `Content-Length` (`None` when absent, e.g.
/// chunked or HTTP/2 without the header); a present header that is not a number must be passed
/// as `Some(u64::MAX)` so it is rejected. Prefer [`classify_head`], which also applies the
/// framing rules to the raw header values; this is [`classify_declared`] for callers that
/// parsed the length themselves.
pub fn classify_response(
    status: u16,
    content_length: Option<u64>,
    expected_len: u64,
) -> ResponseVerdict {
    let declared = content_length.map_or(DeclaredFraming::Absent, DeclaredFraming::Length);
    classify_declared(status, declared, expected_len)
}

/// Counts a 2xx body against the expected chunk length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyCheck {
    expected: u64,
    got: u64,
}

impl BodyCheck {
    /// A check expecting exactly `expected` bytes.
    pub const fn new(expected: u64) -> BodyCheck {
        BodyCheck { expected, got: 0 }
    }

    /// Counts `len` more bytes. Errors as soon as the body is longer than expected (the bytes of
    /// this frame must then not be handed to the caller).
    pub fn on_data(&mut self, len: usize) -> Result<(), FillCheckError> {
        // Checked, not saturating: with `expected == u64::MAX` a saturated count would accept
        // every further frame.
        match self.got.checked_add(len as u64) {
            Some(got) if got <= self.expected => {
                self.got = got;
                Ok(())
            }
            _ => Err(FillCheckError::TooLong {
                expected: self.expected,
            }),
        }
    }

    /// The body ended. Errors when fewer bytes than expected arrived.
    pub fn on_end(&self) -> Result<(), FillCheckError> {
        if self.got < self.expected {
            return Err(FillCheckError::Truncated {
                got: self.got,
                expected: self.expected,
            });
        }
        Ok(())
    }

    /// Bytes counted so far.
    pub const fn received(&self) -> u64 {
        self.got
    }

    /// Bytes expected in all.
    pub const fn expected(&self) -> u64 {
        self.expected
    }

    /// Bytes still to come.
    pub const fn remaining(&self) -> u64 {
        self.expected.saturating_sub(self.got)
    }

    /// Whether every expected byte arrived.
    pub const fn is_complete(&self) -> bool {
        self.got == self.expected
    }
}

/// Collects at most [`MAX_ERROR_BODY`] bytes of an error response's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    code: u16,
    body: Vec<u8>,
}

impl ErrorBody {
    /// How many more bytes to read (0: stop reading and call [`ErrorBody::finish`]).
    pub fn remaining(&self) -> usize {
        MAX_ERROR_BODY.saturating_sub(self.body.len())
    }

    /// Appends bytes, keeping at most [`MAX_ERROR_BODY`] in all.
    pub fn push(&mut self, data: &[u8]) {
        let take = data.len().min(self.remaining());
        self.body.extend_from_slice(data.get(..take).unwrap_or(&[]));
    }

    /// The status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The error to report.
    pub fn finish(self) -> FillCheckError {
        FillCheckError::Status {
            code: self.code,
            body: self.body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChunkKey {
        ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size: 100,
            index: 2,
        }
    }

    fn peer(ip: &str, port: u16, is_self: bool) -> Peer {
        Peer {
            ip: ip.parse().unwrap(),
            port,
            is_self,
        }
    }

    #[test]
    fn descriptor_brackets_ipv6_and_fills_port() {
        let d = FillDescriptor::new(&peer("fd00::1", 0, false), &key(), 250, Scheme::Https, 8444)
            .unwrap();
        assert_eq!(d.authority, "[fd00::1]:8444");
        assert_eq!(d.expected_len, 50);
        assert!(
            d.path_and_query
                .starts_with("/internal/fill?bucket=b&chunk_size=100&")
        );
        assert!(d.uri().starts_with("https://[fd00::1]:8444/internal/fill?"));
        let d = FillDescriptor::new(
            &peer("127.0.0.1", 4000, false),
            &key(),
            250,
            Scheme::Http,
            8444,
        )
        .unwrap();
        assert_eq!(d.authority, "127.0.0.1:4000");
    }

    #[test]
    fn descriptor_errors() {
        let me = peer("10.0.0.1", 0, true);
        assert_eq!(
            FillDescriptor::new(&me, &key(), 250, Scheme::Http, 8444),
            Err(DescriptorError::TargetIsSelf)
        );
        let other = peer("10.0.0.2", 0, false);
        assert_eq!(
            FillDescriptor::new(&other, &key(), 250, Scheme::Http, 0),
            Err(DescriptorError::NoPort)
        );
        assert!(matches!(
            FillDescriptor::new(&other, &key(), 200, Scheme::Http, 1),
            Err(DescriptorError::EmptyChunk { .. })
        ));
        let mut k = key();
        k.chunk_size = 0;
        assert_eq!(
            FillDescriptor::new(&other, &k, 200, Scheme::Http, 1),
            Err(DescriptorError::Chunk(ChunkError::ZeroChunkSize))
        );
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify_response(409, None, 10),
            ResponseVerdict::Reject(FillCheckError::NotCoordinator)
        );
        assert_eq!(
            classify_response(200, Some(11), 10),
            ResponseVerdict::Reject(FillCheckError::LengthMismatch {
                declared: 11,
                expected: 10
            })
        );
        assert_eq!(
            classify_response(200, Some(0), 10),
            ResponseVerdict::Reject(FillCheckError::LengthMismatch {
                declared: 0,
                expected: 10
            })
        );
        assert!(matches!(
            classify_response(204, None, 10),
            ResponseVerdict::Body(_)
        ));
        assert!(matches!(
            classify_response(200, Some(10), 10),
            ResponseVerdict::Body(_)
        ));
        let ResponseVerdict::ErrorBody(mut e) = classify_response(503, None, 10) else {
            panic!("expected an error body");
        };
        e.push(&[b'x'; 4000]);
        assert_eq!(e.remaining(), 0);
        let FillCheckError::Status { code, body } = e.finish() else {
            panic!("expected a status error");
        };
        assert_eq!((code, body.len()), (503, MAX_ERROR_BODY));
        assert!(matches!(
            classify_response(302, None, 10),
            ResponseVerdict::ErrorBody(_)
        ));
    }

    fn framing(cl: &[&str], te: &[&str]) -> Result<DeclaredFraming, MalformedHeader> {
        declared_framing(
            cl.iter().map(|v| v.as_bytes()),
            te.iter().map(|v| v.as_bytes()),
        )
    }

    fn malformed(field: &'static str, problem: HeaderProblem) -> MalformedHeader {
        MalformedHeader { field, problem }
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(framing(&[], &[]), Ok(DeclaredFraming::Absent));
        assert_eq!(framing(&["10"], &[]), Ok(DeclaredFraming::Length(10)));
        assert_eq!(framing(&[" \t7 "], &[]), Ok(DeclaredFraming::Length(7)));
        assert_eq!(framing(&["007"], &[]), Ok(DeclaredFraming::Length(7)));
        assert_eq!(
            framing(&["18446744073709551615"], &[]),
            Ok(DeclaredFraming::Length(u64::MAX))
        );
        // Several values are rejected even when they agree.
        for lines in [&["5", "5"][..], &["5, 5"], &["5,"], &["5", "6"]] {
            assert_eq!(
                framing(lines, &[]),
                Err(malformed(CONTENT_LENGTH, HeaderProblem::Repeated)),
                "{lines:?}"
            );
        }
        for value in ["", " ", "-1", "+1", "0x10", "1 0", "1.0", "ten", "\u{661}"] {
            assert_eq!(
                framing(&[value], &[]),
                Err(malformed(CONTENT_LENGTH, HeaderProblem::NotDigits)),
                "{value:?}"
            );
        }
        assert_eq!(
            framing(&["18446744073709551616"], &[]),
            Err(malformed(CONTENT_LENGTH, HeaderProblem::Overflow))
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        assert_eq!(framing(&[], &["chunked"]), Ok(DeclaredFraming::Chunked));
        assert_eq!(framing(&[], &[" CHUNKED\t"]), Ok(DeclaredFraming::Chunked));
        for value in ["gzip", "", "chunked;q=1", "identity"] {
            assert_eq!(
                framing(&[], &[value]),
                Err(malformed(
                    TRANSFER_ENCODING,
                    HeaderProblem::UnsupportedCoding
                )),
                "{value:?}"
            );
        }
        for lines in [
            &["gzip, chunked"][..],
            &["chunked", "chunked"],
            &["chunked,"],
        ] {
            assert_eq!(
                framing(&[], lines),
                Err(malformed(TRANSFER_ENCODING, HeaderProblem::Repeated)),
                "{lines:?}"
            );
        }
        assert_eq!(
            framing(&["3"], &["chunked"]),
            Err(malformed(
                TRANSFER_ENCODING,
                HeaderProblem::WithContentLength
            ))
        );
        // Each header's own problems are reported first.
        assert_eq!(
            framing(&["x"], &["chunked"]),
            Err(malformed(CONTENT_LENGTH, HeaderProblem::NotDigits))
        );
        assert_eq!(
            framing(&["3"], &["gzip"]),
            Err(malformed(
                TRANSFER_ENCODING,
                HeaderProblem::UnsupportedCoding
            ))
        );
    }

    #[test]
    fn head_classification() {
        let classify = |status, cl: &[&str], te: &[&str]| {
            classify_head(
                status,
                cl.iter().map(|v| v.as_bytes()),
                te.iter().map(|v| v.as_bytes()),
                10,
            )
        };
        assert!(matches!(
            classify(200, &["10"], &[]),
            ResponseVerdict::Body(_)
        ));
        assert!(matches!(
            classify(200, &[], &["chunked"]),
            ResponseVerdict::Body(_)
        ));
        assert!(matches!(classify(200, &[], &[]), ResponseVerdict::Body(_)));
        assert_eq!(
            classify(200, &["9"], &[]),
            ResponseVerdict::Reject(FillCheckError::LengthMismatch {
                declared: 9,
                expected: 10
            })
        );
        // The divergence this fixes: `5, 5` is a malformed head, not a length of 5.
        assert_eq!(
            classify(200, &["5, 5"], &[]),
            ResponseVerdict::Reject(FillCheckError::MalformedHead {
                field: "content-length",
                problem: HeaderProblem::Repeated
            })
        );
        assert_eq!(
            classify(200, &["10", "10"], &[]),
            ResponseVerdict::Reject(FillCheckError::MalformedHead {
                field: "content-length",
                problem: HeaderProblem::Repeated
            })
        );
        assert_eq!(
            classify(409, &["2"], &[]),
            ResponseVerdict::Reject(FillCheckError::NotCoordinator)
        );
        // Framing problems come before the status.
        assert!(matches!(
            classify(409, &["2", "2"], &[]),
            ResponseVerdict::Reject(FillCheckError::MalformedHead { .. })
        ));
        assert!(matches!(
            classify(503, &[], &["gzip"]),
            ResponseVerdict::Reject(FillCheckError::MalformedHead {
                field: "transfer-encoding",
                ..
            })
        ));
        let ResponseVerdict::ErrorBody(e) = classify(503, &["100000"], &[]) else {
            panic!("expected an error body");
        };
        assert_eq!((e.code(), e.remaining()), (503, MAX_ERROR_BODY));
        let text = alloc::format!(
            "{}",
            FillCheckError::MalformedHead {
                field: "content-length",
                problem: HeaderProblem::Repeated,
            }
        );
        assert!(text.starts_with("content-length: "), "{text}");
    }

    #[test]
    fn legacy_classification_matches_the_declared_form() {
        for status in [100, 200, 204, 299, 302, 409, 503, 999] {
            for cl in [None, Some(0), Some(10), Some(u64::MAX)] {
                let declared = cl.map_or(DeclaredFraming::Absent, DeclaredFraming::Length);
                assert_eq!(
                    classify_response(status, cl, 10),
                    classify_declared(status, declared, 10)
                );
            }
        }
    }

    #[test]
    fn body_check_counts() {
        let mut c = BodyCheck::new(10);
        c.on_data(4).unwrap();
        assert_eq!(
            c.on_end(),
            Err(FillCheckError::Truncated {
                got: 4,
                expected: 10
            })
        );
        c.on_data(6).unwrap();
        assert!(c.is_complete());
        assert_eq!(c.on_end(), Ok(()));
        assert_eq!(c.on_data(1), Err(FillCheckError::TooLong { expected: 10 }));
        assert_eq!(c.received(), 10);
        let mut c = BodyCheck::new(3);
        assert_eq!(
            c.on_data(usize::MAX),
            Err(FillCheckError::TooLong { expected: 3 })
        );
    }
}
