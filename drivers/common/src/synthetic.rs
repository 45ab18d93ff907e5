//! A deterministic synthetic origin: the bytes of every object are a pure function of its
//! identity and the offset, so any replica (and any verifier) can produce or check them.

use orca_cluster_core::ChunkKey;

use crate::filler::{ChunkStream, FillRequest, Filler, FillerError};
use crate::frame_pool::FramePool;

/// Size of the frames the synthetic stream yields: 256 KiB.
pub const FRAME_BYTES: usize = 256 * 1024;

/// Most idle frame buffers the synthetic origin keeps for reuse: 256 (64 MiB, one chunk of the
/// default largest chunk size, which a coalesced fill holds until it ends).
pub const POOL_IDLE: usize = 256;

fn frame_pool() -> &'static FramePool {
    static POOL: std::sync::OnceLock<FramePool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| FramePool::new(FRAME_BYTES, POOL_IDLE))
}

/// Words (of 8 bytes) in one block of the pattern: 512, i.e. 4 KiB.
pub const BLOCK_WORDS: usize = 512;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// Keeps the per-block words apart from the table's words (both derive from the seed).
const BLOCK_SALT: u64 = 0xD1B5_4A32_D192_ED03;

/// A [`Filler`] that serves deterministic bytes.
///
/// The object is a sequence of little-endian 64-bit words; word `w` is
/// `table[w % 512] ^ splitmix64(seed ^ BLOCK_SALT ^ (w / 512) * GOLDEN)`, where
/// `table[i] = splitmix64(seed ^ i * GOLDEN)`,
/// `seed = xxh3(LP(origin_id) || LP(bucket) || LP(object_key) || LP(etag))`,
/// `GOLDEN = 0x9E3779B97F4A7C15` and `BLOCK_SALT = 0xD1B54A32D192ED03`. Byte `o` of the object is
/// byte `o % 8` of word `o / 8`. Every 4 KiB block is thus the seed's table XORed with a word of
/// its own, so a shifted, reordered or foreign block does not verify, and making the bytes costs
/// little more than copying them (the XOR vectorises; a 256 KiB frame at 0.69 of a copy's speed,
/// `benches/frames.rs`) rather than one hash per 8 bytes. The chunk
/// size and index only select the range, so chunks of any size tile the same object bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyntheticOrigin;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The pattern of one object: its seed's 4 KiB table, computed once and reused for every frame.
#[derive(Clone, Debug)]
pub struct SyntheticPattern {
    seed: u64,
    table: Box<[u64; BLOCK_WORDS]>,
}

impl SyntheticPattern {
    /// The pattern of the object with seed `seed` (see [`SyntheticOrigin::seed`]).
    pub fn new(seed: u64) -> Self {
        let mut table = Box::new([0u64; BLOCK_WORDS]);
        for (i, t) in table.iter_mut().enumerate() {
            *t = splitmix64(seed ^ (i as u64).wrapping_mul(GOLDEN));
        }
        Self { seed, table }
    }

    fn block_word(&self, block: u64) -> u64 {
        splitmix64(self.seed ^ BLOCK_SALT ^ block.wrapping_mul(GOLDEN))
    }

    /// Word `index` of the object.
    pub fn word(&self, index: u64) -> u64 {
        self.table[(index % BLOCK_WORDS as u64) as usize]
            ^ self.block_word(index / BLOCK_WORDS as u64)
    }

