//! `orca-cluster node`: one real replica.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use orca_cluster_tokio::common::metrics;
use orca_cluster_tokio::{
    Cluster, CoalescingFiller, DirOrigin, FillListener, ListenerSettings, Options,
    StaticPeerSource, SyntheticOrigin,
};

use crate::args::{DiscoveryArgs, TlsArgs, config, duration, protocol};
use crate::limits::{ListenerArgs, connection_budget, raise_open_file_limit};

/// Flags of `orca-cluster node`.
#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    #[command(flatten)]
    discovery: DiscoveryArgs,
    /// Fill listener address; its port is every peer's port when DNS gives only IPs.
    #[arg(long, default_value = "0.0.0.0:8444")]
    listen: SocketAddr,
    /// Admin address serving /healthz, /readyz, /peers, /coordinator?<fill query> and /metrics
    /// ("off" to disable).
    #[arg(long, default_value = "0.0.0.0:8445")]
    admin_listen: String,
    /// Interval between DNS lookups.
    #[arg(long, default_value = "5s", value_parser = duration)]
    refresh: Duration,
    #[command(flatten)]
    tls: TlsArgs,
    /// Where chunk bytes come from: `synthetic` (deterministic bytes derived from the key and
    /// offset) or a directory holding `<bucket>/<key>` files.
    #[arg(long, default_value = "synthetic")]
    origin: String,
    /// Fill client speaks HTTP/1.1 instead of h2c (plain mode).
    #[arg(long)]
    http1: bool,
    #[command(flatten)]
    limits: ListenerArgs,
    /// Call the origin once per fill, even for concurrent fills of one chunk (by default they
    /// share one origin read).
    #[arg(long)]
    no_coalesce: bool,
}

/// Runs the command until SIGINT/SIGTERM.
pub(crate) async fn run(a: NodeArgs) -> Result<(), String> {
    a.discovery.require_source()?;
    if a.discovery.self_ip.is_empty() {
        return Err("--self-ip: required (or set POD_IP)".into());
    }
    // Metrics are served on the admin port: without it, nothing is recorded.
    let metrics = if a.admin_listen == "off" {
        None
    } else {
        Some(install_metrics()?)
    };
    let listener = FillListener::bind(a.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", a.listen))?;
    let service = a
        .discovery
        .service
        .clone()
        .unwrap_or_else(|| "static".into());
    let mut cfg = config(
        &service,
        &a.discovery.self_ip,
        a.listen,
        a.refresh,
        a.discovery.lookup_timeout,
        &a.tls,
    );
    cfg.ip_family = a.discovery.ip_family;
    let mut options = Options::default().with_protocol(protocol(a.http1));
    if !a.discovery.peers.is_empty() {
        let peers = a.discovery.static_peers()?;
        // With explicit ports, replicas may share an IP: self is identified by IP and port.
        if peers.iter().any(|p| p.port() != 0) {
            options = options.with_self_port(listener.local_addr().port());
        }
        options = options.with_peer_source(StaticPeerSource::new(peers));
    } else if let Some(ns) = a.discovery.nameserver {
        options = options.with_nameserver(ns);
    }
    let cluster = Cluster::start(cfg, options)
        .await
        .map_err(|e| e.to_string())?;
    let open_files = raise_open_file_limit();
    let settings: ListenerSettings = a.limits.settings(open_files.map(connection_budget));
    let max_connections = settings.max_connections;
    // Concurrent fills of one chunk read the origin once (on by default).
    let handle = if let Some(root) = origin_root(&a.origin)? {
        if a.no_coalesce {
            listener.serve(&cluster, DirOrigin::new(root), settings)
        } else {
            listener.serve(
                &cluster,
                CoalescingFiller::new(DirOrigin::new(root)),
                settings,
            )
        }
    } else if a.no_coalesce {
        listener.serve(&cluster, SyntheticOrigin, settings)
    } else {
        listener.serve(&cluster, CoalescingFiller::new(SyntheticOrigin), settings)
    };
    tracing::info!(
        listen = %handle.local_addr(),
        peers = cluster.peers().len(),
        max_connections,
        open_files = ?open_files,
        "node serving /internal/fill"
    );
    let admin = if a.admin_listen == "off" {
        None
    } else {
        let addr: SocketAddr = a
            .admin_listen
            .parse()
            .map_err(|_| format!("--admin-listen {}: not IP:PORT or off", a.admin_listen))?;
        Some(
            crate::admin::spawn(
                addr,
                orca_cluster_tokio::Health::new(&cluster).with_listener(&handle),
                metrics,
            )
            .await?,
        )
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    if let Some(admin) = admin {
        admin.abort();
    }
    handle.shutdown(Duration::from_secs(5)).await;
    cluster
        .close(Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())
}

/// How often the recorder folds recorded histogram samples into its buckets: 5 s.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Installs the process's metrics recorder (Prometheus text exposition, rendered by `GET
/// /metrics` on the admin port; fill durations as histograms with the library's suggested
/// buckets) and its periodic upkeep.
fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(metrics::FILL_DURATION.to_string()),
            metrics::FILL_DURATION_BUCKETS,
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("metrics recorder: {e}"))?;
    metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(METRICS_UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The directory of `--origin` (`None`: `synthetic`); an error naming the flag when it is
/// neither `synthetic` nor a directory.
pub(crate) fn origin_root(origin: &str) -> Result<Option<PathBuf>, String> {
    if origin == "synthetic" {
        return Ok(None);
    }
    let root = PathBuf::from(origin);
    if !root.is_dir() {
        return Err(format!(
            "--origin {origin}: not `synthetic` and not a directory"
        ));
    }
    Ok(Some(root))
}

/// SIGINT or SIGTERM (only Ctrl-C where there are no Unix signals).
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
