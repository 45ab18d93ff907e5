//! `fill_response`: response classification, the body check and the bounded error body, on an
//! arbitrary status, `Content-Length`, expected length and sequence of data frames. Also the
//! request descriptor for an arbitrary peer and chunk.

use arbitrary::Arbitrary;
use orca_cluster_core::fill::{
    BodyCheck, FillCheckError, FillDescriptor, MAX_ERROR_BODY, ResponseVerdict, Scheme,
    classify_response,
};
use orca_cluster_core::wire::decode_query;
use orca_cluster_core::{ChunkKey, Peer, PeerAddr};

#[derive(Arbitrary, Debug)]
enum Frame {
    /// A frame of `len` bytes (only the length matters to the body check).
    Len(usize),
    /// A small frame.
    Small(u8),
    /// Literal bytes (for the error-body collector).
    Bytes(Vec<u8>),
}

impl Frame {
    fn len(&self) -> usize {
        match self {
            Frame::Len(n) => *n,
            Frame::Small(n) => usize::from(*n),
            Frame::Bytes(b) => b.len(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    status: u16,
    content_length: Option<u64>,
    expected: u64,
    /// Pick `expected` near the frames' total instead of arbitrary, to reach the boundary.
    expected_near_total: Option<i8>,
    frames: Vec<Frame>,
    descriptor: Option<DescriptorInput>,
}

#[derive(Arbitrary, Debug)]
struct DescriptorInput {
    peer: PeerAddr,
    is_self: bool,
    key: ChunkKey,
    object_size: u64,
    https: bool,
    listen_port: u16,
}

pub fn fill_response(data: &[u8]) {
    let Some(input) = crate::structured::<Input>(data) else {
        return;
    };
    let total: u64 = input
        .frames
        .iter()
        .fold(0u64, |acc, f| acc.saturating_add(f.len() as u64));
    let expected = match input.expected_near_total {
        Some(delta) => total.saturating_add_signed(i64::from(delta)),
        None => input.expected,
    };

    match classify_response(input.status, input.content_length, expected) {
        ResponseVerdict::Reject(FillCheckError::NotCoordinator) => assert_eq!(input.status, 409),
        ResponseVerdict::Reject(FillCheckError::LengthMismatch {
            declared,
            expected: e,
        }) => {
            assert!((200..=299).contains(&input.status));
            assert_eq!(Some(declared), input.content_length);
            assert_eq!(e, expected);
            assert_ne!(declared, expected);
        }
        ResponseVerdict::Reject(other) => panic!("unexpected head rejection {other:?}"),
        ResponseVerdict::Body(check) => {
            assert!((200..=299).contains(&input.status));
            assert!(input.content_length.is_none_or(|d| d == expected));
            body(check, expected, &input.frames);
        }
        ResponseVerdict::ErrorBody(mut collector) => {
            assert!(!(200..=299).contains(&input.status) && input.status != 409);
            assert_eq!(collector.code(), input.status);
            let mut kept: Vec<u8> = Vec::new();
            for frame in &input.frames {
                let before = collector.remaining();
                assert!(before <= MAX_ERROR_BODY);
                match frame {
                    Frame::Bytes(b) => {
                        collector.push(b);
                        let take = b.len().min(MAX_ERROR_BODY - kept.len());
                        kept.extend_from_slice(&b[..take]);
                    }
                    other => {
                        // A huge frame must not make the collector allocate it: push a bounded
                        // slice, like a driver reading at most `remaining()` bytes.
                        let n = other.len().min(before).min(4096);
                        let chunk = vec![0xa5u8; n];
                        collector.push(&chunk);
                        kept.extend_from_slice(&chunk);
                    }
                }
                assert_eq!(collector.remaining(), MAX_ERROR_BODY - kept.len());
                if collector.remaining() == 0 {
                    break;
                }
            }
            match collector.finish() {
                FillCheckError::Status { code, body } => {
                    assert_eq!(code, input.status);
                    assert!(
                        body.len() <= MAX_ERROR_BODY,
                        "error body of {} bytes",
                        body.len()
                    );
                    assert_eq!(body, kept);
                    let _ = FillCheckError::Status { code, body }.to_string();
                }
                other => panic!("error body finished as {other:?}"),
            }
        }
    }

    if let Some(d) = input.descriptor {
        descriptor(d);
    }
}

fn body(mut check: BodyCheck, expected: u64, frames: &[Frame]) {
    assert_eq!((check.expected(), check.received()), (expected, 0));
    // The model counts in u128, so it cannot saturate or wrap where the check must not.
    let expected_wide = u128::from(expected);
    let mut accepted: u128 = 0;
    let mut too_long = false;
    for frame in frames {
        let len = frame.len();
        match check.on_data(len) {
            Ok(()) => {
                accepted += len as u128;
                assert!(
                    accepted <= expected_wide,
                    "accepted {accepted} > expected {expected}"
                );
            }
            Err(FillCheckError::TooLong { expected: e }) => {
                assert_eq!(e, expected);
                assert!(
                    accepted + len as u128 > expected_wide,
                    "rejected a frame that fits"
                );
                too_long = true;
            }
            Err(other) => panic!("on_data returned {other:?}"),
        }
        // Never more than expected, and a rejected frame is not counted.
        assert_eq!(u128::from(check.received()), accepted);
        assert!(check.received() <= check.expected());
        assert_eq!(u128::from(check.remaining()), expected_wide - accepted);
        assert_eq!(check.is_complete(), accepted == expected_wide);
        if too_long {
            // A driver stops at the first error; feeding more must still never over-accept.
            // (The rejected frame did not fit, so no frame as large fits either.)
            assert!(check.on_data(usize::MAX).is_err());
            assert_eq!(u128::from(check.received()), accepted);
            break;
        }
    }
    match check.on_end() {
        Ok(()) => assert_eq!(accepted, expected_wide),
        Err(FillCheckError::Truncated { got, expected: e }) => {
            assert_eq!((got, e), (check.received(), expected));
            assert!(got < e);
        }
        Err(other) => panic!("on_end returned {other:?}"),
    }
}

fn descriptor(d: DescriptorInput) {
    let peer = Peer {
        ip: orca_cluster_core::peer::canonical_ip(d.peer.ip),
        port: d.peer.port,
        is_self: d.is_self,
    };
    let scheme = if d.https { Scheme::Https } else { Scheme::Http };
    match FillDescriptor::new(&peer, &d.key, d.object_size, scheme, d.listen_port) {
        Ok(desc) => {
            assert!(!peer.is_self);
            assert!(desc.port != 0);
            assert!(desc.expected_len > 0 && desc.expected_len <= d.key.chunk_size);
            assert_eq!(Ok(desc.expected_len), d.key.expected_len(d.object_size));
            let uri = desc.uri();
            assert!(uri.starts_with(scheme.as_str()));
            let query = desc
                .path_and_query
                .strip_prefix("/internal/fill?")
                .expect("fill path");
            // What the client sends, the listener decodes to the same chunk (the decoder also
            // requires a non-empty origin_id and key, which the descriptor does not check).
            if !d.key.origin_id.is_empty() && !d.key.object_key.is_empty() {
                let q = decode_query(query)
                    .unwrap_or_else(|e| panic!("descriptor query {query:?} rejected: {e}"));
                assert_eq!(q.key, d.key);
                assert_eq!(q.object_size, d.object_size);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
