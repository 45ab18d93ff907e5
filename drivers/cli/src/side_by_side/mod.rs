//! `orca-cluster bench side-by-side`: our fill listener and client next to the C references
//! users trust, on loopback, in one run.
//!
//! It finds nginx, h2load and curl ([`tools`]), writes the benchmark's chunks (the synthetic
//! origin's bytes) as files, a test PKI and an nginx configuration into a scratch directory,
//! and starts nginx ([`nginx`]) and our replicas: `orca-cluster node` (tokio, this very
//! program) and `orca-cluster bench serve-smol` (smol), plain and with mutual TLS, each in a
//! process of its own on a loopback port. Before measuring, it fetches every server's chunk
//! once and compares it byte for byte with the expected bytes. Then it runs the rows
//! ([`rows`]) in interleaved rounds (reference, ours; the next round ours, reference) and
//! reports the medians and their ratio ([`report`]).
//!
//! Every child process has a timeout; the servers are stopped and the scratch directory is
//! removed on every way out (success, error, SIGINT, SIGTERM).

mod nginx;
mod parse;
mod process;
mod report;
mod rows;
mod smol_server;
mod tools;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use clap::Args;
use orca_cluster_cli::fill_bench::{FillTarget, Protocol, fill_once};
use orca_cluster_test_support::{Pki, TempDir};
use orca_cluster_tokio::{ClusterConfig, FillClient, Options, Peer, SyntheticOrigin, TlsSettings};
use tokio::process::Command;

use crate::args::duration;
use nginx::{NginxPorts, NginxSetup, ServerTls};
use process::{Server, free_port};
use report::{RowResult, RunInfo};
use rows::{ClientTls, Driver, Endpoint, Plan, ROWS, Row, Runner, ServedBy, Side, Tool, chunk_key};
use tools::Tools;

pub(crate) use smol_server::{ServeSmolArgs, serve_smol};

/// Time one of our replicas has to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Flags of `bench side-by-side`.
#[derive(Args, Debug)]
pub(crate) struct SideBySideArgs {
    /// Interleaved rounds; each side's figure is its median over the rounds (1 to 100).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Print one JSON document (rows with both medians, the ratio and every round's values)
    /// instead of the table.
    #[arg(long)]
    json: bool,
    /// Tiny sizes (1 MiB chunks, 16 h2load requests, 2 measured fills): checks that every row
    /// works; the figures mean little.
    #[arg(long)]
    quick: bool,
    /// What our replicas serve: `synthetic` (bytes generated per request, the node's default
    /// origin) or `files` (the very files nginx serves, through the directory origin).
    #[arg(long, default_value = "synthetic", value_parser = ["synthetic", "files"])]
    origin: String,
    /// Run only the rows whose name (`listener-h2c/tokio`, `client-http1/smol`, ...) contains
    /// one of these, comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Time one tool run (one h2load, curl or bench fill) may take before the benchmark fails.
    #[arg(long, default_value = "120s", value_parser = duration)]
    run_timeout: Duration,
}

/// Runs the benchmark; SIGINT or SIGTERM stops it (servers stopped, scratch directory removed).
pub(crate) async fn run(a: SideBySideArgs) -> Result<(), String> {
    tokio::select! {
        result = run_rounds(a) => result,
        () = crate::node::wait_for_signal() => {
            Err("side-by-side: interrupted (servers stopped, scratch directory removed)".into())
        }
    }
}

/// The rows `--only` selects (all without it); an error listing the names when none matches.
fn select_rows(only: &[String]) -> Result<Vec<Row>, String> {
    let rows: Vec<Row> = ROWS
        .iter()
        .copied()
        .filter(|r| only.is_empty() || only.iter().any(|o| r.key().contains(o.as_str())))
        .collect();
    if rows.is_empty() {
        let names: Vec<String> = ROWS.iter().map(Row::key).collect();
        return Err(format!(
            "--only {}: matches no row; rows: {}",
            only.join(","),
            names.join(", ")
        ));
    }
    Ok(rows)
}

