//! The cluster PKI: an ECDSA cluster CA, the API serving certificate and the admin client
//! certificate, created on first start under `<data-dir>/tls/` and reused afterwards; plus the
//! admin kubeconfig.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: not a valid PEM certificate or key")]
    BadPem { path: PathBuf },
}

type Result<T> = std::result::Result<T, PkiError>;

/// The user of the API server's kubelet client certificate.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// Days a leaf certificate is valid; it is re-issued at start when less than RENEW_DAYS remain.
const LEAF_DAYS: i64 = 365;
const RENEW_DAYS: i64 = 90;
const CA_DAYS: i64 = 3650;

/// PEM material of one certificate with its key.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The loaded cluster PKI.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca: CertPair,
    pub serving: CertPair,
    pub admin: CertPair,
    /// Key that signs service account tokens (ECDSA P-256, PKCS#8 PEM).
    pub service_account_key_pem: String,
}

/// What the serving certificate must cover.
#[derive(Clone, Debug, Default)]
pub struct ServingNames {
    pub hostname: String,
    pub ips: Vec<IpAddr>,
    /// The first IP of the service CIDR (the `kubernetes` service).
    pub service_ip: Option<IpAddr>,
    pub extra_dns: Vec<String>,
}

impl ServingNames {
    /// Every SAN the serving certificate must carry, in a stable order.
    pub fn sans(&self) -> Vec<String> {
        let mut out = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        if !self.hostname.is_empty() {
            out.push(self.hostname.clone());
        }
        for ip in &self.ips {
            out.push(ip.to_string());
        }
        for n in [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            out.push(n.to_string());
        }
        if let Some(ip) = self.service_ip {
            out.push(ip.to_string());
        }
        out.extend(self.extra_dns.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        out.retain(|s| seen.insert(s.clone()));
        out
    }
}

fn read(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Write a file atomically (temp + rename) with the given mode.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| PkiError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn validity(days: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (
        now - time::Duration::minutes(5),
        now + time::Duration::days(days),
    )
}

fn new_key() -> Result<KeyPair> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "oxkube-ca");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let (nb, na) = validity(CA_DAYS);
    p.not_before = nb;
    p.not_after = na;
    p
}

/// The parameters of a leaf certificate: subject, SANs (IPs or DNS names), key usages.
fn leaf_params(
    common_name: &str,
    organizations: &[String],
    sans: &[String],
    server: bool,
    client: bool,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(s.clone().try_into()?)),
        })
        .collect::<std::result::Result<_, rcgen::Error>>()?;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if server {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if client {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    p.use_authority_key_identifier_extension = true;
    let (nb, na) = validity(LEAF_DAYS);
    p.not_before = nb;
    p.not_after = na;
    Ok(p)
}

/// Issue a leaf certificate signed by the CA.
pub fn issue(
    ca: &CertPair,
    common_name: &str,
    organizations: &[String],
    sans: &[String],
    server: bool,
    client: bool,
) -> Result<CertPair> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = new_key()?;
    let p = leaf_params(common_name, organizations, sans, server, client)?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Sign the public key of a PEM certificate signing request (its signature checked) as a leaf
/// with the given subject and SANs; whatever subject or extensions the request asks for are
/// ignored. Returns the certificate PEM.
pub fn sign_csr(
    ca: &CertPair,
    csr_pem: &str,
    common_name: &str,
    organizations: &[String],
    sans: &[String],
    server: bool,
    client: bool,
) -> Result<String> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)?;
    csr.params = leaf_params(common_name, organizations, sans, server, client)?;
    Ok(csr.signed_by(&issuer)?.pem())
}

/// A new ECDSA P-256 key (PKCS#8 PEM) and a certificate signing request for it.
pub fn new_key_and_csr(common_name: &str) -> Result<(String, String)> {
    let key = new_key()?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    let csr = p.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// Facts read back from a PEM certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub sans: Vec<String>,
    /// Seconds until expiry (negative when expired).
    pub expires_in: i64,
}

