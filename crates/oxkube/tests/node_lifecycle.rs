//! End-to-end: node health and pod garbage collection with fake nodes (Node objects and
//! Leases the test renews, or stops renewing) and short grace periods: a silent node turns
//! Unknown and gets the unreachable taints, its pods are marked not ready and evicted as
//! their tolerationSeconds allow; cordoning taints unschedulable; Ready=False taints
//! not-ready; a node that reports again is untainted; pods of deleted or missing nodes and terminated pods beyond the threshold
//! are collected.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Cluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use serde_json::json;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn rt() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn client(c: &Cluster) -> Client {
    let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

async fn create_node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    report_ready(client, name).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let l: Lease = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
    }))
    .unwrap();
    leases.create(&PostParams::default(), &l).await.unwrap();
    renew(client, name).await;
}

/// What a kubelet's status update does: Ready=True with a fresh heartbeat.
async fn report_ready(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now().to_string();
    let now = &now[..19];
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": format!("{now}Z"), "lastTransitionTime": format!("{now}Z")},
    ]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn renew(client: &Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let mut l = leases.get(name).await.unwrap();
    l.spec.get_or_insert_with(Default::default).renew_time = Some(MicroTime(Timestamp::now()));
    leases
        .replace(name, &PostParams::default(), &l)
        .await
        .unwrap();
}

async fn create_pod(client: &Client, name: &str, node: &str, tolerations: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut spec = json!({"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]});
    if !tolerations.is_null() {
        spec["tolerations"] = tolerations;
    }
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn condition<'a>(p: &'a Pod, type_: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

#[test]
fn silent_node_is_tainted_and_its_pods_evicted_per_toleration() {
    let c = Cluster::start_with(&[
        "--node-monitor-period",
        "1s",
        "--node-monitor-grace-period",
        "3s",
        "--default-not-ready-toleration-seconds",
        "4",
        "--default-unreachable-toleration-seconds",
        "4",
    ]);
    rt().block_on(async {
        let client = client(&c).await;
        create_node(&client, "alive").await;
        create_node(&client, "dead").await;
        // the alive node's kubelet keeps renewing its lease
        let stop = Arc::new(AtomicBool::new(false));
        let revived = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (client, stop, revived) = (client.clone(), stop.clone(), revived.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    renew(&client, "alive").await;
                    if revived.load(Ordering::Relaxed) {
                        renew(&client, "dead").await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        create_pod(
            &client,
            "short",
            "dead",
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]),
        )
        .await;
        create_pod(&client, "default", "dead", json!(null)).await;
        create_pod(
            &client,
            "forever",
            "dead",
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]),
        )
        .await;
        create_pod(&client, "on-alive", "alive", json!(null)).await;

        let nodes: Api<Node> = Api::all(client.clone());
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        // the silent node: Ready Unknown, unreachable taints
        let dead = wait_for("the dead node to be tainted unreachable", || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get("dead").await.unwrap();
                let taints = n.spec.as_ref()?.taints.clone()?;
                (taints.iter().any(|t| t.key == UNREACHABLE && t.effect == "NoExecute")
                    && taints.iter().any(|t| t.key == UNREACHABLE && t.effect == "NoSchedule"))
                .then_some(n)
            }
        })
        .await;
        let ready = dead
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        let tainted_at = dead
            .spec
            .as_ref()
            .unwrap()
            .taints
            .as_ref()
            .unwrap()
            .iter()
            .find(|t| t.effect == "NoExecute")
            .unwrap()
            .time_added
            .clone()
            .expect("NoExecute taints carry timeAdded")
            .0;

        // the pods without tolerance left are evicted, each after its tolerationSeconds
        for (name, secs) in [("short", 1), ("default", 4)] {
            let p = wait_for(&format!("pod {name} to be evicted"), || {
                let pods = pods.clone();
                async move {
                    let p = pods.get_opt(name).await.unwrap();
                    match p {
                        Some(p) if p.metadata.deletion_timestamp.is_none() => None,
                        other => Some(other),
                    }
                }
            })
            .await
            .expect("a pod bound to a node is deleted gracefully, so it is still there");
            let dt = condition(&p, "DisruptionTarget").expect("DisruptionTarget condition");
            assert_eq!(dt.reason.as_deref(), Some("DeletionByTaintManager"));
            let evicted_at = dt.last_transition_time.clone().unwrap().0;
            assert!(
                evicted_at.as_second() - tainted_at.as_second() >= secs,
                "pod {name} evicted {}s after the taint, tolerates {secs}s",
                evicted_at.as_second() - tainted_at.as_second()
            );
        }
        // a toleration without seconds keeps the pod, which is marked not ready
        let forever = pods.get("forever").await.unwrap();
        assert!(forever.metadata.deletion_timestamp.is_none());
        assert_eq!(condition(&forever, "Ready").unwrap().status, "False");
        // the healthy node and its pod are untouched
        let alive = nodes.get("alive").await.unwrap();
        assert!(alive
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_none_or(|t| t.is_empty()));
        let on_alive = pods.get("on-alive").await.unwrap();
        assert!(on_alive.metadata.deletion_timestamp.is_none());
        assert_eq!(condition(&on_alive, "Ready").unwrap().status, "True");

        // cordoning taints unschedulable; uncordoning removes it
        let has_unschedulable = |n: &Node| {
            n.spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|t| {
                    t.iter()
                        .any(|t| t.key == "node.kubernetes.io/unschedulable" && t.effect == "NoSchedule")
                })
        };
        c.kubectl(&["cordon", "alive"]);
        wait_for("the unschedulable taint", || {
            let nodes = nodes.clone();
            async move { has_unschedulable(&nodes.get("alive").await.unwrap()).then_some(()) }
        })
        .await;
        c.kubectl(&["uncordon", "alive"]);
        wait_for("the unschedulable taint to go", || {
            let nodes = nodes.clone();
            async move { (!has_unschedulable(&nodes.get("alive").await.unwrap())).then_some(()) }
        })
        .await;

        // the dead node reports again: its taints go
        revived.store(true, Ordering::Relaxed);
        report_ready(&client, "dead").await;
        wait_for("the dead node's taints to go", || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get("dead").await.unwrap();
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_none_or(|t| !t.iter().any(|t| t.key == UNREACHABLE))
                    .then_some(())
            }
        })
        .await;
        // a node reporting Ready=False (while the other is healthy: no full disruption) is
        // tainted not-ready, and its pods go after their default not-ready toleration
        let not_ready = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime is down", "lastHeartbeatTime": Timestamp::now().to_string()[..19].to_string() + "Z"},
        ]}});
        nodes
            .patch_status("alive", &PatchParams::default(), &Patch::Merge(&not_ready))
            .await
            .unwrap();
        wait_for("the not-ready taints", || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get("alive").await.unwrap();
                let t = n.spec.as_ref()?.taints.clone()?;
                let has = |e: &str| {
                    t.iter()
                        .any(|t| t.key == "node.kubernetes.io/not-ready" && t.effect == e)
                };
                (has("NoSchedule") && has("NoExecute")).then_some(())
            }
        })
        .await;
        wait_for("the pod of the not-ready node to be evicted", || {
            let pods = pods.clone();
            async move {
                let p = pods.get("on-alive").await.unwrap();
                p.metadata.deletion_timestamp.map(|_| ())
            }
        })
        .await;

        stop.store(true, Ordering::Relaxed);
        let _ = renewer.await;
    });
}

