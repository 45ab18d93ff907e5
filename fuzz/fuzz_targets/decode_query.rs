//! cargo-fuzz target `decode_query`; the logic and its invariants are in `orca_cluster_fuzz::decode_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_cluster_fuzz::decode_query(data));
