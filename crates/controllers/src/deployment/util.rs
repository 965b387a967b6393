//! Pure deployment helpers (upstream's deployment/util): pod-template hash, surge and
//! unavailability fenceposts, proportional scaling, revision annotations and conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
/// Upstream's limit on the revision-history annotation length.
pub const MAX_REV_HISTORY_CHARS: usize = 2000;

const SKIP_COPY: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Upstream's rand.SafeEncodeString: each byte mapped onto a vowel-free alphabet.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

pub(crate) fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

pub(crate) fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The pod-template-hash: FNV-32a over the template (canonical JSON, keys sorted) followed by
/// the collision count as 8 little-endian bytes, printed in decimal and safe-encoded, as
/// upstream's ComputeHash (which hashes a Go dump of the struct instead of JSON).
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut s = String::new();
    canonical(
        &serde_json::to_value(template).unwrap_or(Value::Null),
        &mut s,
    );
    let mut h = fnv32a(s.as_bytes(), 2_166_136_261);
    if let Some(c) = collision_count {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(&b, h);
    }
    safe_encode(&h.to_string())
}

fn template_without_hash(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            v["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    if v.get("metadata")
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty())
    {
        v.as_object_mut().map(|m| m.remove("metadata"));
    }
    v
}

/// Templates equal apart from the pod-template-hash label (upstream's EqualIgnoreHash).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_without_hash(a) == template_without_hash(b)
}

/// Upstream's GetScaledValueFromIntOrPercent.
pub fn scaled_value(
    v: Option<&IntOrString>,
    total: i32,
    round_up: bool,
    default_percent: i32,
) -> i32 {
    let pct = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s
            .trim_end_matches('%')
            .parse::<i32>()
            .unwrap_or(default_percent),
        None => default_percent,
    };
    let x = pct as i64 * total as i64;
    (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
}

/// (maxSurge, maxUnavailable) resolved against `desired`; both zero means unavailable 1.
pub fn resolve_fenceposts(
    surge: Option<&IntOrString>,
    unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let s = scaled_value(surge, desired, true, 25);
    let mut u = scaled_value(unavailable, desired, false, 25);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata, REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, DESIRED_REPLICAS)?.parse().ok()
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, MAX_REPLICAS)?.parse().ok()
}

/// Set desired-replicas and max-replicas; true when changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let (d, m) = (desired.to_string(), max.to_string());
    let mut changed = false;
    if a.get(DESIRED_REPLICAS) != Some(&d) {
        a.insert(DESIRED_REPLICAS.into(), d);
        changed = true;
    }
    if a.get(MAX_REPLICAS) != Some(&m) {
        a.insert(MAX_REPLICAS.into(), m);
        changed = true;
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    desired_annotation(rs) != Some(desired) || max_replicas_annotation(rs) != Some(max)
}

/// Upstream's SetNewReplicaSetAnnotations; true when the ReplicaSet changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    limit: usize,
) -> bool {
    let mut updated = false;
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if SKIP_COPY.contains(&k.as_str()) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        updated = true;
    }
    let old = a.get(REVISION).cloned().unwrap_or_default();
    let old_i: i64 = old.parse().unwrap_or(0);
    if old_i < new_revision {
        a.insert(REVISION.into(), new_revision.to_string());
        updated = true;
        if !old.is_empty() {
            let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            let mut olds: Vec<String> = if history.is_empty() {
                vec![]
            } else {
                history.split(',').map(String::from).collect()
            };
            olds.push(old.clone());
            while olds.len() > 1 && olds.join(",").len() > limit {
                olds.remove(0);
            }
            a.insert(REVISION_HISTORY.into(), olds.join(","));
        }
    }
    if !exists {
        let r = replicas(d);
        updated |= set_replicas_annotations(rs, r, r + max_surge(d));
    }
    updated
}

/// Replicas for the new ReplicaSet (upstream's NewRSNewReplicas).
pub fn new_rs_new_replicas(d: &Deployment, all_sum: i32, new_replicas: i32) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let max_total = replicas(d) + max_surge(d);
    if all_sum >= max_total {
        return new_replicas;
    }
    let up = (max_total - all_sum).min(replicas(d) - new_replicas);
    new_replicas + up
}

/// Upstream's getReplicaSetFraction.
pub fn rs_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = replicas(d) + max_surge(d);
    let annotated = max_replicas_annotation(rs)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = rs_replicas(rs) as f64 * deployment_replicas as f64 / annotated as f64;
    size.round() as i32 - rs_replicas(rs)
}

