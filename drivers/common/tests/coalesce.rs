//! `CoalescingFiller`: concurrent fills of one chunk call the inner filler once.
//!
//! The single-threaded tests run every waiter as a task of a small executor that polls a task
//! only after its waker fired, so a missing wake-up shows as a task still pending once all input
//! has been fed (a hang, detected at once, without timers). The upstream is controlled by the
//! test: the inner filler's future waits on a start channel, its stream reads a frame channel.

use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_lite::StreamExt;
use orca_cluster_core::ChunkKey;
use orca_cluster_driver_common::{
    ChunkStream, CoalescingFiller, FillRequest, Filler, FillerError, SharedFillError,
    SharedFillStage,
};
use smol::channel::{Receiver, Sender, unbounded};

// ---------------------------------------------------------------------------------------------
// The controllable origin.

/// One call of the inner filler, as the test sees it.
struct Call {
    request: FillRequest,
    start: Sender<Result<(), String>>,
    frames: Sender<io::Result<Bytes>>,
    stream_dropped: Arc<AtomicBool>,
}

/// An inner filler whose every call waits for the test to start it, then streams what the test
/// sends.
#[derive(Clone, Default)]
struct Origin {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Origin {
    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn with_call<T>(&self, call: usize, f: impl FnOnce(&Call) -> T) -> T {
        f(&self.calls.lock().unwrap()[call])
    }

    fn start(&self, call: usize) {
        self.with_call(call, |c| c.start.try_send(Ok(())).unwrap());
    }

    fn fail_start(&self, call: usize, message: &str) {
        self.with_call(call, |c| c.start.try_send(Err(message.into())).unwrap());
    }

    fn send(&self, call: usize, frame: &[u8]) {
        self.with_call(call, |c| {
            c.frames
                .try_send(Ok(Bytes::copy_from_slice(frame)))
                .unwrap()
        });
    }

    fn fail(&self, call: usize, kind: io::ErrorKind, message: &str) {
        self.with_call(call, |c| {
            c.frames
                .try_send(Err(io::Error::new(kind, message)))
                .unwrap()
        });
    }

    fn end(&self, call: usize) {
        self.with_call(call, |c| c.frames.close());
    }

    /// The inner fill future of `call` is gone (its start channel has no receiver).
    fn start_dropped(&self, call: usize) -> bool {
        self.with_call(call, |c| c.start.is_closed())
    }

    fn stream_dropped(&self, call: usize) -> bool {
        self.with_call(call, |c| c.stream_dropped.load(Ordering::SeqCst))
    }

    fn request(&self, call: usize) -> FillRequest {
        self.with_call(call, |c| c.request.clone())
    }
}

/// The inner stream: frames from the test's channel; records its drop.
struct Upstream {
    frames: Pin<Box<Receiver<io::Result<Bytes>>>>,
    dropped: Arc<AtomicBool>,
}

impl Stream for Upstream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.frames.as_mut().poll_next(cx)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl Filler for Origin {
    // Not `async fn`: the call is recorded when `fill` is called, not when its future is polled.
    fn fill(
        &self,
        request: FillRequest,
    ) -> impl Future<Output = Result<ChunkStream, FillerError>> + Send {
        let (start, started) = unbounded();
        let (frames, frames_rx) = unbounded();
        let dropped = Arc::new(AtomicBool::new(false));
        self.calls.lock().unwrap().push(Call {
            request,
            start,
            frames,
            stream_dropped: Arc::clone(&dropped),
        });
        async move {
            match started.recv().await {
                Ok(Ok(())) => Ok(Box::pin(Upstream {
                    frames: Box::pin(frames_rx),
                    dropped,
                }) as ChunkStream),
                Ok(Err(message)) => Err(FillerError::from(message)),
                Err(_) => Err(FillerError::from("the test dropped the start channel")),
            }
        }
    }
}

fn request(object_key: &str, index: u64, expected_len: u64) -> FillRequest {
    FillRequest {
        key: ChunkKey {
            origin_id: "origin".into(),
            bucket: "bucket".into(),
            object_key: object_key.into(),
            etag: "v1".into(),
            chunk_size: 1 << 20,
            index,
        },
        object_size: 10 << 20,
        expected_len,
    }
}

// ---------------------------------------------------------------------------------------------
// A wake-driven executor.

/// What a waiter task ends with: the frames it read, then `Ok` at the end of the stream or the
/// error that ended its fill or stream.
#[derive(Debug)]
struct Outcome {
    frames: Vec<Bytes>,
    end: Result<(), String>,
    error_kind: Option<io::ErrorKind>,
    /// The stage of the `SharedFillError` that ended it, found by downcasting.
    stage: Option<SharedFillStage>,
}

impl Outcome {
    fn bytes(&self) -> Vec<u8> {
        self.frames.concat()
    }
}

#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Task {
    future: Option<Pin<Box<dyn Future<Output = Outcome>>>>,
    woken: Arc<Flag>,
    outcome: Option<Outcome>,
}

