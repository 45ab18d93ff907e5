//! The rows of the benchmark table: which protocol, and what was measured.

use std::fmt;
use std::time::Duration;

/// The transport of a benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/2 with prior knowledge over plain TCP.
    H2c,
    /// HTTP/2 over mutual TLS (ALPN `h2`).
    H2Tls,
    /// HTTP/1.1 over plain TCP.
    Http1,
    /// HTTP/1.1 over mutual TLS (ALPN `http/1.1`).
    Http1Tls,
}

impl Protocol {
    /// Every protocol, in table order.
    pub const ALL: [Protocol; 4] = [
        Protocol::H2c,
        Protocol::H2Tls,
        Protocol::Http1,
        Protocol::Http1Tls,
    ];

    /// `h2c`, `h2+mtls`, `http1`, `http1+mtls`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::H2c => "h2c",
            Protocol::H2Tls => "h2+mtls",
            Protocol::Http1 => "http1",
            Protocol::Http1Tls => "http1+mtls",
        }
    }

    /// Whether the protocol runs over mutual TLS.
    pub fn tls(self) -> bool {
        matches!(self, Protocol::H2Tls | Protocol::Http1Tls)
    }

    /// Whether the client speaks HTTP/1.1.
    pub fn http1(self) -> bool {
        matches!(self, Protocol::Http1 | Protocol::Http1Tls)
    }
}

/// One line of the benchmark table.
#[derive(Clone, Debug, PartialEq)]
pub struct FillBenchRow {
    /// What was measured (`raw-tcp`, `h2c`, `h2+mtls`, `http1`, `http1+mtls`).
    pub name: &'static str,
    /// Fills in flight at once.
    pub concurrency: usize,
    /// Bytes per fill.
    pub chunk_bytes: usize,
    /// Fills measured (after warm-up).
    pub fills: usize,
    /// Wall time of the measured fills.
    pub elapsed: Duration,
    /// Throughput in MB/s (10^6 bytes per second) over the wall time.
    pub mb_per_s: f64,
    /// Median latency of one fill (request sent to last byte verified).
    pub p50: Duration,
    /// 99th percentile latency of one fill.
    pub p99: Duration,
}

impl FillBenchRow {
    pub(crate) fn from_latencies(
        name: &'static str,
        concurrency: usize,
        chunk_bytes: usize,
        elapsed: Duration,
        mut latencies: Vec<Duration>,
    ) -> FillBenchRow {
        latencies.sort();
        let pick = |q: f64| -> Duration {
            if latencies.is_empty() {
                return Duration::ZERO;
            }
            let rank = ((latencies.len() as f64) * q).ceil() as usize;
            latencies[rank.clamp(1, latencies.len()) - 1]
        };
        let fills = latencies.len();
        let secs = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        FillBenchRow {
            name,
            concurrency,
            chunk_bytes,
            fills,
            elapsed,
            mb_per_s: (fills * chunk_bytes) as f64 / secs / 1e6,
            p50: pick(0.50),
            p99: pick(0.99),
        }
    }

    /// The table header matching [`FillBenchRow`]'s `Display`.
    pub fn header() -> &'static str {
        "protocol      conc  chunk(MiB)  fills      MB/s    p50(ms)    p99(ms)  p99/p50"
    }
}

impl fmt::Display for FillBenchRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let ratio = if self.p50.is_zero() {
            0.0
        } else {
            self.p99.as_secs_f64() / self.p50.as_secs_f64()
        };
        write!(
            f,
            "{:<12} {:>5} {:>11.1} {:>6} {:>9.0} {:>10.2} {:>10.2} {:>8.2}",
            self.name,
            self.concurrency,
            self.chunk_bytes as f64 / f64::from(1u32 << 20),
            self.fills,
            self.mb_per_s,
            ms(self.p50),
            ms(self.p99),
            ratio
        )
    }
}
