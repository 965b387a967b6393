//! QoS class of a pod (upstream `qos.GetPodQOS`), the CRI linux resources of a container
//! (upstream `kuberuntime` cpu shares/quota/period, memory limit, OOM score adjustment) and the
//! pod's cgroup parent under `/kubepods` (cgroupfs layout).

use std::collections::BTreeMap;

use cri::v1 as pb;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CFS period the kubelet uses (100 ms).
pub const QUOTA_PERIOD: i64 = 100_000;
const MIN_QUOTA_PERIOD: i64 = 1000;
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// The pod QoS classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// A quantity in milli-units, rounded up.
pub fn milli(q: &Quantity) -> i64 {
    apimachinery::validation::quantity::parse(&q.0)
        .map(|v| (v * 1000.0 - 1e-6).ceil() as i64)
        .unwrap_or(0)
}

/// A quantity's integer value, rounded up.
pub fn value(q: &Quantity) -> i64 {
    apimachinery::validation::quantity::parse(&q.0)
        .map(|v| (v - 1e-9).ceil() as i64)
        .unwrap_or(0)
}

fn list(c: &Container, limits: bool) -> Option<&BTreeMap<String, Quantity>> {
    let r = c.resources.as_ref()?;
    if limits {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }
}

/// Whether a resource counts for QoS (cpu and memory).
fn qos_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory")
}

