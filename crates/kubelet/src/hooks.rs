//! Seams for the parts of the kubelet built separately: the volume manager (per-container CRI
//! mounts for a pod) and the prober (readiness/startup results feeding status, liveness failures
//! feeding restarts). The defaults here do not pretend: [`NoVolumes`] refuses pods that mount
//! volumes with a clear error (reported as FailedMount, the pod stays ContainerCreating), and
//! [`NoProbes`] reports no results (containers with a readiness probe stay not ready).

use std::collections::HashMap;
use std::sync::Arc;

use cri::v1 as pb;
use k8s_openapi::api::core::v1::Pod;

use crate::plan::LivenessFailures;
use crate::podstate::PodRuntime;
use crate::status::ProbeStatus;

/// A volume set-up failure, reported as a `FailedMount` event with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VolumeError(pub String);

/// Prepares and tears down a pod's volumes.
#[async_trait::async_trait]
pub trait Volumes: Send + Sync {
    /// Makes every volume of `pod` ready and returns the CRI mounts of each container (by
    /// container name, init containers included). Called before the sandbox is created and
    /// again before each container start (it must be idempotent and should be cheap once the
    /// volumes are set up).
    async fn setup(&self, pod: &Pod) -> Result<HashMap<String, Vec<pb::Mount>>, VolumeError>;
    /// Removes everything set up for the pod with this uid.
    async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError>;
    /// Refreshes the contents of a running pod's configMap, secret, downwardAPI and projected
    /// volumes (called periodically; subPath mounts keep what they had, as upstream).
    async fn update(&self, _pod: &Pod) -> Result<(), VolumeError> {
        Ok(())
    }
    /// The CRI mounts of a container that uses `subPathExpr`, expanded with its environment;
    /// `None` when [`Volumes::setup`]'s mounts are final.
    fn container_mounts(
        &self,
        _pod: &Pod,
        _container: &k8s_openapi::api::core::v1::Container,
        _env: &std::collections::BTreeMap<String, String>,
    ) -> Option<Result<Vec<pb::Mount>, VolumeError>> {
        None
    }
}

/// The volume manager of a kubelet built without volume plugins.
pub struct NoVolumes;

#[async_trait::async_trait]
impl Volumes for NoVolumes {
    async fn setup(&self, pod: &Pod) -> Result<HashMap<String, Vec<pb::Mount>>, VolumeError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut names: Vec<String> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.volume_mounts.iter().flatten().map(|m| m.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        Err(VolumeError(format!(
            "Unable to attach or mount volumes: unmounted volumes=[{}]: this kubelet has no volume plugins",
            names.join(" ")
        )))
    }

    async fn teardown(&self, _pod_uid: &str) -> Result<(), VolumeError> {
        Ok(())
    }
}

/// Called with a pod uid when a probe result of that pod changed.
/// The volume plugins of [`crate::volumes`] behind the [`Volumes`] seam: every volume of the
/// pod prepared under `<root-dir>/pods/<uid>/volumes`, then each container's CRI mounts.
pub struct ManagedVolumes {
    manager: crate::volumes::VolumeManager,
    /// The volumes prepared by the first successful `setup` of each pod (by uid), reused by
    /// later ones and for the mounts of containers that need their environment (subPathExpr).
    prepared: std::sync::Mutex<HashMap<String, crate::volumes::PodVolumes>>,
}

/// Whether a container mounts a volume with `subPathExpr` (its mounts need its environment).
fn uses_sub_path_expr(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.volume_mounts
        .iter()
        .flatten()
        .any(|m| m.sub_path_expr.as_deref().is_some_and(|e| !e.is_empty()))
}

impl ManagedVolumes {
    pub fn new(client: kube::Client, root_dir: std::path::PathBuf) -> Self {
        let config = crate::volumes::VolumeConfig {
            root_dir,
            allocatable: Default::default(),
        };
        ManagedVolumes {
            manager: crate::volumes::VolumeManager::new(
                config,
                Arc::new(crate::volumes::KubeVolumeApi::new(client)),
                Arc::new(crate::volumes::LinuxMounter),
            ),
            prepared: Default::default(),
        }
    }

    /// Over a volume manager built elsewhere (tests: fake API and mounter).
    pub fn with_manager(manager: crate::volumes::VolumeManager) -> Self {
        ManagedVolumes {
            manager,
            prepared: Default::default(),
        }
    }

    /// The volumes prepared for the pod with `uid`, if they are.
    fn prepared_of(&self, uid: &str) -> Option<crate::volumes::PodVolumes> {
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
    }
}

