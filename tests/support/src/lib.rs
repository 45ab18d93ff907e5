//! # orca-cluster-test-support
//!
//! What the drivers' tests, the conformance suite, the benchmarks and the `orca-cluster`
//! command share, with no dependency on either driver (so each driver can dev-depend on it):
//!
//! - [`Pki`] — the one test PKI (rcgen): a cluster CA, a server and a client certificate for
//!   given IP addresses / DNS names, and an unrelated foreign CA with a certificate of its own
//!   for rejection tests; [`Pki::write_files`] writes a replica's `internal_tls` PEM files;
//!   [`Ca`] and [`Identity`] for anything more specific, [`MtlsFixture`] for the conformance
//!   suite's usual set of identities;
//! - [`TempDir`] — a scratch directory removed on drop;
//! - [`negotiated_alpn`] and [`rustls_error`] — a blocking TLS handshake probe and the rustls
//!   error behind a TLS failure, for precise assertions;
//! - [`skip_outside_ci`] — for tests that need something of the machine (curl, an IPv6
//!   loopback): skips with a message locally, fails under `CI=true`.
//!
//! Every certificate is generated in memory at run time; nothing secret is checked in.

#![forbid(unsafe_code)]

mod ci;
mod dir;
mod pki;
mod probe;

pub use ci::skip_outside_ci;
pub use dir::TempDir;
pub use pki::{Ca, Identity, LEAF_NAMES, MtlsFixture, Pki, PkiError, SERVICE_NAME};
pub use probe::{client_config, negotiated_alpn, rustls_error};
