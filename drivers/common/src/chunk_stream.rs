//! Ready-made [`ChunkStream`]s for fillers: one frame of [`Bytes`] ([`from_bytes`]), or the
//! first `limit` bytes of any futures-io `AsyncRead` in frames ([`from_async_read`]). The tokio
//! driver adds the same for tokio's `AsyncRead` (`orca_cluster_tokio::chunk_stream`).
//!
//! Checking that a stream yields exactly the chunk's `expected_len` bytes is the listener's job
//! (it aborts the response otherwise); a reader that ends before `limit` is reported here too,
//! as an `UnexpectedEof` error naming both counts, so the cause reaches the logs.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_io::AsyncRead;

use crate::filler::ChunkStream;

/// The default largest frame a reader stream yields: 256 KiB.
pub const DEFAULT_FRAME_BYTES: usize = 256 * 1024;

/// A stream of `bytes` as one frame (no frame when `bytes` is empty). The bytes are not copied.
pub fn from_bytes(bytes: Bytes) -> ChunkStream {
    Box::pin(futures_lite::stream::iter(
        (!bytes.is_empty()).then_some(Ok(bytes)),
    ))
}

/// The first `limit` bytes of `reader`, in frames of at most [`DEFAULT_FRAME_BYTES`]; see
/// [`from_async_read_with_frame`].
pub fn from_async_read<R>(reader: R, limit: u64) -> ChunkStream
where
    R: AsyncRead + Send + 'static,
{
    from_async_read_with_frame(reader, limit, DEFAULT_FRAME_BYTES)
}

/// The first `limit` bytes of `reader`, in frames of at most `frame_bytes` bytes (0 counts as
/// 1).
///
/// - A frame is yielded when it is full, when `limit` bytes have been read, or when the reader
///   has nothing more ready (`Pending`) and the frame holds bytes: bytes are never held back
///   while the reader waits. Empty frames are never yielded.
/// - Nothing past `limit` is read; the reader is dropped as soon as the stream is done.
/// - A reader that ends before `limit` bytes: the bytes read, then an
///   [`io::ErrorKind::UnexpectedEof`] error naming how many bytes were read of how many, then
///   the end. A read error: the bytes read, then that error, then the end. `Interrupted` reads
///   are retried (after yielding to the runtime).
///
/// Memory: one frame buffer at a time is filled (the frames already yielded belong to the
/// consumer). Each buffer is allocated once, zeroed once and handed out without a copy; a frame
/// cut short because the reader was not ready leaves the rest of its buffer for the next
/// frame, so no byte of a buffer is zeroed twice.
pub fn from_async_read_with_frame<R>(reader: R, limit: u64, frame_bytes: usize) -> ChunkStream
where
    R: AsyncRead + Send + 'static,
{
    Box::pin(ReadFrames {
        reader: Some(Box::pin(reader)),
        arena: BytesMut::new(),
        filled: 0,
        remaining: limit,
        limit,
        frame_bytes: frame_bytes.max(1),
        error: None,
    })
}

/// The error a reader stream yields when its reader ends after `read` of the `limit` bytes it
/// was to read ([`io::ErrorKind::UnexpectedEof`], naming both counts).
pub fn ended_early(read: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the reader ended after {read} of the {limit} bytes to read"),
    )
}

/// [`from_async_read_with_frame`]'s stream.
///
/// Why a zeroed buffer: futures-io's `poll_read` writes into an initialised `&mut [u8]`, and
/// reading into uninitialised capacity is not possible without `unsafe` (forbidden here). The
/// zeroing costs little next to the read itself: it takes the buffer's page faults that the
/// read would otherwise take. Measured on a page-cached 256 MiB file read in 1 MiB frames,
/// a fresh zeroed buffer per frame took 12.2–14.2 ms in all, reading into uninitialised capacity
/// (std's `read_to_end`) 11.6–12.4 ms.
struct ReadFrames<R> {
    /// `None` once the stream is done.
    reader: Option<Pin<Box<R>>>,
    /// The current frame buffer: `arena[..filled]` read and not yet yielded, the rest zeroed
    /// room for the next reads.
    arena: BytesMut,
    filled: usize,
    /// Bytes still to read from the reader (not counting `filled`).
    remaining: u64,
    limit: u64,
    frame_bytes: usize,
    /// An error to yield after the frame that holds the bytes read before it.
    error: Option<io::Error>,
}