async fn run_rounds(a: SideBySideArgs) -> Result<(), String> {
    if !(1..=100).contains(&a.rounds) {
        return Err(format!("--rounds {}: must be 1 to 100", a.rounds));
    }
    let rows = select_rows(&a.only)?;
    let tools = Tools::find().await?;
    let plan = Plan::new(a.quick, a.run_timeout);
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;
    let bench = Bench::start(&tools, &plan, &rows, &a.origin, &exe).await?;
    let runner = Runner {
        tools: &tools,
        exe: &exe,
        client_tls: &bench.client_tls,
        plan: &plan,
    };
    let mut results: Vec<RowResult> = rows.iter().copied().map(RowResult::new).collect();
    for round in 0..a.rounds {
        for result in &mut results {
            // Alternate which side goes first, so neither always runs on a warmer machine.
            let order = if round % 2 == 0 {
                [Which::Reference, Which::Ours]
            } else {
                [Which::Ours, Which::Reference]
            };
            for which in order {
                let row = result.row;
                let value = bench.measure(&runner, &row, which).await.map_err(|e| {
                    format!("{} ({}), round {}: {e}", row.key(), which.name(), round + 1)
                })?;
                eprintln!(
                    "round {}/{}  {:<30} {:<9} {:>8.0} MB/s",
                    round + 1,
                    a.rounds,
                    row.key(),
                    which.name(),
                    value
                );
                match which {
                    Which::Ours => result.ours.push(value),
                    Which::Reference => result.reference.push(value),
                }
            }
        }
    }
    drop(bench);
    let info = RunInfo {
        rounds: a.rounds,
        quick: a.quick,
        origin: &a.origin,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: cpu_model(),
        nginx: &tools.nginx_version,
        h2load: &tools.h2load_version,
        curl: &tools.curl_version,
        plan: &plan,
    };
    if a.json {
        println!("{}", report::json(&results, &info));
    } else {
        print!("{}", report::table(&results, &info));
    }
    Ok(())
}

/// Which side of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Ours,
    Reference,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Ours => "ours",
            Which::Reference => "reference",
        }
    }
}

/// The CPU model from `/proc/cpuinfo` ("unknown" elsewhere).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The running servers and what the rows need to reach them. Field order matters: the
/// servers are stopped before the scratch directory is removed.
struct Bench {
    _nginx: Server,
    _ours: Vec<Server>,
    nginx: NginxPorts,
    /// Our replicas' ports by driver and TLS.
    ours: HashMap<(Driver, bool), u16>,
    client_tls: ClientTls,
    _dir: TempDir,
}

/// Sets `path`'s permission bits (nginx's worker may run as another user: it must read the
/// chunk files and traverse their directories).
fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    chmod(path, 0o755)
}

