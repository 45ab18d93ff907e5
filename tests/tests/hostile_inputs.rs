//! Hostile inputs, the same verdict on both drivers:
//!
//! - `chunk_size_above_the_maximum`: the listener answers 400 naming `chunk_size` for a chunk
//!   larger than the cluster's `max_chunk_size` (and for `chunk_size = 2^64-1` under the
//!   default 64 MiB), and serves a chunk of exactly the maximum; a client with the same
//!   maximum fills exactly the maximum and refuses, before sending anything, to ask for more
//!   (`DescriptorError` naming `chunk_size`).
//! - `client_name_is_checked`: with `internal_tls.client_name` set, the listener refuses, at the
//!   TLS handshake, a client certificate of the cluster's CA that does not name it, and serves
//!   one that does (by DNS name or by IP).
//! - `dns_answers_yield_only_real_peers`: a DNS answer (test DNS server) that also carries
//!   A/AAAA records of another owner name and addresses no pod can have (`0.0.0.0`, `::`,
//!   broadcast, multicast) yields only the real peers; an answer of such addresses only is a
//!   `NoRecords` failure that keeps the last good set.
//!
//! Each case is one generic `async fn` instantiated for both drivers by `hostile_tests!`.

use orca_cluster_tests::harness::Driver;

macro_rules! hostile_tests {
    ($module:ident, $driver:ty) => {
        mod $module {
            #[test]
            fn chunk_size_above_the_maximum() {
                <$driver as super::Driver>::run(super::cases::chunk_size_above_the_maximum::<
                    $driver,
                >());
            }

            #[test]
            fn dns_answers_yield_only_real_peers() {
                <$driver as super::Driver>::run(super::cases::dns_answers_yield_only_real_peers::<
                    $driver,
                >());
            }

            #[test]
            fn client_name_is_checked() {
                <$driver as super::Driver>::run(super::cases::client_name_is_checked::<$driver>());
            }
        }
    };
}

hostile_tests!(tokio_driver, orca_cluster_tests::harness::TokioDriver);
hostile_tests!(smol_driver, orca_cluster_tests::harness::SmolDriver);

mod cases {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use orca_cluster_core::fill::DescriptorError;
    use orca_cluster_core::wire::encode_query;
    use orca_cluster_core::{ChunkError, ClusterConfig, TlsSettings};
    use orca_cluster_driver_common::{FillError, StaticPeerSource, SyntheticOrigin};
    use orca_cluster_test_support::MtlsFixture;
    use orca_cluster_testdns::TestDnsServer;
    use orca_cluster_tests::harness::{
        ClusterHandle, Driver, Replica, Setup, assert_chunk, bind_local, client_cluster,
        eventually, key, peer_at, replica, static_config,
    };
    use orca_cluster_tests::raw_client::{self, RawResponse};

    const ONE: &str = "x-orca-internal: 1\r\n";

    /// A replica of driver `D` with `config`, in a static list with a phantom second peer (so
    /// it coordinates only some chunks).
    async fn lone_replica<D: Driver>(config: ClusterConfig) -> Replica {
        let listener = bind_local::<D>(1).await.pop().unwrap();
        let addr = D::listener_addr(&listener);
        let phantom = SocketAddr::new(addr.ip(), 1);
        let source = StaticPeerSource::new([addr, phantom]);
        let setup = Setup::static_source(&source).with_self_port(addr.port());
        replica::<D>(listener, config, setup, SyntheticOrigin).await
    }

    /// The status and body of a fill of the first chunk of `chunk_size` bytes that `r`
    /// coordinates, in an object of `object_size(index)` bytes.
    fn fill(r: &Replica, chunk_size: u64, object_size: impl Fn(u64) -> u64) -> RawResponse {
        let mine = (0..64)
            .map(|i| key(i, chunk_size))
            .find(|k| r.cluster.is_coordinator(k))
            .expect("a chunk of this replica");
        let target = format!(
            "/internal/fill?{}",
            encode_query(&mine, object_size(mine.index))
        );
        raw_client::exchange(r.addr, &raw_client::request("GET", &target, ONE))
            .unwrap_or_else(|e| panic!("{}: {e}", r.driver))
    }

