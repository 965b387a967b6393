//! The StatefulSet controller (upstream's pkg/controller/statefulset): pods with stable names
//! `<set>-<ordinal>` (from `spec.ordinals.start`), created and deleted in order (OrderedReady)
//! or all at once (Parallel), their PersistentVolumeClaims `<template>-<set>-<ordinal>` with the
//! retention policy, RollingUpdate (partition, maxUnavailable) or OnDelete through
//! ControllerRevisions, and status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::Recorder;
use crate::history::{self, REVISION_HASH_LABEL};
use crate::informer::{self, key_of, Change, Informer};
use crate::podutil;
use crate::queue::Queue;
use crate::replicaset::{adopt, release};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

// ---- pure helpers ----

/// The ordinal of a pod named `<set>-<ordinal>`, if it is a member of `set`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The name of the claim from volume claim template `template` for `pod`.
pub fn claim_name(template: &str, pod: &str) -> String {
    format!("{template}-{pod}")
}

/// The ordinals a set wants: `[start, start + replicas)`.
pub fn wanted_ordinals(start: i32, replicas: i32) -> std::ops::Range<i32> {
    start..start + replicas.max(0)
}

/// Upstream's isRunningAndReady.
pub fn is_healthy(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && podutil::is_ready(p)
}

/// Running, ready, and available for minReadySeconds (upstream's isRunningAndAvailable).
pub fn is_available(p: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    is_healthy(p) && podutil::is_available(p, min_ready_seconds, now)
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn revision_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// Build the pod for `ordinal` from `template` (the revision's), as upstream's
/// newVersionedStatefulSetPod.
pub fn build_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
) -> Pod {
    let set_name = set.name_any();
    let name = format!("{set_name}-{ordinal}");
    let spec = set.spec.clone().unwrap_or_default();
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), revision.into());
    let mut pspec = template.spec.clone().unwrap_or_default();
    pspec.hostname = Some(name.clone());
    if let Some(svc) = spec.service_name.as_ref().filter(|s| !s.is_empty()) {
        pspec.subdomain = Some(svc.clone());
    }
    let volumes = pspec.volumes.get_or_insert_with(Vec::new);
    for t in spec.volume_claim_templates.iter().flatten() {
        let tname = t.metadata.name.clone().unwrap_or_default();
        volumes.retain(|v| v.name != tname);
        volumes.push(Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&tname, &name),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        pspec.volumes = None;
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![podutil::new_controller_ref(
                "apps/v1",
                "StatefulSet",
                &set.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(pspec),
        status: None,
    }
}

/// The owner references a claim should have for `whenDeleted` (Delete: the set is an owner,
/// Retain: it is not); None when they are right already.
pub fn set_owner_refs(
    refs: &[OwnerReference],
    set: &ObjectMeta,
    delete_with_set: bool,
) -> Option<Vec<OwnerReference>> {
    let uid = set.uid.clone().unwrap_or_default();
    let has = refs.iter().any(|r| r.uid == uid);
    match (delete_with_set, has) {
        (true, false) => {
            let mut out = refs.to_vec();
            out.push(OwnerReference {
                controller: None,
                ..podutil::new_controller_ref("apps/v1", "StatefulSet", set)
            });
            Some(out)
        }
        (false, true) => Some(refs.iter().filter(|r| r.uid != uid).cloned().collect()),
        _ => None,
    }
}

fn max_unavailable(set: &StatefulSet, replicas: i32) -> Option<i32> {
    let v = set
        .spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?
        .max_unavailable
        .clone()?;
    let n = match v {
        IntOrString::Int(i) => i,
        IntOrString::String(s) => {
            let pct: i32 = s.trim_end_matches('%').parse().unwrap_or(0);
            (pct * replicas) / 100
        }
    };
    Some(n.max(1))
}

/// The ordinals (highest first) a rolling update deletes next. `pods` are the wanted slots
/// in ordinal order as (ordinal, revision, healthy, terminating); `update` is the update
/// revision. With no maxUnavailable this is upstream's one-at-a-time walk from the top that
/// stops at the first unhealthy pod; with it, up to that many pods are unavailable at once.
pub fn rolling_victims(
    pods: &[(i32, Option<String>, bool, bool)],
    update: &str,
    partition: i32,
    max_unavailable: Option<i32>,
) -> Vec<i32> {
    let mut out = vec![];
    match max_unavailable {
        None => {
            for (ord, rev, healthy, terminating) in pods.iter().rev() {
                if *ord < partition {
                    break;
                }
                if rev.as_deref() != Some(update) && !terminating {
                    out.push(*ord);
                    break;
                }
                if !healthy {
                    break;
                }
            }
        }
        Some(max) => {
            let unavailable = pods.iter().filter(|p| !p.2).count() as i32;
            let mut budget = max - unavailable;
            for (ord, rev, healthy, terminating) in pods.iter().rev() {
                if budget <= 0 || *ord < partition {
                    break;
                }
                if rev.as_deref() != Some(update) && !terminating {
                    out.push(*ord);
                    if *healthy {
                        budget -= 1;
                    }
                }
            }
        }
    }
    out
}

// ---- the controller ----

pub struct StatefulSetController {
    client: Client,
    pods: Arc<Informer<Pod>>,
    sets: Arc<Informer<StatefulSet>>,
    revisions: Arc<Informer<ControllerRevision>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    queue: Queue,
    recorder: Recorder,
}

impl StatefulSetController {
    pub fn new(
        client: Client,
        pods: Arc<Informer<Pod>>,
        sets: Arc<Informer<StatefulSet>>,
        revisions: Arc<Informer<ControllerRevision>>,
        claims: Arc<Informer<PersistentVolumeClaim>>,
        identity: &str,
    ) -> Arc<Self> {
        let c = Arc::new(StatefulSetController {
            recorder: Recorder::new(client.clone(), "statefulset-controller", identity),
            client,
            pods,
            sets,
            revisions,
            claims,
            queue: Queue::new(),
        });
        let q = c.queue.clone();
        c.sets.on_change(move |ch| match ch {
            Change::Added(o) | Change::Updated { new: o, .. } | Change::Deleted(o) => {
                q.add(key_of(o))
            }
        });
        let weak = Arc::downgrade(&c);
        c.pods.on_change(move |ch| {
            let Some(c) = weak.upgrade() else { return };
            let (a, b) = match ch {
                Change::Added(p) | Change::Deleted(p) => (p, None),
                Change::Updated { old, new } => (new, Some(old)),
            };
            for p in [Some(a), b].into_iter().flatten() {
                if let Some(k) = c.owner_key(p) {
                    c.queue.add(k);
                } else if podutil::controller_ref(&p.metadata).is_none() {
                    let ns = p.metadata.namespace.clone();
                    for s in c.sets.store.state_filter(|s| {
                        s.metadata.namespace == ns
                            && podutil::selector_matches(
                                s.spec.as_ref().map(|s| &s.selector),
                                p.metadata.labels.as_ref(),
                            )
                    }) {
                        c.queue.add(key_of(&*s));
                    }
                }
            }
        });
        c
    }

    fn owner_key(&self, p: &Pod) -> Option<String> {
        let r = podutil::controller_ref(&p.metadata)?;
        (r.kind == "StatefulSet").then(|| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                r.name
            )
        })
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let me = self.clone();
        let c = self.clone();
        crate::queue::run_workers_with_resync(
            "statefulset",
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

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = informer::split_key(key);
        let Some(set) = informer::get(&self.sets.store, ns, name) else {
            return Ok(());
        };
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let spec = set.spec.clone().unwrap_or_default();
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);

        // claim pods
        let all = self
            .pods
            .store
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns));
        let mut owned: Vec<Arc<Pod>> = vec![];
        for p in &all {
            let matches =
                podutil::selector_matches(Some(&spec.selector), p.metadata.labels.as_ref());
            match podutil::controller_ref(&p.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push(p.clone());
                    } else {
                        let _ = release(&pod_api, &**p, &uid).await;
                    }
                }
                Some(_) => {}
                None => {
                    if matches
                        && set.metadata.deletion_timestamp.is_none()
                        && ordinal_of(name, &p.name_any()).is_some()
                    {
                        let r =
                            podutil::new_controller_ref("apps/v1", "StatefulSet", &set.metadata);
                        if adopt(&pod_api, &**p, &r).await.is_ok() {
                            owned.push(p.clone());
                        }
                    }
                }
            }
        }
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }

        // revisions
        let revs = history::owned_revisions(&self.revisions, &set.metadata);
        let status = set.status.clone().unwrap_or_default();
        let owner = history::Owner::new(
            "StatefulSet",
            &set.metadata,
            &spec.template,
            status.current_revision.clone(),
            status.collision_count,
            history::Style::StatefulSet,
        );
        let r = history::sync_revisions(
            &self.client,
            &owner,
            history::revision_data(&spec.template),
            revs.clone(),
        )
        .await?;
        let current_name = r.current.name_any();
        let update_name = r.update.name_any();
        let current_tmpl = history::revision_template(&r.current).unwrap_or(spec.template.clone());
        let update_tmpl = spec.template.clone();

        let replicas = spec.replicas.unwrap_or(1).max(0);
        let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
        let wanted = wanted_ordinals(start, replicas);
        let mut slots: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
        let mut condemned: Vec<(i32, Arc<Pod>)> = vec![];
        for p in &owned {
            match ordinal_of(name, &p.name_any()) {
                Some(o) if wanted.contains(&o) => {
                    slots.insert(o, p.clone());
                }
                Some(o) => condemned.push((o, p.clone())),
                None => condemned.push((i32::MAX, p.clone())),
            }
        }
        condemned.sort_by_key(|(o, _)| -*o);
        let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
        let strategy = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.clone())
            .unwrap_or_else(|| "RollingUpdate".into());
        let partition = spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);

        let err = self
            .reconcile_pods(
                &set,
                &pod_api,
                &slots,
                &condemned,
                wanted.clone(),
                monotonic,
                &strategy,
                partition,
                (&current_name, &current_tmpl),
                (&update_name, &update_tmpl),
            )
            .await
            .err();

        // status
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let now = Timestamp::now();
        let created: Vec<&Arc<Pod>> = owned.iter().collect();
        let mut st = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            replicas: created.len() as i32,
            ready_replicas: Some(created.iter().filter(|p| is_healthy(p)).count() as i32),
            available_replicas: Some(
                created
                    .iter()
                    .filter(|p| is_available(p, min_ready, now))
                    .count() as i32,
            ),
            current_replicas: Some(
                created
                    .iter()
                    .filter(|p| revision_of(p) == Some(current_name.as_str()))
                    .count() as i32,
            ),
            updated_replicas: Some(
                created
                    .iter()
                    .filter(|p| revision_of(p) == Some(update_name.as_str()))
                    .count() as i32,
            ),
            current_revision: Some(current_name.clone()),
            update_revision: Some(update_name.clone()),
            collision_count: Some(r.collision_count),
            conditions: status.conditions.clone(),
        };
        // the rollout is complete: the update revision becomes current
        if st.updated_replicas == Some(replicas)
            && st.replicas == replicas
            && st.ready_replicas == Some(replicas)
        {
            st.current_revision = st.update_revision.clone();
            st.current_replicas = st.updated_replicas;
        }
        // omitted when zero, as upstream's omitempty fields
        for f in [
            &mut st.ready_replicas,
            &mut st.current_replicas,
            &mut st.updated_replicas,
        ] {
            if *f == Some(0) {
                *f = None;
            }
        }
        if Some(&st) != set.status.as_ref() {
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
            let mut s = (*set).clone();
            s.status = Some(st.clone());
            match api.replace_status(name, &PostParams::default(), &s).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if min_ready > 0 && st.ready_replicas != st.available_replicas {
            self.queue
                .add_after(key, Duration::from_secs(min_ready as u64));
        }
        // whenDeleted: the claims of every pod carry (Delete) or lose (Retain) the set as owner
        let delete_with_set = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_deleted.as_deref())
            == Some("Delete");
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        for p in &owned {
            for t in spec.volume_claim_templates.iter().flatten() {
                let cname = claim_name(t.metadata.name.as_deref().unwrap_or(""), &p.name_any());
                let Some(claim) = informer::get(&self.claims.store, ns, &cname) else {
                    continue;
                };
                let refs = claim.metadata.owner_references.clone().unwrap_or_default();
                if let Some(new) = set_owner_refs(&refs, &set.metadata, delete_with_set) {
                    let patch = json!({"metadata": {
                        "resourceVersion": claim.metadata.resource_version,
                        "ownerReferences": new}});
                    if let Err(e) = pvcs
                        .patch(&cname, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::debug!(error = %e, claim = %cname, "updating claim owners failed");
                    }
                }
            }
        }
        // history
        let mut live: Vec<String> = owned
            .iter()
            .filter_map(|p| revision_of(p).map(String::from))
            .collect();
        live.push(current_name.clone());
        live.push(update_name.clone());
        history::truncate(
            &self.client,
            ns,
            &revs,
            &live,
            spec.revision_history_limit.unwrap_or(10),
        )
        .await;
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn reconcile_pods(
        &self,
        set: &StatefulSet,
        api: &Api<Pod>,
        slots: &BTreeMap<i32, Arc<Pod>>,
        condemned: &[(i32, Arc<Pod>)],
        wanted: std::ops::Range<i32>,
        monotonic: bool,
        strategy: &str,
        partition: i32,
        current: (&str, &PodTemplateSpec),
        update: (&str, &PodTemplateSpec),
    ) -> anyhow::Result<()> {
        let start = wanted.start;
        let min_ready = set
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let now = Timestamp::now();
        // create missing pods, replace finished ones, in ordinal order
        let mut unhealthy = 0;
        for ord in wanted.clone() {
            match slots.get(&ord) {
                None => {
                    let use_current = strategy == "RollingUpdate" && ord - start < partition;
                    let (rev, tmpl) = if use_current { current } else { update };
                    let pod = build_pod(set, tmpl, rev, ord);
                    self.create_pod(set, api, &pod).await?;
                    if monotonic {
                        return Ok(());
                    }
                    unhealthy += 1;
                }
                Some(p) => {
                    if matches!(phase(p), "Failed" | "Succeeded")
                        && p.metadata.deletion_timestamp.is_none()
                    {
                        self.delete_pod(set, api, p).await?;
                        if monotonic {
                            return Ok(());
                        }
                        unhealthy += 1;
                        continue;
                    }
                    if !is_available(p, min_ready, now) {
                        unhealthy += 1;
                        if monotonic {
                            // wait for this pod before touching the next one
                            if is_healthy(p) && min_ready > 0 {
                                self.queue
                                    .add_after(key_of(set), Duration::from_secs(min_ready as u64));
                            }
                            return Ok(());
                        }
                    }
                }
            }
        }
        // scale down, highest ordinal first
        for (_, p) in condemned {
            if p.metadata.deletion_timestamp.is_some() {
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            if monotonic && unhealthy > 0 {
                return Ok(());
            }
            self.condemn_claims(set, p).await;
            self.delete_pod(set, api, p).await?;
            if monotonic {
                return Ok(());
            }
        }
        if strategy != "RollingUpdate" {
            return Ok(());
        }
        let view: Vec<(i32, Option<String>, bool, bool)> = wanted
            .clone()
            .map(|o| match slots.get(&o) {
                Some(p) => (
                    o,
                    revision_of(p).map(String::from),
                    is_available(p, min_ready, now),
                    p.metadata.deletion_timestamp.is_some(),
                ),
                None => (o, None, false, false),
            })
            .collect();
        let replicas = wanted.len() as i32;
        for ord in rolling_victims(
            &view,
            update.0,
            start + partition,
            max_unavailable(set, replicas),
        ) {
            if let Some(p) = slots.get(&ord) {
                self.delete_pod(set, api, p).await?;
            }
        }
        Ok(())
    }

    /// Create the pod's claims (missing ones), then the pod.
    async fn create_pod(&self, set: &StatefulSet, api: &Api<Pod>, pod: &Pod) -> anyhow::Result<()> {
        let spec = set.spec.clone().unwrap_or_default();
        let ns = set.metadata.namespace.as_deref().unwrap_or("default");
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let delete_with_set = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_deleted.as_deref())
            == Some("Delete");
        let pod_name = pod.name_any();
        for t in spec.volume_claim_templates.iter().flatten() {
            let cname = claim_name(t.metadata.name.as_deref().unwrap_or(""), &pod_name);
            let set_ref = OwnerReference {
                controller: None,
                ..podutil::new_controller_ref("apps/v1", "StatefulSet", &set.metadata)
            };
            match pvcs.get_opt(&cname).await? {
                Some(_) => {}
                None => {
                    let mut labels = t.metadata.labels.clone().unwrap_or_default();
                    for (k, v) in spec.selector.match_labels.iter().flatten() {
                        labels.insert(k.clone(), v.clone());
                    }
                    let claim = PersistentVolumeClaim {
                        metadata: ObjectMeta {
                            name: Some(cname.clone()),
                            namespace: Some(ns.into()),
                            labels: Some(labels),
                            annotations: t.metadata.annotations.clone(),
                            owner_references: delete_with_set.then(|| vec![set_ref]),
                            ..Default::default()
                        },
                        spec: t.spec.clone(),
                        status: None,
                    };
                    match pvcs.create(&PostParams::default(), &claim).await {
                        Ok(_) => self.recorder.normal(
                            set,
                            "SuccessfulCreate",
                            format!(
                                "create Claim {cname} Pod {pod_name} in StatefulSet {} success",
                                set.name_any()
                            ),
                        ),
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => {
                            self.recorder.warning(
                                set,
                                "FailedCreate",
                                format!("create Claim {cname} for Pod {pod_name} in StatefulSet {} failed error: {e}", set.name_any()),
                            );
                            return Err(e.into());
                        }
                    }
                }
            }
        }
        match api.create(&PostParams::default(), pod).await {
            Ok(_) => {
                self.recorder.normal(
                    set,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} successful",
                        set.name_any()
                    ),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => {
                self.recorder.warning(
                    set,
                    "FailedCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} failed error: {e}",
                        set.name_any()
                    ),
                );
                Err(e.into())
            }
        }
    }

    async fn delete_pod(&self, set: &StatefulSet, api: &Api<Pod>, p: &Pod) -> anyhow::Result<()> {
        match api.delete(&p.name_any(), &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.normal(
                    set,
                    "SuccessfulDelete",
                    format!(
                        "delete Pod {} in StatefulSet {} successful",
                        p.name_any(),
                        set.name_any()
                    ),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => {
                self.recorder.warning(
                    set,
                    "FailedDelete",
                    format!(
                        "delete Pod {} in StatefulSet {} failed error: {e}",
                        p.name_any(),
                        set.name_any()
                    ),
                );
                Err(e.into())
            }
        }
    }

    /// whenScaled: Delete: hand the claims of a pod being scaled away to the pod, so the garbage
    /// collector removes them with it.
    async fn condemn_claims(&self, set: &StatefulSet, p: &Pod) {
        let spec = set.spec.clone().unwrap_or_default();
        let when_scaled = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_scaled.as_deref())
            == Some("Delete");
        if !when_scaled {
            return;
        }
        let ns = set.metadata.namespace.as_deref().unwrap_or("default");
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let pod_ref = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: p.name_any(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            controller: None,
            block_owner_deletion: Some(true),
        };
        for t in spec.volume_claim_templates.iter().flatten() {
            let cname = claim_name(t.metadata.name.as_deref().unwrap_or(""), &p.name_any());
            if let Ok(Some(c)) = pvcs.get_opt(&cname).await {
                let has = c
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == pod_ref.uid);
                if !has {
                    let patch = json!({"metadata": {"ownerReferences":
                        c.metadata.owner_references.clone().unwrap_or_default().into_iter()
                            .map(|r| serde_json::to_value(r).unwrap_or_default())
                            .chain([serde_json::to_value(&pod_ref).unwrap_or_default()])
                            .collect::<Vec<_>>()}});
                    let _ = pvcs
                        .patch(&cname, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_and_names() {
        let cases = [
            ("web", "web-0", Some(0)),
            ("web", "web-12", Some(12)),
            ("web", "web-x", None),
            ("web", "web-", None),
            ("web", "webby-1", None),
            ("web", "web-1-2", None),
            ("a-b", "a-b-3", Some(3)),
        ];
        for (set, pod, want) in cases {
            assert_eq!(ordinal_of(set, pod), want, "{pod}");
        }
        assert_eq!(claim_name("data", "web-2"), "data-web-2");
        assert_eq!(wanted_ordinals(5, 3), 5..8);
        assert_eq!(wanted_ordinals(0, -1), 0..0);
    }

    fn view(v: &[(i32, &str, bool)]) -> Vec<(i32, Option<String>, bool, bool)> {
        v.iter()
            .map(|(o, r, h)| (*o, Some(r.to_string()), *h, false))
            .collect()
    }

    #[test]
    fn rolling_update_order() {
        // one at a time from the top
        let pods = view(&[(0, "old", true), (1, "old", true), (2, "old", true)]);
        assert_eq!(rolling_victims(&pods, "new", 0, None), vec![2]);
        // the top one updated but not ready yet: wait
        let pods = view(&[(0, "old", true), (1, "old", true), (2, "new", false)]);
        assert_eq!(rolling_victims(&pods, "new", 0, None), Vec::<i32>::new());
        let pods = view(&[(0, "old", true), (1, "old", true), (2, "new", true)]);
        assert_eq!(rolling_victims(&pods, "new", 0, None), vec![1]);
        // partition 2 keeps ordinals 0 and 1
        let pods = view(&[(0, "old", true), (1, "old", true), (2, "new", true)]);
        assert_eq!(rolling_victims(&pods, "new", 2, None), Vec::<i32>::new());
        // maxUnavailable 2: two at once
        let pods = view(&[(0, "old", true), (1, "old", true), (2, "old", true)]);
        assert_eq!(rolling_victims(&pods, "new", 0, Some(2)), vec![2, 1]);
        // one already unavailable uses the budget
        let pods = view(&[(0, "old", true), (1, "old", true), (2, "new", false)]);
        assert_eq!(rolling_victims(&pods, "new", 0, Some(2)), vec![1]);
    }

    #[test]
    fn claim_owners_follow_when_deleted() {
        let set = ObjectMeta {
            name: Some("web".into()),
            uid: Some("set-uid".into()),
            ..Default::default()
        };
        let pod_ref = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "web-3".into(),
            uid: "pod-uid".into(),
            ..Default::default()
        };
        let added = set_owner_refs(std::slice::from_ref(&pod_ref), &set, true).unwrap();
        assert_eq!(added.len(), 2);
        assert_eq!(added[1].uid, "set-uid");
        assert_eq!(added[1].kind, "StatefulSet");
        assert_eq!(added[1].controller, None);
        assert_eq!(set_owner_refs(&added, &set, true), None);
        assert_eq!(
            set_owner_refs(&added, &set, false),
            Some(vec![pod_ref.clone()])
        );
        assert_eq!(set_owner_refs(&[pod_ref], &set, false), None);
    }

    #[test]
    fn pods_carry_identity_and_claims() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}
        }))
        .unwrap();
        let tmpl = set.spec.as_ref().unwrap().template.clone();
        let p = build_pod(&set, &tmpl, "web-abc", 4);
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-4"));
        assert_eq!(labels[POD_NAME_LABEL], "web-4");
        assert_eq!(labels[POD_INDEX_LABEL], "4");
        assert_eq!(labels[REVISION_HASH_LABEL], "web-abc");
        assert_eq!(labels["app"], "web");
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-4"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let v = &spec.volumes.unwrap()[0];
        assert_eq!(v.name, "data");
        assert_eq!(
            v.persistent_volume_claim.as_ref().unwrap().claim_name,
            "data-web-4"
        );
    }
}
