//! Resource accounting: quantities, a pod's effective requests (upstream `PodRequests`) and a
//! node's allocatable resources.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU request assumed for a container without one when scoring (upstream `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory request assumed for a container without one when scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each schedulable resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Number of pods (only meaningful for allocatable).
    pub allowed_pods: i64,
    /// Extended resources, hugepages and other scalar resources.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether a resource name is accounted as a scalar resource (upstream `IsScalarResourceName`).
pub fn is_scalar_resource_name(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/')
            && !name.starts_with("kubernetes.io/")
            && !name.contains(".kubernetes.io/"))
        || name.starts_with("requests.")
}

/// Milli-units of a quantity, rounded up as `Quantity.MilliValue`.
pub fn milli_value(q: &Quantity) -> i64 {
    apimachinery::validation::quantity::parse(&q.0)
        .map(|v| (v * 1000.0 - 1e-6).ceil() as i64)
        .unwrap_or(0)
}

/// Integer value of a quantity, rounded up as `Quantity.Value`.
pub fn value(q: &Quantity) -> i64 {
    apimachinery::validation::quantity::parse(&q.0)
        .map(|v| (v - 1e-9).ceil() as i64)
        .unwrap_or(0)
}

impl Resource {
    /// Builds a resource from a ResourceList.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resource {
        let mut r = Resource::default();
        if let Some(list) = list {
            for (name, q) in list {
                r.set(name, q);
            }
        }
        r
    }

    fn set(&mut self, name: &str, q: &Quantity) {
        match name {
            "cpu" => self.milli_cpu = milli_value(q),
            "memory" => self.memory = value(q),
            "ephemeral-storage" => self.ephemeral_storage = value(q),
            "pods" => self.allowed_pods = value(q),
            n if is_scalar_resource_name(n) => {
                self.scalar.insert(n.to_string(), value(q));
            }
            _ => {}
        }
    }

    pub fn add(&mut self, o: &Resource) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.allowed_pods += o.allowed_pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resource) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.allowed_pods -= o.allowed_pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Element-wise maximum.
    pub fn set_max(&mut self, o: &Resource) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        self.allowed_pods = self.allowed_pods.max(o.allowed_pods);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }

    /// The amount of a named resource (`cpu` in milli-units).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pods,
            n => self.scalar(n),
        }
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resource {
    let mut r = Resource::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    if non_zero {
        let reqs = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        if !reqs.is_some_and(|m| m.contains_key("cpu")) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !reqs.is_some_and(|m| m.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// The effective requests of a pod: the larger of the sum of app containers (plus sidecars) and
/// the largest init container (plus the sidecars started before it), plus the pod overhead.
/// With `non_zero`, containers without a cpu/memory request count the scoring defaults.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let mut cr = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&cr);
            sidecars.add(&cr);
            cr = sidecars.clone();
        } else {
            cr.add(&sidecars);
        }
        init_max.set_max(&cr);
    }
    reqs.set_max(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        let o = Resource::from_list(Some(overhead));
        if non_zero {
            reqs.milli_cpu += o.milli_cpu;
            reqs.memory += o.memory;
        } else {
            reqs.add(&o);
        }
    }
    reqs
}

/// The allocatable resources of a node (`status.allocatable`).
pub fn node_allocatable(node: &Node) -> Resource {
    Resource::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_requests_table() {
        let cases: Vec<(&str, serde_json::Value, i64, i64, i64, i64)> = vec![
            (
                "two containers sum",
                serde_json::json!({"spec":{"containers":[
                    {"name":"a","resources":{"requests":{"cpu":"100m","memory":"1Gi"}}},
                    {"name":"b","resources":{"requests":{"cpu":"1","memory":"1Mi"}}}]}}),
                1100,
                (1 << 30) + (1 << 20),
                1100,
                (1 << 30) + (1 << 20),
            ),
            (
                "init container larger wins",
                serde_json::json!({"spec":{"initContainers":[{"name":"i","resources":{"requests":{"cpu":"2"}}}],
                    "containers":[{"name":"a","resources":{"requests":{"cpu":"500m"}}}]}}),
                2000,
                0,
                2000,
                DEFAULT_MEMORY_REQUEST,
            ),
            (
                "sidecar adds to containers and to later init containers",
                serde_json::json!({"spec":{"initContainers":[
                    {"name":"s","restartPolicy":"Always","resources":{"requests":{"cpu":"300m"}}},
                    {"name":"i","resources":{"requests":{"cpu":"1"}}}],
                    "containers":[{"name":"a","resources":{"requests":{"cpu":"500m"}}}]}}),
                1300,
                0,
                1300,
                2 * DEFAULT_MEMORY_REQUEST,
            ),
            (
                "overhead is added",
                serde_json::json!({"spec":{"overhead":{"cpu":"250m","memory":"10Mi"},
                    "containers":[{"name":"a","resources":{"requests":{"cpu":"250m"}}}]}}),
                500,
                10 << 20,
                500,
                DEFAULT_MEMORY_REQUEST + (10 << 20),
            ),
            (
                "no requests: defaults only when non-zero",
                serde_json::json!({"spec":{"containers":[{"name":"a"},{"name":"b"}]}}),
                0,
                0,
                2 * DEFAULT_MILLI_CPU_REQUEST,
                2 * DEFAULT_MEMORY_REQUEST,
            ),
        ];
        for (name, p, cpu, mem, nz_cpu, nz_mem) in cases {
            let p = pod(p);
            let r = pod_requests(&p, false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{name}");
            let r = pod_requests(&p, true);
            assert_eq!((r.milli_cpu, r.memory), (nz_cpu, nz_mem), "{name} non-zero");
        }
    }

    #[test]
    fn scalar_resources_are_tracked() {
        let p = pod(
            serde_json::json!({"spec":{"containers":[{"name":"a","resources":{"requests":{
            "example.com/gpu":"2","hugepages-2Mi":"4Mi","ephemeral-storage":"1G"}}}]}}),
        );
        let r = pod_requests(&p, false);
        assert_eq!(r.scalar("example.com/gpu"), 2);
        assert_eq!(r.scalar("hugepages-2Mi"), 4 << 20);
        assert_eq!(r.ephemeral_storage, 1_000_000_000);
    }
}