/// Parse a DER certificate into the facts authentication and renewal need.
pub fn cert_facts_der(der: &[u8]) -> Option<CertFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip: Option<IpAddr> = match b.len() {
                        4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?)),
                        16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?)),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let now = x509_parser::time::ASN1Time::now().timestamp();
    let expires_in = cert.validity().not_after.timestamp() - now;
    Some(CertFacts {
        common_name,
        organizations,
        sans,
        expires_in,
    })
}

fn pem_der(pem_text: &str) -> Option<Vec<u8>> {
    let mut rd = std::io::BufReader::new(pem_text.as_bytes());
    let first = rustls_pemfile::certs(&mut rd)
        .next()?
        .ok()
        .map(|c| c.to_vec());
    first
}

/// Facts of a PEM certificate.
pub fn cert_facts(pem_text: &str) -> Option<CertFacts> {
    cert_facts_der(&pem_der(pem_text)?)
}

fn load_pair(dir: &Path, name: &str) -> Result<Option<CertPair>> {
    let c = read(&dir.join(format!("{name}.crt")))?;
    let k = read(&dir.join(format!("{name}.key")))?;
    Ok(match (c, k) {
        (Some(cert_pem), Some(key_pem)) => Some(CertPair { cert_pem, key_pem }),
        _ => None,
    })
}

fn store_pair(dir: &Path, name: &str, pair: &CertPair) -> Result<()> {
    write_file(
        &dir.join(format!("{name}.key")),
        pair.key_pem.as_bytes(),
        0o600,
    )?;
    write_file(
        &dir.join(format!("{name}.crt")),
        pair.cert_pem.as_bytes(),
        0o644,
    )
}

/// Whether a stored leaf must be re-issued: unparsable, expiring soon, or missing a wanted SAN.
fn needs_reissue(pair: &CertPair, wanted_sans: &[String]) -> bool {
    match cert_facts(&pair.cert_pem) {
        None => true,
        Some(f) => {
            f.expires_in < RENEW_DAYS * 86400 || wanted_sans.iter().any(|s| !f.sans.contains(s))
        }
    }
}

impl Pki {
    /// Load the PKI from `<data_dir>/tls`, creating what is missing and renewing leaves that
    /// expire soon or lack a SAN.
    pub fn load_or_create(data_dir: &Path, names: &ServingNames) -> Result<Pki> {
        let dir = data_dir.join("tls");
        let ca = match load_pair(&dir, "ca")? {
            Some(p) => {
                if cert_facts(&p.cert_pem).is_none() {
                    return Err(PkiError::BadPem {
                        path: dir.join("ca.crt"),
                    });
                }
                p
            }
            None => {
                let key = new_key()?;
                let cert = ca_params().self_signed(&key)?;
                let p = CertPair {
                    cert_pem: cert.pem(),
                    key_pem: key.serialize_pem(),
                };
                store_pair(&dir, "ca", &p)?;
                p
            }
        };
        let sans = names.sans();
        let serving = match load_pair(&dir, "serving")? {
            Some(p) if !needs_reissue(&p, &sans) => p,
            _ => {
                let p = issue(&ca, "kube-apiserver", &[], &sans, true, false)?;
                store_pair(&dir, "serving", &p)?;
                p
            }
        };
        let admin = match load_pair(&dir, "admin")? {
            Some(p) if !needs_reissue(&p, &[]) => p,
            _ => {
                let p = issue(
                    &ca,
                    "system:admin",
                    &["system:masters".to_string()],
                    &[],
                    false,
                    true,
                )?;
                store_pair(&dir, "admin", &p)?;
                p
            }
        };
        let sa_path = dir.join("service-account.key");
        let service_account_key_pem = match read(&sa_path)? {
            Some(k) => k,
            None => {
                let k = new_key()?.serialize_pem();
                write_file(&sa_path, k.as_bytes(), 0o600)?;
                k
            }
        };
        Ok(Pki {
            dir,
            ca,
            serving,
            admin,
            service_account_key_pem,
        })
    }

