//! [`SmolBody`]: a response body with its HTTP/1.1 framing removed by the core's
//! [`BodyDecoder`]; the connection goes back to the pool when the message ended cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use orca_cluster_core::h1::BodyDecoder;
use orca_cluster_driver_common::FillError;
use orca_cluster_driver_common::client::RawBody;

use super::conn::Connection;
use super::pool::Pool;

/// The body bytes of one response. Ends (`None`) at the end of the framing or at
/// end-of-stream (the caller's length check decides whether that was too early). Dropping it
/// before the end closes the connection.
#[derive(Debug)]
pub struct SmolBody {
    conn: Option<Connection>,
    decoder: BodyDecoder,
    pool: Arc<Pool>,
    addr: SocketAddr,
}

impl SmolBody {
    pub(crate) fn new(
        conn: Connection,
        decoder: BodyDecoder,
        pool: Arc<Pool>,
        addr: SocketAddr,
    ) -> SmolBody {
        SmolBody {
            conn: Some(conn),
            decoder,
            pool,
            addr,
        }
    }

    /// The message ended: keep the connection if the decoder says it is clean.
    fn end(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.decoder.is_reusable()
            && conn.pending.is_empty()
        {
            self.pool.checkin(self.addr, conn);
        }
    }
}

impl RawBody for SmolBody {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, FillError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let step = match self.decoder.decode(&conn.pending) {
                Ok(step) => step,
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(FillError::Http(format!("response body: {e}")))));
                }
            };
            let data = conn.pending.slice(step.data.clone());
            let _ = conn.pending.split_to(step.consumed);
            if step.done {
                self.end();
                return Poll::Ready(if data.is_empty() {
                    None
                } else {
                    Some(Ok(data))
                });
            }
            if !data.is_empty() {
                return Poll::Ready(Some(Ok(data)));
            }
            if step.consumed > 0 {
                continue;
            }
            match ready!(conn.poll_read_frame(cx)) {
                Ok(frame) if frame.is_empty() => {
                    // End of stream: the end of a close-delimited body, else a cut body.
                    let clean = self.decoder.finish().is_ok();
                    self.conn = None;
                    if !clean {
                        tracing::debug!(peer = %self.addr, "connection closed inside the response body");
                    }
                    return Poll::Ready(None);
                }
                Ok(frame) => conn.append(frame),
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(FillError::Http(format!("response body: {e}")))));
                }
            }
        }
    }
}
