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
//! keeps the previous configuration. The files are read again as soon as their stamp changes
//! once more, and otherwise at most once per [`RELOAD_RETRY_INTERVAL`], so a flood of
//! connections cannot turn broken files into a flood of reads; the warning about them is
//! written at most once per [`RELOAD_WARN_INTERVAL`], with the count of the ones held back.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

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
    /// Name the listener requires in a client certificate's subject alternative names (a DNS
    /// name, or an IP address when it parses as one), after its chain verifies; `None`
    /// accepts any client certificate that chains to the CA bundle.
    pub client_name: Option<String>,
}

impl TlsFiles {
    /// From the core's `internal_tls` settings (`server_name` empty means "verify the IP").
    pub fn from_settings(settings: &orca_cluster_core::TlsSettings) -> TlsFiles {
        TlsFiles {
            cert_file: settings.cert_file.clone().into(),
            key_file: settings.key_file.clone().into(),
            ca_file: settings.ca_file.clone().into(),
            server_name: (!settings.server_name.is_empty()).then(|| settings.server_name.clone()),
            client_name: (!settings.client_name.is_empty()).then(|| settings.client_name.clone()),
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
    /// `client_name` is neither a valid DNS name nor an IP address.
    ClientName(String),
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
            TlsError::ClientName(n) => {
                write!(
                    f,
                    "client_name: {n:?} is neither a valid DNS name nor an IP address"
                )
            }
        }
    }
}

impl std::error::Error for TlsError {}

/// The ring crypto provider, with its cipher suites in the order the fill RPC prefers them
/// ([`cipher_suite_rank`]).
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(cipher_suite_rank);
    Arc::new(provider)
}

/// Where a cipher suite comes in the order offered (client) and chosen (listener), lowest
/// first: TLS 1.3 before TLS 1.2, and within a version AES-128-GCM, then AES-256-GCM, then
/// ChaCha20-Poly1305.
///
/// AES-128-GCM comes first, as in Go's `crypto/tls` on hardware with AES instructions: it is as
/// strong as the fill RPC needs, and its 10 rounds cost less per byte than AES-256-GCM's 14, on
/// both ends of every fill. The listener applies this order itself (`ignore_client_order`), so
/// a client that prefers AES-256-GCM (curl and OpenSSL by default) still gets AES-128-GCM from a
/// replica; the client offers it first, so a peer that follows the client's order (nginx by
/// default) picks it too.
pub fn cipher_suite_rank(suite: &rustls::SupportedCipherSuite) -> (u8, u8) {
    use rustls::CipherSuite as S;
    let version = u8::from(suite.version().version != rustls::ProtocolVersion::TLSv1_3);
    let bulk = match suite.suite() {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    };
    (version, bulk)
}

/// While the files on disk cannot be loaded and have not changed since the last attempt, they
/// are read again at most once per this interval (1 s).
pub const RELOAD_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The `tls_reload_failed` warning is written at most once per this interval (10 s); the
/// next one says how many failures were not reported in between.
pub const RELOAD_WARN_INTERVAL: Duration = Duration::from_secs(10);

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
    state: Mutex<State>,
    attempts: AtomicU64,
}

