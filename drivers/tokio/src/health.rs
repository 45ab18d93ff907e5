//! [`HealthService`]: `/healthz`, `/readyz`, `/peers` and `/coordinator` as a hyper service
//! and a tower service.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use orca_cluster_driver_common::{Health, HealthReply};

/// Answers the health endpoints of a replica from a [`Health`] (see
/// [`orca_cluster_driver_common::health`] for the table of answers): `GET`/`HEAD` of
/// `/healthz` (200), `/readyz` (200, or 503 with the reason), `/peers` and
/// `/coordinator?<fill query>` (JSON), 404 for other paths, 405 for other methods. Cheap to
/// clone; request bodies are ignored.
///
/// It implements [`hyper::service::Service`] and [`tower_service::Service`] for any
/// `http::Request<B>`, so it can be served by hyper directly or mounted in an axum router
/// (`Router::new().route_service("/healthz", health.clone()).route_service("/readyz",
/// health.clone())…`); it routes on the request's path itself, so one instance serves every
/// endpoint. It sets `Content-Length` itself and answers `HEAD` with an empty body. Bound the
/// connections of the port it is served on (request head and connection time, see
/// [`orca_cluster_driver_common::HealthLimits`]): the service answers at once but does not
/// limit its clients.
///
/// ```
/// use std::time::Duration;
/// use hyper_util::rt::{TokioIo, TokioTimer};
/// use orca_cluster_tokio::{
///     Cluster, ClusterConfig, FillListener, Health, HealthLimits, HealthService,
///     ListenerSettings, Options, StaticPeerSource, SyntheticOrigin,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = FillListener::bind("127.0.0.1:0".parse()?).await?;
/// let addr = listener.local_addr();
/// let config = ClusterConfig {
///     service: "orca-peers".into(),
///     self_pod_ip: vec![addr.ip()],
///     ..ClusterConfig::default()
/// };
/// let options = Options::default().with_peer_source(StaticPeerSource::new([addr]));
/// let cluster = Cluster::start(config, options).await?;
/// let fills = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
///
/// // Ready once the first peer lookup completed and while `fills` is serving.
/// let service = HealthService::new(Health::new(&cluster).with_listener(&fills));
/// let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let admin_addr = admin.local_addr()?;
/// let limits = HealthLimits::default();
/// tokio::spawn(async move {
///     while let Ok((stream, _)) = admin.accept().await {
///         let connection = hyper::server::conn::http1::Builder::new()
///             .timer(TokioTimer::new())
///             .header_read_timeout(limits.head_timeout)
///             .keep_alive(false)
///             .serve_connection(TokioIo::new(stream), service.clone());
///         tokio::spawn(tokio::time::timeout(limits.connection_lifetime, connection));
///     }
/// });
///
/// // A probe: one request, one connection.
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// let mut probe = tokio::net::TcpStream::connect(admin_addr).await?;
/// probe.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n").await?;
/// let mut answer = String::new();
/// probe.read_to_string(&mut answer).await?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
/// assert!(answer.ends_with("\r\n\r\nready\n"), "{answer}");
///
/// fills.shutdown(Duration::from_secs(1)).await;
/// cluster.close(Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HealthService {
    health: Health,
}

/// The tokio driver's [`HealthService`] response.
pub type HealthResponse = Response<Full<Bytes>>;

impl HealthService {
    /// A service answering from `health`.
    pub fn new(health: Health) -> Self {
        HealthService { health }
    }

    /// The health it answers from.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Answers `request` (the body is not read): [`Health::answer`] of its method, path and
    /// query, as an HTTP response.
    pub fn respond<B>(&self, request: &Request<B>) -> HealthResponse {
        let uri = request.uri();
        response(
            self.health
                .answer(request.method().as_str(), uri.path(), uri.query()),
        )
    }
}

fn response(reply: HealthReply) -> HealthResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(reply.content_length));
    if let Some(allow) = reply.allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

