//! Node registration and heartbeats: the Node object (labels, addresses, capacity/allocatable,
//! conditions with upstream's reasons, nodeInfo, daemon endpoints, images), its periodic status
//! updates (patched when changed or every report interval), the node Lease in `kube-node-lease`
//! renewed every few seconds, and the node's `spec.podCIDR` handed to the runtime with CRI
//! UpdateRuntimeConfig. The object building is pure; the loops at the bottom do the IO.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cri::v1 as pb;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::{Config, Cri, Shared};

/// The kubelet version reported in nodeInfo.
pub const KUBELET_VERSION: &str = "v1.33.0";
/// The kubelet's default HTTPS port, published in daemonEndpoints.
pub const KUBELET_PORT: u16 = 10250;
/// Upstream's default hard eviction thresholds, subtracted from capacity for allocatable.
pub const EVICTION_MEMORY_AVAILABLE: i64 = 100 * 1024 * 1024;
pub const EVICTION_NODEFS_AVAILABLE_PCT: f64 = 0.10;

/// Hard eviction thresholds (upstream `--eviction-hard`): below them the node reports memory or
/// disk pressure, and allocatable is capacity minus them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eviction {
    /// `memory.available`, bytes.
    pub memory_available: i64,
    /// `nodefs.available`, a fraction of the filesystem.
    pub nodefs_available: f64,
}

impl Default for Eviction {
    fn default() -> Self {
        Eviction {
            memory_available: EVICTION_MEMORY_AVAILABLE,
            nodefs_available: EVICTION_NODEFS_AVAILABLE_PCT,
        }
    }
}

impl std::str::FromStr for Eviction {
    type Err = String;

    /// `memory.available<100Mi,nodefs.available<10%` (signals not given keep their defaults).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut e = Eviction::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (signal, value) = part
                .split_once('<')
                .ok_or_else(|| format!("invalid eviction threshold {part:?}: want signal<value"))?;
            match signal.trim() {
                "memory.available" => {
                    let v = value.trim();
                    let bytes = apimachinery::validation::quantity::parse(v)
                        .filter(|b| *b >= 0.0)
                        .ok_or_else(|| format!("invalid memory.available quantity {v:?}"))?;
                    e.memory_available = bytes.ceil() as i64;
                }
                "nodefs.available" => {
                    let pct: f64 = value
                        .trim()
                        .strip_suffix('%')
                        .and_then(|n| n.parse().ok())
                        .filter(|p: &f64| (0.0..100.0).contains(p))
                        .ok_or_else(|| format!("invalid nodefs.available percentage {value:?}"))?;
                    e.nodefs_available = pct / 100.0;
                }
                other => return Err(format!("unsupported eviction signal {other:?}")),
            }
        }
        Ok(e)
    }
}
/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// At most this many images are reported in node status (upstream `nodeStatusMaxImages`).
pub const MAX_IMAGES: usize = 50;

/// Static and sampled facts about the machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    pub cpus: i64,
    pub memory_total: i64,
    pub memory_available: i64,
    pub fs_total: i64,
    pub fs_available: i64,
    pub pid_max: i64,
    pub pids_in_use: i64,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    pub architecture: String,
}

/// `MemTotal`/`MemAvailable` of /proc/meminfo in bytes.
pub fn parse_meminfo(text: &str) -> (i64, i64) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (get("MemTotal:"), get("MemAvailable:"))
}

/// `PRETTY_NAME` of /etc/os-release.
pub fn parse_os_release(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The architecture name Kubernetes uses (`GOARCH`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Reads the machine's facts from /proc, /sys and statvfs of `fs_root`.
pub fn read_machine(fs_root: &std::path::Path) -> Machine {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let (memory_total, memory_available) =
        parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    let (fs_total, fs_available) = match nix::sys::statvfs::statvfs(fs_root) {
        Ok(s) => (
            (s.blocks() as i64) * (s.fragment_size() as i64),
            (s.blocks_available() as i64) * (s.fragment_size() as i64),
        ),
        Err(_) => (0, 0),
    };
    // /proc/loadavg: "0.00 0.01 0.05 1/123 4567": the total of scheduling entities
    let pids_in_use = read("/proc/loadavg")
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1),
        memory_total,
        memory_available,
        fs_total,
        fs_available,
        pid_max: read("/proc/sys/kernel/pid_max").parse().unwrap_or(32768),
        pids_in_use,
        machine_id: read("/etc/machine-id"),
        system_uuid: read("/sys/class/dmi/id/product_uuid"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        kernel_version: read("/proc/sys/kernel/osrelease"),
        os_image: parse_os_release(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
        architecture: go_arch().to_string(),
    }
}

/// The node's labels: hostname, os, arch (and their beta forms) plus the configured ones.
pub fn node_labels(hostname: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), hostname.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), go_arch().to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), go_arch().to_string()),
    ]);
    l.extend(extra.clone());
    l
}

