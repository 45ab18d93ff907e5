//! The fill service (DESIGN 3.6): admission by the core, the concurrency limit, the
//! application's filler, and the reply. Nothing is decided here that the core decides:
//! [`admit`] gives 404/405/400/409, the core's constants give 502 and 503 and their bodies.

use std::sync::Arc;

use orca_cluster_core::admission::{
    FILL_CONTENT_TYPE, FILL_FAILED_BODY, FILL_FAILED_STATUS, FillRequestHead, OVERLOADED_BODY,
    OVERLOADED_STATUS, admit,
};
use orca_cluster_core::wire::INTERNAL_HEADER;
use orca_cluster_driver_common::{ClusterState, ConcurrencyLimit, FillRequest, Filler, Stats};

use super::body::FillerBody;
use super::reply::{Reply, ReplyBody};

/// Content type of the plain-text error bodies.
const TEXT: &str = "text/plain; charset=utf-8";

/// What the service needs, shared by every connection of a listener.
pub(crate) struct Service {
    pub(crate) state: Arc<ClusterState>,
    pub(crate) filler: Arc<dyn Filler>,
    pub(crate) limit: ConcurrencyLimit,
}

impl Service {
    fn failed(&self, reply: Reply) -> Reply {
        Stats::incr(&self.state.stats().served_failed);
        reply
    }

    /// Answers one request (decoded by async-h1).
    pub(crate) async fn respond(&self, request: &http_types::Request) -> Reply {
        let method = request.method().to_string();
        let header = request.header(INTERNAL_HEADER).map(|v| v.last().as_str());
        let head = FillRequestHead {
            method: &method,
            path: request.url().path(),
            query: request.url().query(),
            internal_header: header.map(str::as_bytes),
        };
        let admitted = match admit(&head, &self.state.peers()) {
            Ok(admitted) => admitted,
            Err(rejection) => {
                tracing::debug!(status = rejection.status(), reason = %rejection, "fill request rejected");
                let mut reply = Reply::text(
                    rejection.status(),
                    rejection.body().into_owned(),
                    rejection.content_type(),
                );
                reply.allow = rejection.allow();
                return self.failed(reply);
            }
        };
        let Some(permit) = self.limit.try_acquire() else {
            tracing::debug!(limit = self.limit.max(), "fill request refused: overloaded");
            return self.failed(Reply::text(OVERLOADED_STATUS, OVERLOADED_BODY, TEXT));
        };
        let expected_len = admitted.expected_len;
        let fill = FillRequest {
            key: admitted.query.key,
            object_size: admitted.query.object_size,
            expected_len,
        };
        match self.filler.fill(fill).await {
            Ok(stream) => Reply {
                status: 200,
                content_type: FILL_CONTENT_TYPE,
                allow: None,
                body: ReplyBody::Fill(FillerBody::new(
                    stream,
                    expected_len,
                    self.state.clone(),
                    permit,
                )),
            },
            Err(e) => {
                tracing::warn!(event = "fill_failed", error = %e, "filler failed");
                self.failed(Reply::text(FILL_FAILED_STATUS, FILL_FAILED_BODY, TEXT))
            }
        }
    }
}
