//! The ReplicaSet and ReplicationController controller (upstream's pkg/controller/replicaset
//! and replication, which shares its logic): keeps `spec.replicas`
//! active pods per ReplicaSet, creating in slow-start batches and deleting the least valuable
//! pods first, adopts and releases pods by selector, guards against stale caches with
//! expectations and reports status.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{self, key_of, Change, Informer};
use crate::podutil;
use crate::queue::Queue;

/// Most pods created or deleted in one sync (upstream's BurstReplicas).
pub const BURST_REPLICAS: usize = 500;

/// Where the controlled objects come from: ReplicaSets, or ReplicationControllers seen as
/// ReplicaSets (same logic; map selector; `v1` owner references).
#[derive(Clone)]
pub enum Source {
    ReplicaSets(Arc<Informer<ReplicaSet>>),
    ReplicationControllers(Arc<Informer<ReplicationController>>),
}

/// A ReplicationController in ReplicaSet form.
pub fn rc_as_rs(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    let selector = spec.selector.clone().or_else(|| {
        spec.template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
    });
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: selector,
                match_expressions: None,
            },
            template: spec.template,
        }),
        status: rc.status.as_ref().map(|st| ReplicaSetStatus {
            replicas: st.replicas,
            fully_labeled_replicas: st.fully_labeled_replicas,
            ready_replicas: st.ready_replicas,
            available_replicas: st.available_replicas,
            observed_generation: st.observed_generation,
            conditions: st.conditions.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| ReplicaSetCondition {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        last_transition_time: c.last_transition_time.clone(),
                    })
                    .collect()
            }),
            terminating_replicas: None,
        }),
    }
}

impl Source {
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Source::ReplicaSets(_) => ("apps/v1", "ReplicaSet"),
            Source::ReplicationControllers(_) => ("v1", "ReplicationController"),
        }
    }

    fn get(&self, ns: &str, name: &str) -> Option<Arc<ReplicaSet>> {
        match self {
            Source::ReplicaSets(i) => informer::get(&i.store, ns, name),
            Source::ReplicationControllers(i) => {
                informer::get(&i.store, ns, name).map(|rc| Arc::new(rc_as_rs(&rc)))
            }
        }
    }

    fn filter(&self, f: impl Fn(&ReplicaSet) -> bool) -> Vec<Arc<ReplicaSet>> {
        match self {
            Source::ReplicaSets(i) => i.store.state_filter(|rs| f(rs)),
            Source::ReplicationControllers(i) => i
                .store
                .state()
                .iter()
                .map(|rc| Arc::new(rc_as_rs(rc)))
                .filter(|rs| f(rs))
                .collect(),
        }
    }
}

pub struct ReplicaSetController {
    client: Client,
    pods: Arc<Informer<Pod>>,
    rss: Source,
    queue: Queue,
    expectations: Expectations,
    recorder: Recorder,
}

/// Sizes of the slow-start batches for `count` creations starting at `initial`: 1, 2, 4, ...
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut out = vec![];
    let mut remaining = count;
    let mut size = remaining.min(initial);
    while size > 0 {
        out.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    out
}

fn pod_key(p: &Pod) -> String {
    key_of(p)
}

impl ReplicaSetController {
    pub fn new(client: Client, pods: Arc<Informer<Pod>>, rss: Source, identity: &str) -> Arc<Self> {
        let component = match rss {
            Source::ReplicaSets(_) => "replicaset-controller",
            Source::ReplicationControllers(_) => "replication-controller",
        };
        let c = Arc::new(ReplicaSetController {
            recorder: Recorder::new(client.clone(), component, identity),
            client,
            pods,
            rss,
            queue: Queue::new(),
            expectations: Expectations::default(),
        });
        let q = c.queue.clone();
        let weak = Arc::downgrade(&c);
        let on_set = move |key: String, deleted: bool| {
            if deleted {
                if let Some(c) = weak.upgrade() {
                    c.expectations.forget(&key);
                }
            }
            q.add(key)
        };
        match &c.rss {
            Source::ReplicaSets(i) => i.on_change(move |ch| match ch {
                Change::Added(o) | Change::Updated { new: o, .. } => on_set(key_of(o), false),
                Change::Deleted(o) => on_set(key_of(o), true),
            }),
            Source::ReplicationControllers(i) => i.on_change(move |ch| match ch {
                Change::Added(o) | Change::Updated { new: o, .. } => on_set(key_of(o), false),
                Change::Deleted(o) => on_set(key_of(o), true),
            }),
        }
        let weak = Arc::downgrade(&c);
        c.pods.on_change(move |ch| {
            if let Some(c) = weak.upgrade() {
                c.pod_changed(ch);
            }
        });
        c
    }

