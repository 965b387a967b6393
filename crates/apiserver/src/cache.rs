//! The watch cache: an in-memory copy of every stored object, kept consistent with the store by
//! one store watch, with a bounded per-resource event history. LISTs and WATCHes are served from
//! it, so a LIST never scans the database.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use store::{EventType, KeyValue, RangeRequest, Revision, Store, StoreError};
use tokio::sync::{broadcast, watch};

/// Events kept per resource for watches that resume from a past resourceVersion.
const HISTORY: usize = 4096;
/// Buffered live events per resource before a slow watcher is dropped (it resumes from
/// `HISTORY` without a relist). tokio preallocates every slot (32 bytes each) for each watched
/// resource, so this is kept well below `HISTORY`.
const FANOUT: usize = 1024;

/// The key prefix all stored objects live under.
pub const REGISTRY_PREFIX: &str = "/registry/";

/// One object as the cache holds it: its JSON serialization (with `metadata.resourceVersion`
/// set) and the few fields selectors read. The parsed form is not kept (it takes several times
/// the bytes): lists and watches copy the bytes, and the rare readers of whole objects parse on
/// demand, except for the few resources read on every request (see [`keeps_parsed`]).
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub rv: Revision,
    /// The object serialized as JSON once, so lists and watches copy bytes.
    pub raw: bytes::Bytes,
    /// What label and field selectors read of the object (see [`selectable`]).
    pub attrs: Value,
    parsed: Option<Arc<Value>>,
}

