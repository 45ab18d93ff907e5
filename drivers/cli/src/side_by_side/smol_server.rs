//! `orca-cluster bench serve-smol` (hidden): one smol-driver replica serving fills, the smol
//! rows' server in the side-by-side benchmark. It is what `orca-cluster node` is for the tokio
//! rows: a replica alone in its static peer set (so it coordinates every chunk), serving the
//! synthetic origin or a directory through a `CoalescingFiller`, with the default listener
//! settings, in a process of its own. It runs until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use orca_cluster_smol::{
    Cluster, ClusterConfig, CoalescingFiller, DirOrigin, FillListener, ListenerSettings, Options,
    StaticPeerSource, SyntheticOrigin,
};

use crate::args::TlsArgs;

/// Flags of `bench serve-smol`.
#[derive(Args, Debug)]
pub(crate) struct ServeSmolArgs {
    /// Fill listener address (also the replica's only peer).
    #[arg(long)]
    listen: SocketAddr,
    /// `synthetic`, or a directory holding `<bucket>/<key>` files.
    #[arg(long, default_value = "synthetic")]
    origin: String,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Serves until SIGINT/SIGTERM. The replica runs on smol (its global executor and a thread in
/// `smol::block_on`); this runtime only waits for the signal.
pub(crate) async fn serve_smol(a: ServeSmolArgs) -> Result<(), String> {
    let origin = crate::node::origin_root(&a.origin)?;
    let config = ClusterConfig {
        service: "side-by-side".into(),
        self_pod_ip: vec![a.listen.ip()],
        internal_listen: a.listen,
        internal_tls: a.tls.settings(),
        membership_refresh: Duration::from_secs(3600),
        ..ClusterConfig::default()
    };
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let listen = a.listen;
    let replica = std::thread::spawn(move || {
        smol::block_on(async move {
            let started = async {
                let listener = FillListener::bind(listen)
                    .await
                    .map_err(|e| format!("--listen {listen}: {e}"))?;
                let options = Options::default()
                    .with_peer_source(StaticPeerSource::new([listen]))
                    .with_self_port(listen.port());
                let cluster = Cluster::start(config, options)
                    .await
                    .map_err(|e| e.to_string())?;
                let settings = ListenerSettings::default();
                let handle = match origin {
                    None => {
                        listener.serve(&cluster, CoalescingFiller::new(SyntheticOrigin), settings)
                    }
                    Some(root) => listener.serve(
                        &cluster,
                        CoalescingFiller::new(DirOrigin::new(root)),
                        settings,
                    ),
                };
                Ok::<_, String>((cluster, handle))
            };
            let (cluster, handle) = match started.await {
                Ok(started) => {
                    let _ = ready_tx.send(Ok(()));
                    started
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            // Either a stop message or the sender dropped: shut down.
            let _ = stop_rx.recv().await;
            handle.shutdown(Duration::from_secs(2)).await;
            let _ = cluster.close(Duration::from_secs(2)).await;
        });
    });
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("the smol replica's thread ended during start-up".into()),
    }
    tracing::warn!(listen = %a.listen, "smol replica serving /internal/fill");
    crate::node::wait_for_signal().await;
    drop(stop_tx);
    tokio::task::spawn_blocking(move || replica.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the smol replica's thread panicked".to_string())
}
