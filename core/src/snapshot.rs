//! Immutable, cheaply cloned peer-set snapshots, and coordinator lookups on them.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::chunk::ChunkKey;
use crate::peer::{Peer, PeerAddr, SelfIdentity};
use crate::rendezvous::{GoPeerPrefix, PreparedKey, Scoring, xxh3_combine, xxh3_peer_digest};

/// An immutable peer set.
///
/// Guarantees: peers are sorted by `(ip, port)` and de-duplicated; exactly the peers that match
/// the [`SelfIdentity`] have `is_self`, and at least one such peer is present (a snapshot is never
/// empty); `generation` identifies the set (the membership state machine advances it on every
/// change). Cloning is an `Arc` clone. Lookups take `&self`, allocate nothing and can run on any
/// number of threads at once.
#[derive(Clone, Debug)]
pub struct Snapshot {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    generation: u64,
    scoring: Scoring,
    peers: Box<[Peer]>,
    xxh3_digests: Box<[u64]>,
    go_prefixes: Box<[GoPeerPrefix]>,
}

impl PartialEq for Snapshot {
    /// Two snapshots are equal when they hold the same peers (generation and scoring ignored).
    fn eq(&self, other: &Snapshot) -> bool {
        self.inner.peers == other.inner.peers
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// Builds a snapshot from a source's addresses: stamps self, adds self if missing, sorts and
    /// de-duplicates. `generation` is recorded as given.
    pub fn new(
        me: &SelfIdentity,
        addrs: impl IntoIterator<Item = PeerAddr>,
        scoring: Scoring,
        generation: u64,
    ) -> Snapshot {
        let mut peers: Vec<Peer> = addrs.into_iter().map(|a| me.stamp(a)).collect();
        if !peers.iter().any(|p| p.is_self) {
            peers.push(me.peer());
        }
        peers.sort_unstable();
        peers.dedup();
        Snapshot::from_sorted(peers, scoring, generation)
    }

    /// The bootstrap snapshot `[self]`.
    pub fn only_self(me: &SelfIdentity, scoring: Scoring, generation: u64) -> Snapshot {
        Snapshot::from_sorted(alloc::vec![me.peer()], scoring, generation)
    }

    fn from_sorted(peers: Vec<Peer>, scoring: Scoring, generation: u64) -> Snapshot {
        let (xxh3_digests, go_prefixes): (Box<[u64]>, Box<[GoPeerPrefix]>) = match scoring {
            Scoring::Xxh3 => (
                peers
                    .iter()
                    .map(|p| xxh3_peer_digest(p.ip, p.port))
                    .collect(),
                Box::new([]),
            ),
            Scoring::GoCompat => (Box::new([]), peers.iter().map(GoPeerPrefix::new).collect()),
        };
        Snapshot {
            inner: Arc::new(Inner {
                generation,
                scoring,
                peers: peers.into_boxed_slice(),
                xxh3_digests,
                go_prefixes,
            }),
        }
    }

    /// A copy of this snapshot's peers under another generation number.
    pub fn with_generation(&self, generation: u64) -> Snapshot {
        Snapshot::from_sorted(self.inner.peers.to_vec(), self.inner.scoring, generation)
    }

    /// The generation number: 0 for the bootstrap `[self]`, then advanced on every change.
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The scoring function lookups use.
    pub fn scoring(&self) -> Scoring {
        self.inner.scoring
    }

    /// The peers, sorted by `(ip, port)`. Never empty.
    pub fn peers(&self) -> &[Peer] {
        &self.inner.peers
    }

    /// Number of peers (at least 1).
    pub fn len(&self) -> usize {
        self.inner.peers.len()
    }

    /// Always false: a snapshot holds at least self. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.inner.peers.is_empty()
    }

    /// The local replica's entry.
    pub fn self_peer(&self) -> Option<&Peer> {
        self.inner.peers.iter().find(|p| p.is_self)
    }

    /// Whether `peer` (by ip and port) is in this snapshot.
    pub fn contains(&self, ip: core::net::IpAddr, port: u16) -> bool {
        let ip = crate::peer::canonical_ip(ip);
        self.inner
            .peers
            .iter()
            .any(|p| p.ip == ip && p.port == port)
    }

    fn coordinator_position(&self, prepared: &PreparedKey<'_>) -> usize {
        let inner = &*self.inner;
        let mut best_i = 0usize;
        let mut best = 0u64;
        match prepared {
            PreparedKey::Xxh3(kd) => {
                for (i, &d) in inner.xxh3_digests.iter().enumerate() {
                    let s = xxh3_combine(d, *kd);
                    if i == 0 || s > best {
                        best = s;
                        best_i = i;
                    }
                }
            }
            PreparedKey::GoCompat { .. } => {
                for (i, g) in inner.go_prefixes.iter().enumerate() {
                    let s = prepared.go_score_prefix(g);
                    if i == 0 || s > best {
                        best = s;
                        best_i = i;
                    }
                }
            }
        }
        best_i
    }

