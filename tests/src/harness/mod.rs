//! The driver harness: one trait ([`Driver`]) that each driver implements once
//! ([`tokio::TokioDriver`], [`smol::SmolDriver`]), so that every conformance test body is written
//! once, generic over the driver, and instantiated per driver by a macro in
//! `tests/conformance.rs` and `tests/divergences.rs`.
//!
//! A driver supplies:
//! - [`Driver::run`]: run a future to completion on its runtime (bounded by [`TEST_LIMIT`]);
//! - [`Driver::sleep`]: its timer;
//! - [`Driver::start`]: start a cluster from a [`ClusterConfig`] and a driver-neutral [`Setup`]
//!   (static source or nameserver, self port, protocol, client settings);
//! - [`Driver::bind`], [`Driver::serve`] and [`Driver::serve_with`]: a fill listener;
//! - [`Driver::send_fill`]: fills as `Send` futures, for another runtime's tasks;
//! - its cluster type, seen through the object-safe [`ClusterHandle`] (peers, coordinator,
//!   subscribe, fill → verified bytes or [`FillError`], close), and its serving listener
//!   through [`ServingListener`].
//!
//! Everything else here is driver-independent: [`Replica`] (a started cluster plus its serving
//! listener, type-erased so that one `Vec<Replica>` can mix drivers), replica sets sharing a
//! static source, chunk keys, bounded waits, fillers that misbehave on purpose.
//!
//! Mixing drivers in one process: smol's executor and reactor are global and need no context,
//! while tokio's types must be created inside a tokio runtime. So a test that uses both runs on
//! [`run_mixed`] (a tokio runtime) and the smol parts simply run on smol's own threads.

pub mod read_path;
pub mod smol;
pub mod tokio;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_lite::StreamExt;
use orca_cluster_core::{ChunkKey, ClusterConfig, Peer, Snapshot};
use orca_cluster_driver_common::{
    ChunkStream, ClientSettings, CloseError, FillBody, FillError, FillRequest, Filler, FillerError,
    ListenerSettings, Protocol, ReadError, ReadOptions, StartError, StaticPeerSource,
    StatsSnapshot, Subscription, SyntheticOrigin,
};

pub use self::smol::SmolDriver;
pub use self::tokio::TokioDriver;

/// Longest one test may run before [`Driver::run`] fails it.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);
/// How long shutdowns and closes in the helpers may take.
pub const STOP_DEADLINE: Duration = Duration::from_secs(2);
/// 127.0.0.1.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A boxed, not necessarily `Send`, future (tests run on one thread per runtime).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A fill response body of either driver: its frames, each verified, then the end (or a
/// [`FillError`] as the last item).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, FillError>>>>;

/// A boxed `Send` future, runnable on any runtime's worker threads.
pub type SendBoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// `Cluster::fill_from_peer` of one cluster as a `Send` closure (see [`Driver::send_fill`]):
/// `(peer, key, object_size)` → the driver's [`FillBody`] (the one type of both drivers).
pub type SendFill = std::sync::Arc<
    dyn Fn(Peer, ChunkKey, u64) -> SendBoxFuture<Result<FillBody, FillError>> + Send + Sync,
>;

/// Driver-neutral options of [`Driver::start`].
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Peers from this static list instead of DNS.
    pub source: Option<StaticPeerSource>,
    /// DNS at this server only (no search domains).
    pub nameserver: Option<SocketAddr>,
    /// Self's port in peer records (0 for DNS).
    pub self_port: u16,
    /// The fill client's protocol (default `Auto`: HTTP/1.1 in plain mode, ALPN with TLS).
    pub protocol: Protocol,
    /// The fill client's settings (default `ClientSettings::default()`).
    pub client: ClientSettings,
    /// Connects go through this hook (counted, some blackholed) before the driver's TCP.
    pub connect_hook: Option<read_path::ConnectHook>,
}

impl Setup {
    /// Peers from `source` (clones share the list).
    pub fn static_source(source: &StaticPeerSource) -> Setup {
        Setup {
            source: Some(source.clone()),
            ..Setup::default()
        }
    }

    /// Peers from DNS at `nameserver`.
    pub fn dns(nameserver: SocketAddr) -> Setup {
        Setup {
            nameserver: Some(nameserver),
            ..Setup::default()
        }
    }

