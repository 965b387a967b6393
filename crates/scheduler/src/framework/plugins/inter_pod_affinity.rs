//! InterPodAffinity: required pod affinity/anti-affinity (and existing pods' anti-affinity) as a
//! filter over topology domains, preferred terms (and existing pods' terms) as a score.

use std::collections::HashMap;

use crate::framework::{AffinityTerm, Cluster, NodeInfo, PodInfo, Status, MAX_NODE_SCORE};

pub const NAME: &str = "InterPodAffinity";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// Weight of existing pods' required affinity terms in scoring (upstream `hardPodAffinityWeight`).
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// Counts per topology pair: key -> value -> count.
#[derive(Clone, Debug, Default)]
pub struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    fn add(&mut self, key: &str, value: &str, n: i64) {
        let m = self.0.entry(key.to_string()).or_default();
        match m.get_mut(value) {
            Some(c) => *c += n,
            None => {
                m.insert(value.to_string(), n);
            }
        }
    }

    pub fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.values().all(|m| m.values().all(|c| *c == 0))
    }
}

/// State computed once per pod before filtering (upstream `preFilterState`).
#[derive(Clone, Debug, Default)]
pub struct PreFilterState {
    /// Topology pairs where existing pods' required anti-affinity terms match the incoming pod.
    pub existing_anti_affinity: TopologyCounts,
    /// Topology pairs with pods matching all of the incoming pod's required affinity terms.
    pub affinity: TopologyCounts,
    /// Topology pairs with pods matching the incoming pod's required anti-affinity terms.
    pub anti_affinity: TopologyCounts,
    skip: bool,
}

fn all_terms_match(terms: &[AffinityTerm], pod: &PodInfo, cluster: &Cluster) -> bool {
    !terms.is_empty()
        && terms
            .iter()
            .all(|t| t.matches(pod, cluster.namespace_labels(&pod.namespace)))
}

impl PreFilterState {
    pub fn new(cluster: &Cluster, pod: &PodInfo) -> PreFilterState {
        let mut s = PreFilterState::default();
        let pod_ns_labels = cluster.namespace_labels(&pod.namespace);
        // Existing pods' anti-affinity, one evaluation per distinct term.
        let existing = cluster.anti_affinity_terms();
        for g in existing.groups() {
            if g.term.matches(pod, pod_ns_labels) {
                for (v, c) in &g.counts {
                    s.existing_anti_affinity.add(&g.term.topology_key, v, *c);
                }
            }
        }
        if let Some(first) = pod.required_affinity.first() {
            for (p, node) in cluster.candidates(&first.selector) {
                let ns_labels = cluster.namespace_labels(&p.namespace);
                if pod
                    .required_affinity
                    .iter()
                    .all(|t| t.matches(p, ns_labels))
                {
                    for t in &pod.required_affinity {
                        if let Some(v) = node.labels.get(&t.topology_key) {
                            s.affinity.add(&t.topology_key, v, 1);
                        }
                    }
                }
            }
        }
        for t in &pod.required_anti_affinity {
            for (p, node) in cluster.candidates(&t.selector) {
                if let Some(v) = node.labels.get(&t.topology_key) {
                    if t.matches(p, cluster.namespace_labels(&p.namespace)) {
                        s.anti_affinity.add(&t.topology_key, v, 1);
                    }
                }
            }
        }
        let incoming = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        s.skip = !incoming && existing.is_empty();
        s
    }

