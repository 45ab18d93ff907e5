//! Peers: the replicas of the Deployment, as addresses.

use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

use crate::config::ConfigError;

/// One replica in a peer-set snapshot.
///
/// `port == 0` means "the port of `internal_listen`" (production: every pod listens on the same
/// port, so DNS records carry only IPs). A non-zero port lets several replicas share one IP
/// (tests, single-host demos).
///
/// Ordering is by `(ip, port)` (IPv4 before IPv6), which is the order of peers in a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Peer {
    /// The peer's IP address (IPv4-mapped IPv6 addresses are stored as IPv4).
    pub ip: IpAddr,
    /// The peer's fill listener port, or 0 for "the configured internal listen port".
    pub port: u16,
    /// Whether this peer is the local replica. Stamped by the core, never by a peer source.
    #[cfg_attr(feature = "serde", serde(rename = "self"))]
    pub is_self: bool,
}

impl Peer {
    /// The socket address to dial: `port` 0 is replaced by `listen_port`.
    pub fn socket_addr(&self, listen_port: u16) -> SocketAddr {
        let port = if self.port == 0 {
            listen_port
        } else {
            self.port
        };
        SocketAddr::new(self.ip, port)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (ip, 0) => write!(f, "{ip}")?,
            (IpAddr::V4(ip), port) => write!(f, "{ip}:{port}")?,
            (IpAddr::V6(ip), port) => write!(f, "[{ip}]:{port}")?,
        }
        if self.is_self {
            f.write_str(" (self)")?;
        }
        Ok(())
    }
}

/// A peer address as a source reports it, before the core stamps `is_self`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PeerAddr {
    /// IP address as returned by DNS or the static source.
    pub ip: IpAddr,
    /// Listener port, 0 for "the configured internal listen port" (DNS answers always carry 0).
    pub port: u16,
}

impl PeerAddr {
    /// A peer address with port 0, as DNS reports it.
    pub const fn from_ip(ip: IpAddr) -> PeerAddr {
        PeerAddr { ip, port: 0 }
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr {
            ip: addr.ip(),
            port: addr.port(),
        }
    }
}

/// Treats an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Whether `ip` can be the address of a peer: a unicast address a pod can have. IPv4-mapped
/// IPv6 addresses are judged as IPv4.
///
/// Refused: the unspecified addresses and the rest of `0.0.0.0/8` ("this network", never a
/// host's address) and `::`; the IPv4 limited broadcast `255.255.255.255`; multicast
/// (`224.0.0.0/4`, `ff00::/8`). Everything else is accepted, including loopback (test clusters
/// and a single host), link-local, private and documentation ranges, and `240.0.0.0/4` (some
/// clusters give pods addresses from it).
pub fn is_peer_ip(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let [first, ..] = v4.octets();
            !(first == 0 || v4.is_broadcast() || v4.is_multicast())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Who "self" is: the local replica's IPs (two on a dual-stack pod) and its listener port as it
/// appears in peer records (0 in production, where DNS carries no ports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfIdentity {
    ips: Vec<IpAddr>,
    port: u16,
}

impl SelfIdentity {
    /// Builds an identity; `ips` are canonicalised (IPv4-mapped to IPv4) and de-duplicated, the
    /// first one stays the primary IP. `None` when `ips` is empty.
    pub fn new(ips: impl IntoIterator<Item = IpAddr>, port: u16) -> Option<SelfIdentity> {
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in ips {
            let ip = canonical_ip(ip);
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        if out.is_empty() {
            None
        } else {
            Some(SelfIdentity { ips: out, port })
        }
    }

    /// The configured self IPs, primary first. Never empty.
    pub fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// The self port as it appears in peer records.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether an address is this replica: one of the self IPs and the self port.
    pub fn matches(&self, addr: PeerAddr) -> bool {
        addr.port == self.port && self.ips.contains(&canonical_ip(addr.ip))
    }

    /// The peer entry for this replica (primary IP, self port, `is_self`).
    pub fn peer(&self) -> Peer {
        // `ips` is never empty (checked in `new`); fall back to the unspecified address only to
        // avoid a panic path.
        let ip = self
            .ips
            .first()
            .copied()
            .unwrap_or(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED));
        Peer {
            ip,
            port: self.port,
            is_self: true,
        }
    }

