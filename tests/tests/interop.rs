//! Cross-driver interoperability: a tokio replica and a smol replica fill from each other
//! (plain HTTP/1.1 and mutual TLS, where ALPN must settle on `http/1.1` against the smol
//! listener), and mixed clusters of 2 tokio + 2 smol replicas — over a static source with
//! distinct ports, over mTLS, and through the test DNS server with distinct loopback IPs and
//! one shared port — agree on the coordinator of 1000 chunks and fill from each other.
//!
//! Every test runs on [`run_mixed`]: a tokio runtime, with smol's global executor alongside.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use orca_cluster_core::fill::FillCheckError;
use orca_cluster_core::{ClusterConfig, TlsSettings};
use orca_cluster_driver_common::{FillError, StaticPeerSource, SyntheticOrigin};
use orca_cluster_testdns::TestDnsServer;
use orca_cluster_tests::harness::{
    ClusterHandle, Driver, LOCALHOST, Replica, STOP_DEADLINE, Setup, SmolDriver, TokioDriver,
    assert_chunk, assert_settles, bind_local, client_cluster, eventually, key, key_coordinated_by,
    next_change, off_thread, replica, run_mixed, start_static, static_config, stop_all, timeout,
};
use orca_cluster_tests::pki::{MtlsFixture, negotiated_alpn};

const CHUNK: u64 = 256 * 1024;
/// Chunk indices searched for a chunk with a given coordinator.
const INDICES: u64 = 64;
const OBJECT: u64 = CHUNK * INDICES;
/// How many chunks the agreement checks compare.
const AGREEMENT_KEYS: u64 = 1000;
const SOON: Duration = Duration::from_secs(5);

fn tls_config(tls: Option<&TlsSettings>) -> ClusterConfig {
    ClusterConfig {
        internal_tls: tls.cloned().unwrap_or_default(),
        ..static_config()
    }
}

/// One replica of driver `S` (serving) and one of driver `C` (client) in one static cluster;
/// `C` fills from `S` three chunks `S` coordinates, bytes verified. `client_http1` is the
/// client's HTTP/1.1 mode; `tls` gives each side's `internal_tls`.
async fn one_way<C: Driver, S: Driver>(
    client_http1: bool,
    tls: Option<(&TlsSettings, &TlsSettings)>,
) -> (Replica, Replica) {
    let server_listener = bind_local::<S>(1).await.pop().unwrap();
    let client_listener = bind_local::<C>(1).await.pop().unwrap();
    let (server_addr, client_addr) = (
        S::listener_addr(&server_listener),
        C::listener_addr(&client_listener),
    );
    let source = StaticPeerSource::new([server_addr, client_addr]);
    let setup = Setup::static_source(&source);
    let server = replica::<S>(
        server_listener,
        tls_config(tls.map(|t| t.0)),
        setup.clone().with_self_port(server_addr.port()),
        SyntheticOrigin,
    )
    .await;
    let client = replica::<C>(
        client_listener,
        tls_config(tls.map(|t| t.1)),
        setup
            .with_self_port(client_addr.port())
            .with_http1(client_http1),
        SyntheticOrigin,
    )
    .await;
    let replicas = [server, client];
    let keys: Vec<_> = (0..INDICES)
        .map(|i| key(i, CHUNK))
        .filter(|k| replicas[0].is(&replicas[1].cluster.coordinator(k)))
        .take(3)
        .collect();
    assert_eq!(
        keys.len(),
        3,
        "the {} replica coordinates some chunks",
        S::NAME
    );
    for k in &keys {
        let peer = replicas[1].cluster.coordinator(k);
        let bytes = replicas[1]
            .cluster
            .fill(&peer, k, OBJECT)
            .await
            .unwrap_or_else(|e| panic!("{} -> {}: {e:?}", C::NAME, S::NAME));
        assert_chunk(&bytes, k, OBJECT);
    }
    assert_settles::<TokioDriver, _>("served", 3, || replicas[0].cluster.stats().served_ok).await;
    assert_eq!(replicas[1].cluster.stats().fills_ok, 3);
    let [server, client] = replicas;
    (server, client)
}

#[test]
fn tokio_client_to_smol_listener_plain_http1() {
    run_mixed(async {
        let (server, client) = one_way::<TokioDriver, SmolDriver>(true, None).await;
        stop_all(vec![server, client]).await;
    });
}

