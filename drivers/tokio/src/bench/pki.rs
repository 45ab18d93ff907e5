//! Ephemeral mutual-TLS material for benchmarks, demos and tests: one CA and one leaf
//! certificate (used both as server and client certificate) written as PEM files.

use std::io;
use std::path::Path;

use orca_cluster_core::TlsSettings;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

fn rcgen_err(e: rcgen::Error) -> io::Error {
    io::Error::other(format!("certificate generation: {e}"))
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir` (created if missing): a fresh CA and a
/// leaf certificate signed by it for `names` (DNS names or IP addresses, e.g.
/// `["127.0.0.1", "orca-peers.default.svc"]`), valid for server and client authentication.
/// Returns `internal_tls` settings naming the files, enabled, with an empty `server_name`
/// (verify the peer's IP). Each call makes a new CA, so certificates from two calls do not
/// trust each other.
pub fn write_mtls_files(dir: &Path, names: &[&str]) -> io::Result<TlsSettings> {
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "orca-cluster test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(rcgen_err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen_err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut leaf = CertificateParams::new(names).map_err(rcgen_err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "orca-cluster replica");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().map_err(rcgen_err)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(rcgen_err)?;

    let ca_file = dir.join("ca.pem");
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    // Write to temporary names and rename, as Kubernetes swaps secret files atomically.
    for (path, pem) in [
        (&ca_file, ca_cert.pem()),
        (&cert_file, leaf_cert.pem()),
        (&key_file, leaf_key.serialize_pem()),
    ] {
        let tmp = path.with_extension("pem.tmp");
        std::fs::write(&tmp, pem)?;
        std::fs::rename(&tmp, path)?;
    }
    let text = |p: &Path| p.to_string_lossy().into_owned();
    Ok(TlsSettings {
        enabled: true,
        cert_file: text(&cert_file),
        key_file: text(&key_file),
        ca_file: text(&ca_file),
        server_name: String::new(),
    })
}
