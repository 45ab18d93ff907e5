//! The health endpoints on smol: [`serve_health`] (an accept loop) and
//! [`serve_health_connection`] (one connection, for an application's own accept loop or TLS
//! stream). Requests are parsed and answers framed with the core's HTTP/1.1 codec
//! ([`orca_cluster_core::h1`]); the answers come from [`Health::answer`] (see
//! [`orca_cluster_driver_common::health`] for the table).

use std::io;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use orca_cluster_core::h1::{self, Parsed, ResponseSpec};
use orca_cluster_driver_common::{FixedReply, Health, HealthLimits, HealthReply};
use smol::net::TcpListener;

use crate::runtime::{sleep, timeout};

/// Pause after a failed `accept` (e.g. out of file descriptors): 50 ms.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Bytes read from the socket at a time while waiting for the request head.
const READ_CHUNK: usize = 1024;

/// Serves the health endpoints of `health` on `listener`: each accepted connection runs
/// [`serve_health_connection`] in its own task (on smol's global executor) under `limits` —
/// one request per connection, the request head within `limits.head_timeout`, the connection
/// closed after `limits.connection_lifetime` whatever it does, so a client that connects and
/// sends nothing holds a task and a socket for at most that long.
///
/// Runs until dropped (drop or cancel its task to stop accepting; connections already
/// accepted finish within their lifetime). A failed `accept` (e.g. out of file descriptors) is
/// logged (`accept_failed`, warning) and retried after 50 ms.
///
/// ```
/// use std::time::Duration;
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use orca_cluster_smol::{
///     Cluster, ClusterConfig, FillListener, Health, HealthLimits, ListenerSettings, Options,
///     StaticPeerSource, SyntheticOrigin, serve_health,
/// };
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// smol::block_on(async {
///     let listener = FillListener::bind("127.0.0.1:0".parse()?).await?;
///     let addr = listener.local_addr();
///     let config = ClusterConfig {
///         service: "orca-peers".into(),
///         self_pod_ip: vec![addr.ip()],
///         ..ClusterConfig::default()
///     };
///     let options = Options::default().with_peer_source(StaticPeerSource::new([addr]));
///     let cluster = Cluster::start(config, options).await?;
///     let fills = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
///
///     // Ready once the first peer lookup completed and while `fills` is serving.
///     let health = Health::new(&cluster).with_listener(&fills);
///     let admin = smol::net::TcpListener::bind("127.0.0.1:0").await?;
///     let admin_addr = admin.local_addr()?;
///     let server = smol::spawn(serve_health(admin, health, HealthLimits::default()));
///
///     let mut probe = smol::net::TcpStream::connect(admin_addr).await?;
///     probe.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n").await?;
///     let mut answer = String::new();
///     probe.read_to_string(&mut answer).await?;
///     assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
///     assert!(answer.ends_with("\r\n\r\nready\n"), "{answer}");
///
///     drop(server); // stops accepting
///     fills.shutdown(Duration::from_secs(1)).await;
///     cluster.close(Duration::from_secs(1)).await?;
///     Ok(())
/// })
/// # }
/// ```
pub async fn serve_health(listener: TcpListener, health: Health, limits: HealthLimits) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let health = health.clone();
                smol::spawn(async move {
                    if let Err(e) = serve_health_connection(stream, &health, limits).await {
                        tracing::debug!(%remote, error = %e, "health connection closed");
                    }
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(event = "accept_failed", error = %e, "health listener: accept failed");
                sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Answers one request on `stream` (plain TCP, TLS, or any byte stream), then closes it:
/// reads the request head (at most `limits.max_head_bytes`, within `limits.head_timeout`),
/// writes [`Health::answer`]'s reply with `connection: close` (no body for `HEAD`; a refused
/// head is answered 400 or 431), and closes the write side. The whole exchange is bounded by
/// `limits.connection_lifetime`. A request body is never read.
///
/// `Ok(())` once answered, or when the client closed before sending a complete head. Errors:
/// the stream's, or [`io::ErrorKind::TimedOut`] when a limit passed (the stream is then
/// dropped without an answer).
pub async fn serve_health_connection<S>(
    mut stream: S,
    health: &Health,
    limits: HealthLimits,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        let head = timeout(
            limits.head_timeout,
            read_and_answer(&mut stream, health, &limits),
        )
        .await
        .ok_or_else(|| timed_out("no complete request head within the head timeout"))??;
        let Some(response) = head else {
            return Ok(());
        };
        stream.write_all(&response).await?;
        stream.flush().await?;
        stream.close().await
    };
    timeout(limits.connection_lifetime, exchange)
        .await
        .unwrap_or_else(|| Err(timed_out("connection lifetime reached")))
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// Reads until the request head is complete and returns the encoded response (head and
/// body); `None` if the client closed first.
async fn read_and_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    health: &Health,
    limits: &HealthLimits,
) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        match h1::parse_request_head(&buf, limits.max_head_bytes) {
            Ok(Parsed::Complete { head, .. }) => {
                let reply = health.answer(head.method, head.path(), head.query());
                return encode(&reply).map(Some);
            }
            Ok(Parsed::Partial) => {}
            Err(e) => {
                tracing::debug!(error = %e, "health listener: bad request head");
                let refusal = FixedReply::bad_head(&e);
                let reply = HealthReply {
                    status: refusal.status,
                    content_type: refusal.content_type,
                    content_length: refusal.body.len() as u64,
                    body: refusal.body,
                    allow: None,
                };
                return encode(&reply).map(Some);
            }
        }
        // `parse_request_head` refuses a partial head of `max_head_bytes` or more, so `buf`
        // stays below `max_head_bytes + READ_CHUNK`.
        let n = stream.read(&mut chunk).await?;
        let Some(read) = chunk.get(..n).filter(|read| !read.is_empty()) else {
            return Ok(None);
        };
        buf.extend_from_slice(read);
    }
}

