//! The DaemonSet controller (upstream's pkg/controller/daemon): one pod per eligible node
//! (nodeSelector, required node affinity, taints against the pod's tolerations plus those the
//! controller adds), each pinned to its node by a `metadata.name` node-affinity term for the
//! scheduler to bind; RollingUpdate (maxUnavailable, maxSurge) or OnDelete through
//! ControllerRevisions; status counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::history::{self, REVISION_HASH_LABEL};
use crate::informer::{self, key_of, Change, Informer};
use crate::podutil;
use crate::queue::Queue;
use crate::replicaset::{adopt, release};

/// The deprecated label carrying the DaemonSet generation a pod was made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

// ---- pure helpers ----

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Add the tolerations every daemon pod gets (upstream's AddOrUpdateDaemonPodTolerations).
pub fn add_daemon_tolerations(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    let mut add = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        add.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let ts = spec.tolerations.get_or_insert_with(Vec::new);
    for t in add {
        ts.retain(|x| !(x.key == t.key && x.effect == t.effect));
        ts.push(t);
    }
}

/// Whether a toleration tolerates a taint (core/v1 ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(x)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|x| x.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > x
            } else {
                v < x
            }
        }
        _ => false,
    }
}

/// Whether a node selector (terms ORed, requirements ANDed) matches the node.
pub fn node_selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.clone().unwrap_or_default();
    sel.node_selector_terms.iter().any(|t| {
        let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
        let fields = t.match_fields.as_deref().unwrap_or(&[]);
        if exprs.is_empty() && fields.is_empty() {
            return false;
        }
        exprs
            .iter()
            .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
            && fields
                .iter()
                .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(name.as_str())))
    })
}

/// (should run, should continue running) for a daemon pod template on a node, as upstream's
/// NodeShouldRunDaemonPod: node name, nodeSelector, required node affinity and taints
/// (NoSchedule blocks new pods; NoExecute also evicts running ones).
pub fn should_run(template: &PodTemplateSpec, node: &Node) -> (bool, bool) {
    let mut spec = template.spec.clone().unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    let name = node.metadata.name.as_deref().unwrap_or("");
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return (false, false);
        }
    }
    if let Some(req) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    {
        if !node_selector_matches(req, node) {
            return (false, false);
        }
    }
    let tols = spec.tolerations.unwrap_or_default();
    let mut run = true;
    for taint in node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
    {
        if taint.effect == "PreferNoSchedule" || tols.iter().any(|t| tolerates(t, &taint)) {
            continue;
        }
        if taint.effect == "NoExecute" {
            return (false, false);
        }
        run = false;
    }
    (run, true)
}

/// Pin a pod to a node: the required node affinity becomes a single `metadata.name` term
/// (upstream's ReplaceDaemonSetPodNodeNameNodeAffinity).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let sel = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    };
    let mut a = affinity.unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(sel);
    a
}

/// The node a daemon pod is for: its nodeName, else its `metadata.name` affinity term.
pub fn target_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|f| {
            (f.key == "metadata.name" && f.operator == "In")
                .then(|| f.values.as_ref()?.first().cloned())
                .flatten()
        })
    })
}

/// Resolve an int-or-percent against the desired count (rounding up for surge, down for
/// unavailability, as upstream).
pub fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool, default: i32) -> i32 {
    match v {
        None => default,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let n = pct * total as i64;
            (if round_up { (n + 99) / 100 } else { n / 100 }) as i32
        }
    }
}

/// What happens on one node during a rolling update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeView {
    /// an old pod exists (and whether it is available)
    pub old: Option<bool>,
    /// an updated pod exists (and whether it is available)
    pub new: Option<bool>,
}

