//! The application's side of the fill listener: produce the bytes of a chunk.

use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_core::Stream;
use orca_cluster_core::ChunkKey;

/// The body of a chunk as the filler produces it; [`crate::chunk_stream`] makes one from
/// `Bytes` or from an `AsyncRead`, and [`crate::DirOrigin`] serves files.
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
///
/// The future may borrow the filler (`async fn fill(&self, ..)` works); it must be `Send`. The
/// stream it produces must not borrow anything (`'static`): it outlives the call.
///
/// # Implementing it with `async fn`
///
/// ```
/// use orca_cluster_driver_common::{ChunkStream, FillRequest, Filler, FillerError, chunk_stream};
///
/// /// Serves every chunk from one buffer (offset by the chunk's position in the object).
/// struct InMemory {
///     object: bytes::Bytes,
/// }
///
/// impl Filler for InMemory {
///     async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
///         let start = usize::try_from(request.key.offset()?)?;
///         let len = usize::try_from(request.expected_len)?;
///         let range = self.object.get(start..start + len).ok_or("chunk past the object")?;
///         Ok(chunk_stream::from_bytes(self.object.slice_ref(range)))
///     }
/// }
///
/// # futures_lite::future::block_on(async {
/// let filler = InMemory { object: bytes::Bytes::from_static(b"0123456789") };
/// let request = FillRequest {
///     key: orca_cluster_driver_common::core::ChunkKey {
///         origin_id: "o".into(),
///         object_key: "k".into(),
///         chunk_size: 4,
///         index: 2,
///         ..Default::default()
///     },
///     object_size: 10,
///     expected_len: 2,
/// };
/// let stream = filler.fill(request).await.unwrap();
/// let frames: Vec<_> = futures_lite::StreamExt::collect::<Vec<_>>(stream).await;
/// assert_eq!(frames.len(), 1);
/// assert_eq!(frames[0].as_ref().unwrap().as_ref(), b"89");
/// # });
/// ```
///
/// # A closure
///
/// Closures `Fn(FillRequest) -> impl Future<Output = Result<ChunkStream, FillerError>> + Send`
/// implement this trait:
///
/// ```
/// use orca_cluster_driver_common::{ChunkStream, FillRequest, Filler, FillerError, SyntheticOrigin};
///
/// fn serve(_filler: impl Filler) {}
///
/// serve(|request: FillRequest| async move {
///     Ok::<ChunkStream, FillerError>(SyntheticOrigin::stream(&request.key, request.object_size))
/// });
/// ```
///
/// The trait is not object-safe (its method returns `impl Future`); the listener stores fillers
/// behind a crate-internal object-safe twin, so `impl Filler` is all an API asks for.
pub trait Filler: Send + Sync + 'static {
    /// Starts producing the chunk of `request`: resolves with the chunk's stream, or an error
    /// (the listener answers 502).
    fn fill(
        &self,
        request: FillRequest,
    ) -> impl Future<Output = Result<ChunkStream, FillerError>> + Send;
}

impl<F, Fut> Filler for F
where
    F: Fn(FillRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ChunkStream, FillerError>> + Send,
{
    fn fill(
        &self,
        request: FillRequest,
    ) -> impl Future<Output = Result<ChunkStream, FillerError>> + Send {
        self(request)
    }
}

/// The future of [`DynFiller::fill_dyn`]: boxed, borrowing the filler.
pub(crate) type DynFillFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ChunkStream, FillerError>> + Send + 'a>>;

/// The object-safe twin of [`Filler`] (its future boxed), for storing fillers as
/// `Arc<dyn DynFiller>`. Every [`Filler`] implements it.
pub(crate) trait DynFiller: Send + Sync + 'static {
    /// [`Filler::fill`], boxed.
    fn fill_dyn(&self, request: FillRequest) -> DynFillFuture<'_>;
}

impl<F: Filler> DynFiller for F {
    fn fill_dyn(&self, request: FillRequest) -> DynFillFuture<'_> {
        Box::pin(self.fill(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_lite::StreamExt;
    use futures_lite::future::block_on;

    fn request(expected_len: u64) -> FillRequest {
        FillRequest {
            key: ChunkKey {
                origin_id: "o".into(),
                object_key: "k".into(),
                chunk_size: expected_len,
                ..ChunkKey::default()
            },
            object_size: expected_len,
            expected_len,
        }
    }

    /// An `async fn` implementation whose future borrows the filler.
    struct Counting {
        calls: AtomicUsize,
    }

    impl Filler for Counting {
        async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if request.expected_len == 0 {
                return Err("empty chunk".into());
            }
            let frame = Bytes::from(vec![
                u8::try_from(n)?;
                usize::try_from(request.expected_len)?
            ]);
            Ok(Box::pin(futures_lite::stream::once(Ok(frame))))
        }
    }

    async fn collect(stream: ChunkStream) -> Vec<u8> {
        stream
            .map(|frame| frame.unwrap())
            .fold(Vec::new(), |mut all, frame| {
                all.extend_from_slice(&frame);
                all
            })
            .await
    }

    #[test]
    fn async_fn_impls_and_closures_work_directly_and_behind_the_object_safe_twin() {
        let counting = Arc::new(Counting {
            calls: AtomicUsize::new(0),
        });
        let closure = |request: FillRequest| async move {
            if request.expected_len > 3 {
                return Err(FillerError::from("too long"));
            }
            Ok::<ChunkStream, FillerError>(Box::pin(futures_lite::stream::once(Ok(
                Bytes::from_static(&b"abc"[..request.expected_len as usize]),
            ))))
        };
        block_on(async {
            assert_eq!(
                collect(counting.fill(request(2)).await.unwrap()).await,
                [0, 0]
            );
            assert!(counting.fill(request(0)).await.is_err());
            let as_dyn: Arc<dyn DynFiller> = counting.clone();
            assert_eq!(
                collect(as_dyn.fill_dyn(request(3)).await.unwrap()).await,
                [2, 2, 2]
            );
            assert_eq!(counting.calls.load(Ordering::SeqCst), 3);

            assert_eq!(
                collect(closure.fill(request(2)).await.unwrap()).await,
                b"ab"
            );
            let as_dyn: Arc<dyn DynFiller> = Arc::new(closure);
            assert_eq!(
                collect(as_dyn.fill_dyn(request(3)).await.unwrap()).await,
                b"abc"
            );
            assert_eq!(
                as_dyn
                    .fill_dyn(request(4))
                    .await
                    .err()
                    .map(|e| e.to_string()),
                Some("too long".to_owned())
            );
        });
    }
}
