//! PodTopologySpread: `DoNotSchedule` constraints as a filter on the skew between topology
//! domains, `ScheduleAnyway` constraints as a score favouring the least crowded domains.

use std::collections::HashMap;

use apimachinery::selector::{LabelSelector, Operator, Requirement};

use super::node_affinity::required_matches;
use super::taint_toleration::tolerates;
use crate::framework::{Cluster, NodeInfo, PodInfo, Status, MAX_NODE_SCORE};

pub const NAME: &str = "PodTopologySpread";
pub const REASON_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const HOSTNAME: &str = "kubernetes.io/hostname";

/// A compiled topology spread constraint.
#[derive(Clone, Debug)]
pub struct Constraint {
    pub max_skew: i64,
    pub topology_key: String,
    pub selector: LabelSelector,
    pub min_domains: i64,
    pub honor_node_affinity: bool,
    pub honor_taints: bool,
}

impl Constraint {
    fn node_included(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !required_matches(pod, node) {
            return false;
        }
        if self.honor_taints {
            let tols = pod
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default();
            let untolerated = node
                .taints
                .iter()
                .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                .any(|taint| !tols.iter().any(|t| tolerates(t, taint)));
            if untolerated {
                return false;
            }
        }
        true
    }
}

/// The pod's constraints with the given `whenUnsatisfiable`; matchLabelKeys are merged into the
/// selector with the pod's own label values.
pub fn constraints(pod: &PodInfo, action: &str) -> Vec<Constraint> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in spec.topology_spread_constraints.iter().flatten() {
        if c.when_unsatisfiable != action {
            continue;
        }
        let Ok(mut selector) = LabelSelector::from_api(c.label_selector.as_ref()) else {
            continue;
        };
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = pod.labels.get(key) {
                if let Ok(r) = Requirement::new(key, Operator::In, vec![v.clone()]) {
                    selector.add(r);
                }
            }
        }
        out.push(Constraint {
            max_skew: c.max_skew as i64,
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.unwrap_or(1) as i64,
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        });
    }
    out
}

fn has_all_keys(node: &NodeInfo, cs: &[Constraint]) -> bool {
    cs.iter().all(|c| node.labels.contains_key(&c.topology_key))
}

fn count_matching(node: &NodeInfo, sel: &LabelSelector, ns: &str) -> i64 {
    node.pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == ns && sel.matches(&p.labels))
        .count() as i64
}

/// Upstream's system default constraints (ScheduleAnyway, hostname skew 3, zone skew 5) for a
/// pod without constraints of its own, selecting the pods of its services and controller.
pub fn default_constraints(cluster: &Cluster, pod: &PodInfo) -> Vec<Constraint> {
    let has_own = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty());
    if has_own {
        return Vec::new();
    }
    let selector = cluster.default_selector(pod);
    if selector.is_empty() {
        return Vec::new();
    }
    [(3, HOSTNAME), (5, "topology.kubernetes.io/zone")]
        .into_iter()
        .map(|(skew, key)| Constraint {
            max_skew: skew,
            topology_key: key.to_string(),
            selector: selector.clone(),
            min_domains: 1,
            honor_node_affinity: true,
            honor_taints: false,
        })
        .collect()
}

/// Filter state: matching pods per domain of each constraint.
#[derive(Clone, Debug, Default)]
pub struct PreFilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain value -> matching pods.
    counts: Vec<HashMap<String, i64>>,
}

impl PreFilterState {
    pub fn new(cluster: &Cluster, pod: &PodInfo) -> PreFilterState {
        let cs = constraints(pod, "DoNotSchedule");
        if cs.is_empty() {
            return PreFilterState::default();
        }
        let mut counts = vec![HashMap::new(); cs.len()];
        for node in cluster.nodes() {
            if !has_all_keys(node, &cs) {
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if !c.node_included(pod, node) {
                    continue;
                }
                let v = &node.labels[&c.topology_key];
                *counts[i].entry(v.clone()).or_insert(0) +=
                    count_matching(node, &c.selector, &pod.namespace);
            }
        }
        PreFilterState {
            constraints: cs,
            counts,
        }
    }

    /// Adjusts the counts for an existing pod removed (-1) or added (+1) on `node`.
    pub fn update_with_pod(&mut self, pod: &PodInfo, existing: &PodInfo, node: &NodeInfo, n: i64) {
        if existing.namespace != pod.namespace || !has_all_keys(node, &self.constraints) {
            return;
        }
        for (i, c) in self.constraints.iter().enumerate() {
            if c.node_included(pod, node) && c.selector.matches(&existing.labels) {
                *self.counts[i]
                    .entry(node.labels[&c.topology_key].clone())
                    .or_insert(0) += n;
            }
        }
    }

    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Some(Status::unresolvable(NAME, REASON_MISSING_LABEL));
            };
            let domains = &self.counts[i];
            let mut min = domains.values().copied().min().unwrap_or(0);
            if (domains.len() as i64) < c.min_domains {
                min = 0;
            }
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matching = domains.get(value).copied().unwrap_or(0);
            if matching + self_match - min > c.max_skew {
                return Some(Status::unschedulable(NAME, REASON_CONSTRAINTS));
            }
        }
        None
    }
}

