//! Ready-made [`ChunkStream`]s for fillers: everything of
//! `orca_cluster_driver_common::chunk_stream` (from `Bytes`, from a futures-io `AsyncRead`),
//! and [`from_tokio_read`] for tokio's `AsyncRead` (a `tokio::fs::File`, a `TcpStream`, an
//! HTTP body adapted to a reader...).

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use bytes::buf::BufMut;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};

use orca_cluster_driver_common::ChunkStream;
pub use orca_cluster_driver_common::chunk_stream::{
    DEFAULT_FRAME_BYTES, ended_early, from_async_read, from_async_read_with_frame, from_bytes,
};

/// The first `limit` bytes of a tokio `reader`, in frames of at most [`DEFAULT_FRAME_BYTES`];
/// see [`from_tokio_read_with_frame`].
pub fn from_tokio_read<R>(reader: R, limit: u64) -> ChunkStream
where
    R: AsyncRead + Send + 'static,
{
    from_tokio_read_with_frame(reader, limit, DEFAULT_FRAME_BYTES)
}

/// The first `limit` bytes of a tokio `reader`, in frames of at most `frame_bytes` bytes (0
/// counts as 1), with the rules of [`from_async_read_with_frame`]:
///
/// - a frame is yielded when it is full, when `limit` bytes have been read, or when the reader
///   has nothing more ready and the frame holds bytes; empty frames are never yielded;
/// - nothing past `limit` is read, and the reader is dropped as soon as the stream is done;
/// - a reader that ends early: the bytes read, then an `UnexpectedEof` error naming both
///   counts ([`ended_early`]); a read error: the bytes read, then the error. `Interrupted`
///   reads are retried after yielding to the runtime.
///
/// Unlike the futures-io version, the bytes are read straight into the frame buffer's
/// uninitialised capacity (tokio's `read_buf`), so nothing is zeroed. Each frame buffer is
/// allocated once for up to `frame_bytes` and handed out without a copy; a frame cut short
/// because the reader was not ready leaves the rest of its capacity for the next frame.
pub fn from_tokio_read_with_frame<R>(reader: R, limit: u64, frame_bytes: usize) -> ChunkStream
where
    R: AsyncRead + Send + 'static,
{
    Box::pin(TokioFrames {
        reader: Some(Box::pin(reader)),
        buf: BytesMut::new(),
        frame_left: 0,
        remaining: limit,
        limit,
        frame_bytes: frame_bytes.max(1),
        error: None,
    })
}

/// [`from_tokio_read_with_frame`]'s stream.
struct TokioFrames<R> {
    /// `None` once the stream is done.
    reader: Option<Pin<Box<R>>>,
    /// The bytes read and not yet yielded; its spare capacity is the frame's room.
    buf: BytesMut,
    /// How many more bytes the current frame buffer takes.
    frame_left: usize,
    /// Bytes still to read from the reader (not counting `buf`).
    remaining: u64,
    limit: u64,
    frame_bytes: usize,
    /// An error to yield after the frame that holds the bytes read before it.
    error: Option<io::Error>,
}

