//! API server benchmark (release build, embedded SQLite): cold start to /readyz, idle RSS with
//! 1,000 configmaps, create latency at 200/s, create throughput with 16 clients, LIST of 10,000
//! pods, and write-to-watcher latency with 500 watchers. Prints medians of several runs.
//!
//! Run: `cargo bench -p oxkube --bench api` (add `-- quick` for a shorter run; name sections
//! to run only those: `cold`, `writes`, `list`, `watch`). `OXKUBE_BIN` may point at another
//! build (to compare two binaries back to back).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Config};

struct Server {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary: `OXKUBE_BIN` or this build's.
fn bin() -> String {
    std::env::var("OXKUBE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxkube").to_string())
}

fn spawn(dir: &Path, port: u16) -> Child {
    spawn_with(dir, port, &[])
}

fn spawn_with(dir: &Path, port: u16, extra: &[&str]) -> Child {
    Command::new(bin())
        .args(["server", "--data-dir"])
        .arg(dir)
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
            "--disable-agent",
        ])
        .args(extra)
        .env("OXKUBE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn client_for(dir: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(dir.join("kubeconfig.yaml")).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// Spawn a server and return the time until /readyz answered 200.
async fn start(dir: tempfile::TempDir, port: u16) -> (Server, Duration) {
    let t0 = Instant::now();
    let child = spawn(dir.path(), port);
    let elapsed = wait_ready(dir.path(), t0).await;
    (Server { child, dir, port }, elapsed)
}

async fn wait_ready(dir: &Path, t0: Instant) -> Duration {
    let mut client = None;
    loop {
        if client.is_none() && dir.join("kubeconfig.yaml").exists() {
            client = Some(client_for(dir).await);
        }
        if let Some(c) = &client {
            let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
            if c.request_text(req).await.is_ok() {
                return t0.elapsed();
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": {"bench": "yes"}}, "data": {"k": "v".repeat(64)}})).unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "backend", "release": "stable"},
                     "annotations": {"note": "x".repeat(200)}},
        "spec": {"containers": [{"name": "c", "image": "registry.example.com/team/app:1.2.3",
                 "command": ["/bin/app", "--port=8080"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}],
                 "ports": [{"containerPort": 8080}]}]}
    }))
    .unwrap()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// ` (anonymous A MiB, file-backed F MiB)`: the file-backed part is the binary's mapped code
/// and data.
fn rss_parts(pid: u32) -> String {
    format!(
        " (anonymous {:.1} MiB, file-backed {:.1} MiB)",
        status_kib(pid, "RssAnon:") as f64 / 1024.0,
        status_kib(pid, "RssFile:") as f64 / 1024.0
    )
}

async fn bench_cold_start(runs: usize) {
    let mut first = Vec::new();
    let mut restart = Vec::new();
    for _ in 0..runs {
        let (mut s, d) = start(tempfile::tempdir().unwrap(), free_port()).await;
        first.push(d);
        let _ = s.child.kill();
        let _ = s.child.wait();
        let t0 = Instant::now();
        s.child = spawn(s.dir.path(), s.port);
        restart.push(wait_ready(s.dir.path(), t0).await);
    }
    println!(
        "cold start to /readyz 200, empty data dir (PKI generated): median {} (min {}, max {})",
        ms(pct(&mut first, 0.5)),
        ms(first[0]),
        ms(*first.last().unwrap())
    );
    println!(
        "restart to /readyz 200, existing data dir:                 median {} (min {}, max {})",
        ms(pct(&mut restart, 0.5)),
        ms(restart[0]),
        ms(*restart.last().unwrap())
    );
}

