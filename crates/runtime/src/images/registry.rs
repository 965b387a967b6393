//! Pulls images from OCI distribution registries (oci-client), with mirrors, plain-HTTP and
//! insecure registries and credentials configured in `<data-dir>/registries.yaml`.
//!
//! The file follows k3s's `registries.yaml`:
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com"]
//!   "*":                       # any registry without its own entry
//!     endpoint: ["https://proxy.example.com"]
//! configs:
//!   "mirror.example.com":      # keyed by endpoint host[:port]
//!     auth: {username: u, password: p}    # or auth: <base64 user:pass>, or identity_token
//!     tls: {insecure_skip_verify: true, ca_file: /path/ca.pem}
//! ```
//! Endpoints are tried in order, then the registry itself (https, or plain http for loopback
//! hosts, as docker treats 127.0.0.0/8 as insecure).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::reference::Reference;
use super::store::{BlobRef, ImageStore};
use super::{
    finish_image, is_index, media, select_platform, Descriptor, ImageError, ImageRecord, Index,
    Manifest, StagedImage,
};

/// File name of the registries config inside the data dir.
pub const REGISTRIES_FILE: &str = "registries.yaml";

/// Manifest media types accepted from registries.
const ACCEPT: [&str; 4] = [
    media::OCI_INDEX,
    media::OCI_MANIFEST,
    media::DOCKER_LIST,
    media::DOCKER_MANIFEST,
];

/// The parsed registries config.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    #[serde(default)]
    pub configs: BTreeMap<String, EndpointConfig>,
}

/// Mirror endpoints of one registry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

/// Credentials and TLS settings of one endpoint host.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct EndpointConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Registry credentials (never logged).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub identity_token: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS settings of an endpoint.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One place to pull from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as oci-client addresses it.
    pub host: String,
    pub plain_http: bool,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub auth: Option<AuthConfig>,
}

impl RegistriesConfig {
    /// Loads the config; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        match std::fs::read(path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Self::default()),
            Ok(b) => serde_yaml::from_slice(&b).map_err(|e| ImageError::RegistriesConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ImageError::RegistriesConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// Endpoints to try for `registry`, in order: its mirrors (or the `*` mirrors), then itself.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mirrors = self
            .mirrors
            .get(registry)
            .or_else(|| self.mirrors.get("*"))
            .map(|m| m.endpoint.clone())
            .unwrap_or_default();
        let mut out: Vec<Endpoint> = Vec::new();
        for url in mirrors {
            let (plain_http, rest) = if let Some(r) = url.strip_prefix("http://") {
                (true, r)
            } else if let Some(r) = url.strip_prefix("https://") {
                (false, r)
            } else {
                (false, url.as_str())
            };
            let host = rest.split('/').next().unwrap_or("").to_string();
            if host.is_empty() {
                tracing::warn!(endpoint = %url, "ignoring mirror endpoint without a host");
                continue;
            }
            let ep = self.endpoint(host, plain_http);
            if !out.contains(&ep) {
                out.push(ep);
            }
        }
        let default = self.endpoint(registry.to_string(), is_loopback(registry));
        if !out.iter().any(|e| e.host == default.host) {
            out.push(default);
        }
        out
    }

    fn endpoint(&self, host: String, plain_http: bool) -> Endpoint {
        let cfg = self.configs.get(&host).cloned().unwrap_or_default();
        let tls = cfg.tls.unwrap_or_default();
        Endpoint {
            host,
            plain_http,
            insecure_skip_verify: tls.insecure_skip_verify,
            ca_file: tls.ca_file,
            auth: cfg.auth,
        }
    }
}

