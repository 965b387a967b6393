//! The CRI configs the kubelet sends: `PodSandboxConfig` (metadata, hostname, log directory,
//! DNS per dnsPolicy/dnsConfig, host port mappings, namespaces, pod security context, sysctls,
//! cgroup parent) and `ContainerConfig` (command/args/env already expanded, mounts, resources,
//! container security context, labels/annotations, log path), as upstream's
//! `generatePodSandboxConfig` / `generateContainerConfig`. Sans-IO.

use std::collections::HashMap;

use cri::v1 as pb;
use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};

use crate::labels;
use crate::qos::{self, QosClass};

/// The node-level facts the configs need.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    pub node_name: String,
    pub host_ips: Vec<String>,
    /// Cluster DNS server IPs (`--cluster-dns`); empty: ClusterFirst falls back to Default.
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// The host's resolv.conf, parsed.
    pub host_dns: ResolvConf,
    pub memory_capacity: i64,
    /// Allocatable cpu (milli), memory, ephemeral storage.
    pub allocatable: (i64, i64, i64),
    /// Root of pod log directories (`/var/log/pods` upstream).
    pub pod_logs_dir: String,
}

/// A parsed resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Upstream's limit of name servers (glibc's MAXNS).
pub const MAX_NAMESERVERS: usize = 3;
/// Upstream's limit of search domains.
pub const MAX_SEARCHES: usize = 32;

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut r = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => r.servers.extend(f.next().map(str::to_string)),
                Some("search") | Some("domain") => {
                    r.searches = f.map(str::to_string).collect();
                }
                Some("options") => r.options.extend(f.map(str::to_string)),
                _ => {}
            }
        }
        r
    }
}

/// The DNS config of a pod (upstream `GetPodDNS`); the second value is true when ClusterFirst
/// fell back to Default because no cluster DNS is configured (upstream's MissingClusterDNS).
pub fn dns_config(pod: &Pod, node: &NodeFacts) -> (pb::DnsConfig, bool) {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let mut policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".into());
    let mut missing_cluster_dns = false;
    if policy == "ClusterFirstWithHostNet" {
        policy = "ClusterFirst".into();
    } else if policy == "ClusterFirst" && host_network {
        policy = "Default".into();
    }
    if policy == "ClusterFirst" && node.cluster_dns.is_empty() {
        policy = "Default".into();
        missing_cluster_dns = true;
    }
    let mut cfg = pb::DnsConfig::default();
    match policy.as_str() {
        "ClusterFirst" => {
            cfg.servers = node.cluster_dns.clone();
            let d = &node.cluster_domain;
            cfg.searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            cfg.searches.extend(node.host_dns.searches.iter().cloned());
            cfg.options = vec!["ndots:5".into()];
        }
        "None" => {}
        _ => {
            cfg.servers = node.host_dns.servers.clone();
            cfg.searches = node.host_dns.searches.clone();
            cfg.options = node.host_dns.options.clone();
        }
    }
    if let Some(d) = &spec.dns_config {
        for s in d.nameservers.iter().flatten() {
            if !cfg.servers.contains(s) {
                cfg.servers.push(s.clone());
            }
        }
        for s in d.searches.iter().flatten() {
            if !cfg.searches.contains(s) {
                cfg.searches.push(s.clone());
            }
        }
        for o in d.options.iter().flatten() {
            let opt = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = o.name.clone().unwrap_or_default();
            cfg.options
                .retain(|e| e.split(':').next().unwrap_or_default() != key);
            cfg.options.push(opt);
        }
    }
    let mut seen = std::collections::HashSet::new();
    cfg.searches.retain(|s| seen.insert(s.clone()));
    cfg.servers.truncate(MAX_NAMESERVERS);
    cfg.searches.truncate(MAX_SEARCHES);
    (cfg, missing_cluster_dns)
}

