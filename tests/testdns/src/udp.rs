//! The UDP side: one thread receiving datagrams, truncating oversized answers.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::Message;

use crate::answer::{self, Action};
use crate::shared::Shared;

/// Receives queries on `socket` (which has a short read timeout) until the server stops.
pub(crate) fn serve(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    // Large enough for any datagram, including EDNS queries from odd clients.
    let mut buf = vec![0u8; 65_535];
    while !shared.stopped() {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if is_timeout(e.kind()) => continue,
            // E.g. ICMP port-unreachable surfacing as ConnectionReset on some platforms.
            Err(_) => {
                shared.sleep(Duration::from_millis(5));
                continue;
            }
        };
        shared.queries.fetch_add(1, Ordering::SeqCst);
        let Action::Respond {
            response,
            delay,
            udp_limit,
        } = answer::handle(&shared, &buf[..len])
        else {
            continue;
        };
        if delay.is_zero() {
            send(&socket, &response, udp_limit, peer);
        } else {
            let socket = Arc::clone(&socket);
            let worker_shared = Arc::clone(&shared);
            shared.spawn_worker("testdns-udp-delay", move || {
                if worker_shared.sleep(delay) {
                    send(&socket, &response, udp_limit, peer);
                }
            });
        }
    }
}

/// Whether an I/O error kind just means "the read timeout elapsed".
pub(crate) fn is_timeout(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Sends `response` to `peer`, truncated (TC bit, no answers) if it exceeds `limit` bytes.
fn send(socket: &UdpSocket, response: &Message, limit: usize, peer: SocketAddr) {
    if let Some(bytes) = answer::encode(response, limit) {
        // A lost UDP answer is indistinguishable from network loss; the client retries.
        let _ = socket.send_to(&bytes, peer);
    }
}
