//! `rendezvous`: coordinator selection on arbitrary peer sets and keys.

use arbitrary::Arbitrary;
use orca_cluster_core::rendezvous::{self, coordinator_index};
use orca_cluster_core::{ChunkKey, PeerAddr, Scoring, SelfIdentity, Snapshot};

#[derive(Arbitrary, Debug)]
struct Input {
    peers: Vec<PeerAddr>,
    /// Which record is self (modulo the count), or a self that is not among the records.
    self_pick: Option<u8>,
    outsider_self: PeerAddr,
    key: ChunkKey,
    scoring: Scoring,
    /// Rotation and duplication of the second DNS order.
    rotate: u8,
    duplicate: Option<u8>,
}

pub fn rendezvous(data: &[u8]) {
    let Some(mut input) = crate::structured::<Input>(data) else {
        return;
    };
    // Go-compat is a SHA-256 per peer: keep the sets small enough for many execs per second.
    input.peers.truncate(64);
    let me = match input.self_pick {
        Some(i) if !input.peers.is_empty() => input.peers[usize::from(i) % input.peers.len()],
        _ => input.outsider_self,
    };
    let id = SelfIdentity::new([me.ip], me.port).expect("one ip");

    let a = Snapshot::new(&id, input.peers.iter().copied(), input.scoring, 1);
    let mut other: Vec<PeerAddr> = input.peers.clone();
    other.reverse();
    if !other.is_empty() {
        let k = usize::from(input.rotate) % other.len();
        other.rotate_left(k);
    }
    if let Some(dup) = input.duplicate
        && !other.is_empty()
    {
        let p = other[usize::from(dup) % other.len()];
        other.push(p);
        // The same address as IPv4-mapped IPv6 is the same peer.
        if let std::net::IpAddr::V4(v4) = p.ip {
            other.push(PeerAddr {
                ip: std::net::IpAddr::V6(v4.to_ipv6_mapped()),
                port: p.port,
            });
        }
    }
    let b = Snapshot::new(&id, other, input.scoring, 2);
    assert_eq!(a, b, "the peer set depends on the record order");

    let key = &input.key;
    let c = a.coordinator(key);
    // Independent of the input order.
    assert_eq!(
        c,
        b.coordinator(key),
        "coordinator depends on the record order"
    );
    // In the snapshot.
    assert!(a.peers().contains(c), "coordinator {c} not in the snapshot");
    assert!(a.contains(c.ip, c.port));
    assert_eq!(a.is_coordinator(key), c.is_self);
    // Scores match `score()`, and the coordinator has the highest (earliest on ties).
    let scores = a.scores(key);
    assert_eq!(scores.len(), a.len());
    for (p, s) in a.peers().iter().zip(&scores) {
        assert_eq!(*s, rendezvous::score(p, key, input.scoring), "score of {p}");
    }
    let best = scores.iter().copied().max().expect("never empty");
    let first_best = scores
        .iter()
        .position(|&s| s == best)
        .expect("max is present");
    assert_eq!(
        &a.peers()[first_best],
        c,
        "coordinator is not the first highest score"
    );
    assert_eq!(
        coordinator_index(a.peers(), key, input.scoring),
        Some(first_best)
    );
    // ranked(): a permutation of the peers, descending, headed by the coordinator.
    let ranked = a.ranked(key);
    assert_eq!(ranked.len(), a.len());
    assert_eq!(&ranked[0].0, c, "ranked()[0] is not the coordinator");
    assert!(
        ranked.windows(2).all(|w| w[0].1 >= w[1].1),
        "ranked() not descending"
    );
    let mut peers: Vec<_> = ranked.iter().map(|(p, _)| *p).collect();
    peers.sort();
    assert_eq!(peers, a.peers());
    assert_eq!(rendezvous::ranked(a.peers(), key, input.scoring), ranked);
}
