//! The node's admin endpoints: /healthz, /readyz, /peers, /coordinator?<fill query>.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
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
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }))
}