/// Capacity and allocatable (allocatable = capacity minus the hard eviction thresholds).
pub fn resources(
    m: &Machine,
    max_pods: i64,
    eviction: &Eviction,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let q = |s: String| Quantity(s);
    let ki = |b: i64| format!("{}Ki", b.max(0) / 1024);
    let capacity = BTreeMap::from([
        ("cpu".to_string(), q(m.cpus.to_string())),
        ("memory".to_string(), q(ki(m.memory_total))),
        ("ephemeral-storage".to_string(), q(ki(m.fs_total))),
        ("pods".to_string(), q(max_pods.to_string())),
        ("hugepages-1Gi".to_string(), q("0".into())),
        ("hugepages-2Mi".to_string(), q("0".into())),
    ]);
    let fs_alloc = m.fs_total - (m.fs_total as f64 * eviction.nodefs_available) as i64;
    let allocatable = BTreeMap::from([
        ("cpu".to_string(), q(m.cpus.to_string())),
        (
            "memory".to_string(),
            q(ki(m.memory_total - eviction.memory_available)),
        ),
        (
            "ephemeral-storage".to_string(),
            q(fs_alloc.max(0).to_string()),
        ),
        ("pods".to_string(), q(max_pods.to_string())),
        ("hugepages-1Gi".to_string(), q("0".into())),
        ("hugepages-2Mi".to_string(), q("0".into())),
    ]);
    (capacity, allocatable)
}

