//! The kubelet's volume manager: prepares a pod's volumes on the node and tells the pod worker
//! which CRI mounts each container gets.
//!
//! # How the pod worker uses it
//! ```text
//! let vm = VolumeManager::new(VolumeConfig { root_dir, allocatable }, Arc::new(KubeVolumeApi::new(client)),
//!                             Arc::new(LinuxMounter));
//! // before the sandbox's containers are created (idempotent; call again after an agent restart):
//! let volumes = vm.setup(&pod).await?;            // Err(SetupError): one FailedMount event per failure
//! // per container, with the container's resolved environment (for subPathExpr):
//! let mounts: Vec<cri::v1::Mount> = vm.container_mounts(&pod, &volumes, &container, &env)?;
//! // periodically (upstream: every sync, ~1 min) and when a referenced configMap/secret changes:
//! vm.update(&pod).await?;                         // rewrites configMap/secret/downwardAPI/projected
//! // once every container of the pod is gone:
//! vm.teardown(pod_uid)?;                          // unmounts everything, removes <root>/pods/<uid>
//! ```
//! Layout as upstream: `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>` and subPath bind
//! mounts under `<root>/pods/<uid>/volume-subpaths/<volume>/<container>/<index>`.
//!
//! Plugins: emptyDir (disk; `Memory` as a tmpfs sized like upstream), hostPath (every type check),
//! configMap, secret, downwardAPI, projected (configMap, secret, downwardAPI, serviceAccountToken
//! through the TokenRequest API, refreshed at 80% of its lifetime), persistentVolumeClaim and
//! generic ephemeral volumes bound to hostPath or local PersistentVolumes. Secret, downwardAPI and
//! projected volumes live on tmpfs, like upstream. configMap/secret/downwardAPI/projected files are
//! written with the atomic `..data` symlink swap, so updates reach running containers (except
//! through subPath mounts, as upstream).

pub mod api;
pub mod atomic_writer;
pub mod hostpath;
pub mod mounter;
pub mod payload;
pub mod subpath;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    Container, PersistentVolume, PersistentVolumeClaim, Pod, Volume, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub use api::{ApiError, KubeVolumeApi, VolumeApi};
pub use mounter::{LinuxMounter, Mounter};
pub use payload::NodeAllocatable;

use payload::{FileProjection, Payload, DEFAULT_MODE};

/// Plugin directory names, as upstream escapes `kubernetes.io/<plugin>`.
pub const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
pub const CONFIG_MAP: &str = "kubernetes.io~configmap";
pub const SECRET: &str = "kubernetes.io~secret";
pub const DOWNWARD_API: &str = "kubernetes.io~downward-api";
pub const PROJECTED: &str = "kubernetes.io~projected";
pub const LOCAL_VOLUME: &str = "kubernetes.io~local-volume";
pub const HOST_PATH: &str = "kubernetes.io~host-path";

/// Settings of the volume manager.
#[derive(Debug, Clone)]
pub struct VolumeConfig {
    /// The kubelet root directory (upstream `/var/lib/kubelet`).
    pub root_dir: PathBuf,
    /// Node allocatable: default container limits for the downward API and the upper bound of
    /// memory-backed emptyDir sizes. Zero fields mean unknown.
    pub allocatable: NodeAllocatable,
}

/// One prepared volume of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedVolume {
    /// Plugin directory name (e.g. [`EMPTY_DIR`]; [`HOST_PATH`] for hostPath and hostPath PVs).
    pub plugin: &'static str,
    /// What the runtime bind-mounts into containers.
    pub host_path: PathBuf,
    /// The plugin forces read-only mounts (configMap, secret, downwardAPI, projected, read-only PVC).
    pub read_only: bool,
}

/// The prepared volumes of a pod, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pub volumes: BTreeMap<String, MountedVolume>,
}

