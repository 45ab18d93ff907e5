//! cargo-fuzz target `h1_request`; the logic and its invariants are in `orca_cluster_fuzz::h1_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::h1_request(data));
