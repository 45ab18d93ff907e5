//! A blocking HTTP/1.1 client over `std::net`, to talk to any driver's fill listener exactly as
//! written (admission checks, response heads) without going through either driver's client.

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

fn parse(all: &[u8]) -> Option<RawResponse> {
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
    Some(RawResponse {
        status,
        headers,
        body: all[end..].to_vec(),
    })
}
