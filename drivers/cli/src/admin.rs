//! The node's admin port: `/healthz`, `/readyz`, `/peers`, `/coordinator?<fill query>`, answered
//! by the library's [`HealthService`] (the same answers an embedding application serves), and
//! `/metrics` (the Prometheus text exposition of the process's metrics recorder).
//!
//! Bounded: one request per connection (no keep-alive), a request head within
//! [`HealthLimits::head_timeout`] (5 s), and a connection lives at most
//! [`HealthLimits::connection_lifetime`] (10 s), so a client that connects and sends nothing
//! (or trickles bytes) cannot hold the port's resources; probes (kubelet, curl) open a
//! connection per request anyway.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use orca_cluster_tokio::{Health, HealthLimits, HealthService};

/// The content type of the Prometheus text exposition format.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Binds `addr` and serves the admin endpoints of `health` in the background (a `Cluster`
/// converts into the health of that cluster alone; pass
/// `Health::new(&cluster).with_listener(&handle)` to also report the fill listener), and
/// `GET /metrics` from `metrics` when given.
pub(crate) async fn spawn(
    addr: SocketAddr,
    health: impl Into<Health>,
    metrics: Option<PrometheusHandle>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let health = HealthService::new(health.into());
    let service = hyper::service::service_fn(move |request: Request<_>| {
        let response = match (&metrics, request.uri().path()) {
            (Some(metrics), "/metrics") => metrics_response(request.method(), metrics),
            _ => health.respond(&request),
        };
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let limits = HealthLimits::default();
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
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.head_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service.clone());
            // Dropping the connection at the deadline closes it.
            tokio::spawn(tokio::time::timeout(limits.connection_lifetime, connection));
        }
    }))
}

/// `GET` (and `HEAD`) `/metrics`: the rendered exposition; 405 for other methods.
fn metrics_response(method: &Method, metrics: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, body) = match *method {
        Method::GET => (StatusCode::OK, Bytes::from(metrics.render())),
        Method::HEAD => (StatusCode::OK, Bytes::new()),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"method not allowed: use GET\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if status == StatusCode::OK {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
    } else {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

#[cfg(test)]
mod tests {
    use orca_cluster_tokio::common::health::{coordinator_json, snapshot_json};
    use orca_cluster_tokio::core::{PeerAddr, Scoring, SelfIdentity};
    use orca_cluster_tokio::{ChunkKey, Snapshot};
    use serde_json::{Value, json};

    use crate::output;

    /// The admin port answers with the JSON the `peers` command prints (`output.rs`), byte for
    /// byte, IPv6 included.
    #[test]
    fn admin_json_is_the_commands_json() {
        let me = SelfIdentity::new(["10.0.0.2".parse().unwrap()], 8444).unwrap();
        let addrs = ["10.0.0.1:8444", "10.0.0.2:8444", "[fd00::3]:9000"]
            .map(|a| PeerAddr::from(a.parse::<std::net::SocketAddr>().unwrap()));
        let snapshot = Snapshot::new(&me, addrs, Scoring::Xxh3, 12);
        let peers = snapshot_json(&snapshot);
        assert_eq!(peers, output::snapshot_json(&snapshot).to_string());
        let key = ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size: 1 << 20,
            index: 0,
        };
        let expected = json!({
            "coordinator": output::peer_json(snapshot.coordinator(&key)),
            "generation": 12,
        });
        let coordinator = coordinator_json(&snapshot, &key);
        assert_eq!(coordinator, expected.to_string());
        assert_eq!(
            serde_json::from_str::<Value>(&coordinator).unwrap(),
            expected
        );
    }
}
