//! A misbehaving HTTP/1.1 server written with `std::net` and threads, so that one implementation
//! serves the tests of every driver (and of any runtime): it answers each request with a
//! scripted [`Response`] — truncated or over-long bodies, lying `Content-Length`s, any status —
//! and records the request heads it received.
//!
//! Everything is bounded: the accept loop polls a stop flag every 5 ms, connections read with
//! short timeouts and give up after [`CONNECTION_LIMIT`], and dropping the server joins every
//! thread.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use orca_cluster_core::Peer;

/// Longest a connection thread lives.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// Granularity of the stop-flag checks.
const POLL: Duration = Duration::from_millis(5);

/// What the server does after writing a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Half-close (FIN) at once, then drain what the client still sends, then close.
    Close,
    /// Keep the connection open and serve the next request on it (keep-alive).
    KeepAlive,
    /// Keep the connection open until the next request's first bytes arrive, then close it
    /// without reading them (the kernel answers with a reset): a keep-alive connection the
    /// server dropped just as the client reused it, whose request never reached the server
    /// (it is not recorded in [`FaultyServer::heads`]).
    ResetNext,
}

/// One scripted answer: raw bytes (status line, headers, body) and what follows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Exactly what is written to the socket.
    pub bytes: Vec<u8>,
    /// What happens afterwards.
    pub after: After,
}

impl Response {
    /// `200` with `Content-Length: declared` followed by `body` (which may be shorter or
    /// longer than declared), then the connection is closed.
    pub fn content_length(declared: u64, body: &[u8]) -> Response {
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {declared}\r\ncontent-type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        Response {
            bytes,
            after: After::Close,
        }
    }

    /// `200` with a correct `Content-Length` and `body`, keep-alive.
    pub fn ok(body: &[u8]) -> Response {
        Response {
            after: After::KeepAlive,
            ..Response::content_length(body.len() as u64, body)
        }
    }

    /// `200` with `Transfer-Encoding: chunked`, carrying `body` in 16 KiB chunks and a proper
    /// last chunk, keep-alive. The framing is valid: only the length differs from the chunk's.
    pub fn chunked(body: &[u8]) -> Response {
        let mut bytes = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for piece in body.chunks(16 * 1024) {
            bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            bytes.extend_from_slice(piece);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        Response {
            bytes,
            after: After::KeepAlive,
        }
    }

    /// `200` without any length: the body is delimited by closing the connection.
    pub fn close_delimited(body: &[u8]) -> Response {
        let mut bytes = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        bytes.extend_from_slice(body);
        Response {
            bytes,
            after: After::Close,
        }
    }

    /// No answer at all: the connection is closed (FIN) as soon as the request head arrived.
    pub fn hang_up() -> Response {
        Response {
            bytes: Vec::new(),
            after: After::Close,
        }
    }

    /// Status `code` with a `Content-Length`-framed `body`, keep-alive.
    pub fn status(code: u16, body: &[u8]) -> Response {
        let mut bytes = format!(
            "HTTP/1.1 {code} Scripted\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        Response {
            bytes,
            after: After::KeepAlive,
        }
    }
}

type Script = dyn Fn(&str) -> Response + Send + Sync + 'static;

struct Shared {
    stop: AtomicBool,
    heads: Mutex<Vec<String>>,
    accepted: AtomicU64,
    connections: Mutex<Vec<JoinHandle<()>>>,
    script: Box<Script>,
}

/// The server. Dropping it stops it and joins its threads.
pub struct FaultyServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FaultyServer {
    /// Serves `response` to every request, on 127.0.0.1 and an OS-assigned port.
    pub fn serving(response: Response) -> FaultyServer {
        FaultyServer::start(move |_| response.clone())
    }

    /// Answers each request head with `script(head)`, on 127.0.0.1 and an OS-assigned port.
    pub fn start(script: impl Fn(&str) -> Response + Send + Sync + 'static) -> FaultyServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind faulty server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            heads: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
            script: Box::new(script),
        });
        let accept_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name("faulty-accept".into())
            .spawn(move || accept_loop(&listener, &accept_shared))
            .expect("spawn acceptor");
        FaultyServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server as a (non-self) peer.
    pub fn peer(&self) -> Peer {
        Peer {
            ip: self.addr.ip(),
            port: self.addr.port(),
            is_self: false,
        }
    }

    /// The request heads received so far (request line and headers, as text).
    pub fn heads(&self) -> Vec<String> {
        lock(&self.shared.heads).clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for connection in connections {
            let _ = connection.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let conn_shared = shared.clone();
                let spawned = thread::Builder::new()
                    .name("faulty-conn".into())
                    .spawn(move || {
                        let _ = serve_connection(stream, &conn_shared);
                    });
                if let Ok(handle) = spawned {
                    let mut connections = lock(&shared.connections);
                    connections.retain(|h| !h.is_finished());
                    connections.push(handle);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn expired(shared: &Shared, deadline: Instant) -> bool {
    shared.stop.load(Ordering::SeqCst) || Instant::now() >= deadline
}

/// Reads one request head; `Ok(None)` at a clean end of stream, on stop or at the deadline.
fn read_head(
    stream: &mut TcpStream,
    shared: &Shared,
    deadline: Instant,
) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD || expired(shared, deadline) {
            return Ok(None);
        }
        match stream.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => head.push(byte[0]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// Reads and discards until end of stream, stop or the deadline (so closing sends a FIN, not
/// a reset that could destroy the bytes in flight).
fn drain(stream: &mut TcpStream, shared: &Shared, deadline: Instant) {
    let mut buf = [0u8; 4096];
    while !expired(shared, deadline) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let deadline = Instant::now() + CONNECTION_LIMIT;
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(20)))?;
    stream.set_write_timeout(Some(CONNECTION_LIMIT))?;
    while let Some(head) = read_head(&mut stream, shared, deadline)? {
        lock(&shared.heads).push(head.clone());
        let response = (shared.script)(&head);
        stream.write_all(&response.bytes)?;
        stream.flush()?;
        match response.after {
            After::Close => {
                stream.shutdown(Shutdown::Write)?;
                drain(&mut stream, shared, deadline);
                return Ok(());
            }
            After::ResetNext => {
                wait_for_bytes(&stream, shared, deadline);
                // Dropping the stream with unread bytes sends a reset.
                return Ok(());
            }
            After::KeepAlive => {}
        }
    }
    Ok(())
}

/// Waits until bytes can be read (without reading them), end of stream, stop or the deadline.
fn wait_for_bytes(stream: &TcpStream, shared: &Shared, deadline: Instant) {
    let mut probe = [0u8; 1];
    while !expired(shared, deadline) {
        match stream.peek(&mut probe) {
            Ok(_) => return,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}
