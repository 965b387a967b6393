//! Shared fixture of the proxy's netns tests and benchmarks: commands, scratch network
//! namespaces removed on drop, and nft/conntrack run inside a namespace (the child process
//! enters it with setns before exec, as cheap as running nft on the host).

#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use proxy::nft::{conntrack_args, Conntrack, Error as NftError, Nft};
use proxy::rules::ConntrackFlush;

/// Runs a command and returns its output.
pub fn sh(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` (split on spaces) inside network namespace `ns`; it must succeed.
pub fn must_in(ns: &str, cmd: &str) {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend(cmd.split(' '));
    must(&v);
}

/// True when running as root (the netns tests and benchmarks need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Named network namespaces (`ip netns add`), deleted on drop, with the veths in them.
#[derive(Default)]
pub struct Namespaces(pub Vec<String>);

impl Namespaces {
    /// Creates namespace `name` and keeps it for deletion.
    pub fn add(&mut self, name: &str) -> String {
        must(&["ip", "netns", "add", name]);
        self.0.push(name.to_string());
        name.to_string()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = sh(&["ip", "netns", "delete", ns]);
        }
    }
}

/// A command whose process joins network namespace `ns` before exec.
pub fn command_in(ns: &str, program: &str) -> Command {
    let f = File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("open netns {ns}: {e}"));
    let mut cmd = Command::new(program);
    // SAFETY: between fork and exec the closure only makes the setns syscall on an fd it
    // owns (the File moves into the closure, which the Command keeps until it is dropped)
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// nft inside a network namespace.
pub struct NsNft(pub String);

impl Nft for NsNft {
    fn apply(&self, script: &str) -> Result<(), NftError> {
        let mut child = command_in(&self.0, "nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        let write = child.stdin.take().unwrap().write_all(script.as_bytes());
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            return Err(NftError::Nft(String::from_utf8_lossy(&out.stderr).into()));
        }
        write.expect("write the nft script");
        Ok(())
    }

    fn generation(&self) -> Option<u32> {
        let ns = self.0.clone();
        std::thread::spawn(move || {
            enter(&ns);
            proxy::nft::query_generation()
        })
        .join()
        .unwrap()
    }
}

/// conntrack inside a network namespace.
pub struct NsConntrack(pub String);

impl Conntrack for NsConntrack {
    fn flush_udp(&self, f: &ConntrackFlush) -> Result<(), NftError> {
        let _ = command_in(&self.0, "conntrack")
            .args(conntrack_args(f))
            .output();
        Ok(())
    }
}

/// Discards conntrack flushes (benchmarks with TCP services only).
pub struct NoConntrack;

impl Conntrack for NoConntrack {
    fn flush_udp(&self, _: &ConntrackFlush) -> Result<(), NftError> {
        Ok(())
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let f = File::open(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: setns on a valid namespace fd only changes this thread's network namespace
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}");
}