    fn satisfies_affinity(&self, pod: &PodInfo, node: &NodeInfo, cluster: &Cluster) -> bool {
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match node.labels.get(&t.topology_key) {
                Some(v) => {
                    if self.affinity.get(&t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
                None => return false,
            }
        }
        if !pods_exist {
            // The first pod of a group with affinity to itself may go anywhere.
            return self.affinity.is_empty()
                && all_terms_match(&pod.required_affinity, pod, cluster);
        }
        true
    }

    fn satisfies_anti_affinity(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        pod.required_anti_affinity.iter().all(|t| {
            node.labels
                .get(&t.topology_key)
                .is_none_or(|v| self.anti_affinity.get(&t.topology_key, v) <= 0)
        })
    }

    fn satisfies_existing(&self, node: &NodeInfo) -> bool {
        for (key, values) in &self.existing_anti_affinity.0 {
            if let Some(v) = node.labels.get(key) {
                if values.get(v).copied().unwrap_or(0) > 0 {
                    return false;
                }
            }
        }
        true
    }

    /// Removes (n = -1) or adds (n = 1) an existing pod on `node` from the counts (used to
    /// evaluate preemption victims).
    pub fn update_with_pod(
        &mut self,
        cluster: &Cluster,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        n: i64,
    ) {
        let ns_labels = cluster.namespace_labels(&existing.namespace);
        for t in &existing.required_anti_affinity {
            if let Some(v) = node.labels.get(&t.topology_key) {
                if t.matches(pod, cluster.namespace_labels(&pod.namespace)) {
                    self.existing_anti_affinity.add(&t.topology_key, v, n);
                }
            }
        }
        if !pod.required_affinity.is_empty()
            && pod
                .required_affinity
                .iter()
                .all(|t| t.matches(existing, ns_labels))
        {
            for t in &pod.required_affinity {
                if let Some(v) = node.labels.get(&t.topology_key) {
                    self.affinity.add(&t.topology_key, v, n);
                }
            }
        }
        for t in &pod.required_anti_affinity {
            if let Some(v) = node.labels.get(&t.topology_key) {
                if t.matches(existing, ns_labels) {
                    self.anti_affinity.add(&t.topology_key, v, n);
                }
            }
        }
        self.skip = false;
    }

    pub fn filter(&self, cluster: &Cluster, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        if self.skip {
            return None;
        }
        if !self.satisfies_affinity(pod, node, cluster) {
            return Some(Status::unresolvable(NAME, REASON_AFFINITY));
        }
        if !self.satisfies_anti_affinity(pod, node) {
            return Some(Status::unschedulable(NAME, REASON_ANTI_AFFINITY));
        }
        if !self.satisfies_existing(node) {
            return Some(Status::unschedulable(NAME, REASON_EXISTING_ANTI_AFFINITY));
        }
        None
    }
}

/// Topology scores for preferred terms (upstream `preScoreState.topologyScore`).
#[derive(Clone, Debug, Default)]
pub struct PreScoreState {
    scores: TopologyCounts,
    pub skip: bool,
}

impl PreScoreState {
    pub fn new(cluster: &Cluster, pod: &PodInfo) -> PreScoreState {
        let has_constraints =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        let groups = cluster.scoring_terms();
        if !has_constraints && groups.is_empty() {
            return PreScoreState {
                skip: true,
                ..Default::default()
            };
        }
        let mut s = TopologyCounts::default();
        let pod_ns_labels = cluster.namespace_labels(&pod.namespace);
        // Existing pods' terms that match the incoming pod, one evaluation per distinct term.
        for g in groups.groups() {
            if g.term.matches(pod, pod_ns_labels) {
                for (v, c) in &g.counts {
                    if !v.is_empty() {
                        s.add(&g.term.topology_key, v, c * g.weight);
                    }
                }
            }
        }
        // The incoming pod's preferred terms against existing pods.
        for (terms, sign) in [
            (&pod.preferred_affinity, 1),
            (&pod.preferred_anti_affinity, -1),
        ] {
            for w in terms {
                for (p, node) in cluster.candidates(&w.term.selector) {
                    if let Some(v) = node.labels.get(&w.term.topology_key) {
                        if !v.is_empty()
                            && w.term.matches(p, cluster.namespace_labels(&p.namespace))
                        {
                            s.add(&w.term.topology_key, v, sign * w.weight);
                        }
                    }
                }
            }
        }
        PreScoreState {
            skip: s.0.is_empty(),
            scores: s,
        }
    }

    pub fn score(&self, node: &NodeInfo) -> i64 {
        let mut score = 0;
        for (key, values) in &self.scores.0 {
            if let Some(v) = node.labels.get(key) {
                score += values.get(v).copied().unwrap_or(0);
            }
        }
        score
    }
}

/// Min-max normalization to 0..=100.
pub fn normalize(scores: &mut [i64]) {
    let (Some(min), Some(max)) = (scores.iter().copied().min(), scores.iter().copied().max())
    else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            MAX_NODE_SCORE * (*s - min) / diff
        } else {
            0
        };
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::{json, Value};

    fn term(sel: Value, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": sel}, "topologyKey": key})
    }

