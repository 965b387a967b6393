//! Unit tests of the volume manager with an in-memory API and a recording mounter.

use super::mounter::fake::{Call, FakeMounter};
use super::*;
use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, EmptyDirVolumeSource,
    HostPathVolumeSource, KeyToPath, LocalVolumeSource, ObjectReference, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, PersistentVolumeSpec,
    PodSecurityContext, PodSpec, ProjectedVolumeSource, Secret, SecretVolumeSource,
    SecurityContext, ServiceAccountTokenProjection, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::ByteString;
use std::os::unix::fs::MetadataExt;

#[derive(Default)]
struct FakeApi {
    config_maps: Mutex<BTreeMap<String, ConfigMap>>,
    secrets: Mutex<BTreeMap<String, Secret>>,
    claims: Mutex<BTreeMap<String, PersistentVolumeClaim>>,
    volumes: Mutex<BTreeMap<String, PersistentVolume>>,
    token_requests: Mutex<Vec<(String, String, TokenRequest)>>,
}

#[async_trait]
impl VolumeApi for FakeApi {
    async fn config_map(&self, _ns: &str, name: &str) -> Result<Option<ConfigMap>, ApiError> {
        Ok(self.config_maps.lock().unwrap().get(name).cloned())
    }
    async fn secret(&self, _ns: &str, name: &str) -> Result<Option<Secret>, ApiError> {
        if name == "forbidden" {
            return Err(ApiError::other(
                "secrets \"forbidden\" is forbidden: no relationship found",
            ));
        }
        Ok(self.secrets.lock().unwrap().get(name).cloned())
    }
    async fn persistent_volume_claim(
        &self,
        _ns: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, ApiError> {
        Ok(self.claims.lock().unwrap().get(name).cloned())
    }
    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, ApiError> {
        Ok(self.volumes.lock().unwrap().get(name).cloned())
    }
    async fn create_token(
        &self,
        ns: &str,
        sa: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        let mut log = self.token_requests.lock().unwrap();
        log.push((ns.into(), sa.into(), request.clone()));
        let mut tr = request.clone();
        let exp = k8s_openapi::jiff::Timestamp::now().as_second()
            + request.spec.expiration_seconds.unwrap_or(3600);
        tr.status = Some(TokenRequestStatus {
            token: format!("token-{}", log.len()),
            expiration_timestamp: Time(k8s_openapi::jiff::Timestamp::from_second(exp).unwrap()),
        });
        Ok(tr)
    }
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    api: Arc<FakeApi>,
    mounter: Arc<FakeMounter>,
    vm: VolumeManager,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kubelet");
    let api = Arc::new(FakeApi::default());
    let mounter = Arc::new(FakeMounter::default());
    let vm = VolumeManager::new(
        VolumeConfig {
            root_dir: root.clone(),
            allocatable: NodeAllocatable {
                cpu_millis: 2000,
                memory_bytes: 4 << 30,
                ephemeral_storage_bytes: 0,
            },
        },
        api.clone(),
        mounter.clone(),
    );
    Env {
        _dir: dir,
        root,
        api,
        mounter,
        vm,
    }
}

fn pod(volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-1".into()),
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

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn config_map_volume(name: &str, cm_name: &str, optional: Option<bool>) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: cm_name.into(),
            optional,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn config_map_volume_written_and_updated() {
    let e = env();
    e.api
        .config_maps
        .lock()
        .unwrap()
        .insert("app".into(), cm("app", &[("k", "v1")]));
    let p = pod(vec![config_map_volume("cfg", "app", None)]);
    let vols = e.vm.setup(&p).await.unwrap();
    let dir = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~configmap/cfg");
    assert_eq!(
        vols.volumes["cfg"],
        MountedVolume {
            plugin: CONFIG_MAP,
            host_path: dir.clone(),
            read_only: true
        }
    );
    assert_eq!(fs::read_to_string(dir.join("k")).unwrap(), "v1");
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o777
    );

    e.api
        .config_maps
        .lock()
        .unwrap()
        .insert("app".into(), cm("app", &[("k", "v2"), ("new", "n")]));
    e.vm.update(&p).await.unwrap();
    assert_eq!(fs::read_to_string(dir.join("k")).unwrap(), "v2");
    assert_eq!(fs::read_to_string(dir.join("new")).unwrap(), "n");
    // a configMap volume needs no mount
    assert!(e.mounter.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn missing_objects_report_failed_mount() {
    let e = env();
    let p = pod(vec![
        config_map_volume("cfg", "missing", None),
        config_map_volume("opt", "missing", Some(true)),
        Volume {
            name: "sec".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("nope".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "denied".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("forbidden".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "odd".into(),
            ..Default::default()
        },
    ]);
    let err = e.vm.setup(&p).await.unwrap_err();
    let msgs: Vec<(String, &str)> = err
        .failures
        .iter()
        .map(|f| (f.to_string(), f.reason()))
        .collect();
    assert_eq!(
        msgs,
        vec![
            (
                "MountVolume.SetUp failed for volume \"cfg\" : configmap \"missing\" not found".to_string(),
                "FailedMount"
            ),
            (
                "MountVolume.SetUp failed for volume \"sec\" : secret \"nope\" not found".to_string(),
                "FailedMount"
            ),
            (
                "MountVolume.SetUp failed for volume \"denied\" : secrets \"forbidden\" is forbidden: no relationship found".to_string(),
                "FailedMount"
            ),
            (
                "MountVolume.SetUp failed for volume \"odd\" : no volume plugin matched".to_string(),
                "FailedMount"
            ),
        ]
    );
    assert_eq!(err.volumes(), vec!["cfg", "denied", "odd", "sec"]);
    // the optional one was still prepared (empty)
    let opt = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~configmap/opt");
    assert!(opt.join("..data").exists());
}

#[tokio::test]
async fn secret_on_tmpfs_with_items_and_modes() {
    let e = env();
    e.api.secrets.lock().unwrap().insert(
        "tls".into(),
        Secret {
            data: Some(
                [
                    ("tls.crt".to_string(), ByteString(b"CRT".to_vec())),
                    ("tls.key".to_string(), ByteString(b"KEY".to_vec())),
                ]
                .into(),
            ),
            ..Default::default()
        },
    );
    let p = pod(vec![Volume {
        name: "certs".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("tls".into()),
            default_mode: Some(0o440),
            items: Some(vec![KeyToPath {
                key: "tls.key".into(),
                path: "private/key.pem".into(),
                mode: Some(0o400),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    let vols = e.vm.setup(&p).await.unwrap();
    let dir = e.root.join("pods/uid-1/volumes/kubernetes.io~secret/certs");
    assert!(vols.volumes["certs"].read_only);
    assert_eq!(
        e.mounter.calls.lock().unwrap().clone(),
        vec![Call::Tmpfs(dir.clone(), Some(4 << 30))]
    );
    assert_eq!(fs::read(dir.join("private/key.pem")).unwrap(), b"KEY");
    assert_eq!(
        fs::metadata(dir.join("private/key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o400
    );
    assert!(!dir.join("tls.crt").exists());
    // setting up again does not mount twice
    e.vm.setup(&p).await.unwrap();
    assert_eq!(e.mounter.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn empty_dir_disk_and_memory_sizes() {
    let e = env();
    let mut p = pod(vec![
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        Volume {
            name: "mem".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("64Mi".into())),
            }),
            ..Default::default()
        },
    ]);
    let vols = e.vm.setup(&p).await.unwrap();
    let scratch = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~empty-dir/scratch");
    assert_eq!(vols.volumes["scratch"].host_path, scratch);
    assert!(!vols.volumes["scratch"].read_only);
    assert_eq!(
        fs::metadata(&scratch).unwrap().permissions().mode() & 0o777,
        0o777
    );
    let mem = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~empty-dir/mem");
    assert_eq!(
        e.mounter.calls.lock().unwrap().clone(),
        vec![Call::Tmpfs(mem, Some(64 << 20))]
    );

    // the pod memory limit caps a larger sizeLimit; without limits node allocatable is the cap
    let spec = p.spec.as_mut().unwrap();
    spec.containers[0].resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
        limits: Some([("memory".to_string(), Quantity("32Mi".into()))].into()),
        ..Default::default()
    });
    let lim =
        |s: Option<&str>| memory_volume_size(&p, s.map(|s| Quantity(s.into())).as_ref(), 4 << 30);
    assert_eq!(lim(Some("64Mi")), Some(32 << 20));
    assert_eq!(lim(Some("16Mi")), Some(16 << 20));
    assert_eq!(lim(None), Some(32 << 20));
    assert_eq!(
        memory_volume_size(&pod(vec![]), None, 4 << 30),
        Some(4 << 30)
    );
    assert_eq!(memory_volume_size(&pod(vec![]), None, 0), None);
}

#[tokio::test]
async fn host_path_checks() {
    let e = env();
    let host = e.root.parent().unwrap().join("host");
    let p = pod(vec![
        Volume {
            name: "made".into(),
            host_path: Some(HostPathVolumeSource {
                path: host.join("made").display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Default::default()
        },
        Volume {
            name: "missing".into(),
            host_path: Some(HostPathVolumeSource {
                path: host.join("nothing").display().to_string(),
                type_: Some("File".into()),
            }),
            ..Default::default()
        },
    ]);
    let err = e.vm.setup(&p).await.unwrap_err();
    assert_eq!(
        err.failures,
        vec![VolumeError::SetUp {
            volume: "missing".into(),
            message: format!(
                "hostPath type check failed: {} is not a file",
                host.join("nothing").display()
            )
        }]
    );
    assert!(host.join("made").is_dir());
}

fn claim(name: &str, phase: &str, volume: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("claim-{name}")),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: volume.map(String::from),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn pv(name: &str, claim_uid: Option<&str>, spec: PersistentVolumeSpec) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            claim_ref: claim_uid.map(|u| ObjectReference {
                uid: Some(u.into()),
                ..Default::default()
            }),
            ..spec
        }),
        status: None,
    }
}

fn pvc_volume(name: &str, claim: &str) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: Some(true),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn persistent_volume_claims() {
    let e = env();
    let host = e.root.parent().unwrap().join("pv-data");
    fs::create_dir_all(&host).unwrap();
    let local = e.root.parent().unwrap().join("local-disk");
    fs::create_dir_all(&local).unwrap();
    {
        let mut claims = e.api.claims.lock().unwrap();
        claims.insert("good".into(), claim("good", "Bound", Some("pv-host")));
        claims.insert("loc".into(), claim("loc", "Bound", Some("pv-local")));
        claims.insert("pending".into(), claim("pending", "Pending", None));
        claims.insert("noname".into(), claim("noname", "Bound", None));
        claims.insert("stolen".into(), claim("stolen", "Bound", Some("pv-other")));
        claims.insert("nopv".into(), claim("nopv", "Bound", Some("pv-gone")));
        let mut volumes = e.api.volumes.lock().unwrap();
        volumes.insert(
            "pv-host".into(),
            pv(
                "pv-host",
                Some("claim-good"),
                PersistentVolumeSpec {
                    host_path: Some(HostPathVolumeSource {
                        path: host.display().to_string(),
                        type_: Some("Directory".into()),
                    }),
                    ..Default::default()
                },
            ),
        );
        volumes.insert(
            "pv-local".into(),
            pv(
                "pv-local",
                Some("claim-loc"),
                PersistentVolumeSpec {
                    local: Some(LocalVolumeSource {
                        path: local.display().to_string(),
                        fs_type: None,
                    }),
                    ..Default::default()
                },
            ),
        );
        volumes.insert(
            "pv-other".into(),
            pv(
                "pv-other",
                Some("someone-else"),
                PersistentVolumeSpec::default(),
            ),
        );
    }
    let ok = pod(vec![pvc_volume("data", "good"), pvc_volume("l", "loc")]);
    let vols = e.vm.setup(&ok).await.unwrap();
    assert_eq!(
        vols.volumes["data"],
        MountedVolume {
            plugin: HOST_PATH,
            host_path: host.clone(),
            read_only: true
        }
    );
    let local_target = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~local-volume/pv-local");
    assert_eq!(vols.volumes["l"].host_path, local_target);
    assert_eq!(
        e.mounter.calls.lock().unwrap().clone(),
        vec![Call::Bind(local.clone(), local_target)]
    );

    let bad = pod(vec![
        pvc_volume("a", "pending"),
        pvc_volume("b", "noname"),
        pvc_volume("c", "stolen"),
        pvc_volume("d", "nopv"),
        pvc_volume("e", "absent"),
    ]);
    let err = e.vm.setup(&bad).await.unwrap_err();
    let msgs: Vec<String> = err.failures.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        msgs,
        vec![
            "error processing PVC ns/pending: PVC is not bound",
            "error processing PVC ns/noname: PVC has empty pvc.Spec.VolumeName",
            "error processing PVC ns/stolen: found PV object pv-other but its pv.Spec.ClaimRef.UID someone-else does not point to claim.UID claim-stolen",
            "error processing PVC ns/nopv: failed to fetch PV pv-gone from API server: persistentvolumes \"pv-gone\" not found",
            "error processing PVC ns/absent: failed to fetch PVC from API server: persistentvolumeclaims \"absent\" not found",
        ]
    );
    assert!(err.failures.iter().all(|f| f.reason() == "FailedMount"));
}

#[tokio::test]
async fn projected_service_account_token_and_ca() {
    let e = env();
    e.api.config_maps.lock().unwrap().insert(
        "kube-root-ca.crt".into(),
        cm("kube-root-ca.crt", &[("ca.crt", "CA")]),
    );
    let mut p = pod(vec![Volume {
        name: "kube-api-access-x".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3607),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(k8s_openapi::api::core::v1::DownwardAPIProjection {
                        items: Some(vec![k8s_openapi::api::core::v1::DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                                field_path: "metadata.namespace".into(),
                                api_version: Some("v1".into()),
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    }]);
    p.spec.as_mut().unwrap().service_account_name = Some("builder".into());
    let vols = e.vm.setup(&p).await.unwrap();
    let dir = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~projected/kube-api-access-x");
    assert_eq!(vols.volumes["kube-api-access-x"].host_path, dir);
    assert_eq!(fs::read_to_string(dir.join("token")).unwrap(), "token-1");
    assert_eq!(fs::read_to_string(dir.join("ca.crt")).unwrap(), "CA");
    assert_eq!(fs::read_to_string(dir.join("namespace")).unwrap(), "ns");
    {
        let log = e.api.token_requests.lock().unwrap();
        let (ns, sa, req) = &log[0];
        assert_eq!((ns.as_str(), sa.as_str()), ("ns", "builder"));
        assert_eq!(req.spec.expiration_seconds, Some(3607));
        assert!(req.spec.audiences.is_empty());
        let b = req.spec.bound_object_ref.as_ref().unwrap();
        assert_eq!(b.uid.as_deref(), Some("uid-1"));
    }
    // the cached token is reused until 80% of its lifetime
    e.vm.update(&p).await.unwrap();
    assert_eq!(e.api.token_requests.lock().unwrap().len(), 1);
    let next = e.vm.next_token_refresh("uid-1").unwrap();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    assert!((next - now - 3607 * 80 / 100).abs() <= 2, "{next} {now}");

    // fsGroup: the token becomes 0600 + group read = 0640 with the group set
    p.spec.as_mut().unwrap().security_context = Some(PodSecurityContext {
        fs_group: Some(1234),
        ..Default::default()
    });
    e.vm.teardown("uid-1").unwrap();
    e.vm.setup(&p).await.unwrap();
    let meta = fs::metadata(dir.join("token")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), 1234);
}

#[tokio::test]
async fn container_mounts_table() {
    let e = env();
    let vols = PodVolumes {
        volumes: [
            (
                "data".to_string(),
                MountedVolume {
                    plugin: EMPTY_DIR,
                    host_path: "/v/data".into(),
                    read_only: false,
                },
            ),
            (
                "cfg".to_string(),
                MountedVolume {
                    plugin: CONFIG_MAP,
                    host_path: "/v/cfg".into(),
                    read_only: true,
                },
            ),
        ]
        .into(),
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let container = |mounts: Vec<VolumeMount>, privileged: bool| Container {
        name: "c".into(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            privileged: Some(privileged),
            ..Default::default()
        }),
        ..Default::default()
    };
    let p = pod(vec![]);
    let env = BTreeMap::new();
    let got =
        e.vm.container_mounts(
            &p,
            &vols,
            &container(
                vec![
                    VolumeMount {
                        read_only: Some(true),
                        mount_propagation: Some("HostToContainer".into()),
                        ..mount("data", "/data")
                    },
                    mount("cfg", "/etc/cfg"),
                    VolumeMount {
                        mount_propagation: Some("Bidirectional".into()),
                        ..mount("data", "/shared")
                    },
                    VolumeMount {
                        read_only: Some(true),
                        recursive_read_only: Some("Enabled".into()),
                        ..mount("cfg", "/ro")
                    },
                ],
                true,
            ),
            &env,
        )
        .unwrap();
    let summary: Vec<(&str, &str, bool, i32, bool)> = got
        .iter()
        .map(|m| {
            (
                m.container_path.as_str(),
                m.host_path.as_str(),
                m.readonly,
                m.propagation,
                m.recursive_read_only,
            )
        })
        .collect();
    use cri::v1::MountPropagation as P;
    assert_eq!(
        summary,
        vec![
            (
                "/data",
                "/v/data",
                true,
                P::PropagationHostToContainer as i32,
                false
            ),
            (
                "/etc/cfg",
                "/v/cfg",
                true,
                P::PropagationPrivate as i32,
                false
            ),
            (
                "/shared",
                "/v/data",
                false,
                P::PropagationBidirectional as i32,
                false
            ),
            ("/ro", "/v/cfg", true, P::PropagationPrivate as i32, true),
        ]
    );

    let errors = [
        (
            container(vec![mount("nope", "/x")], false),
            "cannot find volume \"nope\" to mount into container \"c\"",
        ),
        (
            container(
                vec![VolumeMount {
                    mount_propagation: Some("Bidirectional".into()),
                    ..mount("data", "/x")
                }],
                false,
            ),
            "Bidirectional mount propagation is available only to privileged containers",
        ),
        (
            container(
                vec![VolumeMount {
                    sub_path: Some("/etc".into()),
                    ..mount("data", "/x")
                }],
                false,
            ),
            "error SubPath `/etc` must not be an absolute path",
        ),
        (
            container(
                vec![VolumeMount {
                    sub_path_expr: Some("$(POD_NAME)".into()),
                    ..mount("data", "/x")
                }],
                false,
            ),
            "missing value for POD_NAME",
        ),
        (
            container(
                vec![VolumeMount {
                    recursive_read_only: Some("Enabled".into()),
                    ..mount("data", "/x")
                }],
                false,
            ),
            "volume \"data\" requested recursive read-only mode, but it is not read-only",
        ),
    ];
    for (c, want) in errors {
        let err = e.vm.container_mounts(&p, &vols, &c, &env).unwrap_err();
        assert_eq!(err.to_string(), want);
        assert_eq!(err.reason(), "CreateContainerConfigError");
    }
}

#[tokio::test]
async fn sub_path_expr_is_expanded_created_and_bound() {
    let e = env();
    let p = pod(vec![Volume {
        name: "logs".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }]);
    let vols = e.vm.setup(&p).await.unwrap();
    let c = Container {
        name: "app".into(),
        volume_mounts: Some(vec![VolumeMount {
            name: "logs".into(),
            mount_path: "/logs".into(),
            sub_path_expr: Some("pods/$(POD_NAME)".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let env: BTreeMap<String, String> = [("POD_NAME".to_string(), "web".to_string())].into();
    let mounts = e.vm.container_mounts(&p, &vols, &c, &env).unwrap();
    let vol = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~empty-dir/logs");
    assert!(vol.join("pods/web").is_dir());
    let target = e.root.join("pods/uid-1/volume-subpaths/logs/app/0");
    assert_eq!(mounts[0].host_path, target.display().to_string());
    let calls = e.mounter.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let Call::Bind(source, t) = &calls[0] else {
        panic!("expected a bind mount, got {calls:?}")
    };
    assert_eq!(t, &target);
    assert!(source.starts_with("/proc/self/fd/"));
}

#[tokio::test]
async fn teardown_unmounts_then_removes() {
    let e = env();
    let p = pod(vec![Volume {
        name: "mem".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: None,
        }),
        ..Default::default()
    }]);
    e.vm.setup(&p).await.unwrap();
    let pod_dir = e.root.join("pods/uid-1");
    assert!(pod_dir.exists());
    e.vm.teardown("uid-1").unwrap();
    assert!(!pod_dir.exists());
    assert!(e.mounter.mounted.lock().unwrap().is_empty());
    assert!(matches!(
        e.mounter.calls.lock().unwrap().last(),
        Some(Call::Unmount(_))
    ));
    // idempotent, and uids cannot escape the pods directory
    e.vm.teardown("uid-1").unwrap();
    assert!(e.vm.teardown("../x").is_err());
}

#[tokio::test]
async fn generic_ephemeral_volume_needs_the_pod_as_owner() {
    use k8s_openapi::api::core::v1::EphemeralVolumeSource;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let e = env();
    let host = e.root.parent().unwrap().join("eph");
    fs::create_dir_all(&host).unwrap();
    let mut owned = claim("web-scratch", "Bound", Some("pv-eph"));
    owned.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: "web".into(),
        uid: "uid-1".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    e.api
        .claims
        .lock()
        .unwrap()
        .insert("web-scratch".into(), owned.clone());
    e.api.volumes.lock().unwrap().insert(
        "pv-eph".into(),
        pv(
            "pv-eph",
            Some("claim-web-scratch"),
            PersistentVolumeSpec {
                host_path: Some(HostPathVolumeSource {
                    path: host.display().to_string(),
                    type_: None,
                }),
                ..Default::default()
            },
        ),
    );
    let p = pod(vec![Volume {
        name: "scratch".into(),
        ephemeral: Some(EphemeralVolumeSource::default()),
        ..Default::default()
    }]);
    let vols = e.vm.setup(&p).await.unwrap();
    assert_eq!(vols.volumes["scratch"].host_path, host);

    owned.metadata.owner_references = None;
    e.api
        .claims
        .lock()
        .unwrap()
        .insert("web-scratch".into(), owned);
    let err = e.vm.setup(&p).await.unwrap_err();
    assert_eq!(
        err.failures[0].to_string(),
        "error processing PVC ns/web-scratch: PVC ns/web-scratch was not created for pod ns/web (pod is not owner)"
    );
}

#[tokio::test]
async fn fs_group_applies_to_new_empty_dirs_and_written_files() {
    let e = env();
    e.api
        .config_maps
        .lock()
        .unwrap()
        .insert("app".into(), cm("app", &[("k", "v")]));
    let mut p = pod(vec![
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
        config_map_volume("cfg", "app", None),
    ]);
    p.spec.as_mut().unwrap().security_context = Some(PodSecurityContext {
        fs_group: Some(2000),
        ..Default::default()
    });
    let vols = e.vm.setup(&p).await.unwrap();
    let scratch = &vols.volumes["scratch"].host_path;
    let meta = fs::metadata(scratch).unwrap();
    assert_eq!(meta.gid(), 2000);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o2777);
    // user data written later keeps its ownership across resyncs
    fs::write(scratch.join("mine"), "x").unwrap();
    fs::set_permissions(scratch.join("mine"), fs::Permissions::from_mode(0o600)).unwrap();
    e.vm.setup(&p).await.unwrap();
    let mine = fs::metadata(scratch.join("mine")).unwrap();
    // (its group is 2000 through the setgid directory; the resync did not add g+rw)
    assert_eq!(mine.permissions().mode() & 0o777, 0o600);
    // configMap files: group 2000, mode 0644 | 0440
    let k = fs::metadata(vols.volumes["cfg"].host_path.join("k")).unwrap();
    assert_eq!((k.gid(), k.permissions().mode() & 0o777), (2000, 0o644));
}

#[tokio::test]
async fn managed_volumes_are_set_up_once_per_pod() {
    use crate::hooks::{ManagedVolumes, Volumes};
    let e = env();
    let file = e
        .root
        .join("pods/uid-1/volumes/kubernetes.io~configmap/cfg/k");
    let mv = ManagedVolumes::with_manager(e.vm);
    let p = pod(vec![config_map_volume("cfg", "app", None)]);
    // a failed setup is not kept: the next one tries again
    assert!(mv.setup(&p).await.is_err());
    let put = |v: &str| {
        e.api
            .config_maps
            .lock()
            .unwrap()
            .insert("app".into(), cm("app", &[("k", v)]));
    };
    put("v1");
    let first = mv.setup(&p).await.unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "v1");
    // a container restart: the same mounts, no new read of the configMap
    put("v2");
    assert_eq!(mv.setup(&p).await.unwrap(), first);
    assert_eq!(fs::read_to_string(&file).unwrap(), "v1");
    // contents follow through update
    mv.update(&p).await.unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "v2");
    // after a teardown the pod's volumes are set up afresh
    mv.teardown("uid-1").await.unwrap();
    put("v3");
    mv.setup(&p).await.unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "v3");
}