    /// Sets self's port in peer records.
    pub fn with_self_port(mut self, port: u16) -> Setup {
        self.self_port = port;
        self
    }

    /// Sets the client's protocol.
    pub fn with_protocol(mut self, protocol: Protocol) -> Setup {
        self.protocol = protocol;
        self
    }

    /// HTTP/1.1 only (`true`) or the default `Auto` (`false`).
    pub fn with_http1(self, yes: bool) -> Setup {
        self.with_protocol(if yes { Protocol::Http1 } else { Protocol::Auto })
    }

    /// Sets the client's settings.
    pub fn with_client_settings(mut self, client: ClientSettings) -> Setup {
        self.client = client;
        self
    }

    /// Sends connects through `hook`.
    pub fn with_connect_hook(mut self, hook: &read_path::ConnectHook) -> Setup {
        self.connect_hook = Some(hook.clone());
        self
    }
}

/// One driver, as the test bodies see it. Implemented by [`TokioDriver`] and [`SmolDriver`].
pub trait Driver: 'static {
    /// `"tokio"` or `"smol"`.
    const NAME: &'static str;
    /// Whether the driver speaks HTTP/2 (tokio: yes; smol: no, it rejects HTTP/2 options at
    /// start).
    const HTTP2: bool;
    /// The other driver (tokio's is smol and smol's is tokio), for mixed tests run on
    /// [`run_mixed`].
    type Other: Driver;
    /// The driver's cluster handle.
    type Cluster: ClusterHandle + Clone + 'static;
    /// The driver's bound, not yet serving, fill listener.
    type Listener;

    /// Runs `future` to completion on this driver's runtime; panics (failing the test) if it
    /// takes longer than [`TEST_LIMIT`].
    fn run<F: Future>(future: F) -> F::Output;

    /// Completes after `duration`, on this driver's timer.
    fn sleep(duration: Duration) -> impl Future<Output = ()>;

    /// `Cluster::start(config, options built from setup)`.
    fn start(
        config: ClusterConfig,
        setup: Setup,
    ) -> impl Future<Output = Result<Self::Cluster, StartError>>;

    /// `FillListener::bind(addr)`.
    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>>;

    /// The bound address of `listener`.
    fn listener_addr(listener: &Self::Listener) -> SocketAddr;

    /// `listener.serve(cluster, filler, settings)` with default settings except
    /// `max_concurrent`.
    fn serve(
        listener: Self::Listener,
        cluster: &Self::Cluster,
        filler: impl Filler,
        max_concurrent: usize,
    ) -> Box<dyn ServingListener>;

    /// `listener.serve(cluster, filler, settings)`.
    fn serve_with(
        listener: Self::Listener,
        cluster: &Self::Cluster,
        filler: impl Filler,
        settings: ListenerSettings,
    ) -> Box<dyn ServingListener>;

    /// `cluster.fill_from_peer` as a `Send` closure owning a clone of `cluster`, so that the
    /// [`FillBody`] can be produced and polled by another runtime's tasks (e.g. a hyper server
    /// forwarding it).
    fn send_fill(cluster: &Self::Cluster) -> SendFill;
}