#[test]
fn pod_gc_collects_orphans_and_terminated_pods() {
    let c = Cluster::start_with(&[
        "--pod-gc-period",
        "1s",
        "--pod-gc-quarantine",
        "2s",
        "--terminated-pod-gc-threshold",
        "2",
        // keep the node lifecycle controller out of the way
        "--node-monitor-grace-period",
        "300s",
    ]);
    rt().block_on(async {
        let client = client(&c).await;
        create_node(&client, "n1").await;
        create_node(&client, "doomed").await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        create_pod(&client, "ghost-pod", "ghost", json!(null)).await;
        create_pod(&client, "doomed-pod", "doomed", json!(null)).await;
        create_pod(&client, "keep", "n1", json!(null)).await;
        for name in ["t1", "t2", "t3"] {
            create_pod(&client, name, "n1", json!(null)).await;
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        for name in ["t1", "t2", "t3"] {
            let done = json!({"status": {"phase": "Succeeded"}});
            pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&done))
                .await
                .unwrap();
        }
        // the pod of a node that never existed goes after the quarantine
        wait_for("the ghost node's pod to be collected", || {
            let pods = pods.clone();
            async move {
                pods.get_opt("ghost-pod")
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        })
        .await;
        // a deleted node's pod goes too
        let nodes: Api<Node> = Api::all(client.clone());
        nodes
            .delete("doomed", &DeleteParams::default())
            .await
            .unwrap();
        wait_for("the deleted node's pod to be collected", || {
            let pods = pods.clone();
            async move {
                pods.get_opt("doomed-pod")
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        })
        .await;
        // three terminated pods, threshold two: the oldest goes
        wait_for("the oldest terminated pod to be collected", || {
            let pods = pods.clone();
            async move { pods.get_opt("t1").await.unwrap().is_none().then_some(()) }
        })
        .await;
        for name in ["t2", "t3", "keep"] {
            assert!(
                pods.get_opt(name).await.unwrap().is_some(),
                "pod {name} must stay"
            );
        }
    });
}
