//! What only the tokio listener does: HTTP/2 (h2c) — admission over h2, streams of bad filler
//! streams reset, the h2 header-list limit, graceful and forced shutdown of h2 connections —
//! `FillService` as a tower and a hyper service, and the loud plain-mode warning (captured with
//! tracing-subscriber). Everything HTTP/1.1 is in the conformance suite, for both drivers.

mod support;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use orca_cluster_tokio::core::admission::NOT_COORDINATOR_BODY;
use orca_cluster_tokio::core::wire::encode_query;
use orca_cluster_tokio::{
    ChunkKey, ChunkStream, Cluster, FillError, FillListener, FillRequest, FillService, FillerError,
    ListenerSettings, Options, Protocol, StaticPeerSource, SyntheticOrigin,
};
use tokio::net::TcpStream;

use support::{Capture, LOCALHOST, Replica, client, config, eventually, init_tracing, key, peer};

const CHUNK: u64 = 128 * 1024;
const OBJECT: u64 = CHUNK * 1000;

/// A replica whose snapshot also holds a peer that does not listen (127.0.0.1:1), so that some
/// chunks belong to it (409 here).
async fn replica(filler: impl orca_cluster_tokio::Filler) -> Replica {
    let phantom: SocketAddr = "127.0.0.1:1".parse().unwrap();
    Replica::start(
        config(None),
        &[phantom],
        filler,
        ListenerSettings::default(),
    )
    .await
}

fn mine(cluster: &Cluster) -> ChunkKey {
    (0..1000)
        .map(|i| key(i, CHUNK))
        .find(|k| cluster.is_coordinator(k))
        .unwrap()
}

fn theirs(cluster: &Cluster) -> ChunkKey {
    (0..1000)
        .map(|i| key(i, CHUNK))
        .find(|k| !cluster.is_coordinator(k))
        .unwrap()
}

fn fill_uri(addr: SocketAddr, k: &ChunkKey) -> String {
    format!("http://{addr}/internal/fill?{}", encode_query(k, OBJECT))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, String>,
}

/// Sends one request over a new connection, HTTP/2 prior knowledge or HTTP/1.1.
async fn send(
    addr: SocketAddr,
    h2: bool,
    request: Request<Empty<Bytes>>,
) -> Result<Answer, String> {
    let io = TokioIo::new(TcpStream::connect(addr).await.map_err(|e| e.to_string())?);
    let response = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request).await
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(request).await
    }
    .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("{e:?}"));
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn get(uri: &str, internal: bool, h2: bool) -> Request<Empty<Bytes>> {
    // HTTP/1.1 goes out in origin-form, as clients send it to a server (the listener refuses
    // absolute-form); HTTP/2 needs the whole URI for its pseudo-headers.
    let target = match uri.parse::<http::Uri>().unwrap().path_and_query() {
        Some(path) if !h2 => path.to_string(),
        _ => uri.to_owned(),
    };
    let mut builder = Request::get(target);
    if internal {
        builder = builder.header("x-orca-internal", "1");
    }
    if !h2 {
        let authority = uri.split('/').nth(2).unwrap().to_owned();
        builder = builder.header("host", authority);
    }
    builder.body(Empty::new()).unwrap()
}

/// Admission over h2c: 404, 405 with `allow`, 400 naming the header and the parameter, 409
/// (JSON), then 200 with the chunk; the counters as over HTTP/1.1.
#[tokio::test]
async fn admission_over_h2c() {
    init_tracing();
    let r = replica(SyntheticOrigin).await;
    let (addr, k) = (r.addr, mine(&r.cluster));
    let text = |a: &Answer| String::from_utf8_lossy(a.body.as_ref().unwrap()).into_owned();

    let a = send(addr, true, get(&format!("http://{addr}/nope"), true, true))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let mut post = get(&fill_uri(addr, &k), true, true);
    *post.method_mut() = http::Method::POST;
    let a = send(addr, true, post).await.unwrap();
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "GET");

    let a = send(addr, true, get(&fill_uri(addr, &k), false, true))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(text(&a).contains("x-orca-internal"), "{}", text(&a));

    let uri = format!(
        "http://{addr}/internal/fill?bucket=b&chunk_size=10&etag=&index=0&key=k&object_size=100"
    );
    let a = send(addr, true, get(&uri, true, true)).await.unwrap();
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(text(&a).contains("origin_id"), "{}", text(&a));

    let a = send(
        addr,
        true,
        get(&fill_uri(addr, &theirs(&r.cluster)), true, true),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(text(&a), NOT_COORDINATOR_BODY);

    let a = send(addr, true, get(&fill_uri(addr, &k), true, true))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/octet-stream");
    assert_eq!(a.headers["content-length"], CHUNK.to_string().as_str());
    assert!(a.body.unwrap() == SyntheticOrigin::chunk_bytes(&k, OBJECT));

    let stats = r.cluster.stats();
    assert_eq!((stats.served_ok, stats.served_failed), (1, 5));
    assert_eq!(stats.bytes_served, CHUNK);
    r.stop().await;
}