/// The handle API both drivers share, object-safe so that
/// replicas of different drivers fit in one collection.
pub trait ClusterHandle {
    /// The driver's name.
    fn driver(&self) -> &'static str;
    /// `Cluster::peers`.
    fn peers(&self) -> Snapshot;
    /// `Cluster::coordinator`.
    fn coordinator(&self, key: &ChunkKey) -> Peer;
    /// `Cluster::is_coordinator`.
    fn is_coordinator(&self, key: &ChunkKey) -> bool;
    /// `Cluster::ranked`.
    fn ranked(&self, key: &ChunkKey) -> Vec<(Peer, u64)>;
    /// `Cluster::has_initial_snapshot`.
    fn has_initial_snapshot(&self) -> bool;
    /// `Cluster::subscribe`.
    fn subscribe(&self) -> Subscription;
    /// `Cluster::stats`.
    fn stats(&self) -> StatsSnapshot;
    /// `Cluster::self_port`.
    fn self_port(&self) -> u16;
    /// `Cluster::client().connected_peers()`.
    fn connected_peers(&self) -> Vec<SocketAddr>;
    /// `Cluster::client().idle_connections()`.
    fn idle_connections(&self) -> usize;
    /// `Cluster::fill_from_peer`, the body as a stream of verified frames.
    fn fill_body<'a>(
        &'a self,
        peer: &'a Peer,
        key: &'a ChunkKey,
        object_size: u64,
    ) -> LocalBoxFuture<'a, Result<BodyStream, FillError>>;
    /// `Cluster::fill_from_peer` then `FillBody::collect_bytes`: the whole chunk, verified.
    fn fill<'a>(
        &'a self,
        peer: &'a Peer,
        key: &'a ChunkKey,
        object_size: u64,
    ) -> LocalBoxFuture<'a, Result<Bytes, FillError>>;
    /// `Cluster::close`.
    fn close(&self, deadline: Duration) -> LocalBoxFuture<'_, Result<(), CloseError>>;
    /// `Cluster::read_with(key, object_size, origin, options)`, collected: where the bytes
    /// came from, and the verified chunk (an error of the stream as `Err(ReadError::Local)`).
    fn read<'a>(
        &'a self,
        key: &'a ChunkKey,
        object_size: u64,
        origin: &'a read_path::SharedOrigin,
        options: ReadOptions,
    ) -> LocalBoxFuture<'a, Result<(read_path::Served, Bytes), ReadError>>;
    /// `Cluster::client().unavailable_peers()`.
    fn unavailable_peers(&self) -> Vec<SocketAddr>;
}

/// Implements [`ClusterHandle`] for a driver's `Cluster` type by forwarding to its inherent
/// methods (the two drivers' handle APIs are identical, so this is written once).
macro_rules! impl_cluster_handle {
    ($cluster:ty, $name:expr) => {
        impl $crate::harness::ClusterHandle for $cluster {
            fn driver(&self) -> &'static str {
                $name
            }
            fn peers(&self) -> ::orca_cluster_core::Snapshot {
                <$cluster>::peers(self)
            }
            fn coordinator(
                &self,
                key: &::orca_cluster_core::ChunkKey,
            ) -> ::orca_cluster_core::Peer {
                <$cluster>::coordinator(self, key)
            }
            fn is_coordinator(&self, key: &::orca_cluster_core::ChunkKey) -> bool {
                <$cluster>::is_coordinator(self, key)
            }
            fn ranked(
                &self,
                key: &::orca_cluster_core::ChunkKey,
            ) -> Vec<(::orca_cluster_core::Peer, u64)> {
                <$cluster>::ranked(self, key)
            }
            fn has_initial_snapshot(&self) -> bool {
                <$cluster>::has_initial_snapshot(self)
            }
            fn subscribe(&self) -> ::orca_cluster_driver_common::Subscription {
                <$cluster>::subscribe(self)
            }
            fn stats(&self) -> ::orca_cluster_driver_common::StatsSnapshot {
                <$cluster>::stats(self)
            }
            fn self_port(&self) -> u16 {
                <$cluster>::self_port(self)
            }
            fn connected_peers(&self) -> Vec<::std::net::SocketAddr> {
                <$cluster>::client(self).connected_peers()
            }
            fn idle_connections(&self) -> usize {
                <$cluster>::client(self).idle_connections()
            }
            fn fill_body<'a>(
                &'a self,
                peer: &'a ::orca_cluster_core::Peer,
                key: &'a ::orca_cluster_core::ChunkKey,
                object_size: u64,
            ) -> $crate::harness::LocalBoxFuture<
                'a,
                Result<$crate::harness::BodyStream, ::orca_cluster_driver_common::FillError>,
            > {
                Box::pin(async move {
                    let body = <$cluster>::fill_from_peer(self, peer, key, object_size).await?;
                    Ok(Box::pin(body) as $crate::harness::BodyStream)
                })
            }
            fn fill<'a>(
                &'a self,
                peer: &'a ::orca_cluster_core::Peer,
                key: &'a ::orca_cluster_core::ChunkKey,
                object_size: u64,
            ) -> $crate::harness::LocalBoxFuture<
                'a,
                Result<::bytes::Bytes, ::orca_cluster_driver_common::FillError>,
            > {
                Box::pin(async move {
                    <$cluster>::fill_from_peer(self, peer, key, object_size)
                        .await?
                        .collect_bytes()
                        .await
                })
            }
            fn close(
                &self,
                deadline: ::std::time::Duration,
            ) -> $crate::harness::LocalBoxFuture<
                '_,
                Result<(), ::orca_cluster_driver_common::CloseError>,
            > {
                Box::pin(<$cluster>::close(self, deadline))
            }
            fn read<'a>(
                &'a self,
                key: &'a ::orca_cluster_core::ChunkKey,
                object_size: u64,
                origin: &'a $crate::harness::read_path::SharedOrigin,
                options: ::orca_cluster_driver_common::ReadOptions,
            ) -> $crate::harness::LocalBoxFuture<
                'a,
                Result<
                    ($crate::harness::read_path::Served, ::bytes::Bytes),
                    ::orca_cluster_driver_common::ReadError,
                >,
            > {
                use ::orca_cluster_driver_common::ReadSource;
                use $crate::harness::read_path::Served;
                Box::pin(async move {
                    let read =
                        <$cluster>::read_with(self, key, object_size, origin, options).await?;
                    let served = match read.source() {
                        ReadSource::Local => Served::Local,
                        ReadSource::Coordinator(_) => Served::Coordinator,
                        ReadSource::Fallback { error, .. } => Served::Fallback(error.kind()),
                    };
                    let bytes = read
                        .collect_bytes()
                        .await
                        .map_err(|e| ::orca_cluster_driver_common::ReadError::Local(e.into()))?;
                    Ok((served, bytes))
                })
            }
            fn unavailable_peers(&self) -> Vec<::std::net::SocketAddr> {
                <$cluster>::client(self).unavailable_peers()
            }
        }
    };
}
pub(crate) use impl_cluster_handle;

