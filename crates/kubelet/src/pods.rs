//! The pod manager and PLEG: watches the pods bound to this node (field selector
//! `spec.nodeName`), runs one worker per pod, and pokes workers when the runtime reports a
//! container change: through CRI GetContainerEvents when the runtime streams them (evented PLEG),
//! and a periodic relist of sandboxes and containers as the fallback (generic PLEG). After the
//! first full list, runtime pods the API does not know are removed. The configMaps and secrets
//! pods' volumes show are watched ([`crate::objwatch`]): a change refreshes those pods' volumes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cri::v1 as pb;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::mpsc;

use crate::worker::{self, Handle, Msg};
use crate::Shared;
use crate::{labels, objwatch, podcgroup};

/// Runs the pod manager until aborted.
pub async fn run(shared: Arc<Shared>) {
    let (poke_tx, mut poke_rx) = mpsc::unbounded_channel::<String>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let evented = Arc::new(AtomicBool::new(false));
    // every task this manager starts lives in this set: aborting the manager ends them all
    // (and with them the CRI connections)
    let mut children = tokio::task::JoinSet::new();
    children.spawn(run_events(shared.clone(), poke_tx.clone(), evented.clone()));
    children.spawn(run_relist(shared.clone(), poke_tx.clone(), evented));
    {
        let tx = poke_tx.clone();
        shared.config.prober.start(
            Arc::new(move |uid: &str| {
                let _ = tx.send(uid.to_string());
            }),
            shared.recorder.clone(),
        );
    }

    let api: Api<Pod> = Api::all(shared.client.clone());
    let wc =
        watcher::Config::default().fields(&format!("spec.nodeName={}", shared.config.node_name));
    let mut stream = watcher::watcher(api, wc).default_backoff().boxed();
    let mut workers: HashMap<String, Handle> = HashMap::new();
    // pods of the API (by uid) and their latest state
    let mut known: HashMap<String, Arc<Pod>> = HashMap::new();
    let mut listing: HashSet<String> = HashSet::new();
    let mut synced = false;
    let mut cleaning: HashSet<String> = HashSet::new();
    let mut qos = QosTracker::default();
    // the QoS-class cgroups exist from the start, as upstream's
    if let Err(e) = shared.qos_cgroups.set_pods(0) {
        tracing::warn!(error = %e, "creating the QoS cgroups failed");
    }
    let (mut watches, mut changed_rx) = objwatch::ObjectWatches::new(shared.client.clone());

    let spawn = |children: &mut tokio::task::JoinSet<()>,
                 workers: &mut HashMap<String, Handle>,
                 pod: Arc<Pod>| {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel();
        children.spawn(worker::run(shared.clone(), pod, rx, done_tx.clone()));
        workers.insert(uid, Handle { tx });
    };

    loop {
        tokio::select! {
            ev = stream.next() => {
                let Some(ev) = ev else { break };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::debug!(error = %e, "pod watch error");
                        continue;
                    }
                };
                match ev {
                    watcher::Event::Init => listing.clear(),
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        listing.insert(uid.clone());
                        let pod = Arc::new(pod);
                        known.insert(uid.clone(), pod.clone());
                        // the QoS cgroups account for the pod before its cgroup is created
                        qos.set(&shared, &uid, Some(&pod));
                        match workers.get(&uid) {
                            Some(h) => {
                                let _ = h.tx.send(Msg::Update(pod));
                            }
                            None => {
                                watches.add_pod(&pod);
                                spawn(&mut children, &mut workers, pod)
                            }
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        known.remove(&uid);
                        let pod = Arc::new(pod);
                        match workers.get(&uid) {
                            Some(h) => {
                                let _ = h.tx.send(Msg::Removed(pod));
                            }
                            None => {
                                let (tx, rx) = mpsc::unbounded_channel();
                                let _ = tx.send(Msg::Removed(pod.clone()));
                                children.spawn(worker::run(shared.clone(), pod, rx, done_tx.clone()));
                                workers.insert(uid, Handle { tx });
                            }
                        }
                    }
                    watcher::Event::InitDone => {
                        // pods deleted while the watch was down
                        let gone: Vec<String> = known
                            .keys()
                            .filter(|u| !listing.contains(*u))
                            .cloned()
                            .collect();
                        for uid in gone {
                            if let Some(pod) = known.remove(&uid) {
                                if let Some(h) = workers.get(&uid) {
                                    let _ = h.tx.send(Msg::Removed(pod));
                                }
                            }
                        }
                        if !synced {
                            synced = true;
                            tracing::info!(pods = known.len(), "pods of this node listed");
                            for uid in runtime_pod_uids(&shared).await {
                                if !known.contains_key(&uid) && !workers.contains_key(&uid) {
                                    let _ = poke_tx.send(uid);
                                }
                            }
                        }
                    }
                }
            }
            uid = poke_rx.recv() => {
                let Some(uid) = uid else { break };
                if let Some(h) = workers.get(&uid) {
                    let _ = h.tx.send(Msg::Poke);
                } else if synced && !known.contains_key(&uid) && cleaning.insert(uid.clone()) {
                    let s = shared.clone();
                    let done = done_tx.clone();
                    children.spawn(async move {
                        worker::cleanup_orphan(&s, &uid).await;
                        let _ = done.send(format!("orphan:{uid}"));
                    });
                }
            }
            Some(obj) = changed_rx.recv() => {
                for uid in watches.pods(&obj) {
                    if let Some(h) = workers.get(&uid) {
                        let _ = h.tx.send(Msg::RefreshVolumes);
                    }
                }
            }
            Some(_) = children.join_next(), if !children.is_empty() => {}
            uid = done_rx.recv() => {
                let Some(uid) = uid else { break };
                if let Some(o) = uid.strip_prefix("orphan:") {
                    cleaning.remove(o);
                    continue;
                }
                workers.remove(&uid);
                watches.remove_pod(&uid);
                let back = known.get(&uid).filter(|p| p.metadata.deletion_timestamp.is_none());
                qos.set(&shared, &uid, back.map(|p| &**p));
                // the pod may have come back (or never left) while the worker finished
                if let Some(pod) = known.get(&uid).cloned() {
                    if pod.metadata.deletion_timestamp.is_none() {
                        watches.add_pod(&pod);
                        spawn(&mut children, &mut workers, pod);
                    }
                }
            }
        }
    }
}

