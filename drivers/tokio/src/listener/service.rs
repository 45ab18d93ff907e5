//! [`FillService`]: the fill RPC's request handler (the design's section 3.6), as a hyper
//! service and a tower service.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use orca_cluster_core::admission::{
    FILL_CONTENT_TYPE, FILL_FAILED_BODY, FILL_FAILED_STATUS, FillRequestHead, OVERLOADED_BODY,
    OVERLOADED_STATUS, Rejection, admit,
};
use orca_cluster_core::wire::INTERNAL_HEADER;
use orca_cluster_driver_common::{ClusterState, ConcurrencyLimit, FillRequest, Filler, Stats};

use super::body::FillResponseBody;
use super::settings::ListenerSettings;
use crate::cluster::Cluster;

/// The future of one [`FillService`] call. Never fails: every outcome is a response.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<FillResponseBody>, Infallible>> + Send + 'static>>;

/// Serves `GET /internal/fill` for the application's [`Filler`]. Cheap to clone (clones share
/// the filler and the concurrency limit).
///
/// Per request, in this order: the core's admission checks against the cluster's current
/// snapshot (404 wrong path, 405 not `GET`, 400 no `x-orca-internal: 1`, 400 naming a bad
/// query parameter, 409 `{"reason":"not_coordinator"}`); then 503 if `max_concurrent` fills are
/// already being served; then the filler (its error: 502 `fill failed`); then 200 with
/// `Content-Length` and `Content-Type: application/octet-stream` and the filler's bytes,
/// aborted if they are not exactly the chunk's length. Request bodies are ignored.
///
/// It implements [`hyper::service::Service`] and [`tower_service::Service`] for any
/// `http::Request<B>`, so it can be mounted in an axum router
/// (`Router::new().route_service("/internal/fill", service)`) or served by hyper directly;
/// [`crate::FillListener`] serves it with TLS, limits and graceful shutdown.
#[derive(Clone)]
pub struct FillService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    state: Arc<ClusterState>,
    filler: Arc<dyn Filler>,
    limit: ConcurrencyLimit,
}

impl fmt::Debug for FillService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillService")
            .field("in_flight", &self.inner.limit.in_use())
            .field("max_concurrent", &self.inner.limit.max())
            .finish_non_exhaustive()
    }
}

fn fixed(
    status: u16,
    content_type: &'static str,
    body: Cow<'static, str>,
) -> Response<FillResponseBody> {
    let len = body.len() as u64;
    let bytes = match body {
        Cow::Borrowed(s) => bytes::Bytes::from_static(s.as_bytes()),
        Cow::Owned(s) => bytes::Bytes::from(s),
    };
    let mut response = Response::new(FillResponseBody::full(bytes));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}

fn rejection(r: &Rejection) -> Response<FillResponseBody> {
    let mut response = fixed(r.status(), r.content_type(), r.body());
    if let Some(allow) = r.allow() {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

impl FillService {
    /// A service answering for `cluster`'s current snapshot with `filler`; at most
    /// `settings.max_concurrent` fills at once (the other settings concern the connection
    /// and are used by [`crate::FillListener`]).
    pub fn new(cluster: &Cluster, filler: impl Filler, settings: &ListenerSettings) -> Self {
        FillService {
            inner: Arc::new(ServiceInner {
                state: cluster.state().clone(),
                filler: Arc::new(filler),
                limit: ConcurrencyLimit::new(settings.max_concurrent),
            }),
        }
    }

    /// Fills being served right now (each holds a permit until its body ends).
    pub fn in_flight(&self) -> usize {
        self.inner.limit.in_use()
    }

    /// Answers `request` (the body is not read).
    pub fn respond<B>(&self, request: Request<B>) -> ResponseFuture {
        let inner = &self.inner;
        let stats = inner.state.stats();
        let head = FillRequestHead {
            method: request.method().as_str(),
            path: request.uri().path(),
            query: request.uri().query(),
            internal_header: request
                .headers()
                .get(INTERNAL_HEADER)
                .map(HeaderValue::as_bytes),
        };
        let admitted = match admit(&head, &inner.state.peers()) {
            Ok(a) => a,
            Err(r) => {
                Stats::incr(&stats.served_failed);
                tracing::debug!(event = "fill_rejected", status = r.status(), reason = %r, "fill request rejected");
                return Box::pin(std::future::ready(Ok(rejection(&r))));
            }
        };
        drop(request);
        let Some(permit) = inner.limit.try_acquire() else {
            Stats::incr(&stats.served_failed);
            tracing::debug!(
                event = "fill_overloaded",
                max = inner.limit.max(),
                "fill request refused: at the concurrency limit"
            );
            return Box::pin(std::future::ready(Ok(fixed(
                OVERLOADED_STATUS,
                TEXT,
                Cow::Borrowed(OVERLOADED_BODY),
            ))));
        };
        let inner = inner.clone();
        Box::pin(async move {
            let expected_len = admitted.expected_len;
            let request = FillRequest {
                key: admitted.query.key,
                object_size: admitted.query.object_size,
                expected_len,
            };
            match inner.filler.fill(request).await {
                Err(e) => {
                    Stats::incr(&inner.state.stats().served_failed);
                    tracing::warn!(event = "filler_failed", error = %e, "filler failed; answering 502");
                    Ok(fixed(
                        FILL_FAILED_STATUS,
                        TEXT,
                        Cow::Borrowed(FILL_FAILED_BODY),
                    ))
                }
                Ok(stream) => {
                    let body =
                        FillResponseBody::stream(stream, expected_len, permit, inner.state.clone());
                    let mut response = Response::new(body);
                    let headers = response.headers_mut();
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static(FILL_CONTENT_TYPE));
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(expected_len));
                    Ok(response)
                }
            }
        })
    }
}

impl<B> hyper::service::Service<Request<B>> for FillService {
    type Response = Response<FillResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> ResponseFuture {
        self.respond(request)
    }
}

impl<B> tower_service::Service<Request<B>> for FillService {
    type Response = Response<FillResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: overload is answered with 503 per request, not by back-pressure.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        self.respond(request)
    }
}
