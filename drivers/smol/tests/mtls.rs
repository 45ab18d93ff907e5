//! Mutual TLS: fills between replicas with certificates from one CA; rejection of clients
//! without a certificate or with one from another CA, of servers from another CA or with the
//! wrong name; certificate rotation picked up without a restart. Each rejection is checked for
//! its exact cause (the rustls error or the TLS alert), not just for failing.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use orca_cluster_core::wire::encode_query;
use orca_cluster_smol::{
    ChunkKey, Cluster, FillError, ListenerSettings, Options, Peer, StaticPeerSource,
    SyntheticOrigin, TlsSettings,
};
use orca_cluster_test_support::{Pki, TempDir, rustls_error};
use rustls::{AlertDescription, CertificateError};
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use support::*;

const NAME: &str = "orca-peers.test";
const CHUNK: u64 = 256 * 1024;
const OBJECT: u64 = CHUNK * REMOTE_KEY_SEARCH;

fn peer(addr: SocketAddr) -> Peer {
    Peer {
        ip: addr.ip(),
        port: addr.port(),
        is_self: false,
    }
}

/// A standalone client cluster with these TLS settings.
async fn client(tls: TlsSettings) -> Cluster {
    Cluster::start(
        config(Some(tls)),
        Options::default()
            .with_peer_source(StaticPeerSource::new([]))
            .with_self_port(1),
    )
    .await
    .unwrap()
}

/// Asserts that `e` is a failed TLS handshake whose certificate check failed with `expected`.
#[track_caller]
fn assert_certificate_error(e: &FillError, expected: impl Fn(&CertificateError) -> bool) {
    assert!(
        matches!(e, FillError::Tls(_)),
        "not a TLS handshake error: {e:?}"
    );
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(c)) if expected(c) => {}
        other => panic!("unexpected TLS failure {other:?} in {e:?}"),
    }
}

/// Whether `c` says the certificate does not name `name`.
fn not_valid_for(c: &CertificateError, name: &ServerName<'_>) -> bool {
    matches!(c, CertificateError::NotValidForNameContext { expected, .. } if expected == name)
}

async fn fill(c: &Cluster, addr: SocketAddr, k: &ChunkKey) -> Result<Vec<u8>, FillError> {
    c.fill_from_peer(&peer(addr), k, OBJECT)
        .await?
        .collect_bytes()
        .await
        .map(|b| b.to_vec())
}

#[test]
fn replicas_fill_over_mutual_tls() {
    let pki = Pki::new(&[NAME]).unwrap();
    let dir = TempDir::new("smol-mtls-ok").unwrap();
    let settings: Vec<TlsSettings> = (0..3)
        .map(|i| {
            let leaf = pki.ca.leaf(&[NAME]).unwrap();
            let name = format!("r{i}");
            leaf.write(dir.path(), &name, pki.ca.pem(), NAME).unwrap()
        })
        .collect();
    run(30, async {
        let (replicas, _) = replicas(
            3,
            |i| Some(settings[i].clone()),
            || SyntheticOrigin,
            ListenerSettings::default(),
        )
        .await;
        for index in 0..8 {
            let k = key(index, CHUNK);
            let coordinator = replicas[0].cluster.coordinator(&k);
            if coordinator.is_self {
                continue;
            }
            let body = replicas[0]
                .cluster
                .fill_from_peer(&coordinator, &k, OBJECT)
                .await
                .unwrap();
            assert!(
                body.collect_bytes().await.unwrap() == SyntheticOrigin::chunk_bytes(&k, OBJECT)
            );
        }
        // Keep-alive works over TLS too.
        let (k, owner) = remote_key(&replicas, CHUNK);
        let before = replicas[owner].listener.accepted_connections();
        for _ in 0..5 {
            let p = replicas[0].cluster.coordinator(&k);
            replicas[0]
                .cluster
                .fill_from_peer(&p, &k, OBJECT)
                .await
                .unwrap()
                .collect_bytes()
                .await
                .unwrap();
        }
        assert!(replicas[owner].listener.accepted_connections() - before <= 1);
    });
}

#[test]
fn server_from_another_ca_or_with_another_name_is_rejected() {
    let pki = Pki::new(&[NAME]).unwrap();
    let dir = TempDir::new("smol-mtls-server").unwrap();
    let write = |identity: &orca_cluster_test_support::Identity,
                 name: &str,
                 trusted: &str,
                 server_name: &str| {
        identity
            .write(dir.path(), name, trusted, server_name)
            .unwrap()
    };
    let server_tls = write(&pki.server, "server", pki.ca.pem(), NAME);
    run(30, async {
        let (replicas, _) = replicas(
            1,
            |_| Some(server_tls.clone()),
            || SyntheticOrigin,
            ListenerSettings::default(),
        )
        .await;
        let addr = replicas[0].addr;
        let k = key(0, CHUNK);

        // Trusting another CA only.
        let c = client(write(&pki.foreign, "c1", pki.foreign_ca.pem(), NAME)).await;
        let e = fill(&c, addr, &k).await.unwrap_err();
        assert_certificate_error(&e, |c| *c == CertificateError::UnknownIssuer);

        // Right CA, wrong expected name.
        let c = client(write(&pki.client, "c2", pki.ca.pem(), "someone-else.test")).await;
        let e = fill(&c, addr, &k).await.unwrap_err();
        let wrong = ServerName::try_from("someone-else.test").unwrap();
        assert_certificate_error(&e, |c| not_valid_for(c, &wrong));

        // No server name configured: the peer's IP is verified; this certificate has no IP.
        let c = client(write(&pki.client, "c3", pki.ca.pem(), "")).await;
        let e = fill(&c, addr, &k).await.unwrap_err();
        let ip = ServerName::IpAddress(addr.ip().into());
        assert_certificate_error(&e, |c| not_valid_for(c, &ip));

        // Right CA and name: accepted.
        let c = client(write(&pki.client, "c4", pki.ca.pem(), NAME)).await;
        assert!(fill(&c, addr, &k).await.unwrap() == SyntheticOrigin::chunk_bytes(&k, OBJECT));
    });
}

