//! `decode_query`: the listener's query decoder on arbitrary text.

use std::borrow::Cow;

use orca_cluster_core::wire::{self, DecodeError, Param};

/// Bytes as UTF-8 text (lossily when invalid) through `wire::decode_query`. A decoded query
/// re-encodes to a string that decodes to the same query, and the encoding is canonical.
pub fn decode_query(data: &[u8]) {
    let text: Cow<'_, str> = String::from_utf8_lossy(data);
    match wire::decode_query(&text) {
        Ok(q) => {
            assert!(!q.key.origin_id.is_empty(), "empty origin_id accepted");
            assert!(!q.key.object_key.is_empty(), "empty key accepted");
            assert!(
                q.key.chunk_size > 0 && q.object_size > 0,
                "zero size accepted"
            );
            let len = q.expected_len().expect("a decoded chunk has a valid range");
            assert!(
                len > 0 && len <= q.key.chunk_size,
                "expected_len {len} out of range"
            );
            let encoded = wire::encode_query(&q.key, q.object_size);
            let again = wire::decode_query(&encoded)
                .unwrap_or_else(|e| panic!("re-encoded query {encoded:?} does not decode: {e}"));
            assert_eq!(again, q, "round trip through {encoded:?}");
            assert_eq!(
                wire::encode_query(&again.key, again.object_size),
                encoded,
                "encoding is not canonical"
            );
            // Seven parameters, in wire order, and nothing else.
            let names: Vec<&str> = encoded
                .split('&')
                .map(|kv| kv.split('=').next().unwrap_or(""))
                .collect();
            let want: Vec<&str> = Param::ALL.iter().map(|p| p.name()).collect();
            assert_eq!(names, want);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(e.param().name()),
                "error {msg:?} does not name its parameter {}",
                e.param()
            );
            if let DecodeError::IndexPastEnd {
                index,
                chunk_size,
                object_size,
            } = e
            {
                let start = index.checked_mul(chunk_size).expect("no overflow here");
                assert!(start >= object_size);
            }
        }
    }
}
