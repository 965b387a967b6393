//! Liveness, readiness and startup probes (upstream `pkg/kubelet/prober`) and lifecycle hooks.
//!
//! # How the pod worker uses it
//! ```text
//! let (probes, mut events) = ProbeManager::new(Arc::new(CriExec::new(runtime_client)));
//! probes.add_pod(&pod);                                   // once the pod is admitted (idempotent)
//! probes.set_pod_ip(uid, "10.42.0.7");                    // when the sandbox has its IP
//! probes.set_container_state(uid, "app", ContainerState { container_id, running_since: Some(t),
//!                                                         terminated: false });
//!                                                         // on every container state change
//! probes.set_terminating(uid);                            // when the pod gets a deletionTimestamp
//! probes.remove_pod(uid);                                 // when the pod is gone
//! while let Some(ev) = events.recv().await { match ev {
//!     ProbeEvent::Result { probe: Readiness, result, .. } => /* containerStatuses[].ready */,
//!     ProbeEvent::Result { probe: Startup, result: Success, .. } => /* started = true */,
//!     ProbeEvent::Result { probe: Liveness | Startup, result: Failure, container_id, .. } =>
//!         /* if that container is still the running one: kill it ("Container x failed liveness
//!            probe, will be restarted") and let restartPolicy decide */,
//!     ProbeEvent::Event { reason, message, .. } => /* Warning event on the pod (Unhealthy…) */,
//! }}
//! ```
//! Semantics as upstream: one worker per (container, probe type) for app containers and
//! restartable init containers; the first run after `initialDelaySeconds`, then every
//! `periodSeconds` (and right away when the container's state changes); each run bounded by
//! `timeoutSeconds`; the effective result flips after `successThreshold` / `failureThreshold`
//! consecutive runs; readiness starts at Failure, liveness at Success, startup at Unknown;
//! liveness and readiness wait until the startup probe succeeded; a liveness/startup failure holds
//! the worker until a new container id appears; a container without a readiness probe is ready
//! when running and one without a startup probe is started when running (the pod worker decides
//! those). Hooks: [`lifecycle::post_start`] / [`lifecycle::pre_stop`].

pub mod exec;
pub mod http;
pub mod lifecycle;
pub mod prober;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::{mpsc, watch};

pub use exec::{ContainerExec, CriExec, ExecError, ExecOutput};
pub use lifecycle::HookFailure;
pub use prober::Outcome;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeType {
    /// The value published for a new container.
    pub fn initial_result(self) -> ProbeResult {
        match self {
            Self::Liveness => ProbeResult::Success,
            Self::Readiness => ProbeResult::Failure,
            Self::Startup => ProbeResult::Unknown,
        }
    }

    /// "Liveness", "Readiness", "Startup" (as in upstream's event messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }
}

/// Effective probe result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeResult {
    Success,
    Failure,
    Unknown,
}

/// What the pod worker knows about a container (from CRI).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    /// The CRI container id (empty before the first container was created).
    pub container_id: String,
    /// When the container started running; `None` when it is not running.
    pub running_since: Option<SystemTime>,
    /// The container exited (and is not running again yet).
    pub terminated: bool,
}

/// What the probe workers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    /// The effective result of a probe changed for a container.
    Result {
        pod_uid: String,
        container: String,
        container_id: String,
        probe: ProbeType,
        result: ProbeResult,
    },
    /// A run failed, warned or errored: a Warning event on the pod (reason Unhealthy or
    /// ProbeWarning), as upstream records for every such run.
    Event {
        pod_uid: String,
        container: String,
        probe: ProbeType,
        reason: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Default)]
struct PodState {
    pod_ip: String,
    terminating: bool,
    containers: HashMap<String, ContainerState>,
    /// Container name -> id of the container whose startup probe succeeded.
    started: HashMap<String, String>,
}

/// (pod uid, container, probe) -> (container id, effective result).
type Results = Arc<Mutex<HashMap<(String, String, ProbeType), (String, ProbeResult)>>>;

struct PodEntry {
    state: Arc<watch::Sender<PodState>>,
    stop: watch::Sender<bool>,
}

/// Runs the probe workers of the node's pods.
#[derive(Clone)]
pub struct ProbeManager {
    exec: Arc<dyn ContainerExec>,
    events: mpsc::UnboundedSender<ProbeEvent>,
    pods: Arc<Mutex<HashMap<String, PodEntry>>>,
    results: Results,
    started_at: tokio::time::Instant,
    started_at_wall: SystemTime,
}

