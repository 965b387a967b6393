//! End-to-end tests of the controller manager: `controllers::run` in-process against a real
//! `oxkube server`, driven with the real kubectl. With no scheduler or kubelet yet, a small
//! stand-in plays their part through the API: it binds new pods to a node, marks them Running
//! and Ready through pods/status, and finishes graceful deletions.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use serde_json::{json, Value};

struct Env {
    c: Cluster,
    _rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn client(c: &Cluster) -> Client {
    let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// Bind unscheduled pods, make them Running+Ready, and finish graceful deletions.
async fn fake_kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    loop {
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for p in list {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                if p.metadata.deletion_timestamp.is_some() {
                    let _ = api
                        .delete(
                            &name,
                            &DeleteParams {
                                grace_period_seconds: Some(0),
                                ..Default::default()
                            },
                        )
                        .await;
                    continue;
                }
                let bound = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .is_some_and(|n| !n.is_empty());
                if !bound {
                    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}});
                    let _ = api
                        .create_subresource::<Value, Value>(
                            "binding",
                            &name,
                            &PostParams::default(),
                            &binding,
                        )
                        .await;
                }
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                // images named "*unready*" never start
                let unready = p.spec.as_ref().is_some_and(|s| {
                    s.containers
                        .iter()
                        .any(|c| c.image.as_deref().unwrap_or("").contains("unready"))
                });
                if !running && !unready {
                    let now = k8s_openapi::jiff::Timestamp::now().to_string();
                    let st = json!({"status": {"phase": "Running", "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
                        .await;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start() -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = Cluster::start_with(&["--disable-controller-manager", "--disable-scheduler"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Some(spawn_manager(&c, &rt, "test-manager", true));
    Env { c, _rt: rt, stop }
}

/// Run a controller manager (and optionally the kubelet stand-in) until the sender is used or dropped.
fn spawn_manager(
    c: &Cluster,
    rt: &tokio::runtime::Runtime,
    identity: &str,
    kubelet: bool,
) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cl = rt.block_on(client(c));
    let cfg = controllers::Config {
        identity: identity.into(),
        root_ca_pem: Some(std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap()),
        ..Default::default()
    };
    rt.spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        let kl = cl.clone();
        let kubelet = async move {
            if kubelet {
                fake_kubelet(kl).await
            } else {
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            r = controllers::run(cl, cfg, shutdown) => r.unwrap(),
            _ = kubelet => {}
        }
    });
    tx
}

#[track_caller]
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn json_of(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl(&a)).unwrap()
}

fn items(c: &Cluster, args: &[&str]) -> Vec<Value> {
    json_of(c, args)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn active_pods(c: &Cluster, ns: &str, selector: &str) -> Vec<Value> {
    items(c, &["get", "pods", "-n", ns, "-l", selector])
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn images(pods: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = pods
        .iter()
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    v.sort();
    v
}

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1
"#;

#[test]
fn deployment_rollout_history_undo_pause() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = active_pods(c, "default", "app=web");
    assert_eq!(pods.len(), 3);
    let rss = items(c, &["get", "rs", "-l", "app=web"]);
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "3"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        "4"
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    for p in &pods {
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash.as_str());
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["name"],
            format!("web-{hash}")
        );
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        assert!(p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("web-{hash}-")));
    }
    let d = json_of(c, &["get", "deployment", "web"]);
    assert_eq!(d["status"]["replicas"], 3);
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(d["status"]["readyReplicas"], 3);
    assert_eq!(d["status"]["availableReplicas"], 3);
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let conds = d["status"]["conditions"].as_array().unwrap();
    let reason = |t: &str| {
        conds
            .iter()
            .find(|x| x["type"] == t)
            .map(|x| x["reason"].as_str().unwrap().to_string())
    };
    assert_eq!(
        reason("Available").as_deref(),
        Some("MinimumReplicasAvailable")
    );
    assert_eq!(
        reason("Progressing").as_deref(),
        Some("NewReplicaSetAvailable")
    );
    let ev = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "reason=ScalingReplicaSet",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        ev.contains(&format!("Scaled up replica set web-{hash} to 3 from 0")),
        "{ev}"
    );

    // scale up and down
    c.kubectl(&["scale", "deployment/web", "--replicas=5"]);
    wait_for("5 pods", || active_pods(c, "default", "app=web").len() == 5);
    c.kubectl(&["scale", "deployment/web", "--replicas=2"]);
    wait_for("2 pods", || active_pods(c, "default", "app=web").len() == 2);

