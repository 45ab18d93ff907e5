//! [`BytesFiller`]: serves one pre-generated buffer, so the origin is never the bottleneck.

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use orca_cluster_driver_common::{ChunkStream, FillRequest, Filler, FillerError};

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
    fn fill(
        &self,
        request: FillRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ChunkStream, FillerError>> + Send + 'static>> {
        let data = self.data.clone();
        let frame = self.frame_bytes;
        Box::pin(async move {
            let len = usize::try_from(request.expected_len)
                .ok()
                .filter(|&n| n <= data.len())
                .ok_or_else(|| FillerError::from("chunk larger than the benchmark buffer"))?;
            let frames = (0..len)
                .step_by(frame)
                .map(move |at| Ok::<Bytes, io::Error>(data.slice(at..(at + frame).min(len))));
            Ok(Box::pin(futures_util::stream::iter(frames)) as ChunkStream)
        })
    }
}
