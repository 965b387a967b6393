//! End-to-end tests of the workload controllers (Job, CronJob, StatefulSet, DaemonSet):
//! `controllers::run` in-process against a real `oxkube server`, driven with the real kubectl.
//! A stand-in plays the scheduler and kubelet through the API: it binds pods (to the node named
//! by a `metadata.name` node-affinity term, else `node-1`), and sets their status from the
//! image name: `succeed` exits 0, `exit-N` fails with exit code N, `unready` never starts,
//! `index-I-<behaviour>` applies to completion index I only, anything else runs Ready.

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

fn affinity_node(p: &Pod) -> Option<String> {
    let v = serde_json::to_value(p.spec.as_ref()?.affinity.as_ref()?).ok()?;
    let terms = v.pointer(
        "/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    )?;
    for t in terms.as_array()? {
        for f in t["matchFields"].as_array().into_iter().flatten() {
            if f["key"] == "metadata.name" && f["operator"] == "In" {
                return f["values"][0].as_str().map(String::from);
            }
        }
    }
    None
}

fn container_statuses(p: &Pod, state: Value, ready: bool) -> Value {
    let cs: Vec<Value> = p
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image, "imageID": "", "ready": ready,
                   "restartCount": 0, "started": ready, "state": state})
        })
        .collect();
    json!(cs)
}

/// Bind pods, play their containers from the image name, finish graceful deletions.
async fn fake_kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    loop {
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for p in list {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                if p.metadata.deletion_timestamp.is_some() {
                    if phase != "Succeeded" && phase != "Failed" {
                        // the container is killed: exit 137
                        let st = json!({"status": {"phase": "Failed", "containerStatuses":
                            container_statuses(&p, json!({"terminated": {"exitCode": 137, "reason": "Error"}}), false)}});
                        let _ = api
                            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
                            .await;
                    }
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
                    let node = affinity_node(&p).unwrap_or_else(|| "node-1".into());
                    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
                    let _ = api
                        .create_subresource::<Value, Value>(
                            "binding",
                            &name,
                            &PostParams::default(),
                            &binding,
                        )
                        .await;
                    continue;
                }
                if !phase.is_empty() && phase != "Pending" {
                    continue;
                }
                let image = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone())
                    .unwrap_or_default();
                // `index-N-<behaviour>`: the pod with completion index N behaves so; the others
                // succeed (when N fails) or run
                let index = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("batch.kubernetes.io/job-completion-index").cloned())
                    .unwrap_or_default();
                let image = match image.strip_prefix("index-").and_then(|r| r.split_once('-')) {
                    Some((n, rest)) if n == index => rest.to_string(),
                    Some((_, rest)) if rest.starts_with("exit") => "succeed".to_string(),
                    Some(_) => "run".to_string(),
                    None => image,
                };
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let st = if image.contains("unready") {
                    continue;
                } else if image.contains("succeed") {
                    json!({"status": {"phase": "Succeeded", "containerStatuses": container_statuses(&p,
                        json!({"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}}), false)}})
                } else if let Some(code) = image.split("exit-").nth(1) {
                    let code: i32 = code
                        .trim_end_matches(|c: char| !c.is_ascii_digit())
                        .parse()
                        .unwrap_or(1);
                    json!({"status": {"phase": "Failed", "containerStatuses": container_statuses(&p,
                        json!({"terminated": {"exitCode": code, "reason": "Error", "finishedAt": now}}), false)}})
                } else {
                    json!({"status": {"phase": "Running", "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": "True", "lastTransitionTime": now}],
                        "containerStatuses": container_statuses(&p, json!({"running": {"startedAt": now}}), true)}})
                };
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
                    .await;
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
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let cl = rt.block_on(client(&c));
    let cfg = controllers::Config {
        identity: "workloads-test".into(),
        ..Default::default()
    };
    rt.spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        let kl = cl.clone();
        tokio::select! {
            r = controllers::run(cl, cfg, shutdown) => r.unwrap(),
            _ = fake_kubelet(kl) => {}
        }
    });
    Env {
        c,
        _rt: rt,
        stop: Some(tx),
    }
}

#[track_caller]
fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
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

fn condition(obj: &Value, type_: &str) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == "True")
        .cloned()
}

