//! Fill-path benchmark on loopback: 8 MiB chunks over h2c, h2 + mTLS, HTTP/1.1 and HTTP/1.1 +
//! mTLS, with 1 and 16 concurrent fills, next to a raw TCP copy of the same bytes in the same
//! run. Bounded: a fixed number of fills per row (about 10-20 s in all in release mode).
//!
//! `cargo bench -p orca-cluster-cli --bench fill` (optionally `-- <fills per row>` and
//! protocol names such as `h2+mtls` to run only those rows).

use std::time::Duration;

use orca_cluster_cli::fill_bench::{
    FillBenchRow, Protocol, run_fill_bench, run_fill_bench_with, run_raw_tcp_baseline,
};
use orca_cluster_tokio::{ClientSettings, Http2Settings};

const CHUNK: usize = 8 << 20;

fn main() {
    // `cargo bench` passes `--bench`; a plain number sets the fills per row.
    let fills: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(64);
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| Protocol::ALL.iter().any(|p| p.name() == a))
        .collect();
    // One worker for the client, as the listener side gets one of its own: like two peers in
    // two processes, one core each. (Sharing one 2-worker runtime between both sides makes the
    // results bimodal on 2 cores, depending on where the scheduler puts the two connections.)
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("fill benchmark: {fills} fills of 8 MiB per row, {cores} cores, loopback");
        println!("{}", FillBenchRow::header());
        let raw = run_raw_tcp_baseline(CHUNK, fills).await.expect("raw tcp");
        println!("{raw}");
        let mut rows = Vec::new();
        for protocol in Protocol::ALL {
            if !only.is_empty() && !only.iter().any(|o| o == protocol.name()) {
                continue;
            }
            for concurrency in [1, 16] {
                let n = if concurrency == 1 { fills } else { fills * 2 };
                let row = run_fill_bench(protocol, concurrency, CHUNK, n)
                    .await
                    .expect("fill bench");
                println!("{row}   ({:.2} of raw TCP)", row.mb_per_s / raw.mb_per_s);
                rows.push((protocol, row));
            }
        }
        if only.is_empty() || only.iter().any(|o| o == "h2c") {
            // The protocol's default flow control (64 KiB windows, 16 KiB frames), for contrast.
            let defaults = ClientSettings {
                http2: Http2Settings {
                    stream_window: 65_535,
                    connection_window: 65_535,
                    max_frame_size: 16_384,
                    ..Http2Settings::default()
                },
                ..ClientSettings::default()
            };
            let row = run_fill_bench_with(Protocol::H2c, 1, CHUNK, fills, defaults)
                .await
                .expect("fill bench");
            println!("{row}   (64 KiB windows, 16 KiB frames)");
        }
        println!();
        let find = |p: Protocol, c: usize| {
            rows.iter()
                .find(|(q, r)| *q == p && r.concurrency == c)
                .map(|(_, r)| r.clone())
        };
        let gbps = |r: &FillBenchRow| r.mb_per_s / 1000.0;
        if let Some(r) = find(Protocol::H2c, 1) {
            let ok = gbps(&r) >= 1.5;
            println!(
                "target h2c one stream >= 1.5 GB/s: {:.2} GB/s {}",
                gbps(&r),
                verdict(ok)
            );
        }
        if let Some(r) = find(Protocol::H2Tls, 1) {
            let ok = gbps(&r) >= 1.0;
            println!(
                "target h2+mtls one stream >= 1.0 GB/s: {:.2} GB/s {}",
                gbps(&r),
                verdict(ok)
            );
        }
        if let Some(r) = find(Protocol::Http1, 1) {
            let ok = gbps(&r) >= 1.5;
            println!(
                "target http1 one stream >= 1.5 GB/s: {:.2} GB/s {}",
                gbps(&r),
                verdict(ok)
            );
        }
        if let Some(r) = find(Protocol::H2Tls, 16) {
            let ratio = r.p99.as_secs_f64() / r.p50.as_secs_f64().max(f64::MIN_POSITIVE);
            println!(
                "target 16 x h2+mtls p99 <= 3 x p50: {ratio:.2} {}",
                verdict(ratio <= 3.0)
            );
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

fn verdict(ok: bool) -> &'static str {
    if ok { "(met)" } else { "(MISSED)" }
}
