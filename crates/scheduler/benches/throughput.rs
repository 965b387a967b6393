//! Throughput of the pure scheduling core (no API): 5,000 nodes and 10,000 pods scheduled and
//! assumed one after another, SchedulingBasic-like and with required pod anti-affinity.
//!
//! Run: `cargo bench -p scheduler --bench throughput` (add `-- quick` for 1,000 nodes/2,000 pods).
//! The end-to-end figure through the API server is `cargo bench -p oxkube --bench scheduler`.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use scheduler::framework::{Cluster, Framework, PodInfo};
use serde_json::json;

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("node-{i}"), "labels": {
            "kubernetes.io/hostname": format!("node-{i}"), "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"},
                   "capacity": {"cpu": "4", "memory": "32Gi", "pods": "110"}}
    }))
    .unwrap()
}

fn pod(i: usize, anti_affinity_groups: Option<usize>) -> PodInfo {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]});
    let mut labels = json!({"app": "bench"});
    if let Some(groups) = anti_affinity_groups {
        let g = format!("g{}", i % groups);
        labels["group"] = json!(g);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"group": g}}, "topologyKey": "kubernetes.io/hostname"}]}});
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("pod-{i}"), "namespace": "default", "uid": format!("uid-{i}"), "labels": labels},
        "spec": spec,
    }))
    .unwrap();
    PodInfo::new(Arc::new(p))
}

fn run(name: &str, nodes: usize, pods: usize, groups: Option<usize>) {
    let mut cluster = Cluster::new();
    for i in 0..nodes {
        cluster.upsert_node(Arc::new(node(i)));
    }
    let infos: Vec<Arc<PodInfo>> = (0..pods).map(|i| Arc::new(pod(i, groups))).collect();
    let mut fw = Framework::new(42);
    let t0 = Instant::now();
    let mut failed = 0;
    for p in infos {
        match fw.schedule(&cluster, &p) {
            Ok(r) => cluster.add_pod(p, &r.node),
            Err(_) => failed += 1,
        }
    }
    let dt = t0.elapsed();
    println!(
        "{name}: {nodes} nodes, {pods} pods in {:.3} s = {:.0} pods/s ({failed} unschedulable)",
        dt.as_secs_f64(),
        pods as f64 / dt.as_secs_f64()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let (nodes, pods) = if quick { (1000, 2000) } else { (5000, 10000) };
    run("core basic", nodes, pods, None);
    run(
        "core required anti-affinity (groups of pods/100 by hostname)",
        nodes,
        pods,
        Some(100),
    );
}
