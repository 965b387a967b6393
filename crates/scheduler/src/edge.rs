//! The IO edge of the scheduler: watchers on nodes, pods and namespaces feed a dedicated
//! scheduling thread (which owns the cluster snapshot, the queue and the framework); its
//! decisions come back as actions run asynchronously through kube-rs: bindings, pod status
//! conditions, preemption and events. Bindings are assumed in the snapshot at once and
//! forgotten if they fail, so throughput does not wait for watch round trips.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Binding, Event, EventSource, Namespace, Node, ObjectReference, Pod,
};
use k8s_openapi::api::core::v1::{ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::WatchStreamExt;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::framework::cluster::ControllerSelector;
use crate::framework::{Cluster, Framework, PodInfo, PreemptionResult};
use crate::queue::{ClusterEvent, SchedulingQueue};
use crate::Config;
use apimachinery::selector::LabelSelector;

/// Component name in events (`source.component`, `reportingComponent`).
pub const COMPONENT: &str = "default-scheduler";

/// A watch event reduced to what the scheduler needs.
enum Watch<K> {
    Init,
    Apply(K),
    InitApply(K),
    InitDone,
    Delete(K),
}

impl<K> Watch<K> {
    /// The object of an apply (true) or delete (false) event.
    fn object(&self) -> Option<(&K, bool)> {
        match self {
            Watch::Apply(o) | Watch::InitApply(o) => Some((o, true)),
            Watch::Delete(o) => Some((o, false)),
            Watch::Init | Watch::InitDone => None,
        }
    }
}

fn ns_name(m: &ObjectMeta) -> (String, String) {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// Inputs of the scheduling thread.
#[allow(clippy::large_enum_variant)]
enum Input {
    Node(Watch<Node>),
    Pod(Watch<Pod>),
    Namespace(Watch<Namespace>),
    Service(Watch<Service>),
    Rc(Watch<ReplicationController>),
    Rs(Watch<ReplicaSet>),
    Sts(Watch<StatefulSet>),
    BindResult {
        info: Arc<PodInfo>,
        node: String,
        attempts: u32,
        error: Option<String>,
    },
    Stop,
}

/// Outputs of the scheduling thread.
enum Action {
    Bind {
        info: Arc<PodInfo>,
        node: String,
        attempts: u32,
    },
    Unschedulable {
        info: Arc<PodInfo>,
        message: String,
        nominated: Option<String>,
    },
    Preempt {
        preemptor: Arc<PodInfo>,
        node: String,
        victims: Vec<Arc<PodInfo>>,
    },
    BindFailed {
        info: Arc<PodInfo>,
        message: String,
    },
    /// Sets PodScheduled=False with a reason (no event).
    Condition {
        info: Arc<PodInfo>,
        reason: &'static str,
        message: String,
        nominated: Option<String>,
    },
}

/// A running scheduler (watchers, action runner and scheduling thread).
pub struct Running {
    tasks: Vec<JoinHandle<()>>,
    input: Sender<Input>,
    core: Option<std::thread::JoinHandle<()>>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Running {
    /// Starts watching and scheduling.
    pub fn start(client: kube::Client, config: Config) -> Running {
        let (in_tx, in_rx) = std::sync::mpsc::channel::<Input>();
        let (act_tx, act_rx) = mpsc::unbounded_channel::<Action>();
        let tasks = vec![
            spawn_watch(Api::<Node>::all(client.clone()), in_tx.clone(), Input::Node),
            spawn_watch(Api::<Pod>::all(client.clone()), in_tx.clone(), Input::Pod),
            spawn_watch(
                Api::<Namespace>::all(client.clone()),
                in_tx.clone(),
                Input::Namespace,
            ),
            spawn_watch(
                Api::<Service>::all(client.clone()),
                in_tx.clone(),
                Input::Service,
            ),
            spawn_watch(
                Api::<ReplicationController>::all(client.clone()),
                in_tx.clone(),
                Input::Rc,
            ),
            spawn_watch(
                Api::<ReplicaSet>::all(client.clone()),
                in_tx.clone(),
                Input::Rs,
            ),
            spawn_watch(
                Api::<StatefulSet>::all(client.clone()),
                in_tx.clone(),
                Input::Sts,
            ),
            tokio::spawn(run_actions(client, config.clone(), act_rx, in_tx.clone())),
        ];
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let core = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                Core::new(&config, act_tx).run(in_rx);
                let _ = done_tx.send(());
            })
            .expect("spawn scheduler thread");
        Running {
            tasks,
            input: in_tx,
            core: Some(core),
            done,
        }
    }

    /// Resolves if the scheduling thread ends on its own.
    pub async fn wait(&mut self) {
        let _ = (&mut self.done).await;
    }

    /// Stops everything and waits for the scheduling thread to exit.
    pub async fn stop(mut self) {
        self.halt();
        if let Some(core) = self.core.take() {
            let _ = tokio::task::spawn_blocking(move || core.join()).await;
        }
    }

    fn halt(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.input.send(Input::Stop);
    }
}

impl Drop for Running {
    /// Dropping a running scheduler (e.g. its task was cancelled) stops it too.
    fn drop(&mut self) {
        self.halt();
    }
}

fn spawn_watch<K>(api: Api<K>, tx: Sender<Input>, wrap: fn(Watch<K>) -> Input) -> JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = stream.next().await {
            let w = match ev {
                Ok(WatchEvent::Init) => Watch::Init,
                Ok(WatchEvent::InitApply(o)) => Watch::InitApply(o),
                Ok(WatchEvent::InitDone) => Watch::InitDone,
                Ok(WatchEvent::Apply(o)) => Watch::Apply(o),
                Ok(WatchEvent::Delete(o)) => Watch::Delete(o),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler watch error");
                    continue;
                }
            };
            if tx.send(wrap(w)).is_err() {
                return;
            }
        }
    })
}

