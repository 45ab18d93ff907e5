//! Connections that hold a listener's resources without using them, written once and run
//! against both drivers; each case shortens the one [`ListenerSettings`] limit it checks.
//!
//! - `connections_without_a_request_close`: silence, part of the HTTP/2 preface, part of a
//!   request head — closed at `header_read_timeout` after the accept;
//! - `idle_after_a_mutual_tls_handshake_closes`: the same deadline after a completed handshake;
//! - `idle_connections_close_even_while_pinging`: no request in flight for `idle_timeout` —
//!   closed (HTTP/2: although the client keeps sending PINGs), within 1.25 × the timeout;
//! - `stalled_readers_lose_their_fill_slot`: a client that stops reading (HTTP/1.1) or never
//!   opens its flow-control window (HTTP/2) is closed after `send_timeout`, and the slot it held
//!   serves the next fill;
//! - `connections_beyond_max_connections_wait_for_room`: never more than `max_connections`
//!   open; the next one is served once a silent one is closed.

orca_cluster_tests::driver_cases!([
    connections_without_a_request_close,
    idle_after_a_mutual_tls_handshake_closes,
    idle_connections_close_even_while_pinging,
    stalled_readers_lose_their_fill_slot,
    connections_beyond_max_connections_wait_for_room,
]);

mod cases {
    use std::io::Read;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use orca_cluster_core::wire::encode_query;
    use orca_cluster_core::{ChunkKey, ClusterConfig};
    use orca_cluster_driver_common::{ListenerSettings, StaticPeerSource, SyntheticOrigin};
    use orca_cluster_tests::harness::{
        Driver, Replica, Setup, bind_local, key, off_thread, static_config,
    };
    use orca_cluster_tests::pki::MtlsFixture;
    use orca_cluster_tests::raw_client::{self, RawConnection};
    use orca_cluster_tests::raw_h2::{self, Ended, H2Connection};
    use orca_cluster_tests::raw_tls;

    /// The limit a case shortens.
    const SHORT: Duration = Duration::from_millis(400);
    /// Earliest a deadline of [`SHORT`] may be seen to pass (timer and scheduling slack).
    const NOT_BEFORE: Duration = Duration::from_millis(300);
    /// Latest it must be seen to pass.
    const WITHIN: Duration = Duration::from_secs(4);
    /// A chunk larger than every socket buffer between the listener and a client: 32 MiB.
    const BIG_CHUNK: u64 = 32 * 1024 * 1024;
    /// A small chunk: 64 KiB.
    const SMALL_CHUNK: u64 = 64 * 1024;

    /// Settings with every deadline long, for a case to shorten one.
    fn patient() -> ListenerSettings {
        ListenerSettings {
            header_read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(20),
            send_timeout: Duration::from_secs(20),
            ..ListenerSettings::default()
        }
    }

    /// A replica of driver `D` serving [`SyntheticOrigin`] with `settings` (and `config`'s
    /// TLS); its static list also names a phantom peer, so it coordinates some chunks and not
    /// others.
    async fn lone<D: Driver>(config: ClusterConfig, settings: ListenerSettings) -> Replica {
        let listener = bind_local::<D>(1).await.pop().unwrap();
        let addr = D::listener_addr(&listener);
        let phantom = SocketAddr::new(addr.ip(), 1);
        let source = StaticPeerSource::new([addr, phantom]);
        let setup = Setup::static_source(&source).with_self_port(addr.port());
        let cluster = D::start(config, setup)
            .await
            .unwrap_or_else(|e| panic!("{} start: {e}", D::NAME));
        let listener = D::serve_with(listener, &cluster, SyntheticOrigin, settings);
        Replica {
            driver: D::NAME,
            cluster: Box::new(cluster),
            listener,
            addr,
        }
    }

    /// The `n`th chunk of `chunk_size` bytes that `r` coordinates.
    fn mine(r: &Replica, chunk_size: u64, n: usize) -> ChunkKey {
        (0..256)
            .map(|i| key(i, chunk_size))
            .filter(|k| r.cluster.is_coordinator(k))
            .nth(n)
            .expect("a chunk of this replica")
    }

    fn fill_target(key: &ChunkKey) -> String {
        format!("/internal/fill?{}", encode_query(key, key.chunk_size * 256))
    }

    fn assert_deadline(what: &str, took: Option<Duration>) {
        let took = took.unwrap_or_else(|| panic!("{what}: still open after {WITHIN:?}"));
        assert!(
            took >= NOT_BEFORE,
            "{what}: closed after {took:?}, before its deadline"
        );
    }

