//! The rows of the side-by-side table and how each side of a row is measured.
//!
//! A listener row runs one external client (h2load, or curl for TLS, since h2load cannot
//! present a client certificate) against nginx and against our replica: same tool, same
//! request, same bytes. A client row fetches from one server with curl and with our client
//! (`orca-cluster bench fill --peer`, a subprocess like curl): same server, same bytes. The
//! server is nginx for the rows; the `-from-replica` rows fetch from our tokio replica
//! instead, which serves faster than nginx, so they show what each client can take rather than
//! what nginx can send.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use orca_cluster_cli::fill_bench::{Protocol, WARMUP_FILLS};
use orca_cluster_tokio::ChunkKey;

use super::parse::{self, CURL_WRITE_OUT};
use super::process::run_tool;
use super::tools::Tools;

/// Which of our sides a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// Our fill listener, against nginx, with the same external client.
    Listener,
    /// Our fill client, against curl, both fetching from nginx.
    Client,
}

/// The server both clients of a client row fetch from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServedBy {
    /// nginx (every listener row's reference, and the client rows).
    Nginx,
    /// Our tokio replica (`orca-cluster node`), plain or TLS as the protocol asks.
    Replica,
}

/// Which of our drivers a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Driver {
    Tokio,
    Smol,
}

impl Driver {
    pub(super) fn name(self) -> &'static str {
        match self {
            Driver::Tokio => "tokio",
            Driver::Smol => "smol",
        }
    }
}

/// The external client of a listener row (client rows use curl as the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tool {
    /// `h2load -c 1 -m <streams>` (`--h1` for HTTP/1.1).
    H2load { streams: usize },
    /// curl, all transfers on one connection.
    Curl,
}

/// The chunk size class of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Size {
    /// The h2load rows: [`Plan::small_requests`] requests of [`Plan::small_chunk`].
    Small,
    /// The curl and client rows: [`Plan::big_fills`] fills of [`Plan::big_chunk`].
    Big,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub(super) struct Row {
    /// The row's name (unique with the driver: [`Row::key`]).
    pub(super) id: &'static str,
    pub(super) side: Side,
    pub(super) driver: Driver,
    pub(super) protocol: Protocol,
    pub(super) tool: Tool,
    pub(super) size: Size,
    /// Where a client row fetches from (listener rows: [`ServedBy::Nginx`], their reference).
    pub(super) served_by: ServedBy,
}

const fn row(
    id: &'static str,
    side: Side,
    driver: Driver,
    protocol: Protocol,
    tool: Tool,
    size: Size,
) -> Row {
    Row {
        id,
        side,
        driver,
        protocol,
        tool,
        size,
        served_by: ServedBy::Nginx,
    }
}

/// A client row fetching from our tokio replica.
const fn from_replica(id: &'static str, driver: Driver, protocol: Protocol) -> Row {
    Row {
        served_by: ServedBy::Replica,
        ..row(id, Side::Client, driver, protocol, Tool::Curl, Size::Big)
    }
}

/// Every row, in table order: the rows, HTTP/1.1 + TLS on both sides, and the smol
/// driver wherever it speaks the protocol (HTTP/1.1, plain and TLS); then the client rows again,
/// fetching from our replica.
pub(super) const ROWS: [Row; 19] = {
    use Driver::{Smol, Tokio};
    use Protocol::{H2Tls, H2c, Http1, Http1Tls};
    use Side::{Client, Listener};
    use Size::{Big, Small};
    const ONE: Tool = Tool::H2load { streams: 1 };
    const SIXTEEN: Tool = Tool::H2load { streams: 16 };
    [
        row("listener-h2c", Listener, Tokio, H2c, ONE, Small),
        row(
            "listener-h2c-16-streams",
            Listener,
            Tokio,
            H2c,
            SIXTEEN,
            Small,
        ),
        row("listener-http1", Listener, Tokio, Http1, ONE, Small),
        row("listener-http1", Listener, Smol, Http1, ONE, Small),
        row("listener-h2-mtls", Listener, Tokio, H2Tls, Tool::Curl, Big),
        row(
            "listener-http1-mtls",
            Listener,
            Tokio,
            Http1Tls,
            Tool::Curl,
            Big,
        ),
        row(
            "listener-http1-mtls",
            Listener,
            Smol,
            Http1Tls,
            Tool::Curl,
            Big,
        ),
        row("client-h2c", Client, Tokio, H2c, Tool::Curl, Big),
        row("client-h2-mtls", Client, Tokio, H2Tls, Tool::Curl, Big),
        row("client-http1", Client, Tokio, Http1, Tool::Curl, Big),
        row("client-http1", Client, Smol, Http1, Tool::Curl, Big),
        row(
            "client-http1-mtls",
            Client,
            Tokio,
            Http1Tls,
            Tool::Curl,
            Big,
        ),
        row("client-http1-mtls", Client, Smol, Http1Tls, Tool::Curl, Big),
        from_replica("client-h2c-from-replica", Tokio, H2c),
        from_replica("client-h2-mtls-from-replica", Tokio, H2Tls),
        from_replica("client-http1-from-replica", Tokio, Http1),
        from_replica("client-http1-from-replica", Smol, Http1),
        from_replica("client-http1-mtls-from-replica", Tokio, Http1Tls),
        from_replica("client-http1-mtls-from-replica", Smol, Http1Tls),
    ]
};