    /// A client certificate for a component (CN = user, O = groups), created on first use and
    /// renewed when it expires soon; stored as `tls/<file>.crt|key`.
    pub fn component_cert(
        &self,
        file: &str,
        common_name: &str,
        organizations: &[String],
    ) -> Result<CertPair> {
        match load_pair(&self.dir, file)? {
            Some(p)
                if !needs_reissue(&p, &[])
                    && cert_facts(&p.cert_pem).is_some_and(|f| f.common_name == common_name) =>
            {
                Ok(p)
            }
            _ => {
                let p = issue(&self.ca, common_name, organizations, &[], false, true)?;
                store_pair(&self.dir, file, &p)?;
                Ok(p)
            }
        }
    }

    /// The API server's client certificate for kubelets (CN `kube-apiserver-kubelet-client`,
    /// O `system:masters`, as kubeadm issues it), stored as `tls/apiserver-kubelet-client.*`.
    pub fn kubelet_client_cert(&self) -> Result<CertPair> {
        self.component_cert(
            "apiserver-kubelet-client",
            KUBELET_CLIENT_USER,
            &["system:masters".to_string()],
        )
    }

    /// A kubelet serving certificate for `node_name` (CN `system:node:<name>`, O `system:nodes`,
    /// SANs: the node name and its IPs), issued by the cluster CA; stored as
    /// `tls/kubelet/<node>.crt|key` and reused until it expires soon or lacks a SAN.
    pub fn kubelet_serving_cert(&self, node_name: &str, ips: &[IpAddr]) -> Result<CertPair> {
        let mut sans = vec![node_name.to_string()];
        sans.extend(ips.iter().map(|ip| ip.to_string()));
        let dir = self.dir.join("kubelet");
        let cn = format!("system:node:{node_name}");
        match load_pair(&dir, node_name)? {
            Some(p)
                if !needs_reissue(&p, &sans)
                    && cert_facts(&p.cert_pem).is_some_and(|f| f.common_name == cn) =>
            {
                Ok(p)
            }
            _ => {
                let p = issue(
                    &self.ca,
                    &cn,
                    &["system:nodes".to_string()],
                    &sans,
                    true,
                    false,
                )?;
                store_pair(&dir, node_name, &p)?;
                Ok(p)
            }
        }
    }

    /// The admin kubeconfig for a server URL, with the credentials embedded.
    pub fn admin_kubeconfig(&self, server_url: &str) -> String {
        kubeconfig(server_url, &self.ca.cert_pem, "admin", &self.admin)
    }
}