/// The configuration in use and the bookkeeping of failed reloads.
#[derive(Debug)]
struct State {
    loaded: Arc<Loaded>,
    /// The stamp of the files at the last failed reload and when it happened.
    failed: Option<(Stamp, Instant)>,
    /// When the last `tls_reload_failed` warning was written.
    last_warning: Option<Instant>,
    /// Failed reloads not reported since that warning.
    unreported: u64,
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
            state: Mutex::new(State {
                loaded: Arc::new(loaded),
                failed: None,
                last_warning: None,
                unreported: 0,
            }),
            attempts: AtomicU64::new(0),
        })
    }

    fn rebuild(&self) -> Result<Loaded, TlsError> {
        build(&self.files, &self.server_alpn, &self.client_alpn)
    }

    fn current(&self) -> Arc<Loaded> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        let now_stamp = stamp(&self.files);
        if now_stamp == state.loaded.stamp {
            return state.loaded.clone();
        }
        let now = Instant::now();
        // The same broken files as last time: retry on a timer only (a rewrite that kept the
        // modification time and size is still picked up).
        if let Some((failed_stamp, at)) = &state.failed
            && *failed_stamp == now_stamp
            && now.saturating_duration_since(*at) < RELOAD_RETRY_INTERVAL
        {
            return state.loaded.clone();
        }
        self.attempts.fetch_add(1, Ordering::Relaxed);
        match self.rebuild() {
            Ok(fresh) => {
                tracing::info!(
                    event = "tls_reloaded",
                    cert_file = %self.files.cert_file.display(),
                    "TLS certificate files changed; new connections use them"
                );
                state.loaded = Arc::new(fresh);
                state.failed = None;
                crate::metrics::tls_reload(true);
            }
            Err(e) => {
                state.failed = Some((now_stamp, now));
                crate::metrics::tls_reload(false);
                let due = state
                    .last_warning
                    .is_none_or(|at| now.saturating_duration_since(at) >= RELOAD_WARN_INTERVAL);
                if due {
                    tracing::warn!(
                        event = "tls_reload_failed",
                        error = %e,
                        suppressed = state.unreported,
                        "TLS files changed but could not be loaded; keeping the previous ones"
                    );
                    state.last_warning = Some(now);
                    state.unreported = 0;
                } else {
                    state.unreported = state.unreported.saturating_add(1);
                }
            }
        }
        state.loaded.clone()
    }

    /// How many times the files were read again since [`TlsReloader::load`] (successful or
    /// not): at most one per change of the files' stamps, plus one per
    /// [`RELOAD_RETRY_INTERVAL`] while they cannot be loaded.
    pub fn reload_attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
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

    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    if let Some(name) = &files.client_name {
        verifier = Arc::new(ClientNameVerifier::new(verifier, name)?);
    }
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(config_err)?;
    server.alpn_protocols = server_alpn.to_vec();
    server.ignore_client_order = true;

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

/// The listener's client verifier when `client_name` is set: the CA chain is verified first
/// (by the wrapped WebPKI verifier), then the end-entity certificate must carry the name in its
/// subject alternative names (a DNS name, or an IP address when `client_name` parses as one;
/// the subject's common name is not used). A mismatch fails the handshake with the certificate
/// error `NotValidForName`.
#[derive(Debug)]
struct ClientNameVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    name: ServerName<'static>,
}

impl ClientNameVerifier {
    fn new(inner: Arc<dyn ClientCertVerifier>, name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsError::ClientName(name.to_owned()))?;
        Ok(ClientNameVerifier { inner, name })
    }
}

