//! QoS-class cgroups on the host's real cgroupfs (needs root): the node cgroup, its
//! `burstable` and `besteffort` children and a pod cgroup, written through [`QosCgroups`] and
//! read back from the kernel, then removed. A unique node cgroup name keeps concurrent runs apart.

use std::path::{Path, PathBuf};

use kubelet::podcgroup::{pod_resources, qos_class_path, shares_to_weight, CgroupFs, QosCgroups};
use kubelet::qos::{self, QosClass};

const ROOT: &str = "/sys/fs/cgroup";

/// Removes the test's cgroups (deepest first) also when an assertion failed.
struct Cleanup {
    fs: CgroupFs,
    paths: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in self.paths.iter().rev() {
            self.fs.remove(p);
        }
    }
}

/// Where the value of a v1 file (`controller`, `file`) or its v2 counterpart lives.
fn file(v2: bool, path: &str, controller: &str, v1: &str, v2_name: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if v2 {
        Path::new(ROOT).join(rel).join(v2_name)
    } else {
        Path::new(ROOT).join(controller).join(rel).join(v1)
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn qos_cgroups_on_the_host() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let fs = CgroupFs::new(ROOT);
    let v2 = kubelet::podcgroup::is_v2(Path::new(ROOT));
    if !v2 && !Path::new(ROOT).join("cpu").is_dir() {
        eprintln!("skipped: no cpu controller under {ROOT}");
        return;
    }
    let node = format!("/oxkube-qos-test-{}", std::process::id());
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "uid": "u1"},
        "spec": {"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": "64Mi"}}}]}
    }))
    .unwrap();
    assert_eq!(qos::pod_qos(&pod), QosClass::Burstable);
    let burstable = qos_class_path(&node, QosClass::Burstable);
    let besteffort = qos_class_path(&node, QosClass::BestEffort);
    let pod_path = format!("{burstable}/podu1");
    let _cleanup = Cleanup {
        fs: fs.clone(),
        paths: vec![
            node.clone(),
            burstable.clone(),
            besteffort.clone(),
            pod_path.clone(),
        ],
    };
    let shares = |p: &str| read(&file(v2, p, "cpu", "cpu.shares", "cpu.weight"));
    let want = |s: u64| {
        if v2 {
            shares_to_weight(s).to_string()
        } else {
            s.to_string()
        }
    };
    let memory = |p: &str| {
        read(&file(
            v2,
            p,
            "memory",
            "memory.limit_in_bytes",
            "memory.max",
        ))
    };

    let q = QosCgroups::new(fs.clone(), &node);
    q.set_node(2000, 1 << 30).unwrap();
    q.set_pods(0).unwrap();
    assert_eq!(shares(&node), want(2048));
    assert_eq!(memory(&node), (1i64 << 30).to_string());
    assert_eq!(shares(&burstable), want(2));
    assert_eq!(shares(&besteffort), want(2));

    // a burstable pod arrives: the class's shares follow its requests, then its cgroup is made
    q.set_pods(kubelet::podcgroup::burstable_request(&pod))
        .unwrap();
    assert_eq!(shares(&burstable), want(256));
    fs.ensure(&pod_path, &pod_resources(&pod)).unwrap();
    assert_eq!(shares(&pod_path), want(256));
    assert_eq!(memory(&pod_path), (64i64 << 20).to_string());
    let quota = if v2 {
        read(
            &Path::new(ROOT)
                .join(pod_path.trim_start_matches('/'))
                .join("cpu.max"),
        )
    } else {
        read(&file(v2, &pod_path, "cpu", "cpu.cfs_quota_us", ""))
    };
    assert_eq!(quota, if v2 { "50000 100000" } else { "50000" });
    assert!(
        qos::cgroup_parent(QosClass::Burstable, "u1").ends_with("/burstable/podu1"),
        "pods of the class live under its cgroup"
    );

    // the pod goes: its cgroup is removed and the class's shares drop back
    fs.remove(&pod_path);
    assert!(!file(v2, &pod_path, "cpu", "", "").exists());
    q.set_pods(0).unwrap();
    assert_eq!(shares(&burstable), want(2));
}
