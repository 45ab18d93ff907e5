//! `orca-cluster bench fill`: the fill path on loopback against a raw-TCP baseline, or, with
//! `--peer`, repeated fills from an external peer.
//!
//! Against a peer, the client runs on a runtime of its own (tokio with `--client-workers`
//! workers, or smol) in a thread of its own, and every row is two warm-up fills then the
//! measured ones: the figure leaves out the command's start-up, the connection set-up and, with
//! TLS, the handshake. The peer may be anything that answers `GET /internal/fill?<query>` with
//! exactly the chunk's bytes (status 2xx, `Content-Length` equal to the chunk's length when
//! present): an `orca-cluster node`, or nginx serving a file (the client checks the status and
//! the length of every fill; `--verify-synthetic` also compares the warm-up fills' bytes with
//! the synthetic origin's).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use orca_cluster_cli::fill_bench::{
    FillBenchRow, FillTarget, Protocol, WARMUP_FILLS, measure_fills, run_fill_bench,
    run_raw_tcp_baseline,
};
use orca_cluster_tokio::common::{Driver, FillClient, Options};
use orca_cluster_tokio::{ChunkKey, ClusterConfig, Peer, SyntheticOrigin};
use serde_json::json;

use crate::args::{TlsArgs, duration};
use crate::bench::FillBenchArgs;

/// The client driver of `bench fill --peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientDriver {
    /// The tokio driver (HTTP/2 and HTTP/1.1).
    Tokio,
    /// The smol driver (HTTP/1.1 only: give --http1).
    Smol,
}

impl ClientDriver {
    fn name(self) -> &'static str {
        match self {
            ClientDriver::Tokio => "tokio",
            ClientDriver::Smol => "smol",
        }
    }
}

/// Flags of `bench fill` that apply only with `--peer`.
#[derive(Args, Debug, Clone)]
pub(crate) struct PeerFillArgs {
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// Speak HTTP/1.1 (plain, or ALPN http/1.1 with TLS). Default: HTTP/2 (h2c with prior
    /// knowledge in plain mode; with TLS, ALPN offers h2 then http/1.1).
    #[arg(long, conflicts_with = "h2c")]
    pub(crate) http1: bool,
    /// Speak HTTP/2 with prior knowledge over plain TCP (the default without TLS; refused with
    /// --tls-cert).
    #[arg(long)]
    pub(crate) h2c: bool,
    /// The client's driver.
    #[arg(long, value_enum, default_value_t = ClientDriver::Tokio)]
    pub(crate) driver: ClientDriver,
    /// Worker threads of the client's tokio runtime (the smol client runs on smol's global
    /// executor and one thread reading the bodies).
    #[arg(long, default_value_t = 1)]
    pub(crate) client_workers: usize,
    /// The chunk's origin id.
    #[arg(long, default_value = "bench")]
    pub(crate) origin_id: String,
    /// The chunk's bucket.
    #[arg(long, default_value = "b")]
    pub(crate) bucket: String,
    /// The chunk's object key (the object is one chunk of --chunk-mib MiB, index 0).
    #[arg(long, default_value = "object")]
    pub(crate) object: String,
    /// The chunk's etag.
    #[arg(long, default_value = "1")]
    pub(crate) etag: String,
    /// Also compare the warm-up fills' bytes with the synthetic origin's bytes of this chunk
    /// (what `orca-cluster node --origin synthetic` serves).
    #[arg(long)]
    pub(crate) verify_synthetic: bool,
    /// Time a row (warm-up and measured fills) may take before the command fails.
    #[arg(long, default_value = "120s", value_parser = duration)]
    pub(crate) row_timeout: Duration,
}

impl PeerFillArgs {
    /// The flags given that only make sense with `--peer`, by name.
    fn peer_only_flags(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let flags = [
            (self.tls.tls_cert.is_some(), "--tls-cert"),
            (self.tls.server_name.is_some(), "--server-name"),
            (self.http1, "--http1"),
            (self.h2c, "--h2c"),
            (self.driver != ClientDriver::Tokio, "--driver"),
            (self.client_workers != 1, "--client-workers"),
            (self.origin_id != "bench", "--origin-id"),
            (self.bucket != "b", "--bucket"),
            (self.object != "object", "--object"),
            (self.etag != "1", "--etag"),
            (self.verify_synthetic, "--verify-synthetic"),
        ];
        for (set, name) in flags {
            if set {
                given.push(name);
            }
        }
        given
    }

