//! TLS files that cannot be loaded do not turn a flood of connections into a flood of reads and
//! warnings: the listener keeps serving the last good certificates, re-reads the broken files at
//! a bounded rate and warns about them at a bounded rate. (Tested here because capturing the
//! log needs tracing-subscriber, which only this crate's tests depend on.)

mod support;

use std::time::{Duration, Instant};

use orca_cluster_test_support::{Pki, TempDir};
use orca_cluster_tokio::{ListenerSettings, SyntheticOrigin};
use tokio::net::TcpStream;

use support::{Capture, Replica, config};

/// 2,000 bare TCP connects while the certificate and key files hold garbage: one
/// `tls_reload_failed` warning, not one per connect. (The runtime is single-threaded, so every
/// connection task logs through this test's subscriber.)
#[tokio::test]
async fn broken_tls_files_warn_once_for_many_connects() {
    const CONNECTS: u64 = 2_000;
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = TempDir::new("tokio-tls-reload-log").unwrap();
    let tls = Pki::new(&["127.0.0.1"])
        .unwrap()
        .write_files(dir.path())
        .unwrap();
    let r = Replica::start(
        config(Some(&tls)),
        &[],
        SyntheticOrigin,
        ListenerSettings::default(),
    )
    .await;
    std::fs::write(&tls.cert_file, "not a certificate, longer than a short one").unwrap();
    std::fs::write(&tls.key_file, "not a key").unwrap();

    let started = Instant::now();
    for _ in 0..CONNECTS {
        drop(TcpStream::connect(r.addr).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while r.listener.accepted_connections() < CONNECTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(r.listener.accepted_connections(), CONNECTS);
    // Let the last connection tasks ask for the configuration.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let elapsed = started.elapsed();

    let logged = capture.text();
    let warnings = logged
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("tls_reload_failed"))
        .count();
    assert!(
        elapsed < Duration::from_secs(10),
        "the connects took {elapsed:?}, longer than the warning interval"
    );
    assert_eq!(warnings, 1, "{CONNECTS} connects in {elapsed:?}:\n{logged}");
    r.stop().await;
}
