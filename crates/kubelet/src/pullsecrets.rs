//! Registry credentials from imagePullSecrets (`kubernetes.io/dockerconfigjson` and
//! `kubernetes.io/dockercfg`), matched against an image reference as upstream's
//! credentialprovider keyring does (host with `*` globs, optional port, path prefix; docker.io
//! aliases), turned into CRI `AuthConfig`s in the order to try. Sans-IO.

use std::collections::BTreeMap;

use base64::Engine;
use cri::v1 as pb;
use k8s_openapi::api::core::v1::Secret;

/// One credential entry of a docker config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct DockerAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub email: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

#[derive(Debug, serde::Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

/// The (registry key, credential) entries of a pull secret; other secrets give none.
pub fn secret_entries(secret: &Secret) -> Vec<(String, DockerAuth)> {
    let data = secret.data.clone().unwrap_or_default();
    let ty = secret.type_.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    if ty == "kubernetes.io/dockerconfigjson" {
        if let Some(b) = data.get(".dockerconfigjson") {
            if let Ok(c) = serde_json::from_slice::<DockerConfigJson>(&b.0) {
                out.extend(c.auths);
            }
        }
    } else if ty == "kubernetes.io/dockercfg" {
        if let Some(b) = data.get(".dockercfg") {
            if let Ok(c) = serde_json::from_slice::<BTreeMap<String, DockerAuth>>(&b.0) {
                out.extend(c);
            }
        }
    }
    for (_, a) in out.iter_mut() {
        // `auth` carries base64(user:password): split it when the fields are empty
        if a.username.is_empty() && !a.auth.is_empty() {
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(a.auth.trim()) {
                if let Some((u, p)) = String::from_utf8_lossy(&raw).split_once(':') {
                    a.username = u.to_string();
                    a.password = p.to_string();
                }
            }
        }
    }
    out
}

/// Host (with port) and path of an image reference, docker.io defaulted.
pub fn image_location(image: &str) -> (String, String) {
    let name = image.split('@').next().unwrap_or(image);
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) if f.contains('.') || f.contains(':') || f == "localhost" => {
            (f.to_string(), r)
        }
        _ => ("docker.io".to_string(), name),
    };
    // drop the tag
    let path = match rest.rsplit_once(':') {
        Some((p, tag)) if !tag.contains('/') => p,
        _ => rest,
    };
    let host = if first == "index.docker.io" || first == "registry-1.docker.io" {
        "docker.io".to_string()
    } else {
        first
    };
    let path = if host == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    (host, path)
}

/// Normalises a keyring key (`https://index.docker.io/v1/`, `host:5000/path`) to (host, path).
fn key_location(key: &str) -> (String, String) {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = match k.split_once('/') {
        Some((h, p)) => (h.to_string(), p.trim_end_matches('/').to_string()),
        None => (k.to_string(), String::new()),
    };
    let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io".to_string()
    } else {
        host
    };
    // docker hub's legacy `/v1/` and `/v2/` suffixes are API paths, not repository prefixes
    let path = if path == "v1" || path == "v2" {
        String::new()
    } else {
        path
    };
    (host, path)
}

fn glob_host(pattern: &str, host: &str) -> bool {
    let (pp, pport) = pattern.split_once(':').unwrap_or((pattern, ""));
    let (hh, hport) = host.split_once(':').unwrap_or((host, ""));
    if pport != hport {
        return false;
    }
    let pl: Vec<&str> = pp.split('.').collect();
    let hl: Vec<&str> = hh.split('.').collect();
    pl.len() == hl.len()
        && pl
            .iter()
            .zip(&hl)
            .all(|(p, h)| *p == "*" || p.eq_ignore_ascii_case(h))
}

/// The credentials to try for `image`, most specific key first; empty means anonymous.
pub fn auths_for(image: &str, secrets: &[Secret]) -> Vec<pb::AuthConfig> {
    let (host, path) = image_location(image);
    let mut matches: Vec<(String, DockerAuth)> = Vec::new();
    for s in secrets {
        for (key, a) in secret_entries(s) {
            let (kh, kp) = key_location(&key);
            if !glob_host(&kh, &host) {
                continue;
            }
            if !kp.is_empty() && path != kp && !path.starts_with(&format!("{kp}/")) {
                continue;
            }
            matches.push((key, a));
        }
    }
    // upstream sorts keys in reverse lexicographic order so longer (more specific) ones win
    matches.sort_by(|a, b| b.0.cmp(&a.0));
    matches
        .into_iter()
        .map(|(key, a)| pb::AuthConfig {
            username: a.username,
            password: a.password,
            auth: a.auth,
            server_address: key,
            identity_token: a.identity_token,
            registry_token: a.registry_token,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(ty: &str, key: &str, content: serde_json::Value) -> Secret {
        let b64 = base64::engine::general_purpose::STANDARD.encode(content.to_string());
        serde_json::from_value(json!({"metadata": {"name": "s"}, "type": ty, "data": {key: b64}}))
            .unwrap()
    }

    #[test]
    fn image_locations() {
        let cases = [
            ("busybox", "docker.io", "library/busybox"),
            ("busybox:1.36", "docker.io", "library/busybox"),
            ("user/app@sha256:abc", "docker.io", "user/app"),
            ("localhost:5000/a/b:tag", "localhost:5000", "a/b"),
            (
                "registry.example.com/team/app",
                "registry.example.com",
                "team/app",
            ),
            (
                "index.docker.io/library/nginx",
                "docker.io",
                "library/nginx",
            ),
        ];
        for (img, h, p) in cases {
            assert_eq!(image_location(img), (h.to_string(), p.to_string()), "{img}");
        }
    }

    #[test]
    fn matching_table() {
        let s = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({"auths": {
                "https://index.docker.io/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("hub:pw")},
                "127.0.0.1:5000": {"username": "u", "password": "p"},
                "*.example.com/team": {"username": "team", "password": "t"},
                "registry.example.com": {"username": "all", "password": "a"},
            }}),
        );
        let cases = [
            ("busybox", vec!["hub"]),
            ("127.0.0.1:5000/app:1", vec!["u"]),
            ("127.0.0.1:5001/app:1", vec![]),
            ("registry.example.com/team/app", vec!["all", "team"]),
            ("registry.example.com/other/app", vec!["all"]),
            ("quay.io/x/y", vec![]),
        ];
        for (img, want) in cases {
            let got: Vec<String> = auths_for(img, std::slice::from_ref(&s))
                .into_iter()
                .map(|a| a.username)
                .collect();
            assert_eq!(got, want, "{img}");
        }
    }

    #[test]
    fn legacy_dockercfg_and_other_types() {
        let s = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            json!({"quay.io": {"username": "q", "password": "w"}}),
        );
        let a = auths_for("quay.io/org/img", &[s]);
        assert_eq!(
            (
                a[0].username.as_str(),
                a[0].password.as_str(),
                a[0].server_address.as_str()
            ),
            ("q", "w", "quay.io")
        );
        let opaque = secret(
            "Opaque",
            ".dockerconfigjson",
            json!({"auths": {"quay.io": {"username": "x"}}}),
        );
        assert!(auths_for("quay.io/org/img", &[opaque]).is_empty());
    }
}
