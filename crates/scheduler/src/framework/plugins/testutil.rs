//! Builders for pods, nodes and clusters used by the plugin unit tests.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use crate::framework::{Cluster, PodInfo};

/// A pod from JSON; name, namespace and uid are filled in.
pub fn pod(name: &str, spec: Value) -> PodInfo {
    pod_with(name, json!({}), spec)
}

/// A pod with labels.
pub fn pod_with(name: &str, labels: Value, spec: Value) -> PodInfo {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": labels},
        "spec": spec,
    }))
    .unwrap();
    PodInfo::new(Arc::new(p))
}

/// A container requesting cpu and memory.
pub fn requests(cpu: &str, mem: &str) -> Value {
    json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]})
}

/// A node with allocatable cpu/memory/pods, labels and extra spec.
pub fn node(name: &str, cpu: &str, mem: &str, labels: Value, spec: Value) -> Node {
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                   "capacity": {"cpu": cpu, "memory": mem, "pods": "110"}},
    }))
    .unwrap()
}

/// A cluster of nodes with pods assigned (pod, node name).
pub fn cluster(nodes: Vec<Node>, pods: Vec<(PodInfo, &str)>) -> Cluster {
    let mut c = Cluster::new();
    for n in nodes {
        c.upsert_node(Arc::new(n));
    }
    for (p, n) in pods {
        c.add_pod(Arc::new(p), n);
    }
    c
}
