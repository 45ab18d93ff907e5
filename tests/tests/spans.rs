//! Tracing spans of both drivers, captured by a `tracing-subscriber` layer: a client fill runs
//! in a `fill` span and the listener serves it in a `fill_serve` span, each with the chunk key
//! fields and, when it ends, its outcome and bytes; the existing events happen inside them.
//! Written once, run against each driver; each test's chunks carry their own `origin_id`, so the
//! tests pick their spans out of the one process-wide capture while running in parallel.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Mutex, OnceLock};

use orca_cluster_tests::harness::{Driver, SmolDriver, TokioDriver};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[test]
fn tokio_fills_run_in_spans() {
    install();
    TokioDriver::run(cases::fills_run_in_spans::<TokioDriver>());
}

#[test]
fn smol_fills_run_in_spans() {
    install();
    SmolDriver::run(cases::fills_run_in_spans::<SmolDriver>());
}

/// A closed span: its name, its fields as last recorded, and the events that happened inside it
/// (their `event` field, else their message).
#[derive(Clone, Debug, Default)]
struct Captured {
    name: &'static str,
    fields: BTreeMap<String, String>,
    events: Vec<String>,
}

impl Captured {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// Every span closed so far in this process.
static CLOSED: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

/// Installs the capturing subscriber (once per process).
fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    });
}

