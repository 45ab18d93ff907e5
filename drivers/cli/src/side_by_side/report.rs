//! The results: per row, the MB/s of each side in every round; the medians, their ratio and
//! the spread of the per-round ratios, as a table or as JSON.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::rows::{Plan, Row, ServedBy, Side};

/// What one row measured, one value per round on each side.
#[derive(Clone, Debug)]
pub(super) struct RowResult {
    pub(super) row: Row,
    /// Our MB/s, per round.
    pub(super) ours: Vec<f64>,
    /// The reference's MB/s, per round.
    pub(super) reference: Vec<f64>,
}

/// The median of `values` (the mean of the two middle values for an even count); 0 when
/// empty.
pub(super) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    match n {
        0 => 0.0,
        _ if n.is_multiple_of(2) => (at(n / 2 - 1) + at(n / 2)) / 2.0,
        _ => at(n / 2),
    }
}

impl RowResult {
    pub(super) fn new(row: Row) -> RowResult {
        RowResult {
            row,
            ours: Vec::new(),
            reference: Vec::new(),
        }
    }

    pub(super) fn ours_median(&self) -> f64 {
        median(&self.ours)
    }

    pub(super) fn reference_median(&self) -> f64 {
        median(&self.reference)
    }

    /// Median ours / median reference (0 if the reference measured nothing).
    pub(super) fn ratio(&self) -> f64 {
        let r = self.reference_median();
        if r > 0.0 { self.ours_median() / r } else { 0.0 }
    }

    /// The smallest and largest ratio of one round's two runs.
    pub(super) fn round_ratios(&self) -> (f64, f64) {
        let ratios: Vec<f64> = self
            .ours
            .iter()
            .zip(&self.reference)
            .filter(|(_, r)| **r > 0.0)
            .map(|(o, r)| o / r)
            .collect();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if ratios.is_empty() {
            (0.0, 0.0)
        } else {
            (min, max)
        }
    }
}

/// What the report says about the run besides the rows.
pub(super) struct RunInfo<'a> {
    pub(super) rounds: usize,
    pub(super) quick: bool,
    /// `synthetic` or `files`.
    pub(super) origin: &'a str,
    pub(super) cores: usize,
    pub(super) cpu: String,
    pub(super) nginx: &'a str,
    pub(super) h2load: &'a str,
    pub(super) curl: &'a str,
    pub(super) plan: &'a Plan,
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// `64 x 8 MiB`: what one run of `row` moves.
fn per_run(row: &Row, plan: &Plan) -> String {
    format!("{} x {}", plan.transfers(row), mib(plan.chunk(row.size)))
}

