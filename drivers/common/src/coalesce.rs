//! [`CoalescingFiller`]: concurrent fills of one chunk share one call of the inner filler.
//!
//! A replica that coordinates a chunk may be asked for it many times at once (by several peers
//! through the listener, and by its own read path). Without coalescing, every request reads the
//! origin. The wrapper keeps one shared entry per chunk in flight: the first fill of a chunk
//! creates it, later fills join it, and every waiter reads the same frames as they arrive.
//!
//! There is no background task and no runtime: the inner filler's future, then its stream, live
//! in the entry and are polled by whichever waiter needs more bytes. They are polled with a waker
//! of the entry, which wakes every parked waiter, so no waiter owns the upstream and any of them
//! can take over when another goes away (see `ARCHITECTURE.md`, "Coalescing").

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures_core::Stream;
use orca_cluster_core::ChunkKey;

use crate::filler::{ChunkStream, FillRequest, Filler, FillerError};

/// Consecutive empty frames one poll of a waiter takes from the upstream before it yields to the
/// runtime (a stream of empty frames must not spin a task forever).
const MAX_EMPTY_FRAMES: usize = 64;

/// The inner filler's future, before it has produced a stream.
type StartFuture = Pin<Box<dyn Future<Output = Result<ChunkStream, FillerError>> + Send + 'static>>;

/// The inner filler's future, owning (a reference to) the filler so that it can live in the
/// shared entry, whichever waiter created it.
fn start_future<F: Filler>(filler: Arc<F>, request: FillRequest) -> StartFuture {
    Box::pin(async move { filler.fill(request).await })
}

/// A [`Filler`] wrapper that calls the inner filler once for concurrent fills of the same chunk.
///
/// **What is shared.** Two fills share one call when their [`FillRequest`]s are equal: the same
/// [`ChunkKey`] (every field: origin, bucket, object key, ETag, chunk size, index), the same
/// `object_size` and the same `expected_len`. A fill joins the shared fill when
/// [`Filler::fill`] is called on the wrapper (not when its future is first polled), as long as
/// the inner filler's stream has not ended; a fill that starts after the stream ended or failed
/// calls the inner filler again (this is not a cache).
///
/// **Streaming.** Every waiter receives the frames exactly as the inner stream yielded them (the
/// same [`Bytes`], not copied; empty frames are dropped), as they arrive. A late joiner first
/// receives every frame produced so far, then the rest. The fill future of every waiter resolves
/// once the inner filler's future has produced a stream.
///
/// **Memory.** One entry per chunk in flight; it keeps the frames produced so far (a list of
/// `Bytes`), so at most one chunk (`expected_len` bytes, plus the frame that crosses it) per
/// chunk in flight. The entry leaves the wrapper when the inner stream ends or fails; its frames
/// are freed when the last of its waiters is dropped.
///
/// **Who drives the upstream.** No task is spawned: the inner future, then the inner stream, are
/// polled by whichever waiter needs more bytes, never under a lock. A waiter that goes away does
/// not cancel the others: the next waiter that polls drives the upstream. When the last waiter
/// goes away (its fill future or its stream dropped), the inner future or stream is dropped at
/// once and the entry removed, so a later fill starts afresh.
///
/// **Failures.** An error from the inner filler's future fails every waiter's fill future with a
/// [`SharedFillError`] (stage [`SharedFillStage::Start`]). An error item from the inner stream
/// fails every waiter's stream after the frames before it, with an `io::Error` of the same
/// [`io::ErrorKind`] wrapping a [`SharedFillError`] (stage [`SharedFillStage::Stream`]). Both
/// keep the inner error as [`Error::source`] and its message in their own. A stream that yields
/// more than `expected_len` bytes is stopped there and fails the same way (`InvalidData`);
/// checking that the stream yields exactly `expected_len` bytes is left to the consumer (the
/// listener's `FillerBody`). A panic of the inner filler while a waiter polls it fails the other
/// waiters (`the inner filler panicked`) instead of leaving them waiting.
///
/// Clones share the same entries (one coalescing scope); wrap a filler once and clone the
/// wrapper wherever fills start (the listener and the local read path).
pub struct CoalescingFiller<F> {
    inner: Arc<F>,
    registry: Arc<Registry>,
}

