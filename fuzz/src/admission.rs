//! `admission`: the listener's admission checks on an arbitrary request head and snapshot.

use arbitrary::Arbitrary;
use orca_cluster_core::admission::{FillRequestHead, Rejection, admit};
use orca_cluster_core::wire::{FILL_PATH, FillQuery, decode_query, encode_query};
use orca_cluster_core::{PeerAddr, Scoring, SelfIdentity, Snapshot};

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Path {
    Fill,
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Query {
    None,
    /// A well-formed query for an arbitrary chunk (reaches the coordinator check).
    Encoded(FillQuery),
    /// A well-formed query with arbitrary text appended.
    EncodedPlus(FillQuery, String),
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Header {
    Absent,
    One,
    OnePadded,
    Any(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    path: Path,
    query: Query,
    header: Header,
    me: PeerAddr,
    peers: Vec<PeerAddr>,
    scoring: Scoring,
}

pub fn admission(data: &[u8]) {
    let Some(mut input) = crate::structured::<Input>(data) else {
        return;
    };
    input.peers.truncate(32);
    let method = match &input.method {
        Method::Get => "GET".to_string(),
        Method::Post => "POST".to_string(),
        Method::Any(s) => s.clone(),
    };
    let path = match &input.path {
        Path::Fill => FILL_PATH.to_string(),
        Path::Any(s) => s.clone(),
    };
    let query: Option<String> = match &input.query {
        Query::None => None,
        Query::Encoded(q) => Some(encode_query(&q.key, q.object_size)),
        Query::EncodedPlus(q, extra) => {
            Some(format!("{}{extra}", encode_query(&q.key, q.object_size)))
        }
        Query::Any(s) => Some(s.clone()),
    };
    let header: Option<Vec<u8>> = match &input.header {
        Header::Absent => None,
        Header::One => Some(b"1".to_vec()),
        Header::OnePadded => Some(b" 1\t".to_vec()),
        Header::Any(b) => Some(b.clone()),
    };
    let id = SelfIdentity::new([input.me.ip], input.me.port).expect("one ip");
    let snapshot = Snapshot::new(&id, input.peers.iter().copied(), input.scoring, 1);
    let head = FillRequestHead {
        method: &method,
        path: &path,
        query: query.as_deref(),
        internal_header: header.as_deref(),
    };

    let verdict = admit(&head, &snapshot);

    // The checks run in the documented order; model it and compare.
    let internal = header.as_deref().map(<[u8]>::trim_ascii) == Some(&b"1"[..]);
    let decoded = decode_query(query.as_deref().unwrap_or(""));
    let expected: Result<(), Rejection> = if path != FILL_PATH {
        Err(Rejection::NotFound)
    } else if method != "GET" {
        Err(Rejection::MethodNotAllowed)
    } else if !internal {
        Err(Rejection::NotInternal)
    } else {
        match &decoded {
            Err(e) => Err(Rejection::BadQuery(e.clone())),
            Ok(q) if !snapshot.is_coordinator(&q.key) => Err(Rejection::NotCoordinator),
            Ok(_) => Ok(()),
        }
    };
    match verdict {
        Ok(admitted) => {
            assert_eq!(expected, Ok(()), "admitted {admitted:?}");
            // An Ok means: the query decodes (to this), and self coordinates the chunk.
            let q = decoded.expect("admitted query decodes");
            assert_eq!(admitted.query, q);
            assert!(snapshot.is_coordinator(&q.key));
            assert!(snapshot.coordinator(&q.key).is_self);
            assert_eq!(Ok(admitted.expected_len), q.expected_len());
            assert!(admitted.expected_len > 0);
        }
        Err(rejection) => {
            assert_eq!(Err(rejection.clone()), expected);
            let status = rejection.status();
            assert!(matches!(status, 400 | 404 | 405 | 409), "status {status}");
            assert!(!rejection.body().is_empty());
            assert_eq!(rejection.allow().is_some(), status == 405);
            let _ = rejection.to_string();
            let _ = rejection.content_type();
        }
    }
}
