//! Pod status computation (upstream `generateAPIPodStatus`, `convertToAPIContainerStatuses`,
//! `getPhase` and the condition generators): container statuses from the runtime's instances
//! and the worker's waiting reasons, phase, conditions, IPs, start time and QoS class. Sans-IO.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::podstate::{CState, PodRuntime};
use crate::qos;

pub const CONTAINER_CREATING: &str = "ContainerCreating";
pub const POD_INITIALIZING: &str = "PodInitializing";

/// Why a container is waiting, as the worker last saw it (upstream's reason cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// Probe results the status reflects (filled by the prober; empty when no probes run).
#[derive(Debug, Clone, Default)]
pub struct ProbeStatus {
    /// Readiness per container; a container with a readiness probe and no result is not ready.
    pub ready: HashMap<String, bool>,
    /// Startup probe success per container; one with a startup probe and no result is not started.
    pub started: HashMap<String, bool>,
}

/// What the status is computed from.
pub struct StatusInput<'a> {
    pub pod: &'a Pod,
    pub runtime: &'a PodRuntime,
    pub waiting: &'a HashMap<String, Waiting>,
    pub probes: &'a ProbeStatus,
    pub host_ips: &'a [String],
    /// CRI runtime name, the scheme of container IDs (`containerd://...`).
    pub runtime_name: &'a str,
    pub now: Timestamp,
}

fn time_ns(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(ns as i128).ok().map(Time)
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn terminated_of(rc: &crate::podstate::RuntimeContainer, runtime: &str) -> ContainerState {
    let reason = if !rc.reason.is_empty() {
        rc.reason.clone()
    } else if rc.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: rc.exit_code,
            reason: Some(reason),
            message: Some(rc.message.clone()).filter(|m| !m.is_empty()),
            started_at: time_ns(rc.started_at),
            finished_at: time_ns(rc.finished_at),
            container_id: Some(format!("{runtime}://{}", rc.id)),
            signal: None,
        }),
        ..Default::default()
    }
}

/// Whether the kubelet restarts container `c` whose latest instance `l` has exited: never for a
/// pod being deleted or a regular init container that succeeded; always for a sidecar;
/// otherwise as the pod's restart policy says for the exit code.
fn will_restart(pod: &Pod, c: &Container, l: &crate::podstate::RuntimeContainer) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    if is_sidecar(c) {
        return true;
    }
    let spec = pod.spec.as_ref();
    let is_init = spec
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|i| i.iter().any(|i| i.name == c.name));
    if is_init && l.exit_code == 0 {
        return false;
    }
    crate::plan::should_restart(crate::plan::restart_policy(pod), l.exit_code)
}

