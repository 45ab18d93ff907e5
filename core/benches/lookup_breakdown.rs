//! Where the time of an xxh3 coordinator lookup goes (a profile, not a criterion benchmark).
//!
//! `cargo bench -p orca-cluster-core --bench lookup_breakdown`
//!
//! Each figure is the *minimum* over 400 short batches of the per-call time, so it is the
//! uncontended cost even on a busy 2-core machine (criterion's mean is inflated by other
//! processes). Rows:
//! - the whole `Snapshot::coordinator` at 16 and 1024 peers;
//! - `xxh3_key_digest` (once per lookup), split into xxh3 over the already-built bytes and the
//!   rest (building the length-prefixed buffer);
//! - the per-peer part: an arg-max loop of `xxh3_combine` over precomputed peer digests;
//! - for comparison: the first layout's LE64 length prefixes (realistic keys then miss xxh3's
//!   <= 128-byte path, which is why the shipped layout uses LEB128 prefixes), a hand-written
//!   LEB128 digest (the shipped layout, as a floor), and a hypothetical folded-multiply mixer
//!   instead of xxh3 over 16 bytes per peer.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use orca_cluster_core::rendezvous::{xxh3_combine, xxh3_key_digest, xxh3_peer_digest};
use orca_cluster_core::{ChunkKey, PeerAddr, Scoring, SelfIdentity, Snapshot};
use xxhash_rust::xxh3::xxh3_64;

fn keys() -> Vec<ChunkKey> {
    (0..256u64)
        .map(|i| ChunkKey {
            origin_id: "azure-eastus".into(),
            bucket: "training-data".into(),
            object_key: format!("datasets/imagenet-1k/shard-{i:05}.tar.zst"),
            etag: format!("{:032x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            chunk_size: 8 << 20,
            index: i % 61,
        })
        .collect()
}

/// Batches per figure: 400 under `cargo bench`, a few under `cargo test --benches`.
static BATCHES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(400);

/// Minimum over the batches of the mean time per call, in ns.
fn min_ns(calls_per_batch: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..BATCHES.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        for i in 0..calls_per_batch {
            f(i);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / calls_per_batch as f64);
    }
    best
}

/// The first layout's key bytes (LE64 length prefixes), for comparison.
fn key_bytes(k: &ChunkKey) -> Vec<u8> {
    let mut b = Vec::new();
    for f in [&k.origin_id, &k.bucket, &k.object_key, &k.etag] {
        b.extend_from_slice(&(f.len() as u64).to_le_bytes());
        b.extend_from_slice(f.as_bytes());
    }
    b.extend_from_slice(&k.chunk_size.to_le_bytes());
    b.extend_from_slice(&k.index.to_le_bytes());
    b
}

/// The shipped layout (LEB128 length prefixes, 1 byte below 128), written by hand as a floor.
fn key_digest_leb128(k: &ChunkKey) -> u64 {
    let mut buf = [0u8; 256];
    let mut at = 0;
    let fields = [&k.origin_id, &k.bucket, &k.object_key, &k.etag];
    if fields.iter().map(|f| f.len() + 2).sum::<usize>() + 16 > buf.len() {
        return 0; // (the bench keys are short; a real implementation would stream)
    }
    for f in fields {
        let mut n = f.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                buf[at] = b;
                at += 1;
                break;
            }
            buf[at] = b | 0x80;
            at += 1;
        }
        buf[at..at + f.len()].copy_from_slice(f.as_bytes());
        at += f.len();
    }
    buf[at..at + 8].copy_from_slice(&k.chunk_size.to_le_bytes());
    buf[at + 8..at + 16].copy_from_slice(&k.index.to_le_bytes());
    xxh3_64(&buf[..at + 16])
}

/// Hypothetical per-peer mixer: one 64x64->128 folded multiply and the xxh3 avalanche.
#[inline]
fn mix(peer_digest: u64, key_digest: u64) -> u64 {
    let m = u128::from(peer_digest ^ 0xbe4b_a423_396c_feb8)
        * u128::from(key_digest ^ 0x1cad_21f7_2c81_017c);
    let mut h = (m as u64) ^ ((m >> 64) as u64);
    h ^= h >> 37;
    h = h.wrapping_mul(0x1656_6791_9e37_79f9);
    h ^ (h >> 32)
}

fn argmax(digests: &[u64], kd: u64, score: impl Fn(u64, u64) -> u64) -> usize {
    let mut best_i = 0;
    let mut best = 0;
    for (i, &d) in digests.iter().enumerate() {
        let s = score(d, kd);
        if i == 0 || s > best {
            best = s;
            best_i = i;
        }
    }
    best_i
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects speed.
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        BATCHES.store(3, std::sync::atomic::Ordering::Relaxed);
    }
    let keys = keys();
    let bytes: Vec<Vec<u8>> = keys.iter().map(key_bytes).collect();
    let ip = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + i * 7));
    let me = SelfIdentity::new([ip(1)], 0).expect("one ip");
    let digests: Vec<u64> = (1..=1024).map(|i| xxh3_peer_digest(ip(i), 0)).collect();
    let k = |i: u64| &keys[(i & 255) as usize];
    let scale = if quick { 1 } else { 100 };

    println!(
        "key bytes (first, LE64-prefixed layout): {}",
        bytes[0].len()
    );
    let whole_key = min_ns(200 * scale, |i| {
        black_box(xxh3_key_digest(black_box(k(i))));
    });
    let hash_only = min_ns(200 * scale, |i| {
        black_box(xxh3_64(black_box(&bytes[(i & 255) as usize])));
    });
    let hash_128 = min_ns(200 * scale, |i| {
        black_box(xxh3_64(black_box(&bytes[(i & 255) as usize][..128])));
    });
    let leb = min_ns(200 * scale, |i| {
        black_box(key_digest_leb128(black_box(k(i))));
    });
    println!("xxh3_key_digest                      {whole_key:8.1} ns");
    println!(
        "  xxh3_64 over 145 LE64-layout bytes {hash_only:8.1} ns  (xxh3's 129..240-byte path)"
    );
    println!(
        "  digest minus that hash             {:8.1} ns",
        whole_key - hash_only
    );
    println!("  for scale: xxh3_64 over 128 bytes  {hash_128:8.1} ns  (xxh3's 17..128-byte path)");
    println!("  hand-written LEB128 digest (floor) {leb:8.1} ns");

    for peers in [16usize, 1024] {
        let snap = Snapshot::new(
            &me,
            (1..=peers as u32).map(|i| PeerAddr::from_ip(ip(i))),
            Scoring::Xxh3,
            1,
        );
        let calls = (20_000 * scale / peers as u64).max(1);
        let lookup = min_ns(calls, |i| {
            black_box(snap.coordinator(black_box(k(i))));
        });
        let d = &digests[..peers];
        let combine = min_ns(calls, |i| {
            black_box(argmax(d, black_box(i), xxh3_combine));
        });
        let mixed = min_ns(calls, |i| {
            black_box(argmax(d, black_box(i), mix));
        });
        println!("--- {peers} peers");
        println!("Snapshot::coordinator (xxh3)         {lookup:8.1} ns");
        println!(
            "  per-peer xxh3_combine arg-max      {combine:8.1} ns  ({:.2} ns/peer)",
            combine / peers as f64
        );
        println!("  key digest (above)                 {whole_key:8.1} ns");
        println!(
            "  rest (dispatch, loop setup)        {:8.1} ns",
            lookup - combine - whole_key
        );
        println!(
            "  hypothetical folded-multiply mixer {mixed:8.1} ns  ({:.2} ns/peer)",
            mixed / peers as f64
        );
    }
}