#[test]
fn clients_without_a_certificate_or_from_another_ca_are_rejected() {
    let pki = Pki::new(&[NAME, "127.0.0.1"]).unwrap();
    let dir = TempDir::new("smol-mtls-client").unwrap();
    let server_tls = pki
        .server
        .write(dir.path(), "server", pki.ca.pem(), NAME)
        .unwrap();
    run(30, async {
        let (replicas, _) = replicas(
            1,
            |_| Some(server_tls.clone()),
            || SyntheticOrigin,
            ListenerSettings::default(),
        )
        .await;
        let addr = replicas[0].addr;
        let k = key(0, CHUNK);

        // Client certificate from another CA (the client itself trusts the server's CA).
        let mixed = pki
            .foreign
            .write(dir.path(), "mixed", pki.ca.pem(), NAME)
            .unwrap();
        let c = client(mixed).await;
        let e = fill(&c, addr, &k).await.unwrap_err();
        // TLS 1.3: the client's side of the handshake is complete before the listener checks
        // the client certificate, so the listener's `unknown_ca` alert arrives in place of the
        // response.
        assert!(
            matches!(&e, FillError::Http(m) if m.contains("received fatal alert: UnknownCA")),
            "expected the listener's unknown_ca alert: {e:?}"
        );
        assert_eq!(
            replicas[0].cluster.stats().served_ok + replicas[0].cluster.stats().served_failed,
            0
        );

        // No client certificate at all: a bare rustls client.
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pki.ca.pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = futures_rustls::TlsConnector::from(Arc::new(config));
        let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
        let outcome = async {
            let mut tls = connector
                .connect(ServerName::try_from(NAME).unwrap(), tcp)
                .await?;
            let request = format!(
                "GET /internal/fill?{} HTTP/1.1\r\nhost: t\r\nx-orca-internal: 1\r\n\r\n",
                encode_query(&k, OBJECT)
            );
            tls.write_all(request.as_bytes()).await?;
            tls.flush().await?;
            let mut response = Vec::new();
            tls.read_to_end(&mut response).await?;
            Ok::<Vec<u8>, std::io::Error>(response)
        }
        .await;
        // The listener answers the missing certificate with a `certificate_required` alert
        // instead of a response.
        let err = outcome.expect_err("no HTTP response without a client certificate");
        assert_eq!(
            rustls_error(&err),
            Some(&rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )),
            "{err:?}"
        );
        assert_eq!(replicas[0].cluster.stats().served_ok, 0);

        // Plain HTTP to a TLS listener gets no HTTP response either.
        let plain = support::rawserver::exchange(addr, &support::rawserver::get("/x", "")).await;
        assert_eq!(plain, None, "an HTTP response from a TLS listener");
        assert_eq!(
            replicas[0].cluster.stats().served_ok + replicas[0].cluster.stats().served_failed,
            0
        );
    });
}

#[test]
fn rotated_certificates_are_picked_up() {
    let pki = Pki::new(&[NAME]).unwrap();
    let dir = TempDir::new("smol-mtls-rotate").unwrap();
    // The server starts with a certificate for another name; the client expects NAME.
    let server_tls = (pki.ca.leaf(&["old-name.test"]).unwrap())
        .write(dir.path(), "server", pki.ca.pem(), NAME)
        .unwrap();
    let client_tls = (pki.client)
        .write(dir.path(), "client", pki.ca.pem(), NAME)
        .unwrap();
    run(30, async {
        let (replicas, _) = replicas(
            1,
            |_| Some(server_tls.clone()),
            || SyntheticOrigin,
            ListenerSettings::default(),
        )
        .await;
        let addr = replicas[0].addr;
        let k = key(0, CHUNK);
        let c = client(client_tls).await;
        let e = fill(&c, addr, &k).await.unwrap_err();
        let name = ServerName::try_from(NAME).unwrap();
        assert_certificate_error(&e, |c| not_valid_for(c, &name));
        // Rotate the server's files in place (as Kubernetes does with mounted secrets).
        let rotated = pki.ca.leaf(&[NAME, "rotated.test"]).unwrap();
        std::fs::write(&server_tls.key_file, rotated.key_pem).unwrap();
        std::fs::write(&server_tls.cert_file, rotated.cert_pem).unwrap();
        assert!(fill(&c, addr, &k).await.unwrap() == SyntheticOrigin::chunk_bytes(&k, OBJECT));
    });
}

#[test]
fn missing_tls_files_fail_start() {
    run(10, async {
        let tls = TlsSettings {
            enabled: true,
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            ca_file: "/nonexistent/ca.pem".into(),
            server_name: NAME.into(),
        };
        let e = Cluster::start(
            config(Some(tls)),
            Options::default().with_peer_source(StaticPeerSource::new([])),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("cert_file"), "{e}");
        let mut missing = config(None);
        missing.internal_tls.enabled = true;
        let e = Cluster::start(
            missing,
            Options::default().with_peer_source(StaticPeerSource::new([])),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("internal_tls.cert_file"), "{e}");
    });
}
