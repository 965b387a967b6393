//! Applies one image layer (a possibly compressed tar) to an empty directory so the directory can
//! be used as an overlayfs lower dir: OCI whiteouts (`.wh.<name>`) become 0/0 character devices and
//! opaque markers (`.wh..wh..opq`) become the `trusted.overlay.opaque=y` xattr on their directory.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Name prefix marking a whiteout in an OCI layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Entry marking its directory opaque in an OCI layer.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to treat a lower directory as opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Errors applying a layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer is compressed with zstd, which this runtime does not support")]
    Zstd,
    #[error("corrupt layer: {0}")]
    Corrupt(String),
    #[error("layer entry {0:?} escapes the layer root")]
    Escape(String),
    #[error("cannot write layer entry {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// What applying a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream (`sha256:<hex>`), to compare with the config's diff_id.
    pub diff_id: String,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Filesystem entries created.
    pub inodes: u64,
}

/// Compression detected from a blob's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Sniffs the compression from the magic bytes.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `r` in a decompressor chosen by sniffing its first bytes.
pub fn decompressed<'a, R: Read + 'a>(r: R) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let mut buf = BufReader::with_capacity(256 * 1024, r);
    let head = buf
        .fill_buf()
        .map_err(|e| UnpackError::Corrupt(format!("cannot read layer: {e}")))?;
    match sniff(head) {
        Compression::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(buf))),
        Compression::Zstd => Err(UnpackError::Zstd),
        Compression::None => Ok(Box::new(buf)),
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Applies the layer read from `blob` (gzip or plain tar) into `dest`, which must exist.
pub fn apply_layer(blob: impl Read, dest: &Path) -> Result<Applied, UnpackError> {
    let reader = HashingReader {
        inner: decompressed(blob)?,
        hasher: Sha256::new(),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let mut bytes = 0u64;
    let mut inodes = 0u64;
    let entries = archive
        .entries()
        .map_err(|e| UnpackError::Corrupt(format!("cannot read tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| UnpackError::Corrupt(format!("bad tar entry: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| UnpackError::Corrupt(format!("bad entry path: {e}")))?
            .into_owned();
        let rel = clean_relative(&raw)?;
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue; // the root directory itself
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        if name == OPAQUE_MARKER {
            let dir = ensure_dir(dest, parent_rel)?;
            xattr::set(&dir, OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(|source| UnpackError::Write { path: dir, source })?;
            continue;
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            if target.starts_with(WHITEOUT_PREFIX) || target.is_empty() {
                continue; // other AUFS metadata (.wh..wh.plnk, ...) has no overlayfs meaning
            }
            let dir = ensure_dir(dest, parent_rel)?;
            let path = dir.join(target);
            remove_any(&path)?;
            mknod(&path, libc::S_IFCHR, 0).map_err(|source| UnpackError::Write {
                path: path.clone(),
                source,
            })?;
            inodes += 1;
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let dir = ensure_dir(dest, parent_rel)?;
            let path = dir.join(&name);
            let header = entry.header();
            let mode = header.mode().unwrap_or(0o600) & 0o7777;
            let (major, minor) = (
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            );
            let fmt = if kind.is_character_special() {
                libc::S_IFCHR
            } else if kind.is_block_special() {
                libc::S_IFBLK
            } else {
                libc::S_IFIFO
            };
            remove_any(&path)?;
            let write_err = |source| UnpackError::Write {
                path: path.clone(),
                source,
            };
            mknod(&path, fmt | mode, libc::makedev(major, minor)).map_err(write_err)?;
            let (uid, gid) = (
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            );
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(write_err)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(write_err)?;
            inodes += 1;
            continue;
        }
        if kind.is_file() || kind.is_contiguous() {
            bytes += entry.header().size().unwrap_or(0);
        }
        let unpacked = entry.unpack_in(dest).map_err(|e| {
            let s = e.to_string();
            if s.contains("outside of") {
                UnpackError::Escape(raw.display().to_string())
            } else if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::InvalidData
                    | io::ErrorKind::InvalidInput
            ) {
                UnpackError::Corrupt(format!("{}: {s}", raw.display()))
            } else {
                UnpackError::Write {
                    path: dest.join(&rel),
                    source: e,
                }
            }
        })?;
        if !unpacked {
            return Err(UnpackError::Escape(raw.display().to_string()));
        }
        inodes += 1;
    }
    // The hash covers the whole tar stream, including the end-of-archive padding.
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink())
        .map_err(|e| UnpackError::Corrupt(format!("cannot read layer: {e}")))?;
    Ok(Applied {
        diff_id: format!("sha256:{}", hex::encode(reader.hasher.finalize())),
        bytes,
        inodes,
    })
}

/// Normalises an entry path to a relative one, refusing `..`.
fn clean_relative(p: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(UnpackError::Escape(p.display().to_string())),
        }
    }
    Ok(out)
}