impl ProbeManager {
    /// A manager and the stream of its events.
    pub fn new(exec: Arc<dyn ContainerExec>) -> (Self, mpsc::UnboundedReceiver<ProbeEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                exec,
                events: tx,
                pods: Arc::new(Mutex::new(HashMap::new())),
                results: Arc::new(Mutex::new(HashMap::new())),
                started_at: tokio::time::Instant::now(),
                started_at_wall: SystemTime::now(),
            },
            rx,
        )
    }

    /// Starts the workers of a pod's probes (no-op when already added). Must run inside a tokio
    /// runtime.
    pub fn add_pod(&self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let mut pods = self.pods.lock().expect("probe pods");
        if pods.contains_key(&uid) {
            return;
        }
        let initial = PodState {
            pod_ip: pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            ..Default::default()
        };
        let state = Arc::new(watch::Sender::new(initial));
        let (stop, _) = watch::channel(false);
        if let Some(spec) = &pod.spec {
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            for c in spec.containers.iter().chain(sidecars) {
                let has_startup = c.startup_probe.is_some();
                for (probe, spec) in [
                    (ProbeType::Startup, &c.startup_probe),
                    (ProbeType::Liveness, &c.liveness_probe),
                    (ProbeType::Readiness, &c.readiness_probe),
                ] {
                    let Some(spec) = spec.clone() else { continue };
                    let worker = Worker {
                        pod_uid: uid.clone(),
                        restart_never: spec_restart_never(pod),
                        container: c.clone(),
                        probe,
                        spec: defaulted(spec),
                        has_startup,
                        exec: self.exec.clone(),
                        events: self.events.clone(),
                        state: state.clone(),
                        results: self.results.clone(),
                        stop: stop.subscribe(),
                        manager_started: self.started_at,
                        manager_started_wall: self.started_at_wall,
                        not_before: None,
                    };
                    tokio::spawn(worker.run());
                }
            }
        }
        pods.insert(uid, PodEntry { state, stop });
    }

    /// Stops the workers of a pod and forgets its results.
    pub fn remove_pod(&self, pod_uid: &str) {
        if let Some(entry) = self.pods.lock().expect("probe pods").remove(pod_uid) {
            let _ = entry.stop.send(true);
        }
        self.results
            .lock()
            .expect("probe results")
            .retain(|(uid, _, _), _| uid != pod_uid);
    }

    fn modify(&self, pod_uid: &str, f: impl FnOnce(&mut PodState) -> bool) {
        if let Some(entry) = self.pods.lock().expect("probe pods").get(pod_uid) {
            entry.state.send_if_modified(f);
        }
    }

    /// The pod's IP (target of httpGet/tcpSocket/grpc probes without a host).
    pub fn set_pod_ip(&self, pod_uid: &str, ip: &str) {
        self.modify(pod_uid, |s| {
            if s.pod_ip == ip {
                return false;
            }
            s.pod_ip = ip.to_string();
            true
        });
    }

    /// A container's current state; workers react at once to a change.
    pub fn set_container_state(&self, pod_uid: &str, container: &str, state: ContainerState) {
        self.modify(pod_uid, |s| {
            if s.containers.get(container) == Some(&state) {
                return false;
            }
            s.containers.insert(container.to_string(), state);
            true
        });
    }

    /// The pod is being deleted: liveness and startup workers report Success and stop.
    pub fn set_terminating(&self, pod_uid: &str) {
        self.modify(pod_uid, |s| !std::mem::replace(&mut s.terminating, true));
    }

    /// The current effective result of a probe for the given container id (`None` when the
    /// container has no such probe or it has not reported yet).
    pub fn result(
        &self,
        pod_uid: &str,
        container: &str,
        container_id: &str,
        probe: ProbeType,
    ) -> Option<ProbeResult> {
        self.results
            .lock()
            .expect("probe results")
            .get(&(pod_uid.to_string(), container.to_string(), probe))
            .filter(|(id, _)| id == container_id)
            .map(|(_, r)| *r)
    }
}

fn spec_restart_never(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("Never")
}

/// Upstream API defaults of a probe.
fn defaulted(mut p: Probe) -> Probe {
    p.timeout_seconds = Some(p.timeout_seconds.filter(|v| *v > 0).unwrap_or(1));
    p.period_seconds = Some(p.period_seconds.filter(|v| *v > 0).unwrap_or(10));
    p.success_threshold = Some(p.success_threshold.filter(|v| *v > 0).unwrap_or(1));
    p.failure_threshold = Some(p.failure_threshold.filter(|v| *v > 0).unwrap_or(3));
    p
}

struct Worker {
    pod_uid: String,
    restart_never: bool,
    container: Container,
    probe: ProbeType,
    spec: Probe,
    has_startup: bool,
    exec: Arc<dyn ContainerExec>,
    events: mpsc::UnboundedSender<ProbeEvent>,
    state: Arc<watch::Sender<PodState>>,
    results: Results,
    stop: watch::Receiver<bool>,
    manager_started: tokio::time::Instant,
    manager_started_wall: SystemTime,
    /// The container id seen running and the instant before which it is not probed (initial
    /// delay, restart jitter).
    not_before: Option<(String, tokio::time::Instant)>,
}

/// What the worker does next.
enum Next {
    /// Wait a period (or a state change).
    Period,
    /// Wait until this instant (initial delay), or a state change.
    Until(tokio::time::Instant),
    Stop,
}