/// The active pods' burstable cpu requests, applied to the QoS-class cgroups (upstream's QoS
/// container manager): a pod counts from when it is seen until it is terminal or its worker
/// finished.
#[derive(Default)]
struct QosTracker {
    requests: HashMap<String, i64>,
}

impl QosTracker {
    /// Records the pod with `uid` (`None`: gone) and writes the cgroups when the sum changed.
    fn set(&mut self, shared: &Shared, uid: &str, pod: Option<&Pod>) {
        let active = pod.filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        });
        match active {
            Some(p) => self
                .requests
                .insert(uid.to_string(), podcgroup::burstable_request(p)),
            None => self.requests.remove(uid),
        };
        let sum: i64 = self.requests.values().sum();
        if let Err(e) = shared.qos_cgroups.set_pods(sum) {
            tracing::warn!(error = %e, "updating the QoS cgroups failed");
        }
    }
}

/// The uids of the pods the runtime has sandboxes or containers for.
async fn runtime_pod_uids(shared: &Shared) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut rt = shared.cri.rt.clone();
    if let Ok(r) = rt
        .list_pod_sandbox(pb::ListPodSandboxRequest { filter: None })
        .await
    {
        for s in r.into_inner().items {
            if let Some(u) = s.labels.get(labels::POD_UID) {
                out.insert(u.clone());
            }
        }
    }
    if let Ok(r) = rt
        .list_containers(pb::ListContainersRequest { filter: None })
        .await
    {
        for c in r.into_inner().containers {
            if let Some(u) = c.labels.get(labels::POD_UID) {
                out.insert(u.clone());
            }
        }
    }
    out
}

/// Evented PLEG: pokes the pod of every container event the runtime streams.
async fn run_events(
    shared: Arc<Shared>,
    poke: mpsc::UnboundedSender<String>,
    evented: Arc<AtomicBool>,
) {
    loop {
        let mut rt = shared.cri.rt.clone();
        let mut stream = match rt.get_container_events(pb::GetEventsRequest {}).await {
            Ok(s) => s.into_inner(),
            Err(e) if e.code() == tonic::Code::Unimplemented => {
                tracing::info!("the runtime does not stream container events; relisting instead");
                evented.store(false, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e.message(), "container events unavailable");
                evented.store(false, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        evented.store(true, Ordering::SeqCst);
        loop {
            match stream.message().await {
                Ok(Some(ev)) => {
                    let uid = ev
                        .pod_sandbox_status
                        .as_ref()
                        .and_then(|s| s.metadata.as_ref())
                        .map(|m| m.uid.clone())
                        .filter(|u| !u.is_empty())
                        .or_else(|| {
                            ev.containers_statuses
                                .iter()
                                .find(|c| c.id == ev.container_id)
                                .and_then(|c| c.labels.get(labels::POD_UID).cloned())
                        });
                    if let Some(uid) = uid {
                        let _ = poke.send(uid);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e.message(), "container event stream broke");
                    break;
                }
            }
        }
        evented.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pod's fingerprint in a relist: its sandboxes' and containers' ids and states.
type Fingerprint = Vec<(String, i32)>;

/// Generic PLEG: relists sandboxes and containers and pokes pods whose state changed (every
/// relist period, or ten times less often while events stream).
async fn run_relist(
    shared: Arc<Shared>,
    poke: mpsc::UnboundedSender<String>,
    evented: Arc<AtomicBool>,
) {
    let mut last: BTreeMap<String, Fingerprint> = BTreeMap::new();
    let mut since_full = 0u32;
    loop {
        tokio::time::sleep(shared.config.relist_period).await;
        if evented.load(Ordering::SeqCst) {
            since_full += 1;
            if since_full < 10 {
                continue;
            }
        }
        since_full = 0;
        let mut rt = shared.cri.rt.clone();
        let mut now: BTreeMap<String, Fingerprint> = BTreeMap::new();
        let Ok(sbs) = rt
            .list_pod_sandbox(pb::ListPodSandboxRequest { filter: None })
            .await
        else {
            continue;
        };
        let Ok(cs) = rt
            .list_containers(pb::ListContainersRequest { filter: None })
            .await
        else {
            continue;
        };
        for s in sbs.into_inner().items {
            if let Some(u) = s.labels.get(labels::POD_UID) {
                now.entry(u.clone()).or_default().push((s.id, s.state));
            }
        }
        for c in cs.into_inner().containers {
            if let Some(u) = c.labels.get(labels::POD_UID) {
                now.entry(u.clone()).or_default().push((c.id, c.state));
            }
        }
        for f in now.values_mut() {
            f.sort();
        }
        for (uid, f) in &now {
            if last.get(uid) != Some(f) {
                let _ = poke.send(uid.clone());
            }
        }
        last = now;
    }
}
