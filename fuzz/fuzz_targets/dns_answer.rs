//! cargo-fuzz target `dns_answer`; the logic and its invariants are in `orca_cluster_fuzz::dns_answer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::dns_answer(data));
