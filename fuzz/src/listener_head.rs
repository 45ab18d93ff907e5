//! `listener_head`: the HTTP/1.1 listener's whole decision on the bytes a connection delivers,
//! as the smol driver makes it (its `next_request`, then the shared pipeline's `respond`).
//!
//! The input is what a client sent on one connection. Each request head is parsed with the
//! core's codec (`h1::parse_request_head`, the listener's default head limit); a bad head is
//! answered with its `HeadError::status` and ends the connection; a complete one goes through
//! the core's admission (`admission::admit`, the values of every `x-orca-internal` line, a
//! fixed three-replica snapshot, the default maximum chunk size); the connection goes on to
//! the next head only if the request lets it (HTTP/1.1 keep-alive, `GET`, no body), as the
//! listener does. Invariants:
//!
//! - every answer's status is 200 (admitted), 400, 404, 405, 409 (the admission's
//!   rejections) or 400 and 431 (a bad head), and its response head encodes;
//! - a complete head consumed more than nothing, at most the bytes left and at most the head
//!   limit; a partial head is shorter than the limit;
//! - the admission agrees with the codec's reading of the head: the path and query of
//!   `RequestHead::path`/`query` (an absolute-form target with an empty authority is a bad
//!   target), the method, the `x-orca-internal` values, the decoded query and the snapshot's
//!   coordinator decide the outcome, rule by rule in the admission's order;
//! - an admitted request is for a chunk this replica coordinates, its `expected_len` is that of
//!   the decoded query, above 0 and at most the maximum chunk size.

use std::net::{IpAddr, Ipv4Addr};

use orca_cluster_core::admission::{
    Admitted, DEFAULT_MAX_CHUNK_SIZE, FillRequestHead, Rejection, admit,
};
use orca_cluster_core::h1::{self, HeadError, Parsed, RequestHead, ResponseSpec};
use orca_cluster_core::wire::{DecodeError, FILL_PATH, decode_query};
use orca_cluster_core::{PeerAddr, Scoring, SelfIdentity, Snapshot};
use orca_cluster_driver_common::listener::DEFAULT_MAX_HEADER_BYTES;

/// The head limit: the listener's default `max_header_bytes`.
pub const MAX_HEAD: usize = DEFAULT_MAX_HEADER_BYTES;
/// The maximum chunk size: the configuration's default.
pub const MAX_CHUNK_SIZE: u64 = DEFAULT_MAX_CHUNK_SIZE;
/// Requests looked at per input (a keep-alive connection answers them one after the other).
const MAX_REQUESTS: usize = 64;
/// The content type of the listener's fixed text answers.
const TEXT: &str = "text/plain; charset=utf-8";
/// The content type of a fill answer.
const OCTETS: &str = "application/octet-stream";

/// This replica's IP in the fixed snapshot.
pub const SELF_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
/// The other replicas of the fixed snapshot.
pub const OTHER_IPS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
];

/// The fixed snapshot: self (10.0.0.1) and two other replicas, port 0 as from DNS.
pub fn snapshot() -> Snapshot {
    let me = SelfIdentity::new([SELF_IP], 0).expect("one IP");
    let peers = std::iter::once(SELF_IP)
        .chain(OTHER_IPS)
        .map(PeerAddr::from_ip);
    Snapshot::new(&me, peers, Scoring::Xxh3, 1)
}

/// The target: see the module docs.
pub fn listener_head(data: &[u8]) {
    let snapshot = snapshot();
    let mut rest = data;
    for _ in 0..MAX_REQUESTS {
        match h1::parse_request_head(rest, MAX_HEAD) {
            Err(e) => {
                check_bad_head(&e);
                return;
            }
            // The listener reads more, or the connection ends or times out.
            Ok(Parsed::Partial) => {
                assert!(rest.len() < MAX_HEAD, "partial at {} bytes", rest.len());
                return;
            }
            Ok(Parsed::Complete { head, consumed }) => {
                assert!(consumed > 0 && consumed <= rest.len() && consumed <= MAX_HEAD);
                let internal: Vec<&[u8]> = head.internal_values().collect();
                let request = FillRequestHead {
                    method: head.method,
                    target: head.target,
                    internal_header: &internal,
                };
                let verdict = admit(&request, &snapshot, MAX_CHUNK_SIZE);
                let close = !head.keep_alive || head.has_body || head.method != "GET";
                check_verdict(&head, &internal, &snapshot, &verdict, close);
                if close {
                    return;
                }
                rest = rest.get(consumed..).expect("consumed within the input");
            }
        }
    }
}

