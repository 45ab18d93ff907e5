//! The client against peers that misbehave: 409, truncation, over-length bodies, lying
//! Content-Length, resets mid-body, huge error bodies, refused connections; and connection
//! reuse with retry-once on a stale pooled connection.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use orca_cluster_core::fill::{FillCheckError, MAX_ERROR_BODY};
use orca_cluster_smol::{
    ChunkKey, Cluster, FillError, Options, Peer, StaticPeerSource, SyntheticOrigin,
};
use support::rawserver::{RawServer, ok_response, read_head, write};
use support::*;

const CHUNK: u64 = 64 * 1024;
const OBJECT: u64 = CHUNK * 4;

fn chunk() -> (ChunkKey, Vec<u8>) {
    let k = key(1, CHUNK);
    let bytes = SyntheticOrigin::chunk_bytes(&k, OBJECT);
    (k, bytes)
}

async fn client() -> Cluster {
    Cluster::start(
        config(None),
        Options::default()
            .with_peer_source(StaticPeerSource::new([]))
            .with_self_port(1),
    )
    .await
    .unwrap()
}

fn peer(addr: SocketAddr) -> Peer {
    Peer {
        ip: addr.ip(),
        port: addr.port(),
        is_self: false,
    }
}

async fn fill(server: &RawServer) -> Result<Vec<u8>, FillError> {
    let c = client().await;
    let (k, _) = chunk();
    let result = match c.fill_from_peer(&peer(server.addr), &k, OBJECT).await {
        Ok(body) => body.collect_bytes().await.map(|b| b.to_vec()),
        Err(e) => Err(e),
    };
    c.close(Duration::from_secs(2)).await.unwrap();
    result
}

/// A server answering every request with `response` and keeping the connection.
async fn scripted(response: Vec<u8>) -> RawServer {
    let response = Arc::new(response);
    RawServer::start(move |_, mut s| {
        let response = response.clone();
        async move {
            while read_head(&mut s).await.is_some() {
                if !write(&mut s, &response).await {
                    return;
                }
            }
        }
    })
    .await
}

