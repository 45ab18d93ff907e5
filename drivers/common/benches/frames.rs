//! Making a 256 KiB synthetic frame against copying one (the reference: `copy_from_slice` of the
//! same bytes into the same buffer), in one criterion group, so the claim that the synthetic
//! origin makes its bytes about as fast as it could copy them is measured, not assumed.
//!
//! `cargo bench -p orca-cluster-driver-common --bench frames -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orca_cluster_driver_common::synthetic::{FRAME_BYTES, SyntheticOrigin, SyntheticPattern};

fn frames(c: &mut Criterion) {
    let pattern = SyntheticPattern::new(0x1234_5678_9abc_def0);
    let source = {
        let mut bytes = vec![0u8; FRAME_BYTES];
        pattern.fill(0, &mut bytes);
        bytes
    };
    let mut out = vec![0u8; FRAME_BYTES];
    let mut group = c.benchmark_group("256 KiB frame");
    group.throughput(Throughput::Bytes(FRAME_BYTES as u64));
    group.bench_function("copy (reference)", |b| {
        b.iter(|| out.copy_from_slice(black_box(&source)))
    });
    let mut offset = 0u64;
    group.bench_function("synthetic pattern", |b| {
        b.iter(|| {
            offset = offset.wrapping_add(FRAME_BYTES as u64);
            pattern.fill(black_box(offset), &mut out)
        })
    });
    group.bench_function("synthetic, table built per call", |b| {
        b.iter(|| SyntheticOrigin::fill_bytes(black_box(7), 0, &mut out))
    });
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
