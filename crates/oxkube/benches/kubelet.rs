//! Kubelet benchmark (one node: `oxkube server` with its agent and the embedded runtime, image
//! present): pod created until Running is seen through a watch (p50/p99 of sequential pods), a
//! burst of 20 pods until all Running, and a crashed container's first restart (exit to the
//! replacement's start, from the runtime's own timestamps, split at the replacement's creation).
//! Prints the figures. Needs root.
//!
//! Run: `cargo bench -p oxkube --bench kubelet` (`OXKUBE_BIN` may point at another build).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::Client;

fn drop_image(dir: &std::path::Path) {
    use runtime::testimage::{self, TestImage};
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let built = TestImage::busybox("busybox:1.36").unwrap().build();
    testimage::write_oci_archive(&images.join("busybox.tar"), &[&built]).unwrap();
}

fn pod(name: &str, command: &[&str]) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:1.36", "command": command}],
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

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// Watches `names` from `rv` until each is Running; returns when each was seen so.
async fn wait_running(api: &Api<Pod>, rv: &str, names: &[String]) -> Vec<(String, Instant)> {
    let mut seen: Vec<(String, Instant)> = Vec::new();
    let mut stream = api
        .watch(&WatchParams::default().timeout(120), rv)
        .await
        .unwrap()
        .boxed();
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Modified(p) | WatchEvent::Added(p) = ev {
            let n = p.metadata.name.clone().unwrap_or_default();
            if names.contains(&n) && running(&p) && !seen.iter().any(|(s, _)| *s == n) {
                seen.push((n, Instant::now()));
                if seen.len() == names.len() {
                    break;
                }
            }
        }
    }
    seen
}

async fn client(c: &common::Cluster) -> Client {
    let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = common::Cluster::start_with_agent(drop_image, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = client(&c).await;
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        // wait for the node to be usable: a first pod reaches Running
        let warm = api.create(&PostParams::default(), &pod("warm", &["sleep", "3600"])).await.unwrap();
        let rv = warm.metadata.resource_version.clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if api.get("warm").await.map(|p| running(&p)).unwrap_or(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = rv;

        // 1. sequential pods: create -> Running seen via watch
        let n = 30;
        let mut lat = Vec::new();
        for i in 0..n {
            let name = format!("seq-{i}");
            let t0 = Instant::now();
            let created = api
                .create(&PostParams::default(), &pod(&name, &["sleep", "3600"]))
                .await
                .unwrap();
            let rv = created.metadata.resource_version.clone().unwrap();
            let seen = wait_running(&api, &rv, std::slice::from_ref(&name)).await;
            lat.push(seen[0].1.duration_since(t0).as_secs_f64() * 1000.0);
            let _ = api.delete(&name, &DeleteParams::default().grace_period(0)).await;
        }
        let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
        println!("pod create -> Running (watch), {n} sequential pods: p50 {p50:.0} ms, p99 {p99:.0} ms");

        // let the deletions settle
        tokio::time::sleep(Duration::from_secs(3)).await;

        // 2. a burst of 20 pods
        let names: Vec<String> = (0..20).map(|i| format!("burst-{i}")).collect();
        let list = api.list(&Default::default()).await.unwrap();
        let rv = list.metadata.resource_version.clone().unwrap();
        let t0 = Instant::now();
        let creates = names.iter().map(|n| {
            let api = api.clone();
            let p = pod(n, &["sleep", "3600"]);
            async move { api.create(&PostParams::default(), &p).await.unwrap() }
        });
        let (_, seen) = tokio::join!(futures::future::join_all(creates), wait_running(&api, &rv, &names));
        let all = seen.iter().map(|(_, t)| t.duration_since(t0)).max().unwrap();
        println!("burst of 20 pods: all Running after {:.0} ms", all.as_secs_f64() * 1000.0);
        let rss = std::fs::read_to_string(format!("/proc/{}/status", c.child.as_ref().unwrap().id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        println!(
            "server process RSS (API server + scheduler + controllers + kubelet + runtime, shims excluded) with {} running pods: {:.1} MiB",
            names.len() + 1,
            rss as f64 / 1024.0
        );
        for n in &names {
            let _ = api.delete(n, &DeleteParams::default().grace_period(0)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;

        // 3. crash -> replacement running (first restart: no backoff), from runtime timestamps
        let crashers: Vec<String> = (0..10).map(|i| format!("crash-{i}")).collect();
        for n in &crashers {
            api.create(&PostParams::default(), &pod(n, &["sh", "-c", "sleep 1; exit 1"]))
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut gaps = Vec::new();
        // the split: exit -> replacement created (event, kubelet sync, runtime create with its
        // shim) and created -> started (runtime start)
        let (mut to_created, mut to_started) = (Vec::new(), Vec::new());
        while Instant::now() < deadline && gaps.len() < crashers.len() {
            gaps.clear();
            to_created.clear();
            to_started.clear();
            for n in &crashers {
                let recs: Vec<serde_json::Value> = c
                    .runtime_containers()
                    .into_iter()
                    .filter(|r| r["labels"]["io.kubernetes.pod.name"] == n.as_str())
                    .collect();
                let first = recs.iter().find(|r| r["attempt"] == 0);
                let second = recs.iter().find(|r| r["attempt"] == 1);
                if let (Some(a), Some(b)) = (first, second) {
                    let fin = a["finished_at"].as_i64().unwrap_or(0);
                    let start = b["started_at"].as_i64().unwrap_or(0);
                    let created = b["created_at"].as_i64().unwrap_or(0);
                    if fin > 0 && start > 0 {
                        gaps.push((start - fin) as f64 / 1e6);
                        to_created.push((created - fin) as f64 / 1e6);
                        to_started.push((start - created) as f64 / 1e6);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if gaps.is_empty() {
            println!("crash -> replacement running: no restarts observed");
        } else {
            let k = gaps.len();
            let (p50, max) = (pct(&mut gaps, 0.5), pct(&mut gaps, 1.0));
            println!("crash -> replacement running (first restart), {k} pods: p50 {p50:.0} ms, max {max:.0} ms");
            let (c50, s50) = (pct(&mut to_created, 0.5), pct(&mut to_started, 0.5));
            println!("  split (p50): exit -> replacement created (event + kubelet sync + CRI create) {c50:.0} ms, created -> started (CRI start) {s50:.0} ms");
        }
    });
}
