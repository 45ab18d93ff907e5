//! [`BytesFiller`]: serves one pre-generated buffer, so the origin is never the bottleneck of a
//! benchmark (both drivers' `bench` modules use it).

use std::io;

use crate::filler::{ChunkStream, FillRequest, Filler, FillerError};
use bytes::Bytes;

/// A [`Filler`] that answers every request with (a prefix of) the same shared buffer, sliced
/// into frames of `frame_bytes` without copying. A request longer than the buffer fails.
#[derive(Clone, Debug)]
pub struct BytesFiller {
    data: Bytes,
    frame_bytes: usize,
}

impl BytesFiller {
    /// Serves `data` in frames of `frame_bytes` (at least 1).
    pub fn new(data: Bytes, frame_bytes: usize) -> BytesFiller {
        BytesFiller {
            data,
            frame_bytes: frame_bytes.max(1),
        }
    }
}

impl Filler for BytesFiller {
    async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
        let data = self.data.clone();
        let frame = self.frame_bytes;
        let len = usize::try_from(request.expected_len)
            .ok()
            .filter(|&n| n <= data.len())
            .ok_or_else(|| FillerError::from("chunk larger than the benchmark buffer"))?;
        let frames = (0..len)
            .step_by(frame)
            .map(move |at| Ok::<Bytes, io::Error>(data.slice(at..(at + frame).min(len))));
        Ok(Box::pin(futures_lite::stream::iter(frames)) as ChunkStream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{StreamExt, future::block_on};
    use orca_cluster_core::ChunkKey;

    fn request(expected_len: u64) -> FillRequest {
        FillRequest {
            key: ChunkKey {
                origin_id: "o".into(),
                object_key: "k".into(),
                chunk_size: expected_len.max(1),
                ..ChunkKey::default()
            },
            object_size: expected_len.max(1),
            expected_len,
        }
    }

    #[test]
    fn serves_a_prefix_in_frames_and_refuses_longer_chunks() {
        let data = Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<u8>>());
        let filler = BytesFiller::new(data.clone(), 4096);
        let stream = block_on(filler.fill(request(9000))).unwrap();
        let frames: Vec<Bytes> = block_on(stream.map(|f| f.unwrap()).collect());
        assert_eq!(
            frames.iter().map(Bytes::len).collect::<Vec<_>>(),
            [4096, 4096, 808]
        );
        assert_eq!(frames.concat(), data[..9000]);
        assert!(block_on(filler.fill(request(10_001))).is_err());
    }
}