    pub(super) async fn chunk_size_above_the_maximum<D: Driver>() {
        const MAX: u64 = 4096;
        let config = ClusterConfig {
            max_chunk_size: MAX,
            ..static_config()
        };
        let r = lone_replica::<D>(config.clone()).await;
        let whole = |chunk_size: u64| move |index: u64| (index + 4) * chunk_size;
        let response = fill(&r, MAX, whole(MAX));
        assert_eq!(response.status, 200, "{}: exactly the maximum", D::NAME);
        assert_eq!(response.body.len() as u64, MAX, "{}", D::NAME);
        let response = fill(&r, MAX + 1, whole(MAX + 1));
        let (status, body) = (response.status, response.text());
        assert_eq!(status, 400, "{}: one byte above: {body}", D::NAME);
        assert!(body.contains("chunk_size"), "{}: {body}", D::NAME);

        // A client with the same maximum fills exactly the maximum, and refuses to ask for
        // more: the error names chunk_size and the listener sees no request.
        let client = client_cluster::<D>(config.clone(), true, &[r.addr]).await;
        let peer = peer_at(r.addr);
        let at_max = (0..64)
            .map(|i| key(i, MAX))
            .find(|k| r.cluster.is_coordinator(k))
            .expect("a chunk of the replica");
        let object_size = (at_max.index + 4) * MAX;
        let bytes = client.fill(&peer, &at_max, object_size).await;
        let bytes = bytes.unwrap_or_else(|e| panic!("{}: fill at the maximum: {e}", D::NAME));
        assert_chunk(&bytes, &at_max, object_size);
        let served_failed = r.cluster.stats().served_failed;
        let above = key(at_max.index, MAX + 1);
        let e = client
            .fill(&peer, &above, (above.index + 4) * (MAX + 1))
            .await
            .expect_err("a chunk above the maximum is not asked for");
        assert!(
            matches!(
                e,
                FillError::Descriptor(DescriptorError::Chunk(ChunkError::ChunkSizeTooLarge {
                    chunk_size,
                    max: MAX
                })) if chunk_size == MAX + 1
            ),
            "{}: {e:?}",
            D::NAME
        );
        assert!(e.to_string().contains("chunk_size"), "{}: {e}", D::NAME);
        assert_eq!(
            r.cluster.stats().served_failed,
            served_failed,
            "{}",
            D::NAME
        );
        client.close(Duration::from_secs(2)).await.unwrap();
        r.stop().await;

        // The default maximum (64 MiB): the whole 2^64-1 range as one chunk is refused.
        // Chunk 0, whoever coordinates it: the size is checked before the coordinator.
        let r = lone_replica::<D>(static_config()).await;
        let target = format!(
            "/internal/fill?{}",
            encode_query(&key(0, u64::MAX), u64::MAX)
        );
        let response = raw_client::exchange(r.addr, &raw_client::request("GET", &target, ONE))
            .unwrap_or_else(|e| panic!("{}: {e}", D::NAME));
        let (status, body) = (response.status, response.text());
        assert_eq!(status, 400, "{}: chunk_size 2^64-1: {body}", D::NAME);
        assert!(body.contains("chunk_size"), "{}: {body}", D::NAME);
        r.stop().await;
    }

    fn tls_config(tls: TlsSettings) -> ClusterConfig {
        ClusterConfig {
            internal_tls: tls,
            ..static_config()
        }
    }

