//! Placeholder; the lookup benchmark is being written.
fn main() {}
