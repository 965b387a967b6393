//! The volume manager with the real mounter (tmpfs, bind mounts, unmounts); needs root and is
//! skipped otherwise. Every test unmounts what it mounted, even when it fails.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EmptyDirVolumeSource, HostPathVolumeSource, LocalVolumeSource,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, Pod,
    PodSpec, Secret, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kubelet::volumes::{
    ApiError, LinuxMounter, Mounter, NodeAllocatable, VolumeApi, VolumeConfig, VolumeManager,
};

#[derive(Default)]
struct Api {
    secrets: Mutex<BTreeMap<String, Secret>>,
    claims: Mutex<BTreeMap<String, PersistentVolumeClaim>>,
    volumes: Mutex<BTreeMap<String, PersistentVolume>>,
}

#[async_trait]
impl VolumeApi for Api {
    async fn config_map(&self, _: &str, _: &str) -> Result<Option<ConfigMap>, ApiError> {
        Ok(None)
    }
    async fn secret(&self, _: &str, name: &str) -> Result<Option<Secret>, ApiError> {
        Ok(self.secrets.lock().unwrap().get(name).cloned())
    }
    async fn persistent_volume_claim(
        &self,
        _: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, ApiError> {
        Ok(self.claims.lock().unwrap().get(name).cloned())
    }
    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, ApiError> {
        Ok(self.volumes.lock().unwrap().get(name).cloned())
    }
    async fn create_token(
        &self,
        _: &str,
        _: &str,
        _: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        Err(ApiError::other("no tokens here"))
    }
}

/// A temp root whose mounts are all detached on drop.
struct Root {
    dir: tempfile::TempDir,
}

impl Drop for Root {
    fn drop(&mut self) {
        let m = LinuxMounter;
        let mut mounts = m.mounts_under(self.dir.path()).unwrap_or_default();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in mounts {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn setup() -> Option<(Root, Arc<Api>, VolumeManager)> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return None;
    }
    let root = Root {
        dir: tempfile::tempdir().unwrap(),
    };
    let api = Arc::new(Api::default());
    let vm = VolumeManager::new(
        VolumeConfig {
            root_dir: root.dir.path().join("kubelet"),
            allocatable: NodeAllocatable {
                cpu_millis: 1000,
                memory_bytes: 256 << 20,
                ephemeral_storage_bytes: 0,
            },
        },
        api.clone(),
        Arc::new(LinuxMounter),
    );
    Some((root, api, vm))
}

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-root".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(volumes),
            containers: vec![Container {
                name: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn is_mounted(p: &Path) -> bool {
    LinuxMounter.is_mount_point(p).unwrap()
}

#[tokio::test]
async fn memory_empty_dir_and_secret_are_tmpfs_and_torn_down() {
    let Some((root, api, vm)) = setup() else {
        return;
    };
    api.secrets.lock().unwrap().insert(
        "s".into(),
        Secret {
            data: Some([("password".to_string(), ByteString(b"hunter2".to_vec()))].into()),
            ..Default::default()
        },
    );
    let p = pod(vec![
        Volume {
            name: "mem".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("8Mi".into())),
            }),
            ..Default::default()
        },
        Volume {
            name: "sec".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("s".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]);
    let vols = vm.setup(&p).await.unwrap();
    let mem = &vols.volumes["mem"].host_path;
    assert!(is_mounted(mem));
    let st = nix::sys::statvfs::statvfs(mem).unwrap();
    assert_eq!(st.blocks() * st.fragment_size(), 8 << 20);
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mem.to_str().unwrap()))
        .unwrap();
    assert!(line.contains(" - tmpfs "), "{line}");

    let sec = &vols.volumes["sec"].host_path;
    assert!(is_mounted(sec));
    assert_eq!(fs::read(sec.join("password")).unwrap(), b"hunter2");
    // second setup: no second mount stacked
    vm.setup(&p).await.unwrap();
    let count = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(sec.to_str().unwrap()))
        .count();
    assert_eq!(count, 1);
    // an update reaches the mounted volume
    api.secrets.lock().unwrap().get_mut("s").unwrap().data =
        Some([("password".to_string(), ByteString(b"changed".to_vec()))].into());
    vm.update(&p).await.unwrap();
    assert_eq!(fs::read(sec.join("password")).unwrap(), b"changed");