/// A tokio client set to h2c (`Protocol::Http2`, prior knowledge) cannot talk to an
/// HTTP/1.1-only listener: the fill fails promptly with an error instead of hanging, and the
/// listener stays healthy for HTTP/1.1 clients. (The default, `Protocol::Auto`, speaks
/// HTTP/1.1 in plain mode, so mixed clusters work; see the conformance suite.)
#[test]
fn tokio_h2c_against_the_http1_only_smol_listener_fails_fast() {
    run_mixed(async {
        let (server, client) = one_way::<TokioDriver, SmolDriver>(true, None).await;
        let h2c = orca_cluster_tests::harness::client_cluster_with::<TokioDriver>(
            static_config(),
            orca_cluster_driver_common::Protocol::Http2,
            &[],
        )
        .await;
        let k = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .find(|k| server.cluster.is_coordinator(k))
            .unwrap();
        let peer = orca_cluster_tests::harness::peer_at(server.addr);
        let outcome = timeout::<TokioDriver, _>(SOON, h2c.fill(&peer, &k, OBJECT)).await;
        let err = outcome
            .expect("h2c against HTTP/1.1 fails within 5 s")
            .unwrap_err();
        assert!(
            matches!(
                err,
                FillError::Http(_) | FillError::Check(FillCheckError::Status { .. })
            ),
            "{err:?}"
        );
        // Still serving HTTP/1.1.
        assert_chunk(
            &client.cluster.fill(&peer, &k, OBJECT).await.unwrap(),
            &k,
            OBJECT,
        );
        println!("h2c -> smol: {err}");
        h2c.close(STOP_DEADLINE).await.unwrap();
        stop_all(vec![server, client]).await;
    });
}

/// TLS: the tokio client offers `h2` and `http/1.1`; the smol listener offers only `http/1.1`,
/// so ALPN picks `http/1.1` and the fill works. A raw handshake confirms the choice (and that
/// the tokio listener, offered the same, picks `h2`).
#[test]
fn tokio_client_to_smol_listener_mtls_alpn_picks_http1() {
    run_mixed(async {
        let pki = MtlsFixture::new("interop-alpn");
        let (server, client) =
            one_way::<TokioDriver, SmolDriver>(false, Some((&pki.member, &pki.member2))).await;

        let offer: &[&[u8]] = &[b"h2", b"http/1.1"];
        let (smol_addr, tokio_addr) = (server.addr, client.addr);
        let tls = pki.member2.clone();
        let (smol_pick, tokio_pick) = off_thread(move || {
            (
                negotiated_alpn(smol_addr, &tls, offer),
                negotiated_alpn(tokio_addr, &tls, offer),
            )
        })
        .await;
        assert_eq!(smol_pick, Ok(Some(b"http/1.1".to_vec())), "smol listener");
        assert_eq!(tokio_pick, Ok(Some(b"h2".to_vec())), "tokio listener");
        stop_all(vec![server, client]).await;
    });
}

#[test]
fn smol_client_to_tokio_listener_plain_http1() {
    run_mixed(async {
        let (server, client) = one_way::<SmolDriver, TokioDriver>(true, None).await;
        stop_all(vec![server, client]).await;
    });
}

#[test]
fn smol_client_to_tokio_listener_mtls() {
    run_mixed(async {
        let pki = MtlsFixture::new("interop-smol-tokio");
        let (server, client) =
            one_way::<SmolDriver, TokioDriver>(true, Some((&pki.member, &pki.member2))).await;
        stop_all(vec![server, client]).await;
    });
}

/// Each driver's listener rejects the other driver's client when its certificate comes from
/// another CA.
#[test]
fn cross_driver_mtls_rejects_another_ca() {
    run_mixed(async {
        let pki = MtlsFixture::new("interop-reject");
        let (smol_server, tokio_server) =
            one_way::<TokioDriver, SmolDriver>(false, Some((&pki.member, &pki.member2))).await;
        let k = key(0, CHUNK);
        let tokio_impostor =
            client_cluster::<TokioDriver>(tls_config(Some(&pki.impostor)), false, &[]).await;
        let smol_impostor =
            client_cluster::<SmolDriver>(tls_config(Some(&pki.impostor)), true, &[]).await;
        for (client, server) in [
            (&tokio_impostor as &dyn ClusterHandle, &smol_server),
            (&smol_impostor as &dyn ClusterHandle, &tokio_server),
        ] {
            let peer = orca_cluster_tests::harness::peer_at(server.addr);
            let err = client.fill(&peer, &k, OBJECT).await.unwrap_err();
            assert!(
                matches!(err, FillError::Tls(_) | FillError::Http(_)),
                "{} impostor -> {}: {err:?}",
                client.driver(),
                server.driver
            );
        }
        assert_settles::<TokioDriver, _>("only the member's fills", 3, || {
            smol_server.cluster.stats().served_ok
        })
        .await;
        assert_eq!(tokio_server.cluster.stats().served_ok, 0);
        tokio_impostor.close(STOP_DEADLINE).await.unwrap();
        smol_impostor.close(STOP_DEADLINE).await.unwrap();
        stop_all(vec![smol_server, tokio_server]).await;
    });
}

