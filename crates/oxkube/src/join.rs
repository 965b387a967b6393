//! The agent side of joining a cluster: fetch the cluster CA from `/cacerts`, check it against
//! the join token's hash, generate the node's keys locally, have the server sign a client
//! certificate (`system:node:<name>`) and a kubelet serving certificate with the join token,
//! and write `kubelet.kubeconfig`, the serving pair and `ca.crt`; reused on restart while valid.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use apiserver::join::{self, JoinToken, NodeIdentityRequest, NodeIdentityResponse};
use apiserver::pki::{self, CertPair};

/// Certificates are obtained again when less than this remains of them.
const RENEW_BEFORE_SECS: i64 = 30 * 86400;

/// The identity a node uses towards the cluster.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    pub node_name: String,
    pub server: String,
    /// Kubeconfig with the node's client certificate embedded.
    pub kubeconfig: PathBuf,
    /// The kubelet serving certificate and key (PEM files).
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    /// The cluster CA (PEM file).
    pub ca_cert: PathBuf,
    pub ca_pem: String,
    /// Whether the certificates were issued now (false: reused from `dir`).
    pub issued: bool,
}

struct Files {
    kubeconfig: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    ca_cert: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            kubeconfig: dir.join("kubelet.kubeconfig"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            serving_cert: dir.join("serving.crt"),
            serving_key: dir.join("serving.key"),
            ca_cert: dir.join("ca.crt"),
        }
    }
}

fn identity(
    files: &Files,
    node_name: &str,
    server: &str,
    ca_pem: String,
    issued: bool,
) -> NodeIdentity {
    NodeIdentity {
        node_name: node_name.to_string(),
        server: server.to_string(),
        kubeconfig: files.kubeconfig.clone(),
        serving_cert: files.serving_cert.clone(),
        serving_key: files.serving_key.clone(),
        ca_cert: files.ca_cert.clone(),
        ca_pem,
        issued,
    }
}

/// The stored identity, if complete, for this node and server, signed by `ca_pem`'s holder
/// (same CA file), and valid for a while yet.
fn reusable(
    files: &Files,
    node_name: &str,
    node_ips: &[IpAddr],
    server: &str,
    expected_ca_hash: Option<&str>,
) -> Option<String> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let ca = read(&files.ca_cert)?;
    if expected_ca_hash.is_some_and(|h| h != join::ca_hash(&ca)) {
        return None;
    }
    let kc = read(&files.kubeconfig)?;
    if !kc.contains(&format!("server: {server}\n")) {
        return None;
    }
    read(&files.client_key)?;
    read(&files.serving_key)?;
    let client = pki::cert_facts(&read(&files.client_cert)?)?;
    let serving = pki::cert_facts(&read(&files.serving_cert)?)?;
    let cn = format!("system:node:{node_name}");
    let sans_ok = std::iter::once(node_name.to_string())
        .chain(node_ips.iter().map(IpAddr::to_string))
        .all(|s| serving.sans.contains(&s));
    (client.common_name == cn
        && client.organizations == ["system:nodes"]
        && client.expires_in > RENEW_BEFORE_SECS
        && serving.expires_in > RENEW_BEFORE_SECS
        && sans_ok)
        .then_some(ca)
}

fn client_for(server: &str, root: Option<&str>) -> anyhow::Result<kube::Client> {
    let uri: http::Uri = server
        .parse()
        .with_context(|| format!("invalid server URL {server:?}"))?;
    let mut cfg = kube::Config::new(uri);
    match root {
        Some(pem) => {
            let ders = rustls_pemfile_certs(pem)?;
            cfg.root_cert = Some(ders);
        }
        // only for /cacerts, whose answer is checked against the token's hash
        None => cfg.accept_invalid_certs = true,
    }
    Ok(kube::Client::try_from(cfg)?)
}

