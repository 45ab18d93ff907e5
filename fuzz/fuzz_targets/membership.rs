//! cargo-fuzz target `membership`; the logic and its invariants are in `orca_cluster_fuzz::membership`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::membership(data));
