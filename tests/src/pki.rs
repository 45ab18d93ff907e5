//! The test PKI, from `orca-cluster-test-support` (one PKI for every test, bench and the
//! command): certificate authorities, leaf certificates usable for both server and client
//! authentication, the suite's usual [`MtlsFixture`], and a TLS handshake probe.

pub use orca_cluster_test_support::{
    Ca, Identity, LEAF_NAMES, MtlsFixture, Pki, PkiError, SERVICE_NAME, TempDir, negotiated_alpn,
    rustls_error,
};