/// Score state over the feasible nodes.
#[derive(Clone, Debug, Default)]
pub struct PreScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    ignored: std::collections::HashSet<String>,
    /// Nodes must have every topology key (false for the system default constraints).
    require_all: bool,
    pub skip: bool,
}

impl PreScoreState {
    pub fn new(cluster: &Cluster, pod: &PodInfo, feasible: &[&NodeInfo]) -> PreScoreState {
        let mut cs = constraints(pod, "ScheduleAnyway");
        let mut require_all = true;
        if cs.is_empty() {
            cs = default_constraints(cluster, pod);
            require_all = false;
        }
        if cs.is_empty() {
            return PreScoreState {
                skip: true,
                ..Default::default()
            };
        }
        let value = |n: &NodeInfo, key: &str| n.labels.get(key).cloned().unwrap_or_default();
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); cs.len()];
        let mut ignored = std::collections::HashSet::new();
        for n in feasible {
            if require_all && !has_all_keys(n, &cs) {
                ignored.insert(n.name.clone());
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if c.topology_key != HOSTNAME {
                    counts[i].entry(value(n, &c.topology_key)).or_insert(0);
                }
            }
        }
        let weights = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in cluster.nodes() {
            if require_all && !has_all_keys(node, &cs) {
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                if c.topology_key == HOSTNAME || !c.node_included(pod, node) {
                    continue;
                }
                if let Some(e) = counts[i].get_mut(&value(node, &c.topology_key)) {
                    *e += count_matching(node, &c.selector, &pod.namespace);
                }
            }
        }
        PreScoreState {
            constraints: cs,
            counts,
            weights,
            ignored,
            require_all,
            skip: false,
        }
    }

    /// Raw score (lower is better); `None` for nodes missing a topology key.
    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> Option<i64> {
        if self.ignored.contains(&node.name) {
            return None;
        }
        let mut score = 0.0;
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                // Only possible without require_all: the constraint does not apply.
                debug_assert!(!self.require_all);
                continue;
            };
            let cnt = if c.topology_key == HOSTNAME {
                count_matching(node, &c.selector, &pod.namespace)
            } else {
                self.counts[i].get(value).copied().unwrap_or(0)
            };
            score += cnt as f64 * self.weights[i] + (c.max_skew - 1) as f64;
        }
        Some(score.round() as i64)
    }
}