impl ClientCertVerifier for ClientNameVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, &self.name)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write_identity(dir: &Path) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = certified.cert.pem();
        std::fs::write(dir.join("cert.pem"), &cert).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), &cert).unwrap();
        TlsFiles {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
            ca_file: dir.join("ca.pem"),
            server_name: None,
            client_name: None,
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "orca-tls-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs a handshake between `client` and `server` in memory and returns the cipher suite
    /// they agreed on.
    fn agreed_suite(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> rustls::CipherSuite {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(client, name).unwrap();
        let mut server = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        client.negotiated_cipher_suite().unwrap().suite()
    }

    /// Every suite of the provider in rank order: TLS 1.3 first, AES-128-GCM before
    /// AES-256-GCM before ChaCha20 within each version, and none lost.
    #[test]
    fn the_provider_lists_every_suite_in_rank_order() {
        use rustls::CipherSuite as S;
        let suites: Vec<S> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
        assert_eq!(
            &suites[..3],
            [
                S::TLS13_AES_128_GCM_SHA256,
                S::TLS13_AES_256_GCM_SHA384,
                S::TLS13_CHACHA20_POLY1305_SHA256
            ]
        );
        let ranks: Vec<(u8, u8)> = provider()
            .cipher_suites
            .iter()
            .map(cipher_suite_rank)
            .collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
        assert!(
            ranks.contains(&(1, 0)) && ranks.contains(&(1, 1)),
            "{ranks:?}"
        );
    }

    /// The listener picks AES-128-GCM even for a client that prefers AES-256-GCM (rustls' and
    /// OpenSSL's default order), and the client offers AES-128-GCM first to a listener that
    /// follows the client's order.
    #[test]
    fn aes_128_gcm_is_chosen_by_the_listener_and_offered_first_by_the_client() {
        let dir = scratch("suites");
        let ours = TlsReloader::load(write_identity(&dir), &[b"h2"], &[b"h2"]).unwrap();
        assert_eq!(
            provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let stock = Arc::new(rustls::crypto::ring::default_provider());
        assert_eq!(
            stock.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
            "the stock order this test relies on"
        );
        let certs = read_certs("cert_file", &dir.join("cert.pem")).unwrap();
        let key = || PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(certs[0].clone()).unwrap();
        let roots = Arc::new(roots);
        // A client in the stock order, against our listener.
        let stock_client = ClientConfig::builder_with_provider(stock.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(certs.clone(), key())
            .unwrap();
        assert_eq!(
            agreed_suite(Arc::new(stock_client), ours.server_config()),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        // Our client, against a listener in the stock order that follows the client's order.
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, stock.clone())
            .build()
            .unwrap();
        let stock_server = ServerConfig::builder_with_provider(stock.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(certs.clone(), key())
            .unwrap();
        assert_eq!(
            agreed_suite(ours.client_config(), Arc::new(stock_server)),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        // And two stock ends agree on AES-256-GCM: the checks above can fail.
        let stock_client = ClientConfig::builder_with_provider(stock.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates({
                let mut roots = RootCertStore::empty();
                roots.add(certs[0].clone()).unwrap();
                roots
            })
            .with_client_auth_cert(certs.clone(), key())
            .unwrap();
        let stock_server = ServerConfig::builder_with_provider(stock)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key())
            .unwrap();
        assert_eq!(
            agreed_suite(Arc::new(stock_client), Arc::new(stock_server)),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn client_name_checks_the_client_certificates_names_after_its_chain() {
        let dir = scratch("client-name");
        let files = write_identity(&dir);
        let cert = read_certs("cert_file", &files.cert_file).unwrap().remove(0);
        let roots = {
            let mut roots = RootCertStore::empty();
            roots.add(cert.clone()).unwrap();
            Arc::new(roots)
        };
        let verifier = |name: &str| {
            let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .unwrap();
            ClientNameVerifier::new(inner, name).unwrap()
        };
        let now = UnixTime::now();
        // The identity names `localhost`.
        assert!(
            verifier("localhost")
                .verify_client_cert(&cert, &[], now)
                .is_ok()
        );
        let e = verifier("other.example")
            .verify_client_cert(&cert, &[], now)
            .unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{e:?}"
        );
        assert!(
            verifier("127.0.0.1")
                .verify_client_cert(&cert, &[], now)
                .is_err(),
            "an IP the certificate does not name"
        );
        // A bad name is a typed error naming client_name, at load.
        let bad = TlsFiles {
            client_name: Some("not a name!".into()),
            ..files.clone()
        };
        let e = TlsReloader::load(bad, &[b"h2"], &[b"h2"]).unwrap_err();
        assert!(
            matches!(&e, TlsError::ClientName(n) if n == "not a name!"),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("client_name"), "{e}");
        let good = TlsFiles {
            client_name: Some("localhost".into()),
            ..files
        };
        assert!(TlsReloader::load(good, &[b"h2"], &[b"h2"]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn broken_files_are_not_read_again_on_every_connection() {
        let dir = scratch("garbage");
        let files = write_identity(&dir);
        let reloader = TlsReloader::load(files.clone(), &[b"http/1.1"], &[b"http/1.1"]).unwrap();
        let good = reloader.server_config();
        std::fs::write(
            &files.cert_file,
            "not a certificate, and longer than before",
        )
        .unwrap();
        std::fs::write(&files.key_file, "not a key").unwrap();
        let started = Instant::now();
        for _ in 0..1_000 {
            assert!(
                Arc::ptr_eq(&reloader.server_config(), &good),
                "the last good configuration keeps being served"
            );
        }
        let elapsed = started.elapsed();
        let bound = 1 + elapsed.as_secs() + 1;
        assert!(
            (1..=bound).contains(&reloader.reload_attempts()),
            "{} reads for 1,000 connections in {elapsed:?}",
            reloader.reload_attempts()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_change_after_a_failure_is_read_at_once() {
        let dir = scratch("fixed");
        let files = write_identity(&dir);
        let reloader = TlsReloader::load(files.clone(), &[b"h2"], &[b"h2"]).unwrap();
        let good = reloader.server_config();
        std::fs::write(&files.key_file, "half-written").unwrap();
        assert!(Arc::ptr_eq(&reloader.server_config(), &good));
        assert_eq!(reloader.reload_attempts(), 1);
        // The rotation completes within the retry interval: read at once, not a second later.
        write_identity(&dir);
        let fresh = reloader.server_config();
        assert!(!Arc::ptr_eq(&fresh, &good), "the new files are in use");
        assert_eq!(reloader.reload_attempts(), 2);
        assert!(Arc::ptr_eq(&reloader.server_config(), &fresh));
        assert_eq!(
            reloader.reload_attempts(),
            2,
            "unchanged files are not read"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
