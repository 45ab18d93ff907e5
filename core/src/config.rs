//! Configuration: the membership state machine's own ([`MembershipConfig`]) and the cluster
//! configuration that mirrors the Go `cluster:` section ([`ClusterConfig`], shared by both
//! drivers, with optional serde support under the same key names).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use crate::rendezvous::Scoring;

/// Default interval between DNS lookups: 5 s.
pub const DEFAULT_MEMBERSHIP_REFRESH: Duration = Duration::from_secs(5);
/// Default lookup deadline: 3 s.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Default number of consecutive failed lookups that keep the last good snapshot: 5.
pub const DEFAULT_MAX_STALE_REFRESHES: u32 = 5;
/// Default fill listener address: `0.0.0.0:8444`.
pub const DEFAULT_INTERNAL_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8444);

pub use crate::chunk::DEFAULT_MAX_CHUNK_SIZE;

/// An invalid configuration; each variant names the offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `service` is empty.
    EmptyService,
    /// `self_pod_ip` is empty (set it, or the `POD_IP` environment variable).
    NoSelfIp,
    /// `self_pod_ip` is not an IP address.
    BadSelfIp(String),
    /// `membership_refresh` is zero.
    ZeroRefresh,
    /// `lookup_timeout` is zero.
    ZeroLookupTimeout,
    /// `max_chunk_size` is zero.
    ZeroMaxChunkSize,
    /// `internal_tls` is enabled but the named file setting is empty.
    MissingTlsFile(&'static str),
    /// A duration field is not a Go-style duration such as `5s` or `1m30s`.
    BadDuration {
        /// The field.
        field: &'static str,
        /// The text.
        value: String,
    },
    /// `self_port`: unset (0), and no entry of the static peer list, which carries ports, is
    /// one of this replica's IPs, so self cannot be found in it.
    NoSelfPeerEntry {
        /// The self IPs looked for.
        self_ips: Vec<IpAddr>,
    },
    /// `self_port`: unset (0), and entries of the static peer list with different ports are
    /// this replica's IPs, so which one is self is ambiguous.
    AmbiguousSelfPort {
        /// The candidate ports, ascending.
        ports: Vec<u16>,
    },
    /// `self_port`: set, but no entry of the static peer list, which carries ports, is one of
    /// this replica's IPs with that port.
    SelfPortNotListed {
        /// The configured self port.
        port: u16,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::EmptyService => f.write_str("service: must not be empty"),
            ConfigError::NoSelfIp => f.write_str(
                "self_pod_ip: no self IP configured (set self_pod_ip or the POD_IP environment variable)",
            ),
            ConfigError::BadSelfIp(v) => write!(f, "self_pod_ip: {v:?} is not an IP address"),
            ConfigError::ZeroRefresh => f.write_str("membership_refresh: must be greater than zero"),
            ConfigError::ZeroLookupTimeout => f.write_str("lookup_timeout: must be greater than zero"),
            ConfigError::ZeroMaxChunkSize => f.write_str("max_chunk_size: must be greater than zero"),
            ConfigError::MissingTlsFile(field) => {
                write!(f, "internal_tls.{field}: required when internal_tls.enabled is true")
            }
            ConfigError::BadDuration { field, value } => {
                write!(f, "{field}: {value:?} is not a duration like 5s, 500ms or 1m30s")
            }
            ConfigError::NoSelfPeerEntry { self_ips } => {
                f.write_str("self_port: no entry of the static peer list matches this replica's IPs (")?;
                write_list(f, self_ips)?;
                f.write_str("); add this replica to the list or set the self port")
            }
            ConfigError::AmbiguousSelfPort { ports } => {
                f.write_str(
                    "self_port: several entries of the static peer list match this replica's IPs, with ports ",
                )?;
                write_list(f, ports)?;
                f.write_str("; set the self port")
            }
            ConfigError::SelfPortNotListed { port } => write!(
                f,
                "self_port: no entry of the static peer list is this replica's IP with port {port}"
            ),
        }
    }
}

