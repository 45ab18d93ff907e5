//! [`DirOrigin`]: a [`Filler`] serving chunks of the files under a directory, read with
//! positioned reads on the runtime's blocking thread pool.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use orca_cluster_core::ChunkKey;
use orca_cluster_core::chunk::ChunkError;

use crate::driver::Driver;
use crate::filler::{ChunkStream, FillRequest, Filler, FillerError};
use crate::frame_pool::FramePool;
use crate::runtime::{Runtime, UnblockError};

/// The default largest frame [`DirOrigin`] reads at once: 1 MiB.
pub const DEFAULT_FRAME_BYTES: usize = 1 << 20;

/// Most bytes of idle frame buffers a [`DirOrigin`] keeps for reuse by default: 64 MiB, one
/// chunk of the default largest chunk size (a [`CoalescingFiller`](crate::CoalescingFiller)
/// holds a chunk's frames until its fill ends, so smaller pools send most frames of large
/// chunks back to fresh memory). See [`DirOrigin::with_pool_idle_bytes`].
pub const POOL_IDLE_BYTES: usize = 64 << 20;

/// A [`Filler`] serving the chunks of the files under a root directory: the object
/// `(bucket, object_key)` is the file `<root>/<bucket>/<object_key>`.
///
/// **Paths.** `bucket` and `object_key` are split at `/` and their segments appended to the
/// root: empty segments are skipped (a leading, trailing or doubled `/` changes nothing, so
/// `/etc/passwd` names `<root>/<bucket>/etc/passwd`, never an absolute path), and a segment
/// that is `.` or `..` or holds a NUL byte is refused ([`DirOriginError::Segment`]), so a
/// request cannot name a file outside the root by its path. (On Windows, segments holding `\`
/// or `:` are refused too.) Symbolic links under the root are followed: what the root holds is
/// the operator's choice.
///
/// **Checks.** The file must be a regular file whose length equals the request's
/// `object_size` ([`DirOriginError::Length`], naming both), and the chunk's range must lie
/// within it.
///
/// **Reads.** Exactly the chunk's range, `[index * chunk_size, + expected_len)`, is read in
/// frames of at most [`DEFAULT_FRAME_BYTES`] (see [`DirOrigin::with_frame_bytes`]), one frame
/// at a time as the consumer asks, each with one positioned read (`pread` on unix) on the
/// runtime's blocking pool ([`Runtime::unblock`]) into a frame buffer, handed out as [`Bytes`]
/// without a copy. Opening the file and reading its metadata also run on the blocking pool. A
/// read error, or a file that shrank meanwhile, ends the stream with an `io::Error` naming the
/// file and the offset.
///
/// **Buffers.** Frames are read into buffers of a [`FramePool`] that the origin and its clones
/// share: a frame's buffer goes back to the pool when the listener has sent it (at most
/// [`POOL_IDLE_BYTES`] of idle buffers are kept by default), and the next frame is read over it, so a
/// busy origin neither zeroes nor faults in fresh memory per frame.
pub struct DirOrigin<R> {
    root: Arc<PathBuf>,
    runtime: R,
    frame_bytes: usize,
    pool: FramePool,
}

fn pool_for(frame_bytes: usize, idle_bytes: usize) -> FramePool {
    FramePool::new(frame_bytes, (idle_bytes / frame_bytes).max(1))
}

impl<R: Clone> Clone for DirOrigin<R> {
    fn clone(&self) -> Self {
        DirOrigin {
            root: Arc::clone(&self.root),
            runtime: self.runtime.clone(),
            frame_bytes: self.frame_bytes,
            pool: self.pool.clone(),
        }
    }
}

impl<R> fmt::Debug for DirOrigin<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirOrigin")
            .field("root", &self.root)
            .field("frame_bytes", &self.frame_bytes)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> DirOrigin<D> {
    /// Serves the files under `root`, reading on the calling context's runtime
    /// ([`Driver::current`]: on tokio, panics outside a tokio runtime, as tokio does). The root
    /// is not checked here: a missing root fails every fill with
    /// [`DirOriginError::Open`].
    pub fn new(root: impl Into<PathBuf>) -> DirOrigin<D> {
        DirOrigin::with_runtime(root, D::current())
    }
}

