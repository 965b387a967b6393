//! hostPath volume type checks (`DirectoryOrCreate`, `Directory`, `FileOrCreate`, `File`, `Socket`,
//! `CharDevice`, `BlockDevice`, or no check), with upstream's messages.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Checks (and for the `...OrCreate` types creates) `path` according to `path_type`.
pub fn check_type(path: &Path, path_type: Option<&str>) -> Result<(), String> {
    let p = path.display();
    let kind = || fs::metadata(path).ok().map(|m| m.file_type());
    match path_type.unwrap_or("") {
        "" => Ok(()),
        t @ ("DirectoryOrCreate" | "Directory") => {
            if t == "DirectoryOrCreate" && fs::symlink_metadata(path).is_err() {
                return make_dir(path).map_err(|e| e.to_string());
            }
            match kind() {
                Some(k) if k.is_dir() => Ok(()),
                _ => Err(format!(
                    "hostPath type check failed: {p} is not a directory"
                )),
            }
        }
        t @ ("FileOrCreate" | "File") => {
            if t == "FileOrCreate" && fs::symlink_metadata(path).is_err() {
                return make_file(path).map_err(|e| e.to_string());
            }
            match kind() {
                Some(k) if k.is_file() => Ok(()),
                _ => Err(format!("hostPath type check failed: {p} is not a file")),
            }
        }
        "Socket" => match kind() {
            Some(k) if k.is_socket() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {p} is not a socket file"
            )),
        },
        "CharDevice" => match kind() {
            Some(k) if k.is_char_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {p} is not a character device"
            )),
        },
        "BlockDevice" => match kind() {
            Some(k) if k.is_block_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {p} is not a block device"
            )),
        },
        other => Err(format!("{other} is an invalid volume type")),
    }
}

fn make_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

fn make_file(path: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_checks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("file"), "x").unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        let s = |p: &str| d.join(p).display().to_string();
        let cases: Vec<(String, Option<&str>, Result<(), String>)> = vec![
            (s("missing"), None, Ok(())),
            (s("missing"), Some(""), Ok(())),
            (s("file"), Some("File"), Ok(())),
            (
                s("file"),
                Some("Directory"),
                Err(format!(
                    "hostPath type check failed: {} is not a directory",
                    s("file")
                )),
            ),
            (
                s("missing"),
                Some("Directory"),
                Err(format!(
                    "hostPath type check failed: {} is not a directory",
                    s("missing")
                )),
            ),
            (s(""), Some("Directory"), Ok(())),
            (
                s(""),
                Some("File"),
                Err(format!(
                    "hostPath type check failed: {} is not a file",
                    s("")
                )),
            ),
            (s("sock"), Some("Socket"), Ok(())),
            (
                s("file"),
                Some("Socket"),
                Err(format!(
                    "hostPath type check failed: {} is not a socket file",
                    s("file")
                )),
            ),
            ("/dev/null".into(), Some("CharDevice"), Ok(())),
            (
                s("file"),
                Some("CharDevice"),
                Err(format!(
                    "hostPath type check failed: {} is not a character device",
                    s("file")
                )),
            ),
            (
                "/dev/null".into(),
                Some("BlockDevice"),
                Err("hostPath type check failed: /dev/null is not a block device".into()),
            ),
            (
                s("file"),
                Some("Weird"),
                Err("Weird is an invalid volume type".into()),
            ),
        ];
        for (path, t, want) in cases {
            assert_eq!(check_type(Path::new(&path), t), want, "{path} {t:?}");
        }
    }

    #[test]
    fn or_create_types_create() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        check_type(&nested, Some("DirectoryOrCreate")).unwrap();
        assert!(nested.is_dir());
        assert_eq!(
            fs::metadata(&nested).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let file = dir.path().join("a/f");
        check_type(&file, Some("FileOrCreate")).unwrap();
        assert!(file.is_file());
        // existing of the wrong kind fails
        assert!(check_type(&file, Some("DirectoryOrCreate")).is_err());
        assert!(check_type(&nested, Some("FileOrCreate")).is_err());
        // FileOrCreate does not create parent directories, as upstream
        assert!(check_type(&dir.path().join("x/y"), Some("FileOrCreate")).is_err());
    }
}
