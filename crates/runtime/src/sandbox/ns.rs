//! Pod namespaces without a pause process: a short-lived thread unshares the network, IPC and UTS
//! namespaces (per-thread in Linux), sets the hostname and brings up `lo`, and bind-mounts its
//! `/proc/thread-self/ns/*` onto files, which keeps the namespaces alive after the thread exits.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use serde::{Deserialize, Serialize};

/// Namespace pinning errors.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("unshare {what}: {source}")]
    Unshare { what: String, source: nix::Error },
    #[error("set hostname {hostname:?}: {source}")]
    Hostname {
        hostname: String,
        source: nix::Error,
    },
    #[error("bring up loopback: {0}")]
    Loopback(io::Error),
    #[error("pin namespace at {path}: {source}")]
    Pin { path: PathBuf, source: io::Error },
    #[error("namespace thread failed")]
    Thread,
}

/// Which namespaces a pod gets of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
}

/// Bind-mounted namespace files (absent when the pod shares the host's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

impl Pinned {
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.net
            .iter()
            .chain(self.ipc.iter())
            .chain(self.uts.iter())
    }
}

/// Creates the wanted namespaces, pinned as files in `dir` (`net`, `ipc`, `uts`).
pub fn create(dir: &Path, want: Wanted, hostname: Option<&str>) -> Result<Pinned, NsError> {
    fs::create_dir_all(dir).map_err(|source| NsError::Pin {
        path: dir.to_path_buf(),
        source,
    })?;
    let dir = dir.to_path_buf();
    let hostname = hostname.map(str::to_string);
    std::thread::spawn(move || create_in_thread(&dir, want, hostname.as_deref()))
        .join()
        .map_err(|_| NsError::Thread)?
}

fn create_in_thread(dir: &Path, want: Wanted, hostname: Option<&str>) -> Result<Pinned, NsError> {
    let mut flags = CloneFlags::empty();
    if want.net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if want.ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if want.uts {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if flags.is_empty() {
        return Ok(Pinned::default());
    }
    // This thread now lives in the new namespaces; it exits right after pinning them.
    unshare(flags).map_err(|source| NsError::Unshare {
        what: format!("{flags:?}"),
        source,
    })?;
    if want.uts {
        if let Some(h) = hostname.filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).map_err(|source| NsError::Hostname {
                hostname: h.to_string(),
                source,
            })?;
        }
    }
    if want.net {
        loopback_up().map_err(NsError::Loopback)?;
    }
    let mut pinned = Pinned::default();
    let kinds = [("net", want.net), ("ipc", want.ipc), ("uts", want.uts)];
    for (kind, wanted) in kinds {
        if !wanted {
            continue;
        }
        let target = dir.join(kind);
        let res = pin(&format!("/proc/thread-self/ns/{kind}"), &target);
        if let Err(source) = res {
            remove(&pinned);
            return Err(NsError::Pin {
                path: target,
                source,
            });
        }
        match kind {
            "net" => pinned.net = Some(target),
            "ipc" => pinned.ipc = Some(target),
            _ => pinned.uts = Some(target),
        }
    }
    Ok(pinned)
}

fn pin(src: &str, target: &Path) -> io::Result<()> {
    fs::File::create(target)?;
    mount(
        Some(src),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        let _ = fs::remove_file(target);
        io::Error::from(e)
    })
}

/// Unmounts and deletes pinned namespace files; missing ones are ignored.
pub fn remove(p: &Pinned) {
    for path in p.all() {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "unmount namespace"),
        }
        let _ = fs::remove_file(path);
    }
}

/// Sets or clears IFF_UP on `lo` in the network namespace pinned at `netns` (from a short-lived
/// thread that joins it).
pub fn set_loopback(netns: &Path, up: bool) -> io::Result<()> {
    let f = fs::File::open(netns)?;
    std::thread::spawn(move || {
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        set_loopback_flags(up)
    })
    .join()
    .map_err(|_| io::Error::other("loopback thread panicked"))?
}

/// Whether `lo` is up in the network namespace pinned at `netns`.
pub fn loopback_is_up(netns: &Path) -> io::Result<bool> {
    let f = fs::File::open(netns)?;
    std::thread::spawn(move || {
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        loopback_flags().map(|f| f & libc::IFF_UP as libc::c_short != 0)
    })
    .join()
    .map_err(|_| io::Error::other("loopback thread panicked"))?
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    set_loopback_flags(true)
}

/// Runs `f` on a datagram socket and an ifreq naming `lo` filled by SIOCGIFFLAGS; the socket is
/// closed afterwards.
fn with_lo_ifreq<T>(
    f: impl FnOnce(libc::c_int, &mut libc::ifreq) -> io::Result<T>,
) -> io::Result<T> {
    // SAFETY: a plain socket call; the fd is owned (and closed) by `sock`.
    let sock = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: an all-zero ifreq is valid; SIOCGIFFLAGS fills the flags of the named interface.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: ioctl on our socket with a valid ifreq.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    f(fd, &mut ifr)
}

fn loopback_flags() -> io::Result<libc::c_short> {
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    with_lo_ifreq(|_, ifr| Ok(unsafe { ifr.ifr_ifru.ifru_flags }))
}

fn set_loopback_flags(up: bool) -> io::Result<()> {
    with_lo_ifreq(|fd, ifr| {
        // SAFETY: SIOCGIFFLAGS filled the flags member; SIOCSIFFLAGS reads the ifreq we own.
        unsafe {
            if up {
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            } else {
                ifr.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
            }
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &*ifr) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })
}

/// True if `path` is a mount point holding a namespace (used by tests and rediscovery).
pub fn is_pinned(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp == p))
}
