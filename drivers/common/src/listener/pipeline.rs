//! [`FillPipeline`]: what the listener does with one request, the same on both drivers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use orca_cluster_core::admission::{
    FILL_CONTENT_TYPE, FILL_FAILED_BODY, FILL_FAILED_STATUS, FillRequestHead, OVERLOADED_BODY,
    OVERLOADED_STATUS, Rejection, admit,
};
use orca_cluster_core::h1::HeadError;
use orca_cluster_core::wire::{FillQuery, decode_query};
use tracing::Instrument;
use tracing::field::Empty;

use super::ListenerSettings;
use super::filler_body::FillerBody;
use super::watch::{ConnectionWatch, FillSlot};
use crate::filler::{DynFiller, FillRequest, Filler};
use crate::limit::ConcurrencyLimit;
use crate::metrics::{self, FillTrack, ListenerFailure, Refusal, Role};
use crate::state::ClusterState;
use crate::stats::Stats;

/// Content type of the plain-text error bodies.
const TEXT: &str = "text/plain; charset=utf-8";

/// A short answer with a fixed body (every non-200 answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedReply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The `Allow` field (on 405).
    pub allow: Option<&'static str>,
    /// The body (`Content-Length` is its length).
    pub body: Bytes,
}

impl FixedReply {
    fn text(status: u16, body: &'static str) -> FixedReply {
        FixedReply {
            status,
            content_type: TEXT,
            allow: None,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    /// The answer to a request head the HTTP layer refuses (the core's codec, or the same rule
    /// applied to hyper's parse): 400, or 431 for a head too large; the connection is then
    /// closed.
    pub fn bad_head(e: &HeadError) -> FixedReply {
        FixedReply {
            status: e.status(),
            content_type: TEXT,
            allow: None,
            body: Bytes::from(format!("bad request head: {e}\n")),
        }
    }

    fn rejection(r: &Rejection) -> FixedReply {
        FixedReply {
            status: r.status(),
            content_type: r.content_type(),
            allow: r.allow(),
            body: Bytes::from(r.body().into_owned()),
        }
    }
}

/// The answer to one request: a fixed reply, or 200 with `Content-Type:
/// application/octet-stream`, `Content-Length: body.expected_len()` and the filler's bytes.
#[derive(Debug)]
pub enum Reply {
    /// A fixed answer (404, 405, 400, 409, 502, 503).
    Fixed(FixedReply),
    /// 200 with the chunk.
    Fill(FillerBody),
}

impl Reply {
    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Reply::Fixed(f) => f.status,
            Reply::Fill(_) => 200,
        }
    }

    /// The `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        match self {
            Reply::Fixed(f) => f.content_type,
            Reply::Fill(_) => FILL_CONTENT_TYPE,
        }
    }

    /// The `Content-Length`.
    pub fn content_length(&self) -> u64 {
        match self {
            Reply::Fixed(f) => f.body.len() as u64,
            Reply::Fill(body) => body.expected_len(),
        }
    }
}

/// The future of [`FillPipeline::respond`].
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// Serves `GET /internal/fill` for the application's [`Filler`]. Cheap to clone (clones share
/// the filler and the concurrency limit).
///
/// Per request, in this order: the core's admission checks against the cluster's current
/// snapshot (404 wrong path, 405 not `GET`, 400 no single `x-orca-internal: 1`, 400 naming a
/// bad query parameter or a `chunk_size` above the cluster's `max_chunk_size`, 409 `{"reason":"not_coordinator"}`); then 503 if
/// [`ListenerSettings::max_concurrent`] fills are already being served; then the filler (its
/// error: 502 `fill failed`); then 200 with the filler's bytes behind [`FillerBody`].
///
/// Metrics ([`crate::metrics`]): each refusal is counted by reason; an admitted request that
/// got its slot is a listener fill from then on, ending `ok`, `failed` (`filler_error`, or the
/// body's abort) or `cancelled` (the reply future or the body dropped before the end).
///
/// Tracing: each request runs in an INFO span named `fill_serve` (the pipeline's events, the
/// filler call and the polls of the [`FillerBody`] happen inside it) with the chunk key fields
/// of the admitted query, or of a 409's (`origin_id`, `bucket`, `object_key`, `etag`,
/// `chunk_size`, `index`) and `object_size`, then `outcome` (`refused` with its `reason`; or `ok`, `failed` with its
/// `kind`, `cancelled`) and `bytes`.
#[derive(Clone)]
pub struct FillPipeline {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<ClusterState>,
    filler: Arc<dyn DynFiller>,
    limit: ConcurrencyLimit,
    max_header_bytes: usize,
}

impl fmt::Debug for FillPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillPipeline")
            .field("in_flight", &self.inner.limit.in_use())
            .field("max_concurrent", &self.inner.limit.max())
            .finish_non_exhaustive()
    }
}

impl FillPipeline {
    /// A pipeline answering for `state`'s current snapshot with `filler`, at most
    /// `settings.max_concurrent` fills at once.
    pub fn new(
        state: Arc<ClusterState>,
        filler: impl Filler,
        settings: &ListenerSettings,
    ) -> FillPipeline {
        FillPipeline {
            inner: Arc::new(Inner {
                state,
                filler: Arc::new(filler),
                limit: ConcurrencyLimit::new(settings.max_concurrent),
                max_header_bytes: settings.max_header_bytes,
            }),
        }
    }

    /// Fills being served right now (each holds a permit until its body ends).
    pub fn in_flight(&self) -> usize {
        self.inner.limit.in_use()
    }

    /// The concurrency limit.
    pub fn max_concurrent(&self) -> usize {
        self.inner.limit.max()
    }