/// Creates `root/rel` as a directory chain, refusing to go through symlinks or non-directories.
fn ensure_dir(root: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
    let mut cur = root.to_path_buf();
    for part in rel.components() {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(UnpackError::Escape(rel.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|source| UnpackError::Write {
                    path: cur.clone(),
                    source,
                })?;
            }
            Err(source) => return Err(UnpackError::Write { path: cur, source }),
        }
    }
    Ok(cur)
}

fn remove_any(path: &Path) -> Result<(), UnpackError> {
    let res = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    res.map_err(|source| UnpackError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a nul byte"))?;
    // SAFETY: `c` is a valid nul-terminated path; mknod does not retain the pointer.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True if `path` is an overlayfs whiteout (a 0/0 character device).
pub fn is_whiteout(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, path, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    h.set_cksum();
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn sniffs_compression() {
        let cases: [(&[u8], Compression); 4] = [
            (&[0x1f, 0x8b, 8, 0], Compression::Gzip),
            (&[0x28, 0xb5, 0x2f, 0xfd, 1], Compression::Zstd),
            (b"etc/passwd\0", Compression::None),
            (&[], Compression::None),
        ];
        for (head, want) in cases {
            assert_eq!(sniff(head), want, "{head:?}");
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_overlay_markers() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[
            ("etc/", None),
            ("etc/.wh.motd", Some(b"")),
            ("var/lib/.wh..wh..opq", Some(b"")),
            ("var/lib/new", Some(b"hello")),
            ("x/.wh..wh.plnk", Some(b"")),
        ]);
        let applied = apply_layer(&tar[..], dir.path()).unwrap();
        assert!(is_whiteout(&dir.path().join("etc/motd")));
        assert!(!dir.path().join("etc/.wh.motd").exists());
        assert_eq!(
            xattr::get(dir.path().join("var/lib"), OVERLAY_OPAQUE_XATTR).unwrap(),
            Some(b"y".to_vec())
        );
        assert!(!dir.path().join("var/lib/.wh..wh..opq").exists());
        assert_eq!(fs::read(dir.path().join("var/lib/new")).unwrap(), b"hello");
        assert!(!dir.path().join("x/.wh..wh.plnk").exists());
        assert_eq!(
            applied.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );
        assert_eq!(applied.bytes, 5);
    }

    #[test]
    fn gzip_layer_diff_id_is_of_uncompressed_stream() {
        use std::io::Write;
        let tar = tar_of(&[("a", Some(b"abc"))]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let applied = apply_layer(&gz[..], dir.path()).unwrap();
        assert_eq!(
            applied.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"abc");
    }

    #[test]
    fn parent_dir_entries_are_refused() {
        // tar::Builder refuses `..`, so craft the header name by hand.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../evil\0\0");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[b'x'; 512]);
        data.extend_from_slice(&[0u8; 1024]);
        let dir = tempfile::tempdir().unwrap();
        let err = apply_layer(&data[..], dir.path()).unwrap_err();
        assert!(matches!(err, UnpackError::Escape(_)), "{err}");
        assert!(!dir.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn truncated_gzip_is_corrupt() {
        use std::io::Write;
        let tar = tar_of(&[("a", Some(&[7u8; 4096][..]))]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = apply_layer(&gz[..gz.len() / 2], dir.path()).unwrap_err();
        assert!(matches!(err, UnpackError::Corrupt(_)), "{err}");
    }

    #[test]
    fn whiteout_through_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let tar = tar_of(&[("link/.wh.victim", Some(b""))]);
        let err = apply_layer(&tar[..], dir.path()).unwrap_err();
        assert!(matches!(err, UnpackError::Escape(_)), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
