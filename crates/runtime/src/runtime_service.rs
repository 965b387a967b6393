//! The CRI v1 RuntimeService. Version, Status, UpdateRuntimeConfig, pod sandboxes, the container
//! lifecycle (create/start/stop/remove/list/status, log reopen), ExecSync, GetContainerEvents and
//! the streaming calls (Exec, Attach, PortForward return a URL on the streaming server) are
//! served, with container stats and resource updates from cgroups; pod sandbox stats are not
//! built yet and answer `Unimplemented` with a message saying so (no call pretends to succeed).

use std::collections::HashMap;
use std::sync::Arc;

use cri::v1 as pb;
use tonic::{Request, Response, Status};

use crate::cni::{NetworkList, PortMapping};
use crate::container::manager::{
    ContainerError, ContainerManager, ContainerRecord, State as CState,
};
use crate::sandbox::{Dns, Metadata, Sandbox, SandboxError, SandboxManager, SandboxSpec, State};
use crate::Config;

/// Name reported in `VersionResponse.runtime_name`.
pub const RUNTIME_NAME: &str = "oxkube";

/// Serves the CRI RuntimeService.
#[derive(Clone)]
pub struct RuntimeService {
    config: Config,
    sandboxes: Arc<SandboxManager>,
    containers: Arc<ContainerManager>,
    events: tokio::sync::broadcast::Sender<pb::ContainerEventResponse>,
    streaming: Option<Arc<crate::stream::StreamServer>>,
}

impl RuntimeService {
    pub fn new(
        config: Config,
        sandboxes: Arc<SandboxManager>,
        containers: Arc<ContainerManager>,
    ) -> Self {
        RuntimeService {
            config,
            sandboxes,
            containers,
            events: tokio::sync::broadcast::channel(1024).0,
            streaming: None,
        }
    }

    /// Serves Exec, Attach and PortForward through `server`.
    pub fn with_streaming(mut self, server: Arc<crate::stream::StreamServer>) -> Self {
        self.streaming = Some(server);
        self
    }

    fn stream_url(&self, req: crate::stream::Request) -> Result<String, Status> {
        let server = self
            .streaming
            .as_ref()
            .ok_or_else(|| Status::unavailable("the streaming server is not running"))?;
        server
            .url(req)
            .map_err(|e| Status::resource_exhausted(e.to_string()))
    }

    /// Checks that the container exists and runs (as containerd does before handing out a URL).
    async fn running_container(&self, id: String) -> Result<(), Status> {
        let rec = self.with_containers(move |c, _| c.get(&id)).await?;
        if rec.state != CState::Running {
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                rec.id
            )));
        }
        Ok(())
    }

    /// Publishes a container lifecycle event (with the pod's sandbox and container statuses).
    async fn emit(&self, container_id: String, sandbox_id: String, ty: pb::ContainerEventType) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let c = self.containers.clone();
        let s = self.sandboxes.clone();
        let ev = tokio::task::spawn_blocking(move || {
            let sandbox = s.get(&sandbox_id).ok();
            let statuses = c
                .list()
                .iter()
                .filter(|r| r.sandbox_id == sandbox_id)
                .map(container_pb_status)
                .collect();
            pb::ContainerEventResponse {
                container_id,
                container_event_type: ty as i32,
                created_at: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
                pod_sandbox_status: sandbox.as_ref().map(sandbox_pb_status),
                containers_statuses: statuses,
            }
        })
        .await;
        if let Ok(ev) = ev {
            let _ = self.events.send(ev);
        }
    }

    /// Called when a shim reports that its container (by libcontainer ID) exited.
    pub async fn container_exited(&self, short_id: &str) {
        let c = self.containers.clone();
        let id = short_id.to_string();
        let rec = tokio::task::spawn_blocking(move || c.get(&id)).await;
        if let Ok(Ok(rec)) = rec {
            tracing::debug!(id = %rec.id, exit_code = rec.exit_code, "container exited");
            self.emit(
                rec.id,
                rec.sandbox_id,
                pb::ContainerEventType::ContainerStoppedEvent,
            )
            .await;
        }
    }

    async fn with_containers<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&ContainerManager, &SandboxManager) -> Result<T, ContainerError> + Send + 'static,
    {
        let c = self.containers.clone();
        let s = self.sandboxes.clone();
        tokio::task::spawn_blocking(move || f(&c, &s))
            .await
            .map_err(|e| Status::internal(format!("container task failed: {e}")))?
            .map_err(container_status)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&SandboxManager) -> Result<T, SandboxError> + Send + 'static,
    {
        let m = self.sandboxes.clone();
        tokio::task::spawn_blocking(move || f(&m))
            .await
            .map_err(|e| Status::internal(format!("sandbox task failed: {e}")))?
            .map_err(sandbox_status)
    }
}

