//! Pod workers: one task per pod bound to this node, syncing it against the runtime through CRI
//! (sandbox, image pulls, init containers, sidecars, app containers, restarts with
//! CrashLoopBackOff, graceful termination, status). Each worker acts on the latest pod it was
//! given and is poked by the PLEG when the runtime reports a change of its containers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cri::v1 as pb;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::mpsc;

use crate::backoff::go_duration;
use crate::criconfig::{self, ContainerInputs, ImageUser};
use crate::env::{self, EnvSources};
use crate::labels;
use crate::plan::{self, Kind};
use crate::podstate::{CState, PodRuntime, RuntimeContainer, RuntimeSandbox};
use crate::probe::{lifecycle, CriExec};
use crate::status::{self, StatusInput, Waiting};
use crate::{qos, Shared};

/// Upstream's `minimumGracePeriodInSeconds`: containers always get this long to stop.
const MIN_GRACE_SECONDS: i64 = 2;

/// What a worker is told.
#[derive(Debug)]
pub enum Msg {
    /// A newer version of the pod.
    Update(Arc<Pod>),
    /// The pod is gone from the API (last known state).
    Removed(Arc<Pod>),
    /// Something changed in the runtime (or a probe result): sync now.
    Poke,
    /// A configMap or secret the pod's volumes show changed: refresh them now.
    RefreshVolumes,
}

/// A handle on a running worker.
pub struct Handle {
    pub tx: mpsc::UnboundedSender<Msg>,
}

/// Upstream's `format.Pod`: `name_namespace(uid)`.
pub fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// The instant a CRI timestamp (ns since the epoch) corresponds to.
fn instant_of(ns: i64) -> Instant {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let ago = Duration::from_nanos((now_ns - ns).max(0) as u64);
    Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
}

fn grpc_msg(s: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
}

/// CRI statuses already fetched: a sandbox's or container's status only changes with its
/// state, so one PodSandboxStatus/ContainerStatus per (id, state) is enough and a sync after a
/// container event costs two list calls and one status call for the container that changed.
#[derive(Default)]
pub struct StatusCache {
    sandboxes: HashMap<String, (i32, RuntimeSandbox)>,
    containers: HashMap<String, (i32, RuntimeContainer)>,
}

/// Lists what the runtime has for the pod with `uid`.
pub async fn pod_runtime(shared: &Shared, uid: &str) -> Result<PodRuntime, tonic::Status> {
    pod_runtime_cached(shared, uid, &mut StatusCache::default()).await
}

