//! Flags shared by several subcommands.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use orca_cluster_core::IpFamily;
use orca_cluster_core::duration::parse_go_duration;
use orca_cluster_tokio::{ChunkKey, ClusterConfig, Protocol, TlsSettings};

/// The fill protocol of the `--http1` flag: HTTP/1.1 with it, HTTP/2 without (h2c in plain
/// mode; with TLS, ALPN offers `h2` then `http/1.1`).
pub(crate) fn protocol(http1: bool) -> Protocol {
    if http1 {
        Protocol::Http1
    } else {
        Protocol::Http2
    }
}

/// Parses a Go-style duration (`5s`, `500ms`, `1m30s`).
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    match parse_go_duration(text) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{text:?} is not a positive duration like 5s, 500ms or 1m30s"
        )),
    }
}

/// The six fields of a chunk key.
#[derive(Args, Debug, Clone)]
pub(crate) struct KeyArgs {
    /// Origin id (object store account/region).
    #[arg(long)]
    pub origin_id: String,
    /// Bucket (may be empty).
    #[arg(long, default_value = "")]
    pub bucket: String,
    /// Object key.
    #[arg(long)]
    pub key: String,
    /// ETag / version of the object (may be empty).
    #[arg(long, default_value = "")]
    pub etag: String,
    /// Chunk size in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub chunk_size: u64,
    /// Chunk index (0-based).
    #[arg(long, default_value_t = 0)]
    pub index: u64,
}

impl KeyArgs {
    pub(crate) fn key(&self) -> Result<ChunkKey, String> {
        if self.chunk_size == 0 {
            return Err("--chunk-size: must be greater than zero".into());
        }
        if self.origin_id.is_empty() {
            return Err("--origin-id: must not be empty".into());
        }
        if self.key.is_empty() {
            return Err("--key: must not be empty".into());
        }
        Ok(ChunkKey {
            origin_id: self.origin_id.clone(),
            bucket: self.bucket.clone(),
            object_key: self.key.clone(),
            etag: self.etag.clone(),
            chunk_size: self.chunk_size,
            index: self.index,
        })
    }
}

/// Where peers come from.
#[derive(Args, Debug, Clone)]
pub(crate) struct DiscoveryArgs {
    /// DNS name of the headless Service to resolve (A and AAAA).
    #[arg(long, conflicts_with = "peers")]
    pub service: Option<String>,
    /// A static peer list instead of DNS: IP or IP:PORT, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
    /// DNS server IP:PORT to ask instead of /etc/resolv.conf.
    #[arg(long)]
    pub nameserver: Option<SocketAddr>,
    /// This replica's IP(s), comma-separated (default: the POD_IP environment variable).
    #[arg(long, value_delimiter = ',', env = "POD_IP")]
    pub self_ip: Vec<IpAddr>,
    /// This replica's port in a static `--peers` list that carries ports, when several entries
    /// share its IP (default: the entry whose IP is a self IP).
    #[arg(long, default_value_t = 0)]
    pub self_port: u16,
    /// Lookup timeout.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub lookup_timeout: Duration,
    /// Which DNS records make up the peer set: any (A and AAAA), ipv4 or ipv6 (pick one on
    /// dual-stack clusters).
    #[arg(long, default_value = "any", value_parser = ip_family)]
    pub ip_family: IpFamily,
}

fn ip_family(text: &str) -> Result<IpFamily, String> {
    [IpFamily::Any, IpFamily::Ipv4, IpFamily::Ipv6]
        .into_iter()
        .find(|f| f.name() == text)
        .ok_or_else(|| format!("{text:?}: expected any, ipv4 or ipv6"))
}

impl DiscoveryArgs {
    /// The static peers as socket addresses (port 0 when omitted).
    pub(crate) fn static_peers(&self) -> Result<Vec<SocketAddr>, String> {
        self.peers
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
                    .map_err(|_| format!("--peers: {s:?} is not IP or IP:PORT"))
            })
            .collect()
    }

    pub(crate) fn require_source(&self) -> Result<(), String> {
        if self.service.is_none() && self.peers.is_empty() {
            return Err("give --service NAME (DNS discovery) or --peers IP[:PORT],...".into());
        }
        Ok(())
    }
}

/// Mutual TLS files.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct TlsArgs {
    /// PEM certificate chain of this replica (enables mutual TLS).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle peers' certificates must chain to.
    #[arg(long, requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// Name to verify in peers' certificates (default: the peer's IP).
    #[arg(long)]
    pub server_name: Option<String>,
}

impl TlsArgs {
    pub(crate) fn settings(&self) -> TlsSettings {
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        TlsSettings {
            enabled: self.tls_cert.is_some(),
            cert_file: path(&self.tls_cert),
            key_file: path(&self.tls_key),
            ca_file: path(&self.tls_ca),
            server_name: self.server_name.clone().unwrap_or_default(),
            client_name: String::new(),
        }
    }
}

/// A cluster configuration for discovery commands.
pub(crate) fn config(
    service: &str,
    self_ips: &[IpAddr],
    listen: SocketAddr,
    refresh: Duration,
    lookup_timeout: Duration,
    tls: &TlsArgs,
) -> ClusterConfig {
    ClusterConfig {
        service: service.to_owned(),
        membership_refresh: refresh,
        internal_listen: listen,
        internal_tls: tls.settings(),
        self_pod_ip: self_ips.to_vec(),
        lookup_timeout,
        ..ClusterConfig::default()
    }
}
