//! Membership through the real hickory resolver (on smol) against the in-process test DNS
//! server: initial set, changes, failures keeping the stale set then `[self]`, 1000 records via
//! TCP fallback, no answer cache, resolv.conf search domains.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use orca_cluster_smol::{Cluster, ClusterConfig, Options, Peer, StartError};
use orca_cluster_testdns::{Mode, TestDnsServer};
use support::*;

const NAME: &str = "orca-peers.default.svc.cluster.local";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn dns_config(refresh_ms: u64, lookup_ms: u64, max_stale: u32) -> ClusterConfig {
    ClusterConfig {
        service: NAME.into(),
        self_pod_ip: vec![ip("10.1.0.1")],
        membership_refresh: Duration::from_millis(refresh_ms),
        lookup_timeout: Duration::from_millis(lookup_ms),
        max_stale_refreshes: max_stale,
        ..ClusterConfig::default()
    }
}

fn ips(peers: &[Peer]) -> Vec<IpAddr> {
    peers.iter().map(|p| p.ip).collect()
}

async fn start(dns: &TestDnsServer, config: ClusterConfig) -> Cluster {
    Cluster::start(config, Options::default().with_nameserver(dns.addr()))
        .await
        .expect("start")
}

#[test]
fn initial_set_then_additions_and_removals() {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(NAME, &[ip("10.1.0.2"), ip("10.1.0.1"), ip("fd00::3")]);
    run(30, async {
        let cluster = start(&dns, dns_config(100, 1000, 5)).await;
        assert!(cluster.has_initial_snapshot());
        let peers = cluster.peers();
        assert_eq!(
            ips(peers.peers()),
            vec![ip("10.1.0.1"), ip("10.1.0.2"), ip("fd00::3")],
            "A and AAAA, sorted"
        );
        assert!(peers.peers()[0].is_self);
        assert_eq!(peers.peers()[0].port, 0);

        let mut changes = cluster.subscribe();
        dns.set_records(
            NAME,
            &[
                ip("10.1.0.1"),
                ip("10.1.0.2"),
                ip("fd00::3"),
                ip("10.1.0.4"),
            ],
        );
        let next = changes.changed().await.unwrap();
        assert_eq!(next.len(), 4);
        dns.set_records(NAME, &[ip("10.1.0.2")]);
        let next = changes.changed().await.unwrap();
        assert_eq!(
            ips(next.peers()),
            vec![ip("10.1.0.1"), ip("10.1.0.2")],
            "self is always in"
        );
        cluster.close(Duration::from_secs(2)).await.unwrap();
    });
}

fn failure_keeps_stale_then_self(mode: Mode, lookup_ms: u64) {
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(NAME, &[ip("10.1.0.1"), ip("10.1.0.2"), ip("10.1.0.3")]);
    run(30, async {
        let cluster = start(&dns, dns_config(100, lookup_ms, 2)).await;
        assert_eq!(cluster.peers().len(), 3);
        let failures = cluster.stats().lookup_failures;
        let mut changes = cluster.subscribe();
        dns.set_mode(mode);
        assert!(eventually(10, || cluster.stats().lookup_failures > failures).await);
        assert_eq!(cluster.peers().len(), 3, "the stale set is kept ({mode:?})");
        let next = changes.changed().await.unwrap();
        assert_eq!(
            ips(next.peers()),
            vec![ip("10.1.0.1")],
            "then [self] ({mode:?})"
        );
        assert!(cluster.stats().lookup_failures >= failures + 3);
        // Recovery.
        dns.set_mode(Mode::Normal);
        let next = changes.changed().await.unwrap();
        assert_eq!(next.len(), 3);
        cluster.close(Duration::from_secs(2)).await.unwrap();
    });
}

#[test]
fn nxdomain_keeps_stale_then_self() {
    failure_keeps_stale_then_self(Mode::NxDomain, 1000);
}

#[test]
fn servfail_keeps_stale_then_self() {
    failure_keeps_stale_then_self(Mode::ServFail, 1000);
}

#[test]
fn refused_keeps_stale_then_self() {
    failure_keeps_stale_then_self(Mode::Refused, 1000);
}

