//! Workload benchmarks through a real `oxkube server` (release build), driven by the real
//! kubectl:
//! - `deploy`: a 100-replica Deployment from `kubectl apply` until every pod is bound (the
//!   controllers and scheduler in-process; nodes are API objects with renewed leases, no agent);
//! - `undo`: `kubectl rollout undo` of a 10-replica Deployment on one node (a real agent with the
//!   embedded runtime) until every pod of the restored template is Ready. Needs root.
//!
//! Run: `cargo bench -p oxkube --bench workloads` (name sections to run only those: `deploy`,
//! `undo`; `OXKUBE_BIN` may point at another build).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::json;

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, ms: &[f64]) {
    println!(
        "{what}: median {:.0} ms, p99 {:.0} ms, min {:.0} ms, max {:.0} ms ({} runs)",
        pct(ms, 0.5),
        pct(ms, 0.99),
        pct(ms, 0.0),
        pct(ms, 1.0),
        ms.len()
    );
}

/// Node objects (no agent) that look like ready kubelets; their leases are renewed until the
/// returned task is aborted, so the node lifecycle controller keeps them Ready.
async fn fake_nodes(client: &Client, n: usize) -> tokio::task::JoinHandle<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for i in 0..n {
        let name = format!("bench-node-{i}");
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name}}}))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "ready", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
        nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
    tokio::spawn(async move {
        loop {
            for i in 0..n {
                let name = format!("bench-node-{i}");
                let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    k8s_openapi::jiff::Timestamp::now(),
                );
                let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}});
                let _ = leases
                    .patch(
                        &name,
                        &PatchParams::apply("bench").force(),
                        &Patch::Apply(&lease),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
}

fn deployment_yaml(name: &str, replicas: u32, extra_env: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: c
        image: {image}
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
        env:
        - name: VERSION
          value: "{extra_env}"
        resources:
          requests:
            cpu: 10m
            memory: 16Mi
"#,
        image = common::IMAGE,
    )
}

/// The current resourceVersion of the pods collection (where a watch starts).
async fn current_rv(pods: &Api<Pod>) -> String {
    pods.list_metadata(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// Resolves when `n` pods labelled `app=<app>` are bound, watching from `rv`.
async fn wait_bound(api: Api<Pod>, app: String, rv: String, n: usize) -> Instant {
    let mut bound = HashSet::new();
    let wp = WatchParams::default()
        .labels(&format!("app={app}"))
        .timeout(120);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                bound.insert(p.metadata.name.unwrap_or_default());
                if bound.len() >= n {
                    return Instant::now();
                }
            }
        }
    }
    panic!("watch ended with {} of {n} pods bound", bound.len())
}

fn deploy(runs: usize) {
    let c = common::Cluster::start();
    let rt = runtime();
    let replicas = 100;
    let (mut total, mut from_create) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let client = c.client().await;
        let renew = fake_nodes(&client, 5).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        // a warm-up Deployment so the controllers' and scheduler's caches are synced
        for run in 0..=runs {
            let name = format!("d{run}");
            let rv = current_rv(&pods).await;
            let waiter = tokio::spawn(wait_bound(pods.clone(), name.clone(), rv, replicas));
            let yaml = deployment_yaml(&name, replicas as u32, "1");
            let t0 = Instant::now();
            let c = &c;
            tokio::task::block_in_place(|| c.kubectl_stdin(&["apply", "-f", "-"], &yaml));
            let applied = Instant::now();
            let done = waiter.await.unwrap();
            if run == 0 {
                continue;
            }
            total.push(done.duration_since(t0).as_secs_f64() * 1000.0);
            from_create.push(done.duration_since(applied).as_secs_f64() * 1000.0);
        }
        renew.abort();
    });
    report(
        &format!("deployment of {replicas} replicas, `kubectl apply` started until all bound"),
        &total,
    );
    report(
        "  of which after `kubectl apply` returned (Deployment created) until all bound",
        &from_create,
    );
}

