//! Watches of the configMaps and secrets that pods' volumes refer to (upstream's watch-based
//! configMap and secret managers): one watch per referenced object (field selector
//! `metadata.name`), shared by every pod of this node referring to it and stopped when the last
//! one goes. A change of the object (or its deletion or creation) is reported so the pods
//! referring to it refresh their volumes at once; the periodic refresh stays as the fallback.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use tokio::sync::mpsc;

/// The kind of a referenced object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjKind {
    ConfigMap,
    Secret,
}

/// A configMap or secret a pod refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjRef {
    pub kind: ObjKind,
    pub namespace: String,
    pub name: String,
}

/// The objects whose contents a pod's volumes show: configMap and secret volumes and the
/// configMap and secret sources of projected volumes.
pub fn volume_refs(pod: &Pod) -> BTreeSet<ObjRef> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let r = |kind, name: &str| ObjRef {
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
    };
    let mut out = BTreeSet::new();
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    for v in volumes.into_iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.insert(r(ObjKind::ConfigMap, &cm.name));
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            out.insert(r(ObjKind::Secret, name));
        }
        let sources = v.projected.as_ref().and_then(|p| p.sources.as_ref());
        for s in sources.into_iter().flatten() {
            if let Some(cm) = &s.config_map {
                out.insert(r(ObjKind::ConfigMap, &cm.name));
            }
            if let Some(sec) = &s.secret {
                out.insert(r(ObjKind::Secret, &sec.name));
            }
        }
    }
    out.retain(|o| !o.name.is_empty());
    out
}

/// Which pods (by uid) refer to which objects.
#[derive(Debug, Default)]
pub struct Refs {
    by_pod: HashMap<String, BTreeSet<ObjRef>>,
    by_obj: BTreeMap<ObjRef, BTreeSet<String>>,
}

impl Refs {
    /// Records that pod `uid` refers to `refs` (replacing what it referred to before); returns
    /// the objects no pod referred to before (to watch) and those no pod refers to any more
    /// (to stop watching).
    pub fn set(&mut self, uid: &str, refs: BTreeSet<ObjRef>) -> (Vec<ObjRef>, Vec<ObjRef>) {
        let mut gone = self.remove(uid);
        let mut added = Vec::new();
        for r in &refs {
            let pods = self.by_obj.entry(r.clone()).or_default();
            if pods.is_empty() {
                added.push(r.clone());
            }
            pods.insert(uid.to_string());
        }
        // an object dropped and taken again keeps its watch
        added.retain(|a| !gone.contains(a));
        gone.retain(|g| !refs.contains(g));
        if !refs.is_empty() {
            self.by_pod.insert(uid.to_string(), refs);
        }
        (added, gone)
    }

    /// Forgets pod `uid`; returns the objects no pod refers to any more.
    pub fn remove(&mut self, uid: &str) -> Vec<ObjRef> {
        let mut gone = Vec::new();
        for r in self.by_pod.remove(uid).unwrap_or_default() {
            if let Some(pods) = self.by_obj.get_mut(&r) {
                pods.remove(uid);
                if pods.is_empty() {
                    self.by_obj.remove(&r);
                    gone.push(r);
                }
            }
        }
        gone
    }