async fn create_many(api: &Api<ConfigMap>, prefix: &str, n: usize, parallel: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let name = format!("{prefix}-{i}");
            async move {
                api.create(&PostParams::default(), &cm(&name))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(parallel)
        .for_each(|_| async {})
        .await;
}

/// RSS of a server holding 1,000 configmaps, with the given extra flags, and its parts.
async fn rss_with_configmaps(extra: &[&str]) -> (u64, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let t0 = Instant::now();
    let child = spawn_with(dir.path(), port, extra);
    wait_ready(dir.path(), t0).await;
    let s = Server { child, dir, port };
    let api: Api<ConfigMap> = Api::namespaced(client_for(s.dir.path()).await, "default");
    create_many(&api, "idle", 1000, 16).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    (rss_kib(s.child.id()) / 1024, rss_parts(s.child.id()))
}

async fn bench_rss_and_creates(quick: bool) {
    let (api_only, parts) =
        rss_with_configmaps(&["--disable-scheduler", "--disable-controller-manager"]).await;
    println!("RSS of an idle API server (no scheduler/controllers) holding 1,000 configmaps: {api_only} MiB{parts}");
    let (s, _) = start(tempfile::tempdir().unwrap(), free_port()).await;
    let client = client_for(s.dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    create_many(&api, "idle", 1000, 16).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "RSS of an idle server with scheduler and controller manager holding 1,000 configmaps: {} MiB{}",
        rss_kib(s.child.id()) / 1024,
        rss_parts(s.child.id())
    );

    // latency at 200 creates/s from one keep-alive client
    let n = if quick { 400 } else { 2000 };
    let mut lat = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for i in 0..n {
        tick.tick().await;
        let t = Instant::now();
        api.create(&PostParams::default(), &cm(&format!("paced-{i}")))
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    let p50 = pct(&mut lat, 0.5);
    let p99 = pct(&mut lat, 0.99);
    println!(
        "create configmap at 200/s, one client: p50 {} p99 {} ({n} creates)",
        ms(p50),
        ms(p99)
    );

    // throughput with 16 concurrent clients (each its own connection)
    let secs = if quick { 3 } else { 8 };
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(client_for(s.dir.path()).await);
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, c)| {
            tokio::spawn(async move {
                let api: Api<ConfigMap> = Api::namespaced(c, "default");
                let mut n = 0u64;
                while Instant::now() < deadline {
                    api.create(&PostParams::default(), &cm(&format!("tp-{w}-{n}")))
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    println!(
        "creates/s sustained with 16 concurrent clients: {:.0} ({total} in {:.1} s)",
        total as f64 / t0.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

async fn bench_list_pods(quick: bool) {
    let (s, _) = start(tempfile::tempdir().unwrap(), free_port()).await;
    let client = client_for(s.dir.path()).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let n = if quick { 2000 } else { 10_000 };
    futures::stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                pods.create(&PostParams::default(), &pod(&format!("pod-{i}")))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;
    let sample = serde_json::to_vec(&pods.get("pod-0").await.unwrap())
        .unwrap()
        .len();
    let all: Api<Pod> = Api::all(client.clone());
    let mut lat = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let l = all.list(&ListParams::default()).await.unwrap();
        lat.push(t.elapsed());
        assert_eq!(l.items.len(), n);
    }
    println!(
        "LIST of {n} pods (~{sample} B each, client decode included): p50 {}",
        ms(pct(&mut lat, 0.5))
    );
    let mut raw_lat = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let req = http::Request::get("/api/v1/pods").body(Vec::new()).unwrap();
        let body = client.request_text(req).await.unwrap();
        raw_lat.push(t.elapsed());
        assert!(body.len() > n * 500);
    }
    println!(
        "LIST of {n} pods, raw bytes (no client decode): p50 {}",
        ms(pct(&mut raw_lat, 0.5))
    );
    drop(s);
}

async fn bench_watch_fanout(quick: bool) {
    let (s, _) = start(tempfile::tempdir().unwrap(), free_port()).await;
    let watchers = if quick { 100 } else { 500 };
    let writes = if quick { 20 } else { 50 };
    // watchers spread over 10 connections
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(client_for(s.dir.path()).await);
    }
    let writer: Api<ConfigMap> = Api::namespaced(client_for(s.dir.path()).await, "default");
    let rv = writer
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let ready = Arc::new(tokio::sync::Barrier::new(watchers + 1));
    for w in 0..watchers {
        let api: Api<ConfigMap> = Api::namespaced(clients[w % clients.len()].clone(), "default");
        let tx = tx.clone();
        let rv = rv.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut st = api
                .watch(&WatchParams::default().timeout(290), &rv)
                .await
                .unwrap()
                .boxed();
            ready.wait().await;
            while let Ok(Some(ev)) = st.try_next().await {
                if let WatchEvent::Added(o) = ev {
                    let _ = tx.send((o.metadata.name.unwrap(), Instant::now()));
                }
            }
        });
    }
    ready.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lat = Vec::new();
    for i in 0..writes {
        let name = format!("fan-{i}");
        writer
            .create(&PostParams::default(), &cm(&name))
            .await
            .unwrap();
        let acked = Instant::now();
        let mut got = 0;
        while got < watchers {
            let (n, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if n == name {
                lat.push(at.saturating_duration_since(acked));
                got += 1;
            }
        }
    }
    println!(
        "write to {watchers} watchers after the create is acknowledged: p50 {} p99 {} ({writes} writes)",
        ms(pct(&mut lat, 0.5)),
        ms(pct(&mut lat, 0.99))
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = args.iter().any(|a| a == "quick");
    let sections = ["cold", "writes", "list", "watch"];
    let chosen: Vec<&str> = sections
        .iter()
        .copied()
        .filter(|s| args.iter().any(|a| a == s))
        .collect();
    let run = |name: &str| chosen.is_empty() || chosen.contains(&name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if run("cold") {
            bench_cold_start(if quick { 3 } else { 7 }).await;
        }
        if run("writes") {
            bench_rss_and_creates(quick).await;
        }
        if run("list") {
            bench_list_pods(quick).await;
        }
        if run("watch") {
            bench_watch_fanout(quick).await;
        }
    });
}
