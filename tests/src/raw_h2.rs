//! A blocking HTTP/2 (prior knowledge, h2c) client over `std::net` that writes frames exactly
//! as a test says — including what a polite client would not do (never open a flow-control
//! window, keep pinging an idle connection) — and reads the listener's frames one by one.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types used here.
pub const DATA: u8 = 0x0;
/// `HEADERS`.
pub const HEADERS: u8 = 0x1;
/// `RST_STREAM`.
pub const RST_STREAM: u8 = 0x3;
/// `SETTINGS`.
pub const SETTINGS: u8 = 0x4;
/// `PING`.
pub const PING: u8 = 0x6;
/// `GOAWAY`.
pub const GOAWAY: u8 = 0x7;
/// `WINDOW_UPDATE`.
pub const WINDOW_UPDATE: u8 = 0x8;
/// `SETTINGS_MAX_CONCURRENT_STREAMS`.
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// `SETTINGS_INITIAL_WINDOW_SIZE`.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
/// Flag `END_STREAM` (HEADERS, DATA) and `ACK` (SETTINGS, PING).
pub const END_STREAM_OR_ACK: u8 = 0x1;
/// Flag `END_HEADERS`.
pub const END_HEADERS: u8 = 0x4;

/// One frame as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame type.
    pub kind: u8,
    /// The flags.
    pub flags: u8,
    /// The stream identifier.
    pub stream: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The `(identifier, value)` pairs of a SETTINGS payload.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect()
    }
}

/// What [`H2Connection::read_frame`] saw instead of a frame.
#[derive(Debug)]
pub enum Ended {
    /// The listener closed the connection (end of stream or reset).
    Closed,
    /// Nothing arrived in time.
    TimedOut,
}

/// One h2c connection.
#[derive(Debug)]
pub struct H2Connection {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// An HPACK string literal (no Huffman) with its length prefix.
fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// An HPACK integer with an `n`-bit prefix, OR-ed into `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// The HPACK block of `GET path` with `x-orca-internal: 1` (literals, no indexing, no Huffman).
pub fn get_block(path: &str) -> Vec<u8> {
    let mut out = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    out.push(0x04); // :path, literal without indexing, name index 4
    hpack_string(&mut out, path.as_bytes());
    out.push(0x01); // :authority, literal without indexing, name index 1
    hpack_string(&mut out, b"test");
    out.push(0x00); // literal without indexing, new name
    hpack_string(&mut out, b"x-orca-internal");
    hpack_string(&mut out, b"1");
    out
}

impl H2Connection {
    /// Connects to `addr` and sends the preface and `settings` (`(identifier, value)` pairs).
    pub fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> io::Result<H2Connection> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut conn = H2Connection {
            stream,
            pending: Vec::new(),
        };
        conn.stream.write_all(PREFACE)?;
        let payload: Vec<u8> = settings
            .iter()
            .flat_map(|(id, value)| {
                let mut b = id.to_be_bytes().to_vec();
                b.extend_from_slice(&value.to_be_bytes());
                b
            })
            .collect();
        conn.write_frame(SETTINGS, 0, 0, &payload)?;
        Ok(conn)
    }

    /// Writes one frame.
    pub fn write_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        self.stream.write_all(&out)
    }

    /// Opens stream `id` with `GET path` (END_HEADERS | END_STREAM).
    pub fn get(&mut self, id: u32, path: &str) -> io::Result<()> {
        self.write_frame(
            HEADERS,
            END_HEADERS | END_STREAM_OR_ACK,
            id,
            &get_block(path),
        )
    }

    /// Sends a PING with `data`.
    pub fn ping(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.write_frame(PING, 0, 0, &data)
    }

    /// The next frame, waiting at most `limit`.
    pub fn read_frame(&mut self, limit: Duration) -> Result<Frame, Ended> {
        let deadline = Instant::now() + limit;
        loop {
            if self.pending.len() >= 9 {
                let len = u32::from_be_bytes([0, self.pending[0], self.pending[1], self.pending[2]])
                    as usize;
                if self.pending.len() >= 9 + len {
                    let head: Vec<u8> = self.pending.drain(..9).collect();
                    let payload: Vec<u8> = self.pending.drain(..len).collect();
                    return Ok(Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]])
                            & 0x7fff_ffff,
                        payload,
                    });
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Ended::TimedOut);
            }
            let _ = self
                .stream
                .set_read_timeout(Some(left.min(Duration::from_millis(50))));
            let mut buf = [0u8; 16 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(Ended::Closed),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Err(Ended::Closed),
            }
        }
    }

    /// Reads frames until one matches `wanted`, or the connection ends, or `limit` passes.
    pub fn read_until(
        &mut self,
        limit: Duration,
        mut wanted: impl FnMut(&Frame) -> bool,
    ) -> Result<Frame, Ended> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.read_frame(left)?;
            if wanted(&frame) {
                return Ok(frame);
            }
        }
    }
}
