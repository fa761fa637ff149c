//! The `itervox-worker` binary.
fn main() {}