/// Implements [`Driver`] (and [`ClusterHandle`], [`ServingListener`]) for a driver crate whose
/// API is the shared one, and defines its `options(&Setup)`. Only running a future and sleeping
/// differ between the drivers; they are given as blocks.
macro_rules! impl_driver {
    ($driver:ident, $krate:ident, $name:literal,
        http2: $http2:literal,
        other: $other:ty,
        run($future:ident) $run:block,
        sleep($duration:ident) $sleep:block $(,)?) => {
        $crate::harness::impl_cluster_handle!($krate::Cluster, $name);

        /// The driver's `Options` for `setup`.
        pub fn options(setup: &$crate::harness::Setup) -> $krate::Options {
            let mut options = $krate::Options::default()
                .with_self_port(setup.self_port)
                .with_protocol(setup.protocol)
                .with_client_settings(setup.client.clone());
            if let Some(source) = &setup.source {
                options = options.with_peer_source(source.clone());
            }
            if let Some(nameserver) = setup.nameserver {
                options = options.with_nameserver(nameserver);
            }
            if let Some(hook) = &setup.connect_hook {
                options = options.with_transport($crate::harness::read_path::HookedTransport {
                    inner: $krate::TcpTransport,
                    hook: hook.clone(),
                });
            }
            options
        }

        impl $crate::harness::Driver for $driver {
            const NAME: &'static str = $name;
            const HTTP2: bool = $http2;
            type Other = $other;
            type Cluster = $krate::Cluster;
            type Listener = $krate::FillListener;

            fn run<F: ::std::future::Future>($future: F) -> F::Output $run

            fn sleep(
                $duration: ::std::time::Duration,
            ) -> impl ::std::future::Future<Output = ()> $sleep

            fn start(
                config: ::orca_cluster_core::ClusterConfig,
                setup: $crate::harness::Setup,
            ) -> impl ::std::future::Future<
                Output = Result<$krate::Cluster, ::orca_cluster_driver_common::StartError>,
            > {
                $krate::Cluster::start(config, options(&setup))
            }

            fn bind(
                addr: ::std::net::SocketAddr,
            ) -> impl ::std::future::Future<Output = ::std::io::Result<$krate::FillListener>> {
                $krate::FillListener::bind(addr)
            }

            fn listener_addr(listener: &$krate::FillListener) -> ::std::net::SocketAddr {
                listener.local_addr()
            }

            fn serve(
                listener: $krate::FillListener,
                cluster: &$krate::Cluster,
                filler: impl ::orca_cluster_driver_common::Filler,
                max_concurrent: usize,
            ) -> Box<dyn $crate::harness::ServingListener> {
                let settings = $krate::ListenerSettings {
                    max_concurrent,
                    ..$krate::ListenerSettings::default()
                };
                Box::new(listener.serve(cluster, filler, settings))
            }

            fn serve_with(
                listener: $krate::FillListener,
                cluster: &$krate::Cluster,
                filler: impl ::orca_cluster_driver_common::Filler,
                settings: ::orca_cluster_driver_common::ListenerSettings,
            ) -> Box<dyn $crate::harness::ServingListener> {
                Box::new(listener.serve(cluster, filler, settings))
            }

            fn send_fill(cluster: &$krate::Cluster) -> $crate::harness::SendFill {
                let cluster = cluster.clone();
                ::std::sync::Arc::new(move |peer, key, object_size| {
                    let cluster = cluster.clone();
                    Box::pin(async move { cluster.fill_from_peer(&peer, &key, object_size).await })
                })
            }
        }

        impl $crate::harness::ServingListener for $krate::ListenerHandle {
            fn local_addr(&self) -> ::std::net::SocketAddr {
                $krate::ListenerHandle::local_addr(self)
            }

            fn accepted_connections(&self) -> u64 {
                $krate::ListenerHandle::accepted_connections(self)
            }

            fn open_connections(&self) -> usize {
                $krate::ListenerHandle::open_connections(self)
            }

            fn shutdown(
                self: Box<Self>,
                deadline: ::std::time::Duration,
            ) -> $crate::harness::LocalBoxFuture<'static, ()> {
                Box::pin($krate::ListenerHandle::shutdown(*self, deadline))
            }
        }
    };
}
pub(crate) use impl_driver;