    /// The largest request head accepted, in bytes ([`ListenerSettings::max_header_bytes`]).
    pub fn max_header_bytes(&self) -> usize {
        self.inner.max_header_bytes
    }

    fn refuse(&self, span: &tracing::Span, reason: Refusal, reply: FixedReply) -> ReplyFuture {
        Stats::incr(&self.inner.state.stats().served_failed);
        metrics::refused(reason);
        span.record("outcome", "refused");
        span.record("reason", reason.name());
        Box::pin(std::future::ready(Reply::Fixed(reply)))
    }

    /// Answers the request `head`. Admission and the concurrency limit are decided before this
    /// returns (the head is not borrowed by the future); the future calls the filler. No
    /// per-connection limit or send timeout applies (the fill listener answers through
    /// [`FillPipeline::respond_on`]).
    pub fn respond(&self, head: &FillRequestHead<'_>) -> ReplyFuture {
        self.answer(head, None)
    }

    /// Answers the request `head` of the connection `watch` watches, as
    /// [`FillPipeline::respond`] does, after one more check: 503 when the connection already
    /// has `max_concurrent_per_connection` fills in flight. The response body reports to
    /// `watch` whether it waits on the client (the send timeout).
    pub fn respond_on(&self, head: &FillRequestHead<'_>, watch: &ConnectionWatch) -> ReplyFuture {
        self.answer(head, Some(watch))
    }

    fn overloaded(&self, span: &tracing::Span, scope: &'static str, max: usize) -> ReplyFuture {
        tracing::debug!(
            event = "fill_overloaded",
            scope,
            max,
            "fill request refused: at the concurrency limit"
        );
        self.refuse(
            span,
            Refusal::Overloaded,
            FixedReply::text(OVERLOADED_STATUS, OVERLOADED_BODY),
        )
    }

    /// The answer to a request head the driver's HTTP layer refuses ([`FixedReply::bad_head`]:
    /// 400, or 431 for a head too large; the driver then closes the connection), counted as a
    /// refusal of this listener (`reason="bad_head"` in [`metrics::REFUSALS`]).
    pub fn refuse_head(&self, e: &HeadError) -> FixedReply {
        metrics::refused(Refusal::BadHead);
        FixedReply::bad_head(e)
    }

    fn answer(&self, head: &FillRequestHead<'_>, watch: Option<&ConnectionWatch>) -> ReplyFuture {
        let inner = &self.inner;
        // Every request runs in a `fill_serve` span: its key fields once admitted, its outcome
        // (`refused` with a `reason`, or the fill's) at the end.
        let span = tracing::info_span!(
            "fill_serve",
            origin_id = Empty,
            bucket = Empty,
            object_key = Empty,
            etag = Empty,
            chunk_size = Empty,
            index = Empty,
            object_size = Empty,
            outcome = Empty,
            reason = Empty,
            kind = Empty,
            bytes = Empty,
        );
        let _in_span = span.enter();
        let admitted = match admit(head, &inner.state.peers(), inner.state.max_chunk_size()) {
            Ok(a) => a,
            Err(r) => {
                if r == Rejection::NotCoordinator {
                    // A valid query for another coordinator: which chunk is worth tracing
                    // (membership disagreement). Admission decoded it already; this decodes
                    // the query part again only for 409s.
                    let query = head.target.split_once('?').map_or("", |(_, q)| q);
                    if let Ok(query) = decode_query(query) {
                        record_key(&span, &query);
                    }
                }
                tracing::debug!(event = "fill_rejected", status = r.status(), reason = %r, "fill request rejected");
                return self.refuse(&span, Refusal::of(&r), FixedReply::rejection(&r));
            }
        };
        record_key(&span, &admitted.query);
        let slot: Option<FillSlot> = match watch {
            None => None,
            Some(watch) => match watch.try_fill_slot() {
                Some(slot) => Some(slot),
                None => return self.overloaded(&span, "connection", watch.max_fills()),
            },
        };
        let Some(permit) = inner.limit.try_acquire() else {
            return self.overloaded(&span, "listener", inner.limit.max());
        };
        let inner = inner.clone();
        // The fill has started: it ends in one outcome, `cancelled` if this future or the
        // response body is dropped first.
        let mut track = FillTrack::start(Role::Listener, span.clone());
        let in_span = span.clone();
        Box::pin(async move {
            let expected_len = admitted.expected_len;
            let request = FillRequest {
                key: admitted.query.key,
                object_size: admitted.query.object_size,
                expected_len,
            };
            match inner.filler.fill_dyn(request).await {
                Ok(stream) => Reply::Fill(FillerBody::new(
                    stream,
                    expected_len,
                    permit,
                    slot,
                    inner.state.clone(),
                    track,
                )),
                Err(e) => {
                    Stats::incr(&inner.state.stats().served_failed);
                    track.failed(ListenerFailure::FillerError.name());
                    tracing::warn!(event = "filler_failed", error = %e, "filler failed; answering 502");
                    Reply::Fixed(FixedReply::text(FILL_FAILED_STATUS, FILL_FAILED_BODY))
                }
            }
        }
        .instrument(in_span))
    }
}

/// Records the chunk key and object size of `query` on a `fill_serve` span.
fn record_key(span: &tracing::Span, query: &FillQuery) {
    let key = &query.key;
    span.record("origin_id", key.origin_id.as_str());
    span.record("bucket", key.bucket.as_str());
    span.record("object_key", key.object_key.as_str());
    span.record("etag", key.etag.as_str());
    span.record("chunk_size", key.chunk_size);
    span.record("index", key.index);
    span.record("object_size", query.object_size);
}
