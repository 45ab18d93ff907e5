//! Coordinator lookups allocate nothing (design section 6): `Snapshot::coordinator` and
//! `Snapshot::is_coordinator` at 16 and 1024 peers, xxh3 and go-compat.
//!
//! A plain `main` (`harness = false` in Cargo.toml): libtest's worker threads would share the
//! global counter. The counting allocator is `stats_alloc`, which needs no `unsafe` here (the
//! workspace forbids `unsafe_code`, and a forbid cannot be allowed per file).

use std::alloc::System;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use orca_cluster_core::{ChunkKey, PeerAddr, Scoring, SelfIdentity, Snapshot};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn snapshot(peers: u32, scoring: Scoring) -> Snapshot {
    let ip = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    let me = SelfIdentity::new([ip(1)], 0).expect("one self ip");
    Snapshot::new(
        &me,
        (1..=peers).map(|i| PeerAddr::from_ip(ip(i))),
        scoring,
        1,
    )
}

fn keys(n: u64) -> Vec<ChunkKey> {
    (0..n)
        .map(|i| ChunkKey {
            origin_id: "azure-eastus".into(),
            bucket: "models".into(),
            object_key: format!("llama/weights/shard-{i:05}.safetensors-0123456789"),
            etag: "9b2cf535f27731c974343645a3985328".into(),
            chunk_size: 8 << 20,
            index: i * 7,
        })
        .collect()
}

/// Allocations (including reallocations) made by `f`.
fn allocations(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

fn main() {
    let keys = keys(64);
    let mut failures = Vec::new();
    let mut checked = 0;

    // The counter must see an allocation when there is one, or a zero below proves nothing.
    let seen = allocations(|| {
        black_box(vec![1u8; 64]);
    });
    assert!(seen >= 1, "the counting allocator does not count");

    for peers in [16, 1024] {
        for scoring in [Scoring::Xxh3, Scoring::GoCompat] {
            let snap = snapshot(peers, scoring);
            assert_eq!(snap.len(), peers as usize);
            // Warm up lazily initialised state (CPU feature detection, etc.) outside the region.
            black_box(snap.coordinator(&keys[0]));

            let mut selfs = 0usize;
            let n = allocations(|| {
                for key in &keys {
                    black_box(snap.coordinator(black_box(key)));
                    if snap.is_coordinator(black_box(key)) {
                        selfs += 1;
                    }
                }
            });
            checked += 1;
            // Keep the result used so the loop cannot be optimised away.
            black_box(selfs);
            let what = format!("{peers} peers, {}", scoring.name());
            println!("{what}: {n} allocations over {} lookups", 2 * keys.len());
            if n != 0 {
                failures.push(what);
            }
        }
    }
    assert_eq!(checked, 4);
    assert!(
        failures.is_empty(),
        "coordinator lookups allocated: {failures:?}"
    );
    println!("zero_alloc: 4 passed, 0 failed");
}