impl<B> hyper::service::Service<Request<B>> for HealthService {
    type Response = HealthResponse;
    type Error = Infallible;
    type Future = Ready<Result<HealthResponse, Infallible>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&request)))
    }
}

impl<B> tower_service::Service<Request<B>> for HealthService {
    type Response = HealthResponse;
    type Error = Infallible;
    type Future = Ready<Result<HealthResponse, Infallible>>;

    /// Always ready: every answer is computed at once from the shared state.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&request)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use tower_service::Service as _;

    use super::*;
    use crate::{Cluster, FillListener, ListenerSettings};
    use orca_cluster_driver_common::SyntheticOrigin;

    fn get(method: &str, target: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(target)
            .body(())
            .unwrap()
    }

    async fn text(response: HealthResponse) -> (u16, String, String) {
        let status = response.status().as_u16();
        let content_type = response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    async fn start() -> (FillListener, std::net::SocketAddr, Cluster) {
        let listener = FillListener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr();
        (listener, addr, Cluster::single(addr).await.unwrap())
    }

    #[tokio::test]
    async fn answers_through_tower_and_follows_the_listener() {
        let (listener, addr, cluster) = start().await;
        let fills = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
        let mut service = HealthService::new(Health::new(&cluster).with_listener(&fills));

        let (status, content_type, body) =
            text(service.call(get("GET", "/healthz")).await.unwrap()).await;
        assert_eq!(
            (status, content_type.as_str(), body.as_str()),
            (200, "text/plain", "ok\n")
        );
        let ready = service.call(get("GET", "/readyz")).await.unwrap();
        assert_eq!(text(ready).await.0, 200);
        let (status, content_type, body) =
            text(service.call(get("GET", "/peers")).await.unwrap()).await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert!(
            body.contains(&format!(
                r#"{{"ip":"127.0.0.1","port":{},"self":true}}"#,
                addr.port()
            )),
            "{body}"
        );
        // Absolute-form targets route on their path.
        let absolute = get("GET", "http://admin.example/healthz?probe=1");
        assert_eq!(service.call(absolute).await.unwrap().status(), 200);
        let refused = service.call(get("POST", "/readyz")).await.unwrap();
        assert_eq!(refused.status(), 405);
        assert_eq!(refused.headers()[ALLOW], "GET, HEAD");
        let head = service.call(get("HEAD", "/healthz")).await.unwrap();
        assert_eq!(head.headers()[CONTENT_LENGTH], "3");
        assert_eq!(text(head).await.2, "");

        fills.shutdown(Duration::from_secs(1)).await;
        let (status, _, body) = text(service.call(get("GET", "/readyz")).await.unwrap()).await;
        assert_eq!(
            (status, body.as_str()),
            (503, "fill listener not serving\n")
        );
        cluster.close(Duration::from_secs(1)).await.unwrap();
        let (status, _, body) = text(service.call(get("GET", "/readyz")).await.unwrap()).await;
        assert_eq!((status, body.as_str()), (503, "cluster closed\n"));
    }

    #[tokio::test]
    async fn hyper_sends_head_answers_without_a_body() {
        use hyper_util::rt::TokioIo;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (_listener, addr, cluster) = start().await;
        let service = HealthService::new(Health::new(&cluster));
        let (client, server) = tokio::io::duplex(4096);
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service),
        );
        let mut client = client;
        client
            .write_all(b"HEAD /peers HTTP/1.1\r\nhost: x\r\n\r\nGET /peers HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        let json = format!(
            r#"{{"generation":{},"peers":[{{"ip":"127.0.0.1","port":{},"self":true}}]}}"#,
            cluster.peers().generation(),
            addr.port()
        );
        let length = format!("content-length: {}\r\n", json.len());
        // Two responses, both with the GET length; the body only once, at the end.
        assert_eq!(answer.matches(&length).count(), 2, "{answer}");
        assert_eq!(answer.matches(&json).count(), 1, "{answer}");
        assert!(answer.ends_with(&format!("\r\n\r\n{json}")), "{answer}");
        cluster.close(Duration::from_secs(1)).await.unwrap();
    }
}
