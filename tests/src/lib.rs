//! # orca-cluster-tests
//!
//! The conformance suite of the orca-cluster drivers, written once and run against both
//! (`tests/conformance.rs`), and the cross-driver interoperability tests (`tests/interop.rs`).
//! This library holds what those tests share:
//!
//! - [`harness`] — the [`harness::Driver`] trait with one implementation per driver
//!   ([`harness::TokioDriver`], [`harness::SmolDriver`]): run a future on the driver's runtime,
//!   start a cluster, bind and serve a listener, fill, close; plus driver-independent helpers
//!   (replica sets, keys, bounded waits, misbehaving fillers);
//! - [`pki`] — CAs and certificates (rcgen) written as `internal_tls` PEM files;
//! - [`faulty_server`] — a misbehaving HTTP/1.1 server on `std::net` (truncated and over-long
//!   bodies, lying lengths), usable from any runtime;
//! - [`raw_client`] — a blocking HTTP/1.1 client on `std::net`, to check listeners byte by byte;
//! - [`raw_h2`] — a blocking h2c client that writes frames as told (closed windows, pings);
//! - [`raw_tls`] — a blocking mutual-TLS client, to send chosen bytes after a handshake.
//!
//! Run with `cargo test -p orca-cluster-tests`.

#![forbid(unsafe_code)]

pub mod faulty_server;
pub mod harness;
pub mod pki;
pub mod raw_client;
pub mod raw_h2;
pub mod raw_tls;

/// The README's Rust examples (tokio and smol), compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;