impl<F: Filler> CoalescingFiller<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> CoalescingFiller<F> {
        CoalescingFiller::from_arc(Arc::new(inner))
    }

    /// Wraps an inner filler that is shared with other code.
    pub fn from_arc(inner: Arc<F>) -> CoalescingFiller<F> {
        CoalescingFiller {
            inner,
            registry: Arc::new(Registry {
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The inner filler.
    pub fn inner(&self) -> &F {
        &self.inner
    }
}

impl<F> CoalescingFiller<F> {
    /// How many chunks have a shared fill in flight: entries are created by the first fill of a
    /// chunk and removed when the inner stream ends or fails, or when all their waiters are gone.
    pub fn in_flight_keys(&self) -> usize {
        lock(&self.registry.entries).len()
    }
}

impl<F> Clone for CoalescingFiller<F> {
    fn clone(&self) -> Self {
        CoalescingFiller {
            inner: Arc::clone(&self.inner),
            registry: Arc::clone(&self.registry),
        }
    }
}

impl<F> fmt::Debug for CoalescingFiller<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalescingFiller")
            .field("in_flight_keys", &self.in_flight_keys())
            .finish_non_exhaustive()
    }
}

impl<F: Filler> Filler for CoalescingFiller<F> {
    /// Joins (or starts) the shared fill of `request`'s chunk now, when called; the future
    /// does not borrow the wrapper (`'static`, a promise beyond the trait's).
    #[allow(refining_impl_trait)]
    fn fill(
        &self,
        request: FillRequest,
    ) -> impl Future<Output = Result<ChunkStream, FillerError>> + Send + 'static {
        let ticket = Registry::join(&self.registry, request);
        Join {
            filler: Arc::clone(&self.inner),
            ticket: Some(ticket),
        }
    }
}

/// Where a shared fill failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedFillStage {
    /// The inner filler's future failed (or panicked) before it produced a stream.
    Start,
    /// The inner filler's stream yielded an error (or ran past `expected_len`, or panicked).
    Stream,
}

/// The error every waiter of a failed shared fill receives (see [`CoalescingFiller`]).
///
/// Its message names the shared fill and the stage, followed by the inner error's message; the
/// inner error is its [`Error::source`].
#[derive(Clone, Debug)]
pub struct SharedFillError {
    stage: SharedFillStage,
    source: Arc<dyn Error + Send + Sync + 'static>,
}

impl SharedFillError {
    fn new(stage: SharedFillStage, source: Arc<dyn Error + Send + Sync + 'static>) -> Self {
        SharedFillError { stage, source }
    }

    /// Where the shared fill failed.
    pub fn stage(&self) -> SharedFillStage {
        self.stage
    }

    /// The kind of the inner error when it is an `io::Error`, else `Other`; the kind of the
    /// `io::Error` a waiter's stream yields.
    pub fn io_kind(&self) -> io::ErrorKind {
        self.source
            .downcast_ref::<io::Error>()
            .map_or(io::ErrorKind::Other, io::Error::kind)
    }

    fn to_io(&self) -> io::Error {
        io::Error::new(self.io_kind(), self.clone())
    }
}

impl fmt::Display for SharedFillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            SharedFillStage::Start => "while starting",
            SharedFillStage::Stream => "while streaming",
        };
        write!(f, "shared fill failed {stage}: {}", self.source)
    }
}

impl Error for SharedFillError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// Locks `mutex`, recovering the data if a thread panicked while holding it (no user code runs
/// under these locks, so the data is consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// What identifies a chunk for coalescing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ChunkId {
    key: ChunkKey,
    object_size: u64,
    expected_len: u64,
}

/// The shared entries, one per chunk in flight.
struct Registry {
    entries: Mutex<HashMap<ChunkId, Arc<Entry>>>,
}

impl Registry {
    /// Joins the shared fill of `request`'s chunk, creating it when there is none (or only one
    /// that has ended). Lock order: the registry, then an entry; never the other way round.
    fn join(registry: &Arc<Registry>, request: FillRequest) -> Ticket {
        let id = ChunkId {
            key: request.key.clone(),
            object_size: request.object_size,
            expected_len: request.expected_len,
        };
        let mut entries = lock(&registry.entries);
        if let Some(entry) = entries.get(&id) {
            let mut shared = lock(&entry.shared);
            if shared.upstream.is_joinable() {
                let waiter = shared.next_waiter;
                shared.next_waiter = shared.next_waiter.wrapping_add(1);
                shared.waiters = shared.waiters.saturating_add(1);
                drop(shared);
                return Ticket {
                    entry: Arc::clone(entry),
                    registry: Arc::clone(registry),
                    waiter,
                };
            }
        }
        let entry = Entry::new(id.clone(), request);
        let replaced = entries.insert(id, Arc::clone(&entry));
        drop(entries);
        drop(replaced);
        Ticket {
            entry,
            registry: Arc::clone(registry),
            waiter: 0,
        }
    }