/// Polls a task only when its waker fired (or once, when spawned).
#[derive(Default)]
struct Executor {
    tasks: Vec<Task>,
}

impl Executor {
    /// Spawns a waiter: `fill`, then read the stream to its end. The fill is called now (so the
    /// waiter joins now); the future runs when the executor runs.
    fn spawn_waiter(&mut self, filler: &CoalescingFiller<Origin>, request: FillRequest) -> usize {
        let fill = filler.fill(request);
        self.spawn(async move {
            let mut outcome = Outcome {
                frames: Vec::new(),
                end: Ok(()),
                error_kind: None,
                stage: None,
            };
            let mut stream = match fill.await {
                Ok(stream) => stream,
                Err(error) => {
                    outcome.stage = error.downcast_ref::<SharedFillError>().map(|e| e.stage());
                    outcome.end = Err(error_chain(&*error));
                    return outcome;
                }
            };
            while let Some(item) = stream.next().await {
                match item {
                    Ok(frame) => outcome.frames.push(frame),
                    Err(error) => {
                        outcome.error_kind = Some(error.kind());
                        let shared = error
                            .get_ref()
                            .and_then(|e| e.downcast_ref::<SharedFillError>());
                        outcome.stage = shared.map(SharedFillError::stage);
                        assert!(shared.is_none_or(|e| e.io_kind() == error.kind()));
                        outcome.end = Err(error_chain(&error));
                        return outcome;
                    }
                }
            }
            outcome
        })
    }

    fn spawn(&mut self, future: impl Future<Output = Outcome> + 'static) -> usize {
        let woken = Arc::new(Flag::default());
        woken.0.store(true, Ordering::SeqCst);
        self.tasks.push(Task {
            future: Some(Box::pin(future)),
            woken,
            outcome: None,
        });
        self.tasks.len() - 1
    }

    /// Polls woken tasks until none is woken. Fails on a livelock (tasks that keep waking).
    fn run_until_stalled(&mut self) {
        for _round in 0..10_000 {
            let mut progressed = false;
            for task in &mut self.tasks {
                if task.future.is_none() || !task.woken.0.swap(false, Ordering::SeqCst) {
                    continue;
                }
                progressed = true;
                let waker = Waker::from(Arc::clone(&task.woken));
                let polled = task
                    .future
                    .as_mut()
                    .unwrap()
                    .as_mut()
                    .poll(&mut Context::from_waker(&waker));
                if let Poll::Ready(outcome) = polled {
                    task.outcome = Some(outcome);
                    task.future = None;
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("tasks kept waking each other for 10,000 rounds");
    }

    /// Drops a task's future (the waiter goes away mid-fill).
    fn cancel(&mut self, task: usize) {
        assert!(
            self.tasks[task].future.take().is_some(),
            "task {task} had ended"
        );
    }

    fn pending(&self, task: usize) -> bool {
        self.tasks[task].future.is_some()
    }

    /// The outcome of a task that must have ended (a pending one is a hang: nothing more will
    /// wake it).
    fn outcome(&self, task: usize) -> &Outcome {
        self.tasks[task]
            .outcome
            .as_ref()
            .unwrap_or_else(|| panic!("task {task} hangs: pending and not woken"))
    }
}

/// Every message in an error's source chain, joined by " <- ".
fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        messages.push(inner.to_string());
        source = inner.source();
    }
    messages.join(" <- ")
}

fn chunk(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Cases.

#[test]
fn ten_concurrent_waiters_share_one_inner_call_and_read_identical_bytes() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let data = chunk(30_000, 7);
    let req = request("movie", 3, data.len() as u64);
    let mut ex = Executor::default();
    let tasks: Vec<usize> = (0..10)
        .map(|_| ex.spawn_waiter(&filler, req.clone()))
        .collect();
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 1);
    assert_eq!(origin.request(0), req);
    assert_eq!(filler.in_flight_keys(), 1);
    origin.start(0);
    ex.run_until_stalled();
    for piece in data.chunks(4096) {
        origin.send(0, piece);
        ex.run_until_stalled();
        assert!(tasks.iter().all(|&t| ex.pending(t)));
    }
    origin.end(0);
    ex.run_until_stalled();
    for &t in &tasks {
        let outcome = ex.outcome(t);
        assert_eq!(outcome.end, Ok(()));
        assert_eq!(outcome.bytes(), data);
        assert_eq!(
            outcome.frames.iter().map(Bytes::len).collect::<Vec<_>>(),
            data.chunks(4096).map(<[u8]>::len).collect::<Vec<_>>(),
            "the frames are passed on as the inner stream yielded them"
        );
    }
    assert_eq!(origin.calls(), 1);
    assert!(origin.stream_dropped(0));
    assert_eq!(filler.in_flight_keys(), 0);

