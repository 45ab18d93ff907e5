//! The accept loop: TLS handshakes (bounded), HTTP/1.1 and HTTP/2 on one port, shutdown by the
//! shared [`ListenerControl`].
//!
//! In plain mode a connection speaks HTTP/2 when it opens with the HTTP/2 preface (prior
//! knowledge), else HTTP/1.1. With TLS it speaks exactly the protocol ALPN agreed on: `h2` is
//! served as HTTP/2 only, `http/1.1` (or no agreement) as HTTP/1.1 only, so a peer cannot
//! negotiate one protocol and then speak the other.
//!
//! Every connection races the shared [`ConnectionWatch`] (first-request deadline, idle
//! timeout, send timeout); the accept loop keeps at most `max_connections` open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use orca_cluster_driver_common::options::{DEFAULT_MAX_SEND_BUF, Http2Settings};
use orca_cluster_driver_common::{
    ConnectionWatch, Expiry, ListenerContext, ListenerControl, ListenerSettings, ListenerSetup,
    TlsReloader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::batch::{BatchedIo, FlushOnYield};
use super::service::FillService;
use crate::client::BoxIo;

/// hyper's smallest allowed HTTP/1.1 read buffer (it panics below this).
const MIN_H1_BUF: usize = 8192;
/// HTTP/2 keep-alive pings of the listener.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long an idle connection's graceful close (HTTP/2 `GOAWAY`) may take.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The connection builder: HTTP/1.1 and HTTP/2 (prior knowledge or ALPN) on one port, with the
/// default HTTP/2 windows.
pub(crate) fn builder(settings: &ListenerSettings) -> auto::Builder<TokioExecutor> {
    let h2 = Http2Settings::default();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(MIN_H1_BUF));
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(h2.stream_window)
        .initial_connection_window_size(h2.connection_window)
        .max_frame_size(h2.max_frame_size)
        .max_send_buf_size(DEFAULT_MAX_SEND_BUF)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(
            u32::try_from(settings.max_concurrent_per_connection).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    builder
}

/// Accepts until the control stops; every connection runs in its own task.
pub(crate) async fn accept_loop(setup: ListenerSetup) {
    let ListenerContext {
        pipeline,
        tls,
        settings,
        control,
    } = setup.context;
    let service = FillService::from_pipeline(pipeline);
    let listener = match TcpListener::from_std(setup.socket) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(event = "listener_failed", error = %e, "fill listener: cannot register the socket");
            control.stop();
            return;
        }
    };
    let builders = Arc::new(Builders::new(&settings));
    loop {
        let accepted = tokio::select! {
            _ = control.stopped() => break,
            accepted = async {
                control.room_for(settings.max_connections).await;
                listener.accept().await
            } => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let conn = Connection {
                    builders: builders.clone(),
                    service: service.clone(),
                    tls: tls.clone(),
                    handshake_timeout: settings.tls_handshake_timeout,
                    watch: ConnectionWatch::new(&settings),
                    control: control.clone(),
                };
                let guard = control.open();
                tokio::spawn(async move {
                    let _guard = guard;
                    tokio::select! {
                        _ = conn.control.forced() => {}
                        _ = conn.serve(tcp, peer) => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!(event = "accept_failed", error = %e, "fill listener: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// The connection builders, with the same settings: one per way of picking the protocol.
struct Builders {
    /// Plain mode: HTTP/2 by prior knowledge, else HTTP/1.1.
    either: auto::Builder<TokioExecutor>,
    /// TLS with `http/1.1` agreed, or no ALPN agreement.
    http1: auto::Builder<TokioExecutor>,
    /// TLS with `h2` agreed.
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(settings: &ListenerSettings) -> Builders {
        let either = builder(settings);
        Builders {
            http1: either.clone().http1_only(),
            http2: either.clone().http2_only(),
            either,
        }
    }
}

struct Connection {
    builders: Arc<Builders>,
    service: FillService,
    tls: Option<Arc<TlsReloader>>,
    handshake_timeout: Duration,
    watch: ConnectionWatch,
    control: Arc<ListenerControl>,
}

impl Connection {
    async fn serve(&self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let (io, builder): (BoxIo, _) = match &self.tls {
            None => (Box::new(tcp), &self.builders.either),
            Some(reloader) => {
                let acceptor = TlsAcceptor::from(reloader.server_config());
                match timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let builder = match tls.get_ref().1.alpn_protocol() {
                            Some(b"h2") => &self.builders.http2,
                            _ => &self.builders.http1,
                        };
                        (Box::new(tls), builder)
                    }
                    Ok(Err(e)) => {
                        tracing::info!(event = "tls_handshake_failed", %peer, error = %e, "fill listener: TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(event = "tls_handshake_timeout", %peer, "fill listener: TLS handshake timed out");
                        return;
                    }
                }
            }
        };
        let service = self.service.clone();
        let watch = self.watch.clone();
        let on_the_wire =
            hyper::service::service_fn(move |request| service.respond_on_the_wire(request, &watch));
        let (io, batch) = BatchedIo::new(io);
        let connection = FlushOnYield::new(
            builder.serve_connection(TokioIo::new(io), on_the_wire),
            batch,
        );
        tokio::pin!(connection);
        let runtime = crate::Tokio::current();
        let result = tokio::select! {
            result = connection.as_mut() => result,
            expiry = self.watch.expired(&runtime) => {
                tracing::debug!(%peer, reason = expiry.as_str(), "fill listener: closing the connection");
                if expiry != Expiry::Idle {
                    return;
                }
                connection.as_mut().inner_mut().graceful_shutdown();
                match timeout(IDLE_CLOSE_GRACE, connection).await {
                    Ok(result) => result,
                    Err(_) => return,
                }
            }
            _ = self.control.stopped() => {
                connection.as_mut().inner_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "fill listener: connection ended with an error");
        }
    }
}
