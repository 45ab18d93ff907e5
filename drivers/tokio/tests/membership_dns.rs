//! DNS through a hickory resolver configuration given by the embedder
//! (`Options::with_resolver_config`): a short service name found through the second search
//! domain with ndots 5. The other membership rules are in the conformance suite, for both
//! drivers; this case stays here because building a hickory `ResolverConfig` needs
//! hickory-resolver, which the conformance crate does not depend on.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::Name;
use orca_cluster_testdns::TestDnsServer;
use orca_cluster_tokio::{Cluster, ClusterConfig, Options};

#[tokio::test]
async fn search_domains_and_ndots_apply() {
    let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4));
    let dns = TestDnsServer::start().unwrap();
    dns.set_records("orca-peers.default.svc.test", &[me, other]);
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
        self_pod_ip: vec![me],
        membership_refresh: Duration::from_millis(150),
        lookup_timeout: Duration::from_millis(400),
        ..ClusterConfig::default()
    };
    let cluster = Cluster::start(
        config,
        Options::default().with_resolver_config(resolver, opts),
    )
    .await
    .unwrap();
    let ips: Vec<IpAddr> = cluster.peers().peers().iter().map(|p| p.ip).collect();
    assert_eq!(
        ips,
        vec![other, me],
        "found through the second search domain"
    );
    cluster.close(Duration::from_secs(1)).await.unwrap();
}
