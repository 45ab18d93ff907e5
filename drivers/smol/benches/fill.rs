//! 8 MiB fills over HTTP/1.1 on loopback — plain and mutual TLS, 1 and 16 at once — next to a
//! raw-TCP baseline moving the same bytes in the same run.
//!
//! `cargo bench -p orca-cluster-smol --bench fill` runs the criterion cases and then prints a
//! table (throughput, ratio to raw TCP, p50/p99 latency). Set `ORCA_BENCH_TABLE_ONLY=1` to skip
//! criterion and print only the table.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use orca_cluster_smol::TlsSettings;
use orca_cluster_smol::bench::{FILL_BYTES, FillBench, Measurement, RawTcpBench, measure, table};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// Server and client TLS settings from a fresh CA, written to a temporary directory.
fn tls_settings() -> (TlsSettings, TlsSettings) {
    let dir = std::env::temp_dir().join(format!("orca-smol-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench ca");
    let ca_pem = ca_params.self_signed(&ca_key).expect("ca").pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["orca-peers.bench".to_string()]).expect("params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer).expect("leaf");
        let path = |ext: &str| dir.join(format!("{name}.{ext}"));
        std::fs::write(path("crt"), cert.pem()).expect("write");
        std::fs::write(path("key"), key.serialize_pem()).expect("write");
        std::fs::write(path("ca"), &ca_pem).expect("write");
        TlsSettings {
            enabled: true,
            cert_file: path("crt").display().to_string(),
            key_file: path("key").display().to_string(),
            ca_file: path("ca").display().to_string(),
            server_name: "orca-peers.bench".into(),
        }
    };
    (write("server"), write("client"))
}

struct Setup {
    raw: RawTcpBench,
    plain: FillBench,
    mtls: FillBench,
}

fn setup() -> Setup {
    smol::block_on(async {
        Setup {
            raw: RawTcpBench::start(FILL_BYTES).await.expect("raw tcp"),
            plain: FillBench::start(None, FILL_BYTES).await.expect("plain"),
            mtls: FillBench::start(Some(tls_settings()), FILL_BYTES)
                .await
                .expect("mtls"),
        }
    })
}

fn criterion_cases(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("fill_8MiB");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Bytes(FILL_BYTES as u64));
    group.bench_function("raw_tcp", |b| {
        b.iter(|| smol::block_on(s.raw.transfer_once()).expect("raw"))
    });
    group.bench_function("http1_plain_c1", |b| {
        b.iter(|| smol::block_on(s.plain.fill_once()).expect("fill"))
    });
    group.bench_function("http1_mtls_c1", |b| {
        b.iter(|| smol::block_on(s.mtls.fill_once()).expect("fill"))
    });
    group.throughput(Throughput::Bytes(16 * FILL_BYTES as u64));
    group.bench_function("http1_plain_c16", |b| {
        b.iter(|| smol::block_on(s.plain.fill_concurrent(16)).expect("fill"))
    });
    group.bench_function("http1_mtls_c16", |b| {
        b.iter(|| smol::block_on(s.mtls.fill_concurrent(16)).expect("fill"))
    });
    group.finish();
}

fn summary(s: &Setup) -> Vec<Measurement> {
    let bytes = FILL_BYTES as u64;
    smol::block_on(async {
        let timed = |started: std::time::Instant| vec![started.elapsed()];
        let mut out = Vec::new();
        out.push(
            measure("raw_tcp", bytes, 1, 5, 60, || async {
                let started = std::time::Instant::now();
                s.raw.transfer_once().await.map(|_| timed(started))
            })
            .await
            .expect("raw"),
        );
        for (name, bench) in [("http1_plain", &s.plain), ("http1_mtls", &s.mtls)] {
            out.push(
                measure(&format!("{name}_c1"), bytes, 1, 5, 60, || async {
                    let started = std::time::Instant::now();
                    bench.fill_once().await.map(|_| timed(started))
                })
                .await
                .expect("fill"),
            );
            out.push(
                measure(&format!("{name}_c16"), bytes, 16, 2, 15, || {
                    bench.fill_concurrent(16)
                })
                .await
                .expect("fill"),
            );
        }
        out
    })
}

fn main() {
    let s = setup();
    if std::env::var_os("ORCA_BENCH_TABLE_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        criterion_cases(&mut c, &s);
        c.final_summary();
    }
    let measurements = summary(&s);
    println!(
        "\n8 MiB fills over loopback, smol driver (HTTP/1.1), SMOL_THREADS={}",
        std::env::var("SMOL_THREADS").unwrap_or_else(|_| "1 (default)".into())
    );
    print!("{}", table(&measurements, "raw_tcp"));
    smol::block_on(async {
        s.plain.shutdown().await;
        s.mtls.shutdown().await;
    });
}
