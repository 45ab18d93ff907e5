//! Coordinator lookup: `Snapshot::coordinator` at 3, 16, 128 and 1024 peers, xxh3 and
//! go-compat side by side (one criterion group per peer count), plus the per-lookup key
//! preparation alone (to split a lookup's cost into "hash the key" and "score every peer").
//!
//! `cargo bench -p orca-cluster-core --bench lookup -- --warm-up-time 1 --measurement-time 3`
//!
//! Keys are realistic (origin id, bucket, a 40-character object key, a 32-character etag) and
//! rotate through 256 distinct keys so the winning position is not predictable.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use orca_cluster_core::rendezvous::{PreparedKey, xxh3_key_digest};
use orca_cluster_core::{ChunkKey, PeerAddr, Scoring, SelfIdentity, Snapshot};

const PEER_COUNTS: [u32; 4] = [3, 16, 128, 1024];
const SCORINGS: [Scoring; 2] = [Scoring::Xxh3, Scoring::GoCompat];

fn keys() -> Vec<ChunkKey> {
    (0..256u64)
        .map(|i| {
            let object_key = format!("datasets/imagenet-1k/shard-{i:05}.tar.zst");
            assert_eq!(object_key.len(), 40);
            let etag = format!("{:032x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert_eq!(etag.len(), 32);
            ChunkKey {
                origin_id: "azure-eastus".into(),
                bucket: "training-data".into(),
                object_key,
                etag,
                chunk_size: 8 << 20,
                index: i % 61,
            }
        })
        .collect()
}

fn snapshot(peers: u32, scoring: Scoring) -> Snapshot {
    let ip = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + i * 7));
    let me = SelfIdentity::new([ip(1)], 0).expect("one ip");
    let snap = Snapshot::new(
        &me,
        (1..=peers).map(|i| PeerAddr::from_ip(ip(i))),
        scoring,
        1,
    );
    assert_eq!(snap.len(), peers as usize);
    snap
}

fn coordinator(c: &mut Criterion) {
    let keys = keys();
    for peers in PEER_COUNTS {
        let mut group = c.benchmark_group(format!("coordinator/{peers}"));
        for scoring in SCORINGS {
            let snap = snapshot(peers, scoring);
            group.bench_with_input(
                BenchmarkId::from_parameter(scoring.name()),
                &snap,
                |b, snap| {
                    let mut i = 0usize;
                    b.iter(|| {
                        i = (i + 1) & 255;
                        black_box(snap.coordinator(black_box(&keys[i])))
                    });
                },
            );
        }
        group.finish();
    }
}

/// The part of a lookup that does not depend on the peer count.
fn key_preparation(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("prepare_key");
    group.bench_function("xxh3", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 255;
            black_box(xxh3_key_digest(black_box(&keys[i])))
        });
    });
    group.bench_function("go-compat", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 255;
            black_box(PreparedKey::new(black_box(&keys[i]), Scoring::GoCompat))
        });
    });
    group.finish();
}

criterion_group!(benches, coordinator, key_preparation);
criterion_main!(benches);