    /// Silence, part of the HTTP/2 preface and part of a request head are all closed at
    /// `header_read_timeout` after the accept; a real request is still answered.
    pub(super) async fn connections_without_a_request_close<D: Driver>() {
        let settings = ListenerSettings {
            header_read_timeout: SHORT,
            ..patient()
        };
        let r = lone::<D>(static_config(), settings).await;
        let addr = r.addr;
        let target = fill_target(&mine(&r, SMALL_CHUNK, 0));
        let http2 = D::HTTP2;
        off_thread(move || {
            let openings: [(&str, &[u8]); 3] = [
                ("silent", b""),
                ("half preface", b"PRI * HTTP/2"),
                ("half head", b"GET /internal/fill HTTP/1.1\r\nhost: x\r\n"),
            ];
            let mut conns: Vec<(&str, Instant, RawConnection)> = openings
                .iter()
                .map(|(what, bytes)| {
                    let mut c = RawConnection::connect(addr).unwrap();
                    let at = Instant::now();
                    c.send(bytes).unwrap();
                    (*what, at, c)
                })
                .collect();
            let answered = raw_client::exchange(
                addr,
                &raw_client::request("GET", &target, "x-orca-internal: 1\r\n"),
            )
            .unwrap();
            assert_eq!(answered.status, 200, "{}", answered.text());
            for (what, at, c) in &mut conns {
                match c.wait_closed(WITHIN) {
                    Ok(closed) => assert_deadline(what, closed.map(|_| at.elapsed())),
                    // A driver without HTTP/2 may refuse the preface as a bad HTTP/1.1 head
                    // at once: 400, then the close.
                    Err(e) => assert!(*what == "half preface" && !http2, "{what}: {e}"),
                }
            }
        })
        .await;
        r.stop().await;
    }

