//! The peer fault matrix of DESIGN 7 against small hand-written misbehaving HTTP/1.1 servers on
//! 127.0.0.1: connection refused, connect timeout, reset mid-body, Content-Length lies in both
//! directions, chunked bodies too short or too long, a stall against the caller's deadline,
//! 409, a huge 5xx body read only to 1 KiB, a redirect that is not followed.

mod support;

use orca_cluster_tokio::BoxIo;
use orca_cluster_tokio::Protocol;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use orca_cluster_tokio::core::fill::{FillCheckError, MAX_ERROR_BODY};
use orca_cluster_tokio::{
    ClientSettings, ClusterConfig, ConnectFuture, FillBody, FillClient, FillError, Options, Peer,
    Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use support::{init_tracing, key};

const CHUNK: u64 = 64 * 1024;
const OBJECT: u64 = CHUNK * 4;

fn client(options: Options) -> FillClient {
    FillClient::new(
        &ClusterConfig::default(),
        &options.with_protocol(Protocol::Http1),
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

/// Reads one request head (up to the blank line); returns it as text.
async fn read_head(socket: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A server that accepts one connection, reads one request head, and runs `script`.
async fn serve_once<F, Fut, T>(script: F) -> (SocketAddr, JoinHandle<io::Result<T>>)
where
    F: FnOnce(TcpStream, String) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<T>> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let head = read_head(&mut socket).await?;
        script(socket, head).await
    });
    (addr, task)
}

/// Serves a fixed response (head + body bytes) and keeps the connection open briefly.
async fn respond(raw: Vec<u8>) -> (SocketAddr, JoinHandle<io::Result<String>>) {
    serve_once(move |mut socket, head| async move {
        socket.write_all(&raw).await?;
        socket.flush().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(head)
    })
    .await
}

async fn drain(mut body: FillBody) -> Result<u64, FillError> {
    let mut n = 0;
    while let Some(frame) = body.next().await {
        n += frame?.len() as u64;
    }
    Ok(n)
}

#[tokio::test]
async fn connection_refused() {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = client(Options::default());
    let err = c
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap_err();
    match &err {
        FillError::Connect(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert_eq!(err.kind(), "connect");
    let stats = c.stats();
    assert_eq!((stats.fills_started, stats.fills_failed), (1, 1));
}

/// A transport whose connect never completes.
struct Blackhole;

impl Transport<BoxIo> for Blackhole {
    fn connect(&self, _addr: SocketAddr) -> ConnectFuture<BoxIo> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn connect_timeout() {
    init_tracing();
    let settings = ClientSettings {
        connect_timeout: Duration::from_millis(200),
        ..ClientSettings::default()
    };
    let c = client(
        Options::default()
            .with_transport(Blackhole)
            .with_client_settings(settings),
    );
    let started = Instant::now();
    let err = c
        .fill(
            &peer("127.0.0.1:9".parse().unwrap()),
            &key(0, CHUNK),
            OBJECT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FillError::ConnectTimeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn reset_mid_body() {
    init_tracing();
    let (addr, server) = serve_once(|socket, _| async move {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {CHUNK}\r\n\r\n");
        let mut socket = socket;
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(&vec![7u8; (CHUNK / 2) as usize]).await?;
        socket.flush().await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        socket.set_zero_linger()?; // close with RST
        drop(socket);
        Ok(())
    })
    .await;
    let c = client(Options::default());
    let body = c.fill(&peer(addr), &key(0, CHUNK), OBJECT).await.unwrap();
    let err = drain(body).await.unwrap_err();
    assert!(
        matches!(
            err,
            FillError::Http(_) | FillError::Check(FillCheckError::Truncated { .. })
        ),
        "{err:?}"
    );
    server.await.unwrap().unwrap();
    assert_eq!(c.stats().fills_ok, 0);
    assert_eq!(c.stats().fills_failed, 1);
}

#[tokio::test]
async fn content_length_longer_than_the_chunk_is_rejected_before_the_body() {
    init_tracing();
    let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", CHUNK + 1).into_bytes();
    let (addr, _server) = respond(raw).await;
    let err = client(Options::default())
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FillError::Check(FillCheckError::LengthMismatch { declared, expected })
                if declared == CHUNK + 1 && expected == CHUNK
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn content_length_shorter_than_the_chunk_is_rejected_before_the_body() {
    init_tracing();
    let mut raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", CHUNK - 1).into_bytes();
    raw.extend(vec![1u8; (CHUNK - 1) as usize]);
    let (addr, _server) = respond(raw).await;
    let err = client(Options::default())
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FillError::Check(FillCheckError::LengthMismatch { declared, .. }) if declared == CHUNK - 1
        ),
        "{err:?}"
    );
}

fn chunked(total: u64) -> Vec<u8> {
    let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut left = total;
    while left > 0 {
        let n = left.min(16 * 1024);
        raw.extend(format!("{n:x}\r\n").into_bytes());
        raw.extend(vec![3u8; n as usize]);
        raw.extend(b"\r\n");
        left -= n;
    }
    raw.extend(b"0\r\n\r\n");
    raw
}

#[tokio::test]
async fn a_body_without_length_that_ends_short_is_truncated() {
    init_tracing();
    let (addr, _server) = respond(chunked(CHUNK - 10)).await;
    let body = client(Options::default())
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap();
    let err = drain(body).await.unwrap_err();
    assert!(
        matches!(
            err,
            FillError::Check(FillCheckError::Truncated { got, expected })
                if got == CHUNK - 10 && expected == CHUNK
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_without_length_that_runs_long_is_cut() {
    init_tracing();
    let (addr, _server) = respond(chunked(CHUNK + 10)).await;
    let body = client(Options::default())
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap();
    let mut delivered = 0u64;
    let mut body = body;
    let mut last = None;
    while let Some(frame) = body.next().await {
        match frame {
            Ok(b) => delivered += b.len() as u64,
            Err(e) => last = Some(e),
        }
    }
    assert!(
        delivered <= CHUNK,
        "never more than the chunk is handed out"
    );
    assert!(
        matches!(last, Some(FillError::Check(FillCheckError::TooLong { expected })) if expected == CHUNK),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_stalled_peer_is_cut_by_the_callers_deadline() {
    init_tracing();
    // Stalls before the response head.
    let (addr, _server) = serve_once(|socket, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(socket);
        Ok(())
    })
    .await;
    let c = client(Options::default());
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_millis(300),
        c.fill(&peer(addr), &key(0, CHUNK), OBJECT),
    )
    .await;
    assert!(result.is_err(), "the caller's deadline fires");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Stalls in the middle of the body.
    let (addr, _server) = serve_once(|mut socket, _| async move {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {CHUNK}\r\n\r\n");
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(&[9u8; 1000]).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    })
    .await;
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_millis(300), async {
        let body = c.fill(&peer(addr), &key(0, CHUNK), OBJECT).await?;
        drain(body).await
    })
    .await;
    assert!(result.is_err(), "the caller's deadline fires mid-body");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn conflict_means_not_coordinator() {
    init_tracing();
    let body = r#"{"reason":"not_coordinator"}"#;
    let raw = format!(
        "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let (addr, server) = respond(raw).await;
    let c = client(Options::default());
    let err = c
        .fill(&peer(addr), &key(3, CHUNK), OBJECT)
        .await
        .unwrap_err();
    assert!(err.is_not_coordinator(), "{err:?}");
    assert_eq!(c.stats().fills_not_coordinator, 1);
    // The request carried the wire format and the internal header.
    let head = server.await.unwrap().unwrap();
    assert!(
        head.starts_with("GET /internal/fill?bucket=media&chunk_size=65536&"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("x-orca-internal: 1\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
}

#[tokio::test]
async fn a_huge_error_body_is_read_only_to_1_kib() {
    init_tracing();
    const HUGE: usize = 64 << 20;
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let (addr, server) = serve_once(move |mut socket, _| async move {
        let head = format!("HTTP/1.1 503 Service Unavailable\r\nContent-Length: {HUGE}\r\n\r\n");
        socket.write_all(head.as_bytes()).await?;
        let block = vec![b'x'; 64 * 1024];
        while counter.load(Ordering::SeqCst) < HUGE {
            // Fails once the client has closed the connection.
            if socket.write_all(&block).await.is_err() {
                break;
            }
            counter.fetch_add(block.len(), Ordering::SeqCst);
        }
        Ok(())
    })
    .await;
    let err = client(Options::default())
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap_err();
    match &err {
        FillError::Check(FillCheckError::Status { code: 503, body }) => {
            assert_eq!(body.len(), MAX_ERROR_BODY);
        }
        other => panic!("expected a 503 status error, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server's writes fail once the client closed")
        .unwrap()
        .unwrap();
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent < HUGE / 2,
        "the client stopped reading: the server could write only {sent} of {HUGE} bytes"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    init_tracing();
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let raw = format!(
        "HTTP/1.1 302 Found\r\nLocation: http://{target_addr}/internal/fill\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes();
    let (addr, _server) = respond(raw).await;
    let err = client(Options::default())
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FillError::Check(FillCheckError::Status { code: 302, .. })
        ),
        "{err:?}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(200), target.accept()).await;
    assert!(accepted.is_err(), "the redirect target was never contacted");
}

#[tokio::test]
async fn a_malformed_response_is_an_http_error() {
    init_tracing();
    let (addr, _server) = respond(b"SPDY/9 what\r\n\r\n".to_vec()).await;
    let err = client(Options::default())
        .fill(&peer(addr), &key(0, CHUNK), OBJECT)
        .await
        .unwrap_err();
    assert!(matches!(err, FillError::Http(_)), "{err:?}");
}

#[tokio::test]
async fn an_empty_chunk_is_refused_before_dialing() {
    init_tracing();
    let c = client(Options::default().with_transport(Blackhole));
    let err = c
        .fill(
            &peer("127.0.0.1:9".parse().unwrap()),
            &key(9, CHUNK),
            OBJECT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FillError::Descriptor(_)), "{err:?}");
}

#[tokio::test]
async fn a_peer_that_closes_idle_keep_alive_connections_is_redialed() {
    init_tracing();
    // Each connection carries exactly one response, then the server closes it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for _ in 0..3 {
            let (mut socket, _) = listener.accept().await?;
            read_head(&mut socket).await?;
            let mut raw =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {CHUNK}\r\n\r\n").into_bytes();
            raw.extend(vec![4u8; CHUNK as usize]);
            socket.write_all(&raw).await?;
            socket.flush().await?;
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(socket);
        }
        Ok::<(), io::Error>(())
    });
    let c = client(Options::default());
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let body = c.fill(&peer(addr), &key(0, CHUNK), OBJECT).await.unwrap();
        assert_eq!(drain(body).await.unwrap(), CHUNK, "fill {i}");
    }
    server.await.unwrap().unwrap();
}
