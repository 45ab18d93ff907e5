//! The body of a successful fill response: the application's stream behind
//! [`CheckedFillerStream`], with the last frame held back until the stream has reported its end.
//!
//! Holding the last frame back means a stream that runs long never completes the response,
//! even when its extra bytes come after exactly `expected_len` good ones. Any error — short,
//! long or failed stream — makes the connection task drop the connection mid-body: the peer
//! sees a truncated response, never a complete one with wrong bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use orca_cluster_driver_common::{CheckedFillerStream, ChunkStream, ClusterState, Permit, Stats};

/// See the module docs. Holds the concurrency permit until dropped; counts `served_ok`,
/// `served_failed` and `bytes_served`.
pub(crate) struct FillerBody {
    stream: CheckedFillerStream<ChunkStream>,
    held: Option<Bytes>,
    counted: u64,
    expected: u64,
    ended: bool,
    settled: bool,
    state: Arc<ClusterState>,
    _permit: Permit,
}

impl FillerBody {
    pub(crate) fn new(
        stream: ChunkStream,
        expected: u64,
        state: Arc<ClusterState>,
        permit: Permit,
    ) -> FillerBody {
        FillerBody {
            stream: CheckedFillerStream::new(stream, expected),
            held: None,
            counted: 0,
            expected,
            ended: false,
            settled: false,
            state,
            _permit: permit,
        }
    }

    /// Bytes the response declares (`Content-Length`).
    pub(crate) fn expected_len(&self) -> u64 {
        self.expected
    }

    /// Counts `n` bytes written to the peer.
    pub(crate) fn sent(&self, n: usize) {
        Stats::add(&self.state.stats().bytes_served, n as u64);
    }

    /// The whole body was written.
    pub(crate) fn finished(&mut self) {
        if !self.settled {
            self.settled = true;
            Stats::incr(&self.state.stats().served_ok);
        }
    }
}

impl Drop for FillerBody {
    fn drop(&mut self) {
        // Dropped before `finished`: the stream failed, the peer left, or shutdown forced it.
        if !self.settled {
            Stats::incr(&self.state.stats().served_failed);
        }
    }
}

impl Stream for FillerBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(this.held.take().map(Ok));
            }
            match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if frame.is_empty() {
                        continue;
                    }
                    this.counted += frame.len() as u64;
                    if this.counted < this.expected {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    // The last frame waits for the stream to confirm its end.
                    this.held = Some(frame);
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(
                        event = "fill_response_aborted",
                        error = %e,
                        produced = this.counted,
                        expected = this.expected,
                        "filler stream failed; closing the connection mid-response"
                    );
                    this.ended = true;
                    this.held = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => this.ended = true,
            }
        }
    }
}
