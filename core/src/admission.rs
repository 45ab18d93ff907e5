//! The listener side of the fill RPC: which requests to admit.
//!
//! Drivers hand over the request as received ([`FillRequestHead`]): the method, the raw request
//! target and every value of the `x-orca-internal` header. Checks run in this order, and the
//! first failing one decides the answer:
//! 1. the request target is in origin-form (starts with `/`) or in absolute-form with an
//!    `http`/`https` scheme (`http://h/internal/fill?...`, which an HTTP/1.1 server must
//!    accept; its origin-form part, from the first `/` after the authority, is what the next
//!    checks see), else 400 naming the request target (authority-form `h:443`, `*`, other
//!    schemes);
//! 2. the path, the target up to its first `?`, is byte for byte `/internal/fill`, else 404.
//!    There is no percent-decoding and no dot-segment normalisation: `/internal/../internal/fill`
//!    and `/internal%2Ffill` are 404;
//! 3. method `GET`, else 405 (with `Allow: GET`);
//! 4. the header `x-orca-internal` appears exactly once with the value `1` (optional whitespace
//!    around it ignored), else 400 naming the header: absent, repeated, or another value
//!    such as the list `1, 1`;
//! 5. the query, the target after its first `?` (empty without one), decodes
//!    ([`crate::wire::decode_query`]), else 400 naming the parameter, and its `chunk_size` is
//!    at most the listener's maximum ([`crate::ClusterConfig::max_chunk_size`], default
//!    [`DEFAULT_MAX_CHUNK_SIZE`] = 64 MiB), else 400 naming `chunk_size`
//!    ([`DecodeError::ChunkSizeTooLarge`]);
//! 6. this replica coordinates the chunk in its own current snapshot, else 409 with body
//!    `{"reason":"not_coordinator"}`.
//!
//! Then the application's filler runs: its failure is [`FILL_FAILED_STATUS`]; success is 200
//! with `Content-Length: expected_len` and `Content-Type: application/octet-stream`, and the
//! driver counts the filler's bytes with a [`crate::fill::BodyCheck`], aborting the response
//! (never completing it) if the stream ends short or runs long.

use alloc::borrow::Cow;
use alloc::format;
use core::fmt;

pub use crate::chunk::DEFAULT_MAX_CHUNK_SIZE;
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

