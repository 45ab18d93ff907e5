//! The membership simulation's support: the seeded RNG and seed selection ([`rng`]), the
//! cluster with its DNS records and driving loop ([`cluster`], shared with `fill_simulation.rs`),
//! and the membership world that checks every drain ([`membership`]).

// Shared with `fill_simulation.rs`, which uses parts of it this test does not (listing and
// cancelling its own queued events).
#[allow(dead_code)]
pub mod cluster;
pub mod membership;
pub mod rng;

pub use cluster::{Family, Simulation};
pub use membership::{World, sample_keys};
pub use rng::Rng;