    vm.teardown("uid-root").unwrap();
    assert!(!is_mounted(mem) && !is_mounted(sec));
    assert!(!root.dir.path().join("kubelet/pods/uid-root").exists());
}

#[tokio::test]
async fn sub_paths_are_bound_safely_and_host_files_survive_teardown() {
    let Some((root, _api, vm)) = setup() else {
        return;
    };
    let host = root.dir.path().join("host");
    fs::create_dir_all(host.join("keep")).unwrap();
    fs::write(host.join("keep/precious"), "do not delete").unwrap();
    let p = pod(vec![
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        Volume {
            name: "host".into(),
            host_path: Some(HostPathVolumeSource {
                path: host.display().to_string(),
                type_: Some("Directory".into()),
            }),
            ..Default::default()
        },
    ]);
    let vols = vm.setup(&p).await.unwrap();
    let scratch = vols.volumes["scratch"].host_path.clone();
    std::os::unix::fs::symlink("/etc", scratch.join("escape")).unwrap();
    let mount = |name: &str, sub: &str| VolumeMount {
        name: name.into(),
        mount_path: format!("/m/{name}"),
        sub_path: Some(sub.into()),
        ..Default::default()
    };
    let container = |mounts: Vec<VolumeMount>| Container {
        name: "c".into(),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let env = BTreeMap::new();
    let err = vm
        .container_mounts(
            &p,
            &vols,
            &container(vec![mount("scratch", "escape")]),
            &env,
        )
        .unwrap_err();
    assert!(err.to_string().contains("not within volume path"), "{err}");

    let mounts = vm
        .container_mounts(
            &p,
            &vols,
            &container(vec![mount("scratch", "a/b"), mount("host", "keep")]),
            &env,
        )
        .unwrap();
    let a_b = PathBuf::from(&mounts[0].host_path);
    let keep = PathBuf::from(&mounts[1].host_path);
    assert!(a_b.ends_with("volume-subpaths/scratch/c/0"));
    assert!(is_mounted(&a_b) && is_mounted(&keep));
    fs::write(a_b.join("f"), "x").unwrap();
    assert_eq!(fs::read_to_string(scratch.join("a/b/f")).unwrap(), "x");
    assert_eq!(
        fs::read_to_string(keep.join("precious")).unwrap(),
        "do not delete"
    );
    // preparing the same mounts again reuses the binds
    vm.container_mounts(&p, &vols, &container(vec![mount("scratch", "a/b")]), &env)
        .unwrap();

    vm.teardown("uid-root").unwrap();
    assert!(!is_mounted(&a_b) && !is_mounted(&keep));
    assert_eq!(
        fs::read_to_string(host.join("keep/precious")).unwrap(),
        "do not delete"
    );
    assert!(!root.dir.path().join("kubelet/pods/uid-root").exists());
}

#[tokio::test]
async fn local_persistent_volume_is_bind_mounted() {
    let Some((root, api, vm)) = setup() else {
        return;
    };
    let disk = root.dir.path().join("disk");
    fs::create_dir_all(&disk).unwrap();
    fs::write(disk.join("data"), "on disk").unwrap();
    api.claims.lock().unwrap().insert(
        "claim".into(),
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("claim".into()),
                uid: Some("claim-uid".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: Some("local-pv".into()),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                ..Default::default()
            }),
        },
    );
    api.volumes.lock().unwrap().insert(
        "local-pv".into(),
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some("local-pv".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                claim_ref: Some(ObjectReference {
                    uid: Some("claim-uid".into()),
                    ..Default::default()
                }),
                local: Some(LocalVolumeSource {
                    path: disk.display().to_string(),
                    fs_type: None,
                }),
                ..Default::default()
            }),
            status: None,
        },
    );
    let p = pod(vec![Volume {
        name: "data".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: "claim".into(),
            read_only: None,
        }),
        ..Default::default()
    }]);
    let vols = vm.setup(&p).await.unwrap();
    let target = &vols.volumes["data"].host_path;
    assert!(target.ends_with("volumes/kubernetes.io~local-volume/local-pv"));
    assert!(is_mounted(target));
    assert_eq!(fs::read_to_string(target.join("data")).unwrap(), "on disk");
    vm.teardown("uid-root").unwrap();
    assert!(!is_mounted(target));
    assert_eq!(fs::read_to_string(disk.join("data")).unwrap(), "on disk");
}