/// The scheduling thread's state.
struct Core {
    scheduler_name: String,
    cluster: Cluster,
    framework: Framework,
    queue: SchedulingQueue,
    /// Pods assumed on a node whose binding is not yet confirmed by the watch.
    assumed: std::collections::HashMap<String, String>,
    out: mpsc::UnboundedSender<Action>,
    synced: [bool; 3],
    relist: [Option<HashSet<String>>; 3],
}

const NODES: usize = 0;
const PODS: usize = 1;
const NAMESPACES: usize = 2;

fn pod_uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            p.metadata.namespace.as_deref().unwrap_or("default"),
            p.metadata.name.as_deref().unwrap_or("")
        )
    })
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// Whether a node changed in a way that may make pending pods schedulable.
fn node_changed(old: &Node, new: &Node) -> bool {
    old.metadata.labels != new.metadata.labels
        || old.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
            != new.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
        || old.status.as_ref().map(|s| &s.allocatable)
            != new.status.as_ref().map(|s| &s.allocatable)
        || old.status.as_ref().map(|s| &s.images) != new.status.as_ref().map(|s| &s.images)
}

impl Core {
    fn new(config: &Config, out: mpsc::UnboundedSender<Action>) -> Core {
        let mut framework = Framework::new(Timestamp::now().as_nanosecond() as u64);
        framework.percentage_of_nodes_to_score = config.percentage_of_nodes_to_score;
        Core {
            scheduler_name: config.scheduler_name.clone(),
            cluster: Cluster::new(),
            framework,
            queue: SchedulingQueue::new(config.initial_backoff, config.max_backoff),
            assumed: Default::default(),
            out,
            synced: [false; 3],
            relist: [None, None, None],
        }
    }