fn container_statuses(
    input: &StatusInput<'_>,
    containers: &[Container],
    old: &[ContainerStatus],
    default_reason: &str,
) -> Vec<ContainerStatus> {
    let rt = input.runtime;
    let mut out = Vec::new();
    for c in containers {
        let image = c.image.clone().unwrap_or_default();
        let old_status = old.iter().find(|s| s.name == c.name);
        let mut instances = rt.instances(&c.name);
        let latest = instances.next();
        let previous = instances.next();
        let waiting = input.waiting.get(&c.name);
        let mut st = ContainerStatus {
            name: c.name.clone(),
            image: image.clone(),
            image_id: String::new(),
            ready: false,
            restart_count: 0,
            started: Some(false),
            ..Default::default()
        };
        match latest {
            None => {
                // never created here: keep a terminated status the runtime no longer has (the
                // container was removed), otherwise report why it waits
                if let (None, Some(o)) = (waiting, old_status) {
                    if o.state.as_ref().is_some_and(|s| s.terminated.is_some()) {
                        out.push(o.clone());
                        continue;
                    }
                }
                st.state = Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(
                            waiting
                                .map(|w| w.reason.clone())
                                .unwrap_or_else(|| default_reason.to_string()),
                        ),
                        message: waiting.map(|w| w.message.clone()).filter(|m| !m.is_empty()),
                    }),
                    ..Default::default()
                });
                st.restart_count = old_status.map(|o| o.restart_count).unwrap_or(0);
                st.last_state = old_status.and_then(|o| o.last_state.clone());
            }
            Some(l) => {
                st.restart_count = l.restart_count;
                st.container_id = Some(format!("{}://{}", input.runtime_name, l.id));
                st.image_id = l.image_ref.clone();
                if !l.image.is_empty() {
                    st.image = l.image.clone();
                }
                st.last_state = previous.map(|p| terminated_of(p, input.runtime_name));
                match l.state {
                    CState::Running => {
                        st.state = Some(ContainerState {
                            running: Some(ContainerStateRunning {
                                started_at: time_ns(l.started_at),
                            }),
                            ..Default::default()
                        });
                        let has_startup = c.startup_probe.is_some();
                        let started =
                            !has_startup || input.probes.started.get(&c.name) == Some(&true);
                        st.started = Some(started);
                        let ready = match input.probes.ready.get(&c.name) {
                            Some(r) => *r,
                            None => c.readiness_probe.is_none(),
                        };
                        st.ready = started && ready;
                    }
                    CState::Exited | CState::Unknown => {
                        let term = terminated_of(l, input.runtime_name);
                        // a start failure shows only on a container that will be restarted
                        // (upstream's reason cache under `ShouldContainerBeRestarted`): a
                        // container that is done keeps its exit as its state
                        let restarts = will_restart(input.pod, c, l);
                        match waiting.filter(|_| restarts) {
                            // restarting (backoff or a failed re-create): waiting, with the exit
                            // as the last state
                            Some(w) => {
                                st.last_state = Some(term);
                                st.state = Some(ContainerState {
                                    waiting: Some(ContainerStateWaiting {
                                        reason: Some(w.reason.clone()),
                                        message: Some(w.message.clone()).filter(|m| !m.is_empty()),
                                    }),
                                    ..Default::default()
                                });
                            }
                            None => st.state = Some(term),
                        }
                    }
                    CState::Created => {
                        st.state = Some(ContainerState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some(
                                    waiting
                                        .map(|w| w.reason.clone())
                                        .unwrap_or_else(|| CONTAINER_CREATING.to_string()),
                                ),
                                message: waiting
                                    .map(|w| w.message.clone())
                                    .filter(|m| !m.is_empty()),
                            }),
                            ..Default::default()
                        });
                    }
                }
            }
        }
        out.push(st);
    }
    out
}

fn state_kind(s: &ContainerStatus) -> (&'static str, Option<i32>) {
    let st = s.state.clone().unwrap_or_default();
    if st.running.is_some() {
        ("running", None)
    } else if let Some(t) = st.terminated {
        ("terminated", Some(t.exit_code))
    } else {
        let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
        match last {
            Some(t) => ("waiting-after-exit", Some(t.exit_code)),
            None => ("waiting", None),
        }
    }
}

