//! Stable replay of the fuzz targets, without libFuzzer:
//! `cargo test --manifest-path fuzz/Cargo.toml`.
//!
//! 1. Every file under `corpus/<target>/` runs through its target (the checked-in `seed-*`
//!    files, plus whatever a local `cargo fuzz run` added).
//! 2. A batch of deterministic pseudo-random inputs runs through every target (a tiny
//!    uninstrumented fuzz run; `FUZZ_REPLAY_GENERATED=<n>` changes the count per target).
//!
//! A failing input is named (file, or generator index and bytes) in the panic message.

use std::fs;
use std::path::{Path, PathBuf};

use orca_cluster_fuzz::TARGETS;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn run_one(target: &str, f: orca_cluster_fuzz::Target, data: &[u8], what: &dyn Fn() -> String) {
    let outcome = std::panic::catch_unwind(|| f(data));
    if outcome.is_err() {
        panic!(
            "target {target} failed on {} ({} bytes: {:02x?})",
            what(),
            data.len(),
            &data[..data.len().min(256)]
        );
    }
}

#[test]
fn corpus_replays() {
    let dir = corpus_dir();
    let mut total = 0;
    for (name, f) in TARGETS {
        let target_dir = dir.join(name);
        let mut files: Vec<PathBuf> = fs::read_dir(&target_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", target_dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let seeds = files
            .iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("seed-"))
            })
            .count();
        assert!(seeds >= 3, "{name}: only {seeds} checked-in seed files");
        for file in &files {
            let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            run_one(name, *f, &data, &|| file.display().to_string());
            total += 1;
        }
    }
    // Every corpus directory belongs to a target (a typo would silently skip files).
    for entry in fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            assert!(
                TARGETS.iter().any(|(t, _)| *t == name),
                "corpus/{name} is not a fuzz target"
            );
        }
    }
    println!("replayed {total} corpus files");
}

/// SplitMix64, for reproducible generated inputs.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = match self.next() % 4 {
            0 => self.next() % 16,
            1 => self.next() % 128,
            2 => self.next() % 512,
            _ => self.next() % 4096,
        } as usize;
        let style = self.next() % 3;
        (0..len)
            .map(|_| {
                let r = self.next();
                match style {
                    // Mostly small values: short vectors, low enum variants, small numbers.
                    0 => (r % 8) as u8,
                    // Query-ish text.
                    1 => b"abz09=&%+-._~/ FfAx1"[(r % 20) as usize],
                    _ => r as u8,
                }
            })
            .collect()
    }
}

#[test]
fn generated_inputs_replay() {
    let count: u64 = std::env::var("FUZZ_REPLAY_GENERATED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            1_500
        } else {
            20_000
        });
    for (t, (name, f)) in TARGETS.iter().enumerate() {
        let mut g = Gen(0x0f22 + t as u64);
        for i in 0..count {
            let data = g.bytes();
            run_one(name, *f, &data, &|| format!("generated input #{i}"));
        }
    }
}

/// Pieces of HTTP/1.1 messages, plausible and broken, for the `h1_*` targets.
const STATUS_LINES: &[&str] = &[
    "HTTP/1.1 200 OK",
    "HTTP/1.1 200 OK",
    "HTTP/1.0 200 OK",
    "HTTP/1.1 204 No Content",
    "HTTP/1.1 304 Not Modified",
    "HTTP/1.1 409 Conflict",
    "HTTP/1.1 503 Service Unavailable",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
    "HTTP/1.1 101 Switching Protocols",
    "HTTP/1.1 099 Low",
    "HTTP/1.1 200",
    "HTTP/2 200 OK",
];
const REQUEST_LINES: &[&str] = &[
    "GET /internal/fill?bucket=b&index=0 HTTP/1.1",
    "GET /internal/fill?bucket=b&index=0 HTTP/1.1",
    "GET /internal/../internal/fill?a=%41 HTTP/1.1",
    "GET http://10.0.0.1:8444/internal/fill?a=1 HTTP/1.1",
    "POST /internal/fill HTTP/1.1",
    "GET / HTTP/1.0",
    "GET * HTTP/1.1",
    "\r\nGET /a HTTP/1.1",
    "GET  /a HTTP/1.1",
];
/// Framing header lines; the first five are well-formed alone.
const FRAMING_LINES: &[&str] = &[
    "content-length: 5",
    "Content-Length: 5",
    "content-length: 0",
    "transfer-encoding: chunked",
    "Transfer-Encoding: CHUNKED ",
    "content-length: 5, 5",
    "content-length: 18446744073709551616",
    "content-length: -1",
    "transfer-encoding: gzip, chunked",
];
/// Other header lines; the last three break a request or a head.
const OTHER_LINES: &[&str] = &[
    "connection: close",
    "Connection: keep-alive",
    "x-orca-internal: 1",
    "X-Orca-Internal: 0",
    "x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "x:\tv\t",
    "Host: other",
    "bad header",
    "x: caf\u{e9}",
];
const BODIES: &[&[u8]] = &[
    b"hello",
    b"5\r\nhello\r\n0\r\n\r\n",
    b"3;e=\"1 2\"\r\nabc\r\n2 \r\nde\r\n0\r\nt: 1\r\n\r\n",
    b"2\r\nabXY",
    b"zz\r\n",
    b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    b"ffffffffffffffff1\r\n",
    b"5\r\nhel",
    b"",
];

