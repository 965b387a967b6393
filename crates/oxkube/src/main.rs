//! The oxkube binary.
fn main() {}
