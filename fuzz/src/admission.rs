//! `admission`: the listener's admission checks on an arbitrary request head and snapshot.

use arbitrary::Arbitrary;
use orca_cluster_core::admission::{DEFAULT_MAX_CHUNK_SIZE, FillRequestHead, Rejection, admit};
use orca_cluster_core::wire::{DecodeError, FILL_PATH, FillQuery, decode_query, encode_query};
use orca_cluster_core::{PeerAddr, Scoring, SelfIdentity, Snapshot};

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Any(String),
}

/// The path part of the request target.
#[derive(Arbitrary, Debug)]
enum Path {
    Fill,
    /// Paths that a normalising or decoding server would take for `/internal/fill`.
    Lookalike(u8),
    Any(String),
}

const LOOKALIKES: &[&str] = &[
    "/internal/../internal/fill",
    "/internal/./fill",
    "//internal/fill",
    "/internal/fill/",
    "/internal%2Ffill",
    "/internal/fil%6c",
    "/INTERNAL/fill",
];

/// How the target is written around the path.
#[derive(Arbitrary, Debug)]
enum Form {
    /// `path[?query]`, as sent to a server by path.
    Origin,
    /// `http://authority` + origin-form.
    Absolute(String),
    /// `*`.
    Asterisk,
    /// An authority alone (`host:port`).
    Authority(String),
    /// An arbitrary target.
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

/// One value of the `x-orca-internal` header.
#[derive(Arbitrary, Debug)]
enum Header {
    One,
    OnePadded,
    List,
    Any(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    form: Form,
    path: Path,
    query: Query,
    headers: Vec<Header>,
    me: PeerAddr,
    peers: Vec<PeerAddr>,
    scoring: Scoring,
    /// The listener's maximum chunk size: `None` for the default.
    max_chunk_size: Option<u64>,
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
        Path::Lookalike(i) => LOOKALIKES[usize::from(*i) % LOOKALIKES.len()].to_string(),
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
    let origin = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let target = match &input.form {
        Form::Origin => origin.clone(),
        Form::Absolute(authority) => format!("http://{authority}{origin}"),
        Form::Asterisk => "*".to_string(),
        Form::Authority(authority) => authority.clone(),
        Form::Any(s) => s.clone(),
    };
    input.headers.truncate(8);
    let values: Vec<Vec<u8>> = input
        .headers
        .iter()
        .map(|h| match h {
            Header::One => b"1".to_vec(),
            Header::OnePadded => b" 1\t".to_vec(),
            Header::List => b"1, 1".to_vec(),
            Header::Any(b) => b.clone(),
        })
        .collect();
    let header: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let id = SelfIdentity::new([input.me.ip], input.me.port).expect("one ip");
    let snapshot = Snapshot::new(&id, input.peers.iter().copied(), input.scoring, 1);
    let head = FillRequestHead {
        method: &method,
        target: &target,
        internal_header: &header,
    };

    let max_chunk_size = input.max_chunk_size.unwrap_or(DEFAULT_MAX_CHUNK_SIZE);
    let verdict = admit(&head, &snapshot, max_chunk_size);

    // The checks run in the documented order; model it and compare. The model splits the
    // target independently of the code under test.
    // Origin-form as is; absolute-form http(s)://authority... from the first '/' or '?' after a
    // non-empty authority; anything else is a bad target.
    let lower = target.to_ascii_lowercase();
    let model_origin: Option<&str> = if target.starts_with('/') {
        Some(target.as_str())
    } else if let Some(after) = ["http://", "https://"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| &target[p.len()..])
    {
        let end = after
            .char_indices()
            .find(|(_, c)| *c == '/' || *c == '?')
            .map_or(after.len(), |(i, _)| i);
        (end > 0).then(|| &after[end..])
    } else {
        None
    };
    let origin_form = model_origin.is_some();
    let origin_part = model_origin.unwrap_or("");
    let (target_path, target_query) = match origin_part.find('?') {
        Some(i) => (&origin_part[..i], &origin_part[i + 1..]),
        None => (origin_part, ""),
    };
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let internal = header.len() == 1 && {
        let v = header[0];
        let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
        let end = v.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
        &v[start..end] == b"1"
    };
    let decoded = decode_query(target_query);
    let expected: Result<(), Rejection> = if !origin_form {
        Err(Rejection::BadTarget)
    } else if target_path != FILL_PATH {
        Err(Rejection::NotFound)
    } else if method != "GET" {
        Err(Rejection::MethodNotAllowed)
    } else if header.len() > 1 {
        Err(Rejection::RepeatedInternalHeader)
    } else if !internal {
        Err(Rejection::NotInternal)
    } else {
        match &decoded {
            Err(e) => Err(Rejection::BadQuery(e.clone())),
            Ok(q) if q.key.chunk_size > max_chunk_size => {
                Err(Rejection::BadQuery(DecodeError::ChunkSizeTooLarge {
                    chunk_size: q.key.chunk_size,
                    max: max_chunk_size,
                }))
            }
            Ok(q) if !snapshot.is_coordinator(&q.key) => Err(Rejection::NotCoordinator),
            Ok(_) => Ok(()),
        }
    };
    // A look-alike path sent by path is never the fill path (no decoding, no normalisation).
    if matches!(input.path, Path::Lookalike(_)) && matches!(input.form, Form::Origin) {
        assert_eq!(expected, Err(Rejection::NotFound));
    }
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
            assert!(q.key.chunk_size <= max_chunk_size);
        }
        Err(rejection) => {
            assert_eq!(Err(rejection.clone()), expected);
            let status = rejection.status();
            assert!(matches!(status, 400 | 404 | 405 | 409), "status {status}");
            assert!(!rejection.body().is_empty());
            match rejection {
                Rejection::BadTarget => assert!(rejection.body().contains("request target")),
                Rejection::BadQuery(DecodeError::ChunkSizeTooLarge { .. }) => {
                    assert!(rejection.body().contains("chunk_size"));
                }
                Rejection::NotInternal | Rejection::RepeatedInternalHeader => {
                    assert!(rejection.body().contains("x-orca-internal"));
                }
                _ => {}
            }
            assert_eq!(rejection.allow().is_some(), status == 405);
            let _ = rejection.to_string();
            let _ = rejection.content_type();
        }
    }
}
