//! The accept loop: TLS handshakes (bounded), HTTP/1.1 and HTTP/2 on one port, shutdown by the
//! shared [`ListenerControl`].
//!
//! In plain mode a connection speaks HTTP/2 when it opens with the HTTP/2 preface (prior
//! knowledge), else HTTP/1.1. With TLS it speaks exactly the protocol ALPN agreed on: `h2` is
//! served as HTTP/2 only, `http/1.1` (or no agreement) as HTTP/1.1 only, so a peer cannot
//! negotiate one protocol and then speak the other.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use orca_cluster_driver_common::options::{DEFAULT_MAX_SEND_BUF, Http2Settings};
use orca_cluster_driver_common::{
    ListenerContext, ListenerControl, ListenerSettings, ListenerSetup, TlsReloader,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::service::FillService;
use crate::client::BoxIo;

/// hyper's smallest allowed HTTP/1.1 read buffer (it panics below this).
const MIN_H1_BUF: usize = 8192;
/// HTTP/2 keep-alive pings of the listener.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

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
            return;
        }
    };
    let builders = Arc::new(Builders::new(&settings));
    loop {
        let accepted = tokio::select! {
            _ = control.stopped() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let conn = Connection {
                    builders: builders.clone(),
                    service: service.clone(),
                    tls: tls.clone(),
                    handshake_timeout: settings.tls_handshake_timeout,
                    header_read_timeout: settings.header_read_timeout,
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
    header_read_timeout: Duration,
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
        // hyper's header timer starts with the first byte of a request; a connection that sends
        // nothing at all (hyper-util waits for bytes to pick HTTP/1.1 or HTTP/2) gets the same
        // header_read_timeout, as on every driver.
        let heard = Arc::new(AtomicBool::new(false));
        let io = FirstByte {
            inner: io,
            heard: heard.clone(),
        };
        let service = self.service.clone();
        let on_the_wire =
            hyper::service::service_fn(move |request| service.respond_on_the_wire(request));
        let connection = builder.serve_connection(TokioIo::new(io), on_the_wire);
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = silent_for(&heard, self.header_read_timeout) => {
                tracing::debug!(%peer, "fill listener: nothing received within the header read timeout; closing");
                return;
            }
            _ = self.control.stopped() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "fill listener: connection ended with an error");
        }
    }
}

/// Completes once `limit` has passed without a byte received (else never).
async fn silent_for(heard: &AtomicBool, limit: Duration) {
    tokio::time::sleep(limit).await;
    if heard.load(Ordering::Acquire) {
        std::future::pending::<()>().await;
    }
}

pin_project_lite::pin_project! {
    /// A connection's stream that notes when its first byte arrives.
    struct FirstByte {
        #[pin]
        inner: BoxIo,
        heard: Arc<AtomicBool>,
    }
}

impl AsyncRead for FirstByte {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.heard.store(true, Ordering::Release);
        }
        polled
    }
}

/// Writes pass straight through.
impl AsyncWrite for FirstByte {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