impl<R: Runtime> DirOrigin<R> {
    /// Serves the files under `root`, reading on `runtime`'s blocking pool.
    pub fn with_runtime(root: impl Into<PathBuf>, runtime: R) -> DirOrigin<R> {
        DirOrigin {
            root: Arc::new(root.into()),
            runtime,
            frame_bytes: DEFAULT_FRAME_BYTES,
            pool: pool_for(DEFAULT_FRAME_BYTES, POOL_IDLE_BYTES),
        }
    }

    /// Reads frames of at most `frame_bytes` bytes (default [`DEFAULT_FRAME_BYTES`]; 0 counts
    /// as 1).
    pub fn with_frame_bytes(mut self, frame_bytes: usize) -> DirOrigin<R> {
        self.frame_bytes = frame_bytes.max(1);
        self.pool = pool_for(self.frame_bytes, self.pool_idle_bytes());
        self
    }

    /// Keeps at most `idle_bytes` of idle frame buffers for reuse (default
    /// [`POOL_IDLE_BYTES`]; always at least one buffer). Memory the origin holds between fills;
    /// below the size of the chunks served, part of every large chunk is read into fresh
    /// memory.
    pub fn with_pool_idle_bytes(mut self, idle_bytes: usize) -> DirOrigin<R> {
        self.pool = pool_for(self.frame_bytes, idle_bytes);
        self
    }

    /// The most bytes of idle frame buffers kept for reuse.
    pub fn pool_idle_bytes(&self) -> usize {
        self.pool.max_idle() * self.pool.buffer_bytes()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The largest frame read at once, in bytes.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// The file of `key`'s object: `<root>/<bucket>/<object_key>` by the rules above.
    pub fn path_of(&self, key: &ChunkKey) -> Result<PathBuf, DirOriginError> {
        let mut path = PathBuf::clone(&self.root);
        for (field, value) in [("bucket", &key.bucket), ("object_key", &key.object_key)] {
            for segment in value.split('/').filter(|s| !s.is_empty()) {
                if refused(segment) {
                    return Err(DirOriginError::Segment {
                        field,
                        segment: segment.to_owned(),
                    });
                }
                path.push(segment);
            }
        }
        Ok(path)
    }

    /// [`Filler::fill`] with a typed error: checks the request and the file, then returns the
    /// stream of the chunk's bytes (read as it is polled).
    pub async fn open(&self, request: &FillRequest) -> Result<ChunkStream, DirOriginError> {
        let path = self.path_of(&request.key)?;
        let offset = request.key.offset().map_err(DirOriginError::Chunk)?;
        let end = offset
            .checked_add(request.expected_len)
            .filter(|&end| end <= request.object_size)
            .ok_or(DirOriginError::Range {
                offset,
                expected_len: request.expected_len,
                object_size: request.object_size,
            })?;
        let object_size = request.object_size;
        let (file, path) = self
            .runtime
            .unblock(move || open_checked(path, object_size))
            .await
            .map_err(DirOriginError::Blocking)??;
        Ok(Box::pin(futures_lite::stream::unfold(
            Frames {
                file: Some(Arc::new(file)),
                path: Arc::new(path),
                runtime: self.runtime.clone(),
                pool: self.pool.clone(),
                offset,
                end,
                frame_bytes: self.frame_bytes,
            },
            Frames::next,
        )))
    }
}

impl<R: Runtime> Filler for DirOrigin<R> {
    async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
        Ok(self.open(&request).await?)
    }
}

/// Whether a path segment is refused (see [`DirOrigin`]).
fn refused(segment: &str) -> bool {
    segment == "."
        || segment == ".."
        || segment.contains('\0')
        || (cfg!(windows) && segment.contains(['\\', ':']))
}

/// Opens `path` and checks that it is a regular file of `object_size` bytes.
fn open_checked(path: PathBuf, object_size: u64) -> Result<(File, PathBuf), DirOriginError> {
    let opened = File::open(&path).and_then(|file| {
        let meta = file.metadata()?;
        Ok((file, meta))
    });
    let (file, meta) = match opened {
        Ok(opened) => opened,
        Err(source) => return Err(DirOriginError::Open { path, source }),
    };
    if !meta.is_file() {
        return Err(DirOriginError::NotAFile { path });
    }
    if meta.len() != object_size {
        return Err(DirOriginError::Length {
            path,
            on_disk: meta.len(),
            object_size,
        });
    }
    Ok((file, path))
}