    fn protocol(&self) -> Protocol {
        match (self.tls.tls_cert.is_some(), self.http1) {
            (false, false) => Protocol::H2c,
            (false, true) => Protocol::Http1,
            (true, false) => Protocol::H2Tls,
            (true, true) => Protocol::Http1Tls,
        }
    }
}

/// The protocol names of the JSON rows.
fn json_name(p: Protocol) -> &'static str {
    match p {
        Protocol::H2c => "h2c",
        Protocol::H2Tls => "h2-tls",
        Protocol::Http1 => "http1",
        Protocol::Http1Tls => "http1-tls",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn json_row(name: &str, r: &FillBenchRow) -> serde_json::Value {
    json!({
        "protocol": name,
        "concurrency": r.concurrency,
        "fills": r.fills,
        "mb_per_s": r.mb_per_s,
        "p50_ms": ms(r.p50),
        "p99_ms": ms(r.p99),
    })
}

/// Runs the command: the loopback suite, or fills from `--peer`.
pub(crate) async fn run(a: FillBenchArgs) -> Result<(), String> {
    if a.chunk_mib == 0 || a.fills == 0 {
        return Err("--chunk-mib and --fills must be at least 1".into());
    }
    if a.concurrency.is_empty() || a.concurrency.contains(&0) {
        return Err("--concurrency: every value must be at least 1".into());
    }
    let chunk =
        usize::try_from(a.chunk_mib << 20).map_err(|_| "--chunk-mib: too large".to_string())?;
    match a.peer {
        Some(peer) => run_peer(peer, &a, chunk).await,
        None => {
            let given = a.remote.peer_only_flags();
            if !given.is_empty() {
                return Err(format!("{}: only with --peer", given.join(", ")));
            }
            run_loopback(chunk, a.chunk_mib, a.fills, a.concurrency, a.json).await
        }
    }
}

/// Runs every row on a one-worker client runtime of its own (the listener side gets another),
/// like two peers in two processes.
async fn run_loopback(
    chunk: usize,
    chunk_mib: u64,
    fills: usize,
    concurrency: Vec<usize>,
    json: bool,
) -> Result<(), String> {
    let worker = std::thread::spawn(
        move || -> Result<Vec<(&'static str, FillBenchRow)>, String> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
            let mut rows = Vec::new();
            let raw = run_raw_tcp_baseline(chunk, fills).await.map_err(|e| format!("raw-tcp: {e}"))?;
            if !json {
                println!("fill benchmark: {fills} fills of {chunk_mib} MiB per row on loopback, {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
                println!("{}  vs raw-tcp", FillBenchRow::header());
                println!("{raw}  {:>7.2}", 1.0);
            }
            rows.push(("raw-tcp", raw.clone()));
            for protocol in Protocol::ALL {
                for &c in &concurrency {
                    let n = fills.max(c);
                    let row = run_fill_bench(protocol, c, chunk, n)
                        .await
                        .map_err(|e| format!("{}: {e}", protocol.name()))?;
                    if !json {
                        println!("{row}  {:>7.2}", row.mb_per_s / raw.mb_per_s);
                    }
                    rows.push((json_name(protocol), row));
                }
            }
            Ok(rows)
        })
        },
    );
    let rows = tokio::task::spawn_blocking(move || worker.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "benchmark thread panicked".to_string())??;
    if json {
        let rows: Vec<_> = rows.iter().map(|(name, r)| json_row(name, r)).collect();
        println!("{}", json!({ "rows": rows }));
    }
    Ok(())
}

/// What one `--peer` run needs, moved into the client's thread.
struct PeerRun {
    target: FillTarget,
    config: ClusterConfig,
    protocol: Protocol,
    concurrency: Vec<usize>,
    fills: usize,
    expected: Option<Vec<u8>>,
    row_timeout: Duration,
    json: bool,
}

