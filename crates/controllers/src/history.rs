//! ControllerRevision history shared by the StatefulSet and DaemonSet controllers (upstream's
//! controller/history): revision data holding the pod template, its hash with the collision
//! count, creation with hash-collision handling, re-use of an equal older revision, and
//! pruning beyond revisionHistoryLimit.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use crate::deployment::util::{canonical, compute_hash, safe_encode};
use crate::podutil;

/// The pod label naming the revision a pod was made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The label carrying a ControllerRevision's own hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Errors of revision handling.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("api: {0}")]
    Api(#[from] kube::Error),
    #[error("too many revision hash collisions for {0}")]
    Collisions(String),
}

/// The data a revision stores: the pod template as a replacing strategic-merge patch.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template held by a revision.
pub fn revision_template(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

fn fnv32(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h = h.wrapping_mul(16_777_619);
        h ^= *b as u32;
    }
    h
}

/// FNV-32 over the canonical revision data, then the decimal collision count, safe-encoded
/// (upstream's HashControllerRevision, which hashes the raw JSON bytes).
pub fn hash_revision(data: &Value, collision_count: Option<i32>) -> String {
    let mut s = String::new();
    canonical(data, &mut s);
    let mut h = fnv32(s.as_bytes(), 2_166_136_261);
    if let Some(c) = collision_count {
        h = fnv32(c.to_string().as_bytes(), h);
    }
    safe_encode(&h.to_string())
}

/// `<parent>-<hash>`, the parent name cut so the whole fits 253 characters.
pub fn revision_name(parent: &str, hash: &str) -> String {
    let keep = 223.min(parent.len());
    format!("{}-{hash}", &parent[..keep])
}

fn data_of(rev: &ControllerRevision) -> Value {
    rev.data
        .as_ref()
        .map(|d| d.0.clone())
        .unwrap_or(Value::Null)
}

/// Revisions equal in data (what upstream's FindEqualRevisions compares).
pub fn equal_data(rev: &ControllerRevision, data: &Value) -> bool {
    data_of(rev) == *data
}

/// What the owner needs from its history.
pub struct Revisions {
    pub current: ControllerRevision,
    pub update: ControllerRevision,
    pub collision_count: i32,
}

/// The owner of revisions (a StatefulSet or DaemonSet).
pub struct Owner<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub meta: &'a ObjectMeta,
    pub labels: BTreeMap<String, String>,
    pub current_revision_name: Option<String>,
    pub collision_count: i32,
    /// How the revision is named and labelled: StatefulSets hash the revision data into
    /// `controller.kubernetes.io/hash`; DaemonSets hash the pod template as Deployments do
    /// (upstream's ComputeHash) into `controller-revision-hash` and copy their annotations.
    pub style: Style<'a>,
}

impl<'a> Owner<'a> {
    /// The apps/v1 workload `kind` described by `meta`, whose pods come from `template`.
    pub fn new(
        kind: &'a str,
        meta: &'a ObjectMeta,
        template: &PodTemplateSpec,
        current_revision_name: Option<String>,
        collision_count: Option<i32>,
        style: Style<'a>,
    ) -> Owner<'a> {
        Owner {
            api_version: "apps/v1",
            kind,
            meta,
            labels: template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            current_revision_name,
            collision_count: collision_count.unwrap_or(0),
            style,
        }
    }
}

/// The revisions in `cache` whose controller is the object of `meta`.
pub fn owned_revisions(
    cache: &crate::informer::Informer<ControllerRevision>,
    meta: &ObjectMeta,
) -> Vec<Arc<ControllerRevision>> {
    let uid = meta.uid.as_deref().unwrap_or_default();
    cache.store.state_filter(|r| {
        r.metadata.namespace == meta.namespace
            && podutil::controller_ref(&r.metadata).is_some_and(|o| o.uid == uid)
    })
}

/// See [`Owner::style`].
pub enum Style<'a> {
    StatefulSet,
    DaemonSet(&'a PodTemplateSpec),
}

