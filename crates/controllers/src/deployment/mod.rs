//! The Deployment controller (upstream's pkg/controller/deployment): ReplicaSets named
//! `<deployment>-<pod-template-hash>`, revision annotations, RollingUpdate and Recreate,
//! proportional scaling, pause, rollback by template, history cleanup, Progressing and
//! Available conditions and ScalingReplicaSet events, as `kubectl rollout` expects.

pub mod util;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::events::Recorder;
use crate::informer::{self, key_of, Change, Informer};
use crate::podutil;
use crate::queue::Queue;
use util::*;

pub struct DeploymentController {
    client: Client,
    pods: Arc<Informer<Pod>>,
    rss: Arc<Informer<ReplicaSet>>,
    deploys: Arc<Informer<Deployment>>,
    queue: Queue,
    recorder: Recorder,
}

/// The ReplicaSets of one deployment: all of them, and which one is new.
struct Sets {
    all: Vec<ReplicaSet>,
    new: Option<usize>,
}

impl Sets {
    fn old_idx(&self) -> Vec<usize> {
        (0..self.all.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }
    fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new.map(|i| &self.all[i])
    }
}

fn created(rs: &ReplicaSet) -> (Option<i64>, String) {
    (
        rs.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond() as i64),
        rs.name_any(),
    )
}

impl DeploymentController {
    pub fn new(
        client: Client,
        pods: Arc<Informer<Pod>>,
        rss: Arc<Informer<ReplicaSet>>,
        deploys: Arc<Informer<Deployment>>,
        identity: &str,
    ) -> Arc<Self> {
        let c = Arc::new(DeploymentController {
            recorder: Recorder::new(client.clone(), "deployment-controller", identity),
            client,
            pods,
            rss,
            deploys,
            queue: Queue::new(),
        });
        let q = c.queue.clone();
        c.deploys.on_change(move |ch| match ch {
            Change::Added(d) | Change::Updated { new: d, .. } | Change::Deleted(d) => {
                q.add(key_of(d))
            }
        });
        let weak = Arc::downgrade(&c);
        c.rss.on_change(move |ch| {
            let Some(c) = weak.upgrade() else { return };
            match ch {
                Change::Added(rs) | Change::Deleted(rs) => c.enqueue_for_rs(rs),
                Change::Updated { old, new } => {
                    if podutil::controller_ref(&old.metadata).map(|r| &r.uid)
                        != podutil::controller_ref(&new.metadata).map(|r| &r.uid)
                        || old.metadata.labels != new.metadata.labels
                    {
                        c.enqueue_for_rs(old);
                    }
                    c.enqueue_for_rs(new);
                }
            }
        });
        let weak = Arc::downgrade(&c);
        c.pods.on_change(move |ch| {
            // Recreate waits for old pods to go away
            if let Change::Deleted(pod) = ch {
                let Some(c) = weak.upgrade() else { return };
                let Some(r) = podutil::controller_ref(&pod.metadata) else {
                    return;
                };
                let ns = pod.metadata.namespace.as_deref().unwrap_or("");
                if let Some(rs) = informer::get(&c.rss.store, ns, &r.name) {
                    if let Some(d) = c.owner_of(&rs) {
                        if !is_rolling(&d) {
                            c.queue.add(key_of(&*d));
                        }
                    }
                }
            }
        });
        c
    }