#[test]
fn conflict_is_not_coordinator() {
    run(20, async {
        let body = r#"{"reason":"not_coordinator"}"#;
        let server = scripted(
            format!(
                "HTTP/1.1 409 Conflict\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
        .await;
        let c = client().await;
        let (k, _) = chunk();
        for _ in 0..3 {
            let e = c
                .fill_from_peer(&peer(server.addr), &k, OBJECT)
                .await
                .unwrap_err();
            assert!(e.is_not_coordinator(), "{e}");
        }
        assert_eq!(server.accepted(), 1, "a drained 409 keeps the connection");
        assert_eq!(c.stats().fills_not_coordinator, 3);
        assert_eq!(c.stats().fills_failed, 3);
    });
}

#[test]
fn truncated_body() {
    run(20, async {
        let (_, bytes) = chunk();
        let server = RawServer::start(move |_, mut s| {
            let bytes = bytes.clone();
            async move {
                read_head(&mut s).await;
                let mut response = ok_response(&bytes);
                response.truncate(response.len() - 1000);
                write(&mut s, &response).await;
            }
        })
        .await;
        let e = fill(&server).await.unwrap_err();
        assert!(
            matches!(e, FillError::Check(FillCheckError::Truncated { got, expected }) if got == CHUNK - 1000 && expected == CHUNK),
            "{e}"
        );
    });
}

#[test]
fn over_length_bodies() {
    run(20, async {
        let (_, bytes) = chunk();
        // Delimited by close, one byte too many.
        let mut body = bytes.clone();
        body.push(0);
        let server = RawServer::start(move |_, mut s| {
            let body = body.clone();
            async move {
                read_head(&mut s).await;
                write(&mut s, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n").await;
                write(&mut s, &body).await;
            }
        })
        .await;
        let e = fill(&server).await.unwrap_err();
        assert!(
            matches!(e, FillError::Check(FillCheckError::TooLong { .. })),
            "{e}"
        );

        // Chunked, one chunk too many.
        let server = RawServer::start(move |_, mut s| {
            let bytes = bytes.clone();
            async move {
                read_head(&mut s).await;
                let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                out.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
                out.extend_from_slice(&bytes);
                out.extend_from_slice(b"\r\n3\r\nabc\r\n0\r\n\r\n");
                write(&mut s, &out).await;
            }
        })
        .await;
        let e = fill(&server).await.unwrap_err();
        assert!(
            matches!(e, FillError::Check(FillCheckError::TooLong { .. })),
            "{e}"
        );
    });
}

#[test]
fn chunked_body_of_the_right_length_is_accepted() {
    run(20, async {
        let (_, bytes) = chunk();
        let expected = bytes.clone();
        let server = RawServer::start(move |_, mut s| {
            let bytes = bytes.clone();
            async move {
                while read_head(&mut s).await.is_some() {
                    let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
                    for piece in bytes.chunks(10_000) {
                        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                        out.extend_from_slice(piece);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                    write(&mut s, &out).await;
                }
            }
        })
        .await;
        assert!(fill(&server).await.unwrap() == expected);
    });
}

#[test]
fn content_length_lies_are_rejected_before_the_body() {
    run(20, async {
        for (declared, reported) in [
            (format!("{}", CHUNK + 1), CHUNK + 1),
            (format!("{}", CHUNK - 1), CHUNK - 1),
            ("0".to_string(), 0),
        ] {
            let server = scripted(
                format!("HTTP/1.1 200 OK\r\ncontent-length: {declared}\r\n\r\n").into_bytes(),
            )
            .await;
            let e = fill(&server).await.unwrap_err();
            assert!(
                matches!(e, FillError::Check(FillCheckError::LengthMismatch { declared, expected: CHUNK }) if declared == reported),
                "{declared}: {e}"
            );
        }
        // Two Content-Length headers that disagree.
        let server = scripted(
            format!("HTTP/1.1 200 OK\r\ncontent-length: {CHUNK}\r\ncontent-length: 5\r\n\r\n")
                .into_bytes(),
        )
        .await;
        assert!(matches!(
            fill(&server).await.unwrap_err(),
            FillError::Check(FillCheckError::MalformedHead {
                field: "content-length",
                ..
            })
        ));
    });
}

#[test]
fn reset_mid_body() {
    run(20, async {
        let (_, bytes) = chunk();
        let server = RawServer::start(move |_, mut s| {
            let bytes = bytes.clone();
            async move {
                // Never read the request: closing with unread input sends a reset.
                let response = ok_response(&bytes);
                write(&mut s, &response[..response.len() / 2]).await;
                async_io::Timer::after(Duration::from_millis(100)).await;
                drop(s);
            }
        })
        .await;
        let e = fill(&server).await.unwrap_err();
        assert!(
            matches!(
                e,
                FillError::Http(_) | FillError::Check(FillCheckError::Truncated { .. })
            ),
            "{e}"
        );
    });
}

#[test]
fn huge_error_body_is_read_only_to_1_kib() {
    run(20, async {
        let written = Arc::new(AtomicU64::new(0));
        let counter = written.clone();
        let server = RawServer::start(move |_, mut s| {
            let counter = counter.clone();
            async move {
                read_head(&mut s).await;
                let head =
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 1073741824\r\n\r\n";
                write(&mut s, head.as_bytes()).await;
                let block = vec![b'e'; 64 * 1024];
                while s.write_all(&block).await.is_ok() {
                    counter.fetch_add(block.len() as u64, Ordering::SeqCst);
                    if counter.load(Ordering::SeqCst) > 1 << 30 {
                        break;
                    }
                }
            }
        })
        .await;
        let e = fill(&server).await.unwrap_err();
        match e {
            FillError::Check(FillCheckError::Status { code: 500, body }) => {
                assert_eq!(body.len(), MAX_ERROR_BODY);
                assert!(body.iter().all(|&b| b == b'e'));
            }
            other => panic!("expected a status error, got {other}"),
        }
        async_io::Timer::after(Duration::from_millis(200)).await;
        assert!(
            written.load(Ordering::SeqCst) < 64 * 1024 * 1024,
            "the client stopped reading (server wrote {} bytes)",
            written.load(Ordering::SeqCst)
        );
    });
}

#[test]
fn small_error_body_is_reported_and_connection_kept() {
    run(20, async {
        let server = scripted(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 10\r\n\r\noverloaded".to_vec(),
        )
        .await;
        let c = client().await;
        let (k, _) = chunk();
        for _ in 0..2 {
            let e = c
                .fill_from_peer(&peer(server.addr), &k, OBJECT)
                .await
                .unwrap_err();
            assert!(
                matches!(&e, FillError::Check(FillCheckError::Status { code: 503, body }) if body == b"overloaded"),
                "{e}"
            );
        }
        assert_eq!(server.accepted(), 1);
    });
}

#[test]
fn refused_and_garbage() {
    run(20, async {
        // Nothing listens on a port we just freed.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let c = client().await;
        let (k, _) = chunk();
        let e = c.fill_from_peer(&peer(addr), &k, OBJECT).await.unwrap_err();
        assert!(matches!(e, FillError::Connect(_)), "{e}");

        let server = scripted(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await;
        let e = fill(&server).await.unwrap_err();
        assert!(matches!(e, FillError::Http(_)), "{e}");

        // Non-ASCII header values, an unknown status code: no panic, judged by the core.
        let server = scripted(
            "HTTP/1.1 599 Odd\r\nx-name: caf\u{e9}\r\ncontent-length: 2\r\n\r\nno"
                .as_bytes()
                .to_vec(),
        )
        .await;
        let e = fill(&server).await.unwrap_err();
        assert!(
            matches!(
                e,
                FillError::Check(FillCheckError::Status { code: 599, .. })
            ),
            "{e}"
        );

        // A head that never ends is bounded.
        let server = RawServer::start(|_, mut s| async move {
            read_head(&mut s).await;
            write(&mut s, b"HTTP/1.1 200 OK\r\nx-filler: ").await;
            for _ in 0..10_000 {
                if !write(&mut s, &[b'a'; 1024]).await {
                    return;
                }
            }
        })
        .await;
        let e = fill(&server).await.unwrap_err();
        assert!(
            matches!(e, FillError::Http(ref m) if m.contains("larger than")),
            "{e}"
        );

        // So is the number of headers.
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=orca_cluster_smol::core::h1::MAX_HEADERS {
            many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let server = scripted(many).await;
        let e = fill(&server).await.unwrap_err();
        assert!(
            matches!(e, FillError::Http(ref m) if m.contains("header lines")),
            "{e}"
        );
    });
}

#[test]
fn stale_pooled_connections_are_replaced() {
    run(20, async {
        let (_, bytes) = chunk();
        let expected = bytes.clone();
        // Connection 0 serves one response, then reads the next request and closes without
        // answering (as when a server's idle timeout races the request). Connection 1 serves
        // one response and closes while idle. Later connections serve normally.
        let server = RawServer::start(move |i, mut s| {
            let bytes = bytes.clone();
            async move {
                let mut served = 0;
                while read_head(&mut s).await.is_some() {
                    if i == 0 && served == 1 {
                        return;
                    }
                    if !write(&mut s, &ok_response(&bytes)).await {
                        return;
                    }
                    served += 1;
                    if i == 1 {
                        async_io::Timer::after(Duration::from_millis(20)).await;
                        return;
                    }
                }
            }
        })
        .await;
        let c = client().await;
        let (k, _) = chunk();
        let p = peer(server.addr);
        let get = || async {
            c.fill_from_peer(&p, &k, OBJECT)
                .await
                .unwrap()
                .collect_bytes()
                .await
                .unwrap()
        };
        assert!(get().await == expected);
        assert_eq!(c.client().idle_connections(), 1);
        // Retry once: the pooled connection fails before any response byte.
        assert!(get().await == expected);
        assert_eq!(server.accepted(), 2);
        // Closed while idle: detected at checkout.
        async_io::Timer::after(Duration::from_millis(100)).await;
        assert!(get().await == expected);
        assert_eq!(server.accepted(), 3);
        assert_eq!(c.stats().fills_ok, 3);
    });
}

#[test]
fn fresh_connection_failures_are_not_retried() {
    run(20, async {
        let server = RawServer::start(|_, mut s| async move {
            read_head(&mut s).await;
        })
        .await;
        let e = fill(&server).await.unwrap_err();
        assert!(matches!(e, FillError::Http(_)), "{e}");
        assert_eq!(server.accepted(), 1);
    });
}