    fn run(mut self, rx: Receiver<Input>) {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(i) => {
                        if !self.handle(i) {
                            return;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            if self.synced.iter().all(|s| *s) {
                if let Some(qp) = self.queue.pop(now) {
                    self.schedule_one(qp.info, qp.attempts);
                    continue;
                }
            }
            let timeout = self
                .queue
                .next_wakeup()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(3600));
            match rx.recv_timeout(timeout) {
                Ok(i) => {
                    if !self.handle(i) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.queue.tick(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn schedule_one(&mut self, info: Arc<PodInfo>, attempts: u32) {
        let uid = info.uid.clone();
        match self.framework.schedule(&self.cluster, &info) {
            Ok(r) => {
                tracing::debug!(pod = %info.name, node = %r.node, evaluated = r.evaluated_nodes, feasible = r.feasible_nodes, "scheduled");
                self.queue.done(&uid);
                self.cluster.clear_nominated(&uid);
                self.assumed.insert(uid, r.node.clone());
                self.cluster.add_pod(info.clone(), &r.node);
                let _ = self.out.send(Action::Bind {
                    info,
                    node: r.node,
                    attempts,
                });
            }
            Err(mut fit) => {
                let nominated = match self.framework.preempt(&self.cluster, &info, &mut fit) {
                    PreemptionResult::Candidate { node, victims } => {
                        self.cluster.set_nominated(&info, Some(&node));
                        let _ = self.out.send(Action::Preempt {
                            preemptor: info.clone(),
                            node: node.clone(),
                            victims,
                        });
                        Some(node)
                    }
                    PreemptionResult::NotHelpful => None,
                };
                let message = fit.to_string();
                tracing::debug!(pod = %info.name, %message, "unschedulable");
                self.queue.unschedulable(
                    &uid,
                    fit.unschedulable_plugins(),
                    message.clone(),
                    Instant::now(),
                );
                let _ = self.out.send(Action::Unschedulable {
                    info,
                    message,
                    nominated,
                });
            }
        }
    }

    /// Handles one input; false to stop.
    fn handle(&mut self, input: Input) -> bool {
        let now = Instant::now();
        match input {
            Input::Stop => return false,
            Input::Node(w) => match w {
                Watch::Init => self.relist[NODES] = Some(HashSet::new()),
                Watch::InitApply(n) | Watch::Apply(n) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    if let Some(seen) = self.relist[NODES].as_mut() {
                        seen.insert(name.clone());
                    }
                    let changed = self
                        .cluster
                        .node(&name)
                        .is_none_or(|old| node_changed(&old.node, &n));
                    self.cluster.upsert_node(Arc::new(n));
                    if changed {
                        self.queue.on_cluster_event(ClusterEvent::NodeChange, now);
                    }
                }
                Watch::InitDone => {
                    if let Some(seen) = self.relist[NODES].take() {
                        for name in self.cluster.node_names() {
                            if !seen.contains(&name) {
                                self.cluster.remove_node(&name);
                            }
                        }
                    }
                    self.synced[NODES] = true;
                }
                Watch::Delete(n) => self
                    .cluster
                    .remove_node(n.metadata.name.as_deref().unwrap_or_default()),
            },
            Input::Namespace(w) => match w {
                Watch::Init => self.relist[NAMESPACES] = Some(HashSet::new()),
                Watch::InitApply(ns) | Watch::Apply(ns) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    if let Some(seen) = self.relist[NAMESPACES].as_mut() {
                        seen.insert(name.clone());
                    }
                    self.cluster
                        .set_namespace(&name, ns.metadata.labels.unwrap_or_default());
                    self.queue
                        .on_cluster_event(ClusterEvent::AssignedPodChange, now);
                }
                Watch::InitDone => {
                    self.relist[NAMESPACES] = None;
                    self.synced[NAMESPACES] = true;
                }
                Watch::Delete(ns) => self
                    .cluster
                    .remove_namespace(ns.metadata.name.as_deref().unwrap_or_default()),
            },
            Input::Service(w) => {
                if let Some((o, live)) = w.object() {
                    let sel = o
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.clone())
                        .filter(|_| live);
                    let (ns, name) = ns_name(&o.metadata);
                    self.cluster.set_service(&ns, &name, sel);
                }
            }
            Input::Rc(w) => {
                if let Some((o, live)) = w.object() {
                    let sel = o
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.clone())
                        .filter(|_| live);
                    let (ns, name) = ns_name(&o.metadata);
                    self.cluster.set_controller(
                        "ReplicationController",
                        &ns,
                        &name,
                        sel.map(ControllerSelector::Set),
                    );
                }
            }
            Input::Rs(w) => {
                if let Some((o, live)) = w.object() {
                    let sel = o
                        .spec
                        .as_ref()
                        .map(|s| LabelSelector::from_api(Some(&s.selector)));
                    let (ns, name) = ns_name(&o.metadata);
                    let sel = sel
                        .and_then(Result::ok)
                        .filter(|_| live)
                        .map(ControllerSelector::Selector);
                    self.cluster.set_controller("ReplicaSet", &ns, &name, sel);
                }
            }
            Input::Sts(w) => {
                if let Some((o, live)) = w.object() {
                    let sel = o
                        .spec
                        .as_ref()
                        .map(|s| LabelSelector::from_api(Some(&s.selector)));
                    let (ns, name) = ns_name(&o.metadata);
                    let sel = sel
                        .and_then(Result::ok)
                        .filter(|_| live)
                        .map(ControllerSelector::Selector);
                    self.cluster.set_controller("StatefulSet", &ns, &name, sel);
                }
            }
            Input::Pod(w) => match w {
                Watch::Init => self.relist[PODS] = Some(HashSet::new()),
                Watch::InitApply(p) | Watch::Apply(p) => {
                    if let Some(seen) = self.relist[PODS].as_mut() {
                        seen.insert(pod_uid(&p));
                    }
                    self.on_pod(p, now);
                }
                Watch::InitDone => {
                    if let Some(seen) = self.relist[PODS].take() {
                        for uid in self.cluster.pod_uids().into_iter().chain(self.queue.uids()) {
                            if !seen.contains(&uid) && !self.assumed.contains_key(&uid) {
                                self.forget_pod(&uid, now);
                            }
                        }
                    }
                    self.synced[PODS] = true;
                }
                Watch::Delete(p) => {
                    let uid = pod_uid(&p);
                    self.forget_pod(&uid, now);
                }
            },
            Input::BindResult {
                info,
                node,
                attempts,
                error,
            } => {
                let uid = info.uid.clone();
                // On failure forget the assumption unless the watch already confirmed or
                // deleted the pod.
                if let Some(e) = error.filter(|_| self.assumed.get(&uid) == Some(&node)) {
                    self.assumed.remove(&uid);
                    self.cluster.remove_pod(&uid);
                    self.queue
                        .requeue_failed_binding(info.clone(), attempts, now);
                    self.queue
                        .on_cluster_event(ClusterEvent::AssignedPodDelete, now);
                    let _ = self.out.send(Action::BindFailed {
                        info,
                        message: format!("Binding rejected: {e}"),
                    });
                }
            }
        }
        true
    }

    fn forget_pod(&mut self, uid: &str, now: Instant) {
        self.cluster.clear_nominated(uid);
        self.queue.delete(uid);
        self.assumed.remove(uid);
        if self.cluster.remove_pod(uid).is_some() {
            self.queue
                .on_cluster_event(ClusterEvent::AssignedPodDelete, now);
        }
    }

    fn on_pod(&mut self, pod: Pod, now: Instant) {
        let uid = pod_uid(&pod);
        let terminal = is_terminal(&pod);
        let info = Arc::new(PodInfo::new(Arc::new(pod)));
        if let Some(node) = info.node_name().map(str::to_string) {
            self.queue.delete(&uid);
            self.cluster.clear_nominated(&uid);
            let was_assumed = self.assumed.remove(&uid).is_some();
            if terminal {
                self.forget_pod(&uid, now);
                return;
            }
            let prev_labels = self.cluster.pod_node(&uid).and_then(|n| {
                self.cluster.node(n).and_then(|ni| {
                    ni.pods
                        .iter()
                        .find(|p| p.uid == uid)
                        .map(|p| p.labels.clone())
                })
            });
            let changed = was_assumed || prev_labels.as_ref() != Some(&info.labels);
            self.cluster.add_pod(info, &node);
            if changed {
                self.queue
                    .on_cluster_event(ClusterEvent::AssignedPodChange, now);
            }
            return;
        }
        if self.assumed.contains_key(&uid) {
            return;
        }
        let ours = info
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler")
            == self.scheduler_name;
        if !ours || terminal || info.terminating {
            self.queue.delete(&uid);
            self.cluster.clear_nominated(&uid);
            return;
        }
        let nominated = info
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        self.cluster.set_nominated(&info, nominated);
        let gated = info
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty());
        if gated {
            // PreEnqueue (SchedulingGates): not queued until the gates are removed.
            self.queue.delete(&uid);
            let _ = self.out.send(Action::Condition {
                info,
                reason: "SchedulingGated",
                message: "Scheduling is blocked due to non-empty scheduling gates".into(),
                nominated: None,
            });
            return;
        }
        self.queue.add_or_update(info, now);
    }
}