/// Serialize an object for the byte caches.
pub fn encode_raw(v: &Value) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Resources whose objects stay parsed in the cache (few objects, many reads): custom resource
/// definitions, looked up on every request for a custom resource, and the PriorityClasses and
/// ServiceAccounts every pod creation resolves.
pub fn keeps_parsed(key: &str) -> bool {
    [
        "/registry/apiextensions.k8s.io/customresourcedefinitions/",
        "/registry/scheduling.k8s.io/priorityclasses/",
        "/registry/core/serviceaccounts/",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

/// `(group, resource)` of a store key (`/registry/core/pods/...` -> `("", "pods")`).
fn key_resource(key: &str) -> (&str, &str) {
    let rest = key.strip_prefix(REGISTRY_PREFIX).unwrap_or("");
    let mut parts = rest.splitn(3, '/');
    let group = parts.next().unwrap_or("");
    let resource = parts.next().unwrap_or("");
    (if group == "core" { "" } else { group }, resource)
}

/// The part of an object label and field selectors read: `metadata.name`,
/// `metadata.namespace`, `metadata.labels` and the resource's selectable fields, at their paths
/// (so selectors match it exactly as they match the whole object).
pub fn selectable(key: &str, obj: &Value) -> Value {
    let (group, resource) = key_resource(key);
    let mut out = Value::Object(serde_json::Map::new());
    let paths = ["metadata.name", "metadata.namespace", "metadata.labels"];
    for path in paths
        .iter()
        .chain(crate::fields::supported(group, resource))
    {
        let Some(v) = path.split('.').try_fold(obj, |v, k| v.get(k)) else {
            continue;
        };
        let mut at = &mut out;
        let mut segs = path.split('.').peekable();
        while let Some(seg) = segs.next() {
            let Some(map) = at.as_object_mut() else { break };
            if segs.peek().is_none() {
                map.insert(seg.to_string(), v.clone());
                break;
            }
            at = map
                .entry(seg.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    }
    out
}

impl CachedObject {
    pub fn new(key: String, rv: Revision, obj: Arc<Value>) -> Self {
        let raw = encode_raw(&obj);
        let attrs = selectable(&key, &obj);
        let parsed = keeps_parsed(&key).then_some(obj);
        CachedObject {
            key,
            rv,
            raw,
            attrs,
            parsed,
        }
    }

    /// The whole object (parsed from its bytes unless kept parsed).
    pub fn obj(&self) -> Arc<Value> {
        match &self.parsed {
            Some(o) => o.clone(),
            // the bytes were serialized from a Value by this cache
            None => Arc::new(serde_json::from_slice(&self.raw).unwrap_or(Value::Null)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// A change of one object. For a delete, `object` is the last state with the delete's revision.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub rv: Revision,
    pub key: String,
    /// The object after the change (shared with the cache's current objects).
    pub object: Arc<CachedObject>,
    /// The selectable part of the object before the change (None for an add).
    pub prev_attrs: Option<Value>,
}

impl CacheEvent {
    pub fn new(
        kind: EventKind,
        rv: Revision,
        key: String,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) -> Self {
        let prev_attrs = prev.map(|p| selectable(&key, &p));
        Self::with_prev_attrs(kind, rv, key, obj, prev_attrs)
    }

    /// As [`CacheEvent::new`] with the selectable part of the previous state already known.
    pub fn with_prev_attrs(
        kind: EventKind,
        rv: Revision,
        key: String,
        obj: Arc<Value>,
        prev_attrs: Option<Value>,
    ) -> Self {
        CacheEvent {
            kind,
            rv,
            object: Arc::new(CachedObject::new(key.clone(), rv, obj)),
            key,
            prev_attrs,
        }
    }

    /// The object after the change.
    pub fn obj(&self) -> Arc<Value> {
        self.object.obj()
    }

    /// The object serialized as JSON.
    pub fn raw(&self) -> &bytes::Bytes {
        &self.object.raw
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld {
        requested: Revision,
        oldest: Revision,
    },
    #[error("Too large resource version: {requested}, current resource version: {current}")]
    TooLarge {
        requested: Revision,
        current: Revision,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored object {key} is not valid JSON: {reason}")]
    Corrupt { key: String, reason: String },
}

struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event with a revision above this one is in `history`.
    floor: Revision,
    /// Revision of the last event applied to this resource.
    last_rev: Revision,
}

impl State {
    /// The objects whose keys start with `key_prefix`, in key order.
    fn under(&self, key_prefix: &str) -> Vec<Arc<CachedObject>> {
        self.objects
            .range(key_prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(key_prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// The cache of one resource (one store key prefix).
pub struct ResourceCache {
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<CacheEvent>>,
}

/// A watch registration: the history to replay, then the live receiver.
pub struct Subscription {
    pub replay: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// Live events at or below this revision were already replayed and must be skipped.
    pub replayed_to: Revision,
}

impl ResourceCache {
    fn new(floor: Revision) -> Self {
        let (tx, _) = broadcast::channel(FANOUT);
        ResourceCache {
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                floor,
                last_rev: floor,
            }),
            tx,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The objects whose keys start with `key_prefix`, in key order, and the revision they are at.
    pub fn snapshot(
        &self,
        key_prefix: &str,
        global_rev: &watch::Receiver<Revision>,
    ) -> (Vec<Arc<CachedObject>>, Revision) {
        let st = self.read();
        let rev = (*global_rev.borrow()).max(st.last_rev);
        let items = st.under(key_prefix);
        (items, rev)
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.read().objects.get(key).cloned()
    }

    /// Subscribe to events after `rv`.
    pub fn subscribe(&self, rv: Revision) -> Result<Subscription, CacheError> {
        let st = self.read();
        if rv < st.floor {
            return Err(CacheError::TooOld {
                requested: rv,
                oldest: st.floor + 1,
            });
        }
        let live = self.tx.subscribe();
        let replay: Vec<_> = st.history.iter().filter(|e| e.rv > rv).cloned().collect();
        let replayed_to = replay.last().map(|e| e.rv).unwrap_or(rv).max(st.last_rev);
        Ok(Subscription {
            replay,
            live,
            replayed_to,
        })
    }

    /// Subscribe with the current state as a list of synthetic ADDED events (watch from RV 0).
    pub fn subscribe_with_state(
        &self,
        key_prefix: &str,
        global_rev: &watch::Receiver<Revision>,
    ) -> (Vec<Arc<CachedObject>>, Subscription) {
        let st = self.read();
        let rev = (*global_rev.borrow()).max(st.last_rev);
        let live = self.tx.subscribe();
        let items = st.under(key_prefix);
        (
            items,
            Subscription {
                replay: Vec::new(),
                live,
                replayed_to: rev,
            },
        )
    }

    fn apply(&self, ev: Arc<CacheEvent>) {
        let mut st = self.write();
        match ev.kind {
            EventKind::Deleted => {
                st.objects.remove(&ev.key);
            }
            _ => {
                st.objects.insert(ev.key.clone(), ev.object.clone());
            }
        }
        st.history.push_back(ev.clone());
        while st.history.len() > HISTORY {
            if let Some(old) = st.history.pop_front() {
                st.floor = old.rv;
            }
        }
        st.last_rev = st.last_rev.max(ev.rv);
        // no receivers is fine
        let _ = self.tx.send(ev);
    }

    /// Replace the whole content after a relist; emits the differences as events.
    fn resync(&self, fresh: BTreeMap<String, Arc<CachedObject>>, rev: Revision) {
        let old: Vec<(String, Arc<CachedObject>)> = self
            .read()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, o) in &old {
            if !fresh.contains_key(k) {
                self.apply(Arc::new(CacheEvent {
                    kind: EventKind::Deleted,
                    rv: rev,
                    key: k.clone(),
                    object: Arc::new(CachedObject::new(k.clone(), rev, with_rv(&o.obj(), rev))),
                    prev_attrs: Some(o.attrs.clone()),
                }));
            }
        }
        let oldmap: HashMap<_, _> = old.into_iter().collect();
        for (k, o) in fresh {
            match oldmap.get(&k) {
                Some(prev) if prev.rv == o.rv => {}
                prev => self.apply(Arc::new(CacheEvent {
                    kind: if prev.is_some() {
                        EventKind::Modified
                    } else {
                        EventKind::Added
                    },
                    rv: o.rv,
                    key: k.clone(),
                    object: o.clone(),
                    prev_attrs: prev.map(|p| p.attrs.clone()),
                })),
            }
        }
        // watchers from before the resync cannot be served exactly any more
        let mut st = self.write();
        st.floor = st.floor.max(rev);
        st.last_rev = st.last_rev.max(rev);
    }
}

/// A copy of `obj` with `metadata.resourceVersion` set to `rv`.
pub fn with_rv(obj: &Value, rv: Revision) -> Arc<Value> {
    let mut o = obj.clone();
    set_rv(&mut o, rv);
    Arc::new(o)
}

pub fn set_rv(obj: &mut Value, rv: Revision) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// Parse a stored value, setting its resourceVersion.
pub fn decode(kv: &KeyValue, rv: Revision) -> Result<Value, CacheError> {
    let mut v: Value = serde_json::from_slice(&kv.value).map_err(|e| CacheError::Corrupt {
        key: kv.key.clone(),
        reason: e.to_string(),
    })?;
    set_rv(&mut v, rv);
    Ok(v)
}

/// `/registry/<group>/<resource>/` for a key under it.
pub fn resource_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(REGISTRY_PREFIX)?;
    let mut idx = REGISTRY_PREFIX.len();
    let mut slashes = 0;
    for (i, c) in rest.char_indices() {
        if c == '/' {
            slashes += 1;
            if slashes == 2 {
                idx += i + 1;
                return Some(&key[..idx]);
            }
        }
    }
    None
}

/// The watch cache of every resource.
pub struct WatchCache {
    resources: RwLock<HashMap<String, Arc<ResourceCache>>>,
    rev_tx: watch::Sender<Revision>,
    rev_rx: watch::Receiver<Revision>,
    /// The revision of the initial load: every resource's history is complete above it.
    initial: Revision,
    store: Arc<dyn Store>,
}

impl WatchCache {
    /// Load every object from the store and start following its changes.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<WatchCache>, CacheError> {
        let (objects, rev) = load_all(&*store).await?;
        let (rev_tx, rev_rx) = watch::channel(rev);
        let wc = Arc::new(WatchCache {
            resources: RwLock::new(HashMap::new()),
            rev_tx,
            rev_rx,
            initial: rev,
            store: store.clone(),
        });
        for (prefix, objs) in objects {
            let rc = wc.resource(&prefix);
            let mut st = rc.write();
            st.objects = objs;
        }
        let weak = Arc::downgrade(&wc);
        tokio::spawn(async move { follow(weak, store, rev).await });
        Ok(wc)
    }

    /// The cache of the resource whose keys start with `prefix` (created empty on first use).
    pub fn resource(&self, prefix: &str) -> Arc<ResourceCache> {
        if let Some(r) = self
            .resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(prefix)
        {
            return r.clone();
        }
        let mut w = self.resources.write().unwrap_or_else(|e| e.into_inner());
        w.entry(prefix.to_string())
            .or_insert_with(|| Arc::new(ResourceCache::new(self.initial)))
            .clone()
    }

    /// The revision the cache has applied every event up to.
    pub fn revision(&self) -> Revision {
        *self.rev_rx.borrow()
    }

    pub fn revision_rx(&self) -> watch::Receiver<Revision> {
        self.rev_rx.clone()
    }

    /// Wait until the cache has applied revision `rev` (at most `timeout`).
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> Result<(), CacheError> {
        let mut rx = self.rev_rx.clone();
        let res = tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rev)).await;
        match res {
            Ok(Ok(_)) => Ok(()),
            _ => Err(CacheError::TooLarge {
                requested: rev,
                current: self.revision(),
            }),
        }
    }

    /// Wait until the cache holds everything the store acknowledged so far (a consistent read).
    pub async fn sync(&self) -> Result<Revision, CacheError> {
        let rev = self.store.current_revision().await?;
        self.wait_for(rev, Duration::from_secs(5)).await?;
        Ok(self.revision())
    }

    fn apply_batch(&self, events: Vec<store::Event>) -> Result<(), CacheError> {
        let mut last = None;
        for e in events {
            let rev = e.kv.mod_revision;
            last = Some(rev);
            let Some(prefix) = resource_prefix(&e.kv.key) else {
                continue;
            };
            let rc = self.resource(prefix);
            let ev = match e.kind {
                EventType::Put => {
                    // the previous state's selectable fields come from the cached object when it
                    // is at the previous revision (it always is while the cache follows the
                    // store): an update then costs one decode, not two
                    let prev_attrs = match &e.prev_kv {
                        Some(p) => Some(match rc.get(&e.kv.key) {
                            Some(c) if c.rv == p.mod_revision => c.attrs.clone(),
                            _ => selectable(&e.kv.key, &decode(p, p.mod_revision)?),
                        }),
                        None => None,
                    };
                    CacheEvent::with_prev_attrs(
                        if e.kv.create_revision == rev || prev_attrs.is_none() {
                            EventKind::Added
                        } else {
                            EventKind::Modified
                        },
                        rev,
                        e.kv.key.clone(),
                        Arc::new(decode(&e.kv, rev)?),
                        prev_attrs,
                    )
                }
                EventType::Delete => {
                    let prev = match &e.prev_kv {
                        Some(p) => Arc::new(decode(p, p.mod_revision)?),
                        None => continue,
                    };
                    CacheEvent::new(
                        EventKind::Deleted,
                        rev,
                        e.kv.key.clone(),
                        with_rv(&prev, rev),
                        Some(prev),
                    )
                }
            };
            rc.apply(Arc::new(ev));
        }
        if let Some(rev) = last {
            self.rev_tx.send_replace(rev);
        }
        Ok(())
    }

    async fn relist(&self) -> Result<Revision, CacheError> {
        let (objects, rev) = load_all(&*self.store).await?;
        let known: Vec<String> = self
            .resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut objects = objects;
        for prefix in known {
            let fresh = objects.remove(&prefix).unwrap_or_default();
            self.resource(&prefix).resync(fresh, rev);
        }
        for (prefix, fresh) in objects {
            self.resource(&prefix).resync(fresh, rev);
        }
        self.rev_tx.send_replace(rev);
        Ok(rev)
    }
}

type Loaded = HashMap<String, BTreeMap<String, Arc<CachedObject>>>;

async fn load_all(store: &dyn Store) -> Result<(Loaded, Revision), CacheError> {
    let resp = store
        .range(RangeRequest {
            prefix: REGISTRY_PREFIX.to_string(),
            ..Default::default()
        })
        .await?;
    let mut out: Loaded = HashMap::new();
    for kv in resp.kvs {
        let Some(prefix) = resource_prefix(&kv.key) else {
            continue;
        };
        let obj = match decode(&kv, kv.mod_revision) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(key = %kv.key, error = %e, "skipping corrupt stored object");
                continue;
            }
        };
        out.entry(prefix.to_string()).or_default().insert(
            kv.key.clone(),
            Arc::new(CachedObject::new(
                kv.key.clone(),
                kv.mod_revision,
                Arc::new(obj),
            )),
        );
    }
    Ok((out, resp.revision))
}

async fn follow(cache: std::sync::Weak<WatchCache>, store: Arc<dyn Store>, mut rev: Revision) {
    loop {
        let stream = store.watch(REGISTRY_PREFIX, rev + 1).await;
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: store watch failed, relisting");
                let Some(c) = cache.upgrade() else { return };
                match c.relist().await {
                    Ok(r) => rev = r,
                    Err(e) => {
                        tracing::error!(error = %e, "watch cache: relist failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                continue;
            }
        };
        while let Some(batch) = stream.next().await {
            let Some(c) = cache.upgrade() else { return };
            match batch {
                Ok(events) => {
                    if let Some(last) = events.last() {
                        rev = rev.max(last.kv.mod_revision);
                    }
                    if let Err(e) = c.apply_batch(events) {
                        tracing::error!(error = %e, "watch cache: bad event");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache: store watch ended");
                    break;
                }
            }
        }
        if matches!(store.current_revision().await, Err(StoreError::Closed)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            resource_prefix("/registry/core/pods/default/a"),
            Some("/registry/core/pods/")
        );
        assert_eq!(
            resource_prefix("/registry/apps/deployments/ns/x"),
            Some("/registry/apps/deployments/")
        );
        assert_eq!(
            resource_prefix("/registry/core/namespaces/kube-system"),
            Some("/registry/core/namespaces/")
        );
        assert_eq!(resource_prefix("/other/x"), None);
        assert_eq!(resource_prefix("/registry/core"), None);
    }

    #[test]
    fn selectable_keeps_what_selectors_read() {
        let pod = serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                         "annotations": {"big": "x"}, "managedFields": [{"manager": "m"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}], "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": []},
        });
        let cases = [
            (
                "/registry/core/pods/ns/p",
                pod.clone(),
                serde_json::json!({
                    "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
                    "spec": {"nodeName": "n1", "hostNetwork": true},
                    "status": {"phase": "Running", "podIP": "10.0.0.1"},
                }),
            ),
            (
                "/registry/core/configmaps/ns/c",
                serde_json::json!({"metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}}),
                serde_json::json!({"metadata": {"name": "c", "namespace": "ns"}}),
            ),
            (
                "/registry/core/events/ns/e",
                serde_json::json!({"metadata": {"name": "e"}, "message": "m",
                                   "involvedObject": {"kind": "Pod", "name": "p", "uid": "u"},
                                   "source": {"component": "kubelet"}, "type": "Normal"}),
                serde_json::json!({"metadata": {"name": "e"},
                                   "involvedObject": {"kind": "Pod", "name": "p", "uid": "u"},
                                   "source": {"component": "kubelet"}, "type": "Normal"}),
            ),
            (
                "/registry/example.com/widgets/ns/w",
                serde_json::json!({"metadata": {"name": "w", "namespace": "ns"}, "spec": {"a": 1}}),
                serde_json::json!({"metadata": {"name": "w", "namespace": "ns"}}),
            ),
        ];
        for (key, obj, want) in cases {
            assert_eq!(selectable(key, &obj), want, "{key}");
        }
    }

    #[test]
    fn objects_keep_bytes_and_parse_on_demand() {
        let obj = serde_json::json!({"metadata": {"name": "c", "resourceVersion": "7"}, "data": {"z": "1", "a": "2"}});
        let o = CachedObject::new(
            "/registry/core/configmaps/ns/c".into(),
            7,
            Arc::new(obj.clone()),
        );
        assert!(o.parsed.is_none());
        assert_eq!(*o.obj(), obj);
        assert_eq!(o.raw, encode_raw(&obj));
        let crd_key = "/registry/apiextensions.k8s.io/customresourcedefinitions/w.example.com";
        let crd = CachedObject::new(crd_key.into(), 7, Arc::new(obj.clone()));
        assert!(crd.parsed.is_some());
        assert_eq!(*crd.obj(), obj);
    }

    #[test]
    fn events_share_the_object_and_keep_prior_selectable_state() {
        let rc = ResourceCache::new(0);
        let key = "/registry/core/pods/a/x";
        let v1 = serde_json::json!({"metadata": {"name": "x", "labels": {"app": "db"}}});
        let v2 = serde_json::json!({"metadata": {"name": "x", "labels": {"app": "web"}}});
        rc.apply(Arc::new(CacheEvent::new(
            EventKind::Added,
            1,
            key.into(),
            Arc::new(v1.clone()),
            None,
        )));
        rc.apply(Arc::new(CacheEvent::new(
            EventKind::Modified,
            2,
            key.into(),
            Arc::new(v2.clone()),
            Some(Arc::new(v1)),
        )));
        let sub = rc.subscribe(1).unwrap();
        let ev = &sub.replay[0];
        assert_eq!(
            ev.prev_attrs.as_ref().unwrap()["metadata"]["labels"]["app"],
            "db"
        );
        assert_eq!(*ev.obj(), v2);
        assert!(Arc::ptr_eq(&ev.object, &rc.get(key).unwrap()));
    }

    fn ev(kind: EventKind, rv: Revision, key: &str) -> Arc<CacheEvent> {
        Arc::new(CacheEvent::new(
            kind,
            rv,
            key.into(),
            Arc::new(serde_json::json!({"metadata": {"name": key}})),
            None,
        ))
    }

    #[test]
    fn history_replay_and_too_old() {
        let rc = ResourceCache::new(10);
        rc.apply(ev(EventKind::Added, 11, "/registry/core/pods/a/x"));
        rc.apply(ev(EventKind::Modified, 12, "/registry/core/pods/a/x"));
        rc.apply(ev(EventKind::Added, 13, "/registry/core/pods/b/y"));
        let sub = rc.subscribe(11).unwrap();
        assert_eq!(
            sub.replay.iter().map(|e| e.rv).collect::<Vec<_>>(),
            vec![12, 13]
        );
        assert_eq!(sub.replayed_to, 13);
        assert!(matches!(rc.subscribe(9), Err(CacheError::TooOld { .. })));
        let (_tx, rx) = watch::channel(13);
        let (items, rev) = rc.snapshot("/registry/core/pods/a/", &rx);
        assert_eq!(items.len(), 1);
        assert_eq!(rev, 13);
        rc.apply(ev(EventKind::Deleted, 14, "/registry/core/pods/a/x"));
        assert!(rc.get("/registry/core/pods/a/x").is_none());
    }

    #[test]
    fn history_is_bounded_and_raises_floor() {
        let rc = ResourceCache::new(0);
        for i in 1..=(HISTORY as i64 + 10) {
            rc.apply(ev(EventKind::Modified, i, "/registry/core/pods/a/x"));
        }
        assert!(rc.subscribe(5).is_err());
        assert!(rc.subscribe(10).is_ok());
        assert_eq!(rc.read().history.len(), HISTORY);
    }

    fn kv(key: &str, value: &[u8], create: Revision, rev: Revision) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.to_vec().into(),
            create_revision: create,
            mod_revision: rev,
            version: 1,
            lease: 0,
        }
    }

    #[tokio::test]
    async fn update_events_take_prior_selectable_state_from_the_cache_at_that_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            store::sqlite::SqliteStore::open(dir.path().join("db"), Default::default()).unwrap();
        let wc = WatchCache::start(Arc::new(store)).await.unwrap();
        let key = "/registry/core/pods/a/x";
        let pod = |app: &str| {
            serde_json::to_vec(
                &serde_json::json!({"metadata": {"name": "x", "namespace": "a",
                "labels": {"app": app}}}),
            )
            .unwrap()
        };
        let put = |value: &[u8], rev: Revision, prev: Option<KeyValue>| store::Event {
            kind: EventType::Put,
            kv: kv(key, value, 100, rev),
            prev_kv: prev,
        };
        wc.apply_batch(vec![put(&pod("db"), 100, None)]).unwrap();
        // prev at the cached revision: its attrs come from the cache (the stored bytes of the
        // previous value are not even parsed)
        wc.apply_batch(vec![put(
            &pod("web"),
            101,
            Some(kv(key, b"not json", 100, 100)),
        )])
        .unwrap();
        // prev at another revision than the cached one: decoded from the event
        wc.apply_batch(vec![put(
            &pod("api"),
            103,
            Some(kv(key, &pod("cache"), 100, 102)),
        )])
        .unwrap();
        let sub = wc.resource("/registry/core/pods/").subscribe(100).unwrap();
        let prev: Vec<_> = sub
            .replay
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.prev_attrs
                        .as_ref()
                        .map(|a| a["metadata"]["labels"]["app"].clone()),
                )
            })
            .collect();
        assert_eq!(
            prev,
            vec![
                (EventKind::Modified, Some(serde_json::json!("db"))),
                (EventKind::Modified, Some(serde_json::json!("cache"))),
            ]
        );
        // a previous value that is neither cached nor valid is an error, not a silent guess
        let err = wc.apply_batch(vec![put(
            &pod("x"),
            105,
            Some(kv(key, b"not json", 100, 104)),
        )]);
        assert!(matches!(err, Err(CacheError::Corrupt { .. })));
    }
}