/// Maps container errors to gRPC codes.
pub fn container_status(e: ContainerError) -> Status {
    let msg = e.to_string();
    match e {
        ContainerError::NotFound(_) => Status::not_found(msg),
        ContainerError::ImageNotFound(_) => Status::not_found(msg),
        ContainerError::Invalid(_) | ContainerError::Spec(_) | ContainerError::Seccomp(_) => {
            Status::invalid_argument(msg)
        }
        ContainerError::NameReserved { .. } => Status::already_exists(msg),
        ContainerError::SandboxNotReady(_) => Status::failed_precondition(msg),
        _ => Status::unknown(msg),
    }
}

fn pb_container_state(s: CState) -> i32 {
    match s {
        CState::Created => pb::ContainerState::ContainerCreated as i32,
        CState::Running => pb::ContainerState::ContainerRunning as i32,
        CState::Exited => pb::ContainerState::ContainerExited as i32,
        CState::Unknown => pb::ContainerState::ContainerUnknown as i32,
    }
}

/// The CRI status of a container.
pub fn container_pb_status(r: &ContainerRecord) -> pb::ContainerStatus {
    pb::ContainerStatus {
        id: r.id.clone(),
        metadata: Some(pb::ContainerMetadata {
            name: r.name.clone(),
            attempt: r.attempt,
        }),
        state: pb_container_state(r.state),
        created_at: r.created_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        exit_code: r.exit_code,
        image: Some(pb::ImageSpec {
            image: r.image.clone(),
            ..Default::default()
        }),
        image_ref: r.image_ref.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: r.labels.clone().into_iter().collect(),
        annotations: r.annotations.clone().into_iter().collect(),
        mounts: r
            .mounts
            .iter()
            .map(|(c, h, ro)| pb::Mount {
                container_path: c.clone(),
                host_path: h.clone(),
                readonly: *ro,
                ..Default::default()
            })
            .collect(),
        log_path: r
            .log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        image_id: r.image_ref.clone(),
        ..Default::default()
    }
}

/// The CRI stats of a container.
type RawContainerStats = (ContainerRecord, crate::container::stats::Usage, (u64, u64));

/// What PodSandboxStats reports, read from cgroups and the pod's network namespace.
struct RawSandboxStats {
    sandbox: Sandbox,
    usage: crate::container::stats::Usage,
    processes: Option<u64>,
    interfaces: Vec<crate::sandbox::netstats::Interface>,
    containers: Vec<RawContainerStats>,
}

/// Pod usage: the pod cgroup (the kubelet's cgroup parent) when there is one, else the sum of
/// its running containers' cgroups; network counters from the pod's network namespace.
fn raw_sandbox_stats(c: &ContainerManager, sb: Sandbox) -> RawSandboxStats {
    use crate::container::stats::{Cgroup, Usage};
    let containers: Vec<RawContainerStats> = c
        .list()
        .into_iter()
        .filter(|r| r.sandbox_id == sb.id && r.state == crate::container::manager::State::Running)
        .filter_map(|r| c.stats(&r.id).ok())
        .collect();
    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    let mut usage = Usage::default();
    let mut processes = None;
    for (r, u, _) in &containers {
        usage.cpu_usage_ns = add(usage.cpu_usage_ns, u.cpu_usage_ns);
        usage.memory_usage = add(usage.memory_usage, u.memory_usage);
        usage.working_set = add(usage.working_set, u.working_set);
        usage.rss = add(usage.rss, u.rss);
        processes = add(
            processes,
            Cgroup::new("/sys/fs/cgroup", &r.cgroups_path).process_count(),
        );
    }
    if !sb.spec.cgroup_parent.is_empty() {
        let pod = Cgroup::new("/sys/fs/cgroup", &sb.spec.cgroup_parent);
        let u = pod.usage();
        if u.cpu_usage_ns.is_some() || u.memory_usage.is_some() {
            usage = u;
            processes = pod.process_count().or(processes);
        }
    }
    let interfaces = sb
        .namespaces
        .net
        .as_deref()
        .and_then(|ns| crate::sandbox::netstats::read(ns).ok())
        .unwrap_or_default();
    RawSandboxStats {
        sandbox: sb,
        usage,
        processes,
        interfaces,
        containers,
    }
}

