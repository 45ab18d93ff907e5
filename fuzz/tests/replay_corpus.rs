//! Stable replay of the fuzz targets, without libFuzzer:
//! `cargo test --manifest-path fuzz/Cargo.toml`.
//!
//! 1. Every file under `corpus/<target>/` runs through its target (the checked-in `seed-*`
//!    files, plus whatever a local `cargo fuzz run` added).
//! 2. A batch of deterministic pseudo-random inputs runs through every target (a tiny
//!    uninstrumented fuzz run; `FUZZ_REPLAY_GENERATED=<n>` changes the count per target), plus
//!    HTTP- and DNS-shaped inputs for the targets that random bytes rarely get far into.
//! 3. The seeds of `dns_answer` and `listener_head` are written by code (`seeds()` in their
//!    modules): the files must match it and reach the outcomes they are named for.
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

/// The seeds of `dns_answer` and `listener_head` are written by `seeds()` in their modules;
/// the files must be what those write (`FUZZ_WRITE_SEEDS=1` rewrites them).
#[test]
fn generated_seeds_are_checked_in() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    let targets = [
        ("dns_answer", orca_cluster_fuzz::dns_answer::seeds()),
        ("listener_head", orca_cluster_fuzz::listener_head::seeds()),
    ];
    for (target, seeds) in targets {
        let dir = corpus_dir().join(target);
        for (file, bytes) in seeds {
            let path = dir.join(file);
            if write {
                fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            } else {
                let on_disk = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(
                    on_disk == bytes,
                    "{} is not what {target}::seeds() writes (FUZZ_WRITE_SEEDS=1 to rewrite)",
                    path.display()
                );
            }
        }
    }
}