    // The entry left with the end of the stream: the next fill calls the inner filler again.
    let again = ex.spawn_waiter(&filler, req);
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 2);
    origin.start(1);
    origin.send(1, b"fresh");
    origin.end(1);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(again).bytes(), b"fresh");
}

#[test]
fn frames_are_shared_not_copied() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let req = request("o", 0, 5);
    let mut ex = Executor::default();
    let a = ex.spawn_waiter(&filler, req.clone());
    let b = ex.spawn_waiter(&filler, req);
    ex.run_until_stalled();
    origin.start(0);
    origin.send(0, b"hello");
    origin.end(0);
    ex.run_until_stalled();
    let (fa, fb) = (&ex.outcome(a).frames, &ex.outcome(b).frames);
    assert_eq!(fa.len(), 1);
    assert_eq!(fa[0].as_ptr(), fb[0].as_ptr());
}

#[test]
fn a_late_joiner_gets_the_bytes_so_far_then_the_rest() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let data = chunk(10_000, 1);
    let req = request("late", 0, data.len() as u64);
    let mut ex = Executor::default();
    let early = ex.spawn_waiter(&filler, req.clone());
    ex.run_until_stalled();
    origin.start(0);
    origin.send(0, &data[..3000]);
    origin.send(0, &data[3000..6000]);
    ex.run_until_stalled();

    let late = ex.spawn_waiter(&filler, req.clone());
    ex.run_until_stalled();
    assert_eq!(
        origin.calls(),
        1,
        "the late joiner joined the fill in flight"
    );
    origin.send(0, &data[6000..]);
    origin.end(0);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(early).bytes(), data);
    assert_eq!(ex.outcome(late).bytes(), data);
    assert_eq!(ex.outcome(late).end, Ok(()));

    // A joiner that arrives while the inner future has not produced a stream yet.
    let first = ex.spawn_waiter(&filler, req.clone());
    ex.run_until_stalled();
    let second = ex.spawn_waiter(&filler, req);
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 2);
    origin.start(1);
    origin.send(1, b"abc");
    ex.run_until_stalled();
    origin.send(1, b"def");
    origin.end(1);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(first).bytes(), b"abcdef");
    assert_eq!(ex.outcome(second).bytes(), b"abcdef");
}

#[test]
fn the_leader_dropped_mid_stream_hands_over_to_the_others() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let data = chunk(9000, 3);
    let req = request("handover", 1, data.len() as u64);
    let mut ex = Executor::default();
    let leader = ex.spawn_waiter(&filler, req.clone());
    let others: Vec<usize> = (0..3)
        .map(|_| ex.spawn_waiter(&filler, req.clone()))
        .collect();
    ex.run_until_stalled();
    origin.start(0);
    origin.send(0, &data[..3000]);
    ex.run_until_stalled();

    // The frame is sent, so every waiter is woken; the leader goes away before it runs.
    origin.send(0, &data[3000..6000]);
    ex.cancel(leader);
    ex.run_until_stalled();
    assert!(!origin.stream_dropped(0), "other waiters remain");
    origin.send(0, &data[6000..]);
    origin.end(0);
    ex.run_until_stalled();
    for &t in &others {
        assert_eq!(ex.outcome(t).bytes(), data);
    }
    assert_eq!(origin.calls(), 1);
}

