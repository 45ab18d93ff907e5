//! The health endpoints of a replica, written once and run against both drivers: the tokio
//! driver's `HealthService` served by hyper, the smol driver's `serve_health` (the core's
//! HTTP/1.1 codec), both answering from the library's `Health` over real sockets.
//!
//! - `answers_every_endpoint`: `/healthz`, `/readyz`, `/peers` and `/coordinator` with the
//!   replica's own snapshot, `HEAD`, 400, 404 and 405;
//! - `readiness_follows_the_listener_and_the_cluster`: ready after start, 503 once the fill
//!   listener is shut down (`/healthz` stays 200), then 503 once the cluster is closed;
//! - `dropping_the_listener_handle_makes_the_replica_unready`: a dropped handle stops the
//!   listener at once, and readiness sees it.

orca_cluster_tests::driver_cases!([
    answers_every_endpoint,
    readiness_follows_the_listener_and_the_cluster,
    dropping_the_listener_handle_makes_the_replica_unready,
]);

/// How each driver serves the health endpoints on a port of their own.
mod serving {
    use std::future::Future;
    use std::net::SocketAddr;

    use orca_cluster_driver_common::{Health, ListenerSettings, SyntheticOrigin};
    use orca_cluster_tests::harness::{Driver, ServingListener, SmolDriver, TokioDriver};

    /// A driver's way to serve its fill listener watched by a [`Health`], and the health
    /// endpoints themselves.
    pub trait ServeHealth: Driver {
        /// Serves `listener` with [`SyntheticOrigin`] and returns it with the health of
        /// `cluster` watching it.
        fn serve_watched(
            listener: Self::Listener,
            cluster: &Self::Cluster,
        ) -> (Box<dyn ServingListener>, Health);

        /// Serves `health` on a free loopback port in the background; returns the address.
        fn serve_health(health: Health) -> impl Future<Output = SocketAddr>;
    }

    impl ServeHealth for TokioDriver {
        fn serve_watched(
            listener: orca_cluster_tokio::FillListener,
            cluster: &orca_cluster_tokio::Cluster,
        ) -> (Box<dyn ServingListener>, Health) {
            let handle = listener.serve(cluster, SyntheticOrigin, ListenerSettings::default());
            let health = Health::new(cluster).with_listener(&handle);
            (Box::new(handle), health)
        }

        async fn serve_health(health: Health) -> SocketAddr {
            let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the health port");
            let addr = admin.local_addr().expect("health port address");
            let service = orca_cluster_tokio::HealthService::new(health);
            tokio::spawn(async move {
                while let Ok((stream, _)) = admin.accept().await {
                    let connection = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
                    tokio::spawn(connection);
                }
            });
            addr
        }
    }

    impl ServeHealth for SmolDriver {
        fn serve_watched(
            listener: orca_cluster_smol::FillListener,
            cluster: &orca_cluster_smol::Cluster,
        ) -> (Box<dyn ServingListener>, Health) {
            let handle = listener.serve(cluster, SyntheticOrigin, ListenerSettings::default());
            let health = Health::new(cluster).with_listener(&handle);
            (Box::new(handle), health)
        }

        async fn serve_health(health: Health) -> SocketAddr {
            let admin = smol::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the health port");
            let addr = admin.local_addr().expect("health port address");
            let limits = orca_cluster_smol::HealthLimits::default();
            smol::spawn(orca_cluster_smol::serve_health(admin, health, limits)).detach();
            addr
        }
    }
}

mod cases {
    use std::net::SocketAddr;

    use orca_cluster_core::Peer;
    use orca_cluster_core::wire::encode_query;
    use orca_cluster_driver_common::StaticPeerSource;
    use orca_cluster_tests::harness::{
        ClusterHandle, STOP_DEADLINE, ServingListener, Setup, bind_local, key, off_thread,
        static_config,
    };
    use orca_cluster_tests::raw_client::{self, RawResponse};

    pub use super::serving::ServeHealth;

    /// A started replica of driver `D` (static list of itself), its fill listener watched by
    /// the health endpoints, and their address.
    struct Replica<D: ServeHealth> {
        cluster: D::Cluster,
        fills: Box<dyn ServingListener>,
        fill_addr: SocketAddr,
        admin: SocketAddr,
    }

    async fn replica<D: ServeHealth>() -> Replica<D> {
        let listener = bind_local::<D>(1).await.pop().expect("one listener");
        let fill_addr = D::listener_addr(&listener);
        let source = StaticPeerSource::new([fill_addr]);
        let setup = Setup::static_source(&source).with_self_port(fill_addr.port());
        let cluster = D::start(static_config(), setup)
            .await
            .unwrap_or_else(|e| panic!("{} start: {e}", D::NAME));
        let (fills, health) = D::serve_watched(listener, &cluster);
        let admin = D::serve_health(health).await;
        Replica {
            cluster,
            fills,
            fill_addr,
            admin,
        }
    }

