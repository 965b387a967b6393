//! End-to-end: `oxkube server --etcd-servers` keeps its state in a real etcd (Debian's
//! etcd-server, started by the test on loopback) and kubectl works the same.

mod common;

use std::process::Command;

use common::{start_etcd, Cluster};

#[test]
fn server_on_etcd_serves_kubectl_and_survives_restart() {
    let etcd = start_etcd();
    let mut c = Cluster::start_with(&["--etcd-servers", &etcd.url]);
    assert!(c
        .kubectl(&["get", "ns", "-o", "name"])
        .contains("namespace/kube-system"));
    c.kubectl(&["create", "configmap", "in-etcd", "--from-literal=a=b"]);
    c.kubectl(&["label", "configmap", "in-etcd", "x=y"]);
    c.kill9();
    c.spawn();
    assert_eq!(
        c.kubectl(&[
            "get",
            "cm",
            "in-etcd",
            "-o",
            "jsonpath={.metadata.labels.x}"
        ]),
        "y"
    );
    // the keys are in etcd itself
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.url,
            "get",
            "/registry/core/configmaps/default/in-etcd",
            "--keys-only",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/registry/core/configmaps/default/in-etcd")
    );
}