fn sandbox_pb_stats(config: &Config, raw: RawSandboxStats) -> pb::PodSandboxStats {
    let ts = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let v = |x: Option<u64>| x.map(|value| pb::UInt64Value { value });
    let u = &raw.usage;
    let interfaces: Vec<pb::NetworkInterfaceUsage> = raw
        .interfaces
        .iter()
        .map(|i| pb::NetworkInterfaceUsage {
            name: i.name.clone(),
            rx_bytes: v(Some(i.rx_bytes)),
            rx_errors: v(Some(i.rx_errors)),
            tx_bytes: v(Some(i.tx_bytes)),
            tx_errors: v(Some(i.tx_errors)),
        })
        .collect();
    let network = (!interfaces.is_empty()).then(|| pb::NetworkUsage {
        timestamp: ts,
        default_interface: interfaces
            .iter()
            .find(|i| i.name == "eth0")
            .or(interfaces.first())
            .cloned(),
        interfaces,
    });
    let sb = &raw.sandbox;
    pb::PodSandboxStats {
        attributes: Some(pb::PodSandboxAttributes {
            id: sb.id.clone(),
            metadata: Some(pb_metadata(&sb.spec.metadata)),
            labels: sb.spec.labels.clone().into_iter().collect(),
            annotations: sb.spec.annotations.clone().into_iter().collect(),
        }),
        linux: Some(pb::LinuxPodSandboxStats {
            cpu: Some(pb::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: v(u.cpu_usage_ns),
                usage_nano_cores: None,
            }),
            memory: Some(pb::MemoryUsage {
                timestamp: ts,
                working_set_bytes: v(u.working_set),
                usage_bytes: v(u.memory_usage),
                rss_bytes: v(u.rss),
                ..Default::default()
            }),
            network,
            process: Some(pb::ProcessUsage {
                timestamp: ts,
                process_count: v(raw.processes),
            }),
            containers: raw
                .containers
                .into_iter()
                .map(|st| container_pb_stats(config, st))
                .collect(),
        }),
        windows: None,
    }
}

fn container_pb_stats(
    config: &Config,
    (r, u, (bytes, inodes)): (ContainerRecord, crate::container::stats::Usage, (u64, u64)),
) -> pb::ContainerStats {
    let ts = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let v = |x: Option<u64>| x.map(|value| pb::UInt64Value { value });
    pb::ContainerStats {
        attributes: Some(pb::ContainerAttributes {
            id: r.id.clone(),
            metadata: Some(pb::ContainerMetadata {
                name: r.name.clone(),
                attempt: r.attempt,
            }),
            labels: r.labels.clone().into_iter().collect(),
            annotations: r.annotations.clone().into_iter().collect(),
        }),
        cpu: Some(pb::CpuUsage {
            timestamp: ts,
            usage_core_nano_seconds: v(u.cpu_usage_ns),
            usage_nano_cores: None,
        }),
        memory: Some(pb::MemoryUsage {
            timestamp: ts,
            working_set_bytes: v(u.working_set),
            usage_bytes: v(u.memory_usage),
            rss_bytes: v(u.rss),
            ..Default::default()
        }),
        writable_layer: Some(pb::FilesystemUsage {
            timestamp: ts,
            fs_id: Some(pb::FilesystemIdentifier {
                mountpoint: config
                    .data_dir
                    .join("agent/containers")
                    .display()
                    .to_string(),
            }),
            used_bytes: Some(pb::UInt64Value { value: bytes }),
            inodes_used: Some(pb::UInt64Value { value: inodes }),
        }),
        swap: None,
    }
}

/// Does `r` pass a ListContainers filter?
pub fn container_matches(r: &ContainerRecord, f: &pb::ContainerFilter) -> bool {
    if !f.id.is_empty() && !r.id.starts_with(&f.id) {
        return false;
    }
    if !f.pod_sandbox_id.is_empty() && !r.sandbox_id.starts_with(&f.pod_sandbox_id) {
        return false;
    }
    if let Some(st) = &f.state {
        if st.state != pb_container_state(r.state) {
            return false;
        }
    }
    f.label_selector
        .iter()
        .all(|(k, v)| r.labels.get(k) == Some(v))
}

