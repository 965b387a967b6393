//! Conversion between the served versions of a resource and the form it is stored in:
//! autoscaling/v1 HorizontalPodAutoscalers (stored as autoscaling/v2) and events.k8s.io/v1
//! Events (stored as core/v1 Events), following upstream's conversion functions.

use serde_json::{json, Map, Value};

/// Annotation upstream keeps v2-only HPA metrics in when serving autoscaling/v1.
pub const HPA_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const HPA_CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const HPA_CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
pub const HPA_BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

/// Whether objects of (group, version, kind) are stored in another form.
pub fn needs_conversion(group: &str, version: &str, kind: &str) -> bool {
    matches!(
        (group, version, kind),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") | ("events.k8s.io", "v1", "Event")
    )
}

/// Convert an object sent in (group, version) to its storage form.
pub fn to_storage(group: &str, version: &str, kind: &str, obj: &Value) -> Value {
    match (group, version, kind) {
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => hpa_v1_to_v2(obj),
        ("events.k8s.io", "v1", "Event") => event_v1_to_core(obj),
        _ => obj.clone(),
    }
}

/// Convert a stored object to (group, version).
pub fn from_storage(group: &str, version: &str, kind: &str, obj: &Value) -> Value {
    match (group, version, kind) {
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => hpa_v2_to_v1(obj),
        ("events.k8s.io", "v1", "Event") => event_core_to_v1(obj),
        _ => obj.clone(),
    }
}

fn copy(from: &Value, to: &mut Map<String, Value>, src: &str, dst: &str) {
    if let Some(v) = from.get(src) {
        if !v.is_null() {
            to.insert(dst.to_string(), v.clone());
        }
    }
}

fn annotations_mut(meta: &mut Value) -> &mut Map<String, Value> {
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta["annotations"] = json!({});
    }
    meta["annotations"]
        .as_object_mut()
        .expect("annotations is an object")
}

fn drop_empty_annotations(meta: &mut Value) {
    if meta
        .get("annotations")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        if let Some(m) = meta.as_object_mut() {
            m.remove("annotations");
        }
    }
}

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m.pointer("/resource/name") == Some(&json!("cpu"))
        && m.pointer("/resource/target/type") == Some(&json!("Utilization"))
}

fn hpa_v2_to_v1(obj: &Value) -> Value {
    let mut meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut s = Map::new();
    copy(&spec, &mut s, "scaleTargetRef", "scaleTargetRef");
    copy(&spec, &mut s, "minReplicas", "minReplicas");
    copy(&spec, &mut s, "maxReplicas", "maxReplicas");
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut other = Vec::new();
    for m in metrics {
        if is_cpu_utilization(&m) && !s.contains_key("targetCPUUtilizationPercentage") {
            if let Some(u) = m.pointer("/resource/target/averageUtilization") {
                s.insert("targetCPUUtilizationPercentage".into(), u.clone());
            }
        } else {
            other.push(m);
        }
    }
    {
        let ann = annotations_mut(&mut meta);
        if !other.is_empty() {
            ann.insert(
                HPA_METRICS_ANNOTATION.into(),
                json!(Value::Array(other).to_string()),
            );
        }
        if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
            ann.insert(HPA_BEHAVIOR_ANNOTATION.into(), json!(b.to_string()));
        }
    }
    let mut out = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": meta, "spec": s});
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        let mut st = Map::new();
        for f in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            copy(status, &mut st, f, f);
        }
        st.entry("currentReplicas").or_insert(json!(0));
        st.entry("desiredReplicas").or_insert(json!(0));
        let mut other_current = Vec::new();
        for m in status
            .get("currentMetrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let cpu = m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu"));
            match m.pointer("/resource/current/averageUtilization") {
                Some(u) if cpu && !st.contains_key("currentCPUUtilizationPercentage") => {
                    st.insert("currentCPUUtilizationPercentage".into(), u.clone());
                }
                _ => other_current.push(m),
            }
        }
        let ann = annotations_mut(&mut out["metadata"]);
        if !other_current.is_empty() {
            ann.insert(
                HPA_CURRENT_METRICS_ANNOTATION.into(),
                json!(Value::Array(other_current).to_string()),
            );
        }
        if let Some(c) = status
            .get("conditions")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
        {
            ann.insert(
                HPA_CONDITIONS_ANNOTATION.into(),
                json!(Value::Array(c.clone()).to_string()),
            );
        }
        out["status"] = Value::Object(st);
    }
    drop_empty_annotations(&mut out["metadata"]);
    out
}

