//! The shared store suite run against the etcd backend: each behaviour starts its own
//! single-member etcd (Debian's etcd-server) on free 127.0.0.1 ports and SIGKILLs it by PID
//! afterwards.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use store::etcd::{EtcdConfig, EtcdStore};
use store::testsuite::Fixture;
use store::Store;

/// A running etcd member, killed when dropped.
struct EtcdServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // SIGKILL: nothing to flush in a throw-away member
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into())
}

async fn make() -> Fixture {
    let bin = etcd_binary();
    assert!(
        std::path::Path::new(&bin).exists(),
        "{bin} not found: install etcd-server (apt-get install etcd-server) or set ETCD_BIN"
    );
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new(&bin)
        .args(["--name", "suite", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("suite={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd");
    let server = EtcdServer { child, _dir: dir };
    let config = EtcdConfig {
        endpoints: vec![client_url],
        connect_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let store = loop {
        match EtcdStore::connect(&config).await {
            Ok(store) if store.current_revision().await.is_ok() => break store,
            Ok(_) => {}
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "etcd did not start: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Fixture {
        store: Arc::new(store),
        guard: Box::new(server),
    }
}

store::store_testsuite!(make);
