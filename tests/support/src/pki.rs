//! The test PKI: certificate authorities and leaf certificates made with rcgen, and
//! `internal_tls` settings naming them as PEM files.
//!
//! Every leaf is valid for both server and client authentication, as a replica's certificate
//! is (one identity dials and serves). Every call generates fresh keys: two [`Ca`]s never trust
//! each other's leaves.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use orca_cluster_core::TlsSettings;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::TempDir;

/// The DNS name in [`LEAF_NAMES`], for tests that verify a configured `server_name`.
pub const SERVICE_NAME: &str = "orca-peers.default.svc";

/// The names the conformance suite's leaf certificates carry: the loopback IPs its replicas use
/// (127.0.0.1 to 127.0.0.5) and a Service-like DNS name ([`SERVICE_NAME`]).
pub const LEAF_NAMES: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.5",
    SERVICE_NAME,
];

/// Why generating or writing test certificates failed.
#[derive(Debug)]
pub enum PkiError {
    /// rcgen refused the parameters or the key generation failed; `what` names the certificate
    /// (`"CA certificate"`, `"leaf names"`, ...).
    Generate {
        /// The certificate or part being generated.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// A PEM file (or its directory) could not be written.
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: io::Error,
    },
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiError::Generate { what, source } => write!(f, "test PKI: {what}: {source}"),
            PkiError::Write { path, source } => {
                write!(f, "test PKI: writing {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for PkiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PkiError::Generate { source, .. } => Some(source),
            PkiError::Write { source, .. } => Some(source),
        }
    }
}

impl From<PkiError> for io::Error {
    fn from(e: PkiError) -> io::Error {
        match e {
            PkiError::Write { source, .. } => source,
            other => io::Error::other(other),
        }
    }
}

fn generate<T>(what: &'static str, r: Result<T, rcgen::Error>) -> Result<T, PkiError> {
    r.map_err(|source| PkiError::Generate { what, source })
}

/// A self-signed certificate authority that signs leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA whose subject common name is `name`, with a fresh key.
    pub fn new(name: &str) -> Result<Ca, PkiError> {
        let key = generate("CA key", KeyPair::generate())?;
        let mut params = generate(
            "CA parameters",
            CertificateParams::new(Vec::<String>::new()),
        )?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = generate("CA certificate", params.self_signed(&key))?;
        Ok(Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM), for a CA bundle.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A leaf certificate signed by this CA, with a fresh key, for `names`: each one that parses
    /// as an IP address becomes an IP subject alternative name, every other one a DNS name
    /// (rcgen rejects names that are neither). Valid for server and client authentication.
    pub fn leaf(&self, names: &[&str]) -> Result<Identity, PkiError> {
        let key = generate("leaf key", KeyPair::generate())?;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = generate("leaf names", CertificateParams::new(names))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "orca-cluster test replica");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = generate("leaf certificate", params.signed_by(&key, &self.issuer))?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
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

impl Identity {
    /// Writes this identity and the CA bundle `trusted_pem` into `dir` (created if missing) as
    /// `<name>.crt`, `<name>.key` and `<name>-ca.crt`, and returns enabled `internal_tls`
    /// settings naming them that verify peers against `server_name` (empty: against the
    /// peer's IP). Existing files are replaced atomically (written to a temporary name, then
    /// renamed), as Kubernetes swaps mounted secrets.
    pub fn write(
        &self,
        dir: &Path,
        name: &str,
        trusted_pem: &str,
        server_name: &str,
    ) -> Result<TlsSettings, PkiError> {
        write_settings(
            dir,
            [
                (format!("{name}.crt"), self.cert_pem.as_str()),
                (format!("{name}.key"), self.key_pem.as_str()),
                (format!("{name}-ca.crt"), trusted_pem),
            ],
            server_name,
        )
    }
}

/// Writes `[cert, key, ca]` (file name, PEM) into `dir`, the CA bundle first and the key last,
/// and returns settings naming them.
fn write_settings(
    dir: &Path,
    files: [(String, &str); 3],
    server_name: &str,
) -> Result<TlsSettings, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let [cert, key, ca] = files.map(|(file, pem)| (dir.join(file), pem));
    for (path, pem) in [&ca, &cert, &key] {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, pem)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| PkiError::Write {
                path: path.clone(),
                source,
            })?;
    }
    let text = |p: &PathBuf| p.to_string_lossy().into_owned();
    Ok(TlsSettings {
        enabled: true,
        cert_file: text(&cert.0),
        key_file: text(&key.0),
        ca_file: text(&ca.0),
        server_name: server_name.to_owned(),
        client_name: String::new(),
    })
}

/// The test PKI: a cluster CA with a server and a client certificate for the same names, and a
/// foreign CA (unrelated to the cluster's) with a certificate of its own for the same names,
/// for rejection tests (a client or server the cluster must not trust).
///
/// ```
/// use orca_cluster_test_support::{Pki, TempDir};
///
/// let dir = TempDir::new("doc")?;
/// let pki = Pki::new(&["127.0.0.1", "orca-peers.default.svc"])?;
/// // ca.pem, cert.pem and key.pem: what one replica mounts.
/// let tls = pki.write_files(dir.path())?;
/// assert!(tls.enabled && tls.server_name.is_empty());
/// // A client whose certificate the cluster does not trust, but which trusts the cluster.
/// let impostor = pki.foreign.write(dir.path(), "impostor", pki.ca.pem(), "")?;
/// assert!(impostor.cert_file.ends_with("impostor.crt"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Pki {
    /// The cluster's CA.
    pub ca: Ca,
    /// A leaf of [`Pki::ca`] for the names (what [`Pki::write_files`] writes).
    pub server: Identity,
    /// Another leaf of [`Pki::ca`] for the same names, with its own key.
    pub client: Identity,
    /// A CA unrelated to [`Pki::ca`].
    pub foreign_ca: Ca,
    /// A leaf of [`Pki::foreign_ca`] for the same names.
    pub foreign: Identity,
}

