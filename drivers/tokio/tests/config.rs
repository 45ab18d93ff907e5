//! The cluster configuration in serde form reads the Go `cluster:` section's key names.
//!
//! Driver-independent (the configuration is the core's); it lives here because this crate's
//! tests have `serde_json`, and the core's serde feature is enabled by the drivers.

use std::time::Duration;

use orca_cluster_tokio::ClusterConfig;

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