#[test]
fn the_waiter_driving_the_start_dropped_hands_over() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let req = request("start-handover", 0, 4);
    let mut ex = Executor::default();
    let leader = ex.spawn_waiter(&filler, req.clone());
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 1, "the first poll calls the inner filler");
    let follower = ex.spawn_waiter(&filler, req.clone());
    ex.run_until_stalled();
    ex.cancel(leader);
    ex.run_until_stalled();
    assert!(
        !origin.start_dropped(0),
        "the follower keeps the inner future"
    );
    origin.start(0);
    ex.run_until_stalled();
    origin.send(0, b"data");
    origin.end(0);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(follower).bytes(), b"data");
    assert_eq!(origin.calls(), 1);
}

#[test]
fn an_upstream_error_fails_every_waiter_after_the_frames_before_it() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let req = request("broken", 2, 8192);
    let mut ex = Executor::default();
    let tasks: Vec<usize> = (0..5)
        .map(|_| ex.spawn_waiter(&filler, req.clone()))
        .collect();
    ex.run_until_stalled();
    origin.start(0);
    origin.send(0, &[1; 1000]);
    ex.run_until_stalled();
    origin.fail(0, io::ErrorKind::ConnectionReset, "origin reset the read");
    ex.run_until_stalled();
    for &t in &tasks {
        let outcome = ex.outcome(t);
        assert_eq!(outcome.bytes(), vec![1; 1000]);
        let message = outcome.end.as_ref().unwrap_err();
        assert!(
            message.starts_with("shared fill failed while streaming: origin reset the read"),
            "{message}"
        );
        assert!(message.ends_with(" <- origin reset the read"), "{message}");
        assert_eq!(outcome.error_kind, Some(io::ErrorKind::ConnectionReset));
        assert_eq!(outcome.stage, Some(SharedFillStage::Stream));
    }
    assert!(origin.stream_dropped(0));
    assert_eq!(filler.in_flight_keys(), 0);

    // A failed fill is not remembered: the next fill calls the inner filler again.
    let retry = ex.spawn_waiter(&filler, req);
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 2);
    origin.start(1);
    origin.send(1, &[2; 8192]);
    origin.end(1);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(retry).bytes(), vec![2; 8192]);
}

#[test]
fn an_inner_fill_error_fails_every_waiter() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let req = request("unavailable", 0, 100);
    let mut ex = Executor::default();
    let tasks: Vec<usize> = (0..4)
        .map(|_| ex.spawn_waiter(&filler, req.clone()))
        .collect();
    ex.run_until_stalled();
    origin.fail_start(0, "origin answered 503");
    ex.run_until_stalled();
    for &t in &tasks {
        let outcome = ex.outcome(t);
        assert!(outcome.frames.is_empty());
        assert_eq!(
            outcome.end,
            Err(
                "shared fill failed while starting: origin answered 503 <- origin answered 503"
                    .to_string()
            )
        );
        assert_eq!(outcome.stage, Some(SharedFillStage::Start));
    }
    assert_eq!(origin.calls(), 1);
    assert_eq!(filler.in_flight_keys(), 0);
    assert!(origin.start_dropped(0));

    // A failed start is not remembered either.
    let retry = ex.spawn_waiter(&filler, req);
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 2);
    origin.start(1);
    origin.send(1, &[4; 100]);
    origin.end(1);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(retry).bytes(), vec![4; 100]);
}

#[test]
fn when_every_waiter_goes_away_the_upstream_is_dropped_and_the_next_fill_starts_afresh() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let req = request("abandoned", 0, 100);
    let mut ex = Executor::default();
    let tasks: Vec<usize> = (0..3)
        .map(|_| ex.spawn_waiter(&filler, req.clone()))
        .collect();
    ex.run_until_stalled();
    origin.start(0);
    origin.send(0, &[9; 40]);
    ex.run_until_stalled();
    ex.cancel(tasks[0]);
    ex.cancel(tasks[1]);
    assert!(!origin.stream_dropped(0));
    assert_eq!(filler.in_flight_keys(), 1);
    ex.cancel(tasks[2]);
    assert!(
        origin.stream_dropped(0),
        "the last waiter dropped the upstream"
    );
    assert_eq!(filler.in_flight_keys(), 0);

    let next = ex.spawn_waiter(&filler, req.clone());
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 2);
    origin.start(1);
    origin.send(1, &[5; 100]);
    origin.end(1);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(next).bytes(), vec![5; 100], "no stale bytes");

    // The same while the inner future is still starting, and for fills never polled.
    let starting = ex.spawn_waiter(&filler, req.clone());
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 3);
    ex.cancel(starting);
    assert!(origin.start_dropped(2), "the inner future was dropped");
    assert_eq!(filler.in_flight_keys(), 0);
    drop(filler.fill(req.clone()));
    drop(filler.fill(req));
    assert_eq!(filler.in_flight_keys(), 0);
    assert_eq!(
        origin.calls(),
        3,
        "a fill never polled never calls the inner filler"
    );
}