    /// `method target` on a new connection to `admin`, read to its end (off the runtime).
    async fn ask(admin: SocketAddr, method: &str, target: &str) -> RawResponse {
        let request = raw_client::request(method, target, "");
        let what = format!("{method} {target}");
        off_thread(move || raw_client::exchange(admin, &request))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// `(status, content-type, body)` of `GET target`.
    async fn get(admin: SocketAddr, target: &str) -> (u16, String, String) {
        let response = ask(admin, "GET", target).await;
        let content_type = response.header("content-type").unwrap_or("").to_owned();
        (response.status, content_type, response.text())
    }

    fn peer_json(p: &Peer) -> String {
        format!(
            r#"{{"ip":"{}","port":{},"self":{}}}"#,
            p.ip, p.port, p.is_self
        )
    }

    pub async fn answers_every_endpoint<D: ServeHealth>() {
        let r = replica::<D>().await;
        let name = D::NAME;
        assert_eq!(
            get(r.admin, "/healthz").await,
            (200, "text/plain".into(), "ok\n".into()),
            "{name}"
        );
        assert_eq!(
            get(r.admin, "/readyz").await,
            (200, "text/plain".into(), "ready\n".into()),
            "{name}"
        );

        let snapshot = r.cluster.peers();
        let me = Peer {
            ip: r.fill_addr.ip(),
            port: r.fill_addr.port(),
            is_self: true,
        };
        assert_eq!(snapshot.peers(), [me], "{name}");
        let peers = format!(
            r#"{{"generation":{},"peers":[{}]}}"#,
            snapshot.generation(),
            peer_json(&me)
        );
        assert_eq!(
            get(r.admin, "/peers").await,
            (200, "application/json".into(), peers.clone()),
            "{name}"
        );

        let chunk = key(3, 1 << 20);
        let query = encode_query(&chunk, 8 << 20);
        let coordinator = format!(
            r#"{{"coordinator":{},"generation":{}}}"#,
            peer_json(&r.cluster.coordinator(&chunk)),
            snapshot.generation()
        );
        assert_eq!(
            get(r.admin, &format!("/coordinator?{query}")).await,
            (200, "application/json".into(), coordinator),
            "{name}"
        );
        let (status, _, body) = get(r.admin, "/coordinator?index=x").await;
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.starts_with("bad request: "), "{name}: {body}");

        // HEAD: the GET length, no body.
        let head = ask(r.admin, "HEAD", "/peers").await;
        assert_eq!(head.status, 200, "{name}");
        let length = peers.len().to_string();
        assert_eq!(
            head.header("content-length"),
            Some(length.as_str()),
            "{name}"
        );
        assert!(head.body.is_empty(), "{name}: {:?}", head.text());

        let refused = ask(r.admin, "POST", "/readyz").await;
        assert_eq!(refused.status, 405, "{name}");
        assert_eq!(refused.header("allow"), Some("GET, HEAD"), "{name}");
        assert_eq!(get(r.admin, "/internal/fill").await.0, 404, "{name}");
        assert_eq!(get(r.admin, "/readyz/").await.0, 404, "{name}");

        r.fills.shutdown(STOP_DEADLINE).await;
        r.cluster.close(STOP_DEADLINE).await.expect("close");
    }

    pub async fn readiness_follows_the_listener_and_the_cluster<D: ServeHealth>() {
        let r = replica::<D>().await;
        let name = D::NAME;
        assert!(r.cluster.has_initial_snapshot(), "{name}");
        assert_eq!(get(r.admin, "/readyz").await.0, 200, "{name}");

        r.fills.shutdown(STOP_DEADLINE).await;
        assert_eq!(
            get(r.admin, "/readyz").await,
            (
                503,
                "text/plain".into(),
                "fill listener not serving\n".into()
            ),
            "{name}"
        );
        // Alive, only not ready.
        assert_eq!(get(r.admin, "/healthz").await.0, 200, "{name}");

        r.cluster.close(STOP_DEADLINE).await.expect("close");
        assert_eq!(
            get(r.admin, "/readyz").await,
            (503, "text/plain".into(), "cluster closed\n".into()),
            "{name}"
        );
        assert_eq!(get(r.admin, "/healthz").await.0, 200, "{name}");
    }

    pub async fn dropping_the_listener_handle_makes_the_replica_unready<D: ServeHealth>() {
        let r = replica::<D>().await;
        let name = D::NAME;
        assert_eq!(get(r.admin, "/readyz").await.0, 200, "{name}");
        drop(r.fills);
        let (status, _, body) = get(r.admin, "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "fill listener not serving\n"),
            "{name}"
        );
        r.cluster.close(STOP_DEADLINE).await.expect("close");
    }
}
