//! The `itervox` binary.
fn main() {}
