//! `orca-cluster bench fill`: the fill path on loopback against a raw-TCP baseline.

use std::time::Duration;

use orca_cluster_cli::fill_bench::{FillBenchRow, Protocol, run_fill_bench, run_raw_tcp_baseline};
use serde_json::json;

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

/// Runs every row on a one-worker client runtime of its own (the listener side gets another),
/// like two peers in two processes.
pub(crate) async fn run(chunk_mib: u64, fills: usize, json: bool) -> Result<(), String> {
    if chunk_mib == 0 || fills == 0 {
        return Err("--chunk-mib and --fills must be at least 1".into());
    }
    let chunk =
        usize::try_from(chunk_mib << 20).map_err(|_| "--chunk-mib: too large".to_string())?;
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
                for concurrency in [1usize, 16] {
                    let n = fills.max(concurrency);
                    let row = run_fill_bench(protocol, concurrency, chunk, n)
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
        let rows: Vec<_> = rows
            .iter()
            .map(|(name, r)| {
                json!({
                    "protocol": name,
                    "concurrency": r.concurrency,
                    "mb_per_s": r.mb_per_s,
                    "p50_ms": ms(r.p50),
                    "p99_ms": ms(r.p99),
                })
            })
            .collect();
        println!("{}", json!({ "rows": rows }));
    }
    Ok(())
}