/// Fills from `peer`: one row per `--concurrency` value.
async fn run_peer(peer: SocketAddr, a: &FillBenchArgs, chunk: usize) -> Result<(), String> {
    let r = &a.remote;
    if peer.port() == 0 {
        return Err(format!("--peer {peer}: give the port"));
    }
    if r.h2c && r.tls.tls_cert.is_some() {
        return Err("--h2c: plain HTTP/2; with --tls-cert, HTTP/2 is negotiated by ALPN".into());
    }
    if r.driver == ClientDriver::Smol && !r.http1 {
        return Err("--driver smol: the smol client speaks HTTP/1.1 only (add --http1)".into());
    }
    if r.client_workers == 0 {
        return Err("--client-workers: must be at least 1".into());
    }
    let chunk_size = chunk as u64;
    let key = ChunkKey {
        origin_id: r.origin_id.clone(),
        bucket: r.bucket.clone(),
        object_key: r.object.clone(),
        etag: r.etag.clone(),
        chunk_size,
        index: 0,
    };
    if key.origin_id.is_empty() || key.object_key.is_empty() {
        return Err("--origin-id and --object: must not be empty".into());
    }
    let expected = r
        .verify_synthetic
        .then(|| SyntheticOrigin::chunk_bytes(&key, chunk_size));
    let config = ClusterConfig {
        internal_tls: r.tls.settings(),
        // Ask for any size: the peer decides what it serves.
        max_chunk_size: chunk_size.max(ClusterConfig::default().max_chunk_size),
        ..ClusterConfig::default()
    };
    let run = PeerRun {
        target: FillTarget {
            peer: Peer {
                ip: peer.ip(),
                port: peer.port(),
                is_self: false,
            },
            key,
            object_size: chunk_size,
        },
        config,
        protocol: r.protocol(),
        concurrency: a.concurrency.clone(),
        fills: a.fills,
        expected,
        row_timeout: r.row_timeout,
        json: a.json,
    };
    let driver = r.driver;
    let workers = r.client_workers;
    if !a.json {
        println!(
            "fills from {peer} ({}, {} client{}): {} measured fills of {} MiB per row after {WARMUP_FILLS} warm-up fills{}",
            run.protocol.name(),
            driver.name(),
            if driver == ClientDriver::Tokio {
                format!(", {workers} worker{}", if workers == 1 { "" } else { "s" })
            } else {
                String::new()
            },
            a.fills,
            a.chunk_mib,
            if run.expected.is_some() {
                " (their bytes verified)"
            } else {
                ""
            },
        );
        println!("{}", FillBenchRow::header());
    }
    let verified = run.expected.is_some();
    let protocol = run.protocol;
    let thread = std::thread::spawn(move || -> Result<Vec<FillBenchRow>, String> {
        match driver {
            ClientDriver::Tokio => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("client runtime: {e}"))?;
                // The fills run as a task on the workers, as an embedder's request handlers
                // do: polled from `block_on`'s thread instead, every body frame would be a
                // wake-up across threads (the HTTP/2 connection task runs on a worker).
                let rows = rt.block_on(async {
                    tokio::spawn(peer_rows::<orca_cluster_tokio::Tokio>(run))
                        .await
                        .map_err(|e| format!("benchmark task: {e}"))?
                });
                rt.shutdown_timeout(Duration::from_secs(1));
                rows
            }
            ClientDriver::Smol => smol::block_on(peer_rows::<orca_cluster_smol::Smol>(run)),
        }
    });
    let rows = tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "benchmark thread panicked".to_string())??;
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| json_row(json_name(protocol), r))
            .collect();
        println!(
            "{}",
            json!({
                "peer": peer.to_string(),
                "driver": driver.name(),
                "protocol": json_name(protocol),
                "chunk_bytes": chunk,
                "warmup_fills": WARMUP_FILLS,
                "verified": verified,
                "rows": rows,
            })
        );
    }
    Ok(())
}

/// The rows of a `--peer` run on driver `D`'s runtime (the caller's), each bounded by the row
/// timeout.
async fn peer_rows<D: Driver>(run: PeerRun) -> Result<Vec<FillBenchRow>, String> {
    let options =
        Options::<D>::default().with_protocol(crate::args::protocol(run.protocol.http1()));
    let client = FillClient::<D>::new(&run.config, &options).map_err(|e| e.to_string())?;
    let peer = SocketAddr::new(run.target.peer.ip, run.target.peer.port);
    let mut rows = Vec::new();
    for &concurrency in &run.concurrency {
        let fills = run.fills.max(concurrency);
        let measure = std::pin::pin!(measure_fills(
            &client,
            &run.target,
            run.protocol.name(),
            concurrency,
            fills,
            run.expected.as_deref(),
        ));
        let limit = std::pin::pin!(D::current().sleep(run.row_timeout));
        let row = match futures_util::future::select(measure, limit).await {
            futures_util::future::Either::Left((row, _)) => {
                row.map_err(|e| format!("fill from {peer}: {e}"))?
            }
            futures_util::future::Either::Right(_) => {
                client.close();
                return Err(format!(
                    "fill from {peer}: the row at concurrency {concurrency} took longer than --row-timeout {:?}",
                    run.row_timeout
                ));
            }
        };
        if !run.json {
            println!("{row}");
        }
        rows.push(row);
    }
    client.close();
    Ok(rows)
}