/// Upstream's GetProportion.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let f = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        f.min(allowed)
    } else {
        f.max(allowed)
    }
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Some(Time(Timestamp::now()));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: now.clone(),
        last_transition_time: now,
    }
}

pub fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Upstream's SetDeploymentCondition: unchanged status and reason keep the old condition.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let conds = s.conditions.get_or_insert_with(Vec::new);
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = s.conditions.as_mut() {
        c.retain(|x| x.type_ != type_);
    }
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|v| *v != i32::MAX)
}

/// Upstream's DeploymentComplete.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's DeploymentProgressing.
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// Upstream's DeploymentTimedOut.
pub fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| (t.0.as_second() + deadline as i64) < now.as_second()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(replicas: i32, surge: Value, unavail: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn safe_encoding_and_hash() {
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        let d = deploy(3, json!("25%"), json!("25%"));
        let t = d.spec.as_ref().unwrap().template.clone();
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t, None), "deterministic");
        assert_ne!(
            h,
            compute_hash(&t, Some(1)),
            "collision count changes the hash"
        );
        let mut t2 = t.clone();
        t2.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_ne!(h, compute_hash(&t2, None));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        // the hash label is ignored by template equality
        let mut t3 = t.clone();
        t3.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), h.clone());
        assert!(equal_ignore_hash(&t, &t3));
        assert!(!equal_ignore_hash(&t, &t2));
    }

    #[test]
    fn fenceposts_table() {
        let cases = [
            (json!("25%"), json!("25%"), 10, (3, 2)),
            (json!("25%"), json!("25%"), 1, (1, 0)),
            (json!(0), json!(0), 3, (0, 1)),
            (json!(2), json!("50%"), 5, (2, 2)),
            (json!("100%"), json!(0), 4, (4, 0)),
        ];
        for (s, u, n, want) in cases {
            let d = deploy(n, s.clone(), u.clone());
            let got = (max_surge(&d), max_unavailable(&d));
            assert_eq!(got, want, "surge {s} unavail {u} replicas {n}");
        }
    }

    #[test]
    fn new_rs_replicas_respect_surge() {
        let d = deploy(10, json!("25%"), json!("25%"));
        // 10 old pods, 0 new: may add 3 (surge)
        assert_eq!(new_rs_new_replicas(&d, 10, 0), 3);
        // already at max total
        assert_eq!(new_rs_new_replicas(&d, 13, 3), 3);
        // never beyond desired
        assert_eq!(new_rs_new_replicas(&d, 9, 9), 10);
    }

    #[test]
    fn revision_annotations() {
        let mut d = deploy(3, json!(1), json!(0));
        d.metadata.annotations =
            Some([("kubernetes.io/change-cause".to_string(), "v2".to_string())].into());
        let mut rs = ReplicaSet::default();
        assert!(set_new_rs_annotations(
            &d,
            &mut rs,
            1,
            false,
            MAX_REV_HISTORY_CHARS
        ));
        let a = rs.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "1");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert_eq!(a["kubernetes.io/change-cause"], "v2");
        // rollback: the old set gets a newer revision and remembers the old one
        assert!(set_new_rs_annotations(
            &d,
            &mut rs,
            3,
            true,
            MAX_REV_HISTORY_CHARS
        ));
        assert!(set_new_rs_annotations(
            &d,
            &mut rs,
            5,
            true,
            MAX_REV_HISTORY_CHARS
        ));
        let a = rs.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "5");
        assert_eq!(a[REVISION_HISTORY], "1,3");
        assert!(!set_new_rs_annotations(
            &d,
            &mut rs,
            5,
            true,
            MAX_REV_HISTORY_CHARS
        ));
    }

    #[test]
    fn proportional_fraction() {
        let d = deploy(20, json!(3), json!(2));
        let mut rs: ReplicaSet =
            serde_json::from_value(json!({"spec": {"replicas": 5, "selector": {}}})).unwrap();
        rs.metadata.annotations = Some([(MAX_REPLICAS.to_string(), "13".to_string())].into());
        // 5 * 23 / 13 = 8.85 -> 9, so +4
        assert_eq!(rs_fraction(&rs, &d), 4);
        assert_eq!(proportion(&rs, &d, 10, 0), 4);
        assert_eq!(proportion(&rs, &d, 10, 8), 2);
    }
}