/// A kubeconfig with one cluster, user and context named `default`, credentials embedded.
pub fn kubeconfig(server_url: &str, ca_pem: &str, user: &str, creds: &CertPair) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: {}\n  name: default\ncurrent-context: default\npreferences: {{}}\nusers:\n- name: {}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        server_url,
        user,
        user,
        b64(&creds.cert_pem),
        b64(&creds.key_pem)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ServingNames {
        ServingNames {
            hostname: "node-a".into(),
            ips: vec!["10.0.0.5".parse().unwrap()],
            service_ip: Some("10.43.0.1".parse().unwrap()),
            extra_dns: vec![],
        }
    }

    #[test]
    fn creates_then_reuses_pki() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &names()).unwrap();
        let facts = cert_facts(&a.serving.cert_pem).unwrap();
        for want in [
            "127.0.0.1",
            "localhost",
            "node-a",
            "10.0.0.5",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.43.0.1",
        ] {
            assert!(
                facts.sans.contains(&want.to_string()),
                "missing SAN {want}: {:?}",
                facts.sans
            );
        }
        let admin = cert_facts(&a.admin.cert_pem).unwrap();
        assert_eq!(admin.common_name, "system:admin");
        assert_eq!(admin.organizations, vec!["system:masters"]);
        assert!(admin.expires_in > 300 * 86400);
        let b = Pki::load_or_create(dir.path(), &names()).unwrap();
        assert_eq!(a.ca.cert_pem, b.ca.cert_pem);
        assert_eq!(a.serving.cert_pem, b.serving.cert_pem);
        assert_eq!(a.admin.key_pem, b.admin.key_pem);
        assert_eq!(a.service_account_key_pem, b.service_account_key_pem);
    }

    #[test]
    fn new_node_ip_reissues_serving_cert_with_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &names()).unwrap();
        let mut n = names();
        n.ips.push("192.168.7.7".parse().unwrap());
        let b = Pki::load_or_create(dir.path(), &n).unwrap();
        assert_eq!(a.ca.cert_pem, b.ca.cert_pem);
        assert_ne!(a.serving.cert_pem, b.serving.cert_pem);
        assert!(cert_facts(&b.serving.cert_pem)
            .unwrap()
            .sans
            .contains(&"192.168.7.7".to_string()));
    }

    #[test]
    fn component_certs_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pki::load_or_create(dir.path(), &names()).unwrap();
        let a = p
            .component_cert("scheduler", "system:kube-scheduler", &[])
            .unwrap();
        let b = p
            .component_cert("scheduler", "system:kube-scheduler", &[])
            .unwrap();
        assert_eq!(a.cert_pem, b.cert_pem);
        assert_eq!(
            cert_facts(&a.cert_pem).unwrap().common_name,
            "system:kube-scheduler"
        );
    }

    #[test]
    fn node_cert_carries_the_nodes_group() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pki::load_or_create(dir.path(), &names()).unwrap();
        let c = p
            .component_cert("kubelet", "system:node:n1", &["system:nodes".to_string()])
            .unwrap();
        let f = cert_facts(&c.cert_pem).unwrap();
        assert_eq!(f.common_name, "system:node:n1");
        assert_eq!(f.organizations, vec!["system:nodes".to_string()]);
        // another node name is another identity: re-issued
        let d = p
            .component_cert("kubelet", "system:node:n2", &["system:nodes".to_string()])
            .unwrap();
        assert_eq!(
            cert_facts(&d.cert_pem).unwrap().common_name,
            "system:node:n2"
        );
    }

    #[test]
    fn kubeconfig_embeds_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pki::load_or_create(dir.path(), &names()).unwrap();
        let kc = p.admin_kubeconfig("https://127.0.0.1:6443");
        assert!(kc.contains("server: https://127.0.0.1:6443"));
        let v: serde_yaml::Value = serde_yaml::from_str(&kc).unwrap();
        let data = v["users"][0]["user"]["client-certificate-data"]
            .as_str()
            .unwrap();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(String::from_utf8(pem).unwrap(), p.admin.cert_pem);
    }

    #[test]
    fn kubelet_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pki::load_or_create(dir.path(), &names()).unwrap();
        let c = p.kubelet_client_cert().unwrap();
        let f = cert_facts(&c.cert_pem).unwrap();
        assert_eq!(f.common_name, "kube-apiserver-kubelet-client");
        assert_eq!(f.organizations, vec!["system:masters"]);
        assert!(dir.path().join("tls/apiserver-kubelet-client.crt").exists());
        assert_eq!(p.kubelet_client_cert().unwrap().cert_pem, c.cert_pem);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let s = p.kubelet_serving_cert("node-a", &[ip]).unwrap();
        let f = cert_facts(&s.cert_pem).unwrap();
        assert_eq!(f.common_name, "system:node:node-a");
        assert_eq!(f.organizations, vec!["system:nodes"]);
        assert_eq!(f.sans, vec!["node-a".to_string(), "10.1.2.3".to_string()]);
        assert!(dir.path().join("tls/kubelet/node-a.key").exists());
        assert_eq!(
            p.kubelet_serving_cert("node-a", &[ip]).unwrap().cert_pem,
            s.cert_pem
        );
        // a new node IP re-issues it
        let ip2: IpAddr = "10.9.9.9".parse().unwrap();
        let s2 = p.kubelet_serving_cert("node-a", &[ip, ip2]).unwrap();
        assert_ne!(s2.cert_pem, s.cert_pem);
        assert!(cert_facts(&s2.cert_pem)
            .unwrap()
            .sans
            .contains(&"10.9.9.9".to_string()));
    }
}
