//! Image reference parsing and normalisation (sans-IO), following the docker/distribution rules:
//! `busybox` -> `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:...` kept with its digest.

use std::fmt;

/// Registry assumed when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// Tag assumed when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Why a reference is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: empty reference")]
    Empty,
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?} is not a valid repository name")]
    InvalidName(String),
    #[error("invalid reference format: {0:?} is not a valid tag")]
    InvalidTag(String),
    #[error("invalid reference format: {0:?} is not a valid digest")]
    InvalidDigest(String),
    #[error("invalid reference format: repository name {0:?} is longer than 255 characters")]
    NameTooLong(String),
}

/// A fully normalised image reference: domain, path, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `s`; a reference without tag or digest gets the tag `latest`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            validate_tag(t)?;
        }
        let (mut domain, mut path) = split_domain(name);
        if domain == LEGACY_DEFAULT_DOMAIN {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_REPO_PREFIX}{path}");
        }
        validate_domain(&domain, name)?;
        validate_path(&path, name)?;
        if domain.len() + 1 + path.len() > 255 {
            return Err(ReferenceError::NameTooLong(name.to_string()));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `domain/path:tag` when the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{}", self.repository(), t))
    }

    /// `domain/path@digest` when the reference has a digest.
    pub fn digested(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|d| format!("{}@{}", self.repository(), d))
    }

    /// The same repository with another digest (used to record repo digests).
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// If `s` names an image by ID (`sha256:<64 hex>`, or the bare 64-hex ID), returns `sha256:<hex>`.
pub fn as_image_id(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if is_sha256_hex(hex) {
        Some(format!("sha256:{hex}"))
    } else {
        None
    }
}

/// True for exactly 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn split_domain(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    }
}

fn validate_domain(domain: &str, name: &str) -> Result<(), ReferenceError> {
    let (host, port) = match domain.rsplit_once(':') {
        // IPv6 literals are bracketed; a ':' inside brackets is not a port separator.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (domain, None),
    };
    let host_ok = if host.starts_with('[') && host.ends_with(']') {
        host[1..host.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidName(name.to_string()))
    }
}

fn validate_path(path: &str, name: &str) -> Result<(), ReferenceError> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(name.to_string()));
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            return Err(ReferenceError::InvalidName(name.to_string()));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: '.', '_', '__' or one or more '-'
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(t: &str) -> Result<(), ReferenceError> {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    if b.is_empty()
        || b.len() > 128
        || !word(b[0])
        || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
    {
        return Err(ReferenceError::InvalidTag(t.to_string()));
    }
    Ok(())
}

fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let ok = match d.split_once(':') {
        Some(("sha256", hex)) => is_sha256_hex(hex),
        Some(("sha512", hex)) => {
            hex.len() == 128 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidDigest(d.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalisation_table() {
        let at = |s: &str| format!("{s}@{D}");
        let cases: Vec<(String, String)> = vec![
            ("busybox".into(), "docker.io/library/busybox:latest".into()),
            (
                "busybox:1.36".into(),
                "docker.io/library/busybox:1.36".into(),
            ),
            (
                "library/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "index.docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            ("foo/bar".into(), "docker.io/foo/bar:latest".into()),
            (
                "quay.io/coreos/etcd:v3".into(),
                "quay.io/coreos/etcd:v3".into(),
            ),
            ("localhost/app".into(), "localhost/app:latest".into()),
            (
                "localhost:5000/app:v1".into(),
                "localhost:5000/app:v1".into(),
            ),
            (
                "127.0.0.1:5000/a/b/c".into(),
                "127.0.0.1:5000/a/b/c:latest".into(),
            ),
            (
                "registry.k8s.io/pause:3.10".into(),
                "registry.k8s.io/pause:3.10".into(),
            ),
            (at("busybox"), format!("docker.io/library/busybox@{D}")),
            (
                format!("busybox:1.36@{D}"),
                format!("docker.io/library/busybox:1.36@{D}"),
            ),
            (
                "my-org/my__app.x".into(),
                "docker.io/my-org/my__app.x:latest".into(),
            ),
            ("[::1]:5000/app".into(), "[::1]:5000/app:latest".into()),
        ];
        for (input, want) in cases {
            let got = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "input {input}");
        }
    }

    #[test]
    fn invalid_references() {
        let cases = [
            ("", ReferenceError::Empty),
            ("Busybox", ReferenceError::Uppercase("Busybox".into())),
            (
                "docker.io/Foo/bar",
                ReferenceError::Uppercase("docker.io/Foo/bar".into()),
            ),
            ("busybox:", ReferenceError::InvalidTag("".into())),
            ("busybox:-x", ReferenceError::InvalidTag("-x".into())),
            (
                "busybox@sha256:abc",
                ReferenceError::InvalidDigest("sha256:abc".into()),
            ),
            (
                "busybox@md5:abc",
                ReferenceError::InvalidDigest("md5:abc".into()),
            ),
            ("foo//bar", ReferenceError::InvalidName("foo//bar".into())),
            ("foo/-bar", ReferenceError::InvalidName("foo/-bar".into())),
            (
                "foo/bar..baz",
                ReferenceError::InvalidName("foo/bar..baz".into()),
            ),
            (
                "bad_host.io:x/foo",
                ReferenceError::InvalidName("bad_host.io:x/foo".into()),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Reference::parse(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn parts_and_helpers() {
        let r = Reference::parse("localhost:5000/a/b:v2").unwrap();
        assert_eq!(r.domain, "localhost:5000");
        assert_eq!(r.path, "a/b");
        assert_eq!(r.repository(), "localhost:5000/a/b");
        assert_eq!(r.tagged().as_deref(), Some("localhost:5000/a/b:v2"));
        assert_eq!(r.digested(), None);
        assert_eq!(
            r.with_digest(D).to_string(),
            format!("localhost:5000/a/b@{D}")
        );
        let hex = &D[7..];
        assert_eq!(as_image_id(D).as_deref(), Some(D));
        assert_eq!(as_image_id(hex).as_deref(), Some(D));
        assert_eq!(as_image_id("busybox"), None);
        assert_eq!(as_image_id("sha256:abc"), None);
    }
}