/// Writes `items` separated by `, `.
fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// Configuration of the [`crate::Membership`] state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// DNS name of the headless Service (resolved for A and AAAA records). Required.
    pub service: String,
    /// This replica's IPs (two on a dual-stack pod). At least one.
    pub self_ips: Vec<IpAddr>,
    /// This replica's port as it appears in peer records: 0 in production (DNS has no ports),
    /// the listener's port for static sources where replicas share an IP.
    pub self_port: u16,
    /// Interval between lookups (default 5 s, must be > 0).
    pub membership_refresh: Duration,
    /// Deadline of one lookup (default 3 s, must be > 0).
    pub lookup_timeout: Duration,
    /// Consecutive failures that keep the last good snapshot (default 5).
    pub max_stale_refreshes: u32,
    /// Scoring function of the snapshots (default xxh3).
    pub scoring: Scoring,
    /// Address family of the records that make up the peer set (default [`IpFamily::Any`]).
    ///
    /// Applied by the state machine to every answer, from DNS or a static/custom source:
    /// records of another family are dropped, and an answer that had records but none of this
    /// family is the failure [`crate::LookupFailure::NoRecords`]. A self IP of this family is
    /// preferred as the IP of the self entry.
    pub ip_family: IpFamily,
}

impl MembershipConfig {
    /// A configuration with the defaults for everything but the service and self IPs.
    pub fn new(service: impl Into<String>, self_ips: impl IntoIterator<Item = IpAddr>) -> Self {
        MembershipConfig {
            service: service.into(),
            self_ips: self_ips.into_iter().collect(),
            self_port: 0,
            membership_refresh: DEFAULT_MEMBERSHIP_REFRESH,
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            max_stale_refreshes: DEFAULT_MAX_STALE_REFRESHES,
            scoring: Scoring::Xxh3,
            ip_family: IpFamily::Any,
        }
    }

    /// Checks the rules of the design (rule 1): a service name, at least one self IP, positive
    /// refresh interval and lookup timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.service.trim().is_empty() {
            return Err(ConfigError::EmptyService);
        }
        if self.self_ips.is_empty() {
            return Err(ConfigError::NoSelfIp);
        }
        if self.membership_refresh.is_zero() {
            return Err(ConfigError::ZeroRefresh);
        }
        if self.lookup_timeout.is_zero() {
            return Err(ConfigError::ZeroLookupTimeout);
        }
        Ok(())
    }
}

/// Which address family of the Service's records makes up the peer set.
///
/// The membership state machine applies it to every answer ([`MembershipConfig::ip_family`]).
/// On a dual-stack cluster the headless Service answers an A and an AAAA record for every pod;
/// with [`IpFamily::Any`] each pod is then a peer under both IPs (replicas still agree, but each
/// pod takes two shares of the chunks). Pick one family there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum IpFamily {
    /// A and AAAA records (default).
    #[default]
    Any,
    /// A records only.
    Ipv4,
    /// AAAA records only.
    Ipv6,
}

impl IpFamily {
    /// Whether `ip` belongs to this family (IPv4-mapped IPv6 counts as IPv4).
    pub fn matches(self, ip: IpAddr) -> bool {
        matches!(
            (self, crate::peer::canonical_ip(ip)),
            (IpFamily::Any, _) | (IpFamily::Ipv4, IpAddr::V4(_)) | (IpFamily::Ipv6, IpAddr::V6(_))
        )
    }

    /// `any`, `ipv4` or `ipv6`.
    pub const fn name(self) -> &'static str {
        match self {
            IpFamily::Any => "any",
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
        }
    }
}

/// The `internal_tls` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct TlsSettings {
    /// Whether the fill RPC uses mutual TLS (default false: plain HTTP, for development only).
    pub enabled: bool,
    /// PEM certificate chain of this replica (served to peers and presented as client cert).
    pub cert_file: String,
    /// PEM private key of `cert_file`.
    pub key_file: String,
    /// PEM CA bundle that peers' certificates must chain to.
    pub ca_file: String,
    /// Name to verify in peers' certificates (pods are dialed by IP; certificates usually name
    /// the Service). Empty: verify the peer's IP.
    pub server_name: String,
    /// Name the listener requires in a client certificate (default empty: no check, any
    /// certificate that chains to `ca_file` is accepted). When set, a client whose certificate
    /// has no subject alternative name matching it — a DNS name, or an IP address when
    /// `client_name` parses as one — is refused during the TLS handshake.
    pub client_name: String,
}