/// Maps sandbox errors to gRPC codes.
pub fn sandbox_status(e: SandboxError) -> Status {
    let msg = e.to_string();
    match e {
        SandboxError::NotFound(_) => Status::not_found(msg),
        SandboxError::Invalid(_) => Status::invalid_argument(msg),
        SandboxError::NameReserved { .. } => Status::already_exists(msg),
        _ => Status::unknown(msg),
    }
}

/// The runtime's view of a RunPodSandbox config.
pub fn sandbox_spec(c: pb::PodSandboxConfig, runtime_handler: String) -> SandboxSpec {
    let m = c.metadata.unwrap_or_default();
    let ns = c
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    let node = pb::NamespaceMode::Node as i32;
    let privileged = c
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|s| s.privileged);
    SandboxSpec {
        privileged,
        metadata: Metadata {
            name: m.name,
            uid: m.uid,
            namespace: m.namespace,
            attempt: m.attempt,
        },
        hostname: c.hostname,
        log_directory: c.log_directory,
        dns: c.dns_config.map(|d| Dns {
            servers: d.servers,
            searches: d.searches,
            options: d.options,
        }),
        port_mappings: c
            .port_mappings
            .into_iter()
            .filter(|p| p.host_port > 0)
            .map(|p| PortMapping {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: match pb::Protocol::try_from(p.protocol) {
                    Ok(pb::Protocol::Udp) => "udp",
                    Ok(pb::Protocol::Sctp) => "sctp",
                    _ => "tcp",
                }
                .into(),
                host_ip: p.host_ip,
            })
            .collect(),
        labels: c.labels.into_iter().collect(),
        annotations: c.annotations.into_iter().collect(),
        host_network: ns.network == node,
        host_ipc: ns.ipc == node,
        host_pid: ns.pid == node,
        share_pid: ns.pid == pb::NamespaceMode::Pod as i32,
        sysctls: c
            .linux
            .as_ref()
            .map(|l| l.sysctls.clone().into_iter().collect())
            .unwrap_or_default(),
        cgroup_parent: c.linux.map(|l| l.cgroup_parent).unwrap_or_default(),
        runtime_handler,
    }
}

fn pb_metadata(m: &Metadata) -> pb::PodSandboxMetadata {
    pb::PodSandboxMetadata {
        name: m.name.clone(),
        uid: m.uid.clone(),
        namespace: m.namespace.clone(),
        attempt: m.attempt,
    }
}

fn pb_state(s: State) -> i32 {
    match s {
        State::Ready => pb::PodSandboxState::SandboxReady as i32,
        State::NotReady => pb::PodSandboxState::SandboxNotready as i32,
    }
}

fn pb_namespace_options(s: &Sandbox) -> pb::NamespaceOption {
    let mode = |host: bool| {
        if host {
            pb::NamespaceMode::Node as i32
        } else {
            pb::NamespaceMode::Pod as i32
        }
    };
    pb::NamespaceOption {
        network: mode(s.spec.host_network),
        pid: if s.spec.host_pid {
            pb::NamespaceMode::Node as i32
        } else if s.spec.share_pid {
            pb::NamespaceMode::Pod as i32
        } else {
            pb::NamespaceMode::Container as i32
        },
        ipc: mode(s.spec.host_ipc),
        ..Default::default()
    }
}

/// The CRI status of a sandbox.
pub fn sandbox_pb_status(s: &Sandbox) -> pb::PodSandboxStatus {
    let network = if s.spec.host_network {
        // hostNetwork pods get no IP from the runtime; the kubelet uses the node IP.
        None
    } else {
        Some(pb::PodSandboxNetworkStatus {
            ip: s.ips.first().cloned().unwrap_or_default(),
            additional_ips: s
                .ips
                .iter()
                .skip(1)
                .map(|ip| pb::PodIp { ip: ip.clone() })
                .collect(),
        })
    };
    pb::PodSandboxStatus {
        id: s.id.clone(),
        metadata: Some(pb_metadata(&s.spec.metadata)),
        state: pb_state(s.state),
        created_at: s.created_at,
        network,
        linux: Some(pb::LinuxPodSandboxStatus {
            namespaces: Some(pb::Namespace {
                options: Some(pb_namespace_options(s)),
            }),
        }),
        labels: s.spec.labels.clone().into_iter().collect(),
        annotations: s.spec.annotations.clone().into_iter().collect(),
        runtime_handler: s.spec.runtime_handler.clone(),
    }
}