impl Worker {
    async fn run(mut self) {
        let period = Duration::from_secs(self.spec.period_seconds.unwrap_or(10) as u64);
        let mut updates = self.state.subscribe();
        let mut st = state::ProbeState::new(
            self.probe,
            self.spec.success_threshold.unwrap_or(1),
            self.spec.failure_threshold.unwrap_or(3),
        );
        loop {
            if *self.stop.borrow() {
                return;
            }
            updates.mark_unchanged();
            let deadline = match self.step(&mut st).await {
                Next::Stop => return,
                Next::Period => tokio::time::Instant::now() + period,
                Next::Until(t) => t,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                r = updates.changed() => if r.is_err() { return },
                _ = self.stop.changed() => return,
            }
        }
    }

    fn publish(&self, st: &state::ProbeState, result: Option<ProbeResult>) {
        let Some(result) = result else { return };
        let id = st.container_id().to_string();
        self.results.lock().expect("probe results").insert(
            (
                self.pod_uid.clone(),
                self.container.name.clone(),
                self.probe,
            ),
            (id.clone(), result),
        );
        if self.probe == ProbeType::Startup && result == ProbeResult::Success {
            let name = self.container.name.clone();
            self.state.send_modify(|s| {
                s.started.insert(name, id.clone());
            });
        }
        let _ = self.events.send(ProbeEvent::Result {
            pod_uid: self.pod_uid.clone(),
            container: self.container.name.clone(),
            container_id: id,
            probe: self.probe,
            result,
        });
    }

    fn event(&self, reason: &'static str, message: String) {
        let _ = self.events.send(ProbeEvent::Event {
            pod_uid: self.pod_uid.clone(),
            container: self.container.name.clone(),
            probe: self.probe,
            reason,
            message,
        });
    }

    /// Upstream `worker.doProbe`.
    async fn step(&mut self, st: &mut state::ProbeState) -> Next {
        let snapshot = self.state.borrow().clone();
        let Some(c) = snapshot.containers.get(&self.container.name) else {
            return Next::Period;
        };
        if c.container_id.is_empty() {
            return Next::Period;
        }
        let fresh = st.observe_container(&c.container_id);
        self.publish(st, fresh);
        if st.on_hold() {
            return Next::Period;
        }
        let Some(running_since) = c.running_since else {
            let r = st.container_not_running();
            self.publish(st, r);
            // a terminated container of a restartPolicy Never pod never comes back
            return if c.terminated && self.restart_never {
                Next::Stop
            } else {
                Next::Period
            };
        };
        if snapshot.terminating && matches!(self.probe, ProbeType::Liveness | ProbeType::Startup) {
            let r = st.pod_terminating();
            self.publish(st, r);
            return Next::Stop;
        }
        let now = tokio::time::Instant::now();
        if self.not_before.as_ref().map(|(id, _)| id) != Some(&c.container_id) {
            let delay =
                Duration::from_secs(self.spec.initial_delay_seconds.unwrap_or(0).max(0) as u64);
            let ran_for = SystemTime::now()
                .duration_since(running_since)
                .unwrap_or_default();
            let mut t = now + delay.saturating_sub(ran_for);
            // a restarted kubelet spreads the probes of containers that were already running
            // over one period, as upstream
            let period = Duration::from_secs(self.spec.period_seconds.unwrap_or(10) as u64);
            if running_since < self.manager_started_wall
                && now.duration_since(self.manager_started) < period
            {
                t = t.max(now + period.mul_f64(rand::random::<f64>()));
            }
            self.not_before = Some((c.container_id.clone(), t));
        }
        if let Some((_, t)) = &self.not_before {
            if now < *t {
                return Next::Until(*t);
            }
        }
        let started = !self.has_startup
            || snapshot.started.get(&self.container.name) == Some(&c.container_id);
        if started {
            if self.probe == ProbeType::Startup {
                return Next::Period;
            }
        } else if self.probe != ProbeType::Startup {
            return Next::Period;
        }

        let mut outcome = Outcome::Error(String::new());
        for _ in 0..prober::MAX_PROBE_RETRIES {
            outcome = prober::run(
                &self.spec,
                &self.container,
                &c.container_id,
                &snapshot.pod_ip,
                self.exec.as_ref(),
            )
            .await;
            if !matches!(outcome, Outcome::Error(_)) {
                break;
            }
        }
        let name = self.probe.as_str();
        let result = match outcome {
            Outcome::Success(_) => ProbeResult::Success,
            Outcome::Warning(out) => {
                self.event("ProbeWarning", format!("{name} probe warning: {out}"));
                ProbeResult::Success
            }
            Outcome::Failure(out) => {
                self.event("Unhealthy", format!("{name} probe failed: {out}"));
                ProbeResult::Failure
            }
            Outcome::Error(err) => {
                tracing::debug!(pod_uid = %self.pod_uid, container = %self.container.name, probe = name, error = %err, "probe errored");
                self.event(
                    "Unhealthy",
                    format!("{name} probe errored and resulted in unknown state: {err}"),
                );
                return Next::Period;
            }
        };
        let published = st.record(result);
        self.publish(st, published);
        Next::Period
    }
}

#[cfg(test)]
mod tests;
