//! Devices of a container: the CRI `devices` (host path -> container path with rwm permissions;
//! a host directory maps every device under it), and for privileged containers every device of
//! the host's /dev, as containerd does. Each becomes an OCI `linux.devices` node plus an allow
//! rule of the device cgroup (which otherwise denies everything but the runtime's defaults).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Device errors.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device {path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a device")]
    NotADevice(PathBuf),
    #[error("device permissions {perms:?} of {path} are not a combination of r, w and m")]
    Permissions { path: String, perms: String },
    #[error("device container path {0:?} is not absolute")]
    ContainerPath(String),
}

/// One device node of the container and its cgroup rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path in the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// Permission bits of the node (without the file type).
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device cgroup access (`rwm` subset).
    pub access: String,
}

/// Checks CRI permissions (empty means `rwm`, as the OCI runtime spec reads an absent access).
pub fn access(path: &str, perms: &str) -> Result<String, DeviceError> {
    if perms.is_empty() {
        return Ok("rwm".into());
    }
    let valid = perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && perms.len() <= 3
        && perms
            .chars()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == perms.len();
    if !valid {
        return Err(DeviceError::Permissions {
            path: path.into(),
            perms: perms.into(),
        });
    }
    Ok(perms.into())
}

/// The device at `host` (symlinks followed) as the container's `container`.
fn device_at(host: &Path, container: &str, access: &str) -> Result<Device, DeviceError> {
    let md = std::fs::metadata(host).map_err(|source| DeviceError::Stat {
        path: host.to_path_buf(),
        source,
    })?;
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return Err(DeviceError::NotADevice(host.to_path_buf()));
    };
    let rdev = md.rdev();
    Ok(Device {
        path: container.to_string(),
        kind,
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        file_mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        access: access.to_string(),
    })
}

/// Resolves one CRI device: a device file, or a directory whose devices (recursively) appear
/// under `container_path` with the same relative paths.
pub fn resolve(
    host_path: &str,
    container_path: &str,
    perms: &str,
) -> Result<Vec<Device>, DeviceError> {
    if !container_path.starts_with('/') {
        return Err(DeviceError::ContainerPath(container_path.into()));
    }
    let access = access(host_path, perms)?;
    let host = Path::new(host_path);
    let md = std::fs::metadata(host).map_err(|source| DeviceError::Stat {
        path: host.to_path_buf(),
        source,
    })?;
    if !md.is_dir() {
        return Ok(vec![device_at(host, container_path, &access)?]);
    }
    let mut out = Vec::new();
    walk(host, &mut |p| {
        if let Ok(rel) = p.strip_prefix(host) {
            let dest = Path::new(container_path).join(rel);
            if let Ok(d) = device_at(p, &dest.display().to_string(), &access) {
                out.push(d);
            }
        }
    });
    Ok(out)
}

/// Directories of /dev that hold no devices for a container (as runc's host device scan skips).
const SKIPPED_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let name = e.file_name();
            if !SKIPPED_DIRS.contains(&name.to_string_lossy().as_ref()) {
                walk(&p, f);
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            f(&p);
        }
    }
}

/// Every device of the host's `dev` dir at the same path, for privileged containers (`console`
/// is left out: the container gets its own terminal).
pub fn host_devices(dev: &Path) -> Vec<Device> {
    let mut out = Vec::new();
    walk(dev, &mut |p| {
        if p == dev.join("console") {
            return;
        }
        if let Ok(rel) = p.strip_prefix(dev) {
            let dest = Path::new("/dev").join(rel).display().to_string();
            if let Ok(d) = device_at(p, &dest, "rwm") {
                out.push(d);
            }
        }
    });
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Merges device lists; a later entry for the same container path replaces an earlier one.
pub fn merge(lists: impl IntoIterator<Item = Vec<Device>>) -> Vec<Device> {
    let mut out: Vec<Device> = Vec::new();
    for d in lists.into_iter().flatten() {
        out.retain(|o| o.path != d.path);
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_table() {
        let cases = [
            ("rwm", Ok("rwm")),
            ("mrw", Ok("mrw")),
            ("r", Ok("r")),
            ("", Ok("rwm")),
            ("rwx", Err(())),
            ("rr", Err(())),
            ("rwmr", Err(())),
        ];
        for (perms, want) in cases {
            match (access("/dev/x", perms), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{perms:?}"),
                (Err(e), Err(())) => assert!(e.to_string().contains("r, w and m"), "{e}"),
                (got, want) => panic!("{perms:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn resolve_files_dirs_and_errors() {
        let null = resolve("/dev/null", "/dev/mynull", "rw").unwrap();
        assert_eq!(
            null,
            vec![Device {
                path: "/dev/mynull".into(),
                kind: 'c',
                major: 1,
                minor: 3,
                file_mode: std::fs::metadata("/dev/null").unwrap().mode() & 0o7777,
                uid: 0,
                gid: 0,
                access: "rw".into(),
            }]
        );
        // a directory of devices (symlinks followed, non-devices skipped)
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("sub/z")).unwrap();
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        let mut got = resolve(dir.path().to_str().unwrap(), "/dev/things", "").unwrap();
        got.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            got.len(),
            0,
            "walk does not follow symlinked entries: {got:?}"
        );
        nix::sys::stat::mknod(
            &dir.path().join("sub/n"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
            nix::sys::stat::makedev(1, 5),
        )
        .unwrap();
        let got = resolve(dir.path().to_str().unwrap(), "/dev/things", "").unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (
                got[0].path.as_str(),
                got[0].major,
                got[0].minor,
                got[0].file_mode,
                got[0].access.as_str()
            ),
            ("/dev/things/sub/n", 1, 5, 0o644, "rwm")
        );
        let cases = [
            (
                "/nonexistent/dev",
                "/dev/x",
                "rwm",
                "device /nonexistent/dev: ",
            ),
            (
                "/etc/hostname",
                "/dev/x",
                "rwm",
                "/etc/hostname is not a device",
            ),
            ("/dev/null", "dev/x", "rwm", "is not absolute"),
            (
                "/dev/null",
                "/dev/x",
                "rwq",
                "not a combination of r, w and m",
            ),
        ];
        for (host, container, perms, want) in cases {
            let e = resolve(host, container, perms).unwrap_err();
            assert!(e.to_string().contains(want), "{host}: {e}");
        }
    }

    #[test]
    fn host_devices_and_merge() {
        let all = host_devices(Path::new("/dev"));
        let null = all
            .iter()
            .find(|d| d.path == "/dev/null")
            .expect("/dev/null");
        assert_eq!((null.kind, null.major, null.minor), ('c', 1, 3));
        assert!(all
            .iter()
            .all(|d| !d.path.starts_with("/dev/pts/") && d.path != "/dev/console"));
        let a = resolve("/dev/null", "/dev/x", "r").unwrap();
        let b = resolve("/dev/zero", "/dev/x", "rw").unwrap();
        let c = resolve("/dev/null", "/dev/y", "rw").unwrap();
        let m = merge([a, b.clone(), c.clone()]);
        assert_eq!(m, vec![b[0].clone(), c[0].clone()]);
    }
}
