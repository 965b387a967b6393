//! The labels and annotations the kubelet puts on CRI sandboxes and containers (upstream
//! `kuberuntime/labels.go`), and reading them back: they are the kubelet's only memory of which
//! pod a sandbox or container belongs to, its restart count and spec hash, so a restarted agent
//! re-adopts running pods from CRI alone.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
pub const TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";
/// Where the kubelet keeps the host file mounted at the termination message path (oxkube's own
/// annotation; upstream recomputes it from its pod directory).
pub const TERMINATION_MESSAGE_HOST_PATH: &str = "io.oxkube.container.terminationMessageHostPath";

fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let m = &pod.metadata;
    HashMap::from([
        (POD_NAME.to_string(), m.name.clone().unwrap_or_default()),
        (
            POD_NAMESPACE.to_string(),
            m.namespace.clone().unwrap_or_default(),
        ),
        (POD_UID.to_string(), m.uid.clone().unwrap_or_default()),
    ])
}

/// Labels of a pod sandbox: the pod's labels plus the three pod identity labels.
pub fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    l.extend(pod_labels(pod));
    l
}

/// Annotations of a pod sandbox: the pod's annotations.
pub fn sandbox_annotations(pod: &Pod) -> HashMap<String, String> {
    pod.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Labels of a container: the pod identity and the container name.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let mut l = pod_labels(pod);
    l.insert(CONTAINER_NAME.to_string(), container.name.clone());
    l
}

/// Annotations of a container: spec hash, restart count, termination message settings, grace
/// period and ports.
pub fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: i32,
    termination_host_path: Option<&str>,
) -> HashMap<String, String> {
    let mut a = HashMap::from([
        (CONTAINER_HASH.to_string(), container_hash(container)),
        (RESTART_COUNT.to_string(), restart_count.to_string()),
        (
            TERMINATION_MESSAGE_PATH.to_string(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
        (
            TERMINATION_MESSAGE_POLICY.to_string(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
    ]);
    if let Some(g) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        a.insert(TERMINATION_GRACE_PERIOD.to_string(), g.to_string());
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty()) {
        a.insert(
            CONTAINER_PORTS.to_string(),
            serde_json::to_string(ports).unwrap_or_default(),
        );
    }
    if let Some(p) = termination_host_path {
        a.insert(TERMINATION_MESSAGE_HOST_PATH.to_string(), p.to_string());
    }
    a
}

/// The spec hash of a container: FNV-1a (32 bit) over the fields whose change needs a restart
/// (upstream hashes the name and image since in-place pod updates can only change the image).
pub fn container_hash(c: &Container) -> String {
    let json = serde_json::json!({"name": c.name, "image": c.image});
    let mut h: u32 = 0x811c_9dc5;
    for b in json.to_string().bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:x}")
}

/// The restart count recorded on a container (0 when absent or malformed).
pub fn restart_count(annotations: &HashMap<String, String>) -> i32 {
    annotations
        .get(RESTART_COUNT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1",
                         "labels": {"app": "web"}, "annotations": {"note": "x"}},
            "spec": {"terminationGracePeriodSeconds": 7, "containers": [
                {"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn sandbox_and_container_metadata() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sl = sandbox_labels(&p);
        assert_eq!(sl[POD_NAME], "web");
        assert_eq!(sl[POD_NAMESPACE], "ns");
        assert_eq!(sl[POD_UID], "u1");
        assert_eq!(sl["app"], "web");
        assert_eq!(sandbox_annotations(&p)["note"], "x");
        let cl = container_labels(&p, c);
        assert_eq!(cl[CONTAINER_NAME], "c");
        assert_eq!(cl[POD_UID], "u1");
        let ca = container_annotations(&p, c, 3, Some("/x/term"));
        assert_eq!(restart_count(&ca), 3);
        assert_eq!(ca[CONTAINER_HASH], container_hash(c));
        assert_eq!(ca[TERMINATION_GRACE_PERIOD], "7");
        assert_eq!(ca[TERMINATION_MESSAGE_PATH], "/dev/termination-log");
        assert_eq!(ca[TERMINATION_MESSAGE_HOST_PATH], "/x/term");
        assert!(ca[CONTAINER_PORTS].contains("\"containerPort\":80"));
    }

    #[test]
    fn hash_changes_with_image_only() {
        let p = pod();
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        let h1 = container_hash(&c);
        c.args = Some(vec!["x".into()]);
        assert_eq!(container_hash(&c), h1);
        c.image = Some("busybox:2".into());
        assert_ne!(container_hash(&c), h1);
    }

    #[test]
    fn restart_count_defaults_to_zero() {
        let mut a = HashMap::new();
        assert_eq!(restart_count(&a), 0);
        a.insert(RESTART_COUNT.to_string(), "nope".to_string());
        assert_eq!(restart_count(&a), 0);
    }
}
