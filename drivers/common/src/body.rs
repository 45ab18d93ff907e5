//! Byte-count guards on both ends of the fill RPC, built on the core's
//! [`orca_cluster_core::fill::BodyCheck`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use orca_cluster_core::fill::{BodyCheck, FillCheckError};

use crate::error::FillError;

pin_project_lite::pin_project! {
    /// A fill response body whose length is verified: it yields the peer's bytes and ends with
    /// `Ok` only after exactly the expected number; otherwise its last item is
    /// [`FillError::Check`] (`Truncated` or `TooLong`; the over-long frame is not yielded).
    pub struct CheckedBody<S> {
        #[pin]
        inner: S,
        check: BodyCheck,
        done: bool,
        on_bytes: Option<Box<dyn Fn(u64, bool) + Send + Sync>>,
    }
}

impl<S> CheckedBody<S> {
    /// Wraps `inner`, expecting `expected_len` bytes.
    pub fn new(inner: S, expected_len: u64) -> Self {
        CheckedBody {
            inner,
            check: BodyCheck::new(expected_len),
            done: false,
            on_bytes: None,
        }
    }

    /// Calls `hook(len, finished_ok)` for every verified frame, and with `(0, true)` at a
    /// verified end (used for stats).
    pub fn with_hook(mut self, hook: impl Fn(u64, bool) + Send + Sync + 'static) -> Self {
        self.on_bytes = Some(Box::new(hook));
        self
    }

    /// Bytes expected in all.
    pub fn expected_len(&self) -> u64 {
        self.check.expected()
    }

    /// Bytes received and verified so far.
    pub fn received(&self) -> u64 {
        self.check.received()
    }
}

impl<S> Stream for CheckedBody<S>
where
    S: Stream<Item = Result<Bytes, FillError>>,
{
    type Item = Result<Bytes, FillError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => match this.check.on_data(bytes.len()) {
                Ok(()) => {
                    if let Some(hook) = this.on_bytes {
                        hook(bytes.len() as u64, false);
                    }
                    Poll::Ready(Some(Ok(bytes)))
                }
                Err(e) => {
                    *this.done = true;
                    Poll::Ready(Some(Err(FillError::Check(e))))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                *this.done = true;
                match this.check.on_end() {
                    Ok(()) => {
                        if let Some(hook) = this.on_bytes {
                            hook(0, true);
                        }
                        Poll::Ready(None)
                    }
                    Err(e) => Poll::Ready(Some(Err(FillError::Check(e)))),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The listener's guard on the application's filler stream: passes bytes through while
    /// counting them, and turns a short or long stream into an `io::Error` so the driver aborts
    /// the response instead of completing it with wrong bytes.
    pub struct CheckedFillerStream<S> {
        #[pin]
        inner: S,
        check: BodyCheck,
        done: bool,
    }
}

impl<S> CheckedFillerStream<S> {
    /// Wraps `inner`, which must yield exactly `expected_len` bytes.
    pub fn new(inner: S, expected_len: u64) -> Self {
        CheckedFillerStream {
            inner,
            check: BodyCheck::new(expected_len),
            done: false,
        }
    }
}

fn abort(e: FillCheckError) -> io::Error {
    io::Error::other(format!("filler stream rejected, response aborted: {e}"))
}

impl<S> Stream for CheckedFillerStream<S>
where
    S: Stream<Item = io::Result<Bytes>>,
{
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => match this.check.on_data(bytes.len()) {
                Ok(()) => Poll::Ready(Some(Ok(bytes))),
                Err(e) => {
                    *this.done = true;
                    Poll::Ready(Some(Err(abort(e))))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                *this.done = true;
                match this.check.on_end() {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(abort(e)))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{StreamExt, future::block_on, stream};

    fn chunks(sizes: &[usize]) -> Vec<Result<Bytes, FillError>> {
        sizes
            .iter()
            .map(|&n| Ok(Bytes::from(vec![7u8; n])))
            .collect()
    }

    #[test]
    fn checked_body_verifies_length() {
        let ok: Vec<_> = block_on(CheckedBody::new(stream::iter(chunks(&[3, 4])), 7).collect());
        assert!(ok.iter().all(Result::is_ok));
        let short: Vec<_> = block_on(CheckedBody::new(stream::iter(chunks(&[3])), 7).collect());
        assert!(matches!(
            short.last(),
            Some(Err(FillError::Check(FillCheckError::Truncated {
                got: 3,
                expected: 7
            })))
        ));
        let long: Vec<_> =
            block_on(CheckedBody::new(stream::iter(chunks(&[5, 5, 5])), 7).collect());
        assert_eq!(
            long.len(),
            2,
            "the over-long frame is replaced by the error, then the end"
        );
        assert!(matches!(
            long[1],
            Err(FillError::Check(FillCheckError::TooLong { .. }))
        ));
    }

    #[test]
    fn filler_guard_aborts_short_and_long_streams() {
        let items = |sizes: &[usize]| -> Vec<io::Result<Bytes>> {
            sizes
                .iter()
                .map(|&n| Ok(Bytes::from(vec![1u8; n])))
                .collect()
        };
        let ok: Vec<_> =
            block_on(CheckedFillerStream::new(stream::iter(items(&[2, 2])), 4).collect());
        assert!(ok.iter().all(Result::is_ok));
        let short: Vec<_> =
            block_on(CheckedFillerStream::new(stream::iter(items(&[2])), 4).collect());
        assert!(short.last().unwrap().is_err());
        let long: Vec<_> =
            block_on(CheckedFillerStream::new(stream::iter(items(&[3, 3])), 4).collect());
        assert!(long.last().unwrap().is_err());
    }
}