/// The pod phase (upstream `getPhase`).
pub fn phase(
    pod: &Pod,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in spec.init_containers.iter().flatten() {
        if is_sidecar(c) {
            continue;
        }
        let Some(s) = init.iter().find(|s| s.name == c.name) else {
            pending_init += 1;
            continue;
        };
        match state_kind(s) {
            ("running", _) => pending_init += 1,
            ("terminated", Some(0)) => {}
            ("terminated", _) => failed_init += 1,
            ("waiting-after-exit", Some(0)) => {}
            ("waiting-after-exit", _) => failed_init += 1,
            _ => pending_init += 1,
        }
    }
    // sidecars must run before the pod counts as initialized
    let sidecars_not_started = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
        .any(|c| {
            !init
                .iter()
                .any(|s| s.name == c.name && s.started == Some(true))
        });
    let app_started = app.iter().any(|s| {
        let k = state_kind(s).0;
        k != "waiting"
    });
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &spec.containers {
        let Some(s) = app.iter().find(|s| s.name == c.name) else {
            waiting += 1;
            continue;
        };
        match state_kind(s) {
            ("running", _) => running += 1,
            ("terminated", code) => {
                stopped += 1;
                if code == Some(0) {
                    succeeded += 1;
                }
            }
            ("waiting-after-exit", code) => {
                stopped += 1;
                if code == Some(0) {
                    succeeded += 1;
                }
            }
            _ => waiting += 1,
        }
    }
    if !app_started && (pending_init > 0 || failed_init > 0 || sidecars_not_started) {
        return "Pending";
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(
    old: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let prev = old.iter().find(|c| c.type_ == type_);
    let last_transition = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: last_transition,
        last_probe_time: None,
        observed_generation: None,
    }
}

/// Whether the pod is initialized: every regular init container succeeded and every sidecar
/// started (or app containers already ran). Returns the incomplete container names.
fn incomplete_init(pod: &Pod, init: &[ContainerStatus], app: &[ContainerStatus]) -> Vec<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let app_started = app.iter().any(|s| state_kind(s).0 != "waiting");
    let mut out = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let s = init.iter().find(|s| s.name == c.name);
        let done = if is_sidecar(c) {
            app_started || s.is_some_and(|s| s.started == Some(true))
        } else {
            app_started
                || s.is_some_and(|s| {
                    matches!(
                        state_kind(s),
                        ("terminated", Some(0)) | ("waiting-after-exit", Some(0))
                    )
                })
        };
        if !done {
            out.push(c.name.clone());
        }
    }
    out
}

