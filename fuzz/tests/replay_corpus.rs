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