impl Bench {
    /// Writes the chunk files and certificates, starts nginx and the replicas `rows` need,
    /// and checks that every server serves the expected bytes.
    async fn start(
        tools: &Tools,
        plan: &Plan,
        rows: &[Row],
        origin: &str,
        exe: &Path,
    ) -> Result<Bench, String> {
        let dir = TempDir::new("side-by-side")
            .map_err(|e| format!("creating a scratch directory: {e}"))?;
        chmod(dir.path(), 0o755)?;
        let data_root = dir.join("origin");
        let bucket_dir = data_root.join("b");
        create_dir(&bucket_dir)?;
        chmod(&data_root, 0o755)?;
        let sizes: BTreeSet<u64> = rows.iter().map(|r| plan.chunk(r.size)).collect();
        let mut expected: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut files = Vec::new();
        for &size in &sizes {
            let key = chunk_key(size);
            let bytes = SyntheticOrigin::chunk_bytes(&key, size);
            let path = bucket_dir.join(&key.object_key);
            std::fs::write(&path, &bytes)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            chmod(&path, 0o644)?;
            files.push((key.bucket.clone(), key.object_key.clone()));
            expected.insert(size, bytes);
        }

        let tls_dir = dir.join("tls");
        create_dir(&tls_dir)?;
        let pki = Pki::new(&["127.0.0.1"]).map_err(|e| e.to_string())?;
        let server = pki.write_files(&tls_dir).map_err(|e| e.to_string())?;
        let client = pki
            .client
            .write(&tls_dir, "client", pki.ca.pem(), "")
            .map_err(|e| e.to_string())?;
        let server_tls = ServerTls {
            cert: server.cert_file.clone().into(),
            key: server.key_file.clone().into(),
            ca: server.ca_file.clone().into(),
        };
        let client_tls = ClientTls {
            cert: client.cert_file.clone().into(),
            key: client.key_file.clone().into(),
            ca: client.ca_file.clone().into(),
        };

        let nginx_ports = NginxPorts {
            http1: free_port()?,
            h2c: free_port()?,
            tls: free_port()?,
        };
        let nginx_dir = dir.join("nginx");
        create_dir(&nginx_dir)?;
        let nginx = nginx::start(
            tools,
            &NginxSetup {
                dir: &nginx_dir,
                data_root: &data_root,
                files: &files,
                ports: nginx_ports,
                tls: &server_tls,
                release: tools.nginx_release,
            },
        )
        .await?;

        let wanted: HashSet<(Driver, bool)> = rows
            .iter()
            .filter_map(|r| match (r.side, r.served_by) {
                (Side::Listener, _) => Some((r.driver, r.protocol.tls())),
                // Client rows served by our replica fetch from the tokio one.
                (Side::Client, ServedBy::Replica) => Some((Driver::Tokio, r.protocol.tls())),
                (Side::Client, ServedBy::Nginx) => None,
            })
            .collect();
        let origin_arg = if origin == "files" {
            data_root.display().to_string()
        } else {
            "synthetic".to_owned()
        };
        let mut servers = Vec::new();
        let mut ours = HashMap::new();
        for driver in [Driver::Tokio, Driver::Smol] {
            for tls in [false, true] {
                if !wanted.contains(&(driver, tls)) {
                    continue;
                }
                let port = free_port()?;
                let name = format!(
                    "our {} replica{}",
                    driver.name(),
                    if tls { " (TLS)" } else { "" }
                );
                let mut command = Command::new(exe);
                let listen = format!("127.0.0.1:{port}");
                match driver {
                    // One runtime worker, as nginx runs one worker process and the smol
                    // replica one thread: each row is one connection, and the other core is
                    // the client's. With a worker per core the replica's threads and the
                    // client's contend for the two cores of a small host, and a run of our
                    // client fetching from the replica went bimodal (3.5-5 GB/s or ~2 GB/s).
                    Driver::Tokio => command.args([
                        "--workers",
                        "1",
                        "node",
                        "--listen",
                        &listen,
                        "--admin-listen",
                        "off",
                        "--peers",
                        &listen,
                        "--self-ip",
                        "127.0.0.1",
                        "--origin",
                        &origin_arg,
                    ]),
                    Driver::Smol => command.args([
                        "bench",
                        "serve-smol",
                        "--listen",
                        &listen,
                        "--origin",
                        &origin_arg,
                    ]),
                };
                if tls {
                    command.args([
                        "--tls-cert".as_ref(),
                        server_tls.cert.as_os_str(),
                        "--tls-key".as_ref(),
                        server_tls.key.as_os_str(),
                        "--tls-ca".as_ref(),
                        server_tls.ca.as_os_str(),
                    ]);
                }
                command.env("RUST_LOG", "warn").env_remove("POD_IP");
                let log = dir.join(format!(
                    "{}-{}.log",
                    driver.name(),
                    if tls { "tls" } else { "plain" }
                ));
                let mut server = Server::spawn(&name, command, log)?;
                server.wait_ready(&[port], START_TIMEOUT).await?;
                servers.push(server);
                ours.insert((driver, tls), port);
            }
        }
        let bench = Bench {
            _nginx: nginx,
            _ours: servers,
            nginx: nginx_ports,
            ours,
            client_tls,
            _dir: dir,
        };
        bench.verify(rows, plan, &expected).await?;
        Ok(bench)
    }

    /// nginx's endpoint for `protocol`.
    fn nginx_endpoint(&self, protocol: Protocol) -> Endpoint {
        match protocol {
            Protocol::H2c => Endpoint {
                port: self.nginx.h2c,
                tls: false,
            },
            Protocol::Http1 => Endpoint {
                port: self.nginx.http1,
                tls: false,
            },
            Protocol::H2Tls | Protocol::Http1Tls => Endpoint {
                port: self.nginx.tls,
                tls: true,
            },
        }
    }

    /// Our replica's endpoint for `driver` and `protocol`.
    fn our_endpoint(&self, driver: Driver, protocol: Protocol) -> Result<Endpoint, String> {
        let tls = protocol.tls();
        self.ours
            .get(&(driver, tls))
            .map(|&port| Endpoint { port, tls })
            .ok_or_else(|| {
                format!(
                    "no {} replica started for {}",
                    driver.name(),
                    protocol.name()
                )
            })
    }

    /// Where each side of `row` sends its requests.
    fn endpoints(&self, row: &Row) -> Result<(Endpoint, Option<Endpoint>), String> {
        let reference = self.nginx_endpoint(row.protocol);
        match row.side {
            Side::Listener => Ok((
                reference,
                Some(self.our_endpoint(row.driver, row.protocol)?),
            )),
            Side::Client => match row.served_by {
                ServedBy::Nginx => Ok((reference, None)),
                ServedBy::Replica => Ok((self.our_endpoint(Driver::Tokio, row.protocol)?, None)),
            },
        }
    }

