//! The fill listener: admission statuses, overload, filler failures, aborted responses,
//! request limits, hostile request heads, graceful shutdown.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use orca_cluster_core::admission::{NOT_COORDINATOR_BODY, OVERLOADED_BODY};
use orca_cluster_core::fill::FillCheckError;
use orca_cluster_core::wire::encode_query;
use orca_cluster_smol::{
    ChunkKey, ChunkStream, FillError, FillRequest, FillerError, ListenerSettings, SyntheticOrigin,
};
use support::rawserver::{exchange, get};
use support::*;

const CHUNK: u64 = 100_000;
const OBJECT: u64 = CHUNK * REMOTE_KEY_SEARCH;

/// A key `replicas[i]` coordinates, and one it does not.
fn keys_of(replicas: &[Replica], i: usize) -> (ChunkKey, ChunkKey) {
    let mine = (0..1000)
        .map(|n| key(n, CHUNK))
        .find(|k| replicas[i].cluster.is_coordinator(k) && k.index < REMOTE_KEY_SEARCH)
        .expect("a key");
    let theirs = (0..1000)
        .map(|n| key(n, CHUNK))
        .find(|k| !replicas[i].cluster.is_coordinator(k) && k.index < REMOTE_KEY_SEARCH)
        .expect("a key");
    (mine, theirs)
}

fn fill_target(k: &ChunkKey) -> String {
    format!("/internal/fill?{}", encode_query(k, OBJECT))
}

const INTERNAL: &str = "x-orca-internal: 1\r\n";

#[test]
fn admission_statuses() {
    run(30, async {
        let (replicas, _) =
            replicas(2, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let addr = replicas[1].addr;
        let (mine, theirs) = keys_of(&replicas, 1);

        let (status, _, _) = exchange(addr, &get("/nope", INTERNAL)).await.unwrap();
        assert_eq!(status, 404);

        let post = format!(
            "POST {} HTTP/1.1\r\nhost: t\r\n{INTERNAL}connection: close\r\n\r\n",
            fill_target(&mine)
        );
        let (status, head, _) = exchange(addr, post.as_bytes()).await.unwrap();
        assert_eq!(status, 405);
        assert!(head.contains("allow: get"), "{head}");

        let (status, _, body) = exchange(addr, &get(&fill_target(&mine), "")).await.unwrap();
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("x-orca-internal"));

        let (status, _, body) = exchange(addr, &get("/internal/fill?key=k&index=0", INTERNAL))
            .await
            .unwrap();
        assert_eq!(status, 400);
        assert!(
            String::from_utf8_lossy(&body).contains("origin_id"),
            "names the parameter"
        );

        let (status, head, body) = exchange(addr, &get(&fill_target(&theirs), INTERNAL))
            .await
            .unwrap();
        assert_eq!(status, 409);
        assert_eq!(body, NOT_COORDINATOR_BODY.as_bytes());
        assert!(head.contains("content-type: application/json"));

        let (status, head, body) = exchange(addr, &get(&fill_target(&mine), INTERNAL))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert!(head.contains(&format!("content-length: {CHUNK}")), "{head}");
        assert!(
            head.contains("content-type: application/octet-stream"),
            "{head}"
        );
        assert!(body == SyntheticOrigin::chunk_bytes(&mine, OBJECT));

        let stats = replicas[1].cluster.stats();
        assert_eq!((stats.served_ok, stats.served_failed), (1, 5));
    });
}

/// A filler whose streams wait for `gate` before yielding the chunk.
fn gated(
    gate: smol::channel::Receiver<()>,
) -> impl Fn(FillRequest) -> std::future::Ready<Result<ChunkStream, FillerError>> + Send + Sync + 'static
{
    move |req: FillRequest| {
        let gate = gate.clone();
        let stream = futures_lite::stream::once_future(async move {
            let _ = gate.recv().await;
            Ok(Bytes::from(SyntheticOrigin::chunk_bytes(
                &req.key,
                req.object_size,
            )))
        });
        std::future::ready(Ok(Box::pin(stream) as ChunkStream))
    }
}

#[test]
fn overload_answers_503_and_recovers() {
    run(30, async {
        let (open, gate) = smol::channel::unbounded::<()>();
        let settings = ListenerSettings {
            max_concurrent: 1,
            ..ListenerSettings::default()
        };
        let (replicas, _) = replicas(2, |_| None, || gated(gate.clone()), settings).await;
        let addr = replicas[1].addr;
        let (mine, _) = keys_of(&replicas, 1);
        let target = fill_target(&mine);
        let first = smol::spawn({
            let request = get(&target, INTERNAL);
            async move { exchange(addr, &request).await }
        });
        async_io::Timer::after(Duration::from_millis(200)).await;
        let (status, _, body) = exchange(addr, &get(&target, INTERNAL)).await.unwrap();
        assert_eq!(status, 503);
        assert_eq!(body, OVERLOADED_BODY.as_bytes());
        open.send(()).await.unwrap();
        let (status, _, body) = first.await.unwrap();
        assert_eq!((status, body.len() as u64), (200, CHUNK));
        open.send(()).await.unwrap();
        let (status, _, _) = exchange(addr, &get(&target, INTERNAL)).await.unwrap();
        assert_eq!(status, 200);
    });
}

