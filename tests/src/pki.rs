//! Test PKI made with rcgen: certificate authorities, leaf certificates usable for both server
//! and client authentication, and `internal_tls` settings naming PEM files in a scratch
//! directory. Independent of either driver.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use orca_cluster_core::TlsSettings;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The names every test leaf certificate carries: the loopback IPs the tests use and a
/// Service-like DNS name.
pub const LEAF_NAMES: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.5",
    SERVICE_NAME,
];

/// The DNS name in [`LEAF_NAMES`], for tests that verify a configured `server_name`.
pub const SERVICE_NAME: &str = "orca-peers.default.svc";

/// A certificate authority that signs leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A leaf certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8).
    pub key_pem: String,
}

impl Ca {
    /// A new self-signed CA called `name`. Two CAs never trust each other's leaves.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate (PEM), for a CA bundle.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A leaf certificate for `names` (DNS names or IP addresses), valid for server and client
    /// authentication.
    pub fn leaf(&self, names: &[&str]) -> Identity {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "orca-cluster test replica");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A scratch directory under the system temporary directory, removed on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A fresh, empty directory whose name contains `tag` (unique within and across runs).
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "orca-conformance-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `identity` and the CA bundle `trusted_ca_pem` as `<name>.crt`, `<name>.key` and
    /// `<name>-ca.crt`, and returns enabled `internal_tls` settings naming them, verifying
    /// peers against `server_name` (empty: against the peer's IP).
    pub fn tls(
        &self,
        name: &str,
        identity: &Identity,
        trusted_ca_pem: &str,
        server_name: &str,
    ) -> TlsSettings {
        let cert = self.dir.join(format!("{name}.crt"));
        let key = self.dir.join(format!("{name}.key"));
        let ca = self.dir.join(format!("{name}-ca.crt"));
        std::fs::write(&cert, &identity.cert_pem).expect("write cert");
        std::fs::write(&key, &identity.key_pem).expect("write key");
        std::fs::write(&ca, trusted_ca_pem).expect("write CA bundle");
        TlsSettings {
            enabled: true,
            cert_file: cert.display().to_string(),
            key_file: key.display().to_string(),
            ca_file: ca.display().to_string(),
            server_name: server_name.to_owned(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The usual trio for mutual-TLS tests: one scratch directory, the cluster's CA and a foreign
/// CA, and settings for a member, a client whose certificate comes from the foreign CA but
/// which trusts the cluster's CA ("impostor"), and a replica of the foreign cluster
/// altogether ("stranger").
#[derive(Debug)]
pub struct MtlsFixture {
    /// Holds the PEM files; removed on drop.
    pub scratch: Scratch,
    /// Settings of a cluster member (leaf and bundle of the cluster CA, IP verification).
    pub member: TlsSettings,
    /// A second member identity of the same CA (distinct key), for multi-replica tests.
    pub member2: TlsSettings,
    /// A client certificate signed by a foreign CA, trusting the cluster CA.
    pub impostor: TlsSettings,
    /// Leaf and bundle of the foreign CA only.
    pub stranger: TlsSettings,
    /// The cluster CA.
    pub ca: Ca,
}

impl MtlsFixture {
    /// Generates the two CAs and writes the four settings.
    pub fn new(tag: &str) -> MtlsFixture {
        let scratch = Scratch::new(tag);
        let ca = Ca::new("orca test cluster CA");
        let foreign = Ca::new("orca test foreign CA");
        let member = scratch.tls("member", &ca.leaf(LEAF_NAMES), ca.pem(), "");
        let member2 = scratch.tls("member2", &ca.leaf(LEAF_NAMES), ca.pem(), "");
        let impostor = scratch.tls("impostor", &foreign.leaf(LEAF_NAMES), ca.pem(), "");
        let stranger = scratch.tls("stranger", &foreign.leaf(LEAF_NAMES), foreign.pem(), "");
        MtlsFixture {
            scratch,
            member,
            member2,
            impostor,
            stranger,
            ca,
        }
    }
}

/// Performs a TLS handshake (blocking, `std::net`, at most 5 s) with the listener at `addr`,
/// presenting the identity of `tls` and verifying the listener against `tls.ca_file` and
/// `addr`'s IP, offering the ALPN protocols `offer`. Returns the protocol the listener picked
/// (`None`: no ALPN agreed), or the handshake error as text.
pub fn negotiated_alpn(
    addr: std::net::SocketAddr,
    tls: &TlsSettings,
    offer: &[&[u8]],
) -> Result<Option<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca_file).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = offer.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::IpAddress(addr.ip().into());
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err("handshake timed out".into());
        }
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn.alpn_protocol().map(<[u8]>::to_vec))
}
