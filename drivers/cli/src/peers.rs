//! `orca-cluster peers`: the peer snapshot as a replica with this IP would see it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use orca_cluster_tokio::{Cluster, Options, Snapshot, StaticPeerSource};

use crate::args::{DiscoveryArgs, TlsArgs, config, duration, protocol};
use crate::output::{addr, snapshot_json};

/// Flags of `orca-cluster peers`.
#[derive(Args, Debug)]
pub(crate) struct PeersArgs {
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// Keep running and print every change of the peer set.
    #[arg(long)]
    watch: bool,
    /// With --watch: stop after this many changes (default: until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// With --watch: refresh interval.
    #[arg(long, default_value = "5s", value_parser = duration)]
    refresh: Duration,
    /// Print JSON: {"generation": N, "peers": [{"ip", "port", "self"}]} (one line per snapshot).
    #[arg(long)]
    json: bool,
}

/// The port of the synthetic self entry added to a static list with ports when no self IP is
/// given (`0.0.0.0:1`, hidden from the output, never dialed).
const SYNTHETIC_SELF_PORT: u16 = 1;

/// The self IPs to stamp, or the unspecified address when none is known (then no peer is self
/// and the synthetic self entry is hidden from the output).
pub(crate) fn self_ips(d: &DiscoveryArgs) -> (Vec<IpAddr>, bool) {
    if d.self_ip.is_empty() {
        (vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)], false)
    } else {
        (d.self_ip.clone(), true)
    }
}

/// Starts a client-only cluster from discovery flags (DNS or a static list).
pub(crate) async fn discovery_cluster(
    d: &DiscoveryArgs,
    listen: SocketAddr,
    refresh: Duration,
    tls: &TlsArgs,
    http1: bool,
) -> Result<(Cluster, bool), String> {
    d.require_source()?;
    let (ips, known) = self_ips(d);
    let service = d.service.clone().unwrap_or_else(|| "static".into());
    let mut cfg = config(&service, &ips, listen, refresh, d.lookup_timeout, tls);
    cfg.ip_family = d.ip_family;
    let mut options = Options::default()
        .with_protocol(protocol(http1))
        .with_self_port(d.self_port);
    if !d.peers.is_empty() {
        let mut peers = d.static_peers()?;
        if !known && peers.iter().any(|p| p.port() != 0) {
            // A list with ports must contain self: this client-only view adds its synthetic,
            // hidden self entry (never dialed).
            let me = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SYNTHETIC_SELF_PORT);
            peers.push(me);
            options = options.with_self_port(SYNTHETIC_SELF_PORT);
        }
        options = options.with_peer_source(StaticPeerSource::new(peers));
    } else if let Some(ns) = d.nameserver {
        options = options.with_nameserver(ns);
    }
    let cluster = Cluster::start(cfg, options)
        .await
        .map_err(|e| e.to_string())?;
    Ok((cluster, known))
}

fn print(s: &Snapshot, self_known: bool, json: bool) {
    let visible: Vec<_> = s
        .peers()
        .iter()
        .filter(|p| self_known || !p.is_self)
        .collect();
    if json {
        let mut v = snapshot_json(s);
        if !self_known {
            v["peers"] = serde_json::Value::Array(
                visible
                    .iter()
                    .map(|p| crate::output::peer_json(p))
                    .collect(),
            );
        }
        println!("{v}");
        return;
    }
    println!("generation {} — {} peer(s)", s.generation(), visible.len());
    for p in visible {
        println!("  {:<42} {}", addr(p), if p.is_self { "self" } else { "" });
    }
}

/// Runs the command.
pub(crate) async fn run(a: PeersArgs) -> Result<(), String> {
    let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8444);
    let (cluster, known) =
        discovery_cluster(&a.discovery, listen, a.refresh, &TlsArgs::default(), false).await?;
    let snapshot = cluster.peers();
    if !known && !a.json {
        println!("(no --self-ip or POD_IP: no peer is marked self)");
    }
    print(&snapshot, known, a.json);
    if a.watch {
        let mut sub = cluster.subscribe();
        let mut seen = 0u64;
        while a.count.is_none_or(|c| seen < c) {
            let next = tokio::select! {
                s = sub.changed() => s,
                _ = tokio::signal::ctrl_c() => None,
            };
            let Some(s) = next else { break };
            print(&s, known, a.json);
            seen += 1;
        }
    }
    let _ = cluster.close(Duration::from_secs(2)).await;
    Ok(())
}
