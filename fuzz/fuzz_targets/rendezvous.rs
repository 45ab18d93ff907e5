//! cargo-fuzz target `rendezvous`; the logic and its invariants are in `orca_cluster_fuzz::rendezvous`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::rendezvous(data));
