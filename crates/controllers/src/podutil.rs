//! Pure helpers on pods, owner references and label selectors shared by the workload
//! controllers (upstream's podutil, controller_utils and metav1 selector logic).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;

/// A pod that is neither terminated nor being deleted (upstream's IsPodActive).
pub fn is_active(p: &Pod) -> bool {
    let phase = p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    phase != "Succeeded" && phase != "Failed" && p.metadata.deletion_timestamp.is_none()
}

fn ready_condition(p: &Pod) -> Option<&PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The pod's Ready condition is True.
pub fn is_ready(p: &Pod) -> bool {
    ready_condition(p).is_some_and(|c| c.status == "True")
}

/// When the pod became ready, if it is ready.
pub fn ready_time(p: &Pod) -> Option<Timestamp> {
    ready_condition(p)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's IsPodAvailable).
pub fn is_available(p: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(p) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match ready_time(p) {
        Some(t) => t.as_second() + min_ready_seconds as i64 <= now.as_second(),
        None => false,
    }
}

/// The owner reference with controller=true, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller owner reference as controllers set it on what they create.
pub fn new_controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether labels match a label selector (an empty selector matches everything, a missing
/// one nothing, as metav1.LabelSelectorAsSelector).
pub fn selector_matches(
    sel: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let Some(sel) = sel else { return false };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    for (k, v) in sel.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let have = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or(&[]);
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => !have.is_some_and(|h| values.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A selector that selects nothing-or-everything ambiguity: upstream refuses to manage with an
/// empty selector.
pub fn selector_is_empty(sel: Option<&LabelSelector>) -> bool {
    sel.is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
    })
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn deletion_cost(p: &Pod) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn phase_ordinal(p: &Pod) -> Option<i32> {
    match p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
    {
        "Pending" | "" => Some(0),
        "Unknown" => Some(1),
        "Running" => Some(2),
        _ => None,
    }
}

fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 {
        (d as f64).log2() as i64
    } else {
        -1
    }
}

fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

fn created(p: &Pod) -> Option<Timestamp> {
    p.metadata.creation_timestamp.as_ref().map(|t: &Time| t.0)
}

/// Upstream's ActivePodsWithRanks.Less: whether pod `a` (rank `ra`) should be deleted before
/// pod `b` when scaling down. Rank = active related pods on the same node.
pub fn delete_first(a: &Pod, ra: usize, b: &Pod, rb: usize, now: Timestamp) -> bool {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let (na, nb) = (node(a), node(b));
    // 1. unassigned < assigned
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. pending < unknown < running
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa.unwrap_or(i32::MAX) < pb.unwrap_or(i32::MAX);
    }
    // 3. not ready < ready
    if is_ready(a) != is_ready(b) {
        return !is_ready(a);
    }
    // 4. lower deletion cost first
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a) < deletion_cost(b);
    }
    // 5. doubled up on a node first
    if ra != rb {
        return ra > rb;
    }
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    // 6. ready for less time first (logarithmic buckets)
    if is_ready(a) && is_ready(b) {
        let (ta, tb) = (ready_time(a), ready_time(b));
        if ta != tb {
            return match (ta, tb) {
                (Some(x), Some(y)) => match log_rank(x, now).cmp(&log_rank(y, now)) {
                    Ordering::Equal => uid(a) < uid(b),
                    o => o == Ordering::Less,
                },
                _ => after_or_zero(ta, tb),
            };
        }
    }
    // 7. more restarts first
    if restarts(a) != restarts(b) {
        return restarts(a) > restarts(b);
    }
    // 8. newer first (logarithmic buckets)
    let (ca, cb) = (created(a), created(b));
    if ca != cb {
        return match (ca, cb) {
            (Some(x), Some(y)) => match log_rank(x, now).cmp(&log_rank(y, now)) {
                Ordering::Equal => uid(a) < uid(b),
                o => o == Ordering::Less,
            },
            _ => after_or_zero(ca, cb),
        };
    }
    false
}

/// The `n` pods to delete first out of `pods`, given all pods related to the controller's owner.
pub fn pods_to_delete<'a>(
    pods: &[&'a Pod],
    related: &[&Pod],
    n: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if n >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node
            .entry(
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
            )
            .or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|p| {
            (
                *p,
                on_node
                    .get(
                        &p.spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default(),
                    )
                    .copied()
                    .unwrap_or(0),
            )
        })
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| {
        if delete_first(a, *ra, b, *rb, now) {
            Ordering::Less
        } else if delete_first(b, *rb, a, *ra, now) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        let mut conds = vec![];
        if let Some(t) = ready_at {
            conds.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": Timestamp::from_second(t).unwrap().to_string()}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"containers": [], "nodeName": if node.is_empty() { None } else { Some(node) }},
            "status": {"phase": phase, "conditions": conds},
        }))
        .unwrap()
    }

    #[test]
    fn deletion_ranking_follows_upstream_order() {
        let now = Timestamp::from_second(100_000).unwrap();
        let ready_old = pod("ready-old", "n1", "Running", Some(1000), 900);
        let ready_new = pod("ready-new", "n1", "Running", Some(99_990), 99_980);
        let not_ready = pod("not-ready", "n1", "Running", None, 900);
        let pending = pod("pending", "n1", "Pending", None, 900);
        let unscheduled = pod("unscheduled", "", "Pending", None, 900);
        let all = [&ready_old, &ready_new, &not_ready, &pending, &unscheduled];
        let order: Vec<String> = pods_to_delete(&all, &all, 4, now)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(order, ["unscheduled", "pending", "not-ready", "ready-new"]);
    }

    #[test]
    fn doubled_up_nodes_go_first() {
        let now = Timestamp::from_second(100_000).unwrap();
        let a = pod("a", "n1", "Running", Some(1000), 900);
        let b = pod("b", "n2", "Running", Some(1000), 900);
        let c = pod("c", "n2", "Running", Some(1000), 900);
        let pods = [&a, &b];
        let related = [&a, &b, &c];
        let order: Vec<String> = pods_to_delete(&pods, &related, 1, now)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(order, ["b"]);
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "web".to_string()),
            ("tier".into(), "fe".into()),
        ]
        .into();
        let sel = |v: serde_json::Value| serde_json::from_value::<LabelSelector>(v).unwrap();
        let cases = [
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]}),
                false,
            ),
            (json!({}), true),
        ];
        for (s, want) in cases {
            assert_eq!(
                selector_matches(Some(&sel(s.clone())), Some(&labels)),
                want,
                "{s}"
            );
        }
        assert!(!selector_matches(None, Some(&labels)));
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let p = pod("a", "n1", "Running", Some(1000), 900);
        assert!(is_available(&p, 0, Timestamp::from_second(1000).unwrap()));
        assert!(!is_available(&p, 10, Timestamp::from_second(1005).unwrap()));
        assert!(is_available(&p, 10, Timestamp::from_second(1010).unwrap()));
        assert!(!is_available(
            &pod("b", "n1", "Running", None, 900),
            0,
            Timestamp::from_second(1000).unwrap()
        ));
    }
}
