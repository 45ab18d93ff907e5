//! A deterministic synthetic origin: the bytes of every object are a pure function of its
//! identity and the offset, so any replica (and any verifier) can produce or check them.

use bytes::Bytes;
use orca_cluster_core::ChunkKey;

use crate::filler::{ChunkStream, FillRequest, Filler, FillerError};

/// Size of the frames the synthetic stream yields: 256 KiB.
pub const FRAME_BYTES: usize = 256 * 1024;

/// A [`Filler`] that serves deterministic bytes.
///
/// Byte `o` of an object is byte `o % 8` (little-endian) of
/// `splitmix64(seed ^ (o / 8) * 0x9E3779B97F4A7C15)`, with
/// `seed = xxh3(LP(origin_id) || LP(bucket) || LP(object_key) || LP(etag))`. The chunk size and
/// index only select the range, so chunks of any size tile the same object bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyntheticOrigin;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SyntheticOrigin {
    /// The object seed of `key` (independent of chunk size and index).
    pub fn seed(key: &ChunkKey) -> u64 {
        let mut buf = Vec::new();
        for f in [&key.origin_id, &key.bucket, &key.object_key, &key.etag] {
            buf.extend_from_slice(&(f.len() as u64).to_le_bytes());
            buf.extend_from_slice(f.as_bytes());
        }
        xxhash_rust::xxh3::xxh3_64(&buf)
    }

    /// Fills `out` with the object bytes starting at object offset `offset`.
    ///
    /// Whole 8-byte words are stored directly (one `splitmix64` and one 8-byte store each); only
    /// an unaligned head and tail go through a partial copy.
    pub fn fill_bytes(seed: u64, offset: u64, out: &mut [u8]) {
        let word = |index: u64| splitmix64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut pos = offset;
        let mut rest: &mut [u8] = out;
        // Head: up to the next multiple of 8 in the object.
        let from = (pos % 8) as usize;
        if from != 0 {
            let bytes = word(pos / 8).to_le_bytes();
            let n = (8 - from).min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            head.copy_from_slice(&bytes[from..from + n]);
            rest = tail;
            pos += n as u64;
        }
        // Body: whole words.
        let mut index = pos / 8;
        let mut words = rest.chunks_exact_mut(8);
        for chunk in &mut words {
            chunk.copy_from_slice(&word(index).to_le_bytes());
            index = index.wrapping_add(1);
        }
        // Tail.
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let bytes = word(index).to_le_bytes();
            let n = tail.len();
            tail.copy_from_slice(&bytes[..n]);
        }
    }

    /// The whole chunk `key` of an object of `object_size` bytes (empty past the end).
    pub fn chunk_bytes(key: &ChunkKey, object_size: u64) -> Vec<u8> {
        let len = key.expected_len(object_size).unwrap_or(0);
        let offset = key.offset().unwrap_or(0);
        let mut out = vec![0u8; usize::try_from(len).unwrap_or(0)];
        Self::fill_bytes(Self::seed(key), offset, &mut out);
        out
    }

    /// A stream of the chunk's bytes in frames of [`FRAME_BYTES`].
    pub fn stream(key: &ChunkKey, object_size: u64) -> ChunkStream {
        let len = key.expected_len(object_size).unwrap_or(0);
        let start = key.offset().unwrap_or(0);
        let seed = Self::seed(key);
        let frames = len.div_ceil(FRAME_BYTES as u64);
        Box::pin(futures_lite::stream::iter((0..frames).map(move |f| {
            let at = f * FRAME_BYTES as u64;
            let n = (len - at).min(FRAME_BYTES as u64) as usize;
            let mut buf = vec![0u8; n];
            Self::fill_bytes(seed, start + at, &mut buf);
            Ok(Bytes::from(buf))
        })))
    }
}

impl Filler for SyntheticOrigin {
    async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
        Ok(Self::stream(&request.key, request.object_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{StreamExt, future::block_on};

    fn key(chunk_size: u64, index: u64) -> ChunkKey {
        ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size,
            index,
        }
    }

    /// Byte `o` is byte `o % 8` of the word `o / 8`, for every head, body and tail shape.
    #[test]
    fn fill_bytes_matches_the_definition_byte_by_byte() {
        let seed = 0x1234_5678_9abc_def0;
        for offset in 0..20u64 {
            for len in 0..40usize {
                let mut out = vec![0u8; len];
                SyntheticOrigin::fill_bytes(seed, offset, &mut out);
                for (i, b) in out.iter().enumerate() {
                    let o = offset + i as u64;
                    let word = splitmix64(seed ^ (o / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    assert_eq!(*b, word.to_le_bytes()[(o % 8) as usize], "{offset}+{i}");
                }
            }
        }
    }

    #[test]
    fn chunks_tile_the_object_whatever_the_chunk_size() {
        let object = SyntheticOrigin::chunk_bytes(&key(1000, 0), 1000);
        let mut tiled = Vec::new();
        for i in 0..4 {
            tiled.extend(SyntheticOrigin::chunk_bytes(&key(300, i), 1000));
        }
        assert_eq!(object, tiled);
        assert_eq!(SyntheticOrigin::chunk_bytes(&key(300, 3), 1000).len(), 100);
    }

    #[test]
    fn stream_matches_chunk_bytes() {
        let k = key(FRAME_BYTES as u64 * 2 + 5, 1);
        let size = k.chunk_size * 3;
        let frames: Vec<Bytes> = block_on(
            SyntheticOrigin::stream(&k, size)
                .map(|r| r.unwrap())
                .collect(),
        );
        assert_eq!(frames.len(), 3);
        assert_eq!(frames.concat(), SyntheticOrigin::chunk_bytes(&k, size));
        let mut other = k.clone();
        other.etag = "f".into();
        assert_ne!(SyntheticOrigin::chunk_bytes(&other, size), frames.concat());
    }
}