    /// A client that completes the mutual-TLS handshake and sends nothing is closed at
    /// `header_read_timeout` after the accept.
    pub(super) async fn idle_after_a_mutual_tls_handshake_closes<D: Driver>() {
        let pki = MtlsFixture::new(&format!("{}-idle-tls", D::NAME));
        let config = ClusterConfig {
            internal_tls: pki.member.clone(),
            ..static_config()
        };
        let settings = ListenerSettings {
            header_read_timeout: SHORT,
            ..patient()
        };
        let r = lone::<D>(config, settings).await;
        let (addr, tls) = (r.addr, pki.member2.clone());
        let took = off_thread(move || {
            let mut stream = raw_tls::connect(addr, &tls, b"http/1.1", WITHIN).unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 64];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                assert!(started.elapsed() < WITHIN, "still open");
            }
            started.elapsed()
        })
        .await;
        assert!(took < WITHIN, "closed only after {took:?}");
        r.stop().await;
    }

    /// After one request, a connection with nothing in flight is closed at `idle_timeout`:
    /// HTTP/1.1 keep-alive, and (on drivers that speak it) HTTP/2 whose client keeps pinging.
    pub(super) async fn idle_connections_close_even_while_pinging<D: Driver>() {
        let settings = ListenerSettings {
            idle_timeout: SHORT,
            ..patient()
        };
        let r = lone::<D>(static_config(), settings).await;
        let addr = r.addr;
        off_thread(move || {
            let mut c = RawConnection::connect(addr).unwrap();
            c.send(&raw_client::keep_alive_request("GET", "/nope", ""))
                .unwrap();
            assert_eq!(c.read_response().unwrap().status, 404);
            assert_deadline("idle HTTP/1.1", c.wait_closed(WITHIN).unwrap());
        })
        .await;
        if D::HTTP2 {
            let took = off_thread(move || {
                let mut c = H2Connection::connect(addr, &[]).unwrap();
                c.get(1, "/nope").unwrap();
                let answer = c
                    .read_until(WITHIN, |f| f.kind == raw_h2::HEADERS && f.stream == 1)
                    .unwrap();
                assert_eq!(answer.payload.first(), Some(&0x8d), "404 (HPACK index 13)");
                let answered = Instant::now();
                for round in 0u64.. {
                    assert!(answered.elapsed() < WITHIN, "still open");
                    if c.ping(round.to_be_bytes()).is_err() {
                        break;
                    }
                    match c.read_frame(Duration::from_millis(100)) {
                        Err(Ended::Closed) => break,
                        Ok(_) | Err(Ended::TimedOut) => {}
                    }
                }
                answered.elapsed()
            })
            .await;
            assert!(took >= NOT_BEFORE, "h2 closed after {took:?}");
        }
        r.stop().await;
    }

    /// A client that stops reading a 32 MiB fill (HTTP/1.1), or never opens its flow-control
    /// window (HTTP/2), holds the only fill slot (others get 503) until `send_timeout`; then
    /// its connection is closed and the next fill is served.
    pub(super) async fn stalled_readers_lose_their_fill_slot<D: Driver>() {
        let settings = ListenerSettings {
            send_timeout: SHORT,
            max_concurrent: 1,
            ..patient()
        };
        let r = lone::<D>(static_config(), settings).await;
        let addr = r.addr;
        let big = fill_target(&mine(&r, BIG_CHUNK, 0));
        let small = fill_target(&mine(&r, SMALL_CHUNK, 0));
        let small2 = small.clone();
        // HTTP/1.1: read the head and a little, then stop.
        off_thread(move || {
            let mut staller = RawConnection::connect(addr).unwrap();
            staller
                .send(&raw_client::keep_alive_request(
                    "GET",
                    &big,
                    "x-orca-internal: 1\r\n",
                ))
                .unwrap();
            wait_for_bytes(&mut staller);
            let started = Instant::now();
            let took = served_after_refusals(addr, &small);
            assert!(
                took >= NOT_BEFORE && started.elapsed() < WITHIN,
                "slot freed after {took:?}"
            );
        })
        .await;
        if D::HTTP2 {
            let big = fill_target(&mine(&r, BIG_CHUNK, 1));
            off_thread(move || {
                let mut staller = H2Connection::connect(addr, &[]).unwrap();
                staller.get(1, &big).unwrap();
                staller
                    .read_until(WITHIN, |f| f.kind == raw_h2::DATA && f.stream == 1)
                    .unwrap();
                let took = served_after_refusals(addr, &small2);
                assert!(took >= NOT_BEFORE, "slot freed after {took:?}");
                let closed = staller.read_until(WITHIN, |_| false);
                assert!(matches!(closed, Err(Ended::Closed)), "{closed:?}");
            })
            .await;
        }
        r.stop().await;
    }

    /// Reads from `c` until some bytes arrive (the response has started).
    fn wait_for_bytes(c: &mut RawConnection) {
        // `wait_closed` reports bytes as an error: that is what is wanted here.
        let seen = c.wait_closed(WITHIN);
        assert!(seen.is_err(), "no response bytes: {seen:?}");
    }

    /// Asks for `target` on new connections until it is answered 200; the first answer must
    /// be 503. Returns how long it took.
    fn served_after_refusals(addr: SocketAddr, target: &str) -> Duration {
        let started = Instant::now();
        let request = raw_client::request("GET", target, "x-orca-internal: 1\r\n");
        let mut first = true;
        loop {
            let answer = raw_client::exchange(addr, &request).unwrap();
            if first {
                assert_eq!(answer.status, 503, "the slot is held: {}", answer.text());
                first = false;
            } else if answer.status == 200 {
                return started.elapsed();
            } else {
                assert_eq!(answer.status, 503, "{}", answer.text());
            }
            assert!(started.elapsed() < WITHIN, "the slot was never freed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// At `max_connections` open (two silent ones), a third connection waits in the backlog
    /// and is served once the silent ones are closed at `header_read_timeout`; the listener
    /// never has more than `max_connections` open.
    pub(super) async fn connections_beyond_max_connections_wait_for_room<D: Driver>() {
        let settings = ListenerSettings {
            header_read_timeout: SHORT,
            max_connections: 2,
            ..patient()
        };
        let r = lone::<D>(static_config(), settings).await;
        let addr = r.addr;
        let target = fill_target(&mine(&r, SMALL_CHUNK, 0));
        let silent: Vec<RawConnection> = off_thread(move || {
            (0..2)
                .map(|_| RawConnection::connect(addr).unwrap())
                .collect()
        })
        .await;
        let started = Instant::now();
        let mut served = Box::pin(off_thread(move || {
            raw_client::exchange(
                addr,
                &raw_client::request("GET", &target, "x-orca-internal: 1\r\n"),
            )
            .unwrap()
        }));
        let mut most = 0;
        let answer = loop {
            most = most.max(r.listener.open_connections());
            let tick = D::sleep(Duration::from_millis(10));
            match futures_lite::future::or(async { Some((&mut served).await) }, async {
                tick.await;
                None
            })
            .await
            {
                Some(answer) => break answer,
                None => assert!(
                    started.elapsed() < WITHIN,
                    "the third connection waited too long"
                ),
            }
        };
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(
            started.elapsed() >= NOT_BEFORE,
            "served at once: {:?}",
            started.elapsed()
        );
        assert!(most <= 2, "{most} connections open at once");
        drop(silent);
        r.stop().await;
    }
}