/// A serving fill listener of either driver. Dropping it drops the driver's `ListenerHandle`,
/// which stops the listener at once.
pub trait ServingListener {
    /// The served address.
    fn local_addr(&self) -> SocketAddr;
    /// `ListenerHandle::accepted_connections`: TCP connections accepted so far.
    fn accepted_connections(&self) -> u64;
    /// `ListenerHandle::open_connections`: connections open now.
    fn open_connections(&self) -> usize;
    /// `ListenerHandle::shutdown(deadline)`.
    fn shutdown(self: Box<Self>, deadline: Duration) -> LocalBoxFuture<'static, ()>;
}

/// Runs a test that mixes drivers: on a tokio runtime (see the module documentation).
pub fn run_mixed<F: Future>(future: F) -> F::Output {
    TokioDriver::run(future)
}

/// One replica: a started cluster and its serving listener, of any driver.
pub struct Replica {
    /// The driver's name.
    pub driver: &'static str,
    /// The cluster handle.
    pub cluster: Box<dyn ClusterHandle>,
    /// The serving listener.
    pub listener: Box<dyn ServingListener>,
    /// The listener's address.
    pub addr: SocketAddr,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.driver, self.addr)
    }
}

impl Replica {
    /// Whether `peer` (from any replica's snapshot) is this replica. A peer with port 0 (DNS)
    /// matches on the IP alone.
    pub fn is(&self, peer: &Peer) -> bool {
        peer.ip == self.addr.ip() && (peer.port == 0 || peer.port == self.addr.port())
    }

    /// Shuts the listener down and closes the cluster (panics if the close misses its
    /// deadline).
    pub async fn stop(self) {
        self.listener.shutdown(STOP_DEADLINE).await;
        self.cluster
            .close(STOP_DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.driver));
    }
}

/// Starts a cluster of driver `D` with `config` and `setup` and serves `listener` with `filler`
/// (at most 256 fills at once).
pub async fn replica<D: Driver>(
    listener: D::Listener,
    config: ClusterConfig,
    setup: Setup,
    filler: impl Filler,
) -> Replica {
    replica_limited::<D>(listener, config, setup, filler, 256).await
}