/// The hostname of a pod: spec.hostname, else the pod name, truncated to 63 characters
/// without a trailing `-` or `.` (upstream `GeneratePodHostNameAndDomain`).
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    if name.len() <= 63 {
        return name;
    }
    name[..63].trim_end_matches(['-', '.']).to_string()
}

/// The pod's log directory: `<root>/<namespace>_<name>_<uid>`.
pub fn pod_log_dir(pod: &Pod, root: &str) -> String {
    let m = &pod.metadata;
    format!(
        "{}/{}_{}_{}",
        root.trim_end_matches('/'),
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

fn protocol(p: Option<&str>) -> i32 {
    match p {
        Some("UDP") => pb::Protocol::Udp as i32,
        Some("SCTP") => pb::Protocol::Sctp as i32,
        _ => pb::Protocol::Tcp as i32,
    }
}

fn ns_mode(host: bool, pod_mode: pb::NamespaceMode) -> i32 {
    if host {
        pb::NamespaceMode::Node as i32
    } else {
        pod_mode as i32
    }
}

/// The namespace options of a pod's sandbox and containers.
pub fn namespace_options(pod: &Pod) -> pb::NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    pb::NamespaceOption {
        network: ns_mode(spec.host_network == Some(true), pb::NamespaceMode::Pod),
        pid: if spec.host_pid == Some(true) {
            pb::NamespaceMode::Node as i32
        } else if spec.share_process_namespace == Some(true) {
            pb::NamespaceMode::Pod as i32
        } else {
            pb::NamespaceMode::Container as i32
        },
        ipc: ns_mode(spec.host_ipc == Some(true), pb::NamespaceMode::Pod),
        ..Default::default()
    }
}

/// The RunPodSandbox config of `pod`.
pub fn sandbox_config(
    pod: &Pod,
    node: &NodeFacts,
    attempt: u32,
    dns: pb::DnsConfig,
) -> pb::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let m = &pod.metadata;
    let psc = spec.security_context.clone().unwrap_or_default();
    let qos = qos::pod_qos(pod);
    let host_network = spec.host_network == Some(true);
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let host_port = p.host_port.unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            port_mappings.push(pb::PortMapping {
                protocol: protocol(p.protocol.as_deref()),
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let sysctls: HashMap<String, String> = psc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: if host_network {
            String::new()
        } else {
            pod_hostname(pod)
        },
        log_directory: pod_log_dir(pod, &node.pod_logs_dir),
        dns_config: Some(dns),
        port_mappings,
        labels: labels::sandbox_labels(pod),
        annotations: labels::sandbox_annotations(pod),
        linux: Some(pb::LinuxPodSandboxConfig {
            cgroup_parent: qos::cgroup_parent(qos, m.uid.as_deref().unwrap_or_default()),
            security_context: Some(pb::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.run_as_user.map(|value| pb::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| pb::Int64Value { value }),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                privileged,
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    }
}

/// A container's effective security settings: its own securityContext over the pod's.
fn effective_user(pod: &Pod, c: &Container) -> (Option<i64>, Option<i64>, bool) {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    (
        csc.run_as_user.or(psc.run_as_user),
        csc.run_as_group.or(psc.run_as_group),
        csc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false),
    )
}

/// Why a container cannot be configured (reported as CreateContainerConfigError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")]
    RunsAsRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod}\", container: {container})")]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
}

/// The user an image runs as, from ImageStatus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageUser {
    pub uid: Option<i64>,
    pub username: String,
}

