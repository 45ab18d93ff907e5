//! The application's side of the fill listener: produce the bytes of a chunk.

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use orca_cluster_core::ChunkKey;

/// The body of a chunk as the filler produces it.
pub type ChunkStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// An error from the application's filler; the listener answers 502 `fill failed`.
pub type FillerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An admitted fill request, handed to the [`Filler`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillRequest {
    /// The chunk.
    pub key: ChunkKey,
    /// The authoritative size of the whole object in bytes.
    pub object_size: u64,
    /// Exactly how many bytes the stream must yield (> 0).
    pub expected_len: u64,
}

/// Produces chunk bytes for the fill listener (typically: read from the local cache, or fetch
/// from the origin once and stream while caching).
///
/// The stream must yield exactly `expected_len` bytes; the listener checks, and aborts the
/// response (never completes it) when the stream ends early, runs long or yields an error.
/// Closures `Fn(FillRequest) -> impl Future<Output = Result<ChunkStream, FillerError>>`
/// implement this trait.
pub trait Filler: Send + Sync + 'static {
    /// Starts producing the chunk of `request`.
    fn fill(
        &self,
        request: FillRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ChunkStream, FillerError>> + Send + 'static>>;
}

impl<F, Fut> Filler for F
where
    F: Fn(FillRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ChunkStream, FillerError>> + Send + 'static,
{
    fn fill(
        &self,
        request: FillRequest,
    ) -> Pin<Box<dyn Future<Output = Result<ChunkStream, FillerError>> + Send + 'static>> {
        Box::pin(self(request))
    }
}