#[test]
fn timeout_keeps_stale_then_self() {
    failure_keeps_stale_then_self(Mode::NoReply, 200);
}

#[test]
fn bootstrap_failure_starts_with_self() {
    let dns = TestDnsServer::start().unwrap();
    dns.set_mode(Mode::NoReply);
    run(30, async {
        let started = std::time::Instant::now();
        let cluster = start(&dns, dns_config(100, 300, 2)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "start is bounded by the lookup timeout"
        );
        assert!(cluster.has_initial_snapshot());
        assert_eq!(ips(cluster.peers().peers()), vec![ip("10.1.0.1")]);
        cluster.close(Duration::from_secs(2)).await.unwrap();
    });
    dns.set_mode(Mode::NxDomain);
    run(30, async {
        let cluster = start(&dns, dns_config(100, 1000, 2)).await;
        assert!(cluster.has_initial_snapshot());
        assert_eq!(cluster.peers().len(), 1);
    });
}

#[test]
fn thousand_records_use_tcp_fallback() {
    let dns = TestDnsServer::start().unwrap();
    let records: Vec<IpAddr> = (0..1000u32)
        .map(|i| IpAddr::from([10, 2, (i / 250) as u8, (i % 250) as u8 + 1]))
        .collect();
    dns.set_records(NAME, &records);
    run(30, async {
        let cluster = start(&dns, dns_config(200, 2000, 2)).await;
        assert_eq!(cluster.peers().len(), 1001, "1000 records plus self");
        assert!(
            dns.tcp_query_count() > 0,
            "the truncated UDP answer was retried over TCP"
        );
        cluster.close(Duration::from_secs(2)).await.unwrap();
    });
}

#[test]
fn answers_are_not_cached() {
    let dns = TestDnsServer::start().unwrap();
    dns.set_ttl(3600);
    dns.set_records(NAME, &[ip("10.1.0.1"), ip("10.1.0.2")]);
    run(30, async {
        let cluster = start(&dns, dns_config(50, 1000, 2)).await;
        let before = dns.query_count();
        assert!(
            eventually(5, || dns.query_count() >= before + 6).await,
            "every refresh asks the server"
        );
        let mut changes = cluster.subscribe();
        dns.set_records(NAME, &[ip("10.1.0.1"), ip("10.1.0.3")]);
        let next = changes.changed().await.unwrap();
        assert_eq!(
            ips(next.peers()),
            vec![ip("10.1.0.1"), ip("10.1.0.3")],
            "despite a 1 h TTL"
        );
        cluster.close(Duration::from_secs(2)).await.unwrap();
    });
}

#[test]
fn resolv_conf_search_domains_and_ndots() {
    use hickory_resolver::system_conf::parse_resolv_conf;
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(NAME, &[ip("10.1.0.1"), ip("10.1.0.7")]);
    let text = "nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:1\n";
    let (mut resolver, opts) = parse_resolv_conf(text).unwrap();
    let (domain, search, mut servers) = resolver.clone().into_parts();
    for s in &mut servers {
        for c in &mut s.connections {
            c.port = dns.addr().port();
        }
    }
    resolver = hickory_resolver::config::ResolverConfig::from_parts(domain, search, servers);
    run(30, async {
        let mut config = dns_config(100, 1000, 2);
        config.service = "orca-peers".into();
        let cluster = Cluster::start(
            config,
            Options::default().with_resolver_config(resolver, opts),
        )
        .await
        .unwrap();
        assert_eq!(
            ips(cluster.peers().peers()),
            vec![ip("10.1.0.1"), ip("10.1.0.7")]
        );
        cluster.close(Duration::from_secs(2)).await.unwrap();
    });
}

#[test]
fn bad_config_is_an_error() {
    run(10, async {
        let mut config = dns_config(100, 1000, 2);
        config.service = String::new();
        let dns_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let result = Cluster::start(config, Options::default().with_nameserver(dns_addr)).await;
        assert!(matches!(result, Err(StartError::Config(_))));
        let mut config = dns_config(100, 1000, 2);
        config.membership_refresh = Duration::ZERO;
        let result = Cluster::start(config, Options::default().with_nameserver(dns_addr)).await;
        assert!(matches!(result, Err(StartError::Config(_))));
    });
}