/// Rolling update plan over the nodes that should run the daemon: which nodes' old pods to
/// delete, and on which nodes to surge a new pod next to the old one.
pub fn rolling_plan(
    nodes: &[NodeView],
    max_unavailable: i32,
    max_surge: i32,
) -> (Vec<usize>, Vec<usize>) {
    let mut delete = vec![];
    let mut surge = vec![];
    if max_surge > 0 {
        let mut in_flight = nodes
            .iter()
            .filter(|n| n.old.is_some() && n.new.is_some())
            .count() as i32;
        for (i, n) in nodes.iter().enumerate() {
            match (n.old, n.new) {
                (Some(_), Some(true)) => delete.push(i),
                (Some(false), None) => delete.push(i),
                (Some(true), None) if in_flight < max_surge => {
                    surge.push(i);
                    in_flight += 1;
                }
                _ => {}
            }
        }
        return (delete, surge);
    }
    let unavailable = nodes
        .iter()
        .filter(|n| !(n.old == Some(true) || n.new == Some(true)))
        .count() as i32;
    let mut budget = max_unavailable - unavailable;
    // unavailable old pods go first, for free
    for (i, n) in nodes.iter().enumerate() {
        if n.old == Some(false) && n.new.is_none() {
            delete.push(i);
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        if budget <= 0 {
            break;
        }
        if n.old == Some(true) && n.new.is_none() {
            delete.push(i);
            budget -= 1;
        }
    }
    (delete, surge)
}

// ---- the controller ----

pub struct DaemonSetController {
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    sets: Arc<Informer<DaemonSet>>,
    revisions: Arc<Informer<ControllerRevision>>,
    queue: Queue,
    recorder: Recorder,
    expectations: Expectations,
    /// failed-pod backoff per `<daemonset key>#<node>`: (delay, last update)
    failed_backoff: Mutex<HashMap<String, (Duration, Instant)>>,
}

/// Upstream's failedPodsBackoff: 1 s doubling up to 15 min.
const FAILED_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(900);

impl DaemonSetController {
    pub fn new(
        client: Client,
        pods: Arc<Informer<Pod>>,
        nodes: Arc<Informer<Node>>,
        sets: Arc<Informer<DaemonSet>>,
        revisions: Arc<Informer<ControllerRevision>>,
        identity: &str,
    ) -> Arc<Self> {
        let c = Arc::new(DaemonSetController {
            recorder: Recorder::new(client.clone(), "daemonset-controller", identity),
            client,
            pods,
            nodes,
            sets,
            revisions,
            queue: Queue::new(),
            expectations: Expectations::default(),
            failed_backoff: Default::default(),
        });
        let q = c.queue.clone();
        c.sets.on_change(move |ch| match ch {
            Change::Added(o) | Change::Updated { new: o, .. } | Change::Deleted(o) => {
                q.add(key_of(o))
            }
        });
        let weak = Arc::downgrade(&c);
        c.nodes.on_change(move |ch| {
            let Some(c) = weak.upgrade() else { return };
            let relevant = match ch {
                Change::Updated { old, new } => {
                    old.metadata.labels != new.metadata.labels
                        || old.spec.as_ref().map(|s| &s.taints)
                            != new.spec.as_ref().map(|s| &s.taints)
                }
                _ => true,
            };
            if relevant {
                for s in c.sets.store.state() {
                    c.queue.add(key_of(&*s));
                }
            }
        });
        let weak = Arc::downgrade(&c);
        c.pods.on_change(move |ch| {
            let Some(c) = weak.upgrade() else { return };
            let (p, created, gone) = match ch {
                Change::Added(p) => (
                    p,
                    p.metadata.deletion_timestamp.is_none(),
                    p.metadata.deletion_timestamp.is_some(),
                ),
                Change::Deleted(p) => (p, false, true),
                Change::Updated { old, new } => (
                    new,
                    false,
                    new.metadata.deletion_timestamp.is_some()
                        && old.metadata.deletion_timestamp.is_none(),
                ),
            };
            if let Some(r) = podutil::controller_ref(&p.metadata) {
                if r.kind == "DaemonSet" {
                    let k = format!(
                        "{}/{}",
                        p.metadata.namespace.as_deref().unwrap_or(""),
                        r.name
                    );
                    if created {
                        c.expectations.creation_observed(&k);
                    }
                    if gone {
                        c.expectations.deletion_observed(&k, &key_of(p));
                    }
                    c.queue.add(k);
                }
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let me = self.clone();
        let c = self.clone();
        crate::queue::run_workers_with_resync(
            "daemonset",
            self.queue.clone(),
            workers,
            move || me.sets.store.state().into_iter().map(|o| key_of(&*o)),
            move |key| {
                let c = c.clone();
                async move { c.sync(&key).await }
            },
        )
        .await;
    }

    /// None when a failed pod may be deleted now (the backoff advances), else how long to wait.
    fn failed_pod_backoff(&self, key: &str) -> Option<Duration> {
        let mut m = self.failed_backoff.lock().unwrap();
        let now = Instant::now();
        match m.get(key).copied() {
            Some((delay, at)) if now.duration_since(at) < delay => {
                Some(delay - now.duration_since(at))
            }
            Some((delay, at)) if now.duration_since(at) < 2 * FAILED_BACKOFF_MAX => {
                m.insert(key.into(), ((delay * 2).min(FAILED_BACKOFF_MAX), now));
                None
            }
            _ => {
                m.insert(key.into(), (FAILED_BACKOFF_INITIAL, now));
                None
            }
        }
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = informer::split_key(key);
        let Some(ds) = informer::get(&self.sets.store, ns, name) else {
            self.expectations.forget(key);
            self.failed_backoff
                .lock()
                .unwrap()
                .retain(|k, _| !k.starts_with(&format!("{key}#")));
            return Ok(());
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let spec = ds.spec.clone().unwrap_or_default();
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if podutil::selector_is_empty(Some(&spec.selector)) {
            return Ok(());
        }

        let mut owned: Vec<Arc<Pod>> = vec![];
        for p in self
            .pods
            .store
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        {
            let matches =
                podutil::selector_matches(Some(&spec.selector), p.metadata.labels.as_ref());
            match podutil::controller_ref(&p.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push(p);
                    } else {
                        let _ = release(&pod_api, &*p, &uid).await;
                    }
                }
                Some(_) => {}
                None if matches
                    && podutil::is_active(&p)
                    && ds.metadata.deletion_timestamp.is_none() =>
                {
                    let r = podutil::new_controller_ref("apps/v1", "DaemonSet", &ds.metadata);
                    if adopt(&pod_api, &*p, &r).await.is_ok() {
                        owned.push(p);
                    }
                }
                None => {}
            }
        }
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }

        let revs = history::owned_revisions(&self.revisions, &ds.metadata);
        let status = ds.status.clone().unwrap_or_default();
        let owner = history::Owner::new(
            "DaemonSet",
            &ds.metadata,
            &spec.template,
            None,
            status.collision_count,
            history::Style::DaemonSet(&spec.template),
        );
        let r = history::sync_revisions(
            &self.client,
            &owner,
            history::revision_data(&spec.template),
            revs.clone(),
        )
        .await?;
        let hash = r
            .update
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH_LABEL).cloned())
            .unwrap_or_else(|| {
                r.update
                    .name_any()
                    .strip_prefix(&format!("{name}-"))
                    .unwrap_or("")
                    .to_string()
            });
        let is_updated = |p: &Pod| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL))
                == Some(&hash)
        };
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let now = Timestamp::now();
        let available = |p: &Pod| podutil::is_available(p, min_ready, now);

        // pods per node
        let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in &owned {
            if let Some(n) = target_node(p) {
                by_node.entry(n).or_default().push(p.clone());
            }
        }
        for pods in by_node.values_mut() {
            pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        }
        let nodes = self.nodes.store.state();
        let surge_on = spec
            .update_strategy
            .as_ref()
            .is_some_and(|u| u.type_.as_deref() != Some("OnDelete"));
        let ru = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.rolling_update.clone())
            .unwrap_or_default();

        let mut create_on: Vec<String> = vec![];
        let mut delete: Vec<Arc<Pod>> = vec![];
        let mut st = DaemonSetStatus {
            observed_generation: ds.metadata.generation,
            collision_count: Some(r.collision_count),
            conditions: status.conditions.clone(),
            ..Default::default()
        };
        let mut views: Vec<(String, NodeView, Vec<Arc<Pod>>)> = vec![];
        for node in &nodes {
            let nname = node.name_any();
            let (run, cont) = should_run(&spec.template, node);
            let pods = by_node.remove(&nname).unwrap_or_default();
            let (active, finished): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) =
                pods.into_iter().partition(|p| {
                    !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Failed") | Some("Succeeded")
                    )
                });
            let live: Vec<Arc<Pod>> = active
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .cloned()
                .collect();
            if run {
                st.desired_number_scheduled += 1;
            }
            if !cont {
                delete.extend(live.iter().cloned());
                if !live.is_empty() || !active.is_empty() {
                    st.number_misscheduled += 1;
                }
                continue;
            }
            // failed daemon pods are replaced, with a backoff per node against hot loops
            for p in finished
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                let failed = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
                if failed {
                    match self.failed_pod_backoff(&format!("{key}#{nname}")) {
                        Some(wait) => {
                            self.queue.add_after(key, wait);
                            continue;
                        }
                        None => self.recorder.warning(
                            &*ds,
                            "FailedDaemonPod",
                            format!(
                                "Found failed daemon pod {ns}/{} on node {nname}, will try to kill it",
                                p.name_any()
                            ),
                        ),
                    }
                }
                delete.push(p.clone());
            }
            if !run {
                if !live.is_empty() {
                    st.number_misscheduled += 1;
                }
                continue;
            }
            if live.is_empty() {
                create_on.push(nname.clone());
            } else {
                st.current_number_scheduled += 1;
                let first = &live[0];
                if podutil::is_ready(first) {
                    st.number_ready += 1;
                }
                if available(first) {
                    st.number_available = Some(st.number_available.unwrap_or(0) + 1);
                }
                if live.iter().any(|p| is_updated(p)) {
                    st.updated_number_scheduled =
                        Some(st.updated_number_scheduled.unwrap_or(0) + 1);
                }
            }
            // at most one pod per node (one old and one new while surging)
            let (new, old): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) =
                live.iter().cloned().partition(|p| is_updated(p));
            let max_surge_set = surge_on && scaled(ru.max_surge.as_ref(), 1, true, 0) > 0;
            if max_surge_set {
                delete.extend(new.iter().skip(1).cloned());
                delete.extend(old.iter().skip(1).cloned());
            } else {
                delete.extend(live.iter().skip(1).cloned());
            }
            let view = NodeView {
                old: old.first().map(|p| available(p)),
                new: new.first().map(|p| available(p)),
            };
            if !max_surge_set && live.len() > 1 {
                continue;
            }
            views.push((nname, view, old));
        }
        // pods for nodes that no longer exist
        for (_, pods) in by_node {
            delete.extend(
                pods.into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none()),
            );
        }
        st.number_unavailable =
            Some((st.desired_number_scheduled - st.number_available.unwrap_or(0)).max(0));

        if surge_on {
            let desired = st.desired_number_scheduled;
            let max_surge = scaled(ru.max_surge.as_ref(), desired, true, 0);
            let max_unavailable = if max_surge > 0 {
                scaled(ru.max_unavailable.as_ref(), desired, false, 1)
            } else {
                scaled(ru.max_unavailable.as_ref(), desired, false, 1).max(1)
            };
            let nv: Vec<NodeView> = views.iter().map(|v| v.1).collect();
            let (del, surge) = rolling_plan(&nv, max_unavailable, max_surge);
            for i in del {
                delete.extend(views[i].2.iter().cloned());
            }
            for i in surge {
                create_on.push(views[i].0.clone());
            }
        }

        let mut first_err: Option<anyhow::Error> = None;
        let gen = ds.metadata.generation.unwrap_or(0);
        if !self.expectations.satisfied(key) {
            // earlier creations or deletions are not in the cache yet
            create_on.clear();
            delete.clear();
        }
        let mut seen = std::collections::HashSet::new();
        delete.retain(|p| seen.insert(p.metadata.uid.clone()));
        self.expectations
            .expect(key, create_on.len(), delete.iter().map(|p| key_of(&**p)));
        for node in &create_on {
            let pod = build_pod(&ds, &hash, gen, node);
            match pod_api.create(&PostParams::default(), &pod).await {
                Ok(p) => self.recorder.normal(
                    &*ds,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    self.expectations.creation_observed(key);
                    self.recorder
                        .warning(&*ds, "FailedCreate", format!("Error creating: {e}"));
                    first_err.get_or_insert(e.into());
                }
            }
        }
        for p in delete {
            match pod_api
                .delete(&p.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => self.recorder.normal(
                    &*ds,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", p.name_any()),
                ),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.expectations.deletion_observed(key, &key_of(&*p))
                }
                Err(e) => {
                    self.expectations.deletion_observed(key, &key_of(&*p));
                    self.recorder
                        .warning(&*ds, "FailedDelete", format!("Error deleting: {e}"));
                    first_err.get_or_insert(e.into());
                }
            }
        }

        // omitted when zero, as upstream's omitempty fields
        for f in [
            &mut st.number_available,
            &mut st.number_unavailable,
            &mut st.updated_number_scheduled,
        ] {
            if *f == Some(0) {
                *f = None;
            }
        }
        if Some(&st) != ds.status.as_ref() {
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
            let mut d = (*ds).clone();
            d.status = Some(st.clone());
            match api.replace_status(name, &PostParams::default(), &d).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if min_ready > 0 && st.number_ready != st.number_available.unwrap_or(0) {
            self.queue
                .add_after(key, Duration::from_secs(min_ready as u64));
        }
        let mut live: Vec<String> = owned
            .iter()
            .filter_map(|p| {
                let h = p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL)?;
                Some(format!("{name}-{h}"))
            })
            .collect();
        live.push(r.update.name_any());
        history::truncate(
            &self.client,
            ns,
            &revs,
            &live,
            spec.revision_history_limit.unwrap_or(10),
        )
        .await;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The daemon pod for `node`: template labels plus revision hash and generation, the daemon
