//! The listener side of the fill RPC: which requests to admit (the design's section 3.6).
//!
//! Checks run in this order, and the first failing one decides the answer:
//! 1. path exactly `/internal/fill`, else 404;
//! 2. method `GET`, else 405 (with `Allow: GET`);
//! 3. header `x-orca-internal: 1`, else 400;
//! 4. the query decodes ([`crate::wire::decode_query`]), else 400 naming the parameter;
//! 5. this replica coordinates the chunk in its own current snapshot, else 409 with body
//!    `{"reason":"not_coordinator"}`.
//!
//! Then the application's filler runs: its failure is [`FILL_FAILED_STATUS`]; success is 200
//! with `Content-Length: expected_len` and `Content-Type: application/octet-stream`, and the
//! driver counts the filler's bytes with a [`crate::fill::BodyCheck`], aborting the response
//! (never completing it) if the stream ends short or runs long.

use alloc::borrow::Cow;
use alloc::format;
use core::fmt;

use crate::snapshot::Snapshot;
use crate::wire::{DecodeError, FILL_PATH, FillQuery, INTERNAL_HEADER_VALUE, decode_query};

/// Status when the application's filler fails: 502.
pub const FILL_FAILED_STATUS: u16 = 502;
/// Body when the application's filler fails.
pub const FILL_FAILED_BODY: &str = "fill failed";
/// Status when the listener is at its concurrency limit: 503.
pub const OVERLOADED_STATUS: u16 = 503;
/// Body when the listener is at its concurrency limit.
pub const OVERLOADED_BODY: &str = "overloaded: too many concurrent fills";
/// Content type of a successful fill response.
pub const FILL_CONTENT_TYPE: &str = "application/octet-stream";
/// Body of the 409 answer.
pub const NOT_COORDINATOR_BODY: &str = r#"{"reason":"not_coordinator"}"#;

/// The parts of a request that admission looks at.
#[derive(Clone, Copy, Debug)]
pub struct FillRequestHead<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The path without the query.
    pub path: &'a str,
    /// The raw query string without `?`, if any.
    pub query: Option<&'a str>,
    /// The value of the `x-orca-internal` header, if present.
    pub internal_header: Option<&'a [u8]>,
}

/// An admitted request: serve `expected_len` bytes of `query.key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The decoded request.
    pub query: FillQuery,
    /// The body length to serve (> 0).
    pub expected_len: u64,
}

/// Why a request was refused; see [`Rejection::status`] and [`Rejection::body`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not `/internal/fill` (404).
    NotFound,
    /// Not `GET` (405).
    MethodNotAllowed,
    /// No `x-orca-internal: 1` header (400).
    NotInternal,
    /// The query is invalid (400).
    BadQuery(DecodeError),
    /// This replica does not coordinate the chunk (409).
    NotCoordinator,
}

impl Rejection {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::NotFound => 404,
            Rejection::MethodNotAllowed => 405,
            Rejection::NotInternal | Rejection::BadQuery(_) => 400,
            Rejection::NotCoordinator => 409,
        }
    }

    /// The response body (plain text, except the JSON of the 409).
    pub fn body(&self) -> Cow<'static, str> {
        match self {
            Rejection::NotFound => Cow::Borrowed("not found: the only path is /internal/fill\n"),
            Rejection::MethodNotAllowed => Cow::Borrowed("method not allowed: use GET\n"),
            Rejection::NotInternal => {
                Cow::Borrowed("missing header x-orca-internal: 1 (internal RPC only)\n")
            }
            Rejection::BadQuery(e) => Cow::Owned(format!("bad request: {e}\n")),
            Rejection::NotCoordinator => Cow::Borrowed(NOT_COORDINATOR_BODY),
        }
    }

    /// The response content type.
    pub fn content_type(&self) -> &'static str {
        match self {
            Rejection::NotCoordinator => "application/json",
            _ => "text/plain; charset=utf-8",
        }
    }

    /// Extra header for the response: `Allow: GET` on 405.
    pub fn allow(&self) -> Option<&'static str> {
        match self {
            Rejection::MethodNotAllowed => Some("GET"),
            _ => None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.body().trim_end())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Rejection {}