/// The reply as bytes: the head from the core's codec (`connection: close`), then the body.
fn encode(reply: &HealthReply) -> io::Result<Vec<u8>> {
    let spec = ResponseSpec {
        status: reply.status,
        content_type: reply.content_type,
        content_length: reply.content_length,
        allow: reply.allow,
        close: true,
    };
    let mut out = Vec::with_capacity(160 + reply.body.len());
    h1::encode_response_head(&spec, &mut out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    out.extend_from_slice(&reply.body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cluster, FillListener, ListenerSettings};
    use orca_cluster_driver_common::SyntheticOrigin;
    use smol::net::TcpStream;
    use std::net::SocketAddr;

    async fn start() -> (Cluster, crate::ListenerHandle) {
        let listener = FillListener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let cluster = Cluster::single(listener.local_addr()).await.unwrap();
        let fills = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
        (cluster, fills)
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    async fn serve(health: Health, limits: HealthLimits) -> (SocketAddr, smol::Task<()>) {
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = admin.local_addr().unwrap();
        (addr, smol::spawn(serve_health(admin, health, limits)))
    }

    #[test]
    fn answers_each_endpoint_once_per_connection() {
        smol::block_on(async {
            let (cluster, fills) = start().await;
            let port = fills.local_addr().port();
            let health = Health::new(&cluster).with_listener(&fills);
            let (addr, _server) = serve(health, HealthLimits::default()).await;

            let answer = exchange(addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert_eq!(
                answer,
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n\
                 connection: close\r\n\r\nok\n"
            );
            let answer = exchange(addr, b"GET /peers HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert!(
                answer.contains("content-type: application/json\r\n"),
                "{answer}"
            );
            let peer = format!(r#"{{"ip":"127.0.0.1","port":{port},"self":true}}"#);
            assert!(
                answer.ends_with(&format!("\"peers\":[{peer}]}}")),
                "{answer}"
            );
            // HEAD: the GET length, no body.
            let answer = exchange(addr, b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert!(answer.contains("content-length: 3\r\n"), "{answer}");
            assert!(answer.ends_with("\r\n\r\n"), "{answer}");
            let answer = exchange(addr, b"DELETE /readyz HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
            assert!(answer.contains("allow: GET, HEAD\r\n"), "{answer}");
            let answer = exchange(addr, b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
            // A keep-alive client still gets one answer, then the close.
            let answer = exchange(
                addr,
                b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
            )
            .await;
            assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 1, "{answer}");
            // A bad head is refused by the codec's rules.
            let answer = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");

            let ready = exchange(addr, b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert!(ready.ends_with("\r\n\r\nready\n"), "{ready}");
            fills.shutdown(Duration::from_secs(1)).await;
            let ready = exchange(addr, b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert!(ready.starts_with("HTTP/1.1 503 "), "{ready}");
            assert!(
                ready.ends_with("\r\n\r\nfill listener not serving\n"),
                "{ready}"
            );
            cluster.close(Duration::from_secs(1)).await.unwrap();
        });
    }

    #[test]
    fn bounds_hold_for_slow_and_large_heads() {
        smol::block_on(async {
            let (cluster, _fills) = start().await;
            let limits = HealthLimits {
                head_timeout: Duration::from_millis(200),
                connection_lifetime: Duration::from_millis(400),
                max_head_bytes: 256,
            };
            let (addr, _server) = serve(Health::new(&cluster), limits).await;
            // Silent: closed after the head timeout, without an answer.
            let started = std::time::Instant::now();
            let mut silent = TcpStream::connect(addr).await.unwrap();
            let mut answer = Vec::new();
            let read = timeout(Duration::from_secs(5), silent.read_to_end(&mut answer)).await;
            assert!(matches!(read, Some(Ok(0))), "{read:?}");
            let waited = started.elapsed();
            assert!(
                waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
                "{waited:?}"
            );
            // Too large: 431.
            let mut big = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: ".to_vec();
            big.extend(std::iter::repeat_n(b'a', 400));
            big.extend_from_slice(b"\r\n\r\n");
            let answer = exchange(addr, &big).await;
            assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
            // The port keeps answering.
            let answer = exchange(addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
            cluster.close(Duration::from_secs(1)).await.unwrap();
        });
    }

    #[test]
    fn a_connection_answers_on_any_stream() {
        smol::block_on(async {
            let (cluster, _fills) = start().await;
            let health = Health::new(&cluster);
            let request =
                futures_lite::io::Cursor::new(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n".to_vec());
            let mut written = Vec::new();
            let stream = futures_lite::io::Cursor::new(&mut written);
            // A duplex made of a reader and a writer.
            let duplex = Duplex {
                read: request,
                write: stream,
            };
            serve_health_connection(duplex, &health, HealthLimits::default())
                .await
                .unwrap();
            let text = String::from_utf8(written).unwrap();
            assert!(
                text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("ok\n"),
                "{text}"
            );
            // Closed before a complete head: no answer, no error.
            let mut written = Vec::new();
            let duplex = Duplex {
                read: futures_lite::io::Cursor::new(b"GET /hea".to_vec()),
                write: futures_lite::io::Cursor::new(&mut written),
            };
            serve_health_connection(duplex, &health, HealthLimits::default())
                .await
                .unwrap();
            assert!(written.is_empty());
            cluster.close(Duration::from_secs(1)).await.unwrap();
        });
    }

    struct Duplex<R, W> {
        read: R,
        write: W,
    }

    impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Duplex<R, W> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::pin::Pin::new(&mut self.read).poll_read(cx, buf)
        }
    }

    impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Duplex<R, W> {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::pin::Pin::new(&mut self.write).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.write).poll_flush(cx)
        }

        fn poll_close(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.write).poll_close(cx)
        }
    }
}
