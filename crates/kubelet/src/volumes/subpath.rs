//! subPath mounts: upstream's validation, creation of a missing subPath inside the volume, and the
//! safe bind: the subPath is resolved once, must stay inside the volume, is opened component by
//! component without following symlinks, and that open file is bind-mounted to
//! `<pod dir>/volume-subpaths/<volume>/<container>/<index>`, so a symlink swapped in later cannot
//! redirect the container to the host.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use super::mounter::Mounter;

/// Upstream's checks of a (possibly expanded) subPath, with its messages.
pub fn validate(sub_path: &str) -> Result<(), String> {
    if sub_path.starts_with('/') {
        return Err(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        ));
    }
    if sub_path.split('/').any(|p| p == "..") {
        return Err(format!(
            "unable to provision SubPath `{sub_path}`: must not contain '..'"
        ));
    }
    Ok(())
}

/// Creates the missing directories of `sub_path` below `volume_path` (with the volume root's mode),
/// refusing to create anything outside the volume.
pub fn make_dirs(volume_path: &Path, sub_path: &str) -> io::Result<()> {
    let base = fs::canonicalize(volume_path)?;
    let perm = fs::metadata(&base)?.permissions().mode() & 0o7777;
    let mut cur = volume_path.to_path_buf();
    for comp in Path::new(sub_path).components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        let next = cur.join(name);
        if fs::symlink_metadata(&next).is_err() {
            let parent = fs::canonicalize(&cur)?;
            if !parent.starts_with(&base) {
                return Err(io::Error::other(format!(
                    "path {} is outside of allowed base {}",
                    parent.display(),
                    base.display()
                )));
            }
            let dir = parent.join(name);
            match fs::create_dir(&dir) {
                Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(perm))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        cur = next;
    }
    Ok(())
}

/// Opens `path` (absolute, symlinks already resolved, inside `base`) one component at a time
/// without following symlinks.
fn safe_open(base: &Path, path: &Path) -> io::Result<OwnedFd> {
    let rel = path
        .strip_prefix(base)
        .map_err(|_| io::Error::other("path is not inside the volume"))?;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let open = |dir: Option<&OwnedFd>, name: &Path| -> io::Result<OwnedFd> {
        let raw = openat(dir.map(|d| d.as_raw_fd()), name, flags, Mode::empty())?;
        // SAFETY: `openat` just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let st = fstat(fd.as_raw_fd())?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(io::Error::other(format!(
                "symlink {} appeared while opening the subpath",
                name.display()
            )));
        }
        Ok(fd)
    };
    let mut fd = open(None, base)?;
    for comp in rel.components() {
        if let Component::Normal(name) = comp {
            fd = open(Some(&fd), Path::new(name))?;
        }
    }
    Ok(fd)
}

/// Resolves `volume_path/sub_path`, checks that it stays inside the volume and bind-mounts it on
/// `target` (created as a file or directory to match). Returns the path to hand to the runtime.
/// An existing mount on `target` is reused.
pub fn prepare_safe(
    mounter: &dyn Mounter,
    volume_path: &Path,
    sub_path: &str,
    target: &Path,
) -> Result<PathBuf, String> {
    if mounter.is_mount_point(target).unwrap_or(false) {
        return Ok(target.to_path_buf());
    }
    let base = fs::canonicalize(volume_path)
        .map_err(|e| format!("error resolving symlinks in {}: {e}", volume_path.display()))?;
    let joined = volume_path.join(sub_path);
    let resolved = fs::canonicalize(&joined)
        .map_err(|e| format!("error resolving symlinks in {}: {e}", joined.display()))?;
    if !resolved.starts_with(&base) {
        return Err(format!(
            "subpath {:?} not within volume path {:?}",
            resolved.display().to_string(),
            base.display().to_string()
        ));
    }
    let fd = safe_open(&base, &resolved)
        .map_err(|e| format!("error opening subpath {}: {e}", resolved.display()))?;
    let is_dir = fs::metadata(&resolved).map(|m| m.is_dir()).unwrap_or(true);
    let mk = || -> io::Result<()> {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if is_dir {
            fs::create_dir_all(target)
        } else {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(target)
                .map(drop)
        }
    };
    mk().map_err(|e| {
        format!(
            "error creating subpath mount point {}: {e}",
            target.display()
        )
    })?;
    let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    mounter
        .bind_mount(&source, target)
        .map_err(|e| format!("error mounting {}: {e}", resolved.display()))?;
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let cases = [
            ("a/b", Ok(())),
            ("a..b/c", Ok(())),
            (
                "/etc",
                Err("error SubPath `/etc` must not be an absolute path"),
            ),
            (
                "a/../../etc",
                Err("unable to provision SubPath `a/../../etc`: must not contain '..'"),
            ),
            (
                "..",
                Err("unable to provision SubPath `..`: must not contain '..'"),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(validate(p), want.map_err(String::from), "{p}");
        }
    }

    #[test]
    fn make_dirs_creates_inside_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        fs::create_dir(&vol).unwrap();
        fs::set_permissions(&vol, fs::Permissions::from_mode(0o750)).unwrap();
        make_dirs(&vol, "a/b").unwrap();
        assert!(vol.join("a/b").is_dir());
        assert_eq!(
            fs::metadata(vol.join("a/b")).unwrap().permissions().mode() & 0o777,
            0o750
        );
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, vol.join("link")).unwrap();
        assert!(make_dirs(&vol, "link/x").is_err());
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn safe_open_follows_no_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink("real", base.join("link")).unwrap();
        assert!(safe_open(&base, &base.join("real")).is_ok());
        assert!(safe_open(&base, &base.join("link")).is_err());
    }

    #[test]
    fn escaping_subpath_is_refused_before_mounting() {
        let m = crate::volumes::mounter::fake::FakeMounter::default();
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        fs::create_dir(&vol).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("etc")).unwrap();
        let err = prepare_safe(&m, &vol, "etc", &dir.path().join("t")).unwrap_err();
        assert!(err.contains("not within volume path"), "{err}");
        assert!(m.calls.lock().unwrap().is_empty());
    }
}
