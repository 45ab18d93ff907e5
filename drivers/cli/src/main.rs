//! `orca-cluster`: run a replica, inspect a cluster, fetch a chunk, or watch the demo.
//!
//! ```text
//! orca-cluster demo                      # three replicas in one process, on loopback
//! orca-cluster node --service NAME ...   # one real replica
//! orca-cluster peers --service NAME      # the peer set as this replica would see it
//! orca-cluster coordinator --peers ... --origin-id .. --key .. --index ..
//! orca-cluster fill --service NAME ... --object-size N
//! orca-cluster bench lookup|fill|side-by-side
//! ```

mod admin;
mod args;
mod bench;
mod bench_fill;
mod coordinator;
mod demo;
mod fill;
mod limits;
mod node;
mod output;
mod peers;
mod side_by_side;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Peer discovery, coordinator selection and the chunk fill RPC of orca-cluster.
#[derive(Parser, Debug)]
#[command(name = "orca-cluster", version, about)]
struct Cli {
    /// Runtime worker threads: 0 runs everything on the calling thread (no cross-thread
    /// wake-ups; the default of `fill`), N a multi-threaded runtime (the default of the other
    /// commands: one worker per CPU). See the README's "Runtime shape".
    #[arg(long, global = true, env = "ORCA_CLUSTER_WORKERS")]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Three replicas, an embedded DNS server and a synthetic origin, all on loopback: fills an
    /// object through every replica, then removes one replica from DNS and shows the
    /// re-coordination. Needs nothing outside this binary; ends by itself.
    Demo(demo::DemoArgs),
    /// Runs one replica: discovery, the fill listener, an origin, and /healthz, /readyz, /peers,
    /// /coordinator, /metrics on the admin port.
    Node(node::NodeArgs),
    /// Resolves the service and prints the peer snapshot.
    Peers(peers::PeersArgs),
    /// Prints the coordinator of a chunk and the ranked peer list with scores.
    Coordinator(coordinator::CoordinatorArgs),
    /// Fetches one chunk from its coordinator (or an explicit peer) and verifies its length.
    Fill(fill::FillArgs),
    /// Benchmarks: coordinator lookups, or the fill path on loopback.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Node(_) => "info",
        // The demo and the benchmarks explain themselves; their in-process listeners'
        // plain-HTTP warnings would only clutter the output.
        Command::Demo(_) | Command::Bench(_) => "error",
        _ => "warn",
    };
    init_tracing(default_log);
    // Measured on 2 cores (BENCHMARKS.md): a single fill reads fastest on one thread, where the
    // connection and the body reader never wake each other across threads.
    let default_workers = match cli.command {
        Command::Fill(_) => 0,
        _ => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let mut builder = match cli.workers.unwrap_or(default_workers) {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orca-cluster: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(a) => demo::run(a).await,
            Command::Node(a) => node::run(a).await,
            Command::Peers(a) => peers::run(a).await,
            Command::Coordinator(a) => coordinator::run(a).await,
            Command::Fill(a) => fill::run(a).await,
            Command::Bench(c) => bench::run(c).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Error messages carry what peers sent (status bodies, names): escaped, one line.
            eprintln!("orca-cluster: {}", output::terminal_safe(&message));
            ExitCode::FAILURE
        }
    }
}
