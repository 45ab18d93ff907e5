//! DNS through a hickory resolver configuration given by the embedder
//! (`Options::with_resolver_config`), here parsed from resolv.conf text: a short service name
//! found through the search domains with ndots 5. The other membership rules are in the
//! conformance suite, for both drivers; this case stays here because building a hickory
//! `ResolverConfig` needs hickory-resolver, which the conformance crate does not depend on.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::ResolverConfig;
use hickory_resolver::system_conf::parse_resolv_conf;
use orca_cluster_smol::{Cluster, ClusterConfig, Options};
use orca_cluster_testdns::TestDnsServer;
use support::{config, run};

#[test]
fn resolv_conf_search_domains_and_ndots() {
    let ip = |text: &str| text.parse::<IpAddr>().unwrap();
    let dns = TestDnsServer::start().unwrap();
    dns.set_records(
        "orca-peers.default.svc.cluster.local",
        &[ip("127.0.0.1"), ip("10.1.0.7")],
    );
    let text = format!(
        "nameserver {}\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5 timeout:1\n",
        dns.addr().ip()
    );
    let (resolver, opts) = parse_resolv_conf(text).unwrap();
    let (domain, search, mut servers) = resolver.into_parts();
    for s in &mut servers {
        for c in &mut s.connections {
            c.port = dns.addr().port();
        }
    }
    let resolver = ResolverConfig::from_parts(domain, search, servers);
    run(30, async {
        let config = ClusterConfig {
            service: "orca-peers".into(),
            ..config()
        };
        let cluster = Cluster::start(
            config,
            Options::default().with_resolver_config(resolver, opts),
        )
        .await
        .unwrap();
        let ips: Vec<IpAddr> = cluster.peers().peers().iter().map(|p| p.ip).collect();
        assert_eq!(ips, vec![ip("10.1.0.7"), ip("127.0.0.1")]);
        cluster.close(Duration::from_secs(2)).await.unwrap();
    });
}