/// Every replica sees the same peers and the same ranking (coordinator first) for
/// `AGREEMENT_KEYS` chunks.
fn assert_agreement(replicas: &[Replica]) {
    let n = replicas.len();
    for r in replicas {
        assert_eq!(r.cluster.peers().len(), n, "{r:?} sees every replica");
    }
    for i in 0..AGREEMENT_KEYS {
        let k = key(i, CHUNK);
        let reference: Vec<_> = replicas[0]
            .cluster
            .ranked(&k)
            .into_iter()
            .map(|(p, score)| (p.ip, p.port, score))
            .collect();
        let owners = replicas
            .iter()
            .filter(|r| r.cluster.is_coordinator(&k))
            .count();
        assert_eq!(owners, 1, "chunk {i}: exactly one replica coordinates");
        for r in &replicas[1..] {
            let ranked: Vec<_> = r
                .cluster
                .ranked(&k)
                .into_iter()
                .map(|(p, score)| (p.ip, p.port, score))
                .collect();
            assert_eq!(
                ranked, reference,
                "chunk {i}: {r:?} ranks like {:?}",
                replicas[0]
            );
            let c = r.cluster.coordinator(&k);
            assert_eq!((c.ip, c.port), (reference[0].0, reference[0].1));
        }
    }
}

/// Every replica fills, from every other replica, a chunk that one coordinates; bytes verified.
async fn fill_all_pairs(replicas: &[Replica]) {
    for (i, asker) in replicas.iter().enumerate() {
        for (j, owner) in replicas.iter().enumerate().filter(|(j, _)| *j != i) {
            let k = key_coordinated_by(replicas, i, j, CHUNK, INDICES)
                .unwrap_or_else(|| panic!("no chunk coordinated by {owner:?}"));
            let peer = asker.cluster.coordinator(&k);
            let bytes = asker
                .cluster
                .fill(&peer, &k, OBJECT)
                .await
                .unwrap_or_else(|e| panic!("{asker:?} -> {owner:?}: {e:?}"));
            assert_chunk(&bytes, &k, OBJECT);
        }
    }
    let n = replicas.len() as u64;
    let served = || {
        replicas
            .iter()
            .map(|r| r.cluster.stats().served_ok)
            .sum::<u64>()
    };
    assert!(
        eventually::<TokioDriver>(SOON, || served() >= n * (n - 1)).await,
        "{} fills served",
        served()
    );
}

/// 2 tokio + 2 smol replicas on 127.0.0.1 with distinct ports and one static source.
async fn mixed_static(tls: Option<[&TlsSettings; 2]>, tokio_http1: bool) -> Vec<Replica> {
    let tokio_listeners = bind_local::<TokioDriver>(2).await;
    let smol_listeners = bind_local::<SmolDriver>(2).await;
    let source = StaticPeerSource::new(
        tokio_listeners
            .iter()
            .map(TokioDriver::listener_addr)
            .chain(smol_listeners.iter().map(SmolDriver::listener_addr)),
    );
    let setup = Setup::static_source(&source);
    let tokio_config = tls_config(tls.map(|t| t[0]));
    let smol_config = tls_config(tls.map(|t| t[1]));
    let mut replicas = start_static::<TokioDriver>(
        tokio_listeners,
        &tokio_config,
        &setup.clone().with_http1(tokio_http1),
        SyntheticOrigin,
    )
    .await;
    replicas.extend(
        start_static::<SmolDriver>(smol_listeners, &smol_config, &setup, SyntheticOrigin).await,
    );
    replicas
}