impl Pki {
    /// Generates both CAs and the three leaves for `names` (IP addresses and DNS names, as in
    /// [`Ca::leaf`]).
    pub fn new(names: &[&str]) -> Result<Pki, PkiError> {
        let ca = Ca::new("orca-cluster test CA")?;
        let foreign_ca = Ca::new("orca-cluster foreign test CA")?;
        Ok(Pki {
            server: ca.leaf(names)?,
            client: ca.leaf(names)?,
            foreign: foreign_ca.leaf(names)?,
            ca,
            foreign_ca,
        })
    }

    /// Writes `ca.pem` (the cluster CA), `cert.pem` and `key.pem` ([`Pki::server`]) into `dir`
    /// (created if missing; existing files replaced atomically) and returns enabled
    /// `internal_tls` settings naming them, with an empty `server_name` (verify the peer's IP).
    /// Since the leaf is valid for both roles, these are a complete replica configuration.
    pub fn write_files(&self, dir: &Path) -> Result<TlsSettings, PkiError> {
        write_settings(
            dir,
            [
                ("cert.pem".to_owned(), self.server.cert_pem.as_str()),
                ("key.pem".to_owned(), self.server.key_pem.as_str()),
                ("ca.pem".to_owned(), self.ca.pem()),
            ],
            "",
        )
    }
}

/// The conformance suite's usual identities, all for [`LEAF_NAMES`] and verifying peers by IP,
/// written to one scratch directory.
#[derive(Debug)]
pub struct MtlsFixture {
    /// Holds the PEM files; removed on drop.
    pub dir: TempDir,
    /// The certificates.
    pub pki: Pki,
    /// A cluster member: [`Pki::server`], trusting the cluster CA.
    pub member: TlsSettings,
    /// A second member: [`Pki::client`] (distinct key), trusting the cluster CA.
    pub member2: TlsSettings,
    /// A certificate of the foreign CA that trusts the cluster CA: the cluster must refuse it
    /// as a client.
    pub impostor: TlsSettings,
    /// A replica of the foreign cluster: foreign certificate, foreign CA bundle.
    pub stranger: TlsSettings,
}

impl MtlsFixture {
    /// Generates the certificates and writes the four settings into a new [`TempDir`] tagged
    /// `tag`.
    ///
    /// # Panics
    ///
    /// When generating or writing fails (a test fixture: the test cannot go on).
    pub fn new(tag: &str) -> MtlsFixture {
        let dir = TempDir::new(tag).expect("scratch directory for the test PKI");
        let pki = Pki::new(LEAF_NAMES).expect("test PKI");
        let write = |name: &str, identity: &Identity, trusted: &Ca| {
            identity
                .write(dir.path(), name, trusted.pem(), "")
                .expect("test PKI files")
        };
        MtlsFixture {
            member: write("member", &pki.server, &pki.ca),
            member2: write("member2", &pki.client, &pki.ca),
            impostor: write("impostor", &pki.foreign, &pki.ca),
            stranger: write("stranger", &pki.foreign, &pki.foreign_ca),
            dir,
            pki,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_files_names_three_pem_files_and_replaces_them() {
        let dir = TempDir::new("pki-unit").unwrap();
        let first = Pki::new(&["127.0.0.1", "orca.test"]).unwrap();
        let tls = first.write_files(dir.path()).unwrap();
        assert!(tls.enabled);
        assert_eq!(tls.server_name, "");
        assert!(tls.ca_file.ends_with("ca.pem"));
        assert_eq!(
            std::fs::read_to_string(&tls.cert_file).unwrap(),
            first.server.cert_pem
        );
        assert_eq!(
            std::fs::read_to_string(&tls.key_file).unwrap(),
            first.server.key_pem
        );
        let second = Pki::new(&["127.0.0.1"]).unwrap();
        let again = second.write_files(dir.path()).unwrap();
        assert_eq!(again, tls);
        assert_eq!(
            std::fs::read_to_string(&tls.ca_file).unwrap(),
            second.ca.pem()
        );
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn leaves_are_distinct_and_bad_names_are_errors() {
        let pki = Pki::new(&["127.0.0.1"]).unwrap();
        assert_ne!(pki.server.key_pem, pki.client.key_pem);
        assert_ne!(pki.ca.pem(), pki.foreign_ca.pem());
        let err = pki.ca.leaf(&["caf\u{e9}.test"]).unwrap_err();
        assert!(
            matches!(
                err,
                PkiError::Generate {
                    what: "leaf names",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn write_errors_name_the_path() {
        let dir = TempDir::new("pki-unit-err").unwrap();
        let blocker = dir.join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let pki = Pki::new(&["127.0.0.1"]).unwrap();
        let err = pki.write_files(&blocker.join("sub")).unwrap_err();
        match err {
            PkiError::Write { path, .. } => assert_eq!(path, blocker.join("sub")),
            other => panic!("{other}"),
        }
    }
}