/// The closed spans named `name` whose `origin_id` is `origin`.
fn closed(name: &str, origin: &str) -> Vec<Captured> {
    CLOSED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|c| c.name == name && c.field("origin_id") == origin)
        .cloned()
        .collect()
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// Keeps each span's fields in its registry extensions and moves them to [`CLOSED`] when it
/// closes.
struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut captured = Captured {
            name: attrs.metadata().name(),
            ..Captured::default()
        };
        attrs.record(&mut Fields(&mut captured.fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(captured);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(captured) = span.extensions_mut().get_mut::<Captured>()
        {
            values.record(&mut Fields(&mut captured.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let name = fields
            .remove("event")
            .or_else(|| fields.remove("message"))
            .unwrap_or_default();
        if let Some(span) = ctx.event_span(event)
            && let Some(captured) = span.extensions_mut().get_mut::<Captured>()
        {
            captured.events.push(name);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(captured) = span.extensions_mut().remove::<Captured>()
        {
            CLOSED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(captured);
        }
    }
}

mod cases {
    use std::net::SocketAddr;
    use std::time::Duration;

    use orca_cluster_core::ChunkKey;
    use orca_cluster_driver_common::{
        ChunkStream, FillRequest, Filler, FillerError, StaticPeerSource, SyntheticOrigin,
    };
    use orca_cluster_tests::harness::{
        ClusterHandle, Driver, Setup, assert_chunk, bind_local, eventually,
        origin_chunk_coordinated_by, peer_at, start_static_limited, static_config, stop_all,
    };

    use super::{Captured, closed};

    const CHUNK: u64 = 256 * 1024;
    const OBJECT: u64 = 4 * CHUNK + 1000;

    /// The synthetic chunk; an error for an `origin_id` ending in `-fail`.
    #[derive(Clone, Copy, Debug)]
    struct FailingOnRequest;

    impl Filler for FailingOnRequest {
        async fn fill(&self, request: FillRequest) -> Result<ChunkStream, FillerError> {
            if request.key.origin_id.ends_with("-fail") {
                return Err("the origin is down".into());
            }
            SyntheticOrigin.fill(request).await
        }
    }

    /// A chunk of `origin` coordinated by `owner` in `observer`'s snapshot.
    fn chunk(observer: &dyn ClusterHandle, owner: SocketAddr, origin: &str) -> ChunkKey {
        origin_chunk_coordinated_by(observer, owner, origin, CHUNK, 5)
    }

    /// The one closed span `name` of `origin`, once it has closed (at most 5 s).
    async fn span<D: Driver>(name: &str, origin: &str) -> Captured {
        let found =
            eventually::<D>(Duration::from_secs(5), || !closed(name, origin).is_empty()).await;
        assert!(found, "{}: no closed {name} span for {origin}", D::NAME);
        let mut spans = closed(name, origin);
        assert_eq!(spans.len(), 1, "{}: {spans:?}", D::NAME);
        spans.remove(0)
    }

    /// Asserts that `span` carries the fields of chunk `key`.
    fn assert_key(span: &Captured, key: &ChunkKey) {
        let expected = [
            ("origin_id", key.origin_id.clone()),
            ("bucket", key.bucket.clone()),
            ("object_key", key.object_key.clone()),
            ("etag", key.etag.clone()),
            ("chunk_size", key.chunk_size.to_string()),
            ("index", key.index.to_string()),
            ("object_size", OBJECT.to_string()),
        ];
        for (field, value) in expected {
            assert_eq!(span.field(field), value, "{} {field}: {span:?}", span.name);
        }
    }

    pub(super) async fn fills_run_in_spans<D: Driver>() {
        let listeners = bind_local::<D>(2).await;
        let addrs: Vec<SocketAddr> = listeners.iter().map(D::listener_addr).collect();
        let source = StaticPeerSource::new(addrs.clone());
        let setup = Setup::static_source(&source);
        let replicas =
            start_static_limited::<D>(listeners, &static_config(), &setup, FailingOnRequest, 16)
                .await;
        let a = &*replicas[0].cluster;
        let (a_addr, b_addr) = (addrs[0], addrs[1]);
        let b = peer_at(b_addr);

        // Served in full: `fill` and `fill_serve`, both ok with every byte.
        let origin = format!("spans-{}-ok", D::NAME);
        let k = chunk(a, b_addr, &origin);
        let expected_len = k.expected_len(OBJECT).expect("a chunk of the object");
        let bytes = a.fill(&b, &k, OBJECT).await.expect("fill");
        assert_chunk(&bytes, &k, OBJECT);
        let client = span::<D>("fill", &origin).await;
        assert_key(&client, &k);
        assert_eq!(client.field("peer"), b_addr.to_string());
        assert_eq!(client.field("protocol"), "auto");
        assert_eq!(client.field("tls"), "false");
        assert_eq!(client.field("outcome"), "ok", "{client:?}");
        assert_eq!(client.field("bytes"), expected_len.to_string());
        let server = span::<D>("fill_serve", &origin).await;
        assert_key(&server, &k);
        assert_eq!(server.field("outcome"), "ok", "{server:?}");
        assert_eq!(server.field("bytes"), expected_len.to_string());

        // 409: the client's fill fails as not_coordinator; the listener refuses it inside its
        // span, which still names the chunk.
        let origin = format!("spans-{}-409", D::NAME);
        let k = chunk(a, a_addr, &origin);
        let e = a.fill(&b, &k, OBJECT).await.expect_err("409");
        assert!(e.is_not_coordinator(), "{e}");
        let client = span::<D>("fill", &origin).await;
        assert_key(&client, &k);
        assert_eq!(client.field("outcome"), "failed", "{client:?}");
        assert_eq!(client.field("kind"), "not_coordinator", "{client:?}");
        assert!(
            client.events.iter().any(|e| e == "fill failed"),
            "{client:?}"
        );
        let server = span::<D>("fill_serve", &origin).await;
        assert_key(&server, &k);
        assert_eq!(server.field("outcome"), "refused", "{server:?}");
        assert_eq!(server.field("reason"), "not_coordinator", "{server:?}");
        assert!(
            server.events.iter().any(|e| e == "fill_rejected"),
            "{server:?}"
        );

        // The filler fails: 502, `filler_failed` inside the listener's span.
        let origin = format!("spans-{}-fail", D::NAME);
        let k = chunk(a, b_addr, &origin);
        let e = a.fill(&b, &k, OBJECT).await.expect_err("502");
        assert_eq!(e.status(), Some(502), "{e}");
        let client = span::<D>("fill", &origin).await;
        assert_eq!(client.field("outcome"), "failed", "{client:?}");
        assert_eq!(client.field("kind"), "status", "{client:?}");
        let server = span::<D>("fill_serve", &origin).await;
        assert_key(&server, &k);
        assert_eq!(server.field("outcome"), "failed", "{server:?}");
        assert_eq!(server.field("kind"), "filler_error", "{server:?}");
        assert!(
            server.events.iter().any(|e| e == "filler_failed"),
            "{server:?}"
        );

        stop_all(replicas).await;
    }
}
