//! End-to-end: `oxkube server --etcd-servers` keeps its state in a real etcd (Debian's
//! etcd-server, started by the test on loopback) and kubectl works the same.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Cluster};

struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGKILL: etcd without quorum hangs on SIGTERM
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let child = Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into()))
        .args(["--name", "e2e", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("e2e={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd (apt-get install etcd-server)");
    let e = Etcd {
        child,
        _dir: dir,
        url,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = e.url.rsplit(':').next().unwrap().to_string();
    while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    e
}

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