/// `curl 7.88.1` of curl's first `--version` line.
fn short_curl(curl: &str) -> String {
    curl.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn reference_name(row: &Row, info: &RunInfo<'_>) -> String {
    match row.side {
        Side::Listener => info.nginx.to_owned(),
        Side::Client => short_curl(info.curl),
    }
}

/// The text table with its header and notes.
pub(super) fn table(results: &[RowResult], info: &RunInfo<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "side by side on 127.0.0.1: {} round{} interleaved (each row runs reference then ours, \
         the order flipped every other round); medians of MB/s (10^6 bytes/s){}",
        info.rounds,
        if info.rounds == 1 { "" } else { "s" },
        if info.quick {
            "; --quick: tiny sizes, not a measurement"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "machine: {} cores, {}; {} (worker_processes 1, sendfile on), {}, {}",
        info.cores,
        info.cpu,
        info.nginx,
        info.h2load,
        short_curl(info.curl)
    );
    let _ = writeln!(
        out,
        "our listeners serve {}",
        if info.origin == "files" {
            "the files nginx serves (directory origin)"
        } else {
            "the synthetic origin (bytes generated per request; nginx serves the same bytes from a file)"
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<26} {:<6} {:<13} {:<43} {:>11} {:>10} {:>10} {:>6}  per-round ratios",
        "row", "driver", "reference", "measured with", "per run", "ours MB/s", "ref MB/s", "ratio",
    );
    for r in results {
        let (lo, hi) = r.round_ratios();
        let _ = writeln!(
            out,
            "{:<26} {:<6} {:<13} {:<43} {:>11} {:>10.0} {:>10.0} {:>6.2}  {:.2}-{:.2}",
            r.row.id,
            r.row.driver.name(),
            reference_name(&r.row, info),
            r.row.method(),
            per_run(&r.row, info.plan),
            r.ours_median(),
            r.reference_median(),
            r.ratio(),
            lo,
            hi
        );
    }
    let _ = writeln!(out);
    out.push_str(
        "listener rows: the same client against nginx and against our replica; client rows: \
         our client (bench fill --peer) and curl, both from nginx (-from-replica: both from our \
         tokio replica, which sends faster than nginx, so the clients' own limits show).\n",
    );
    out.push_str(
        "same bytes: before measuring, every server's chunk was fetched once and compared byte for \
         byte; both sides of a row move the bytes in `per run`. curl and bench fill: after 2 \
         warm-up transfers on the same connection, each transfer's own time (curl time_total; \
         curl runs each h2c transfer in a process of its own, as curl 7.88 fails on a reused h2c \
         connection, so those include a loopback connect); h2load: one connection, connect \
         included, on both sides.\n",
    );
    out
}

/// The JSON document.
pub(super) fn json(results: &[RowResult], info: &RunInfo<'_>) -> Value {
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let (lo, hi) = r.round_ratios();
            let chunk = info.plan.chunk(r.row.size);
            let transfers = info.plan.transfers(&r.row);
            json!({
                "row": r.row.key(),
                "id": r.row.id,
                "driver": r.row.driver.name(),
                "side": match r.row.side { Side::Listener => "listener", Side::Client => "client" },
                "served_by": match r.row.served_by { ServedBy::Nginx => "nginx", ServedBy::Replica => "our tokio replica" },
                "protocol": r.row.protocol.name(),
                "reference": reference_name(&r.row, info),
                "measured_with": r.row.method(),
                "chunk_bytes": chunk,
                "transfers_per_run": transfers,
                "bytes_per_run": chunk * transfers as u64,
                "ours_mb_per_s": r.ours_median(),
                "reference_mb_per_s": r.reference_median(),
                "ratio": r.ratio(),
                "round_ratio_min": lo,
                "round_ratio_max": hi,
                "ours_rounds": r.ours,
                "reference_rounds": r.reference,
            })
        })
        .collect();
    json!({
        "rounds": info.rounds,
        "quick": info.quick,
        "origin": info.origin,
        "machine": { "cores": info.cores, "cpu": info.cpu },
        "versions": {
            "nginx": info.nginx,
            "h2load": info.h2load,
            "curl": info.curl,
            "orca_cluster": env!("CARGO_PKG_VERSION"),
        },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::super::rows::ROWS;
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[5.0]), 5.0);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[f64::NAN, 1.0]), 1.0);
    }

    #[test]
    fn ratio_is_of_the_medians_and_the_spread_is_per_round() {
        let r = RowResult {
            row: ROWS[0],
            ours: vec![90.0, 100.0, 200.0],
            reference: vec![100.0, 100.0, 100.0],
        };
        assert_eq!(r.ratio(), 1.0);
        assert_eq!(r.round_ratios(), (0.9, 2.0));
        let empty = RowResult::new(ROWS[0]);
        assert_eq!((empty.ratio(), empty.round_ratios()), (0.0, (0.0, 0.0)));
    }

    #[test]
    fn table_and_json_carry_every_row() {
        let plan = Plan::new(false, std::time::Duration::from_secs(1));
        let info = RunInfo {
            rounds: 1,
            quick: false,
            origin: "synthetic",
            cores: 2,
            cpu: "cpu".into(),
            nginx: "nginx/1.22.1",
            h2load: "h2load nghttp2/1.52.0",
            curl: "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1",
            plan: &plan,
        };
        let results: Vec<RowResult> = ROWS
            .iter()
            .map(|&row| RowResult {
                row,
                ours: vec![1000.0],
                reference: vec![800.0],
            })
            .collect();
        let text = table(&results, &info);
        assert_eq!(
            text.matches("  1.25  1.25-1.25").count(),
            ROWS.len(),
            "{text}"
        );
        assert!(
            text.contains("64 x 8 MiB") && text.contains("4 x 64 MiB"),
            "{text}"
        );
        assert!(text.contains("curl 7.88.1 "), "{text}");
        let doc = json(&results, &info);
        let rows = doc["rows"].as_array().unwrap();
        assert_eq!(rows.len(), ROWS.len());
        assert_eq!(rows[0]["bytes_per_run"], 64 * (8 << 20));
        assert_eq!(rows[0]["ratio"], 1.25);
    }
}