#[async_trait::async_trait]
impl Volumes for ManagedVolumes {
    async fn setup(&self, pod: &Pod) -> Result<HashMap<String, Vec<pb::Mount>>, VolumeError> {
        // volumes are set up once per pod (upstream mounts once, then only refreshes contents
        // through `update`): a container restart reuses them without another API round trip
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let known = self.prepared_of(&uid);
        let prepared = match known {
            Some(p) => p,
            None => self
                .manager
                .setup(pod)
                .await
                .map_err(|e| VolumeError(format!("Unable to attach or mount volumes: {e}")))?,
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let mut out = HashMap::new();
        let env = std::collections::BTreeMap::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            if uses_sub_path_expr(c) {
                // expanded with the container's environment in `container_mounts`
                continue;
            }
            let mounts = self
                .manager
                .container_mounts(pod, &prepared, c, &env)
                .map_err(|e| VolumeError(e.to_string()))?;
            out.insert(c.name.clone(), mounts);
        }
        if let Some(uid) = pod.metadata.uid.clone() {
            self.prepared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid, prepared);
        }
        Ok(out)
    }

    async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_uid);
        self.manager
            .teardown(pod_uid)
            .map_err(|e| VolumeError(e.to_string()))
    }

    async fn update(&self, pod: &Pod) -> Result<(), VolumeError> {
        self.manager
            .update(pod)
            .await
            .map_err(|e| VolumeError(e.to_string()))
    }

    fn container_mounts(
        &self,
        pod: &Pod,
        container: &k8s_openapi::api::core::v1::Container,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Option<Result<Vec<pb::Mount>, VolumeError>> {
        if !uses_sub_path_expr(container) {
            return None;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let prepared = self.prepared_of(&uid);
        let Some(prepared) = prepared else {
            return Some(Err(VolumeError(format!(
                "the volumes of pod {uid} are not set up"
            ))));
        };
        Some(
            self.manager
                .container_mounts(pod, &prepared, container, env)
                .map_err(|e| VolumeError(e.to_string())),
        )
    }
}

pub type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// Runs probes for pods' containers.
pub trait Prober: Send + Sync {
    /// Called once at start with the callback that re-syncs a pod and the recorder of the
    /// probes' events (Unhealthy, ProbeWarning).
    fn start(&self, notify: Notify, recorder: crate::events::Recorder);
    /// Called after every sync of a pod with what runs: start probing new containers, stop
    /// probing gone ones.
    fn observe(&self, pod: &Pod, runtime: &PodRuntime);
    /// The current results of a pod's containers.
    fn results(&self, pod_uid: &str) -> (ProbeStatus, LivenessFailures);
    /// The pod is gone: stop its probes.
    fn forget(&self, pod_uid: &str);
    /// True for a prober that never probes ([`NoProbes`]): `run` then installs the real one.
    fn is_noop(&self) -> bool {
        false
    }
}

/// The probe runner of [`crate::probe`] behind the [`Prober`] seam: the pod worker reports
/// what runs, probe results re-sync the pod.
pub struct ManagedProbes {
    manager: crate::probe::ProbeManager,
    events:
        std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::probe::ProbeEvent>>>,
    /// Pod uid -> container name -> (current container id, running).
    current: std::sync::Mutex<HashMap<String, ContainerIds>>,
    added: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Pod uid -> what the pod's events refer to (the pod's identity, each container's field
    /// path).
    refs: Arc<std::sync::Mutex<HashMap<String, EventRef>>>,
}

/// Container name -> (current container id, running).
type ContainerIds = HashMap<String, (String, bool)>;

/// The object a probe event is about: the pod (identity only) and its containers' field paths.
#[derive(Clone)]
struct EventRef {
    pod: Pod,
    field_paths: HashMap<String, String>,
}

impl EventRef {
    fn of(pod: &Pod) -> EventRef {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut field_paths = HashMap::new();
        for c in spec.init_containers.iter().flatten() {
            field_paths.insert(c.name.clone(), format!("spec.initContainers{{{}}}", c.name));
        }
        for c in &spec.containers {
            field_paths.insert(c.name.clone(), format!("spec.containers{{{}}}", c.name));
        }
        let meta = &pod.metadata;
        let pod = Pod {
            metadata: kube::api::ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        EventRef { pod, field_paths }
    }
}

impl ManagedProbes {
    pub fn new(exec: Arc<dyn crate::probe::ContainerExec>) -> Self {
        let (manager, events) = crate::probe::ProbeManager::new(exec);
        ManagedProbes {
            manager,
            events: std::sync::Mutex::new(Some(events)),
            current: Default::default(),
            added: Default::default(),
            refs: Default::default(),
        }
    }
}

impl Prober for ManagedProbes {
    fn start(&self, notify: Notify, recorder: crate::events::Recorder) {
        let Some(mut rx) = self.events.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let refs = self.refs.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    crate::probe::ProbeEvent::Result { pod_uid, .. } => notify(&pod_uid),
                    crate::probe::ProbeEvent::Event {
                        pod_uid,
                        container,
                        reason,
                        message,
                        ..
                    } => {
                        tracing::debug!(%pod_uid, %container, reason, %message, "probe");
                        let r = refs
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&pod_uid)
                            .cloned();
                        if let Some(r) = r {
                            let fp = r.field_paths.get(&container).cloned();
                            recorder.pod(&r.pod, fp, "Warning", reason, message);
                        }
                    }
                }
            }
        });
    }

    fn observe(&self, pod: &Pod, runtime: &PodRuntime) {
        use crate::podstate::CState;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if self
            .added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.clone())
        {
            self.manager.add_pod(pod);
        }
        self.refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid.clone(), EventRef::of(pod));
        if pod.metadata.deletion_timestamp.is_some() {
            self.manager.set_terminating(&uid);
        }
        if let Some(ip) = runtime.latest_sandbox().and_then(|s| s.ips.first()) {
            self.manager.set_pod_ip(&uid, ip);
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let mut current = HashMap::new();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            let Some(rc) = runtime.instances(&c.name).next() else {
                continue;
            };
            let running = rc.state == CState::Running;
            self.manager.set_container_state(
                &uid,
                &c.name,
                crate::probe::ContainerState {
                    container_id: rc.id.clone(),
                    running_since: running.then(|| {
                        std::time::UNIX_EPOCH
                            + std::time::Duration::from_nanos(rc.started_at.max(0) as u64)
                    }),
                    terminated: rc.state == CState::Exited,
                },
            );
            current.insert(c.name.clone(), (rc.id.clone(), running));
        }
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid, current);
    }

    fn results(&self, pod_uid: &str) -> (ProbeStatus, LivenessFailures) {
        use crate::probe::{ProbeResult, ProbeType};
        let current = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pod_uid)
            .cloned()
            .unwrap_or_default();
        let mut status = ProbeStatus::default();
        let mut failed = LivenessFailures::default();
        for (name, (id, running)) in current {
            let result = |p| self.manager.result(pod_uid, &name, &id, p);
            if let Some(r) = result(ProbeType::Readiness) {
                status.ready.insert(name.clone(), r == ProbeResult::Success);
            }
            if let Some(r) = result(ProbeType::Startup) {
                status
                    .started
                    .insert(name.clone(), r == ProbeResult::Success);
            }
            // only the running container is killed for a failed liveness/startup probe (a
            // stopped one reports Failure too)
            let dead = [ProbeType::Liveness, ProbeType::Startup]
                .into_iter()
                .any(|p| result(p) == Some(ProbeResult::Failure));
            if running && dead {
                failed.insert(name);
            }
        }
        (status, failed)
    }

    fn forget(&self, pod_uid: &str) {
        self.manager.remove_pod(pod_uid);
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_uid);
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_uid);
        self.refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_uid);
    }
}