impl<R> ReadFrames<R> {
    /// Hands out the bytes read into the current buffer; the rest of the buffer stays.
    fn take_frame(&mut self) -> Bytes {
        let frame = self.arena.split_to(self.filled.min(self.arena.len()));
        self.filled = 0;
        frame.freeze()
    }

    /// Ends the stream with `error`, after the bytes read so far.
    fn fail(&mut self, error: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.reader = None;
        if self.filled > 0 {
            self.error = Some(error);
            Poll::Ready(Some(Ok(self.take_frame())))
        } else {
            Poll::Ready(Some(Err(error)))
        }
    }
}

impl<R: AsyncRead> Stream for ReadFrames<R> {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            if this.filled > 0 && (this.filled == this.arena.len() || this.remaining == 0) {
                return Poll::Ready(Some(Ok(this.take_frame())));
            }
            if this.remaining == 0 {
                this.reader = None;
                return Poll::Ready(None);
            }
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            if this.arena.is_empty() {
                let len = usize::try_from(this.remaining)
                    .map_or(this.frame_bytes, |r| r.min(this.frame_bytes));
                this.arena = BytesMut::zeroed(len);
            }
            let room = usize::try_from(this.remaining).map_or(usize::MAX, |r| {
                r.min(this.arena.len().saturating_sub(this.filled))
            });
            let Some(dst) = this
                .arena
                .get_mut(this.filled..this.filled.saturating_add(room))
            else {
                return this.fail(io::Error::other("frame buffer bookkeeping out of range"));
            };
            match reader.as_mut().poll_read(cx, dst) {
                Poll::Pending if this.filled > 0 => {
                    return Poll::Ready(Some(Ok(this.take_frame())));
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    let read = this.limit - this.remaining;
                    return this.fail(ended_early(read, this.limit));
                }
                Poll::Ready(Ok(n)) => {
                    // A reader claiming more than the room it was given is not trusted beyond it.
                    let n = n.min(room);
                    this.filled += n;
                    this.remaining -= n as u64;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    cx.waker().wake_by_ref();
                    return if this.filled > 0 {
                        Poll::Ready(Some(Ok(this.take_frame())))
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Ready(Err(e)) => return this.fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::StreamExt;
    use futures_lite::future::block_on;

    /// A reader serving `data` in the given read sizes, with `Pending` before the reads listed
    /// in `pending_before`, failing with `fail` once `data` is exhausted (or ending).
    struct Scripted {
        data: Vec<u8>,
        at: usize,
        reads: usize,
        max_read: usize,
        pending_before: Vec<usize>,
        fail: Option<io::ErrorKind>,
        interrupt_first: bool,
    }

    impl Scripted {
        fn new(data: Vec<u8>, max_read: usize) -> Scripted {
            Scripted {
                data,
                at: 0,
                reads: 0,
                max_read,
                pending_before: Vec::new(),
                fail: None,
                interrupt_first: false,
            }
        }
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if this.interrupt_first {
                this.interrupt_first = false;
                return Poll::Ready(Err(io::ErrorKind::Interrupted.into()));
            }
            if let Some(i) = this.pending_before.iter().position(|&r| r == this.reads) {
                this.pending_before.remove(i);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.reads += 1;
            let n = buf.len().min(this.max_read).min(this.data.len() - this.at);
            if let (0, Some(kind)) = (n, this.fail) {
                return Poll::Ready(Err(io::Error::new(kind, "scripted failure")));
            }
            buf[..n].copy_from_slice(&this.data[this.at..this.at + n]);
            this.at += n;
            Poll::Ready(Ok(n))
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn frames(stream: ChunkStream) -> Vec<io::Result<Bytes>> {
        block_on(stream.collect())
    }

    fn ok_lens(frames: &[io::Result<Bytes>]) -> Vec<usize> {
        frames
            .iter()
            .map(|f| f.as_ref().map(Bytes::len).unwrap())
            .collect()
    }

    fn concat(frames: &[io::Result<Bytes>]) -> Vec<u8> {
        frames
            .iter()
            .filter_map(|f| f.as_ref().ok())
            .flat_map(|f| f.iter().copied())
            .collect()
    }

    #[test]
    fn from_bytes_is_one_frame_and_nothing_when_empty() {
        let data = Bytes::from(pattern(1000));
        let got = frames(from_bytes(data.clone()));
        assert_eq!(ok_lens(&got), [1000]);
        assert_eq!(
            got[0].as_ref().unwrap().as_ptr(),
            data.as_ptr(),
            "not copied"
        );
        assert!(frames(from_bytes(Bytes::new())).is_empty());
    }

    #[test]
    fn reads_exactly_limit_bytes_in_full_frames() {
        let data = pattern(10_000);
        // The reader hands out 700 bytes per read: frames are still filled to 4096.
        let got = frames(from_async_read_with_frame(
            Scripted::new(data.clone(), 700),
            9_000,
            4096,
        ));
        assert_eq!(ok_lens(&got), [4096, 4096, 808]);
        assert_eq!(concat(&got), data[..9_000]);
        // The default frame size.
        let big = pattern(DEFAULT_FRAME_BYTES * 2 + 3);
        let got = frames(from_async_read(
            Scripted::new(big.clone(), usize::MAX),
            big.len() as u64,
        ));
        assert_eq!(ok_lens(&got), [DEFAULT_FRAME_BYTES, DEFAULT_FRAME_BYTES, 3]);
        assert_eq!(concat(&got), big);
    }

    #[test]
    fn nothing_past_the_limit_is_read() {
        let reader = Scripted::new(pattern(100), 100);
        let mut stream = from_async_read_with_frame(reader, 10, 4);
        let got: Vec<_> = block_on(async {
            let mut all = Vec::new();
            while let Some(frame) = stream.next().await {
                all.push(frame);
            }
            all
        });
        assert_eq!(ok_lens(&got), [4, 4, 2]);
        assert_eq!(concat(&got), pattern(10));
        // A zero limit reads nothing; a zero frame size counts as 1.
        assert!(frames(from_async_read(Scripted::new(pattern(5), 5), 0)).is_empty());
        assert_eq!(
            ok_lens(&frames(from_async_read_with_frame(
                Scripted::new(pattern(3), 5),
                3,
                0
            ))),
            [1, 1, 1]
        );
    }

    #[test]
    fn a_waiting_reader_gets_its_bytes_yielded_and_the_buffer_reused() {
        let data = pattern(1000);
        let mut reader = Scripted::new(data.clone(), 300);
        reader.pending_before = vec![1, 2];
        let got = frames(from_async_read_with_frame(reader, 1000, 1000));
        // 300 read, then Pending: yielded; 300 more, Pending: yielded; then the rest of the
        // same 1000-byte buffer.
        assert_eq!(ok_lens(&got), [300, 300, 400]);
        assert_eq!(concat(&got), data);
        let ptrs: Vec<*const u8> = got.iter().map(|f| f.as_ref().unwrap().as_ptr()).collect();
        assert_eq!(ptrs[1], ptrs[0].wrapping_add(300), "one buffer, no copy");
        assert_eq!(ptrs[2], ptrs[0].wrapping_add(600), "one buffer, no copy");
    }

    #[test]
    fn an_early_end_is_an_unexpected_eof_naming_the_counts() {
        let got = frames(from_async_read_with_frame(
            Scripted::new(pattern(500), 200),
            800,
            300,
        ));
        assert_eq!(got.len(), 3);
        assert_eq!(concat(&got), pattern(500));
        let error = got[2].as_ref().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            error.to_string(),
            "the reader ended after 500 of the 800 bytes to read"
        );
        // An empty reader fails at once.
        let got = frames(from_async_read(Scripted::new(Vec::new(), 1), 5));
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].as_ref().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn a_read_error_follows_the_bytes_before_it_and_ends_the_stream() {
        let mut reader = Scripted::new(pattern(250), 100);
        reader.fail = Some(io::ErrorKind::ConnectionReset);
        reader.interrupt_first = true;
        let got = frames(from_async_read_with_frame(reader, 1000, 1000));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().as_ref(), &pattern(250)[..]);
        let error = got[1].as_ref().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(error.to_string(), "scripted failure");
    }
}