/// Why the runtime is not ready, if it is not (from CRI Status).
pub fn runtime_problem(status: Result<&pb::RuntimeStatus, &str>) -> Option<String> {
    let st = match status {
        Ok(s) => s,
        Err(e) => return Some(format!("container runtime is down: {e}")),
    };
    let cond = |t: &str| st.conditions.iter().find(|c| c.r#type == t);
    for (t, what) in [
        ("RuntimeReady", "container runtime not ready"),
        ("NetworkReady", "container runtime network not ready"),
    ] {
        match cond(t) {
            Some(c) if c.status => {}
            Some(c) => {
                return Some(format!(
                    "{what}: {t}=false reason:{} message:{}",
                    c.reason, c.message
                ))
            }
            None => return Some(format!("{what}: {t} condition missing")),
        }
    }
    None
}

fn condition(
    old: &[NodeCondition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> NodeCondition {
    let s = if status { "True" } else { "False" };
    let last_transition = match old.iter().find(|c| c.type_ == type_) {
        Some(o) if o.status == s => o.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    NodeCondition {
        type_: type_.to_string(),
        status: s.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: last_transition,
    }
}

/// The node conditions (upstream reasons and messages).
pub fn conditions(
    old: &[NodeCondition],
    m: &Machine,
    eviction: &Eviction,
    runtime_problem: Option<&str>,
    now: Timestamp,
) -> Vec<NodeCondition> {
    let mem_pressure = m.memory_total > 0 && m.memory_available < eviction.memory_available;
    let disk_pressure =
        m.fs_total > 0 && (m.fs_available as f64) < m.fs_total as f64 * eviction.nodefs_available;
    let pid_pressure = m.pid_max > 0 && (m.pid_max - m.pids_in_use) < m.pid_max / 10;
    vec![
        if mem_pressure {
            condition(
                old,
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                now,
            )
        } else {
            condition(
                old,
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
            )
        },
        if disk_pressure {
            condition(
                old,
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                now,
            )
        } else {
            condition(
                old,
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                now,
            )
        },
        if pid_pressure {
            condition(
                old,
                "PIDPressure",
                true,
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
                now,
            )
        } else {
            condition(
                old,
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                now,
            )
        },
        match runtime_problem {
            None => condition(
                old,
                "Ready",
                true,
                "KubeletReady",
                "kubelet is posting ready status",
                now,
            ),
            Some(p) => condition(old, "Ready", false, "KubeletNotReady", p, now),
        },
    ]
}

/// Everything of the node status the kubelet owns.
pub struct StatusInput<'a> {
    pub machine: &'a Machine,
    pub old: &'a [NodeCondition],
    pub runtime_problem: Option<&'a str>,
    pub runtime_version: &'a str,
    pub hostname: &'a str,
    pub node_ips: &'a [String],
    pub max_pods: i64,
    pub images: Vec<ContainerImage>,
    /// The port of the kubelet HTTPS API (daemonEndpoints).
    pub kubelet_port: u16,
    pub eviction: Eviction,
    pub now: Timestamp,
}

pub fn node_status(i: &StatusInput<'_>) -> NodeStatus {
    let (capacity, allocatable) = resources(i.machine, i.max_pods, &i.eviction);
    let mut addresses: Vec<NodeAddress> = i
        .node_ips
        .iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.clone(),
        })
        .collect();
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: i.hostname.to_string(),
    });
    let m = i.machine;
    NodeStatus {
        addresses: Some(addresses),
        allocatable: Some(allocatable),
        capacity: Some(capacity),
        conditions: Some(conditions(i.old, m, &i.eviction, i.runtime_problem, i.now)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i.kubelet_port as i32,
            }),
        }),
        images: Some(i.images.clone()),
        node_info: Some(NodeSystemInfo {
            architecture: m.architecture.clone(),
            boot_id: m.boot_id.clone(),
            container_runtime_version: i.runtime_version.to_string(),
            kernel_version: m.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: m.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: m.os_image.clone(),
            system_uuid: m.system_uuid.clone(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// The node status as JSON with heartbeat times removed, to tell real changes from heartbeats.
pub fn without_heartbeats(s: &NodeStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(conds) = v.get_mut("conditions").and_then(|c| c.as_array_mut()) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
    }
    v
}

/// The images of the node status, biggest first (as upstream sorts them).
pub fn status_images(list: &[pb::Image]) -> Vec<ContainerImage> {
    let mut imgs: Vec<&pb::Image> = list.iter().collect();
    imgs.sort_by_key(|i| std::cmp::Reverse(i.size));
    imgs.into_iter()
        .take(MAX_IMAGES)
        .map(|i| {
            let mut names: Vec<String> = i.repo_digests.clone();
            names.extend(i.repo_tags.iter().cloned());
            ContainerImage {
                names: Some(names),
                size_bytes: Some(i.size as i64),
            }
        })
        .collect()
}

// ---- IO -------------------------------------------------------------------------------------

/// Creates the Node (or brings the labels of an existing one up to date); returns its uid.
pub async fn register(shared: &Shared) -> Result<Node, kube::Error> {
    let cfg = &shared.config;
    let api: Api<Node> = Api::all(shared.client.clone());
    let labels = node_labels(&cfg.hostname, &cfg.node_labels);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.node_name.clone()),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([
                ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
                (
                    "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                    "true".to_string(),
                ),
            ])),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(n) => {
            tracing::info!(node = %cfg.node_name, "node registered");
            Ok(n)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = serde_json::json!({"metadata": {"labels": labels}});
            let n = api
                .patch(
                    &cfg.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            tracing::info!(node = %cfg.node_name, "node already registered");
            Ok(n)
        }
        Err(e) => Err(e),
    }
}

async fn runtime_status(cri: &Cri) -> Result<pb::RuntimeStatus, String> {
    let mut rt = cri.rt.clone();
    rt.status(pb::StatusRequest { verbose: false })
        .await
        .map_err(|e| e.message().to_string())
        .and_then(|r| {
            r.into_inner()
                .status
                .ok_or_else(|| "runtime returned no status".to_string())
        })
}

