//! The garbage collector (upstream's pkg/controller/garbagecollector): a graph of every
//! object's ownerReferences built from watches on all deletable resources (found through
//! discovery). Dependents whose owners are all gone are deleted (Background); an owner
//! deleted in Foreground has its dependents deleted first (those with blockOwnerDeletion hold
//! it back) before its `foregroundDeletion` finalizer is removed; an owner deleted with Orphan
//! has its ownerReferences removed from dependents before its `orphan` finalizer goes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::json;

use crate::queue::Queue;

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// Errors of the garbage collector.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("unknown owner kind {0}")]
    UnknownKind(String),
    #[error("api: {0}")]
    Api(#[from] kube::Error),
}

/// One object in the graph.
#[derive(Clone, Debug)]
pub struct Node {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
}

/// The ownership graph: objects by uid and the dependents of each owner uid.
#[derive(Default)]
pub struct Graph {
    pub nodes: HashMap<String, Node>,
    pub dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Insert or update; returns the previous node.
    pub fn upsert(&mut self, uid: &str, node: Node) -> Option<Node> {
        let old = self.nodes.insert(uid.to_string(), node.clone());
        if let Some(o) = &old {
            for r in &o.owners {
                if let Some(d) = self.dependents.get_mut(&r.uid) {
                    d.remove(uid);
                }
            }
        }
        for r in &node.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(uid.to_string());
        }
        old
    }

    pub fn remove(&mut self, uid: &str) -> Option<Node> {
        let old = self.nodes.remove(uid)?;
        for r in &old.owners {
            if let Some(d) = self.dependents.get_mut(&r.uid) {
                d.remove(uid);
                if d.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
        Some(old)
    }

    /// Dependents of `owner` still present, with whether their reference blocks deletion.
    pub fn dependents_of(&self, owner: &str) -> Vec<(String, bool)> {
        self.dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|u| {
                let n = self.nodes.get(u)?;
                let block = n
                    .owners
                    .iter()
                    .any(|r| r.uid == owner && r.block_owner_deletion == Some(true));
                Some((u.clone(), block))
            })
            .collect()
    }
}

/// What to do with a dependent given the state of its owners (upstream's attemptToDeleteItem
/// classification).
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Every owner is present and not deleting in the foreground: keep it.
    Keep,
    /// Some owners are alive: remove the references to the absent or foreground-deleting ones.
    RemoveRefs(Vec<String>),
    /// Delete it with this propagation policy.
    Delete(PropagationPolicy),
}

/// Owner state as looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    Present,
    Absent,
    /// Present, being deleted with foregroundDeletion.
    WaitingForDependents,
}

/// Decide about a dependent from its owners' states.
pub fn verdict(node: &Node, owners: &[(String, OwnerState)], has_dependents: bool) -> Verdict {
    let solid = owners
        .iter()
        .filter(|(_, s)| *s == OwnerState::Present)
        .count();
    let gone: Vec<String> = owners
        .iter()
        .filter(|(_, s)| *s != OwnerState::Present)
        .map(|(u, _)| u.clone())
        .collect();
    let waiting = owners
        .iter()
        .any(|(_, s)| *s == OwnerState::WaitingForDependents);
    if owners.is_empty() {
        return Verdict::Keep;
    }
    if solid > 0 {
        if gone.is_empty() {
            return Verdict::Keep;
        }
        return Verdict::RemoveRefs(gone);
    }
    if waiting && has_dependents {
        return Verdict::Delete(PropagationPolicy::Foreground);
    }
    if node.finalizers.iter().any(|f| f == ORPHAN) {
        Verdict::Delete(PropagationPolicy::Orphan)
    } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
        Verdict::Delete(PropagationPolicy::Foreground)
    } else {
        Verdict::Delete(PropagationPolicy::Background)
    }
}

fn ignored(ar: &ApiResource) -> bool {
    ar.plural == "events" && (ar.group.is_empty() || ar.group == "events.k8s.io")
}

pub struct GarbageCollector {
    client: Client,
    graph: Mutex<Graph>,
    /// (group, kind) -> resource, from discovery
    kinds: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
    queue: Queue,
}