#[test]
fn mixed_cluster_static_plain() {
    run_mixed(async {
        let replicas = mixed_static(None, true).await;
        assert_agreement(&replicas);
        fill_all_pairs(&replicas).await;
        stop_all(replicas).await;
    });
}

/// The production mix: mutual TLS everywhere, tokio clients with default options (ALPN `h2`
/// against tokio listeners, `http/1.1` against smol listeners).
#[test]
fn mixed_cluster_static_mtls() {
    run_mixed(async {
        let pki = MtlsFixture::new("interop-mixed");
        let replicas = mixed_static(Some([&pki.member, &pki.member2]), false).await;
        assert_agreement(&replicas);
        fill_all_pairs(&replicas).await;
        stop_all(replicas).await;
    });
}

const SERVICE: &str = "orca-peers.default.svc.cluster.local";
/// Loopback IPs of the DNS-discovered replicas: 2 tokio, then 2 smol.
const DNS_IPS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 4),
    Ipv4Addr::new(127, 0, 0, 5),
];

/// Binds the four listeners on `DNS_IPS` and one shared port (as in production, where every
/// pod listens on the same port): tokio on the first two IPs, smol on the last two. Retries
/// with another port if one is taken; `Err` if the extra loopback IPs cannot be bound.
async fn bind_shared_port() -> io::Result<(
    u16,
    Vec<<TokioDriver as Driver>::Listener>,
    Vec<<SmolDriver as Driver>::Listener>,
)> {
    let mut last = None;
    for _ in 0..10 {
        let first = TokioDriver::bind(SocketAddr::new(DNS_IPS[0].into(), 0)).await?;
        let port = TokioDriver::listener_addr(&first).port();
        let second = TokioDriver::bind(SocketAddr::new(DNS_IPS[1].into(), port)).await;
        let third = SmolDriver::bind(SocketAddr::new(DNS_IPS[2].into(), port)).await;
        let fourth = SmolDriver::bind(SocketAddr::new(DNS_IPS[3].into(), port)).await;
        match (second, third, fourth) {
            (Ok(b), Ok(c), Ok(d)) => return Ok((port, vec![first, b], vec![c, d])),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no shared port")))
}

/// Discovery through the test DNS server: 4 replicas (2 tokio + 2 smol) on 127.0.0.2-5 and one
/// shared port, records without ports (port 0 = `internal_listen`'s port). They agree on 1000
/// coordinators and fill from each other; after a smol replica's record is removed, the other
/// three converge on the new set at the next refresh and still agree and fill.
#[test]
fn mixed_cluster_through_dns_with_a_shared_port() {
    run_mixed(async {
        let (port, tokio_listeners, smol_listeners) = match bind_shared_port().await {
            Ok(bound) => bound,
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                orca_cluster_test_support::skip_outside_ci(&format!(
                    "127.0.0.2-5 cannot be bound here ({e})"
                ));
                return;
            }
            Err(e) => panic!("bind: {e}"),
        };
        let dns = TestDnsServer::start().unwrap();
        let ips: Vec<IpAddr> = DNS_IPS.iter().map(|ip| IpAddr::V4(*ip)).collect();
        dns.set_records(SERVICE, &ips);
        let config = |ip: IpAddr| ClusterConfig {
            service: SERVICE.into(),
            self_pod_ip: vec![ip],
            internal_listen: SocketAddr::new(ip, port),
            membership_refresh: Duration::from_millis(150),
            lookup_timeout: Duration::from_secs(1),
            ..ClusterConfig::default()
        };
        let setup = Setup::dns(dns.addr()).with_http1(true);
        let mut replicas = Vec::new();
        for listener in tokio_listeners {
            let ip = TokioDriver::listener_addr(&listener).ip();
            replicas.push(
                replica::<TokioDriver>(listener, config(ip), setup.clone(), SyntheticOrigin).await,
            );
        }
        for listener in smol_listeners {
            let ip = SmolDriver::listener_addr(&listener).ip();
            replicas.push(
                replica::<SmolDriver>(listener, config(ip), setup.clone(), SyntheticOrigin).await,
            );
        }
        for r in &replicas {
            assert!(r.cluster.has_initial_snapshot());
            assert!(
                r.cluster.peers().peers().iter().all(|p| p.port == 0),
                "DNS records carry no port"
            );
        }
        assert_agreement(&replicas);
        fill_all_pairs(&replicas).await;

        // A smol pod leaves the Service.
        let mut changes: Vec<_> = replicas[..3]
            .iter()
            .map(|r| r.cluster.subscribe())
            .collect();
        dns.set_records(SERVICE, &ips[..3]);
        for (r, sub) in replicas[..3].iter().zip(&mut changes) {
            let next = next_change::<TokioDriver>(sub, SOON).await;
            assert_eq!(next.len(), 3, "{r:?} dropped the departed replica");
        }
        let gone = replicas.pop().unwrap();
        assert!(
            eventually::<TokioDriver>(SOON, || replicas
                .iter()
                .all(|r| r.cluster.peers().len() == 3))
            .await
        );
        assert_agreement(&replicas);
        fill_all_pairs(&replicas).await;
        gone.stop().await;
        stop_all(replicas).await;
    });
}

/// HTTP/1.1 keep-alive across drivers: the tokio client reuses one connection to the smol
/// listener for sequential fills (the smol listener counts accepted connections) and opens at
/// most one per concurrent fill; the smol client keeps one idle pooled connection to the tokio
/// listener after sequential fills.
#[test]
fn cross_driver_keep_alive_reuse() {
    run_mixed(async {
        // tokio client -> smol listener.
        let listener = orca_cluster_smol::FillListener::bind(SocketAddr::new(LOCALHOST, 0))
            .await
            .unwrap();
        let smol_addr = listener.local_addr();
        let phantom = SocketAddr::new(LOCALHOST, 1);
        let server_setup = Setup::static_source(&StaticPeerSource::new([smol_addr, phantom]))
            .with_self_port(smol_addr.port());
        let smol_server = SmolDriver::start(static_config(), server_setup)
            .await
            .unwrap();
        let handle = listener.serve(
            &smol_server,
            SyntheticOrigin,
            orca_cluster_smol::ListenerSettings::default(),
        );
        let tokio_client = client_cluster::<TokioDriver>(static_config(), true, &[smol_addr]).await;
        let keys: Vec<_> = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .filter(|k| smol_server.is_coordinator(k))
            .take(8)
            .collect();
        assert_eq!(keys.len(), 8);
        let peer = orca_cluster_tests::harness::peer_at(smol_addr);
        for k in &keys[..4] {
            assert_chunk(
                &tokio_client.fill(&peer, k, OBJECT).await.unwrap(),
                k,
                OBJECT,
            );
        }
        assert_eq!(
            handle.accepted_connections(),
            1,
            "sequential fills share one connection"
        );
        let results = futures_util::future::join_all(
            keys.iter().map(|k| tokio_client.fill(&peer, k, OBJECT)),
        )
        .await;
        for (k, result) in keys.iter().zip(results) {
            assert_chunk(&result.unwrap(), k, OBJECT);
        }
        let accepted = handle.accepted_connections();
        assert!(
            (1..=1 + keys.len() as u64).contains(&accepted),
            "{accepted} connections for 8 concurrent fills"
        );
        tokio_client.close(STOP_DEADLINE).await.unwrap();
        handle.shutdown(STOP_DEADLINE).await;
        smol_server.close(STOP_DEADLINE).await.unwrap();

        // smol client -> tokio listener.
        let tokio_listener = bind_local::<TokioDriver>(1).await.pop().unwrap();
        let tokio_addr = TokioDriver::listener_addr(&tokio_listener);
        let tokio_server = replica::<TokioDriver>(
            tokio_listener,
            static_config(),
            Setup::static_source(&StaticPeerSource::new([tokio_addr, phantom]))
                .with_self_port(tokio_addr.port()),
            SyntheticOrigin,
        )
        .await;
        let smol_client = client_cluster::<SmolDriver>(static_config(), true, &[tokio_addr]).await;
        let peer = orca_cluster_tests::harness::peer_at(tokio_addr);
        let keys = (0..INDICES)
            .map(|i| key(i, CHUNK))
            .filter(|k| tokio_server.cluster.is_coordinator(k))
            .take(4);
        for k in keys {
            assert_chunk(
                &smol_client.fill(&peer, &k, OBJECT).await.unwrap(),
                &k,
                OBJECT,
            );
            assert_eq!(
                smol_client.client().connected_peers(),
                vec![tokio_addr],
                "one pooled connection, reused"
            );
        }
        smol_client.close(STOP_DEADLINE).await.unwrap();
        assert!(
            smol_client.client().connected_peers().is_empty(),
            "close empties the pool"
        );
        tokio_server.stop().await;
    });
}