/// A volume or mount failure, with what the pod worker needs for its event and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// A plugin could not set the volume up (event reason FailedMount).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    SetUp { volume: String, message: String },
    /// A PVC could not be resolved to a usable PV (event reason FailedMount).
    #[error("error processing PVC {namespace}/{claim}: {message}")]
    Claim {
        volume: String,
        namespace: String,
        claim: String,
        message: String,
    },
    /// A container's volumeMounts cannot be honoured (the container is not created: event Failed,
    /// waiting reason CreateContainerConfigError).
    #[error("{message}")]
    ContainerMount { container: String, message: String },
    /// Unmounting or removing the pod's volumes failed (upstream logs it and retries on the next
    /// housekeeping pass; keep the pod directory and call `teardown` again later).
    #[error("{message}")]
    TearDown { message: String },
}

impl VolumeError {
    /// The event reason upstream uses.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SetUp { .. } | Self::Claim { .. } => "FailedMount",
            Self::ContainerMount { .. } => "CreateContainerConfigError",
            Self::TearDown { .. } => "FailedUnmount",
        }
    }

    /// The volume concerned, if any.
    pub fn volume(&self) -> Option<&str> {
        match self {
            Self::SetUp { volume, .. } | Self::Claim { volume, .. } => Some(volume),
            _ => None,
        }
    }
}

/// Every failed volume of a [`VolumeManager::setup`] or [`VolumeManager::update`] call; the
/// other volumes were prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unmounted volumes=[{}]: {}", self.volumes().join(" "), self.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "))]
pub struct SetupError {
    pub failures: Vec<VolumeError>,
}

impl SetupError {
    /// The names of the failed volumes, sorted.
    pub fn volumes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.failures.iter().filter_map(|f| f.volume()).collect();
        v.sort_unstable();
        v
    }
}

/// The volume manager of one kubelet. Cheap to share (`Arc`); calls for different pods may run
/// concurrently, calls for one pod are serialised.
pub struct VolumeManager {
    config: VolumeConfig,
    api: Arc<dyn VolumeApi>,
    mounter: Arc<dyn Mounter>,
    tokens: token::TokenManager,
    pod_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Setup,
    Update,
}

impl VolumeManager {
    pub fn new(config: VolumeConfig, api: Arc<dyn VolumeApi>, mounter: Arc<dyn Mounter>) -> Self {
        Self {
            tokens: token::TokenManager::new(api.clone()),
            config,
            api,
            mounter,
            pod_locks: Mutex::new(HashMap::new()),
        }
    }

