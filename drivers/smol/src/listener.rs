//! The listener's glue behind `FillListener::serve`: the accept loop and the connection tasks —
//! TLS handshake (when enabled), then a keep-alive loop: the core's HTTP/1.1 codec
//! ([`orca_cluster_core::h1`]) parses each request head, the shared pipeline answers it, and the
//! reply is written here (head by the codec, body frames straight from the filler, no copy).
//! Every connection races the shared [`ConnectionWatch`] (first-request deadline, idle
//! timeout, send timeout); the accept loop keeps at most `max_connections` open.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use orca_cluster_core::admission::FillRequestHead;
use orca_cluster_core::h1::{self, Parsed, ResponseSpec};
use orca_cluster_driver_common::{
    ConnectionWatch, FixedReply, ListenerContext, ListenerSetup, Reply,
};
use smol::net::{TcpListener, TcpStream};

use crate::runtime::timeout;
use crate::stream::{MaybeTls, ServerStream};

/// Pause after a failed `accept` (e.g. out of file descriptors): 50 ms.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Bytes read from the socket at a time while waiting for a request head.
const READ_CHUNK: usize = 4 * 1024;

type Context = ListenerContext;

/// Accepts until the control stops (the socket is then closed); each connection runs in its
/// own task.
pub(crate) async fn accept_loop(setup: ListenerSetup) {
    let listener = match TcpListener::try_from(setup.socket) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(event = "listener_failed", error = %e, "fill listener: cannot register the socket");
            setup.context.control.stop();
            return;
        }
    };
    let context = Arc::new(setup.context);
    loop {
        let accept = async {
            context
                .control
                .room_for(context.settings.max_connections)
                .await;
            Some(listener.accept().await)
        };
        let accepted = futures_lite::future::or(accept, async {
            context.control.stopped().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((tcp, remote))) => {
                let guard = context.control.open();
                let context = context.clone();
                let watch = ConnectionWatch::new(&context.settings);
                smol::spawn(async move {
                    let _guard = guard;
                    let serve = serve_connection(tcp, &context, &watch);
                    let expired = async {
                        let expiry = watch.expired(&crate::Smol).await;
                        tracing::debug!(%remote, reason = expiry.as_str(), "fill listener: closing the connection");
                    };
                    let forced = async {
                        context.control.forced().await;
                    };
                    futures_lite::future::or(serve, futures_lite::future::or(expired, forced))
                        .await;
                    tracing::trace!(%remote, "fill connection closed");
                })
                .detach();
            }
            Some(Err(e)) => {
                tracing::warn!(event = "accept_failed", error = %e, "fill listener: accept failed");
                crate::runtime::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// What one request asked for, once its head is parsed.
struct Request {
    reply: orca_cluster_driver_common::listener::ReplyFuture,
    close: bool,
    /// In flight on the connection's watch until the response is written.
    in_flight: orca_cluster_driver_common::RequestGuard,
}

async fn serve_connection(tcp: TcpStream, context: &Context, watch: &ConnectionWatch) {
    let _ = tcp.set_nodelay(true);
    let remote = tcp.peer_addr().ok();
    let mut stream: ServerStream = match &context.tls {
        Some(reloader) => {
            match crate::tls::accept(reloader, tcp, context.settings.tls_handshake_timeout).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::info!(event = "tls_handshake_failed", remote = ?remote, error = %e, "fill listener: TLS handshake failed");
                    return;
                }
            }
        }
        None => MaybeTls::Plain(tcp),
    };
    let mut buf = BytesMut::new();
    loop {
        let request = match next_request(&mut stream, &mut buf, context, watch).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(refusal) => {
                let _in_flight = watch.request();
                let _ = write_fixed(&mut stream, &refusal, true, context).await;
                return;
            }
        };
        let _in_flight = request.in_flight;
        let reply = request.reply.await;
        let close = request.close || context.control.is_stopping();
        if let Err(e) = write_reply(&mut stream, reply, close, context).await {
            tracing::debug!(remote = ?remote, error = %e, "fill response not completed; connection dropped");
            return;
        }
        if close {
            let _ = timeout(Duration::from_secs(1), stream.close()).await;
            return;
        }
    }
}

