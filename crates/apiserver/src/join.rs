//! Node join: the cluster join token (`K10<sha256 of the CA PEM>::node:<secret>`, k3s's secure
//! form, stored at `<data-dir>/token`), and the token-authenticated issuance of a node's
//! identity: a client certificate `CN=system:node:<name>, O=system:nodes` and a kubelet
//! serving certificate for the node's name and addresses, both for keys the node generated
//! (it sends certificate signing requests; its private keys never leave it).

use std::net::IpAddr;
use std::path::Path;

use apimachinery::ApiError;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::pki::{self, CertPair, PkiError};

/// The path the node identity is requested at (POST, join token as bearer).
pub const NODE_IDENTITY_PATH: &str = "/v1-oxkube/node-identity";
/// The path the CA bundle is served at without authentication.
pub const CACERTS_PATH: &str = "/cacerts";
/// The user part of a join token.
const TOKEN_USER: &str = "node";

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("pki: {0}")]
    Pki(#[from] PkiError),
    #[error("invalid join token: {0}")]
    BadToken(&'static str),
}

/// The hex SHA-256 of the CA certificate PEM, as the secure token embeds it.
pub fn ca_hash(ca_pem: &str) -> String {
    hex::encode(sha2::Sha256::digest(ca_pem.as_bytes()))
}

/// A join token taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// The CA hash the agent must verify (absent in the short form: only the secret).
    pub ca_hash: Option<String>,
    pub user: String,
    pub secret: String,
}

impl JoinToken {
    /// Parse `K10<hash>::<user>:<secret>` or a bare secret.
    pub fn parse(s: &str) -> Result<JoinToken, JoinError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(JoinError::BadToken("empty"));
        }
        let Some(rest) = s.strip_prefix("K10") else {
            return Ok(JoinToken {
                ca_hash: None,
                user: TOKEN_USER.into(),
                secret: s.to_string(),
            });
        };
        let (hash, creds) = rest.split_once("::").ok_or(JoinError::BadToken(
            "expected K10<ca-hash>::<user>:<secret>",
        ))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JoinError::BadToken("the CA hash must be 64 hex digits"));
        }
        let (user, secret) = creds.split_once(':').ok_or(JoinError::BadToken(
            "expected <user>:<secret> after the CA hash",
        ))?;
        if user.is_empty() || secret.is_empty() {
            return Err(JoinError::BadToken("empty user or secret"));
        }
        Ok(JoinToken {
            ca_hash: Some(hash.to_ascii_lowercase()),
            user: user.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The secure form of a token for a CA.
    pub fn format(ca_pem: &str, secret: &str) -> String {
        format!("K10{}::{TOKEN_USER}:{secret}", ca_hash(ca_pem))
    }
}

/// Load `<data_dir>/token` or create it (mode 0600) with a fresh random secret; a stored token
/// whose CA hash no longer matches is rewritten with the same secret. Returns the token.
pub fn load_or_create_token(data_dir: &Path, ca_pem: &str) -> Result<String, JoinError> {
    let path = data_dir.join("token");
    let existing = match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(JoinError::Io {
                path: path.display().to_string(),
                source: e,
            })
        }
    };
    if let Some(text) = existing {
        if let Ok(t) = JoinToken::parse(&text) {
            let want = JoinToken::format(ca_pem, &t.secret);
            if text.trim() == want {
                return Ok(want);
            }
            pki::write_file(&path, format!("{want}\n").as_bytes(), 0o600)?;
            return Ok(want);
        }
    }
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..32)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect()
    };
    let token = JoinToken::format(ca_pem, &secret);
    pki::write_file(&path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(token)
}

/// What a joining node asks for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeIdentityRequest {
    pub node_name: String,
    /// The node's addresses (SANs of its serving certificate).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// PEM CSR for the client key.
    pub client_csr: String,
    /// PEM CSR for the serving key.
    pub serving_csr: String,
}

/// The certificates issued to a node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeIdentityResponse {
    pub client_certificate: String,
    pub serving_certificate: String,
    pub ca_certificate: String,
}

/// The server side of joining: checks join tokens and signs node certificates.
pub struct NodeIdentityIssuer {
    ca: CertPair,
    secret: String,
}

impl std::fmt::Debug for NodeIdentityIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentityIssuer").finish_non_exhaustive()
    }
}

