//! The accept loop: TLS handshakes (bounded), HTTP/1.1 and HTTP/2 on one port, graceful
//! shutdown with a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use orca_cluster_driver_common::TlsReloader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::service::FillService;
use super::settings::ListenerSettings;
use crate::client::{
    BoxIo, DEFAULT_CONNECTION_WINDOW, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_SEND_BUF,
    DEFAULT_STREAM_WINDOW,
};

/// hyper's smallest allowed HTTP/1.1 read buffer (it panics below this).
const MIN_H1_BUF: usize = 8192;
/// How long an HTTP/1.1 client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 keep-alive pings of the listener.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The connection builder: HTTP/1.1 and HTTP/2 (prior knowledge or ALPN) on one port.
pub(crate) fn builder(settings: &ListenerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(settings.max_header_bytes.max(MIN_H1_BUF));
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(DEFAULT_STREAM_WINDOW)
        .initial_connection_window_size(DEFAULT_CONNECTION_WINDOW)
        .max_frame_size(DEFAULT_MAX_FRAME_SIZE)
        .max_send_buf_size(DEFAULT_MAX_SEND_BUF)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    builder
}

pub(crate) struct AcceptLoop {
    pub(crate) listener: TcpListener,
    pub(crate) service: FillService,
    pub(crate) tls: Option<Arc<TlsReloader>>,
    pub(crate) settings: ListenerSettings,
    /// `Some(deadline)` asks for a graceful shutdown; a dropped sender means "stop now".
    pub(crate) shutdown: watch::Receiver<Option<Duration>>,
}

impl AcceptLoop {
    pub(crate) async fn run(mut self) {
        let builder = Arc::new(builder(&self.settings));
        let (stop_conns, conns_stop) = watch::channel(false);
        let mut conns = JoinSet::new();
        let deadline = loop {
            tokio::select! {
                deadline = requested_deadline(&mut self.shutdown) => break deadline,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let conn = Connection {
                            builder: builder.clone(),
                            service: self.service.clone(),
                            tls: self.tls.clone(),
                            handshake_timeout: self.settings.tls_handshake_timeout,
                            stop: conns_stop.clone(),
                        };
                        conns.spawn(conn.serve(tcp, peer));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "fill listener: accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        };
        drop(self.listener);
        let _ = stop_conns.send(true);
        let drained = timeout(deadline, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(
                remaining = conns.len(),
                "fill listener: shutdown deadline passed; dropping remaining connections"
            );
        }
        conns.shutdown().await;
    }
}

/// The deadline of a requested shutdown; zero when the handle was dropped.
async fn requested_deadline(shutdown: &mut watch::Receiver<Option<Duration>>) -> Duration {
    match shutdown.wait_for(Option::is_some).await {
        Ok(value) => value.unwrap_or(Duration::ZERO),
        Err(_) => Duration::ZERO,
    }
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    service: FillService,
    tls: Option<Arc<TlsReloader>>,
    handshake_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(mut self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let io: BoxIo = match &self.tls {
            None => Box::new(tcp),
            Some(reloader) => {
                let acceptor = TlsAcceptor::from(reloader.server_config());
                match timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Box::new(tls),
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
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), self.service.clone());
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = async { drop(self.stop.wait_for(|stop| *stop).await) } => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "fill listener: connection ended with an error");
        }
    }
}
