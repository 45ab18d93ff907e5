//! `orca-cluster coordinator`: who coordinates a chunk, and the ranked fallback list.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Args;
use orca_cluster_core::rendezvous::{self, Scoring};
use orca_cluster_core::{Peer, PeerAddr, SelfIdentity};
use serde_json::json;

use crate::args::{DiscoveryArgs, KeyArgs, TlsArgs};
use crate::output::addr;
use crate::peers::{discovery_cluster, self_ips};

/// Flags of `orca-cluster coordinator`.
#[derive(Args, Debug)]
pub(crate) struct CoordinatorArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// Scoring function: xxh3 (default) or go-compat (bit-identical to the Go implementation).
    #[arg(long, default_value = "xxh3", value_parser = parse_scoring)]
    scoring: Scoring,
    /// Print JSON: {"coordinator": {"ip", "port"}, "ranked": [{"ip", "port", "score"}]}.
    #[arg(long)]
    json: bool,
}

fn parse_scoring(s: &str) -> Result<Scoring, String> {
    Scoring::from_name(s).ok_or_else(|| format!("{s:?}: expected xxh3 or go-compat"))
}

/// Runs the command.
pub(crate) async fn run(a: CoordinatorArgs) -> Result<(), String> {
    let key = a.key.key()?;
    a.discovery.require_source()?;
    let (ips, known) = self_ips(&a.discovery);
    // A static list keeps the caller's order (Go's order decides ties in go-compat mode).
    let peers: Vec<Peer> = if !a.discovery.peers.is_empty() {
        let me = SelfIdentity::new(ips, 0).ok_or("--self-ip: empty")?;
        a.discovery
            .static_peers()?
            .into_iter()
            .map(|s| {
                let mut p = me.stamp(PeerAddr::from(s));
                p.is_self &= known;
                p
            })
            .collect()
    } else {
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8444);
        let (cluster, known) = discovery_cluster(
            &a.discovery,
            listen,
            Duration::from_secs(3600),
            &TlsArgs::default(),
            false,
        )
        .await?;
        let snapshot = cluster.peers();
        let _ = cluster.close(Duration::from_secs(1)).await;
        snapshot
            .peers()
            .iter()
            .filter(|p| known || !p.is_self)
            .copied()
            .collect()
    };
    let Some(winner) = rendezvous::coordinator_index(&peers, &key, a.scoring) else {
        return Err("no peers".into());
    };
    let coordinator = peers[winner];
    let ranked = rendezvous::ranked(&peers, &key, a.scoring);
    if a.json {
        let v = json!({
            "coordinator": {"ip": coordinator.ip.to_string(), "port": coordinator.port},
            "ranked": ranked.iter().map(|(p, s)| json!({
                "ip": p.ip.to_string(), "port": p.port, "score": s,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "coordinator of {}/{}/{} chunk {} ({} scoring): {}{}",
        key.origin_id,
        key.bucket,
        key.object_key,
        key.index,
        a.scoring.name(),
        addr(&coordinator),
        if coordinator.is_self { " (self)" } else { "" }
    );
    println!("{:>4}  {:<42} {:>20}", "rank", "peer", "score");
    for (i, (p, s)) in ranked.iter().enumerate() {
        println!(
            "{:>4}  {:<42} {:>20}{}",
            i + 1,
            addr(p),
            s,
            if p.is_self { "  self" } else { "" }
        );
    }
    Ok(())
}