    /// The pods referring to `obj`.
    pub fn pods(&self, obj: &ObjRef) -> Vec<String> {
        self.by_obj
            .get(obj)
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The watches of the objects pods refer to. Dropping it stops them.
pub struct ObjectWatches {
    client: kube::Client,
    refs: Refs,
    tasks: HashMap<ObjRef, tokio::task::AbortHandle>,
    changed: mpsc::UnboundedSender<ObjRef>,
}

impl ObjectWatches {
    /// The watches, and where the changed objects are reported.
    pub fn new(client: kube::Client) -> (ObjectWatches, mpsc::UnboundedReceiver<ObjRef>) {
        let (changed, rx) = mpsc::unbounded_channel();
        let w = ObjectWatches {
            client,
            refs: Refs::default(),
            tasks: HashMap::new(),
            changed,
        };
        (w, rx)
    }

    /// Watches what `pod`'s volumes refer to (idempotent).
    pub fn add_pod(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (added, gone) = self.refs.set(&uid, volume_refs(pod));
        self.apply(added, gone);
    }

    /// Stops watching what only pod `uid` referred to.
    pub fn remove_pod(&mut self, uid: &str) {
        let gone = self.refs.remove(uid);
        self.apply(Vec::new(), gone);
    }

    /// The pods referring to `obj`.
    pub fn pods(&self, obj: &ObjRef) -> Vec<String> {
        self.refs.pods(obj)
    }

    fn apply(&mut self, added: Vec<ObjRef>, gone: Vec<ObjRef>) {
        for g in gone {
            if let Some(t) = self.tasks.remove(&g) {
                t.abort();
            }
        }
        for a in added {
            if self.tasks.contains_key(&a) {
                continue;
            }
            let tx = self.changed.clone();
            let c = self.client.clone();
            let task = match a.kind {
                ObjKind::ConfigMap => {
                    let api: Api<ConfigMap> = Api::namespaced(c, &a.namespace);
                    tokio::spawn(watch_object(api, a.clone(), tx))
                }
                ObjKind::Secret => {
                    let api: Api<Secret> = Api::namespaced(c, &a.namespace);
                    tokio::spawn(watch_object(api, a.clone(), tx))
                }
            };
            self.tasks.insert(a, task.abort_handle());
        }
    }
}

impl Drop for ObjectWatches {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

/// What a watch knows of its object: its resourceVersion, `None` while it does not exist.
type Seen = Option<String>;

/// Folds one watch event into what is known; returns whether the object changed from what was
/// reported before (`seen`). The initial listing reports nothing: the pod read the object
/// when it set its volumes up (the periodic refresh covers a change in between).
pub fn observe<K: Resource>(
    ev: &watcher::Event<K>,
    seen: &mut Option<Seen>,
    listing: &mut Option<Seen>,
) -> bool {
    let rv = |o: &K| o.meta().resource_version.clone();
    let update = |now: Seen, seen: &mut Option<Seen>| {
        let changed = seen.as_ref().is_some_and(|s| *s != now);
        *seen = Some(now);
        changed
    };
    match ev {
        watcher::Event::Init => {
            *listing = Some(None);
            false
        }
        watcher::Event::InitApply(o) => {
            *listing = Some(rv(o));
            false
        }
        watcher::Event::InitDone => {
            let now = listing.take().unwrap_or(None);
            update(now, seen)
        }
        watcher::Event::Apply(o) => update(rv(o), seen),
        watcher::Event::Delete(_) => update(None, seen),
    }
}

async fn watch_object<K>(api: Api<K>, obj: ObjRef, changed: mpsc::UnboundedSender<ObjRef>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let cfg = watcher::Config::default().fields(&format!("metadata.name={}", obj.name));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let (mut seen, mut listing) = (None, None);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => {
                if observe(&ev, &mut seen, &mut listing) {
                    tracing::debug!(kind = ?obj.kind, namespace = %obj.namespace, name = %obj.name, "referenced object changed");
                    if changed.send(obj.clone()).is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!(name = %obj.name, error = %e, "object watch error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(kind: ObjKind, name: &str) -> ObjRef {
        ObjRef {
            kind,
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn refs_of_a_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "c"}], "volumes": [
                {"name": "a", "configMap": {"name": "cm1"}},
                {"name": "b", "secret": {"secretName": "s1"}},
                {"name": "c", "emptyDir": {}},
                {"name": "d", "projected": {"sources": [
                    {"configMap": {"name": "kube-root-ca.crt"}},
                    {"secret": {"name": "s2"}},
                    {"serviceAccountToken": {"path": "token"}},
                    {"downwardAPI": {"items": []}}]}},
                {"name": "e", "configMap": {"name": "cm1"}},
            ]}
        }))
        .unwrap();
        let want: BTreeSet<ObjRef> = [
            r(ObjKind::ConfigMap, "cm1"),
            r(ObjKind::ConfigMap, "kube-root-ca.crt"),
            r(ObjKind::Secret, "s1"),
            r(ObjKind::Secret, "s2"),
        ]
        .into();
        assert_eq!(volume_refs(&pod), want);
        let none: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]}}))
        .unwrap();
        assert!(volume_refs(&none).is_empty());
    }

    #[test]
    fn refs_are_shared_and_released() {
        let mut refs = Refs::default();
        let cm = r(ObjKind::ConfigMap, "cm");
        let s = r(ObjKind::Secret, "s");
        let (added, gone) = refs.set("p1", [cm.clone(), s.clone()].into());
        assert_eq!((added.len(), gone.len()), (2, 0));
        // a second pod of the same configMap starts no second watch
        let (added, gone) = refs.set("p2", [cm.clone()].into());
        assert!(added.is_empty() && gone.is_empty());
        assert_eq!(refs.pods(&cm), vec!["p1".to_string(), "p2".to_string()]);
        // setting the same refs again changes nothing
        let (added, gone) = refs.set("p1", [cm.clone(), s.clone()].into());
        assert!(added.is_empty() && gone.is_empty(), "{added:?} {gone:?}");
        let gone = refs.remove("p1");
        assert_eq!(gone, vec![s.clone()]);
        assert_eq!(refs.pods(&cm), vec!["p2".to_string()]);
        let gone = refs.remove("p2");
        assert_eq!(gone, vec![cm.clone()]);
        assert!(refs.pods(&cm).is_empty());
        assert!(refs.remove("p3").is_empty());
    }

    fn cm(rv: &str) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "cm", "resourceVersion": rv}})).unwrap()
    }

    #[test]
    fn changes_are_reported_after_the_first_listing() {
        use watcher::Event as E;
        let (mut seen, mut listing) = (None, None);
        let mut step = |ev: E<ConfigMap>| observe(&ev, &mut seen, &mut listing);
        // the initial listing is what the pod read already
        assert!(!step(E::Init));
        assert!(!step(E::InitApply(cm("1"))));
        assert!(!step(E::InitDone));
        assert!(step(E::Apply(cm("2"))), "an update");
        assert!(!step(E::Apply(cm("2"))), "the same version again");
        assert!(step(E::Delete(cm("2"))), "a deletion");
        assert!(step(E::Apply(cm("3"))), "re-created");
        // a re-list after a broken watch reports what changed meanwhile, once
        assert!(!step(E::Init));
        assert!(!step(E::InitApply(cm("4"))));
        assert!(step(E::InitDone));
        assert!(!step(E::Init));
        assert!(!step(E::InitApply(cm("4"))));
        assert!(!step(E::InitDone), "nothing changed");
        // an object missing from the start, created later
        let (mut seen, mut listing) = (None, None);
        let mut step = |ev: E<ConfigMap>| observe(&ev, &mut seen, &mut listing);
        assert!(!step(E::Init));
        assert!(!step(E::InitDone));
        assert!(step(E::Apply(cm("1"))));
    }
}
