//! # orca-cluster-cli
//!
//! The `orca-cluster` command (binary `orca-cluster`, built from `src/main.rs`): `demo`,
//! `node`, `peers`, `coordinator`, `fill` and `bench`, on the tokio driver. Run
//! `cargo run --release -p orca-cluster-cli -- demo` for the three-replica demo, or
//! `cargo run -p orca-cluster-cli -- --help`.
//!
//! The library part holds what both the command (`orca-cluster bench fill`) and
//! `benches/fill.rs` measure: [`fill_bench`], the tokio driver's fill path on loopback next to
//! a raw-TCP baseline. It lives here, not in the driver, so the driver's dependencies stay what
//! a replica needs (no clap, rcgen, serde_json or tracing-subscriber).

#![forbid(unsafe_code)]

pub mod fill_bench;
