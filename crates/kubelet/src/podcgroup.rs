//! Pod and QoS cgroups (upstream's pod container manager and QoS container manager with
//! cgroupsPerQOS, cgroupfs driver): the node cgroup `kubepods` carries the node allocatable
//! (cpu shares, memory limit); its `burstable` child gets the cpu shares of the active
//! Burstable pods' summed requests and `besteffort` the minimum shares; each pod's cgroup
//! `kubepods[/burstable|/besteffort]/pod<uid>`, the sandbox's cgroup parent, is created before
//! the sandbox with the pod's limits (upstream `ResourceConfigForPod`): cpu shares from the
//! summed requests, a cfs quota when every container has a cpu limit, a memory limit when every
//! container has a memory limit (always both for Guaranteed pods; only the minimum shares for
//! BestEffort pods). cgroup v1 (and hybrid hosts: the v1 controllers) and v2 are written by one
//! [`CgroupFs`]; its root is a parameter so tests use a plain directory.

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

/// v1 controllers whose directories the kubelet creates to write limits; the runtime creates
/// the rest of the path in the others (cpuset in particular must be filled in from its parent,
/// which the runtime does).
const V1_CONTROLLERS: &[&str] = &["cpu", "memory"];

/// Controllers enabled for children along a v2 path.
const V2_CONTROLLERS: &[&str] = &["+cpu", "+memory", "+pids"];

/// Whether the cgroupfs at `root` is the unified (v2-only) hierarchy.
pub fn is_v2(root: &Path) -> bool {
    root.join("cgroup.controllers").exists()
}

/// The cgroupfs the kubelet writes (upstream's cgroupfs driver): v1 hierarchies (also on hybrid
/// hosts) or the v2 unified hierarchy under `root` (usually `/sys/fs/cgroup`).
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    v2: bool,
}

impl CgroupFs {
    pub fn new(root: impl Into<PathBuf>) -> CgroupFs {
        let root = root.into();
        let v2 = is_v2(&root);
        CgroupFs { root, v2 }
    }

    /// Creates the cgroup `path` (e.g. `/kubepods/burstable`) and writes `res`. Idempotent.
    pub fn ensure(&self, path: &str, res: &PodResources) -> io::Result<()> {
        let rel = path.trim_start_matches('/');
        if self.v2 {
            // the controllers must be enabled along the path for the files to exist
            let mut dir = self.root.clone();
            for part in Path::new(rel).components() {
                let ctl = dir.join("cgroup.subtree_control");
                if ctl.exists() {
                    for c in V2_CONTROLLERS {
                        let _ = std::fs::write(&ctl, c);
                    }
                }
                dir = dir.join(part);
                std::fs::create_dir_all(&dir)?;
            }
        } else {
            for c in V1_CONTROLLERS {
                let hierarchy = self.root.join(c);
                if hierarchy.is_dir() {
                    std::fs::create_dir_all(hierarchy.join(rel))?;
                }
            }
        }
        for (file, value) in cgroup_files(path, res, self.v2) {
            let file = self.root.join(&file);
            if file.parent().is_some_and(|p| p.is_dir()) {
                std::fs::write(&file, &value).map_err(|e| {
                    io::Error::new(e.kind(), format!("write {}: {e}", file.display()))
                })?;
            }
        }
        Ok(())
    }

