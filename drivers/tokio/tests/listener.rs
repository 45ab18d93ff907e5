//! The fill listener: admission (404/405/400/409), 502 on filler failure, 503 when full,
//! filler streams that end short or run long abort the response, request-head limits,
//! graceful shutdown, the plain-mode warning, and FillService as a hyper and tower service.

mod support;

use orca_cluster_tokio::Protocol;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use orca_cluster_tokio::core::admission::{NOT_COORDINATOR_BODY, OVERLOADED_BODY};
use orca_cluster_tokio::core::fill::FillCheckError;
use orca_cluster_tokio::core::wire::encode_query;
use orca_cluster_tokio::{
    ChunkKey, ChunkStream, Cluster, FillClient, FillError, FillListener, FillRequest, FillService,
    FillerError, ListenerHandle, ListenerSettings, Options, Peer, StaticPeerSource,
    SyntheticOrigin,
};
use tokio::net::TcpStream;

use support::{LOCALHOST, config, eventually, init_tracing, key};

const CHUNK: u64 = 128 * 1024;
const OBJECT: u64 = CHUNK * 1000;

/// A replica whose snapshot also holds a peer that does not listen (127.0.0.1:1), so that some
/// chunks belong to it (409 here).
async fn replica(
    filler: impl orca_cluster_tokio::Filler,
    settings: ListenerSettings,
) -> (Cluster, ListenerHandle, SocketAddr) {
    let listener = FillListener::bind((LOCALHOST, 0).into()).await.unwrap();
    let addr = listener.local_addr();
    let source = StaticPeerSource::new([addr, "127.0.0.1:1".parse().unwrap()]);
    let cluster = Cluster::start(
        config(),
        Options::default()
            .with_peer_source(source)
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    assert_eq!(cluster.peers().len(), 2);
    let handle = listener.serve(&cluster, filler, settings);
    (cluster, handle, addr)
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
    .map_err(|e| e.to_string())?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
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

async fn admission(h2: bool) {
    init_tracing();
    let (cluster, handle, addr) = replica(SyntheticOrigin, ListenerSettings::default()).await;
    let k = mine(&cluster);
    let text = |a: &Answer| String::from_utf8_lossy(a.body.as_ref().unwrap()).into_owned();

    let a = send(addr, h2, get(&format!("http://{addr}/nope"), true, h2))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let mut post = get(&fill_uri(addr, &k), true, h2);
    *post.method_mut() = http::Method::POST;
    let a = send(addr, h2, post).await.unwrap();
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "GET");

    let a = send(addr, h2, get(&fill_uri(addr, &k), false, h2))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(text(&a).contains("x-orca-internal"), "{}", text(&a));

    let uri = format!(
        "http://{addr}/internal/fill?bucket=b&chunk_size=10&etag=&index=0&key=k&object_size=100"
    );
    let a = send(addr, h2, get(&uri, true, h2)).await.unwrap();
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        text(&a).contains("origin_id"),
        "names the parameter: {}",
        text(&a)
    );

    let uri = format!(
        "http://{addr}/internal/fill?bucket=b&chunk_size=x&etag=&index=0&key=k&object_size=100&origin_id=o"
    );
    let a = send(addr, h2, get(&uri, true, h2)).await.unwrap();
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        text(&a).contains("chunk_size"),
        "names the parameter: {}",
        text(&a)
    );

    let a = send(addr, h2, get(&fill_uri(addr, &theirs(&cluster)), true, h2))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(text(&a), NOT_COORDINATOR_BODY);

    let a = send(addr, h2, get(&fill_uri(addr, &k), true, h2))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/octet-stream");
    assert_eq!(a.headers["content-length"], CHUNK.to_string().as_str());
    assert!(a.body.unwrap() == SyntheticOrigin::chunk_bytes(&k, OBJECT));

    let stats = cluster.stats();
    assert_eq!((stats.served_ok, stats.served_failed), (1, 6));
    assert_eq!(stats.bytes_served, CHUNK);
    handle.shutdown(Duration::from_secs(1)).await;
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn admission_over_http1() {
    admission(false).await;
}

#[tokio::test]
async fn admission_over_h2c() {
    admission(true).await;
}

fn failing_filler(_: FillRequest) -> std::future::Ready<Result<ChunkStream, FillerError>> {
    std::future::ready(Err("origin unreachable".into()))
}

