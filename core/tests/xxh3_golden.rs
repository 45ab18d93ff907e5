//! Golden vectors for the default xxh3 scoring.
//!
//! Two independent checks:
//! 1. The byte layout documented in `rendezvous.rs` is re-implemented here by hand (buffers
//!    built byte by byte, hashed with `xxhash_rust::xxh3::xxh3_64`) and compared with the
//!    crate's `xxh3_key_digest`, `xxh3_peer_digest`, `xxh3_combine` and `score`.
//! 2. Literal u64 values, computed once from the implementation and pasted in, pin the layout:
//!    any change of it (field order, endianness, IP form, seed) breaks this test, and such a
//!    change is a breaking change of the cluster protocol (replicas would disagree). When they
//!    were pinned, `base_index_0`, `long_object_key`, the `v4_port0` / `v6_port65535` peer
//!    digests and the `v4_port0 x base_index_0` score were also recomputed with the C reference
//!    XXH3 (python-xxhash) from the same hand-built bytes, and agreed.

use std::net::IpAddr;

use orca_cluster_core::rendezvous::{self, xxh3_combine, xxh3_key_digest, xxh3_peer_digest};
use orca_cluster_core::{ChunkKey, Peer, PeerAddr, Scoring, SelfIdentity, Snapshot};
use xxhash_rust::xxh3::xxh3_64;

// ---- the documented layout, written out by hand ----

/// `LP(s) = LEB128(len(s)) || s`, written independently of the crate's encoder.
fn lp(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len() as u64;
    loop {
        let low = (n % 128) as u8;
        n /= 128;
        if n == 0 {
            out.push(low);
            break;
        }
        out.push(low + 128);
    }
    out.extend_from_slice(s.as_bytes());
}

fn key_bytes(k: &ChunkKey) -> Vec<u8> {
    let mut b = Vec::new();
    lp(&mut b, &k.origin_id);
    lp(&mut b, &k.bucket);
    lp(&mut b, &k.object_key);
    lp(&mut b, &k.etag);
    b.extend_from_slice(&k.chunk_size.to_le_bytes());
    b.extend_from_slice(&k.index.to_le_bytes());
    b
}

/// `ip16 || BE16(port)`; IPv4 (and IPv4-mapped IPv6) as `::ffff:a.b.c.d`.
fn peer_bytes(ip: IpAddr, port: u16) -> [u8; 18] {
    let ip16: [u8; 16] = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, o[0], o[1], o[2], o[3],
            ]
        }
        IpAddr::V6(v6) => v6.octets(), // a mapped address already has the ::ffff: form
    };
    let mut b = [0u8; 18];
    b[..16].copy_from_slice(&ip16);
    b[16] = (port >> 8) as u8;
    b[17] = (port & 0xff) as u8;
    b
}

fn ref_key_digest(k: &ChunkKey) -> u64 {
    xxh3_64(&key_bytes(k))
}

fn ref_peer_digest(ip: IpAddr, port: u16) -> u64 {
    xxh3_64(&peer_bytes(ip, port))
}

fn ref_score(ip: IpAddr, port: u16, k: &ChunkKey) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ref_peer_digest(ip, port).to_le_bytes());
    b[8..].copy_from_slice(&ref_key_digest(k).to_le_bytes());
    xxh3_64(&b)
}

// ---- the cases ----

fn keys() -> Vec<(&'static str, ChunkKey)> {
    let base = ChunkKey {
        origin_id: "azure-eastus".into(),
        bucket: "models".into(),
        object_key: "llama/weights/shard-00042.safetensors".into(),
        etag: "9b2cf535f27731c974343645a3985328".into(),
        chunk_size: 8_388_608,
        index: 0,
    };
    vec![
        ("base_index_0", base.clone()),
        (
            "index_2pow40",
            ChunkKey {
                index: 1 << 40,
                ..base.clone()
            },
        ),
        (
            "empty_bucket_etag",
            ChunkKey {
                bucket: String::new(),
                etag: String::new(),
                ..base.clone()
            },
        ),
        (
            "unicode",
            ChunkKey {
                object_key: "模型/权重/分片-00042.safetensors".into(),
                ..base.clone()
            },
        ),
        (
            // Longer than the implementation's 256-byte stack buffer: the streaming path.
            "long_object_key",
            ChunkKey {
                object_key: "x/".repeat(200),
                chunk_size: 1,
                index: u64::MAX,
                ..base.clone()
            },
        ),
        (
            // Moving bytes between fields changes the digest (length prefixes).
            "shifted_fields",
            ChunkKey {
                origin_id: "azure-eastusm".into(),
                bucket: "odels".into(),
                ..base
            },
        ),
    ]
}