fn pod_api(client: &kube::Client, info: &PodInfo) -> Api<Pod> {
    Api::namespaced(client.clone(), &info.namespace)
}

fn pod_ref(info: &PodInfo) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(info.name.clone()),
        namespace: Some(info.namespace.clone()),
        uid: info.pod.metadata.uid.clone(),
        resource_version: info.pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// A core/v1 Event about a pod, as the scheduler's event recorder writes it.
pub fn pod_event(
    info: &PodInfo,
    type_: &str,
    reason: &str,
    action: &str,
    message: String,
    instance: &str,
) -> Event {
    let now = Timestamp::now();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", info.name, now.as_nanosecond())),
            namespace: Some(info.namespace.clone()),
            ..Default::default()
        },
        involved_object: pod_ref(info),
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        action: Some(action.into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(instance.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// Runs the scheduling thread's actions concurrently (bounded), reporting binding results back.
async fn run_actions(
    client: kube::Client,
    config: Config,
    mut rx: mpsc::UnboundedReceiver<Action>,
    input: Sender<Input>,
) {
    let binds = Arc::new(Semaphore::new(config.bind_concurrency.max(1)));
    let writes = Arc::new(Semaphore::new(16));
    // Events are best effort: a bounded buffer, dropped when full (as client-go's broadcaster).
    let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(1000);
    let ev_client = client.clone();
    let ev_writer = tokio::spawn(async move {
        let sem = Arc::new(Semaphore::new(4));
        while let Some(ev) = ev_rx.recv().await {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                return;
            };
            let api: Api<Event> = Api::namespaced(
                ev_client.clone(),
                ev.metadata.namespace.as_deref().unwrap_or("default"),
            );
            tokio::spawn(async move {
                if let Err(e) = api.create(&PostParams::default(), &ev).await {
                    tracing::debug!(error = %e, "writing event");
                }
                drop(permit);
            });
        }
    });
    let identity = config.identity.clone();
    let emit = move |ev: Event| {
        if ev_tx.try_send(ev).is_err() {
            tracing::debug!("event buffer full, dropping event");
        }
    };
    while let Some(action) = rx.recv().await {
        match action {
            Action::Bind {
                info,
                node,
                attempts,
            } => {
                let Ok(permit) = binds.clone().acquire_owned().await else {
                    break;
                };
                let api = pod_api(&client, &info);
                let input = input.clone();
                let emit = emit.clone();
                let identity = identity.clone();
                tokio::spawn(async move {
                    let binding = Binding {
                        metadata: ObjectMeta {
                            name: Some(info.name.clone()),
                            namespace: Some(info.namespace.clone()),
                            uid: info.pod.metadata.uid.clone(),
                            ..Default::default()
                        },
                        target: ObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Node".into()),
                            name: Some(node.clone()),
                            ..Default::default()
                        },
                    };
                    let r = api
                        .create_subresource::<Binding, serde_json::Value>(
                            "binding",
                            &info.name,
                            &PostParams::default(),
                            &binding,
                        )
                        .await;
                    drop(permit);
                    let error = match r {
                        Ok(_) => {
                            let msg = format!(
                                "Successfully assigned {}/{} to {}",
                                info.namespace, info.name, node
                            );
                            emit(pod_event(
                                &info,
                                "Normal",
                                "Scheduled",
                                "Binding",
                                msg,
                                &identity,
                            ));
                            None
                        }
                        Err(e) => {
                            tracing::info!(pod = %info.name, %node, error = %e, "binding failed");
                            Some(e.to_string())
                        }
                    };
                    let _ = input.send(Input::BindResult {
                        info,
                        node,
                        attempts,
                        error,
                    });
                });
            }
            Action::Unschedulable {
                info,
                message,
                nominated,
            } => {
                emit(pod_event(
                    &info,
                    "Warning",
                    "FailedScheduling",
                    "Scheduling",
                    message.clone(),
                    &identity,
                ));
                write_condition(&client, &writes, info, "Unschedulable", message, nominated).await;
            }
            Action::Condition {
                info,
                reason,
                message,
                nominated,
            } => {
                write_condition(&client, &writes, info, reason, message, nominated).await;
            }
            Action::BindFailed { info, message } => {
                emit(pod_event(
                    &info,
                    "Warning",
                    "FailedScheduling",
                    "Scheduling",
                    message,
                    &identity,
                ));
            }
            Action::Preempt {
                preemptor,
                node,
                victims,
            } => {
                for v in victims {
                    let api = pod_api(&client, &v);
                    let msg = format!(
                        "Preempted by pod {} on node {}",
                        preemptor.pod.metadata.uid.as_deref().unwrap_or(""),
                        node
                    );
                    emit(pod_event(
                        &v,
                        "Normal",
                        "Preempted",
                        "Preempting",
                        msg,
                        &identity,
                    ));
                    tokio::spawn(async move {
                        let dp = DeleteParams {
                            preconditions: Some(Preconditions {
                                uid: v.pod.metadata.uid.clone(),
                                resource_version: None,
                            }),
                            ..Default::default()
                        };
                        if let Err(e) = api.delete(&v.name, &dp).await {
                            tracing::info!(pod = %v.name, error = %e, "deleting preemption victim");
                        }
                    });
                }
            }
        }
    }
    ev_writer.abort();
}