fn check_bad_head(e: &HeadError) {
    let status = e.status();
    assert!(matches!(status, 400 | 431), "{e:?} answered {status}");
    let body = format!("bad request head: {e}\n");
    encodes(status, TEXT, body.len() as u64, None, true);
}

fn check_verdict(
    head: &RequestHead<'_>,
    internal: &[&[u8]],
    snapshot: &Snapshot,
    verdict: &Result<Admitted, Rejection>,
    close: bool,
) {
    let query = head.query().unwrap_or("");
    let decoded = decode_query(query);
    let expected: Result<(), Rejection> = if empty_authority(head.target) {
        Err(Rejection::BadTarget)
    } else if head.path() != FILL_PATH {
        Err(Rejection::NotFound)
    } else if head.method != "GET" {
        Err(Rejection::MethodNotAllowed)
    } else if internal.len() > 1 {
        Err(Rejection::RepeatedInternalHeader)
    } else if internal.first().map(|v| trim_ows(v)) != Some(b"1".as_slice()) {
        Err(Rejection::NotInternal)
    } else {
        match &decoded {
            Err(e) => Err(Rejection::BadQuery(e.clone())),
            Ok(q) if q.key.chunk_size > MAX_CHUNK_SIZE => {
                Err(Rejection::BadQuery(DecodeError::ChunkSizeTooLarge {
                    chunk_size: q.key.chunk_size,
                    max: MAX_CHUNK_SIZE,
                }))
            }
            Ok(q) if !snapshot.coordinator(&q.key).is_self => Err(Rejection::NotCoordinator),
            Ok(_) => Ok(()),
        }
    };
    match verdict {
        Ok(admitted) => {
            assert_eq!(expected, Ok(()), "admitted {admitted:?} for {head:?}");
            let q = decoded.as_ref().expect("an admitted query decodes");
            assert_eq!(&admitted.query, q);
            assert!(snapshot.is_coordinator(&q.key));
            assert_eq!(Ok(admitted.expected_len), q.expected_len());
            assert!(admitted.expected_len > 0);
            assert!(admitted.expected_len <= MAX_CHUNK_SIZE);
            assert!(admitted.query.key.chunk_size <= MAX_CHUNK_SIZE);
            encodes(200, OCTETS, admitted.expected_len, None, close);
        }
        Err(rejection) => {
            assert_eq!(Err(rejection.clone()), expected, "for {head:?}");
            let status = rejection.status();
            assert!(matches!(status, 400 | 404 | 405 | 409), "status {status}");
            assert_eq!(rejection.allow().is_some(), status == 405);
            let body = rejection.body();
            assert!(!body.is_empty());
            encodes(
                status,
                rejection.content_type(),
                body.len() as u64,
                rejection.allow(),
                close,
            );
        }
    }
}

