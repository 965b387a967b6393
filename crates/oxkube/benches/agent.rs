//! Agent memory benchmark: an `oxkube agent` joined with --server/--token to a
//! `oxkube server --disable-agent`, running 20 pods (busybox `sleep`), then idle; prints the
//! agent's RSS (shims and containers are other processes, so they are excluded) with its anonymous
//! and file-backed parts, and the server's RSS beside it. Needs root.
//!
//! Run: `cargo bench -p oxkube --bench agent` (`OXKUBE_BIN` may point at another build; add
//! `-- pods=N` for another pod count, `settle=S` for another idle time in seconds).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};

fn drop_image(dir: &std::path::Path) {
    use runtime::testimage::{self, TestImage};
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let built = TestImage::busybox("busybox:1.36").unwrap().build();
    testimage::write_oci_archive(&images.join("busybox.tar"), &[&built]).unwrap();
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "agent-rss"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}],
        }
    }))
    .unwrap()
}

fn running(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.container_statuses
                .iter()
                .flatten()
                .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
    })
}

/// (VmRSS, RssAnon, RssFile) of a process in KiB.
fn rss(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The agent process; killed (it is also among the processes the cluster teardown kills).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_agent(c: &common::Cluster) -> Agent {
    let net = c
        .agent
        .clone()
        .expect("the cluster has agent network names");
    let token = std::fs::read_to_string(c.data_dir().join("token")).unwrap();
    let log = std::fs::File::create(c.data_dir().join("agent.log")).unwrap();
    // the agent shares the server's data dir (its state lives under agent/), so the cluster
    // teardown finds its containers, mounts and processes
    let child = Command::new(common::bin())
        .args([
            "agent",
            "--server",
            &c.url(),
            "--token",
            token.trim(),
            "--data-dir",
        ])
        .arg(c.data_dir())
        .args([
            "--node-name",
            &net.node_name,
            "--cni-bridge",
            &net.bridge,
            "--kubelet-port",
            &net.kubelet_port.to_string(),
            // the cluster's own table name: the teardown removes it (the default would be left
            // in the host's netns)
            "--proxy-table",
            &net.proxy_table(),
            "--eviction-hard",
            "memory.available<1Mi,nodefs.available<1%",
        ])
        .env("OXKUBE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn oxkube agent");
    Agent(child)
}

fn arg(name: &str, default: u64) -> u64 {
    std::env::args()
        .skip(1)
        .find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_string))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pods = arg("pods", 20) as usize;
    let settle = arg("settle", 10);
    let net = common::AgentNet::unique();
    // the server's own agent is disabled; the node flags it is given are unused by it
    let c = common::Cluster::start_with_agent_net(net.clone(), drop_image, &["--disable-agent"]);
    let agent = spawn_agent(&c);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = c.client().await;
        let nodes: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = nodes.get_opt(&net.node_name).await.ok().flatten().is_some_and(|n| {
                n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the agent's node did not become Ready; agent log:\n{}",
                common::tail(
                    &std::fs::read_to_string(c.data_dir().join("agent.log")).unwrap_or_default(),
                    30
                )
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        for i in 0..pods {
            api.create(&PostParams::default(), &pod(&format!("idle-{i}")))
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let list = api
                .list(&ListParams::default().labels("bench=agent-rss"))
                .await
                .unwrap();
            let n = list.items.iter().filter(|p| running(p)).count();
            if n == pods {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {n} of {pods} pods Running"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // idle: the pods run, the agent only heartbeats and relists
        tokio::time::sleep(Duration::from_secs(settle)).await;
        let (total, anon, file) = rss(agent.0.id());
        println!(
            "idle agent RSS with {pods} running pods (shims excluded): {:.1} MiB (anonymous {:.1} MiB, file-backed {:.1} MiB)",
            mib(total),
            mib(anon),
            mib(file)
        );
        let server = c.child.as_ref().map(|s| rss(s.id())).unwrap_or_default();
        println!(
            "server (--disable-agent) RSS beside it: {:.1} MiB (anonymous {:.1} MiB, file-backed {:.1} MiB)",
            mib(server.0),
            mib(server.1),
            mib(server.2)
        );
    });
    // the teardown deletes the pods through the running agent, then kills everything
    drop(c);
    drop(agent);
}
