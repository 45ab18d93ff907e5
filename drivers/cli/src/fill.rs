//! `orca-cluster fill`: fetch one chunk through its coordinator and verify it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use orca_cluster_tokio::{FillClient, Options, Peer, SyntheticOrigin};
use tokio::io::AsyncWriteExt;

use crate::args::{DiscoveryArgs, KeyArgs, TlsArgs, config, duration, protocol};
use crate::output::{addr, mb_per_s};
use crate::peers::discovery_cluster;

/// Flags of `orca-cluster fill`.
#[derive(Args, Debug)]
pub(crate) struct FillArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Size of the whole object in bytes.
    #[arg(long)]
    object_size: u64,
    /// Fill from this peer instead of the coordinator found by discovery.
    #[arg(long)]
    peer: Option<SocketAddr>,
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// Port of peers whose DNS records carry no port (the fill listener port of every pod).
    #[arg(long, default_value_t = 8444)]
    listen_port: u16,
    /// Speak HTTP/1.1 instead of HTTP/2 (plain mode; with TLS, ALPN offers only http/1.1).
    #[arg(long)]
    http1: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// Write the chunk to this file.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Check the bytes against the synthetic origin (for nodes run with --origin synthetic).
    #[arg(long)]
    verify_synthetic: bool,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = duration)]
    timeout: Duration,
}

/// Runs the command.
pub(crate) async fn run(a: FillArgs) -> Result<(), String> {
    let key = a.key.key()?;
    let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), a.listen_port);
    let (client, cluster, target) = match a.peer {
        Some(peer) => {
            // An explicit peer needs no discovery and no self IP: a client-only handle.
            let cfg = config(
                "static",
                &[],
                listen,
                Duration::from_secs(3600),
                a.discovery.lookup_timeout,
                &a.tls,
            );
            let client =
                FillClient::new(&cfg, &Options::default().with_protocol(protocol(a.http1)))
                    .map_err(|e| e.to_string())?;
            let target = Peer {
                ip: peer.ip(),
                port: peer.port(),
                is_self: false,
            };
            (client, None, target)
        }
        None => {
            let (cluster, _) = discovery_cluster(
                &a.discovery,
                listen,
                Duration::from_secs(3600),
                &a.tls,
                a.http1,
            )
            .await?;
            let target = cluster.coordinator(&key);
            if target.is_self {
                let _ = cluster.close(Duration::from_secs(1)).await;
                return Err(format!(
                    "this replica ({}) coordinates chunk {}: it fills from the origin, not from a peer (use --peer to force one)",
                    addr(&target),
                    key.index
                ));
            }
            (cluster.client().clone(), Some(cluster), target)
        }
    };
    // What is dialed: a peer's port 0 means the listen port of every pod.
    let dialed = target.socket_addr(a.listen_port);
    let started = Instant::now();
    let result = tokio::time::timeout(
        a.timeout,
        fetch(
            &client,
            &target,
            &key,
            a.object_size,
            a.output.as_ref(),
            a.verify_synthetic,
        ),
    )
    .await;
    client.close();
    if let Some(cluster) = cluster {
        let _ = cluster.close(Duration::from_secs(1)).await;
    }
    let bytes = match result {
        Err(_) => {
            return Err(format!(
                "fill from {}: timed out after {:?}",
                addr(&target),
                a.timeout
            ));
        }
        Ok(Err(e)) => return Err(format!("fill from {}: {e}", addr(&target))),
        Ok(Ok(b)) => b,
    };
    let elapsed = started.elapsed();
    if a.verify_synthetic {
        let expected = SyntheticOrigin::chunk_bytes(&key, a.object_size);
        if bytes.1 != expected {
            return Err(format!(
                "fill from {}: bytes differ from the synthetic origin",
                addr(&target)
            ));
        }
    }
    println!(
        "filled chunk {} ({} bytes) from {} in {:.1} ms ({:.0} MB/s){}",
        key.index,
        bytes.0,
        dialed,
        elapsed.as_secs_f64() * 1e3,
        mb_per_s(bytes.0, elapsed),
        if a.verify_synthetic {
            ", bytes verified"
        } else {
            ""
        }
    );
    Ok(())
}

/// Streams the body to `output` (if any); returns the byte count and, when `keep` (to verify
/// them), the bytes — otherwise nothing is copied.
async fn fetch(
    client: &FillClient,
    peer: &Peer,
    key: &orca_cluster_tokio::ChunkKey,
    object_size: u64,
    output: Option<&PathBuf>,
    keep: bool,
) -> Result<(u64, Vec<u8>), String> {
    let mut body = client
        .fill(peer, key, object_size)
        .await
        .map_err(|e| e.to_string())?;
    let mut file = match output {
        Some(path) => Some(
            tokio::fs::File::create(path)
                .await
                .map_err(|e| format!("-o {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let mut kept = Vec::with_capacity(if keep {
        usize::try_from(body.expected_len()).unwrap_or(0)
    } else {
        0
    });
    let mut n = 0u64;
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(|e| e.to_string())?;
        n += frame.len() as u64;
        if let Some(f) = file.as_mut() {
            f.write_all(&frame)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        if keep {
            kept.extend_from_slice(&frame);
        }
    }
    if let Some(mut f) = file {
        f.flush().await.map_err(|e| format!("write: {e}"))?;
    }
    Ok((n, kept))
}