    /// Fills `out` with the object bytes starting at object offset `offset`.
    ///
    /// Whole words are written a block segment at a time (the table XORed with the block's word,
    /// which the compiler vectorises); only an unaligned head and tail go through a partial copy.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let mut pos = offset;
        let mut rest: &mut [u8] = out;
        // Head: up to the next multiple of 8 in the object.
        let from = (pos % 8) as usize;
        if from != 0 {
            let bytes = self.word(pos / 8).to_le_bytes();
            let n = (8 - from).min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            head.copy_from_slice(&bytes[from..from + n]);
            rest = tail;
            pos += n as u64;
        }
        // Body: whole words, one block segment at a time.
        let mut index = pos / 8;
        while rest.len() >= 8 {
            let within = (index % BLOCK_WORDS as u64) as usize;
            let words = (BLOCK_WORDS - within).min(rest.len() / 8);
            let mix = self.block_word(index / BLOCK_WORDS as u64);
            let (segment, tail) = rest.split_at_mut(words * 8);
            for (chunk, t) in segment
                .chunks_exact_mut(8)
                .zip(&self.table[within..within + words])
            {
                chunk.copy_from_slice(&(t ^ mix).to_le_bytes());
            }
            rest = tail;
            index = index.wrapping_add(words as u64);
        }
        // Tail.
        if !rest.is_empty() {
            let bytes = self.word(index).to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&bytes[..n]);
        }
    }
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
    /// Builds the seed's [`SyntheticPattern`] (512 hashes) each call; to make many frames of one
    /// object, build the pattern once and call [`SyntheticPattern::fill`].
    pub fn fill_bytes(seed: u64, offset: u64, out: &mut [u8]) {
        SyntheticPattern::new(seed).fill(offset, out);
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
    ///
    /// The frames' buffers come from a process-wide [`FramePool`] (at most [`POOL_IDLE`] idle
    /// buffers), so a replica serving synthetic chunks writes each frame over a dropped one
    /// rather than faulting in and zeroing fresh memory.
    pub fn stream(key: &ChunkKey, object_size: u64) -> ChunkStream {
        let len = key.expected_len(object_size).unwrap_or(0);
        let start = key.offset().unwrap_or(0);
        let pattern = SyntheticPattern::new(Self::seed(key));
        let frames = len.div_ceil(FRAME_BYTES as u64);
        Box::pin(futures_lite::stream::iter((0..frames).map(move |f| {
            let at = f * FRAME_BYTES as u64;
            let n = (len - at).min(FRAME_BYTES as u64) as usize;
            frame_pool().frame(n, |buf| {
                pattern.fill(start + at, buf);
                Ok(())
            })
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
    use bytes::Bytes;
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

    /// Byte `o` is byte `o % 8` of the word `o / 8`, for every head, body and tail shape, across
    /// block boundaries.
    #[test]
    fn fill_bytes_matches_the_definition_byte_by_byte() {
        let seed = 0x1234_5678_9abc_def0;
        // Offsets and lengths around the first block boundaries (4 KiB, 8 KiB).
        let offsets = (0..20u64).chain(4070..4110).chain(8180..8200);
        for offset in offsets {
            for len in (0..40usize).chain([4095, 4096, 4097, 8200, 12_300]) {
                let mut out = vec![0u8; len];
                SyntheticOrigin::fill_bytes(seed, offset, &mut out);
                for (i, b) in out.iter().enumerate() {
                    let o = offset + i as u64;
                    let w = o / 8;
                    let word = splitmix64(seed ^ (w % 512).wrapping_mul(GOLDEN))
                        ^ splitmix64(seed ^ BLOCK_SALT ^ (w / 512).wrapping_mul(GOLDEN));
                    assert_eq!(*b, word.to_le_bytes()[(o % 8) as usize], "{offset}+{i}");
                }
            }
        }
    }

    /// Every 4 KiB block has a word of its own: no block repeats another, and no two objects
    /// share a block.
    #[test]
    fn blocks_do_not_repeat_within_or_across_objects() {
        let block = BLOCK_WORDS * 8;
        let object = SyntheticOrigin::chunk_bytes(&key(64 * 4096, 0), 64 * 4096);
        let mut other_key = key(64 * 4096, 0);
        other_key.object_key = "l".into();
        let other = SyntheticOrigin::chunk_bytes(&other_key, 64 * 4096);
        let mut seen = std::collections::HashSet::new();
        for b in object.chunks(block).chain(other.chunks(block)) {
            assert!(seen.insert(b.to_vec()), "a 4 KiB block repeats");
        }
        assert_eq!(seen.len(), 128);
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
