//! The OS edge of the proxy: applying nft transactions (`nft -f -`), deleting conntrack
//! entries (the `conntrack` tool) and the sysctls the proxy needs, each behind a small trait.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::rules::ConntrackFlush;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("nft -f - failed: {0}")]
    Nft(String),
    #[error("conntrack failed: {0}")]
    Conntrack(String),
}

/// Applies nft scripts; each call is one atomic transaction.
pub trait Nft: Send + Sync {
    fn apply(&self, script: &str) -> Result<(), Error>;
}

/// The real nft binary.
#[derive(Debug, Clone)]
pub struct NftCommand {
    /// The nft binary (default `nft` from PATH).
    pub binary: String,
}

impl Default for NftCommand {
    fn default() -> Self {
        NftCommand {
            binary: "nft".to_string(),
        }
    }
}

impl Nft for NftCommand {
    fn apply(&self, script: &str) -> Result<(), Error> {
        let spawn_err = |source| Error::Spawn {
            cmd: format!("{} -f -", self.binary),
            source,
        };
        let mut child = Command::new(&self.binary)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let write = stdin.write_all(script.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().map_err(spawn_err)?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            // nft quotes the offending line; keep the message bounded
            let msg: String = msg.trim().chars().take(4000).collect();
            return Err(Error::Nft(msg));
        }
        write.map_err(spawn_err)
    }
}

/// Deletes conntrack entries.
pub trait Conntrack: Send + Sync {
    fn flush_udp(&self, f: &ConntrackFlush) -> Result<(), Error>;
}

/// The `conntrack` tool (conntrack-tools).
#[derive(Debug, Clone)]
pub struct ConntrackCommand {
    pub binary: String,
}

impl Default for ConntrackCommand {
    fn default() -> Self {
        ConntrackCommand {
            binary: "conntrack".to_string(),
        }
    }
}

/// The arguments of `conntrack -D` for one flush.
pub fn conntrack_args(f: &ConntrackFlush) -> Vec<String> {
    let mut a: Vec<String> = vec!["-D".into(), "-p".into(), "udp".into()];
    if let Some(dst) = f.orig_dst {
        a.extend(["--orig-dst".into(), dst.to_string()]);
    }
    a.extend(["--orig-port-dst".into(), f.port.to_string()]);
    if let Some(nat) = f.nat_dst {
        a.extend(["--dst-nat".into(), nat.to_string()]);
    }
    a
}

impl Conntrack for ConntrackCommand {
    fn flush_udp(&self, f: &ConntrackFlush) -> Result<(), Error> {
        let out = Command::new(&self.binary)
            .args(conntrack_args(f))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| Error::Spawn {
                cmd: self.binary.clone(),
                source,
            })?;
        // exit status 1 with "0 flow entries have been deleted" just means none matched
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || stderr.contains("0 flow entries") {
            return Ok(());
        }
        Err(Error::Conntrack(stderr.trim().to_string()))
    }
}

/// Kernel settings the proxied traffic needs: forwarding, and bridged pod-to-pod replies
/// passing the netfilter hooks (br_netfilter) so a DNATed flow between two pods on one bridge
/// is un-DNATed on its way back. Best effort: failures are logged.
pub fn ensure_sysctls() {
    let set = |path: &str, value: &str| {
        let p = format!("/proc/sys/{path}");
        match std::fs::read_to_string(&p) {
            Ok(cur) if cur.trim() == value => {}
            Ok(_) => {
                if let Err(e) = std::fs::write(&p, value) {
                    tracing::warn!(path, error = %e, "cannot set sysctl");
                }
            }
            Err(e) => tracing::warn!(path, error = %e, "sysctl missing"),
        }
    };
    set("net/ipv4/ip_forward", "1");
    if !std::path::Path::new("/proc/sys/net/bridge").exists() {
        let _ = Command::new("modprobe")
            .arg("br_netfilter")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    set("net/bridge/bridge-nf-call-iptables", "1");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn conntrack_arguments() {
        let cases = [
            (
                ConntrackFlush {
                    orig_dst: Some(Ipv4Addr::new(10, 43, 0, 10)),
                    port: 53,
                    nat_dst: Some(Ipv4Addr::new(10, 42, 0, 5)),
                },
                "-D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.5",
            ),
            (
                ConntrackFlush {
                    orig_dst: None,
                    port: 30053,
                    nat_dst: None,
                },
                "-D -p udp --orig-port-dst 30053",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(conntrack_args(&f).join(" "), want);
        }
    }
}
