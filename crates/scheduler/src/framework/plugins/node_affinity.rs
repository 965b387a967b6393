//! NodeAffinity: `spec.nodeSelector` and required node affinity as a filter, preferred node
//! affinity as a score.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

use crate::framework::{NodeInfo, PodInfo, Status};

pub const NAME: &str = "NodeAffinity";
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let vals = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| vals.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| vals.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                vals.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if vals.len() != 1 {
                return false;
            }
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches (an empty term matches nothing).
pub fn term_matches(
    t: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node_name)))
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity (upstream
/// `RequiredNodeAffinity.Match`).
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return true;
    };
    if let Some(sel) = spec.node_selector.as_ref() {
        if !sel.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(ns) => ns
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, &node.labels, &node.name)),
    }
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if required_matches(pod, node) {
        None
    } else {
        Some(Status::unresolvable(NAME, REASON))
    }
}

/// Sum of the weights of the preferred terms the node matches.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let preferred = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    preferred
        .into_iter()
        .flatten()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, &node.labels, &node.name))
        .map(|p| p.weight as i64)
        .sum()
}

pub fn has_preferred(pod: &PodInfo) -> bool {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|p| !p.is_empty())
}

pub fn normalize(scores: &mut [i64]) {
    super::default_normalize(scores, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    fn req(terms: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn filter_table() {
        let c = cluster(
            vec![node(
                "n1",
                "1",
                "1Gi",
                json!({"zone": "a", "gen": "5", "disk": "ssd"}),
                json!({}),
            )],
            vec![],
        );
        let n = c.node("n1").unwrap();
        for (name, spec, fits) in [
            ("nothing required", json!({}), true),
            (
                "nodeSelector matches",
                json!({"nodeSelector": {"zone": "a"}}),
                true,
            ),
            (
                "nodeSelector mismatch",
                json!({"nodeSelector": {"zone": "b"}}),
                false,
            ),
            (
                "nodeSelector missing label",
                json!({"nodeSelector": {"gpu": "yes"}}),
                false,
            ),
            (
                "In",
                req(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]),
                ),
                true,
            ),
            (
                "NotIn",
                req(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                ),
                false,
            ),
            (
                "NotIn absent key",
                req(
                    json!([{"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]}]),
                ),
                true,
            ),
            (
                "Exists",
                req(json!([{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}])),
                true,
            ),
            (
                "DoesNotExist",
                req(json!([{"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}])),
                false,
            ),
            (
                "Gt",
                req(
                    json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}]),
                ),
                true,
            ),
            (
                "Lt",
                req(
                    json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["4"]}]}]),
                ),
                false,
            ),
            (
                "terms are ORed",
                req(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}])),
                true,
            ),
            (
                "expressions are ANDed",
                req(json!([{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "disk", "operator": "In", "values": ["hdd"]}]}])),
                false,
            ),
            ("empty term matches nothing", req(json!([{}])), false),
            ("no terms match nothing", req(json!([])), false),
            (
                "matchFields name",
                req(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                ),
                true,
            ),
            (
                "matchFields other name",
                req(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
                ),
                false,
            ),
            (
                "selector and affinity both required",
                {
                    let mut s = req(
                        json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]),
                    );
                    s["nodeSelector"] = json!({"disk": "hdd"});
                    s
                },
                false,
            ),
        ] {
            let got = filter(&pod("p", spec), n);
            assert_eq!(got.is_none(), fits, "{name}");
            if let Some(s) = got {
                assert_eq!(s.reasons, vec![REASON.to_string()], "{name}");
            }
        }
    }

    #[test]
    fn score_table() {
        let c = cluster(
            vec![
                node(
                    "a",
                    "1",
                    "1Gi",
                    json!({"zone": "a", "disk": "ssd"}),
                    json!({}),
                ),
                node(
                    "b",
                    "1",
                    "1Gi",
                    json!({"zone": "b", "disk": "ssd"}),
                    json!({}),
                ),
                node("c", "1", "1Gi", json!({"zone": "c"}), json!({})),
            ],
            vec![],
        );
        let spec = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 2, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 6, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}});
        let p = pod("p", spec);
        let mut s: Vec<i64> = ["a", "b", "c"]
            .iter()
            .map(|n| score(&p, c.node(n).unwrap()))
            .collect();
        assert_eq!(s, vec![8, 6, 0]);
        normalize(&mut s);
        assert_eq!(s, vec![100, 75, 0]);
        let p = pod("q", json!({}));
        let mut s: Vec<i64> = ["a", "b", "c"]
            .iter()
            .map(|n| score(&p, c.node(n).unwrap()))
            .collect();
        normalize(&mut s);
        assert_eq!(s, vec![0, 0, 0]);
    }
}