/// An absolute-form target whose authority is empty (`http:///x`): the codec reads its path
/// after the `://`, the admission refuses it as a target.
fn empty_authority(target: &str) -> bool {
    !target.starts_with('/')
        && target
            .split_once("://")
            .is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with(['/', '?']))
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// The listener writes every answer's head with the codec; it must encode.
fn encodes(status: u16, content_type: &str, len: u64, allow: Option<&str>, close: bool) {
    let spec = ResponseSpec {
        status,
        content_type,
        content_length: len,
        allow,
        close,
    };
    let mut out = Vec::new();
    h1::encode_response_head(&spec, &mut out)
        .unwrap_or_else(|e| panic!("the answer {status} does not encode: {e:?}"));
    assert!(out.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
}

/// The checked-in seeds of `corpus/listener_head/`: request heads as the fill client writes
/// them (`h1::encode_fill_request`) for chunks self coordinates and chunks it does not, and
/// requests that the admission or the codec refuses (`tests/replay_corpus.rs` checks the files
/// against this list and rewrites them with `FUZZ_WRITE_SEEDS=1`).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use orca_cluster_core::ChunkKey;
    use orca_cluster_core::fill::{FillDescriptor, Scheme};
    use orca_cluster_core::wire::encode_query;

    let snapshot = snapshot();
    let key = |index: u64| ChunkKey {
        origin_id: "s3-eu".to_string(),
        bucket: "media".to_string(),
        object_key: "videos/a b+c.mp4".to_string(),
        etag: "\"9f2c\"".to_string(),
        chunk_size: 4 << 20,
        index,
    };
    let object_size = 64 << 20;
    // The first chunk self coordinates, and the first one another replica does.
    let mine = (0..).map(key).find(|k| snapshot.is_coordinator(k));
    let theirs = (0..).map(key).find(|k| !snapshot.is_coordinator(k));
    let (mine, theirs) = (
        mine.expect("self coordinates a chunk"),
        theirs.expect("so do others"),
    );
    // The request another replica sends to self (port 0 in the snapshot: the listen port).
    let self_peer = orca_cluster_core::Peer {
        ip: SELF_IP,
        port: 0,
        is_self: false,
    };
    let request = |k: &ChunkKey| {
        let desc = FillDescriptor::new(&self_peer, k, object_size, Scheme::Http, 8444)
            .expect("a valid descriptor");
        let mut out = Vec::new();
        h1::encode_fill_request(&desc, "orca-cluster/0.1", &mut out).expect("encodes");
        out
    };
    let admitted = request(&mine);
    let not_coordinator = request(&theirs);
    let text = |s: &str| s.as_bytes().to_vec();
    let fill_target = format!("{FILL_PATH}?{}", encode_query(&mine, object_size));
    let head = |method: &str, target: &str, headers: &str| {
        text(&format!(
            "{method} {target} HTTP/1.1\r\nhost: 10.0.0.1:8444\r\n{headers}\r\n"
        ))
    };

    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        ("seed-admitted", admitted.clone()),
        ("seed-not-coordinator", not_coordinator.clone()),
        (
            "seed-keep-alive-three",
            [admitted.clone(), not_coordinator, admitted.clone()].concat(),
        ),
        (
            "seed-absolute-form",
            head(
                "GET",
                &format!("http://10.0.0.1:8444{fill_target}"),
                "x-orca-internal: 1\r\n",
            ),
        ),
        (
            "seed-empty-authority",
            head(
                "GET",
                &format!("http://{fill_target}"),
                "x-orca-internal: 1\r\n",
            ),
        ),
        (
            "seed-dot-segment",
            head(
                "GET",
                &format!(
                    "/internal/../internal/fill?{}",
                    encode_query(&mine, object_size)
                ),
                "x-orca-internal: 1\r\n",
            ),
        ),
        (
            "seed-post",
            head(
                "POST",
                &fill_target,
                "x-orca-internal: 1\r\ncontent-length: 0\r\n",
            ),
        ),
        (
            "seed-internal-twice",
            head(
                "GET",
                &fill_target,
                "x-orca-internal: 1\r\nX-Orca-Internal: 1\r\n",
            ),
        ),
        (
            "seed-internal-list",
            head("GET", &fill_target, "x-orca-internal: 1, 1\r\n"),
        ),
        ("seed-not-internal", head("GET", &fill_target, "")),
        (
            "seed-chunk-too-large",
            head(
                "GET",
                &format!(
                    "{FILL_PATH}?{}",
                    encode_query(
                        &ChunkKey {
                            chunk_size: MAX_CHUNK_SIZE + 1,
                            ..mine.clone()
                        },
                        object_size
                    )
                ),
                "x-orca-internal: 1\r\n",
            ),
        ),
        (
            "seed-bad-query",
            head(
                "GET",
                &format!("{FILL_PATH}?bucket=%zz"),
                "x-orca-internal: 1\r\n",
            ),
        ),
        (
            "seed-body-closes",
            [
                head(
                    "GET",
                    &fill_target,
                    "x-orca-internal: 1\r\ncontent-length: 3\r\n",
                ),
                text("abc"),
                admitted.clone(),
            ]
            .concat(),
        ),
        (
            "seed-connection-close",
            [
                head(
                    "GET",
                    &fill_target,
                    "x-orca-internal: 1\r\nconnection: close\r\n",
                ),
                admitted.clone(),
            ]
            .concat(),
        ),
        (
            "seed-no-host",
            text("GET /internal/fill HTTP/1.1\r\nx-orca-internal: 1\r\n\r\n"),
        ),
        (
            "seed-bad-head",
            text("GET /internal/fill HTTP/1.1\r\nbad header\r\n\r\n"),
        ),
        ("seed-partial", admitted[..admitted.len() / 2].to_vec()),
    ];
    // A head one byte past the limit: 431.
    let filler = format!("x-pad: {}\r\n", "a".repeat(MAX_HEAD));
    out.push(("seed-too-large", head("GET", &fill_target, &filler)));
    out
}
