//! The client side of the fill RPC: request descriptors and response checks.
//!
//! A driver asks [`FillDescriptor::new`] what to send, sends it, then lets
//! [`classify_response`] judge the status line and headers and a [`BodyCheck`] count the body.
//! Drivers only move bytes; every decision about what is acceptable is made here.

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

/// Judges a response head: `status` and the parsed `Content-Length` header (`None` when absent,
/// e.g. chunked or HTTP/2 without the header). A present header that is not a number must be
/// passed as `Some(u64::MAX)` so it is rejected.
pub fn classify_response(
    status: u16,
    content_length: Option<u64>,
    expected_len: u64,
) -> ResponseVerdict {
    match status {
        409 => ResponseVerdict::Reject(FillCheckError::NotCoordinator),
        200..=299 => match content_length {
            Some(declared) if declared != expected_len => {
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