/// [`pod_runtime`] fetching only the statuses `cache` does not have for the current states.
pub async fn pod_runtime_cached(
    shared: &Shared,
    uid: &str,
    cache: &mut StatusCache,
) -> Result<PodRuntime, tonic::Status> {
    let mut rt = shared.cri.rt.clone();
    let sel: HashMap<String, String> = [(labels::POD_UID.to_string(), uid.to_string())].into();
    let sbs = rt
        .list_pod_sandbox(pb::ListPodSandboxRequest {
            filter: Some(pb::PodSandboxFilter {
                label_selector: sel.clone(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .items;
    let cs = rt
        .list_containers(pb::ListContainersRequest {
            filter: Some(pb::ContainerFilter {
                label_selector: sel,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .containers;
    cache
        .sandboxes
        .retain(|id, (state, _)| sbs.iter().any(|s| s.id == *id && s.state == *state));
    cache
        .containers
        .retain(|id, (state, _)| cs.iter().any(|c| c.id == *id && c.state == *state));
    let mut sandboxes = Vec::new();
    for s in sbs {
        if let Some((_, known)) = cache.sandboxes.get(&s.id) {
            sandboxes.push(known.clone());
            continue;
        }
        match rt
            .pod_sandbox_status(pb::PodSandboxStatusRequest {
                pod_sandbox_id: s.id.clone(),
                verbose: false,
            })
            .await
        {
            Ok(r) => {
                if let Some(st) = r.into_inner().status {
                    let rs = RuntimeSandbox::from_status(&st);
                    // keyed by the listed state: a status racing a change is fetched again
                    if st.state == s.state {
                        cache.sandboxes.insert(s.id.clone(), (s.state, rs.clone()));
                    }
                    sandboxes.push(rs);
                }
            }
            Err(e) if e.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut containers = Vec::new();
    for c in cs {
        if let Some((_, known)) = cache.containers.get(&c.id) {
            containers.push(known.clone());
            continue;
        }
        match rt
            .container_status(pb::ContainerStatusRequest {
                container_id: c.id.clone(),
                verbose: false,
            })
            .await
        {
            Ok(r) => {
                if let Some(st) = r.into_inner().status {
                    let mut rc = RuntimeContainer::from_status(&st, &c.pod_sandbox_id);
                    if rc.state == CState::Exited && rc.message.is_empty() {
                        rc.message = termination_message(&rc);
                    }
                    if st.state == c.state {
                        cache.containers.insert(c.id.clone(), (c.state, rc.clone()));
                    }
                    containers.push(rc);
                }
            }
            Err(e) if e.code() == tonic::Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(PodRuntime::new(sandboxes, containers))
}

/// The termination message a container left in its host file (at most 4096 bytes), or for
/// `FallbackToLogsOnError` and a failure, the tail of its log.
fn termination_message(rc: &RuntimeContainer) -> String {
    const MAX: usize = 4096;
    if let Some(p) = rc.annotations.get(labels::TERMINATION_MESSAGE_HOST_PATH) {
        if let Ok(b) = std::fs::read(p) {
            if !b.is_empty() {
                let b = &b[..b.len().min(MAX)];
                return String::from_utf8_lossy(b).into_owned();
            }
        }
    }
    let fallback = rc
        .annotations
        .get(labels::TERMINATION_MESSAGE_POLICY)
        .is_some_and(|p| p == "FallbackToLogsOnError");
    if fallback && rc.exit_code != 0 && !rc.log_path.is_empty() {
        if let Ok(text) = std::fs::read_to_string(&rc.log_path) {
            // CRI log lines: "<time> <stream> <P|F> <content>"
            let lines: Vec<&str> = text
                .lines()
                .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(l))
                .collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            let start = tail.len().saturating_sub(2048);
            let start = (start..tail.len())
                .find(|i| tail.is_char_boundary(*i))
                .unwrap_or(tail.len());
            return tail[start..].to_string();
        }
    }
    String::new()
}

/// Whether `a` is an older version of the object than `b` (resource versions are the store's
/// revisions; ones that are not numbers are not compared).
fn is_older(a: &Pod, b: &Pod) -> bool {
    let rv = |p: &Pod| {
        p.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    matches!((rv(a), rv(b)), (Some(x), Some(y)) if x < y)
}

/// Per-pod state kept between syncs.
struct Worker {
    shared: Arc<Shared>,
    uid: String,
    pod: Arc<Pod>,
    removed: bool,
    /// Why containers wait (upstream's reason cache).
    waiting: HashMap<String, Waiting>,
    /// The last image pull error per image, for ImagePullBackOff messages.
    pull_errors: HashMap<String, String>,
    /// Sandbox stopped for a terminal pod.
    terminal_done: bool,
    sandbox_failed: Option<Instant>,
    /// The pod ran past its activeDeadlineSeconds: it is killed and fails.
    deadline_exceeded: bool,
    /// CRI statuses already fetched for this pod.
    statuses: StatusCache,
    /// Whether this worker set the pod's volumes up once.
    volumes_set_up: bool,
    /// When the pod's volume contents were last refreshed, and the pod metadata the downward
    /// API saw then.
    volumes_refreshed: Option<(Instant, String)>,
}

/// What a sync decided about the next one.
enum Next {
    After(Duration),
    Done,
}

/// Runs a pod worker until the pod is finished on this node.
pub async fn run(
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    finished: mpsc::UnboundedSender<String>,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut w = Worker {
        shared,
        uid: uid.clone(),
        pod,
        removed: false,
        waiting: HashMap::new(),
        pull_errors: HashMap::new(),
        terminal_done: false,
        sandbox_failed: None,
        deadline_exceeded: false,
        volumes_refreshed: None,
        statuses: StatusCache::default(),
        volumes_set_up: false,
    };
    loop {
        let next = match w.sync().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(pod = %pod_desc(&w.pod), error = %e, "pod sync failed");
                Next::After(Duration::from_secs(1))
            }
        };
        let wait = match next {
            Next::Done => break,
            Next::After(d) => d,
        };
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                w.take(m);
                // coalesce whatever else is queued
                while let Ok(m) = rx.try_recv() {
                    w.take(m);
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    w.shared.config.prober.forget(&uid);
    w.shared
        .crash_backoff
        .lock()
        .unwrap()
        .forget_prefix(&format!("{uid}/"));
    w.shared
        .image_backoff
        .lock()
        .unwrap()
        .forget_prefix(&format!("{uid}_"));
    let _ = finished.send(uid);
}

impl Worker {
    /// What the runtime has for this pod now.
    async fn runtime(&mut self) -> Result<PodRuntime, tonic::Status> {
        pod_runtime_cached(&self.shared, &self.uid, &mut self.statuses).await
    }

    fn take(&mut self, m: Msg) {
        match m {
            // the informer may deliver a version older than the one our own status patch
            // returned: the old status is the base of the next diff and of what is kept
            Msg::Update(p) => {
                if !is_older(&p, &self.pod) {
                    self.pod = p;
                }
            }
            Msg::Removed(p) => {
                self.pod = p;
                self.removed = true;
            }
            Msg::Poke => {}
            Msg::RefreshVolumes => self.volumes_refreshed = None,
        }
    }

    fn event(&self, kind_name: Option<(Kind, &str)>, type_: &str, reason: &str, message: String) {
        let fp = kind_name.map(|(k, n)| k.field_path(n));
        self.shared
            .recorder
            .pod(&self.pod, fp, type_, reason, message);
    }

    fn spec(&self) -> k8s_openapi::api::core::v1::PodSpec {
        self.pod.spec.clone().unwrap_or_default()
    }

    fn container(&self, name: &str) -> Option<(Container, Kind)> {
        let spec = self.spec();
        for c in spec.init_containers.iter().flatten() {
            if c.name == name {
                let k = if c.restart_policy.as_deref() == Some("Always") {
                    Kind::Sidecar
                } else {
                    Kind::Init
                };
                return Some((c.clone(), k));
            }
        }
        spec.containers
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.clone(), Kind::App))
    }

    /// The pod's termination grace period (deletion grace, else the spec's, else 30 s).
    fn grace_period_raw(&self) -> i64 {
        self.pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
    }

    async fn sync(&mut self) -> anyhow::Result<Next> {
        let rt = self.runtime().await?;
        if self.removed {
            self.kill_all(&rt, "the pod was deleted").await;
            self.cleanup(&rt).await;
            return Ok(Next::Done);
        }
        if self.pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(rt).await;
        }
        let phase = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            if !self.terminal_done {
                self.kill_all(&rt, "the pod has finished").await;
                self.terminal_done = true;
                let rt = self.runtime().await?;
                self.post_status(&rt).await?;
            }
            return Ok(Next::After(self.shared.config.resync_period));
        }
        let deadline_left = plan::active_deadline_left(&self.pod, Timestamp::now());
        if deadline_left.is_some_and(|d| d.is_zero()) {
            if !self.deadline_exceeded {
                self.deadline_exceeded = true;
                self.event(
                    None,
                    "Normal",
                    plan::DEADLINE_REASON,
                    plan::DEADLINE_MESSAGE.into(),
                );
            }
            self.kill_all(&rt, "the pod ran past its active deadline")
                .await;
            self.terminal_done = true;
            let rt = self.runtime().await?;
            self.post_status(&rt).await?;
            return Ok(Next::After(self.shared.config.resync_period));
        }
        let (_, liveness) = self.shared.config.prober.results(&self.uid);
        let p = plan::plan(&self.pod, &rt, &liveness);
        let mut next = self.shared.config.resync_period;
        if let Some(left) = deadline_left {
            next = next.min(left + Duration::from_millis(5));
        }
        if p.kill_pod {
            self.kill_all(
                &rt,
                "the pod sandbox changed, it will be killed and re-created",
            )
            .await;
        }
        let mut rt = rt;
        if p.kill_pod || !p.kill.is_empty() {
            for k in &p.kill {
                self.kill_container(&k.id, &k.name, &k.message, k.probe_grace)
                    .await;
            }
            rt = self.runtime().await?;
        }
        let mut mounts = HashMap::new();
        if !p.start.is_empty() || p.create_sandbox.is_some() {
            match self.shared.config.volumes.setup(&self.pod).await {
                Ok(m) => {
                    mounts = m;
                    // the first setup wrote fresh contents: no refresh right after the start
                    if self.volumes_refreshed.is_none() && !self.volumes_set_up {
                        self.volumes_refreshed = Some((Instant::now(), self.volume_meta()));
                    }
                    self.volumes_set_up = true;
                }
                Err(e) => {
                    self.event(None, "Warning", "FailedMount", e.0);
                    self.post_status(&rt).await?;
                    return Ok(Next::After(Duration::from_secs(10)));
                }
            }
        }
        let (dns, missing_dns) = {
            let facts = self.shared.facts.read().unwrap();
            criconfig::dns_config(&self.pod, &facts)
        };
        if let Some(attempt) = p.create_sandbox {
            let host_network = self.spec().host_network == Some(true);
            if !host_network && !*self.shared.network_ready.borrow() {
                self.event(
                    None,
                    "Warning",
                    "NetworkNotReady",
                    "network is not ready: container runtime network not ready".into(),
                );
                self.post_status(&rt).await?;
                return Ok(Next::After(Duration::from_secs(1)));
            }
            if missing_dns {
                self.event(
                    None,
                    "Warning",
                    "MissingClusterDNS",
                    "pod: \"".to_string()
                        + &pod_desc(&self.pod)
                        + "\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
                );
            }
            let cfg = {
                let facts = self.shared.facts.read().unwrap();
                criconfig::sandbox_config(&self.pod, &facts, attempt, dns.clone())
            };
            // the pod-level cgroup with the pod's limits, the sandbox's cgroup parent
            let parent = qos::cgroup_parent(qos::pod_qos(&self.pod), &self.uid);
            let res = crate::podcgroup::pod_resources(&self.pod);
            if let Err(e) = self.shared.qos_cgroups.fs().ensure(&parent, &res) {
                tracing::warn!(pod = %pod_desc(&self.pod), error = %e, "creating the pod cgroup failed");
            }
            let log_dir = cfg.log_directory.clone();
            let _ = tokio::fs::create_dir_all(&log_dir).await;
            let mut crt = self.shared.cri.rt.clone();
            match crt
                .run_pod_sandbox(pb::RunPodSandboxRequest {
                    config: Some(cfg),
                    runtime_handler: self.spec().runtime_class_name.unwrap_or_default(),
                })
                .await
            {
                Ok(_) => {
                    self.sandbox_failed = None;
                }
                Err(e) => {
                    self.event(
                        None,
                        "Warning",
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {}", grpc_msg(&e)),
                    );
                    self.sandbox_failed = Some(Instant::now());
                    self.post_status(&rt).await?;
                    return Ok(Next::After(Duration::from_secs(2)));
                }
            }
            rt = self.runtime().await?;
        }
        let Some(sandbox) = rt.latest_sandbox().cloned().filter(|s| s.ready) else {
            self.post_status(&rt).await?;
            return Ok(Next::After(Duration::from_secs(1)));
        };
        let sandbox_cfg = {
            let facts = self.shared.facts.read().unwrap();
            criconfig::sandbox_config(&self.pod, &facts, sandbox.attempt, dns)
        };
        let mut started_any = false;
        for s in &p.start {
            let Some((c, kind)) = self.container(&s.name) else {
                continue;
            };
            // CrashLoopBackOff: a container that exited before waits out its backoff
            if let Some(prev) = rt.instances(&c.name).next() {
                if prev.state == CState::Exited {
                    let key = format!("{}/{}/{}", self.uid, c.name, labels::container_hash(&c));
                    let finished = instant_of(prev.finished_at);
                    let now = Instant::now();
                    let mut b = self.shared.crash_backoff.lock().unwrap();
                    if let Some(left) = b.in_backoff_since(&key, finished, now) {
                        let msg = format!(
                            "back-off {} restarting failed container={} pod={}",
                            go_duration(b.get(&key)),
                            c.name,
                            pod_desc(&self.pod)
                        );
                        drop(b);
                        self.waiting.insert(
                            c.name.clone(),
                            Waiting {
                                reason: "CrashLoopBackOff".into(),
                                message: msg,
                            },
                        );
                        self.event(
                            Some((kind, &c.name)),
                            "Warning",
                            "BackOff",
                            format!(
                                "Back-off restarting failed container {} in pod {}",
                                c.name,
                                pod_desc(&self.pod)
                            ),
                        );
                        next = next.min(left + Duration::from_millis(5));
                        if kind != Kind::App {
                            break;
                        }
                        continue;
                    }
                    b.next(&key, finished, now);
                }
            }
            let m = mounts.get(&c.name).cloned().unwrap_or_default();
            match self
                .start_container(&c, kind, &sandbox, &sandbox_cfg, &rt, m)
                .await
            {
                Ok(()) => {
                    self.waiting.remove(&c.name);
                    started_any = true;
                }
                Err((reason, message, retry)) => {
                    self.waiting
                        .insert(c.name.clone(), Waiting { reason, message });
                    next = next.min(retry);
                    if kind != Kind::App {
                        break;
                    }
                }
            }
        }
        let rt = if started_any || !p.start.is_empty() {
            self.runtime().await?
        } else {
            rt
        };
        self.shared.config.prober.observe(&self.pod, &rt);
        if rt.running().next().is_some() {
            next = next.min(self.refresh_volumes().await);
        }
        self.post_status(&rt).await?;
        Ok(Next::After(next))
    }

    /// The pod metadata the downward API shows (a change refreshes the volumes).
    fn volume_meta(&self) -> String {
        serde_json::to_string(&(&self.pod.metadata.labels, &self.pod.metadata.annotations))
            .unwrap_or_default()
    }

    /// Refreshes the pod's configMap, secret, downwardAPI and projected volumes when the refresh
    /// period passed or the pod's labels/annotations changed (downward API); returns when to do
    /// it next. Files change by an atomic swap, so readers never see half an update.
    async fn refresh_volumes(&mut self) -> Duration {
        let period = self.shared.config.volume_refresh_period;
        let has_content = self.spec().volumes.iter().flatten().any(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        });
        if !has_content {
            return self.shared.config.resync_period;
        }
        let meta = self.volume_meta();
        let now = Instant::now();
        let due = match &self.volumes_refreshed {
            None => true,
            Some((at, m)) => now.duration_since(*at) >= period || *m != meta,
        };
        if !due {
            let (at, _) = self.volumes_refreshed.as_ref().expect("refreshed");
            return period.saturating_sub(now.duration_since(*at)) + Duration::from_millis(5);
        }
        if let Err(e) = self.shared.config.volumes.update(&self.pod).await {
            tracing::warn!(pod = %pod_desc(&self.pod), error = %e, "refreshing volumes failed");
        }
        self.volumes_refreshed = Some((now, meta));
        period
    }

    /// Pulls the container's image as its pull policy says.
    async fn ensure_image(
        &mut self,
        c: &Container,
        kind: Kind,
        sandbox_cfg: &pb::PodSandboxConfig,
    ) -> Result<(String, ImageUser), (String, String, Duration)> {
        let image = c.image.clone().unwrap_or_default();
        let ev = Some((kind, c.name.as_str()));
        if image.is_empty() {
            return Err((
                "InvalidImageName".into(),
                "the container has no image".into(),
                Duration::from_secs(10),
            ));
        }
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            let tagged = image.contains('@')
                || image
                    .rsplit_once(':')
                    .is_some_and(|(_, t)| !t.contains('/') && t != "latest");
            if tagged {
                "IfNotPresent".into()
            } else {
                "Always".into()
            }
        });
        let mut img = self.shared.cri.img.clone();
        let spec = pb::ImageSpec {
            image: image.clone(),
            user_specified_image: image.clone(),
            ..Default::default()
        };
        let present = img
            .image_status(pb::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().image);
        let user = |i: &pb::Image| ImageUser {
            uid: i.uid.as_ref().map(|u| u.value),
            username: i.username.clone(),
        };
        if let Some(i) = &present {
            if policy != "Always" {
                self.event(
                    ev,
                    "Normal",
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                return Ok((i.id.clone(), user(i)));
            }
        } else if policy == "Never" {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            self.event(ev, "Warning", "ErrImageNeverPull", msg.clone());
            return Err(("ErrImageNeverPull".into(), msg, Duration::from_secs(10)));
        }
        let key = format!("{}_{}", self.uid, image);
        let left = self
            .shared
            .image_backoff
            .lock()
            .unwrap()
            .in_backoff_since_update(&key, Instant::now());
        if let Some(left) = left {
            self.event(
                ev,
                "Normal",
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            );
            self.event(ev, "Warning", "Failed", "Error: ImagePullBackOff".into());
            let last = self.pull_errors.get(&image).cloned().unwrap_or_default();
            return Err((
                "ImagePullBackOff".into(),
                format!("Back-off pulling image \"{image}\": ErrImagePull: {last}"),
                left + Duration::from_millis(5),
            ));
        }
        self.event(
            ev,
            "Normal",
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let secrets = self.pull_secrets().await;
        let mut auths: Vec<Option<pb::AuthConfig>> =
            crate::pullsecrets::auths_for(&image, &secrets)
                .into_iter()
                .map(Some)
                .collect();
        if auths.is_empty() {
            auths.push(None);
        }
        let started = Instant::now();
        let mut last_err = String::new();
        for auth in auths {
            let r = img
                .pull_image(pb::PullImageRequest {
                    image: Some(spec.clone()),
                    auth,
                    sandbox_config: Some(sandbox_cfg.clone()),
                })
                .await;
            match r {
                Ok(r) => {
                    let image_ref = r.into_inner().image_ref;
                    let took = started.elapsed();
                    let st = img
                        .image_status(pb::ImageStatusRequest {
                            image: Some(pb::ImageSpec {
                                image: image_ref.clone(),
                                ..Default::default()
                            }),
                            verbose: false,
                        })
                        .await
                        .ok()
                        .and_then(|r| r.into_inner().image);
                    let size = st.as_ref().map(|i| i.size).unwrap_or(0);
                    self.event(
                        ev,
                        "Normal",
                        "Pulled",
                        format!(
                            "Successfully pulled image \"{image}\" in {:.3}s ({:.3}s including waiting). Image size: {size} bytes.",
                            took.as_secs_f64(),
                            took.as_secs_f64()
                        ),
                    );
                    self.pull_errors.remove(&image);
                    self.shared.image_backoff.lock().unwrap().reset(&key);
                    let u = st.as_ref().map(user).unwrap_or_default();
                    return Ok((image_ref, u));
                }
                Err(e) => last_err = grpc_msg(&e),
            }
        }
        {
            let now = Instant::now();
            self.shared
                .image_backoff
                .lock()
                .unwrap()
                .next(&key, now, now);
        }
        self.event(
            ev,
            "Warning",
            "Failed",
            format!("Failed to pull image \"{image}\": {last_err}"),
        );
        self.event(ev, "Warning", "Failed", "Error: ErrImagePull".into());
        self.pull_errors.insert(image.clone(), last_err.clone());
        // sync again soon: the pod then shows ImagePullBackOff until the backoff ends
        Err(("ErrImagePull".into(), last_err, Duration::from_secs(1)))
    }

    async fn pull_secrets(&self) -> Vec<Secret> {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.shared.client.clone(), &ns);
        let mut out = Vec::new();
        for r in self.spec().image_pull_secrets.iter().flatten() {
            match api.get_opt(&r.name).await {
                Ok(Some(s)) => out.push(s),
                Ok(None) => tracing::debug!(secret = %r.name, "image pull secret not found"),
                Err(e) => tracing::warn!(secret = %r.name, error = %e, "reading image pull secret"),
            }
        }
        out
    }

    /// Fetches the configMaps and secrets a container refers to (missing ones are left out).
    async fn env_objects(
        &self,
        c: &Container,
    ) -> Result<(BTreeMap<String, ConfigMap>, BTreeMap<String, Secret>), String> {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let (cm_names, secret_names) = env::references(c);
        let cms: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(self.shared.client.clone(), &ns);
        let mut cm_out = BTreeMap::new();
        for n in cm_names {
            if let Some(o) = cms.get_opt(&n).await.map_err(|e| e.to_string())? {
                cm_out.insert(n, o);
            }
        }
        let mut s_out = BTreeMap::new();
        for n in secret_names {
            if let Some(o) = secrets.get_opt(&n).await.map_err(|e| e.to_string())? {
                s_out.insert(n, o);
            }
        }
        Ok((cm_out, s_out))
    }

    /// Pulls, configures, creates and starts one container (upstream `startContainer`); errors
    /// are (waiting reason, message, retry after).
    async fn start_container(
        &mut self,
        c: &Container,
        kind: Kind,
        sandbox: &RuntimeSandbox,
        sandbox_cfg: &pb::PodSandboxConfig,
        rt: &PodRuntime,
        mounts: Vec<pb::Mount>,
    ) -> Result<(), (String, String, Duration)> {
        let ev = Some((kind, c.name.as_str()));
        let t0 = Instant::now();
        let (image_ref, image_user) = self.ensure_image(c, kind, sandbox_cfg).await?;
        let restart_count = rt
            .instances(&c.name)
            .next()
            .map(|i| i.restart_count + 1)
            .unwrap_or(0);
        let config_err = |this: &Self, msg: String| {
            this.event(ev, "Warning", "Failed", format!("Error: {msg}"));
            (
                "CreateContainerConfigError".to_string(),
                msg,
                Duration::from_secs(10),
            )
        };
        let (cms, secrets) = match self.env_objects(c).await {
            Ok(x) => x,
            Err(e) => return Err(config_err(self, e)),
        };
        let services: Vec<k8s_openapi::api::core::v1::Service> = self
            .shared
            .services
            .state()
            .iter()
            .map(|s| (**s).clone())
            .collect();
        let (host_ips, alloc, facts) = {
            let f = self.shared.facts.read().unwrap();
            (f.host_ips.clone(), f.allocatable, f.clone())
        };
        let pod_ips = if sandbox.host_network || self.spec().host_network == Some(true) {
            host_ips.clone()
        } else {
            sandbox.ips.clone()
        };
        let env = match env::make_env(
            &EnvSources {
                pod: &self.pod,
                services: &services,
                config_maps: &cms,
                secrets: &secrets,
                host_ips: &host_ips,
                pod_ips: &pod_ips,
                node_allocatable: alloc,
            },
            c,
        ) {
            Ok(e) => e,
            Err(e) => return Err(config_err(self, e.to_string())),
        };
        for w in &env.warnings {
            self.event(ev, "Warning", "InvalidEnvironmentVariableNames", w.clone());
        }
        if let Err(e) = criconfig::verify_run_as_non_root(&self.pod, c, &image_user) {
            return Err(config_err(self, e.to_string()));
        }
        let mut mounts = mounts;
        let env_map: BTreeMap<String, String> = env.vars.iter().cloned().collect();
        match self
            .shared
            .config
            .volumes
            .container_mounts(&self.pod, c, &env_map)
        {
            None => {}
            Some(Ok(m)) => mounts = m,
            Some(Err(e)) => return Err(config_err(self, e.0)),
        }
        let (command, args) = env::expand_command(c, &env);
        let term_path = match self.termination_file(&c.name).await {
            Ok(p) => p,
            Err(e) => return Err(config_err(self, e)),
        };
        let qos_class = qos::pod_qos(&self.pod);
        let cfg = criconfig::container_config(
            &self.pod,
            c,
            qos_class,
            &facts,
            ContainerInputs {
                image_ref,
                command,
                args,
                envs: env.vars,
                mounts,
                restart_count,
                termination_host_path: term_path,
            },
        );
        let mut crt = self.shared.cri.rt.clone();
        let prepared = t0.elapsed();
        let id = match crt
            .create_container(pb::CreateContainerRequest {
                pod_sandbox_id: sandbox.id.clone(),
                config: Some(cfg),
                sandbox_config: Some(sandbox_cfg.clone()),
            })
            .await
        {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                let msg = grpc_msg(&e);
                self.event(ev, "Warning", "Failed", format!("Error: {msg}"));
                return Err(("CreateContainerError".into(), msg, Duration::from_secs(10)));
            }
        };
        let created = t0.elapsed();
        self.event(
            ev,
            "Normal",
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = crt
            .start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            let msg = grpc_msg(&e);
            self.event(ev, "Warning", "Failed", format!("Error: {msg}"));
            return Err(("RunContainerError".into(), msg, Duration::from_secs(10)));
        }
        let started = t0.elapsed();
        tracing::debug!(
            pod = %pod_desc(&self.pod),
            container = %c.name,
            restart_count,
            prepare_ms = prepared.as_secs_f64() * 1e3,
            create_ms = (created - prepared).as_secs_f64() * 1e3,
            start_ms = (started - created).as_secs_f64() * 1e3,
            "container started"
        );
        self.event(
            ev,
            "Normal",
            "Started",
            format!("Started container {}", c.name),
        );
        if c.lifecycle.as_ref().is_some_and(|l| l.post_start.is_some()) {
            let exec = CriExec::new(self.shared.cri.rt.clone());
            let pod_ip = sandbox.ips.first().cloned().unwrap_or_default();
            if let Err(f) = lifecycle::post_start(&exec, &self.pod, c, &id, &pod_ip).await {
                tracing::warn!(pod = %pod_desc(&self.pod), container = %c.name, error = %f.message, "postStart hook failed");
                // as upstream, the hook's output stays out of the event (it may hold secrets)
                self.event(ev, "Warning", f.reason, "PostStartHook failed".into());
                self.kill_container(&id, &c.name, "FailedPostStartHook", None)
                    .await;
                return Err((
                    "PostStartHookError".into(),
                    f.message,
                    Duration::from_secs(1),
                ));
            }
        }
        // keep only the newest dead instance of this container (for lastState and logs)
        for old in rt
            .instances(&c.name)
            .filter(|i| i.state != CState::Running)
            .skip(1)
        {
            let _ = crt
                .remove_container(pb::RemoveContainerRequest {
                    container_id: old.id.clone(),
                })
                .await;
        }
        Ok(())
    }

    /// Creates the host file mounted at the container's termination message path.
    async fn termination_file(&self, name: &str) -> Result<Option<String>, String> {
        let dir = self
            .shared
            .config
            .root_dir
            .join("pods")
            .join(&self.uid)
            .join("containers")
            .join(name);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("create {}: {e}", dir.display()))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(
            "{:08x}",
            (nanos as u64) ^ std::process::id() as u64
        ));
        tokio::fs::write(&path, b"")
            .await
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).await;
        Ok(Some(path.display().to_string()))
    }

    /// Upstream `killContainer`: the Killing event (`message`, or "Stopping container X"), the
    /// preStop hook within the grace period, then StopContainer with what is left of it (at
    /// least the minimum grace period).
    async fn kill_container(&self, id: &str, name: &str, message: &str, grace: Option<i64>) {
        let spec = self.container(name);
        let kind = spec.as_ref().map(|(_, k)| *k).unwrap_or(Kind::App);
        self.event(
            Some((kind, name)),
            "Normal",
            "Killing",
            if message.is_empty() {
                format!("Stopping container {name}")
            } else {
                message.to_string()
            },
        );
        // a probe's own grace period wins over the pod's, except while the pod is deleted
        let mut grace = match grace {
            Some(g) if self.pod.metadata.deletion_timestamp.is_none() => g,
            _ => self.grace_period_raw(),
        };
        let pre_stop = spec
            .as_ref()
            .filter(|(c, _)| c.lifecycle.as_ref().is_some_and(|l| l.pre_stop.is_some()));
        if let (Some((c, _)), true) = (pre_stop, grace > 0) {
            let started = Instant::now();
            let exec = CriExec::new(self.shared.cri.rt.clone());
            let pod_ip = self
                .pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            let r = lifecycle::pre_stop(
                &exec,
                &self.pod,
                c,
                id,
                &pod_ip,
                Duration::from_secs(grace as u64),
            )
            .await;
            if let Err(f) = r {
                tracing::info!(pod = %pod_desc(&self.pod), container = name, error = %f.message, "preStop hook failed");
                // as upstream, the hook's output stays out of the event (it may hold secrets)
                self.event(
                    Some((kind, name)),
                    "Warning",
                    f.reason,
                    "PreStopHook failed".into(),
                );
            }
            grace -= started.elapsed().as_secs() as i64;
        }
        let mut crt = self.shared.cri.rt.clone();
        if let Err(e) = crt
            .stop_container(pb::StopContainerRequest {
                container_id: id.to_string(),
                timeout: grace.max(MIN_GRACE_SECONDS),
            })
            .await
        {
            if e.code() != tonic::Code::NotFound {
                tracing::warn!(container = %id, error = %e.message(), "stopping container failed");
            }
        }
    }

    /// Stops every running container (app containers first, then sidecars and init
    /// containers, each group in parallel with the grace period), then the sandboxes.
    async fn kill_all(&self, rt: &PodRuntime, why: &str) {
        tracing::debug!(pod = %pod_desc(&self.pod), why, "killing pod");
        let app: Vec<&RuntimeContainer> = rt
            .running()
            .filter(|c| self.container(&c.name).is_none_or(|(_, k)| k == Kind::App))
            .collect();
        let rest: Vec<&RuntimeContainer> = rt
            .running()
            .filter(|c| self.container(&c.name).is_some_and(|(_, k)| k != Kind::App))
            .collect();
        for group in [app, rest] {
            futures::future::join_all(
                group
                    .iter()
                    .map(|c| self.kill_container(&c.id, &c.name, "", None)),
            )
            .await;
        }
        let mut crt = self.shared.cri.rt.clone();
        for s in rt.sandboxes.iter().filter(|s| s.ready) {
            if let Err(e) = crt
                .stop_pod_sandbox(pb::StopPodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
            {
                tracing::warn!(sandbox = %s.id, error = %e.message(), "stopping sandbox failed");
            }
        }
    }

    /// Removes the pod's sandboxes (with their containers), volumes, directories and cgroup.
    async fn cleanup(&self, rt: &PodRuntime) {
        let mut crt = self.shared.cri.rt.clone();
        for s in &rt.sandboxes {
            if let Err(e) = crt
                .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                    pod_sandbox_id: s.id.clone(),
                })
                .await
            {
                tracing::warn!(sandbox = %s.id, error = %e.message(), "removing sandbox failed");
            }
        }
        // containers of sandboxes already gone
        for c in &rt.containers {
            let _ = crt
                .remove_container(pb::RemoveContainerRequest {
                    container_id: c.id.clone(),
                })
                .await;
        }
        if let Err(e) = self.shared.config.volumes.teardown(&self.uid).await {
            tracing::warn!(pod = %pod_desc(&self.pod), error = %e, "tearing down volumes failed");
        }
        let dir = self.shared.config.root_dir.join("pods").join(&self.uid);
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let logs = criconfig::pod_log_dir(
            &self.pod,
            &self.shared.config.pod_logs_dir.display().to_string(),
        );
        let _ = tokio::fs::remove_dir_all(&logs).await;
        self.shared
            .qos_cgroups
            .fs()
            .remove(&qos::cgroup_parent(qos::pod_qos(&self.pod), &self.uid));
    }

    /// Graceful deletion: stop everything with the grace period, report the final status,
    /// then finalise the deletion in the API (grace 0, uid precondition) and clean up.
    async fn terminate(&mut self, rt: PodRuntime) -> anyhow::Result<Next> {
        self.kill_all(&rt, "the pod is being deleted").await;
        let rt = self.runtime().await?;
        if let Err(e) = self.post_status(&rt).await {
            tracing::debug!(error = %e, "final status update failed");
        }
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        self.cleanup(&rt).await;
        Ok(Next::Done)
    }

    /// Computes the status and patches it when it changed.
    async fn post_status(&mut self, rt: &PodRuntime) -> anyhow::Result<()> {
        let (probes, _) = self.shared.config.prober.results(&self.uid);
        let host_ips = self.shared.facts.read().unwrap().host_ips.clone();
        let mut waiting = self.waiting.clone();
        // a container waiting on something already fixed shows its current state instead
        waiting.retain(|name, _| {
            rt.instances(name)
                .next()
                .is_none_or(|i| i.state != CState::Running)
        });
        let failed_pod;
        let pod = if self.deadline_exceeded {
            // upstream's eviction for the active deadline: the pod fails with its reason
            let mut p = (*self.pod).clone();
            let st = p.status.get_or_insert_with(Default::default);
            if !matches!(st.phase.as_deref(), Some("Failed" | "Succeeded")) {
                st.phase = Some("Failed".into());
                st.reason = Some(plan::DEADLINE_REASON.into());
                st.message = Some(plan::DEADLINE_MESSAGE.into());
            }
            failed_pod = p;
            &failed_pod
        } else {
            &*self.pod
        };
        let new = status::pod_status(&StatusInput {
            pod,
            runtime: rt,
            waiting: &waiting,
            probes: &probes,
            host_ips: &host_ips,
            runtime_name: &self.shared.runtime_name,
            now: Timestamp::now(),
        });
        let old = serde_json::to_value(self.pod.status.clone().unwrap_or_default())?;
        let new_v = serde_json::to_value(&new)?;
        let Some(diff) = status::merge_diff(&old, &new_v) else {
            return Ok(());
        };
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        let patch = serde_json::json!({"status": diff});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(p) => {
                if p.metadata.uid.as_deref() == Some(self.uid.as_str()) {
                    self.pod = Arc::new(p);
                }
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Stops and removes everything the runtime has for a pod the API no longer knows.
pub async fn cleanup_orphan(shared: &Shared, uid: &str) {
    let Ok(rt) = pod_runtime(shared, uid).await else {
        return;
    };
    if rt.is_empty() {
        return;
    }
    tracing::info!(
        uid,
        "removing containers of a pod no longer bound to this node"
    );
    let mut crt = shared.cri.rt.clone();
    for c in rt.running() {
        let grace = c
            .annotations
            .get(labels::TERMINATION_GRACE_PERIOD)
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(30)
            .max(2);
        let _ = crt
            .stop_container(pb::StopContainerRequest {
                container_id: c.id.clone(),
                timeout: grace,
            })
            .await;
    }
    for s in &rt.sandboxes {
        let _ = crt
            .stop_pod_sandbox(pb::StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
        let _ = crt
            .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            })
            .await;
    }
    for c in &rt.containers {
        let _ = crt
            .remove_container(pb::RemoveContainerRequest {
                container_id: c.id.clone(),
            })
            .await;
    }
    let _ = shared.config.volumes.teardown(uid).await;
    let _ = tokio::fs::remove_dir_all(shared.config.root_dir.join("pods").join(uid)).await;
    // the pod's QoS class is unknown here: its cgroup is under one of them
    for class in [
        qos::QosClass::Guaranteed,
        qos::QosClass::Burstable,
        qos::QosClass::BestEffort,
    ] {
        shared
            .qos_cgroups
            .fs()
            .remove(&qos::cgroup_parent(class, uid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_versions_are_recognised() {
        let at = |rv: Option<&str>| Pod {
            metadata: kube::api::ObjectMeta {
                resource_version: rv.map(str::to_string),
                ..Default::default()
            },
            ..Default::default()
        };
        for (a, b, older) in [
            (Some("9"), Some("10"), true),
            (Some("10"), Some("10"), false),
            (Some("11"), Some("10"), false),
            (None, Some("10"), false),
            (Some("x"), Some("10"), false),
        ] {
            assert_eq!(is_older(&at(a), &at(b)), older, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn pod_desc_format() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}}))
        .unwrap();
        assert_eq!(pod_desc(&p), "web_ns(u-1)");
    }

    #[test]
    fn instants_from_cri_times() {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let i = instant_of(now_ns - 5_000_000_000);
        let ago = Instant::now().duration_since(i);
        assert!(
            ago >= Duration::from_secs(5) && ago < Duration::from_secs(60),
            "{ago:?}"
        );
    }

    #[test]
    fn termination_message_from_file_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let msg = dir.path().join("msg");
        std::fs::write(&msg, "bye").unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            "2024-01-01T00:00:00Z stdout F line one\n2024-01-01T00:00:00Z stderr F boom\n",
        )
        .unwrap();
        let mut rc = RuntimeContainer {
            id: "x".into(),
            sandbox_id: "s".into(),
            name: "c".into(),
            attempt: 0,
            restart_count: 0,
            hash: String::new(),
            state: CState::Exited,
            created_at: 0,
            started_at: 0,
            finished_at: 0,
            exit_code: 1,
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            annotations: HashMap::from([(
                labels::TERMINATION_MESSAGE_HOST_PATH.to_string(),
                msg.display().to_string(),
            )]),
            log_path: log.display().to_string(),
        };
        assert_eq!(termination_message(&rc), "bye");
        std::fs::write(&msg, "").unwrap();
        assert_eq!(termination_message(&rc), "");
        rc.annotations.insert(
            labels::TERMINATION_MESSAGE_POLICY.to_string(),
            "FallbackToLogsOnError".to_string(),
        );
        assert_eq!(termination_message(&rc), "line one\nboom");
        rc.exit_code = 0;
        assert_eq!(termination_message(&rc), "");
    }
}