fn node_of(ar: &ApiResource, meta: &kube::api::ObjectMeta) -> Node {
    Node {
        resource: ar.clone(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        owners: meta.owner_references.clone().unwrap_or_default(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
    }
}

fn group_of(api_version: &str) -> String {
    match api_version.split_once('/') {
        Some((g, _)) => g.to_string(),
        None => String::new(),
    }
}

impl GarbageCollector {
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(GarbageCollector {
            client,
            graph: Default::default(),
            kinds: Default::default(),
            queue: Queue::new(),
        })
    }

    /// Run until dropped: discovery every 30 s starts watches on new resources.
    pub async fn run(self: Arc<Self>) {
        let mut watched: HashSet<String> = HashSet::new();
        let mut tasks = tokio::task::JoinSet::new();
        let me = self.clone();
        tasks.spawn(async move {
            crate::queue::run_workers("garbagecollector", me.queue.clone(), 4, {
                let me = me.clone();
                move |uid| {
                    let me = me.clone();
                    async move { me.process(&uid).await }
                }
            })
            .await
        });
        loop {
            match Discovery::new(self.client.clone()).run().await {
                Ok(d) => {
                    // the kind map first: watch events may be processed at once
                    let mut kinds = HashMap::new();
                    let mut resources = vec![];
                    for g in d.groups() {
                        for (ar, caps) in g.recommended_resources() {
                            let namespaced = caps.scope == Scope::Namespaced;
                            kinds.insert(
                                (ar.group.clone(), ar.kind.clone()),
                                (ar.clone(), namespaced),
                            );
                            resources.push((ar, caps));
                        }
                    }
                    *self.kinds.lock().unwrap() = kinds;
                    for (ar, caps) in resources {
                        let ok = caps.supports_operation(verbs::LIST)
                            && caps.supports_operation(verbs::WATCH)
                            && caps.supports_operation(verbs::DELETE);
                        if !ok || ignored(&ar) {
                            continue;
                        }
                        if watched.insert(format!("{}/{}", ar.group, ar.plural)) {
                            let me = self.clone();
                            tasks.spawn(async move { me.watch(ar).await });
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "gc discovery failed"),
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }

    async fn watch(self: Arc<Self>, ar: ApiResource) {
        // metadata only, as upstream's collector: owners and finalizers are all it needs
        let api: Api<kube::core::PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &ar);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut mine: HashSet<String> = HashSet::new();
        let mut buffer: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, resource = %ar.plural, "gc watch error");
                    continue;
                }
            };
            match ev {
                Event::Apply(obj) | Event::InitApply(obj) => {
                    let Some(uid) = obj.metadata.uid.clone() else {
                        continue;
                    };
                    buffer.insert(uid.clone());
                    mine.insert(uid.clone());
                    self.observe(&uid, node_of(&ar, &obj.metadata));
                }
                Event::Delete(obj) => {
                    if let Some(uid) = obj.metadata.uid.clone() {
                        mine.remove(&uid);
                        self.forget(&uid);
                    }
                }
                Event::Init => buffer.clear(),
                Event::InitDone => {
                    for uid in mine.difference(&buffer).cloned().collect::<Vec<_>>() {
                        mine.remove(&uid);
                        self.forget(&uid);
                    }
                }
            }
        }
    }

    fn observe(&self, uid: &str, node: Node) {
        let mut g = self.graph.lock().unwrap();
        let old = g.upsert(uid, node.clone());
        // an owner being deleted with a finalizer the collector handles
        if node.deleting
            && node
                .finalizers
                .iter()
                .any(|f| f == FOREGROUND || f == ORPHAN)
        {
            self.queue.add(uid);
        }
        // a dependent whose owners are unknown or going away in the foreground
        let owners_changed = old.as_ref().is_none_or(|o| o.owners != node.owners);
        let needs_check = node.owners.iter().any(|r| match g.nodes.get(&r.uid) {
            None => true,
            Some(o) => o.deleting && o.finalizers.iter().any(|f| f == FOREGROUND),
        });
        if needs_check && (owners_changed || !node.deleting) {
            self.queue.add(uid);
        }
        // a dependent that got deleting / lost a reference: its foreground owners may be done
        if let Some(o) = old {
            for r in o
                .owners
                .iter()
                .filter(|r| !node.owners.iter().any(|n| n.uid == r.uid))
            {
                self.queue.add(r.uid.clone());
            }
        }
    }

    fn forget(&self, uid: &str) {
        let mut g = self.graph.lock().unwrap();
        let old = g.remove(uid);
        // its dependents may now be garbage
        for (d, _) in g.dependents_of(uid) {
            self.queue.add(d);
        }
        // its owners may be waiting for it
        if let Some(o) = old {
            for r in o.owners {
                self.queue.add(r.uid);
            }
        }
    }

    fn api_for(&self, node: &Node) -> Api<DynamicObject> {
        match &node.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &node.resource),
            None => Api::all_with(self.client.clone(), &node.resource),
        }
    }

    async fn process(&self, uid: &str) -> anyhow::Result<()> {
        let Some(node) = self.graph.lock().unwrap().nodes.get(uid).cloned() else {
            return Ok(());
        };
        if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN) {
            self.orphan_dependents(uid, &node).await?;
            return Ok(());
        }
        if node.deleting && node.finalizers.iter().any(|f| f == FOREGROUND) {
            self.foreground(uid, &node).await?;
        }
        if !node.owners.is_empty() {
            self.attempt_to_delete(uid, &node).await?;
        }
        Ok(())
    }

    async fn orphan_dependents(&self, uid: &str, node: &Node) -> anyhow::Result<()> {
        let deps: Vec<Node> = {
            let g = self.graph.lock().unwrap();
            g.dependents_of(uid)
                .into_iter()
                .filter_map(|(d, _)| g.nodes.get(&d).cloned())
                .collect()
        };
        for d in deps {
            self.remove_owner_refs(&d, &[uid.to_string()]).await?;
        }
        self.remove_finalizer(uid, node, ORPHAN).await
    }

    async fn foreground(&self, uid: &str, node: &Node) -> anyhow::Result<()> {
        let deps: Vec<(String, bool, Node)> = {
            let g = self.graph.lock().unwrap();
            g.dependents_of(uid)
                .into_iter()
                .filter_map(|(d, b)| g.nodes.get(&d).cloned().map(|n| (d, b, n)))
                .collect()
        };
        for (duid, _, dn) in &deps {
            if !dn.deleting {
                self.delete(duid, dn, PropagationPolicy::Foreground).await?;
            }
        }
        if deps.iter().any(|(_, block, _)| *block) {
            // dependents' deletions re-enqueue this owner
            self.queue.add_after(uid, Duration::from_secs(5));
            return Ok(());
        }
        self.remove_finalizer(uid, node, FOREGROUND).await
    }

    async fn owner_state(
        &self,
        r: &OwnerReference,
        namespace: Option<&str>,
    ) -> Result<OwnerState, GcError> {
        let known = self.graph.lock().unwrap().nodes.get(&r.uid).cloned();
        let (deleting, finalizers) = match known {
            Some(n) => (n.deleting, n.finalizers),
            None => {
                let entry = self
                    .kinds
                    .lock()
                    .unwrap()
                    .get(&(group_of(&r.api_version), r.kind.clone()))
                    .cloned();
                let Some((ar, namespaced)) = entry else {
                    return Err(GcError::UnknownKind(r.kind.clone()));
                };
                let api: Api<DynamicObject> = match (namespaced, namespace) {
                    (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
                    (true, None) => return Ok(OwnerState::Absent),
                    (false, _) => Api::all_with(self.client.clone(), &ar),
                };
                match api.get_opt(&r.name).await? {
                    Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => (
                        o.metadata.deletion_timestamp.is_some(),
                        o.metadata.finalizers.unwrap_or_default(),
                    ),
                    _ => return Ok(OwnerState::Absent),
                }
            }
        };
        Ok(if deleting && finalizers.iter().any(|f| f == FOREGROUND) {
            OwnerState::WaitingForDependents
        } else {
            OwnerState::Present
        })
    }

    async fn attempt_to_delete(&self, uid: &str, node: &Node) -> anyhow::Result<()> {
        if node.deleting && !node.finalizers.iter().any(|f| f == FOREGROUND) {
            return Ok(());
        }
        let mut owners = vec![];
        for r in &node.owners {
            match self.owner_state(r, node.namespace.as_deref()).await {
                Ok(s) => owners.push((r.uid.clone(), s)),
                // an unresolvable kind is retried (with backoff), never taken for absent
                Err(e) => return Err(e.into()),
            }
        }
        let has_deps = !self.graph.lock().unwrap().dependents_of(uid).is_empty();
        match verdict(node, &owners, has_deps) {
            Verdict::Keep => Ok(()),
            Verdict::RemoveRefs(uids) => self.remove_owner_refs(node, &uids).await,
            Verdict::Delete(policy) => {
                if node.deleting {
                    return Ok(());
                }
                tracing::debug!(name = %node.name, kind = %node.resource.kind, ?policy, "collecting garbage");
                self.delete(uid, node, policy).await
            }
        }
    }

    async fn delete(
        &self,
        uid: &str,
        node: &Node,
        policy: PropagationPolicy,
    ) -> anyhow::Result<()> {
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api_for(node).delete(&node.name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_owner_refs(&self, node: &Node, uids: &[String]) -> anyhow::Result<()> {
        let api = self.api_for(node);
        let Some(obj) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        let refs = obj.metadata.owner_references.clone().unwrap_or_default();
        let mut ops =
            vec![json!({"op": "test", "path": "/metadata/uid", "value": obj.metadata.uid})];
        let mut idx: Vec<usize> = refs
            .iter()
            .enumerate()
            .filter(|(_, r)| uids.contains(&r.uid))
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            return Ok(());
        }
        idx.reverse();
        for i in idx {
            ops.push(json!({"op": "test", "path": format!("/metadata/ownerReferences/{i}/uid"), "value": refs[i].uid}));
            ops.push(json!({"op": "remove", "path": format!("/metadata/ownerReferences/{i}")}));
        }
        json_patch_unless_gone(&api, &node.name, json!(ops)).await
    }

    async fn remove_finalizer(
        &self,
        uid: &str,
        node: &Node,
        finalizer: &str,
    ) -> anyhow::Result<()> {
        let api = self.api_for(node);
        let Some(obj) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        if obj.metadata.uid.as_deref() != Some(uid) {
            return Ok(());
        }
        let fins = obj.metadata.finalizers.clone().unwrap_or_default();
        let Some(i) = fins.iter().position(|f| f == finalizer) else {
            return Ok(());
        };
        let ops = json!([
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]);
        json_patch_unless_gone(&api, &node.name, ops).await
    }
}

/// Applies a JSON patch (its `test` ops guard against a changed object); an object already
/// gone is not an error.
async fn json_patch_unless_gone(
    api: &Api<DynamicObject>,
    name: &str,
    ops: serde_json::Value,
) -> anyhow::Result<()> {
    let patch: json_patch::Patch = serde_json::from_value(ops)?;
    match api
        .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(fins: &[&str]) -> Node {
        Node {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&()),
            namespace: Some("ns".into()),
            name: "x".into(),
            owners: vec![],
            finalizers: fins.iter().map(|s| s.to_string()).collect(),
            deleting: false,
        }
    }

    #[test]
    fn verdicts() {
        use OwnerState::*;
        let n = node(&[]);
        let o = |v: &[(&str, OwnerState)]| {
            v.iter()
                .map(|(u, s)| (u.to_string(), *s))
                .collect::<Vec<_>>()
        };
        let cases = [
            (o(&[("a", Present)]), false, Verdict::Keep),
            (
                o(&[("a", Present), ("b", Absent)]),
                false,
                Verdict::RemoveRefs(vec!["b".into()]),
            ),
            (
                o(&[("a", Present), ("b", WaitingForDependents)]),
                false,
                Verdict::RemoveRefs(vec!["b".into()]),
            ),
            (
                o(&[("a", Absent)]),
                false,
                Verdict::Delete(PropagationPolicy::Background),
            ),
            (
                o(&[("a", Absent), ("b", Absent)]),
                true,
                Verdict::Delete(PropagationPolicy::Background),
            ),
            (
                o(&[("a", WaitingForDependents)]),
                true,
                Verdict::Delete(PropagationPolicy::Foreground),
            ),
            (
                o(&[("a", WaitingForDependents)]),
                false,
                Verdict::Delete(PropagationPolicy::Background),
            ),
        ];
        for (owners, deps, want) in cases {
            assert_eq!(verdict(&n, &owners, deps), want, "{owners:?}");
        }
        assert_eq!(
            verdict(&node(&[ORPHAN]), &o(&[("a", Absent)]), false),
            Verdict::Delete(PropagationPolicy::Orphan)
        );
    }

    #[test]
    fn graph_tracks_dependents() {
        let mut g = Graph::default();
        let mut n = node(&[]);
        n.owners = vec![OwnerReference {
            uid: "o".into(),
            block_owner_deletion: Some(true),
            ..Default::default()
        }];
        g.upsert("d1", n.clone());
        n.owners[0].block_owner_deletion = None;
        g.upsert("d2", n.clone());
        let mut deps = g.dependents_of("o");
        deps.sort();
        assert_eq!(
            deps,
            vec![("d1".to_string(), true), ("d2".to_string(), false)]
        );
        n.owners.clear();
        g.upsert("d1", n);
        assert_eq!(g.dependents_of("o"), vec![("d2".to_string(), false)]);
        g.remove("d2");
        assert!(g.dependents_of("o").is_empty());
    }
}