/// Posts the node status now (when it changed or `force`); returns the runtime problem if any.
pub async fn update_status(shared: &Shared, force: bool) -> Result<Option<String>, kube::Error> {
    let cfg = &shared.config;
    let api: Api<Node> = Api::all(shared.client.clone());
    let node = api.get_status(&cfg.node_name).await?;
    let old = node.status.clone().unwrap_or_default();
    let root = cfg.root_dir.clone();
    let machine = tokio::task::spawn_blocking(move || read_machine(&root))
        .await
        .unwrap_or_default();
    let status = runtime_status(&shared.cri).await;
    let problem = runtime_problem(status.as_ref().map_err(|e| e.as_str()));
    let images = {
        let mut img = shared.cri.img.clone();
        img.list_images(pb::ListImagesRequest { filter: None })
            .await
            .map(|r| status_images(&r.into_inner().images))
            .unwrap_or_default()
    };
    let new = node_status(&StatusInput {
        machine: &machine,
        old: old.conditions.as_deref().unwrap_or_default(),
        runtime_problem: problem.as_deref(),
        runtime_version: &shared.runtime_version,
        hostname: &cfg.hostname,
        node_ips: &shared.node_ips,
        max_pods: cfg.max_pods,
        images,
        kubelet_port: cfg.kubelet_port,
        eviction: cfg.eviction,
        now: Timestamp::now(),
    });
    {
        let (_, alloc) = resources(&machine, cfg.max_pods, &cfg.eviction);
        let mut facts = shared.facts.write().unwrap();
        facts.memory_capacity = machine.memory_total;
        facts.allocatable = (
            crate::qos::milli(&alloc["cpu"]),
            crate::qos::value(&alloc["memory"]),
            crate::qos::value(&alloc["ephemeral-storage"]),
        );
        // node allocatable enforcement on the pods' cgroup (no system or kube reservations)
        let cpu = crate::qos::milli(&alloc["cpu"]);
        if let Err(e) = shared.qos_cgroups.set_node(cpu, machine.memory_total) {
            tracing::warn!(error = %e, "updating the node's pod cgroup failed");
        }
    }
    let changed = without_heartbeats(&old) != without_heartbeats(&new);
    let due = shared
        .last_status_report
        .lock()
        .unwrap()
        .is_none_or(|t| t.elapsed() >= cfg.node_status_report_frequency);
    if changed || force || due {
        let patch = serde_json::json!({"status": new});
        api.patch_status(
            &cfg.node_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        *shared.last_status_report.lock().unwrap() = Some(Instant::now());
        tracing::debug!(node = %cfg.node_name, changed, "node status updated");
    }
    Ok(problem)
}

/// Renews (creating if needed) the node Lease forever.
pub async fn run_lease(shared: std::sync::Arc<Shared>, node_uid: String) {
    let cfg = &shared.config;
    let api: Api<Lease> = Api::namespaced(shared.client.clone(), LEASE_NAMESPACE);
    loop {
        if let Err(e) = renew_lease(&api, cfg, &node_uid).await {
            tracing::warn!(error = %e, "renewing the node lease failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        tokio::time::sleep(cfg.lease_renew_interval).await;
    }
}

async fn renew_lease(api: &Api<Lease>, cfg: &Config, node_uid: &str) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let spec = LeaseSpec {
        holder_identity: Some(cfg.node_name.clone()),
        lease_duration_seconds: Some(cfg.node_lease_duration.as_secs() as i32),
        renew_time: Some(now),
        ..Default::default()
    };
    match api.get_opt(&cfg.node_name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.node_name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: cfg.node_name.clone(),
                        uid: node_uid.to_string(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await?;
        }
        Some(mut lease) => {
            let mut s = lease.spec.clone().unwrap_or_default();
            s.holder_identity = spec.holder_identity;
            s.lease_duration_seconds = spec.lease_duration_seconds;
            s.renew_time = spec.renew_time;
            lease.spec = Some(s);
            api.replace(&cfg.node_name, &PostParams::default(), &lease)
                .await?;
        }
    }
    Ok(())
}

/// Posts node status periodically.
pub async fn run_status(shared: std::sync::Arc<Shared>) {
    loop {
        match update_status(&shared, false).await {
            Ok(problem) => {
                let ready = problem.is_none();
                shared.network_ready.send_if_modified(|r| {
                    let changed = *r != ready;
                    *r = ready;
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "updating node status failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.node_status_update_frequency) => {}
            _ = shared.status_now.notified() => {}
        }
    }
}

/// Watches the node's spec.podCIDR and hands it to the runtime (CRI UpdateRuntimeConfig).
pub async fn run_pod_cidr(shared: std::sync::Arc<Shared>) {
    use futures::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};
    let api: Api<Node> = Api::all(shared.client.clone());
    let wc =
        watcher::Config::default().fields(&format!("metadata.name={}", shared.config.node_name));
    let mut stream = watcher::watcher(api, wc).default_backoff().boxed();
    let mut applied = String::new();
    while let Some(ev) = stream.next().await {
        let node = match ev {
            Ok(watcher::Event::Apply(n)) | Ok(watcher::Event::InitApply(n)) => n,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "node watch error");
                continue;
            }
        };
        let cidr = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.clone())
            .unwrap_or_default();
        if cidr.is_empty() || cidr == applied {
            continue;
        }
        let mut rt = shared.cri.rt.clone();
        let req = pb::UpdateRuntimeConfigRequest {
            runtime_config: Some(pb::RuntimeConfig {
                network_config: Some(pb::NetworkConfig {
                    pod_cidr: cidr.clone(),
                }),
            }),
        };
        match rt.update_runtime_config(req).await {
            Ok(_) => {
                tracing::info!(pod_cidr = %cidr, "pod CIDR handed to the runtime");
                applied = cidr;
                shared.status_now.notify_one();
            }
            Err(e) => tracing::warn!(error = %e.message(), "UpdateRuntimeConfig failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_total: 4 << 30,
            memory_available: 2 << 30,
            fs_total: 100 << 30,
            fs_available: 50 << 30,
            pid_max: 32768,
            pids_in_use: 300,
            machine_id: "m".into(),
            system_uuid: "u".into(),
            boot_id: "b".into(),
            kernel_version: "6.1".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            architecture: "amd64".into(),
        }
    }

    #[test]
    fn parse_proc_files() {
        let (t, a) = parse_meminfo(
            "MemTotal:        4028440 kB\nMemFree:  1 kB\nMemAvailable:    2000000 kB\n",
        );
        assert_eq!((t, a), (4028440 * 1024, 2000000 * 1024));
        assert_eq!(
            parse_os_release("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn labels_include_extra() {
        let extra = BTreeMap::from([(
            "node-role.kubernetes.io/control-plane".to_string(),
            "true".to_string(),
        )]);
        let l = node_labels("h1", &extra);
        assert_eq!(l["kubernetes.io/hostname"], "h1");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["beta.kubernetes.io/arch"], go_arch());
        assert_eq!(l["node-role.kubernetes.io/control-plane"], "true");
    }

    #[test]
    fn capacity_and_allocatable() {
        let (c, a) = resources(&machine(), 110, &Eviction::default());
        assert_eq!(c["cpu"].0, "2");
        assert_eq!(c["memory"].0, format!("{}Ki", (4u64 << 30) / 1024));
        assert_eq!(c["pods"].0, "110");
        assert_eq!(
            a["memory"].0,
            format!("{}Ki", ((4i64 << 30) - (100 << 20)) / 1024)
        );
        let fs = 100i64 << 30;
        assert_eq!(a["ephemeral-storage"].0, (fs - fs / 10).to_string());
    }

    #[test]
    fn condition_table() {
        let now = Timestamp::now();
        let mut m = machine();
        let get = |c: &[NodeCondition], t: &str| {
            let c = c.iter().find(|c| c.type_ == t).unwrap();
            (c.status.clone(), c.reason.clone().unwrap())
        };
        let c = conditions(&[], &m, &Eviction::default(), None, now);
        assert_eq!(get(&c, "Ready"), ("True".into(), "KubeletReady".into()));
        assert_eq!(
            get(&c, "MemoryPressure"),
            ("False".into(), "KubeletHasSufficientMemory".into())
        );
        assert_eq!(
            get(&c, "DiskPressure"),
            ("False".into(), "KubeletHasNoDiskPressure".into())
        );
        assert_eq!(
            get(&c, "PIDPressure"),
            ("False".into(), "KubeletHasSufficientPID".into())
        );
        m.memory_available = 50 << 20;
        m.fs_available = 1 << 30;
        m.pids_in_use = 32000;
        let c = conditions(
            &[],
            &m,
            &Eviction::default(),
            Some("container runtime network not ready: x"),
            now,
        );
        assert_eq!(get(&c, "Ready"), ("False".into(), "KubeletNotReady".into()));
        assert_eq!(
            get(&c, "MemoryPressure"),
            ("True".into(), "KubeletHasInsufficientMemory".into())
        );
        assert_eq!(
            get(&c, "DiskPressure"),
            ("True".into(), "KubeletHasDiskPressure".into())
        );
        assert_eq!(
            get(&c, "PIDPressure"),
            ("True".into(), "KubeletHasInsufficientPID".into())
        );
    }

    #[test]
    fn runtime_problem_messages() {
        let st = |net: bool| pb::RuntimeStatus {
            conditions: vec![
                pb::RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
                pb::RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: net,
                    reason: "NetworkPluginNotReady".into(),
                    message: "no cni config".into(),
                },
            ],
        };
        assert_eq!(runtime_problem(Ok(&st(true))), None);
        assert_eq!(
            runtime_problem(Ok(&st(false))).unwrap(),
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:no cni config"
        );
        assert!(runtime_problem(Err("connection refused"))
            .unwrap()
            .starts_with("container runtime is down"));
    }

    #[test]
    fn status_fields_and_heartbeat_only_changes() {
        let m = machine();
        let ips = vec!["192.168.1.10".to_string()];
        let status = |old: &[NodeCondition], now| {
            node_status(&StatusInput {
                machine: &m,
                old,
                runtime_problem: None,
                runtime_version: "containerd://1.6.20",
                hostname: "h1",
                node_ips: &ips,
                max_pods: 110,
                images: vec![],
                kubelet_port: KUBELET_PORT,
                eviction: Eviction::default(),
                now,
            })
        };
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let s1 = status(&[], t0);
        let info = s1.node_info.as_ref().unwrap();
        assert_eq!(info.kubelet_version, KUBELET_VERSION);
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        assert_eq!(
            s1.daemon_endpoints
                .as_ref()
                .unwrap()
                .kubelet_endpoint
                .as_ref()
                .unwrap()
                .port,
            10250
        );
        let addrs = s1.addresses.as_ref().unwrap();
        assert_eq!(
            (addrs[0].type_.as_str(), addrs[0].address.as_str()),
            ("InternalIP", "192.168.1.10")
        );
        assert_eq!(addrs[1].type_, "Hostname");
        // a later heartbeat with nothing else changed is not a change
        let t1 = Timestamp::from_second(1_700_000_100).unwrap();
        let s2 = status(s1.conditions.as_deref().unwrap(), t1);
        assert_eq!(without_heartbeats(&s1), without_heartbeats(&s2));
        assert_ne!(
            serde_json::to_value(&s1).unwrap(),
            serde_json::to_value(&s2).unwrap()
        );
    }

    #[test]
    fn images_sorted_by_size() {
        let imgs = vec![
            pb::Image {
                id: "a".into(),
                repo_tags: vec!["small:1".into()],
                size: 10,
                ..Default::default()
            },
            pb::Image {
                id: "b".into(),
                repo_tags: vec!["big:1".into()],
                repo_digests: vec!["big@sha256:x".into()],
                size: 99,
                ..Default::default()
            },
        ];
        let s = status_images(&imgs);
        assert_eq!(
            s[0].names.as_ref().unwrap(),
            &vec!["big@sha256:x".to_string(), "big:1".to_string()]
        );
        assert_eq!(s[1].size_bytes, Some(10));
    }

    #[test]
    fn eviction_thresholds_parse_like_eviction_hard() {
        let e: Eviction = "memory.available<200Mi, nodefs.available<1%"
            .parse()
            .unwrap();
        assert_eq!(e.memory_available, 200 << 20);
        let g: Eviction = "memory.available<1.5Gi".parse().unwrap();
        assert_eq!(g.memory_available, 3 << 29);
        let k: Eviction = "memory.available<500M".parse().unwrap();
        assert_eq!(k.memory_available, 500_000_000);
        assert!((e.nodefs_available - 0.01).abs() < 1e-9);
        let d: Eviction = "".parse().unwrap();
        assert_eq!(d, Eviction::default());
        for bad in [
            "nodefs.available<10",
            "imagefs.available<5%",
            "memory.available=1Gi",
            "memory.available<x",
            "memory.available<-1Mi",
        ] {
            assert!(bad.parse::<Eviction>().is_err(), "{bad}");
        }
        // a lower nodefs threshold lifts disk pressure
        let mut m = machine();
        m.fs_total = 1000;
        m.fs_available = 50;
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let pressure = |e: &Eviction| {
            conditions(&[], &m, e, None, t)
                .into_iter()
                .any(|c| c.type_ == "DiskPressure" && c.status == "True")
        };
        assert!(pressure(&Eviction::default()));
        assert!(!pressure(&"nodefs.available<1%".parse().unwrap()));
    }
}
