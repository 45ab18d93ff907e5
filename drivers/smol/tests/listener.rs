//! What only the smol listener does, framing HTTP/1.1 with the core's codec: a request head
//! that arrives in pieces, pipelined requests answered in order, a request with a body answered
//! and its connection closed, a non-ASCII field value refused — and no panic from any of it.
//! Everything else about the listener is in the conformance suite, for both drivers.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orca_cluster_core::wire::encode_query;
use orca_cluster_smol::SyntheticOrigin;
use support::{exchange, key, replica, run};

const CHUNK: u64 = 100_000;
const OBJECT: u64 = CHUNK * 24;
const INTERNAL: &str = "x-orca-internal: 1\r\n";

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn the_codec_frames_requests_without_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    run(30, async {
        let (cluster, handle, addr) = replica().await;
        let k = key(0, CHUNK);
        let chunk = SyntheticOrigin::chunk_bytes(&k, OBJECT);
        let target = format!("/internal/fill?{}", encode_query(&k, OBJECT));
        let get =
            format!("GET {target} HTTP/1.1\r\nhost: t\r\n{INTERNAL}connection: close\r\n\r\n");
        let pause = Duration::from_millis(20);

        // A head in pieces: cut inside the request line, inside a field, before the last LF.
        let bytes = get.as_bytes();
        let (a, b, c) = (5, bytes.len() / 2, bytes.len() - 1);
        let pieces: [&[u8]; 4] = [&bytes[..a], &bytes[a..b], &bytes[b..c], &bytes[c..]];
        let (status, _, body) = exchange(addr, &pieces, pause).await.unwrap();
        assert_eq!(status, 200, "a head in pieces");
        assert!(body == chunk);

        // Two requests in one write: both answered, in order, on the one connection.
        let first = format!("GET {target} HTTP/1.1\r\nhost: t\r\n{INTERNAL}\r\n");
        let second =
            format!("GET /nope HTTP/1.1\r\nhost: t\r\n{INTERNAL}connection: close\r\n\r\n");
        let both = format!("{first}{second}");
        let (status, _, rest) = exchange(addr, &[both.as_bytes()], pause).await.unwrap();
        assert_eq!(status, 200, "the first answer first");
        assert!(rest[..chunk.len()] == chunk[..], "the first body");
        let after = String::from_utf8_lossy(&rest[chunk.len()..]).into_owned();
        assert!(
            after.starts_with("HTTP/1.1 404 "),
            "then the second: {after}"
        );
        assert!(after.contains("not found"), "{after}");

        // A request with a body is answered, then its connection is closed (the codec does not
        // read request bodies).
        let post = format!(
            "POST {target} HTTP/1.1\r\nhost: t\r\n{INTERNAL}content-length: 5\r\n\r\nhello"
        );
        let (status, head, _) = exchange(addr, &[post.as_bytes()], pause).await.unwrap();
        assert_eq!(status, 405);
        assert!(head.contains("connection: close"), "{head}");

        // A field value outside ASCII is refused.
        let accented =
            format!("GET {target} HTTP/1.1\r\nhost: t\r\n{INTERNAL}x-name: caf\u{e9}\r\n\r\n");
        let (status, _, _) = exchange(addr, &[accented.as_bytes()], pause).await.unwrap();
        assert_eq!(status, 400, "non-ASCII field value");

        let (status, _, body) = exchange(addr, &[get.as_bytes()], pause).await.unwrap();
        assert_eq!((status, body.len() as u64), (200, CHUNK), "still serving");
        assert_eq!(handle.accepted_connections(), 5);
        assert_eq!(cluster.stats().served_ok, 3);
        handle.shutdown(Duration::from_secs(1)).await;
        cluster.close(Duration::from_secs(1)).await.unwrap();
    });
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "no panic from network input"
    );
}
