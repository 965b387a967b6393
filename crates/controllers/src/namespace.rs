//! The namespace controller (upstream's pkg/controller/namespace): a namespace being deleted
//! has every namespaced object deleted (resources found through discovery); once none remain,
//! the `kubernetes` finalizer is removed through `namespaces/{name}/finalize` and the API
//! server deletes the namespace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::informer::{self, Change, Informer};
use crate::queue::Queue;

/// The finalizer this controller owns in spec.finalizers.
pub const FINALIZER: &str = "kubernetes";

type Resources = Vec<(ApiResource, ApiCapabilities)>;

pub struct NamespaceController {
    client: Client,
    namespaces: Arc<Informer<Namespace>>,
    queue: Queue,
    discovery: Mutex<Option<(Instant, Resources)>>,
}

impl NamespaceController {
    pub fn new(client: Client, namespaces: Arc<Informer<Namespace>>) -> Arc<Self> {
        let c = Arc::new(NamespaceController {
            client,
            namespaces,
            queue: Queue::new(),
            discovery: Mutex::new(None),
        });
        let q = c.queue.clone();
        c.namespaces.on_change(move |ch| match ch {
            Change::Added(ns) | Change::Updated { new: ns, .. } => {
                if ns.metadata.deletion_timestamp.is_some() {
                    q.add(ns.name_any());
                }
            }
            Change::Deleted(_) => {}
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let c = self.clone();
        crate::queue::run_workers("namespace", self.queue.clone(), workers, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await
    }

    /// Namespaced resources that can be listed and deleted (cached for 10 s).
    async fn resources(&self) -> anyhow::Result<Resources> {
        if let Some((at, r)) = self.discovery.lock().unwrap().as_ref() {
            if at.elapsed() < Duration::from_secs(10) {
                return Ok(r.clone());
            }
        }
        let d = Discovery::new(self.client.clone()).run().await?;
        let mut out = vec![];
        for g in d.groups() {
            for (ar, caps) in g.recommended_resources() {
                if caps.scope == Scope::Namespaced
                    && caps.supports_operation(verbs::LIST)
                    && caps.supports_operation(verbs::DELETE)
                {
                    out.push((ar, caps));
                }
            }
        }
        *self.discovery.lock().unwrap() = Some((Instant::now(), out.clone()));
        Ok(out)
    }

    async fn sync(&self, name: &str) -> anyhow::Result<()> {
        let Some(ns) = informer::get(&self.namespaces.store, "", name) else {
            return Ok(());
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(());
        }
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let resources = self.resources().await?;
        let mut remaining = 0usize;
        let mut remaining_kinds = vec![];
        let mut failures = vec![];
        for (ar, caps) in &resources {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), name, ar);
            let dp = DeleteParams::background();
            if caps.supports_operation(verbs::DELETE_COLLECTION) {
                if let Err(e) = api.delete_collection(&dp, &ListParams::default()).await {
                    failures.push(format!("{}: {e}", ar.plural));
                }
            }
            let list = match api.list(&ListParams::default()).await {
                Ok(l) => l,
                Err(e) => {
                    failures.push(format!("{}: {e}", ar.plural));
                    continue;
                }
            };
            if list.items.is_empty() {
                continue;
            }
            remaining += list.items.len();
            remaining_kinds.push(format!(
                "{}.{} has {} resource instances",
                ar.plural,
                ar.group,
                list.items.len()
            ));
            for o in list
                .items
                .iter()
                .filter(|o| o.metadata.deletion_timestamp.is_none())
            {
                match api.delete(&o.name_any(), &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => failures.push(format!("{}/{}: {e}", ar.plural, o.name_any())),
                }
            }
        }
        self.set_conditions(&ns, &remaining_kinds, &failures).await;
        if remaining > 0 || !failures.is_empty() {
            self.queue.add_after(name, Duration::from_secs(1));
            return Ok(());
        }
        let mut fin = (*ns).clone();
        fin.spec.get_or_insert_with(Default::default).finalizers =
            Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api
            .replace_subresource("finalize", name, &PostParams::default(), &fin)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Upstream's deletion conditions on the namespace status.
    async fn set_conditions(&self, ns: &Namespace, remaining: &[String], failures: &[String]) {
        let now = Time(Timestamp::now());
        let cond = |t: &str, bad: bool, reason_bad: &str, reason_ok: &str, msg: String| {
            NamespaceCondition {
                type_: t.into(),
                status: if bad { "True" } else { "False" }.into(),
                reason: Some(if bad { reason_bad } else { reason_ok }.into()),
                message: Some(msg),
                last_transition_time: Some(now.clone()),
            }
        };
        let want = vec![
            cond(
                "NamespaceDeletionContentFailure",
                !failures.is_empty(),
                "ContentDeletionFailed",
                "ContentDeleted",
                if failures.is_empty() {
                    "All content successfully deleted, may be waiting on finalization".into()
                } else {
                    failures.join(", ")
                },
            ),
            cond(
                "NamespaceContentRemaining",
                !remaining.is_empty(),
                "SomeResourcesRemain",
                "ContentRemoved",
                if remaining.is_empty() {
                    "All content successfully removed".into()
                } else {
                    format!("Some resources are remaining: {}", remaining.join(", "))
                },
            ),
        ];
        let cur = ns
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let same = want.iter().all(|w| {
            cur.iter()
                .any(|c| c.type_ == w.type_ && c.status == w.status && c.message == w.message)
        });
        if same {
            return;
        }
        let mut merged: Vec<NamespaceCondition> = cur
            .into_iter()
            .filter(|c| !want.iter().any(|w| w.type_ == c.type_))
            .collect();
        merged.extend(want);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let patch = json!({"status": {"conditions": merged}});
        if let Err(e) = api
            .patch_status(
                &ns.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::debug!(error = %e, "namespace conditions not updated");
        }
    }
}
