//! The pod-level cgroup (upstream's pod container manager, cgroupfs driver): before the sandbox
//! is created the kubelet creates `kubepods[/burstable|/besteffort]/pod<uid>`, the sandbox's
//! cgroup parent, with the pod's limits (upstream `ResourceConfigForPod`): cpu shares from the
//! summed requests, a cfs quota when every container has a cpu limit, a memory limit when every
//! container has a memory limit (always both for Guaranteed pods; only the minimum shares for
//! BestEffort pods). cgroup v1 (and hybrid hosts: the v1 controllers) and v2 are handled; the
//! cgroupfs root is a parameter so tests use a plain directory.

use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::qos::{self, QosClass};

/// The limits of a pod's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodResources {
    /// cgroup v1 `cpu.shares` (v2 `cpu.weight` is derived from it).
    pub cpu_shares: u64,
    /// cfs quota and period in µs; `None` leaves the cpu unlimited.
    pub cpu_quota: Option<(i64, i64)>,
    /// Memory limit in bytes; `None` leaves it unlimited.
    pub memory_limit: Option<i64>,
}

/// The pod's effective value of a resource over its containers (upstream `PodRequests` /
/// `PodLimits`): the app containers and sidecars summed, or a regular init container plus the
/// sidecars started before it, whichever is larger.
fn pod_total(pod: &Pod, per: impl Fn(&Container) -> i64) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let mut sidecars = 0;
    let mut init_max = 0;
    for c in spec.init_containers.iter().flatten() {
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars += per(c);
        } else {
            init_max = init_max.max(per(c) + sidecars);
        }
    }
    let app: i64 = spec.containers.iter().map(&per).sum();
    (app + sidecars).max(init_max)
}

