//! Health, readiness and the peer view of a replica, answered the same way on both drivers.
//!
//! [`Health`] watches a [`Cluster`]'s shared state and, optionally, the [`ListenerHandle`]s
//! serving its fills; [`Health::answer`] turns `(method, path, query)` into a [`HealthReply`]
//! without any IO, so each driver only frames it: the tokio driver's `HealthService` (a hyper
//! and tower service, mountable in an axum router) and the smol driver's `serve_health` (the
//! core's HTTP/1.1 codec, one request per connection, bounded by [`HealthLimits`]).
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok` (the process answers) |
//! | `GET /readyz` | 200 `ready`, or 503 with the reason ([`Readiness`]) |
//! | `GET /peers` | 200 `{"generation":N,"peers":[{"ip":"10.0.0.7","port":8444,"self":true},…]}` |
//! | `GET /coordinator?<fill query>` | 200 `{"coordinator":{"ip":…,"port":…,"self":…},"generation":N}`, 400 for a bad query |
//! | another path | 404 |
//! | another method on these paths | 405 with `Allow: GET, HEAD` |
//!
//! `HEAD` is answered as `GET` with an empty body and the `GET` body's length
//! ([`HealthReply::content_length`]). The fill query is the one of `GET /internal/fill`
//! (`orca_cluster_core::wire::decode_query`); only the chunk key in it matters.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use orca_cluster_core::{ChunkKey, Peer, Snapshot};

use crate::cluster::Cluster;
use crate::driver::Driver;
use crate::listener::{ListenerControl, ListenerHandle};
use crate::runtime::Runtime;
use crate::state::ClusterState;

/// `text/plain` (the body of `/healthz`, `/readyz` and every error).
pub const TEXT: &str = "text/plain";
/// `application/json` (the body of `/peers` and `/coordinator`).
pub const JSON: &str = "application/json";
/// The methods the endpoints answer: `GET, HEAD` (the `Allow` value of a 405).
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// Whether a replica can take traffic, and if not, why. See [`Health::readiness`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Readiness {
    /// The first peer lookup has completed and every watched listener is serving.
    Ready,
    /// The cluster was closed (or its last handle dropped): fills fail with `Closed`.
    ClusterClosed,
    /// The first peer lookup has not completed yet (the snapshot is the bootstrap `[self]`).
    WaitingForSnapshot,
    /// A watched fill listener was shut down or its handle dropped.
    ListenerNotServing,
}

impl Readiness {
    /// Whether this is [`Readiness::Ready`].
    pub fn is_ready(self) -> bool {
        self == Readiness::Ready
    }

    /// The `/readyz` body, one line: `ready`, `cluster closed`, `waiting for the initial peer
    /// snapshot` or `fill listener not serving`.
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::ClusterClosed => "cluster closed",
            Readiness::WaitingForSnapshot => "waiting for the initial peer snapshot",
            Readiness::ListenerNotServing => "fill listener not serving",
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One answer of [`Health::answer`], for the driver to frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReply {
    /// The status code: 200, 400, 404, 405 or 503.
    pub status: u16,
    /// The `Content-Type` value: [`TEXT`] or [`JSON`].
    pub content_type: &'static str,
    /// The body to send: empty for `HEAD`.
    pub body: Bytes,
    /// The `Content-Length` to send, in bytes: the body's length, or for `HEAD` the length
    /// the `GET` body would have.
    pub content_length: u64,
    /// The `Allow` value to send ([`ALLOWED_METHODS`] with 405), if any.
    pub allow: Option<&'static str>,
}

impl HealthReply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> HealthReply {
        let body = body.into();
        HealthReply {
            status,
            content_type,
            content_length: body.len() as u64,
            body,
            allow: None,
        }
    }

    /// The same reply without its body (for `HEAD`); the length stays.
    fn without_body(mut self) -> HealthReply {
        self.body = Bytes::new();
        self
    }
}

/// Bounds of a connection to the health endpoints, for servers that serve them on their own
/// port (the smol driver's `serve_health`, the `orca-cluster` command's admin port): one
/// request per connection, whatever the client asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthLimits {
    /// How long a client may take to send its request head after connecting. Default 5 s.
    pub head_timeout: Duration,
    /// The longest a connection stays open, whatever it does (the response included).
    /// Default 10 s.
    pub connection_lifetime: Duration,
    /// The largest request head accepted, in bytes (request line and header lines); a larger
    /// one is answered 431. Default 8 KiB.
    pub max_head_bytes: usize,
}

