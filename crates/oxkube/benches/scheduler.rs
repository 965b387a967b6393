//! Scheduler throughput end to end (release build): a real `oxkube server`, 5,000 Node objects
//! and 10,000 pods created through the API (32 concurrent kube-rs creates, as scheduler_perf's
//! high-QPS client) while the server's own scheduler binds them through pods/binding. Reports
//! the time from the first pod created to the last pod bound, seen by a watch (SchedulingBasic-
//! like, then with required pod anti-affinity), and, separately, binding throughput of an
//! in-process `scheduler::run` started after the pods were created.
//!
//! Run: `cargo bench -p oxkube --bench scheduler` (add `-- quick` for 1,000 nodes/2,000 pods,
//! `-- basic` for the basic case only; `OXKUBE_BIN=<path>` runs another build of the server).

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use serde_json::json;

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used so far, from /proc/<pid>/stat.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name (which may hold spaces) end with ')'
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `oxkube server` without an agent; `own_scheduler` keeps the server's own scheduler
/// (else the benchmark runs one in-process).
async fn start(own_scheduler: bool) -> (Server, Client) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // OXKUBE_BIN: another build of the server to compare (as the api bench)
    let bin = std::env::var("OXKUBE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxkube").into());
    let child = Command::new(bin)
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
            "--disable-agent",
        ])
        .args(if own_scheduler {
            &[][..]
        } else {
            &["--disable-scheduler"][..]
        })
        .env("OXKUBE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, _dir: dir };
    let kc = server._dir.path().join("kubeconfig.yaml");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if kc.exists() {
            if let Ok(c) = client_for(&kc).await {
                if c.apiserver_version().await.is_ok() {
                    return (server, c);
                }
            }
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client_for(kc: &Path) -> anyhow::Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(kc)?;
    let cfg = Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(Client::try_from(cfg)?)
}

async fn create_nodes(client: &Client, n: usize) {
    let api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("node-{i}");
                let node: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}}}))
                .unwrap();
                api.create(&PostParams::default(), &node).await.unwrap();
                let status = json!({"status": {
                    "allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                    "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

fn pod(i: usize, groups: Option<usize>) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]});
    let mut labels = json!({"app": "bench"});
    if let Some(groups) = groups {
        let g = format!("g{}", i % groups);
        labels["group"] = json!(g);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"group": g}}, "topologyKey": "kubernetes.io/hostname"}]}});
    }
    serde_json::from_value(
        json!({"metadata": {"name": format!("pod-{i}"), "labels": labels}, "spec": spec}),
    )
    .unwrap()
}

/// Creates the pods with 32 concurrent clients; returns when all are created and the time taken.
async fn create_pods(client: &Client, n: usize, groups: Option<usize>) -> Duration {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &pod(i, groups))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    t0.elapsed()
}

/// Resolves when `n` pods of the default namespace are bound, with the instant each was seen
/// bound.
async fn wait_all_bound(client: Client, n: usize) -> Vec<Instant> {
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut bound = HashSet::new();
    let mut at = Vec::with_capacity(n);
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev {
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                && bound.insert(p.metadata.name.unwrap())
            {
                at.push(Instant::now());
                if bound.len() >= n {
                    return at;
                }
            }
        }
    }
    unreachable!("watch ended")
}

/// scheduler_perf's throughput summary: pods bound in each whole second after `t0` (the last
/// partial second left out), as average and percentiles of the sorted samples like upstream.
fn per_second(t0: Instant, at: &[Instant]) -> String {
    let Some(last) = at.iter().max() else {
        return String::new();
    };
    let secs = last.duration_since(t0).as_secs() as usize;
    if secs == 0 {
        return "(under a second: no per-second samples)".into();
    }
    let mut buckets = vec![0u32; secs];
    for t in at {
        let i = t.duration_since(t0).as_secs() as usize;
        if i < secs {
            buckets[i] += 1;
        }
    }
    let avg = buckets.iter().sum::<u32>() as f64 / secs as f64;
    buckets.sort_unstable();
    let q = |p: f64| buckets[((secs as f64 - 1.0) * p).round() as usize];
    format!(
        "per second: avg {avg:.0}, p50 {}, p90 {}, p99 {} ({secs} samples)",
        q(0.5),
        q(0.9),
        q(0.99)
    )
}

fn start_scheduler(client: Client) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = scheduler::Config {
        leader_elect: false,
        ..Default::default()
    };
    tokio::spawn(scheduler::run(client, cfg, async move {
        let _ = rx.await;
    }));
    tx
}

/// The server's own scheduler (as deployed: its own HTTP/2 connection, leader election) binds
/// while the benchmark creates the pods.
async fn concurrent(name: &str, nodes: usize, pods: usize, groups: Option<usize>) {
    let (_server, client) = start(true).await;
    create_nodes(&client, nodes).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the scheduler's node cache catches up
    let waiter = tokio::spawn(wait_all_bound(client.clone(), pods));
    let server_pid = _server.child.id().to_string();
    let cpu0 = (cpu_time(&server_pid), cpu_time("self"));
    let t0 = Instant::now();
    let create = create_pods(&client, pods, groups).await;
    let at = waiter.await.unwrap();
    let dt = *at.iter().max().unwrap() - t0;
    let cpu = (cpu_time(&server_pid) - cpu0.0, cpu_time("self") - cpu0.1);
    println!(
        "{name}: {nodes} nodes, {pods} pods: first create to all bound {:.2} s = {:.0} pods/s (the creates took {:.2} s = {:.0} pods/s)\n  {}\n  CPU per pod (less sensitive to a loaded machine): server {:.3} ms, benchmark's clients and watch {:.3} ms",
        dt.as_secs_f64(),
        pods as f64 / dt.as_secs_f64(),
        create.as_secs_f64(),
        pods as f64 / create.as_secs_f64(),
        per_second(t0, &at),
        cpu.0.as_secs_f64() * 1000.0 / pods as f64,
        cpu.1.as_secs_f64() * 1000.0 / pods as f64,
    );
}

async fn precreated(name: &str, nodes: usize, pods: usize, groups: Option<usize>) {
    let (_server, client) = start(false).await;
    create_nodes(&client, nodes).await;
    create_pods(&client, pods, groups).await;
    let waiter = tokio::spawn(wait_all_bound(client.clone(), pods));
    let t0 = Instant::now();
    let stop = start_scheduler(client.clone());
    let at = waiter.await.unwrap();
    let dt = *at.iter().max().unwrap() - t0;
    println!(
        "{name}: {nodes} nodes, {pods} pending pods: scheduler start (incl. initial list) to all bound {:.2} s = {:.0} pods/s\n  {}",
        dt.as_secs_f64(),
        pods as f64 / dt.as_secs_f64(),
        per_second(t0, &at)
    );
    let _ = stop.send(());
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "quick");
    let (nodes, pods) = if quick { (1000, 2000) } else { (5000, 10000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let only_basic = std::env::args().any(|a| a == "basic");
    rt.block_on(async {
        concurrent("basic", nodes, pods, None).await;
        if only_basic {
            return;
        }
        concurrent(
            "required anti-affinity (groups of pods/100 by hostname)",
            nodes,
            pods,
            Some(100),
        )
        .await;
        precreated("basic, pods created first", nodes, pods, None).await;
    });
}
