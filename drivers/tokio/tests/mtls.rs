//! Mutual TLS with certificates generated in the test (rcgen): fills over h2 and HTTP/1.1 by
//! ALPN, a configured server name, rejections (no client certificate, a certificate from
//! another CA, a wrong server name, plain vs TLS), handshake timeouts on both sides, and
//! rotation of the files on disk without a restart and without breaking established
//! connections.

mod support;

use orca_cluster_tokio::Protocol;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use orca_cluster_test_support::{Pki, TempDir};
use orca_cluster_tokio::{
    ClientSettings, Cluster, ClusterConfig, FillClient, FillError, FillListener, ListenerHandle,
    ListenerSettings, Options, Peer, StaticPeerSource, SyntheticOrigin, TlsSettings,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use support::{CountingTransport, LOCALHOST, config, init_tracing, key};

const CHUNK: u64 = 256 * 1024;
const OBJECT: u64 = CHUNK * 1000;

fn scratch(name: &str) -> TempDir {
    TempDir::new(&format!("tokio-mtls-{name}")).unwrap()
}

/// A fresh test PKI for `names`; a replica's files (`ca.pem`, `cert.pem`, `key.pem`) in `dir`.
fn mtls_files(dir: &Path, names: &[&str]) -> TlsSettings {
    Pki::new(names).unwrap().write_files(dir).unwrap()
}

fn tls_config(tls: &TlsSettings) -> ClusterConfig {
    ClusterConfig {
        internal_tls: tls.clone(),
        ..config()
    }
}

/// One TLS replica serving SyntheticOrigin, alone in its snapshot.
async fn tls_replica(
    tls: &TlsSettings,
    settings: ListenerSettings,
) -> (Cluster, ListenerHandle, SocketAddr) {
    let listener = FillListener::bind((LOCALHOST, 0).into()).await.unwrap();
    let addr = listener.local_addr();
    let cluster = Cluster::start(
        tls_config(tls),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    assert!(cluster.tls().is_some());
    let handle = listener.serve(&cluster, SyntheticOrigin, settings);
    (cluster, handle, addr)
}

fn peer(addr: SocketAddr) -> Peer {
    Peer {
        ip: addr.ip(),
        port: addr.port(),
        is_self: false,
    }
}

async fn fetch(client: &FillClient, addr: SocketAddr, index: u64) -> Result<Bytes, FillError> {
    let k = key(index, CHUNK);
    let bytes = client
        .fill(&peer(addr), &k, OBJECT)
        .await?
        .collect_bytes()
        .await?;
    assert!(bytes == SyntheticOrigin::chunk_bytes(&k, OBJECT));
    Ok(bytes)
}

#[tokio::test]
async fn fills_over_mtls_with_h2_and_http1() {
    init_tracing();
    let dir = scratch("basic");
    let tls = mtls_files(dir.path(), &["127.0.0.1"]);
    let (cluster, handle, addr) = tls_replica(&tls, ListenerSettings::default()).await;
    for http1 in [false, true] {
        let client = FillClient::new(
            &tls_config(&tls),
            &Options::default().with_protocol(if http1 {
                Protocol::Http1
            } else {
                Protocol::Http2
            }),
        )
        .unwrap();
        for i in 0..3 {
            fetch(&client, addr, i).await.unwrap();
        }
    }
    assert_eq!(cluster.stats().served_ok, 6);
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_configured_server_name_is_verified() {
    init_tracing();
    let dir = scratch("names");
    // The certificate names the Service, not the pod IP.
    let mut tls = mtls_files(dir.path(), &["orca-peers.default.svc"]);
    tls.server_name = "orca-peers.default.svc".into();
    let (_cluster, handle, addr) = tls_replica(&tls, ListenerSettings::default()).await;
    let client = FillClient::new(&tls_config(&tls), &Options::default()).unwrap();
    fetch(&client, addr, 0).await.unwrap();

    // Verifying the IP (no server name) fails: the certificate does not name it.
    let mut by_ip = tls.clone();
    by_ip.server_name = String::new();
    let client = FillClient::new(&tls_config(&by_ip), &Options::default()).unwrap();
    let err = fetch(&client, addr, 0).await.unwrap_err();
    assert!(matches!(err, FillError::Tls(_)), "{err:?}");

    // A wrong name fails.
    let mut wrong = tls.clone();
    wrong.server_name = "other.default.svc".into();
    let client = FillClient::new(&tls_config(&wrong), &Options::default()).unwrap();
    let err = fetch(&client, addr, 0).await.unwrap_err();
    assert!(matches!(err, FillError::Tls(_)), "{err:?}");
    assert_eq!(err.kind(), "tls");
    handle.shutdown(Duration::from_secs(1)).await;
}

fn roots(ca_file: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Dials `addr` with a hand-built rustls client and sends one h2 request; Ok(status) or the
/// first error (handshake or request).
async fn raw_tls_request(addr: SocketAddr, config: rustls::ClientConfig) -> Result<u16, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    let request = Request::get(format!("https://{addr}/internal/fill"))
        .header("x-orca-internal", "1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = send
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    Ok(response.status().as_u16())
}

fn client_config(ca_file: &str, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_file));
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

#[tokio::test]
async fn clients_without_a_trusted_certificate_are_rejected() {
    init_tracing();
    let dir = scratch("reject");
    let pki = Pki::new(&["127.0.0.1"]).unwrap();
    let tls = pki.write_files(dir.path()).unwrap();
    // A replica of an unrelated CA: its certificate and its CA bundle.
    let other = (pki.foreign)
        .write(dir.path(), "foreign", pki.foreign_ca.pem(), "")
        .unwrap();
    let (cluster, handle, addr) = tls_replica(&tls, ListenerSettings::default()).await;

    // The control: a proper client certificate gets an answer (404 for a request without a
    // query would be 400; any status proves the handshake passed).
    let ok = raw_tls_request(
        addr,
        client_config(&tls.ca_file, Some((&tls.cert_file, &tls.key_file))),
    )
    .await;
    assert_eq!(ok, Ok(400));

    // No client certificate.
    let none = raw_tls_request(addr, client_config(&tls.ca_file, None)).await;
    assert!(none.is_err(), "no client certificate: {none:?}");

    // A client certificate from another CA (the client trusts the server's CA).
    let foreign = raw_tls_request(
        addr,
        client_config(&tls.ca_file, Some((&other.cert_file, &other.key_file))),
    )
    .await;
    assert!(foreign.is_err(), "foreign client certificate: {foreign:?}");

    // A replica of another CA altogether: it does not trust the server either.
    let client = FillClient::new(&tls_config(&other), &Options::default()).unwrap();
    let err = fetch(&client, addr, 0).await.unwrap_err();
    assert!(matches!(err, FillError::Tls(_)), "{err:?}");

    // Plain HTTP against the TLS listener fails.
    let plain = FillClient::new(&config(), &Options::default()).unwrap();
    assert!(fetch(&plain, addr, 0).await.is_err());

    assert_eq!(cluster.stats().served_ok, 0);
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn tls_clients_fail_against_a_plain_listener() {
    init_tracing();
    let dir = scratch("plain");
    let tls = mtls_files(dir.path(), &["127.0.0.1"]);
    let listener = FillListener::bind((LOCALHOST, 0).into()).await.unwrap();
    let addr = listener.local_addr();
    let cluster = Cluster::start(
        config(),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let handle = listener.serve(&cluster, SyntheticOrigin, ListenerSettings::default());
    let client = FillClient::new(&tls_config(&tls), &Options::default()).unwrap();
    let err = fetch(&client, addr, 0).await.unwrap_err();
    assert!(matches!(err, FillError::Tls(_)), "{err:?}");
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn tls_handshakes_time_out_on_both_sides() {
    init_tracing();
    let dir = scratch("timeouts");
    let tls = mtls_files(dir.path(), &["127.0.0.1"]);

    // Listener: a client that connects and says nothing is dropped after the timeout.
    let settings = ListenerSettings {
        tls_handshake_timeout: Duration::from_millis(200),
        ..ListenerSettings::default()
    };
    let (_cluster, handle, addr) = tls_replica(&tls, settings).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("the listener closes the silent connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    handle.shutdown(Duration::from_secs(1)).await;

    // Client: a server that accepts and never answers the ClientHello.
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (socket, _) = mute.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(socket);
    });
    let client = FillClient::new(
        &tls_config(&tls),
        &Options::default().with_client_settings(ClientSettings {
            tls_handshake_timeout: Duration::from_millis(200),
            ..ClientSettings::default()
        }),
    )
    .unwrap();
    let started = Instant::now();
    let err = fetch(&client, mute_addr, 0).await.unwrap_err();
    assert!(matches!(err, FillError::TlsHandshakeTimeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    hold.abort();
}

fn copy_files(tls: &TlsSettings, to: &Path) -> TlsSettings {
    std::fs::create_dir_all(to).unwrap();
    let copy = |from: &str, name: &str| {
        let dest = to.join(name);
        std::fs::copy(from, &dest).unwrap();
        dest.to_string_lossy().into_owned()
    };
    TlsSettings {
        cert_file: copy(&tls.cert_file, "cert.pem"),
        key_file: copy(&tls.key_file, "key.pem"),
        ca_file: copy(&tls.ca_file, "ca.pem"),
        ..tls.clone()
    }
}

#[tokio::test]
async fn rotated_files_are_used_by_new_connections_while_established_ones_keep_working() {
    init_tracing();
    let dir = scratch("rotate");
    let live = dir.join("live");
    let tls = mtls_files(&live, &["127.0.0.1"]);
    let old = copy_files(&tls, &dir.join("old"));
    let (_cluster, handle, addr) = tls_replica(&tls, ListenerSettings::default()).await;

    // A client on the live files, with one established h2 connection.
    let transport = CountingTransport::default();
    let established = FillClient::new(
        &tls_config(&tls),
        &Options::default().with_transport(transport.clone()),
    )
    .unwrap();
    fetch(&established, addr, 0).await.unwrap();
    assert_eq!(transport.dials(), 1);

    // Rotate: a new CA and new certificates replace the files in place.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rotated = mtls_files(&live, &["127.0.0.1"]);
    assert_eq!(rotated.cert_file, tls.cert_file);

    // The established connection keeps working (no new dial).
    fetch(&established, addr, 1).await.unwrap();
    assert_eq!(
        transport.dials(),
        1,
        "the established connection was reused"
    );

    // A new client reading the rotated files connects: the listener reloaded them.
    let fresh = FillClient::new(&tls_config(&rotated), &Options::default()).unwrap();
    fetch(&fresh, addr, 2).await.unwrap();

    // New connections from the old client material are now refused.
    let stale = FillClient::new(&tls_config(&old), &Options::default()).unwrap();
    let err = fetch(&stale, addr, 3).await.unwrap_err();
    assert!(matches!(err, FillError::Tls(_)), "{err:?}");

    // The established client's next new connection picks up the rotated files too.
    established.close();
    let reopened = FillClient::new(
        &tls_config(&tls),
        &Options::default().with_transport(transport.clone()),
    )
    .unwrap();
    fetch(&reopened, addr, 4).await.unwrap();
    handle.shutdown(Duration::from_secs(1)).await;
}

/// A TLS peer that only speaks HTTP/1.1 (ALPN `http/1.1`, like the smol driver or a Go dev
/// listener): the default client negotiates down and pools HTTP/1.1 connections for it.
#[tokio::test]
async fn an_http1_only_tls_peer_is_served_by_alpn_fallback() {
    init_tracing();
    let dir = scratch("alpn");
    let tls = mtls_files(dir.path(), &["127.0.0.1"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cluster = Cluster::start(
        tls_config(&tls),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let mut server_config = (*cluster.tls().unwrap().server_config()).clone();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let service = orca_cluster_tokio::FillService::new(
        &cluster,
        SyntheticOrigin,
        &ListenerSettings::default(),
    );
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let service = service.clone();
            tokio::spawn(async move {
                let tls = acceptor.accept(tcp).await.unwrap();
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let transport = CountingTransport::default();
    let client = FillClient::new(
        &tls_config(&tls),
        &Options::default().with_transport(transport.clone()),
    )
    .unwrap();
    let together = futures_util::future::join_all((0..3).map(|i| fetch(&client, addr, i))).await;
    for result in together {
        result.unwrap();
    }
    for i in 3..6 {
        fetch(&client, addr, i).await.unwrap();
    }
    assert!(
        transport.dials() <= 4,
        "HTTP/1.1 connections are pooled: {} dials",
        transport.dials()
    );
    server.abort();
}