impl Default for HealthLimits {
    fn default() -> Self {
        HealthLimits {
            head_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(10),
            max_head_bytes: 8 * 1024,
        }
    }
}

/// The health, readiness and peer view of one replica: a [`Cluster`]'s shared state and the
/// fill listeners it was told to watch. Cheap to clone (clones share everything); holds no
/// [`Cluster`] clone, so it does not keep a dropped cluster running (it then reports
/// [`Readiness::ClusterClosed`]).
///
/// Readiness ([`Health::readiness`]) is: the cluster is not closed, its first peer lookup has
/// completed (successfully or not, as [`Cluster::has_initial_snapshot`]), and every listener
/// given to [`Health::with_listener`] is serving (not shut down, handle not dropped).
#[derive(Clone, Debug)]
pub struct Health {
    state: Arc<ClusterState>,
    listeners: Vec<Arc<ListenerControl>>,
}

impl<D: Driver> From<Cluster<D>> for Health {
    /// [`Health::new`] of the cluster (no listener watched).
    fn from(cluster: Cluster<D>) -> Health {
        Health::new(&cluster)
    }
}

impl Health {
    /// The health of `cluster`, watching no listener: ready once its first lookup completed.
    pub fn new<D: Driver>(cluster: &Cluster<D>) -> Health {
        Health::from_state(cluster.state().clone())
    }

    pub(crate) fn from_state(state: Arc<ClusterState>) -> Health {
        Health {
            state,
            listeners: Vec::new(),
        }
    }

    /// Also requires `listener` to be serving for readiness: once it is shut down (or its
    /// handle dropped), `/readyz` answers 503. May be called for several listeners.
    pub fn with_listener<R: Runtime>(self, listener: &ListenerHandle<R>) -> Health {
        self.with_listener_control(listener.control().clone())
    }

    pub(crate) fn with_listener_control(mut self, control: Arc<ListenerControl>) -> Health {
        self.listeners.push(control);
        self
    }

    /// Whether the replica can take traffic now, and if not the first reason found (closed,
    /// then snapshot, then listeners).
    pub fn readiness(&self) -> Readiness {
        if self.state.is_shutting_down() {
            Readiness::ClusterClosed
        } else if !self.state.has_initial_snapshot() {
            Readiness::WaitingForSnapshot
        } else if !self.listeners.iter().all(|l| l.is_serving()) {
            Readiness::ListenerNotServing
        } else {
            Readiness::Ready
        }
    }

    /// The current peer snapshot.
    pub fn peers(&self) -> Snapshot {
        self.state.peers()
    }

    /// Answers one request: `method` as received (case-sensitive), `path` the raw path of the
    /// request-target (no query), `query` its raw query without the `?`. Pure apart from
    /// reading the current state; see the module documentation for the table of answers.
    pub fn answer(&self, method: &str, path: &str, query: Option<&str>) -> HealthReply {
        let head = match method {
            "GET" => false,
            "HEAD" => true,
            _ if is_endpoint(path) => {
                let mut reply = HealthReply::new(405, TEXT, "method not allowed\n");
                reply.allow = Some(ALLOWED_METHODS);
                return reply;
            }
            _ => return not_found(),
        };
        let reply = match path {
            "/healthz" => HealthReply::new(200, TEXT, "ok\n"),
            "/readyz" => {
                let readiness = self.readiness();
                let status = if readiness.is_ready() { 200 } else { 503 };
                HealthReply::new(status, TEXT, format!("{readiness}\n"))
            }
            "/peers" => HealthReply::new(200, JSON, snapshot_json(&self.state.peers())),
            "/coordinator" => match orca_cluster_core::wire::decode_query(query.unwrap_or("")) {
                Ok(q) => HealthReply::new(200, JSON, coordinator_json(&self.peers(), &q.key)),
                Err(e) => HealthReply::new(400, TEXT, format!("bad request: {e}\n")),
            },
            _ => not_found(),
        };
        if head { reply.without_body() } else { reply }
    }
}

fn is_endpoint(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/peers" | "/coordinator")
}

fn not_found() -> HealthReply {
    HealthReply::new(404, TEXT, "not found\n")
}

/// `snapshot` as `/peers` answers it: `{"generation":N,"peers":[P,…]}`, each peer
/// `{"ip":"10.0.0.7","port":8444,"self":false}` in the snapshot's (sorted) order. Compact, keys
/// in this order.
pub fn snapshot_json(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(32 + 48 * snapshot.len());
    let _ = write!(
        out,
        "{{\"generation\":{},\"peers\":[",
        snapshot.generation()
    );
    for (i, peer) in snapshot.peers().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_peer(&mut out, peer);
    }
    out.push_str("]}");
    out
}