fn peers() -> Vec<(&'static str, IpAddr, u16)> {
    let ip = |s: &str| s.parse::<IpAddr>().expect("valid ip");
    vec![
        ("v4_port0", ip("10.0.0.1"), 0),
        ("v4_port40001", ip("127.0.0.1"), 40001),
        ("v6_port0", ip("fd00:10:244::2a"), 0),
        ("v6_port65535", ip("fd00::1"), 65535),
        ("mapped_v6_port0", ip("::ffff:10.0.0.1"), 0),
        ("mapped_v6_port8444", ip("::ffff:10.244.3.17"), 8444),
    ]
}

// ---- pinned values (printed once by `print_goldens`, see below) ----

const KEY_DIGESTS: &[(&str, u64)] = &[
    ("base_index_0", 0x9c5068e8ddc239d5),
    ("index_2pow40", 0xf821c13c779a9b1c),
    ("empty_bucket_etag", 0xb12b620c22918e83),
    ("unicode", 0x5c4bc9c3b215f25f),
    ("long_object_key", 0xa67d8fb6ab1f3380),
    ("shifted_fields", 0xd41003c61c8f192a),
];
const PEER_DIGESTS: &[(&str, u64)] = &[
    ("v4_port0", 0xe5179845ef381a80),
    ("v4_port40001", 0xc6bf4ac1de453171),
    ("v6_port0", 0x679170d0e173052c),
    ("v6_port65535", 0x3428704ec94195b8),
    ("mapped_v6_port0", 0xe5179845ef381a80),
    ("mapped_v6_port8444", 0x2daa4c45af8f7c5d),
];
const SCORES: &[(&str, &str, u64)] = &[
    ("v4_port0", "base_index_0", 0xe4b7575215c2b5c0),
    ("v4_port40001", "base_index_0", 0xbf4183824d0f84c3),
    ("v6_port0", "base_index_0", 0x53d8d641d935701c),
    ("v6_port65535", "base_index_0", 0x3fb9b0e387cf45ca),
    ("mapped_v6_port0", "base_index_0", 0xe4b7575215c2b5c0),
    ("mapped_v6_port8444", "base_index_0", 0x0a10f17c207b9b74),
    ("v4_port0", "index_2pow40", 0xbe707f008145fdbc),
    ("v4_port40001", "index_2pow40", 0xb724d10f954b3eab),
    ("v6_port0", "index_2pow40", 0x004cab86f982eb55),
    ("v6_port65535", "index_2pow40", 0xa79e396c6a049689),
    ("mapped_v6_port0", "index_2pow40", 0xbe707f008145fdbc),
    ("mapped_v6_port8444", "index_2pow40", 0x538df89b34fb6d15),
    ("v4_port0", "empty_bucket_etag", 0xc7ffbe58e13009d7),
    ("v4_port40001", "empty_bucket_etag", 0x27e697d33bc253d7),
    ("v6_port0", "empty_bucket_etag", 0x6b7a23fa425c9107),
    ("v6_port65535", "empty_bucket_etag", 0x3c7945dbd44d1b43),
    ("mapped_v6_port0", "empty_bucket_etag", 0xc7ffbe58e13009d7),
    (
        "mapped_v6_port8444",
        "empty_bucket_etag",
        0x48547c4d4054272d,
    ),
    ("v4_port0", "unicode", 0x6e9c34b8ae7729c7),
    ("v4_port40001", "unicode", 0x3128145197473430),
    ("v6_port0", "unicode", 0xd2384fd4c9c5941b),
    ("v6_port65535", "unicode", 0x95e71154a505a228),
    ("mapped_v6_port0", "unicode", 0x6e9c34b8ae7729c7),
    ("mapped_v6_port8444", "unicode", 0xe9cd28b11433f52f),
    ("v4_port0", "long_object_key", 0x5b39cf139b66c7df),
    ("v4_port40001", "long_object_key", 0x03a4eb8d1ae2ffdb),
    ("v6_port0", "long_object_key", 0x5daba17b0d7cd58e),
    ("v6_port65535", "long_object_key", 0xa2f924ddea360370),
    ("mapped_v6_port0", "long_object_key", 0x5b39cf139b66c7df),
    ("mapped_v6_port8444", "long_object_key", 0x5f64569823c7a4ca),
    ("v4_port0", "shifted_fields", 0x1803cda7b6c42eda),
    ("v4_port40001", "shifted_fields", 0xd784a5c26d33b546),
    ("v6_port0", "shifted_fields", 0xd1c40fd1fb27d50a),
    ("v6_port65535", "shifted_fields", 0x5366a1e66df5f750),
    ("mapped_v6_port0", "shifted_fields", 0x1803cda7b6c42eda),
    ("mapped_v6_port8444", "shifted_fields", 0xcec1b37e95e83760),
];