fn is_loopback(host_port: &str) -> bool {
    let host = match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Credentials passed with a pull (the CRI `AuthConfig`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub auth: String,
    pub identity_token: String,
    pub registry_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Turns credentials into oci-client's form: token, then user/password, then base64 `auth`.
pub fn registry_auth(c: &Credentials) -> Result<RegistryAuth, ImageError> {
    if !c.registry_token.is_empty() {
        return Ok(RegistryAuth::Bearer(c.registry_token.clone()));
    }
    if !c.identity_token.is_empty() {
        return Ok(RegistryAuth::Bearer(c.identity_token.clone()));
    }
    if !c.username.is_empty() {
        return Ok(RegistryAuth::Basic(c.username.clone(), c.password.clone()));
    }
    if !c.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(c.auth.trim())
            .map_err(|_| ImageError::Unsupported("auth is not valid base64".into()))?;
        let s = String::from_utf8(decoded)
            .map_err(|_| ImageError::Unsupported("auth is not valid utf-8".into()))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| ImageError::Unsupported("auth is not base64 of user:password".into()))?;
        return Ok(RegistryAuth::Basic(u.to_string(), p.to_string()));
    }
    Ok(RegistryAuth::Anonymous)
}

impl From<&AuthConfig> for Credentials {
    fn from(a: &AuthConfig) -> Self {
        Credentials {
            username: a.username.clone(),
            password: a.password.clone(),
            auth: a.auth.clone(),
            identity_token: a.identity_token.clone(),
            registry_token: String::new(),
        }
    }
}

/// Pulls `image` into the store, trying each endpoint for its registry in turn.
pub async fn pull(
    store: &ImageStore,
    registries: &RegistriesConfig,
    image: &str,
    creds: Option<&Credentials>,
) -> Result<ImageRecord, ImageError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reference = Reference::parse(image)?;
    let store2 = store.clone();
    let lease = tokio::task::spawn_blocking(move || store2.lease())
        .await
        .map_err(|e| ImageError::Unsupported(format!("lease task failed: {e}")))??;
    let mut errors = Vec::new();
    let mut result = None;
    for ep in registries.endpoints(&reference.domain) {
        match pull_from(store, &lease, &ep, &reference, creds).await {
            Ok(staged) => {
                result = Some(staged);
                break;
            }
            Err(e) => {
                tracing::info!(endpoint = %ep.host, image = %reference, error = %e, "pull attempt failed");
                errors.push(format!("{}: {e}", ep.host));
            }
        }
    }
    let outcome = match result {
        Some(staged) => {
            let store2 = store.clone();
            tokio::task::spawn_blocking(move || {
                let r = finish_image(
                    &store2,
                    &lease,
                    StagedImage {
                        manifest: &staged.manifest,
                        manifest_blob: staged.manifest_blob,
                        config_bytes: &staged.config_bytes,
                        layer_blobs: staged.layer_blobs,
                        repo_tags: staged.repo_tags,
                        repo_digests: staged.repo_digests,
                        source_name: staged.source_name,
                    },
                );
                drop(lease);
                r
            })
            .await
            .map_err(|e| ImageError::Unsupported(format!("unpack task failed: {e}")))?
        }
        None => {
            drop(lease);
            Err(ImageError::Pull {
                reference: reference.to_string(),
                reason: errors.join("; "),
            })
        }
    };
    if outcome.is_err() {
        let store2 = store.clone();
        let _ = tokio::task::spawn_blocking(move || store2.gc()).await;
    }
    outcome
}

struct Staged {
    manifest: Manifest,
    manifest_blob: BlobRef,
    config_bytes: Vec<u8>,
    layer_blobs: Vec<BlobRef>,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    source_name: String,
}

fn sha256_of(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn oci_desc(d: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size as i64,
        ..Default::default()
    }
}