/// The parts of a request that admission looks at, as the driver received them.
#[derive(Clone, Copy, Debug)]
pub struct FillRequestHead<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The request target exactly as received: the HTTP/1.1 request-target (in whatever form
    /// the client sent it) or the HTTP/2 `:path`. Not decoded or normalised.
    pub target: &'a str,
    /// Every value of the `x-orca-internal` header, in the order received (empty when the
    /// header is absent; one entry per header line or HTTP/2 field).
    pub internal_header: &'a [&'a [u8]],
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
    /// The request target is not in origin-form: absolute-form, authority-form, `*` or empty
    /// (400).
    BadTarget,
    /// Not `/internal/fill` (404).
    NotFound,
    /// Not `GET` (405).
    MethodNotAllowed,
    /// No `x-orca-internal` header, or its value is not `1` (400).
    NotInternal,
    /// The `x-orca-internal` header appears more than once (400).
    RepeatedInternalHeader,
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
            Rejection::BadTarget
            | Rejection::NotInternal
            | Rejection::RepeatedInternalHeader
            | Rejection::BadQuery(_) => 400,
            Rejection::NotCoordinator => 409,
        }
    }

    /// The response body (plain text, except the JSON of the 409).
    pub fn body(&self) -> Cow<'static, str> {
        match self {
            Rejection::BadTarget => Cow::Borrowed(
                "bad request target: must be a path (origin-form), e.g. /internal/fill?...\n",
            ),
            Rejection::NotFound => Cow::Borrowed("not found: the only path is /internal/fill\n"),
            Rejection::MethodNotAllowed => Cow::Borrowed("method not allowed: use GET\n"),
            Rejection::NotInternal => {
                Cow::Borrowed("missing header x-orca-internal: 1 (internal RPC only)\n")
            }
            Rejection::RepeatedInternalHeader => Cow::Borrowed(
                "bad header x-orca-internal: must appear exactly once, with value 1\n",
            ),
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

/// Runs the admission checks against the replica's current `snapshot`, in the order of the
/// module docs:
///
/// 1. `head.target` must be in origin-form (start with `/`) or absolute-form with an `http` or
///    `https` scheme (then its part from the first `/` after the authority is used), else
///    [`Rejection::BadTarget`] (400);
/// 2. its path, up to the first `?`, must equal `/internal/fill` byte for byte (no
///    percent-decoding, no dot-segment normalisation), else [`Rejection::NotFound`] (404);
/// 3. `head.method` must be `GET`, else [`Rejection::MethodNotAllowed`] (405);
/// 4. `head.internal_header` must hold exactly one value, equal to `1` once surrounding spaces
///    and tabs are trimmed: several values are [`Rejection::RepeatedInternalHeader`], none or
///    another value (including a list such as `1, 1`) [`Rejection::NotInternal`] (both 400);
/// 5. the query, after the first `?` (empty without one), must decode, else
///    [`Rejection::BadQuery`] (400, naming the parameter), and its `chunk_size` must be at
///    most `max_chunk_size` bytes, else [`Rejection::BadQuery`] with
///    [`DecodeError::ChunkSizeTooLarge`] (400, naming `chunk_size`);
/// 6. `snapshot` must make this replica the chunk's coordinator, else
///    [`Rejection::NotCoordinator`] (409).
///
/// `max_chunk_size` is the configured [`crate::ClusterConfig::max_chunk_size`] (default
/// [`DEFAULT_MAX_CHUNK_SIZE`]); exactly the maximum is admitted.
pub fn admit(
    head: &FillRequestHead<'_>,
    snapshot: &Snapshot,
    max_chunk_size: u64,
) -> Result<Admitted, Rejection> {
    let target = origin_form(head.target).ok_or(Rejection::BadTarget)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != FILL_PATH {
        return Err(Rejection::NotFound);
    }
    if head.method != "GET" {
        return Err(Rejection::MethodNotAllowed);
    }
    match head.internal_header {
        [value] if trim_ows(value) == INTERNAL_HEADER_VALUE.as_bytes() => {}
        [_, _, ..] => return Err(Rejection::RepeatedInternalHeader),
        _ => return Err(Rejection::NotInternal),
    }
    let query = decode_query(query).map_err(Rejection::BadQuery)?;
    if query.key.chunk_size > max_chunk_size {
        return Err(Rejection::BadQuery(DecodeError::ChunkSizeTooLarge {
            chunk_size: query.key.chunk_size,
            max: max_chunk_size,
        }));
    }
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

/// The origin-form part of a request target: the target itself when it starts with `/`; for
/// an absolute-form `http://authority/...` or `https://...` target (scheme case-insensitive),
/// the part from the first `/` or `?` after the authority (empty when there is none, which no
/// path matches). `None` for any other form.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') {
        return Some(target);
    }
    let (scheme, rest) = target.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority_end == 0 {
        return None;
    }
    rest.get(authority_end..)
}