/// Runs the admission checks against the replica's current `snapshot`.
pub fn admit(head: &FillRequestHead<'_>, snapshot: &Snapshot) -> Result<Admitted, Rejection> {
    if head.path != FILL_PATH {
        return Err(Rejection::NotFound);
    }
    if head.method != "GET" {
        return Err(Rejection::MethodNotAllowed);
    }
    if head.internal_header.map(<[u8]>::trim_ascii) != Some(INTERNAL_HEADER_VALUE.as_bytes()) {
        return Err(Rejection::NotInternal);
    }
    let query = decode_query(head.query.unwrap_or("")).map_err(Rejection::BadQuery)?;
    if !snapshot.is_coordinator(&query.key) {
        return Err(Rejection::NotCoordinator);
    }
    // decode_query guarantees the chunk starts before the end, so this is > 0 and cannot fail.
    let expected_len = query
        .expected_len()
        .map_err(|_| Rejection::BadQuery(DecodeError::Missing(crate::wire::Param::Index)))?;
    Ok(Admitted {
        query,
        expected_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkKey;
    use crate::peer::{PeerAddr, SelfIdentity};
    use crate::rendezvous::Scoring;
    use crate::wire::encode_query;
    use alloc::string::String;

    fn key(index: u64) -> ChunkKey {
        ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size: 10,
            index,
        }
    }

    /// A snapshot of self + one other peer, and a key index self coordinates / does not.
    fn setup() -> (Snapshot, u64, u64) {
        let me = SelfIdentity::new(["10.0.0.1".parse().unwrap()], 0).unwrap();
        let s = Snapshot::new(
            &me,
            [PeerAddr::from_ip("10.0.0.2".parse().unwrap())],
            Scoring::Xxh3,
            1,
        );
        let mine = (0..100).find(|&i| s.is_coordinator(&key(i))).unwrap();
        let theirs = (0..100).find(|&i| !s.is_coordinator(&key(i))).unwrap();
        (s, mine, theirs)
    }

    fn head<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        hdr: Option<&'a [u8]>,
    ) -> FillRequestHead<'a> {
        FillRequestHead {
            method,
            path,
            query: Some(query),
            internal_header: hdr,
        }
    }

    #[test]
    fn checks_run_in_order() {
        let (s, mine, theirs) = setup();
        let good: String = encode_query(&key(mine), 1000);
        let other: String = encode_query(&key(theirs), 1000);
        let one = Some(&b"1"[..]);
        assert_eq!(
            admit(&head("POST", "/x", "", None), &s),
            Err(Rejection::NotFound)
        );
        assert_eq!(
            admit(&head("POST", FILL_PATH, &good, one), &s),
            Err(Rejection::MethodNotAllowed)
        );
        assert_eq!(
            admit(&head("GET", FILL_PATH, &good, None), &s),
            Err(Rejection::NotInternal)
        );
        assert_eq!(
            admit(&head("GET", FILL_PATH, &good, Some(b"yes")), &s),
            Err(Rejection::NotInternal)
        );
        let bad = admit(&head("GET", FILL_PATH, "key=k", one), &s).unwrap_err();
        assert_eq!(bad.status(), 400);
        assert!(bad.body().contains("origin_id"), "{}", bad.body());
        let nc = admit(&head("GET", FILL_PATH, &other, one), &s).unwrap_err();
        assert_eq!(
            (nc.status(), nc.body().as_ref()),
            (409, NOT_COORDINATOR_BODY)
        );
        let ok = admit(&head("GET", FILL_PATH, &good, one), &s).unwrap();
        assert_eq!(ok.expected_len, 10);
        assert_eq!(Rejection::MethodNotAllowed.allow(), Some("GET"));
    }
}
