//! NodeResourcesFit (filter and LeastAllocated score) and NodeResourcesBalancedAllocation.

use crate::framework::{NodeInfo, PodInfo, Status, MAX_NODE_SCORE};

pub const FIT: &str = "NodeResourcesFit";
pub const BALANCED: &str = "NodeResourcesBalancedAllocation";

/// The reasons a node cannot hold the pod's requests (pod count, cpu, memory, ephemeral
/// storage, scalar resources, in upstream's order).
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let r = &pod.requests;
    if r.milli_cpu == 0
        && r.memory == 0
        && r.ephemeral_storage == 0
        && r.scalar.values().all(|v| *v == 0)
    {
        return reasons;
    }
    let (a, u) = (&node.allocatable, &node.requested);
    if r.milli_cpu > 0 && r.milli_cpu > a.milli_cpu - u.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if r.memory > 0 && r.memory > a.memory - u.memory {
        reasons.push("Insufficient memory".into());
    }
    if r.ephemeral_storage > 0 && r.ephemeral_storage > a.ephemeral_storage - u.ephemeral_storage {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, q) in &r.scalar {
        if *q > 0 && *q > a.scalar(name) - u.scalar(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let reasons = insufficient(pod, node);
    if reasons.is_empty() {
        None
    } else {
        Some(Status {
            code: crate::framework::Code::Unschedulable,
            plugin: FIT,
            reasons,
        })
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// LeastAllocated: the average (cpu and memory, weight 1 each) of the free share left after
/// placing the pod, with the non-zero request defaults.
pub fn least_allocated_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut sum = 0;
    let mut weights = 0;
    for (alloc, req) in [
        (
            node.allocatable.milli_cpu,
            node.non_zero_requested.milli_cpu + pod.non_zero_requests.milli_cpu,
        ),
        (
            node.allocatable.memory,
            node.non_zero_requested.memory + pod.non_zero_requests.memory,
        ),
    ] {
        if alloc == 0 {
            continue;
        }
        sum += least_requested(req, alloc);
        weights += 1;
    }
    if weights == 0 {
        0
    } else {
        sum / weights
    }
}

/// Whether BalancedAllocation skips the pod (it requests neither cpu nor memory).
pub fn balanced_skips(pod: &PodInfo) -> bool {
    pod.requests.milli_cpu == 0 && pod.requests.memory == 0
}

/// BalancedAllocation: 100 * (1 - standard deviation of the cpu and memory fractions).
pub fn balanced_allocation_score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut fractions = Vec::with_capacity(2);
    for (alloc, req) in [
        (
            node.allocatable.milli_cpu,
            node.requested.milli_cpu + pod.requests.milli_cpu,
        ),
        (
            node.allocatable.memory,
            node.requested.memory + pod.requests.memory,
        ),
    ] {
        if alloc == 0 {
            continue;
        }
        fractions.push((req as f64 / alloc as f64).min(1.0));
    }
    let std = match fractions.len() {
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    #[test]
    fn filter_table() {
        let existing = || vec![(pod("e", requests("1500m", "1Gi")), "n1")];
        for (name, alloc, spec, want) in [
            ("fits", ("4", "4Gi"), requests("1", "1Gi"), vec![]),
            (
                "insufficient cpu",
                ("2", "4Gi"),
                requests("1", "1Gi"),
                vec!["Insufficient cpu"],
            ),
            (
                "insufficient memory",
                ("4", "2Gi"),
                requests("1", "1500Mi"),
                vec!["Insufficient memory"],
            ),
            (
                "both",
                ("2", "1Gi"),
                requests("1", "1Mi"),
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                "exactly fits",
                ("2500m", "2Gi"),
                requests("1", "1Gi"),
                vec![],
            ),
            (
                "best effort fits a full node",
                ("1500m", "1Gi"),
                json!({}),
                vec![],
            ),
            (
                "init container counts",
                ("4", "4Gi"),
                json!({"initContainers": [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "3"}}}],
                       "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "100m"}}}]}),
                vec!["Insufficient cpu"],
            ),
            (
                "overhead counts",
                ("2", "4Gi"),
                json!({"overhead": {"cpu": "300m"}, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "300m"}}}]}),
                vec!["Insufficient cpu"],
            ),
            (
                "extended resource",
                ("4", "4Gi"),
                json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"example.com/gpu": "1"}}}]}),
                vec!["Insufficient example.com/gpu"],
            ),
        ] {
            let c = cluster(
                vec![node("n1", alloc.0, alloc.1, json!({}), json!({}))],
                existing(),
            );
            let got = filter(&pod("p", spec), c.node("n1").unwrap());
            let reasons = got.map(|s| s.reasons).unwrap_or_default();
            assert_eq!(reasons, want, "{name}");
        }
    }

    #[test]
    fn too_many_pods() {
        let mut n = node("n1", "4", "4Gi", json!({}), json!({}));
        n.status
            .as_mut()
            .unwrap()
            .allocatable
            .as_mut()
            .unwrap()
            .insert(
                "pods".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
            );
        let c = cluster(vec![n], vec![(pod("e", json!({})), "n1")]);
        let got = filter(&pod("p", json!({})), c.node("n1").unwrap()).unwrap();
        assert_eq!(got.reasons, vec!["Too many pods"]);
    }

    #[test]
    fn least_allocated_table() {
        // Upstream's worked example: node 4000m/10000, pod requests 3000m/5000 (after existing).
        for (name, alloc, existing, spec, want) in [
            (
                "empty node, best effort pod uses defaults",
                ("1", "2000Mi"),
                None,
                json!({}),
                ((900 / 10) + 90) / 2,
            ),
            (
                "half used",
                ("4", "4Gi"),
                Some(requests("1", "1Gi")),
                requests("1", "1Gi"),
                50,
            ),
            (
                "over capacity scores zero",
                ("1", "1Gi"),
                Some(requests("1", "1Gi")),
                requests("1", "1Gi"),
                0,
            ),
            (
                "cpu 25% mem 75% free",
                ("4", "4Gi"),
                None,
                requests("3", "1Gi"),
                (25 + 75) / 2,
            ),
        ] {
            let pods = existing
                .map(|s| vec![(pod("e", s), "n1")])
                .unwrap_or_default();
            let c = cluster(
                vec![node("n1", alloc.0, alloc.1, json!({}), json!({}))],
                pods,
            );
            assert_eq!(
                least_allocated_score(&pod("p", spec), c.node("n1").unwrap()),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn balanced_table() {
        for (name, alloc, spec, want) in [
            ("same fractions", ("4", "4Gi"), requests("2", "2Gi"), 100),
            ("cpu 100% memory 0%", ("1", "4Gi"), requests("1", "1"), 50),
            ("cpu 75% memory 25%", ("4", "4Gi"), requests("3", "1Gi"), 75),
            ("capped at 1", ("1", "4Gi"), requests("2", "2Gi"), 75),
        ] {
            let c = cluster(
                vec![node("n1", alloc.0, alloc.1, json!({}), json!({}))],
                vec![],
            );
            assert_eq!(
                balanced_allocation_score(&pod("p", spec), c.node("n1").unwrap()),
                want,
                "{name}"
            );
        }
        assert!(balanced_skips(&pod("p", json!({}))));
        assert!(!balanced_skips(&pod("p", requests("1", "1"))));
    }
}