#[tokio::test]
async fn a_failing_filler_is_a_502() {
    init_tracing();
    let (cluster, handle, addr) = replica(failing_filler, ListenerSettings::default()).await;
    let k = mine(&cluster);
    for h2 in [false, true] {
        let a = send(addr, h2, get(&fill_uri(addr, &k), true, h2))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::BAD_GATEWAY);
        assert_eq!(a.body.unwrap(), "fill failed");
    }
    handle.shutdown(Duration::from_secs(1)).await;
}

/// A filler that blocks until released, counting calls.
#[derive(Clone, Default)]
struct Gate {
    calls: Arc<AtomicUsize>,
    open: Arc<tokio::sync::Notify>,
}

impl orca_cluster_tokio::Filler for Gate {
    fn fill(
        &self,
        request: FillRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<ChunkStream, FillerError>> + Send>>
    {
        let gate = self.clone();
        Box::pin(async move {
            let opened = gate.open.notified();
            gate.calls.fetch_add(1, Ordering::SeqCst);
            opened.await;
            Ok(SyntheticOrigin::stream(&request.key, request.object_size))
        })
    }
}

fn client(http1: bool) -> FillClient {
    FillClient::new(
        &config(),
        &Options::default().with_protocol(if http1 {
            Protocol::Http1
        } else {
            Protocol::Http2
        }),
    )
    .unwrap()
}

fn peer(addr: SocketAddr) -> Peer {
    Peer {
        ip: addr.ip(),
        port: addr.port(),
        is_self: false,
    }
}

#[tokio::test]
async fn a_full_listener_answers_503() {
    init_tracing();
    let gate = Gate::default();
    let settings = ListenerSettings {
        max_concurrent: 2,
        ..ListenerSettings::default()
    };
    let (cluster, handle, addr) = replica(gate.clone(), settings).await;
    let k = mine(&cluster);
    let c = client(false);
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            let k = k.clone();
            tokio::spawn(
                async move { c.fill(&peer(addr), &k, OBJECT).await?.collect_bytes().await },
            )
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(2), || gate.calls.load(Ordering::SeqCst)
            == 2)
        .await
    );
    let err = c.fill(&peer(addr), &k, OBJECT).await.unwrap_err();
    match err {
        FillError::Check(FillCheckError::Status { code: 503, body }) => {
            assert_eq!(body, OVERLOADED_BODY.as_bytes());
        }
        other => panic!("expected 503, got {other:?}"),
    }
    gate.open.notify_waiters();
    for task in busy {
        assert_eq!(task.await.unwrap().unwrap().len() as u64, CHUNK);
    }
    // Permits are released when the bodies end: the listener serves again.
    let again = tokio::spawn({
        let c = c.clone();
        let k = k.clone();
        async move { c.fill(&peer(addr), &k, OBJECT).await?.collect_bytes().await }
    });
    assert!(
        eventually(Duration::from_secs(2), || gate.calls.load(Ordering::SeqCst)
            == 3)
        .await
    );
    gate.open.notify_waiters();
    assert_eq!(again.await.unwrap().unwrap().len() as u64, CHUNK);
    handle.shutdown(Duration::from_secs(1)).await;
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

