//! Cluster lifecycle: configuration errors, close() idempotence, subscriptions ending after
//! close, fills refused after close, the membership task stopping when the handle is dropped,
//! serde configuration with Go's key names, a client-only FillClient.

mod support;

use std::time::{Duration, Instant};

use orca_cluster_tokio::core::ConfigError;
use orca_cluster_tokio::{
    Cluster, ClusterConfig, FillClient, FillError, Options, Peer, StartError, StaticPeerSource,
};
use support::{LOCALHOST, config, eventually, init_tracing, key};

#[tokio::test]
async fn invalid_configs_are_typed_errors() {
    init_tracing();
    let empty_service = ClusterConfig {
        service: String::new(),
        ..config()
    };
    let err = Cluster::start(
        empty_service,
        Options::default().with_peer_source(StaticPeerSource::default()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StartError::Config(ConfigError::EmptyService)),
        "{err}"
    );

    let zero_refresh = ClusterConfig {
        membership_refresh: Duration::ZERO,
        ..config()
    };
    let err = Cluster::start(
        zero_refresh,
        Options::default().with_peer_source(StaticPeerSource::default()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("membership_refresh"), "{err}");

    let mut tls_without_files = config();
    tls_without_files.internal_tls.enabled = true;
    let err = Cluster::start(
        tls_without_files,
        Options::default().with_peer_source(StaticPeerSource::default()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cert_file"), "{err}");

    let mut missing_files = config();
    missing_files.internal_tls = orca_cluster_tokio::TlsSettings {
        enabled: true,
        cert_file: "/nonexistent/cert.pem".into(),
        key_file: "/nonexistent/key.pem".into(),
        ca_file: "/nonexistent/ca.pem".into(),
        server_name: String::new(),
    };
    let err = Cluster::start(
        missing_files,
        Options::default().with_peer_source(StaticPeerSource::default()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StartError::Tls(_)), "{err}");
    assert!(err.to_string().contains("cert_file"), "{err}");
}

#[tokio::test]
async fn close_is_idempotent_and_ends_subscriptions() {
    init_tracing();
    let source = StaticPeerSource::new([(LOCALHOST, 7001).into(), (LOCALHOST, 7002).into()]);
    let cluster = Cluster::start(
        config(),
        Options::default()
            .with_peer_source(source.clone())
            .with_self_port(7001),
    )
    .await
    .unwrap();
    assert_eq!(cluster.peers().len(), 2);
    let mut sub = cluster.subscribe();
    let clone = cluster.clone();
    let waiting = tokio::spawn(async move { sub.changed().await });

    let started = Instant::now();
    cluster.close(Duration::from_secs(2)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    clone.close(Duration::from_secs(2)).await.unwrap();
    cluster.close(Duration::ZERO).await.unwrap();

    let ended = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the subscription ends")
        .unwrap();
    assert!(ended.is_none(), "subscribe() ends with None after close");
    assert!(cluster.subscribe().changed().await.is_none());

    // The last snapshot stays readable; refresh has stopped.
    let lookups = cluster.stats().lookups;
    source.set([(LOCALHOST, 7001).into()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.peers().len(), 2);
    assert_eq!(cluster.stats().lookups, lookups);

    let k = key(0, 1024);
    let other = Peer {
        ip: LOCALHOST,
        port: 7002,
        is_self: false,
    };
    let err = cluster.fill_from_peer(&other, &k, 4096).await.unwrap_err();
    assert!(matches!(err, FillError::Closed), "{err:?}");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_membership_task() {
    init_tracing();
    let source = StaticPeerSource::new([(LOCALHOST, 7101).into()]);
    let cluster = Cluster::start(
        config(),
        Options::default()
            .with_peer_source(source.clone())
            .with_self_port(7101),
    )
    .await
    .unwrap();
    let mut sub = cluster.subscribe();
    drop(cluster);
    let ended = tokio::time::timeout(Duration::from_secs(1), sub.changed())
        .await
        .expect("the subscription ends when the cluster is dropped");
    assert!(ended.is_none());
}

#[tokio::test]
async fn snapshot_changes_are_delivered_to_subscribers() {
    init_tracing();
    let a = (LOCALHOST, 7201).into();
    let b = (LOCALHOST, 7202).into();
    let source = StaticPeerSource::new([a]);
    let cluster = Cluster::start(
        config(),
        Options::default()
            .with_peer_source(source.clone())
            .with_self_port(7201),
    )
    .await
    .unwrap();
    assert_eq!(cluster.peers().len(), 1);
    let before = cluster.stats().snapshot_changes;
    let mut sub = cluster.subscribe();
    source.set([a, b]);
    let snap = tokio::time::timeout(Duration::from_secs(2), sub.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.len(), 2);
    assert_eq!(cluster.stats().snapshot_changes, before + 1);
    // An empty static answer is [self] (rule 5).
    source.set([]);
    let snap = tokio::time::timeout(Duration::from_secs(2), sub.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.len(), 1);
    assert!(snap.peers()[0].is_self);
    cluster.close(Duration::from_secs(1)).await.unwrap();
}

#[test]
fn config_reads_go_key_names() {
    let json = r#"{
        "service": "orca-peers.default.svc.cluster.local",
        "membership_refresh": "2s",
        "internal_listen": "0.0.0.0:9444",
        "internal_tls": {
            "enabled": true,
            "cert_file": "/tls/tls.crt",
            "key_file": "/tls/tls.key",
            "ca_file": "/tls/ca.crt",
            "server_name": "orca-peers.default.svc"
        },
        "self_pod_ip": "10.0.0.5, fd00::5"
    }"#;
    let config: ClusterConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config.membership_refresh, Duration::from_secs(2));
    assert_eq!(config.internal_listen.port(), 9444);
    assert_eq!(config.self_pod_ip.len(), 2);
    assert!(config.internal_tls.enabled);
    assert_eq!(
        config.lookup_timeout,
        Duration::from_secs(3),
        "defaults fill the rest"
    );
    assert_eq!(config.max_stale_refreshes, 5);
}

#[tokio::test]
async fn a_client_only_handle_needs_no_self_ip() {
    init_tracing();
    // A listener replica to fill from.
    let listener = orca_cluster_tokio::FillListener::bind((LOCALHOST, 0).into())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let cluster = Cluster::start(
        config(),
        Options::default()
            .with_peer_source(StaticPeerSource::new([addr]))
            .with_self_port(addr.port()),
    )
    .await
    .unwrap();
    let handle = listener.serve(
        &cluster,
        orca_cluster_tokio::SyntheticOrigin,
        orca_cluster_tokio::ListenerSettings::default(),
    );
    // No service, no self IP: only what dialing needs.
    let client = FillClient::new(&ClusterConfig::default(), &Options::default()).unwrap();
    let peer = Peer {
        ip: addr.ip(),
        port: addr.port(),
        is_self: false,
    };
    let k = key(3, 4096);
    let bytes = client
        .fill(&peer, &k, 4096 * 10)
        .await
        .unwrap()
        .collect_bytes()
        .await
        .unwrap();
    assert!(bytes == orca_cluster_tokio::SyntheticOrigin::chunk_bytes(&k, 4096 * 10));
    assert_eq!(client.stats().fills_ok, 1);
    assert_eq!(cluster.stats().served_ok, 1);
    // Peers with port 0 are dialed at internal_listen's port.
    let cfg = ClusterConfig {
        internal_listen: addr,
        ..ClusterConfig::default()
    };
    let by_listen_port = FillClient::new(&cfg, &Options::default()).unwrap();
    let zero = Peer { port: 0, ..peer };
    by_listen_port
        .fill(&zero, &k, 4096 * 10)
        .await
        .unwrap()
        .collect_bytes()
        .await
        .unwrap();
    client.close();
    assert!(matches!(
        client.fill(&peer, &k, 4096 * 10).await,
        Err(FillError::Closed)
    ));
    assert!(
        eventually(Duration::from_secs(1), || client
            .connected_peers()
            .is_empty())
        .await
    );
    handle.shutdown(Duration::from_secs(1)).await;
}
