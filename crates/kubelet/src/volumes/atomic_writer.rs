//! Atomic projection of a payload into a volume directory, as upstream's `AtomicWriter`: files go
//! into a fresh `..<timestamp>.<random>` directory, a `..data` symlink is swapped to it with one
//! rename, and the user-visible top-level names are symlinks through `..data`. Readers always see
//! one complete version; running containers see updates.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use super::payload::{clean_path, Payload};

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

/// Errors of writing a payload.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("invalid path: must not be empty: {0:?}")]
    EmptyPath(String),
    #[error("invalid path: must be relative path: {0}")]
    Absolute(String),
    #[error("invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")]
    PathTooLong,
    #[error("invalid path: must not contain '..': {0}")]
    Backstep(String),
    #[error(
        "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
    )]
    NameTooLong,
    #[error("invalid path: must not start with '..': {0}")]
    DotDotPrefix(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Upstream's `validatePath` for one payload path.
pub fn validate_path(p: &str) -> Result<(), WriteError> {
    if p.is_empty() {
        return Err(WriteError::EmptyPath(p.into()));
    }
    if p.starts_with('/') {
        return Err(WriteError::Absolute(p.into()));
    }
    if p.len() > MAX_PATH_LENGTH {
        return Err(WriteError::PathTooLong);
    }
    let items: Vec<&str> = p.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(WriteError::Backstep(p.into()));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(WriteError::NameTooLong);
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(WriteError::DotDotPrefix(p.into()));
    }
    Ok(())
}

/// Whether the writer changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Unchanged,
    Written,
}

/// Writes `payload` atomically into `target_dir` (which must exist). `set_perms` runs on the new
/// timestamped directory before it becomes visible (fsGroup ownership).
pub fn write(
    target_dir: &Path,
    payload: &Payload,
    set_perms: &dyn Fn(&Path) -> io::Result<()>,
) -> Result<WriteOutcome, WriteError> {
    // (1) validate and clean
    let mut clean = Payload::new();
    for (p, f) in payload {
        validate_path(p)?;
        clean.insert(clean_path(p), f.clone());
    }

    // (2) the current version
    let data_link = target_dir.join(DATA_DIR);
    let old_ts = match fs::read_link(&data_link) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("readlink", &data_link)(e)),
    };

    let mut to_remove = BTreeSet::new();
    if let Some(old) = &old_ts {
        let old_path = target_dir.join(old);
        // (3) user-visible paths that disappear
        to_remove = paths_to_remove(&clean, &old_path)?;
        // (4) nothing to do when the content and modes are the same
        if to_remove.is_empty()
            && !should_write(&clean, &old_path)?
            && visible_ok(target_dir, &clean)
        {
            return Ok(WriteOutcome::Unchanged);
        }
    }

    // (5) new timestamped directory
    let ts_dir = new_timestamp_dir(target_dir)?;
    let ts_name = ts_dir
        .file_name()
        .expect("timestamp dir has a name")
        .to_owned();

    // (6) the files
    if let Err(e) = write_payload(&clean, &ts_dir) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(e);
    }

    // (7) ownership/permissions
    set_perms(&ts_dir).map_err(io_err("set permissions", &ts_dir))?;

    // (8) + (9) swap ..data atomically
    let tmp_link = target_dir.join(NEW_DATA_DIR);
    let _ = fs::remove_file(&tmp_link);
    symlink(&ts_name, &tmp_link).map_err(io_err("symlink", &tmp_link))?;
    fs::rename(&tmp_link, &data_link).map_err(io_err("rename", &data_link))?;

    // (10) user-visible symlinks
    create_user_visible(target_dir, &clean)?;

    // (11) prune user-visible paths no longer in the payload
    for p in &to_remove {
        if !p.contains('/') {
            let path = target_dir.join(p);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(io_err("remove", &path)(e));
                }
            }
        }
    }

    // (12) drop the old version
    if let Some(old) = old_ts {
        let old_path = target_dir.join(old);
        fs::remove_dir_all(&old_path).map_err(io_err("remove", &old_path))?;
    }
    Ok(WriteOutcome::Written)
}

fn top_level(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

fn visible_ok(target_dir: &Path, payload: &Payload) -> bool {
    payload.keys().all(|p| {
        let name = top_level(p);
        fs::read_link(target_dir.join(name)).is_ok_and(|t| t == Path::new(DATA_DIR).join(name))
    })
}

fn paths_to_remove(payload: &Payload, old_dir: &Path) -> Result<BTreeSet<String>, WriteError> {
    let mut existing = BTreeSet::new();
    walk(old_dir, old_dir, &mut existing)?;
    for p in payload.keys() {
        // the file and every parent directory stay
        let mut cur = p.as_str();
        loop {
            existing.remove(cur);
            match cur.rfind('/') {
                Some(i) => cur = &cur[..i],
                None => break,
            }
        }
    }
    Ok(existing)
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) -> Result<(), WriteError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read dir", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("read dir", dir))?;
        let path = entry.path();
        let rel = path
            .strip_prefix(base)
            .expect("walk stays below its base")
            .to_string_lossy()
            .into_owned();
        out.insert(rel);
        if entry.file_type().map_err(io_err("stat", &path))?.is_dir() {
            walk(base, &path, out)?;
        }
    }
    Ok(())
}