/// [`replica`] serving at most `max_concurrent` fills at once.
pub async fn replica_limited<D: Driver>(
    listener: D::Listener,
    config: ClusterConfig,
    setup: Setup,
    filler: impl Filler,
    max_concurrent: usize,
) -> Replica {
    let addr = D::listener_addr(&listener);
    let cluster = D::start(config, setup)
        .await
        .unwrap_or_else(|e| panic!("{} start: {e}", D::NAME));
    let listener = D::serve(listener, &cluster, filler, max_concurrent);
    Replica {
        driver: D::NAME,
        cluster: Box::new(cluster),
        listener,
        addr,
    }
}

/// A replica of driver `D` with mutual TLS (identity `tls`) serving the synthetic origin, in a
/// static cluster with a second, phantom peer (so it coordinates only some chunks), and the
/// first chunk of `chunk_size` bytes (index 0 to 63) that it coordinates.
pub async fn tls_replica_and_its_chunk<D: Driver>(
    tls: &orca_cluster_core::TlsSettings,
    chunk_size: u64,
) -> (Replica, ChunkKey) {
    let listener = bind_local::<D>(1).await.pop().unwrap();
    let addr = D::listener_addr(&listener);
    let phantom = SocketAddr::new(addr.ip(), 1);
    let source = StaticPeerSource::new([addr, phantom]);
    let setup = Setup::static_source(&source).with_self_port(addr.port());
    let config = ClusterConfig {
        internal_tls: tls.clone(),
        ..static_config()
    };
    let r = replica::<D>(listener, config, setup, SyntheticOrigin).await;
    let mine = (0..64)
        .map(|i| key(i, chunk_size))
        .find(|k| r.cluster.is_coordinator(k))
        .expect("a chunk of this replica");
    (r, mine)
}

/// Binds `n` listeners of driver `D` on 127.0.0.1 with OS-assigned ports.
pub async fn bind_local<D: Driver>(n: usize) -> Vec<D::Listener> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            D::bind(SocketAddr::new(LOCALHOST, 0))
                .await
                .unwrap_or_else(|e| panic!("{} bind: {e}", D::NAME)),
        );
    }
    out
}

/// Starts one replica per listener of driver `D`, each with `config` and `setup` plus its own
/// self port, serving `filler`. All of them must already be in `setup`'s static source.
pub async fn start_static<D: Driver>(
    listeners: Vec<D::Listener>,
    config: &ClusterConfig,
    setup: &Setup,
    filler: impl Filler + Clone,
) -> Vec<Replica> {
    start_static_limited::<D>(listeners, config, setup, filler, 256).await
}

/// [`start_static`] with each replica serving at most `max_concurrent` fills at once.
pub async fn start_static_limited<D: Driver>(
    listeners: Vec<D::Listener>,
    config: &ClusterConfig,
    setup: &Setup,
    filler: impl Filler + Clone,
    max_concurrent: usize,
) -> Vec<Replica> {
    let mut out = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let port = D::listener_addr(&listener).port();
        out.push(
            replica_limited::<D>(
                listener,
                config.clone(),
                setup.clone().with_self_port(port),
                filler.clone(),
                max_concurrent,
            )
            .await,
        );
    }
    out
}

/// `n` replicas of driver `D` on 127.0.0.1 with distinct ports sharing one static source,
/// serving [`SyntheticOrigin`], each checked to see all `n` peers.
pub async fn static_replicas<D: Driver>(
    n: usize,
    config: &ClusterConfig,
    http1: bool,
) -> (Vec<Replica>, StaticPeerSource) {
    let listeners = bind_local::<D>(n).await;
    let source = StaticPeerSource::new(listeners.iter().map(D::listener_addr));
    let setup = Setup::static_source(&source).with_http1(http1);
    let replicas = start_static::<D>(listeners, config, &setup, SyntheticOrigin).await;
    for r in &replicas {
        assert!(r.cluster.has_initial_snapshot(), "{r:?}: initial snapshot");
        assert_eq!(r.cluster.peers().len(), n, "{r:?} sees every replica");
    }
    (replicas, source)
}

/// Stops every replica.
pub async fn stop_all(replicas: Vec<Replica>) {
    for r in replicas {
        r.stop().await;
    }
}

/// The configuration of a replica on 127.0.0.1 with a static source: refresh 100 ms, lookup
/// timeout 1 s.
pub fn static_config() -> ClusterConfig {
    ClusterConfig {
        service: "static".into(),
        self_pod_ip: vec![LOCALHOST],
        membership_refresh: Duration::from_millis(100),
        lookup_timeout: Duration::from_secs(1),
        ..ClusterConfig::default()
    }
}