/// A filler whose stream yields `delta` bytes more (or fewer) than asked.
fn lying_filler(
    delta: i64,
) -> impl Fn(FillRequest) -> std::future::Ready<Result<ChunkStream, FillerError>> + Clone {
    move |request: FillRequest| {
        let len = (request.expected_len as i64 + delta) as usize;
        let frames: Vec<io::Result<Bytes>> = (0..len)
            .step_by(16 * 1024)
            .map(|at| Ok(Bytes::from(vec![5u8; (len - at).min(16 * 1024)])))
            .collect();
        std::future::ready(Ok(
            Box::pin(futures_util::stream::iter(frames)) as ChunkStream
        ))
    }
}

/// Over h2c, a filler stream that ends short or runs long resets the response's stream: the
/// driver's client and a plain hyper h2 client never get a complete body.
#[tokio::test]
async fn bad_filler_streams_reset_the_h2_stream() {
    init_tracing();
    for delta in [-1000, 1] {
        let r = replica(lying_filler(delta)).await;
        let k = mine(&r.cluster);
        let c = client(&config(None), Protocol::Http2);
        // The reset may arrive before the response head is read.
        let result = match c.fill(&peer(r.addr), &k, OBJECT).await {
            Ok(body) => body.collect_bytes().await,
            Err(e) => Err(e),
        };
        assert!(
            matches!(&result, Err(FillError::Http(m)) if m.contains("unexpected internal error")),
            "delta {delta}: {result:?}"
        );
        let reset = match send(r.addr, true, get(&fill_uri(r.addr, &k), true, true)).await {
            Ok(a) => {
                assert_eq!(a.status, StatusCode::OK);
                a.body.expect_err("completed with wrong bytes")
            }
            Err(e) => e,
        };
        assert!(
            reset.contains("Reset(StreamId(1), INTERNAL_ERROR, Remote)"),
            "delta {delta}: {reset}"
        );
        assert!(
            eventually(Duration::from_secs(2), || r.cluster.stats().served_failed
                == 2)
            .await,
            "delta {delta}: {:?}",
            r.cluster.stats()
        );
        assert_eq!(r.cluster.stats().served_ok, 0);
        r.stop().await;
    }
}