    fn prepared<'k>(&self, key: &'k ChunkKey) -> PreparedKey<'k> {
        PreparedKey::new(key, self.inner.scoring)
    }

    /// The coordinator of `key`: the peer with the highest score (ties to the earlier peer in
    /// snapshot order). No heap allocation.
    pub fn coordinator(&self, key: &ChunkKey) -> &Peer {
        let i = self.coordinator_position(&self.prepared(key));
        // `i` is an index produced by iterating the non-empty peer list.
        match self.inner.peers.get(i) {
            Some(p) => p,
            None => &FALLBACK_PEER,
        }
    }

    /// Whether the local replica coordinates `key`.
    pub fn is_coordinator(&self, key: &ChunkKey) -> bool {
        self.coordinator(key).is_self
    }

    /// The score of every peer for `key`, in snapshot order.
    pub fn scores(&self, key: &ChunkKey) -> Vec<u64> {
        let prepared = self.prepared(key);
        self.inner
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| match (&prepared, self.inner.xxh3_digests.get(i)) {
                (PreparedKey::Xxh3(kd), Some(&d)) => xxh3_combine(d, *kd),
                _ => match self.inner.go_prefixes.get(i) {
                    Some(g) => prepared.go_score_prefix(g),
                    None => prepared.score(p),
                },
            })
            .collect()
    }

    /// All peers with their scores for `key`, highest score first (the coordinator first; the
    /// rest in fallback order). Equal scores keep snapshot order.
    pub fn ranked(&self, key: &ChunkKey) -> Vec<(Peer, u64)> {
        let mut out: Vec<(Peer, u64)> = self
            .inner
            .peers
            .iter()
            .copied()
            .zip(self.scores(key))
            .collect();
        out.sort_by_key(|e| core::cmp::Reverse(e.1));
        out
    }

    /// Peers in `self` but not in `other`, and peers in `other` but not in `self`
    /// (`(added, removed)` when `self` is the newer snapshot).
    pub fn diff(&self, older: &Snapshot) -> (Vec<Peer>, Vec<Peer>) {
        let added = self
            .peers()
            .iter()
            .filter(|p| older.peers().binary_search(p).is_err())
            .copied()
            .collect();
        let removed = older
            .peers()
            .iter()
            .filter(|p| self.peers().binary_search(p).is_err())
            .copied()
            .collect();
        (added, removed)
    }
}

static FALLBACK_PEER: Peer = Peer {
    ip: core::net::IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
    port: 0,
    is_self: true,
};

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::IpAddr;

    fn me() -> SelfIdentity {
        SelfIdentity::new(["10.0.0.2".parse().unwrap()], 0).unwrap()
    }

    fn addrs(ips: &[&str]) -> Vec<PeerAddr> {
        ips.iter()
            .map(|s| PeerAddr::from_ip(s.parse::<IpAddr>().unwrap()))
            .collect()
    }

    fn key(i: u64) -> ChunkKey {
        ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size: 1 << 20,
            index: i,
        }
    }

    #[test]
    fn sorted_deduped_self_stamped_and_added() {
        let s = Snapshot::new(
            &me(),
            addrs(&["10.0.0.3", "10.0.0.1", "10.0.0.3"]),
            Scoring::Xxh3,
            1,
        );
        let ips: Vec<String> = s.peers().iter().map(|p| p.ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(s.peers().iter().filter(|p| p.is_self).count(), 1);
        assert_eq!(s.self_peer().unwrap().ip.to_string(), "10.0.0.2");
        let empty = Snapshot::new(&me(), [], Scoring::Xxh3, 2);
        assert_eq!(empty.len(), 1);
        assert!(!empty.is_empty());
    }

    #[test]
    fn coordinator_independent_of_input_order() {
        for scoring in [Scoring::Xxh3, Scoring::GoCompat] {
            let a = Snapshot::new(
                &me(),
                addrs(&["10.0.0.1", "10.0.0.3", "fd00::9"]),
                scoring,
                1,
            );
            let b = Snapshot::new(
                &me(),
                addrs(&["fd00::9", "10.0.0.3", "10.0.0.1"]),
                scoring,
                1,
            );
            for i in 0..200 {
                assert_eq!(a.coordinator(&key(i)), b.coordinator(&key(i)));
                let ranked = a.ranked(&key(i));
                assert_eq!(&ranked[0].0, a.coordinator(&key(i)));
                assert_eq!(ranked.len(), 4);
                for (p, s) in &ranked {
                    assert_eq!(*s, crate::rendezvous::score(p, &key(i), scoring));
                }
            }
        }
    }

    #[test]
    fn diff_reports_added_and_removed() {
        let old = Snapshot::new(&me(), addrs(&["10.0.0.1", "10.0.0.3"]), Scoring::Xxh3, 1);
        let new = Snapshot::new(&me(), addrs(&["10.0.0.1", "10.0.0.4"]), Scoring::Xxh3, 2);
        let (added, removed) = new.diff(&old);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].ip.to_string(), "10.0.0.4");
        assert_eq!(removed[0].ip.to_string(), "10.0.0.3");
        assert!(new.contains("10.0.0.4".parse().unwrap(), 0));
        assert!(!new.contains("10.0.0.3".parse().unwrap(), 0));
    }

    use alloc::string::{String, ToString};
}