/// Patches PodScheduled=False (reason, message) and nominatedNodeName unless already set so.
async fn write_condition(
    client: &kube::Client,
    writes: &Arc<Semaphore>,
    info: Arc<PodInfo>,
    reason: &'static str,
    message: String,
    nominated: Option<String>,
) {
    let current = info
        .pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .cloned();
    let same = current.as_ref().is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason)
            && c.message.as_deref() == Some(&message)
    });
    let cur_nominated = info
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.clone());
    if same && (nominated.is_none() || nominated == cur_nominated) {
        return;
    }
    let Ok(permit) = writes.clone().acquire_owned().await else {
        return;
    };
    let api = pod_api(client, &info);
    tokio::spawn(async move {
        let transition = match current {
            Some(c) if c.status == "False" => c.last_transition_time.clone(),
            _ => None,
        }
        .unwrap_or(Time(Timestamp::now()));
        let mut status = json!({"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
            "lastProbeTime": null, "lastTransitionTime": transition,
        }]});
        if let Some(n) = nominated {
            status["nominatedNodeName"] = json!(n);
        }
        let patch = json!({"status": status});
        if let Err(e) = api
            .patch_status(
                &info.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            tracing::debug!(pod = %info.name, error = %e, "updating pod condition");
        }
        drop(permit);
    });
}
