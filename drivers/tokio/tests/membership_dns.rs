//! The membership rules of DESIGN 3.4 through the real resolver (hickory on tokio) against the
//! test DNS server: initial snapshot, changes, every failure kind keeping the stale set up to
//! `max_stale_refreshes` then `[self]`, bootstrap failure, 1000 records over TCP fallback, no
//! cache, AAAA, search domains with ndots.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::Name;
use orca_cluster_testdns::{Mode, TestDnsServer};
use orca_cluster_tokio::core::{IpFamily, LookupAnswer, LookupFailure, PeerAddr};
use orca_cluster_tokio::{Cluster, ClusterConfig, Options, Snapshot};
use support::init_tracing;

const SERVICE: &str = "orca-peers.default.svc.cluster.local";
const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const REFRESH: Duration = Duration::from_millis(150);
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(400);

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn dns_config(max_stale: u32) -> ClusterConfig {
    ClusterConfig {
        service: SERVICE.into(),
        self_pod_ip: vec![ME],
        membership_refresh: REFRESH,
        lookup_timeout: LOOKUP_TIMEOUT,
        max_stale_refreshes: max_stale,
        ..ClusterConfig::default()
    }
}

async fn start(dns: &TestDnsServer, config: ClusterConfig) -> Cluster {
    Cluster::start(config, Options::default().with_nameserver(dns.addr()))
        .await
        .unwrap()
}

fn ips(snapshot: &Snapshot) -> Vec<IpAddr> {
    snapshot.peers().iter().map(|p| p.ip).collect()
}

async fn next_change(cluster: &Cluster, sub: &mut orca_cluster_tokio::Subscription) -> Snapshot {
    let _ = cluster;
    tokio::time::timeout(Duration::from_secs(5), sub.changed())
        .await
        .expect("a snapshot change in time")
        .expect("cluster open")
}

#[tokio::test]
async fn every_dns_failure_kind_reaches_the_core_as_itself() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(SERVICE, &[v4(1)]);
    let source = Options::default()
        .with_nameserver(dns.addr())
        .peer_source(&dns_config(5))
        .unwrap();
    assert_eq!(
        source.lookup(SERVICE).await,
        LookupAnswer::Records(vec![PeerAddr::from_ip(v4(1))])
    );
    assert_eq!(
        source.lookup("unknown.example").await,
        LookupAnswer::Failed(LookupFailure::NxDomain),
        "an unknown name"
    );
    for (mode, expected) in [
        (Mode::NxDomain, LookupFailure::NxDomain),
        (Mode::ServFail, LookupFailure::ServFail),
        (Mode::Refused, LookupFailure::Refused),
        (Mode::Empty, LookupFailure::NoRecords),
        (Mode::NoReply, LookupFailure::Timeout),
        (Mode::Delay(Duration::from_secs(2)), LookupFailure::Timeout),
    ] {
        dns.set_mode(mode);
        let started = Instant::now();
        let answer = source.lookup(SERVICE).await;
        assert_eq!(answer, LookupAnswer::Failed(expected), "mode {mode:?}");
        assert!(
            started.elapsed() < LOOKUP_TIMEOUT * 3,
            "mode {mode:?} answered within the lookup timeout (took {:?})",
            started.elapsed()
        );
    }
    dns.set_mode(Mode::Normal);
    assert!(matches!(
        source.lookup(SERVICE).await,
        LookupAnswer::Records(_)
    ));
}

#[tokio::test]
async fn initial_snapshot_then_additions_and_removals() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(SERVICE, &[ME, v4(2)]);
    let cluster = start(&dns, dns_config(5)).await;
    assert!(cluster.has_initial_snapshot());
    let first = cluster.peers();
    assert_eq!(ips(&first), vec![v4(2), ME]);
    assert!(first.peers().iter().any(|p| p.ip == ME && p.is_self));

    let mut sub = cluster.subscribe();
    dns.set_records(SERVICE, &[v4(3), ME, v4(2)]);
    let added = next_change(&cluster, &mut sub).await;
    assert_eq!(ips(&added), vec![v4(2), v4(3), ME]);
    assert!(added.generation() > first.generation());

    dns.set_records(SERVICE, &[ME, v4(3)]);
    let removed = next_change(&cluster, &mut sub).await;
    assert_eq!(ips(&removed), vec![v4(3), ME]);
    assert!(cluster.stats().lookups >= 3);
    assert_eq!(cluster.stats().lookup_failures, 0);
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