/// Sizes, counts and limits of a run.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// Chunk of the h2load rows, bytes (8 MiB; `--quick`: 1 MiB).
    pub(super) small_chunk: u64,
    /// Requests per h2load run (64; `--quick`: 16).
    pub(super) small_requests: usize,
    /// Chunk of the curl and client rows, bytes (64 MiB, a replica's default maximum chunk
    /// size; `--quick`: 1 MiB).
    pub(super) big_chunk: u64,
    /// Measured fills per curl or client run, after [`WARMUP_FILLS`] (4, so 256 MiB;
    /// `--quick`: 2).
    pub(super) big_fills: usize,
    /// Time one tool run may take.
    pub(super) run_timeout: Duration,
}

impl Plan {
    /// The full-size plan, or the `--quick` one.
    pub(super) fn new(quick: bool, run_timeout: Duration) -> Plan {
        if quick {
            Plan {
                small_chunk: 1 << 20,
                small_requests: 16,
                big_chunk: 1 << 20,
                big_fills: 2,
                run_timeout,
            }
        } else {
            Plan {
                small_chunk: 8 << 20,
                small_requests: 64,
                big_chunk: 64 << 20,
                big_fills: 4,
                run_timeout,
            }
        }
    }

    pub(super) fn chunk(&self, size: Size) -> u64 {
        match size {
            Size::Small => self.small_chunk,
            Size::Big => self.big_chunk,
        }
    }

    /// Measured transfers per run of `row`.
    pub(super) fn transfers(&self, row: &Row) -> usize {
        match row.size {
            Size::Small => self.small_requests,
            Size::Big => self.big_fills,
        }
    }
}

impl Row {
    /// `id/driver`, unique: what `--only` matches and the JSON names.
    pub(super) fn key(&self) -> String {
        format!("{}/{}", self.id, self.driver.name())
    }

    /// How the row is measured, for the table.
    pub(super) fn method(&self) -> String {
        let proto = match self.protocol {
            Protocol::H2c => "--http2-prior-knowledge",
            Protocol::H2Tls => "--http2",
            Protocol::Http1 | Protocol::Http1Tls => "--http1.1",
        };
        match (self.side, self.tool) {
            (Side::Listener, Tool::H2load { streams }) => {
                let h1 = if self.protocol.http1() {
                    " --h1"
                } else {
                    " -w24 -W24"
                };
                format!("h2load{h1} -c1 -m{streams}")
            }
            (Side::Listener, Tool::Curl) => format!("curl {proto}"),
            (Side::Client, _) => format!("bench fill vs curl {proto}"),
        }
    }
}

/// The key of the benchmark's chunk of `chunk` bytes: the object is that one chunk, and nginx
/// serves it from `<data root>/b/chunk-<bytes>.bin`.
pub(super) fn chunk_key(chunk: u64) -> ChunkKey {
    ChunkKey {
        origin_id: "bench".into(),
        bucket: "b".into(),
        object_key: format!("chunk-{chunk}.bin"),
        etag: "1".into(),
        chunk_size: chunk,
        index: 0,
    }
}

/// The client TLS files (a certificate of the benchmark's CA) and the CA.
#[derive(Clone, Debug)]
pub(super) struct ClientTls {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) ca: PathBuf,
}

/// Where a side of a row sends its requests: a port on 127.0.0.1, with or without TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Endpoint {
    pub(super) port: u16,
    pub(super) tls: bool,
}