    // a new image rolls out
    c.kubectl(&["set", "image", "deployment/web", "c=nginx:2"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for("nginx:2 pods", || {
        images(&active_pods(c, "default", "app=web")) == ["nginx:2", "nginx:2"]
    });
    let hist = c.kubectl(&["rollout", "history", "deployment/web"]);
    let revs: Vec<&str> = hist
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["1", "2"], "{hist}");
    let r1 = c.kubectl(&["rollout", "history", "deployment/web", "--revision=1"]);
    assert!(r1.contains("nginx:1"), "{r1}");

    // undo goes back to the previous template, reusing its ReplicaSet with a new revision
    c.kubectl(&["rollout", "undo", "deployment/web"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for("nginx:1 pods", || {
        images(&active_pods(c, "default", "app=web")) == ["nginx:1", "nginx:1"]
    });
    let rs1 = json_of(c, &["get", "rs", &format!("web-{hash}")]);
    assert_eq!(
        rs1["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        rs1["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    assert_eq!(
        items(c, &["get", "rs", "-l", "app=web"]).len(),
        2,
        "the old ReplicaSet was reused"
    );
    let d = json_of(c, &["get", "deployment", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    c.kubectl(&["rollout", "undo", "deployment/web", "--to-revision=2"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for("nginx:2 pods again", || {
        images(&active_pods(c, "default", "app=web")) == ["nginx:2", "nginx:2"]
    });

    // paused: template changes do not roll out until resumed
    c.kubectl(&["rollout", "pause", "deployment/web"]);
    c.kubectl(&["set", "image", "deployment/web", "c=nginx:3"]);
    wait_for("paused condition", || {
        let d = json_of(c, &["get", "deployment", "web"]);
        d["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|x| x["reason"] == "DeploymentPaused"))
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        items(c, &["get", "rs", "-l", "app=web"]).len(),
        2,
        "no new ReplicaSet while paused"
    );
    assert_eq!(
        images(&active_pods(c, "default", "app=web")),
        ["nginx:2", "nginx:2"]
    );
    c.kubectl(&["rollout", "resume", "deployment/web"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for("nginx:3 pods", || {
        images(&active_pods(c, "default", "app=web")) == ["nginx:3", "nginx:3"]
    });

    // restart makes a new ReplicaSet too
    c.kubectl(&["rollout", "restart", "deployment/web"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(items(c, &["get", "rs", "-l", "app=web"]).len(), 4);
}

#[test]
fn recreate_and_history_limit() {
    let env = start();
    let c = &env.c;
    let y = DEPLOY.replace(
        "spec:\n  replicas: 3",
        "spec:\n  replicas: 2\n  revisionHistoryLimit: 1\n  strategy: {type: Recreate}",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], &y);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    for img in ["nginx:2", "nginx:3"] {
        c.kubectl(&["set", "image", "deployment/web", &format!("c={img}")]);
        let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
        assert!(out.contains("successfully rolled out"), "{out}");
        wait_for("new image", || {
            images(&active_pods(c, "default", "app=web")) == [img, img]
        });
    }
    // one old ReplicaSet kept beside the current one
    wait_for("history cleanup", || {
        items(c, &["get", "rs", "-l", "app=web"]).len() == 2
    });
}

#[test]
fn replicaset_replaces_pods_and_adopts() {
    let env = start();
    let c = &env.c;
    // an orphan pod matching the selector is adopted and counts
    c.kubectl(&["run", "orphan", "--image=busybox", "--labels=app=rs"]);
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec:
  replicas: 3
  selector: {matchLabels: {app: rs}}
  template:
    metadata: {labels: {app: rs}}
    spec: {containers: [{name: c, image: busybox}]}
"#,
    );
    wait_for("3 ready replicas", || {
        json_of(c, &["get", "rs", "rs"])["status"]["readyReplicas"] == 3
    });
    let pods = active_pods(c, "default", "app=rs");
    assert_eq!(pods.len(), 3);
    let orphan = json_of(c, &["get", "pod", "orphan"]);
    assert_eq!(
        orphan["metadata"]["ownerReferences"][0]["name"], "rs",
        "orphan adopted"
    );
    let rs = json_of(c, &["get", "rs", "rs"]);
    assert_eq!(rs["status"]["replicas"], 3);
    assert_eq!(rs["status"]["fullyLabeledReplicas"], 3);
    assert_eq!(rs["status"]["availableReplicas"], 3);
    assert_eq!(
        rs["status"]["observedGeneration"],
        rs["metadata"]["generation"]
    );

    // a deleted pod is replaced
    let victim = pods
        .iter()
        .find(|p| p["metadata"]["name"] != "orphan")
        .unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.kubectl(&["delete", "pod", &victim, "--wait=false"]);
    wait_for("replacement", || {
        let names: Vec<String> = active_pods(c, "default", "app=rs")
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        names.len() == 3 && !names.contains(&victim)
    });
    // relabelled pods are released and replaced
    c.kubectl(&["label", "pod", "orphan", "app=gone", "--overwrite"]);
    wait_for("release", || {
        json_of(c, &["get", "pod", "orphan"])["metadata"]["ownerReferences"].is_null()
    });
    wait_for("3 again", || active_pods(c, "default", "app=rs").len() == 3);
    let ev = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=rs",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(ev.contains("SuccessfulCreate"), "{ev}");
    c.kubectl(&["scale", "rs", "rs", "--replicas=1"]);
    wait_for("scale down", || {
        active_pods(c, "default", "app=rs").len() == 1
    });
    let ev = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=rs",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(ev.contains("SuccessfulDelete"), "{ev}");
    // the leader election Lease
    let lease = json_of(
        c,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
        ],
    );
    assert_eq!(lease["spec"]["holderIdentity"], "test-manager");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
    drop(env);
}

fn exists(c: &Cluster, args: &[&str]) -> bool {
    let mut a = args.to_vec();
    a.push("--ignore-not-found");
    !c.kubectl(&a).trim().is_empty()
}

#[test]
fn cascading_deletion_background_foreground_orphan() {
    let env = start();
    let c = &env.c;
    let rs_count = |c: &Cluster| items(c, &["get", "rs", "-l", "app=web"]).len();
    // background: the owner goes at once, the collector removes the dependents
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY);
    wait_for("3 pods", || active_pods(c, "default", "app=web").len() == 3);
    c.kubectl(&["delete", "deployment", "web", "--cascade=background"]);
    wait_for("background collection", || {
        rs_count(c) == 0 && items(c, &["get", "pods", "-l", "app=web"]).is_empty()
    });

    // foreground: dependents go first, the owner waits with its finalizer
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY);
    wait_for("3 pods", || active_pods(c, "default", "app=web").len() == 3);
    // pods with a finalizer of their own hold the chain until it is removed
    let names: Vec<String> = active_pods(c, "default", "app=web")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let hold = r#"{"metadata":{"finalizers":["example.com/hold"]}}"#;
    for n in &names {
        c.kubectl(&["patch", "pod", n, "--type=merge", "-p", hold]);
    }
    c.kubectl(&[
        "delete",
        "deployment",
        "web",
        "--cascade=foreground",
        "--wait=false",
    ]);
    wait_for("dependents being deleted", || {
        let pods = items(c, &["get", "pods", "-l", "app=web"]);
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p["metadata"]["deletionTimestamp"].is_string())
    });
    let d = json_of(c, &["get", "deployment", "web"]);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    let fins = |o: &Value| {
        o["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        fins(&d).iter().any(|f| f == "foregroundDeletion"),
        "{}",
        d["metadata"]
    );
    let rs = items(c, &["get", "rs", "-l", "app=web"]);
    assert_eq!(rs.len(), 1, "the ReplicaSet waits for its pods");
    assert!(
        fins(&rs[0]).iter().any(|f| f == "foregroundDeletion"),
        "{}",
        rs[0]["metadata"]
    );
    for n in &names {
        c.kubectl(&[
            "patch",
            "pod",
            n,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ]);
    }
    wait_for("foreground collection", || {
        !exists(c, &["get", "deployment", "web"])
    });
    assert_eq!(rs_count(c), 0, "dependents were deleted before the owner");
    assert!(items(c, &["get", "pods", "-l", "app=web"]).is_empty());

    // orphan: dependents stay, without the owner reference
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY);
    wait_for("3 pods", || active_pods(c, "default", "app=web").len() == 3);
    c.kubectl(&["delete", "deployment", "web", "--cascade=orphan"]);
    wait_for("orphaned deployment gone", || {
        !exists(c, &["get", "deployment", "web"])
    });
    let rss = items(c, &["get", "rs", "-l", "app=web"]);
    assert_eq!(rss.len(), 1);
    assert!(
        rss[0]["metadata"]["ownerReferences"].is_null(),
        "{}",
        rss[0]["metadata"]
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        active_pods(c, "default", "app=web").len(),
        3,
        "pods kept by the orphaned ReplicaSet"
    );

    // a dependent whose owner never existed (or is gone) is collected
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: dangling
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: ghost, uid: 00000000-0000-0000-0000-000000000001}
"#,
    );
    wait_for("dangling collected", || {
        !exists(c, &["get", "configmap", "dangling"])
    });
}

#[test]
fn namespace_deletion_empties_it() {
    let env = start();
    let c = &env.c;
    c.kubectl(&["create", "namespace", "doomed"]);
    wait_for("default service account", || {
        exists(c, &["get", "serviceaccount", "default", "-n", "doomed"])
    });
    wait_for("root CA configmap", || {
        exists(c, &["get", "configmap", "kube-root-ca.crt", "-n", "doomed"])
    });
    let cm = json_of(c, &["get", "configmap", "kube-root-ca.crt", "-n", "doomed"]);
    assert!(cm["data"]["ca.crt"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    c.kubectl_stdin(&["apply", "-n", "doomed", "-f", "-"], DEPLOY);
    c.kubectl(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "sec",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    wait_for("3 pods", || active_pods(c, "doomed", "app=web").len() == 3);
    c.kubectl(&["delete", "namespace", "doomed", "--wait=false"]);
    wait_for("namespace gone", || {
        !exists(c, &["get", "namespace", "doomed"])
    });
    // nothing of it is left behind (a namespace of the same name starts empty)
    c.kubectl(&["create", "namespace", "doomed"]);
    assert!(items(c, &["get", "pods", "-n", "doomed"]).is_empty());
    assert!(items(c, &["get", "deployments", "-n", "doomed"]).is_empty());
    assert!(!exists(c, &["get", "configmap", "cfg", "-n", "doomed"]));
    assert!(!exists(c, &["get", "secret", "sec", "-n", "doomed"]));
}

#[test]
fn progress_deadline_and_min_ready_seconds() {
    let env = start();
    let c = &env.c;
    let y = DEPLOY.replace(
        "spec:\n  replicas: 3",
        "spec:\n  replicas: 2\n  minReadySeconds: 1\n  progressDeadlineSeconds: 2",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], &y);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = json_of(c, &["get", "deployment", "web"]);
    assert_eq!(
        d["status"]["availableReplicas"], 2,
        "available once ready for minReadySeconds"
    );
    // a rollout whose pods never become ready exceeds its deadline
    c.kubectl(&["set", "image", "deployment/web", "c=unready:1"]);
    let err = c.kubectl_err(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let d = json_of(c, &["get", "deployment", "web"]);
    let conds = d["status"]["conditions"].as_array().unwrap();
    let p = conds.iter().find(|x| x["type"] == "Progressing").unwrap();
    assert_eq!(p["status"], "False");
    assert_eq!(p["reason"], "ProgressDeadlineExceeded");
    // maxUnavailable 25% of 2 rounds down to 0: the old pods stay
    assert_eq!(
        images(&active_pods(c, "default", "app=web"))
            .iter()
            .filter(|i| *i == "nginx:1")
            .count(),
        2
    );
    assert_eq!(d["status"]["unavailableReplicas"], 1, "{}", d["status"]);
    // undo recovers
    c.kubectl(&["rollout", "undo", "deployment/web"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_for("unready pod removed", || {
        images(&active_pods(c, "default", "app=web")) == ["nginx:1", "nginx:1"]
    });
}

#[test]
fn replication_controller() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: rc}
spec:
  replicas: 2
  selector: {app: rc}
  template:
    metadata: {labels: {app: rc}}
    spec: {containers: [{name: c, image: busybox}]}
"#,
    );
    wait_for("2 ready", || {
        json_of(c, &["get", "rc", "rc"])["status"]["readyReplicas"] == 2
    });
    let pods = active_pods(c, "default", "app=rc");
    assert_eq!(pods.len(), 2);
    assert_eq!(
        pods[0]["metadata"]["ownerReferences"][0]["kind"],
        "ReplicationController"
    );
    assert_eq!(
        pods[0]["metadata"]["ownerReferences"][0]["apiVersion"],
        "v1"
    );
    c.kubectl(&["scale", "rc", "rc", "--replicas=3"]);
    wait_for("3 pods", || active_pods(c, "default", "app=rc").len() == 3);
    let ev = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=ReplicationController",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(ev.contains("SuccessfulCreate"), "{ev}");
    // deleting the RC collects its pods
    c.kubectl(&["delete", "rc", "rc"]);
    wait_for("pods collected", || {
        items(c, &["get", "pods", "-l", "app=rc"]).is_empty()
    });
}

#[test]
fn leader_election_hands_over() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = Cluster::start_with(&["--disable-controller-manager", "--disable-scheduler"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let a = spawn_manager(&c, &rt, "manager-a", true);
    let holder = |c: &Cluster| {
        json_of(
            c,
            &[
                "get",
                "lease",
                "-n",
                "kube-system",
                "kube-controller-manager",
            ],
        )["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    wait_for("a leads", || {
        exists(
            &c,
            &[
                "get",
                "lease",
                "-n",
                "kube-system",
                "kube-controller-manager",
            ],
        ) && holder(&c) == "manager-a"
    });
    let _b = spawn_manager(&c, &rt, "manager-b", false);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(holder(&c), "manager-a", "a live leader keeps the lease");
    // a stops (releasing the lease): b takes over and runs the controllers
    a.send(()).unwrap();
    wait_for("b leads", || holder(&c) == "manager-b");
    let lease = json_of(
        &c,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
        ],
    );
    assert!(lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1);
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY);
    wait_for("pods from the new leader", || {
        items(&c, &["get", "pods", "-l", "app=web"]).len() == 3
    });
}

/// Figures, not assertions: `cargo test -p oxkube --test controllers -- --ignored --nocapture`.
#[test]
#[ignore]
fn figures() {
    let env = start();
    let c = &env.c;
    let t = Instant::now();
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &DEPLOY.replace("replicas: 3", "replicas: 100"),
    );
    wait_for("100 pods", || {
        items(c, &["get", "pods", "-l", "app=web"]).len() == 100
    });
    println!(
        "100-replica deployment: 100 pods created after {:?}",
        t.elapsed()
    );
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    println!(
        "100-replica deployment: rolled out (all Ready, stand-in kubelet) after {:?}",
        t.elapsed()
    );
    c.kubectl(&["scale", "deployment/web", "--replicas=10"]);
    wait_for("10", || active_pods(c, "default", "app=web").len() == 10);
    c.kubectl(&["set", "image", "deployment/web", "c=nginx:2"]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let t = Instant::now();
    c.kubectl(&["rollout", "undo", "deployment/web"]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    println!(
        "rollout undo of 10 replicas until complete: {:?}",
        t.elapsed()
    );
}

#[test]
fn proportional_scaling_during_a_rollout() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &DEPLOY.replace("replicas: 3", "replicas: 10"),
    );
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let old_rs = items(c, &["get", "rs", "-l", "app=web"])[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // a rollout that cannot finish: surge 3, unavailable 2 -> old 8, new 5
    c.kubectl(&["set", "image", "deployment/web", "c=unready:1"]);
    let sizes = |c: &Cluster| {
        let mut old = -1;
        let mut new = -1;
        for rs in items(c, &["get", "rs", "-l", "app=web"]) {
            let r = rs["spec"]["replicas"].as_i64().unwrap();
            if rs["metadata"]["name"] == old_rs.as_str() {
                old = r;
            } else {
                new = r;
            }
        }
        (old, new)
    };
    wait_for("rollout stuck at old 8 / new 5", || sizes(c) == (8, 5));
    // scaling to 20 (surge 5, 25 allowed) spreads 12 more by size: 8*25/13 -> 15, 5*25/13 -> 10
    c.kubectl(&["scale", "deployment/web", "--replicas=20"]);
    wait_for("proportional sizes", || sizes(c) == (15, 10));
    let rs = items(c, &["get", "rs", "-l", "app=web"]);
    for r in &rs {
        assert_eq!(
            r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
            "20"
        );
        assert_eq!(
            r["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
            "25"
        );
    }
    wait_for("old pods", || {
        images(&active_pods(c, "default", "app=web"))
            .iter()
            .filter(|i| *i == "nginx:1")
            .count()
            == 15
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sizes(c), (15, 10), "stable while the new pods stay unready");
}
