//! Build script of the oxkube binary: links it with packed relative relocations (DT_RELR) when
//! the target's glibc loads them (2.36+), so a position-independent oxkube keeps ASLR without a
//! 1.6 MB relocation table (67,000 entries of 24 bytes) that every process reads and keeps mapped.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OXKUBE_NO_RELR");
    if std::env::var_os("OXKUBE_NO_RELR").is_some() {
        return;
    }
    // a native build only: the glibc this script runs on is the one the binary links against
    let (host, target) = (std::env::var("HOST"), std::env::var("TARGET"));
    if host.is_err() || host != target {
        return;
    }
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
        || std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
    {
        return;
    }
    if glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The running glibc's version, e.g. (2, 36).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_version() -> Option<(u32, u32)> {
    use std::ffi::CStr;
    use std::os::raw::c_char;
    extern "C" {
        fn gnu_get_libc_version() -> *const c_char;
    }
    // SAFETY: glibc returns a pointer to a static NUL-terminated string
    let v = unsafe { CStr::from_ptr(gnu_get_libc_version()) }
        .to_str()
        .ok()?;
    parse_version(v)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_version() -> Option<(u32, u32)> {
    None
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}