fn ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod-template-hash of the Deployment's ReplicaSet at `revision`.
async fn hash_of_revision(rs: &Api<ReplicaSet>, app: &str, revision: u32) -> Option<String> {
    let list = rs
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    list.items.into_iter().find_map(|r| {
        let ann = r.metadata.annotations.as_ref()?;
        let revs = ann.get("deployment.kubernetes.io/revision")?;
        (revs == &revision.to_string()).then(|| {
            r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash").cloned())
        })?
    })
}

/// Resolves when `n` ready, non-terminating pods with `pod-template-hash=<hash>` are seen.
async fn wait_ready(api: &Api<Pod>, hash: &str, rv: &str, n: usize) -> Instant {
    let mut state: HashMap<String, bool> = HashMap::new();
    let wp = WatchParams::default()
        .labels(&format!("pod-template-hash={hash}"))
        .timeout(120);
    let mut stream = api.watch(&wp, rv).await.unwrap().boxed();
    // pods that were already ready before the watch started
    for p in api
        .list(&ListParams::default().labels(&format!("pod-template-hash={hash}")))
        .await
        .unwrap()
        .items
    {
        state.insert(p.metadata.name.clone().unwrap_or_default(), ready(&p));
    }
    if state.values().filter(|r| **r).count() >= n {
        return Instant::now();
    }
    while let Some(ev) = stream.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                state.insert(p.metadata.name.clone().unwrap_or_default(), ready(&p));
            }
            WatchEvent::Deleted(p) => {
                state.remove(&p.metadata.name.unwrap_or_default());
            }
            _ => {}
        }
        if state.values().filter(|r| **r).count() >= n {
            return Instant::now();
        }
    }
    panic!("watch ended before {n} pods of {hash} were ready")
}

fn undo(runs: usize) {
    let c = common::Cluster::start_with_agent(common::drop_image, &[]);
    let rt = runtime();
    let replicas = 10;
    let mut took = Vec::new();
    rt.block_on(async {
        let client = c.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
        let c = &c;
        let kubectl = |args: &[&str]| tokio::task::block_in_place(|| c.kubectl(args));
        let name = "undo";
        tokio::task::block_in_place(|| {
            c.kubectl_stdin(
                &["apply", "-f", "-"],
                &deployment_yaml(name, replicas as u32, "1"),
            )
        });
        kubectl(&["rollout", "status", "deployment/undo", "--timeout=180s"]);
        kubectl(&["set", "env", "deployment/undo", "VERSION=2"]);
        kubectl(&["rollout", "status", "deployment/undo", "--timeout=180s"]);
        // each undo goes back to the other template: revisions 1,2 -> 3 (=1) -> 4 (=2) ...
        for run in 0..runs {
            let target_rev = run as u32 + 1;
            let hash = hash_of_revision(&rs, name, target_rev)
                .await
                .expect("replicaset of the previous revision");
            let rv = current_rv(&pods).await;
            let t0 = Instant::now();
            kubectl(&["rollout", "undo", "deployment/undo"]);
            let done = wait_ready(&pods, &hash, &rv, replicas).await;
            took.push(done.duration_since(t0).as_secs_f64() * 1000.0);
            // let the rollout finish (old pods gone) before the next undo
            kubectl(&["rollout", "status", "deployment/undo", "--timeout=180s"]);
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let n = pods
                    .list(&ListParams::default().labels("app=undo"))
                    .await
                    .unwrap()
                    .items
                    .len();
                if n == replicas || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    report(
        &format!("`kubectl rollout undo`, {replicas} replicas on one node, until the restored template's pods are all Ready"),
        &took,
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = !args.iter().any(|a| a == "deploy" || a == "undo");
    if all || args.iter().any(|a| a == "deploy") {
        deploy(5);
    }
    if all || args.iter().any(|a| a == "undo") {
        undo(5);
    }
}