fn job_yaml(name: &str, image: &str, spec: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: {image}
"#
    )
}

#[test]
fn job_runs_to_completion() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &job_yaml("work", "succeed", "  completions: 3\n  parallelism: 2"),
    );
    wait_for("job complete", 60, || {
        condition(&json_of(c, &["get", "job", "work"]), "Complete").is_some()
    });
    let job = json_of(c, &["get", "job", "work"]);
    assert_eq!(job["status"]["succeeded"], 3, "{job}");
    assert!(job["status"]["completionTime"].is_string());
    assert!(job["status"]["startTime"].is_string());
    let sc = condition(&job, "SuccessCriteriaMet").expect("SuccessCriteriaMet");
    assert_eq!(sc["reason"], "CompletionsReached");
    assert_eq!(job["status"]["active"].as_i64().unwrap_or(0), 0);
    // finalizers released on every pod, and exactly 3 pods ran
    let pods = items(
        c,
        &["get", "pods", "-l", "batch.kubernetes.io/job-name=work"],
    );
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(
            p["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty()),
            "{p}"
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    }
    // kubectl get jobs columns
    let out = c.kubectl(&["get", "jobs"]);
    let rows = common::rows(&out);
    assert_eq!(
        rows[0][..4],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION"].map(String::from)
    );
    assert_eq!(rows[1][0], "work");
    assert_eq!(rows[1][1], "Complete");
    assert_eq!(rows[1][2], "3/3");
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=work",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("Completed"), "{events}");
}

#[test]
fn job_failures_backoff_limit_and_pod_failure_policy() {
    let env = start();
    let c = &env.c;
    // backoffLimit 0: the first failure fails the job
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &job_yaml("once", "exit-3", "  backoffLimit: 0"),
    );
    // a FailJob rule on exit code 42
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &job_yaml(
            "pfp",
            "exit-42",
            "  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes:\n        containerName: main\n        operator: In\n        values: [42]",
        ),
    );
    // activeDeadlineSeconds on pods that never finish
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &job_yaml("slow", "sleeper", "  activeDeadlineSeconds: 2"),
    );
    for (name, reason) in [
        ("once", "BackoffLimitExceeded"),
        ("pfp", "PodFailurePolicy"),
        ("slow", "DeadlineExceeded"),
    ] {
        wait_for(&format!("job {name} failed"), 60, || {
            condition(&json_of(c, &["get", "job", name]), "Failed").is_some()
        });
        let job = json_of(c, &["get", "job", name]);
        let failed = condition(&job, "Failed").unwrap();
        assert_eq!(failed["reason"], reason, "{job}");
        let target = condition(&job, "FailureTarget").expect("FailureTarget first");
        assert_eq!(target["reason"], reason);
        assert!(job["status"]["completionTime"].is_null());
    }
    let pfp = json_of(c, &["get", "job", "pfp"]);
    assert_eq!(pfp["status"]["failed"], 1, "{pfp}");
    assert!(condition(&pfp, "Failed").unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("failed with exit code 42 matching FailJob rule at index 0"));
    let slow = json_of(c, &["get", "job", "slow"]);
    assert_eq!(slow["status"]["active"].as_i64().unwrap_or(0), 0);
    let out = c.kubectl(&["get", "jobs"]);
    assert!(out.contains("Failed"), "{out}");
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=once",
    ]);
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
}

