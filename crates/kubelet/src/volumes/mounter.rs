//! The OS calls of the volume manager (tmpfs and bind mounts, unmounts, the mount table) behind a
//! small trait, with the Linux implementation.

use std::io;
use std::path::{Path, PathBuf};

/// Mount operations the volume manager needs. The real one is [`LinuxMounter`]; unit tests use a
/// recording fake.
pub trait Mounter: Send + Sync {
    /// Mounts a tmpfs on `target`, limited to `size_bytes` when given.
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()>;
    /// Bind-mounts `source` (a directory or a file) on `target`.
    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()>;
    /// Unmounts `target` (lazily when it is busy).
    fn unmount(&self, target: &Path) -> io::Result<()>;
    /// Every mount point at or below `prefix`, as the mount table spells them.
    fn mounts_under(&self, prefix: &Path) -> io::Result<Vec<PathBuf>>;
    /// Whether `path` itself is a mount point.
    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        Ok(self.mounts_under(path)?.iter().any(|m| m == path))
    }
}

/// The real mounter: mount(2)/umount2(2) and `/proc/self/mountinfo`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxMounter;

impl Mounter for LinuxMounter {
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<u64>) -> io::Result<()> {
        use nix::mount::{mount, MsFlags};
        let data = size_bytes.map(|s| format!("size={s}"));
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::empty(),
            data.as_deref(),
        )
        .map_err(io::Error::from)
    }

    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        use nix::mount::{mount, MsFlags};
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        use nix::mount::{umount2, MntFlags};
        match umount2(target, MntFlags::empty()) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EBUSY) => {
                umount2(target, MntFlags::MNT_DETACH).map_err(io::Error::from)
            }
            Err(e) => Err(io::Error::from(e)),
        }
    }

    fn mounts_under(&self, prefix: &Path) -> io::Result<Vec<PathBuf>> {
        let table = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(parse_mountinfo(&table)
            .into_iter()
            .filter(|m| m.starts_with(prefix))
            .collect())
    }
}

/// The mount points (field 5) of a `/proc/<pid>/mountinfo` table, octal escapes decoded.
pub fn parse_mountinfo(table: &str) -> Vec<PathBuf> {
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
pub(crate) mod fake {
    //! A recording in-memory mounter for unit tests.
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Tmpfs(PathBuf, Option<u64>),
        Bind(PathBuf, PathBuf),
        Unmount(PathBuf),
    }

    #[derive(Default)]
    pub struct FakeMounter {
        pub calls: Mutex<Vec<Call>>,
        pub mounted: Mutex<Vec<PathBuf>>,
    }

    impl Mounter for FakeMounter {
        fn mount_tmpfs(&self, target: &Path, size: Option<u64>) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(Call::Tmpfs(target.into(), size));
            self.mounted.lock().unwrap().push(target.into());
            Ok(())
        }
        fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(Call::Bind(source.into(), target.into()));
            self.mounted.lock().unwrap().push(target.into());
            Ok(())
        }
        fn unmount(&self, target: &Path) -> io::Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(Call::Unmount(target.into()));
            self.mounted.lock().unwrap().retain(|m| m != target);
            Ok(())
        }
        fn mounts_under(&self, prefix: &Path) -> io::Result<Vec<PathBuf>> {
            Ok(self
                .mounted
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.starts_with(prefix))
                .cloned()
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_mount_points_are_unescaped() {
        let table = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                     90 22 0:50 / /var/lib/kubelet/pods/u/volumes/a\\040b rw - tmpfs tmpfs rw,size=1024k\n";
        assert_eq!(
            parse_mountinfo(table),
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/var/lib/kubelet/pods/u/volumes/a b")
            ]
        );
        assert_eq!(unescape_octal("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_octal("tail\\04"), "tail\\04");
    }
}