impl<R> TokioFrames<R> {
    fn take_frame(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// Ends the stream with `error`, after the bytes read so far.
    fn fail(&mut self, error: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.reader = None;
        if self.buf.is_empty() {
            Poll::Ready(Some(Err(error)))
        } else {
            self.error = Some(error);
            Poll::Ready(Some(Ok(self.take_frame())))
        }
    }
}

impl<R: AsyncRead> Stream for TokioFrames<R> {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            if !this.buf.is_empty() && (this.frame_left == 0 || this.remaining == 0) {
                return Poll::Ready(Some(Ok(this.take_frame())));
            }
            if this.remaining == 0 {
                this.reader = None;
                return Poll::Ready(None);
            }
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            if this.frame_left == 0 {
                let len = usize::try_from(this.remaining)
                    .map_or(this.frame_bytes, |r| r.min(this.frame_bytes));
                this.buf = BytesMut::with_capacity(len);
                this.frame_left = len;
            }
            let room =
                usize::try_from(this.remaining).map_or(this.frame_left, |r| r.min(this.frame_left));
            let before = this.buf.len();
            // `read_buf` reads into the spare capacity, at most `room` bytes (the limit keeps
            // `BytesMut` from growing). The future holds no state between polls, so making a
            // new one per poll is what a stored one would do.
            let polled = {
                let mut limited = (&mut this.buf).limit(room);
                let read = pin!(reader.read_buf(&mut limited));
                read.poll(cx)
            };
            match polled {
                Poll::Pending if this.buf.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Ok(this.take_frame()))),
                Poll::Ready(Ok(0)) => {
                    let read = this.limit - this.remaining;
                    return this.fail(ended_early(read, this.limit));
                }
                Poll::Ready(Ok(_)) => {
                    // Count what reached the buffer (at most `room`), not what the reader claimed.
                    let n = this.buf.len().saturating_sub(before);
                    this.frame_left = this.frame_left.saturating_sub(n);
                    this.remaining = this.remaining.saturating_sub(n as u64);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    cx.waker().wake_by_ref();
                    return if this.buf.is_empty() {
                        Poll::Pending
                    } else {
                        Poll::Ready(Some(Ok(this.take_frame())))
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
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 253) as u8).collect()
    }

    async fn frames(stream: ChunkStream) -> Vec<io::Result<Bytes>> {
        stream.collect().await
    }

    fn lens(frames: &[io::Result<Bytes>]) -> Vec<usize> {
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

    #[tokio::test]
    async fn reads_exactly_limit_bytes_in_full_frames() {
        let data = pattern(10_000);
        // A slice reader hands out everything at once; frames are cut at 4096 and the limit.
        let got = frames(from_tokio_read_with_frame(
            io::Cursor::new(data.clone()),
            9_000,
            4096,
        ))
        .await;
        assert_eq!(lens(&got), [4096, 4096, 808]);
        assert_eq!(concat(&got), data[..9_000]);

        let big = pattern(DEFAULT_FRAME_BYTES + 5);
        let got = frames(from_tokio_read(
            io::Cursor::new(big.clone()),
            big.len() as u64,
        ))
        .await;
        assert_eq!(lens(&got), [DEFAULT_FRAME_BYTES, 5]);
        assert_eq!(concat(&got), big);

        assert!(
            frames(from_tokio_read(io::Cursor::new(data), 0))
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_tcp_stream_is_read_up_to_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data = pattern(300_000);
        let sent = data.clone();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // In pieces, so that some reads find nothing ready. The reader is dropped at the
            // limit, so the writes past it may fail.
            for piece in sent.chunks(50_000) {
                if socket.write_all(piece).await.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        });
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let got = frames(from_tokio_read_with_frame(socket, 200_000, 64 * 1024)).await;
        server.await.unwrap();
        assert!(lens(&got).iter().all(|&n| n > 0 && n <= 64 * 1024));
        assert_eq!(concat(&got), data[..200_000]);
    }

    #[tokio::test]
    async fn a_waiting_reader_gets_its_bytes_yielded_from_one_buffer() {
        let (mut tx, rx) = tokio::io::duplex(1 << 16);
        let mut stream = from_tokio_read_with_frame(rx, 1000, 1000);
        tx.write_all(&[1; 300]).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.as_ref(), &[1; 300][..]);
        tx.write_all(&[2; 700]).await.unwrap();
        let second = stream.next().await.unwrap().unwrap();
        assert_eq!(second.as_ref(), &[2; 700][..]);
        assert_eq!(
            second.as_ptr(),
            first.as_ptr().wrapping_add(300),
            "the rest of the same buffer, no copy"
        );
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn an_early_end_is_an_unexpected_eof_naming_the_counts() {
        let got = frames(from_tokio_read_with_frame(
            io::Cursor::new(pattern(500)),
            800,
            300,
        ))
        .await;
        assert_eq!(got.len(), 3);
        assert_eq!(concat(&got), pattern(500));
        let error = got[2].as_ref().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            error.to_string(),
            "the reader ended after 500 of the 800 bytes to read"
        );
    }

    /// Yields `data`, then fails with `ConnectionReset`.
    struct Failing(Option<Vec<u8>>);

    impl AsyncRead for Failing {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.0.take() {
                Some(data) => {
                    buf.put_slice(&data[..data.len().min(buf.remaining())]);
                    Poll::Ready(Ok(()))
                }
                None => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "origin hung up",
                ))),
            }
        }
    }

    #[tokio::test]
    async fn a_read_error_follows_the_bytes_before_it_and_ends_the_stream() {
        let got = frames(from_tokio_read(Failing(Some(pattern(250))), 1000)).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().as_ref(), &pattern(250)[..]);
        let error = got[1].as_ref().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(error.to_string(), "origin hung up");
    }
}
