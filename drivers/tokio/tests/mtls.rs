//! What only the tokio driver does over mutual TLS: both protocols by ALPN against its listener
//! (which offers `h2` and `http/1.1`), and the fall back to pooled HTTP/1.1 connections when a
//! TLS peer only speaks `http/1.1`. Certificates, rejections, timeouts and rotation are in the
//! conformance suite, for both drivers.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use orca_cluster_test_support::{Pki, TempDir};
use orca_cluster_tokio::{
    Cluster, FillClient, FillError, FillService, ListenerSettings, Options, Protocol,
    StaticPeerSource, SyntheticOrigin, TlsSettings,
};
use tokio::net::TcpListener;

use support::{Replica, client, config, init_tracing, key, peer};

const CHUNK: u64 = 256 * 1024;
const OBJECT: u64 = CHUNK * 1000;

/// A fresh test PKI for 127.0.0.1; a replica's files (`ca.pem`, `cert.pem`, `key.pem`) in
/// `dir`.
fn mtls_files(dir: &TempDir) -> TlsSettings {
    Pki::new(&["127.0.0.1"])
        .unwrap()
        .write_files(dir.path())
        .unwrap()
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

/// The tokio listener serves clients set to HTTP/2 (ALPN `h2`) and to HTTP/1.1 (ALPN
/// `http/1.1`) over mutual TLS.
#[tokio::test]
async fn fills_over_mtls_with_h2_and_http1() {
    init_tracing();
    let dir = TempDir::new("tokio-mtls-basic").unwrap();
    let tls = mtls_files(&dir);
    let r = Replica::start(
        config(Some(&tls)),
        &[],
        SyntheticOrigin,
        ListenerSettings::default(),
    )
    .await;
    for protocol in [Protocol::Http2, Protocol::Http1] {
        let client = client(&config(Some(&tls)), protocol);
        for i in 0..3 {
            fetch(&client, r.addr, i).await.unwrap();
        }
    }
    assert_eq!(r.cluster.stats().served_ok, 6);
    r.stop().await;
}

/// A TLS peer that only speaks HTTP/1.1 (ALPN `http/1.1`, like the smol driver or a Go dev
/// listener): the default client, which offers `h2` first, negotiates down and pools HTTP/1.1
/// connections for it.
#[tokio::test]
async fn an_http1_only_tls_peer_is_served_by_alpn_fallback() {
    init_tracing();
    let dir = TempDir::new("tokio-mtls-alpn").unwrap();
    let tls = mtls_files(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cluster = Cluster::start(
        config(Some(&tls)),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let mut server_config = (*cluster.tls().unwrap().server_config()).clone();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let service = FillService::new(&cluster, SyntheticOrigin, &ListenerSettings::default());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
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
    let client = FillClient::new(&config(Some(&tls)), &Options::default()).unwrap();
    let together = futures_util::future::join_all((0..3).map(|i| fetch(&client, addr, i))).await;
    for result in together {
        result.unwrap();
    }
    for i in 3..6 {
        fetch(&client, addr, i).await.unwrap();
    }
    let accepted = accepted.load(Ordering::SeqCst);
    assert!(
        (3..=4).contains(&accepted),
        "one connection per concurrent fill, then pooled: {accepted} connections for 6 fills"
    );
    server.abort();
}
