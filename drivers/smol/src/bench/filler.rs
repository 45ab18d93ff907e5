//! [`BytesFiller`]: a filler serving slices of one pre-generated buffer, and [`payload`].

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use orca_cluster_driver_common::{ChunkStream, FillRequest, Filler, FillerError};

use super::FRAME;

/// A [`Filler`] serving the first `expected_len` bytes of one pre-generated buffer, in
/// [`FRAME`]-sized slices, for any chunk. Requests longer than the buffer fail (502).
#[derive(Clone, Debug)]
pub struct BytesFiller {
    data: Bytes,
}

impl BytesFiller {
    /// Serves slices of `data`.
    pub fn new(data: Bytes) -> BytesFiller {
        BytesFiller { data }
    }
}

impl Filler for BytesFiller {
    fn fill(
        &self,
        request: FillRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ChunkStream, FillerError>> + Send + 'static>> {
        let data = self.data.clone();
        Box::pin(async move {
            let len = usize::try_from(request.expected_len)?;
            if len > data.len() {
                return Err("chunk larger than the benchmark buffer".into());
            }
            let data = data.slice(..len);
            let frames = (0..len.div_ceil(FRAME))
                .map(move |i| Ok(data.slice(i * FRAME..((i + 1) * FRAME).min(len))));
            Ok(Box::pin(futures_lite::stream::iter(frames)) as ChunkStream)
        })
    }
}

/// Pseudo-random bytes (xorshift), so no layer can compress or special-case them.
pub fn payload(len: usize) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}
