//! The accept loop and the per-connection tasks: TLS handshake (when enabled), then a
//! keep-alive loop — async-h1 decodes each request head, [`Service`] answers it, and the reply
//! is written here, body frames straight from the filler to the socket (one write per frame,
//! no intermediate copy).

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncWriteExt, StreamExt};
use orca_cluster_driver_common::TlsReloader;
use smol::net::{TcpListener, TcpStream};

use super::io::{ServerConn, ServerIo, Violation};
use super::reply::{Reply, ReplyBody};
use super::service::Service;
use super::shared::Shared;
use crate::runtime::timeout;
use crate::stream::MaybeTls;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again: 50 ms.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a connection may wait for its next request head, and how long one write of a
/// response may take: 75 s. (Longer than the clients' 30 s pool idle timeout, so an idle
/// connection is normally closed by the client, never under a request in flight.)
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// What every connection task needs.
pub(crate) struct Context {
    /// Keeps the cluster (and its membership task) alive while the listener serves.
    pub(crate) _cluster: crate::Cluster,
    pub(crate) service: Service,
    pub(crate) tls: Option<Arc<TlsReloader>>,
    pub(crate) max_header_bytes: usize,
    pub(crate) shared: Arc<Shared>,
}

/// Accepts until shutdown begins; each connection runs in its own task.
pub(crate) async fn accept_loop(listener: TcpListener, context: Arc<Context>) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            context.shared.stopped().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((tcp, remote))) => {
                let open = context.shared.open();
                let context = context.clone();
                smol::spawn(async move {
                    let _open = open;
                    futures_lite::future::or(serve_connection(tcp, context.clone()), async {
                        context.shared.forced().await;
                    })
                    .await;
                    tracing::trace!(%remote, "fill connection closed");
                })
                .detach();
            }
            Some(Err(e)) => {
                tracing::warn!(event = "accept_failed", error = %e, "fill listener accept failed");
                crate::runtime::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn serve_connection(tcp: TcpStream, context: Arc<Context>) {
    let _ = tcp.set_nodelay(true);
    let remote = tcp.peer_addr().ok();
    let stream = match &context.tls {
        Some(reloader) => match crate::tls::accept(reloader, tcp).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(remote = ?remote, error = %e, "fill listener: TLS handshake failed");
                return;
            }
        },
        None => MaybeTls::Plain(tcp),
    };
    let io: ServerIo = ServerConn::new(stream, context.max_header_bytes);
    let shared = &context.shared;
    loop {
        io.lock().start_head();
        // Wait for the next request; an idle connection gives up at shutdown or after
        // IDLE_TIMEOUT (a request already arriving is still read).
        // `None`: idle for too long, or shutdown.
        let decode = async {
            Some(
                async_h1::server::decode(io.clone())
                    .await
                    .map(|r| r.map(|(request, _body)| request)),
            )
        };
        let next = if io.lock().has_pending() {
            timeout(IDLE_TIMEOUT, decode).await.flatten()
        } else {
            futures_lite::future::or(decode, async {
                futures_lite::future::or(shared.stopped(), crate::runtime::sleep(IDLE_TIMEOUT))
                    .await;
                None
            })
            .await
        };
        let request = match next {
            None | Some(Ok(None)) => return,
            Some(Ok(Some(request))) => request,
            Some(Err(e)) => {
                let violation = io.lock().violation();
                tracing::debug!(remote = ?remote, error = %e, "fill listener: bad request head");
                let reply = match violation {
                    Some(Violation::TooLarge) => {
                        Reply::text(431, "request head too large\n", "text/plain; charset=utf-8")
                    }
                    _ => Reply::text(
                        400,
                        "bad request: malformed request head\n",
                        "text/plain; charset=utf-8",
                    ),
                };
                let _ = write_reply(&io, reply, true).await;
                return;
            }
        };
        let _in_flight = shared.in_flight();
        // The fill RPC has no request bodies and is GET only: anything else is answered, then
        // its connection closed (its body is never read).
        let close = request.len().is_some_and(|n| n > 0)
            || request.header("transfer-encoding").is_some()
            || request.method() != http_types::Method::Get
            || request.header("connection").is_some_and(|values| {
                values
                    .iter()
                    .flat_map(|v| v.as_str().split(','))
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
            });
        let reply = context.service.respond(&request).await;
        drop(request);
        let close = close || shared.is_stopping();
        match write_reply(&io, reply, close).await {
            Ok(()) if !close => {}
            Ok(()) => {
                let mut io = io.clone();
                let _ = timeout(Duration::from_secs(1), io.close()).await;
                return;
            }
            Err(e) => {
                tracing::debug!(remote = ?remote, error = %e, "fill response not completed; connection dropped");
                return;
            }
        }
    }
}

/// Writes `reply`; an error (including a failed filler stream) means the connection must be
/// dropped without completing the response.
async fn write_reply(io: &ServerIo, reply: Reply, close: bool) -> std::io::Result<()> {
    let mut out = io.clone();
    let mut head = reply.head(close);
    match reply.body {
        ReplyBody::Small(body) => {
            head.extend_from_slice(&body);
            write(&mut out, &head).await?;
        }
        ReplyBody::Fill(mut body) => {
            write(&mut out, &head).await?;
            while let Some(frame) = body.next().await {
                let frame = frame?;
                write(&mut out, &frame).await?;
                body.sent(frame.len());
            }
            flush(&mut out).await?;
            body.finished();
            return Ok(());
        }
    }
    flush(&mut out).await
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")
}

async fn write(out: &mut ServerIo, bytes: &[u8]) -> std::io::Result<()> {
    timeout(IDLE_TIMEOUT, out.write_all(bytes))
        .await
        .unwrap_or_else(|| Err(timed_out()))
}

async fn flush(out: &mut ServerIo) -> std::io::Result<()> {
    timeout(IDLE_TIMEOUT, out.flush())
        .await
        .unwrap_or_else(|| Err(timed_out()))
}