/// A field value without the optional whitespace (spaces and tabs) around it.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
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

    fn head<'a>(method: &'a str, target: &'a str, hdr: &'a [&'a [u8]]) -> FillRequestHead<'a> {
        FillRequestHead {
            method,
            target,
            internal_header: hdr,
        }
    }

    const ONE: &[&[u8]] = &[b"1"];
    const MAX: u64 = DEFAULT_MAX_CHUNK_SIZE;

    #[test]
    fn checks_run_in_order() {
        let (s, mine, theirs) = setup();
        let good: String = alloc::format!("{FILL_PATH}?{}", encode_query(&key(mine), 1000));
        let other: String = alloc::format!("{FILL_PATH}?{}", encode_query(&key(theirs), 1000));
        let authority_form = "10.0.0.1:8444";
        assert_eq!(
            admit(&head("POST", authority_form, &[]), &s, MAX),
            Err(Rejection::BadTarget)
        );
        assert_eq!(
            admit(&head("POST", "/x", &[]), &s, MAX),
            Err(Rejection::NotFound)
        );
        assert_eq!(
            admit(&head("POST", &good, ONE), &s, MAX),
            Err(Rejection::MethodNotAllowed)
        );
        assert_eq!(
            admit(&head("GET", "/internal/fill?key=k", &[]), &s, MAX),
            Err(Rejection::NotInternal)
        );
        assert_eq!(
            admit(&head("GET", &good, &[b"yes"]), &s, MAX),
            Err(Rejection::NotInternal)
        );
        assert_eq!(
            admit(&head("GET", "/internal/fill?key=k", &[b"1", b"1"]), &s, MAX),
            Err(Rejection::RepeatedInternalHeader)
        );
        let bad = admit(&head("GET", "/internal/fill?key=k", ONE), &s, MAX).unwrap_err();
        assert_eq!(bad.status(), 400);
        assert!(bad.body().contains("origin_id"), "{}", bad.body());
        let nc = admit(&head("GET", &other, ONE), &s, MAX).unwrap_err();
        assert_eq!(
            (nc.status(), nc.body().as_ref()),
            (409, NOT_COORDINATOR_BODY)
        );
        let ok = admit(&head("GET", &good, ONE), &s, MAX).unwrap();
        assert_eq!(ok.expected_len, 10);
        assert_eq!(Rejection::MethodNotAllowed.allow(), Some("GET"));
    }

    #[test]
    fn chunk_size_above_the_limit_is_400_naming_chunk_size() {
        let (s, _, _) = setup();
        let at = |chunk_size: u64, max: u64| {
            let mut k = key(0);
            k.chunk_size = chunk_size;
            let mine = (0..200)
                .map(|i| ChunkKey {
                    index: i,
                    ..k.clone()
                })
                .find(|k| s.is_coordinator(k))
                .unwrap();
            let object_size = mine.index.saturating_mul(chunk_size).saturating_add(1);
            let target = alloc::format!("{FILL_PATH}?{}", encode_query(&mine, object_size));
            admit(&head("GET", &target, ONE), &s, max)
        };
        // Exactly the maximum is admitted; one byte more is refused, naming chunk_size.
        assert!(at(1000, 1000).is_ok());
        let r = at(1001, 1000).unwrap_err();
        assert_eq!(
            r,
            Rejection::BadQuery(DecodeError::ChunkSizeTooLarge {
                chunk_size: 1001,
                max: 1000
            })
        );
        assert_eq!(r.status(), 400);
        assert!(r.body().contains("chunk_size"), "{}", r.body());
        // The default limit: 64 MiB passes, u64::MAX (checked before the coordinator) does not.
        assert!(at(DEFAULT_MAX_CHUNK_SIZE, DEFAULT_MAX_CHUNK_SIZE).is_ok());
        let mut huge = key(0);
        huge.chunk_size = u64::MAX;
        let target = alloc::format!("{FILL_PATH}?{}", encode_query(&huge, u64::MAX));
        let r = admit(&head("GET", &target, ONE), &s, DEFAULT_MAX_CHUNK_SIZE).unwrap_err();
        assert_eq!(r.status(), 400);
        assert!(r.body().contains("chunk_size"), "{}", r.body());
    }

    #[test]
    fn the_target_is_matched_raw() {
        let (s, mine, _) = setup();
        let query = encode_query(&key(mine), 1000);
        let at = |path: &str| alloc::format!("{path}?{query}");
        assert!(admit(&head("GET", &at(FILL_PATH), ONE), &s, MAX).is_ok());
        for path in [
            "/internal/../internal/fill",
            "/internal/./fill",
            "//internal/fill",
            "/internal/fill/",
            "/internal%2Ffill",
            "/internal/fil%6C",
            "/INTERNAL/fill",
            "/internal/fill;x",
            "/internal/fill#",
        ] {
            assert_eq!(
                admit(&head("GET", &at(path), ONE), &s, MAX),
                Err(Rejection::NotFound),
                "{path}"
            );
        }
        // Only the first `?` splits: the rest belongs to the query.
        let twice = alloc::format!("{FILL_PATH}??{query}");
        assert!(matches!(
            admit(&head("GET", &twice, ONE), &s, MAX),
            Err(Rejection::BadQuery(_))
        ));
        // No `?` at all: an empty query, which lacks every parameter.
        assert!(matches!(
            admit(&head("GET", FILL_PATH, ONE), &s, MAX),
            Err(Rejection::BadQuery(_))
        ));
    }

    #[test]
    fn origin_and_absolute_form_targets_are_admitted_nothing_else() {
        let (s, mine, _) = setup();
        let query = encode_query(&key(mine), 1000);
        for target in [
            alloc::format!("{FILL_PATH}?{query}"),
            alloc::format!("http://10.0.0.1:8444{FILL_PATH}?{query}"),
            alloc::format!("HTTPS://h{FILL_PATH}?{query}"),
        ] {
            assert!(
                admit(&head("GET", &target, ONE), &s, MAX).is_ok(),
                "{target:?}"
            );
        }
        // Absolute-form is taken byte for byte too.
        for target in [
            alloc::format!("http://h/internal/../internal/fill?{query}"),
            alloc::format!("http://h?{query}"),
            "http://h".into(),
        ] {
            let r = admit(&head("GET", &target, ONE), &s, MAX).unwrap_err();
            assert_eq!(r, Rejection::NotFound, "{target:?}");
        }
        for target in [
            alloc::format!("ftp://h{FILL_PATH}?{query}"),
            alloc::format!("http://{FILL_PATH}?{query}"),
            "10.0.0.1:8444".into(),
            "*".into(),
            String::new(),
            alloc::format!("internal/fill?{query}"),
            alloc::format!(" {FILL_PATH}?{query}"),
        ] {
            let r = admit(&head("GET", &target, ONE), &s, MAX).unwrap_err();
            assert_eq!(r, Rejection::BadTarget, "{target:?}");
            assert_eq!(r.status(), 400);
            assert!(r.body().contains("request target"), "{}", r.body());
        }
    }

    #[test]
    fn the_internal_header_appears_once_with_value_1() {
        let (s, mine, _) = setup();
        let good = alloc::format!("{FILL_PATH}?{}", encode_query(&key(mine), 1000));
        for ok in [&b"1"[..], b" 1", b"1\t", b"\t 1  "] {
            assert!(admit(&head("GET", &good, &[ok]), &s, MAX).is_ok(), "{ok:?}");
        }
        for (values, want) in [
            (&[][..], Rejection::NotInternal),
            (&[&b""[..]], Rejection::NotInternal),
            (&[&b"1, 1"[..]], Rejection::NotInternal),
            (&[&b"1,1"[..]], Rejection::NotInternal),
            (&[&b"01"[..]], Rejection::NotInternal),
            (&[&b"true"[..]], Rejection::NotInternal),
            (&[&b"1\r"[..]], Rejection::NotInternal),
            (&[&b"1"[..], &b"1"[..]], Rejection::RepeatedInternalHeader),
            (&[&b"1"[..], &b""[..]], Rejection::RepeatedInternalHeader),
            (
                &[&b"0"[..], &b"1"[..], &b"1"[..]],
                Rejection::RepeatedInternalHeader,
            ),
        ] {
            let r = admit(&head("GET", &good, values), &s, MAX).unwrap_err();
            assert_eq!(r, want, "{values:?}");
            assert_eq!(r.status(), 400);
            assert!(r.body().contains("x-orca-internal"), "{}", r.body());
        }
    }
}