#[test]
fn indexed_job_suspend_and_ttl() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &job_yaml(
            "ix",
            "succeed",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  suspend: true\n  ttlSecondsAfterFinished: 3",
        ),
    );
    wait_for("suspended", 30, || {
        condition(&json_of(c, &["get", "job", "ix"]), "Suspended").is_some()
    });
    assert!(items(c, &["get", "pods", "-l", "batch.kubernetes.io/job-name=ix"]).is_empty());
    c.kubectl(&[
        "patch",
        "job",
        "ix",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    wait_for("indexed job complete", 60, || {
        condition(&json_of(c, &["get", "job", "ix"]), "Complete").is_some()
    });
    let job = json_of(c, &["get", "job", "ix"]);
    assert_eq!(job["status"]["completedIndexes"], "0-2", "{job}");
    let resumed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Suspended")
        .cloned()
        .unwrap();
    assert_eq!(resumed["status"], "False");
    assert_eq!(resumed["reason"], "JobResumed");
    let pods = items(c, &["get", "pods", "-l", "batch.kubernetes.io/job-name=ix"]);
    let mut seen: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            (
                p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                p["spec"]["hostname"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("0", "ix-0"), ("1", "ix-1"), ("2", "ix-2")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // ttlSecondsAfterFinished: the job and its pods go away
    wait_for("job deleted by ttl", 30, || {
        !c.kubectl_raw(&["get", "job", "ix"]).status.success()
    });
}

#[test]
fn indexed_job_success_policy_and_backoff_limit_per_index() {
    let env = start();
    let c = &env.c;
    // index 1 fails once: with backoffLimitPerIndex 0 the index fails, the others complete
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &job_yaml(
            "perindex",
            "index-1-exit-7",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  backoffLimitPerIndex: 0",
        ),
    );
    // index 0 succeeds, the others keep running: the success policy completes the job
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &job_yaml(
            "leader",
            "index-0-succeed",
            "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  successPolicy:\n    rules:\n    - succeededIndexes: \"0\"",
        ),
    );
    wait_for("perindex failed", 60, || {
        condition(&json_of(c, &["get", "job", "perindex"]), "Failed").is_some()
    });
    let job = json_of(c, &["get", "job", "perindex"]);
    assert_eq!(
        condition(&job, "Failed").unwrap()["reason"],
        "FailedIndexes",
        "{job}"
    );
    assert_eq!(job["status"]["failedIndexes"], "1");
    assert_eq!(job["status"]["completedIndexes"], "0,2");
    assert_eq!(job["status"]["failed"], 1);
    assert_eq!(job["status"]["succeeded"], 2);
    // the failed index was not retried
    let pods = items(
        c,
        &["get", "pods", "-l", "batch.kubernetes.io/job-name=perindex"],
    );
    assert_eq!(pods.len(), 3, "{pods:?}");

    wait_for("leader complete", 60, || {
        condition(&json_of(c, &["get", "job", "leader"]), "Complete").is_some()
    });
    let job = json_of(c, &["get", "job", "leader"]);
    let met = condition(&job, "SuccessCriteriaMet").unwrap();
    assert_eq!(met["reason"], "SuccessPolicy");
    assert_eq!(met["message"], "Matched rules at index 0");
    assert_eq!(job["status"]["completedIndexes"], "0");
    // the other indexes were stopped
    wait_for("leader pods stopped", 30, || {
        items(
            c,
            &["get", "pods", "-l", "batch.kubernetes.io/job-name=leader"],
        )
        .iter()
        .all(|p| p["status"]["phase"] != "Running")
    });
}

#[test]
fn cronjob_schedules_jobs_and_kubectl_create_from() {
    // the manual job below must finish before the first scheduled one, or the history limit of
    // 1 prunes it while the test still looks at it: start early in a minute
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 40 {
        std::thread::sleep(Duration::from_secs(62 - second));
    }
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  timeZone: Europe/Paris
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: succeed
"#,
    );
    // manual run, client side: kubectl builds the Job from the template
    c.kubectl(&["create", "job", "manual", "--from=cronjob/tick"]);
    wait_for("manual job complete", 60, || {
        condition(&json_of(c, &["get", "job", "manual"]), "Complete").is_some()
    });
    let manual = json_of(c, &["get", "job", "manual"]);
    assert_eq!(manual["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    // the next minute boundary starts a scheduled job
    wait_for("scheduled job", 75, || {
        json_of(c, &["get", "cronjob", "tick"])["status"]["lastScheduleTime"].is_string()
    });
    let cj = json_of(c, &["get", "cronjob", "tick"]);
    let last = cj["status"]["lastScheduleTime"]
        .as_str()
        .unwrap()
        .to_string();
    let ts: k8s_openapi::jiff::Timestamp = last.parse().unwrap();
    let name = format!("tick-{}", ts.as_second() / 60);
    let job = json_of(c, &["get", "job", &name]);
    assert!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .unwrap()
            .ends_with("+01:00")
            || job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
                .as_str()
                .unwrap()
                .ends_with("+02:00")
    );
    wait_for("lastSuccessfulTime", 60, || {
        let cj = json_of(c, &["get", "cronjob", "tick"]);
        cj["status"]["lastSuccessfulTime"].is_string() && cj["status"]["active"].is_null()
    });
    // history limit 1: of the two finished jobs only the newest is kept
    wait_for("history pruned", 60, || {
        let jobs = items(c, &["get", "jobs"]);
        jobs.len() == 1 && jobs[0]["metadata"]["name"] == name.as_str()
    });
    let out = c.kubectl(&["get", "cronjobs"]);
    assert!(out.contains("* * * * *"), "{out}");
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=tick",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("SawCompletedJob"), "{events}");
}

const STS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
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
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

fn pod_image(c: &Cluster, name: &str) -> String {
    json_of(c, &["get", "pod", name])["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn exists(c: &Cluster, args: &[&str]) -> bool {
    c.kubectl_raw(args).status.success()
}

#[test]
fn statefulset_ordered_pods_claims_and_partitioned_rollout() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(&["apply", "-f", "-"], STS);
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=90s"]);
    let pods = items(c, &["get", "pods", "-l", "app=web"]);
    let mut names: Vec<&str> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        let labels = &p["metadata"]["labels"];
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], &name[4..]);
        assert_eq!(p["spec"]["hostname"], name);
        assert_eq!(p["spec"]["subdomain"], "nginx");
        assert_eq!(
            p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            format!("data-{name}")
        );
        assert!(exists(c, &["get", "pvc", &format!("data-{name}")]));
    }
    // OrderedReady: each pod was created after the previous one became ready
    let ready_at = |name: &str| {
        let p = pods.iter().find(|p| p["metadata"]["name"] == name).unwrap();
        p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["lastTransitionTime"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let created = |name: &str| {
        let p = pods.iter().find(|p| p["metadata"]["name"] == name).unwrap();
        p["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(created("web-1") >= ready_at("web-0"));
    assert!(created("web-2") >= ready_at("web-1"));
    let sts = json_of(c, &["get", "sts", "web"]);
    assert_eq!(sts["status"]["readyReplicas"], 3);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );

    // a partitioned rolling update touches only ordinals >= partition, from the top
    c.kubectl(&[
        "patch",
        "sts",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":1}}}}"#,
    ]);
    c.kubectl(&["set", "image", "statefulset/web", "c=nginx:2"]);
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=90s"]);
    wait_for("ordinals 1 and 2 updated", 60, || {
        pod_image(c, "web-2") == "nginx:2" && pod_image(c, "web-1") == "nginx:2"
    });
    assert_eq!(pod_image(c, "web-0"), "nginx:1");
    let sts = json_of(c, &["get", "sts", "web"]);
    assert_eq!(sts["status"]["updatedReplicas"], 2, "{sts}");
    assert_ne!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    // partition 0 finishes the rollout
    c.kubectl(&[
        "patch",
        "sts",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=90s"]);
    wait_for("revisions converge", 60, || {
        let s = json_of(c, &["get", "sts", "web"]);
        s["status"]["currentRevision"] == s["status"]["updateRevision"]
            && s["status"]["updatedReplicas"] == 3
    });
    assert_eq!(pod_image(c, "web-0"), "nginx:2");
    let revs = items(c, &["get", "controllerrevisions"]);
    assert_eq!(revs.len(), 2, "{revs:?}");
    let hist = c.kubectl(&["rollout", "history", "statefulset/web"]);
    assert!(hist.contains('1') && hist.contains('2'), "{hist}");
    // undo: the first revision's template comes back as revision 3, no new revision object
    c.kubectl(&["rollout", "undo", "statefulset/web"]);
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=90s"]);
    wait_for("rolled back", 60, || {
        (0..3).all(|i| pod_image(c, &format!("web-{i}")) == "nginx:1")
    });
    let revs = items(c, &["get", "controllerrevisions"]);
    assert_eq!(revs.len(), 2, "{revs:?}");
    let mut numbers: Vec<i64> = revs
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, [2, 3]);

    // scale down: highest ordinals go, claims stay (Retain)
    c.kubectl(&["scale", "statefulset/web", "--replicas=1"]);
    wait_for("scaled down", 60, || {
        items(c, &["get", "pods", "-l", "app=web"]).len() == 1
    });
    assert!(exists(c, &["get", "pod", "web-0"]));
    assert!(exists(c, &["get", "pvc", "data-web-2"]));
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful"),
        "{events}"
    );
}

#[test]
fn statefulset_parallel_with_ordinal_start_and_claim_deletion() {
    let env = start();
    let c = &env.c;
    let yaml = STS
        .replace("name: web", "name: par")
        .replace("app: web", "app: par")
        .replace("replicas: 3", "replicas: 3\n  podManagementPolicy: Parallel\n  ordinals: {start: 5}\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Retain}");
    c.kubectl_stdin(&["apply", "-f", "-"], &yaml);
    c.kubectl(&["rollout", "status", "statefulset/par", "--timeout=90s"]);
    let mut names: Vec<String> = items(c, &["get", "pods", "-l", "app=par"])
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["par-5", "par-6", "par-7"]);
    // a failed pod is replaced under the same name
    let uid = json_of(c, &["get", "pod", "par-6"])["metadata"]["uid"].clone();
    c.kubectl(&["delete", "pod", "par-6", "--wait=false"]);
    wait_for("par-6 replaced", 60, || {
        let p = c.kubectl_raw(&["get", "pod", "par-6", "-o", "json"]);
        p.status.success()
            && serde_json::from_slice::<Value>(&p.stdout).unwrap()["metadata"]["uid"] != uid
    });
    // OnDelete: a new template reaches a pod only when that pod is deleted
    c.kubectl(&[
        "patch",
        "sts",
        "par",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}"#,
    ]);
    let before = json_of(c, &["get", "pod", "par-7"])["metadata"]["uid"].clone();
    c.kubectl(&["set", "image", "statefulset/par", "c=nginx:2"]);
    // the sync that records the new revision has already decided about the pods
    wait_for("update revision recorded", 30, || {
        let s = json_of(c, &["get", "sts", "par"]);
        s["status"]["updateRevision"] != s["status"]["currentRevision"]
    });
    let p7 = json_of(c, &["get", "pod", "par-7"]);
    assert_eq!(p7["metadata"]["uid"], before);
    assert!(p7["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(p7["spec"]["containers"][0]["image"], "nginx:1");
    c.kubectl(&["delete", "pod", "par-7", "--wait=false"]);
    wait_for("par-7 recreated on the new template", 60, || {
        let p = c.kubectl_raw(&["get", "pod", "par-7", "-o", "json"]);
        p.status.success()
            && serde_json::from_slice::<Value>(&p.stdout).unwrap()["spec"]["containers"][0]["image"]
                == "nginx:2"
    });
    assert_eq!(pod_image(c, "par-5"), "nginx:1");
    c.kubectl(&["scale", "statefulset/par", "--replicas=1"]);
    wait_for("scaled down with claims", 60, || {
        items(c, &["get", "pods", "-l", "app=par"]).len() == 1
            && !exists(c, &["get", "pvc", "data-par-7"])
            && !exists(c, &["get", "pvc", "data-par-6"])
    });
    assert!(exists(c, &["get", "pvc", "data-par-5"]));
    // whenDeleted: Delete makes the set an owner of the remaining claim; deleting the set
    // then removes it
    c.kubectl(&[
        "patch",
        "sts",
        "par",
        "--type=merge",
        "-p",
        r#"{"spec":{"persistentVolumeClaimRetentionPolicy":{"whenDeleted":"Delete"}}}"#,
    ]);
    wait_for("claim owned by the set", 30, || {
        json_of(c, &["get", "pvc", "data-par-5"])["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["kind"] == "StatefulSet"))
    });
    c.kubectl(&["delete", "sts", "par", "--wait=false"]);
    wait_for("claim deleted with the set", 60, || {
        !exists(c, &["get", "pvc", "data-par-5"])
    });
}

#[test]
fn daemonset_one_pod_per_eligible_node_and_rolling_update() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Node
metadata:
  name: node-a
---
apiVersion: v1
kind: Node
metadata:
  name: node-b
spec:
  unschedulable: true
  taints:
  - {key: node.kubernetes.io/unschedulable, effect: NoSchedule}
---
apiVersion: v1
kind: Node
metadata:
  name: node-gpu
spec:
  taints:
  - {key: dedicated, value: gpu, effect: NoSchedule}
"#,
    );
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: c
        image: agent:1
"#,
    );
    c.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    let nodes_of = || {
        let mut v: Vec<String> = items(c, &["get", "pods", "-l", "app=agent"])
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(nodes_of(), ["node-a", "node-b"]);
    let pods = items(c, &["get", "pods", "-l", "app=agent"]);
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        let term = &p["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            ["matchFields"][0];
        assert_eq!(term["key"], "metadata.name");
        assert_eq!(term["values"][0], node);
        let tols = p["spec"]["tolerations"].as_array().unwrap();
        assert!(tols
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unschedulable"));
        assert!(p["metadata"]["labels"]["controller-revision-hash"].is_string());
    }
    let ds = json_of(c, &["get", "ds", "agent"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2, "{ds}");
    assert_eq!(ds["status"]["currentNumberScheduled"], 2);
    assert_eq!(ds["status"]["numberReady"], 2);
    assert_eq!(ds["status"]["numberMisscheduled"], 0);

    // the gpu node tolerated: a third pod
    c.kubectl(&[
        "patch", "ds", "agent", "--type=json", "-p",
        r#"[{"op":"add","path":"/spec/template/spec/tolerations","value":[{"key":"dedicated","operator":"Exists","effect":"NoSchedule"}]}]"#,
    ]);
    c.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    wait_for("three nodes", 60, || {
        nodes_of() == ["node-a", "node-b", "node-gpu"]
    });

    // rolling update to a new image
    c.kubectl(&["set", "image", "daemonset/agent", "c=agent:2"]);
    c.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    wait_for("all on agent:2", 60, || {
        let pods: Vec<Value> = items(c, &["get", "pods", "-l", "app=agent"])
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "agent:2")
    });
    let ds = json_of(c, &["get", "ds", "agent"]);
    assert_eq!(ds["status"]["updatedNumberScheduled"], 3, "{ds}");
    assert!(items(c, &["get", "controllerrevisions"]).len() >= 2);

    // a NoExecute taint evicts the daemon pod from that node
    c.kubectl(&["taint", "node", "node-a", "evict=now:NoExecute"]);
    wait_for("evicted from node-a", 60, || {
        nodes_of() == ["node-b", "node-gpu"]
    });
    let ds = json_of(c, &["get", "ds", "agent"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 2, "{ds}");
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=agent",
    ]);
    assert!(events.contains("SuccessfulCreate"), "{events}");
}

#[test]
fn daemonset_surge_update_and_failed_pod_replacement() {
    let env = start();
    let c = &env.c;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n",
    );
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: surge
spec:
  selector:
    matchLabels: {app: surge}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: surge}
    spec:
      containers:
      - name: c
        image: v1
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: crash
spec:
  selector:
    matchLabels: {app: crash}
  template:
    metadata:
      labels: {app: crash}
    spec:
      nodeSelector: {kubernetes.io/hostname: n1}
      containers:
      - name: c
        image: exit-1
