//! [`FillService`]: the shared request pipeline as a hyper service and a tower service.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use http::{Request, Response, StatusCode};
use orca_cluster_core::admission::FillRequestHead;
use orca_cluster_core::h1::{self, HeadError};
use orca_cluster_core::wire::INTERNAL_HEADER;
use orca_cluster_driver_common::{ConnectionWatch, FillPipeline, Filler, ListenerSettings, Reply};

use super::body::FillResponseBody;
use crate::Cluster;

/// The future of one [`FillService`] call. Never fails: every outcome is a response.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<FillResponseBody>, Infallible>> + Send + 'static>>;

/// Serves `GET /internal/fill` for the application's [`Filler`] through the shared
/// [`FillPipeline`] (admission → concurrency limit → filler → guarded body; see its docs).
/// Cheap to clone (clones share the filler and the concurrency limit). Request bodies are
/// ignored.
///
/// It implements [`hyper::service::Service`] and [`tower_service::Service`] for any
/// `http::Request<B>`, so it can be mounted in an axum router
/// (`Router::new().route_service("/internal/fill", service)`) or served by hyper directly;
/// [`crate::FillListener`] serves the same pipeline with TLS, limits and graceful shutdown.
#[derive(Clone, Debug)]
pub struct FillService {
    pipeline: FillPipeline,
}

/// The hyper response of a reply.
fn response(reply: Reply) -> Response<FillResponseBody> {
    let status = StatusCode::from_u16(reply.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = reply.content_type();
    let content_length = reply.content_length();
    let (body, allow) = match reply {
        Reply::Fixed(fixed) => (FillResponseBody::full(fixed.body), fixed.allow),
        Reply::Fill(body) => (FillResponseBody::stream(body), None),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(content_length));
    if let Some(allow) = allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// The HTTP/1.x head rules hyper does not apply itself, as the core's codec applies them
/// (`orca_cluster_core::h1::parse_request_head`): exactly one `Host` in HTTP/1.1 (at most one in
/// HTTP/1.0), and the head no larger than `max_head` bytes (request line and field lines as
/// received, each with its CRLF). HTTP/2 heads are bounded by hyper's header-list limit.
fn refused_head<B>(request: &Request<B>, target: &str, max_head: usize) -> Option<HeadError> {
    let version = match request.version() {
        http::Version::HTTP_11 => h1::Version::Http11,
        http::Version::HTTP_10 => h1::Version::Http10,
        _ => return None,
    };
    let headers = request.headers();
    if let Err(e) = h1::check_host_count(version, headers.get_all(HOST).iter().count()) {
        return Some(e);
    }
    // `GET <target> HTTP/1.1\r\n`, `name: value\r\n` per field, the closing `\r\n`.
    let line = request.method().as_str().len() + 1 + target.len() + 1 + 8 + 2;
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    (line + fields + 2 > max_head).then_some(HeadError::TooLarge { limit: max_head })
}

/// The raw request target: HTTP/2's `:path` (hyper adds `:scheme` and `:authority` to the
/// URI); HTTP/1.x's request-target as sent, absolute-form included.
fn request_target<B>(request: &Request<B>) -> std::borrow::Cow<'_, str> {
    let uri = request.uri();
    let http1 = matches!(
        request.version(),
        http::Version::HTTP_09 | http::Version::HTTP_10 | http::Version::HTTP_11
    );
    if http1 && uri.scheme().is_some() {
        std::borrow::Cow::Owned(uri.to_string())
    } else {
        std::borrow::Cow::Borrowed(uri.path_and_query().map_or("", |pq| pq.as_str()))
    }
}

impl FillService {
    /// A service answering for `cluster`'s current snapshot with `filler`; at most
    /// `settings.max_concurrent` fills at once (the other settings concern connections and
    /// are used by [`crate::FillListener`]).
    pub fn new(cluster: &Cluster, filler: impl Filler, settings: &ListenerSettings) -> Self {
        FillService {
            pipeline: FillPipeline::new(cluster.state().clone(), filler, settings),
        }
    }

    /// The service of an existing pipeline (e.g. one a `FillListener` also serves, through
    /// `FillListener::serve_pipeline`, so both share the concurrency limit).
    pub fn from_pipeline(pipeline: FillPipeline) -> Self {
        FillService { pipeline }
    }

    /// The pipeline this service answers with.
    pub fn pipeline(&self) -> &FillPipeline {
        &self.pipeline
    }

    /// Fills being served right now (each holds a permit until its body ends).
    pub fn in_flight(&self) -> usize {
        self.pipeline.in_flight()
    }

    /// Answers `request` as [`FillService::respond`] does, after the HTTP/1.x head rules hyper
    /// does not apply itself and the core's codec applies to the smol driver's requests
    /// (`orca_cluster_core::h1::parse_request_head`): exactly one `Host` in HTTP/1.1 (at most one
    /// in HTTP/1.0), and a head no larger than [`ListenerSettings::max_header_bytes`] (request
    /// line and field lines, each with its CRLF); a refused head is answered 400 or 431 with
    /// `Connection: close`. The fill listener serves with these rules; an application that
    /// mounts the service in its own server leaves them to that server.
    ///
    /// The request is registered with its connection's `watch` until its response body is
    /// dropped, and answered through [`FillPipeline::respond_on`] (per-connection fill limit,
    /// send timeout).
    pub(crate) fn respond_on_the_wire<B>(
        &self,
        request: Request<B>,
        watch: &ConnectionWatch,
    ) -> ResponseFuture {
        let in_flight = watch.request();
        let target = request_target(&request);
        if let Some(refused) = refused_head(&request, &target, self.pipeline.max_header_bytes()) {
            let mut refusal = response(Reply::Fixed(self.pipeline.refuse_head(&refused)));
            refusal
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return Box::pin(std::future::ready(Ok(
                refusal.map(|body| body.holding(in_flight))
            )));
        }
        let reply = self.answer(&request, Some(watch));
        Box::pin(async move { Ok(response(reply.await).map(|body| body.holding(in_flight))) })
    }

    /// Answers `request` (the body is not read). Admission sees the raw request target (the
    /// HTTP/1.1 request-target or the HTTP/2 `:path`; an absolute-form target is passed whole)
    /// and every `x-orca-internal` value.
    pub fn respond<B>(&self, request: Request<B>) -> ResponseFuture {
        let reply = self.answer(&request, None);
        Box::pin(async move { Ok(response(reply.await)) })
    }

    fn answer<B>(
        &self,
        request: &Request<B>,
        watch: Option<&ConnectionWatch>,
    ) -> orca_cluster_driver_common::listener::ReplyFuture {
        let target = request_target(request);
        let internal: Vec<&[u8]> = request
            .headers()
            .get_all(INTERNAL_HEADER)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let head = FillRequestHead {
            method: request.method().as_str(),
            target: &target,
            internal_header: &internal,
        };
        match watch {
            Some(watch) => self.pipeline.respond_on(&head, watch),
            None => self.pipeline.respond(&head),
        }
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