/// Upstream `ResourceConfigForPod` (no pod overhead, no pod-level resources).
pub fn pod_resources(pod: &Pod) -> PodResources {
    let qos = qos::pod_qos(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect();
    let declared = |name: &str| {
        all.iter()
            .all(|c| qos::limit(c, name).is_some_and(|v| v > 0))
    };
    let cpu_requests = pod_total(pod, |c| qos::request_or_limit(c, "cpu").unwrap_or(0));
    let cpu_limits = pod_total(pod, |c| qos::limit(c, "cpu").unwrap_or(0));
    let memory_limits = pod_total(pod, |c| qos::limit(c, "memory").unwrap_or(0));
    let shares = qos::milli_cpu_to_shares(cpu_requests) as u64;
    let quota = (
        qos::milli_cpu_to_quota(cpu_limits, qos::QUOTA_PERIOD),
        qos::QUOTA_PERIOD,
    );
    match qos {
        QosClass::BestEffort => PodResources {
            cpu_shares: qos::milli_cpu_to_shares(0) as u64,
            cpu_quota: None,
            memory_limit: None,
        },
        QosClass::Guaranteed => PodResources {
            cpu_shares: shares,
            cpu_quota: Some(quota),
            memory_limit: Some(memory_limits),
        },
        QosClass::Burstable => PodResources {
            cpu_shares: shares,
            cpu_quota: declared("cpu").then_some(quota),
            memory_limit: declared("memory").then_some(memory_limits),
        },
    }
}

/// cgroup v2 `cpu.weight` for v1 cpu shares (the runtime-spec conversion).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// The files (relative to the cgroupfs root) and values that give a cgroup `res`: v1 per
/// controller hierarchy, v2 in the unified hierarchy.
pub fn cgroup_files(parent: &str, res: &PodResources, v2: bool) -> Vec<(PathBuf, String)> {
    let rel = parent.trim_start_matches('/');
    let mut out = Vec::new();
    if v2 {
        let dir = PathBuf::from(rel);
        out.push((
            dir.join("cpu.weight"),
            shares_to_weight(res.cpu_shares).to_string(),
        ));
        if let Some((quota, period)) = res.cpu_quota {
            out.push((dir.join("cpu.max"), format!("{quota} {period}")));
        }
        if let Some(m) = res.memory_limit {
            out.push((dir.join("memory.max"), m.to_string()));
        }
    } else {
        let cpu = Path::new("cpu").join(rel);
        out.push((cpu.join("cpu.shares"), res.cpu_shares.to_string()));
        if let Some((quota, period)) = res.cpu_quota {
            out.push((cpu.join("cpu.cfs_period_us"), period.to_string()));
            out.push((cpu.join("cpu.cfs_quota_us"), quota.to_string()));
        }
        if let Some(m) = res.memory_limit {
            out.push((
                Path::new("memory").join(rel).join("memory.limit_in_bytes"),
                m.to_string(),
            ));
        }
    }
    out
}

/// v1 controllers whose pod directory the kubelet creates to write limits; the runtime creates
/// the rest of the path in the others (cpuset in particular must be filled in from its parent,
/// which the runtime does).
const V1_CONTROLLERS: &[&str] = &["cpu", "memory"];

/// Whether the cgroupfs at `root` is the unified (v2-only) hierarchy.
pub fn is_v2(root: &Path) -> bool {
    root.join("cgroup.controllers").exists()
}

/// Creates the pod's cgroup under the cgroupfs at `root` (usually `/sys/fs/cgroup`) and writes
/// its limits. Idempotent.
pub fn ensure(root: &Path, parent: &str, res: &PodResources) -> io::Result<()> {
    let v2 = is_v2(root);
    let rel = parent.trim_start_matches('/');
    if v2 {
        // the controllers must be enabled along the path for the pod's files to exist
        let mut dir = root.to_path_buf();
        for part in Path::new(rel).components() {
            let ctl = dir.join("cgroup.subtree_control");
            if ctl.exists() {
                for c in ["+cpu", "+memory", "+pids"] {
                    let _ = std::fs::write(&ctl, c);
                }
            }
            dir = dir.join(part);
            std::fs::create_dir_all(&dir)?;
        }
    } else {
        for c in V1_CONTROLLERS {
            let hierarchy = root.join(c);
            if hierarchy.is_dir() {
                std::fs::create_dir_all(hierarchy.join(rel))?;
            }
        }
    }
    for (file, value) in cgroup_files(parent, res, v2) {
        let path = root.join(&file);
        if path.parent().is_some_and(|p| p.is_dir()) {
            std::fs::write(&path, &value)
                .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(init: serde_json::Value, containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"},
            "spec": {"initContainers": init, "containers": containers}}))
        .unwrap()
    }

    fn c(name: &str, req: serde_json::Value, lim: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": req, "limits": lim}})
    }

    #[test]
    fn pod_resources_table() {
        const MI: i64 = 1024 * 1024;
        let cases = [
            (
                "best effort: minimum shares only",
                pod(json!([]), json!([{"name": "a"}])),
                PodResources {
                    cpu_shares: 2,
                    cpu_quota: None,
                    memory_limit: None,
                },
            ),
            (
                "guaranteed: sums",
                pod(
                    json!([]),
                    json!([
                        c(
                            "a",
                            json!({"cpu": "500m", "memory": "64Mi"}),
                            json!({"cpu": "500m", "memory": "64Mi"})
                        ),
                        c(
                            "b",
                            json!({"cpu": "250m", "memory": "32Mi"}),
                            json!({"cpu": "250m", "memory": "32Mi"})
                        ),
                    ]),
                ),
                PodResources {
                    cpu_shares: 768,
                    cpu_quota: Some((75_000, 100_000)),
                    memory_limit: Some(96 * MI),
                },
            ),
            (
                "burstable, every limit set: limits applied",
                pod(
                    json!([]),
                    json!([
                        c(
                            "a",
                            json!({"cpu": "100m", "memory": "16Mi"}),
                            json!({"cpu": "1", "memory": "64Mi"})
                        ),
                        c(
                            "b",
                            json!({"cpu": "100m"}),
                            json!({"cpu": "1", "memory": "64Mi"})
                        ),
                    ]),
                ),
                PodResources {
                    cpu_shares: 204,
                    cpu_quota: Some((200_000, 100_000)),
                    memory_limit: Some(128 * MI),
                },
            ),
            (
                "burstable, one container without limits: none applied",
                pod(
                    json!([]),
                    json!([
                        c("a", json!({"cpu": "100m"}), json!({"cpu": "1", "memory": "64Mi"})),
                        {"name": "b"},
                    ]),
                ),
                PodResources {
                    cpu_shares: 102,
                    cpu_quota: None,
                    memory_limit: None,
                },
            ),
            (
                "burstable, memory limits everywhere, cpu not",
                pod(
                    json!([]),
                    json!([c("a", json!({"cpu": "100m"}), json!({"memory": "64Mi"})),]),
                ),
                PodResources {
                    cpu_shares: 102,
                    cpu_quota: None,
                    memory_limit: Some(64 * MI),
                },
            ),
            (
                "a larger init container sets the pod's values",
                pod(
                    json!([c(
                        "init",
                        json!({"cpu": "2", "memory": "256Mi"}),
                        json!({"cpu": "2", "memory": "256Mi"})
                    )]),
                    json!([c(
                        "a",
                        json!({"cpu": "1", "memory": "64Mi"}),
                        json!({"cpu": "1", "memory": "64Mi"})
                    )]),
                ),
                PodResources {
                    cpu_shares: 2048,
                    cpu_quota: Some((200_000, 100_000)),
                    memory_limit: Some(256 * MI),
                },
            ),
            (
                "sidecars add to the app containers",
                pod(
                    json!([{"name": "side", "restartPolicy": "Always",
                            "resources": {"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}}]),
                    json!([c(
                        "a",
                        json!({"cpu": "1", "memory": "64Mi"}),
                        json!({"cpu": "1", "memory": "64Mi"})
                    )]),
                ),
                PodResources {
                    cpu_shares: 2048,
                    cpu_quota: Some((200_000, 100_000)),
                    memory_limit: Some(128 * MI),
                },
            ),
        ];
        for (name, p, want) in cases {
            assert_eq!(pod_resources(&p), want, "{name}");
        }
    }

    #[test]
    fn weights_from_shares() {
        for (shares, weight) in [(2, 1), (1024, 39), (262_144, 10_000), (0, 0)] {
            assert_eq!(shares_to_weight(shares), weight, "{shares}");
        }
    }

    #[test]
    fn ensure_writes_v1_files() {
        let root = tempfile::tempdir().unwrap();
        for c in ["cpu", "memory", "pids"] {
            std::fs::create_dir(root.path().join(c)).unwrap();
        }
        let res = PodResources {
            cpu_shares: 512,
            cpu_quota: Some((50_000, 100_000)),
            memory_limit: Some(1 << 26),
        };
        ensure(root.path(), "/kubepods/burstable/podu", &res).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("cpu/kubepods/burstable/podu/cpu.shares"), "512");
        assert_eq!(
            read("cpu/kubepods/burstable/podu/cpu.cfs_quota_us"),
            "50000"
        );
        assert_eq!(
            read("cpu/kubepods/burstable/podu/cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(
            read("memory/kubepods/burstable/podu/memory.limit_in_bytes"),
            (1 << 26).to_string()
        );
        // other controllers are left to the runtime
        assert!(!root.path().join("pids/kubepods").exists());
    }

    #[test]
    fn ensure_writes_v2_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        let res = PodResources {
            cpu_shares: 1024,
            cpu_quota: None,
            memory_limit: Some(1 << 20),
        };
        ensure(root.path(), "/kubepods/podu", &res).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("kubepods/podu/cpu.weight"), "39");
        assert_eq!(read("kubepods/podu/memory.max"), (1 << 20).to_string());
        assert!(!root.path().join("kubepods/podu/cpu.max").exists());
        assert_eq!(read("cgroup.subtree_control"), "+pids");
    }
}
