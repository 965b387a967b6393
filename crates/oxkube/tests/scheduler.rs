//! End-to-end tests of the scheduler: `scheduler::run` in-process against a real `oxkube server`
//! (node objects created by the test, no kubelet): resource spreading, nodeSelector, taints,
//! pod anti-affinity, unschedulable reporting (condition + event) and recovery when a node
//! appears, leader election through the kube-scheduler Lease.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use serde_json::{json, Value};

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

/// Starts the scheduler in-process; the returned sender stops it.
fn start_scheduler(
    client: Client,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = scheduler::Config {
        identity: "oxkube-test".into(),
        ..Default::default()
    };
    let h = tokio::spawn(scheduler::run(client, cfg, async move {
        let _ = rx.await;
    }));
    (tx, h)
}

async fn create_node(
    client: &Client,
    name: &str,
    cpu: &str,
    mem: &str,
    labels: Value,
    taints: Value,
) {
    let api: Api<Node> = Api::all(client.clone());
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))
    .unwrap();
    api.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": mem, "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn create_pod(client: &Client, name: &str, labels: Value, spec: Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": spec}))
            .unwrap();
    api.create(&PostParams::default(), &pod).await.unwrap();
}

fn cpu(n: &str) -> Value {
    json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": n}}}]})
}

/// Polls until every named pod is bound; returns pod -> node.
async fn wait_bound(client: &Client, names: &[&str]) -> BTreeMap<String, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut out = BTreeMap::new();
        for n in names {
            let p = api.get(n).await.unwrap();
            if let Some(node) = p.spec.and_then(|s| s.node_name) {
                out.insert(n.to_string(), node);
            }
        }
        if out.len() == names.len() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "pods not bound in time: {out:?} of {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until the pod has PodScheduled=False; returns (reason, message).
async fn wait_unschedulable(client: &Client, name: &str) -> (String, String) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = api.get(name).await.unwrap();
        let cond = p.status.and_then(|s| s.conditions).and_then(|cs| {
            cs.into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        });
        if let Some(c) = cond {
            return (c.reason.unwrap_or_default(), c.message.unwrap_or_default());
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} never reported unschedulable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn events_for(client: &Client, pod: &str, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let evs: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(pod)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect();
        if !evs.is_empty() {
            return evs;
        }
        assert!(Instant::now() < deadline, "no {reason} event for {pod}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn places_pods_by_resources_selectors_taints_and_anti_affinity() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    rt().block_on(async {
        let client = client(&c).await;
        let taint = json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]);
        create_node(&client, "n1", "2", "4Gi", json!({"zone": "a"}), json!([])).await;
        create_node(&client, "n2", "2", "4Gi", json!({"zone": "b"}), json!([])).await;
        create_node(&client, "n3", "8", "16Gi", json!({"zone": "c"}), taint).await;
        let (stop, handle) = start_scheduler(client.clone());

        // Four 1-cpu pods: the tainted node is excluded, so each 2-cpu node takes exactly two.
        let names = ["r1", "r2", "r3", "r4"];
        for n in names {
            create_pod(&client, n, json!({}), cpu("1")).await;
        }
        let placed = wait_bound(&client, &names).await;
        let on = |node: &str| placed.values().filter(|n| *n == node).count();
        assert_eq!((on("n1"), on("n2"), on("n3")), (2, 2, 0), "{placed:?}");

        // nodeSelector + toleration lands on the tainted node.
        let tol = json!([{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]);
        create_pod(&client, "infra", json!({}), json!({"nodeSelector": {"zone": "c"}, "tolerations": tol})).await;
        assert_eq!(wait_bound(&client, &["infra"]).await["infra"], "n3");

        // Required node affinity to zone b.
        create_pod(
            &client,
            "zb",
            json!({}),
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}}),
        )
        .await;
        assert_eq!(wait_bound(&client, &["zb"]).await["zb"], "n2");

        // Without the toleration the same selector cannot be satisfied.
        create_pod(&client, "notol", json!({}), json!({"nodeSelector": {"zone": "c"}})).await;
        let (reason, msg) = wait_unschedulable(&client, "notol").await;
        assert_eq!(reason, "Unschedulable");
        assert_eq!(
            msg,
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, \
             2 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );

        // Required anti-affinity by hostname: three replicas on three different nodes, a
        // fourth has nowhere to go.
        let anti = json!({"tolerations": tol, "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
        for n in ["s1", "s2", "s3"] {
            create_pod(&client, n, json!({"app": "spread"}), anti.clone()).await;
        }
        let placed = wait_bound(&client, &["s1", "s2", "s3"]).await;
        let distinct: std::collections::BTreeSet<&String> = placed.values().collect();
        assert_eq!(distinct.len(), 3, "{placed:?}");
        create_pod(&client, "s4", json!({"app": "spread"}), anti.clone()).await;
        let (_, msg) = wait_unschedulable(&client, "s4").await;
        assert_eq!(
            msg,
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
             preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        );

        let _ = stop.send(());
        handle.await.unwrap().unwrap();
    });
}

