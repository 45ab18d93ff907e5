//! A blocking HTTP/1.1 client over `std::net`, to talk to any driver's fill listener exactly as
//! written (admission checks, response heads) without going through either driver's client:
//! one request per connection ([`exchange`]), or several on one kept-alive connection
//! ([`RawConnection`], which also times how long the server keeps it open).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use orca_cluster_core::ChunkKey;
use orca_cluster_core::wire::encode_query;

/// How long [`exchange`] waits for the whole response.
pub const EXCHANGE_LIMIT: Duration = Duration::from_secs(5);

/// A response read to the end of its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header lines as `(lowercased name, value)`.
    pub headers: Vec<(String, String)>,
    /// Everything after the head.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET /internal/fill?<query of key>` with the internal header, closing after the response.
pub fn fill_request(key: &ChunkKey, object_size: u64) -> Vec<u8> {
    request(
        "GET",
        &format!("/internal/fill?{}", encode_query(key, object_size)),
        "x-orca-internal: 1\r\n",
    )
}

/// A request `method target` with extra header lines `headers` (each ending in CRLF) and
/// `connection: close`.
pub fn request(method: &str, target: &str, headers: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nhost: test\r\n{headers}connection: close\r\n\r\n")
        .into_bytes()
}

/// A request `method target` with extra header lines `headers` (each ending in CRLF) that keeps
/// the connection open (HTTP/1.1 keep-alive, no `connection` field).
pub fn keep_alive_request(method: &str, target: &str, headers: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nhost: test\r\n{headers}\r\n").into_bytes()
}

/// One kept-alive connection, to send several requests and to watch the server close it.
#[derive(Debug)]
pub struct RawConnection {
    stream: TcpStream,
    /// Bytes read but not yet consumed.
    pending: Vec<u8>,
}

/// Whether `e` only means "nothing to read yet" (the read timeout passed).
fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl RawConnection {
    /// Connects to `addr` (at most [`EXCHANGE_LIMIT`]).
    pub fn connect(addr: SocketAddr) -> io::Result<RawConnection> {
        let stream = TcpStream::connect_timeout(&addr, EXCHANGE_LIMIT)?;
        stream.set_read_timeout(Some(Duration::from_millis(10)))?;
        stream.set_write_timeout(Some(EXCHANGE_LIMIT))?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream,
            pending: Vec::new(),
        })
    }

    /// Writes `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response whose body is framed by its `Content-Length` (a fill listener always
    /// declares it), within [`EXCHANGE_LIMIT`]. Errors: the connection ended first (kind
    /// `UnexpectedEof`), no `Content-Length`, a malformed head, the time limit.
    pub fn read_response(&mut self) -> io::Result<RawResponse> {
        let deadline = Instant::now() + EXCHANGE_LIMIT;
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some((status, headers, end)) = parse_head(&self.pending) {
                let length = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "no content-length")
                    })?;
                if self.pending.len() >= end + length {
                    let rest = self.pending.split_off(end + length);
                    let body = self.pending[end..].to_vec();
                    self.pending = rest;
                    return Ok(RawResponse {
                        status,
                        headers,
                        body,
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete response",
                ));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("closed after {} bytes of a response", self.pending.len()),
                    ));
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if is_wait(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits at most `limit` for the server to end the connection (end of stream or a reset):
    /// `Some(how long it took)`, or `None` if it is still open. Bytes from the server in the
    /// meantime are an error (kind `InvalidData`).
    pub fn wait_closed(&mut self, limit: Duration) -> io::Result<Option<Duration>> {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        if !self.pending.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} unexpected bytes pending", self.pending.len()),
            ));
        }
        while started.elapsed() < limit {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(Some(started.elapsed())),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{n} unexpected bytes: {:?}",
                            String::from_utf8_lossy(&buf[..n])
                        ),
                    ));
                }
                Err(e) if is_wait(&e) => {}
                Err(_) => return Ok(Some(started.elapsed())),
            }
        }
        Ok(None)
    }
}

/// Sends `request` on a new connection to `addr` and reads until the server closes it (at
/// most [`EXCHANGE_LIMIT`]). Errors: connect failures, and a reply without a parsable head.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> io::Result<RawResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, EXCHANGE_LIMIT)?;
    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
    stream.set_write_timeout(Some(EXCHANGE_LIMIT))?;
    stream.write_all(request)?;
    let deadline = Instant::now() + EXCHANGE_LIMIT;
    let mut all = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // A reset after a complete response still leaves what was read.
            Err(_) => break,
        }
    }
    parse(&all).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no parsable response in {} bytes", all.len()),
        )
    })
}

/// A response head in `all`: the status, the header lines, and where the body starts.
type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(all: &[u8]) -> Option<Head> {
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&all[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.get(9..12)?.parse().ok()?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    Some((status, headers, end))
}

fn parse(all: &[u8]) -> Option<RawResponse> {
    let (status, headers, end) = parse_head(all)?;
    Some(RawResponse {
        status,
        headers,
        body: all[end..].to_vec(),
    })
}
