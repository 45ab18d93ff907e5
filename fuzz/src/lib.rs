//! Fuzz target logic for `orca-cluster-core`.
//!
//! Most targets exercise the core alone; `dns_answer` and `listener_head` take the driver
//! layer's view (`orca-cluster-driver-common`: hickory's DNS messages, the listener's limits).
//!
//! Each target is a plain function over the raw fuzzer input, so the same code runs under
//! libFuzzer (`fuzz_targets/*.rs`, `cargo +nightly fuzz run <target>`) and on stable, where
//! `tests/replay_corpus.rs` replays the checked-in corpus and a batch of generated inputs.
//! Structured targets decode their input with `arbitrary::Unstructured::arbitrary_take_rest`,
//! exactly as libfuzzer-sys does for typed targets, so a crash file replays identically.
//!
//! Every target asserts invariants, not just "does not panic"; a failed assertion is a crash.

mod admission;
mod decode_query;
pub mod dns_answer;
mod fill_response;
mod h1_common;
mod h1_request;
mod h1_response;
pub mod listener_head;
mod membership;
mod rendezvous;

pub use admission::admission;
pub use decode_query::decode_query;
pub use dns_answer::dns_answer;
pub use fill_response::fill_response;
pub use h1_request::h1_request;
pub use h1_response::h1_response;
pub use listener_head::listener_head;
pub use membership::membership;
pub use rendezvous::rendezvous;

/// A fuzz target: raw input in, panic on a violated invariant.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz_targets/*.rs` and of `corpus/*/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_query", decode_query),
    ("fill_response", fill_response),
    ("membership", membership),
    ("rendezvous", rendezvous),
    ("admission", admission),
    ("h1_response", h1_response),
    ("h1_request", h1_request),
    ("dns_answer", dns_answer),
    ("listener_head", listener_head),
];

/// Decodes a structured input the way libfuzzer-sys does for `|input: T|` targets.
pub(crate) fn structured<'a, T: arbitrary::Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(arbitrary::Unstructured::new(data)).ok()
}
