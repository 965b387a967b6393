//! The per-kind fields a field selector may name, and their values for one object
//! (upstream's `GetAttrs` / field label conversion funcs).

use serde_json::Value;

fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, k| v.get(k))
}

/// The fields besides metadata.name/namespace that a resource supports, by (group, resource).
pub fn supported(group: &str, resource: &str) -> &'static [&'static str] {
    match (group, resource) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("", "persistentvolumeclaims") => &["spec.volumeName"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

/// The value of a selectable field of an object, or None when the field is not supported.
/// events.k8s.io Events are stored as core Events: their fields are read under the core names.
pub fn value(group: &str, resource: &str, obj: &Value, field: &str) -> Option<String> {
    if (group, resource) == ("events.k8s.io", "events")
        && supported(group, resource).contains(&field)
    {
        let core = if let Some(rest) = field.strip_prefix("regarding.") {
            format!("involvedObject.{rest}")
        } else if field == "reportingController" {
            "reportingComponent".to_string()
        } else {
            field.to_string()
        };
        return value("", "events", obj, &core);
    }
    match field {
        "metadata.name" => return Some(s(at(obj, "metadata.name"))),
        "metadata.namespace" => return Some(s(at(obj, "metadata.namespace"))),
        _ => {}
    }
    if !supported(group, resource).contains(&field) {
        return None;
    }
    Some(match (group, resource, field) {
        ("", "events", "source") => {
            let v = s(at(obj, "reportingComponent"));
            if v.is_empty() {
                s(at(obj, "source.component"))
            } else {
                v
            }
        }
        ("", "pods", "spec.hostNetwork") => at(obj, "spec.hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        ("", "nodes", "spec.unschedulable") => at(obj, "spec.unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        ("", "secrets", "type") => {
            let t = s(at(obj, "type"));
            if t.is_empty() {
                "Opaque".into()
            } else {
                t
            }
        }
        (_, _, f) if f.ends_with("replicas") || f.ends_with("successful") => {
            at(obj, f).and_then(Value::as_i64).unwrap_or(0).to_string()
        }
        (_, _, f) => s(at(obj, f)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_and_event_fields() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(value("", "pods", &pod, "spec.nodeName").unwrap(), "n1");
        assert_eq!(value("", "pods", &pod, "status.phase").unwrap(), "Running");
        assert_eq!(
            value("", "pods", &pod, "spec.hostNetwork").unwrap(),
            "false"
        );
        assert_eq!(value("", "pods", &pod, "metadata.namespace").unwrap(), "d");
        assert!(value("", "pods", &pod, "spec.bogus").is_none());
        assert!(value("", "configmaps", &pod, "spec.nodeName").is_none());
        let ev = json!({"involvedObject": {"uid": "u1", "name": "p"}, "source": {"component": "kubelet"}});
        assert_eq!(
            value("", "events", &ev, "involvedObject.uid").unwrap(),
            "u1"
        );
        assert_eq!(value("", "events", &ev, "source").unwrap(), "kubelet");
        let rs = json!({"status": {"replicas": 3}});
        assert_eq!(
            value("apps", "replicasets", &rs, "status.replicas").unwrap(),
            "3"
        );
    }
}