/// Computes the pod's status from the runtime (the old status supplies conditions' transition
/// times, the start time and statuses of containers the runtime no longer has).
pub fn pod_status(input: &StatusInput<'_>) -> PodStatus {
    let pod = input.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let old_phase = old.phase.clone().unwrap_or_default();
    let terminal_before = old_phase == "Succeeded" || old_phase == "Failed";
    let has_init = spec.init_containers.as_ref().is_some_and(|i| !i.is_empty());
    let default_reason = if has_init {
        POD_INITIALIZING
    } else {
        CONTAINER_CREATING
    };
    let init = container_statuses(
        input,
        spec.init_containers.as_deref().unwrap_or_default(),
        old.init_container_statuses.as_deref().unwrap_or_default(),
        POD_INITIALIZING,
    );
    let app = container_statuses(
        input,
        &spec.containers,
        old.container_statuses.as_deref().unwrap_or_default(),
        default_reason,
    );
    let phase = if terminal_before {
        old_phase.as_str()
    } else {
        phase(pod, &init, &app, false)
    };
    let now = input.now;
    let old_conds = old.conditions.clone().unwrap_or_default();
    let mut conditions: Vec<PodCondition> = Vec::new();
    // PodScheduled belongs to the scheduler: kept as is
    if let Some(c) = old_conds.iter().find(|c| c.type_ == "PodScheduled") {
        conditions.push(c.clone());
    }
    let sandbox = input.runtime.latest_sandbox();
    let sandbox_ready = sandbox.is_some_and(|s| s.ready && (s.host_network || !s.ips.is_empty()))
        && !terminal_before;
    conditions.push(condition(
        &old_conds,
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
        now,
    ));
    let incomplete = incomplete_init(pod, &init, &app);
    let completed = phase == "Succeeded";
    conditions.push(if incomplete.is_empty() {
        condition(
            &old_conds,
            "Initialized",
            true,
            completed.then_some("PodCompleted"),
            None,
            now,
        )
    } else {
        condition(
            &old_conds,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            now,
        )
    });
    let mut unready: Vec<String> = Vec::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
    {
        if !init.iter().any(|s| s.name == c.name && s.ready) {
            unready.push(c.name.clone());
        }
    }
    for s in &app {
        if !s.ready {
            unready.push(s.name.clone());
        }
    }
    let (cr_ok, cr_reason, cr_msg) = if completed {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() && phase != "Failed" {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    conditions.push(condition(
        &old_conds,
        "ContainersReady",
        cr_ok,
        cr_reason,
        cr_msg.clone(),
        now,
    ));
    // readiness gates: every gated condition must be True
    let gates: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| g.condition_type.clone())
        .filter(|t| {
            !old_conds
                .iter()
                .any(|c| &c.type_ == t && c.status == "True")
        })
        .collect();
    let ready = if cr_ok && !gates.is_empty() {
        condition(
            &old_conds,
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate {} does not exist.",
                gates
                    .iter()
                    .map(|g| format!("\"{g}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            now,
        )
    } else {
        condition(&old_conds, "Ready", cr_ok, cr_reason, cr_msg, now)
    };
    conditions.push(ready);
    // other conditions (readiness gates, DisruptionTarget...) are kept
    let ours: HashSet<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
    let ours: HashSet<String> = ours.into_iter().map(str::to_string).collect();
    for c in &old_conds {
        if !ours.contains(&c.type_) {
            conditions.push(c.clone());
        }
    }

    let host_network = spec.host_network == Some(true);
    let pod_ips: Vec<String> = if host_network {
        input.host_ips.to_vec()
    } else {
        match sandbox.filter(|s| !s.ips.is_empty() && s.ready) {
            Some(s) => s.ips.clone(),
            None => old.pod_ips.iter().flatten().map(|p| p.ip.clone()).collect(),
        }
    };
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: input.host_ips.first().cloned(),
        host_ips: Some(
            input
                .host_ips
                .iter()
                .map(|ip| HostIP { ip: ip.clone() })
                .collect(),
        )
        .filter(|v: &Vec<HostIP>| !v.is_empty()),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: Some(pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect())
            .filter(|v: &Vec<PodIP>| !v.is_empty()),
        start_time: old.start_time.clone().or(Some(Time(now))),
        qos_class: Some(qos::pod_qos(pod).as_str().to_string()),
        init_container_statuses: Some(init).filter(|v| !v.is_empty()),
        container_statuses: Some(app),
        ephemeral_container_statuses: old.ephemeral_container_statuses.clone(),
        message: old.message.clone(),
        reason: old.reason.clone(),
        nominated_node_name: old.nominated_node_name.clone(),
        ..Default::default()
    }
}

/// A JSON merge patch turning `old` into `new` (RFC 7386): changed members, `null` for removed
/// ones; arrays and scalars are replaced whole. `None` when they are equal.
pub fn merge_diff(old: &serde_json::Value, new: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// The names of a pod's containers by kind, for lookups.
pub fn container_names(pod: &Pod) -> BTreeMap<String, bool> {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut m = BTreeMap::new();
    for c in spec.init_containers.iter().flatten() {
        m.insert(c.name.clone(), true);
    }
    for c in &spec.containers {
        m.insert(c.name.clone(), false);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podstate::{RuntimeContainer, RuntimeSandbox};
    use serde_json::json;

    fn pod(spec: serde_json::Value, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    fn rc(
        name: &str,
        id: &str,
        state: CState,
        exit: i32,
        created: i64,
        restarts: i32,
    ) -> RuntimeContainer {
        RuntimeContainer {
            id: id.into(),
            sandbox_id: "sb".into(),
            name: name.into(),
            attempt: restarts as u32,
            restart_count: restarts,
            hash: String::new(),
            state,
            created_at: created,
            started_at: created + 1_000_000_000,
            finished_at: if state == CState::Exited {
                created + 2_000_000_000
            } else {
                0
            },
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image: "docker.io/library/busybox:latest".into(),
            image_ref: "sha256:abc".into(),
            annotations: HashMap::new(),
            log_path: String::new(),
        }
    }

    fn sandbox() -> RuntimeSandbox {
        RuntimeSandbox {
            id: "sb".into(),
            attempt: 0,
            ready: true,
            created_at: 1,
            ips: vec!["10.42.0.7".into()],
            host_network: false,
        }
    }

    const T0: i64 = 1_700_000_000_000_000_000;

    struct Case {
        name: &'static str,
        spec: serde_json::Value,
        containers: Vec<RuntimeContainer>,
        waiting: Vec<(&'static str, &'static str)>,
        phase: &'static str,
        ready: bool,
        /// (container, state kind, reason)
        states: Vec<(&'static str, &'static str, &'static str)>,
    }

    fn state_of(s: &ContainerStatus) -> (&'static str, String) {
        let st = s.state.clone().unwrap();
        if st.running.is_some() {
            ("running", String::new())
        } else if let Some(t) = st.terminated {
            ("terminated", t.reason.unwrap_or_default())
        } else {
            ("waiting", st.waiting.unwrap().reason.unwrap_or_default())
        }
    }

    #[test]
    fn status_table() {
        let one = json!({"containers": [{"name": "c", "image": "busybox"}]});
        let never =
            json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]});
        let onfail = json!({"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]});
        let with_init = json!({"initContainers": [{"name": "i", "image": "busybox"}],
                               "containers": [{"name": "c", "image": "busybox"}]});
        let cases = vec![
            Case {
                name: "nothing yet",
                spec: one.clone(),
                containers: vec![],
                waiting: vec![],
                phase: "Pending",
                ready: false,
                states: vec![("c", "waiting", "ContainerCreating")],
            },
            Case {
                name: "running",
                spec: one.clone(),
                containers: vec![rc("c", "1", CState::Running, 0, T0, 0)],
                waiting: vec![],
                phase: "Running",
                ready: true,
                states: vec![("c", "running", "")],
            },
            Case {
                name: "crash loop",
                spec: one.clone(),
                containers: vec![
                    rc("c", "2", CState::Exited, 1, T0 + 5, 1),
                    rc("c", "1", CState::Exited, 1, T0, 0),
                ],
                waiting: vec![("c", "CrashLoopBackOff")],
                phase: "Running",
                ready: false,
                states: vec![("c", "waiting", "CrashLoopBackOff")],
            },
            Case {
                name: "image pull error",
                spec: one.clone(),
                containers: vec![],
                waiting: vec![("c", "ErrImagePull")],
                phase: "Pending",
                ready: false,
                states: vec![("c", "waiting", "ErrImagePull")],
            },
            Case {
                name: "never: failed",
                spec: never.clone(),
                containers: vec![rc("c", "1", CState::Exited, 3, T0, 0)],
                waiting: vec![],
                phase: "Failed",
                ready: false,
                states: vec![("c", "terminated", "Error")],
            },
            Case {
                name: "never: succeeded",
                spec: never.clone(),
                containers: vec![rc("c", "1", CState::Exited, 0, T0, 0)],
                waiting: vec![],
                phase: "Succeeded",
                ready: false,
                states: vec![("c", "terminated", "Completed")],
            },
            Case {
                name: "never: a start failure of a container that is done is not shown",
                spec: never.clone(),
                containers: vec![rc("c", "1", CState::Exited, 0, T0, 0)],
                waiting: vec![("c", "RunContainerError")],
                phase: "Succeeded",
                ready: false,
                states: vec![("c", "terminated", "Completed")],
            },
            Case {
                name: "onfailure: a start failure after a success is not shown",
                spec: onfail.clone(),
                containers: vec![rc("c", "1", CState::Exited, 0, T0, 0)],
                waiting: vec![("c", "RunContainerError")],
                phase: "Succeeded",
                ready: false,
                states: vec![("c", "terminated", "Completed")],
            },
            Case {
                name: "onfailure: a failure restarting shows its reason",
                spec: onfail.clone(),
                containers: vec![rc("c", "1", CState::Exited, 2, T0, 0)],
                waiting: vec![("c", "CrashLoopBackOff")],
                phase: "Running",
                ready: false,
                states: vec![("c", "waiting", "CrashLoopBackOff")],
            },
            Case {
                name: "init done: its old start failure is not shown",
                spec: with_init.clone(),
                containers: vec![
                    rc("c", "2", CState::Running, 0, T0 + 5, 0),
                    rc("i", "1", CState::Exited, 0, T0, 0),
                ],
                waiting: vec![("i", "RunContainerError")],
                phase: "Running",
                ready: true,
                states: vec![("i", "terminated", "Completed"), ("c", "running", "")],
            },
            Case {
                name: "onfailure: success is final",
                spec: onfail.clone(),
                containers: vec![rc("c", "1", CState::Exited, 0, T0, 0)],
                waiting: vec![],
                phase: "Succeeded",
                ready: false,
                states: vec![("c", "terminated", "Completed")],
            },
            Case {
                name: "onfailure: failure restarts",
                spec: onfail,
                containers: vec![rc("c", "1", CState::Exited, 2, T0, 0)],
                waiting: vec![],
                phase: "Running",
                ready: false,
                states: vec![("c", "terminated", "Error")],
            },
            Case {
                name: "init running",
                spec: with_init.clone(),
                containers: vec![rc("i", "1", CState::Running, 0, T0, 0)],
                waiting: vec![],
                phase: "Pending",
                ready: false,
                states: vec![("i", "running", ""), ("c", "waiting", "PodInitializing")],
            },
            Case {
                name: "init done, app running",
                spec: with_init.clone(),
                containers: vec![
                    rc("c", "2", CState::Running, 0, T0 + 5, 0),
                    rc("i", "1", CState::Exited, 0, T0, 0),
                ],
                waiting: vec![],
                phase: "Running",
                ready: true,
                states: vec![("i", "terminated", "Completed"), ("c", "running", "")],
            },
            Case {
                name: "config error",
                spec: one,
                containers: vec![],
                waiting: vec![("c", "CreateContainerConfigError")],
                phase: "Pending",
                ready: false,
                states: vec![("c", "waiting", "CreateContainerConfigError")],
            },
        ];
        for case in cases {
            let p = pod(
                case.spec.clone(),
                json!({"conditions": [
                {"type": "PodScheduled", "status": "True"}]}),
            );
            let rt = PodRuntime::new(vec![sandbox()], case.containers.clone());
            let waiting: HashMap<String, Waiting> = case
                .waiting
                .iter()
                .map(|(c, r)| {
                    (
                        c.to_string(),
                        Waiting {
                            reason: r.to_string(),
                            message: "m".into(),
                        },
                    )
                })
                .collect();
            let probes = ProbeStatus::default();
            let host = vec!["192.168.0.2".to_string()];
            let st = pod_status(&StatusInput {
                pod: &p,
                runtime: &rt,
                waiting: &waiting,
                probes: &probes,
                host_ips: &host,
                runtime_name: "oxkube",
                now: Timestamp::now(),
            });
            assert_eq!(st.phase.as_deref(), Some(case.phase), "{}", case.name);
            let ready = st
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap();
            assert_eq!(
                ready.status == "True",
                case.ready,
                "{}: {ready:?}",
                case.name
            );
            let all: Vec<ContainerStatus> = st
                .init_container_statuses
                .clone()
                .unwrap_or_default()
                .into_iter()
                .chain(st.container_statuses.clone().unwrap())
                .collect();
            for (name, kind, reason) in &case.states {
                let s = all.iter().find(|s| s.name == *name).unwrap();
                let (k, r) = state_of(s);
                assert_eq!((k, r.as_str()), (*kind, *reason), "{}: {name}", case.name);
            }
            assert_eq!(st.pod_ip.as_deref(), Some("10.42.0.7"), "{}", case.name);
            assert_eq!(st.host_ip.as_deref(), Some("192.168.0.2"));
            assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
            let scheduled = st
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "PodScheduled");
            assert!(scheduled.is_some(), "{}", case.name);
        }
    }

    #[test]
    fn crash_loop_reports_restart_count_and_last_state() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "busybox"}]}),
            json!({}),
        );
        let rt = PodRuntime::new(
            vec![sandbox()],
            vec![
                rc("c", "b", CState::Exited, 1, T0 + 10, 2),
                rc("c", "a", CState::Exited, 1, T0, 1),
            ],
        );
        let waiting = HashMap::from([(
            "c".to_string(),
            Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 20s restarting failed container=c pod=p_default(u)".into(),
            },
        )]);
        let st = pod_status(&StatusInput {
            pod: &p,
            runtime: &rt,
            waiting: &waiting,
            probes: &ProbeStatus::default(),
            host_ips: &[],
            runtime_name: "containerd",
            now: Timestamp::now(),
        });
        let cs = &st.container_statuses.unwrap()[0];
        assert_eq!(cs.restart_count, 2);
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
        assert_eq!(last.container_id.as_deref(), Some("containerd://b"));
        assert_eq!(cs.container_id.as_deref(), Some("containerd://b"));
        assert_eq!(cs.image_id, "sha256:abc");
        let w = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert!(w.message.as_ref().unwrap().starts_with("back-off 20s"));
    }

    #[test]
    fn readiness_probe_without_result_is_not_ready() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "busybox",
            "readinessProbe": {"exec": {"command": ["true"]}}}]}),
            json!({}),
        );
        let rt = PodRuntime::new(
            vec![sandbox()],
            vec![rc("c", "1", CState::Running, 0, T0, 0)],
        );
        let mut probes = ProbeStatus::default();
        let run = |probes: &ProbeStatus| {
            pod_status(&StatusInput {
                pod: &p,
                runtime: &rt,
                waiting: &HashMap::new(),
                probes,
                host_ips: &[],
                runtime_name: "oxkube",
                now: Timestamp::now(),
            })
            .container_statuses
            .unwrap()[0]
                .ready
        };
        assert!(!run(&probes));
        probes.ready.insert("c".into(), true);
        assert!(run(&probes));
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let old_time = "2020-01-01T00:00:00Z";
        let p = pod(
            json!({"containers": [{"name": "c", "image": "busybox"}]}),
            json!({"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": old_time},
                                  {"type": "Initialized", "status": "False", "lastTransitionTime": old_time}]}),
        );
        let rt = PodRuntime::new(vec![sandbox()], vec![]);
        let st = pod_status(&StatusInput {
            pod: &p,
            runtime: &rt,
            waiting: &HashMap::new(),
            probes: &ProbeStatus::default(),
            host_ips: &[],
            runtime_name: "oxkube",
            now: Timestamp::now(),
        });
        let conds = st.conditions.unwrap();
        let get = |t: &str| conds.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(get("Ready").status, "False");
        assert_eq!(
            serde_json::to_value(&get("Ready").last_transition_time).unwrap(),
            json!(old_time)
        );
        assert_eq!(get("Initialized").status, "True");
        assert_ne!(
            serde_json::to_value(&get("Initialized").last_transition_time).unwrap(),
            json!(old_time)
        );
    }

    #[test]
    fn terminal_phase_is_sticky() {
        let p = pod(
            json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}),
            json!({"phase": "Succeeded"}),
        );
        let rt = PodRuntime::new(vec![], vec![]);
        let st = pod_status(&StatusInput {
            pod: &p,
            runtime: &rt,
            waiting: &HashMap::new(),
            probes: &ProbeStatus::default(),
            host_ips: &[],
            runtime_name: "oxkube",
            now: Timestamp::now(),
        });
        assert_eq!(st.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn merge_diff_table() {
        let cases = [
            (json!({"a": 1}), json!({"a": 1}), None),
            (json!({"a": 1}), json!({"a": 2}), Some(json!({"a": 2}))),
            (
                json!({"a": 1, "b": 2}),
                json!({"a": 1}),
                Some(json!({"b": null})),
            ),
            (
                json!({"a": {"x": 1, "y": 2}}),
                json!({"a": {"x": 1, "y": 3}}),
                Some(json!({"a": {"y": 3}})),
            ),
            (
                json!({"l": [1, 2]}),
                json!({"l": [1]}),
                Some(json!({"l": [1]})),
            ),
            (
                json!({}),
                json!({"n": {"z": true}}),
                Some(json!({"n": {"z": true}})),
            ),
        ];
        for (old, new, want) in cases {
            assert_eq!(merge_diff(&old, &new), want, "{old} -> {new}");
        }
    }
}