fn should_write(payload: &Payload, old_dir: &Path) -> Result<bool, WriteError> {
    for (p, f) in payload {
        let path = old_dir.join(p);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(io_err("stat", &path)(e)),
        };
        if !meta.is_file() || meta.permissions().mode() & 0o7777 != f.mode {
            return Ok(true);
        }
        let content = fs::read(&path).map_err(io_err("read", &path))?;
        if content != f.data {
            return Ok(true);
        }
    }
    Ok(false)
}

fn new_timestamp_dir(target_dir: &Path) -> Result<PathBuf, WriteError> {
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.")
        .to_string();
    for _ in 0..16 {
        let suffix: u32 = rand::random();
        let dir = target_dir.join(format!("{stamp}{suffix}"));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .map_err(io_err("chmod", &dir))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("mkdir", &dir)(e)),
        }
    }
    Err(io_err("mkdir", target_dir)(io::Error::other(
        "cannot create a unique timestamped directory",
    )))
}

fn write_payload(payload: &Payload, dir: &Path) -> Result<(), WriteError> {
    for (p, f) in payload {
        let path = dir.join(p);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
        }
        fs::write(&path, &f.data).map_err(io_err("write", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))
            .map_err(io_err("chmod", &path))?;
        if let Some(uid) = f.uid {
            std::os::unix::fs::lchown(&path, Some(uid), None).map_err(io_err("chown", &path))?;
        }
    }
    Ok(())
}

fn create_user_visible(target_dir: &Path, payload: &Payload) -> Result<(), WriteError> {
    for p in payload.keys() {
        let name = top_level(p);
        let visible = target_dir.join(name);
        let want = Path::new(DATA_DIR).join(name);
        match fs::read_link(&visible) {
            Ok(t) if t == want => continue,
            Ok(_) => fs::remove_file(&visible).map_err(io_err("remove", &visible))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("readlink", &visible)(e)),
        }
        symlink(&want, &visible).map_err(io_err("symlink", &visible))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::payload::FileProjection;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(p, d, m)| (p.to_string(), FileProjection::new(*d, *m as i32)))
            .collect()
    }

    fn no_perms(_: &Path) -> io::Result<()> {
        Ok(())
    }

    #[test]
    fn validate_path_table() {
        let long_name = "a".repeat(256);
        let long_path = "a/".repeat(2049);
        let cases: Vec<(&str, Option<&str>)> = vec![
            ("file", None),
            ("dir/file", None),
            (
                "..file",
                Some("invalid path: must not start with '..': ..file"),
            ),
            ("a/..b", None),
            ("..", Some("invalid path: must not contain '..': ..")),
            ("", Some("invalid path: must not be empty: \"\"")),
            ("/abs", Some("invalid path: must be relative path: /abs")),
            (
                "a/../b",
                Some("invalid path: must not contain '..': a/../b"),
            ),
            (
                "..data/x",
                Some("invalid path: must not start with '..': ..data/x"),
            ),
            (
                &long_name,
                Some("invalid path: filenames must be less than or equal to 255 characters"),
            ),
            (
                &long_path,
                Some("invalid path: must be less than or equal to 4096 characters"),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(
                validate_path(p).err().map(|e| e.to_string()).as_deref(),
                want,
                "{p:.20}"
            );
        }
    }

    #[test]
    fn write_update_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        let first = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)]);
        assert_eq!(write(t, &first, &no_perms).unwrap(), WriteOutcome::Written);
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(t.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(t.join("a")).unwrap(), Path::new("..data/a"));
        let ts1 = fs::read_link(t.join("..data")).unwrap();
        assert!(ts1.to_string_lossy().starts_with(".."));
        assert_eq!(
            fs::metadata(t.join("sub/b")).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // same payload: nothing happens
        assert_eq!(
            write(t, &first, &no_perms).unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(fs::read_link(t.join("..data")).unwrap(), ts1);

        // an update replaces the version and prunes "sub"
        let second = payload(&[("a", "changed", 0o644), ("c", "3", 0o644)]);
        assert_eq!(write(t, &second, &no_perms).unwrap(), WriteOutcome::Written);
        let ts2 = fs::read_link(t.join("..data")).unwrap();
        assert_ne!(ts1, ts2);
        assert!(!t.join(&ts1).exists());
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "changed");
        assert_eq!(fs::read_to_string(t.join("c")).unwrap(), "3");
        assert!(fs::symlink_metadata(t.join("sub")).is_err());

        // a mode change alone is a change
        let third = payload(&[("a", "changed", 0o400), ("c", "3", 0o644)]);
        assert_eq!(write(t, &third, &no_perms).unwrap(), WriteOutcome::Written);
        let mut names: Vec<String> = fs::read_dir(t)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("..2"))
            .collect();
        names.sort();
        assert_eq!(names, vec!["..data", "a", "c"]);
    }

    #[test]
    fn invalid_payload_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bad = payload(&[("ok", "1", 0o644), ("../escape", "x", 0o644)]);
        assert!(matches!(
            write(dir.path(), &bad, &no_perms),
            Err(WriteError::Backstep(_))
        ));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