impl Endpoint {
    pub(super) fn addr(self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The fill URL of the chunk of `chunk` bytes.
    pub(super) fn url(self, chunk: u64) -> String {
        let key = chunk_key(chunk);
        format!(
            "{}://127.0.0.1:{}{}?{}",
            if self.tls { "https" } else { "http" },
            self.port,
            orca_cluster_core::wire::FILL_PATH,
            orca_cluster_core::wire::encode_query(&key, chunk)
        )
    }
}

/// h2load's HTTP/2 window flags: 2^24 bytes (16 MiB) per stream and per connection.
pub(super) const H2LOAD_WINDOWS: [&str; 4] = ["-w", "24", "-W", "24"];

/// What the measuring functions need.
pub(super) struct Runner<'a> {
    pub(super) tools: &'a Tools,
    /// This program (`orca-cluster`), for `bench fill --peer`.
    pub(super) exe: &'a Path,
    pub(super) client_tls: &'a ClientTls,
    pub(super) plan: &'a Plan,
}

impl Runner<'_> {
    /// One h2load run (one connection, `streams` requests in flight) of `requests` requests
    /// of `chunk` bytes against `to`; MB/s over h2load's `finished in` time.
    pub(super) async fn h2load(
        &self,
        to: Endpoint,
        protocol: Protocol,
        streams: usize,
        requests: usize,
        chunk: u64,
    ) -> Result<f64, String> {
        let mut args: Vec<String> = vec![
            "-n".into(),
            requests.to_string(),
            "-c".into(),
            "1".into(),
            "-m".into(),
            streams.to_string(),
            "-t".into(),
            "1".into(),
            "-H".into(),
            "x-orca-internal: 1".into(),
        ];
        if protocol.http1() {
            args.push("--h1".into());
        } else {
            // 16 MiB stream and connection windows (h2load's default is 1 GiB): with 16
            // streams of 8 MiB on a 1 GiB connection window, nginx 1.22 closes the connection
            // as an "http2 flood". Above the chunk size, so one stream never waits for a
            // window update. The same flags on both sides.
            args.extend(H2LOAD_WINDOWS.map(String::from));
        }
        args.push(to.url(chunk));
        let out = run_tool("h2load", &self.tools.h2load, &args, self.plan.run_timeout).await?;
        let summary = parse::h2load(&String::from_utf8_lossy(&out.stdout))?;
        let n = requests as u64;
        let want = n * chunk;
        if summary.succeeded != n || summary.status_2xx != n || summary.data_bytes != want {
            return Err(format!(
                "h2load against {}: {} of {n} requests succeeded, {} with 2xx, {} of {want} body bytes",
                to.addr(),
                summary.succeeded,
                summary.status_2xx,
                summary.data_bytes
            ));
        }
        Ok(mb_per_s(want, summary.seconds))
    }

    /// curl fetching `chunk` bytes from `to` [`WARMUP_FILLS`] + `fills` times; MB/s over the
    /// measured transfers' own times (`time_total`: curl's start-up is not in it). All
    /// transfers share one connection, except on h2c, where each runs in a curl of its own:
    /// curl 7.88 fails every request after the first on a reused h2c prior-knowledge
    /// connection ("Error in the HTTP2 framing layer"), so each of those transfers includes a
    /// loopback connect and the HTTP/2 preface.
    pub(super) async fn curl(
        &self,
        to: Endpoint,
        protocol: Protocol,
        fills: usize,
        chunk: u64,
    ) -> Result<f64, String> {
        let mut base: Vec<String> = vec![
            "-sS".into(),
            "-H".into(),
            "x-orca-internal: 1".into(),
            "-w".into(),
            CURL_WRITE_OUT.into(),
            match protocol {
                Protocol::H2c => "--http2-prior-knowledge",
                Protocol::H2Tls => "--http2",
                Protocol::Http1 | Protocol::Http1Tls => "--http1.1",
            }
            .into(),
        ];
        if to.tls {
            let t = self.client_tls;
            for (flag, path) in [("--cert", &t.cert), ("--key", &t.key), ("--cacert", &t.ca)] {
                base.push(flag.into());
                base.push(path.display().to_string());
            }
        }
        let url = to.url(chunk);
        let count = WARMUP_FILLS + fills;
        let per_process = protocol == Protocol::H2c;
        let (batches, per_batch) = if per_process { (count, 1) } else { (1, count) };
        let mut transfers = Vec::with_capacity(count);
        for _ in 0..batches {
            let mut args = base.clone();
            for _ in 0..per_batch {
                args.extend([url.clone(), "-o".into(), "/dev/null".into()]);
            }
            let out = run_tool("curl", &self.tools.curl, &args, self.plan.run_timeout).await?;
            transfers.extend(parse::curl_transfers(&String::from_utf8_lossy(
                &out.stdout,
            ))?);
        }
        if transfers.len() != count {
            return Err(format!(
                "curl against {}: {} transfers reported, {count} asked for",
                to.addr(),
                transfers.len()
            ));
        }
        if let Some(bad) = transfers
            .iter()
            .find(|t| t.status != 200 || t.bytes != chunk)
        {
            return Err(format!(
                "curl against {}: a transfer ended with status {} and {} of {chunk} bytes",
                to.addr(),
                bad.status,
                bad.bytes
            ));
        }
        let measured = transfers.get(WARMUP_FILLS..).unwrap_or_default();
        let seconds: f64 = measured.iter().map(|t| t.seconds).sum();
        Ok(mb_per_s(chunk * measured.len() as u64, seconds))
    }

    /// Our client (`orca-cluster bench fill --peer` on `driver`) fetching `chunk` bytes from
    /// `to` [`WARMUP_FILLS`] + `fills` times, one at a time on one connection; MB/s over the
    /// measured fills' wall time (the command's start-up is not in it).
    pub(super) async fn ours(
        &self,
        to: Endpoint,
        protocol: Protocol,
        driver: Driver,
        fills: usize,
        chunk: u64,
    ) -> Result<f64, String> {
        let key = chunk_key(chunk);
        let mut args: Vec<String> = vec![
            "bench".into(),
            "fill".into(),
            "--peer".into(),
            to.addr().to_string(),
            "--concurrency".into(),
            "1".into(),
            "--fills".into(),
            fills.to_string(),
            "--chunk-mib".into(),
            (chunk >> 20).to_string(),
            "--origin-id".into(),
            key.origin_id,
            "--bucket".into(),
            key.bucket,
            "--object".into(),
            key.object_key,
            "--etag".into(),
            key.etag,
            "--driver".into(),
            driver.name().into(),
            "--row-timeout".into(),
            format!("{}ms", self.plan.run_timeout.as_millis()),
            "--json".into(),
        ];
        if protocol.http1() {
            args.push("--http1".into());
        }
        if to.tls {
            let t = self.client_tls;
            for (flag, path) in [
                ("--tls-cert", &t.cert),
                ("--tls-key", &t.key),
                ("--tls-ca", &t.ca),
            ] {
                args.push(flag.into());
                args.push(path.display().to_string());
            }
        }
        // The subprocess bounds its row itself; this also bounds a hang before the row.
        let limit = self.plan.run_timeout + Duration::from_secs(10);
        let out = run_tool("orca-cluster bench fill --peer", self.exe, &args, limit).await?;
        parse::our_fill_json(&String::from_utf8_lossy(&out.stdout))
    }
}

