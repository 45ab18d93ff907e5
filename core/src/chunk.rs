//! Chunk keys: which bytes of which object a cache chunk holds.

use alloc::string::String;
use core::fmt;

/// Default largest `chunk_size` a replica asks for or serves: 64 MiB (see
/// [`crate::ClusterConfig::max_chunk_size`]).
pub const DEFAULT_MAX_CHUNK_SIZE: u64 = 64 << 20;

/// Identifies one chunk of one version of one object.
///
/// The chunk covers bytes `index * chunk_size .. min((index + 1) * chunk_size, object_size)` of
/// the object. Every field takes part in coordinator selection, so two replicas agree on the
/// coordinator of a chunk only if they build byte-identical keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ChunkKey {
    /// Which origin (object store account/region) the object comes from; never empty on the wire.
    pub origin_id: String,
    /// Bucket or container name; may be empty.
    pub bucket: String,
    /// Object key within the bucket; never empty on the wire.
    pub object_key: String,
    /// ETag (or other version identifier) of the object; may be empty.
    pub etag: String,
    /// Chunk size in bytes; must be greater than zero.
    pub chunk_size: u64,
    /// Zero-based chunk index within the object.
    pub index: u64,
}

/// Why a chunk's byte range could not be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// `chunk_size` is zero.
    ZeroChunkSize,
    /// `index * chunk_size` does not fit in 64 bits.
    OffsetOverflow {
        /// The chunk index.
        index: u64,
        /// The chunk size in bytes.
        chunk_size: u64,
    },
    /// `chunk_size` is above the configured maximum ([`DEFAULT_MAX_CHUNK_SIZE`] by default).
    ChunkSizeTooLarge {
        /// The chunk size in bytes.
        chunk_size: u64,
        /// The maximum in bytes.
        max: u64,
    },
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::ZeroChunkSize => f.write_str("chunk_size: must be greater than zero"),
            ChunkError::OffsetOverflow { index, chunk_size } => write!(
                f,
                "index: chunk {index} of size {chunk_size} starts past 2^64 bytes"
            ),
            ChunkError::ChunkSizeTooLarge { chunk_size, max } => write!(
                f,
                "chunk_size: {chunk_size} bytes is above the maximum of {max} bytes"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ChunkError {}

impl ChunkKey {
    /// Byte offset of the first byte of this chunk within the object.
    ///
    /// Errors when `chunk_size` is zero or `index * chunk_size` overflows; never wraps or panics.
    pub fn offset(&self) -> Result<u64, ChunkError> {
        if self.chunk_size == 0 {
            return Err(ChunkError::ZeroChunkSize);
        }
        self.index
            .checked_mul(self.chunk_size)
            .ok_or(ChunkError::OffsetOverflow {
                index: self.index,
                chunk_size: self.chunk_size,
            })
    }

    /// Checks `chunk_size` against the maximum `max` (bytes): errors with
    /// [`ChunkError::ChunkSizeTooLarge`] above it (exactly `max` is allowed).
    pub fn check_chunk_size(&self, max: u64) -> Result<(), ChunkError> {
        if self.chunk_size > max {
            return Err(ChunkError::ChunkSizeTooLarge {
                chunk_size: self.chunk_size,
                max,
            });
        }
        Ok(())
    }

    /// Length in bytes of this chunk for an object of `object_size` bytes.
    ///
    /// `chunk_size` for inner chunks, the remainder for the tail chunk, and 0 when the chunk
    /// starts at or past the end of the object.
    pub fn expected_len(&self, object_size: u64) -> Result<u64, ChunkError> {
        let start = self.offset()?;
        Ok(object_size.saturating_sub(start).min(self.chunk_size))
    }

    /// Number of chunks of `chunk_size` bytes in an object of `object_size` bytes
    /// (0 for an empty object or a zero chunk size).
    pub fn chunk_count(object_size: u64, chunk_size: u64) -> u64 {
        if chunk_size == 0 {
            return 0;
        }
        object_size.div_ceil(chunk_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn expected_len_inner_tail_and_past_end() {
        assert_eq!(key(10, 0).expected_len(25), Ok(10));
        assert_eq!(key(10, 1).expected_len(25), Ok(10));
        assert_eq!(key(10, 2).expected_len(25), Ok(5));
        assert_eq!(key(10, 3).expected_len(25), Ok(0));
        assert_eq!(key(10, 2).expected_len(20), Ok(0));
        assert_eq!(key(10, 0).expected_len(0), Ok(0));
    }

    #[test]
    fn expected_len_rejects_overflow_and_zero_size() {
        assert_eq!(
            key(u64::MAX, 2).expected_len(u64::MAX),
            Err(ChunkError::OffsetOverflow {
                index: 2,
                chunk_size: u64::MAX
            })
        );
        assert_eq!(key(0, 0).expected_len(1), Err(ChunkError::ZeroChunkSize));
        assert_eq!(key(u64::MAX, 1).expected_len(u64::MAX), Ok(0));
    }

    #[test]
    fn chunk_size_limit_is_inclusive_and_named() {
        assert_eq!(
            key(DEFAULT_MAX_CHUNK_SIZE, 0).check_chunk_size(DEFAULT_MAX_CHUNK_SIZE),
            Ok(())
        );
        let e = key(DEFAULT_MAX_CHUNK_SIZE + 1, 0)
            .check_chunk_size(DEFAULT_MAX_CHUNK_SIZE)
            .unwrap_err();
        assert_eq!(
            e,
            ChunkError::ChunkSizeTooLarge {
                chunk_size: DEFAULT_MAX_CHUNK_SIZE + 1,
                max: DEFAULT_MAX_CHUNK_SIZE
            }
        );
        assert!(alloc::format!("{e}").starts_with("chunk_size:"));
        assert!(key(u64::MAX, 0).check_chunk_size(u64::MAX).is_ok());
    }

    #[test]
    fn chunk_count_rounds_up() {
        assert_eq!(ChunkKey::chunk_count(25, 10), 3);
        assert_eq!(ChunkKey::chunk_count(20, 10), 2);
        assert_eq!(ChunkKey::chunk_count(0, 10), 0);
        assert_eq!(ChunkKey::chunk_count(5, 0), 0);
        assert_eq!(ChunkKey::chunk_count(u64::MAX, 1), u64::MAX);
    }
}
