//! The fill client: `GET /internal/fill` to a peer over pooled keep-alive HTTP/1.1 connections.
//!
//! HTTP/1.1 framing is done here with `httparse` rather than with `async_h1::connect`: that
//! function consumes its stream and hides it inside the response body (behind its own buffered
//! reader), so whether the connection is clean for reuse cannot be known; it also rejects status
//! codes `http-types` does not know and `Content-Length` values it cannot parse before the core
//! could classify them. The request, the descriptor and every judgement of the response come
//! from the core ([`FillDescriptor`], [`classify_response`]).

pub(crate) mod body;
pub(crate) mod chunked;
pub(crate) mod conn;
pub(crate) mod head;
pub(crate) mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_lite::StreamExt;
use orca_cluster_core::fill::{FillDescriptor, ResponseVerdict, Scheme, classify_response};
use orca_cluster_core::{ChunkKey, Peer};
use orca_cluster_driver_common::{ClusterState, FillError, Stats, TlsReloader};

use body::{FillBody, RawBody, Return};
use conn::{Connection, ExchangeError};
use head::ResponseHead;
use pool::{Pool, PoolSettings};

/// Value of the `User-Agent` header of fill requests.
pub const USER_AGENT: &str = concat!("orca-cluster-smol/", env!("CARGO_PKG_VERSION"));

/// The client half of a cluster.
#[derive(Debug)]
pub(crate) struct FillClient {
    pub(crate) pool: Arc<Pool>,
    tls: Option<Arc<TlsReloader>>,
    listen_port: u16,
    state: Arc<ClusterState>,
    closed: AtomicBool,
}

fn request_bytes(desc: &FillDescriptor) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + desc.path_and_query.len());
    out.extend_from_slice(FillDescriptor::METHOD.as_bytes());
    out.push(b' ');
    out.extend_from_slice(desc.path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(desc.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in FillDescriptor::HEADERS {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"user-agent: ");
    out.extend_from_slice(USER_AGENT.as_bytes());
    out.extend_from_slice(b"\r\naccept: application/octet-stream\r\n\r\n");
    out
}

impl FillClient {
    pub(crate) fn new(
        settings: PoolSettings,
        tls: Option<Arc<TlsReloader>>,
        listen_port: u16,
        state: Arc<ClusterState>,
    ) -> FillClient {
        FillClient {
            pool: Arc::new(Pool::new(settings)),
            tls,
            listen_port,
            state,
            closed: AtomicBool::new(false),
        }
    }

    fn scheme(&self) -> Scheme {
        if self.tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }

    /// Closes the pool; later fills fail with [`FillError::Closed`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pool.close();
    }

    /// One fill; see `Cluster::fill_from_peer`.
    pub(crate) async fn fill(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
    ) -> Result<FillBody, FillError> {
        let stats = self.state.stats();
        Stats::incr(&stats.fills_started);
        let result = self.try_fill(peer, key, object_size).await;
        if let Err(e) = &result {
            Stats::incr(&stats.fills_failed);
            if e.is_not_coordinator() {
                Stats::incr(&stats.fills_not_coordinator);
            }
            tracing::debug!(peer = %peer, error = %e, kind = e.kind(), "fill failed");
        }
        result
    }

    async fn try_fill(
        &self,
        peer: &Peer,
        key: &ChunkKey,
        object_size: u64,
    ) -> Result<FillBody, FillError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(FillError::Closed);
        }
        let desc = FillDescriptor::new(peer, key, object_size, self.scheme(), self.listen_port)?;
        let addr = SocketAddr::new(desc.ip, desc.port);
        let request = request_bytes(&desc);
        let (conn, head) = self.exchange(addr, &request).await?;
        let back = Return {
            pool: self.pool.clone(),
            addr,
        };
        let raw = RawBody::new(conn, head.framing, head.keep_alive, Some(back));
        match classify_response(head.status, head.content_length, desc.expected_len) {
            ResponseVerdict::Body(_) => {
                Ok(FillBody::new(raw, desc.expected_len, self.state.clone()))
            }
            ResponseVerdict::Reject(rejection) => {
                if rejection == orca_cluster_core::fill::FillCheckError::NotCoordinator {
                    // A small 409 body is drained so the connection can be reused.
                    drain_small(raw, &head).await;
                }
                Err(FillError::Check(rejection))
            }
            ResponseVerdict::ErrorBody(mut collector) => {
                let mut raw = raw;
                while collector.remaining() > 0 {
                    match raw.next().await {
                        Some(Ok(frame)) => collector.push(&frame),
                        Some(Err(_)) | None => break,
                    }
                }
                // A body that fit in the bounded read ended its framing, which returned the
                // connection to the pool; a longer one is closed when `raw` drops here.
                Err(FillError::Check(collector.finish()))
            }
        }
    }

    /// Sends the request on a pooled connection (or a new one) and reads the response head.
    /// A pooled connection that fails before any response byte arrives is replaced by a fresh
    /// one, once (a GET is idempotent).
    async fn exchange(
        &self,
        addr: SocketAddr,
        request: &[u8],
    ) -> Result<(Connection, ResponseHead), FillError> {
        if let Some(mut conn) = self.pool.checkout(addr) {
            match conn.exchange(request).await {
                Ok(head) => return Ok((conn, head)),
                Err(ExchangeError {
                    before_response: true,
                    error,
                }) => {
                    tracing::debug!(%addr, error = %error, "pooled connection failed before the response; retrying on a new connection");
                }
                Err(e) => return Err(e.error),
            }
        }
        let mut conn = Connection::open(addr, self.tls.as_deref()).await?;
        let head = conn.exchange(request).await.map_err(|e| e.error)?;
        Ok((conn, head))
    }
}

/// Reads a small, length-delimited body to its end (so the connection returns to the pool).
async fn drain_small(mut raw: RawBody, head: &ResponseHead) {
    if matches!(head.framing, head::Framing::Length(n) if n <= orca_cluster_core::fill::MAX_ERROR_BODY as u64)
        || head.framing == head::Framing::Empty
    {
        while let Some(Ok(_)) = raw.next().await {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_a_plain_get_with_the_internal_header() {
        let peer = Peer {
            ip: "127.0.0.1".parse().unwrap(),
            port: 4000,
            is_self: false,
        };
        let key = ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size: 10,
            index: 0,
        };
        let desc = FillDescriptor::new(&peer, &key, 100, Scheme::Http, 0).unwrap();
        let text = String::from_utf8(request_bytes(&desc)).unwrap();
        assert!(text.starts_with("GET /internal/fill?bucket=b&"));
        assert!(text.contains(" HTTP/1.1\r\nhost: 127.0.0.1:4000\r\nx-orca-internal: 1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
