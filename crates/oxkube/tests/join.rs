//! End-to-end: joining a node. The server stores a join token (mode 0600) whose CA hash
//! matches `/cacerts`; `oxkube::join::node_identity` obtains a working node identity with it
//! (kubectl as system:node:<name>, serving certificate for the node's name and addresses),
//! reuses it on restart; a bad token gets 401 and a wrong CA hash a clear error.

mod common;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

use apiserver::join::{ca_hash, JoinToken};
use common::Cluster;
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn join_token_issues_a_working_node_identity() {
    let c = Cluster::start();
    let token_path = c.data_dir().join("token");
    let mode = match std::fs::metadata(&token_path) {
        Ok(m) => m.permissions().mode(),
        Err(e) => panic!(
            "{}: {e}; data dir: {:?}\nserver log:\n{}",
            token_path.display(),
            std::fs::read_dir(c.data_dir())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>(),
            c.log()
        ),
    };
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    let ca = std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap();
    let parsed = JoinToken::parse(&token).unwrap();
    assert_eq!(parsed.ca_hash.as_deref(), Some(ca_hash(&ca).as_str()));
    assert_eq!(parsed.user, "node");
    // /cacerts needs no (valid) credentials
    let anon = c.data_dir().join("anonymous.kubeconfig");
    std::fs::write(
        &anon,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {}\n    insecure-skip-tls-verify: true\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: not-a-credential}}\n", c.url()),
    )
    .unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&anon)
        .args(["get", "--raw", "/cacerts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), ca);

    let node_dir = tempfile::tempdir().unwrap();
    let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.20.30.40".parse().unwrap()];
    let rt = rt();
    let id = rt
        .block_on(oxkube::join::node_identity(
            &c.url(),
            &token,
            "worker-1",
            &ips,
            node_dir.path(),
        ))
        .expect("join succeeds");
    assert!(id.issued);
    assert_eq!(id.ca_pem, ca);
    let key_mode = std::fs::metadata(node_dir.path().join("client.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let serving =
        apiserver::pki::cert_facts(&std::fs::read_to_string(&id.serving_cert).unwrap()).unwrap();
    assert_eq!(serving.common_name, "system:node:worker-1");
    for san in ["worker-1", "127.0.0.1", "10.20.30.40"] {
        assert!(
            serving.sans.contains(&san.to_string()),
            "{:?}",
            serving.sans
        );
    }
    assert!(std::fs::read_to_string(&id.serving_key)
        .unwrap()
        .contains("PRIVATE KEY"));

    // the kubeconfig works, as the node
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&id.kubeconfig)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["auth", "whoami", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:node:worker-1"
    );
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(groups.contains("system:nodes"), "{groups}");

    // restart: the stored identity is reused, not re-issued
    let client_cert = std::fs::read_to_string(node_dir.path().join("client.crt")).unwrap();
    let again = rt
        .block_on(oxkube::join::node_identity(
            &c.url(),
            &token,
            "worker-1",
            &ips,
            node_dir.path(),
        ))
        .unwrap();
    assert!(!again.issued);
    assert_eq!(
        std::fs::read_to_string(node_dir.path().join("client.crt")).unwrap(),
        client_cert
    );

    // a wrong secret: 401
    let bad = JoinToken::format(&ca, "not-the-secret");
    let err = rt
        .block_on(oxkube::join::node_identity(
            &c.url(),
            &bad,
            "worker-2",
            &ips,
            tempfile::tempdir().unwrap().path(),
        ))
        .unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");

    // a token for another CA: refused before anything is sent
    let other_ca = format!("K10{}::node:{}", "ab".repeat(32), parsed.secret);
    let dir3 = tempfile::tempdir().unwrap();
    let err = rt
        .block_on(oxkube::join::node_identity(
            &c.url(),
            &other_ca,
            "worker-3",
            &ips,
            dir3.path(),
        ))
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("does not match the join token"), "{msg}");
    assert!(!dir3.path().join("kubelet.kubeconfig").exists());

    // the server restarted keeps its token
    let mut c = c;
    c.stop();
    c.spawn();
    assert_eq!(std::fs::read_to_string(&token_path).unwrap().trim(), token);
}
