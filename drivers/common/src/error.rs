//! The drivers' error types.

use std::fmt;
use std::io;
use std::time::Duration;

use orca_cluster_core::ConfigError;
use orca_cluster_core::fill::{DescriptorError, FillCheckError};

/// Why a fill from a peer failed.
#[derive(Debug)]
pub enum FillError {
    /// The request could not be built (the target is self, port unknown, empty chunk).
    Descriptor(DescriptorError),
    /// The response was rejected: 409 (not coordinator), another status, a wrong
    /// `Content-Length`, a truncated or over-long body.
    Check(FillCheckError),
    /// The TCP connection could not be opened.
    Connect(io::Error),
    /// The TCP connection was not established within the connect timeout
    /// (`ClientSettings::connect_timeout`).
    ConnectTimeout,
    /// The peer failed to connect recently (refused, timed out, TLS handshake failed) and is
    /// in its backoff window: the fill failed at once, without a connection attempt. The peer
    /// is tried again after `retry_in`, when a fill to it succeeds, or once it leaves the
    /// snapshot. Coordinator selection is not affected: fill locally.
    PeerUnavailable {
        /// How long until the next attempt is allowed.
        retry_in: Duration,
        /// The connect failure that started (or last extended) the backoff, by kind
        /// ([`FillError::kind`]: `connect`, `connect_timeout`, `tls`, `tls_handshake_timeout`).
        cause: &'static str,
    },
    /// The caller's per-fill deadline passed (the response head did not arrive in time, or
    /// the body was not complete in time).
    Deadline(Duration),
    /// The TLS handshake failed (bad certificate, wrong server name, no client certificate...).
    Tls(io::Error),
    /// The TLS handshake did not finish within the handshake timeout
    /// (`ClientSettings::tls_handshake_timeout`).
    TlsHandshakeTimeout,
    /// An HTTP protocol or transport error (connection reset, stream reset, malformed response).
    Http(String),
    /// The cluster handle was closed.
    Closed,
}

impl FillError {
    /// True for a 409 answer: the caller should fill locally.
    pub fn is_not_coordinator(&self) -> bool {
        matches!(self, FillError::Check(FillCheckError::NotCoordinator))
    }

    /// The HTTP status of a refused fill (409, or the other non-2xx status the peer answered);
    /// `None` when the fill failed otherwise.
    pub fn status(&self) -> Option<u16> {
        match self {
            FillError::Check(FillCheckError::NotCoordinator) => Some(409),
            FillError::Check(FillCheckError::Status { code, .. }) => Some(*code),
            _ => None,
        }
    }

    /// True when the peer could not be reached (connect or TLS handshake failure, or its
    /// backoff window): the error that marks a peer unavailable, and after which reading the
    /// chunk locally is the answer.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            FillError::Connect(_)
                | FillError::ConnectTimeout
                | FillError::Tls(_)
                | FillError::TlsHandshakeTimeout
                | FillError::PeerUnavailable { .. }
        )
    }

    /// A short stable name for logs and metrics (`not_coordinator`, `status`, `truncated`,
    /// `too_long`, `length_mismatch`, `connect`, `tls`, `http`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            FillError::Descriptor(DescriptorError::TargetIsSelf) => "target_is_self",
            FillError::Descriptor(_) => "descriptor",
            FillError::Check(FillCheckError::NotCoordinator) => "not_coordinator",
            FillError::Check(FillCheckError::Status { .. }) => "status",
            FillError::Check(FillCheckError::LengthMismatch { .. }) => "length_mismatch",
            FillError::Check(FillCheckError::Truncated { .. }) => "truncated",
            FillError::Check(FillCheckError::TooLong { .. }) => "too_long",
            FillError::Check(FillCheckError::MalformedHead { .. }) => "malformed_head",
            FillError::Connect(_) => "connect",
            FillError::ConnectTimeout => "connect_timeout",
            FillError::Tls(_) => "tls",
            FillError::TlsHandshakeTimeout => "tls_handshake_timeout",
            FillError::PeerUnavailable { .. } => "peer_unavailable",
            FillError::Deadline(_) => "deadline",
            FillError::Http(_) => "http",
            FillError::Closed => "closed",
        }
    }
}

impl fmt::Display for FillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FillError::Descriptor(e) => write!(f, "fill request: {e}"),
            FillError::Check(e) => write!(f, "fill response: {e}"),
            FillError::Connect(e) => write!(f, "connect: {e}"),
            FillError::ConnectTimeout => f.write_str("connect: timed out"),
            FillError::Tls(e) => write!(f, "tls: {e}"),
            FillError::TlsHandshakeTimeout => f.write_str("tls: handshake timed out"),
            FillError::PeerUnavailable { retry_in, cause } => write!(
                f,
                "peer unavailable after a {cause} failure; next attempt in {} ms",
                retry_in.as_millis()
            ),
            FillError::Deadline(d) => write!(f, "fill deadline of {} ms passed", d.as_millis()),
            FillError::Http(e) => write!(f, "http: {e}"),
            FillError::Closed => f.write_str("cluster: closed"),
        }
    }
}

impl std::error::Error for FillError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FillError::Descriptor(e) => Some(e),
            FillError::Check(e) => Some(e),
            FillError::Connect(e) | FillError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DescriptorError> for FillError {
    fn from(e: DescriptorError) -> Self {
        FillError::Descriptor(e)
    }
}

impl From<FillCheckError> for FillError {
    fn from(e: FillCheckError) -> Self {
        FillError::Check(e)
    }
}

/// Why a cluster could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration is invalid (the message names the field).
    Config(ConfigError),
    /// The DNS resolver could not be set up (e.g. unreadable `/etc/resolv.conf`); hickory's
    /// error is the [`source`](std::error::Error::source).
    Resolver(hickory_resolver::net::NetError),
    /// TLS files could not be loaded.
    Tls(crate::tls::TlsError),
    /// The fill listener could not bind.
    Bind(io::Error),
    /// An option this driver cannot honour (e.g. HTTP/2 on a driver that speaks HTTP/1.1
    /// only); settings are rejected rather than ignored.
    Unsupported {
        /// The option, e.g. `protocol`.
        setting: &'static str,
        /// The driver, e.g. `smol`.
        driver: &'static str,
        /// What to set instead.
        reason: &'static str,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "config: {e}"),
            StartError::Resolver(e) => write!(f, "dns resolver: {e}"),
            StartError::Tls(e) => write!(f, "tls: {e}"),
            StartError::Bind(e) => write!(f, "listener: {e}"),
            StartError::Unsupported {
                setting,
                driver,
                reason,
            } => write!(
                f,
                "{setting}: not supported by the {driver} driver: {reason}"
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Tls(e) => Some(e),
            StartError::Bind(e) => Some(e),
            StartError::Resolver(e) => Some(e),
            StartError::Unsupported { .. } => None,
        }
    }
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

impl From<crate::tls::TlsError> for StartError {
    fn from(e: crate::tls::TlsError) -> Self {
        StartError::Tls(e)
    }
}

/// `close(deadline)` gave up waiting; shutdown was signalled and completes in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseError;

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("close: the deadline passed before the membership task stopped")
    }
}

impl std::error::Error for CloseError {}