/// An input for an `h1_*` target: the control bytes (head limit, cut seed), then a message
/// assembled from the pieces above and mutated a little.
fn http_message(g: &mut Gen, request: bool) -> Vec<u8> {
    let pick = |g: &mut Gen, n: usize| (g.next() % n as u64) as usize;
    let limit = [3u8, 3, 2, 1, (g.next() as u8) & !3][pick(g, 5)];
    let mut data = vec![limit, g.next() as u8, g.next() as u8];
    let first = if request {
        REQUEST_LINES[pick(g, REQUEST_LINES.len())]
    } else {
        STATUS_LINES[pick(g, STATUS_LINES.len())]
    };
    data.extend_from_slice(first.as_bytes());
    data.extend_from_slice(b"\r\n");
    if request && pick(g, 5) > 0 {
        data.extend_from_slice(b"host: 10.0.0.1:8444\r\n");
    }
    // Mostly one well-formed framing header; sometimes any mix, or a broken line.
    let wild = pick(g, 4) == 0;
    let framing = if wild { FRAMING_LINES.len() } else { 5 };
    let other = if wild { OTHER_LINES.len() } else { 6 };
    let framing_lines = if wild { pick(g, 3) } else { pick(g, 3).min(1) };
    for _ in 0..framing_lines {
        data.extend_from_slice(FRAMING_LINES[pick(g, framing)].as_bytes());
        data.extend_from_slice(b"\r\n");
    }
    for _ in 0..pick(g, 4) {
        data.extend_from_slice(OTHER_LINES[pick(g, other)].as_bytes());
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b"\r\n");
    for _ in 0..pick(g, 3) {
        data.extend_from_slice(BODIES[pick(g, BODIES.len())]);
    }
    for _ in 0..pick(g, 4).saturating_sub(1) {
        let at = 3 + pick(g, data.len() - 2);
        match pick(g, 4) {
            0 if at < data.len() => data[at] = g.next() as u8,
            1 => data.truncate(at),
            2 => {
                const BYTES: &[u8] = b"\r\n:;, \t0aF\x80\0";
                data.insert(at, BYTES[pick(g, BYTES.len())]);
            }
            _ => {
                if let Some(i) = data[3..].windows(2).position(|w| w == b"\r\n") {
                    data.remove(3 + i);
                }
            }
        }
    }
    data
}

/// Replays HTTP-shaped inputs through the `h1_*` targets (random bytes rarely get past the
/// first line of a head); `FUZZ_REPLAY_GENERATED=<n>` changes the count per target.
#[test]
fn h1_generated_messages_replay() {
    let count: u64 = std::env::var("FUZZ_REPLAY_GENERATED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            3_000
        } else {
            40_000
        });
    for (name, request) in [("h1_response", false), ("h1_request", true)] {
        let f = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no target {name}"))
            .1;
        let mut g = Gen(0x4831 + u64::from(request));
        for i in 0..count {
            let data = http_message(&mut g, request);
            run_one(name, f, &data, &|| format!("generated HTTP message #{i}"));
        }
    }
}

/// The targets really check something: a broken invariant is reported as a panic by the
/// replay harness (guards against a harness that swallows failures).
#[test]
#[should_panic(expected = "target always_fails failed on")]
fn harness_reports_failures() {
    fn always_fails(_: &[u8]) {
        panic!("boom");
    }
    run_one("always_fails", always_fails, b"x", &|| {
        "a test input".to_string()
    });
}