/// The cluster configuration, mirroring the Go `cluster:` section (same key names with serde).
///
/// Durations are Go-style strings in serde form (`"5s"`, `"500ms"`, `"1m30s"`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ClusterConfig {
    /// DNS name of the headless Service. Required.
    pub service: String,
    /// Interval between lookups (default 5 s).
    #[cfg_attr(feature = "serde", serde(with = "crate::duration::serde_go"))]
    pub membership_refresh: Duration,
    /// Fill listener address (default `0.0.0.0:8444`); its port replaces port 0 of peers.
    pub internal_listen: SocketAddr,
    /// Mutual TLS settings.
    pub internal_tls: TlsSettings,
    /// This replica's IPs; a string may hold several separated by commas (dual-stack). Empty:
    /// drivers fill it from the `POD_IP` environment variable.
    #[cfg_attr(feature = "serde", serde(with = "crate::duration::serde_ips"))]
    pub self_pod_ip: Vec<IpAddr>,
    /// Deadline of one lookup (default 3 s).
    #[cfg_attr(feature = "serde", serde(with = "crate::duration::serde_go"))]
    pub lookup_timeout: Duration,
    /// Consecutive failures that keep the last good snapshot (default 5).
    pub max_stale_refreshes: u32,
    /// Scoring function: `xxh3` (default) or `go-compat`.
    pub scoring: Scoring,
    /// Address family of the records (DNS or a static/custom source) that make up the peer
    /// set: `any` (default), `ipv4` or `ipv6` (pick one on dual-stack clusters). See
    /// [`MembershipConfig::ip_family`].
    pub ip_family: IpFamily,
    /// Largest `chunk_size`, in bytes, this replica serves or asks for (default
    /// [`DEFAULT_MAX_CHUNK_SIZE`] = 64 MiB, must be > 0). The listener answers a request for a
    /// larger chunk 400 naming `chunk_size`, before the coordinator check. In serde form a
    /// number of bytes or a string with an optional binary suffix: `67108864`, `"64MiB"`,
    /// `"512KiB"`, `"1GiB"`.
    #[cfg_attr(feature = "serde", serde(with = "serde_bytes"))]
    pub max_chunk_size: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            service: String::new(),
            membership_refresh: DEFAULT_MEMBERSHIP_REFRESH,
            internal_listen: DEFAULT_INTERNAL_LISTEN,
            internal_tls: TlsSettings::default(),
            self_pod_ip: Vec::new(),
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            max_stale_refreshes: DEFAULT_MAX_STALE_REFRESHES,
            scoring: Scoring::Xxh3,
            ip_family: IpFamily::Any,
            max_chunk_size: DEFAULT_MAX_CHUNK_SIZE,
        }
    }
}

/// Parses a byte size: a decimal number with an optional suffix `B`, `KiB`, `MiB` or `GiB`
/// (powers of 1024), spaces around the number allowed. `None` when malformed or above 2^64-1.
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    if number.is_empty() {
        return None;
    }
    let shift = match suffix.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    let value: u64 = number.parse().ok()?;
    value.checked_mul(1u64 << shift)
}

#[cfg(feature = "serde")]
mod serde_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(u64),
        Text(alloc::string::String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Size::deserialize(d)? {
            Size::Number(n) => Ok(n),
            Size::Text(t) => super::parse_byte_size(&t).ok_or_else(|| {
                D::Error::custom(alloc::format!(
                    "{t:?} is not a byte size like 67108864, 512KiB or 64MiB"
                ))
            }),
        }
    }
}