async fn pull_from(
    store: &ImageStore,
    lease: &super::store::IngestLease,
    ep: &Endpoint,
    r: &Reference,
    creds: Option<&Credentials>,
) -> Result<Staged, ImageError> {
    let err = |reason: String| ImageError::Pull {
        reference: r.to_string(),
        reason,
    };
    let mut cfg = ClientConfig {
        protocol: if ep.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: ep.insecure_skip_verify,
        ..Default::default()
    };
    if let Some(ca) = &ep.ca_file {
        let data = std::fs::read(ca).map_err(|e| err(format!("ca_file {}: {e}", ca.display())))?;
        cfg.extra_root_certificates.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data,
        });
    }
    let client = oci_client::Client::new(cfg);
    let auth = match (creds, &ep.auth) {
        (Some(c), _) if *c != Credentials::default() => registry_auth(c)?,
        (_, Some(a)) => registry_auth(&Credentials::from(a))?,
        _ => RegistryAuth::Anonymous,
    };
    let oref = match (&r.tag, &r.digest) {
        (_, Some(d)) => {
            oci_client::Reference::with_digest(ep.host.clone(), r.path.clone(), d.clone())
        }
        (Some(t), None) => {
            oci_client::Reference::with_tag(ep.host.clone(), r.path.clone(), t.clone())
        }
        (None, None) => unreachable!("normalised references have a tag or a digest"),
    };
    let (bytes, top_digest) = client
        .pull_manifest_raw(&oref, &auth, &ACCEPT)
        .await
        .map_err(|e| err(e.to_string()))?;
    check_digest(&bytes, &top_digest, "manifest")?;
    if let Some(d) = &r.digest {
        if *d != top_digest {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {r}"),
                expected: d.clone(),
                actual: top_digest,
            });
        }
    }
    let (manifest_bytes, manifest_digest) = if is_index("", &bytes) {
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("bad index {top_digest}: {e}")))?;
        let d = select_platform(&index).ok_or_else(|| {
            ImageError::NotFound(format!(
                "image for platform linux/{} in {r}",
                super::host_arch()
            ))
        })?;
        let child = oref.clone_with_digest(d.digest.clone());
        let (b, digest) = client
            .pull_manifest_raw(&child, &auth, &ACCEPT)
            .await
            .map_err(|e| err(e.to_string()))?;
        check_digest(&b, &d.digest, "manifest")?;
        (b, digest)
    } else {
        (bytes, top_digest.clone())
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| err(format!("bad manifest {manifest_digest}: {e}")))?;
    let manifest_blob = store.ingest_bytes(lease, &manifest_bytes, Some(&manifest_digest))?;

    let config_bytes = if store.has_blob(&manifest.config.digest) {
        store.read_blob(&manifest.config.digest)?
    } else {
        let mut buf = Vec::new();
        client
            .pull_blob(&oref, &oci_desc(&manifest.config), &mut buf)
            .await
            .map_err(|e| err(format!("config {}: {e}", manifest.config.digest)))?;
        store.ingest_bytes(lease, &buf, Some(&manifest.config.digest))?;
        buf
    };

    let mut layer_blobs = Vec::new();
    for l in &manifest.layers {
        if l.media_type.contains("zstd") {
            return Err(ImageError::Unsupported(format!(
                "layer {} is zstd-compressed ({})",
                l.digest, l.media_type
            )));
        }
        if let Some(size) = store.blob_size(&l.digest) {
            layer_blobs.push(BlobRef {
                digest: l.digest.clone(),
                size,
            });
            continue;
        }
        let staging = store.staging_file();
        let res = async {
            let f = tokio::fs::File::create(&staging)
                .await
                .map_err(|e| err(format!("create {}: {e}", staging.display())))?;
            // oci-client verifies the content against the descriptor's digest.
            client
                .pull_blob(&oref, &oci_desc(l), f)
                .await
                .map_err(|e| match e {
                    oci_client::errors::OciDistributionError::DigestError(d) => {
                        ImageError::DigestMismatch {
                            what: format!("layer {}", l.digest),
                            expected: l.digest.clone(),
                            actual: d.to_string(),
                        }
                    }
                    other => err(format!("layer {}: {other}", l.digest)),
                })?;
            let size = tokio::fs::metadata(&staging)
                .await
                .map_err(|e| err(format!("stat {}: {e}", staging.display())))?
                .len();
            if size != l.size {
                return Err(err(format!(
                    "layer {} has {size} bytes, the manifest says {}",
                    l.digest, l.size
                )));
            }
            store.commit_staged(&staging, &l.digest)?;
            Ok(BlobRef {
                digest: l.digest.clone(),
                size,
            })
        }
        .await;
        let _ = tokio::fs::remove_file(&staging).await;
        layer_blobs.push(res?);
    }
    Ok(Staged {
        manifest,
        manifest_blob,
        config_bytes,
        layer_blobs,
        repo_tags: r.tagged().into_iter().collect(),
        repo_digests: vec![r.with_digest(&top_digest).to_string()],
        source_name: format!("{}/{}", ep.host, r.path),
    })
}