    pub(super) async fn client_name_is_checked<D: Driver>() {
        const CLIENT: &str = "fill-client.orca.test";
        let fixture = MtlsFixture::new(D::NAME);
        let pki = &fixture.pki;
        let dir = fixture.dir.path();
        // Clients of the cluster's CA that verify the listener by IP, like every member.
        let client_of = |file: &str, names: &[&str]| {
            let identity = pki.ca.leaf(names).expect("client certificate");
            identity
                .write(dir, file, pki.ca.pem(), "")
                .expect("client files")
        };
        let named = client_of("named", &[CLIENT]);
        let other = client_of("other", &["someone-else.orca.test", "127.0.0.1"]);

        for (client_name, accepted, refused) in [
            (CLIENT, &named, &other),
            // An IP client name matches an IP subject alternative name only.
            ("127.0.0.1", &other, &named),
        ] {
            let listener = bind_local::<D>(1).await.pop().unwrap();
            let addr = D::listener_addr(&listener);
            let source = StaticPeerSource::new([addr]);
            let setup = Setup::static_source(&source).with_self_port(addr.port());
            let server_tls = TlsSettings {
                client_name: client_name.into(),
                ..fixture.member.clone()
            };
            let server =
                replica::<D>(listener, tls_config(server_tls), setup, SyntheticOrigin).await;
            let peer = peer_at(addr);
            let k = key(0, 1024);
            let object_size = 4 * 1024;

            let good = client_cluster::<D>(tls_config(accepted.clone()), false, &[]).await;
            let bytes = good.fill(&peer, &k, object_size).await;
            let bytes =
                bytes.unwrap_or_else(|e| panic!("{}: client_name {client_name}: {e}", D::NAME));
            assert_chunk(&bytes, &k, object_size);

            let bad = client_cluster::<D>(tls_config(refused.clone()), false, &[]).await;
            let err = bad
                .fill(&peer, &k, object_size)
                .await
                .expect_err("a client certificate for another name is refused");
            // The listener refuses the certificate with a TLS alert. Under TLS 1.3 the alert
            // arrives after the client's side of the handshake is done, so, as for a client
            // certificate of another CA, the drivers report it as `Tls` or as the `Http` error
            // of the request the alert broke (never a response).
            assert!(
                matches!(err, FillError::Tls(_) | FillError::Http(_)),
                "{}: client_name {client_name}: {err:?}",
                D::NAME
            );
            assert_eq!(server.cluster.stats().served_ok, 1, "{}", D::NAME);
            good.close(Duration::from_secs(2)).await.unwrap();
            bad.close(Duration::from_secs(2)).await.unwrap();
            server.stop().await;
        }
    }

    pub(super) async fn dns_answers_yield_only_real_peers<D: Driver>() {
        const NAME: &str = "orca-peers.default.svc.cluster.local";
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let me = ip("10.0.0.1");
        let real = [me, ip("10.0.0.2"), ip("fd00::2")];
        let dns = TestDnsServer::start().unwrap();
        let mut answer = real.to_vec();
        answer.extend(
            ["0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1"]
                .iter()
                .map(|t| ip(t)),
        );
        dns.set_records(NAME, &answer);
        dns.set_stray_records(
            NAME,
            "attacker.example.com",
            &[ip("10.6.6.6"), ip("fd66::6")],
        );
        let config = ClusterConfig {
            service: NAME.into(),
            self_pod_ip: vec![me],
            membership_refresh: Duration::from_millis(150),
            lookup_timeout: Duration::from_millis(400),
            max_stale_refreshes: 2,
            ..ClusterConfig::default()
        };
        let cluster = D::start(config, Setup::dns(dns.addr()))
            .await
            .unwrap_or_else(|e| panic!("{}: start: {e}", D::NAME));
        let peers = |cluster: &D::Cluster| -> Vec<IpAddr> {
            cluster.peers().peers().iter().map(|p| p.ip).collect()
        };
        assert_eq!(peers(&cluster), real, "{}: only the real peers", D::NAME);
        assert_eq!(cluster.stats().lookup_failures, 0, "{}", D::NAME);

        // Nothing but such addresses and strays: a NoRecords failure, the last set kept.
        dns.set_records(NAME, &[ip("0.0.0.0"), ip("::")]);
        let failed = eventually::<D>(Duration::from_secs(5), || {
            cluster.stats().lookup_failures > 0
        })
        .await;
        assert!(failed, "{}: the answer counts as a failure", D::NAME);
        assert_eq!(peers(&cluster), real, "{}: last good set kept", D::NAME);
        cluster.close(Duration::from_secs(2)).await.unwrap();
    }
}
