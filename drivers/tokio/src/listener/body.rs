//! [`FillResponseBody`]: a [`Reply`]'s body as an [`http_body::Body`] for hyper.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use orca_cluster_driver_common::{FillerBody, RequestGuard};

/// The body of a fill listener response (`Data = Bytes`, `Error = io::Error`): a fixed answer,
/// or the filler's bytes behind the shared [`FillerBody`] guard, whose error makes hyper abort
/// the response (HTTP/2: stream reset; HTTP/1.1: connection closed).
pub struct FillResponseBody {
    kind: Kind,
    /// The request's registration with its connection's watch (fill listener only), released
    /// with the body.
    request: Option<RequestGuard>,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(Box<FillerBody>),
}

impl fmt::Debug for FillResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(b) => f
                .debug_struct("FillResponseBody")
                .field("full", &b.as_ref().map(Bytes::len))
                .finish(),
            Kind::Stream(s) => f.debug_tuple("FillResponseBody").field(s).finish(),
        }
    }
}

impl FillResponseBody {
    pub(crate) fn full(bytes: Bytes) -> FillResponseBody {
        FillResponseBody {
            kind: Kind::Full(Some(bytes)),
            request: None,
        }
    }

    pub(crate) fn stream(body: FillerBody) -> FillResponseBody {
        FillResponseBody {
            kind: Kind::Stream(Box::new(body)),
            request: None,
        }
    }

    /// Keeps `request` in flight until this body is dropped.
    pub(crate) fn holding(mut self, request: RequestGuard) -> FillResponseBody {
        self.request = Some(request);
        self
    }
}

impl Body for FillResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => s.poll_frame(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => SizeHint::with_exact(s.remaining()),
        }
    }
}
