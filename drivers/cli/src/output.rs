//! Text and JSON output helpers.

use orca_cluster_tokio::{Peer, Snapshot};
use serde_json::{Value, json};

/// `{"ip": .., "port": .., "self": ..}`.
pub(crate) fn peer_json(p: &Peer) -> Value {
    json!({"ip": p.ip.to_string(), "port": p.port, "self": p.is_self})
}

/// `{"generation": N, "peers": [...]}`.
pub(crate) fn snapshot_json(s: &Snapshot) -> Value {
    json!({
        "generation": s.generation(),
        "peers": s.peers().iter().map(peer_json).collect::<Vec<_>>(),
    })
}

/// A peer as `ip:port` (port shown even when 0).
pub(crate) fn addr(p: &Peer) -> String {
    match p.ip {
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", p.port),
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", p.port),
    }
}

/// Megabytes (10^6 bytes) per second.
pub(crate) fn mb_per_s(bytes: u64, elapsed: std::time::Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    bytes as f64 / 1e6 / secs
}