#[test]
fn different_chunks_are_filled_independently() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let first = request("object", 0, 6);
    let second = request("object", 1, 6);
    // The same chunk key with another expected length is another fill.
    let shorter = request("object", 0, 3);
    let mut ex = Executor::default();
    let a = [
        ex.spawn_waiter(&filler, first.clone()),
        ex.spawn_waiter(&filler, first.clone()),
    ];
    let b = [
        ex.spawn_waiter(&filler, second.clone()),
        ex.spawn_waiter(&filler, second.clone()),
    ];
    let c = ex.spawn_waiter(&filler, shorter.clone());
    ex.run_until_stalled();
    assert_eq!(origin.calls(), 3);
    assert_eq!(filler.in_flight_keys(), 3);
    let call_of = |req: &FillRequest| (0..3).find(|&i| origin.request(i) == *req).unwrap();
    let (ca, cb, cc) = (call_of(&first), call_of(&second), call_of(&shorter));
    for call in [ca, cb, cc] {
        origin.start(call);
    }
    origin.send(ca, b"first!");
    origin.send(cb, b"second");
    origin.send(cc, b"abc");
    origin.end(cb);
    ex.run_until_stalled();
    assert_eq!(filler.in_flight_keys(), 2);
    for t in b {
        assert_eq!(ex.outcome(t).bytes(), b"second");
    }
    assert!(
        a.iter().all(|&t| ex.pending(t)),
        "one chunk's end is not another's"
    );
    origin.fail(cc, io::ErrorKind::Other, "gone");
    origin.end(ca);
    ex.run_until_stalled();
    for t in a {
        assert_eq!(ex.outcome(t).bytes(), b"first!");
        assert_eq!(ex.outcome(t).end, Ok(()));
    }
    assert!(ex.outcome(c).end.is_err());
    assert_eq!(filler.in_flight_keys(), 0);
}

#[test]
fn a_stream_running_past_expected_len_is_stopped_and_fails_every_waiter() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let req = request("long", 0, 10);
    let mut ex = Executor::default();
    let tasks = [
        ex.spawn_waiter(&filler, req.clone()),
        ex.spawn_waiter(&filler, req.clone()),
    ];
    ex.run_until_stalled();
    origin.start(0);
    origin.send(0, &[1; 8]);
    origin.send(0, &[2; 8]);
    origin.send(0, &[3; 8]);
    ex.run_until_stalled();
    for t in tasks {
        let outcome = ex.outcome(t);
        assert_eq!(
            outcome.frames.len(),
            2,
            "nothing is read past the crossing frame"
        );
        assert_eq!(outcome.error_kind, Some(io::ErrorKind::InvalidData));
        let message = outcome.end.as_ref().unwrap_err();
        assert!(
            message.contains("16 bytes, more than expected_len 10"),
            "{message}"
        );
        assert_eq!(outcome.stage, Some(SharedFillStage::Stream));
    }
    assert!(origin.stream_dropped(0));
}

#[test]
fn empty_frames_are_skipped_without_spinning() {
    let origin = Origin::default();
    let filler = CoalescingFiller::new(origin.clone());
    let req = request("empty", 0, 2);
    let mut ex = Executor::default();
    let t = ex.spawn_waiter(&filler, req);
    ex.run_until_stalled();
    origin.start(0);
    for _ in 0..200 {
        origin.send(0, b"");
    }
    origin.send(0, b"ok");
    origin.end(0);
    ex.run_until_stalled();
    assert_eq!(ex.outcome(t).frames, vec![Bytes::from_static(b"ok")]);
}

/// An inner filler that panics in its stream's second poll.
struct Panicky;

struct PanicStream(usize);