/// Rule 6: failures keep the last good set while the streak is at most `max_stale_refreshes`,
/// then publish `[self]`; recovery publishes the set again.
async fn stale_then_self(mode: Mode) {
    init_tracing();
    const MAX_STALE: u32 = 2;
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(SERVICE, &[ME, v4(2), v4(3)]);
    let cluster = start(&dns, dns_config(MAX_STALE)).await;
    assert_eq!(cluster.peers().len(), 3);
    let mut sub = cluster.subscribe();
    assert_eq!(cluster.stats().lookup_failures, 0);

    dns.set_mode(mode);
    let fallen = next_change(&cluster, &mut sub).await;
    // Read at once: the next failure is at least one refresh interval away.
    let failures = cluster.stats().lookup_failures;
    assert_eq!(
        ips(&fallen),
        vec![ME],
        "mode {mode:?}: [self] after the ceiling"
    );
    assert_eq!(
        failures,
        u64::from(MAX_STALE) + 1,
        "mode {mode:?}: the stale set was kept for {MAX_STALE} failures, dropped at the next"
    );

    dns.set_mode(Mode::Normal);
    let back = next_change(&cluster, &mut sub).await;
    assert_eq!(back.len(), 3, "mode {mode:?}: recovery");
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn nxdomain_keeps_stale_then_self() {
    stale_then_self(Mode::NxDomain).await;
}

#[tokio::test]
async fn servfail_keeps_stale_then_self() {
    stale_then_self(Mode::ServFail).await;
}

#[tokio::test]
async fn refused_keeps_stale_then_self() {
    stale_then_self(Mode::Refused).await;
}

#[tokio::test]
async fn empty_answer_keeps_stale_then_self() {
    stale_then_self(Mode::Empty).await;
}

#[tokio::test]
async fn unanswered_lookups_time_out_keep_stale_then_self() {
    stale_then_self(Mode::NoReply).await;
}

#[tokio::test]
async fn bootstrap_failure_publishes_self_at_once() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    dns.set_mode(Mode::ServFail);
    let started = Instant::now();
    let cluster = start(&dns, dns_config(5)).await;
    assert!(
        started.elapsed() < LOOKUP_TIMEOUT,
        "start returns after the first (failed) answer"
    );
    assert!(cluster.has_initial_snapshot());
    assert_eq!(ips(&cluster.peers()), vec![ME]);
    cluster.close(Duration::from_secs(1)).await.unwrap();

    // A server that never answers: start is bounded by the lookup timeout.
    dns.set_mode(Mode::NoReply);
    let started = Instant::now();
    let cluster = start(&dns, dns_config(5)).await;
    let took = started.elapsed();
    assert!(
        took >= LOOKUP_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < LOOKUP_TIMEOUT + Duration::from_secs(1), "{took:?}");
    assert!(cluster.has_initial_snapshot());
    assert_eq!(ips(&cluster.peers()), vec![ME]);
    // Discovery recovers on a later refresh.
    let mut sub = cluster.subscribe();
    dns.set_records(SERVICE, &[ME, v4(9)]);
    dns.set_mode(Mode::Normal);
    assert_eq!(next_change(&cluster, &mut sub).await.len(), 2);
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn a_service_of_1000_pods_resolves_completely_over_tcp() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    let pods: Vec<IpAddr> = (0..1000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8 + 1)))
        .collect();
    dns.set_records(SERVICE, &pods);
    let cluster = start(&dns, dns_config(5)).await;
    let snapshot = cluster.peers();
    assert_eq!(snapshot.len(), 1001, "1000 pods and self");
    assert!(
        dns.tcp_query_count() > 0,
        "the truncated UDP answer was retried over TCP"
    );
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn no_answer_cache_hides_a_change_despite_a_long_ttl() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    dns.set_ttl(3600);
    dns.set_records(SERVICE, &[ME, v4(2)]);
    let cluster = start(&dns, dns_config(5)).await;
    assert_eq!(cluster.peers().len(), 2);
    let mut sub = cluster.subscribe();
    let changed_at = Instant::now();
    dns.set_records(SERVICE, &[ME, v4(7)]);
    let next = next_change(&cluster, &mut sub).await;
    assert_eq!(ips(&next), vec![v4(7), ME]);
    assert!(
        changed_at.elapsed() < REFRESH * 3,
        "seen at the next refresh"
    );
    let queries = dns.query_count();
    tokio::time::sleep(REFRESH * 3).await;
    assert!(dns.query_count() > queries, "every refresh asks the server");
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn aaaa_records_and_dual_stack_self() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    let me6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let other6: IpAddr = "fd00::2".parse().unwrap();
    dns.set_records(SERVICE, &[me6, other6, v4(2)]);
    let mut config = dns_config(5);
    config.self_pod_ip = vec![ME, me6];
    let cluster = start(&dns, config).await;
    let snapshot = cluster.peers();
    assert_eq!(ips(&snapshot), vec![v4(2), me6, other6]);
    let selves: Vec<IpAddr> = snapshot
        .peers()
        .iter()
        .filter(|p| p.is_self)
        .map(|p| p.ip)
        .collect();
    assert_eq!(selves, vec![me6], "self is stamped on its IPv6 record");
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn ip_family_picks_one_record_type_on_dual_stack() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    let me6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let other6: IpAddr = "fd00::2".parse().unwrap();
    // Two dual-stack pods: self (127.0.0.1 / ::1) and another (10.0.0.2 / fd00::2).
    dns.set_records(SERVICE, &[ME, v4(2), me6, other6]);
    for (family, want) in [
        (IpFamily::Any, vec![ME, v4(2), me6, other6]),
        (IpFamily::Ipv4, vec![v4(2), ME]),
        (IpFamily::Ipv6, vec![me6, other6]),
    ] {
        let mut config = dns_config(5);
        config.self_pod_ip = vec![ME, me6];
        config.ip_family = family;
        let cluster = start(&dns, config).await;
        let mut got = ips(&cluster.peers());
        let mut want = want;
        got.sort();
        want.sort();
        assert_eq!(got, want, "{family:?}");
        let selves = cluster.peers().peers().iter().filter(|p| p.is_self).count();
        let expected_selves = if family == IpFamily::Any { 2 } else { 1 };
        assert_eq!(selves, expected_selves, "{family:?}");
        cluster.close(Duration::from_secs(1)).await.unwrap();
    }
    // Only AAAA records but ipv4 wanted: a failure (no records), so bootstrap falls back to
    // [self].
    dns.set_records(SERVICE, &[me6, other6]);
    let mut config = dns_config(5);
    config.ip_family = IpFamily::Ipv4;
    let cluster = start(&dns, config).await;
    assert!(cluster.has_initial_snapshot());
    assert_eq!(ips(&cluster.peers()), vec![ME]);
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn search_domains_and_ndots_apply() {
    init_tracing();
    let dns = TestDnsServer::start().unwrap();
    dns.set_records("orca-peers.default.svc.test", &[ME, v4(4)]);
    let mut ns = NameServerConfig::udp_and_tcp(dns.addr().ip());
    for c in &mut ns.connections {
        c.port = dns.addr().port();
    }
    let search = vec![
        Name::from_ascii("nothing.test.").unwrap(),
        Name::from_ascii("default.svc.test.").unwrap(),
    ];
    let resolver = ResolverConfig::from_parts(None, search, vec![ns]);
    let mut opts = ResolverOpts::default();
    opts.ndots = 5;
    let config = ClusterConfig {
        service: "orca-peers".into(),
        ..dns_config(5)
    };
    let cluster = Cluster::start(
        config,
        Options::default().with_resolver_config(resolver, opts),
    )
    .await
    .unwrap();
    assert_eq!(
        ips(&cluster.peers()),
        vec![v4(4), ME],
        "found through the second search domain"
    );
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn ipv6_nameserver_works() {
    init_tracing();
    let Ok(dns) = TestDnsServer::start_on(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))) else {
        orca_cluster_test_support::skip_outside_ci("no IPv6 loopback (::1)");
        return;
    };
    dns.set_records(SERVICE, &[ME, v4(5)]);
    let cluster = start(&dns, dns_config(5)).await;
    assert_eq!(cluster.peers().len(), 2);
    cluster.close(Duration::from_secs(1)).await.unwrap();
}