    /// Removes the cgroup `path` and its (empty) children in every hierarchy, best effort:
    /// directories that still hold processes stay.
    pub fn remove(&self, path: &str) {
        let rel = path.trim_start_matches('/');
        let mut roots = vec![self.root.clone()];
        if !self.v2 {
            if let Ok(entries) = std::fs::read_dir(&self.root) {
                roots.extend(entries.flatten().map(|e| e.path()));
            }
        }
        for root in roots {
            let dir = root.join(rel);
            if !dir.is_dir() {
                continue;
            }
            // container cgroups the runtime left behind are empty by now
            if let Ok(children) = std::fs::read_dir(&dir) {
                for c in children.flatten() {
                    if c.path().is_dir() {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// Creates the pod's cgroup under the cgroupfs at `root` (usually `/sys/fs/cgroup`) and writes
/// its limits. Idempotent.
pub fn ensure(root: &Path, parent: &str, res: &PodResources) -> io::Result<()> {
    CgroupFs::new(root).ensure(parent, res)
}

/// The limits of the top-level `kubepods` cgroup (upstream's node allocatable enforcement with
/// no system or kube reservations): cpu shares for the node's cpus and its memory as the limit.
pub fn node_resources(cpu_milli: i64, memory_bytes: i64) -> PodResources {
    PodResources {
        cpu_shares: qos::milli_cpu_to_shares(cpu_milli) as u64,
        cpu_quota: None,
        memory_limit: (memory_bytes > 0).then_some(memory_bytes),
    }
}

/// The cpu request (milli) a pod adds to the burstable QoS cgroup: its summed requests when it
/// is Burstable, else nothing (upstream `setCPUCgroupConfig`).
pub fn burstable_request(pod: &Pod) -> i64 {
    if qos::pod_qos(pod) != QosClass::Burstable {
        return 0;
    }
    pod_total(pod, |c| qos::request_or_limit(c, "cpu").unwrap_or(0))
}

/// The limits of the QoS-class cgroups for the active pods' summed burstable cpu requests:
/// `burstable` gets their shares, `besteffort` always the minimum (upstream's QoS container
/// manager; memory reservations (`--qos-reserved`) are off by default and not applied).
pub fn qos_class_resources(burstable_milli: i64) -> [(QosClass, PodResources); 2] {
    let shares = |m: i64| PodResources {
        cpu_shares: qos::milli_cpu_to_shares(m) as u64,
        cpu_quota: None,
        memory_limit: None,
    };
    [
        (QosClass::Burstable, shares(burstable_milli)),
        (QosClass::BestEffort, shares(0)),
    ]
}

/// The path of a QoS class's cgroup under the node's (`kubepods`) cgroup.
pub fn qos_class_path(node: &str, class: QosClass) -> String {
    let node = node.trim_end_matches('/');
    match class {
        QosClass::Guaranteed => node.to_string(),
        QosClass::Burstable => format!("{node}/burstable"),
        QosClass::BestEffort => format!("{node}/besteffort"),
    }
}

/// Upstream's QoS container manager (cgroupsPerQOS): the node's `kubepods` cgroup with the node
/// allocatable, its `burstable` and `besteffort` children with cpu shares following the active
/// pods. Values are written only when they change.
#[derive(Debug)]
pub struct QosCgroups {
    fs: CgroupFs,
    node: String,
    written: std::sync::Mutex<Written>,
}

#[derive(Debug, Default)]
struct Written {
    node: Option<PodResources>,
    burstable_milli: Option<i64>,
}

impl QosCgroups {
    /// The manager for the node cgroup `node` (upstream `/kubepods`) in the cgroupfs `fs`.
    pub fn new(fs: CgroupFs, node: &str) -> QosCgroups {
        QosCgroups {
            fs,
            node: node.to_string(),
            written: Default::default(),
        }
    }

    /// The cgroupfs written.
    pub fn fs(&self) -> &CgroupFs {
        &self.fs
    }

    /// Applies the node allocatable to the node cgroup (creating it).
    pub fn set_node(&self, cpu_milli: i64, memory_bytes: i64) -> io::Result<()> {
        let res = node_resources(cpu_milli, memory_bytes);
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if w.node == Some(res) {
            return Ok(());
        }
        self.fs.ensure(&self.node, &res)?;
        w.node = Some(res);
        Ok(())
    }

    /// Applies the active pods' summed burstable cpu requests (milli) to the QoS-class cgroups
    /// (creating them). Call it before a pod's cgroup is created and when pods go away.
    pub fn set_pods(&self, burstable_milli: i64) -> io::Result<()> {
        let mut w = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if w.burstable_milli == Some(burstable_milli) {
            return Ok(());
        }
        for (class, res) in qos_class_resources(burstable_milli) {
            self.fs.ensure(&qos_class_path(&self.node, class), &res)?;
        }
        w.burstable_milli = Some(burstable_milli);
        Ok(())
    }

    /// Forgets what was written: the next calls write again (after the cgroups were removed).
    pub fn reset(&self) {
        *self.written.lock().unwrap_or_else(|e| e.into_inner()) = Written::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MI: i64 = 1024 * 1024;

    fn pod(init: serde_json::Value, containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"},
            "spec": {"initContainers": init, "containers": containers}}))
        .unwrap()
    }

    fn c(name: &str, req: serde_json::Value, lim: serde_json::Value) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": req, "limits": lim}})
    }

    /// A container whose requests equal its limits.
    fn g(name: &str, cpu: &str, memory: &str) -> serde_json::Value {
        let r = json!({"cpu": cpu, "memory": memory});
        c(name, r.clone(), r)
    }

    fn res(cpu_shares: u64, cpu_quota: Option<i64>, memory_limit: Option<i64>) -> PodResources {
        PodResources {
            cpu_shares,
            cpu_quota: cpu_quota.map(|q| (q, 100_000)),
            memory_limit,
        }
    }

    #[test]
    fn pod_resources_table() {
        let cases = [
            (
                "best effort: minimum shares only",
                pod(json!([]), json!([{"name": "a"}])),
                res(2, None, None),
            ),
            (
                "guaranteed: sums",
                pod(
                    json!([]),
                    json!([g("a", "500m", "64Mi"), g("b", "250m", "32Mi")]),
                ),
                res(768, Some(75_000), Some(96 * MI)),
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
                res(204, Some(200_000), Some(128 * MI)),
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
                res(102, None, None),
            ),
            (
                "burstable, memory limits everywhere, cpu not",
                pod(
                    json!([]),
                    json!([c("a", json!({"cpu": "100m"}), json!({"memory": "64Mi"}))]),
                ),
                res(102, None, Some(64 * MI)),
            ),
            (
                "a larger init container sets the pod's values",
                pod(
                    json!([g("init", "2", "256Mi")]),
                    json!([g("a", "1", "64Mi")]),
                ),
                res(2048, Some(200_000), Some(256 * MI)),
            ),
            (
                "sidecars add to the app containers",
                pod(
                    json!([{"name": "side", "restartPolicy": "Always",
                            "resources": {"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}}}]),
                    json!([g("a", "1", "64Mi")]),
                ),
                res(2048, Some(200_000), Some(128 * MI)),
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
    fn burstable_requests_table() {
        let cases = [
            (
                "best effort adds nothing",
                pod(json!([]), json!([{"name": "a"}])),
                0,
            ),
            (
                "guaranteed adds nothing",
                pod(json!([]), json!([g("a", "1", "64Mi")])),
                0,
            ),
            (
                "burstable: summed requests",
                pod(
                    json!([]),
                    json!([
                        c("a", json!({"cpu": "100m"}), json!({})),
                        c("b", json!({"cpu": "250m"}), json!({"cpu": "1"})),
                        {"name": "c"},
                    ]),
                ),
                350,
            ),
            (
                "burstable with memory only: no cpu",
                pod(
                    json!([]),
                    json!([c("a", json!({"memory": "16Mi"}), json!({}))]),
                ),
                0,
            ),
            (
                "burstable: a larger init container wins",
                pod(
                    json!([c("i", json!({"cpu": "2"}), json!({}))]),
                    json!([c("a", json!({"cpu": "100m"}), json!({}))]),
                ),
                2000,
            ),
        ];
        for (name, p, want) in cases {
            assert_eq!(burstable_request(&p), want, "{name}");
        }
    }

    #[test]
    fn qos_class_values() {
        let [(b, bres), (e, eres)] = qos_class_resources(1500);
        assert_eq!((b, e), (QosClass::Burstable, QosClass::BestEffort));
        assert_eq!(bres, res(1536, None, None));
        assert_eq!(eres, res(2, None, None));
        // no burstable pods: the minimum, as upstream
        assert_eq!(qos_class_resources(0)[0].1.cpu_shares, 2);
        assert_eq!(
            node_resources(4000, 8 << 30),
            res(4096, None, Some(8 << 30))
        );
        assert_eq!(
            qos_class_path("/kubepods", QosClass::Burstable),
            "/kubepods/burstable"
        );
        assert_eq!(
            qos_class_path("/kubepods/", QosClass::BestEffort),
            "/kubepods/besteffort"
        );
        assert_eq!(
            qos_class_path("/kubepods", QosClass::Guaranteed),
            "/kubepods"
        );
    }

    fn v1_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for c in ["cpu", "memory", "pids"] {
            std::fs::create_dir(root.path().join(c)).unwrap();
        }
        root
    }

    fn v2_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(root.path().join("cgroup.subtree_control"), "").unwrap();
        root
    }

    fn read(root: &tempfile::TempDir, p: &str) -> String {
        std::fs::read_to_string(root.path().join(p)).unwrap()
    }

    #[test]
    fn ensure_writes_v1_files() {
        let root = v1_root();
        ensure(
            root.path(),
            "/kubepods/burstable/podu",
            &res(512, Some(50_000), Some(1 << 26)),
        )
        .unwrap();
        let dir = "kubepods/burstable/podu";
        assert_eq!(read(&root, &format!("cpu/{dir}/cpu.shares")), "512");
        assert_eq!(read(&root, &format!("cpu/{dir}/cpu.cfs_quota_us")), "50000");
        assert_eq!(
            read(&root, &format!("cpu/{dir}/cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(
            read(&root, &format!("memory/{dir}/memory.limit_in_bytes")),
            (1 << 26).to_string()
        );
        // other controllers are left to the runtime
        assert!(!root.path().join("pids/kubepods").exists());
    }

    #[test]
    fn ensure_writes_v2_files() {
        let root = v2_root();
        ensure(
            root.path(),
            "/kubepods/podu",
            &res(1024, None, Some(1 << 20)),
        )
        .unwrap();
        assert_eq!(read(&root, "kubepods/podu/cpu.weight"), "39");
        assert_eq!(
            read(&root, "kubepods/podu/memory.max"),
            (1 << 20).to_string()
        );
        assert!(!root.path().join("kubepods/podu/cpu.max").exists());
        assert_eq!(read(&root, "cgroup.subtree_control"), "+pids");
    }

    #[test]
    fn qos_cgroups_follow_node_and_pods() {
        for (v2, root) in [(false, v1_root()), (true, v2_root())] {
            let q = QosCgroups::new(CgroupFs::new(root.path()), "/kubepods");
            q.set_node(2000, 4 << 30).unwrap();
            q.set_pods(300).unwrap();
            type Path = fn(&str) -> String;
            let (shares, limit): (Path, Path) = if v2 {
                (
                    |d: &str| format!("{d}/cpu.weight"),
                    |d: &str| format!("{d}/memory.max"),
                )
            } else {
                (
                    |d: &str| format!("cpu/{d}/cpu.shares"),
                    |d: &str| format!("memory/{d}/memory.limit_in_bytes"),
                )
            };
            let want = |s: u64| {
                if v2 {
                    shares_to_weight(s).to_string()
                } else {
                    s.to_string()
                }
            };
            assert_eq!(read(&root, &shares("kubepods")), want(2048), "v2 {v2}");
            assert_eq!(read(&root, &limit("kubepods")), (4i64 << 30).to_string());
            assert_eq!(read(&root, &shares("kubepods/burstable")), want(307));
            assert_eq!(read(&root, &shares("kubepods/besteffort")), want(2));
            assert!(!root.path().join(limit("kubepods/burstable")).exists());
            // pods come and go
            q.set_pods(1000).unwrap();
            assert_eq!(read(&root, &shares("kubepods/burstable")), want(1024));
            q.set_pods(0).unwrap();
            assert_eq!(read(&root, &shares("kubepods/burstable")), want(2));
            // unchanged values are not written again
            std::fs::write(root.path().join(shares("kubepods/burstable")), "7").unwrap();
            q.set_pods(0).unwrap();
            assert_eq!(read(&root, &shares("kubepods/burstable")), "7");
            q.reset();
            q.set_pods(0).unwrap();
            assert_eq!(read(&root, &shares("kubepods/burstable")), want(2));
        }
    }
}