/// The QoS class of a pod (upstream `ComputePodQOS`, pod-level resources not considered).
pub fn pod_qos(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let mut requests: BTreeMap<String, i64> = BTreeMap::new();
    let mut limits: BTreeMap<String, i64> = BTreeMap::new();
    let mut is_guaranteed = true;
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in all {
        for (name, q) in list(c, false).into_iter().flatten() {
            if qos_resource(name) && milli(q) != 0 {
                *requests.entry(name.clone()).or_default() += milli(q);
            }
        }
        let mut qos_limits = 0;
        for (name, q) in list(c, true).into_iter().flatten() {
            if qos_resource(name) && milli(q) != 0 {
                qos_limits += 1;
                *limits.entry(name.clone()).or_default() += milli(q);
            }
        }
        if qos_limits != 2 {
            is_guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if is_guaranteed {
        for (name, req) in &requests {
            if limits.get(name) != Some(req) {
                is_guaranteed = false;
                break;
            }
        }
    }
    if is_guaranteed && requests.len() == limits.len() {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// Requests default to limits when only limits are set (as API defaulting does).
pub(crate) fn request_or_limit(c: &Container, name: &str) -> Option<i64> {
    let pick = |q: &Quantity| if name == "cpu" { milli(q) } else { value(q) };
    list(c, false)
        .and_then(|l| l.get(name))
        .map(pick)
        .or_else(|| list(c, true).and_then(|l| l.get(name)).map(pick))
}

pub(crate) fn limit(c: &Container, name: &str) -> Option<i64> {
    list(c, true)
        .and_then(|l| l.get(name))
        .map(|q| if name == "cpu" { milli(q) } else { value(q) })
}

/// cpu shares for a cpu request in milli-cpu (upstream `MilliCPUToShares`).
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    (milli_cpu * SHARES_PER_CPU / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// cfs quota for a cpu limit (upstream `milliCPUToQuota`); 0 means unlimited.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    (milli_cpu * period / 1000).max(MIN_QUOTA_PERIOD)
}

/// OOM score adjustment of a container (upstream `GetContainerOOMScoreAdjust`).
pub fn oom_score_adj(qos: QosClass, container: &Container, memory_capacity: i64) -> i64 {
    match qos {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let req = request_or_limit(container, "memory").unwrap_or(0);
            if memory_capacity <= 0 {
                return BEST_EFFORT_OOM_SCORE_ADJ - 1;
            }
            let adj = 1000 - (1000 * req) / memory_capacity;
            if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
                1000 + GUARANTEED_OOM_SCORE_ADJ
            } else if adj == BEST_EFFORT_OOM_SCORE_ADJ {
                adj - 1
            } else {
                adj
            }
        }
    }
}

/// The CRI linux resources of a container.
pub fn container_resources(
    qos: QosClass,
    c: &Container,
    memory_capacity: i64,
) -> pb::LinuxContainerResources {
    let cpu_request = request_or_limit(c, "cpu");
    let cpu_limit = limit(c, "cpu");
    let shares = match (cpu_request, cpu_limit) {
        (None, None) => MIN_SHARES,
        (Some(r), _) => milli_cpu_to_shares(r),
        (None, Some(l)) => milli_cpu_to_shares(l),
    };
    let (quota, period) = match cpu_limit {
        Some(l) if l > 0 => (milli_cpu_to_quota(l, QUOTA_PERIOD), QUOTA_PERIOD),
        _ => (0, 0),
    };
    pb::LinuxContainerResources {
        cpu_shares: shares,
        cpu_quota: quota,
        cpu_period: period,
        memory_limit_in_bytes: limit(c, "memory").unwrap_or(0),
        oom_score_adj: oom_score_adj(qos, c, memory_capacity),
        ..Default::default()
    }
}

/// The pod's cgroup parent (cgroupfs driver): `/kubepods/pod<uid>` for Guaranteed pods,
/// `/kubepods/burstable/pod<uid>` and `/kubepods/besteffort/pod<uid>` otherwise.
pub fn cgroup_parent(qos: QosClass, uid: &str) -> String {
    match qos {
        QosClass::Guaranteed => format!("/kubepods/pod{uid}"),
        QosClass::Burstable => format!("/kubepods/burstable/pod{uid}"),
        QosClass::BestEffort => format!("/kubepods/besteffort/pod{uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }

    #[test]
    fn qos_table() {
        let cases = [
            (json!([{"name": "a"}]), QosClass::BestEffort),
            (
                json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]),
                QosClass::Burstable,
            ),
            (
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]),
                QosClass::Guaranteed,
            ),
            (
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}}]),
                QosClass::Burstable,
            ),
            (
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}},
                       {"name": "b"}]),
                QosClass::Burstable,
            ),
            (
                json!([{"name": "a", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]),
                QosClass::Burstable,
            ),
            (
                json!([{"name": "a", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}]),
                QosClass::BestEffort,
            ),
        ];
        for (i, (c, want)) in cases.into_iter().enumerate() {
            assert_eq!(pod_qos(&pod(c)), want, "case {i}");
        }
    }

    #[test]
    fn shares_and_quota_table() {
        for (m, want) in [
            (0, 2),
            (1, 2),
            (100, 102),
            (250, 256),
            (1000, 1024),
            (500_000, 262_144),
        ] {
            assert_eq!(milli_cpu_to_shares(m), want, "{m}");
        }
        for (m, want) in [(0, 0), (5, 1000), (100, 10_000), (1500, 150_000)] {
            assert_eq!(milli_cpu_to_quota(m, QUOTA_PERIOD), want, "{m}");
        }
    }

    #[test]
    fn container_resources_from_requests_and_limits() {
        let p = pod(json!([{"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"}}}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = container_resources(QosClass::Burstable, c, 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        // 1000 - 1000*64Mi/1Gi = 938 (integer division as upstream)
        assert_eq!(r.oom_score_adj, 938);
        // only a limit: the request defaults to it
        let p = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "2"}}}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = container_resources(QosClass::Burstable, c, 1 << 30);
        assert_eq!((r.cpu_shares, r.cpu_quota), (2048, 200_000));
        // nothing: minimum shares, no quota, no memory limit
        let p = pod(json!([{"name": "a"}]));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = container_resources(QosClass::BestEffort, c, 1 << 30);
        assert_eq!(
            (
                r.cpu_shares,
                r.cpu_quota,
                r.memory_limit_in_bytes,
                r.oom_score_adj
            ),
            (2, 0, 0, 1000)
        );
    }

    #[test]
    fn oom_score_adj_bounds() {
        let p = pod(
            json!([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}},
                           {"name": "b", "resources": {"requests": {"memory": "1"}}}]),
        );
        let s = p.spec.as_ref().unwrap();
        // a request of the whole memory clamps to 3
        assert_eq!(
            oom_score_adj(QosClass::Burstable, &s.containers[0], 1 << 30),
            3
        );
        // a tiny request would give 1000: it becomes 999
        assert_eq!(
            oom_score_adj(QosClass::Burstable, &s.containers[1], 1 << 30),
            999
        );
        assert_eq!(
            oom_score_adj(QosClass::Guaranteed, &s.containers[1], 1 << 30),
            -997
        );
    }

    #[test]
    fn cgroup_parents() {
        assert_eq!(cgroup_parent(QosClass::Guaranteed, "u"), "/kubepods/podu");
        assert_eq!(
            cgroup_parent(QosClass::Burstable, "u"),
            "/kubepods/burstable/podu"
        );
        assert_eq!(
            cgroup_parent(QosClass::BestEffort, "u"),
            "/kubepods/besteffort/podu"
        );
    }
}