/// Over h2c, `max_header_bytes` (16 KiB) is the header-list limit: a list a little over it is
/// answered 431; one far over it ends the connection (GOAWAY `ENHANCE_YOUR_CALM`, as the h2
/// crate does); a 4 KiB field is served.
#[tokio::test]
async fn h2_header_lists_are_limited() {
    init_tracing();
    let r = replica(SyntheticOrigin).await;
    let k = mine(&r.cluster);
    let padded = |n: usize| {
        let mut request = get(&fill_uri(r.addr, &k), true, true);
        request
            .headers_mut()
            .insert("x-padding", "p".repeat(n).parse().unwrap());
        request
    };
    let a = send(r.addr, true, padded(20 * 1024)).await.unwrap();
    assert_eq!(a.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let err = send(r.addr, true, padded(64 * 1024)).await.err().unwrap();
    assert!(
        err.contains("ENHANCE_YOUR_CALM") && err.contains("Remote"),
        "{err}"
    );
    let a = send(r.addr, true, padded(4 * 1024)).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(r.cluster.stats().served_ok, 1);
    r.stop().await;
}

/// A filler that yields its frames slowly (`pause` between 4 frames).
fn slow_filler(
    pause: Duration,
) -> impl Fn(FillRequest) -> std::future::Ready<Result<ChunkStream, FillerError>> + Clone {
    move |request: FillRequest| {
        let bytes = SyntheticOrigin::chunk_bytes(&request.key, request.object_size);
        let quarter = bytes.len() / 4;
        let frames: Vec<Bytes> = bytes.chunks(quarter).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(frames).then(move |f| async move {
            tokio::time::sleep(pause).await;
            Ok::<Bytes, io::Error>(f)
        });
        std::future::ready(Ok(Box::pin(stream) as ChunkStream))
    }
}

/// Shutting down with h2 connections open: a stream in flight finishes within the deadline
/// (graceful GOAWAY); one that outlives the deadline is dropped at it.
#[tokio::test]
async fn h2_shutdown_is_graceful_until_the_deadline() {
    init_tracing();
    let r = replica(slow_filler(Duration::from_millis(100))).await;
    let k = mine(&r.cluster);
    let c = client(&config(None), Protocol::Http2);
    let body = c.fill(&peer(r.addr), &k, OBJECT).await.unwrap();
    let reading = tokio::spawn(body.collect_bytes());
    let started = Instant::now();
    r.listener.shutdown(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let bytes = reading.await.unwrap().unwrap();
    assert!(bytes == SyntheticOrigin::chunk_bytes(&k, OBJECT));
    assert!(
        TcpStream::connect(r.addr).await.is_err(),
        "no longer accepting"
    );
    r.cluster.close(Duration::from_secs(1)).await.unwrap();

    let r = replica(slow_filler(Duration::from_secs(3))).await;
    let k = mine(&r.cluster);
    let c = client(&config(None), Protocol::Http2);
    let body = c.fill(&peer(r.addr), &k, OBJECT).await.unwrap();
    let reading = tokio::spawn(body.collect_bytes());
    let started = Instant::now();
    r.listener.shutdown(Duration::from_millis(200)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let result = tokio::time::timeout(Duration::from_secs(2), reading)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err(), "the unfinished fill fails: {result:?}");
    r.cluster.close(Duration::from_secs(1)).await.unwrap();
}

/// A listener without TLS logs a warning saying so. (Tested here because capturing the log
/// needs tracing-subscriber, which only this crate's tests depend on.)
#[tokio::test]
async fn a_plain_listener_warns_loudly() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let listener = FillListener::bind((LOCALHOST, 0).into()).await.unwrap();
    let addr = listener.local_addr();
    let cluster = Cluster::start(
        config(None),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let handle = {
        let _guard = tracing::subscriber::set_default(subscriber);
        listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default())
    };
    let logged = capture.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("WITHOUT TLS"), "{logged}");
    handle.shutdown(Duration::from_secs(1)).await;
}

/// `FillService` mounts anywhere: as a tower service taking any request body type (e.g. the
/// `String` an axum test would use), and served directly by hyper on a connection.
#[tokio::test]
async fn fill_service_is_a_tower_and_a_hyper_service() {
    init_tracing();
    let listener = FillListener::bind((LOCALHOST, 0).into()).await.unwrap();
    let addr = listener.local_addr();
    drop(listener);
    let cluster = Cluster::start(
        config(None),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let k = key(0, CHUNK);
    let service = FillService::new(&cluster, SyntheticOrigin, &ListenerSettings::default());

    let mut tower = service.clone();
    std::future::poll_fn(|cx| {
        tower_service::Service::<Request<String>>::poll_ready(&mut tower, cx)
    })
    .await
    .unwrap();
    let request = Request::get(format!("/internal/fill?{}", encode_query(&k, OBJECT)))
        .header("x-orca-internal", "1")
        .body(String::from("ignored"))
        .unwrap();
    let response = tower_service::Service::call(&mut tower, request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body == SyntheticOrigin::chunk_bytes(&k, OBJECT));

    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = server.local_addr().unwrap();
    let svc = service.clone();
    tokio::spawn(async move {
        let (socket, _) = server.accept().await.unwrap();
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(socket), svc)
            .await;
    });
    let uri = format!(
        "http://{server_addr}/internal/fill?{}",
        encode_query(&k, OBJECT)
    );
    let a = send(server_addr, false, get(&uri, true, false))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body.unwrap().len() as u64, CHUNK);
    assert_eq!(service.in_flight(), 0);
    cluster.close(Duration::from_secs(1)).await.unwrap();
}