/// DER certificates of a PEM bundle.
fn rustls_pemfile_certs(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in pem.lines() {
        let line = line.trim();
        if line == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if line == "-----END CERTIFICATE-----" {
            let b64 = cur.take().context("malformed PEM")?;
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .context("malformed PEM certificate")?,
            );
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    if out.is_empty() {
        bail!("no certificate in the CA bundle");
    }
    Ok(out)
}

/// Fetch the CA bundle from `<server>/cacerts` and check it against the token's hash.
pub async fn fetch_ca(server: &str, token: &JoinToken) -> anyhow::Result<String> {
    let client = client_for(server, None)?;
    let req = http::Request::get("/cacerts").body(Vec::new())?;
    let ca = client
        .request_text(req)
        .await
        .with_context(|| format!("fetching the cluster CA from {server}/cacerts"))?;
    match &token.ca_hash {
        Some(want) => {
            let got = join::ca_hash(&ca);
            if &got != want {
                bail!(
                    "the CA certificate served by {server} does not match the join token: its sha256 is {got}, the token expects {want}; check the server address and the token"
                );
            }
        }
        None => tracing::warn!(
            %server,
            "join token has no CA hash (short form): the cluster CA is trusted on first use"
        ),
    }
    Ok(ca)
}

/// Obtain (or reuse) this node's identity; see the module docs.
pub async fn node_identity(
    server: &str,
    token: &str,
    node_name: &str,
    node_ips: &[IpAddr],
    dir: &Path,
) -> anyhow::Result<NodeIdentity> {
    let server = server.trim_end_matches('/');
    let token = JoinToken::parse(token).context("parsing the join token")?;
    let files = Files::in_dir(dir);
    if let Some(ca) = reusable(
        &files,
        node_name,
        node_ips,
        server,
        token.ca_hash.as_deref(),
    ) {
        tracing::info!(node = %node_name, dir = %dir.display(), "reusing the node identity");
        return Ok(identity(&files, node_name, server, ca, false));
    }
    let ca = fetch_ca(server, &token).await?;
    let cn = format!("system:node:{node_name}");
    let (client_key, client_csr) = pki::new_key_and_csr(&cn)?;
    let (serving_key, serving_csr) = pki::new_key_and_csr(&cn)?;
    let ask = NodeIdentityRequest {
        node_name: node_name.to_string(),
        addresses: node_ips.to_vec(),
        client_csr,
        serving_csr,
    };
    let client = client_for(server, Some(&ca))?;
    let bearer = match &token.ca_hash {
        Some(h) => format!("K10{h}::{}:{}", token.user, token.secret),
        None => token.secret.clone(),
    };
    let req = http::Request::post(join::NODE_IDENTITY_PATH)
        .header(http::header::AUTHORIZATION, format!("Bearer {bearer}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&ask)?)?;
    let resp: NodeIdentityResponse = match client.request(req).await {
        Ok(r) => r,
        Err(kube::Error::Api(s)) if s.code == 401 => {
            bail!("the server {server} rejected the join token (401 Unauthorized)")
        }
        Err(e) => return Err(e).context("requesting the node identity"),
    };
    if resp.ca_certificate != ca {
        bail!("the server answered with another CA than it serves at /cacerts");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    pki::write_file(&files.ca_cert, ca.as_bytes(), 0o644)?;
    pki::write_file(&files.client_key, client_key.as_bytes(), 0o600)?;
    pki::write_file(
        &files.client_cert,
        resp.client_certificate.as_bytes(),
        0o644,
    )?;
    pki::write_file(&files.serving_key, serving_key.as_bytes(), 0o600)?;
    pki::write_file(
        &files.serving_cert,
        resp.serving_certificate.as_bytes(),
        0o644,
    )?;
    let creds = CertPair {
        cert_pem: resp.client_certificate,
        key_pem: client_key,
    };
    let kc = pki::kubeconfig(server, &ca, &cn, &creds);
    pki::write_file(&files.kubeconfig, kc.as_bytes(), 0o600)?;
    tracing::info!(node = %node_name, %server, "obtained the node identity");
    Ok(identity(&files, node_name, server, ca, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_identity_is_reused_only_when_it_fits() {
        let dir = tempfile::tempdir().unwrap();
        let p = pki::Pki::load_or_create(&dir.path().join("server"), &Default::default()).unwrap();
        let node_dir = dir.path().join("node");
        let files = Files::in_dir(&node_dir);
        let issuer = join::NodeIdentityIssuer::new(p.ca.clone(), "s").unwrap();
        let (ck, ccsr) = pki::new_key_and_csr("x").unwrap();
        let (sk, scsr) = pki::new_key_and_csr("x").unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let resp = issuer
            .issue(&NodeIdentityRequest {
                node_name: "n1".into(),
                addresses: vec![ip],
                client_csr: ccsr,
                serving_csr: scsr,
            })
            .unwrap();
        let server = "https://10.0.0.1:6443";
        pki::write_file(&files.ca_cert, p.ca.cert_pem.as_bytes(), 0o644).unwrap();
        pki::write_file(&files.client_key, ck.as_bytes(), 0o600).unwrap();
        pki::write_file(
            &files.client_cert,
            resp.client_certificate.as_bytes(),
            0o644,
        )
        .unwrap();
        pki::write_file(&files.serving_key, sk.as_bytes(), 0o600).unwrap();
        pki::write_file(
            &files.serving_cert,
            resp.serving_certificate.as_bytes(),
            0o644,
        )
        .unwrap();
        let creds = CertPair {
            cert_pem: resp.client_certificate.clone(),
            key_pem: ck,
        };
        pki::write_file(
            &files.kubeconfig,
            pki::kubeconfig(server, &p.ca.cert_pem, "system:node:n1", &creds).as_bytes(),
            0o600,
        )
        .unwrap();
        let hash = join::ca_hash(&p.ca.cert_pem);
        assert!(reusable(&files, "n1", &[ip], server, Some(&hash)).is_some());
        assert!(reusable(&files, "n1", &[ip], server, None).is_some());
        // another node name, a new address, another server or another CA: not reusable
        assert!(reusable(&files, "n2", &[ip], server, Some(&hash)).is_none());
        let other_ip: IpAddr = "10.9.9.9".parse().unwrap();
        assert!(reusable(&files, "n1", &[other_ip], server, Some(&hash)).is_none());
        assert!(reusable(&files, "n1", &[ip], "https://elsewhere:6443", Some(&hash)).is_none());
        assert!(reusable(&files, "n1", &[ip], server, Some(&"0".repeat(64))).is_none());
    }

    #[test]
    fn pem_bundles_split_into_ders() {
        let dir = tempfile::tempdir().unwrap();
        let p = pki::Pki::load_or_create(dir.path(), &Default::default()).unwrap();
        let bundle = format!("{}{}", p.ca.cert_pem, p.serving.cert_pem);
        let ders = rustls_pemfile_certs(&bundle).unwrap();
        assert_eq!(ders.len(), 2);
        assert!(pki::cert_facts_der(&ders[0]).is_some());
        assert!(rustls_pemfile_certs("nothing").is_err());
    }
}