/// Compare without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl NodeIdentityIssuer {
    pub fn new(ca: CertPair, token: &str) -> Result<NodeIdentityIssuer, JoinError> {
        let t = JoinToken::parse(token)?;
        Ok(NodeIdentityIssuer {
            ca,
            secret: t.secret,
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// Whether an `Authorization` header carries the join token (full or bare secret).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(presented) = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return false;
        };
        match JoinToken::parse(presented) {
            Ok(t) => {
                t.user == TOKEN_USER
                    && t.ca_hash
                        .as_ref()
                        .is_none_or(|h| *h == ca_hash(&self.ca.cert_pem))
                    && constant_time_eq(t.secret.as_bytes(), self.secret.as_bytes())
            }
            Err(_) => false,
        }
    }

    /// Sign the node's two certificates.
    pub fn issue(&self, req: &NodeIdentityRequest) -> Result<NodeIdentityResponse, ApiError> {
        let errs = apimachinery::meta::is_dns1123_subdomain(&req.node_name);
        if !errs.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid node name {:?}",
                req.node_name
            )));
        }
        let cn = format!("system:node:{}", req.node_name);
        let orgs = ["system:nodes".to_string()];
        let bad = |e: PkiError| ApiError::bad_request(format!("cannot sign the request: {e}"));
        let client =
            pki::sign_csr(&self.ca, &req.client_csr, &cn, &orgs, &[], false, true).map_err(bad)?;
        let mut sans = vec![req.node_name.clone()];
        sans.extend(req.addresses.iter().map(IpAddr::to_string));
        let serving = pki::sign_csr(&self.ca, &req.serving_csr, &cn, &orgs, &sans, true, false)
            .map_err(bad)?;
        tracing::info!(node = %req.node_name, "issued node identity");
        Ok(NodeIdentityResponse {
            client_certificate: client,
            serving_certificate: serving,
            ca_certificate: self.ca.cert_pem.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> CertPair {
        let dir = tempfile::tempdir().unwrap();
        pki::Pki::load_or_create(dir.path(), &Default::default())
            .unwrap()
            .ca
    }

    #[test]
    fn token_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let a = load_or_create_token(dir.path(), &ca.cert_pem).unwrap();
        let b = load_or_create_token(dir.path(), &ca.cert_pem).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(dir.path().join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let t = JoinToken::parse(&a).unwrap();
        assert_eq!(t.ca_hash.as_deref(), Some(ca_hash(&ca.cert_pem).as_str()));
        assert_eq!(t.user, "node");
        assert_eq!(t.secret.len(), 32);
    }

    #[test]
    fn token_parsing() {
        let h = "a".repeat(64);
        type Parts<'a> = Option<(Option<&'a str>, &'a str, &'a str)>;
        let cases: Vec<(String, Parts)> = vec![
            (
                format!("K10{h}::node:s3cret"),
                Some((Some(&h), "node", "s3cret")),
            ),
            ("s3cret".into(), Some((None, "node", "s3cret"))),
            (format!("K10{h}node:s"), None),
            ("K10abc::node:s".into(), None),
            (format!("K10{h}::node:"), None),
            ("".into(), None),
        ];
        for (input, want) in cases {
            let got = JoinToken::parse(&input).ok();
            let got = got
                .as_ref()
                .map(|t| (t.ca_hash.as_deref(), t.user.as_str(), t.secret.as_str()));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn only_the_right_token_is_authorized() {
        let ca = ca();
        let token = JoinToken::format(&ca.cert_pem, "topsecret");
        let issuer = NodeIdentityIssuer::new(ca.clone(), &token).unwrap();
        assert!(issuer.authorized(Some(&format!("Bearer {token}"))));
        assert!(issuer.authorized(Some("Bearer topsecret")));
        assert!(!issuer.authorized(Some("Bearer wrongsecret")));
        let other_ca = JoinToken::format("another CA", "topsecret");
        assert!(!issuer.authorized(Some(&format!("Bearer {other_ca}"))));
        assert!(!issuer.authorized(None));
        assert!(!issuer.authorized(Some("Basic x")));
    }

    #[test]
    fn issues_node_certificates_for_the_csr_keys() {
        let ca = ca();
        let issuer = NodeIdentityIssuer::new(ca.clone(), "s").unwrap();
        let (_ck, ccsr) = pki::new_key_and_csr("anything").unwrap();
        let (_sk, scsr) = pki::new_key_and_csr("anything").unwrap();
        let resp = issuer
            .issue(&NodeIdentityRequest {
                node_name: "worker-1".into(),
                addresses: vec!["10.0.0.7".parse().unwrap()],
                client_csr: ccsr.clone(),
                serving_csr: scsr,
            })
            .unwrap();
        let c = pki::cert_facts(&resp.client_certificate).unwrap();
        assert_eq!(c.common_name, "system:node:worker-1");
        assert_eq!(c.organizations, vec!["system:nodes"]);
        let s = pki::cert_facts(&resp.serving_certificate).unwrap();
        assert_eq!(s.sans, vec!["worker-1", "10.0.0.7"]);
        assert_eq!(resp.ca_certificate, ca.cert_pem);
        let bad = issuer.issue(&NodeIdentityRequest {
            node_name: "Bad_Name".into(),
            addresses: vec![],
            client_csr: ccsr.clone(),
            serving_csr: ccsr.clone(),
        });
        assert_eq!(bad.unwrap_err().code(), 400);
        let garbage = issuer.issue(&NodeIdentityRequest {
            node_name: "n".into(),
            addresses: vec![],
            client_csr: "not a csr".into(),
            serving_csr: ccsr,
        });
        assert_eq!(garbage.unwrap_err().code(), 400);
    }
}
