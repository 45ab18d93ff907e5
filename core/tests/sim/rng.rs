//! A tiny deterministic PRNG (SplitMix64) and the seed selection of the simulation tests.

/// SplitMix64: fast, tiny, and good enough to drive a simulation. Same seed, same run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The stream of `seed` (under the membership simulation's salt).
    pub fn new(seed: u64) -> Rng {
        Rng::salted(seed, 0x6a09_e667_f3bc_c908)
    }

    /// The stream of `seed` under `salt`: two simulations with different salts run unrelated
    /// streams for the same seed number. The salt and one step mix the seed, so that seeds
    /// 0, 1, 2, ... do not start on related states.
    pub fn salted(seed: u64, salt: u64) -> Rng {
        let mut r = Rng(seed ^ salt);
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The seeds to run: `ORCA_SIM_SEED=<n>` replays exactly one seed; otherwise seeds
/// `0..ORCA_SIM_SEEDS` (default `default_count`).
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Ok(one) = std::env::var("ORCA_SIM_SEED") {
        let seed = one
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("ORCA_SIM_SEED={one:?}: {e}"));
        return vec![seed];
    }
    let count = match std::env::var("ORCA_SIM_SEEDS") {
        Ok(n) => n
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("ORCA_SIM_SEEDS={n:?}: {e}")),
        Err(_) => default_count,
    };
    (0..count).collect()
}

/// The replay command of seed `seed` of the test binary this module is compiled into
/// (`simulation` or `fill_simulation`).
pub fn replay_command(seed: u64) -> String {
    format!(
        "ORCA_SIM_SEED={seed} cargo test -p orca-cluster-core --test {}",
        env!("CARGO_CRATE_NAME")
    )
}

/// Runs `f` for every seed, collecting the failing seeds (each failure's message names its seed)
/// and panicking at the end with all of them and the replay command.
pub fn for_each_seed(test: &str, default_count: u64, f: impl Fn(u64)) {
    let seeds = seeds(default_count);
    assert!(!seeds.is_empty(), "no seeds to run");
    let mut failed = Vec::new();
    for &seed in &seeds {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        if outcome.is_err() {
            failed.push(seed);
            if failed.len() >= 5 {
                break;
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{test}: failing seeds {failed:?} (of {} run); replay one with {} {test}",
        seeds.len(),
        replay_command(failed.first().copied().unwrap_or_default()),
    );
}