/// Upstream normalization: ignored nodes 0, others `100 * (max + min - s) / max`.
pub fn normalize(raw: &[Option<i64>]) -> Vec<i64> {
    let present = raw.iter().flatten().copied();
    let min = present.clone().min().unwrap_or(0);
    let max = present.max().unwrap_or(0);
    raw.iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max == 0 => MAX_NODE_SCORE,
            Some(s) => MAX_NODE_SCORE * (max + min - s) / max,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::{json, Value};

    fn spread(key: &str, skew: i64, action: &str) -> Value {
        json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": action,
            "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    fn web(name: &str) -> PodInfo {
        pod_with(name, json!({"app": "web"}), json!({}))
    }

    fn nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            node("a1", "4", "4Gi", json!({"zone": "a"}), json!({})),
            node("a2", "4", "4Gi", json!({"zone": "a"}), json!({})),
            node("b1", "4", "4Gi", json!({"zone": "b"}), json!({})),
            node("x", "4", "4Gi", json!({}), json!({})),
        ]
    }

    #[test]
    fn filter_table() {
        let cases: Vec<(&str, Vec<(PodInfo, &str)>, Value, Vec<Option<&str>>)> = vec![
            (
                "no constraints",
                vec![],
                json!({}),
                vec![None, None, None, None],
            ),
            (
                "zone skew 1: zone a has one, b none",
                vec![(web("w1"), "a1")],
                spread("zone", 1, "DoNotSchedule"),
                vec![
                    Some(REASON_CONSTRAINTS),
                    Some(REASON_CONSTRAINTS),
                    None,
                    Some(REASON_MISSING_LABEL),
                ],
            ),
            (
                "zone skew 2 allows",
                vec![(web("w1"), "a1")],
                spread("zone", 2, "DoNotSchedule"),
                vec![None, None, None, Some(REASON_MISSING_LABEL)],
            ),
            (
                "hostname skew 1",
                vec![(web("w1"), "a1"), (web("w2"), "a2")],
                spread("kubernetes.io/hostname", 1, "DoNotSchedule"),
                vec![
                    Some(REASON_CONSTRAINTS),
                    Some(REASON_CONSTRAINTS),
                    None,
                    None,
                ],
            ),
            (
                "non-matching pods don't count",
                vec![(pod_with("o", json!({"app": "other"}), json!({})), "a1")],
                spread("zone", 1, "DoNotSchedule"),
                vec![None, None, None, Some(REASON_MISSING_LABEL)],
            ),
            (
                "ScheduleAnyway never filters",
                vec![(web("w1"), "a1")],
                spread("zone", 1, "ScheduleAnyway"),
                vec![None, None, None, None],
            ),
        ];
        for (name, existing, spec, want) in cases {
            let c = cluster(nodes(), existing);
            let p = pod_with("p", json!({"app": "web"}), spec);
            let s = PreFilterState::new(&c, &p);
            let got: Vec<Option<String>> = ["a1", "a2", "b1", "x"]
                .iter()
                .map(|n| {
                    s.filter(&p, c.node(n).unwrap())
                        .map(|st| st.reasons[0].clone())
                })
                .collect();
            let want: Vec<Option<String>> =
                want.into_iter().map(|w| w.map(str::to_string)).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn node_affinity_policy_excludes_domains() {
        // Zone b is excluded by the pod's nodeSelector, so its empty domain does not lower the minimum.
        let c = cluster(nodes(), vec![(web("w1"), "a1")]);
        let mut spec = spread("zone", 1, "DoNotSchedule");
        spec["nodeSelector"] = json!({"zone": "a"});
        let p = pod_with("p", json!({"app": "web"}), spec);
        let s = PreFilterState::new(&c, &p);
        assert!(s.filter(&p, c.node("a2").unwrap()).is_none());
    }

    #[test]
    fn system_default_constraints_spread_a_replica_set() {
        use crate::framework::cluster::ControllerSelector;
        let owned = |name: &str| {
            let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
                "spec": {"containers": [{"name": "c"}]}}))
            .unwrap();
            PodInfo::new(std::sync::Arc::new(p))
        };
        let mut c = cluster(nodes(), vec![(owned("w1"), "a1"), (owned("w2"), "a1")]);
        let p = owned("p");
        // Unknown controller and no service: no default constraints.
        assert!(default_constraints(&c, &p).is_empty());
        c.set_controller(
            "ReplicaSet",
            "default",
            "web-1",
            Some(ControllerSelector::Selector(LabelSelector::from_set([(
                "app", "web",
            )]))),
        );
        let cs = default_constraints(&c, &p);
        assert_eq!(
            cs.iter()
                .map(|c| (c.topology_key.as_str(), c.max_skew))
                .collect::<Vec<_>>(),
            vec![(HOSTNAME, 3), ("topology.kubernetes.io/zone", 5)]
        );
        // Nodes without a zone label are scored (not ignored); the crowded node scores lowest.
        let feasible: Vec<&NodeInfo> = ["a1", "a2", "b1", "x"]
            .iter()
            .map(|n| c.node(n).unwrap())
            .collect();
        let s = PreScoreState::new(&c, &p, &feasible);
        let raw: Vec<Option<i64>> = feasible.iter().map(|n| s.score(&p, n)).collect();
        let norm = normalize(&raw);
        assert!(
            norm[0] < norm[1] && norm[1] == norm[2] && norm[2] == norm[3],
            "{raw:?} {norm:?}"
        );
        // A service selecting the pod also yields defaults.
        c.set_controller("ReplicaSet", "default", "web-1", None);
        c.set_service(
            "default",
            "svc",
            Some([("app".to_string(), "web".to_string())].into()),
        );
        assert_eq!(default_constraints(&c, &p).len(), 2);
    }

    #[test]
    fn score_table() {
        let c = cluster(
            nodes(),
            vec![(web("w1"), "a1"), (web("w2"), "a2"), (web("w3"), "a1")],
        );
        let p = pod_with(
            "p",
            json!({"app": "web"}),
            spread("zone", 1, "ScheduleAnyway"),
        );
        let feasible: Vec<&NodeInfo> = ["a1", "a2", "b1", "x"]
            .iter()
            .map(|n| c.node(n).unwrap())
            .collect();
        let s = PreScoreState::new(&c, &p, &feasible);
        let raw: Vec<Option<i64>> = feasible.iter().map(|n| s.score(&p, n)).collect();
        // two zone domains: weight ln(4); zone a has 3 pods -> round(3*1.386) = 4, zone b 0.
        assert_eq!(raw, vec![Some(4), Some(4), Some(0), None]);
        assert_eq!(normalize(&raw), vec![0, 0, 100, 0]);

        let p = pod_with(
            "p",
            json!({"app": "web"}),
            spread("kubernetes.io/hostname", 1, "ScheduleAnyway"),
        );
        let s = PreScoreState::new(&c, &p, &feasible);
        let raw: Vec<Option<i64>> = feasible.iter().map(|n| s.score(&p, n)).collect();
        // hostname: 4 feasible nodes, weight ln(6) = 1.79; a1 has 2, a2 1.
        assert_eq!(raw, vec![Some(4), Some(2), Some(0), Some(0)]);
        assert_eq!(normalize(&raw), vec![0, 50, 100, 100]);
    }
}
