//! cargo-fuzz target `admission`; the logic and its invariants are in `orca_cluster_fuzz::admission`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::admission(data));
