//! Build script of the oxkube binary: links it as a position-dependent executable.
//!
//! A PIE binary of this size carries ~2.6 MiB of relocations that the dynamic loader reads and
//! applies at every start, dirtying ~2.5 MiB of relocated read-only data per process (the
//! server, every agent and every container shim). Linked without PIE those pages stay clean
//! and shared, and the relocations are gone (Go binaries, k3s included, are linked the same way).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