/// tolerations, pinned to the node by node affinity.
pub fn build_pod(ds: &DaemonSet, hash: &str, generation: i64, node: &str) -> Pod {
    let spec = ds.spec.clone().unwrap_or_default();
    let tmeta = spec.template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.to_string());
    let mut pspec = spec.template.spec.clone().unwrap_or_default();
    add_daemon_tolerations(&mut pspec);
    pspec.affinity = Some(pin_to_node(pspec.affinity.take(), node));
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.name_any())),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![podutil::new_controller_ref(
                "apps/v1",
                "DaemonSet",
                &ds.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(pspec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints}
        }))
        .unwrap()
    }

    fn template(spec: serde_json::Value) -> PodTemplateSpec {
        let mut s = json!({"containers": [{"name": "c", "image": "i"}]});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(json!({"spec": s})).unwrap()
    }

    #[test]
    fn eligibility_table() {
        let plain = template(json!({}));
        let ssd = template(json!({"nodeSelector": {"disk": "ssd"}}));
        let affinity = template(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}}),
        );
        let tolerant = template(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        let cases = [
            (&plain, node("n", json!({}), json!([])), (true, true)),
            (
                &ssd,
                node("n", json!({"disk": "hdd"}), json!([])),
                (false, false),
            ),
            (
                &ssd,
                node("n", json!({"disk": "ssd"}), json!([])),
                (true, true),
            ),
            (
                &affinity,
                node("n", json!({"zone": "b"}), json!([])),
                (true, true),
            ),
            (
                &affinity,
                node("n", json!({"zone": "c"}), json!([])),
                (false, false),
            ),
            // NoSchedule: no new pod, the running one stays
            (
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                ),
                (false, true),
            ),
            (
                &tolerant,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                ),
                (true, true),
            ),
            // NoExecute: evicted
            (
                &plain,
                node("n", json!({}), json!([{"key": "x", "effect": "NoExecute"}])),
                (false, false),
            ),
            (
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "x", "effect": "PreferNoSchedule"}]),
                ),
                (true, true),
            ),
            // the tolerations added to every daemon pod
            (
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
                ),
                (true, true),
            ),
            (
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
                ),
                (true, true),
            ),
            (
                &plain,
                node(
                    "n",
                    json!({}),
                    json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
                ),
                (false, true),
            ),
            (
                &template(json!({"hostNetwork": true})),
                node(
                    "n",
                    json!({}),
                    json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
                ),
                (true, true),
            ),
        ];
        for (i, (t, n, want)) in cases.iter().enumerate() {
            assert_eq!(should_run(t, n), *want, "case {i}");
        }
    }

    #[test]
    fn pods_are_pinned_by_node_affinity() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "i"}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": "x", "operator": "Exists"}]}]}}}}}}
        }))
        .unwrap();
        let p = build_pod(&ds, "h1", 3, "node-7");
        assert_eq!(target_node(&p).as_deref(), Some("node-7"));
        let terms = &p
            .spec
            .as_ref()
            .unwrap()
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert!(terms[0].match_expressions.is_none());
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[REVISION_HASH_LABEL], "h1");
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "3");
        let tols = p.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert_eq!(tols.len(), 6);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
    }

    #[test]
    fn rolling_plans() {
        let old = |a| NodeView {
            old: Some(a),
            new: None,
        };
        let both = |a| NodeView {
            old: Some(true),
            new: Some(a),
        };
        let new = |a| NodeView {
            old: None,
            new: Some(a),
        };
        // maxUnavailable 1: one available old pod at a time
        assert_eq!(
            rolling_plan(&[old(true), old(true), old(true)], 1, 0),
            (vec![0], vec![])
        );
        // a node already without an available pod uses the budget
        assert_eq!(
            rolling_plan(&[new(false), old(true), old(true)], 1, 0),
            (vec![], vec![])
        );
        // unavailable old pods are replaced regardless
        assert_eq!(
            rolling_plan(&[old(false), old(true)], 1, 0),
            (vec![0], vec![])
        );
        // maxUnavailable 2
        assert_eq!(
            rolling_plan(&[old(true), old(true), old(true)], 2, 0),
            (vec![0, 1], vec![])
        );
        // surge 1: a new pod next to the old, the old goes once the new is available
        assert_eq!(
            rolling_plan(&[old(true), old(true)], 0, 1),
            (vec![], vec![0])
        );
        assert_eq!(
            rolling_plan(&[both(false), old(true)], 0, 1),
            (vec![], vec![])
        );
        assert_eq!(
            rolling_plan(&[both(true), old(true)], 0, 1),
            (vec![0], vec![])
        );
        assert_eq!(
            scaled(Some(&IntOrString::String("25%".into())), 10, false, 1),
            2
        );
        assert_eq!(
            scaled(Some(&IntOrString::String("25%".into())), 10, true, 1),
            3
        );
    }
}
