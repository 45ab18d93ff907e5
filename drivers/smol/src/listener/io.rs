//! The listener's connection I/O as async-h1's request decoder sees it: a cloneable handle
//! (`async_dup::Arc<async_dup::Mutex<ServerConn>>`, since async-h1 needs a `Clone` stream and a
//! TLS stream is not one) that also guards the decoder.
//!
//! While a request head is read, [`ServerConn`] lets through at most `max_header_bytes`, and
//! only ASCII bytes other than NUL: `http-types` `unwrap`s the conversion of a non-ASCII header
//! value that async-h1 hands it, so such a head must never reach it (it would panic). It also
//! stops each read at the blank line that ends the head and keeps the bytes after it for the
//! next read, so async-h1's buffered reader never swallows a pipelined request.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};

use crate::stream::ServerStream;

/// The handle async-h1 reads (and this driver writes responses to).
pub(crate) type ServerIo = async_dup::Arc<async_dup::Mutex<ServerConn>>;

/// Why a request head was refused by the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// Longer than `max_header_bytes` (answered 431).
    TooLarge,
    /// A byte that is not ASCII, or NUL (answered 400).
    NotAscii,
}

/// Progress through one request head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeadScan {
    seen: usize,
    matched: u8,
}

impl HeadScan {
    /// Checks `data`, the next bytes of a head of at most `max` bytes. `Ok(Some(n))`: the head
    /// ends after `data[..n]`; `Ok(None)`: all of `data` belongs to the head, which goes on.
    pub(crate) fn scan(&mut self, data: &[u8], max: usize) -> Result<Option<usize>, Violation> {
        for (i, &b) in data.iter().enumerate() {
            if b == 0 || b >= 0x80 {
                return Err(Violation::NotAscii);
            }
            self.matched = match (self.matched, b) {
                (0 | 2, b'\r') => self.matched + 1,
                (1 | 3, b'\n') => self.matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.matched == 4 {
                return if self.seen + i < max {
                    Ok(Some(i + 1))
                } else {
                    Err(Violation::TooLarge)
                };
            }
        }
        self.seen += data.len();
        if self.seen > max {
            return Err(Violation::TooLarge);
        }
        Ok(None)
    }
}

/// One accepted connection plus the guard described in the module docs.
#[derive(Debug)]
pub(crate) struct ServerConn {
    stream: ServerStream,
    max_head: usize,
    /// `Some` while a request head is being read; `None` once it ended (reads pass through).
    head: Option<HeadScan>,
    /// Bytes read past the end of a head, served to the next read.
    pending: BytesMut,
    violation: Option<Violation>,
}

impl ServerConn {
    pub(crate) fn new(stream: ServerStream, max_head: usize) -> ServerIo {
        async_dup::Arc::new(async_dup::Mutex::new(ServerConn {
            stream,
            max_head: max_head.max(1),
            head: Some(HeadScan::default()),
            pending: BytesMut::new(),
            violation: None,
        }))
    }

    /// The next bytes read start a new request head.
    pub(crate) fn start_head(&mut self) {
        self.head = Some(HeadScan::default());
    }

    /// Why the guard refused the last head, if it did.
    pub(crate) fn violation(&self) -> Option<Violation> {
        self.violation
    }

    /// Whether bytes of a next request are already buffered.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Checks the head bytes at the start of `data`; returns how many of them to hand out now
    /// (all, or up to and including the blank line that ends the head).
    fn scan_head(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(scan) = self.head.as_mut() else {
            return Ok(data.len());
        };
        match scan.scan(data, self.max_head) {
            Ok(None) => Ok(data.len()),
            Ok(Some(end)) => {
                self.head = None;
                Ok(end)
            }
            Err(violation) => {
                self.violation = Some(violation);
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    match violation {
                        Violation::TooLarge => "request head larger than max_header_bytes",
                        Violation::NotAscii => "request head: non-ASCII or NUL byte",
                    },
                ))
            }
        }
    }
}

impl AsyncRead for ServerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = if this.pending.is_empty() {
            ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?
        } else {
            let n = this.pending.len().min(buf.len());
            buf[..n].copy_from_slice(&this.pending[..n]);
            this.pending.advance(n);
            n
        };
        let keep = this.scan_head(&buf[..n])?;
        if keep < n {
            // Bytes after the head go back in front of whatever is still pending.
            let mut rest = BytesMut::from(&buf[keep..n]);
            rest.extend_from_slice(&this.pending);
            this.pending = rest;
        }
        Poll::Ready(Ok(keep))
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_stops_at_the_end_of_the_head() {
        let mut scan = HeadScan::default();
        assert_eq!(scan.scan(b"GET / HTTP/1.1\r\nho", 100), Ok(None));
        assert_eq!(scan.scan(b"st: x\r\n\r\nGET /", 100), Ok(Some(9)));
        let mut scan = HeadScan::default();
        assert_eq!(scan.scan(b"GET / HTTP/1.1\r\n\r", 100), Ok(None));
        assert_eq!(scan.scan(b"\n", 100), Ok(Some(1)));
    }

    #[test]
    fn scan_refuses_large_and_non_ascii_heads() {
        let mut scan = HeadScan::default();
        assert_eq!(scan.scan(&[b'a'; 50], 40), Err(Violation::TooLarge));
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.scan(b"GET / HTTP/1.1\r\n\r\n", 10),
            Err(Violation::TooLarge)
        );
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.scan("x: caf\u{e9}".as_bytes(), 100),
            Err(Violation::NotAscii)
        );
        let mut scan = HeadScan::default();
        assert_eq!(scan.scan(b"x: \0", 100), Err(Violation::NotAscii));
    }
}