/// Upstream's `verifyRunAsNonRoot`.
pub fn verify_run_as_non_root(
    pod: &Pod,
    c: &Container,
    image: &ImageUser,
) -> Result<(), ConfigError> {
    let (uid, _, non_root) = effective_user(pod, c);
    if !non_root {
        return Ok(());
    }
    let pod_desc = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    let err_root = || ConfigError::RunsAsRoot {
        pod: pod_desc.clone(),
        container: c.name.clone(),
    };
    match (uid, image.uid) {
        (Some(0), _) => Err(err_root()),
        (Some(_), _) => Ok(()),
        (None, Some(0)) => Err(err_root()),
        (None, Some(_)) => Ok(()),
        (None, None) if !image.username.is_empty() => Err(ConfigError::NonNumericUser {
            user: image.username.clone(),
            pod: pod_desc,
            container: c.name.clone(),
        }),
        // an image without a user runs as root
        (None, None) => Err(err_root()),
    }
}

fn container_security(pod: &Pod, c: &Container) -> pb::LinuxContainerSecurityContext {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc: SecurityContext = c.security_context.clone().unwrap_or_default();
    let (uid, gid, _) = effective_user(pod, c);
    let caps = csc.capabilities.clone().unwrap_or_default();
    let privileged = csc.privileged.unwrap_or(false);
    pb::LinuxContainerSecurityContext {
        capabilities: Some(pb::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            add_ambient_capabilities: vec![],
        }),
        privileged,
        namespace_options: Some(namespace_options(pod)),
        run_as_user: uid.map(|value| pb::Int64Value { value }),
        run_as_group: gid.map(|value| pb::Int64Value { value }),
        readonly_rootfs: csc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
        // allowPrivilegeEscalation=false sets no_new_privs (privileged containers never do)
        no_new_privs: !privileged && csc.allow_privilege_escalation == Some(false),
        ..Default::default()
    }
}

/// Inputs of a container config besides the pod and container.
pub struct ContainerInputs {
    pub image_ref: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    pub mounts: Vec<pb::Mount>,
    pub restart_count: i32,
    /// Host file mounted at the termination message path.
    pub termination_host_path: Option<String>,
}