    /// Removes `entry` if it is still the registered one for its chunk.
    fn forget(&self, entry: &Arc<Entry>) {
        let mut entries = lock(&self.entries);
        let removed = match entries.get(&entry.id) {
            Some(current) if Arc::ptr_eq(current, entry) => entries.remove(&entry.id),
            _ => None,
        };
        drop(entries);
        drop(removed);
    }
}

/// One shared fill.
struct Entry {
    id: ChunkId,
    shared: Mutex<Shared>,
    /// The waker the upstream is polled with: wakes every parked waiter.
    upstream_waker: Waker,
}

impl Entry {
    fn new(id: ChunkId, request: FillRequest) -> Arc<Entry> {
        Arc::new_cyclic(|weak| Entry {
            id,
            shared: Mutex::new(Shared {
                upstream: Upstream::Idle(request),
                streaming: false,
                frames: Vec::new(),
                buffered: 0,
                waiters: 1,
                next_waiter: 1,
                parked: HashMap::new(),
            }),
            upstream_waker: Waker::from(Arc::new(EntryWaker(weak.clone()))),
        })
    }
}

struct Shared {
    upstream: Upstream,
    /// The inner filler's future has produced a stream (the waiters' fill futures resolve).
    streaming: bool,
    /// Every non-empty frame produced so far, in order.
    frames: Vec<Bytes>,
    /// Total bytes in `frames`.
    buffered: u64,
    /// Live tickets.
    waiters: usize,
    next_waiter: u64,
    /// Wakers of waiters that returned `Pending`, by waiter.
    parked: HashMap<u64, Waker>,
}

impl Shared {
    fn park(&mut self, waiter: u64, cx: &Context<'_>) {
        self.parked
            .entry(waiter)
            .and_modify(|w| w.clone_from(cx.waker()))
            .or_insert_with(|| cx.waker().clone());
    }

    /// Takes every parked waker, dropping (not waking) the one of `except`.
    fn take_parked(&mut self, except: Option<u64>) -> Vec<Waker> {
        mem::take(&mut self.parked)
            .into_iter()
            .filter(|(waiter, _)| Some(*waiter) != except)
            .map(|(_, waker)| waker)
            .collect()
    }
}

enum Upstream {
    /// Nobody has called the inner filler yet.
    Idle(FillRequest),
    /// The inner filler's future, not yet resolved.
    Starting(StartFuture),
    /// The inner filler's stream.
    Streaming(ChunkStream),
    /// Taken out by the waiter polling it right now.
    Driving,
    /// The stream ended.
    Ended,
    /// The future or the stream failed.
    Failed(SharedFillError),
    /// Every waiter went away; the upstream was dropped.
    Abandoned,
}

impl Upstream {
    fn is_joinable(&self) -> bool {
        matches!(
            self,
            Upstream::Idle(_) | Upstream::Starting(_) | Upstream::Streaming(_) | Upstream::Driving
        )
    }
}

/// The upstream's waker: wakes every parked waiter, so whichever runs first drives the upstream.
/// Holds the entry weakly (the entry holds the upstream, which holds this waker).
struct EntryWaker(Weak<Entry>);

impl Wake for EntryWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(entry) = self.0.upgrade() {
            let wakers = lock(&entry.shared).take_parked(None);
            wake_all(wakers);
        }
    }
}

/// One waiter's membership of a shared fill: counted from `Filler::fill` until the fill future
/// fails or is dropped, or the stream it produced is dropped.
struct Ticket {
    entry: Arc<Entry>,
    registry: Arc<Registry>,
    waiter: u64,
}

impl Ticket {
    /// Ends the shared fill with `end` (`Ended` or `Failed`): removes the entry from the registry
    /// and wakes every parked waiter but `except`.
    fn finish(&self, end: Upstream, except: Option<u64>) {
        let mut shared = lock(&self.entry.shared);
        let old = mem::replace(&mut shared.upstream, end);
        let wakers = shared.take_parked(except);
        drop(shared);
        self.registry.forget(&self.entry);
        drop(old);
        wake_all(wakers);
    }

