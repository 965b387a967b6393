//! TaintToleration: filter on untolerated NoSchedule/NoExecute taints, score by the number of
//! untolerated PreferNoSchedule taints (fewer is better).

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{NodeInfo, PodInfo, Status};

pub const NAME: &str = "TaintToleration";

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let tols = tolerations(pod);
    let taint = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|taint| !tols.iter().any(|t| tolerates(t, taint)))?;
    Some(Status::unresolvable(
        NAME,
        format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or("")
        ),
    ))
}

/// Number of PreferNoSchedule taints the pod does not tolerate (tolerations with an empty or
/// PreferNoSchedule effect count).
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tols: Vec<&Toleration> = tolerations(pod)
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    node.taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|taint| !tols.iter().any(|t| tolerates(t, taint)))
        .count() as i64
}

/// Fewer intolerable taints score higher.
pub fn normalize(scores: &mut [i64]) {
    super::default_normalize(scores, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    #[test]
    fn filter_table() {
        for (name, taints, tols, want) in [
            ("no taints", json!([]), json!([]), None),
            (
                "NoSchedule untolerated",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "NoExecute untolerated",
                json!([{"key": "k", "effect": "NoExecute"}]),
                json!([]),
                Some("node(s) had untolerated taint {k: }"),
            ),
            (
                "PreferNoSchedule ignored",
                json!([{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]),
                json!([]),
                None,
            ),
            (
                "tolerated with Equal",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
                None,
            ),
            (
                "wrong value",
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([{"key": "dedicated", "value": "cpu"}]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "Exists with empty effect tolerates all effects",
                json!([{"key": "k", "value": "v", "effect": "NoExecute"}]),
                json!([{"key": "k", "operator": "Exists"}]),
                None,
            ),
            (
                "effect mismatch",
                json!([{"key": "k", "value": "v", "effect": "NoExecute"}]),
                json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]),
                Some("node(s) had untolerated taint {k: v}"),
            ),
        ] {
            let c = cluster(
                vec![node("n1", "1", "1Gi", json!({}), json!({"taints": taints}))],
                vec![],
            );
            let got = filter(
                &pod("p", json!({"tolerations": tols})),
                c.node("n1").unwrap(),
            );
            assert_eq!(got.as_ref().map(|s| s.reasons[0].as_str()), want, "{name}");
            if let Some(s) = got {
                assert_eq!(s.code, crate::framework::Code::UnschedulableAndUnresolvable);
            }
        }
    }

    #[test]
    fn score_table() {
        let c = cluster(
            vec![
                node("a", "1", "1Gi", json!({}), json!({})),
                node(
                    "b",
                    "1",
                    "1Gi",
                    json!({}),
                    json!({"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}),
                ),
                node(
                    "c",
                    "1",
                    "1Gi",
                    json!({}),
                    json!({"taints": [{"key": "x", "effect": "PreferNoSchedule"}, {"key": "y", "effect": "PreferNoSchedule"}]}),
                ),
            ],
            vec![],
        );
        for (name, tols, want) in [
            ("no tolerations", json!([]), vec![100, 50, 0]),
            (
                "x tolerated",
                json!([{"key": "x", "operator": "Exists"}]),
                vec![100, 100, 0],
            ),
            (
                "all tolerated",
                json!([{"operator": "Exists", "effect": "PreferNoSchedule"}]),
                vec![100, 100, 100],
            ),
        ] {
            let p = pod("p", json!({"tolerations": tols}));
            let mut s: Vec<i64> = ["a", "b", "c"]
                .iter()
                .map(|n| score(&p, c.node(n).unwrap()))
                .collect();
            normalize(&mut s);
            assert_eq!(s, want, "{name}");
        }
    }
}