/// Does `s` pass a ListPodSandbox filter?
pub fn sandbox_matches(s: &Sandbox, f: &pb::PodSandboxFilter) -> bool {
    if !f.id.is_empty() && !s.id.starts_with(&f.id) {
        return false;
    }
    if let Some(st) = &f.state {
        if st.state != pb_state(s.state) {
            return false;
        }
    }
    f.label_selector
        .iter()
        .all(|(k, v)| s.spec.labels.get(k) == Some(v))
}

/// Upstream's checks of Exec and Attach requests (kubelet/cri/streaming/server.go).
fn validate_stdio(
    container_id: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<(), Status> {
    if container_id.is_empty() {
        return Err(Status::invalid_argument("missing required container_id"));
    }
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

fn not_yet(call: &str) -> Status {
    Status::unimplemented(format!(
        "{call} is not implemented by the oxkube runtime yet"
    ))
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl cri::RuntimeService for RuntimeService {
    async fn version(&self, _req: Request<pb::VersionRequest>) -> Res<pb::VersionResponse> {
        Ok(Response::new(pb::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: cri::API_VERSION.into(),
        }))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Res<pb::StatusResponse> {
        let conf_dir = self.config.cni_conf_path();
        let network = tokio::task::spawn_blocking(move || NetworkList::load_dir(&conf_dir))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let (net_ok, net_reason, net_msg) = match network {
            Ok(_) => (true, String::new(), String::new()),
            Err(e) => (false, "NetworkPluginNotReady".to_string(), e.to_string()),
        };
        let conditions = vec![
            pb::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            },
            pb::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: net_ok,
                reason: net_reason,
                message: net_msg,
            },
        ];
        Ok(Response::new(pb::StatusResponse {
            status: Some(pb::RuntimeStatus { conditions }),
            ..Default::default()
        }))
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<pb::RunPodSandboxRequest>,
    ) -> Res<pb::RunPodSandboxResponse> {
        let r = r.into_inner();
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("pod sandbox config is required"))?;
        let spec = sandbox_spec(config, r.runtime_handler);
        let sb = self.blocking(move |m| m.run(spec)).await?;
        tracing::info!(id = %sb.id, pod = %sb.spec.metadata.name, namespace = %sb.spec.metadata.namespace, ips = ?sb.ips, "pod sandbox ready");
        Ok(Response::new(pb::RunPodSandboxResponse {
            pod_sandbox_id: sb.id,
        }))
    }
    async fn stop_pod_sandbox(
        &self,
        r: Request<pb::StopPodSandboxRequest>,
    ) -> Res<pb::StopPodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let sid = id.clone();
        let state_root = self.config.data_dir.join("agent/sandboxes");
        self.with_containers(move |c, s| {
            let Ok(sb) = s.get(&sid) else { return Ok(()) };
            for rec in c.list().into_iter().filter(|r| r.sandbox_id == sb.id) {
                c.stop(&rec.id, std::time::Duration::ZERO)?;
            }
            c.stop_pod_init(&state_root.join(&sb.id));
            Ok(())
        })
        .await?;
        self.blocking(move |m| m.stop(&id)).await?;
        Ok(Response::new(pb::StopPodSandboxResponse {}))
    }
    async fn remove_pod_sandbox(
        &self,
        r: Request<pb::RemovePodSandboxRequest>,
    ) -> Res<pb::RemovePodSandboxResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let sid = id.clone();
        let state_root = self.config.data_dir.join("agent/sandboxes");
        self.with_containers(move |c, s| {
            let Ok(sb) = s.get(&sid) else { return Ok(()) };
            for rec in c.list().into_iter().filter(|r| r.sandbox_id == sb.id) {
                c.remove(&rec.id)?;
            }
            c.stop_pod_init(&state_root.join(&sb.id));
            Ok(())
        })
        .await?;
        self.blocking(move |m| m.remove(&id)).await?;
        Ok(Response::new(pb::RemovePodSandboxResponse {}))
    }
    async fn pod_sandbox_status(
        &self,
        r: Request<pb::PodSandboxStatusRequest>,
    ) -> Res<pb::PodSandboxStatusResponse> {
        let r = r.into_inner();
        let s = self
            .sandboxes
            .get(&r.pod_sandbox_id)
            .map_err(sandbox_status)?;
        let mut info = HashMap::new();
        if r.verbose {
            let v = serde_json::json!({
                "namespaces": s.namespaces,
                "cniResult": s.cni_result,
                "config": s.spec,
            });
            info.insert("info".to_string(), v.to_string());
        }
        Ok(Response::new(pb::PodSandboxStatusResponse {
            status: Some(sandbox_pb_status(&s)),
            info,
            containers_statuses: vec![],
            timestamp: 0,
        }))
    }
    async fn list_pod_sandbox(
        &self,
        r: Request<pb::ListPodSandboxRequest>,
    ) -> Res<pb::ListPodSandboxResponse> {
        let filter = r.into_inner().filter.unwrap_or_default();
        let items = self
            .sandboxes
            .list()
            .iter()
            .filter(|s| sandbox_matches(s, &filter))
            .map(|s| pb::PodSandbox {
                id: s.id.clone(),
                metadata: Some(pb_metadata(&s.spec.metadata)),
                state: pb_state(s.state),
                created_at: s.created_at,
                labels: s.spec.labels.clone().into_iter().collect(),
                annotations: s.spec.annotations.clone().into_iter().collect(),
                runtime_handler: s.spec.runtime_handler.clone(),
            })
            .collect();
        Ok(Response::new(pb::ListPodSandboxResponse { items }))
    }
    async fn create_container(
        &self,
        r: Request<pb::CreateContainerRequest>,
    ) -> Res<pb::CreateContainerResponse> {
        let r = r.into_inner();
        let config = r
            .config
            .ok_or_else(|| Status::invalid_argument("container config is required"))?;
        let sid = r.pod_sandbox_id;
        let state_root = self.config.data_dir.join("agent/sandboxes");
        let rec = self
            .with_containers(move |c, s| {
                let sb = s
                    .get(&sid)
                    .map_err(|_| ContainerError::NotFound(format!("pod sandbox {sid}")))?;
                c.create(&sb, &state_root.join(&sb.id), config)
            })
            .await?;
        tracing::info!(id = %rec.id, name = %rec.name, sandbox = %rec.sandbox_id, "container created");
        self.emit(
            rec.id.clone(),
            rec.sandbox_id.clone(),
            pb::ContainerEventType::ContainerCreatedEvent,
        )
        .await;
        Ok(Response::new(pb::CreateContainerResponse {
            container_id: rec.id,
        }))
    }
    async fn start_container(
        &self,
        r: Request<pb::StartContainerRequest>,
    ) -> Res<pb::StartContainerResponse> {
        let id = r.into_inner().container_id;
        let rec = self
            .with_containers(move |c, _| {
                c.start(&id)?;
                c.get(&id)
            })
            .await?;
        self.emit(
            rec.id,
            rec.sandbox_id,
            pb::ContainerEventType::ContainerStartedEvent,
        )
        .await;
        Ok(Response::new(pb::StartContainerResponse {}))
    }
    async fn stop_container(
        &self,
        r: Request<pb::StopContainerRequest>,
    ) -> Res<pb::StopContainerResponse> {
        let r = r.into_inner();
        let timeout = std::time::Duration::from_secs(r.timeout.max(0) as u64);
        let id = r.container_id;
        self.with_containers(move |c, _| c.stop(&id, timeout))
            .await?;
        Ok(Response::new(pb::StopContainerResponse {}))
    }
    async fn remove_container(
        &self,
        r: Request<pb::RemoveContainerRequest>,
    ) -> Res<pb::RemoveContainerResponse> {
        let id = r.into_inner().container_id;
        let removed = self
            .with_containers(move |c, _| {
                let rec = c.get(&id).ok();
                c.remove(&id)?;
                Ok(rec)
            })
            .await?;
        if let Some(rec) = removed {
            self.emit(
                rec.id,
                rec.sandbox_id,
                pb::ContainerEventType::ContainerDeletedEvent,
            )
            .await;
        }
        Ok(Response::new(pb::RemoveContainerResponse {}))
    }
    async fn list_containers(
        &self,
        r: Request<pb::ListContainersRequest>,
    ) -> Res<pb::ListContainersResponse> {
        let filter = r.into_inner().filter.unwrap_or_default();
        let all = self.with_containers(|c, _| Ok(c.list())).await?;
        let containers = all
            .iter()
            .filter(|r| container_matches(r, &filter))
            .map(|r| pb::Container {
                id: r.id.clone(),
                pod_sandbox_id: r.sandbox_id.clone(),
                metadata: Some(pb::ContainerMetadata {
                    name: r.name.clone(),
                    attempt: r.attempt,
                }),
                image: Some(pb::ImageSpec {
                    image: r.image.clone(),
                    ..Default::default()
                }),
                image_ref: r.image_ref.clone(),
                state: pb_container_state(r.state),
                created_at: r.created_at,
                labels: r.labels.clone().into_iter().collect(),
                annotations: r.annotations.clone().into_iter().collect(),
                image_id: r.image_ref.clone(),
            })
            .collect();
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }
    async fn container_status(
        &self,
        r: Request<pb::ContainerStatusRequest>,
    ) -> Res<pb::ContainerStatusResponse> {
        let id = r.into_inner().container_id;
        let rec = self.with_containers(move |c, _| c.get(&id)).await?;
        Ok(Response::new(pb::ContainerStatusResponse {
            status: Some(container_pb_status(&rec)),
            info: HashMap::new(),
        }))
    }
    async fn update_container_resources(
        &self,
        r: Request<pb::UpdateContainerResourcesRequest>,
    ) -> Res<pb::UpdateContainerResourcesResponse> {
        let r = r.into_inner();
        let l = r.linux.unwrap_or_default();
        let res = crate::container::spec::Resources {
            cpu_shares: l.cpu_shares,
            cpu_quota: l.cpu_quota,
            cpu_period: l.cpu_period,
            memory_limit: l.memory_limit_in_bytes,
            cpuset_cpus: l.cpuset_cpus,
            cpuset_mems: l.cpuset_mems,
        };
        let id = r.container_id;
        self.with_containers(move |c, _| c.update_resources(&id, &res))
            .await?;
        Ok(Response::new(pb::UpdateContainerResourcesResponse {}))
    }
    async fn reopen_container_log(
        &self,
        r: Request<pb::ReopenContainerLogRequest>,
    ) -> Res<pb::ReopenContainerLogResponse> {
        let id = r.into_inner().container_id;
        self.with_containers(move |c, _| c.reopen_log(&id)).await?;
        Ok(Response::new(pb::ReopenContainerLogResponse {}))
    }
    async fn exec_sync(&self, r: Request<pb::ExecSyncRequest>) -> Res<pb::ExecSyncResponse> {
        let r = r.into_inner();
        let timeout = std::time::Duration::from_secs(r.timeout.max(0) as u64);
        let (stdout, stderr, exit_code) = self
            .with_containers(move |c, _| c.exec_sync(&r.container_id, r.cmd, timeout))
            .await?;
        Ok(Response::new(pb::ExecSyncResponse {
            stdout,
            stderr,
            exit_code,
        }))
    }
    async fn exec(&self, r: Request<pb::ExecRequest>) -> Res<pb::ExecResponse> {
        let r = r.into_inner();
        validate_stdio(&r.container_id, r.stdin, r.stdout, r.stderr, r.tty)?;
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("cmd must not be empty"));
        }
        self.running_container(r.container_id.clone()).await?;
        let url = self.stream_url(crate::stream::Request::Exec(r))?;
        Ok(Response::new(pb::ExecResponse { url }))
    }
    async fn attach(&self, r: Request<pb::AttachRequest>) -> Res<pb::AttachResponse> {
        let r = r.into_inner();
        validate_stdio(&r.container_id, r.stdin, r.stdout, r.stderr, r.tty)?;
        self.running_container(r.container_id.clone()).await?;
        let url = self.stream_url(crate::stream::Request::Attach(r))?;
        Ok(Response::new(pb::AttachResponse { url }))
    }
    async fn port_forward(
        &self,
        r: Request<pb::PortForwardRequest>,
    ) -> Res<pb::PortForwardResponse> {
        let r = r.into_inner();
        if r.pod_sandbox_id.is_empty() {
            return Err(Status::invalid_argument("missing required pod_sandbox_id"));
        }
        if let Some(p) = r.port.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(Status::invalid_argument(format!("invalid port {p}")));
        }
        let id = r.pod_sandbox_id.clone();
        let sb = self.blocking(move |m| m.get(&id)).await?;
        if sb.state != State::Ready {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} is not ready",
                sb.id
            )));
        }
        let url = self.stream_url(crate::stream::Request::PortForward(
            pb::PortForwardRequest {
                pod_sandbox_id: sb.id,
                port: r.port,
            },
        ))?;
        Ok(Response::new(pb::PortForwardResponse { url }))
    }
    async fn container_stats(
        &self,
        r: Request<pb::ContainerStatsRequest>,
    ) -> Res<pb::ContainerStatsResponse> {
        let id = r.into_inner().container_id;
        let st = self.with_containers(move |c, _| c.stats(&id)).await?;
        Ok(Response::new(pb::ContainerStatsResponse {
            stats: Some(container_pb_stats(&self.config, st)),
        }))
    }
    async fn list_container_stats(
        &self,
        r: Request<pb::ListContainerStatsRequest>,
    ) -> Res<pb::ListContainerStatsResponse> {
        let f = r.into_inner().filter.unwrap_or_default();
        let filter = pb::ContainerFilter {
            id: f.id,
            pod_sandbox_id: f.pod_sandbox_id,
            label_selector: f.label_selector,
            state: None,
        };
        let all = self
            .with_containers(move |c, _| {
                Ok(c.list()
                    .into_iter()
                    .filter(|r| container_matches(r, &filter))
                    .filter_map(|r| c.stats(&r.id).ok())
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(Response::new(pb::ListContainerStatsResponse {
            stats: all
                .into_iter()
                .map(|st| container_pb_stats(&self.config, st))
                .collect(),
        }))
    }
    async fn pod_sandbox_stats(
        &self,
        r: Request<pb::PodSandboxStatsRequest>,
    ) -> Res<pb::PodSandboxStatsResponse> {
        let id = r.into_inner().pod_sandbox_id;
        let raw = self
            .with_containers(move |c, s| {
                let sb = s
                    .get(&id)
                    .map_err(|_| ContainerError::NotFound(format!("pod sandbox {id}")))?;
                Ok(raw_sandbox_stats(c, sb))
            })
            .await?;
        Ok(Response::new(pb::PodSandboxStatsResponse {
            stats: Some(sandbox_pb_stats(&self.config, raw)),
        }))
    }
    async fn list_pod_sandbox_stats(
        &self,
        r: Request<pb::ListPodSandboxStatsRequest>,
    ) -> Res<pb::ListPodSandboxStatsResponse> {
        let f = r.into_inner().filter.unwrap_or_default();
        let all = self
            .with_containers(move |c, s| {
                Ok(s.list()
                    .into_iter()
                    .filter(|sb| sb.state == State::Ready)
                    .filter(|sb| f.id.is_empty() || sb.id.starts_with(&f.id))
                    .filter(|sb| {
                        f.label_selector
                            .iter()
                            .all(|(k, v)| sb.spec.labels.get(k) == Some(v))
                    })
                    .map(|sb| raw_sandbox_stats(c, sb))
                    .collect::<Vec<_>>())
            })
            .await?;
        Ok(Response::new(pb::ListPodSandboxStatsResponse {
            stats: all
                .into_iter()
                .map(|raw| sandbox_pb_stats(&self.config, raw))
                .collect(),
        }))
    }
    async fn update_runtime_config(
        &self,
        r: Request<pb::UpdateRuntimeConfigRequest>,
    ) -> Res<pb::UpdateRuntimeConfigResponse> {
        let cidr = r
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if !cidr.is_empty() {
            let config = self.config.clone();
            tokio::task::spawn_blocking(move || config.write_default_cni(&cidr))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::unknown(e.to_string()))?;
        }
        Ok(Response::new(pb::UpdateRuntimeConfigResponse {}))
    }
    async fn checkpoint_container(
        &self,
        _r: Request<pb::CheckpointContainerRequest>,
    ) -> Res<pb::CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "checkpointing containers is not supported",
        ))
    }
    type GetContainerEventsStream = std::pin::Pin<
        Box<
            dyn futures::Stream<Item = Result<pb::ContainerEventResponse, Status>> + Send + 'static,
        >,
    >;
    async fn get_container_events(
        &self,
        _r: Request<pb::GetEventsRequest>,
    ) -> Res<Self::GetContainerEventsStream> {
        use futures::StreamExt;
        let rx = tokio_stream::wrappers::BroadcastStream::new(self.events.subscribe());
        let stream = rx.filter_map(|ev| async move { ev.ok().map(Ok) });
        Ok(Response::new(Box::pin(stream)))
    }
    async fn list_metric_descriptors(
        &self,
        _r: Request<pb::ListMetricDescriptorsRequest>,
    ) -> Res<pb::ListMetricDescriptorsResponse> {
        Err(not_yet("ListMetricDescriptors"))
    }
    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<pb::ListPodSandboxMetricsRequest>,
    ) -> Res<pb::ListPodSandboxMetricsResponse> {
        Err(not_yet("ListPodSandboxMetrics"))
    }
    async fn runtime_config(
        &self,
        _r: Request<pb::RuntimeConfigRequest>,
    ) -> Res<pb::RuntimeConfigResponse> {
        Err(not_yet("RuntimeConfig"))
    }
}
