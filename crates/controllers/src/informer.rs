//! Shared informers: a kube-rs watcher feeding a reflector store, plus event handlers that see
//! each change (added, updated with the old object, deleted) after the store reflects it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// What happened to an object.
pub enum Change<'a, K> {
    Added(&'a K),
    Updated { old: &'a K, new: &'a K },
    Deleted(&'a K),
}

type Handler<K> = Box<dyn Fn(Change<'_, K>) + Send + Sync>;

/// A reflector store with change handlers.
pub struct Informer<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    pub store: Store<K>,
    writer: Mutex<Option<reflector::store::Writer<K>>>,
    handlers: Arc<Mutex<Vec<Handler<K>>>>,
    api: Api<K>,
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    pub fn new(api: Api<K>) -> Arc<Informer<K>> {
        let (store, writer) = reflector::store();
        Arc::new(Informer {
            store,
            writer: Mutex::new(Some(writer)),
            handlers: Default::default(),
            api,
        })
    }

    /// Register a handler; call before `start`.
    pub fn on_change(&self, f: impl Fn(Change<'_, K>) + Send + Sync + 'static) {
        self.handlers.lock().unwrap().push(Box::new(f));
    }

    /// The watch loop; runs until dropped.
    pub async fn run(self: Arc<Self>) {
        let Some(mut writer) = self.writer.lock().unwrap().take() else {
            return;
        };
        let mut stream = watcher::watcher(self.api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut buffer: Vec<K> = Vec::new();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!(error = %e, "watch error");
                    continue;
                }
            };
            match &ev {
                Event::Apply(obj) => {
                    let old = self.store.get(&ObjectRef::from_obj(obj));
                    writer.apply_watcher_event(&ev);
                    let hs = self.handlers.lock().unwrap();
                    for h in hs.iter() {
                        match &old {
                            Some(old) => h(Change::Updated { old, new: obj }),
                            None => h(Change::Added(obj)),
                        }
                    }
                }
                Event::Delete(obj) => {
                    writer.apply_watcher_event(&ev);
                    let hs = self.handlers.lock().unwrap();
                    for h in hs.iter() {
                        h(Change::Deleted(obj));
                    }
                }
                Event::Init => {
                    buffer.clear();
                    writer.apply_watcher_event(&ev);
                }
                Event::InitApply(obj) => {
                    buffer.push(obj.clone());
                    writer.apply_watcher_event(&ev);
                }
                Event::InitDone => {
                    let before: HashMap<ObjectRef<K>, Arc<K>> = self
                        .store
                        .state()
                        .into_iter()
                        .map(|o| (ObjectRef::from_obj(&*o), o))
                        .collect();
                    writer.apply_watcher_event(&ev);
                    let mut seen = std::collections::HashSet::new();
                    let hs = self.handlers.lock().unwrap();
                    for obj in buffer.drain(..) {
                        let r = ObjectRef::from_obj(&obj);
                        for h in hs.iter() {
                            match before.get(&r) {
                                Some(old) => h(Change::Updated { old, new: &obj }),
                                None => h(Change::Added(&obj)),
                            }
                        }
                        seen.insert(r);
                    }
                    for (r, old) in &before {
                        if !seen.contains(r) {
                            for h in hs.iter() {
                                h(Change::Deleted(old));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The queue key of an object: `namespace/name`, or `name` for cluster-scoped objects.
pub fn key_of<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    match &m.namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", m.name.as_deref().unwrap_or("")),
        _ => m.name.clone().unwrap_or_default(),
    }
}

/// Split a queue key into (namespace, name).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Look an object up in a store by namespace and name.
pub fn get<K>(store: &Store<K>, ns: &str, name: &str) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let r = ObjectRef::new(name);
    let r = if ns.is_empty() { r } else { r.within(ns) };
    store.get(&r)
}