    /// Puts back the upstream this waiter took out (unless the entry has ended meanwhile, which
    /// only a panic guard can do).
    fn restore(&self, upstream: Upstream) {
        let mut shared = lock(&self.entry.shared);
        if matches!(shared.upstream, Upstream::Driving) {
            shared.upstream = upstream;
            drop(shared);
        } else {
            drop(shared);
            drop(upstream);
        }
    }

    /// Drives the inner filler's future until it produced a stream (`Ok`) or failed.
    fn poll_start<F: Filler>(
        &self,
        filler: &Arc<F>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SharedFillError>> {
        let mut shared = lock(&self.entry.shared);
        if shared.streaming {
            shared.parked.remove(&self.waiter);
            return Poll::Ready(Ok(()));
        }
        let mut start = match mem::replace(&mut shared.upstream, Upstream::Driving) {
            Upstream::Idle(request) => {
                shared.park(self.waiter, cx);
                drop(shared);
                let guard = PanicGuard::new(self, SharedFillStage::Start);
                let start = start_future(Arc::clone(filler), request);
                guard.disarm();
                start
            }
            Upstream::Starting(start) => {
                shared.park(self.waiter, cx);
                drop(shared);
                start
            }
            Upstream::Driving => {
                shared.park(self.waiter, cx);
                return Poll::Pending;
            }
            Upstream::Failed(error) => {
                shared.upstream = Upstream::Failed(error.clone());
                shared.parked.remove(&self.waiter);
                return Poll::Ready(Err(error));
            }
            other @ (Upstream::Streaming(_) | Upstream::Ended | Upstream::Abandoned) => {
                // Not reachable while this ticket is counted (a stream sets `streaming`, and an
                // entry is abandoned only without waiters); fail rather than wait forever.
                shared.upstream = other;
                shared.parked.remove(&self.waiter);
                return Poll::Ready(Err(inconsistent(SharedFillStage::Start)));
            }
        };
        let guard = PanicGuard::new(self, SharedFillStage::Start);
        let polled = start
            .as_mut()
            .poll(&mut Context::from_waker(&self.entry.upstream_waker));
        guard.disarm();
        match polled {
            Poll::Pending => {
                self.restore(Upstream::Starting(start));
                Poll::Pending
            }
            Poll::Ready(Ok(stream)) => {
                let mut shared = lock(&self.entry.shared);
                shared.streaming = true;
                let old = mem::replace(&mut shared.upstream, Upstream::Streaming(stream));
                let wakers = shared.take_parked(Some(self.waiter));
                drop(shared);
                drop(old);
                wake_all(wakers);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => {
                let error = SharedFillError::new(SharedFillStage::Start, Arc::from(error));
                self.finish(Upstream::Failed(error.clone()), Some(self.waiter));
                Poll::Ready(Err(error))
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut shared = lock(&self.entry.shared);
        shared.parked.remove(&self.waiter);
        shared.waiters = shared.waiters.saturating_sub(1);
        if shared.waiters == 0 {
            // The last waiter: drop the upstream now, so a later fill starts afresh.
            let upstream = mem::replace(&mut shared.upstream, Upstream::Abandoned);
            let frames = mem::take(&mut shared.frames);
            shared.buffered = 0;
            drop(shared);
            self.registry.forget(&self.entry);
            drop(upstream);
            drop(frames);
        }
        // Otherwise nothing to hand over: every wake-up of the upstream wakes every parked
        // waiter, and a waiter that was not parked polls again by itself, so no wake-up the
        // others need can be lost with this one.
    }
}

fn inconsistent(stage: SharedFillStage) -> SharedFillError {
    SharedFillError::new(
        stage,
        Arc::new(io::Error::other(
            "the shared fill is in an inconsistent state",
        )),
    )
}

/// Fails the shared fill if the inner filler panics while this waiter polls it, so the other
/// waiters get an error instead of waiting for an upstream that is gone.
struct PanicGuard<'a> {
    ticket: &'a Ticket,
    stage: SharedFillStage,
    armed: bool,
}

impl<'a> PanicGuard<'a> {
    fn new(ticket: &'a Ticket, stage: SharedFillStage) -> Self {
        PanicGuard {
            ticket,
            stage,
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let error = SharedFillError::new(
                self.stage,
                Arc::new(io::Error::other("the inner filler panicked")),
            );
            self.ticket.finish(Upstream::Failed(error), None);
        }
    }
}

/// A waiter's fill future: resolves with the waiter's stream once the shared inner future has
/// produced one.
struct Join<F> {
    filler: Arc<F>,
    ticket: Option<Ticket>,
}

impl<F: Filler> Future for Join<F> {
    type Output = Result<ChunkStream, FillerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(ticket) = this.ticket.as_ref() else {
            return Poll::Ready(Err(FillerError::from(
                "coalesced fill future polled after completion",
            )));
        };
        match ticket.poll_start(&this.filler, cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => match this.ticket.take() {
                Some(ticket) => Poll::Ready(Ok(Box::pin(SharedStream {
                    ticket,
                    cursor: 0,
                    finished: false,
                }))),
                None => Poll::Ready(Err(FillerError::from(
                    "coalesced fill future polled after completion",
                ))),
            },
            Poll::Ready(Err(error)) => {
                this.ticket = None;
                Poll::Ready(Err(Box::new(error)))
            }
        }
    }
}

/// A waiter's stream: the shared frames from the first, then the upstream's end or error.
struct SharedStream {
    ticket: Ticket,
    /// Index of the next frame this waiter yields.
    cursor: usize,
    /// The end or the error has been yielded.
    finished: bool,
}

impl Stream for SharedStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let ticket = &this.ticket;
        let waiter = ticket.waiter;
        let mut empty_frames = 0;
        loop {
            let mut shared = lock(&ticket.entry.shared);
            if let Some(frame) = shared.frames.get(this.cursor) {
                let frame = frame.clone();
                shared.parked.remove(&waiter);
                this.cursor += 1;
                return Poll::Ready(Some(Ok(frame)));
            }
            let mut stream = match mem::replace(&mut shared.upstream, Upstream::Driving) {
                Upstream::Streaming(stream) => {
                    shared.park(waiter, cx);
                    drop(shared);
                    stream
                }
                Upstream::Driving => {
                    shared.park(waiter, cx);
                    return Poll::Pending;
                }
                Upstream::Ended => {
                    shared.upstream = Upstream::Ended;
                    shared.parked.remove(&waiter);
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Upstream::Failed(error) => {
                    shared.upstream = Upstream::Failed(error.clone());
                    shared.parked.remove(&waiter);
                    this.finished = true;
                    return Poll::Ready(Some(Err(error.to_io())));
                }
                other @ (Upstream::Idle(_) | Upstream::Starting(_) | Upstream::Abandoned) => {
                    // Not reachable: a stream exists only after the start, and an entry is
                    // abandoned only without waiters. Fail rather than wait forever.
                    shared.upstream = other;
                    shared.parked.remove(&waiter);
                    this.finished = true;
                    return Poll::Ready(Some(Err(inconsistent(SharedFillStage::Stream).to_io())));
                }
            };
            let guard = PanicGuard::new(ticket, SharedFillStage::Stream);
            let polled = stream
                .as_mut()
                .poll_next(&mut Context::from_waker(&ticket.entry.upstream_waker));
            guard.disarm();
            match polled {
                Poll::Pending => {
                    ticket.restore(Upstream::Streaming(stream));
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) if frame.is_empty() => {
                    ticket.restore(Upstream::Streaming(stream));
                    empty_frames += 1;
                    if empty_frames >= MAX_EMPTY_FRAMES {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let mut shared = lock(&ticket.entry.shared);
                    let len = u64::try_from(frame.len()).unwrap_or(u64::MAX);
                    shared.buffered = shared.buffered.saturating_add(len);
                    shared.frames.push(frame);
                    if shared.buffered > ticket.entry.id.expected_len {
                        let message = format!(
                            "the inner stream yielded {} bytes, more than expected_len {}",
                            shared.buffered, ticket.entry.id.expected_len
                        );
                        drop(shared);
                        let error = SharedFillError::new(
                            SharedFillStage::Stream,
                            Arc::new(io::Error::new(io::ErrorKind::InvalidData, message)),
                        );
                        ticket.finish(Upstream::Failed(error), Some(waiter));
                        drop(stream);
                    } else {
                        let wakers = shared.take_parked(Some(waiter));
                        if matches!(shared.upstream, Upstream::Driving) {
                            shared.upstream = Upstream::Streaming(stream);
                            drop(shared);
                        } else {
                            drop(shared);
                            drop(stream);
                        }
                        wake_all(wakers);
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    let error = SharedFillError::new(SharedFillStage::Stream, Arc::new(error));
                    ticket.finish(Upstream::Failed(error), Some(waiter));
                    drop(stream);
                }
                Poll::Ready(None) => {
                    ticket.finish(Upstream::Ended, Some(waiter));
                    drop(stream);
                }
            }
        }
    }
}