fn take_json_annotation(meta: &mut Value, key: &str) -> Option<Value> {
    let ann = meta.get_mut("annotations")?.as_object_mut()?;
    let raw = ann.remove(key)?;
    serde_json::from_str(raw.as_str()?).ok()
}

fn hpa_v1_to_v2(obj: &Value) -> Value {
    let mut meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut s = Map::new();
    copy(&spec, &mut s, "scaleTargetRef", "scaleTargetRef");
    copy(&spec, &mut s, "minReplicas", "minReplicas");
    copy(&spec, &mut s, "maxReplicas", "maxReplicas");
    let mut metrics = Vec::new();
    if let Some(u) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|u| !u.is_null())
    {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}}));
    }
    if let Some(Value::Array(more)) = take_json_annotation(&mut meta, HPA_METRICS_ANNOTATION) {
        metrics.extend(more);
    }
    if !metrics.is_empty() {
        s.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(b) = take_json_annotation(&mut meta, HPA_BEHAVIOR_ANNOTATION) {
        s.insert("behavior".into(), b);
    }
    let current_more = take_json_annotation(&mut meta, HPA_CURRENT_METRICS_ANNOTATION);
    let conditions = take_json_annotation(&mut meta, HPA_CONDITIONS_ANNOTATION);
    drop_empty_annotations(&mut meta);
    let mut out = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta, "spec": s});
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        let mut st = Map::new();
        for f in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            copy(status, &mut st, f, f);
        }
        let mut current = Vec::new();
        if let Some(u) = status
            .get("currentCPUUtilizationPercentage")
            .filter(|u| !u.is_null())
        {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}));
        }
        if let Some(Value::Array(more)) = current_more {
            current.extend(more);
        }
        if !current.is_empty() {
            st.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions {
            st.insert("conditions".into(), c);
        }
        out["status"] = Value::Object(st);
    }
    out
}

/// Field pairs (core/v1 name, events.k8s.io/v1 name) that only differ by name.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("action", "action"),
    ("reason", "reason"),
    ("related", "related"),
    ("type", "type"),
    ("metadata", "metadata"),
];

fn event_core_to_v1(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    for (core, v1) in EVENT_FIELDS {
        copy(obj, &mut out, core, v1);
    }
    if out.get("eventTime").is_none() {
        out.insert("eventTime".into(), Value::Null);
    }
    Value::Object(out)
}

fn event_v1_to_core(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    for (core, v1) in EVENT_FIELDS {
        copy(obj, &mut out, v1, core);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_roundtrip_keeps_every_metric() {
        let v2 = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h", "namespace": "d"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                       "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}],
                       "conditions": [{"type": "AbleToScale", "status": "True"}]}
        });
        let v1 = from_storage("autoscaling", "v1", "HorizontalPodAutoscaler", &v2);
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 40);
        assert!(v1["metadata"]["annotations"][HPA_METRICS_ANNOTATION]
            .as_str()
            .unwrap()
            .contains("memory"));
        let back = to_storage("autoscaling", "v1", "HorizontalPodAutoscaler", &v1);
        assert_eq!(back["spec"], v2["spec"]);
        assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
        assert!(
            back["metadata"].get("annotations").is_none(),
            "conversion annotations are consumed"
        );
    }

    #[test]
    fn hpa_v1_without_target_has_no_metrics() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
                        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 3}});
        let v2 = to_storage("autoscaling", "v1", "HorizontalPodAutoscaler", &v1);
        assert!(v2["spec"].get("metrics").is_none());
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
    }

    #[test]
    fn events_map_field_names_both_ways() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "reason": "Started",
            "source": {"component": "kubelet"}, "count": 3, "type": "Normal", "reportingComponent": "kubelet"});
        let v1 = from_storage("events.k8s.io", "v1", "Event", &core);
        assert_eq!(v1["regarding"]["name"], "p");
        assert_eq!(v1["note"], "hi");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["reportingController"], "kubelet");
        let back = to_storage("events.k8s.io", "v1", "Event", &v1);
        assert_eq!(back, core);
        assert!(!needs_conversion("", "v1", "Event"));
        assert!(needs_conversion("events.k8s.io", "v1", "Event"));
    }
}