/// Make sure a revision for `data` exists and is the newest; returns the current and update
/// revisions. `revisions` are the owner's existing revisions.
pub async fn sync_revisions(
    client: &Client,
    owner: &Owner<'_>,
    data: Value,
    mut revisions: Vec<Arc<ControllerRevision>>,
) -> Result<Revisions, HistoryError> {
    let ns = owner.meta.namespace.as_deref().unwrap_or("default");
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    revisions.sort_by_key(|r| (r.revision, r.name_any()));
    let next = revisions.last().map(|r| r.revision + 1).unwrap_or(1);
    let mut collision_count = owner.collision_count;
    let equal: Vec<&Arc<ControllerRevision>> =
        revisions.iter().filter(|r| equal_data(r, &data)).collect();
    let update = match equal.last() {
        Some(r)
            if Some(r.metadata.uid.clone()) == revisions.last().map(|l| l.metadata.uid.clone()) =>
        {
            (***r).clone()
        }
        Some(r) => {
            // an older revision equal to the template (a rollback): make it the newest
            api.patch(
                &r.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"revision": next})),
            )
            .await?
        }
        None => {
            let mut created = None;
            for _ in 0..20 {
                let mut labels = owner.labels.clone();
                let mut annotations = None;
                let hash = match owner.style {
                    Style::StatefulSet => {
                        let h = hash_revision(&data, Some(collision_count));
                        labels.insert(HASH_LABEL.into(), h.clone());
                        h
                    }
                    Style::DaemonSet(t) => {
                        let h = compute_hash(t, Some(collision_count));
                        labels.insert(REVISION_HASH_LABEL.into(), h.clone());
                        annotations = owner.meta.annotations.clone();
                        h
                    }
                };
                let rev = ControllerRevision {
                    metadata: ObjectMeta {
                        name: Some(revision_name(
                            owner.meta.name.as_deref().unwrap_or(""),
                            &hash,
                        )),
                        namespace: Some(ns.to_string()),
                        labels: Some(labels),
                        annotations,
                        owner_references: Some(vec![podutil::new_controller_ref(
                            owner.api_version,
                            owner.kind,
                            owner.meta,
                        )]),
                        ..Default::default()
                    },
                    data: Some(RawExtension(data.clone())),
                    revision: next,
                };
                match api.create(&PostParams::default(), &rev).await {
                    Ok(r) => {
                        created = Some(r);
                        break;
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        let existing = api.get(&rev.name_any()).await?;
                        let ours = podutil::controller_ref(&existing.metadata)
                            .is_some_and(|r| Some(&r.uid) == owner.meta.uid.as_ref());
                        if ours && equal_data(&existing, &data) {
                            created = Some(existing);
                            break;
                        }
                        collision_count += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            created.ok_or_else(|| {
                HistoryError::Collisions(owner.meta.name.clone().unwrap_or_default())
            })?
        }
    };
    let current = owner
        .current_revision_name
        .as_ref()
        .and_then(|n| revisions.iter().find(|r| r.name_any() == *n))
        .map(|r| (**r).clone())
        .unwrap_or_else(|| update.clone());
    Ok(Revisions {
        current,
        update,
        collision_count,
    })
}

/// Delete the oldest revisions beyond `limit` that are neither `live` nor the current/update.
pub async fn truncate(
    client: &Client,
    ns: &str,
    revisions: &[Arc<ControllerRevision>],
    live: &[String],
    limit: i32,
) {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let mut dead: Vec<&Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let limit = limit.max(0) as usize;
    if dead.len() <= limit {
        return;
    }
    dead.sort_by_key(|r| r.revision);
    let n = dead.len() - limit;
    for r in dead.into_iter().take(n) {
        if let Err(e) = api.delete(&r.name_any(), &Default::default()).await {
            tracing::debug!(error = %e, revision = %r.name_any(), "deleting old revision failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn revision_data_round_trips_the_template() {
        let t = template("nginx:1");
        let data = revision_data(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(revision_template(&rev), Some(t));
    }

    #[test]
    fn hashes_depend_on_template_and_collision_count() {
        let a = revision_data(&template("nginx:1"));
        let b = revision_data(&template("nginx:2"));
        let h = hash_revision(&a, Some(0));
        assert_eq!(h, hash_revision(&a, Some(0)));
        assert_ne!(h, hash_revision(&b, Some(0)));
        assert_ne!(h, hash_revision(&a, Some(1)));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(revision_name("web", &h), format!("web-{h}"));
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "abc").len(), 223 + 4);
    }
}
