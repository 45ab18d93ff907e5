//! The client's HTTP/1.1 machinery on smol: [`SmolExchange`], driven by the shared fill client
//! (`orca_cluster_driver_common::FillClient`). Framing is the core's sans-IO codec
//! ([`orca_cluster_core::h1`]): the request is encoded by it, the response head parsed by it,
//! the body decoded by its [`orca_cluster_core::h1::BodyDecoder`]. This module only moves
//! bytes and keeps connections.

mod body;
mod conn;
mod pool;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use orca_cluster_core::fill::FillDescriptor;
use orca_cluster_core::h1;
use orca_cluster_driver_common::client::{
    ClientSetup, Exchange, Response, ResponseHead, SendError,
};
use orca_cluster_driver_common::{ClientSettings, FillError, TlsReloader, Transport};

pub use body::SmolBody;

use conn::Connection;
use pool::Pool;

use crate::runtime::Smol;
use crate::stream::BoxIo;

/// Value of the `User-Agent` header of fill requests.
pub const USER_AGENT: &str = concat!("orca-cluster-smol/", env!("CARGO_PKG_VERSION"));

/// Keep-alive HTTP/1.1 connections pooled per peer. Built by the shared fill client.
#[derive(Debug)]
pub struct SmolExchange {
    pool: Arc<Pool>,
    transport: TransportRef,
    tls: Option<Arc<TlsReloader>>,
    settings: ClientSettings,
}

struct TransportRef(Arc<dyn Transport<BoxIo>>);

impl std::fmt::Debug for TransportRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transport")
    }
}

impl SmolExchange {
    pub(crate) fn new(setup: ClientSetup<Smol>) -> SmolExchange {
        let settings = setup.settings;
        let pool = Arc::new(Pool::new(settings.max_idle_per_peer, settings.idle_timeout));
        smol::spawn(expire_idle(Arc::downgrade(&pool), settings.idle_timeout)).detach();
        SmolExchange {
            pool,
            transport: TransportRef(
                setup
                    .transport
                    .unwrap_or_else(|| Arc::new(crate::stream::TcpTransport)),
            ),
            tls: setup.tls,
            settings,
        }
    }
}

/// Closes idle connections past the idle timeout, checking every `idle_timeout / 2` (at most
/// 5 s); ends when the pool is gone.
async fn expire_idle(pool: Weak<Pool>, idle_timeout: Duration) {
    let tick = (idle_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(5));
    loop {
        crate::runtime::sleep(tick).await;
        let Some(pool) = pool.upgrade() else { return };
        pool.expire();
    }
}

impl Exchange for SmolExchange {
    type Body = SmolBody;

    async fn send(
        &self,
        addr: SocketAddr,
        d: &FillDescriptor,
        fresh: bool,
    ) -> Result<Response<SmolBody>, SendError> {
        let mut request = Vec::with_capacity(256 + d.path_and_query.len());
        h1::encode_fill_request(d, USER_AGENT, &mut request)
            .map_err(|e| SendError::Failed(FillError::Http(format!("request: {e}"))))?;
        let pooled = if fresh {
            None
        } else {
            self.pool.checkout(addr)
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => Connection::open(
                addr,
                &*self.transport.0,
                self.tls.as_deref(),
                &self.settings,
            )
            .await
            .map_err(SendError::Failed)?,
        };
        let head = conn.exchange(&request, reused).await?;
        Ok(Response {
            head: ResponseHead {
                status: head.status,
                framing: Ok(head.declared),
            },
            body: SmolBody::new(conn, head.body_decoder(), self.pool.clone(), addr),
        })
    }

    async fn probe(&self, addr: SocketAddr) -> Result<(), FillError> {
        let conn = Connection::open(
            addr,
            &*self.transport.0,
            self.tls.as_deref(),
            &self.settings,
        )
        .await?;
        // Reachable: keep the connection for the next fill.
        self.pool.checkin(addr, conn);
        Ok(())
    }

    fn evict(&self, addrs: &[SocketAddr]) {
        self.pool.evict(addrs);
    }

    fn close(&self) {
        self.pool.close();
    }

    fn connected_peers(&self) -> Vec<SocketAddr> {
        self.pool.addrs()
    }

    fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}
