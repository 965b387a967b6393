//! The pods a node runs, seen only through CRI: sandboxes and containers grouped by the pod
//! labels the kubelet sets (`io.kubernetes.pod.{name,namespace,uid}`,
//! `io.kubernetes.container.name`), rendered as the `/pods` and `/runningpods` PodLists, and
//! the lookup of a pod's container for logs, exec and attach.

use std::collections::HashMap;

use cri::v1 as pb;
use serde_json::{json, Value};

pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

/// Why a pod's container could not be resolved (upstream's kubelet messages).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("pod {name:?} does not exist")]
    PodNotFound { name: String },
    #[error("container {container:?} not found in pod {pod:?}")]
    ContainerNotFound { pod: String, container: String },
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { pod: String, container: String },
}

/// The namespace, name and uid of the pod a sandbox belongs to: the kubelet's labels, else the
/// sandbox metadata.
pub fn pod_ref(s: &pb::PodSandbox) -> (String, String, String) {
    let md = s.metadata.clone().unwrap_or_default();
    let get = |k: &str, fallback: String| {
        s.labels
            .get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or(fallback)
    };
    (
        get(POD_NAMESPACE_LABEL, md.namespace),
        get(POD_NAME_LABEL, md.name),
        get(POD_UID_LABEL, md.uid),
    )
}

/// The pod-spec name of a CRI container: the kubelet's label, else the CRI metadata name.
pub fn container_name(c: &pb::Container) -> String {
    c.labels
        .get(CONTAINER_NAME_LABEL)
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            c.metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default()
        })
}

/// One pod: its sandboxes (newest first) and the containers of all of them (newest first).
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub sandboxes: Vec<pb::PodSandbox>,
    pub containers: Vec<pb::Container>,
}

impl Pod {
    /// The newest sandbox.
    pub fn sandbox(&self) -> &pb::PodSandbox {
        &self.sandboxes[0]
    }

    /// Containers named `name`, newest first (the current one, then previous attempts).
    pub fn named(&self, name: &str) -> Vec<&pb::Container> {
        self.containers
            .iter()
            .filter(|c| container_name(c) == name)
            .collect()
    }

    /// Names of the pod's containers in first-creation order (ties by name), without repeats.
    pub fn container_names(&self) -> Vec<String> {
        let mut first: HashMap<String, i64> = HashMap::new();
        for c in &self.containers {
            let e = first.entry(container_name(c)).or_insert(c.created_at);
            *e = (*e).min(c.created_at);
        }
        let mut out: Vec<(i64, String)> = first.into_iter().map(|(n, t)| (t, n)).collect();
        out.sort();
        out.into_iter().map(|(_, n)| n).collect()
    }
}

/// Groups sandboxes and containers into pods, keyed by pod uid; the result is sorted by
/// namespace and name. When sandboxes of the same namespace/name have different uids, each uid
/// is its own pod (a pod deleted and created again).
pub fn group(sandboxes: &[pb::PodSandbox], containers: &[pb::Container]) -> Vec<Pod> {
    let mut by_uid: HashMap<String, Pod> = HashMap::new();
    let mut sandbox_uid: HashMap<&str, String> = HashMap::new();
    for s in sandboxes {
        let (namespace, name, uid) = pod_ref(s);
        sandbox_uid.insert(s.id.as_str(), uid.clone());
        by_uid
            .entry(uid.clone())
            .or_insert_with(|| Pod {
                namespace,
                name,
                uid,
                sandboxes: Vec::new(),
                containers: Vec::new(),
            })
            .sandboxes
            .push(s.clone());
    }
    for c in containers {
        if let Some(uid) = sandbox_uid.get(c.pod_sandbox_id.as_str()) {
            if let Some(p) = by_uid.get_mut(uid) {
                p.containers.push(c.clone());
            }
        }
    }
    let mut pods: Vec<Pod> = by_uid.into_values().collect();
    for p in &mut pods {
        p.sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        p.containers.sort_by_key(|c| {
            std::cmp::Reverse((
                c.created_at,
                c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            ))
        });
    }
    pods.sort_by(|a, b| {
        (
            a.namespace.as_str(),
            a.name.as_str(),
            b.sandboxes[0].created_at,
        )
            .cmp(&(
                b.namespace.as_str(),
                b.name.as_str(),
                a.sandboxes[0].created_at,
            ))
    });
    pods
}

