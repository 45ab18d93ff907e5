//! What a driver plugs into the shared pipeline: its runtime ([`Runtime`]), its DNS provider,
//! its byte streams ([`Transport`]) and its HTTP machinery for the client ([`Exchange`]).
//!
//! Everything else — the handle, the client's fill, the listener's request pipeline, eviction,
//! defaults — is written once in this crate, generic over [`Driver`]. See `ARCHITECTURE.md`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use hickory_resolver::ConnectionProvider;

use crate::client::{ClientSetup, Exchange};
use crate::listener::{FillPipeline, ListenerControl, ListenerSettings};
use crate::options::Protocol;
use crate::runtime::Runtime;
use crate::tls::TlsReloader;

/// A futures-io byte stream (the smol driver's [`Driver::Io`] is a boxed one).
pub trait AsyncIo: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static {}

impl<T: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static> AsyncIo for T {}

/// A boxed [`AsyncIo`].
pub type BoxAsyncIo = Box<dyn AsyncIo>;

/// A connect future of a [`Transport`].
pub type ConnectFuture<Io> = Pin<Box<dyn Future<Output = io::Result<Io>> + Send + 'static>>;

/// Opens byte streams to peers: TCP in production; tests plug in blackholes or counters.
/// `Io` is the driver's stream type (tokio or futures-io `AsyncRead + AsyncWrite`).
pub trait Transport<Io>: Send + Sync + 'static {
    /// Connects to `addr`. The client bounds the call with its connect timeout.
    fn connect(&self, addr: SocketAddr) -> ConnectFuture<Io>;
}

/// One runtime's glue: spawn and sleep ([`Runtime`]), hickory's connection provider, TCP, and
/// the client's HTTP exchange. Implemented by `orca-cluster-tokio` and `orca-cluster-smol`.
pub trait Driver: Runtime + Sized {
    /// A short name for logs and errors (`"tokio"`, `"smol"`).
    const NAME: &'static str;
    /// The protocols this driver's client and listener speak, preferred first; the TLS ALPN
    /// lists are built from it.
    const PROTOCOLS: &'static [Protocol];
    /// hickory's connection provider on this runtime.
    type Dns: ConnectionProvider;
    /// The byte stream a [`Transport`] returns.
    type Io: Send + 'static;
    /// The client's HTTP machinery (connection pool, framing).
    type Exchange: Exchange;

    /// The runtime of the calling context (tokio: `Handle::current()`; panics outside a tokio
    /// runtime, as tokio does).
    fn current() -> Self;
    /// A DNS provider for this runtime.
    fn dns(&self) -> Self::Dns;
    /// Builds the client's exchange; without `setup.transport` it dials plain TCP with
    /// `TCP_NODELAY`.
    fn exchange(&self, setup: ClientSetup<Self>) -> Self::Exchange;

    /// Spawns the accept loop of a fill listener (see [`ListenerSetup`]).
    fn serve(&self, setup: ListenerSetup);
}

/// What a driver's accept loop gets from [`crate::FillListener`].
#[derive(Debug)]
pub struct ListenerSetup {
    /// A bound, non-blocking std socket the driver registers with its reactor.
    pub socket: std::net::TcpListener,
    /// What every connection needs.
    pub context: ListenerContext,
}

/// What every connection of a listener needs.
#[derive(Clone)]
pub struct ListenerContext {
    /// Every request goes through it.
    pub pipeline: FillPipeline,
    /// Mutual TLS for every connection (`None`: plain).
    pub tls: Option<Arc<TlsReloader>>,
    /// Limits and timeouts of the connections.
    pub settings: ListenerSettings,
    /// Stop accepting and close connections after their response once stopped; drop them
    /// once forced.
    pub control: Arc<ListenerControl>,
}

impl std::fmt::Debug for ListenerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerContext")
            .field("pipeline", &self.pipeline)
            .field("tls", &self.tls.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Names the pipeline's generic types for one driver, in that driver's crate: `Cluster`,
/// `Options`, `FillClient`, `FillListener`, `ListenerHandle`, `DirOrigin` and `DnsPeerSource`,
/// each the shared type instantiated with `$driver` (and `$dns`, its hickory provider).
#[macro_export]
macro_rules! driver_types {
    ($driver:ty, $dns:ty) => {
        /// A running replica's view of the cluster on this driver; see
        /// [`orca_cluster_driver_common::Cluster`].
        pub type Cluster = $crate::Cluster<$driver>;
        /// Options of [`Cluster::start`] and [`FillClient::new`]; see
        /// [`orca_cluster_driver_common::Options`].
        pub type Options = $crate::Options<$driver>;
        /// The fill client alone; see [`orca_cluster_driver_common::FillClient`].
        pub type FillClient = $crate::FillClient<$driver>;
        /// A bound fill listener socket; see [`orca_cluster_driver_common::FillListener`].
        pub type FillListener = $crate::FillListener<$driver>;
        /// Controls a serving [`FillListener`]; dropping it stops the listener at once. See
        /// [`orca_cluster_driver_common::ListenerHandle`].
        pub type ListenerHandle = $crate::ListenerHandle<$driver>;
        /// The hickory DNS peer source on this driver's runtime.
        pub type DnsPeerSource = $crate::DnsPeerSource<$dns>;
        /// A filler serving the files under a directory, read on this driver's blocking pool;
        /// see [`orca_cluster_driver_common::DirOrigin`].
        pub type DirOrigin = $crate::DirOrigin<$driver>;

        pub use $crate::core::{ChunkKey, ClusterConfig, Peer, Scoring, Snapshot, TlsSettings};
        pub use $crate::{
            ChunkRead, ChunkStream, ClientSettings, CloseError, CoalescingFiller, ConnectFuture,
            DirOriginError, FillBody, FillBodyReader, FillError, FillRequest, Filler, FillerError,
            Health, HealthLimits, HealthReply, Http2Settings, ListenerSettings, PeerSource,
            Protocol, ReadError, ReadOptions, ReadSource, Readiness, SharedFillError,
            SharedFillStage, StartError, StaticPeerSource, StatsSnapshot, Subscription,
            SyntheticOrigin, Transport, UnblockError,
        };
    };
}
