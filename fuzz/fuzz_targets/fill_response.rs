//! cargo-fuzz target `fill_response`; the logic and its invariants are in `orca_cluster_fuzz::fill_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::fill_response(data));