    fn owner_of(&self, rs: &ReplicaSet) -> Option<Arc<Deployment>> {
        let r = podutil::controller_ref(&rs.metadata)?;
        if r.kind != "Deployment" {
            return None;
        }
        let d = informer::get(
            &self.deploys.store,
            rs.metadata.namespace.as_deref().unwrap_or(""),
            &r.name,
        )?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    fn enqueue_for_rs(&self, rs: &ReplicaSet) {
        if let Some(d) = self.owner_of(rs) {
            self.queue.add(key_of(&*d));
        } else if podutil::controller_ref(&rs.metadata).is_none() {
            let ns = rs.metadata.namespace.clone();
            for d in self.deploys.store.state_filter(|d| {
                d.metadata.namespace == ns
                    && podutil::selector_matches(
                        d.spec.as_ref().map(|s| &s.selector),
                        rs.metadata.labels.as_ref(),
                    )
            }) {
                self.queue.add(key_of(&*d));
            }
        }
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let me = self.clone();
        let c = self.clone();
        crate::queue::run_workers_with_resync(
            "deployment",
            self.queue.clone(),
            workers,
            move || me.deploys.store.state().into_iter().map(|o| key_of(&*o)),
            move |key| {
                let c = c.clone();
                async move { c.sync(&key).await }
            },
        )
        .await;
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn d_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = informer::split_key(key);
        let Some(d) = informer::get(&self.deploys.store, ns, name) else {
            return Ok(());
        };
        let mut d = (*d).clone();
        let spec = d.spec.clone().unwrap_or_default();
        if podutil::selector_is_empty(Some(&spec.selector)) {
            self.recorder.warning(
                &d,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let mut st = d.status.clone().unwrap_or_default();
            if st.observed_generation != d.metadata.generation {
                st.observed_generation = d.metadata.generation;
                self.write_status(&d, &st).await?;
            }
            return Ok(());
        }
        let rs_list = self.claim_replica_sets(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let sets = self.get_all(&mut d, rs_list, false).await?;
            return self.sync_status(&d, &sets).await;
        }
        self.check_paused_conditions(&mut d).await?;
        if spec.paused == Some(true) {
            return self.sync_scale(&mut d, rs_list).await;
        }
        if self.is_scaling_event(&mut d, rs_list.clone()).await? {
            return self.sync_scale(&mut d, rs_list).await;
        }
        if is_rolling(&d) {
            self.rollout_rolling(&mut d, rs_list).await
        } else {
            self.rollout_recreate(&mut d, rs_list).await
        }
    }

    /// Adopt orphan ReplicaSets matching the selector and release owned ones that stopped matching.
    async fn claim_replica_sets(&self, d: &Deployment) -> anyhow::Result<Vec<ReplicaSet>> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let selector = d.spec.as_ref().map(|s| &s.selector);
        let api = self.rs_api(&ns);
        let mut out = vec![];
        for rs in self
            .rss
            .store
            .state_filter(|rs| rs.metadata.namespace.as_deref() == Some(ns.as_str()))
        {
            let matches = podutil::selector_matches(selector, rs.metadata.labels.as_ref());
            match podutil::controller_ref(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        out.push((*rs).clone());
                    } else {
                        crate::replicaset::release(&api, &*rs, &uid).await?;
                    }
                }
                Some(_) => {}
                None if matches
                    && d.metadata.deletion_timestamp.is_none()
                    && rs.metadata.deletion_timestamp.is_none() =>
                {
                    let r = podutil::new_controller_ref("apps/v1", "Deployment", &d.metadata);
                    crate::replicaset::adopt(&api, &*rs, &r).await?;
                    let mut rs = (*rs).clone();
                    rs.metadata
                        .owner_references
                        .get_or_insert_with(Vec::new)
                        .push(r);
                    out.push(rs);
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Upstream's getAllReplicaSetsAndSyncRevision: find (or create) the new ReplicaSet and
    /// bring revisions up to date.
    async fn get_all(
        &self,
        d: &mut Deployment,
        mut all: Vec<ReplicaSet>,
        create: bool,
    ) -> anyhow::Result<Sets> {
        all.sort_by_key(created);
        let template = d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let new = all.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template))
        });
        let max_old_revision = all
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new)
            .map(|(_, rs)| revision(rs))
            .max()
            .unwrap_or(0);
        let new_revision = max_old_revision + 1;
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        if let Some(i) = new {
            let mut rs = all[i].clone();
            let mut changed =
                set_new_rs_annotations(d, &mut rs, new_revision, true, MAX_REV_HISTORY_CHARS);
            let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if rs.spec.as_ref().and_then(|s| s.min_ready_seconds) != min_ready {
                rs.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = min_ready;
                changed = true;
            }
            if changed {
                let patch = json!({
                    "metadata": {"annotations": rs.metadata.annotations, "resourceVersion": rs.metadata.resource_version},
                    "spec": {"minReadySeconds": min_ready},
                });
                rs = self
                    .rs_api(&ns)
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
            let rev = annotation_of(&rs.metadata, REVISION);
            all[i] = rs;
            self.set_deployment_revision(d, &rev).await?;
            let mut st = d.status.clone().unwrap_or_default();
            if progress_deadline(d).is_some() && get_condition(&st, "Progressing").is_none() {
                let msg = format!("Found new replica set \"{}\"", all[i].name_any());
                set_condition(
                    &mut st,
                    new_condition("Progressing", "True", "FoundNewReplicaSet", msg),
                );
                self.write_status(d, &st).await?;
                d.status = Some(st);
            }
            return Ok(Sets { all, new: Some(i) });
        }
        if !create {
            return Ok(Sets { all, new: None });
        }
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision);
        let mut new_template = template.clone();
        new_template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{}", d.name_any(), hash)),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![podutil::new_controller_ref(
                    "apps/v1",
                    "Deployment",
                    &d.metadata,
                )]),
                labels: new_template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(new_template),
            }),
            status: None,
        };
        let all_sum: i32 = all.iter().map(rs_replicas).sum();
        let count = new_rs_new_replicas(d, all_sum, 0);
        rs.spec.as_mut().unwrap().replicas = Some(count);
        set_new_rs_annotations(d, &mut rs, new_revision, false, MAX_REV_HISTORY_CHARS);
        let api = self.rs_api(&ns);
        let created_rs = match api.create(&PostParams::default(), &rs).await {
            Ok(c) => c,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let live = api.get(&rs.name_any()).await?;
                let ours = podutil::controller_ref(&live.metadata).map(|r| &r.uid)
                    == d.metadata.uid.as_ref();
                if ours
                    && live
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.as_ref())
                        .is_some_and(|t| equal_ignore_hash(t, &template))
                {
                    // the cache lagged; use it on the next sync
                    return Err(anyhow::anyhow!(
                        "replica set {} exists but is not in the cache yet",
                        live.name_any()
                    ));
                }
                let mut st = d.status.clone().unwrap_or_default();
                st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                self.write_status(d, &st).await?;
                return Err(anyhow::anyhow!(
                    "hash collision for replica set {}",
                    rs.name_any()
                ));
            }
            Err(e) => {
                let mut st = d.status.clone().unwrap_or_default();
                let msg = format!(
                    "Failed to create new replica set \"{}\": {e}",
                    rs.name_any()
                );
                if progress_deadline(d).is_some() {
                    set_condition(
                        &mut st,
                        new_condition("Progressing", "False", "ReplicaSetCreateError", msg.clone()),
                    );
                    let _ = self.write_status(d, &st).await;
                }
                self.recorder.warning(d, "FailedCreate", msg);
                return Err(e.into());
            }
        };
        if count > 0 {
            self.recorder.normal(
                d,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} to {} from 0",
                    created_rs.name_any(),
                    count
                ),
            );
        }
        self.set_deployment_revision(d, &new_revision.to_string())
            .await?;
        if progress_deadline(d).is_some() {
            let mut st = d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set \"{}\"", created_rs.name_any());
            set_condition(
                &mut st,
                new_condition("Progressing", "True", "NewReplicaSetCreated", msg),
            );
            self.write_status(d, &st).await?;
            d.status = Some(st);
        }
        all.push(created_rs);
        let i = all.len() - 1;
        Ok(Sets { all, new: Some(i) })
    }

    async fn set_deployment_revision(&self, d: &mut Deployment, rev: &str) -> anyhow::Result<()> {
        if rev.is_empty() || annotation_of(&d.metadata, REVISION) == rev {
            return Ok(());
        }
        // through /status, as upstream: annotation changes on the main resource would bump the
        // Deployment's generation
        let patch = json!({"metadata": {"annotations": {REVISION: rev}}});
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let updated = self
            .d_api(&ns)
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        d.metadata.annotations = updated.metadata.annotations;
        Ok(())
    }

    async fn write_status(&self, d: &Deployment, st: &DeploymentStatus) -> anyhow::Result<()> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let mut v = serde_json::to_value(st)?;
        for f in [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ] {
            if v.get(f).is_none() {
                v[f] = json!(0);
            }
        }
        let patch = json!({ "status": v });
        match self
            .d_api(&ns)
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> anyhow::Result<()> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let mut st = d.status.clone().unwrap_or_default();
        let cond = get_condition(&st, "Progressing");
        if cond.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
            return Ok(());
        }
        let paused_exists = cond.is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"));
        let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        if paused && !paused_exists {
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                ),
            );
        } else if !paused && paused_exists {
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed".into(),
                ),
            );
        } else {
            return Ok(());
        }
        self.write_status(d, &st).await?;
        d.status = Some(st);
        Ok(())
    }

    async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> anyhow::Result<bool> {
        let sets = self.get_all(d, rs_list, false).await?;
        Ok(sets
            .all
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .any(|rs| desired_annotation(rs).is_some_and(|v| v != replicas(d))))
    }

    /// Scale one ReplicaSet (and its replica annotations); records ScalingReplicaSet.
    async fn scale_rs(
        &self,
        sets: &mut Sets,
        i: usize,
        new_scale: i32,
        d: &Deployment,
    ) -> anyhow::Result<bool> {
        let rs = &sets.all[i];
        let old_scale = rs_replicas(rs);
        let size_needs = old_scale != new_scale;
        let (dr, mr) = (replicas(d), replicas(d) + max_surge(d));
        let ann_needs = replicas_annotations_need_update(rs, dr, mr);
        if !size_needs && !ann_needs {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: dr.to_string(), MAX_REPLICAS: mr.to_string()}, "resourceVersion": rs.metadata.resource_version},
            "spec": {"replicas": new_scale},
        });
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let updated = self
            .rs_api(&ns)
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        if size_needs {
            let op = if new_scale > old_scale { "up" } else { "down" };
            self.recorder.normal(
                d,
                "ScalingReplicaSet",
                format!(
                    "Scaled {op} replica set {} to {new_scale} from {old_scale}",
                    updated.name_any()
                ),
            );
        }
        sets.all[i] = updated;
        Ok(size_needs)
    }

    /// Upstream's sync: scaling (proportionally for rolling updates) and, when paused, cleanup.
    async fn sync_scale(&self, d: &mut Deployment, rs_list: Vec<ReplicaSet>) -> anyhow::Result<()> {
        let mut sets = self.get_all(d, rs_list, false).await?;
        self.scale(d, &mut sets).await?;
        if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(d, &sets).await?;
        }
        self.sync_status(d, &sets).await
    }

    async fn scale(&self, d: &Deployment, sets: &mut Sets) -> anyhow::Result<()> {
        let want = replicas(d);
        // the only active set (or the newest) takes all replicas
        if let Some(i) = active_or_latest(sets) {
            if rs_replicas(&sets.all[i]) != want {
                self.scale_rs(sets, i, want, d).await?;
            }
            return Ok(());
        }
        // saturated new set: old sets go to zero
        if let Some(n) = sets.new_rs() {
            if rs_replicas(n) == want
                && desired_annotation(n) == Some(want)
                && rs_available(n) == want
            {
                for i in sets.old_idx() {
                    if rs_replicas(&sets.all[i]) > 0 {
                        self.scale_rs(sets, i, 0, d).await?;
                    }
                }
                return Ok(());
            }
        }
        if !is_rolling(d) {
            return Ok(());
        }
        let mut active: Vec<usize> = (0..sets.all.len())
            .filter(|i| rs_replicas(&sets.all[*i]) > 0)
            .collect();
        let total: i32 = active.iter().map(|i| rs_replicas(&sets.all[*i])).sum();
        let allowed = if want > 0 { want + max_surge(d) } else { 0 };
        let to_add = allowed - total;
        let op;
        if to_add > 0 {
            // larger first, newer first on ties
            active.sort_by(|a, b| {
                let (x, y) = (&sets.all[*a], &sets.all[*b]);
                rs_replicas(y)
                    .cmp(&rs_replicas(x))
                    .then_with(|| created(y).cmp(&created(x)))
            });
            op = "up";
        } else if to_add < 0 {
            // larger first, older first on ties
            active.sort_by(|a, b| {
                let (x, y) = (&sets.all[*a], &sets.all[*b]);
                rs_replicas(y)
                    .cmp(&rs_replicas(x))
                    .then_with(|| created(x).cmp(&created(y)))
            });
            op = "down";
        } else {
            return Ok(());
        }
        let _ = op;
        let mut added = 0;
        let mut sizes: Vec<(usize, i32)> = vec![];
        for &i in &active {
            let rs = &sets.all[i];
            let p = proportion(rs, d, to_add, added);
            sizes.push((i, rs_replicas(rs) + p));
            added += p;
        }
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + to_add - added).max(0);
        }
        for (i, size) in sizes {
            self.scale_rs(sets, i, size, d).await?;
        }
        Ok(())
    }

    async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> anyhow::Result<()> {
        let mut sets = self.get_all(d, rs_list, true).await?;
        let n = sets.new.expect("created when missing");
        // reconcile the new set
        let want = replicas(d);
        let cur = rs_replicas(&sets.all[n]);
        let scaled_up = if cur == want {
            false
        } else if cur > want {
            self.scale_rs(&mut sets, n, want, d).await?
        } else {
            let all_sum: i32 = sets.all.iter().map(rs_replicas).sum();
            let count = new_rs_new_replicas(d, all_sum, cur);
            self.scale_rs(&mut sets, n, count, d).await?
        };
        if scaled_up {
            return self.sync_rollout_status(d, &sets).await;
        }
        if self.reconcile_old(d, &mut sets).await? {
            return self.sync_rollout_status(d, &sets).await;
        }
        if complete(d, d.status.as_ref().unwrap_or(&Default::default())) {
            self.cleanup(d, &sets).await?;
        }
        self.sync_rollout_status(d, &sets).await
    }

    /// Upstream's reconcileOldReplicaSets: scale old sets down within maxUnavailable.
    async fn reconcile_old(&self, d: &Deployment, sets: &mut Sets) -> anyhow::Result<bool> {
        let n = sets.new.expect("new set");
        let old_count: i32 = sets
            .old_idx()
            .iter()
            .map(|i| rs_replicas(&sets.all[*i]))
            .sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all_count: i32 = sets.all.iter().map(rs_replicas).sum();
        let min_available = replicas(d) - max_unavailable(d);
        let new_unavailable = rs_replicas(&sets.all[n]) - rs_available(&sets.all[n]);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let mut old: Vec<usize> = sets
            .old_idx()
            .into_iter()
            .filter(|i| rs_replicas(&sets.all[*i]) > 0)
            .collect();
        old.sort_by_key(|i| created(&sets.all[*i]));
        // clean up unhealthy replicas first
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &sets.all[i];
            let (r, a) = (rs_replicas(rs), rs_available(rs));
            if r == 0 || r == a {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(r - a);
            self.scale_rs(sets, i, r - down, d).await?;
            cleaned += down;
        }
        // then scale down healthy ones while availability allows
        let available: i32 = sets.all.iter().map(rs_available).sum();
        let mut scaled = 0;
        if available > min_available {
            let total_down = available - min_available;
            for &i in &old {
                if scaled >= total_down {
                    break;
                }
                let r = rs_replicas(&sets.all[i]);
                if r == 0 {
                    continue;
                }
                let down = r.min(total_down - scaled);
                self.scale_rs(sets, i, r - down, d).await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> anyhow::Result<()> {
        let mut sets = self.get_all(d, rs_list.clone(), false).await?;
        let mut scaled_down = false;
        for i in sets.old_idx() {
            if rs_replicas(&sets.all[i]) > 0 {
                scaled_down |= self.scale_rs(&mut sets, i, 0, d).await?;
            }
        }
        if scaled_down {
            return self.sync_rollout_status(d, &sets).await;
        }
        // wait until no pod of an old set is running
        let old_uids: Vec<String> = sets
            .old_idx()
            .iter()
            .filter_map(|i| sets.all[*i].metadata.uid.clone())
            .collect();
        let old_status: i32 = sets
            .old_idx()
            .iter()
            .map(|i| rs_status_replicas(&sets.all[*i]))
            .sum();
        let ns = d.metadata.namespace.clone();
        let old_pods_running = old_status > 0
            || !self
                .pods
                .store
                .state_filter(|p| {
                    p.metadata.namespace == ns
                        && podutil::controller_ref(&p.metadata)
                            .is_some_and(|r| old_uids.contains(&r.uid))
                        && !matches!(
                            p.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Succeeded" | "Failed")
                        )
                })
                .is_empty();
        if old_pods_running {
            return self.sync_rollout_status(d, &sets).await;
        }
        if sets.new.is_none() {
            sets = self.get_all(d, sets.all, true).await?;
        }
        let n = sets.new.expect("created");
        if rs_replicas(&sets.all[n]) != replicas(d) {
            self.scale_rs(&mut sets, n, replicas(d), d).await?;
        }
        if complete(d, d.status.as_ref().unwrap_or(&Default::default())) {
            self.cleanup(d, &sets).await?;
        }
        self.sync_rollout_status(d, &sets).await
    }

    /// Delete old ReplicaSets beyond revisionHistoryLimit (only those with no pods).
    async fn cleanup(&self, d: &Deployment, sets: &Sets) -> anyhow::Result<()> {
        let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = sets
            .old_idx()
            .into_iter()
            .map(|i| &sets.all[i])
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - limit as i64;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            revision(a)
                .cmp(&revision(b))
                .then_with(|| created(a).cmp(&created(b)))
        });
        for rs in cleanable.into_iter().take(diff as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self
                .rs_api(rs.metadata.namespace.as_deref().unwrap_or(""))
                .delete(&rs.name_any(), &dp)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn calculate_status(&self, d: &Deployment, sets: &Sets) -> DeploymentStatus {
        let available: i32 = sets.all.iter().map(rs_available).sum();
        let total: i32 = sets.all.iter().map(rs_replicas).sum();
        let prev = d.status.clone().unwrap_or_default();
        let mut st = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(sets.all.iter().map(rs_status_replicas).sum()),
            updated_replicas: Some(sets.new_rs().map(rs_status_replicas).unwrap_or(0)),
            ready_replicas: Some(sets.all.iter().map(rs_ready).sum()),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            collision_count: prev.collision_count,
            conditions: prev.conditions.clone(),
            terminating_replicas: None,
        };
        if available >= replicas(d) - max_unavailable(d) {
            set_condition(
                &mut st,
                new_condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".into(),
                ),
            );
        } else {
            set_condition(
                &mut st,
                new_condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.".into(),
                ),
            );
        }
        st
    }

    async fn sync_status(&self, d: &Deployment, sets: &Sets) -> anyhow::Result<()> {
        let st = self.calculate_status(d, sets);
        if d.status.as_ref() == Some(&st) {
            return Ok(());
        }
        self.write_status(d, &st).await
    }

    /// Upstream's syncRolloutStatus: status plus the Progressing condition and the requeue
    /// that notices a passed progress deadline.
    async fn sync_rollout_status(&self, d: &Deployment, sets: &Sets) -> anyhow::Result<()> {
        let mut st = self.calculate_status(d, sets);
        if progress_deadline(d).is_none() {
            remove_condition(&mut st, "Progressing");
        }
        let prev = d.status.clone().unwrap_or_default();
        let cur = get_condition(&prev, "Progressing").cloned();
        let is_complete = st.replicas == st.updated_replicas
            && cur
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
        if progress_deadline(d).is_some() && !is_complete {
            let what = match sets.new_rs() {
                Some(rs) => format!("ReplicaSet \"{}\"", rs.name_any()),
                None => format!("Deployment \"{}\"", d.name_any()),
            };
            if complete(d, &st) {
                set_condition(
                    &mut st,
                    new_condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        format!("{what} has successfully progressed."),
                    ),
                );
            } else if progressing(d, &st) {
                let mut c = new_condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    format!("{what} is progressing."),
                );
                if let Some(cur) = &cur {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                }
                remove_condition(&mut st, "Progressing");
                set_condition(&mut st, c);
            } else if timed_out(d, &st, Timestamp::now()) {
                set_condition(
                    &mut st,
                    new_condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("{what} has timed out progressing."),
                    ),
                );
            }
        }
        // ReplicaFailure from the sets
        let failure = sets.all.iter().find_map(|rs| {
            rs.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
                .cloned()
        });
        match failure {
            Some(f) => set_condition(
                &mut st,
                new_condition(
                    "ReplicaFailure",
                    &f.status,
                    f.reason.as_deref().unwrap_or(""),
                    f.message.clone().unwrap_or_default(),
                ),
            ),
            None => remove_condition(&mut st, "ReplicaFailure"),
        }
        if d.status.as_ref() == Some(&st) {
            self.requeue_stuck(d, &st);
            return Ok(());
        }
        self.write_status(d, &st).await?;
        self.requeue_stuck(d, &st);
        Ok(())
    }

    fn requeue_stuck(&self, d: &Deployment, st: &DeploymentStatus) {
        let Some(deadline) = progress_deadline(d) else {
            return;
        };
        let Some(c) = get_condition(st, "Progressing") else {
            return;
        };
        if complete(d, st) || c.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return;
        }
        let Some(t) = &c.last_update_time else { return };
        let at = t.0.as_second() + deadline as i64 + 1;
        let after = (at - Timestamp::now().as_second()).max(1) as u64;
        self.queue.add_after(key_of(d), Duration::from_secs(after));
    }
}

fn annotation_of(meta: &ObjectMeta, k: &str) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(k))
        .cloned()
        .unwrap_or_default()
}

/// Upstream's FindActiveOrLatest: the only active set, or the newest if none is active.
fn active_or_latest(sets: &Sets) -> Option<usize> {
    if sets.all.is_empty() {
        return None;
    }
    let mut old = sets.old_idx();
    old.sort_by_key(|i| std::cmp::Reverse(created(&sets.all[*i])));
    let mut cands = old.clone();
    if let Some(n) = sets.new {
        cands.push(n);
    }
    let active: Vec<usize> = cands
        .into_iter()
        .filter(|i| rs_replicas(&sets.all[*i]) > 0)
        .collect();
    match active.len() {
        0 => sets.new.or(old.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}
