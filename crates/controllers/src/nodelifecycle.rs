//! The node lifecycle controller (upstream's node-lifecycle-controller with its
//! taint-eviction-controller): watches node heartbeats (the Ready condition's
//! lastHeartbeatTime and the node's Lease in kube-node-lease), turns the conditions of a node
//! that stopped reporting to Unknown (NodeStatusUnknown), keeps the condition taints
//! (not-ready, unreachable, unschedulable, pressure; NoSchedule and NoExecute) in step, marks
//! the pods of a node that stopped being Ready not ready, and evicts pods that do not tolerate
//! a node's NoExecute taints once their tolerationSeconds run out. The decisions are pure
//! functions below; the kube-rs edge is [`NodeLifecycleController`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use crate::informer::Informer;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";
pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The conditions the controller turns Unknown when the kubelet stops reporting.
const MONITORED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Configuration (upstream kube-controller-manager flags and their defaults).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--node-monitor-period`: how often node health is checked (5 s).
    pub monitor_period: Duration,
    /// `--node-monitor-grace-period`: a node silent this long is Unknown (40 s).
    pub grace_period: Duration,
    /// `--node-startup-grace-period`: the grace of a node that never reported (60 s).
    pub startup_grace_period: Duration,
    /// `--node-eviction-rate`: NoExecute taintings per second in a healthy zone (0.1).
    pub eviction_rate: f64,
    /// `--secondary-node-eviction-rate`: the rate in a partially disrupted large zone (0.01).
    pub secondary_eviction_rate: f64,
    /// `--large-cluster-size-threshold`: zones up to this size stop evicting when partially
    /// disrupted (50).
    pub large_cluster_threshold: usize,
    /// `--unhealthy-zone-threshold`: the not-ready fraction that makes a zone partially
    /// disrupted (0.55, with more than two nodes not ready).
    pub unhealthy_zone_threshold: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(40),
            startup_grace_period: Duration::from_secs(60),
            eviction_rate: 0.1,
            secondary_eviction_rate: 0.01,
            large_cluster_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure decisions

/// Whether a toleration tolerates a taint (upstream `Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// What happens to a pod on a node with NoExecute taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Every taint is tolerated without a time limit.
    Never,
    /// Some taint is not tolerated at all.
    Now,
    /// Every taint is tolerated; the shortest tolerationSeconds among the tolerations used.
    After(Duration),
}

/// Upstream's taint manager decision for one pod and the node's NoExecute taints.
pub fn eviction(tolerations: &[Toleration], taints: &[Taint]) -> Eviction {
    let taints: Vec<&Taint> = taints.iter().filter(|t| t.effect == NO_EXECUTE).collect();
    if taints.is_empty() {
        return Eviction::Never;
    }
    let mut used: Vec<&Toleration> = Vec::new();
    for taint in &taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        used.extend(matching);
    }
    // the shortest time limit among the used tolerations; none limited means forever
    let min = used.iter().filter_map(|t| t.toleration_seconds).min();
    match min {
        None => Eviction::Never,
        Some(s) if s <= 0 => Eviction::Now,
        Some(s) => Eviction::After(Duration::from_secs(s as u64)),
    }
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }
}