    /// Fetches every chunk a row will ask for from every server it will ask, once, with our
    /// tokio client, and compares the bytes: both sides of every row move the same bytes.
    async fn verify(
        &self,
        rows: &[Row],
        plan: &Plan,
        expected: &HashMap<u64, Vec<u8>>,
    ) -> Result<(), String> {
        let mut checks: Vec<(Endpoint, Protocol, u64)> = Vec::new();
        for row in rows {
            let (reference, ours) = self.endpoints(row)?;
            for endpoint in std::iter::once(reference).chain(ours) {
                let check = (endpoint, row.protocol, plan.chunk(row.size));
                if !checks.contains(&check) {
                    checks.push(check);
                }
            }
        }
        let client_tls = TlsSettings {
            enabled: true,
            cert_file: self.client_tls.cert.display().to_string(),
            key_file: self.client_tls.key.display().to_string(),
            ca_file: self.client_tls.ca.display().to_string(),
            ..TlsSettings::default()
        };
        for (endpoint, protocol, size) in checks {
            let bytes = expected
                .get(&size)
                .ok_or_else(|| format!("no expected bytes for chunks of {size} bytes"))?;
            let config = ClusterConfig {
                internal_tls: if endpoint.tls {
                    client_tls.clone()
                } else {
                    TlsSettings::default()
                },
                max_chunk_size: size.max(ClusterConfig::default().max_chunk_size),
                ..ClusterConfig::default()
            };
            let options = Options::default().with_protocol(crate::args::protocol(protocol.http1()));
            let client = FillClient::new(&config, &options).map_err(|e| e.to_string())?;
            let target = FillTarget {
                peer: Peer {
                    ip: endpoint.addr().ip(),
                    port: endpoint.port,
                    is_self: false,
                },
                key: chunk_key(size),
                object_size: size,
            };
            let result =
                tokio::time::timeout(plan.run_timeout, fill_once(&client, &target, Some(bytes)))
                    .await;
            client.close();
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(format!(
                        "checking the bytes {} serves over {}: {e}",
                        endpoint.addr(),
                        protocol.name()
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "checking the bytes {} serves over {}: no answer within {:?}",
                        endpoint.addr(),
                        protocol.name(),
                        plan.run_timeout
                    ));
                }
            }
        }
        Ok(())
    }

    /// One run of one side of `row`; MB/s.
    async fn measure(&self, runner: &Runner<'_>, row: &Row, which: Which) -> Result<f64, String> {
        let plan = runner.plan;
        let (reference, ours) = self.endpoints(row)?;
        let chunk = plan.chunk(row.size);
        let transfers = plan.transfers(row);
        match (row.side, row.tool, which, ours) {
            (Side::Listener, Tool::H2load { streams }, Which::Reference, _) => {
                runner
                    .h2load(reference, row.protocol, streams, transfers, chunk)
                    .await
            }
            (Side::Listener, Tool::H2load { streams }, Which::Ours, Some(ours)) => {
                runner
                    .h2load(ours, row.protocol, streams, transfers, chunk)
                    .await
            }
            (Side::Listener, Tool::Curl, Which::Reference, _)
            | (Side::Client, _, Which::Reference, _) => {
                runner.curl(reference, row.protocol, transfers, chunk).await
            }
            (Side::Listener, Tool::Curl, Which::Ours, Some(ours)) => {
                runner.curl(ours, row.protocol, transfers, chunk).await
            }
            (Side::Client, _, Which::Ours, _) => {
                runner
                    .ours(reference, row.protocol, row.driver, transfers, chunk)
                    .await
            }
            (Side::Listener, _, Which::Ours, None) => {
                Err(format!("no replica of ours for {}", row.key()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_selects_by_name_and_an_unknown_name_lists_the_rows() {
        assert_eq!(select_rows(&[]).unwrap().len(), ROWS.len());
        let smol = select_rows(&["/smol".into()]).unwrap();
        assert_eq!(smol.len(), 6);
        assert!(smol.iter().all(|r| r.driver == Driver::Smol));
        let two = select_rows(&["listener-h2c/".into(), "client-h2c/".into()]).unwrap();
        assert_eq!(two.len(), 2);
        let replica = select_rows(&["from-replica".into()]).unwrap();
        assert_eq!(replica.len(), 6);
        assert!(
            replica
                .iter()
                .all(|r| r.side == Side::Client && r.served_by == ServedBy::Replica)
        );
        let err = select_rows(&["nope".into()]).unwrap_err();
        assert!(
            err.contains("nope") && err.contains("client-http1-mtls/smol"),
            "{err}"
        );
    }
}
