//! The TCP side: an accept loop and one thread per connection, length-prefixed messages.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crate::answer::{self, Action};
use crate::shared::{POLL, Shared};
use crate::udp::is_timeout;

/// Largest message a 2-byte length prefix can describe.
const MAX_TCP_MESSAGE: usize = 65_535;

/// Accepts connections on `listener` (non-blocking) until the server stops.
pub(crate) fn serve(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let conn_shared = Arc::clone(&shared);
                shared.spawn_worker("testdns-tcp-conn", move || {
                    connection(stream, &conn_shared);
                });
            }
            // WouldBlock (nothing pending) or a transient accept error.
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Serves queries on one connection until the client closes it or the server stops.
fn connection(mut stream: TcpStream, shared: &Shared) {
    let configured = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(POLL)))
        .and_then(|()| stream.set_write_timeout(Some(POLL)))
        .and_then(|()| stream.set_nodelay(true));
    if configured.is_err() {
        return;
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while !shared.stopped() {
        while let Some(message) = next_frame(&mut pending) {
            if !answer_one(&mut stream, shared, &message) {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(e.kind()) => {}
            Err(_) => return,
        }
    }
}

/// Splits one complete length-prefixed message off the front of `pending`.
fn next_frame(pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let [hi, lo, ..] = pending[..] else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if pending.len() < 2 + len {
        return None;
    }
    let message = pending[2..2 + len].to_vec();
    pending.drain(..2 + len);
    Some(message)
}

/// Handles one query; returns `false` if the connection should be closed.
fn answer_one(stream: &mut TcpStream, shared: &Shared, message: &[u8]) -> bool {
    shared.queries.fetch_add(1, Ordering::SeqCst);
    shared.tcp_queries.fetch_add(1, Ordering::SeqCst);
    let Action::Respond {
        response, delay, ..
    } = answer::handle(shared, message)
    else {
        // NoReply holds the connection open: keep reading until close or stop.
        return true;
    };
    if !shared.sleep(delay) {
        return false;
    }
    let Some(bytes) = answer::encode(&response, MAX_TCP_MESSAGE) else {
        return true;
    };
    let Ok(len) = u16::try_from(bytes.len()) else {
        return true;
    };
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes);
    write_all(stream, shared, &out)
}

/// Writes `out` fully, re-checking the stop flag whenever the write timeout elapses.
fn write_all(stream: &mut TcpStream, shared: &Shared, out: &[u8]) -> bool {
    let mut written = 0;
    while written < out.len() {
        if shared.stopped() {
            return false;
        }
        match stream.write(&out[written..]) {
            Ok(0) => return false,
            Ok(n) => written += n,
            Err(e) if is_timeout(e.kind()) => {}
            Err(_) => return false,
        }
    }
    true
}
