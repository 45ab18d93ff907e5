//! The `orca-cluster` command, run as a subprocess: every subcommand, on loopback.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use orca_cluster_test_support::{Pki, TempDir};
use orca_cluster_testdns::TestDnsServer;
use orca_cluster_tokio::{
    ChunkKey, Cluster, ClusterConfig, FillListener, ListenerSettings, Options, StaticPeerSource,
    SyntheticOrigin,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_orca-cluster");
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("POD_IP")
        .env("RUST_LOG", "error")
        .output()
        .expect("run orca-cluster")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn key_args(index: u64) -> Vec<String> {
    [
        "--origin-id",
        "s3",
        "--bucket",
        "media",
        "--key",
        "videos/cat 1.mp4",
        "--etag",
        "v1",
        "--chunk-size",
        "1048576",
        "--index",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([index.to_string()])
    .collect()
}

fn key(index: u64) -> ChunkKey {
    ChunkKey {
        origin_id: "s3".into(),
        bucket: "media".into(),
        object_key: "videos/cat 1.mp4".into(),
        etag: "v1".into(),
        chunk_size: 1 << 20,
        index,
    }
}

const OBJECT_SIZE: u64 = 16 * (1 << 20) - 1000;

#[test]
fn demo_runs_to_completion() {
    let o = run(&[
        "demo",
        "--chunks",
        "4",
        "--chunk-mib",
        "1",
        "--refresh",
        "200ms",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "demo failed: {out}\n{}", stderr(&o));
    for needle in [
        "[1/7] embedded DNS server",
        "peer set, generation 1",
        "12 chunk reads, 4 origin fetches",
        "10 readers through replica-2 of a chunk coordinated by",
        ": 1 origin fetch",
        "replica-3 is gone: connect",
        "4 chunks verified",
        "read locally around the dead coordinator",
        "saw generation 2",
        "every one of them from replica-3",
        "done in",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn coordinator_go_compat_matches_the_go_vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/go_compat_sample.json"
    ))
    .unwrap();
    let vectors: Value = serde_json::from_str(&text).unwrap();
    for case in vectors["cases"].as_array().unwrap() {
        let set = &vectors["peer_sets"][case["peer_set"].as_str().unwrap()];
        let peers: Vec<String> = set
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let ip: IpAddr = p["ip"].as_str().unwrap().parse().unwrap();
                SocketAddr::new(ip, p["port"].as_u64().unwrap() as u16).to_string()
            })
            .collect();
        let k = &case["key"];
        let index = k["index"].as_u64().unwrap().to_string();
        let chunk_size = k["chunk_size"].as_u64().unwrap().to_string();
        let o = run(&[
            "coordinator",
            "--scoring",
            "go-compat",
            "--json",
            "--peers",
            &peers.join(","),
            "--origin-id",
            k["origin_id"].as_str().unwrap(),
            "--bucket",
            k["bucket"].as_str().unwrap(),
            "--key",
            k["object_key"].as_str().unwrap(),
            "--etag",
            k["etag"].as_str().unwrap(),
            "--chunk-size",
            &chunk_size,
            "--index",
            &index,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let winner = &set[case["winner_index"].as_u64().unwrap() as usize];
        assert_eq!(v["coordinator"]["ip"], winner["ip"], "{}", case["name"]);
        assert_eq!(v["coordinator"]["port"], winner["port"], "{}", case["name"]);
        // Every score of the Go implementation appears with its peer, as a JSON u64.
        let ranked = v["ranked"].as_array().unwrap();
        for (peer, score) in set
            .as_array()
            .unwrap()
            .iter()
            .zip(case["scores"].as_array().unwrap())
        {
            let want: u64 = score.as_str().unwrap().parse().unwrap();
            assert!(
                ranked.iter().any(|r| r["ip"] == peer["ip"]
                    && r["port"] == peer["port"]
                    && r["score"].as_u64() == Some(want)),
                "{}: score {want} of {peer} missing in {v}",
                case["name"]
            );
        }
    }
}

#[test]
fn coordinator_text_output_ranks_every_peer() {
    let mut args = vec![
        "coordinator".to_string(),
        "--peers".into(),
        "10.0.0.1,10.0.0.2,10.0.0.3".into(),
        "--self-ip".into(),
        "10.0.0.2".into(),
    ];
    args.extend(key_args(3));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("coordinator of s3/media/videos/cat 1.mp4 chunk 3 (xxh3 scoring)"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("10.0.0.")).count(),
        4,
        "{out}"
    );
    assert!(out.contains("self"), "{out}");
    let bad = run(&[
        "coordinator",
        "--peers",
        "10.0.0.1",
        "--origin-id",
        "o",
        "--key",
        "k",
        "--chunk-size",
        "0",
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--chunk-size"), "{}", stderr(&bad));
}

#[test]
fn peers_json_resolves_the_service() {
    let dns = TestDnsServer::start().unwrap();
    let ips: Vec<IpAddr> = ["10.1.0.3", "10.1.0.1", "10.1.0.2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    dns.set_records("orca-peers.test", &ips);
    let ns = dns.addr().to_string();
    let o = run(&[
        "peers",
        "--service",
        "orca-peers.test",
        "--nameserver",
        &ns,
        "--self-ip",
        "10.1.0.2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["generation"], 1);
    let peers = v["peers"].as_array().unwrap();
    let listed: Vec<(&str, bool)> = peers
        .iter()
        .map(|p| (p["ip"].as_str().unwrap(), p["self"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [("10.1.0.1", false), ("10.1.0.2", true), ("10.1.0.3", false)]
    );
    assert!(peers.iter().all(|p| p["port"] == 0));

    // --watch --count 1 prints the initial snapshot and the next change.
    let mut child = Command::new(BIN)
        .args([
            "peers",
            "--service",
            "orca-peers.test",
            "--nameserver",
            &ns,
            "--self-ip",
            "10.1.0.2",
        ])
        .args(["--json", "--watch", "--count", "1", "--refresh", "100ms"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    dns.set_records("orca-peers.test", &ips[1..]); // 10.1.0.3 leaves
    let out = wait(&mut child, Duration::from_secs(10));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let last: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(last["generation"], 2);
    assert_eq!(last["peers"].as_array().unwrap().len(), 2);

    // An unknown name is a failure at bootstrap: the snapshot is self only.
    let o = run(&[
        "peers",
        "--service",
        "nope.test",
        "--nameserver",
        &ns,
        "--self-ip",
        "10.1.0.2",
    ]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("1 peer(s)"), "{}", stdout(&o));
}

/// Waits (bounded) for a child to exit and returns its stdout.
fn wait(child: &mut Child, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert!(status.success(), "exit {status}: {out}");
            return out;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A serving replica on 127.0.0.1 plus a second (never dialed) peer, so that the server
/// coordinates only some chunks.
async fn serving_replica() -> (Cluster, orca_cluster_tokio::ListenerHandle, SocketAddr) {
    let listener = FillListener::bind(SocketAddr::new(LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr();
    let other = SocketAddr::new(LOCALHOST, 1);
    let config = ClusterConfig {
        service: "static".into(),
        self_pod_ip: vec![LOCALHOST],
        ..ClusterConfig::default()
    };
    let options = Options::default()
        .with_peer_source(StaticPeerSource::new([addr, other]))
        .with_self_port(addr.port());
    let cluster = Cluster::start(config, options).await.unwrap();
    let handle = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
    (cluster, handle, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_fetches_verifies_and_reports_errors() {
    let (cluster, handle, addr) = serving_replica().await;
    let mine = (0..16).find(|&i| cluster.is_coordinator(&key(i))).unwrap();
    let theirs = (0..16).find(|&i| !cluster.is_coordinator(&key(i))).unwrap();
    let dir = std::env::temp_dir().join(format!("orca-cli-fill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_file = dir.join("chunk");
    let fill = move |index: u64, extra: &[&str]| fill_peer(addr, index, OBJECT_SIZE, extra);
    let o = tokio::task::spawn_blocking({
        let out_file = out_file.clone();
        move || {
            fill(
                mine,
                &["--verify-synthetic", "-o", out_file.to_str().unwrap()],
            )
        }
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1048576 bytes"), "{}", stdout(&o));
    assert!(stdout(&o).contains("bytes verified"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        SyntheticOrigin::chunk_bytes(&key(mine), OBJECT_SIZE)
    );

    let o = tokio::task::spawn_blocking(move || fill(mine, &["--http1"]))
        .await
        .unwrap();
    assert!(o.status.success(), "http1: {}", stderr(&o));

    // 409 from a replica that does not coordinate the chunk: one line, non-zero exit.
    let o = tokio::task::spawn_blocking(move || fill(theirs, &[]))
        .await
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("409"), "{err}");

    // Connection refused.
    let closed = TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let o = tokio::task::spawn_blocking(move || fill_peer(closed, 0, OBJECT_SIZE, &[]))
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("connect"), "{}", stderr(&o));

    handle.shutdown(Duration::from_secs(1)).await;
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

#[test]
fn node_serves_fills_and_admin_endpoints() {
    let fill_port = free_port();
    let admin_port = free_port();
    let listen = format!("127.0.0.1:{fill_port}");
    let admin = SocketAddr::new(LOCALHOST, admin_port);
    let mut node = Command::new(BIN)
        .args([
            "node",
            "--peers",
            &listen,
            "--self-ip",
            "127.0.0.1",
            "--listen",
            &listen,
        ])
        .args(["--admin-listen", &admin.to_string(), "--refresh", "200ms"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let ready = loop {
        if let Some((200, _)) = http_get(admin, "/readyz") {
            break true;
        }
        if start.elapsed() > Duration::from_secs(10) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let result = std::panic::catch_unwind(|| {
        assert!(ready, "node never became ready");
        assert_eq!(http_get(admin, "/healthz").unwrap().0, 200);
        // A client that connects and sends nothing is closed within the admin port's bounds
        // (request head 5 s, connection lifetime 10 s), and the port keeps answering.
        let mut silent = std::net::TcpStream::connect(admin).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let opened = std::time::Instant::now();
        let mut byte = [0u8; 1];
        let read = std::io::Read::read(&mut silent, &mut byte);
        let waited = opened.elapsed();
        assert!(
            matches!(read, Ok(0) | Err(_)) && waited < Duration::from_secs(12),
            "silent admin connection: {read:?} after {waited:?}"
        );
        assert!(
            read.is_ok(),
            "closed by the node, not by the 15 s read timeout: {read:?}"
        );
        assert_eq!(http_get(admin, "/healthz").unwrap().0, 200);
        let (status, body) = http_get(admin, "/peers").unwrap();
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["peers"][0]["port"], fill_port);
        assert_eq!(v["peers"][0]["self"], true);
        let q = orca_cluster_tokio::core::wire::encode_query(&key(2), OBJECT_SIZE);
        let (status, body) = http_get(admin, &format!("/coordinator?{q}")).unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("\"port\":{fill_port}")), "{body}");
        assert_eq!(http_get(admin, "/coordinator?index=x").unwrap().0, 400);
        // A single-replica cluster coordinates everything: fill any chunk from it.
        let peer = listen.parse().unwrap();
        let o = fill_peer(peer, 2, OBJECT_SIZE, &["--verify-synthetic"]);
        assert!(o.status.success(), "{}", stderr(&o));
    });
    // SIGTERM: the node shuts down gracefully and exits 0.
    let _ = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = node.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = node.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "node did not exit cleanly: {status:?}"
    );
}

#[test]
fn bench_lookup_and_fill_print_json_rows() {
    let o = run(&["bench", "lookup", "--per-row", "20ms", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        assert!(r["ns_per_lookup"].as_f64().unwrap() > 0.0);
        assert!(["xxh3", "go-compat"].contains(&r["scoring"].as_str().unwrap()));
    }
    let o = run(&[
        "bench",
        "fill",
        "--chunk-mib",
        "1",
        "--fills",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "{v}");
    let protocols: Vec<&str> = rows
        .iter()
        .map(|r| r["protocol"].as_str().unwrap())
        .collect();
    for p in ["raw-tcp", "h2c", "h2-tls", "http1", "http1-tls"] {
        assert!(protocols.contains(&p), "{p} missing: {protocols:?}");
    }
    for r in rows {
        assert!(r["mb_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["p99_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap());
        assert!([1, 16].contains(&r["concurrency"].as_u64().unwrap()));
    }
}

#[test]
fn peers_ip_family_keeps_one_record_type() {
    let dns = TestDnsServer::start().unwrap();
    let ips: Vec<IpAddr> = ["10.1.0.1", "10.1.0.2", "fd00::1", "fd00::2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    dns.set_records("dual.test", &ips);
    let ns = dns.addr().to_string();
    let listed = |family: &str| -> Vec<String> {
        let o = run(&[
            "peers",
            "--service",
            "dual.test",
            "--nameserver",
            &ns,
            "--self-ip",
            "10.1.0.1,fd00::1",
            "--ip-family",
            family,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["ip"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed("any").len(), 4);
    assert_eq!(listed("ipv4"), ["10.1.0.1", "10.1.0.2"]);
    assert_eq!(listed("ipv6"), ["fd00::1", "fd00::2"]);
    let bad = run(&["peers", "--service", "dual.test", "--ip-family", "ipx"]);
    assert!(!bad.status.success());
}

/// A static list with ports: without `--self-ip` the command lists exactly the given entries;
/// with a self IP shared by two entries it needs `--self-port`, and says so.
#[test]
fn peers_from_a_static_list_with_ports() {
    let listed = |extra: &[&str]| -> Result<Vec<(String, u64, bool)>, String> {
        let mut args = vec![
            "peers",
            "--peers",
            "127.0.0.1:4001,127.0.0.1:4002",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        if !o.status.success() {
            return Err(stderr(&o));
        }
        let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        Ok(v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let ip = p["ip"].as_str().unwrap().to_string();
                (
                    ip,
                    p["port"].as_u64().unwrap(),
                    p["self"].as_bool().unwrap(),
                )
            })
            .collect())
    };
    let local = "127.0.0.1".to_string();
    assert_eq!(
        listed(&[]).unwrap(),
        [(local.clone(), 4001, false), (local.clone(), 4002, false)]
    );
    let ambiguous = listed(&["--self-ip", "127.0.0.1"]).unwrap_err();
    assert!(ambiguous.contains("self_port"), "{ambiguous}");
    assert_eq!(
        listed(&["--self-ip", "127.0.0.1", "--self-port", "4002"]).unwrap(),
        [(local.clone(), 4001, false), (local, 4002, true)]
    );
}

#[test]
fn node_serves_files_from_an_origin_directory() {
    let dir = std::env::temp_dir().join(format!("orca-cli-origin-{}", std::process::id()));
    let object = dir.join("media/videos/cat 1.mp4");
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&object, &data).unwrap();
    let fill_port = free_port();
    let listen = format!("127.0.0.1:{fill_port}");
    let mut node = Command::new(BIN)
        .args([
            "node",
            "--peers",
            &listen,
            "--self-ip",
            "127.0.0.1",
            "--listen",
            &listen,
        ])
        .args(["--admin-listen", "off", "--origin", dir.to_str().unwrap()])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let peer: SocketAddr = listen.parse().unwrap();
    let fill = |index: u64, object_size: u64, out: &std::path::Path| {
        fill_peer(peer, index, object_size, &["-o", out.to_str().unwrap()])
    };
    let result = std::panic::catch_unwind(|| {
        // Wait (bounded) for the listener.
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", fill_port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "node did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let size = data.len() as u64;
        // Chunk 2 of 1 MiB chunks: the 951 424-byte tail of the 3 000 000-byte file.
        let out = dir.join("tail.bin");
        let o = fill(2, size, &out);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), &data[2 << 20..]);
        let out = dir.join("first.bin");
        let o = fill(0, size, &out);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), &data[..1 << 20]);
        // The request's object size must match the file: otherwise the filler fails (502).
        let o = fill(0, size + 1, &dir.join("bad.bin"));
        assert!(!o.status.success());
        assert!(stderr(&o).contains("502"), "{}", stderr(&o));
    });
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Runs `fill --peer addr` for chunk `index` of an object of `object_size` bytes with extra
/// flags (blocking; call from a blocking thread inside tokio tests).
fn fill_peer(addr: SocketAddr, index: u64, object_size: u64, extra: &[&str]) -> Output {
    let mut args = vec!["fill".to_string(), "--peer".into(), addr.to_string()];
    args.extend(key_args(index));
    args.extend(["--object-size".to_string(), object_size.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_reports_tls_status_and_truncation_errors_in_one_line() {
    // TLS: a client with certificates against a plain listener fails the handshake.
    let (cluster, handle, addr) = serving_replica().await;
    let mine = (0..16).find(|&i| cluster.is_coordinator(&key(i))).unwrap();
    let dir = TempDir::new("cli-tls").unwrap();
    let tls = Pki::new(&["127.0.0.1"])
        .unwrap()
        .write_files(dir.path())
        .unwrap();
    let (cert, key_file, ca) = (
        tls.cert_file.clone(),
        tls.key_file.clone(),
        tls.ca_file.clone(),
    );
    let o = tokio::task::spawn_blocking(move || {
        fill_peer(
            addr,
            mine,
            OBJECT_SIZE,
            &["--tls-cert", &cert, "--tls-key", &key_file, "--tls-ca", &ca],
        )
    })
    .await
    .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("tls"), "{err}");

    // Status: a server answering 503 with a body.
    let server = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let status_addr = server.local_addr().unwrap();
    let responder = std::thread::spawn(move || {
        if let Ok((mut s, _)) = server.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\nconnection: close\r\n\r\noverload\n",
            );
        }
    });
    let o =
        tokio::task::spawn_blocking(move || fill_peer(status_addr, 0, OBJECT_SIZE, &["--http1"]))
            .await
            .unwrap();
    responder.join().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("503") && err.contains("overload"), "{err}");

    // Truncation: the declared length is right, the body stops early.
    let server = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let short_addr = server.local_addr().unwrap();
    let responder = std::thread::spawn(move || {
        if let Ok((mut s, _)) = server.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n0123456789");
        }
    });
    let o =
        tokio::task::spawn_blocking(move || fill_peer(short_addr, 0, OBJECT_SIZE, &["--http1"]))
            .await
            .unwrap();
    responder.join().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("truncated: got 10 of 1048576 bytes"), "{err}");

    handle.shutdown(Duration::from_secs(1)).await;
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

/// A peer's error body reaches the terminal escaped: its screen clear, title change, bell and
/// fake second line are shown as text (`\x1b`, `\x07`, `\x0a`), never sent to the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_escapes_control_characters_of_a_peer_error_body() {
    const BODY: &[u8] = b"busy\x1b[2J\x1b]0;title\x07\norca-cluster: filled chunk 0\xc2\x9b\x7f ok";
    let server = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = server.local_addr().unwrap();
    let responder = std::thread::spawn(move || {
        if let Ok((mut s, _)) = server.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                BODY.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(BODY);
        }
    });
    let o = tokio::task::spawn_blocking(move || fill_peer(addr, 0, OBJECT_SIZE, &["--http1"]))
        .await
        .unwrap();
    responder.join().unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    for output in [&o.stderr, &o.stdout] {
        assert!(
            !output.iter().any(|&b| b == 0x1b || b == 0x07 || b == 0x7f),
            "raw control bytes reach the terminal: {err:?}"
        );
    }
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains('\u{9b}'),
        "a C1 control reaches the terminal: {err:?}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
    assert!(
        err.contains(
            r"503: busy\x1b[2J\x1b]0;title\x07\x0aorca-cluster: filled chunk 0\u{9b}\x7f ok"
        ),
        "{err}"
    );
}

/// The node's open descriptors and resident memory (KiB), from `/proc`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

/// 300 connections that send nothing, against a node limited to 256 open files: the node
/// keeps its fill connections within its descriptor budget (the rest wait in the backlog),
/// `/healthz` keeps answering at once, the silent connections are closed at
/// `--header-read-timeout`, and a real fill then succeeds.
#[test]
fn a_connection_flood_under_a_small_open_file_limit_leaves_the_node_serving() {
    let fill_port = free_port();
    let admin = SocketAddr::new(LOCALHOST, free_port());
    let listen = format!("127.0.0.1:{fill_port}");
    let fill_addr: SocketAddr = listen.parse().unwrap();
    let mut node = Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" \"$@\"", BIN, "node"])
        .args([
            "--peers",
            &listen,
            "--self-ip",
            "127.0.0.1",
            "--listen",
            &listen,
        ])
        .args(["--admin-listen", &admin.to_string(), "--refresh", "1s"])
        .args(["--header-read-timeout", "1s"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = node.id();
    let result = std::panic::catch_unwind(|| {
        let start = Instant::now();
        while !matches!(http_get(admin, "/readyz"), Some((200, _))) {
            assert!(start.elapsed() < Duration::from_secs(10), "never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (idle_fds, idle_rss) = fds_and_rss(pid);
        // The flood: 4 threads × 75 connections that never send a byte.
        let flood: Vec<TcpStream> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..75)
                            .filter_map(|_| {
                                TcpStream::connect_timeout(&fill_addr, Duration::from_millis(300))
                                    .ok()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let asked = Instant::now();
        let health = http_get(admin, "/healthz");
        let health_took = asked.elapsed();
        let (flood_fds, flood_rss) = fds_and_rss(pid);
        assert_eq!(health.map(|h| h.0), Some(200), "/healthz during the flood");
        assert!(health_took < Duration::from_secs(1), "{health_took:?}");
        assert!(flood_fds < 256, "{flood_fds} descriptors open");
        let filled = Instant::now();
        let o = fill_peer(fill_addr, 2, OBJECT_SIZE, &["--verify-synthetic"]);
        let fill_took = filled.elapsed();
        assert!(o.status.success(), "{}", stderr(&o));
        // Every flood connection the node accepted is closed by now (EOF or reset).
        let mut closed = 0;
        for mut c in flood.iter().take(50) {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if matches!(c.read(&mut [0u8; 1]), Ok(0) | Err(_)) {
                closed += 1;
            }
        }
        let (after_fds, after_rss) = fds_and_rss(pid);
        eprintln!(
            "flood of {} connections under a 256-file limit: fds idle {idle_fds} / flood \
             {flood_fds} / after {after_fds}; RSS KiB idle {idle_rss} / flood {flood_rss} / \
             after {after_rss}; /healthz in {health_took:?}; fill in {fill_took:?}; {closed}/50 \
             closed by the node",
            flood.len()
        );
        assert_eq!(closed, 50, "silent connections closed by the node");
    });
    let _ = node.kill();
    let _ = node.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// The sum of the samples of metric `name` whose labels include `labels`, in a Prometheus text
/// exposition (0 when there is none).
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a sample value"))
        .sum()
}

/// `GET /metrics` on a running node after real fills (`orca-cluster fill` against it): the
/// Prometheus text adds up (started = ok + failed + cancelled for the listener) and matches the
/// fills made — chunks served, a chunk it does not coordinate (409), a chunk its origin cannot
/// serve (502).
#[test]
fn node_metrics_count_the_fills_it_served() {
    let dir = TempDir::new("cli-metrics").unwrap();
    let object = dir.path().join("media/videos/cat 1.mp4");
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..OBJECT_SIZE)
        .map(|i| (i * 13 + i / 4099) as u8)
        .collect();
    std::fs::write(&object, &data).unwrap();
    let fill_port = free_port();
    let listen = format!("127.0.0.1:{fill_port}");
    let admin = SocketAddr::new(LOCALHOST, free_port());
    // A second (never dialed) peer, so that the node coordinates only some chunks.
    let peers = format!("{listen},127.0.0.1:1");
    let mut node = Command::new(BIN)
        .args(["node", "--peers", &peers, "--self-ip", "127.0.0.1"])
        .args(["--listen", &listen, "--admin-listen", &admin.to_string()])
        .args([
            "--origin",
            dir.path().to_str().unwrap(),
            "--refresh",
            "200ms",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let start = Instant::now();
        while !matches!(http_get(admin, "/readyz"), Some((200, _))) {
            assert!(start.elapsed() < Duration::from_secs(10), "never ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let peer: SocketAddr = listen.parse().unwrap();
        // Which of the (full, 1 MiB) chunks the node coordinates, from its own admin port.
        let (mine, theirs): (Vec<u64>, Vec<u64>) = (0..15).partition(|&i| {
            let q = orca_cluster_tokio::core::wire::encode_query(&key(i), OBJECT_SIZE);
            let (status, body) = http_get(admin, &format!("/coordinator?{q}")).unwrap();
            assert_eq!(status, 200, "{body}");
            body.contains(&format!("\"port\":{fill_port}"))
        });
        assert!(mine.len() >= 2 && !theirs.is_empty(), "{mine:?} {theirs:?}");
        let out = dir.path().join("out.bin");
        for &i in &mine[..2] {
            let o = fill_peer(
                peer,
                i,
                OBJECT_SIZE,
                &["--http1", "-o", out.to_str().unwrap()],
            );
            assert!(o.status.success(), "{}", stderr(&o));
        }
        let o = fill_peer(peer, theirs[0], OBJECT_SIZE, &[]);
        assert!(stderr(&o).contains("409"), "{}", stderr(&o));
        // The file is not of this size: the origin fails the fill (502).
        let o = fill_peer(peer, mine[0], OBJECT_SIZE + 1, &[]);
        assert!(stderr(&o).contains("502"), "{}", stderr(&o));

        // The raw exchange, to see the head.
        let mut s = TcpStream::connect(admin).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        let listener = |name: &str, extra: &[(&str, &str)]| {
            let mut labels = vec![("role", "listener")];
            labels.extend_from_slice(extra);
            metric(body, name, &labels)
        };
        let started = listener("orca_cluster_fills_started_total", &[]);
        let completed = |outcome| {
            listener(
                "orca_cluster_fills_completed_total",
                &[("outcome", outcome)],
            )
        };
        assert_eq!(
            started, 3.0,
            "two served, one failed by the origin:\n{body}"
        );
        assert_eq!(
            started,
            completed("ok") + completed("failed") + completed("cancelled"),
            "{body}"
        );
        assert_eq!(completed("ok"), 2.0, "{body}");
        assert_eq!(completed("failed"), 1.0, "{body}");
        assert_eq!(
            listener(
                "orca_cluster_fill_failures_total",
                &[("kind", "filler_error")]
            ),
            1.0,
            "{body}"
        );
        assert_eq!(
            listener("orca_cluster_fill_bytes_total", &[]),
            2.0 * 1048576.0,
            "{body}"
        );
        assert_eq!(listener("orca_cluster_fills_in_flight", &[]), 0.0);
        assert_eq!(
            listener("orca_cluster_fill_duration_seconds_count", &[]),
            3.0,
            "{body}"
        );
        assert_eq!(
            metric(
                body,
                "orca_cluster_listener_refusals_total",
                &[("reason", "not_coordinator")]
            ),
            1.0,
            "{body}"
        );
        assert_eq!(metric(body, "orca_cluster_peers", &[]), 2.0, "{body}");
        assert!(metric(body, "orca_cluster_lookups_total", &[]) >= 1.0);
        assert!(body.contains("# TYPE orca_cluster_fill_duration_seconds histogram"));
    });
    let _ = node.kill();
    let _ = node.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