    fn zones() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            node("a1", "4", "4Gi", json!({"zone": "a"}), json!({})),
            node("a2", "4", "4Gi", json!({"zone": "a"}), json!({})),
            node("b1", "4", "4Gi", json!({"zone": "b"}), json!({})),
            node("x", "4", "4Gi", json!({}), json!({})),
        ]
    }

    fn fits(c: &Cluster, p: &PodInfo) -> Vec<Option<&'static str>> {
        let s = PreFilterState::new(c, p);
        ["a1", "a2", "b1", "x"]
            .iter()
            .map(|n| {
                s.filter(c, p, c.node(n).unwrap()).map(|st| {
                    let r: &'static str = match st.reasons[0].as_str() {
                        REASON_AFFINITY => "affinity",
                        REASON_ANTI_AFFINITY => "anti",
                        REASON_EXISTING_ANTI_AFFINITY => "existing",
                        _ => "?",
                    };
                    r
                })
            })
            .collect()
    }

    #[test]
    fn filter_table() {
        let web = || json!({"app": "web"});
        let db_on_a1 = || vec![(pod_with("db", json!({"app": "db"}), json!({})), "a1")];
        let aff = |terms: Value| json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}});
        let anti = |terms: Value| json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}});
        let cases: Vec<(&str, Vec<(PodInfo, &str)>, PodInfo, Vec<Option<&str>>)> = vec![
            ("no terms", db_on_a1(), pod("p", json!({})), vec![None, None, None, None]),
            (
                "affinity to db in zone",
                db_on_a1(),
                pod("p", aff(json!([term(json!({"app": "db"}), "zone")]))),
                vec![None, None, Some("affinity"), Some("affinity")],
            ),
            (
                "affinity by hostname",
                db_on_a1(),
                pod("p", aff(json!([term(json!({"app": "db"}), "kubernetes.io/hostname")]))),
                vec![None, Some("affinity"), Some("affinity"), Some("affinity")],
            ),
            (
                "affinity with no match anywhere, pod matches itself: first of group",
                vec![],
                pod_with("p", web(), aff(json!([term(web(), "zone")]))),
                vec![None, None, None, Some("affinity")],
            ),
            (
                "affinity with no match anywhere, pod does not match itself",
                vec![],
                pod("p", aff(json!([term(web(), "zone")]))),
                vec![Some("affinity"), Some("affinity"), Some("affinity"), Some("affinity")],
            ),
            (
                "anti-affinity to db in zone",
                db_on_a1(),
                pod("p", anti(json!([term(json!({"app": "db"}), "zone")]))),
                vec![Some("anti"), Some("anti"), None, None],
            ),
            (
                "anti-affinity other namespace does not count",
                vec![(
                    PodInfo::new(std::sync::Arc::new(serde_json::from_value(json!({
                        "metadata": {"name": "db", "namespace": "other", "uid": "u-db", "labels": {"app": "db"}},
                        "spec": {"containers": [{"name": "c"}]}})).unwrap())),
                    "a1",
                )],
                pod("p", anti(json!([term(json!({"app": "db"}), "zone")]))),
                vec![None, None, None, None],
            ),
            (
                "existing pod's anti-affinity",
                vec![(pod_with("e", json!({"app": "e"}), anti(json!([term(web(), "kubernetes.io/hostname")]))), "a2")],
                pod_with("p", web(), json!({})),
                vec![None, Some("existing"), None, None],
            ),
        ];
        for (name, existing, p, want) in cases {
            let c = cluster(zones(), existing);
            assert_eq!(fits(&c, &p), want, "{name}");
        }
    }

    #[test]
    fn score_table() {
        let pref = |kind: &str, w: i64, sel: Value, key: &str| json!({"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": w, "podAffinityTerm": term(sel, key)}]}}});
        let cases: Vec<(&str, Vec<(PodInfo, &str)>, PodInfo, Vec<i64>)> = vec![
            (
                "preferred affinity to zone a",
                vec![(pod_with("db", json!({"app": "db"}), json!({})), "a1")],
                pod("p", pref("podAffinity", 5, json!({"app": "db"}), "zone")),
                vec![100, 100, 0, 0],
            ),
            (
                "preferred anti-affinity to zone a",
                vec![(pod_with("db", json!({"app": "db"}), json!({})), "a1")],
                pod(
                    "p",
                    pref("podAntiAffinity", 5, json!({"app": "db"}), "zone"),
                ),
                vec![0, 0, 100, 100],
            ),
            (
                "existing pod's preferred affinity attracts",
                vec![(
                    pod_with(
                        "e",
                        json!({}),
                        pref(
                            "podAffinity",
                            3,
                            json!({"app": "web"}),
                            "kubernetes.io/hostname",
                        ),
                    ),
                    "b1",
                )],
                pod_with("p", json!({"app": "web"}), json!({})),
                vec![0, 0, 100, 0],
            ),
            (
                "existing pod's required affinity counts with hard weight",
                vec![(
                    pod_with(
                        "e",
                        json!({}),
                        json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "web"}), "zone")]}}}),
                    ),
                    "b1",
                )],
                pod_with("p", json!({"app": "web"}), json!({})),
                vec![0, 0, 100, 0],
            ),
            ("nothing", vec![], pod("p", json!({})), vec![0, 0, 0, 0]),
        ];
        for (name, existing, p, want) in cases {
            let c = cluster(zones(), existing);
            let s = PreScoreState::new(&c, &p);
            let mut scores: Vec<i64> = ["a1", "a2", "b1", "x"]
                .iter()
                .map(|n| s.score(c.node(n).unwrap()))
                .collect();
            normalize(&mut scores);
            assert_eq!(scores, want, "{name}");
        }
    }
}
