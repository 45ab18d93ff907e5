//! The node's admin endpoints: /healthz, /readyz, /peers, /coordinator?<fill query>.
//!
//! Bounded: one request per connection (no keep-alive), a request head within
//! [`ADMIN_HEAD_TIMEOUT`], and a connection lives at most [`ADMIN_CONNECTION_LIFETIME`], so a
//! client that connects and sends nothing (or trickles bytes) cannot hold the port's resources;
//! probes (kubelet, curl) open a connection per request anyway.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use orca_cluster_tokio::Cluster;
use serde_json::json;

use crate::output::{peer_json, snapshot_json};

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Answers one admin request.
pub(crate) fn route(cluster: &Cluster, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    match path {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if cluster.has_initial_snapshot() => {
            reply(StatusCode::OK, "text/plain", "ready\n".into())
        }
        "/readyz" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "waiting for the initial peer snapshot\n".into(),
        ),
        "/peers" => reply(
            StatusCode::OK,
            "application/json",
            snapshot_json(&cluster.peers()).to_string(),
        ),
        "/coordinator" => match orca_cluster_core::wire::decode_query(query.unwrap_or("")) {
            Ok(q) => {
                let snapshot = cluster.peers();
                let c = snapshot.coordinator(&q.key);
                let body =
                    json!({"coordinator": peer_json(c), "generation": snapshot.generation()});
                reply(StatusCode::OK, "application/json", body.to_string())
            }
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("bad request: {e}\n"),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// How long an admin client may take to send its request head: 5 s.
pub(crate) const ADMIN_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest an admin connection stays open, whatever it does: 10 s.
pub(crate) const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

/// Binds `addr` and serves the admin endpoints in the background.
pub(crate) async fn spawn(
    addr: SocketAddr,
    cluster: Cluster,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--admin-listen {addr}: {e}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // e.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let resp = route(&cluster, req.uri().path(), req.uri().query());
                        async move { Ok::<_, Infallible>(resp) }
                    });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(ADMIN_HEAD_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                // Dropping the connection at the deadline closes it.
                let _ = tokio::time::timeout(ADMIN_CONNECTION_LIFETIME, connection).await;
            });
        }
    }))
}
