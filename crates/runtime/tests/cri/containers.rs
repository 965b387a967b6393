//! CRI container tests, written once and run against every runtime: real busybox containers in
//! real pod sandboxes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cri::v1 as pb;
use cri::v1::runtime_service_client::RuntimeServiceClient;
use runtime::testimage::{self, TestImage};
use tonic::transport::Channel;

use crate::harness::{mounts_under, pids_mentioning, Kind, Target};

const IMAGE: &str = "docker.io/library/busybox:cri-ctr";

/// A ready pod sandbox (as the kubelet passes it on to CreateContainer).
pub(crate) struct Pod {
    pub(crate) id: String,
    pub(crate) config: pb::PodSandboxConfig,
}

/// Network, the busybox image, and one ready sandbox; also returns its log dir.
pub(crate) async fn pod(t: &mut Target, name: &str) -> (Pod, PathBuf) {
    pod_with(t, name, |_| {}).await
}

/// Like [`pod`], with the sandbox config changed by `edit` first.
pub(crate) async fn pod_with(
    t: &mut Target,
    name: &str,
    edit: impl FnOnce(&mut pb::PodSandboxConfig),
) -> (Pod, PathBuf) {
    t.setup_network().await;
    if t.status(IMAGE).await.is_none() {
        let built = TestImage::busybox(IMAGE).unwrap().build();
        let p = t.dir.path().join("ctr-image.tar");
        testimage::write_oci_archive(&p, &[&built]).unwrap();
        t.import(&p).await;
    }
    let logs = t.dir.path().join(format!("logs-{name}"));
    std::fs::create_dir_all(&logs).unwrap();
    let mut config = sandbox_config(name, &logs);
    edit(&mut config);
    (run_sandbox(t, config).await, logs)
}

/// RunPodSandbox through `rt`; the sandbox's ID.
pub(crate) async fn run_pod_sandbox(
    rt: &mut RuntimeServiceClient<Channel>,
    config: pb::PodSandboxConfig,
) -> String {
    rt.run_pod_sandbox(pb::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    })
    .await
    .expect("RunPodSandbox")
    .into_inner()
    .pod_sandbox_id
}

/// A ready sandbox of `config`.
pub(crate) async fn run_sandbox(t: &mut Target, config: pb::PodSandboxConfig) -> Pod {
    let id = run_pod_sandbox(&mut t.rt, config.clone()).await;
    Pod { id, config }
}

/// A sandbox config like [`sandbox_config`] that admits privileged containers.
pub(crate) fn privileged_sandbox_config(name: &str, logs: &Path) -> pb::PodSandboxConfig {
    let mut config = sandbox_config(name, logs);
    config.linux.as_mut().unwrap().security_context = Some(pb::LinuxSandboxSecurityContext {
        privileged: true,
        ..Default::default()
    });
    config
}