    /// The ReplicaSet controlling `pod` (by controller ref), if it is in the cache.
    fn owner_of(&self, pod: &Pod) -> Option<Arc<ReplicaSet>> {
        let r = podutil::controller_ref(&pod.metadata)?;
        if r.kind != self.rss.kind().1 {
            return None;
        }
        let rs = self
            .rss
            .get(pod.metadata.namespace.as_deref().unwrap_or(""), &r.name)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    fn matching_sets(&self, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
        let ns = pod.metadata.namespace.clone();
        self.rss.filter(|rs| {
            rs.metadata.namespace == ns
                && podutil::selector_matches(
                    rs.spec.as_ref().map(|s| &s.selector),
                    pod.metadata.labels.as_ref(),
                )
        })
    }

    fn pod_changed(&self, ch: Change<'_, Pod>) {
        match ch {
            Change::Added(pod) => {
                if let Some(rs) = self.owner_of(pod) {
                    let k = key_of(&*rs);
                    if pod.metadata.deletion_timestamp.is_some() {
                        self.expectations.deletion_observed(&k, &pod_key(pod));
                    } else {
                        self.expectations.creation_observed(&k);
                    }
                    self.queue.add(k);
                } else if podutil::controller_ref(&pod.metadata).is_none() {
                    for rs in self.matching_sets(pod) {
                        self.queue.add(key_of(&*rs));
                    }
                }
            }
            Change::Updated { old, new } => {
                let old_owner = self.owner_of(old);
                let new_owner = self.owner_of(new);
                if new.metadata.deletion_timestamp.is_some()
                    && old.metadata.deletion_timestamp.is_none()
                {
                    if let Some(rs) = &new_owner {
                        self.expectations
                            .deletion_observed(&key_of(&**rs), &pod_key(new));
                    }
                }
                if let Some(rs) = &old_owner {
                    if new_owner.as_ref().map(|n| &n.metadata.uid) != Some(&rs.metadata.uid) {
                        self.queue.add(key_of(&**rs));
                    }
                }
                if let Some(rs) = &new_owner {
                    let k = key_of(&**rs);
                    self.queue.add(k.clone());
                    let min_ready = rs
                        .spec
                        .as_ref()
                        .and_then(|s| s.min_ready_seconds)
                        .unwrap_or(0);
                    if min_ready > 0 && !podutil::is_ready(old) && podutil::is_ready(new) {
                        self.queue
                            .add_after(k, Duration::from_secs(min_ready as u64 + 1));
                    }
                } else if podutil::controller_ref(&new.metadata).is_none()
                    && (old.metadata.labels != new.metadata.labels
                        || old.metadata.owner_references != new.metadata.owner_references)
                {
                    for rs in self.matching_sets(new) {
                        self.queue.add(key_of(&*rs));
                    }
                }
            }
            Change::Deleted(pod) => {
                if let Some(rs) = self.owner_of(pod) {
                    let k = key_of(&*rs);
                    self.expectations.deletion_observed(&k, &pod_key(pod));
                    self.queue.add(k);
                }
            }
        }
    }

    fn event(&self, rs: &ReplicaSet, type_: &str, reason: &str, message: String) {
        let (api_version, kind) = self.rss.kind();
        self.recorder
            .record_for(api_version, kind, &rs.metadata, type_, reason, message);
    }

    /// Run the workers until dropped.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let me = self.clone();
        let c = self.clone();
        crate::queue::run_workers_with_resync(
            "replicaset",
            self.queue.clone(),
            workers,
            move || me.rss.filter(|_| true).into_iter().map(|o| key_of(&*o)),
            move |key| {
                let c = c.clone();
                async move { c.sync(&key).await }
            },
        )
        .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = informer::split_key(key);
        let Some(rs) = self.rss.get(ns, name) else {
            self.expectations.forget(key);
            return Ok(());
        };
        let needs_sync = self.expectations.satisfied(key);
        let spec = rs.spec.clone().unwrap_or_default();
        let all: Vec<Arc<Pod>> = self
            .pods
            .store
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns));
        let active: Vec<&Pod> = all
            .iter()
            .map(|p| &**p)
            .filter(|p| podutil::is_active(p))
            .collect();
        let owned = self.claim_pods(&rs, &active).await?;
        let mut manage_err = None;
        if needs_sync
            && rs.metadata.deletion_timestamp.is_none()
            && !podutil::selector_is_empty(Some(&spec.selector))
        {
            if let Err(e) = self.manage(&rs, &owned, &all, key).await {
                manage_err = Some(e);
            }
        }
        self.update_status(&rs, &owned, manage_err.as_ref()).await?;
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if manage_err.is_none() && min_ready > 0 {
            let ready = owned.iter().filter(|p| podutil::is_ready(p)).count();
            let avail = owned
                .iter()
                .filter(|p| podutil::is_available(p, min_ready, Timestamp::now()))
                .count();
            if ready != avail {
                self.queue
                    .add_after(key, Duration::from_secs(min_ready as u64));
            }
        }
        match manage_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Adopt matching orphans, release owned pods that no longer match; returns the owned pods.
    async fn claim_pods<'a>(
        &self,
        rs: &ReplicaSet,
        pods: &[&'a Pod],
    ) -> anyhow::Result<Vec<&'a Pod>> {
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let selector = rs.spec.as_ref().map(|s| &s.selector);
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            rs.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let mut out = vec![];
        for &p in pods {
            let matches = podutil::selector_matches(selector, p.metadata.labels.as_ref());
            match podutil::controller_ref(&p.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        out.push(p);
                    } else if let Err(e) = release(&api, p, &uid).await {
                        tracing::debug!(error = %e, pod = %p.name_any(), "release failed");
                    }
                }
                Some(_) => {}
                None => {
                    if matches && rs.metadata.deletion_timestamp.is_none() {
                        let r = podutil::new_controller_ref(
                            self.rss.kind().0,
                            self.rss.kind().1,
                            &rs.metadata,
                        );
                        match adopt(&api, p, &r).await {
                            Ok(()) => out.push(p),
                            Err(e) => {
                                tracing::debug!(error = %e, pod = %p.name_any(), "adoption failed")
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    async fn manage(
        &self,
        rs: &ReplicaSet,
        owned: &[&Pod],
        all: &[Arc<Pod>],
        key: &str,
    ) -> anyhow::Result<()> {
        let spec = rs.spec.clone().unwrap_or_default();
        let want = spec.replicas.unwrap_or(1).max(0) as usize;
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if owned.len() < want {
            let diff = (want - owned.len()).min(BURST_REPLICAS);
            self.expectations.expect_creations(key, diff);
            let template = spec.template.clone().unwrap_or_default();
            let tmeta = template.metadata.unwrap_or_default();
            let pod = Pod {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{}-", rs.name_any())),
                    namespace: Some(ns.clone()),
                    labels: tmeta.labels,
                    annotations: tmeta.annotations,
                    finalizers: tmeta.finalizers,
                    owner_references: Some(vec![podutil::new_controller_ref(
                        self.rss.kind().0,
                        self.rss.kind().1,
                        &rs.metadata,
                    )]),
                    ..Default::default()
                },
                spec: template.spec,
                status: None,
            };
            let mut created = 0;
            let mut first_err = None;
            for batch in slow_start_batches(diff, 1) {
                let pp = PostParams::default();
                let results = join_all((0..batch).map(|_| api.create(&pp, &pod))).await;
                for r in results {
                    match r {
                        Ok(p) => {
                            created += 1;
                            self.event(
                                rs,
                                "Normal",
                                "SuccessfulCreate",
                                format!("Created pod: {}", p.name_any()),
                            );
                        }
                        Err(e) => {
                            self.event(
                                rs,
                                "Warning",
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if first_err.is_some() {
                    break;
                }
            }
            for _ in created..diff {
                self.expectations.creation_observed(key);
            }
            if let Some(e) = first_err {
                return Err(e.into());
            }
        } else if owned.len() > want {
            let diff = (owned.len() - want).min(BURST_REPLICAS);
            let related = self.related_pods(rs, all);
            let related_refs: Vec<&Pod> = related.iter().map(|p| &**p).collect();
            let victims = podutil::pods_to_delete(owned, &related_refs, diff, Timestamp::now());
            self.expectations
                .expect_deletions(key, victims.iter().map(|p| pod_key(p)));
            let results = join_all(victims.iter().map(|p| {
                let api = api.clone();
                async move { (p, api.delete(&p.name_any(), &DeleteParams::default()).await) }
            }))
            .await;
            let mut first_err = None;
            for (p, r) in results {
                match r {
                    Ok(_) => self.event(
                        rs,
                        "Normal",
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    ),
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        self.expectations.deletion_observed(key, &pod_key(p))
                    }
                    Err(e) => {
                        self.expectations.deletion_observed(key, &pod_key(p));
                        self.event(
                            rs,
                            "Warning",
                            "FailedDelete",
                            format!("Error deleting: {e}"),
                        );
                        first_err.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Pods of every ReplicaSet sharing this one's controller (the Deployment's other
    /// ReplicaSets), used to rank pods by how doubled-up their node is.
    fn related_pods(&self, rs: &ReplicaSet, all: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
        let Some(owner) = podutil::controller_ref(&rs.metadata) else {
            return all
                .iter()
                .filter(|p| {
                    podutil::controller_ref(&p.metadata).map(|r| &r.uid) == rs.metadata.uid.as_ref()
                })
                .cloned()
                .collect();
        };
        let siblings: Vec<String> = self
            .rss
            .filter(|o| {
                o.metadata.namespace == rs.metadata.namespace
                    && podutil::controller_ref(&o.metadata).map(|r| &r.uid) == Some(&owner.uid)
            })
            .iter()
            .filter_map(|o| o.metadata.uid.clone())
            .collect();
        all.iter()
            .filter(|p| {
                podutil::controller_ref(&p.metadata).is_some_and(|r| siblings.contains(&r.uid))
            })
            .cloned()
            .collect()
    }

    async fn update_status(
        &self,
        rs: &ReplicaSet,
        owned: &[&Pod],
        err: Option<&anyhow::Error>,
    ) -> anyhow::Result<()> {
        let spec = rs.spec.clone().unwrap_or_default();
        let tlabels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let now = Timestamp::now();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let fully = owned
            .iter()
            .filter(|p| {
                tlabels
                    .iter()
                    .all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
            })
            .count() as i32;
        let ready = owned.iter().filter(|p| podutil::is_ready(p)).count() as i32;
        let available = owned
            .iter()
            .filter(|p| podutil::is_available(p, min_ready, now))
            .count() as i32;
        let replicas = owned.len() as i32;
        let gen = rs.metadata.generation.unwrap_or(0);
        let cur = rs.status.clone().unwrap_or_default();
        let mut conditions = cur.conditions.clone().unwrap_or_default();
        let had_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
        match err {
            Some(e) if !had_failure => {
                let want = spec.replicas.unwrap_or(1) as usize;
                let reason = if owned.len() < want {
                    "FailedCreate"
                } else {
                    "FailedDelete"
                };
                conditions.push(k8s_openapi::api::apps::v1::ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(format!("{e:#}")),
                    last_transition_time: Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                    ),
                });
            }
            None if had_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
            _ => {}
        }
        let unchanged = cur.replicas == replicas
            && cur.fully_labeled_replicas.unwrap_or(0) == fully
            && cur.ready_replicas.unwrap_or(0) == ready
            && cur.available_replicas.unwrap_or(0) == available
            && cur.observed_generation.unwrap_or(0) == gen
            && cur.conditions.clone().unwrap_or_default() == conditions;
        if unchanged {
            return Ok(());
        }
        let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
        let patch = json!({"status": {
            "replicas": replicas,
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": gen,
            "conditions": if conditions.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&conditions)? },
        }});
        let res = match self.rss {
            Source::ReplicaSets(_) => Api::<ReplicaSet>::namespaced(self.client.clone(), ns)
                .patch_status(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map(|_| ()),
            Source::ReplicationControllers(_) => {
                Api::<ReplicationController>::namespaced(self.client.clone(), ns)
                    .patch_status(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map(|_| ())
            }
        };
        match res {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Add a controller reference to an orphan (JSON patch guarded by the object's uid).
pub async fn adopt<K>(
    api: &Api<K>,
    obj: &K,
    r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let meta = obj.meta();
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": meta.uid})];
    match &meta.owner_references {
        Some(refs) if !refs.is_empty() => {
            ops.push(json!({"op": "add", "path": "/metadata/ownerReferences/-", "value": r}))
        }
        _ => ops.push(json!({"op": "add", "path": "/metadata/ownerReferences", "value": [r]})),
    }
    let patch: json_patch::Patch = serde_json::from_value(json!(ops)).expect("valid json patch");
    api.patch(
        meta.name.as_deref().unwrap_or(""),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await?;
    Ok(())
}

/// Remove the owner reference with `owner_uid` (JSON patch guarded by uid and position).
pub async fn release<K>(api: &Api<K>, obj: &K, owner_uid: &str) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let meta = obj.meta();
    let Some(i) = meta
        .owner_references
        .iter()
        .flatten()
        .position(|r| r.uid == owner_uid)
    else {
        return Ok(());
    };
    let ops = json!([
        {"op": "test", "path": "/metadata/uid", "value": meta.uid},
        {"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": owner_uid},
        {"op": "remove", "path": format!("/metadata/ownerReferences/{i}")},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("valid json patch");
    match api
        .patch(
            meta.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start() {
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1, 1), vec![1]);
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15, 1), vec![1, 2, 4, 8]);
    }
}