/// Reads and parses the next request head and starts its answer. `Ok(None)`: the connection
/// ended, idled past the header read timeout, or the listener is stopping while it was idle.
/// `Err(reply)`: a bad head, answered with `reply` and `Connection: close`.
async fn next_request(
    stream: &mut ServerStream,
    buf: &mut BytesMut,
    context: &Context,
    watch: &ConnectionWatch,
) -> Result<Option<Request>, FixedReply> {
    let max_head = context.settings.max_header_bytes;
    let deadline = async_io::Timer::after(context.settings.header_read_timeout);
    let read_more = async {
        loop {
            match h1::parse_request_head(buf, max_head) {
                Ok(Parsed::Complete { head, consumed }) => {
                    let internal: Vec<&[u8]> = head.internal_values().collect();
                    let admission = FillRequestHead {
                        method: head.method,
                        target: head.target,
                        internal_header: &internal,
                    };
                    let in_flight = watch.request();
                    let reply = context.pipeline.respond_on(&admission, watch);
                    let close = !head.keep_alive || head.has_body || head.method != "GET";
                    let _ = buf.split_to(consumed);
                    return Ok(Some(Request {
                        reply,
                        close,
                        in_flight,
                    }));
                }
                Ok(Parsed::Partial) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "fill listener: bad request head");
                    return Err(context.pipeline.refuse_head(&e));
                }
            }
            let mut chunk = [0u8; READ_CHUNK];
            let idle = buf.is_empty();
            let read = stream.read(&mut chunk);
            let n = if idle {
                // An idle keep-alive connection closes at once when the listener stops.
                match futures_lite::future::or(async { Some(read.await) }, async {
                    context.control.stopped().await;
                    None
                })
                .await
                {
                    Some(result) => result,
                    None => return Ok(None),
                }
            } else {
                read.await
            };
            match n {
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    futures_lite::future::or(read_more, async {
        deadline.await;
        Ok(None)
    })
    .await
}

fn head_bytes(
    status: u16,
    content_type: &str,
    len: u64,
    allow: Option<&str>,
    close: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    let spec = ResponseSpec {
        status,
        content_type,
        content_length: len,
        allow,
        close,
    };
    // The specs written here are always encodable (known statuses, static field values).
    if h1::encode_response_head(&spec, &mut out).is_err() {
        out.clear();
    }
    out
}

async fn write_fixed(
    stream: &mut ServerStream,
    reply: &FixedReply,
    close: bool,
    context: &Context,
) -> std::io::Result<()> {
    let mut out = head_bytes(
        reply.status,
        reply.content_type,
        reply.body.len() as u64,
        reply.allow,
        close,
    );
    out.extend_from_slice(&reply.body);
    let limit = context.settings.send_timeout;
    write(stream, &out, limit).await?;
    flush(stream, limit).await
}

/// Writes `reply`; an error (including a failed filler stream) means the connection must be
/// dropped without completing the response.
/// Each write may wait at most `send_timeout` for the client (the watch applies the same
/// limit to the fill as a whole).
async fn write_reply(
    stream: &mut ServerStream,
    reply: Reply,
    close: bool,
    context: &Context,
) -> std::io::Result<()> {
    let limit = context.settings.send_timeout;
    match reply {
        Reply::Fixed(fixed) => write_fixed(stream, &fixed, close, context).await,
        Reply::Fill(mut body) => {
            let head = head_bytes(
                200,
                orca_cluster_core::admission::FILL_CONTENT_TYPE,
                body.expected_len(),
                None,
                close,
            );
            write(stream, &head, limit).await?;
            while let Some(frame) = std::future::poll_fn(|cx| body.poll_frame(cx)).await {
                write(stream, &frame?, limit).await?;
            }
            flush(stream, limit).await
        }
    }
}

fn stalled() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "write made no progress")
}

async fn write(stream: &mut ServerStream, bytes: &[u8], limit: Duration) -> std::io::Result<()> {
    timeout(limit, stream.write_all(bytes))
        .await
        .unwrap_or_else(|| Err(stalled()))
}

async fn flush(stream: &mut ServerStream, limit: Duration) -> std::io::Result<()> {
    timeout(limit, stream.flush())
        .await
        .unwrap_or_else(|| Err(stalled()))
}