/// The seeds reach what they are named for, so the corpus covers the interesting outcomes.
#[test]
fn seeds_reach_their_outcomes() {
    use orca_cluster_core::admission::{FillRequestHead, Rejection, admit};
    use orca_cluster_core::h1::{self, HeadError, Parsed};
    use orca_cluster_fuzz::listener_head::{MAX_CHUNK_SIZE, MAX_HEAD, snapshot};

    let seed = |target: &str, file: &str| -> Vec<u8> {
        let path = corpus_dir().join(target).join(file);
        fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // listener_head: the first request of each seed.
    let first = |file: &str| -> Result<Result<u64, Rejection>, HeadError> {
        let data = seed("listener_head", file);
        match h1::parse_request_head(&data, MAX_HEAD)? {
            Parsed::Partial => Err(HeadError::Malformed { part: "partial" }),
            Parsed::Complete { head, .. } => {
                let internal: Vec<&[u8]> = head.internal_values().collect();
                let request = FillRequestHead {
                    method: head.method,
                    target: head.target,
                    internal_header: &internal,
                };
                Ok(admit(&request, &snapshot(), MAX_CHUNK_SIZE).map(|a| a.expected_len))
            }
        }
    };
    assert_eq!(first("seed-admitted"), Ok(Ok(4 << 20)));
    assert_eq!(first("seed-absolute-form"), Ok(Ok(4 << 20)));
    assert_eq!(
        first("seed-not-coordinator"),
        Ok(Err(Rejection::NotCoordinator))
    );
    assert_eq!(first("seed-empty-authority"), Ok(Err(Rejection::BadTarget)));
    assert_eq!(first("seed-dot-segment"), Ok(Err(Rejection::NotFound)));
    assert_eq!(first("seed-post"), Ok(Err(Rejection::MethodNotAllowed)));
    assert_eq!(
        first("seed-internal-twice"),
        Ok(Err(Rejection::RepeatedInternalHeader))
    );
    assert_eq!(first("seed-internal-list"), Ok(Err(Rejection::NotInternal)));
    assert!(matches!(
        first("seed-chunk-too-large"),
        Ok(Err(Rejection::BadQuery(_)))
    ));
    assert_eq!(
        first("seed-too-large"),
        Err(HeadError::TooLarge { limit: MAX_HEAD })
    );
    assert!(matches!(
        first("seed-no-host"),
        Err(HeadError::Malformed { part: "host" })
    ));
    assert_eq!(
        first("seed-partial"),
        Err(HeadError::Malformed { part: "partial" })
    );

    // dns_answer: the peers the DNS source keeps.
    use hickory_resolver::lookup::Lookup;
    use hickory_resolver::proto::op::Message;
    use orca_cluster_driver_common::source::answer_records;
    let kept = |file: &str| -> Vec<String> {
        let message = Message::from_vec(&seed("dns_answer", file)).expect("a DNS message");
        let query = message.queries[0].clone();
        let lookup = Lookup::new_with_max_ttl(query, message.answers.iter().cloned());
        answer_records(&lookup)
            .iter()
            .map(|p| p.ip.to_string())
            .collect()
    };
    assert_eq!(
        kept("seed-three-pods"),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    );
    assert_eq!(kept("seed-cname-chain"), ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(kept("seed-foreign-owners"), ["10.0.0.2"]);
    assert_eq!(kept("seed-cname-loop"), ["10.0.0.3"]);
    assert_eq!(kept("seed-long-cname-chain"), ["10.0.0.4"]);
    assert_eq!(kept("seed-other-class"), ["10.0.0.5"]);
    assert_eq!(kept("seed-records-outside-answers"), ["10.0.0.7"]);
    assert_eq!(kept("seed-nxdomain-soa"), Vec::<String>::new());
}

/// DNS answers assembled from a small pool of names, addresses, types and classes (random
/// bytes almost never decode as a DNS message), sometimes with a byte changed.
fn dns_message(g: &mut Gen) -> Vec<u8> {
    use hickory_resolver::proto::op::{Message, OpCode, Query};
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, TXT};
    use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};

    const NAMES: &[&str] = &[
        "orca.default.svc.cluster.local.",
        "ORCA.default.svc.cluster.local.",
        "default.svc.cluster.local.",
        "hop.example.",
        "HOP.example.",
        "pods.example.",
        "evil.example.",
        "a.",
    ];
    const V4: &[&str] = &[
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
        "0.0.0.0",
        "0.9.9.9",
        "255.255.255.255",
        "224.0.0.1",
        "127.0.0.1",
    ];
    const V6: &[&str] = &[
        "fd00::1",
        "fd00::2",
        "::",
        "ff02::1",
        "::ffff:10.0.0.2",
        "::1",
    ];
    let pick = |g: &mut Gen, n: usize| (g.next() % n as u64) as usize;
    let name = |g: &mut Gen| Name::from_ascii(NAMES[pick(g, NAMES.len())]).expect("a valid name");

    let mut m = Message::response(g.next() as u16, OpCode::Query);
    if pick(g, 8) > 0 {
        let qtype = [RecordType::A, RecordType::AAAA][pick(g, 2)];
        m.add_query(Query::query(name(g), qtype));
    }
    for _ in 0..pick(g, 12) {
        let owner = name(g);
        let data = match pick(g, 6) {
            0 | 1 => RData::A(A(V4[pick(g, V4.len())].parse().expect("an IPv4"))),
            2 => RData::AAAA(AAAA(V6[pick(g, V6.len())].parse().expect("an IPv6"))),
            3 | 4 => RData::CNAME(CNAME(name(g))),
            _ => RData::TXT(TXT::new(vec!["10.0.0.9".to_string()])),
        };
        let mut record = Record::from_rdata(owner, 5, data);
        if pick(g, 10) == 0 {
            record.dns_class = DNSClass::CH;
        }
        m.add_answer(record);
    }
    let mut bytes = m.to_vec().expect("an encodable message");
    if pick(g, 4) == 0 && !bytes.is_empty() {
        let at = pick(g, bytes.len());
        bytes[at] = g.next() as u8;
    }
    bytes
}

/// Replays DNS-shaped inputs through `dns_answer`; `FUZZ_REPLAY_GENERATED=<n>` changes the count.
#[test]
fn dns_generated_messages_replay() {
    let count: u64 = std::env::var("FUZZ_REPLAY_GENERATED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            3_000
        } else {
            40_000
        });
    let mut g = Gen(0xd45);
    for i in 0..count {
        let data = dns_message(&mut g);
        run_one("dns_answer", orca_cluster_fuzz::dns_answer, &data, &|| {
            format!("generated DNS message #{i}")
        });
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