/// The coordinator of `key` in `snapshot` as `/coordinator` answers it:
/// `{"coordinator":{"ip":"10.0.0.7","port":8444,"self":false},"generation":N}`.
pub fn coordinator_json(snapshot: &Snapshot, key: &ChunkKey) -> String {
    let mut out = String::with_capacity(96);
    out.push_str("{\"coordinator\":");
    push_peer(&mut out, snapshot.coordinator(key));
    let _ = write!(out, ",\"generation\":{}}}", snapshot.generation());
    out
}

fn push_peer(out: &mut String, peer: &Peer) {
    out.push_str("{\"ip\":");
    push_ip(out, peer.ip);
    let _ = write!(out, ",\"port\":{},\"self\":{}}}", peer.port, peer.is_self);
}

fn push_ip(out: &mut String, ip: IpAddr) {
    push_json_string(out, &ip.to_string());
}

/// Appends `text` as a JSON string: quotes, `"` and `\` escaped, control characters as
/// `\n`, `\r`, `\t` or `\u00XX`.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_cluster_core::{ChangeReason, MembershipEvent, PeerAddr, Scoring, SelfIdentity};

    fn me() -> SelfIdentity {
        SelfIdentity::new(["10.0.0.2".parse().unwrap()], 8444).unwrap()
    }

    fn snapshot(generation: u64) -> Snapshot {
        let addrs = [
            PeerAddr {
                ip: "10.0.0.1".parse().unwrap(),
                port: 8444,
            },
            PeerAddr {
                ip: "10.0.0.2".parse().unwrap(),
                port: 8444,
            },
            PeerAddr {
                ip: "fd00::3".parse().unwrap(),
                port: 9000,
            },
        ];
        Snapshot::new(&me(), addrs, Scoring::Xxh3, generation)
    }

    fn publish(state: &ClusterState, generation: u64) {
        state.apply(MembershipEvent::SnapshotChanged {
            snapshot: snapshot(generation),
            initial: true,
            added: Vec::new(),
            removed: Vec::new(),
            reason: ChangeReason::Discovery,
        });
    }

    fn fresh() -> (Arc<ClusterState>, Health) {
        let state = ClusterState::new(Snapshot::only_self(&me(), Scoring::Xxh3, 0));
        let health = Health::from_state(state.clone());
        (state, health)
    }

    fn key() -> ChunkKey {
        ChunkKey {
            origin_id: "o".into(),
            bucket: "b".into(),
            object_key: "k".into(),
            etag: "e".into(),
            chunk_size: 1 << 20,
            index: 2,
        }
    }

    fn text(reply: &HealthReply) -> &str {
        std::str::from_utf8(&reply.body).unwrap()
    }

    #[test]
    fn healthz_is_ok_from_the_start() {
        let (_state, health) = fresh();
        let reply = health.answer("GET", "/healthz", None);
        assert_eq!(
            (reply.status, reply.content_type, text(&reply)),
            (200, TEXT, "ok\n")
        );
        assert_eq!(reply.content_length, 3);
        assert_eq!(reply.allow, None);
        // The query is ignored.
        assert_eq!(health.answer("GET", "/healthz", Some("x=1")).status, 200);
    }

    #[test]
    fn readyz_waits_for_the_initial_snapshot() {
        let (state, health) = fresh();
        assert_eq!(health.readiness(), Readiness::WaitingForSnapshot);
        let reply = health.answer("GET", "/readyz", None);
        assert_eq!(
            (reply.status, reply.content_type, text(&reply)),
            (503, TEXT, "waiting for the initial peer snapshot\n")
        );
        publish(&state, 1);
        assert_eq!(health.readiness(), Readiness::Ready);
        let reply = health.answer("GET", "/readyz", None);
        assert_eq!((reply.status, text(&reply)), (200, "ready\n"));
    }

    #[test]
    fn readyz_requires_every_watched_listener_serving() {
        let (state, health) = fresh();
        publish(&state, 1);
        let first = ListenerControl::new();
        let second = ListenerControl::new();
        let health = health
            .with_listener_control(first.clone())
            .with_listener_control(second.clone());
        assert_eq!(health.answer("GET", "/readyz", None).status, 200);
        second.stop();
        let reply = health.answer("GET", "/readyz", None);
        assert_eq!(
            (reply.status, text(&reply)),
            (503, "fill listener not serving\n")
        );
        assert_eq!(health.readiness(), Readiness::ListenerNotServing);
        // A forced stop (a dropped handle) is not serving either.
        let (state, health) = fresh();
        publish(&state, 1);
        let control = ListenerControl::new();
        let health = health.with_listener_control(control.clone());
        control.force();
        assert_eq!(health.readiness(), Readiness::ListenerNotServing);
    }

    #[test]
    fn readyz_reports_a_closed_cluster_first() {
        let (state, health) = fresh();
        let control = ListenerControl::new();
        control.stop();
        let health = health.with_listener_control(control);
        state.signal_shutdown();
        let reply = health.answer("GET", "/readyz", None);
        assert_eq!((reply.status, text(&reply)), (503, "cluster closed\n"));
        assert!(!health.readiness().is_ready());
    }

    #[test]
    fn peers_is_the_snapshot_as_json() {
        let (state, health) = fresh();
        let reply = health.answer("GET", "/peers", None);
        assert_eq!(
            (reply.status, reply.content_type, text(&reply)),
            (
                200,
                JSON,
                r#"{"generation":0,"peers":[{"ip":"10.0.0.2","port":8444,"self":true}]}"#
            )
        );
        publish(&state, 7);
        let reply = health.answer("GET", "/peers", None);
        assert_eq!(
            text(&reply),
            concat!(
                r#"{"generation":7,"peers":["#,
                r#"{"ip":"10.0.0.1","port":8444,"self":false},"#,
                r#"{"ip":"10.0.0.2","port":8444,"self":true},"#,
                r#"{"ip":"fd00::3","port":9000,"self":false}]}"#
            )
        );
        assert_eq!(reply.content_length, reply.body.len() as u64);
    }

    #[test]
    fn coordinator_answers_the_rendezvous_choice() {
        let (state, health) = fresh();
        publish(&state, 4);
        let query = orca_cluster_core::wire::encode_query(&key(), 8 << 20);
        let reply = health.answer("GET", "/coordinator", Some(&query));
        let expected = *snapshot(4).coordinator(&key());
        let ip = expected.ip.to_string();
        assert_eq!(reply.status, 200, "{}", text(&reply));
        assert_eq!(reply.content_type, JSON);
        assert_eq!(
            text(&reply),
            format!(
                r#"{{"coordinator":{{"ip":"{ip}","port":{},"self":{}}},"generation":4}}"#,
                expected.port, expected.is_self
            )
        );
    }

    #[test]
    fn coordinator_refuses_a_bad_query_naming_the_field() {
        let (_state, health) = fresh();
        let reply = health.answer("GET", "/coordinator", Some("index=x"));
        assert_eq!((reply.status, reply.content_type), (400, TEXT));
        assert!(
            text(&reply).starts_with("bad request: "),
            "{}",
            text(&reply)
        );
        let reply = health.answer("GET", "/coordinator", None);
        assert_eq!(reply.status, 400);
        assert!(text(&reply).contains("missing"), "{}", text(&reply));
    }

    #[test]
    fn head_has_the_get_length_and_no_body() {
        let (state, health) = fresh();
        publish(&state, 1);
        for path in ["/healthz", "/readyz", "/peers", "/nowhere"] {
            let get = health.answer("GET", path, None);
            let head = health.answer("HEAD", path, None);
            assert_eq!(head.status, get.status, "{path}");
            assert_eq!(head.content_type, get.content_type, "{path}");
            assert!(head.body.is_empty(), "{path}");
            assert_eq!(head.content_length, get.body.len() as u64, "{path}");
        }
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405() {
        let (_state, health) = fresh();
        for path in [
            "/",
            "/healthz/",
            "/HEALTHZ",
            "/peers/x",
            "/internal/fill",
            "",
        ] {
            let reply = health.answer("GET", path, None);
            assert_eq!(
                (reply.status, text(&reply)),
                (404, "not found\n"),
                "{path:?}"
            );
        }
        for method in ["POST", "PUT", "DELETE", "get", "OPTIONS"] {
            let reply = health.answer(method, "/healthz", None);
            assert_eq!(reply.status, 405, "{method}");
            assert_eq!(reply.allow, Some(ALLOWED_METHODS));
            assert_eq!(text(&reply), "method not allowed\n");
            assert_eq!(health.answer(method, "/other", None).status, 404);
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