/// The CreateContainer config of `c`.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    qos: QosClass,
    node: &NodeFacts,
    inputs: ContainerInputs,
) -> pb::ContainerConfig {
    let mut mounts = inputs.mounts;
    if let Some(host) = &inputs.termination_host_path {
        let path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        if !path.is_empty() && !mounts.iter().any(|m| m.container_path == path) {
            mounts.push(pb::Mount {
                container_path: path,
                host_path: host.clone(),
                readonly: false,
                ..Default::default()
            });
        }
    }
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: c.name.clone(),
            attempt: inputs.restart_count.max(0) as u32,
        }),
        image: Some(pb::ImageSpec {
            image: inputs.image_ref,
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: inputs.command,
        args: inputs.args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: inputs
            .envs
            .into_iter()
            .map(|(key, value)| pb::KeyValue { key, value })
            .collect(),
        mounts,
        labels: labels::container_labels(pod, c),
        annotations: labels::container_annotations(
            pod,
            c,
            inputs.restart_count,
            inputs.termination_host_path.as_deref(),
        ),
        log_path: format!("{}/{}.log", c.name, inputs.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(pb::LinuxContainerConfig {
            resources: Some(qos::container_resources(qos, c, node.memory_capacity)),
            security_context: Some(container_security(pod, c)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u1", "labels": {"app": "w"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn node() -> NodeFacts {
        NodeFacts {
            node_name: "n1".into(),
            host_ips: vec!["192.168.0.2".into()],
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            host_dns: ResolvConf::parse("nameserver 1.1.1.1\nsearch corp.example\noptions edns0\n"),
            memory_capacity: 1 << 30,
            allocatable: (2000, 1 << 30, 10 << 30),
            pod_logs_dir: "/var/log/pods".into(),
        }
    }

    #[test]
    fn resolv_conf_parse() {
        let r = ResolvConf::parse(
            "# c\nnameserver 8.8.8.8\nnameserver 8.8.4.4 # x\nsearch a b\noptions ndots:2 rotate\n",
        );
        assert_eq!(r.servers, vec!["8.8.8.8", "8.8.4.4"]);
        assert_eq!(r.searches, vec!["a", "b"]);
        assert_eq!(r.options, vec!["ndots:2", "rotate"]);
    }

    #[test]
    fn dns_policy_table() {
        let cases = [
            (
                json!({}),
                vec!["10.43.0.10"],
                vec![
                    "ns1.svc.cluster.local",
                    "svc.cluster.local",
                    "cluster.local",
                    "corp.example",
                ],
                vec!["ndots:5"],
                false,
            ),
            (
                json!({"dnsPolicy": "Default"}),
                vec!["1.1.1.1"],
                vec!["corp.example"],
                vec!["edns0"],
                false,
            ),
            (
                json!({"hostNetwork": true}),
                vec!["1.1.1.1"],
                vec!["corp.example"],
                vec!["edns0"],
                false,
            ),
            (
                json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
                vec!["10.43.0.10"],
                vec![
                    "ns1.svc.cluster.local",
                    "svc.cluster.local",
                    "cluster.local",
                    "corp.example",
                ],
                vec!["ndots:5"],
                false,
            ),
            (
                json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"], "searches": ["x.y"], "options": [{"name": "ndots", "value": "1"}]}}),
                vec!["9.9.9.9"],
                vec!["x.y"],
                vec!["ndots:1"],
                false,
            ),
            (
                json!({"dnsConfig": {"options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
                vec!["10.43.0.10"],
                vec![
                    "ns1.svc.cluster.local",
                    "svc.cluster.local",
                    "cluster.local",
                    "corp.example",
                ],
                vec!["ndots:2", "edns0"],
                false,
            ),
        ];
        for (i, (mut spec, servers, searches, options, missing)) in cases.into_iter().enumerate() {
            spec["containers"] = json!([{"name": "c", "image": "i"}]);
            let (d, m) = dns_config(&pod(spec), &node());
            assert_eq!(
                (d.servers, d.searches, d.options, m),
                (
                    servers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    searches.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    options.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    missing
                ),
                "case {i}"
            );
        }
        // no cluster DNS: ClusterFirst falls back to Default and says so
        let mut n = node();
        n.cluster_dns.clear();
        let (d, missing) = dns_config(&pod(json!({"containers": []})), &n);
        assert!(missing);
        assert_eq!(d.servers, vec!["1.1.1.1"]);
    }

    #[test]
    fn sandbox_config_fields() {
        let p = pod(json!({
            "hostname": "h", "securityContext": {"runAsUser": 1000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
            "containers": [{"name": "c", "image": "i", "ports": [
                {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
                {"containerPort": 9000}]}]}));
        let cfg = sandbox_config(&p, &node(), 2, pb::DnsConfig::default());
        let m = cfg.metadata.unwrap();
        assert_eq!(
            (
                m.name.as_str(),
                m.namespace.as_str(),
                m.uid.as_str(),
                m.attempt
            ),
            ("web", "ns1", "u1", 2)
        );
        assert_eq!(cfg.hostname, "h");
        assert_eq!(cfg.log_directory, "/var/log/pods/ns1_web_u1");
        assert_eq!(cfg.port_mappings.len(), 2);
        assert_eq!(cfg.port_mappings[1].protocol, pb::Protocol::Udp as i32);
        assert_eq!(cfg.port_mappings[1].host_ip, "127.0.0.1");
        assert_eq!(cfg.labels[labels::POD_UID], "u1");
        assert_eq!(cfg.labels["app"], "w");
        let linux = cfg.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/kubepods/besteffort/podu1");
        assert_eq!(linux.sysctls["net.core.somaxconn"], "1024");
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert_eq!(
            sc.namespace_options.unwrap().network,
            pb::NamespaceMode::Pod as i32
        );
    }

    #[test]
    fn host_namespaces() {
        let p = pod(json!({"hostNetwork": true, "hostPID": true, "containers": []}));
        let o = namespace_options(&p);
        assert_eq!(
            (o.network, o.pid, o.ipc),
            (
                pb::NamespaceMode::Node as i32,
                pb::NamespaceMode::Node as i32,
                pb::NamespaceMode::Pod as i32
            )
        );
        let p = pod(json!({"shareProcessNamespace": true, "containers": []}));
        assert_eq!(namespace_options(&p).pid, pb::NamespaceMode::Pod as i32);
        let cfg = sandbox_config(
            &pod(json!({"hostNetwork": true, "containers": []})),
            &node(),
            0,
            Default::default(),
        );
        assert_eq!(cfg.hostname, "");
    }

    #[test]
    fn container_config_fields() {
        let p = pod(
            json!({"securityContext": {"runAsUser": 1000}, "containers": [{"name": "c", "image": "busybox", "workingDir": "/w", "tty": true,
            "securityContext": {"runAsUser": 2000, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}},
            "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]}),
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cfg = container_config(
            &p,
            c,
            QosClass::Guaranteed,
            &node(),
            ContainerInputs {
                image_ref: "sha256:abc".into(),
                command: vec!["sh".into()],
                args: vec!["-c".into(), "true".into()],
                envs: vec![("A".into(), "1".into())],
                mounts: vec![],
                restart_count: 4,
                termination_host_path: Some("/k/pods/u1/containers/c/x".into()),
            },
        );
        assert_eq!(cfg.metadata.as_ref().unwrap().attempt, 4);
        assert_eq!(cfg.log_path, "c/4.log");
        assert_eq!(cfg.image.as_ref().unwrap().image, "sha256:abc");
        assert_eq!(cfg.image.as_ref().unwrap().user_specified_image, "busybox");
        assert_eq!(cfg.working_dir, "/w");
        assert!(cfg.tty);
        assert_eq!(cfg.envs[0].key, "A");
        assert_eq!(cfg.mounts[0].container_path, "/dev/termination-log");
        assert_eq!(cfg.annotations[labels::RESTART_COUNT], "4");
        let linux = cfg.linux.unwrap();
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 2000);
        assert!(sc.no_new_privs);
        assert!(sc.readonly_rootfs);
        assert_eq!(sc.capabilities.unwrap().drop_capabilities, vec!["ALL"]);
        let r = linux.resources.unwrap();
        assert_eq!(
            (r.cpu_quota, r.memory_limit_in_bytes, r.oom_score_adj),
            (100_000, 64 << 20, -997)
        );
    }

    #[test]
    fn run_as_non_root_table() {
        let mk = |sc: serde_json::Value| {
            pod(json!({"containers": [{"name": "c", "image": "i", "securityContext": sc}]}))
        };
        let img = |uid: Option<i64>, name: &str| ImageUser {
            uid,
            username: name.into(),
        };
        let cases = [
            (json!({}), img(None, ""), true),
            (json!({"runAsNonRoot": true}), img(Some(0), ""), false),
            (json!({"runAsNonRoot": true}), img(Some(1000), ""), true),
            (
                json!({"runAsNonRoot": true, "runAsUser": 0}),
                img(Some(1000), ""),
                false,
            ),
            (
                json!({"runAsNonRoot": true, "runAsUser": 5}),
                img(Some(0), ""),
                true,
            ),
            (json!({"runAsNonRoot": true}), img(None, "nobody"), false),
            (json!({"runAsNonRoot": true}), img(None, ""), false),
        ];
        for (i, (sc, image, ok)) in cases.into_iter().enumerate() {
            let p = mk(sc);
            let c = &p.spec.as_ref().unwrap().containers[0];
            assert_eq!(
                verify_run_as_non_root(&p, c, &image).is_ok(),
                ok,
                "case {i}"
            );
        }
    }

    #[test]
    fn hostname_truncation() {
        let long = "a".repeat(62) + "-bcd";
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": long}, "spec": {"containers": []}}))
                .unwrap();
        assert_eq!(pod_hostname(&p), "a".repeat(62));
    }
}