    /// `<root>/pods/<uid>`.
    pub fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.config.root_dir.join("pods").join(pod_uid)
    }

    /// `<root>/pods/<uid>/volumes/<plugin>/<name>`.
    pub fn volume_dir(&self, pod_uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(pod_uid)
            .join("volumes")
            .join(plugin)
            .join(name)
    }

    fn pod_lock(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.pod_locks
            .lock()
            .expect("pod locks")
            .entry(uid.to_string())
            .or_default()
            .clone()
    }

    /// Prepares every volume of the pod (idempotent: mounted tmpfs and written files are reused,
    /// changed contents are swapped in). Returns the volumes when all succeeded.
    pub async fn setup(&self, pod: &Pod) -> Result<PodVolumes, SetupError> {
        self.run(pod, Pass::Setup).await
    }

    /// Refreshes the volumes whose contents follow API objects (configMap, secret, downwardAPI,
    /// projected incl. service account tokens due for refresh). Call it periodically (upstream
    /// resyncs every pod about once a minute) and when a referenced object changes.
    pub async fn update(&self, pod: &Pod) -> Result<(), SetupError> {
        self.run(pod, Pass::Update).await.map(drop)
    }

    /// When (epoch seconds) the earliest service account token of the pod becomes due for
    /// refresh; `update` should run by then.
    pub fn next_token_refresh(&self, pod_uid: &str) -> Option<i64> {
        self.tokens.next_refresh(pod_uid)
    }

    async fn run(&self, pod: &Pod, pass: Pass) -> Result<PodVolumes, SetupError> {
        let uid = pod_uid(pod).map_err(|message| SetupError {
            failures: vec![VolumeError::SetUp {
                volume: String::new(),
                message,
            }],
        })?;
        let lock = self.pod_lock(uid);
        let _guard = lock.lock().await;
        let mut out = PodVolumes::default();
        let mut failures = Vec::new();
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        let todo: Vec<&Volume> = volumes
            .into_iter()
            .flatten()
            .filter(|vol| {
                let content = vol.config_map.is_some()
                    || vol.secret.is_some()
                    || vol.downward_api.is_some()
                    || vol.projected.is_some();
                pass == Pass::Setup || content
            })
            .collect();
        // the volumes' API reads run concurrently
        let results =
            futures::future::join_all(todo.iter().map(|vol| self.setup_volume(pod, uid, vol)))
                .await;
        for (vol, r) in todo.into_iter().zip(results) {
            match r {
                Ok(m) => {
                    out.volumes.insert(vol.name.clone(), m);
                }
                Err(e) => {
                    tracing::warn!(pod = %pod_name(pod), volume = %vol.name, error = %e, "volume setup failed");
                    failures.push(e);
                }
            }
        }
        if failures.is_empty() {
            Ok(out)
        } else {
            Err(SetupError { failures })
        }
    }

    async fn setup_volume(
        &self,
        pod: &Pod,
        uid: &str,
        vol: &Volume,
    ) -> Result<MountedVolume, VolumeError> {
        let name = vol.name.as_str();
        let fail = |message: String| VolumeError::SetUp {
            volume: name.to_string(),
            message,
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let fs_group = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|s| s.fs_group)
            .map(|g| g as u32);

        if let Some(ed) = &vol.empty_dir {
            let dir = self.volume_dir(uid, EMPTY_DIR, name);
            let created = match ed.medium.as_deref().unwrap_or("") {
                "" => ensure_dir(&dir, 0o777).map_err(|e| fail(e.to_string()))?,
                "Memory" => {
                    let size = memory_volume_size(
                        pod,
                        ed.size_limit.as_ref(),
                        self.config.allocatable.memory_bytes,
                    );
                    self.ensure_tmpfs(&dir, size).map_err(fail)?
                }
                other => {
                    return Err(fail(format!(
                        "emptyDir medium {other:?} is not supported on this node"
                    )))
                }
            };
            // ownership is applied once, when the (empty) volume is created, not to user data
            // on every resync
            if let (true, Some(gid)) = (created, fs_group) {
                set_ownership(&dir, gid, false).map_err(|e| fail(e.to_string()))?;
            }
            return Ok(MountedVolume {
                plugin: EMPTY_DIR,
                host_path: dir,
                read_only: false,
            });
        }

        if let Some(hp) = &vol.host_path {
            let path = PathBuf::from(&hp.path);
            hostpath::check_type(&path, hp.type_.as_deref()).map_err(fail)?;
            return Ok(MountedVolume {
                plugin: HOST_PATH,
                host_path: path,
                read_only: false,
            });
        }

        if let Some(cm) = &vol.config_map {
            let optional = cm.optional.unwrap_or(false);
            let mode = cm.default_mode.unwrap_or(DEFAULT_MODE);
            let payload = match self.api.config_map(ns, &cm.name).await {
                Ok(Some(obj)) => payload::config_map_payload(
                    cm.items.as_deref().unwrap_or_default(),
                    &obj,
                    mode,
                    optional,
                )
                .map_err(fail)?,
                Ok(None) if optional => Payload::new(),
                Ok(None) => return Err(fail(format!("configmap {:?} not found", cm.name))),
                Err(e) => return Err(fail(e.message)),
            };
            let dir = self.volume_dir(uid, CONFIG_MAP, name);
            ensure_dir(&dir, 0o777).map_err(|e| fail(e.to_string()))?;
            write_payload(&dir, &payload, fs_group).map_err(fail)?;
            return Ok(MountedVolume {
                plugin: CONFIG_MAP,
                host_path: dir,
                read_only: true,
            });
        }

        if let Some(s) = &vol.secret {
            let secret_name = s.secret_name.clone().unwrap_or_default();
            let optional = s.optional.unwrap_or(false);
            let mode = s.default_mode.unwrap_or(DEFAULT_MODE);
            let payload = match self.api.secret(ns, &secret_name).await {
                Ok(Some(obj)) => payload::secret_payload(
                    s.items.as_deref().unwrap_or_default(),
                    &obj,
                    mode,
                    optional,
                )
                .map_err(fail)?,
                Ok(None) if optional => Payload::new(),
                Ok(None) => return Err(fail(format!("secret {secret_name:?} not found"))),
                Err(e) => return Err(fail(e.message)),
            };
            let dir = self.volume_dir(uid, SECRET, name);
            let size = memory_volume_size(pod, None, self.config.allocatable.memory_bytes);
            self.ensure_tmpfs(&dir, size).map_err(fail)?;
            write_payload(&dir, &payload, fs_group).map_err(fail)?;
            return Ok(MountedVolume {
                plugin: SECRET,
                host_path: dir,
                read_only: true,
            });
        }

        if let Some(d) = &vol.downward_api {
            let payload = payload::downward_api_payload(
                d.items.as_deref().unwrap_or_default(),
                pod,
                &self.config.allocatable,
                d.default_mode.unwrap_or(DEFAULT_MODE),
            )
            .map_err(fail)?;
            let dir = self.volume_dir(uid, DOWNWARD_API, name);
            let size = memory_volume_size(pod, None, self.config.allocatable.memory_bytes);
            self.ensure_tmpfs(&dir, size).map_err(fail)?;
            write_payload(&dir, &payload, fs_group).map_err(fail)?;
            return Ok(MountedVolume {
                plugin: DOWNWARD_API,
                host_path: dir,
                read_only: true,
            });
        }

        if let Some(p) = &vol.projected {
            let payload = self
                .projected_payload(
                    pod,
                    p.sources.as_deref().unwrap_or_default(),
                    p.default_mode.unwrap_or(DEFAULT_MODE),
                    fs_group,
                )
                .await
                .map_err(fail)?;
            let dir = self.volume_dir(uid, PROJECTED, name);
            let size = memory_volume_size(pod, None, self.config.allocatable.memory_bytes);
            self.ensure_tmpfs(&dir, size).map_err(fail)?;
            write_payload(&dir, &payload, fs_group).map_err(fail)?;
            return Ok(MountedVolume {
                plugin: PROJECTED,
                host_path: dir,
                read_only: true,
            });
        }

        if let Some(claim) = &vol.persistent_volume_claim {
            let read_only = claim.read_only.unwrap_or(false);
            return self
                .claim_volume(pod, uid, name, ns, &claim.claim_name, read_only, false)
                .await;
        }

        if vol.ephemeral.is_some() {
            // generic ephemeral volume: the PVC `<pod>-<volume>` created for (and owned by) the pod
            let claim = format!("{}-{}", pod.metadata.name.as_deref().unwrap_or(""), name);
            return self
                .claim_volume(pod, uid, name, ns, &claim, false, true)
                .await;
        }

        Err(fail("no volume plugin matched".into()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn claim_volume(
        &self,
        pod: &Pod,
        uid: &str,
        volume: &str,
        ns: &str,
        claim_name: &str,
        read_only: bool,
        ephemeral: bool,
    ) -> Result<MountedVolume, VolumeError> {
        let claim_err = |message: String| VolumeError::Claim {
            volume: volume.to_string(),
            namespace: ns.to_string(),
            claim: claim_name.to_string(),
            message,
        };
        let pvc = match self.api.persistent_volume_claim(ns, claim_name).await {
            Ok(Some(pvc)) => pvc,
            Ok(None) => {
                return Err(claim_err(format!(
                    "failed to fetch PVC from API server: persistentvolumeclaims {claim_name:?} not found"
                )))
            }
            Err(e) => {
                return Err(claim_err(format!(
                    "failed to fetch PVC from API server: {}",
                    e.message
                )))
            }
        };
        if ephemeral && !owned_by(&pvc, uid) {
            return Err(claim_err(format!(
                "PVC {ns}/{claim_name} was not created for pod {ns}/{} (pod is not owner)",
                pod.metadata.name.as_deref().unwrap_or("")
            )));
        }
        let pv_name = check_claim(&pvc).map_err(claim_err)?;
        let pv = match self.api.persistent_volume(&pv_name).await {
            Ok(Some(pv)) => pv,
            Ok(None) => {
                return Err(claim_err(format!(
                    "failed to fetch PV {pv_name} from API server: persistentvolumes {pv_name:?} not found"
                )))
            }
            Err(e) => {
                return Err(claim_err(format!(
                    "failed to fetch PV {pv_name} from API server: {}",
                    e.message
                )))
            }
        };
        check_volume(&pv, &pvc).map_err(claim_err)?;
        let fail = |message: String| VolumeError::SetUp {
            volume: volume.to_string(),
            message,
        };
        let spec = pv.spec.as_ref().expect("checked by check_volume");
        if let Some(hp) = &spec.host_path {
            let path = PathBuf::from(&hp.path);
            hostpath::check_type(&path, hp.type_.as_deref()).map_err(fail)?;
            return Ok(MountedVolume {
                plugin: HOST_PATH,
                host_path: path,
                read_only,
            });
        }
        if let Some(local) = &spec.local {
            let source = PathBuf::from(&local.path);
            if !source.exists() {
                return Err(fail(format!("path {:?} does not exist", local.path)));
            }
            let target = self.volume_dir(uid, LOCAL_VOLUME, &pv_name);
            if !self.mounter.is_mount_point(&target).unwrap_or(false) {
                ensure_dir(&target, 0o750).map_err(|e| fail(e.to_string()))?;
                self.mounter
                    .bind_mount(&source, &target)
                    .map_err(|e| fail(format!("mount failed: {e}")))?;
            }
            return Ok(MountedVolume {
                plugin: LOCAL_VOLUME,
                host_path: target,
                read_only,
            });
        }
        Err(fail("no volume plugin matched".into()))
    }

    async fn projected_payload(
        &self,
        pod: &Pod,
        sources: &[VolumeProjection],
        default_mode: i32,
        fs_group: Option<u32>,
    ) -> Result<Payload, String> {
        // the sources' API reads (token request, configMaps, secrets) run concurrently; their
        // payloads merge in the sources' order
        let parts = futures::future::join_all(
            sources
                .iter()
                .map(|source| self.source_payload(pod, source, default_mode, fs_group)),
        )
        .await;
        let mut payload = Payload::new();
        let mut errors = Vec::new();
        for part in parts {
            match part {
                Ok(p) => payload.extend(p),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(payload)
        } else {
            Err(payload::aggregate(errors))
        }
    }

    /// The payload of one projected volume source.
    async fn source_payload(
        &self,
        pod: &Pod,
        source: &VolumeProjection,
        default_mode: i32,
        fs_group: Option<u32>,
    ) -> Result<Payload, String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut payload = Payload::new();
        let mut errors = Vec::new();
        {
            if let Some(cm) = &source.config_map {
                let optional = cm.optional.unwrap_or(false);
                match self.api.config_map(ns, &cm.name).await {
                    Ok(Some(obj)) => match payload::config_map_payload(
                        cm.items.as_deref().unwrap_or_default(),
                        &obj,
                        default_mode,
                        optional,
                    ) {
                        Ok(p) => payload.extend(p),
                        Err(e) => errors.push(e),
                    },
                    Ok(None) if optional => {}
                    Ok(None) => errors.push(format!("configmap {:?} not found", cm.name)),
                    Err(e) => errors.push(e.message),
                }
            } else if let Some(s) = &source.secret {
                let optional = s.optional.unwrap_or(false);
                match self.api.secret(ns, &s.name).await {
                    Ok(Some(obj)) => match payload::secret_payload(
                        s.items.as_deref().unwrap_or_default(),
                        &obj,
                        default_mode,
                        optional,
                    ) {
                        Ok(p) => payload.extend(p),
                        Err(e) => errors.push(e),
                    },
                    Ok(None) if optional => {}
                    Ok(None) => errors.push(format!("secret {:?} not found", s.name)),
                    Err(e) => errors.push(e.message),
                }
            } else if let Some(d) = &source.downward_api {
                match payload::downward_api_payload(
                    d.items.as_deref().unwrap_or_default(),
                    pod,
                    &self.config.allocatable,
                    default_mode,
                ) {
                    Ok(p) => payload.extend(p),
                    Err(e) => errors.push(e),
                }
            } else if let Some(t) = &source.service_account_token {
                let fs_user = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.security_context.as_ref())
                    .and_then(|s| s.run_as_user)
                    .filter(|_| fs_group.is_some());
                let mode = if fs_group.is_some() {
                    0o600
                } else {
                    default_mode
                };
                let sa = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.as_deref())
                    .filter(|s| !s.is_empty())
                    .unwrap_or("default");
                let request = token::token_request(
                    pod.metadata.name.as_deref().unwrap_or(""),
                    pod.metadata.uid.as_deref().unwrap_or(""),
                    t.audience.as_deref().unwrap_or(""),
                    t.expiration_seconds,
                );
                match self.tokens.get(ns, sa, &request).await {
                    Ok(tr) => {
                        let token = tr.status.map(|s| s.token).unwrap_or_default();
                        let mut f = FileProjection::new(token, mode);
                        f.uid = fs_user.map(|u| u as u32);
                        payload.insert(t.path.clone(), f);
                    }
                    Err(e) => errors.push(e.message),
                }
            } else if source.cluster_trust_bundle.is_some() {
                errors.push("clusterTrustBundle projections are not supported".into());
            }
        }
        match errors.pop() {
            None => Ok(payload),
            Some(e) => Err(e),
        }
    }

    /// Mounts a tmpfs on `dir` unless one is there; `true` when it mounted one.
    fn ensure_tmpfs(&self, dir: &Path, size: Option<u64>) -> Result<bool, String> {
        if self
            .mounter
            .is_mount_point(dir)
            .map_err(|e| e.to_string())?
        {
            return Ok(false);
        }
        ensure_dir(dir, 0o750).map_err(|e| e.to_string())?;
        self.mounter
            .mount_tmpfs(dir, size)
            .map_err(|e| format!("mount of tmpfs on {} failed: {e}", dir.display()))?;
        Ok(true)
    }

    /// The CRI mounts of one container (upstream `makeMounts` for volumes): readOnly, propagation,
    /// recursive read-only, subPath/subPathExpr (expanded with `env`, validated, bind-mounted
    /// safely). `volumes` comes from [`VolumeManager::setup`].
    pub fn container_mounts(
        &self,
        pod: &Pod,
        volumes: &PodVolumes,
        container: &Container,
        env: &BTreeMap<String, String>,
    ) -> Result<Vec<cri::v1::Mount>, VolumeError> {
        use cri::v1::MountPropagation as P;
        let err = |message: String| VolumeError::ContainerMount {
            container: container.name.clone(),
            message,
        };
        let uid = pod_uid(pod).map_err(err)?;
        let privileged = container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        let mut mounts = Vec::new();
        for (index, vm) in container.volume_mounts.iter().flatten().enumerate() {
            let Some(vol) = volumes.volumes.get(&vm.name) else {
                return Err(err(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    vm.name, container.name
                )));
            };
            let mut host_path = vol.host_path.clone();
            let mut sub_path = vm.sub_path.clone().unwrap_or_default();
            if let Some(expr) = vm.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
                sub_path = crate::expand::expand_sub_path_expr(expr, env).map_err(err)?;
            }
            if !sub_path.is_empty() {
                subpath::validate(&sub_path).map_err(err)?;
                let full = vol.host_path.join(&sub_path);
                if fs::symlink_metadata(&full).is_err() {
                    subpath::make_dirs(&vol.host_path, &sub_path).map_err(|e| {
                        tracing::warn!(container = %container.name, volume = %vm.name, error = %e, "cannot create subPath directory");
                        err(format!(
                            "failed to create subPath directory for volumeMount {:?} of container {:?}",
                            vm.name, container.name
                        ))
                    })?;
                }
                let target = self
                    .pod_dir(uid)
                    .join("volume-subpaths")
                    .join(&vm.name)
                    .join(&container.name)
                    .join(index.to_string());
                host_path = subpath::prepare_safe(
                    self.mounter.as_ref(),
                    &vol.host_path,
                    &sub_path,
                    &target,
                )
                .map_err(err)?;
            }
            let propagation = match vm.mount_propagation.as_deref() {
                None | Some("None") => P::PropagationPrivate,
                Some("HostToContainer") => P::PropagationHostToContainer,
                Some("Bidirectional") if privileged => P::PropagationBidirectional,
                Some("Bidirectional") => return Err(err(
                    "Bidirectional mount propagation is available only to privileged containers"
                        .into(),
                )),
                Some(other) => {
                    return Err(err(format!("invalid MountPropagation mode: {other:?}")))
                }
            };
            let read_only = vm.read_only.unwrap_or(false) || vol.read_only;
            let recursive_read_only = match vm.recursive_read_only.as_deref() {
                Some("Enabled") => {
                    if !read_only {
                        return Err(err(format!(
                            "volume {:?} requested recursive read-only mode, but it is not read-only",
                            vm.name
                        )));
                    }
                    if propagation != P::PropagationPrivate {
                        return Err(err(format!(
                            "volume {:?} requested recursive read-only mode, but it is not compatible with propagation {:?}",
                            vm.name,
                            vm.mount_propagation.as_deref().unwrap_or("None")
                        )));
                    }
                    true
                }
                _ => false,
            };
            mounts.push(cri::v1::Mount {
                container_path: vm.mount_path.clone(),
                host_path: host_path.to_string_lossy().into_owned(),
                readonly: read_only,
                propagation: propagation as i32,
                recursive_read_only,
                ..Default::default()
            });
        }
        Ok(mounts)
    }

    /// Unmounts every mount below `<root>/pods/<uid>` (tmpfs, local PV and subPath binds), then
    /// removes the pod directory. Nothing is removed while a mount remains, so host files behind
    /// a bind mount are never deleted.
    pub fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let err = |message: String| VolumeError::TearDown { message };
        check_uid(pod_uid).map_err(err)?;
        let dir = self.pod_dir(pod_uid);
        for _round in 0..3 {
            let mut mounts = self
                .mounter
                .mounts_under(&dir)
                .map_err(|e| err(format!("cannot read the mount table: {e}")))?;
            if mounts.is_empty() {
                break;
            }
            // deepest first
            mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
            mounts.dedup();
            for m in mounts {
                if let Err(e) = self.mounter.unmount(&m) {
                    tracing::warn!(path = %m.display(), error = %e, "unmount failed");
                }
            }
        }
        let left = self
            .mounter
            .mounts_under(&dir)
            .map_err(|e| err(format!("cannot read the mount table: {e}")))?;
        if !left.is_empty() {
            return Err(err(format!(
                "cannot remove pod directory {}: still mounted: {}",
                dir.display(),
                left.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(format!("cannot remove {}: {e}", dir.display()))),
        }
        self.tokens.forget_pod(pod_uid);
        self.pod_locks.lock().expect("pod locks").remove(pod_uid);
        Ok(())
    }
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

fn check_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() || uid == "." || uid == ".." || uid.contains('/') || uid.contains('\0') {
        Err(format!("invalid pod uid {uid:?}"))
    } else {
        Ok(())
    }
}