/// Chunk `index` (chunks of `chunk_size` bytes) of the test object, whose fields need
/// percent-encoding on the wire.
pub fn key(index: u64, chunk_size: u64) -> ChunkKey {
    ChunkKey {
        origin_id: "s3".into(),
        bucket: "media bucket".into(),
        object_key: "videos/cat & dog/1.mp4".into(),
        etag: "\"v1\"".into(),
        chunk_size,
        index,
    }
}

/// `addr` as a non-self peer.
pub fn peer_at(addr: SocketAddr) -> Peer {
    Peer {
        ip: addr.ip(),
        port: addr.port(),
        is_self: false,
    }
}

/// The index of the replica that `peer` designates.
pub fn replica_of(replicas: &[Replica], peer: &Peer) -> usize {
    replicas
        .iter()
        .position(|r| r.is(peer))
        .unwrap_or_else(|| panic!("{peer} is none of {replicas:?}"))
}

/// The first chunk index below `limit` whose coordinator, in `observer`'s snapshot, is
/// replica `owner`.
pub fn key_coordinated_by(
    replicas: &[Replica],
    observer: usize,
    owner: usize,
    chunk_size: u64,
    limit: u64,
) -> Option<ChunkKey> {
    (0..limit)
        .map(|i| key(i, chunk_size))
        .find(|k| replicas[owner].is(&replicas[observer].cluster.coordinator(k)))
}

/// A chunk of `origin_id` (chunk size `chunk_size`, index below `indices`, the etag varied)
/// whose coordinator in `observer`'s snapshot listens on `owner`.
pub fn origin_chunk_coordinated_by(
    observer: &dyn ClusterHandle,
    owner: SocketAddr,
    origin_id: &str,
    chunk_size: u64,
    indices: u64,
) -> ChunkKey {
    (0..256u64)
        .map(|salt| ChunkKey {
            origin_id: origin_id.into(),
            etag: format!("\"s{salt}\""),
            ..key(salt % indices, chunk_size)
        })
        .find(|k| {
            let c = observer.coordinator(k);
            c.ip == owner.ip() && c.port == owner.port()
        })
        .unwrap_or_else(|| panic!("no {origin_id} chunk coordinated by {owner}"))
}

/// Asserts that `bytes` are exactly chunk `key` of an object of `object_size` bytes of the
/// synthetic origin.
pub fn assert_chunk(bytes: &[u8], key: &ChunkKey, object_size: u64) {
    let expected = SyntheticOrigin::chunk_bytes(key, object_size);
    assert_eq!(bytes.len(), expected.len(), "chunk {} length", key.index);
    assert!(
        bytes == expected.as_slice(),
        "chunk {} bytes differ",
        key.index
    );
}

/// Runs `future` for at most `limit` on driver `D`'s timer; `None` if the limit passed first.
pub async fn timeout<D: Driver, F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    futures_lite::future::or(async { Some(future.await) }, async {
        D::sleep(limit).await;
        None
    })
    .await
}

/// Polls `condition` every 10 ms for at most `within`; returns whether it became true.
pub async fn eventually<D: Driver>(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        D::sleep(Duration::from_millis(10)).await;
    }
}

/// The next snapshot of `subscription`, within `within`; panics if none comes or the
/// cluster is closed.
pub async fn next_change<D: Driver>(subscription: &mut Subscription, within: Duration) -> Snapshot {
    timeout::<D, _>(within, subscription.changed())
        .await
        .unwrap_or_else(|| panic!("{}: no snapshot change within {within:?}", D::NAME))
        .unwrap_or_else(|| panic!("{}: subscription ended", D::NAME))
}

/// What a drained body delivered.
#[derive(Debug)]
pub struct Drained {
    /// The verified bytes handed out.
    pub bytes: Vec<u8>,
    /// The error that ended the body, if any.
    pub error: Option<FillError>,
}

