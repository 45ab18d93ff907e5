//! cargo-fuzz target `listener_head`; the logic and its invariants are in `orca_cluster_fuzz::listener_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::listener_head(data));
