//! Quick ACKs for the fill clients' TCP connections: what both drivers' client streams call
//! after every read and write (`QuickAckTcp` in each driver).
//!
//! Linux delays ACKs on a connection it takes for interactive: one where this side sends soon
//! after receiving (an HTTP/2 client's `WINDOW_UPDATE`s while a body arrives, an HTTP/1.1
//! client's next request right after a response). A peer that writes short segments and waits
//! for their ACKs (Nagle's algorithm; nginx serving HTTP/2, or TLS records one by one) then
//! sends slower, or waits one delayed-ACK interval (about 40 ms) for the end of a body:
//! measured against nginx, 6 of 64 HTTP/2 fills of 8 MiB took 50 ms instead of 7.
//! `TCP_QUICKACK` leaves that mode and sends the pending ACK at once. Reads are large (up to
//! 256 KiB) and writes rare on a fill connection, so the extra system call costs nothing
//! measurable. Elsewhere than Linux this does nothing.

/// Asks the kernel to acknowledge what has been received at once (`TCP_QUICKACK`, Linux and
/// Android); a no-op elsewhere. Best effort: a refusal only leaves the kernel's default.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn rearm<Fd: std::os::fd::AsFd>(socket: Fd) {
    let _ = rustix::net::sockopt::set_tcp_quickack(socket, true);
}

/// Asks the kernel to acknowledge what has been received at once (`TCP_QUICKACK`, Linux and
/// Android); a no-op elsewhere. Best effort: a refusal only leaves the kernel's default.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn rearm<S>(_socket: S) {}

/// [`rearm`] after a read or write that moved bytes (`Ready(Ok(n))`, `n > 0`): what the
/// drivers' client streams call with the result of each `poll_read` / `poll_write`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn after_transfer<Fd: std::os::fd::AsFd>(
    socket: Fd,
    result: &std::task::Poll<std::io::Result<usize>>,
) {
    if matches!(result, std::task::Poll::Ready(Ok(n)) if *n > 0) {
        rearm(socket);
    }
}

/// [`rearm`] after a read or write that moved bytes (`Ready(Ok(n))`, `n > 0`): what the
/// drivers' client streams call with the result of each `poll_read` / `poll_write`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn after_transfer<S>(_socket: S, _result: &std::task::Poll<std::io::Result<usize>>) {}

/// The methods of a client stream `struct S(Socket)` that pass one read or write through to
/// the socket and then [`after_transfer`] on it: `name(arg: Type)` for each method, which must
/// return `Poll<io::Result<usize>>`. Both drivers' `QuickAckTcp` take their write methods (and
/// smol its read) from here, so the rule and its plumbing are written once; the trait being
/// implemented must be in scope where the macro is used.
///
/// ```ignore
/// impl futures_io::AsyncWrite for QuickAckTcp {
///     orca_cluster_driver_common::quick_ack_transfers!(
///         poll_write(buf: &[u8]),
///         poll_write_vectored(bufs: &[std::io::IoSlice<'_>]),
///     );
///     // poll_flush, poll_close: plain delegation
/// }
/// ```
#[macro_export]
macro_rules! quick_ack_transfers {
    ($($method:ident($arg:ident: $ty:ty)),+ $(,)?) => {$(
        fn $method(
            mut self: ::core::pin::Pin<&mut Self>,
            cx: &mut ::core::task::Context<'_>,
            $arg: $ty,
        ) -> ::core::task::Poll<::std::io::Result<usize>> {
            let moved = ::core::pin::Pin::new(&mut self.0).$method(cx, $arg);
            $crate::quick_ack::after_transfer(&self.0, &moved);
            moved
        }
    )+};
}

/// Whether the kernel would acknowledge `socket`'s data at once now (`false` while it is in
/// delayed-ACK mode); `None` where the option does not exist. For tests.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn is_quick<Fd: std::os::fd::AsFd>(socket: Fd) -> Option<bool> {
    rustix::net::sockopt::tcp_quickack(socket).ok()
}

/// Whether the kernel would acknowledge `socket`'s data at once now (`false` while it is in
/// delayed-ACK mode); `None` where the option does not exist. For tests.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn is_quick<S>(_socket: S) -> Option<bool> {
    None
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// Receive, then answer at once, three times, as a client sending window updates or its
    /// next request does; returns whether the socket acknowledged at once after every answer.
    fn after_receive_then_write(rearm_after_write: bool) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            for _ in 0..3 {
                peer.write_all(&[7u8; 32 * 1024]).unwrap();
                let mut answer = [0u8; 13];
                peer.read_exact(&mut answer).unwrap();
            }
        });
        let mut client = TcpStream::connect(addr).unwrap();
        client.set_nodelay(true).unwrap();
        let mut body = vec![0u8; 32 * 1024];
        let mut quick_after_writes = true;
        for _ in 0..3 {
            client.read_exact(&mut body).unwrap();
            client.write_all(&[1u8; 13]).unwrap();
            if rearm_after_write {
                rearm(&client);
            }
            quick_after_writes &= is_quick(&client).unwrap();
        }
        server.join().unwrap();
        quick_after_writes
    }

    #[test]
    fn rearming_after_a_write_leaves_delayed_ack_mode() {
        assert!(
            after_receive_then_write(true),
            "still in delayed-ACK mode after rearm"
        );
        // Without it the same exchange does enter delayed-ACK mode, which is what the drivers'
        // client streams re-arm against (and shows that the check above can fail).
        assert!(
            !after_receive_then_write(false),
            "the bare socket never entered delayed-ACK mode: the test shows nothing"
        );
    }
}