impl ClusterConfig {
    /// Parses a comma-separated list of IPs (the `POD_IP` / `self_pod_ip` text form).
    pub fn parse_ips(text: &str) -> Result<Vec<IpAddr>, ConfigError> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| ConfigError::BadSelfIp(s.into())))
            .collect()
    }

    /// The membership configuration for DNS discovery (self port 0, as DNS carries no ports;
    /// `ip_family` copied). Also validates the TLS section and `max_chunk_size` (> 0).
    pub fn membership(&self) -> Result<MembershipConfig, ConfigError> {
        if self.max_chunk_size == 0 {
            return Err(ConfigError::ZeroMaxChunkSize);
        }
        if self.internal_tls.enabled {
            for (field, value) in [
                ("cert_file", &self.internal_tls.cert_file),
                ("key_file", &self.internal_tls.key_file),
                ("ca_file", &self.internal_tls.ca_file),
            ] {
                if value.is_empty() {
                    return Err(ConfigError::MissingTlsFile(field));
                }
            }
        }
        let config = MembershipConfig {
            service: self.service.clone(),
            self_ips: self.self_pod_ip.clone(),
            self_port: 0,
            membership_refresh: self.membership_refresh,
            lookup_timeout: self.lookup_timeout,
            max_stale_refreshes: self.max_stale_refreshes,
            scoring: self.scoring,
            ip_family: self.ip_family,
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_fields() {
        let ok = MembershipConfig::new("orca", ["10.0.0.1".parse().unwrap()]);
        assert_eq!(ok.validate(), Ok(()));
        let mut c = ok.clone();
        c.service = " ".into();
        assert_eq!(c.validate(), Err(ConfigError::EmptyService));
        let mut c = ok.clone();
        c.self_ips.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoSelfIp));
        let mut c = ok.clone();
        c.membership_refresh = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::ZeroRefresh));
        let mut c = ok.clone();
        c.lookup_timeout = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::ZeroLookupTimeout));
        assert!(alloc::format!("{}", ConfigError::ZeroRefresh).starts_with("membership_refresh"));
    }

    #[test]
    fn cluster_config_maps_and_checks_tls() {
        let mut c = ClusterConfig {
            service: "orca-peers".into(),
            self_pod_ip: ClusterConfig::parse_ips("10.0.0.1, fd00::1").unwrap(),
            ..ClusterConfig::default()
        };
        let m = c.membership().unwrap();
        assert_eq!(m.self_ips.len(), 2);
        assert_eq!(m.membership_refresh, Duration::from_secs(5));
        assert_eq!(m.ip_family, IpFamily::Any);
        c.ip_family = IpFamily::Ipv6;
        assert_eq!(c.membership().unwrap().ip_family, IpFamily::Ipv6);
        c.internal_tls.enabled = true;
        assert_eq!(
            c.membership(),
            Err(ConfigError::MissingTlsFile("cert_file"))
        );
        assert!(ClusterConfig::parse_ips("10.0.0.x").is_err());
    }

    #[test]
    fn max_chunk_size_defaults_to_64_mib_and_must_be_positive() {
        let mut c = ClusterConfig {
            service: "orca-peers".into(),
            self_pod_ip: ClusterConfig::parse_ips("10.0.0.1").unwrap(),
            ..ClusterConfig::default()
        };
        assert_eq!(c.max_chunk_size, 64 * 1024 * 1024);
        assert!(c.membership().is_ok());
        c.max_chunk_size = 0;
        assert_eq!(c.membership(), Err(ConfigError::ZeroMaxChunkSize));
        assert!(alloc::format!("{}", ConfigError::ZeroMaxChunkSize).starts_with("max_chunk_size"));
        assert_eq!(parse_byte_size("67108864"), Some(64 << 20));
        assert_eq!(parse_byte_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_byte_size(" 512 KiB "), Some(512 << 10));
        assert_eq!(parse_byte_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_byte_size("7B"), Some(7));
        for bad in ["", "MiB", "64MB", "-1", "1.5MiB", "18446744073709551615GiB"] {
            assert_eq!(parse_byte_size(bad), None, "{bad:?}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn max_chunk_size_serde_takes_bytes_or_binary_suffixes() {
        let parse = |v: &str| {
            serde_json::from_str::<ClusterConfig>(&alloc::format!("{{\"max_chunk_size\": {v}}}"))
                .map(|c| c.max_chunk_size)
        };
        assert_eq!(parse("1048576").unwrap(), 1 << 20);
        assert_eq!(parse("\"8MiB\"").unwrap(), 8 << 20);
        let e = parse("\"8MB\"").unwrap_err();
        assert!(alloc::format!("{e}").contains("8MB"), "{e}");
        let default = serde_json::from_str::<ClusterConfig>("{}").unwrap();
        assert_eq!(default.max_chunk_size, DEFAULT_MAX_CHUNK_SIZE);
        let text = serde_json::to_string(&default).unwrap();
        assert!(text.contains("\"max_chunk_size\":67108864"), "{text}");
    }

    #[test]
    fn ip_family_filters_by_family() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(IpFamily::Any.matches(v4) && IpFamily::Any.matches(v6));
        assert!(IpFamily::Ipv4.matches(v4) && !IpFamily::Ipv4.matches(v6));
        assert!(IpFamily::Ipv4.matches(mapped));
        assert!(IpFamily::Ipv6.matches(v6) && !IpFamily::Ipv6.matches(mapped));
        assert_eq!(IpFamily::default().name(), "any");
    }
}
