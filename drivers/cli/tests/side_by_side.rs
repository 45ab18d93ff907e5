//! `orca-cluster bench side-by-side` end to end, cheaply: `--quick` (1 MiB chunks) and one
//! round, against the real nginx, h2load and curl. Without them the test skips outside CI and
//! fails under `CI=true` (CI installs nginx-light, nghttp2-client and curl).

use std::path::Path;
use std::process::{Command, Output};

use orca_cluster_test_support::{TempDir, skip_outside_ci};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_orca-cluster");

/// Where the command looks for the tools besides `PATH` (nginx lives in `/usr/sbin`).
const SBIN: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// The tools that cannot be found, by name.
fn missing_tools() -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<_> = std::env::split_paths(&path)
        .chain(SBIN.iter().map(Into::into))
        .collect();
    ["nginx", "h2load", "curl"]
        .into_iter()
        .filter(|tool| !dirs.iter().any(|d| d.join(tool).is_file()))
        .collect()
}

fn side_by_side(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["bench", "side-by-side", "--quick", "--rounds", "1"])
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run orca-cluster")
}

fn skip_without_tools() -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return false;
    }
    skip_outside_ci(&format!(
        "{} not installed (apt-get install nginx-light nghttp2-client curl)",
        missing.join(", ")
    ));
    true
}

#[test]
fn every_row_runs_and_the_json_has_both_sides_of_each() {
    if skip_without_tools() {
        return;
    }
    let out = side_by_side(&["--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["rounds"], 1);
    assert_eq!(doc["quick"], true);
    assert!(
        doc["versions"]["nginx"]
            .as_str()
            .unwrap()
            .starts_with("nginx/")
    );
    let rows = doc["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["row"].as_str().unwrap()).collect();
    for expected in [
        "listener-h2c/tokio",
        "listener-h2c-16-streams/tokio",
        "listener-http1/tokio",
        "listener-http1/smol",
        "listener-h2-mtls/tokio",
        "listener-http1-mtls/tokio",
        "listener-http1-mtls/smol",
        "client-h2c/tokio",
        "client-h2-mtls/tokio",
        "client-http1/tokio",
        "client-http1/smol",
        "client-http1-mtls/tokio",
        "client-http1-mtls/smol",
        "client-h2c-from-replica/tokio",
        "client-h2-mtls-from-replica/tokio",
        "client-http1-from-replica/tokio",
        "client-http1-from-replica/smol",
        "client-http1-mtls-from-replica/tokio",
        "client-http1-mtls-from-replica/smol",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for r in rows {
        let ours = r["ours_mb_per_s"].as_f64().unwrap();
        let reference = r["reference_mb_per_s"].as_f64().unwrap();
        assert!(ours > 0.0 && reference > 0.0, "{r}");
        let ratio = r["ratio"].as_f64().unwrap();
        assert!((ratio - ours / reference).abs() < 1e-9, "{r}");
        assert_eq!(r["ours_rounds"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(r["reference_rounds"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(r["chunk_bytes"], 1 << 20, "{r}");
        let served_by = r["served_by"].as_str().unwrap();
        let from_replica = r["row"].as_str().unwrap().contains("-from-replica");
        assert_eq!(served_by == "our tokio replica", from_replica, "{r}");
    }
    assert_eq!(rows.len(), 19);
    // Nothing is left behind: no nginx or replica of this run, no scratch directory.
    assert_no_leftovers();
}

#[test]
fn the_table_serves_the_files_origin_and_only_the_selected_rows() {
    if skip_without_tools() {
        return;
    }
    let out = side_by_side(&["--origin", "files", "--only", "listener-http1/smol"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the files nginx serves"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("listener-") || l.starts_with("client-"))
        .collect();
    assert_eq!(rows.len(), 1, "{stdout}");
    assert!(
        rows[0].starts_with("listener-http1 ") && rows[0].contains(" smol "),
        "{stdout}"
    );
    assert_no_leftovers();
}

#[test]
fn missing_tools_are_named_with_their_packages() {
    // A PATH without h2load or curl (nginx may still be found in /usr/sbin).
    let empty = TempDir::new("sbs-no-tools").unwrap();
    let out = Command::new(BIN)
        .args(["bench", "side-by-side", "--quick", "--rounds", "1"])
        .env("PATH", empty.path())
        .output()
        .expect("run orca-cluster");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("h2load (Debian package nghttp2-client)")
            && stderr.contains("curl (Debian package curl)"),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_refused_naming_them() {
    let out = side_by_side(&["--only", "no-such-row"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-row") && stderr.contains("listener-h2c/tokio"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["bench", "side-by-side", "--rounds", "0"])
        .output()
        .expect("run orca-cluster");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rounds 0"));
}

/// No process still names a side-by-side scratch directory that is gone: nginx (its `-p` and
/// `-c`) and our TLS replicas (their certificate paths) name theirs, so one that outlived its
/// benchmark shows up here. (Other tests of this file may be running a benchmark at the same
/// time: their directories still exist.)
fn assert_no_leftovers() {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        for word in text.split_whitespace() {
            if word.starts_with('/') && word.contains("/orca-side-by-side-") {
                assert!(
                    Path::new(word).exists(),
                    "a server outlived its benchmark: {text}"
                );
            }
        }
    }
}
