//! Turning a response head into a [`FillBody`] or an error, as the core classifies it.

use http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::Incoming;
use orca_cluster_core::fill::{ResponseVerdict, classify_response};
use orca_cluster_driver_common::FillError;

use super::body::{BodyGuard, FillBody};
use super::stats::StatsRef;

/// The declared `Content-Length`: `None` when absent, `u64::MAX` when not a number (the core
/// then rejects it as a mismatch).
fn content_length(response: &Response<Incoming>) -> Option<u64> {
    response.headers().get(CONTENT_LENGTH).map(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    })
}

/// Classifies `response` for a chunk of `expected_len` bytes. Error statuses have at most
/// 1 KiB of their body read (then the body is dropped, which stops the transfer).
pub(crate) async fn into_fill_body(
    response: Response<Incoming>,
    expected_len: u64,
    guard: BodyGuard,
    stats: StatsRef,
) -> Result<FillBody, FillError> {
    let status = response.status().as_u16();
    match classify_response(status, content_length(&response), expected_len) {
        ResponseVerdict::Body(_) => Ok(FillBody::new(
            response.into_body(),
            expected_len,
            guard,
            stats,
        )),
        ResponseVerdict::Reject(e) => Err(FillError::Check(e)),
        ResponseVerdict::ErrorBody(mut collector) => {
            let mut body = response.into_body();
            while collector.remaining() > 0 {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            collector.push(&data);
                        }
                    }
                    Some(Err(_)) | None => break,
                }
            }
            Err(FillError::Check(collector.finish()))
        }
    }
}