/// The pod `namespace/name` (the one with the newest sandbox if several uids exist).
pub fn find<'a>(pods: &'a [Pod], namespace: &str, name: &str) -> Result<&'a Pod, LookupError> {
    pods.iter()
        .filter(|p| p.namespace == namespace && p.name == name)
        .max_by_key(|p| p.sandbox().created_at)
        .ok_or_else(|| LookupError::PodNotFound {
            name: name.to_string(),
        })
}

/// The container whose logs (or streams) a request names: the current one, or with `previous`
/// the one before it.
pub fn resolve<'a>(
    pod: &'a Pod,
    container: &str,
    previous: bool,
) -> Result<&'a pb::Container, LookupError> {
    let named = pod.named(container);
    let pick = if previous {
        named.get(1)
    } else {
        named.first()
    };
    match pick {
        Some(c) => Ok(c),
        None if previous && !named.is_empty() => Err(LookupError::NoPrevious {
            pod: pod.name.clone(),
            container: container.to_string(),
        }),
        None => Err(LookupError::ContainerNotFound {
            pod: pod.name.clone(),
            container: container.to_string(),
        }),
    }
}

/// RFC 3339 (seconds) of a CRI nanosecond timestamp.
pub fn rfc3339(ns: i64) -> Value {
    if ns <= 0 {
        return Value::Null;
    }
    let t = chrono::DateTime::from_timestamp(ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
        .unwrap_or_default();
    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn user_labels(m: &HashMap<String, String>) -> Value {
    let v: serde_json::Map<String, Value> = m
        .iter()
        .filter(|(k, _)| !k.starts_with("io.kubernetes."))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Value::Object(v)
}

fn container_state(st: Option<&pb::ContainerStatus>, c: &pb::Container) -> Value {
    let state = st.map(|s| s.state).unwrap_or(c.state);
    match pb::ContainerState::try_from(state).unwrap_or(pb::ContainerState::ContainerUnknown) {
        pb::ContainerState::ContainerRunning => {
            json!({"running": {"startedAt": rfc3339(st.map(|s| s.started_at).unwrap_or(c.created_at))}})
        }
        pb::ContainerState::ContainerExited => {
            let mut t = json!({
                "exitCode": st.map(|s| s.exit_code).unwrap_or(0),
                "startedAt": rfc3339(st.map(|s| s.started_at).unwrap_or(0)),
                "finishedAt": rfc3339(st.map(|s| s.finished_at).unwrap_or(0)),
                "containerID": "",
            });
            if let Some(s) = st.filter(|s| !s.reason.is_empty()) {
                t["reason"] = json!(s.reason);
            }
            if let Some(s) = st.filter(|s| !s.message.is_empty()) {
                t["message"] = json!(s.message);
            }
            json!({ "terminated": t })
        }
        _ => json!({"waiting": {"reason": "ContainerCreating"}}),
    }
}

/// The `/pods` PodList: every pod of the node with its containers' state, from CRI alone.
/// `statuses` holds ContainerStatus by container id where known; `runtime` prefixes ids
/// (`<runtime>://<id>`).
pub fn pod_list(
    pods: &[Pod],
    statuses: &HashMap<String, pb::ContainerStatus>,
    runtime: &str,
    node_name: &str,
) -> Value {
    let items: Vec<Value> = pods
        .iter()
        .map(|p| {
            let sb = p.sandbox();
            let mut containers = Vec::new();
            let mut cstatuses = Vec::new();
            let (mut running, mut exited, mut failed, mut total) = (0, 0, 0, 0);
            for name in p.container_names() {
                let named = p.named(&name);
                let cur = named[0];
                let st = statuses.get(&cur.id);
                let image = cur
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default();
                containers.push(json!({"name": name, "image": image}));
                let id = format!("{runtime}://{}", cur.id);
                let mut state = container_state(st, cur);
                if let Some(t) = state.get_mut("terminated") {
                    t["containerID"] = json!(id);
                }
                total += 1;
                if state.get("running").is_some() {
                    running += 1;
                }
                if let Some(t) = state.get("terminated") {
                    exited += 1;
                    if t["exitCode"].as_i64() != Some(0) {
                        failed += 1;
                    }
                }
                let mut cs = json!({
                    "name": name,
                    "state": state,
                    "ready": false,
                    "restartCount": named.len() - 1,
                    "image": image,
                    "imageID": cur.image_ref,
                    "containerID": id,
                });
                if let Some(prev) = named.get(1) {
                    let mut last = container_state(statuses.get(&prev.id), prev);
                    if let Some(t) = last.get_mut("terminated") {
                        t["containerID"] = json!(format!("{runtime}://{}", prev.id));
                    }
                    cs["lastState"] = last;
                }
                cstatuses.push(cs);
            }
            let phase = if running > 0 {
                "Running"
            } else if total > 0 && exited == total {
                if failed > 0 {
                    "Failed"
                } else {
                    "Succeeded"
                }
            } else {
                "Pending"
            };
            let ip = json!(null);
            json!({
                "metadata": {
                    "name": p.name,
                    "namespace": p.namespace,
                    "uid": p.uid,
                    "creationTimestamp": rfc3339(sb.created_at),
                    "labels": user_labels(&sb.labels),
                    "annotations": sb.annotations,
                },
                "spec": {"containers": containers, "nodeName": node_name},
                "status": {
                    "phase": phase,
                    "podIP": ip,
                    "startTime": rfc3339(sb.created_at),
                    "containerStatuses": cstatuses,
                },
            })
        })
        .collect();
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
}

/// The `/runningpods` PodList: pods with a ready sandbox and their running containers, as
/// upstream renders runtime pods (name, namespace, uid, container names and images).
pub fn running_pods(pods: &[Pod]) -> Value {
    let items: Vec<Value> = pods
        .iter()
        .filter(|p| {
            p.sandboxes
                .iter()
                .any(|s| s.state == pb::PodSandboxState::SandboxReady as i32)
        })
        .map(|p| {
            let containers: Vec<Value> = p
                .containers
                .iter()
                .filter(|c| c.state == pb::ContainerState::ContainerRunning as i32)
                .map(|c| {
                    json!({
                        "name": container_name(c),
                        "image": c.image.as_ref().map(|i| i.image.clone()).unwrap_or_default(),
                        "resources": {},
                    })
                })
                .collect();
            json!({
                "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid, "creationTimestamp": null},
                "spec": {"containers": containers},
                "status": {},
            })
        })
        .collect();
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(
        id: &str,
        ns: &str,
        name: &str,
        uid: &str,
        created: i64,
        ready: bool,
    ) -> pb::PodSandbox {
        pb::PodSandbox {
            id: id.into(),
            metadata: Some(pb::PodSandboxMetadata {
                name: format!("md-{name}"),
                uid: format!("md-{uid}"),
                namespace: ns.into(),
                attempt: 0,
            }),
            state: if ready {
                pb::PodSandboxState::SandboxReady as i32
            } else {
                pb::PodSandboxState::SandboxNotready as i32
            },
            created_at: created,
            labels: HashMap::from([
                (POD_NAME_LABEL.to_string(), name.to_string()),
                (POD_NAMESPACE_LABEL.to_string(), ns.to_string()),
                (POD_UID_LABEL.to_string(), uid.to_string()),
                ("app".to_string(), "web".to_string()),
            ]),
            ..Default::default()
        }
    }

    fn container(id: &str, sb: &str, name: &str, attempt: u32, running: bool) -> pb::Container {
        pb::Container {
            id: id.into(),
            pod_sandbox_id: sb.into(),
            metadata: Some(pb::ContainerMetadata {
                name: format!("cri-{name}"),
                attempt,
            }),
            image: Some(pb::ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            image_ref: "sha256:abc".into(),
            state: if running {
                pb::ContainerState::ContainerRunning as i32
            } else {
                pb::ContainerState::ContainerExited as i32
            },
            created_at: 1_000 + attempt as i64,
            labels: HashMap::from([(CONTAINER_NAME_LABEL.to_string(), name.to_string())]),
            ..Default::default()
        }
    }

    fn fixture() -> Vec<Pod> {
        let sbs = vec![
            sandbox("s1", "default", "web", "u1", 10, true),
            sandbox("s2", "kube-system", "dns", "u2", 20, false),
            sandbox("s0", "default", "web", "u1", 5, false),
        ];
        let cs = vec![
            container("c1", "s1", "app", 1, true),
            container("c0", "s0", "app", 0, false),
            container("c2", "s1", "side", 0, true),
            container("c3", "s2", "dns", 0, false),
            container("orphan", "gone", "x", 0, true),
        ];
        group(&sbs, &cs)
    }

    #[test]
    fn groups_by_pod_labels_and_resolves_containers() {
        let pods = fixture();
        let names: Vec<(&str, &str, &str, usize)> = pods
            .iter()
            .map(|p| {
                (
                    p.namespace.as_str(),
                    p.name.as_str(),
                    p.uid.as_str(),
                    p.sandboxes.len(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![("default", "web", "u1", 2), ("kube-system", "dns", "u2", 1)]
        );
        let web = find(&pods, "default", "web").unwrap();
        assert_eq!(web.sandbox().id, "s1");
        assert_eq!(web.container_names(), vec!["app", "side"]);
        assert_eq!(resolve(web, "app", false).unwrap().id, "c1");
        assert_eq!(resolve(web, "app", true).unwrap().id, "c0");
        assert_eq!(
            resolve(web, "side", true).unwrap_err().to_string(),
            "previous terminated container \"side\" in pod \"web\" not found"
        );
        assert_eq!(
            resolve(web, "nope", false).unwrap_err().to_string(),
            "container \"nope\" not found in pod \"web\""
        );
        assert_eq!(
            find(&pods, "default", "nope").unwrap_err().to_string(),
            "pod \"nope\" does not exist"
        );
    }

    #[test]
    fn sandbox_metadata_is_the_fallback_identity() {
        let mut s = sandbox("s", "ns", "n", "u", 1, true);
        s.labels.clear();
        assert_eq!(pod_ref(&s), ("ns".into(), "md-n".into(), "md-u".into()));
        let mut c = container("c", "s", "app", 0, true);
        c.labels.clear();
        assert_eq!(container_name(&c), "cri-app");
    }

    #[test]
    fn pod_lists() {
        let pods = fixture();
        let mut statuses = HashMap::new();
        statuses.insert(
            "c3".to_string(),
            pb::ContainerStatus {
                id: "c3".into(),
                state: pb::ContainerState::ContainerExited as i32,
                exit_code: 2,
                reason: "Error".into(),
                ..Default::default()
            },
        );
        let l = pod_list(&pods, &statuses, "oxkube", "node-1");
        assert_eq!(l["kind"], "PodList");
        let web = &l["items"][0];
        assert_eq!(web["metadata"]["uid"], "u1");
        assert_eq!(web["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(web["spec"]["nodeName"], "node-1");
        assert_eq!(web["status"]["phase"], "Running");
        let app = &web["status"]["containerStatuses"][0];
        assert_eq!(app["name"], "app");
        assert_eq!(app["restartCount"], 1);
        assert_eq!(app["containerID"], "oxkube://c1");
        assert!(app["state"]["running"].is_object());
        assert_eq!(app["lastState"]["terminated"]["containerID"], "oxkube://c0");
        let dns = &l["items"][1];
        assert_eq!(dns["status"]["phase"], "Failed");
        assert_eq!(
            dns["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            2
        );
        let r = running_pods(&pods);
        let items = r["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "only pods with a ready sandbox: {r}");
        let names: Vec<&str> = items[0]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["app", "side"]);
    }
}