fn pod_uid(pod: &Pod) -> Result<&str, String> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    check_uid(uid)?;
    Ok(uid)
}

/// Creates `dir` with `mode` (umask ignored) unless it exists; `true` when it created it.
fn ensure_dir(dir: &Path, mode: u32) -> io::Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    Ok(true)
}

fn write_payload(dir: &Path, payload: &Payload, fs_group: Option<u32>) -> Result<(), String> {
    let perms = move |ts_dir: &Path| match fs_group {
        Some(gid) => set_ownership(ts_dir, gid, true),
        None => Ok(()),
    };
    atomic_writer::write(dir, payload, &perms)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Upstream `SetVolumeOwnership`: group `gid` on everything, group read (read-only volumes) or
/// read-write, setgid and group search on directories; symlinks only get their group.
pub fn set_ownership(path: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    std::os::unix::fs::lchown(path, None, Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if meta.is_dir() {
        mask |= 0o2000 | 0o110;
    }
    let mode = meta.permissions().mode() & 0o7777;
    fs::set_permissions(path, fs::Permissions::from_mode(mode | mask))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            set_ownership(&entry?.path(), gid, read_only)?;
        }
    }
    Ok(())
}

fn quantity_bytes(q: &Quantity) -> Option<u64> {
    apimachinery::validation::quantity::parse(&q.0).map(|v| v.ceil().max(0.0) as u64)
}