/// MB/s (10^6 bytes per second); 0 when no time passed.
pub(super) fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / seconds / 1e6
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_are_unique_and_smol_rows_speak_http1_only() {
        let mut keys: Vec<String> = ROWS.iter().map(Row::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ROWS.len());
        for r in ROWS.iter().filter(|r| r.driver == Driver::Smol) {
            assert!(r.protocol.http1(), "{}", r.key());
        }
        // Every protocol on both sides for tokio.
        for side in [Side::Listener, Side::Client] {
            for p in Protocol::ALL {
                assert!(
                    ROWS.iter()
                        .any(|r| r.side == side && r.protocol == p && r.driver == Driver::Tokio),
                    "{side:?} {p:?}"
                );
            }
        }
    }

    #[test]
    fn urls_carry_the_fill_query_of_the_chunk() {
        let url = Endpoint {
            port: 8080,
            tls: false,
        }
        .url(1 << 20);
        assert!(
            url.starts_with("http://127.0.0.1:8080/internal/fill?bucket=b&chunk_size=1048576&"),
            "{url}"
        );
        assert!(url.contains("key=chunk-1048576.bin") && url.contains("object_size=1048576"));
        let tls = Endpoint { port: 1, tls: true }.url(1);
        assert!(tls.starts_with("https://"));
    }

    #[test]
    fn throughput_is_decimal_megabytes_per_second() {
        assert_eq!(mb_per_s(2_000_000, 2.0), 1.0);
        assert_eq!(mb_per_s(1, 0.0), 0.0);
    }

    #[test]
    fn quick_plan_is_small_and_full_plan_moves_256_mib_per_big_run() {
        let full = Plan::new(false, Duration::from_secs(1));
        assert_eq!(full.big_chunk * full.big_fills as u64, 256 << 20);
        assert_eq!(full.small_chunk, 8 << 20);
        let quick = Plan::new(true, Duration::from_secs(1));
        assert!(quick.big_chunk <= 1 << 20 && quick.small_chunk <= 1 << 20);
    }
}
