//! Hostile peers: clients that break the rules the listener relies on, written once and run
//! against both drivers.
//!
//! - `alpn_h2_then_http1_request`: a TLS client that negotiates `h2` and then sends an HTTP/1.1
//!   request gets no HTTP/1.1 answer (a driver that does not offer `h2` refuses the handshake);
//! - `alpn_http1_then_h2_preface`: a TLS client that negotiates `http/1.1` and then sends the
//!   HTTP/2 connection preface gets a 400 or a closed connection, never HTTP/2 frames.

use orca_cluster_tests::harness::Driver;

macro_rules! hostile_peer_tests {
    ($module:ident, $driver:ty) => {
        mod $module {
            #[test]
            fn alpn_h2_then_http1_request() {
                <$driver as super::Driver>::run(
                    super::cases::alpn_h2_then_http1_request::<$driver>(),
                );
            }

            #[test]
            fn alpn_http1_then_h2_preface() {
                <$driver as super::Driver>::run(
                    super::cases::alpn_http1_then_h2_preface::<$driver>(),
                );
            }
        }
    };
}

hostile_peer_tests!(tokio_driver, orca_cluster_tests::harness::TokioDriver);
hostile_peer_tests!(smol_driver, orca_cluster_tests::harness::SmolDriver);

mod cases {
    use std::io::{ErrorKind, Read, Write};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use orca_cluster_core::TlsSettings;
    use orca_cluster_core::wire::encode_query;
    use orca_cluster_tests::harness::{Driver, Replica, off_thread, tls_replica_and_its_chunk};
    use orca_cluster_tests::pki::MtlsFixture;
    use orca_cluster_tests::{raw_client, raw_tls};

    /// How long the raw TLS client waits for the handshake, and then for the listener's answer.
    const LIMIT: Duration = Duration::from_secs(5);
    /// The HTTP/2 connection preface, followed by an empty SETTINGS frame.
    const H2_PREFACE: &[u8] =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

    /// What the raw TLS client saw.
    #[derive(Debug)]
    enum Seen {
        /// The handshake failed (e.g. no protocol in common).
        Refused(String),
        /// The handshake completed with `alpn`; `answer` is everything the listener sent
        /// before closing (or before [`LIMIT`]).
        Answered {
            alpn: Option<Vec<u8>>,
            answer: Vec<u8>,
        },
    }

    /// A TLS replica of driver `D` (the cluster's member identity) and a request for a chunk it
    /// coordinates, which it would answer with 200.
    async fn tls_replica<D: Driver>(pki: &MtlsFixture) -> (Replica, Vec<u8>) {
        let (r, mine) = tls_replica_and_its_chunk::<D>(&pki.member, 1024).await;
        let target = format!("/internal/fill?{}", encode_query(&mine, 64 * 1024));
        let request = raw_client::request("GET", &target, "x-orca-internal: 1\r\n");
        (r, request)
    }

    /// Connects to `addr` with mutual TLS (identity `tls`, offering only `protocol`), sends
    /// `bytes` once the handshake completes and reads until the listener closes.
    fn tls_exchange(addr: SocketAddr, tls: &TlsSettings, protocol: &[u8], bytes: &[u8]) -> Seen {
        let mut stream = match raw_tls::connect(addr, tls, protocol, LIMIT) {
            Ok(stream) => stream,
            Err(e) => return Seen::Refused(e),
        };
        let alpn = stream.conn.alpn_protocol().map(<[u8]>::to_vec);
        stream.write_all(bytes).unwrap();
        stream.flush().unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + LIMIT;
        while Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset, a TLS alert or the read timeout: the listener is done talking.
                Err(_) => break,
            }
        }
        Seen::Answered { alpn, answer }
    }

    /// `h2` agreed, then an HTTP/1.1 request: the listener must not answer it as HTTP/1.1 (it
    /// closes, or answers with HTTP/2 frames such as GOAWAY). A driver that does not speak
    /// HTTP/2 must not agree on `h2` at all.
    pub(super) async fn alpn_h2_then_http1_request<D: Driver>() {
        let pki = MtlsFixture::new(&format!("{}-alpn-h2", D::NAME));
        let (r, request) = tls_replica::<D>(&pki).await;
        let (addr, tls) = (r.addr, pki.member2.clone());
        let seen = off_thread(move || tls_exchange(addr, &tls, b"h2", &request)).await;
        match seen {
            Seen::Answered { alpn, answer } => {
                assert!(D::HTTP2, "{} agreed on h2: {alpn:?}", D::NAME);
                assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
                assert!(
                    !answer.windows(7).any(|w| w == b"HTTP/1."),
                    "{}: an HTTP/1.1 answer after h2 was agreed: {:?}",
                    D::NAME,
                    String::from_utf8_lossy(&answer)
                );
            }
            Seen::Refused(e) => assert!(!D::HTTP2, "{}: h2 handshake failed: {e}", D::NAME),
        }
        r.stop().await;
    }

    /// `http/1.1` agreed, then the HTTP/2 preface: a 400 or a close, never an HTTP/2 frame.
    pub(super) async fn alpn_http1_then_h2_preface<D: Driver>() {
        let pki = MtlsFixture::new(&format!("{}-alpn-http1", D::NAME));
        let (r, _) = tls_replica::<D>(&pki).await;
        let (addr, tls) = (r.addr, pki.member2.clone());
        let seen = off_thread(move || tls_exchange(addr, &tls, b"http/1.1", H2_PREFACE)).await;
        let Seen::Answered { alpn, answer } = seen else {
            panic!("{}: http/1.1 handshake failed: {seen:?}", D::NAME);
        };
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "{}", D::NAME);
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 400 "),
            "{}: the HTTP/2 preface after http/1.1 was agreed got {:?}",
            D::NAME,
            String::from_utf8_lossy(&answer)
        );
        r.stop().await;
    }
}