async fn aborted(delta: i64, http1: bool) {
    init_tracing();
    let (cluster, handle, addr) = replica(lying_filler(delta), ListenerSettings::default()).await;
    let k = mine(&cluster);
    // Through our client: the body never completes.
    let c = client(http1);
    // (With HTTP/2 the reset may even arrive before the response head is read.)
    let result = match c.fill(&peer(addr), &k, OBJECT).await {
        Ok(body) => body.collect_bytes().await,
        Err(e) => Err(e),
    };
    assert!(result.is_err(), "delta {delta} http1 {http1}: {result:?}");
    println!("delta {delta} http1 {http1}: {}", result.unwrap_err());
    // Through a plain hyper client: the transfer is aborted (reset / connection closed).
    match send(addr, !http1, get(&fill_uri(addr, &k), true, !http1)).await {
        Ok(a) => {
            assert_eq!(a.status, StatusCode::OK);
            assert!(
                a.body.is_err(),
                "delta {delta} http1 {http1}: completed with wrong bytes"
            );
        }
        Err(e) => assert!(!http1, "reset before the head: {e}"),
    }
    assert!(
        eventually(Duration::from_secs(2), || cluster.stats().served_failed
            == 2)
        .await,
        "{:?}",
        cluster.stats()
    );
    assert_eq!(cluster.stats().served_ok, 0);
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_short_filler_stream_aborts_the_response_over_h2() {
    aborted(-1000, false).await;
}

#[tokio::test]
async fn a_short_filler_stream_aborts_the_response_over_http1() {
    aborted(-1000, true).await;
}

#[tokio::test]
async fn a_long_filler_stream_aborts_the_response_over_h2() {
    aborted(1, false).await;
}

#[tokio::test]
async fn a_long_filler_stream_aborts_the_response_over_http1() {
    aborted(1, true).await;
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    init_tracing();
    let (cluster, handle, addr) = replica(SyntheticOrigin, ListenerSettings::default()).await;
    let k = mine(&cluster);
    for h2 in [false, true] {
        let mut request = get(&fill_uri(addr, &k), true, h2);
        request
            .headers_mut()
            .insert("x-padding", "p".repeat(64 * 1024).parse().unwrap());
        match send(addr, h2, request).await {
            Ok(a) => assert_eq!(
                a.status,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "h2 {h2}"
            ),
            Err(e) => println!("h2 {h2}: refused with a connection error: {e}"),
        }
    }
    // A head within the limit is fine.
    let mut request = get(&fill_uri(addr, &k), true, true);
    request
        .headers_mut()
        .insert("x-padding", "p".repeat(4 * 1024).parse().unwrap());
    assert_eq!(
        send(addr, true, request).await.unwrap().status,
        StatusCode::OK
    );
    handle.shutdown(Duration::from_secs(1)).await;
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

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_fills_finish() {
    init_tracing();
    for http1 in [false, true] {
        let (cluster, handle, addr) = replica(
            slow_filler(Duration::from_millis(100)),
            ListenerSettings::default(),
        )
        .await;
        let k = mine(&cluster);
        let c = client(http1);
        let body = c.fill(&peer(addr), &k, OBJECT).await.unwrap();
        let reading = tokio::spawn(body.collect_bytes());
        let started = Instant::now();
        handle.shutdown(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(3));
        let bytes = reading.await.unwrap().unwrap();
        assert!(
            bytes == SyntheticOrigin::chunk_bytes(&k, OBJECT),
            "http1 {http1}"
        );
        // No longer accepting.
        assert!(TcpStream::connect(addr).await.is_err());
        cluster.close(Duration::from_secs(1)).await.unwrap();
    }
}

#[tokio::test]
async fn shutdown_deadline_drops_what_is_left() {
    init_tracing();
    let (cluster, handle, addr) = replica(
        slow_filler(Duration::from_secs(3)),
        ListenerSettings::default(),
    )
    .await;
    let k = mine(&cluster);
    let c = client(false);
    let body = c.fill(&peer(addr), &k, OBJECT).await.unwrap();
    let reading = tokio::spawn(body.collect_bytes());
    let started = Instant::now();
    handle.shutdown(Duration::from_millis(200)).await;
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
}

/// Captures formatted log lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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
        config(),
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
    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("WITHOUT TLS"), "{logged}");
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn fill_service_is_a_tower_and_a_hyper_service() {
    init_tracing();
    let listener = FillListener::bind((LOCALHOST, 0).into()).await.unwrap();
    let addr = listener.local_addr();
    drop(listener);
    let cluster = Cluster::start(
        config(),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let k = key(0, CHUNK);
    let service = FillService::new(&cluster, SyntheticOrigin, &ListenerSettings::default());

    // tower: any request body type, e.g. the String an axum test would use.
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

    // hyper: served directly on a connection.
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

#[tokio::test]
async fn fills_over_ipv6_loopback() {
    init_tracing();
    let Ok(listener) = FillListener::bind("[::1]:0".parse().unwrap()).await else {
        orca_cluster_test_support::skip_outside_ci("no IPv6 loopback (::1)");
        return;
    };
    let addr = listener.local_addr();
    let mut cfg = config();
    cfg.self_pod_ip = vec![addr.ip()];
    let cluster = Cluster::start(
        cfg,
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let handle = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
    let k = key(1, CHUNK);
    for http1 in [false, true] {
        let bytes = client(http1)
            .fill(&peer(addr), &k, OBJECT)
            .await
            .unwrap()
            .collect_bytes()
            .await
            .unwrap();
        assert!(bytes == SyntheticOrigin::chunk_bytes(&k, OBJECT));
    }
    handle.shutdown(Duration::from_secs(1)).await;
}
