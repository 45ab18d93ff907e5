//! Mutual TLS for the fill RPC, with rustls and the ring provider (passed explicitly, so a
//! second provider elsewhere in the process cannot make rustls panic).
//!
//! Both ends load the same three PEM files: this replica's certificate chain and key (served by
//! the listener and presented as the client certificate) and the CA bundle that peers'
//! certificates must chain to. The listener requires and verifies client certificates. The
//! client verifies the peer's certificate against a configured server name (pods are dialed by
//! IP; certificates usually name the Service), or against the peer's IP when none is set.
//!
//! [`TlsReloader`] re-reads the files when their modification time or size changes (Kubernetes
//! rotates mounted secrets in place). Each new connection asks for the current configuration;
//! established connections keep theirs. A rotation that fails to load (say, a half-written file)
//! keeps the previous configuration and is retried on the next connection.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The three PEM files and the name to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain of this replica (PEM).
    pub cert_file: PathBuf,
    /// Private key of `cert_file` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA bundle peers' certificates must chain to (PEM).
    pub ca_file: PathBuf,
    /// DNS name to verify in peers' certificates; `None` verifies the peer's IP instead.
    pub server_name: Option<String>,
}

impl TlsFiles {
    /// From the core's `internal_tls` settings (`server_name` empty means "verify the IP").
    pub fn from_settings(settings: &orca_cluster_core::TlsSettings) -> TlsFiles {
        TlsFiles {
            cert_file: settings.cert_file.clone().into(),
            key_file: settings.key_file.clone().into(),
            ca_file: settings.ca_file.clone().into(),
            server_name: (!settings.server_name.is_empty()).then(|| settings.server_name.clone()),
        }
    }
}

/// Why TLS material could not be loaded; names the file or setting.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read or parsed.
    File {
        /// Which setting (`cert_file`, `key_file`, `ca_file`).
        field: &'static str,
        /// The path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls rejected the material (e.g. key does not match the certificate).
    Config(String),
    /// `server_name` is not a valid DNS name.
    ServerName(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File {
                field,
                path,
                reason,
            } => write!(f, "{field} {}: {reason}", path.display()),
            TlsError::Config(e) => write!(f, "invalid TLS material: {e}"),
            TlsError::ServerName(n) => write!(f, "server_name: {n:?} is not a valid DNS name"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The ring crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

type Stamp = [(Option<SystemTime>, u64); 3];

fn stamp(files: &TlsFiles) -> Stamp {
    let one = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    };
    [
        one(&files.cert_file),
        one(&files.key_file),
        one(&files.ca_file),
    ]
}

#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// TLS configurations built from [`TlsFiles`], rebuilt when the files change.
#[derive(Debug)]
pub struct TlsReloader {
    files: TlsFiles,
    server_alpn: Vec<Vec<u8>>,
    client_alpn: Vec<Vec<u8>>,
    server_name: Option<ServerName<'static>>,
    loaded: Mutex<Arc<Loaded>>,
}

fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        field,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

impl TlsReloader {
    /// Loads the files. `server_alpn` / `client_alpn` are the ALPN protocols each side offers
    /// (e.g. `h2`, `http/1.1`).
    pub fn load(
        files: TlsFiles,
        server_alpn: &[&[u8]],
        client_alpn: &[&[u8]],
    ) -> Result<TlsReloader, TlsError> {
        let server_name = match &files.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::ServerName(name.clone()))?,
            ),
            None => None,
        };
        let server_alpn: Vec<Vec<u8>> = server_alpn.iter().map(|p| p.to_vec()).collect();
        let client_alpn: Vec<Vec<u8>> = client_alpn.iter().map(|p| p.to_vec()).collect();
        let loaded = build(&files, &server_alpn, &client_alpn)?;
        Ok(TlsReloader {
            files,
            server_alpn,
            client_alpn,
            server_name,
            loaded: Mutex::new(Arc::new(loaded)),
        })
    }

    fn rebuild(&self) -> Result<Loaded, TlsError> {
        build(&self.files, &self.server_alpn, &self.client_alpn)
    }

    fn current(&self) -> Arc<Loaded> {
        let mut guard = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if stamp(&self.files) != guard.stamp {
            match self.rebuild() {
                Ok(fresh) => {
                    tracing::info!(
                        event = "tls_reloaded",
                        cert_file = %self.files.cert_file.display(),
                        "TLS certificate files changed; new connections use them"
                    );
                    *guard = Arc::new(fresh);
                }
                Err(e) => {
                    tracing::warn!(
                        event = "tls_reload_failed",
                        error = %e,
                        "TLS files changed but could not be loaded; keeping the previous ones"
                    );
                }
            }
        }
        guard.clone()
    }

    /// The listener configuration for a new connection (client certificates required).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().server.clone()
    }

    /// The client configuration for a new connection.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().client.clone()
    }

    /// The name to verify when dialing `ip`: the configured server name, else the IP.
    pub fn server_name_for(&self, ip: IpAddr) -> ServerName<'static> {
        match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::IpAddress(ip.into()),
        }
    }
}

fn build(
    files: &TlsFiles,
    server_alpn: &[Vec<u8>],
    client_alpn: &[Vec<u8>],
) -> Result<Loaded, TlsError> {
    let stamp = stamp(files);
    let certs = read_certs("cert_file", &files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| TlsError::File {
        field: "key_file",
        path: files.key_file.clone(),
        reason: e.to_string(),
    })?;
    let cas = read_certs("ca_file", &files.ca_file)?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| TlsError::File {
            field: "ca_file",
            path: files.ca_file.clone(),
            reason: e.to_string(),
        })?;
    }
    let roots = Arc::new(roots);
    let provider = provider();
    let config_err = |e: rustls::Error| TlsError::Config(e.to_string());

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(config_err)?;
    server.alpn_protocols = server_alpn.to_vec();

    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(config_err)?;
    client.alpn_protocols = client_alpn.to_vec();

    Ok(Loaded {
        stamp,
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// Loads the `internal_tls` files for driver `D` with `options`' ALPN lists (see
/// [`crate::Options::client_alpn`] and [`crate::options::server_alpn`]); `None` when TLS is off.
pub fn load_for<D: crate::Driver>(
    settings: &orca_cluster_core::TlsSettings,
    options: &crate::Options<D>,
) -> Result<Option<Arc<TlsReloader>>, TlsError> {
    if !settings.enabled {
        return Ok(None);
    }
    let server = crate::options::server_alpn::<D>();
    let client = options.client_alpn();
    let reloader = TlsReloader::load(TlsFiles::from_settings(settings), &server, &client)?;
    Ok(Some(Arc::new(reloader)))
}