/// Reads `body` to its end (bounded by [`TEST_LIMIT`] of the caller's `run`).
pub async fn drain(mut body: BodyStream) -> Drained {
    let mut bytes = Vec::new();
    let mut error = None;
    while let Some(item) = body.next().await {
        match item {
            Ok(frame) => bytes.extend_from_slice(&frame),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Drained { bytes, error }
}

/// How [`BadFiller`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// The stream ends 1000 bytes early.
    Short,
    /// The stream yields 1000 bytes too many.
    Long,
    /// The filler fails before producing a stream (502).
    Fail,
}

/// A filler that serves the synthetic chunk wrongly, to check that listeners abort responses.
#[derive(Clone, Copy, Debug)]
pub struct BadFiller(pub Misbehaviour);

impl Filler for BadFiller {
    async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
        let mut bytes = SyntheticOrigin::chunk_bytes(&request.key, request.object_size);
        match self.0 {
            Misbehaviour::Fail => return Err("the origin is down".into()),
            Misbehaviour::Short => bytes.truncate(bytes.len().saturating_sub(1000)),
            Misbehaviour::Long => bytes.extend_from_slice(&[0u8; 1000]),
        }
        // Two frames, so that a prefix is sent before the guard notices.
        let mut first = Bytes::from(bytes);
        let second = first.split_off(first.len() / 2);
        let stream = futures_lite::stream::iter(vec![Ok(first), Ok(second)]);
        Ok(Box::pin(stream))
    }
}

/// Runs blocking `work` on a new thread and awaits its result without blocking the runtime
/// (works on any runtime: the result comes back through a `smol::channel`, which needs none).
pub async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = ::smol::channel::bounded(1);
    std::thread::spawn(move || {
        let _ = send.try_send(work());
    });
    receive.recv().await.expect("the worker thread panicked")
}

/// A cluster of driver `D` that only fills: its own address in a static source is 127.0.0.1:1
/// (never dialed), with `config` (e.g. its `internal_tls`) and HTTP/1.1 mode `http1`.
///
/// `members` are the other peers of its snapshot. Both drivers close pooled connections to
/// peers outside the snapshot at every snapshot change (the initial one included), so a test
/// that relies on connection reuse with a server must list it here.
pub async fn client_cluster<D: Driver>(
    config: ClusterConfig,
    http1: bool,
    members: &[SocketAddr],
) -> D::Cluster {
    let protocol = if http1 {
        Protocol::Http1
    } else {
        Protocol::Auto
    };
    client_cluster_with::<D>(config, protocol, members).await
}

/// [`client_cluster`] with an explicit client protocol.
pub async fn client_cluster_with<D: Driver>(
    config: ClusterConfig,
    protocol: Protocol,
    members: &[SocketAddr],
) -> D::Cluster {
    let phantom = SocketAddr::new(LOCALHOST, 1);
    let peers = std::iter::once(phantom).chain(members.iter().copied());
    let setup = Setup::static_source(&StaticPeerSource::new(peers))
        .with_self_port(1)
        .with_protocol(protocol);
    D::start(config, setup)
        .await
        .unwrap_or_else(|e| panic!("{} start: {e}", D::NAME))
}

/// Asserts that `read()` becomes `expected` within 5 s. Listener-side counters (`served_ok`,
/// `bytes_served`...) move when the server's task finishes the response, which may be after the
/// client has already verified every byte; they settle, they are not synchronous.
pub async fn assert_settles<D: Driver, T: PartialEq + std::fmt::Debug>(
    what: &str,
    expected: T,
    mut read: impl FnMut() -> T,
) {
    let settled = eventually::<D>(Duration::from_secs(5), || read() == expected).await;
    assert!(settled, "{what}: expected {expected:?}, still {:?}", read());
}

/// Instantiates the generic cases of a test file (`mod cases { pub(super) async fn
/// name<D: Driver>() }`) as one `#[test]` per case and driver: `driver_cases!([a, b])` makes
/// `tokio_driver::a`, `smol_driver::a`, … each running the case on that driver's runtime.
#[macro_export]
macro_rules! driver_cases {
    ($module:ident, $driver:ty, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    <$driver as $crate::harness::Driver>::run(super::cases::$case::<$driver>());
                }
            )*
        }
    };
    ([$($case:ident),* $(,)?]) => {
        $crate::driver_cases!(tokio_driver, $crate::harness::TokioDriver, [$($case),*]);
        $crate::driver_cases!(smol_driver, $crate::harness::SmolDriver, [$($case),*]);
    };
}
