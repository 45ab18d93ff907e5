//! A small, real DNS server on loopback for orca-cluster tests.
//!
//! [`TestDnsServer`] answers A and AAAA queries over UDP and TCP (same port) from a
//! record table the test controls, and can be switched into failure [`Mode`]s
//! (NXDOMAIN, SERVFAIL, REFUSED, empty answers, no reply, delayed replies). It uses
//! only std threads and sockets, so tests of any async runtime can use it.
//!
//! ```
//! use orca_cluster_testdns::{Mode, TestDnsServer};
//!
//! let dns = TestDnsServer::start()?;
//! dns.set_records(
//!     "orca.default.svc.cluster.local",
//!     &["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
//! );
//! dns.set_mode(Mode::Normal);
//! let resolver_addr = dns.addr(); // point the resolver under test here
//! assert!(resolver_addr.ip().is_loopback());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Behaviour in [`Mode::Normal`]: names match case-insensitively, with or without a
//! trailing dot; A queries get the v4 records, AAAA queries the v6 ones; a known name
//! without records of the asked type (or asked another type) gets NOERROR with no
//! answers; an unknown name gets NXDOMAIN. Over UDP, answers larger than 512 bytes
//! (or the query's EDNS payload size, capped at 1232) are sent truncated (TC bit, no
//! answers) so the client retries over TCP, where the full answer is sent.

mod answer;
mod records;
mod shared;
mod tcp;
mod udp;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use shared::{POLL, Shared, lock};

/// How the server answers queries; set with [`TestDnsServer::set_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Answer from the record table (the default).
    #[default]
    Normal,
    /// Answer NXDOMAIN to every query.
    NxDomain,
    /// Answer SERVFAIL to every query.
    ServFail,
    /// Answer REFUSED to every query.
    Refused,
    /// Answer NOERROR with no answer records to every query.
    Empty,
    /// Read queries and never answer; TCP connections are held open without answers.
    NoReply,
    /// Answer as in [`Mode::Normal`], but only after waiting this long.
    Delay(Duration),
}

/// A DNS server on a loopback (or given) address, serving UDP and TCP on one port.
///
/// Dropping it stops and joins all its threads (within about 100 ms) and frees the port.
#[derive(Debug)]
pub struct TestDnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl TestDnsServer {
    /// Starts a server on `127.0.0.1`, UDP and TCP on the same OS-assigned port.
    pub fn start() -> io::Result<TestDnsServer> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// Starts a server on `addr` (UDP and TCP). Port 0 picks a port free for both.
    pub fn start_on(addr: SocketAddr) -> io::Result<TestDnsServer> {
        let (udp, tcp) = bind_pair(addr)?;
        udp.set_read_timeout(Some(POLL))?;
        tcp.set_nonblocking(true)?;
        let addr = udp.local_addr()?;
        let mut server = TestDnsServer {
            addr,
            shared: Arc::new(Shared::new()),
            threads: Vec::new(),
        };
        // On a spawn error, `server` drops here, stopping what was already started.
        let udp_shared = Arc::clone(&server.shared);
        let udp = Arc::new(udp);
        server.threads.push(
            thread::Builder::new()
                .name("testdns-udp".to_owned())
                .spawn(move || udp::serve(udp, udp_shared))?,
        );
        let tcp_shared = Arc::clone(&server.shared);
        server.threads.push(
            thread::Builder::new()
                .name("testdns-tcp".to_owned())
                .spawn(move || tcp::serve(tcp, tcp_shared))?,
        );
        Ok(server)
    }

    /// The address (IP and port) the server listens on, for both UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the record set of `name`: v4 addresses become A records, v6 AAAA.
    ///
    /// An empty `ips` keeps the name known (NODATA answers) rather than NXDOMAIN.
    pub fn set_records(&self, name: &str, ips: &[IpAddr]) {
        lock(&self.shared.records).set(name, ips);
    }

    /// Makes answers for `name` also carry `ips` (A for v4, AAAA for v6, as asked) as records
    /// whose owner name is `owner` rather than the queried name, after the name's own records:
    /// what a misbehaving or hostile server could send. An empty `ips` stops it.
    pub fn set_stray_records(&self, name: &str, owner: &str, ips: &[IpAddr]) {
        lock(&self.shared.records).set_strays(name, owner, ips);
    }

    /// Forgets `name`; queries for it then answer NXDOMAIN.
    pub fn remove_name(&self, name: &str) {
        lock(&self.shared.records).remove(name);
    }

    /// Sets how all following queries are answered, until changed again.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// Sets the TTL (seconds) of the answer records; the default is 30.
    pub fn set_ttl(&self, ttl_secs: u32) {
        self.shared.ttl.store(ttl_secs, Ordering::SeqCst);
    }

    /// Number of query messages received so far, over UDP and TCP together.
    pub fn query_count(&self) -> u64 {
        self.shared.queries.load(Ordering::SeqCst)
    }

    /// Number of query messages received so far over TCP.
    pub fn tcp_query_count(&self) -> u64 {
        self.shared.tcp_queries.load(Ordering::SeqCst)
    }
}

impl Drop for TestDnsServer {
    fn drop(&mut self) {
        self.shared.request_stop();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        // The listener threads have exited, so no new workers can appear.
        self.shared.join_workers();
    }
}

/// Binds UDP and TCP on the same port; with port 0, retries until one is free for both.
fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((UdpSocket::bind(addr)?, TcpListener::bind(addr)?));
    }
    let mut last_err = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr)?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}