/// The prober of a kubelet built without probes: no results.
pub struct NoProbes;

impl Prober for NoProbes {
    fn start(&self, _notify: Notify, _recorder: crate::events::Recorder) {}
    fn observe(&self, _pod: &Pod, _runtime: &PodRuntime) {}
    fn results(&self, _pod_uid: &str) -> (ProbeStatus, LivenessFailures) {
        Default::default()
    }
    fn forget(&self, _pod_uid: &str) {}
    fn is_noop(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn no_volumes_refuses_mounts_only() {
        let plain: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}))
        .unwrap();
        assert!(NoVolumes.setup(&plain).await.unwrap().is_empty());
        let with: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"volumes": [{"name": "data", "emptyDir": {}}],
                     "containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}})).unwrap();
        let err = NoVolumes.setup(&with).await.unwrap_err();
        assert!(err.0.contains("unmounted volumes=[data]"), "{err}");
    }

    #[test]
    fn probe_events_refer_to_the_pod_and_container() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                         "labels": {"a": "b"}},
            "spec": {"initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always"}],
                     "containers": [{"name": "app", "image": "i"}]}}))
        .unwrap();
        let r = EventRef::of(&p);
        assert_eq!(r.field_paths["app"], "spec.containers{app}");
        assert_eq!(r.field_paths["side"], "spec.initContainers{side}");
        assert_eq!(r.pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(r.pod.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(r.pod.metadata.uid.as_deref(), Some("u1"));
        // only the identity is kept per pod
        assert!(r.pod.metadata.labels.is_none() && r.pod.spec.is_none());
    }
}
