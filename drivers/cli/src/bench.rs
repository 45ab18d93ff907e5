//! `orca-cluster bench`: coordinator lookups, the fill path (on loopback or against an external
//! peer) and the side-by-side comparison with nginx, curl and h2load, each bounded in time.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use orca_cluster_core::{ChunkKey, PeerAddr, Scoring, SelfIdentity, Snapshot};
use serde_json::json;

use crate::args::duration;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub(crate) enum BenchCommand {
    /// Coordinator lookups at 16, 128 and 1024 peers, xxh3 and go-compat in the same run.
    Lookup(LookupArgs),
    /// 8 MiB fills on loopback: h2c, mTLS h2, HTTP/1.1 (plain and TLS) and a raw-TCP baseline;
    /// with --peer, repeated fills from an external peer (a replica, or nginx serving the
    /// chunk's bytes at /internal/fill).
    Fill(FillBenchArgs),
    /// Our listener and client next to nginx, curl and h2load on loopback, both drivers:
    /// medians of interleaved rounds and the ratio ours / reference per row. Needs nginx,
    /// h2load (nghttp2-client) and curl on PATH.
    SideBySide(crate::side_by_side::SideBySideArgs),
    /// A smol-driver replica serving fills on one address until SIGINT/SIGTERM (the smol rows
    /// of `side-by-side`).
    #[command(hide = true)]
    ServeSmol(crate::side_by_side::ServeSmolArgs),
}

/// Flags of `bench lookup`.
#[derive(Args, Debug)]
pub(crate) struct LookupArgs {
    /// Time spent measuring each row.
    #[arg(long, default_value = "300ms", value_parser = duration)]
    per_row: Duration,
    /// Print {"rows": [{"peers", "scoring", "ns_per_lookup"}]}.
    #[arg(long)]
    json: bool,
}

/// Flags of `bench fill`.
#[derive(Args, Debug)]
pub(crate) struct FillBenchArgs {
    /// Chunk size in MiB.
    #[arg(long, default_value_t = 8)]
    pub(crate) chunk_mib: u64,
    /// Measured fills per row (at least the row's concurrency), after 2 warm-up fills.
    #[arg(long, default_value_t = 32)]
    pub(crate) fills: usize,
    /// Fills in flight, comma-separated: one row per value (HTTP/2: streams on one
    /// connection; HTTP/1.1: that many connections).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub(crate) concurrency: Vec<usize>,
    /// Print {"rows": [{"protocol", "concurrency", "fills", "mb_per_s", "p50_ms", "p99_ms"}]}
    /// (with --peer, also "peer", "driver", "chunk_bytes", "verified").
    #[arg(long)]
    pub(crate) json: bool,
    /// Fill from this peer (IP:PORT) instead of running the loopback suite: a replica, or any
    /// HTTP server answering GET /internal/fill with the chunk's bytes (nginx serving a file).
    #[arg(long)]
    pub(crate) peer: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub(crate) remote: crate::bench_fill::PeerFillArgs,
}

fn snapshot(n: usize, scoring: Scoring) -> Snapshot {
    let me = SelfIdentity::new([IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))], 0)
        .unwrap_or_else(|| unreachable!("one self IP given"));
    let peers = (0..n as u32)
        .map(|i| PeerAddr::from_ip(IpAddr::V4(Ipv4Addr::from(0x0A00_0001u32.wrapping_add(i)))));
    Snapshot::new(&me, peers, scoring, 1)
}

fn keys() -> Vec<ChunkKey> {
    (0..256)
        .map(|i| ChunkKey {
            origin_id: "azure-eastus".into(),
            bucket: "models".into(),
            object_key: format!("llama/weights/shard-{i:05}.safetensors"),
            etag: "9b2cf535f27731c974343645a3985328".into(),
            chunk_size: 8 << 20,
            index: i,
        })
        .collect()
}

/// Nanoseconds per lookup, measured for about `budget`.
fn measure(s: &Snapshot, keys: &[ChunkKey], budget: Duration) -> f64 {
    // Warm up, then run batches until the budget is spent.
    for k in keys {
        black_box(s.coordinator(black_box(k)));
    }
    let started = Instant::now();
    let mut lookups = 0u64;
    while started.elapsed() < budget {
        for k in keys {
            black_box(s.coordinator(black_box(k)));
        }
        lookups += keys.len() as u64;
    }
    started.elapsed().as_nanos() as f64 / lookups as f64
}

async fn lookup(a: LookupArgs) -> Result<(), String> {
    let keys = keys();
    let mut rows = Vec::new();
    if !a.json {
        println!(
            "coordinator lookup (Snapshot::coordinator), {:?} per row, release build recommended",
            a.per_row
        );
        println!(
            "{:>6}  {:>14}  {:>17}  {:>10}",
            "peers", "xxh3 ns/lookup", "go-compat ns/lookup", "go/xxh3"
        );
    }
    for n in [16usize, 128, 1024] {
        let x = measure(&snapshot(n, Scoring::Xxh3), &keys, a.per_row);
        let g = measure(&snapshot(n, Scoring::GoCompat), &keys, a.per_row);
        rows.push(json!({"peers": n, "scoring": "xxh3", "ns_per_lookup": x}));
        rows.push(json!({"peers": n, "scoring": "go-compat", "ns_per_lookup": g}));
        if !a.json {
            println!("{n:>6}  {x:>14.1}  {g:>17.1}  {:>9.0}x", g / x);
        }
    }
    if a.json {
        println!("{}", json!({"rows": rows}));
    }
    Ok(())
}

/// Runs a benchmark.
pub(crate) async fn run(c: BenchCommand) -> Result<(), String> {
    match c {
        BenchCommand::Lookup(a) => lookup(a).await,
        BenchCommand::Fill(a) => crate::bench_fill::run(a).await,
        BenchCommand::SideBySide(a) => crate::side_by_side::run(a).await,
        BenchCommand::ServeSmol(a) => crate::side_by_side::serve_smol(a).await,
    }
}
