//! Small hand-written HTTP/1.1 servers that misbehave on purpose.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

type Script = Arc<dyn Fn(u64, TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A server running `script(connection_index, stream)` for every accepted connection.
pub struct RawServer {
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    _task: smol::Task<()>,
}

impl RawServer {
    pub async fn start<F, Fut>(script: F) -> RawServer
    where
        F: Fn(u64, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let script: Script = Arc::new(move |i, s| Box::pin(script(i, s)));
        let task = smol::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let i = counter.fetch_add(1, Ordering::SeqCst);
                smol::spawn(script(i, stream)).detach();
            }
        });
        RawServer {
            addr,
            accepted,
            _task: task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads one request head; `None` at end-of-stream or after 64 KiB without one.
pub async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return None;
        }
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Writes `bytes`, ignoring errors (the client may be gone).
pub async fn write(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    stream.write_all(bytes).await.is_ok() && stream.flush().await.is_ok()
}

/// A complete, correct keep-alive response carrying `body`.
pub fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Sends `request` on a new connection and reads until the server closes it: the status code
/// and everything after the status line, or `None` when the connection closed with no bytes.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(request).await.ok()?;
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all).await;
    if all.is_empty() {
        return None;
    }
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let status = head.get(9..12)?.parse().ok()?;
    Some((status, head.to_ascii_lowercase(), all[end..].to_vec()))
}

/// A GET request for `target` with the given extra header lines, closing after the response.
pub fn get(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: test\r\n{headers}connection: close\r\n\r\n")
        .into_bytes()
}