/// The NoSchedule taints a node's conditions and spec.unschedulable call for (upstream's
/// TaintNodesByCondition).
pub fn condition_taints(node: &Node) -> Vec<Taint> {
    let mut out = Vec::new();
    match ready_status(node) {
        Some("False") => out.push(taint(TAINT_NOT_READY, NO_SCHEDULE)),
        Some("Unknown") => out.push(taint(TAINT_UNREACHABLE, NO_SCHEDULE)),
        _ => {}
    }
    for (cond, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if condition(node, cond).is_some_and(|c| c.status == "True") {
            out.push(taint(key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push(taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// The NoExecute taint a node's Ready condition calls for (not-ready when False, unreachable
/// when Unknown or missing after the startup grace).
pub fn ready_taint(node: &Node) -> Option<&'static str> {
    match ready_status(node) {
        Some("False") => Some(TAINT_NOT_READY),
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => None,
    }
}

/// Keys of the taints the controller owns (it never touches others).
fn managed(t: &Taint) -> bool {
    matches!(
        (t.key.as_str(), t.effect.as_str()),
        (TAINT_NOT_READY, NO_SCHEDULE | NO_EXECUTE)
            | (TAINT_UNREACHABLE, NO_SCHEDULE | NO_EXECUTE)
            | (TAINT_UNSCHEDULABLE, NO_SCHEDULE)
            | (TAINT_MEMORY_PRESSURE, NO_SCHEDULE)
            | (TAINT_DISK_PRESSURE, NO_SCHEDULE)
            | (TAINT_PID_PRESSURE, NO_SCHEDULE)
            | (TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE)
    )
}

/// The node's taints with the managed ones replaced by `wanted` (keeping timeAdded of the
/// taints that stay); None when nothing changes.
pub fn reconcile_taints(current: &[Taint], wanted: &[Taint], now: Timestamp) -> Option<Vec<Taint>> {
    let same = |a: &Taint, b: &Taint| a.key == b.key && a.effect == b.effect;
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || wanted.iter().any(|w| same(w, t)))
        .cloned()
        .collect();
    for w in wanted {
        if !out.iter().any(|t| same(t, w)) {
            let mut t = w.clone();
            if t.effect == NO_EXECUTE {
                t.time_added = Some(Time(now));
            }
            out.push(t);
        }
    }
    let changed = out.len() != current.len() || out.iter().zip(current).any(|(a, b)| a != b);
    changed.then_some(out)
}

/// The conditions of a node whose kubelet stopped reporting: each monitored condition not
/// already Unknown becomes Unknown (NodeStatusUnknown), missing ones are added
/// (NodeStatusNeverUpdated). None when they already are.
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in MONITORED_CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conds.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conds)
}

/// The health state of a zone (upstream's ComputeZoneState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

pub fn zone_state(ready: usize, not_ready: usize, unhealthy_threshold: f64) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / (ready + not_ready) as f64 >= unhealthy_threshold
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// A node's zone key: region and zone labels (empty for unlabelled nodes).
pub fn zone_of(node: &Node) -> String {
    let l = node.labels();
    let region = l
        .get("topology.kubernetes.io/region")
        .map(String::as_str)
        .unwrap_or("");
    let zone = l
        .get("topology.kubernetes.io/zone")
        .map(String::as_str)
        .unwrap_or("");
    format!("{region}:\x00:{zone}")
}

/// Each zone's state and size (upstream's per-zone ready/not-ready count).
pub fn zones(nodes: &[Node], unhealthy_threshold: f64) -> BTreeMap<String, (ZoneState, usize)> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for node in nodes {
        let z = counts.entry(zone_of(node)).or_default();
        if ready_status(node) == Some("True") {
            z.0 += 1;
        } else {
            z.1 += 1;
        }
    }
    counts
        .into_iter()
        .map(|(z, (r, nr))| (z, (zone_state(r, nr, unhealthy_threshold), r + nr)))
        .collect()
}

/// Every zone fully disrupted: the controller assumes its own connectivity is at fault and
/// evicts nothing (upstream).
pub fn all_fully_disrupted(zones: &BTreeMap<String, (ZoneState, usize)>) -> bool {
    !zones.is_empty() && zones.values().all(|(s, _)| *s == ZoneState::FullDisruption)
}

/// The NoExecute tainting rate of a zone.
pub fn eviction_rate(state: ZoneState, size: usize, config: &Config) -> f64 {
    match state {
        ZoneState::Normal | ZoneState::FullDisruption => config.eviction_rate,
        ZoneState::PartialDisruption if size > config.large_cluster_threshold => {
            config.secondary_eviction_rate
        }
        ZoneState::PartialDisruption => 0.0,
    }
}

/// The managed taints a node should carry: the condition taints, plus the Ready NoExecute
/// taint unless every zone is fully disrupted; a node already tainted NoExecute swaps
/// not-ready/unreachable at once (upstream's SwapNodeControllerTaint), a new tainting needs a
/// rate-limiter token (`take_token`).
pub fn wanted_taints(
    node: &Node,
    all_disrupted: bool,
    take_token: impl FnOnce() -> bool,
) -> Vec<Taint> {
    let mut wanted = condition_taints(node);
    if let Some(key) = ready_taint(node) {
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    t.effect == NO_EXECUTE
                        && (t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)
                })
            });
        if !all_disrupted && (tainted || take_token()) {
            wanted.push(taint(key, NO_EXECUTE));
        }
    }
    wanted
}

