//! The per-container shim as a standalone binary, used by this crate's tests (the oxkube binary
//! runs the same code as `oxkube shim ...`).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(runtime::container::shim::main(&args));
}