"#,
    );
    c.kubectl(&["rollout", "status", "daemonset/surge", "--timeout=90s"]);
    c.kubectl(&["set", "image", "daemonset/surge", "c=v2"]);
    c.kubectl(&["rollout", "status", "daemonset/surge", "--timeout=90s"]);
    wait_for("surge pods on v2", 60, || {
        let pods: Vec<Value> = items(c, &["get", "pods", "-l", "app=surge"])
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        pods.len() == 2
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "v2")
    });
    let ds = json_of(c, &["get", "ds", "surge"]);
    assert_eq!(ds["status"]["updatedNumberScheduled"], 2, "{ds}");
    assert_eq!(ds["status"]["numberAvailable"], 2, "{ds}");

    // no node carries the label the crash DaemonSet selects
    let ds = json_of(c, &["get", "ds", "crash"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 0, "{ds}");
    c.kubectl(&["label", "node", "n1", "kubernetes.io/hostname=n1"]);
    // its pod fails: deleted (event FailedDaemonPod) and replaced
    let mut uids = std::collections::BTreeSet::new();
    wait_for("failed daemon pods replaced", 60, || {
        for p in items(c, &["get", "pods", "-l", "app=crash"]) {
            uids.insert(p["metadata"]["uid"].as_str().unwrap_or("").to_string());
        }
        uids.len() >= 2
    });
    let events = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=crash",
    ]);
    assert!(events.contains("FailedDaemonPod"), "{events}");
}