/// A token bucket (burst 1) limiting NoExecute taintings per zone.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Option<std::time::Instant>,
}

impl RateLimiter {
    pub fn new(rate: f64) -> RateLimiter {
        RateLimiter {
            rate,
            tokens: 1.0,
            last: None,
        }
    }

    pub fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
    }

    /// Take a token if one is available at `now`.
    pub fn try_take(&mut self, now: std::time::Instant) -> bool {
        if let Some(last) = self.last {
            self.tokens =
                (self.tokens + now.duration_since(last).as_secs_f64() * self.rate).min(1.0);
        }
        self.last = Some(now);
        if self.rate > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Observed heartbeats of one node, on the controller's own clock (as upstream, so that
/// clock skew between nodes and controller does not matter).
#[derive(Clone, Debug)]
struct Health {
    probe: std::time::Instant,
    heartbeat: Option<Timestamp>,
    lease_renew: Option<Timestamp>,
    /// The Ready status seen at the previous check (to notice the transition away from True).
    last_ready: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The kube-rs edge

pub struct NodeLifecycleController {
    client: Client,
    config: Config,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    leases: Arc<Informer<Lease>>,
    health: Mutex<HashMap<String, Health>>,
    limiters: Mutex<HashMap<String, RateLimiter>>,
    recorder: crate::events::Recorder,
    /// Pods whose eviction was already requested (namespace/name -> uid).
    evicted: Mutex<HashMap<String, String>>,
    /// When this controller first saw each NoExecute taint of a node (node -> key -> time);
    /// tolerationSeconds count from there, on the controller's clock as upstream.
    taints_seen: Mutex<HashMap<String, HashMap<String, Timestamp>>>,
}

impl NodeLifecycleController {
    pub fn new(
        client: Client,
        config: Config,
        nodes: Arc<Informer<Node>>,
        pods: Arc<Informer<Pod>>,
        leases: Arc<Informer<Lease>>,
        identity: &str,
    ) -> Arc<Self> {
        Arc::new(NodeLifecycleController {
            recorder: crate::events::Recorder::new(client.clone(), "node-controller", identity),
            client,
            config,
            nodes,
            pods,
            leases,
            health: Default::default(),
            limiters: Default::default(),
            evicted: Default::default(),
            taints_seen: Default::default(),
        })
    }

    /// Monitor node health every monitor period and evict pods every second, until dropped.
    pub async fn run(self: Arc<Self>) {
        let mut monitor = tokio::time::interval(self.config.monitor_period);
        monitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut evict =
            tokio::time::interval(Duration::from_secs(1).min(self.config.monitor_period));
        evict.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = monitor.tick() => {
                    if let Err(e) = self.monitor_nodes().await {
                        tracing::debug!(error = %format!("{e:#}"), "node health pass failed");
                    }
                }
                _ = evict.tick() => {
                    if let Err(e) = self.evict_pods().await {
                        tracing::debug!(error = %format!("{e:#}"), "taint eviction pass failed");
                    }
                }
            }
        }
    }

    fn lease_renew(&self, node: &str) -> Option<Timestamp> {
        crate::informer::get(&self.leases.store, LEASE_NAMESPACE, node)
            .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0))
    }

    /// Whether the node stopped reporting: its heartbeat and lease were last seen changing
    /// more than the grace period ago.
    fn is_silent(&self, node: &Node, now: std::time::Instant) -> bool {
        let name = node.name_any();
        let heartbeat =
            condition(node, "Ready").and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
        let lease = self.lease_renew(&name);
        let mut h = self.health.lock().unwrap();
        let e = h.entry(name).or_insert_with(|| Health {
            probe: now,
            heartbeat,
            lease_renew: lease,
            last_ready: ready_status(node).map(String::from),
        });
        if e.heartbeat != heartbeat || e.lease_renew != lease {
            e.heartbeat = heartbeat;
            e.lease_renew = lease;
            e.probe = now;
        }
        let grace = if condition(node, "Ready").is_none() {
            self.config.startup_grace_period
        } else {
            self.config.grace_period
        };
        now.duration_since(e.probe) > grace
    }

    async fn monitor_nodes(&self) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let now = std::time::Instant::now();
        let ts = Timestamp::now();
        let nodes = self.nodes.store.state();
        let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        self.health.lock().unwrap().retain(|n, _| names.contains(n));
        // 1. heartbeats: silent nodes' conditions become Unknown
        let mut current: Vec<Node> = Vec::new();
        for n in nodes {
            let mut node = (*n).clone();
            if self.is_silent(&node, now) {
                if let Some(conds) = unknown_conditions(&node, ts) {
                    node.status.get_or_insert_with(Default::default).conditions = Some(conds);
                    match api
                        .replace_status(&node.name_any(), &PostParams::default(), &node)
                        .await
                    {
                        Ok(updated) => {
                            tracing::info!(node = %node.name_any(), "node stopped posting status; conditions set to Unknown");
                            node = updated;
                        }
                        Err(e) => {
                            tracing::debug!(node = %node.name_any(), error = %e, "updating node conditions failed");
                            continue;
                        }
                    }
                }
            }
            current.push(node);
        }
        // 2. Ready transitions: pods of a node that stopped being Ready are not ready
        for node in &current {
            let name = node.name_any();
            let status = ready_status(node).map(String::from);
            let was = {
                let mut h = self.health.lock().unwrap();
                let e = h.get_mut(&name);
                match e {
                    Some(e) => std::mem::replace(&mut e.last_ready, status.clone()),
                    None => None,
                }
            };
            if was.as_deref() == Some("True") && status.as_deref() != Some("True") {
                self.recorder.normal(
                    node,
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
                self.mark_pods_not_ready(&name).await;
            }
        }
        // 3. zones and taints
        let zones = zones(&current, self.config.unhealthy_zone_threshold);
        let all_disrupted = all_fully_disrupted(&zones);
        {
            let mut limiters = self.limiters.lock().unwrap();
            for (z, (state, size)) in &zones {
                let rate = eviction_rate(*state, *size, &self.config);
                limiters
                    .entry(z.clone())
                    .or_insert_with(|| RateLimiter::new(rate))
                    .set_rate(rate);
            }
        }
        for node in &current {
            let existing = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            let wanted = wanted_taints(node, all_disrupted, || {
                self.limiters
                    .lock()
                    .unwrap()
                    .get_mut(&zone_of(node))
                    .is_some_and(|l| l.try_take(now))
            });
            if let Some(taints) = reconcile_taints(&existing, &wanted, ts) {
                let mut updated = node.clone();
                updated.spec.get_or_insert_with(Default::default).taints =
                    (!taints.is_empty()).then_some(taints);
                if let Err(e) = api
                    .replace(&node.name_any(), &PostParams::default(), &updated)
                    .await
                {
                    tracing::debug!(node = %node.name_any(), error = %e, "updating node taints failed");
                }
            }
        }
        Ok(())
    }

    /// Set the Ready condition of every pod on the node to False (upstream MarkPodsNotReady).
    async fn mark_pods_not_ready(&self, node: &str) {
        for pod in self.pods.store.state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
                continue;
            }
            let mut p = (*pod).clone();
            let Some(conds) = p.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
                continue;
            };
            let Some(c) = conds.iter_mut().find(|c| c.type_ == "Ready") else {
                continue;
            };
            if c.status == "False" {
                continue;
            }
            c.status = "False".into();
            c.last_transition_time = Some(Time(Timestamp::now()));
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &p.namespace().unwrap_or_default());
            match api
                .replace_status(&p.name_any(), &PostParams::default(), &p)
                .await
            {
                Ok(_) => self
                    .recorder
                    .warning(&p, "NodeNotReady", "Node is not ready".into()),
                Err(e) => {
                    tracing::debug!(pod = %p.name_any(), error = %e, "marking pod not ready failed")
                }
            }
        }
    }

    /// The taint manager: delete pods that do not tolerate their node's NoExecute taints, or
    /// whose tolerationSeconds ran out (counted from when the taint was added).
    async fn evict_pods(&self) -> anyhow::Result<()> {
        let now = Timestamp::now();
        let mut taints_by_node: HashMap<String, Vec<Taint>> = HashMap::new();
        for n in self.nodes.store.state() {
            let ts: Vec<Taint> = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t.effect == NO_EXECUTE)
                .collect();
            if !ts.is_empty() {
                taints_by_node.insert(n.name_any(), ts);
            }
        }
        let live: HashSet<String> = self
            .pods
            .store
            .state()
            .iter()
            .map(|p| crate::informer::key_of(&**p))
            .collect();
        self.evicted.lock().unwrap().retain(|k, _| live.contains(k));
        // tolerationSeconds count from when each taint was first seen
        let since_by_node: HashMap<String, Timestamp> = {
            let mut seen = self.taints_seen.lock().unwrap();
            seen.retain(|n, _| taints_by_node.contains_key(n));
            taints_by_node
                .iter()
                .map(|(node, taints)| {
                    let e = seen.entry(node.clone()).or_default();
                    e.retain(|k, _| taints.iter().any(|t| &t.key == k));
                    let latest = taints
                        .iter()
                        .map(|t| *e.entry(t.key.clone()).or_insert(now))
                        .max()
                        .unwrap_or(now);
                    (node.clone(), latest)
                })
                .collect()
        };
        if taints_by_node.is_empty() {
            return Ok(());
        }
        for pod in self.pods.store.state() {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
                continue;
            };
            let Some(taints) = taints_by_node.get(node) else {
                continue;
            };
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let due = match eviction(&tolerations, taints) {
                Eviction::Never => false,
                Eviction::Now => true,
                Eviction::After(d) => {
                    // counted from when the latest of the node's NoExecute taints appeared
                    let since = since_by_node.get(node).copied().unwrap_or(now);
                    let d = k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or_default();
                    since.checked_add(d).is_ok_and(|due| due <= now)
                }
            };
            if !due {
                continue;
            }
            let key = crate::informer::key_of(&*pod);
            let uid = pod.uid().unwrap_or_default();
            if self.evicted.lock().unwrap().get(&key) == Some(&uid) {
                continue;
            }
            if self.evict(&pod).await {
                self.evicted.lock().unwrap().insert(key, uid);
            }
        }
        Ok(())
    }

    /// Delete one pod; true when it is gone or going.
    async fn evict(&self, pod: &Pod) -> bool {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        self.recorder.normal(
            pod,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        );
        // the DisruptionTarget condition says why the pod goes (upstream since 1.26)
        let mut p = pod.clone();
        let status = p.status.get_or_insert_with(Default::default);
        let conds = status.conditions.get_or_insert_with(Vec::new);
        conds.retain(|c| c.type_ != "DisruptionTarget");
        conds.push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("DeletionByTaintManager".into()),
            message: Some("Taint manager: deleting due to NoExecute taint".into()),
            last_transition_time: Some(Time(Timestamp::now())),
            ..Default::default()
        });
        if let Err(e) = api.replace_status(&name, &PostParams::default(), &p).await {
            tracing::debug!(pod = %name, error = %e, "setting DisruptionTarget failed");
        }
        let dp = DeleteParams {
            preconditions: pod.uid().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), "evicted pod from tainted node");
                true
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => true,
            Err(e) => {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "taint eviction failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};

    fn tol(key: &str, op: &str, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.to_string()),
            operator: Some(op.into()),
            effect: (!effect.is_empty()).then(|| effect.to_string()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn toleration_matching() {
        let t = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: NO_EXECUTE.into(),
            time_added: None,
        };
        let cases = [
            (tol("k", "Exists", "", None), true),
            (tol("", "Exists", "", None), true),
            (tol("k", "Exists", NO_SCHEDULE, None), false),
            (tol("other", "Exists", NO_EXECUTE, None), false),
            (
                Toleration {
                    key: Some("k".into()),
                    operator: Some("Equal".into()),
                    value: Some("v".into()),
                    ..Default::default()
                },
                true,
            ),
            (
                Toleration {
                    key: Some("k".into()),
                    value: Some("w".into()),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (tl, want) in cases {
            assert_eq!(tolerates(&tl, &t), want, "{tl:?}");
        }
    }

    #[test]
    fn eviction_decisions() {
        let unreachable = vec![taint(TAINT_UNREACHABLE, NO_EXECUTE)];
        let both = vec![
            taint(TAINT_UNREACHABLE, NO_EXECUTE),
            taint(TAINT_NOT_READY, NO_EXECUTE),
        ];
        let cases: Vec<(Vec<Toleration>, Vec<Taint>, Eviction)> = vec![
            (vec![], vec![], Eviction::Never),
            (
                vec![],
                vec![taint(TAINT_UNREACHABLE, NO_SCHEDULE)],
                Eviction::Never,
            ),
            (vec![], unreachable.clone(), Eviction::Now),
            (
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, Some(5))],
                unreachable.clone(),
                Eviction::After(Duration::from_secs(5)),
            ),
            (
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, None)],
                unreachable.clone(),
                Eviction::Never,
            ),
            // one of two taints not tolerated
            (
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, Some(300))],
                both.clone(),
                Eviction::Now,
            ),
            // the shortest limit wins
            (
                vec![
                    tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, Some(300)),
                    tol(TAINT_NOT_READY, "Exists", NO_EXECUTE, Some(30)),
                ],
                both.clone(),
                Eviction::After(Duration::from_secs(30)),
            ),
            (
                vec![tol(TAINT_UNREACHABLE, "Exists", NO_EXECUTE, Some(0))],
                unreachable,
                Eviction::Now,
            ),
        ];
        for (tols, taints, want) in cases {
            assert_eq!(eviction(&tols, &taints), want, "{tols:?} {taints:?}");
        }
    }

    fn node(ready: Option<&str>, unschedulable: bool) -> Node {
        Node {
            metadata: Default::default(),
            spec: Some(NodeSpec {
                unschedulable: unschedulable.then_some(true),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: ready.map(|s| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: s.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn taints_follow_conditions() {
        let keys = |n: &Node| -> Vec<(String, String)> {
            let mut v: Vec<_> = condition_taints(n)
                .into_iter()
                .map(|t| (t.key, t.effect))
                .collect();
            if let Some(k) = ready_taint(n) {
                v.push((k.into(), NO_EXECUTE.into()));
            }
            v
        };
        let s = |k: &str, e: &str| (k.to_string(), e.to_string());
        assert_eq!(keys(&node(Some("True"), false)), vec![]);
        assert_eq!(
            keys(&node(Some("False"), false)),
            vec![
                s(TAINT_NOT_READY, NO_SCHEDULE),
                s(TAINT_NOT_READY, NO_EXECUTE)
            ]
        );
        assert_eq!(
            keys(&node(Some("Unknown"), true)),
            vec![
                s(TAINT_UNREACHABLE, NO_SCHEDULE),
                s(TAINT_UNSCHEDULABLE, NO_SCHEDULE),
                s(TAINT_UNREACHABLE, NO_EXECUTE)
            ]
        );
        let mut pressure = node(Some("True"), false);
        pressure
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(NodeCondition {
                type_: "DiskPressure".into(),
                status: "True".into(),
                ..Default::default()
            });
        assert_eq!(keys(&pressure), vec![s(TAINT_DISK_PRESSURE, NO_SCHEDULE)]);
    }

    #[test]
    fn reconcile_keeps_foreign_taints_and_time_added() {
        let now = Timestamp::from_second(1000).unwrap();
        let earlier = Timestamp::from_second(10).unwrap();
        let foreign = Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: NO_SCHEDULE.into(),
            time_added: None,
        };
        let mut unreach = taint(TAINT_UNREACHABLE, NO_EXECUTE);
        unreach.time_added = Some(Time(earlier));
        let current = vec![foreign.clone(), unreach.clone()];
        // nothing changes when the wanted set is there
        assert_eq!(
            reconcile_taints(&current, &[taint(TAINT_UNREACHABLE, NO_EXECUTE)], now),
            None
        );
        // node recovered: the managed taint goes, the foreign one stays
        assert_eq!(
            reconcile_taints(&current, &[], now),
            Some(vec![foreign.clone()])
        );
        // a new NoExecute taint gets timeAdded now
        let got = reconcile_taints(
            std::slice::from_ref(&foreign),
            &[taint(TAINT_NOT_READY, NO_EXECUTE)],
            now,
        )
        .unwrap();
        assert_eq!(got[1].key, TAINT_NOT_READY);
        assert_eq!(got[1].time_added, Some(Time(now)));
    }

    #[test]
    fn silent_node_conditions_become_unknown() {
        let now = Timestamp::from_second(5000).unwrap();
        let n = node(Some("True"), false);
        let conds = unknown_conditions(&n, now).unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        let mem = conds.iter().find(|c| c.type_ == "MemoryPressure").unwrap();
        assert_eq!(mem.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(conds.len(), 4);
        let mut again = n.clone();
        again.status.as_mut().unwrap().conditions = Some(conds);
        assert_eq!(unknown_conditions(&again, now), None);
    }

    #[test]
    fn no_execute_tainting_respects_disruption_and_rate() {
        let keys = |ts: Vec<Taint>| -> Vec<String> {
            ts.into_iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        };
        let dead = node(Some("Unknown"), false);
        let alive = node(Some("True"), false);
        // one of two nodes dead: a normal zone, the tainting takes a token
        let z = zones(&[dead.clone(), alive.clone()], 0.55);
        assert!(!all_fully_disrupted(&z));
        assert_eq!(
            keys(wanted_taints(&dead, false, || true)),
            vec![
                format!("{TAINT_UNREACHABLE}:{NO_SCHEDULE}"),
                format!("{TAINT_UNREACHABLE}:{NO_EXECUTE}")
            ]
        );
        // no token left: only the NoSchedule taint for now
        assert_eq!(
            keys(wanted_taints(&dead, false, || false)),
            vec![format!("{TAINT_UNREACHABLE}:{NO_SCHEDULE}")]
        );
        // the only node dead: full disruption everywhere, nothing is evicted
        let z = zones(std::slice::from_ref(&dead), 0.55);
        assert!(all_fully_disrupted(&z));
        assert_eq!(
            keys(wanted_taints(&dead, true, || panic!("no token needed"))),
            vec![format!("{TAINT_UNREACHABLE}:{NO_SCHEDULE}")]
        );
        // already tainted unreachable, now reporting NotReady: swapped without a token
        let mut swapped = node(Some("False"), false);
        swapped.spec.as_mut().unwrap().taints = Some(vec![taint(TAINT_UNREACHABLE, NO_EXECUTE)]);
        assert_eq!(
            keys(wanted_taints(&swapped, false, || false)),
            vec![
                format!("{TAINT_NOT_READY}:{NO_SCHEDULE}"),
                format!("{TAINT_NOT_READY}:{NO_EXECUTE}")
            ]
        );
        // rates per zone state
        let cfg = Config::default();
        assert_eq!(eviction_rate(ZoneState::Normal, 3, &cfg), 0.1);
        assert_eq!(eviction_rate(ZoneState::PartialDisruption, 10, &cfg), 0.0);
        assert_eq!(eviction_rate(ZoneState::PartialDisruption, 100, &cfg), 0.01);
    }

    #[test]
    fn zone_states() {
        assert_eq!(zone_state(3, 0, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(1, 1, 0.55), ZoneState::Normal);
        assert_eq!(zone_state(0, 1, 0.55), ZoneState::FullDisruption);
        assert_eq!(zone_state(2, 3, 0.55), ZoneState::PartialDisruption);
        assert_eq!(zone_state(10, 3, 0.55), ZoneState::Normal);
    }

    #[test]
    fn rate_limiter_allows_a_burst_of_one() {
        let t0 = std::time::Instant::now();
        let mut l = RateLimiter::new(0.1);
        assert!(l.try_take(t0));
        assert!(!l.try_take(t0 + Duration::from_secs(5)));
        assert!(l.try_take(t0 + Duration::from_secs(11)));
        l.set_rate(0.0);
        assert!(!l.try_take(t0 + Duration::from_secs(100)));
    }
}