#[test]
fn implementation_matches_the_documented_layout() {
    let mut compared = 0;
    for (kname, k) in keys() {
        let kd = ref_key_digest(&k);
        assert_eq!(xxh3_key_digest(&k), kd, "key digest of {kname}");
        for (pname, ip, port) in peers() {
            let pd = ref_peer_digest(ip, port);
            assert_eq!(xxh3_peer_digest(ip, port), pd, "peer digest of {pname}");
            let want = ref_score(ip, port, &k);
            assert_eq!(xxh3_combine(pd, kd), want, "combine {pname} x {kname}");
            let peer = Peer {
                ip,
                port,
                is_self: false,
            };
            assert_eq!(
                rendezvous::score(&peer, &k, Scoring::Xxh3),
                want,
                "score {pname} x {kname}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, keys().len() * peers().len());
}

#[test]
fn mapped_ipv6_is_the_ipv4_peer() {
    let v4: IpAddr = "10.0.0.1".parse().unwrap();
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(peer_bytes(v4, 7), peer_bytes(mapped, 7));
    assert_eq!(xxh3_peer_digest(v4, 7), xxh3_peer_digest(mapped, 7));
    // ...but a different port or a different address is a different peer.
    assert_ne!(xxh3_peer_digest(v4, 7), xxh3_peer_digest(v4, 8));
    assert_ne!(
        xxh3_peer_digest(v4, 0),
        xxh3_peer_digest("10.0.0.2".parse().unwrap(), 0)
    );
}

#[test]
fn snapshot_scores_use_the_same_layout() {
    let me = SelfIdentity::new(["10.0.0.1".parse().unwrap()], 0).unwrap();
    let addrs: Vec<PeerAddr> = peers()
        .into_iter()
        .map(|(_, ip, port)| PeerAddr { ip, port })
        .collect();
    let snap = Snapshot::new(&me, addrs, Scoring::Xxh3, 1);
    // The mapped 10.0.0.1 port 0 collapses into self.
    assert_eq!(snap.len(), peers().len() - 1);
    for (kname, k) in keys() {
        let scores = snap.scores(&k);
        let mut best: Option<(usize, u64)> = None;
        for (i, (p, s)) in snap.peers().iter().zip(&scores).enumerate() {
            assert_eq!(*s, ref_score(p.ip, p.port, &k), "{kname}: {p}");
            if best.is_none_or(|(_, b)| *s > b) {
                best = Some((i, *s));
            }
        }
        let (bi, _) = best.unwrap();
        assert_eq!(
            snap.coordinator(&k),
            &snap.peers()[bi],
            "{kname}: coordinator is the highest reference score"
        );
    }
}

#[test]
fn pinned_golden_values() {
    assert_eq!(KEY_DIGESTS.len(), keys().len(), "one pinned digest per key");
    assert_eq!(
        PEER_DIGESTS.len(),
        peers().len(),
        "one pinned digest per peer"
    );
    assert_eq!(SCORES.len(), keys().len() * peers().len());
    for ((kname, k), (pin_name, pinned)) in keys().iter().zip(KEY_DIGESTS) {
        assert_eq!(kname, pin_name);
        assert_eq!(xxh3_key_digest(k), *pinned, "pinned key digest {kname}");
    }
    for ((pname, ip, port), (pin_name, pinned)) in peers().iter().zip(PEER_DIGESTS) {
        assert_eq!(pname, pin_name);
        assert_eq!(
            xxh3_peer_digest(*ip, *port),
            *pinned,
            "pinned peer digest {pname}"
        );
    }
    let mut i = 0;
    for (kname, k) in keys() {
        for (pname, ip, port) in peers() {
            let (pin_p, pin_k, pinned) = SCORES[i];
            assert_eq!((pname, kname), (pin_p, pin_k));
            let peer = Peer {
                ip,
                port,
                is_self: false,
            };
            assert_eq!(
                rendezvous::score(&peer, &k, Scoring::Xxh3),
                pinned,
                "pinned score {pname} x {kname}"
            );
            i += 1;
        }
    }
}

/// Prints the pinned tables from the implementation:
/// `cargo test -p orca-cluster-core --test xxh3_golden -- --ignored --nocapture print_goldens`.
/// Only for regenerating after a *deliberate*, versioned change of the layout.
#[test]
#[ignore = "generator for the pinned tables"]
fn print_goldens() {
    println!("const KEY_DIGESTS: &[(&str, u64)] = &[");
    for (kname, k) in keys() {
        println!("    ({kname:?}, {:#018x}),", xxh3_key_digest(&k));
    }
    println!("];\nconst PEER_DIGESTS: &[(&str, u64)] = &[");
    for (pname, ip, port) in peers() {
        println!("    ({pname:?}, {:#018x}),", xxh3_peer_digest(ip, port));
    }
    println!("];\nconst SCORES: &[(&str, &str, u64)] = &[");
    for (kname, k) in keys() {
        for (pname, ip, port) in peers() {
            let peer = Peer {
                ip,
                port,
                is_self: false,
            };
            println!(
                "    ({pname:?}, {kname:?}, {:#018x}),",
                rendezvous::score(&peer, &k, Scoring::Xxh3)
            );
        }
    }
    println!("];");
}