impl Stream for PanicStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0 += 1;
        if self.0 == 1 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        panic!("inner filler bug");
    }
}

impl Filler for Panicky {
    async fn fill(&self, _request: FillRequest) -> Result<ChunkStream, FillerError> {
        Ok(Box::pin(PanicStream(0)))
    }
}

#[test]
fn a_panicking_inner_filler_fails_the_other_waiters() {
    let filler = CoalescingFiller::new(Panicky);
    let req = request("panic", 0, 10);
    let mut a = Box::pin(filler.fill(req.clone()));
    let mut b = Box::pin(filler.fill(req));
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let Poll::Ready(Ok(mut sa)) = a.as_mut().poll(&mut cx) else {
        panic!("fill a did not start")
    };
    let Poll::Ready(Ok(mut sb)) = b.as_mut().poll(&mut cx) else {
        panic!("fill b did not start")
    };
    assert!(sa.as_mut().poll_next(&mut cx).is_pending());
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = sa.as_mut().poll_next(&mut cx);
    }));
    assert!(unwound.is_err());
    drop(sa);
    match sb.as_mut().poll_next(&mut cx) {
        Poll::Ready(Some(Err(error))) => {
            assert!(
                error.to_string().contains("the inner filler panicked"),
                "{error}"
            )
        }
        other => panic!("expected the panic to fail the other waiter, got {other:?}"),
    }
    assert_eq!(filler.in_flight_keys(), 0);
}

// ---------------------------------------------------------------------------------------------
// Threads.

/// An inner filler that counts its calls and streams `frames` frames produced by another thread
/// with small pauses, so waiters on several threads race to drive it.
#[derive(Clone)]
struct Threaded {
    calls: Arc<AtomicUsize>,
    frames: usize,
}

impl Filler for Threaded {
    async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let frames = self.frames;
        let frame_len = request.expected_len as usize / frames;
        let (tx, rx) = unbounded::<io::Result<Bytes>>();
        std::thread::spawn(move || {
            for i in 0..frames {
                if i % 8 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let frame = Bytes::from(chunk(frame_len, i as u8));
                if tx.send_blocking(Ok(frame)).is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(rx))
    }
}

#[test]
fn waiters_on_many_threads_read_identical_bytes_and_leavers_do_not_disturb_them() {
    const WAITERS: usize = 16;
    const FRAMES: usize = 200;
    const FRAME_LEN: usize = 512;
    let calls = Arc::new(AtomicUsize::new(0));
    let filler = CoalescingFiller::new(Threaded {
        calls: Arc::clone(&calls),
        frames: FRAMES,
    });
    let req = request("threads", 0, (FRAMES * FRAME_LEN) as u64);
    let expected: Vec<u8> = (0..FRAMES)
        .flat_map(|i| chunk(FRAME_LEN, i as u8))
        .collect();
    let joined = Arc::new(Barrier::new(WAITERS));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for w in 0..WAITERS {
        let filler = filler.clone();
        let req = req.clone();
        let joined = Arc::clone(&joined);
        let done = done_tx.clone();
        std::thread::spawn(move || {
            // Every waiter joins before any of them polls: one shared fill.
            let fill = filler.fill(req);
            joined.wait();
            // Every third waiter leaves after a few frames.
            let leave_after = (w % 3 == 0).then_some(w + 1);
            let result = futures_lite::future::block_on(async move {
                let mut stream = fill.await.map_err(|e| e.to_string())?;
                let mut bytes = Vec::new();
                let mut frames = 0;
                while let Some(frame) = stream.next().await {
                    bytes.extend_from_slice(&frame.map_err(|e| e.to_string())?);
                    frames += 1;
                    if leave_after == Some(frames) {
                        return Ok(None);
                    }
                }
                Ok::<_, String>(Some(bytes))
            });
            let _ = done.send((w, result));
        });
    }
    drop(done_tx);
    let mut readers = 0;
    for _ in 0..WAITERS {
        let (w, result) = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a waiter hangs");
        match result {
            Ok(Some(bytes)) => {
                assert!(bytes == expected, "waiter {w} read wrong bytes");
                readers += 1;
            }
            Ok(None) => assert_eq!(w % 3, 0),
            Err(error) => panic!("waiter {w} failed: {error}"),
        }
    }
    assert_eq!(readers, WAITERS - WAITERS.div_ceil(3));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(filler.in_flight_keys(), 0);
}