/// The state of a [`DirOrigin`] stream: the next frame is `[offset, min(end, offset + frame))`.
struct Frames<R> {
    /// Dropped (closed) after the last frame or an error.
    file: Option<Arc<File>>,
    path: Arc<PathBuf>,
    runtime: R,
    pool: FramePool,
    offset: u64,
    end: u64,
    frame_bytes: usize,
}

impl<R: Runtime> Frames<R> {
    async fn next(mut self) -> Option<(io::Result<Bytes>, Frames<R>)> {
        let file = self.file.clone()?;
        let left = self.end.saturating_sub(self.offset);
        let len = usize::try_from(left).map_or(self.frame_bytes, |l| l.min(self.frame_bytes));
        if len == 0 {
            self.file = None;
            return None;
        }
        let offset = self.offset;
        let pool = self.pool.clone();
        let read = self
            .runtime
            .unblock(move || pool.frame(len, |buf| read_frame(&file, offset, buf)))
            .await;
        let item = match read {
            Ok(Ok(frame)) => {
                self.offset += len as u64;
                if self.offset >= self.end {
                    self.file = None;
                }
                Ok(frame)
            }
            Ok(Err(e)) => {
                self.file = None;
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "{}: reading {len} bytes at offset {offset}: {e}",
                        self.path.display()
                    ),
                ))
            }
            Err(e) => {
                self.file = None;
                Err(io::Error::from(e))
            }
        };
        Some((item, self))
    }
}

/// Reads exactly `buf.len()` bytes of `file` at `offset` into `buf` (positioned: the file's
/// cursor is not used on unix).
fn read_frame(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        // One stream reads its frames one after the other, so the shared cursor is safe.
        use std::io::{Read, Seek, SeekFrom};
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }
}

/// Why [`DirOrigin`] could not serve a chunk (the listener answers 502 and logs it).
#[derive(Debug)]
pub enum DirOriginError {
    /// A segment of `field` (`bucket` or `object_key`) is `.`, `..` or holds a NUL byte.
    Segment {
        /// `bucket` or `object_key`.
        field: &'static str,
        /// The refused segment.
        segment: String,
    },
    /// The chunk key has no byte range (zero `chunk_size`, or an offset past 64 bits).
    Chunk(ChunkError),
    /// The chunk's range `[offset, offset + expected_len)` does not fit in `object_size`.
    Range {
        /// The chunk's first byte.
        offset: u64,
        /// The chunk's length.
        expected_len: u64,
        /// The object's size in bytes.
        object_size: u64,
    },
    /// The file could not be opened or its metadata read (`NotFound` for a missing file).
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The path exists but is not a regular file (a directory, a device...).
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file's length is not the request's `object_size`.
    Length {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        on_disk: u64,
        /// The object size the request declared, in bytes.
        object_size: u64,
    },
    /// The runtime's blocking pool did not run the call.
    Blocking(UnblockError),
}

