//! [`FillerBody`]: the application's chunk stream as the listener sends it.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use orca_cluster_core::fill::BodyCheck;

use super::watch::FillSlot;
use crate::filler::ChunkStream;
use crate::limit::Permit;
use crate::metrics::{FillTrack, ListenerFailure};
use crate::state::ClusterState;
use crate::stats::Stats;

/// Empty frames taken from a filler in one poll before yielding to the runtime.
const MAX_EMPTY_FRAMES: usize = 64;

/// The body of a 200 fill response: the filler's bytes, checked against the chunk's length.
///
/// Rules, the same on both drivers:
/// - empty frames are skipped (at most 64 per poll, then the task yields instead of spinning);
/// - the frame that reaches the expected length is **held back until the filler's stream has
///   ended**, so a stream that runs long aborts the response before it looks complete (an
///   HTTP/1.1 peer stops reading at `Content-Length`);
/// - a stream that ends short, runs long or fails yields an `io::Error`: the driver aborts the
///   response (HTTP/2: stream reset; HTTP/1.1: connection closed), never completes it;
/// - `served_ok` is counted when the last frame is handed to the driver, `served_failed` when
///   the body fails or is dropped before that, `bytes_served` as frames are handed out; the
///   fill's metrics ([`crate::metrics`]) end at the same points: `ok`, `failed` (kind
///   `aborted_short`, `aborted_long` or `aborted_error`) or, dropped first, `cancelled`;
/// - the concurrency permit (and the connection's fill slot) is held until the body ends or is
///   dropped;
/// - between handing a frame to the driver and being asked for the next one, the body waits on
///   the client: the connection's watch closes the connection when that lasts
///   `send_timeout` (`ListenerSettings::send_timeout`).
pub struct FillerBody {
    stream: ChunkStream,
    check: BodyCheck,
    held: Option<Bytes>,
    permit: Option<Permit>,
    slot: Option<FillSlot>,
    state: Arc<ClusterState>,
    /// The fill's metrics: its outcome is recorded when the body ends or is dropped.
    track: FillTrack,
    ended: bool,
    done: bool,
}

impl fmt::Debug for FillerBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillerBody")
            .field("expected", &self.check.expected())
            .field("produced", &self.check.received())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl FillerBody {
    pub(crate) fn new(
        stream: ChunkStream,
        expected_len: u64,
        permit: Permit,
        slot: Option<FillSlot>,
        state: Arc<ClusterState>,
        track: FillTrack,
    ) -> FillerBody {
        // The driver has the response now: until it asks for bytes, the fill waits on it.
        if let Some(slot) = &slot {
            slot.handed_out();
        }
        FillerBody {
            stream,
            check: BodyCheck::new(expected_len),
            held: None,
            permit: Some(permit),
            slot,
            state,
            track,
            ended: false,
            done: false,
        }
    }

    /// The bytes the response declares (`Content-Length`).
    pub fn expected_len(&self) -> u64 {
        self.check.expected()
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> u64 {
        if self.done {
            return 0;
        }
        let held = self.held.as_ref().map_or(0, |b| b.len() as u64);
        self.check.expected() - self.check.received() + held
    }

    /// Whether the body has ended (completely, or with its error).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn abort(&mut self, kind: ListenerFailure, e: io::Error) -> Poll<Option<io::Result<Bytes>>> {
        self.done = true;
        self.held = None;
        self.permit = None;
        self.slot = None;
        Stats::incr(&self.state.stats().served_failed);
        self.track.failed(kind.name());
        tracing::warn!(
            event = "fill_aborted",
            error = %e,
            produced = self.check.received(),
            expected = self.check.expected(),
            "filler stream rejected; fill response aborted"
        );
        Poll::Ready(Some(Err(e)))
    }

    /// The next frame to send; see the type's docs. Polled inside the fill's `fill_serve` span.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let span = self.track.span().clone();
        let _in_span = span.enter();
        if let Some(slot) = &self.slot {
            slot.resumed();
        }
        let polled = self.next_frame(cx);
        if let (Poll::Ready(Some(Ok(_))), Some(slot)) = (&polled, &self.slot) {
            slot.handed_out();
        }
        polled
    }

    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.done {
            return Poll::Ready(None);
        }
        for _ in 0..MAX_EMPTY_FRAMES {
            if self.ended {
                self.done = true;
                self.permit = None;
                self.slot = None;
                let stats = self.state.stats();
                Stats::incr(&stats.served_ok);
                let last = self.held.take();
                if let Some(data) = &last {
                    Stats::add(&stats.bytes_served, data.len() as u64);
                    self.track.bytes(data.len());
                }
                self.track.ok();
                return Poll::Ready(last.map(Ok));
            }
            match self.stream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(data))) if data.is_empty() => continue,
                Poll::Ready(Some(Ok(data))) => {
                    if let Err(e) = self.check.on_data(data.len()) {
                        return self.abort(
                            ListenerFailure::AbortedLong,
                            io::Error::other(format!("filler stream: {e}")),
                        );
                    }
                    if self.check.received() == self.check.expected() {
                        self.held = Some(data);
                        continue;
                    }
                    Stats::add(&self.state.stats().bytes_served, data.len() as u64);
                    self.track.bytes(data.len());
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(e))) => return self.abort(ListenerFailure::AbortedError, e),
                Poll::Ready(None) => match self.check.on_end() {
                    Ok(()) => self.ended = true,
                    Err(e) => {
                        return self.abort(
                            ListenerFailure::AbortedShort,
                            io::Error::other(format!("filler stream: {e}")),
                        );
                    }
                },
            }
        }
        // Many empty frames in a row: yield to the runtime instead of spinning.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Stream for FillerBody {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_frame(cx)
    }
}

impl Drop for FillerBody {
    fn drop(&mut self) {
        if !self.done {
            Stats::incr(&self.state.stats().served_failed);
            let _in_span = self.track.span().enter();
            tracing::debug!(
                event = "fill_abandoned",
                remaining = self.remaining(),
                "fill response dropped before its end (client went away?)"
            );
        }
    }
}