/// Size of a memory-backed volume, as upstream `calculateEmptyDirMemorySize`: node allocatable,
/// lowered to the pod's memory limit (when every container declares one), lowered to `sizeLimit`.
/// `None` leaves the tmpfs default.
pub fn memory_volume_size(
    pod: &Pod,
    size_limit: Option<&Quantity>,
    node_allocatable: u64,
) -> Option<u64> {
    let mut size = (node_allocatable > 0).then_some(node_allocatable);
    if let Some(limit) = pod_memory_limit(pod) {
        if limit > 0 && size.is_none_or(|s| limit <= s) {
            size = Some(limit);
        }
    }
    if let Some(v) = size_limit.and_then(quantity_bytes) {
        if v > 0 && size.is_none_or(|s| v <= s) {
            size = Some(v);
        }
    }
    size
}

/// The pod-level memory limit upstream's pod cgroup gets: only when every container declares one;
/// max(sum of app containers and sidecars, any init container), plus overhead.
pub fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let limit = |c: &Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .and_then(quantity_bytes)
    };
    let mut sum = 0u64;
    for c in &spec.containers {
        sum += limit(c)?;
    }
    let mut init_max = 0u64;
    for c in spec.init_containers.iter().flatten() {
        let l = limit(c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sum += l;
        } else {
            init_max = init_max.max(l);
        }
    }
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get("memory"))
        .and_then(quantity_bytes)
        .unwrap_or(0);
    Some(sum.max(init_max) + overhead)
}

fn owned_by(pvc: &PersistentVolumeClaim, pod_uid: &str) -> bool {
    pvc.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == pod_uid && o.controller == Some(true))
}

/// Upstream's checks of a claim before its PV is fetched; returns the PV name.
pub fn check_claim(pvc: &PersistentVolumeClaim) -> Result<String, String> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return Err("PVC is being deleted".into());
    }
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        return Err("PVC is not bound".into());
    }
    match pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err("PVC has empty pvc.Spec.VolumeName".into()),
    }
}

/// Upstream's checks of the PV a claim points to.
pub fn check_volume(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> Result<(), String> {
    let name = pv.metadata.name.as_deref().unwrap_or("");
    let Some(spec) = pv.spec.as_ref() else {
        return Err(format!("PV {name} has no spec"));
    };
    let Some(claim_ref) = spec.claim_ref.as_ref() else {
        return Err(format!(
            "found PV object {name} but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"
        ));
    };
    let want = pvc.metadata.uid.as_deref().unwrap_or("");
    let got = claim_ref.uid.as_deref().unwrap_or("");
    if got != want {
        return Err(format!(
            "found PV object {name} but its pv.Spec.ClaimRef.UID {got} does not point to claim.UID {want}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