impl fmt::Display for DirOriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirOriginError::Segment { field, segment } => write!(
                f,
                "{field}: path segment {segment:?} is not allowed (no `.`, `..` or NUL)"
            ),
            DirOriginError::Chunk(e) => write!(f, "chunk key: {e}"),
            DirOriginError::Range {
                offset,
                expected_len,
                object_size,
            } => write!(
                f,
                "expected_len: {expected_len} bytes from offset {offset} run past object_size \
                 {object_size}"
            ),
            DirOriginError::Open { path, source } => write!(f, "{}: {source}", path.display()),
            DirOriginError::NotAFile { path } => {
                write!(f, "{}: not a regular file", path.display())
            }
            DirOriginError::Length {
                path,
                on_disk,
                object_size,
            } => write!(
                f,
                "{}: {on_disk} bytes on disk, but the request says object_size {object_size}",
                path.display()
            ),
            DirOriginError::Blocking(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DirOriginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirOriginError::Chunk(e) => Some(e),
            DirOriginError::Open { source, .. } => Some(source),
            DirOriginError::Blocking(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;

    use futures_lite::StreamExt;
    use futures_lite::future::block_on;

    /// A runtime for the logic tests: blocking calls on a new thread, awaited through a
    /// channel. (The drivers' own pools are tested in `tests/tests/dir_origin.rs`.)
    #[derive(Clone)]
    struct Threads;

    impl Runtime for Threads {
        fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
            std::thread::spawn(move || block_on(future));
        }

        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
            let (tx, rx) = smol::channel::bounded::<()>(1);
            std::thread::spawn(move || {
                std::thread::sleep(duration);
                drop(tx);
            });
            async move {
                let _ = rx.recv().await;
            }
        }

        fn unblock<T: Send + 'static>(
            &self,
            f: impl FnOnce() -> T + Send + 'static,
        ) -> impl Future<Output = Result<T, UnblockError>> + Send + 'static {
            let (tx, rx) = smol::channel::bounded(1);
            std::thread::spawn(move || {
                let _ = tx.try_send(crate::runtime::run_blocking(f));
            });
            async move { rx.recv().await.unwrap_or(Err(UnblockError::Cancelled)) }
        }
    }

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("orca-dir-origin-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn request(
        bucket: &str,
        object_key: &str,
        chunk_size: u64,
        index: u64,
        size: u64,
    ) -> FillRequest {
        let key = ChunkKey {
            origin_id: "o".into(),
            bucket: bucket.into(),
            object_key: object_key.into(),
            etag: "e".into(),
            chunk_size,
            index,
        };
        let expected_len = key.expected_len(size).unwrap();
        FillRequest {
            key,
            object_size: size,
            expected_len,
        }
    }

    fn read_all(origin: &DirOrigin<Threads>, request: &FillRequest) -> Result<Vec<Bytes>, String> {
        block_on(async {
            let stream = origin.open(request).await.map_err(|e| e.to_string())?;
            stream
                .map(|frame| frame.map_err(|e| e.to_string()))
                .try_collect::<Bytes, String, Vec<Bytes>>()
                .await
        })
    }

    #[test]
    fn paths_stay_under_the_root() {
        let origin = DirOrigin::with_runtime("/srv/origin", Threads);
        let key = |bucket: &str, object_key: &str| ChunkKey {
            bucket: bucket.into(),
            object_key: object_key.into(),
            chunk_size: 1,
            ..ChunkKey::default()
        };
        assert_eq!(
            origin.path_of(&key("media", "/videos//cat.mp4/")).unwrap(),
            Path::new("/srv/origin/media/videos/cat.mp4")
        );
        assert_eq!(
            origin.path_of(&key("", "/etc/passwd")).unwrap(),
            Path::new("/srv/origin/etc/passwd")
        );
        for (bucket, object_key, field, segment) in [
            ("media", "../secret", "object_key", ".."),
            ("..", "x", "bucket", ".."),
            ("media", "a/./b", "object_key", "."),
            ("media", "a/b\0c", "object_key", "b\0c"),
        ] {
            match origin.path_of(&key(bucket, object_key)) {
                Err(DirOriginError::Segment {
                    field: f,
                    segment: s,
                }) => {
                    assert_eq!((f, s.as_str()), (field, segment));
                }
                other => panic!("{bucket}/{object_key}: expected a refused segment, got {other:?}"),
            }
        }
        // Dots inside a name are fine.
        assert!(origin.path_of(&key("media", "a..b/.hidden")).is_ok());
    }

    #[test]
    fn reads_exactly_the_chunk_in_frames() {
        let dir = Dir::new("frames");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        std::fs::create_dir_all(dir.0.join("b/k")).unwrap();
        std::fs::write(dir.0.join("b/k/obj"), &data).unwrap();
        let origin = DirOrigin::with_runtime(&dir.0, Threads).with_frame_bytes(1500);
        // Chunk 1 of 4000-byte chunks: two full frames and a 1000-byte one.
        let frames = read_all(&origin, &request("b", "k/obj", 4000, 1, 10_000)).unwrap();
        assert_eq!(
            frames.iter().map(Bytes::len).collect::<Vec<_>>(),
            [1500, 1500, 1000]
        );
        assert_eq!(frames.concat(), data[4000..8000]);
        // The last, short chunk.
        let frames = read_all(&origin, &request("b", "k/obj", 4000, 2, 10_000)).unwrap();
        assert_eq!(
            frames.iter().map(Bytes::len).collect::<Vec<_>>(),
            [1500, 500]
        );
        assert_eq!(frames.concat(), data[8000..]);
        // A chunk that is the whole object, with the default frame size.
        let whole = DirOrigin::with_runtime(&dir.0, Threads);
        let frames = read_all(&whole, &request("b", "k/obj", 1 << 20, 0, 10_000)).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames.concat(), data);
    }

    /// Frames are read over the buffers of dropped frames, and a recycled buffer never leaks
    /// its older bytes into a shorter frame.
    #[test]
    fn dropped_frames_buffers_are_read_over() {
        let dir = Dir::new("recycled");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        std::fs::create_dir_all(dir.0.join("b")).unwrap();
        std::fs::write(dir.0.join("b/obj"), &data).unwrap();
        let origin = DirOrigin::with_runtime(&dir.0, Threads).with_frame_bytes(1500);
        let first = read_all(&origin, &request("b", "obj", 4000, 0, 10_000)).unwrap();
        assert_eq!(origin.pool.idle(), 0, "frames still alive");
        drop(first);
        assert_eq!(origin.pool.idle(), 3);
        for (index, range) in [(1, 4000..8000), (2, 8000..10_000), (0, 0..4000)] {
            let frames = read_all(&origin, &request("b", "obj", 4000, index, 10_000)).unwrap();
            assert_eq!(frames.concat(), data[range], "chunk {index}");
        }
        assert_eq!(
            origin.pool.idle(),
            3,
            "no buffer allocated beyond the first three"
        );
        // A smaller pool keeps fewer.
        let small = origin.with_pool_idle_bytes(3000);
        assert_eq!(small.pool_idle_bytes(), 3000);
        drop(read_all(&small, &request("b", "obj", 4000, 0, 10_000)).unwrap());
        assert_eq!(small.pool.idle(), 2);
    }

    #[test]
    fn refuses_wrong_lengths_missing_files_directories_and_bad_ranges() {
        let dir = Dir::new("errors");
        std::fs::create_dir_all(dir.0.join("b")).unwrap();
        std::fs::write(dir.0.join("b/obj"), [1u8; 100]).unwrap();
        let origin = DirOrigin::with_runtime(&dir.0, Threads);
        let error = block_on(origin.open(&request("b", "obj", 64, 0, 101)))
            .err()
            .unwrap();
        assert!(
            matches!(
                error,
                DirOriginError::Length {
                    on_disk: 100,
                    object_size: 101,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("100 bytes on disk"), "{error}");
        assert!(error.to_string().contains("object_size 101"), "{error}");

        let error = block_on(origin.open(&request("b", "missing", 64, 0, 100)))
            .err()
            .unwrap();
        match &error {
            DirOriginError::Open { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound)
            }
            other => panic!("expected Open, got {other:?}"),
        }
        assert!(std::error::Error::source(&error).is_some());

        let error = block_on(origin.open(&request("", "b", 64, 0, 100)))
            .err()
            .unwrap();
        assert!(
            matches!(error, DirOriginError::NotAFile { .. }),
            "{error:?}"
        );

        let mut past = request("b", "obj", 64, 1, 100);
        past.expected_len = 40;
        let error = block_on(origin.open(&past)).err().unwrap();
        assert!(
            matches!(
                error,
                DirOriginError::Range {
                    offset: 64,
                    expected_len: 40,
                    object_size: 100
                }
            ),
            "{error:?}"
        );

        let mut zero = request("b", "obj", 64, 0, 100);
        zero.key.chunk_size = 0;
        let error = block_on(origin.open(&zero)).err().unwrap();
        assert!(
            matches!(error, DirOriginError::Chunk(ChunkError::ZeroChunkSize)),
            "{error:?}"
        );

        // Through the Filler trait, the typed error is the boxed one.
        let error = block_on(origin.fill(request("b", "../b/obj", 64, 0, 100)))
            .err()
            .unwrap();
        assert!(error.downcast_ref::<DirOriginError>().is_some(), "{error}");
    }

    #[test]
    fn a_file_that_shrinks_fails_the_stream_naming_the_offset() {
        let dir = Dir::new("shrink");
        std::fs::create_dir_all(dir.0.join("b")).unwrap();
        std::fs::write(dir.0.join("b/obj"), [9u8; 3000]).unwrap();
        let origin = DirOrigin::with_runtime(&dir.0, Threads).with_frame_bytes(1000);
        let mut stream = block_on(origin.open(&request("b", "obj", 3000, 0, 3000))).unwrap();
        let first = block_on(stream.next()).unwrap().unwrap();
        assert_eq!(first.len(), 1000);
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.0.join("b/obj"))
            .unwrap()
            .set_len(1500)
            .unwrap();
        let error = block_on(stream.next()).unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("at offset 1000"), "{error}");
        assert!(block_on(stream.next()).is_none());
    }
}