#[test]
fn unschedulable_pod_reports_and_is_scheduled_when_a_node_fits() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    rt().block_on(async {
        let client = client(&c).await;
        create_node(&client, "small", "1", "1Gi", json!({}), json!([])).await;
        let (stop, handle) = start_scheduler(client.clone());

        create_pod(&client, "big", json!({}), cpu("2")).await;
        let (reason, msg) = wait_unschedulable(&client, "big").await;
        let want = "0/1 nodes are available: 1 Insufficient cpu. \
                    preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";
        assert_eq!((reason.as_str(), msg.as_str()), ("Unschedulable", want));
        let evs = events_for(&client, "big", "FailedScheduling").await;
        let ev = &evs[0];
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(ev.message.as_deref(), Some(want));
        assert_eq!(ev.source.as_ref().and_then(|s| s.component.as_deref()), Some("default-scheduler"));
        assert_eq!(ev.reporting_component.as_deref(), Some("default-scheduler"));
        assert_eq!(ev.involved_object.kind.as_deref(), Some("Pod"));

        // The scheduler holds the lease.
        let lease: Lease = Api::namespaced(client.clone(), "kube-system").get("kube-scheduler").await.unwrap();
        let spec = lease.spec.unwrap();
        assert!(spec.holder_identity.unwrap().starts_with("oxkube-test_"));
        assert_eq!(spec.lease_duration_seconds, Some(15));

        // A node that fits appears: the pod is retried (event-driven) and bound there.
        create_node(&client, "large", "4", "8Gi", json!({}), json!([])).await;
        assert_eq!(wait_bound(&client, &["big"]).await["big"], "large");
        let evs = events_for(&client, "big", "Scheduled").await;
        assert_eq!(evs[0].message.as_deref(), Some("Successfully assigned default/big to large"));
        assert_eq!(evs[0].type_.as_deref(), Some("Normal"));

        // A gated pod is not scheduled until its gates are removed.
        create_pod(&client, "gated", json!({}), json!({"schedulingGates": [{"name": "example.com/wait"}]})).await;
        let (reason, msg) = wait_unschedulable(&client, "gated").await;
        assert_eq!(reason, "SchedulingGated");
        assert_eq!(msg, "Scheduling is blocked due to non-empty scheduling gates");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        pods.patch("gated", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"schedulingGates": null}})))
            .await
            .unwrap();
        wait_bound(&client, &["gated"]).await;

        let _ = stop.send(());
        handle.await.unwrap().unwrap();
        // Stepping down releases the lease.
        let lease: Lease = Api::namespaced(client.clone(), "kube-system").get("kube-scheduler").await.unwrap();
        assert_eq!(lease.spec.unwrap().holder_identity, None);
    });
}

#[test]
fn only_the_leader_schedules() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    rt().block_on(async {
        let client = client(&c).await;
        // Another holder owns a fresh lease: our scheduler must wait.
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
            "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 4,
                     "renewTime": k8s_openapi::jiff::Timestamp::now().to_string()}
        }))
        .unwrap();
        Api::<Lease>::namespaced(client.clone(), "kube-system")
            .create(&PostParams::default(), &lease)
            .await
            .unwrap();
        create_node(&client, "n1", "2", "4Gi", json!({}), json!([])).await;
        let (stop, handle) = start_scheduler(client.clone());
        create_pod(&client, "p", json!({}), json!({})).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        assert_eq!(
            api.get("p").await.unwrap().spec.unwrap().node_name,
            None,
            "scheduled without the lease"
        );
        // The other holder stops renewing: the lease expires and our scheduler takes over.
        assert_eq!(wait_bound(&client, &["p"]).await["p"], "n1");
        let spec = Api::<Lease>::namespaced(client.clone(), "kube-system")
            .get("kube-scheduler")
            .await
            .unwrap()
            .spec
            .unwrap();
        assert!(spec.holder_identity.unwrap().starts_with("oxkube-test_"));
        assert_eq!(spec.lease_transitions, Some(1));
        let _ = stop.send(());
        handle.await.unwrap().unwrap();
    });
}

#[test]
fn higher_priority_pod_preempts_a_lower_priority_one() {
    let c = Cluster::start_with(&["--disable-scheduler"]);
    rt().block_on(async {
        let client = client(&c).await;
        create_node(&client, "n1", "2", "4Gi", json!({}), json!([])).await;
        let (stop, handle) = start_scheduler(client.clone());
        let with_priority = |cpu_req: &str, prio: i32| {
            let mut s = cpu(cpu_req);
            s["priority"] = json!(prio);
            s
        };
        create_pod(&client, "low", json!({}), with_priority("2", 0)).await;
        wait_bound(&client, &["low"]).await;
        create_pod(&client, "high", json!({}), with_priority("2", 1000)).await;

        // The victim is deleted by the scheduler and gets a Preempted event.
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match pods.get_opt("low").await.unwrap() {
                None => break,
                Some(p) if p.metadata.deletion_timestamp.is_some() => {
                    // Without a kubelet, finish the graceful deletion as one would.
                    let dp = kube::api::DeleteParams {
                        grace_period_seconds: Some(0),
                        ..Default::default()
                    };
                    let _ = pods.delete("low", &dp).await;
                }
                Some(_) => {}
            }
            assert!(Instant::now() < deadline, "victim not deleted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let evs = events_for(&client, "low", "Preempted").await;
        assert!(
            evs[0]
                .message
                .as_deref()
                .unwrap_or("")
                .starts_with("Preempted by pod "),
            "{:?}",
            evs[0].message
        );
        let evs = events_for(&client, "high", "FailedScheduling").await;
        let msg = evs[0].message.clone().unwrap_or_default();
        assert!(
            msg.starts_with("0/1 nodes are available: 1 Insufficient cpu."),
            "{msg}"
        );
        // The preemptor is nominated to the node, then bound there once the victim is gone.
        assert_eq!(wait_bound(&client, &["high"]).await["high"], "n1");
        let high = pods.get("high").await.unwrap();
        assert_eq!(
            high.status.and_then(|s| s.nominated_node_name).as_deref(),
            Some("n1")
        );

        let _ = stop.send(());
        handle.await.unwrap().unwrap();
    });
}