fn check_digest(bytes: &[u8], want: &str, what: &str) -> Result<(), ImageError> {
    let got = sha256_of(bytes);
    if got != want {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: want.to_string(),
            actual: got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_mirrors_then_default() {
        let cfg: RegistriesConfig = serde_yaml::from_str(
            r#"
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000/v2", "https://mirror.example.com"]
  "*":
    endpoint: ["https://proxy.example.com:8443"]
configs:
  "mirror.example.com":
    auth: {username: u, password: p}
    tls: {insecure_skip_verify: true}
"#,
        )
        .unwrap();
        let hosts = |reg: &str| -> Vec<(String, bool)> {
            cfg.endpoints(reg)
                .into_iter()
                .map(|e| (e.host, e.plain_http))
                .collect()
        };
        assert_eq!(
            hosts("docker.io"),
            vec![
                ("127.0.0.1:5000".into(), true),
                ("mirror.example.com".into(), false),
                ("docker.io".into(), false)
            ]
        );
        assert_eq!(
            hosts("quay.io"),
            vec![
                ("proxy.example.com:8443".into(), false),
                ("quay.io".into(), false)
            ]
        );
        let eps = cfg.endpoints("docker.io");
        assert!(eps[1].insecure_skip_verify);
        assert_eq!(eps[1].auth.as_ref().unwrap().username, "u");
        assert!(eps[0].auth.is_none());
    }

    #[test]
    fn loopback_registries_default_to_plain_http() {
        let cfg = RegistriesConfig::default();
        let cases = [
            ("127.0.0.1:5000", true),
            ("localhost:5000", true),
            ("localhost", true),
            ("[::1]:5000", true),
            ("registry.example.com:5000", false),
            ("docker.io", false),
        ];
        for (reg, plain) in cases {
            let eps = cfg.endpoints(reg);
            assert_eq!(eps.len(), 1);
            assert_eq!(eps[0].plain_http, plain, "{reg}");
        }
    }

    #[test]
    fn credentials_map_to_registry_auth() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let cases = [
            (Credentials::default(), RegistryAuth::Anonymous),
            (
                Credentials {
                    username: "bob".into(),
                    password: "pw".into(),
                    ..Default::default()
                },
                RegistryAuth::Basic("bob".into(), "pw".into()),
            ),
            (
                Credentials {
                    auth: b64,
                    ..Default::default()
                },
                RegistryAuth::Basic("alice".into(), "s3cret".into()),
            ),
            (
                Credentials {
                    registry_token: "tok".into(),
                    username: "ignored".into(),
                    ..Default::default()
                },
                RegistryAuth::Bearer("tok".into()),
            ),
        ];
        for (c, want) in cases {
            let got = registry_auth(&c).unwrap();
            assert_eq!(got, want);
        }
        let bad = Credentials {
            auth: "not base64!".into(),
            ..Default::default()
        };
        assert!(registry_auth(&bad).is_err());
    }

    #[test]
    fn registries_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(REGISTRIES_FILE);
        assert_eq!(
            RegistriesConfig::load(&p).unwrap(),
            RegistriesConfig::default()
        );
        std::fs::write(&p, "mirrors: [not, a, map]").unwrap();
        let e = RegistriesConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains(REGISTRIES_FILE), "{e}");
    }
}
