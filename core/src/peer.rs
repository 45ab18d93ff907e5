//! Peers: the replicas of the Deployment, as addresses.

use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use core::net::{Ipv4Addr, Ipv6Addr};

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
}