#[test]
fn filler_failure_is_502() {
    run(30, async {
        let failing =
            || |_req: FillRequest| async { Err::<ChunkStream, FillerError>("origin down".into()) };
        let (replicas, _) = replicas(2, |_| None, failing, ListenerSettings::default()).await;
        let (k, owner) = remote_key(&replicas, CHUNK);
        let peer = replicas[0].cluster.coordinator(&k);
        let e = replicas[0]
            .cluster
            .fill_from_peer(&peer, &k, OBJECT)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FillError::Check(FillCheckError::Status { code: 502, body }) if body == b"fill failed"),
            "{e}"
        );
        assert_eq!(replicas[owner].cluster.stats().served_failed, 1);
    });
}

/// A filler yielding the right bytes in `frames`-sized pieces, plus `extra` bytes or minus
/// `missing` bytes.
fn misbehaving(
    extra: usize,
    missing: usize,
) -> impl Fn(FillRequest) -> std::future::Ready<Result<ChunkStream, FillerError>> + Send + Sync + 'static
{
    move |req: FillRequest| {
        let mut bytes = SyntheticOrigin::chunk_bytes(&req.key, req.object_size);
        bytes.truncate(bytes.len() - missing);
        let mut frames: Vec<std::io::Result<Bytes>> = bytes
            .chunks(10_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        if extra > 0 {
            frames.push(Ok(Bytes::from(vec![0u8; extra])));
        }
        std::future::ready(Ok(
            Box::pin(futures_lite::stream::iter(frames)) as ChunkStream
        ))
    }
}

#[test]
fn short_and_long_filler_streams_abort_the_response() {
    for (extra, missing) in [(0, 10), (1, 0), (5000, 0)] {
        run(30, async {
            let (replicas, _) = replicas(
                2,
                |_| None,
                || misbehaving(extra, missing),
                ListenerSettings::default(),
            )
            .await;
            let (k, owner) = remote_key(&replicas, CHUNK);
            let peer = replicas[0].cluster.coordinator(&k);
            for _ in 0..2 {
                let body = replicas[0]
                    .cluster
                    .fill_from_peer(&peer, &k, OBJECT)
                    .await
                    .unwrap();
                let e = body.collect_bytes().await.unwrap_err();
                assert!(
                    matches!(e, FillError::Check(FillCheckError::Truncated { got, expected: CHUNK }) if got < CHUNK),
                    "extra {extra} missing {missing}: {e}"
                );
            }
            let stats = replicas[owner].cluster.stats();
            assert_eq!((stats.served_ok, stats.served_failed), (0, 2));
            assert_eq!(
                replicas[owner].listener.accepted_connections(),
                2,
                "aborted connections are not reused"
            );
        });
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn hostile_request_heads_close_the_connection_without_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    run(30, async {
        let settings = ListenerSettings {
            max_header_bytes: 1024,
            ..ListenerSettings::default()
        };
        let (replicas, _) = replicas(2, |_| None, || SyntheticOrigin, settings).await;
        let addr = replicas[1].addr;
        let (mine, _) = keys_of(&replicas, 1);
        let target = fill_target(&mine);

        let big = format!("{INTERNAL}x-big: {}\r\n", "a".repeat(2000));
        let (status, head, _) = exchange(addr, &get(&target, &big)).await.unwrap();
        assert_eq!(status, 431, "head over max_header_bytes");
        assert!(head.contains("connection: close"));
        for header in ["x-name: caf\u{e9}\r\n", "x-nul: a\0b\r\n"] {
            let request = get(&target, &format!("{INTERNAL}{header}"));
            let (status, _, _) = exchange(addr, &request).await.unwrap();
            assert_eq!(status, 400, "{header:?}");
        }
        let garbage: [&[u8]; 3] = [
            b"\xff\xfe garbage\r\n\r\n",
            b"GET /internal/fill HTTP/1.0\r\n\r\n",
            b"GET /internal/fill HTTP/1.1\r\n\r\n",
        ];
        for request in garbage {
            let (status, _, _) = exchange(addr, request).await.unwrap();
            assert_eq!(status, 400, "{}", String::from_utf8_lossy(request));
        }
        // An extension method is a well-formed request: admission answers 405.
        let brew = b"BREW /internal/fill HTTP/1.1\r\nhost: t\r\n\r\n";
        assert_eq!(exchange(addr, brew).await.unwrap().0, 405);

        // A request with a body is answered, then its connection is closed.
        let post = format!(
            "POST {target} HTTP/1.1\r\nhost: t\r\n{INTERNAL}content-length: 5\r\n\r\nhello"
        );
        let (status, head, _) = exchange(addr, post.as_bytes()).await.unwrap();
        assert_eq!(status, 405);
        assert!(head.contains("connection: close"));

        // Pipelined requests on one connection are answered in order.
        let one = format!("GET {target} HTTP/1.1\r\nhost: t\r\n{INTERNAL}\r\n");
        let two = format!("GET /nope HTTP/1.1\r\nhost: t\r\n{INTERNAL}connection: close\r\n\r\n");
        let mut s = smol::net::TcpStream::connect(addr).await.unwrap();
        futures_lite::AsyncWriteExt::write_all(&mut s, format!("{one}{two}").as_bytes())
            .await
            .unwrap();
        let mut all = Vec::new();
        futures_lite::AsyncReadExt::read_to_end(&mut s, &mut all)
            .await
            .unwrap();
        assert!(all.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let second = &all[all.len() - 200..];
        assert!(
            String::from_utf8_lossy(second).contains("not found"),
            "second response present"
        );

        // Still serving.
        let (status, _, body) = exchange(addr, &get(&target, INTERNAL)).await.unwrap();
        assert_eq!((status, body.len() as u64), (200, CHUNK));
    });
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "no panic from network input"
    );
}

#[test]
fn default_head_limit_is_bounded() {
    run(30, async {
        let (replicas, _) =
            replicas(2, |_| None, || SyntheticOrigin, ListenerSettings::default()).await;
        let (mine, _) = keys_of(&replicas, 1);
        let big = format!("{INTERNAL}x-big: {}\r\n", "a".repeat(20_000));
        let (status, _, _) = exchange(replicas[1].addr, &get(&fill_target(&mine), &big))
            .await
            .unwrap();
        assert_eq!(status, 431);
    });
}

/// A filler whose streams yield 10 frames, `delay` apart.
fn slow(
    delay: Duration,
) -> impl Fn(FillRequest) -> std::future::Ready<Result<ChunkStream, FillerError>> + Send + Sync + 'static
{
    move |req: FillRequest| {
        let bytes = SyntheticOrigin::chunk_bytes(&req.key, req.object_size);
        let frames: Vec<Bytes> = bytes
            .chunks(bytes.len().div_ceil(10))
            .map(Bytes::copy_from_slice)
            .collect();
        let stream = futures_lite::stream::unfold(frames.into_iter(), move |mut it| async move {
            let frame = it.next()?;
            async_io::Timer::after(delay).await;
            Some((Ok(frame), it))
        });
        std::future::ready(Ok(Box::pin(stream) as ChunkStream))
    }
}

#[test]
fn graceful_shutdown_finishes_in_flight_fills() {
    run(30, async {
        let (mut replicas, _) = replicas(
            2,
            |_| None,
            || slow(Duration::from_millis(30)),
            ListenerSettings::default(),
        )
        .await;
        let (k, owner) = remote_key(&replicas, CHUNK);
        let client = replicas[0].cluster.clone();
        let peer = client.coordinator(&k);
        // An idle pooled connection, then a fill in flight.
        client
            .fill_from_peer(&peer, &k, OBJECT)
            .await
            .unwrap()
            .collect_bytes()
            .await
            .unwrap();
        let in_flight = smol::spawn({
            let client = client.clone();
            let k = k.clone();
            async move {
                client
                    .fill_from_peer(&peer, &k, OBJECT)
                    .await?
                    .collect_bytes()
                    .await
            }
        });
        async_io::Timer::after(Duration::from_millis(50)).await;
        let handle = replicas.remove(owner).listener;
        let addr = handle.local_addr();
        let started = std::time::Instant::now();
        handle.shutdown(Duration::from_secs(10)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let bytes = in_flight.await.expect("the in-flight fill completed");
        assert!(bytes == SyntheticOrigin::chunk_bytes(&k, OBJECT));
        assert!(
            smol::net::TcpStream::connect(addr).await.is_err(),
            "no longer accepting"
        );
        let e = client.fill_from_peer(&peer, &k, OBJECT).await.unwrap_err();
        assert!(matches!(e, FillError::Connect(_)), "{e}");
    });
}

#[test]
fn shutdown_deadline_drops_stalled_fills() {
    run(30, async {
        let (mut replicas, _) = replicas(
            2,
            |_| None,
            || slow(Duration::from_secs(3)),
            ListenerSettings::default(),
        )
        .await;
        let (k, owner) = remote_key(&replicas, CHUNK);
        let client = replicas[0].cluster.clone();
        let peer = client.coordinator(&k);
        let in_flight = smol::spawn(async move {
            client
                .fill_from_peer(&peer, &k, OBJECT)
                .await?
                .collect_bytes()
                .await
        });
        async_io::Timer::after(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        replicas
            .remove(owner)
            .listener
            .shutdown(Duration::from_millis(200))
            .await;
        assert!(started.elapsed() < Duration::from_millis(1500));
        assert!(in_flight.await.is_err());
    });
}