    /// Turns a source's address into a peer: canonical IP, `is_self` stamped.
    pub fn stamp(&self, addr: PeerAddr) -> Peer {
        Peer {
            ip: canonical_ip(addr.ip),
            port: addr.port,
            is_self: self.matches(addr),
        }
    }
}

/// The self port to use: `self_port` as configured (0 = unset), checked against (or taken
/// from) a static peer list.
///
/// `static_peers` is the list when the peer source is a static one, `None` for DNS or another
/// source. Self is the entry whose IP is one of `self_ips` (IPv4-mapped IPv6 counts as IPv4)
/// and whose port is the self port, so a list that carries ports must contain self:
///
/// - no static list, or a list without ports (all 0, or empty): `self_port` unchanged;
/// - `self_port` 0: the entries whose IP is a self IP must all have one port, which is used
///   ([`ConfigError::NoSelfPeerEntry`] when there is no such entry,
///   [`ConfigError::AmbiguousSelfPort`] when they have different ports);
/// - `self_port` set: an entry must be a self IP with that port, else
///   [`ConfigError::SelfPortNotListed`].
///
/// Without this check a static `ip:port` list and an unset self port would make the replica
/// add itself as `ip:0`, a peer nobody else knows, so that every fill it receives gets 409.
pub fn resolve_self_port(
    self_ips: &[IpAddr],
    self_port: u16,
    static_peers: Option<&[PeerAddr]>,
) -> Result<u16, ConfigError> {
    let Some(list) = static_peers else {
        return Ok(self_port);
    };
    if list.iter().all(|p| p.port == 0) {
        return Ok(self_port);
    }
    let is_self_ip = |ip: IpAddr| {
        let ip = canonical_ip(ip);
        self_ips.iter().any(|s| canonical_ip(*s) == ip)
    };
    let mine = list.iter().filter(|p| is_self_ip(p.ip));
    if self_port != 0 {
        return if mine.clone().any(|p| p.port == self_port) {
            Ok(self_port)
        } else {
            Err(ConfigError::SelfPortNotListed { port: self_port })
        };
    }
    let mut ports: Vec<u16> = mine.map(|p| p.port).collect();
    ports.sort_unstable();
    ports.dedup();
    match ports.as_slice() {
        [port] => Ok(*port),
        [] => Err(ConfigError::NoSelfPeerEntry {
            self_ips: self_ips.to_vec(),
        }),
        _ => Err(ConfigError::AmbiguousSelfPort { ports }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn only_unicast_addresses_are_peer_ips() {
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "::",
            "ff02::1",
            "ff0e::1",
            "::ffff:0.0.0.0",
            "::ffff:224.0.0.1",
            "::ffff:255.255.255.255",
        ] {
            assert!(!is_peer_ip(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "10.0.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.1",
            "240.0.0.1",
            "255.255.255.254",
            "1.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_peer_ip(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn mapped_v6_is_v4() {
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(canonical_ip(mapped), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(canonical_ip(v6), v6);
    }

    #[test]
    fn self_matches_any_self_ip_and_the_port() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let me = SelfIdentity::new([v4, v6, v4], 0).unwrap();
        assert_eq!(me.ips(), &[v4, v6]);
        assert!(me.matches(PeerAddr::from_ip(v4)));
        assert!(me.matches(PeerAddr::from_ip(v6)));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(me.stamp(PeerAddr::from_ip(mapped)).is_self);
        assert!(!me.matches(PeerAddr { ip: v4, port: 1 }));
        assert!(SelfIdentity::new([], 0).is_none());
    }

    #[test]
    fn display_and_dial_address() {
        let p = Peer {
            ip: "fd00::1".parse().unwrap(),
            port: 0,
            is_self: false,
        };
        assert_eq!(p.socket_addr(8444).to_string(), "[fd00::1]:8444");
        assert_eq!(p.to_string(), "fd00::1");
        let p = Peer {
            ip: "127.0.0.1".parse().unwrap(),
            port: 4000,
            is_self: true,
        };
        assert_eq!(p.socket_addr(8444).port(), 4000);
        assert_eq!(p.to_string(), "127.0.0.1:4000 (self)");
    }

    fn addr(s: &str) -> PeerAddr {
        PeerAddr::from(s.parse::<SocketAddr>().unwrap())
    }

    #[test]
    fn self_port_without_a_static_list_or_ports_is_unchanged() {
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(resolve_self_port(&[me], 0, None), Ok(0));
        assert_eq!(resolve_self_port(&[me], 4001, None), Ok(4001));
        assert_eq!(resolve_self_port(&[me], 0, Some(&[])), Ok(0));
        let no_ports = [addr("10.0.0.2:0"), addr("10.0.0.3:0")];
        assert_eq!(resolve_self_port(&[me], 0, Some(&no_ports)), Ok(0));
        assert_eq!(resolve_self_port(&[me], 7, Some(&no_ports)), Ok(7));
    }

    #[test]
    fn self_port_is_taken_from_the_unique_entry_of_a_self_ip() {
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        let list = [
            addr("127.0.0.2:4001"),
            addr("127.0.0.1:4002"),
            addr("10.0.0.1:4003"),
        ];
        assert_eq!(resolve_self_port(&[me], 0, Some(&list)), Ok(4002));
        // Listed twice with the same port: still one candidate. A mapped self IP matches.
        let list = [addr("127.0.0.1:4002"), addr("[::ffff:127.0.0.1]:4002")];
        assert_eq!(resolve_self_port(&[me], 0, Some(&list)), Ok(4002));
        // Dual-stack self: either IP may be the listed one.
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let list = [addr("[fd00::1]:4005"), addr("10.0.0.9:4006")];
        assert_eq!(resolve_self_port(&[me, v6], 0, Some(&list)), Ok(4005));
    }

    #[test]
    fn self_port_errors_name_the_field() {
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        let others = [addr("127.0.0.2:4001"), addr("127.0.0.3:4001")];
        let e = resolve_self_port(&[me], 0, Some(&others)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::NoSelfPeerEntry {
                self_ips: alloc::vec![me]
            }
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "self_port: no entry of the static peer list matches this replica's IPs (127.0.0.1)"
            ),
            "{text}"
        );
        assert!(text.ends_with("set the self port"), "{text}");

        let shared = [
            addr("127.0.0.1:4003"),
            addr("127.0.0.1:4001"),
            addr("127.0.0.1:4003"),
        ];
        let e = resolve_self_port(&[me], 0, Some(&shared)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::AmbiguousSelfPort {
                ports: alloc::vec![4001, 4003]
            }
        );
        assert!(e.to_string().starts_with("self_port: "), "{e}");
        assert!(
            e.to_string().contains("4001, 4003; set the self port"),
            "{e}"
        );
        // Setting the port resolves the ambiguity when it is listed...
        assert_eq!(resolve_self_port(&[me], 4003, Some(&shared)), Ok(4003));
        // ...and is an error when it is not (nor with another IP).
        let e = resolve_self_port(&[me], 4002, Some(&shared)).unwrap_err();
        assert_eq!(e, ConfigError::SelfPortNotListed { port: 4002 });
        assert!(e.to_string().starts_with("self_port: "), "{e}");
        assert_eq!(
            resolve_self_port(&[me], 4001, Some(&others)),
            Err(ConfigError::SelfPortNotListed { port: 4001 })
        );
    }
}
