//! Latency and throughput summaries.

use std::future::Future;
use std::time::{Duration, Instant};

/// Latencies of one benchmark case.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Case name.
    pub name: String,
    /// Bytes moved per operation.
    pub bytes: u64,
    /// Operations measured at once (the latencies are per operation).
    pub concurrency: usize,
    /// Wall time of each round of `concurrency` operations.
    pub rounds: Vec<Duration>,
    /// Latency of each operation.
    pub latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

impl Measurement {
    /// Aggregate throughput over all rounds, in GB/s (10^9 bytes per second).
    pub fn gb_per_s(&self) -> f64 {
        let total: Duration = self.rounds.iter().sum();
        let bytes = self.bytes as f64 * self.concurrency as f64 * self.rounds.len() as f64;
        if total.is_zero() {
            0.0
        } else {
            bytes / total.as_secs_f64() / 1e9
        }
    }

    /// Latency percentile `p` (0.0..=1.0) over all operations.
    pub fn latency(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        percentile(&sorted, p)
    }
}

/// Runs `round` (`concurrency` operations returning their latencies) `warmup` times unmeasured,
/// then `rounds` times measured.
pub async fn measure<F, Fut, E>(
    name: &str,
    bytes: u64,
    concurrency: usize,
    warmup: usize,
    rounds: usize,
    mut round: F,
) -> Result<Measurement, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<Duration>, E>>,
{
    for _ in 0..warmup {
        round().await?;
    }
    let mut m = Measurement {
        name: name.to_owned(),
        bytes,
        concurrency,
        rounds: Vec::with_capacity(rounds),
        latencies: Vec::with_capacity(rounds * concurrency),
    };
    for _ in 0..rounds {
        let started = Instant::now();
        let latencies = round().await?;
        m.rounds.push(started.elapsed());
        m.latencies.extend(latencies);
    }
    Ok(m)
}

/// A text table: throughput, ratio to `baseline` (by name), p50 and p99 latency.
pub fn table(measurements: &[Measurement], baseline: &str) -> String {
    let base = measurements
        .iter()
        .find(|m| m.name == baseline)
        .map(Measurement::gb_per_s)
        .unwrap_or(0.0);
    let mut out = format!(
        "{:<28} {:>5} {:>9} {:>9} {:>10} {:>10} {:>8}\n",
        "case", "conc", "GB/s", "vs raw", "p50 ms", "p99 ms", "p99/p50"
    );
    for m in measurements {
        let gbps = m.gb_per_s();
        let p50 = m.latency(0.5).as_secs_f64() * 1e3;
        let p99 = m.latency(0.99).as_secs_f64() * 1e3;
        out.push_str(&format!(
            "{:<28} {:>5} {:>9.2} {:>9.2} {:>10.2} {:>10.2} {:>8.2}\n",
            m.name,
            m.concurrency,
            gbps,
            if base > 0.0 { gbps / base } else { 0.0 },
            p50,
            p99,
            if p50 > 0.0 { p99 / p50 } else { 0.0 },
        ));
    }
    out
}