pub(crate) fn sandbox_config(name: &str, logs: &Path) -> pb::PodSandboxConfig {
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "cri-suite".into(),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: logs.display().to_string(),
        dns_config: Some(pb::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["cri-suite.svc.cluster.local".into()],
            options: vec![],
        }),
        linux: Some(pb::LinuxPodSandboxConfig {
            sysctls: HashMap::from([(
                "net.ipv4.ip_unprivileged_port_start".to_string(),
                "80".to_string(),
            )]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn container_config(name: &str, command: &[&str]) -> pb::ContainerConfig {
    pb::ContainerConfig {
        metadata: Some(pb::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(pb::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        labels: HashMap::from([("ctr".to_string(), name.to_string())]),
        linux: Some(pb::LinuxContainerConfig {
            security_context: Some(pb::LinuxContainerSecurityContext {
                // what the kubelet sends for pods without shareProcessNamespace
                namespace_options: Some(pb::NamespaceOption {
                    pid: pb::NamespaceMode::Container as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) async fn create(
    t: &mut Target,
    pod: &Pod,
    cfg: pb::ContainerConfig,
) -> Result<String, tonic::Status> {
    t.rt.create_container(pb::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(cfg),
        sandbox_config: Some(pod.config.clone()),
    })
    .await
    .map(|r| r.into_inner().container_id)
}

pub(crate) async fn start(t: &mut Target, id: &str) -> Result<(), tonic::Status> {
    t.rt.start_container(pb::StartContainerRequest {
        container_id: id.into(),
    })
    .await
    .map(|_| ())
}

/// Creates and starts a container in `pod`; its ID.
pub(crate) async fn start_container(t: &mut Target, pod: &Pod, cfg: pb::ContainerConfig) -> String {
    let id = create(t, pod, cfg).await.expect("CreateContainer");
    start(t, &id).await.expect("StartContainer");
    id
}

pub(crate) async fn status(t: &mut Target, id: &str) -> Result<pb::ContainerStatus, tonic::Status> {
    t.rt.container_status(pb::ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .map(|r| r.into_inner().status.expect("status"))
}

pub(crate) async fn wait_exited(t: &mut Target, id: &str) -> pb::ContainerStatus {
    let start = Instant::now();
    loop {
        let s = status(t, id).await.expect("ContainerStatus");
        if s.state == pb::ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "container never exited: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The content of each CRI log record of `stream`.
pub(crate) fn log_lines(path: &Path, stream: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next()?;
            assert!(
                chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
                "bad timestamp in {l:?}"
            );
            let s = parts.next()?;
            let tag = parts.next()?;
            assert!(tag == "F" || tag == "P", "bad tag in {l:?}");
            (s == stream).then(|| parts.next().unwrap_or("").to_string())
        })
        .collect()
}

pub(crate) async fn remove_pod(t: &mut Target, sandbox: &str) {
    t.rt.stop_pod_sandbox(pb::StopPodSandboxRequest {
        pod_sandbox_id: sandbox.into(),
    })
    .await
    .expect("StopPodSandbox");
    t.rt.remove_pod_sandbox(pb::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.into(),
    })
    .await
    .expect("RemovePodSandbox");
}

pub async fn runs_to_completion_with_exit_code_and_logs(mut t: Target) {
    let (sb, logs) = pod(&mut t, "complete").await;
    let id = create(
        &mut t,
        &sb,
        container_config(
            "complete",
            &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
        ),
    )
    .await
    .expect("CreateContainer");
    let s = status(&mut t, &id).await.unwrap();
    assert_eq!(s.state, pb::ContainerState::ContainerCreated as i32);
    assert_eq!(s.metadata.as_ref().unwrap().name, "complete");
    start(&mut t, &id).await.expect("StartContainer");
    let s = wait_exited(&mut t, &id).await;
    assert_eq!(s.exit_code, 3);
    assert_eq!(s.reason, "Error");
    assert!(s.started_at > 0 && s.finished_at > 0, "{s:?}");
    if t.kind == Kind::Oxkube {
        // containerd may stamp the start after a fast exit; ours orders them
        assert!(s.finished_at >= s.started_at, "{s:?}");
    }
    assert!(!s.image_ref.is_empty());
    let log = logs.join("complete.log");
    assert_eq!(s.log_path, log.display().to_string());
    assert_eq!(log_lines(&log, "stdout"), vec!["hello".to_string()]);
    assert_eq!(log_lines(&log, "stderr"), vec!["oops".to_string()]);
    remove_pod(&mut t, &sb.id).await;
    let e = status(&mut t, &id).await.expect_err("removed with its pod");
    assert_eq!(e.code(), tonic::Code::NotFound);
}

pub async fn env_user_workdir_mounts_and_pod_files(mut t: Target) {
    let (sb, logs) = pod(&mut t, "envs").await;
    let host_dir = t.dir.path().join("hostdata");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("in.txt"), "from-host").unwrap();
    let script = "id -u; id -g; pwd; echo $FOO; cat /data/in.txt; echo; \
                  touch /data/x 2>/dev/null && echo rw || echo ro; hostname; \
                  grep nameserver /etc/resolv.conf; ip -o -4 addr show eth0 | wc -l; \
                  cat /proc/sys/net/ipv4/ip_unprivileged_port_start";
    let mut cfg = container_config("envs", &["sh", "-c", script]);
    cfg.working_dir = "/tmp".into();
    cfg.envs = vec![pb::KeyValue {
        key: "FOO".into(),
        value: "bar".into(),
    }];
    cfg.mounts = vec![pb::Mount {
        container_path: "/data".into(),
        host_path: host_dir.display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    cfg.linux = Some(pb::LinuxContainerConfig {
        security_context: Some(pb::LinuxContainerSecurityContext {
            run_as_user: Some(pb::Int64Value { value: 65534 }),
            run_as_group: Some(pb::Int64Value { value: 65534 }),
            namespace_options: Some(pb::NamespaceOption {
                pid: pb::NamespaceMode::Container as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut t, &sb, cfg).await;
    let s = wait_exited(&mut t, &id).await;
    let out = log_lines(&logs.join("envs.log"), "stdout");
    assert_eq!(s.exit_code, 0, "{out:?}");
    assert_eq!(
        out,
        [
            "65534",
            "65534",
            "/tmp",
            "bar",
            "from-host",
            "ro",
            "envs-host",
            "nameserver 10.96.0.10",
            "1",
            "80"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    );
    assert!(!host_dir.join("x").exists());
    remove_pod(&mut t, &sb.id).await;
}

pub async fn stop_kills_after_timeout(mut t: Target) {
    let (sb, _logs) = pod(&mut t, "stopper").await;
    let id = create(&mut t, &sb, container_config("sleeper", &["sleep", "1000"]))
        .await
        .expect("create");
    start(&mut t, &id).await.expect("start");
    let s = status(&mut t, &id).await.unwrap();
    assert_eq!(s.state, pb::ContainerState::ContainerRunning as i32);
    let listed =
        t.rt.list_containers(pb::ListContainersRequest {
            filter: Some(pb::ContainerFilter {
                state: Some(pb::ContainerStateValue {
                    state: pb::ContainerState::ContainerRunning as i32,
                }),
                pod_sandbox_id: sb.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(
        listed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![id.clone()]
    );
    // sleep is PID 1 of its pid namespace and ignores SIGTERM, so SIGKILL ends it
    t.rt.stop_container(pb::StopContainerRequest {
        container_id: id.clone(),
        timeout: 1,
    })
    .await
    .expect("StopContainer");
    let s = wait_exited(&mut t, &id).await;
    assert_eq!(s.exit_code, 137);
    t.rt.stop_container(pb::StopContainerRequest {
        container_id: id.clone(),
        timeout: 1,
    })
    .await
    .expect("stopping an exited container is fine");
    t.rt.remove_container(pb::RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("RemoveContainer");
    t.rt.remove_container(pb::RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("removing twice is fine");
    remove_pod(&mut t, &sb.id).await;
}

pub async fn bad_command_and_missing_image_fail_cleanly(mut t: Target) {
    let (sb, _logs) = pod(&mut t, "bad").await;
    let mut missing = container_config("noimage", &["true"]);
    missing.image = Some(pb::ImageSpec {
        image: "docker.io/library/absent:1".into(),
        ..Default::default()
    });
    let e = create(&mut t, &sb, missing)
        .await
        .expect_err("image not there");
    assert!(e.message().contains("absent"), "{e}");
    // a command that does not exist fails at create (ours) or start (containerd)
    let res = match create(&mut t, &sb, container_config("nocmd", &["/no/such/binary"])).await {
        Err(e) => Err(e),
        Ok(id) => start(&mut t, &id).await.map(|_| id),
    };
    let e = res.expect_err("missing binary");
    assert!(e.message().contains("/no/such/binary"), "{e}");
    // fails after our runtime started the container's shim (it waits for the bundle)
    let mut nodev = container_config("nodev", &["true"]);
    nodev.devices = vec![pb::Device {
        container_path: "/dev/x".into(),
        host_path: "/dev/no-such-device".into(),
        permissions: "rwm".into(),
    }];
    let e = create(&mut t, &sb, nodev)
        .await
        .expect_err("a missing host device fails CreateContainer");
    assert!(e.message().contains("/dev/no-such-device"), "{e}");
    remove_pod(&mut t, &sb.id).await;
    if t.kind == Kind::Oxkube {
        let data = t.dir.path().join("data");
        // no shim is left waiting or running
        let needle = data.display().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids_mentioning(&needle).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pids_mentioning(&needle), Vec::<i32>::new(), "shims left");
        assert_eq!(mounts_under(&data), Vec::<PathBuf>::new());
        assert_eq!(
            std::fs::read_dir(data.join("agent/containers"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(std::fs::read_dir(data.join("run/c")).unwrap().count(), 0);
    }
}

pub async fn containers_survive_runtime_restart(mut t: Target) {
    let (sb, logs) = pod(&mut t, "restart").await;
    let id = create(
        &mut t,
        &sb,
        container_config(
            "ticker",
            &[
                "sh",
                "-c",
                "trap 'exit 7' TERM; echo up; while true; do sleep 0.05; done",
            ],
        ),
    )
    .await
    .expect("create");
    start(&mut t, &id).await.expect("start");
    t.restart_oxkube().await;
    let s = status(&mut t, &id).await.expect("rediscovered");
    assert_eq!(s.state, pb::ContainerState::ContainerRunning as i32);
    t.rt.stop_container(pb::StopContainerRequest {
        container_id: id.clone(),
        timeout: 10,
    })
    .await
    .expect("stop after restart");
    let s = wait_exited(&mut t, &id).await;
    assert_eq!(s.exit_code, 7, "the shell's TERM trap ran");
    assert_eq!(
        log_lines(&logs.join("ticker.log"), "stdout"),
        vec!["up".to_string()]
    );
    remove_pod(&mut t, &sb.id).await;
}

/// Cgroup dirs (any controller) and processes still naming `needle`.
fn cgroups_and_processes_naming(needle: &str) -> (Vec<PathBuf>, Vec<i32>) {
    let mut dirs = Vec::new();
    for ctrl in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        for parent in ["oxkube", "k8s.io"] {
            let d = ctrl.path().join(parent).join(needle);
            if d.exists() {
                dirs.push(d);
            }
        }
    }
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() {
            if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                if String::from_utf8_lossy(&c).contains(needle) {
                    pids.push(pid);
                }
            }
        }
    }
    (dirs, pids)
}

pub async fn many_pods_with_containers_leave_nothing_behind(mut t: Target) {
    let n = match t.kind {
        Kind::Oxkube => 100,
        Kind::Containerd => 20,
    };
    let mut pods = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let (p, _) = pod(&mut t, &format!("leakc{i}")).await;
        let id = create(&mut t, &p, container_config("main", &["sleep", "1000"]))
            .await
            .expect("create");
        start(&mut t, &id).await.expect("start");
        ids.push(id);
        pods.push(p);
    }
    for p in &pods {
        remove_pod(&mut t, &p.id).await;
    }
    let left =
        t.rt.list_containers(pb::ListContainersRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .containers;
    assert!(left.is_empty(), "{left:?}");
    for id in &ids {
        let needle = match t.kind {
            Kind::Oxkube => &id[..32],
            Kind::Containerd => id.as_str(),
        };
        let (dirs, pids) = cgroups_and_processes_naming(needle);
        assert!(dirs.is_empty(), "cgroups left: {dirs:?}");
        assert!(pids.is_empty(), "processes left: {pids:?}");
    }
    let veths = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &t.bridge])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&veths.stdout).lines().count(), 0);
    if t.kind == Kind::Oxkube {
        let data = t.dir.path().join("data");
        assert_eq!(mounts_under(&data), Vec::<PathBuf>::new());
        for d in [
            "agent/containers",
            "agent/sandboxes",
            "run/c",
            "run/sandboxes",
        ] {
            assert_eq!(std::fs::read_dir(data.join(d)).unwrap().count(), 0, "{d}");
        }
        let ipam = data.join("agent/cni/ipam");
        for net in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
            let ips: Vec<String> = std::fs::read_dir(net.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                .collect();
            assert!(ips.is_empty(), "IPs left: {ips:?}");
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Benchmark (run with `--ignored --nocapture`): RunPodSandbox + CreateContainer + StartContainer
/// of busybox `sleep` with the image present, and the shim's memory. Prints figures only.
pub async fn bench_pod_start(mut t: Target) -> Duration {
    let n = 30;
    let (warm, _) = pod(&mut t, "benchwarm").await;
    remove_pod(&mut t, &warm.id).await;
    let mut times = Vec::new();
    let mut parts = Vec::new();
    let mut pods = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let logs = t.dir.path().join("bench-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let config = sandbox_config(&format!("bench{i}"), &logs);
        let begin = Instant::now();
        let id = run_pod_sandbox(&mut t.rt, config.clone()).await;
        let p = Pod { id, config };
        let t_sandbox = begin.elapsed();
        let cid = create(&mut t, &p, container_config("main", &["sleep", "1000"]))
            .await
            .unwrap();
        let t_create = begin.elapsed();
        start(&mut t, &cid).await.unwrap();
        times.push(begin.elapsed());
        parts.push((t_sandbox, t_create - t_sandbox, begin.elapsed() - t_create));
        pods.push(p);
        ids.push(cid);
    }
    // shim memory: PSS of the processes that hold our containers
    let mut pss_kib = Vec::new();
    for id in &ids {
        let needle = match t.kind {
            Kind::Oxkube => id[..32].to_string(),
            Kind::Containerd => id.clone(),
        };
        let (_, pids) = cgroups_and_processes_naming(&needle);
        for pid in pids {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !(comm.contains("shim")) {
                continue;
            }
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
                if let Some(l) = s.lines().find(|l| l.starts_with("Pss:")) {
                    let kib: u64 = l.split_whitespace().nth(1).unwrap().parse().unwrap();
                    pss_kib.push(kib);
                }
            }
        }
    }
    for p in &pods {
        remove_pod(&mut t, &p.id).await;
    }
    times.sort();
    pss_kib.sort();
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    eprintln!(
        "BENCH {:?}: medians: RunPodSandbox {:?}, CreateContainer {:?}, StartContainer {:?}",
        t.kind,
        med(parts.iter().map(|p| p.0).collect()),
        med(parts.iter().map(|p| p.1).collect()),
        med(parts.iter().map(|p| p.2).collect()),
    );
    eprintln!(
        "BENCH {:?}: pod+container start over {n}: p50 {:?} p90 {:?} max {:?}; shim PSS median {} KiB over {} shims",
        t.kind,
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        times.last().unwrap(),
        pss_kib.get(pss_kib.len() / 2).copied().unwrap_or(0),
        pss_kib.len()
    );
    percentile(&times, 0.5)
}

pub async fn lifecycle_events_are_streamed(mut t: Target) {
    let (sb, _logs) = pod(&mut t, "events").await;
    let mut stream =
        t.rt.get_container_events(pb::GetEventsRequest {})
            .await
            .expect("GetContainerEvents")
            .into_inner();
    let id = create(
        &mut t,
        &sb,
        container_config("ev", &["sh", "-c", "sleep 0.1; exit 4"]),
    )
    .await
    .expect("create");
    start(&mut t, &id).await.expect("start");
    let mut seen = Vec::new();
    let mut latency = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.last() != Some(&pb::ContainerEventType::ContainerStoppedEvent) {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, stream.message())
            .await
            .expect("events before the deadline")
            .expect("event stream")
            .expect("stream open");
        let received = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        if ev.container_id != id {
            continue;
        }
        let ty = pb::ContainerEventType::try_from(ev.container_event_type).unwrap();
        if ty == pb::ContainerEventType::ContainerStoppedEvent {
            let st = ev
                .containers_statuses
                .iter()
                .find(|s| s.id == id)
                .expect("the container's status comes with the event");
            assert_eq!(st.state, pb::ContainerState::ContainerExited as i32);
            assert_eq!(st.exit_code, 4);
            assert_eq!(
                ev.pod_sandbox_status.as_ref().map(|s| s.id.clone()),
                Some(sb.id.clone())
            );
            latency = Some(Duration::from_nanos(
                (received - st.finished_at).max(0) as u64
            ));
        }
        seen.push(ty);
    }
    assert_eq!(
        seen,
        vec![
            pb::ContainerEventType::ContainerCreatedEvent,
            pb::ContainerEventType::ContainerStartedEvent,
            pb::ContainerEventType::ContainerStoppedEvent,
        ]
    );
    eprintln!("exit recorded -> event received: {:?}", latency.unwrap());
    t.rt.remove_container(pb::RemoveContainerRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("deleted event")
            .unwrap()
            .unwrap();
        if ev.container_id == id {
            assert_eq!(
                ev.container_event_type,
                pb::ContainerEventType::ContainerDeletedEvent as i32
            );
            break;
        }
    }
    remove_pod(&mut t, &sb.id).await;
}

pub async fn exec_sync_runs_in_the_container(mut t: Target) {
    let (sb, _logs) = pod(&mut t, "exec").await;
    let id = create(&mut t, &sb, container_config("execd", &["sleep", "1000"]))
        .await
        .expect("create");
    start(&mut t, &id).await.expect("start");
    let exec = |cmd: &[&str], timeout: i64| pb::ExecSyncRequest {
        container_id: id.clone(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    };
    let r =
        t.rt.exec_sync(exec(
            &["sh", "-c", "echo out; echo err >&2; hostname; exit 5"],
            0,
        ))
        .await
        .expect("ExecSync")
        .into_inner();
    assert_eq!(String::from_utf8_lossy(&r.stdout), "out\nexec-host\n");
    assert_eq!(String::from_utf8_lossy(&r.stderr), "err\n");
    assert_eq!(r.exit_code, 5);
    // a missing binary is an error or a failing exit code, never success
    match t.rt.exec_sync(exec(&["/no/such/tool"], 0)).await {
        Ok(r) => assert_ne!(r.into_inner().exit_code, 0),
        Err(e) => assert!(e.message().contains("/no/such/tool"), "{e}"),
    }
    let begin = Instant::now();
    let e =
        t.rt.exec_sync(exec(&["sleep", "30"], 1))
            .await
            .expect_err("timeout");
    assert!(begin.elapsed() < Duration::from_secs(10), "{e}");
    // the container itself keeps running
    let s = status(&mut t, &id).await.unwrap();
    assert_eq!(s.state, pb::ContainerState::ContainerRunning as i32);
    remove_pod(&mut t, &sb.id).await;
}

pub async fn stats_and_resource_updates(mut t: Target) {
    let (sb, _logs) = pod(&mut t, "stats").await;
    let mut cfg = container_config(
        "busy",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo x > /tmp/f; sleep 1000",
        ],
    );
    cfg.linux.as_mut().unwrap().resources = Some(pb::LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        cpu_shares: 256,
        ..Default::default()
    });
    let id = start_container(&mut t, &sb, cfg).await;
    // wait for the busy loop to finish and the file to be written
    let begin = Instant::now();
    let stats = loop {
        let st =
            t.rt.container_stats(pb::ContainerStatsRequest {
                container_id: id.clone(),
            })
            .await
            .expect("ContainerStats")
            .into_inner()
            .stats
            .unwrap();
        let layer = st
            .writable_layer
            .as_ref()
            .and_then(|w| w.used_bytes.as_ref())
            .map(|v| v.value);
        let cpu = st
            .cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .map(|v| v.value);
        if cpu.unwrap_or(0) > 0 && layer.unwrap_or(0) > 0 {
            break st;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(15),
            "no usage reported: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats.attributes.as_ref().unwrap().id, id);
    let mem = stats.memory.as_ref().unwrap();
    assert!(
        mem.working_set_bytes.as_ref().map(|v| v.value).unwrap_or(0) > 0,
        "{mem:?}"
    );
    let listed =
        t.rt.list_container_stats(pb::ListContainerStatsRequest {
            filter: Some(pb::ContainerStatsFilter {
                pod_sandbox_id: sb.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("ListContainerStats")
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    t.rt.update_container_resources(pb::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(pb::LinuxContainerResources {
            memory_limit_in_bytes: 128 << 20,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("UpdateContainerResources");
    if t.kind == Kind::Oxkube {
        let limit = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/memory/oxkube/{}/memory.limit_in_bytes",
            &id[..32]
        ))
        .unwrap();
        assert_eq!(limit.trim(), (128u64 << 20).to_string());
        let shares = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/cpu/oxkube/{}/cpu.shares",
            &id[..32]
        ))
        .unwrap();
        assert_eq!(shares.trim(), "512");
    }
    remove_pod(&mut t, &sb.id).await;
}

pub async fn oom_killed_is_reported(mut t: Target) {
    let (sb, _logs) = pod(&mut t, "oom").await;
    // tail keeps a /dev/zero "line" in memory until the 16 MiB limit is hit; it starts a second
    // late, because containerd 1.6's shim registers its OOM watcher only after the start and
    // misses (reports "Error") a container killed before that
    let mut cfg = container_config("hog", &["sh", "-c", "sleep 1; exec tail /dev/zero"]);
    cfg.linux.as_mut().unwrap().resources = Some(pb::LinuxContainerResources {
        memory_limit_in_bytes: 16 << 20,
        ..Default::default()
    });
    let id = start_container(&mut t, &sb, cfg).await;
    let s = wait_exited(&mut t, &id).await;
    assert_eq!(s.exit_code, 137, "{s:?}");
    assert_eq!(s.reason, "OOMKilled", "{s:?}");
    remove_pod(&mut t, &sb.id).await;
}
