//! The OS edge of the proxy: applying nft transactions (`nft -f -`), reading the nf_tables
//! ruleset generation (one netlink request), deleting conntrack entries (the `conntrack` tool)
//! and the sysctls the proxy needs, each behind a small trait.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
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

    /// The nf_tables ruleset generation of the network namespace: every committed
    /// transaction, whoever made it, changes it. None when unknown.
    fn generation(&self) -> Option<u32> {
        None
    }
}

/// nfnetlink subsystem of nf_tables, and its get/new generation messages.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;

/// The netlink request for the ruleset generation: an nlmsghdr and an nfgenmsg (family
/// unspec, version 0, resource id 0), host byte order as netlink wants.
pub fn getgen_request(seq: u32) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0..4].copy_from_slice(&20u32.to_ne_bytes());
    m[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
    m[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// The generation id in a reply to [`getgen_request`] (the big-endian NFTA_GEN_ID
/// attribute of an NFT_MSG_NEWGEN message); None for an error or anything else.
pub fn parse_newgen(reply: &[u8], seq: u32) -> Option<u32> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], i: usize| Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?));
    let len = u32_at(reply, 0)? as usize;
    let msg = reply.get(..len)?;
    let kind = u16_at(msg, 4)?;
    if kind == NLMSG_ERROR || kind != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN) {
        return None;
    }
    if u32_at(msg, 8)? != seq {
        return None;
    }
    // attributes after the 16-byte header and the 4-byte nfgenmsg
    let mut i = 20;
    while i + 4 <= msg.len() {
        let alen = u16_at(msg, i)? as usize;
        let atype = u16_at(msg, i + 2)? & 0x3fff;
        if alen < 4 {
            return None;
        }
        if atype == NFTA_GEN_ID && alen >= 8 {
            return Some(u32::from_be_bytes(msg.get(i + 4..i + 8)?.try_into().ok()?));
        }
        i += (alen + 3) & !3;
    }
    None
}

/// Asks the kernel for the nf_tables generation of the calling thread's network namespace.
pub fn query_generation() -> Option<u32> {
    // SAFETY: plain socket syscalls on a descriptor this function owns and closes; the
    // buffers outlive the calls
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        );
        if fd < 0 {
            return None;
        }
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let raw = fd.as_raw_fd();
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let seq = 1;
        let req = getgen_request(seq);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            raw,
            req.as_ptr() as *const libc::c_void,
            req.len(),
            0,
            &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent != req.len() as isize {
            return None;
        }
        let mut buf = [0u8; 512];
        let n = libc::recv(raw, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
        if n <= 0 {
            return None;
        }
        parse_newgen(&buf[..n as usize], seq)
    }
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

    fn generation(&self) -> Option<u32> {
        query_generation()
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
    fn generation_messages() {
        let req = getgen_request(7);
        assert_eq!(u32::from_ne_bytes(req[0..4].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(req[4..6].try_into().unwrap()), 0x0a10);
        assert_eq!(u32::from_ne_bytes(req[8..12].try_into().unwrap()), 7);
        assert_eq!(&req[16..20], &[0, 0, 0, 0]);
        // NEWGEN with NFTA_GEN_ID 0x01020304, then a pid attribute
        let reply = |kind: u16, seq: u32, attrs: &[(u16, &[u8])]| {
            let mut m = vec![0u8; 20];
            m[4..6].copy_from_slice(&kind.to_ne_bytes());
            m[8..12].copy_from_slice(&seq.to_ne_bytes());
            for (t, data) in attrs {
                m.extend(((4 + data.len()) as u16).to_ne_bytes());
                m.extend(t.to_ne_bytes());
                m.extend(*data);
                while !m.len().is_multiple_of(4) {
                    m.push(0);
                }
            }
            let len = m.len() as u32;
            m[0..4].copy_from_slice(&len.to_ne_bytes());
            m
        };
        let cases: Vec<(Vec<u8>, Option<u32>)> = vec![
            (
                reply(0x0a0f, 7, &[(1, &[1, 2, 3, 4]), (2, &[0, 0, 0, 9])]),
                Some(0x01020304),
            ),
            // the id after another attribute
            (
                reply(0x0a0f, 7, &[(3, b"nft\0\0"), (1, &[0, 0, 1, 0])]),
                Some(256),
            ),
            // an error, another message, another sequence number, no id, truncated
            (reply(2, 7, &[(1, &[1, 2, 3, 4])]), None),
            (reply(0x0a10, 7, &[(1, &[1, 2, 3, 4])]), None),
            (reply(0x0a0f, 8, &[(1, &[1, 2, 3, 4])]), None),
            (reply(0x0a0f, 7, &[(2, &[1, 2, 3, 4])]), None),
            (reply(0x0a0f, 7, &[(1, &[1, 2, 3, 4])])[..22].to_vec(), None),
        ];
        for (i, (msg, want)) in cases.into_iter().enumerate() {
            assert_eq!(parse_newgen(&msg, 7), want, "case {i}");
        }
    }

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
