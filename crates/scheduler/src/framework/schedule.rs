//! The scheduling algorithm of the default profile: pre-compute per-pod state, filter nodes
//! (stopping at upstream's adaptive number of feasible nodes), score and normalize with the
//! default plugin weights, pick the best node (ties broken at random), and diagnose failures in
//! upstream's message format, including the preemption dry run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use super::plugins::{
    image_locality, inter_pod_affinity, node_affinity, node_name, node_ports, node_resources,
    node_unschedulable, pod_topology_spread, taint_toleration,
};
use super::{Cluster, Code, NodeInfo, PodInfo, Status};

/// Plugin weights of the default profile.
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
pub const WEIGHT_POD_TOPOLOGY_SPREAD: i64 = 2;
pub const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
pub const WEIGHT_NODE_RESOURCES_FIT: i64 = 1;
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
pub const WEIGHT_IMAGE_LOCALITY: i64 = 1;

const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;
const DEFAULT_PERCENTAGE_OF_NODES_TO_SCORE: i64 = 50;

/// A successful scheduling decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// Why a pod fits no node (upstream `FitError`).
#[derive(Clone, Debug, Default)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Filter verdict per rejected node.
    pub statuses: Vec<(String, Status)>,
    /// Message of the PostFilter (preemption) step, when it ran.
    pub post_filter_msg: Option<String>,
}

impl FitError {
    /// Plugins that rejected at least one node.
    pub fn unschedulable_plugins(&self) -> BTreeSet<&'static str> {
        self.statuses.iter().map(|(_, s)| s.plugin).collect()
    }

    fn histogram(&self) -> String {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, s) in &self.statuses {
            for r in &s.reasons {
                *reasons.entry(r).or_default() += 1;
            }
        }
        let mut v: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        v.sort();
        v.join(", ")
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let h = self.histogram();
        if !h.is_empty() {
            write!(f, " {h}.")?;
        }
        if let Some(m) = &self.post_filter_msg {
            write!(f, " {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

/// Outcome of the preemption step for an unschedulable pod.
#[derive(Clone, Debug)]
pub enum PreemptionResult {
    /// Evicting `victims` from `node` makes room for the pod.
    Candidate {
        node: String,
        victims: Vec<Arc<PodInfo>>,
    },
    /// Preemption cannot help; the FitError carries the message.
    NotHelpful,
}

/// Per-pod state shared by the filters of one scheduling cycle.
#[derive(Clone)]
struct CycleState {
    inter_pod: inter_pod_affinity::PreFilterState,
    spread: pod_topology_spread::PreFilterState,
}

/// The scheduling framework with the default plugins.
#[derive(Debug)]
pub struct Framework {
    /// Percentage of nodes to score; 0 is upstream's adaptive default.
    pub percentage_of_nodes_to_score: i64,
    next_start_node_index: usize,
    rng: u64,
}

impl Default for Framework {
    fn default() -> Self {
        Framework::new(0x9e37_79b9_7f4a_7c15)
    }
}

impl Framework {
    /// A framework whose tie-breaking is seeded by `seed`.
    pub fn new(seed: u64) -> Framework {
        Framework {
            percentage_of_nodes_to_score: 0,
            next_start_node_index: 0,
            rng: seed | 1,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Upstream `numFeasibleNodesToFind`.
    pub fn num_feasible_nodes_to_find(&self, num_all: usize) -> usize {
        if num_all < MIN_FEASIBLE_NODES_TO_FIND {
            return num_all;
        }
        let mut pct = self.percentage_of_nodes_to_score;
        if pct <= 0 {
            pct = (DEFAULT_PERCENTAGE_OF_NODES_TO_SCORE - num_all as i64 / 125)
                .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
        }
        let n = num_all * pct.min(100) as usize / 100;
        n.max(MIN_FEASIBLE_NODES_TO_FIND)
    }

    fn run_filters(
        cluster: &Cluster,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Option<Status> {
        node_unschedulable::filter(pod, node)
            .or_else(|| node_name::filter(pod, node))
            .or_else(|| taint_toleration::filter(pod, node))
            .or_else(|| node_affinity::filter(pod, node))
            .or_else(|| node_ports::filter(pod, node))
            .or_else(|| node_resources::filter(pod, node))
            .or_else(|| state.spread.filter(pod, node))
            .or_else(|| state.inter_pod.filter(cluster, pod, node))
    }

    /// Upstream `RunFilterPluginsWithNominatedPods`: pods nominated to the node with at least the
    /// pod's priority are accounted as if running there; the pod must fit both with and without
    /// them.
    fn filter_with_nominated(
        cluster: &Cluster,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Option<Status> {
        let nominated: Vec<&Arc<PodInfo>> = cluster
            .nominated_on(&node.name)
            .iter()
            .filter(|p| p.uid != pod.uid && p.priority >= pod.priority)
            .collect();
        if !nominated.is_empty() {
            let mut sim = node.clone();
            let mut st = state.clone();
            for p in nominated {
                sim.add_pod(p.clone());
                st.inter_pod.update_with_pod(cluster, pod, p, node, 1);
                st.spread.update_with_pod(pod, p, node, 1);
            }
            if let Some(s) = Self::run_filters(cluster, &st, pod, &sim) {
                return Some(s);
            }
        }
        Self::run_filters(cluster, state, pod, node)
    }

    /// Runs the filters on one node (for diagnostics and tests).
    pub fn filter_node(&self, cluster: &Cluster, pod: &PodInfo, node: &str) -> Option<Status> {
        let state = CycleState {
            inter_pod: inter_pod_affinity::PreFilterState::new(cluster, pod),
            spread: pod_topology_spread::PreFilterState::new(cluster, pod),
        };
        Self::run_filters(cluster, &state, pod, cluster.node(node)?)
    }

    /// Chooses a node for the pod.
    pub fn schedule(
        &mut self,
        cluster: &Cluster,
        pod: &PodInfo,
    ) -> Result<ScheduleResult, FitError> {
        let nodes = cluster.nodes();
        let n = nodes.len();
        if n == 0 {
            return Err(FitError::default());
        }
        let state = CycleState {
            inter_pod: inter_pod_affinity::PreFilterState::new(cluster, pod),
            spread: pod_topology_spread::PreFilterState::new(cluster, pod),
        };
        let want = self.num_feasible_nodes_to_find(n);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(n));
        let mut statuses = Vec::new();
        let start = self.next_start_node_index % n;
        let mut processed = 0;
        for i in 0..n {
            let node = &nodes[(start + i) % n];
            processed += 1;
            match Self::filter_with_nominated(cluster, &state, pod, node) {
                None => {
                    feasible.push(node);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Some(s) => statuses.push((node.name.clone(), s)),
            }
        }
        self.next_start_node_index = (start + processed) % n;
        if feasible.is_empty() {
            return Err(FitError {
                num_all_nodes: n,
                statuses,
                post_filter_msg: None,
            });
        }
        let evaluated = processed;
        let feasible_count = feasible.len();
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                node: feasible[0].name.clone(),
                evaluated_nodes: evaluated,
                feasible_nodes: 1,
            });
        }
        let totals = self.score(cluster, pod, &feasible);
        // Highest score wins; ties are broken uniformly at random (reservoir sampling).
        let mut best = 0;
        let mut ties = 0u64;
        for (i, s) in totals.iter().enumerate() {
            if *s > totals[best] {
                best = i;
                ties = 1;
            } else if *s == totals[best] {
                ties += 1;
                if self.next_rand().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        Ok(ScheduleResult {
            node: feasible[best].name.clone(),
            evaluated_nodes: evaluated,
            feasible_nodes: feasible_count,
        })
    }

    /// Weighted, normalized scores of the feasible nodes (in order).
    pub fn score(&self, cluster: &Cluster, pod: &PodInfo, feasible: &[&NodeInfo]) -> Vec<i64> {
        let mut totals = vec![0i64; feasible.len()];
        let mut add = |scores: &[i64], weight: i64| {
            for (t, s) in totals.iter_mut().zip(scores) {
                *t += s * weight;
            }
        };
        let raw =
            |f: &dyn Fn(&NodeInfo) -> i64| -> Vec<i64> { feasible.iter().map(|n| f(n)).collect() };

        let mut s = raw(&|n| taint_toleration::score(pod, n));
        taint_toleration::normalize(&mut s);
        add(&s, WEIGHT_TAINT_TOLERATION);

        if node_affinity::has_preferred(pod) {
            let mut s = raw(&|n| node_affinity::score(pod, n));
            node_affinity::normalize(&mut s);
            add(&s, WEIGHT_NODE_AFFINITY);
        }

        add(
            &raw(&|n| node_resources::least_allocated_score(pod, n)),
            WEIGHT_NODE_RESOURCES_FIT,
        );
        if !node_resources::balanced_skips(pod) {
            add(
                &raw(&|n| node_resources::balanced_allocation_score(pod, n)),
                WEIGHT_BALANCED_ALLOCATION,
            );
        }

        let images = image_locality::pod_images(pod);
        add(
            &raw(&|n| image_locality::score(cluster, &images, n)),
            WEIGHT_IMAGE_LOCALITY,
        );

        let ipa = inter_pod_affinity::PreScoreState::new(cluster, pod);
        if !ipa.skip {
            let mut s = raw(&|n| ipa.score(n));
            inter_pod_affinity::normalize(&mut s);
            add(&s, WEIGHT_INTER_POD_AFFINITY);
        }

        let spread = pod_topology_spread::PreScoreState::new(cluster, pod, feasible);
        if !spread.skip {
            let r: Vec<Option<i64>> = feasible.iter().map(|n| spread.score(pod, n)).collect();
            add(
                &pod_topology_spread::normalize(&r),
                WEIGHT_POD_TOPOLOGY_SPREAD,
            );
        }
        totals
    }

    /// The preemption step (upstream DefaultPreemption PostFilter): finds the node where
    /// evicting the fewest, least important lower-priority pods lets the pod fit, and sets
    /// the FitError's post-filter message when preemption cannot help.
    pub fn preempt(
        &self,
        cluster: &Cluster,
        pod: &PodInfo,
        err: &mut FitError,
    ) -> PreemptionResult {
        let policy = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.preemption_policy.as_deref());
        if policy == Some("Never") {
            err.post_filter_msg =
                Some("preemption: not eligible due to preemptionPolicy=Never.".into());
            return PreemptionResult::NotHelpful;
        }
        // A pod already nominated to a node where lower-priority victims are terminating waits.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref());
        if let Some(node) = nominated.and_then(|n| cluster.node(n)) {
            if node
                .pods
                .iter()
                .any(|p| p.terminating && p.priority < pod.priority)
            {
                err.post_filter_msg = Some(
                    "preemption: not eligible due to a terminating pod on the nominated node."
                        .into(),
                );
                return PreemptionResult::NotHelpful;
            }
        }
        let base = CycleState {
            inter_pod: inter_pod_affinity::PreFilterState::new(cluster, pod),
            spread: pod_topology_spread::PreFilterState::new(cluster, pod),
        };
        let mut outcome: Vec<(String, Status)> = Vec::new();
        let mut candidates: Vec<(String, Vec<Arc<PodInfo>>)> = Vec::new();
        for (name, status) in &err.statuses {
            let Some(node) = cluster.node(name) else {
                continue;
            };
            if status.code == Code::UnschedulableAndUnresolvable {
                outcome.push((
                    name.clone(),
                    Status::unresolvable(
                        "DefaultPreemption",
                        "Preemption is not helpful for scheduling",
                    ),
                ));
                continue;
            }
            match Self::select_victims(cluster, &base, pod, node) {
                Ok(victims) => candidates.push((name.clone(), victims)),
                Err(s) => outcome.push((name.clone(), s)),
            }
        }
        if let Some((node, victims)) = candidates.into_iter().min_by_key(|(_, v)| {
            let max_prio = v.iter().map(|p| p.priority).max().unwrap_or(i32::MIN);
            let sum: i64 = v.iter().map(|p| p.priority as i64).sum();
            (max_prio, sum, v.len())
        }) {
            return PreemptionResult::Candidate { node, victims };
        }
        let inner = FitError {
            num_all_nodes: err.num_all_nodes,
            statuses: outcome,
            post_filter_msg: None,
        };
        err.post_filter_msg = Some(format!("preemption: {inner}"));
        PreemptionResult::NotHelpful
    }

    /// Upstream `SelectVictimsOnNode`: remove all lower-priority pods; if the pod then fits, add
    /// back (reprieve) the most important ones that keep it fitting.
    fn select_victims(
        cluster: &Cluster,
        base: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Result<Vec<Arc<PodInfo>>, Status> {
        let mut potential: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority && !p.terminating)
            .cloned()
            .collect();
        if potential.is_empty() {
            return Err(Status::unresolvable(
                "DefaultPreemption",
                "No preemption victims found for incoming pod",
            ));
        }
        let mut sim = node.clone();
        let mut state = base.clone();
        for v in &potential {
            sim.remove_pod(&v.uid);
            state.inter_pod.update_with_pod(cluster, pod, v, node, -1);
            state.spread.update_with_pod(pod, v, node, -1);
        }
        if let Some(s) = Self::run_filters(cluster, &state, pod, &sim) {
            return Err(s);
        }
        // Most important first: higher priority, then older.
        potential.sort_by(|a, b| {
            b.priority.cmp(&a.priority).then_with(|| {
                let t = |p: &PodInfo| {
                    p.pod
                        .status
                        .as_ref()
                        .and_then(|s| s.start_time.clone())
                        .map(|t| t.0)
                };
                t(a).cmp(&t(b))
            })
        });
        let mut victims = Vec::new();
        for v in potential {
            sim.add_pod(v.clone());
            state.inter_pod.update_with_pod(cluster, pod, &v, node, 1);
            state.spread.update_with_pod(pod, &v, node, 1);
            if Self::run_filters(cluster, &state, pod, &sim).is_some() {
                sim.remove_pod(&v.uid);
                state.inter_pod.update_with_pod(cluster, pod, &v, node, -1);
                state.spread.update_with_pod(pod, &v, node, -1);
                victims.push(v);
            }
        }
        Ok(victims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    #[test]
    fn fit_error_message_format() {
        let c = cluster(
            vec![
                node("small", "1", "1Gi", json!({}), json!({})),
                node(
                    "t1",
                    "8",
                    "8Gi",
                    json!({}),
                    json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
                ),
                node(
                    "t2",
                    "8",
                    "8Gi",
                    json!({}),
                    json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
                ),
            ],
            vec![],
        );
        let p = pod("p", requests("2", "1Mi"));
        let mut fw = Framework::new(1);
        let mut err = fw.schedule(&c, &p).unwrap_err();
        assert!(matches!(
            fw.preempt(&c, &p, &mut err),
            PreemptionResult::NotHelpful
        ));
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling."
        );
        assert_eq!(
            err.unschedulable_plugins().into_iter().collect::<Vec<_>>(),
            vec!["NodeResourcesFit", "TaintToleration"]
        );
    }

    #[test]
    fn nominated_pods_reserve_room_for_equal_or_higher_priority() {
        let with_prio = |name: &str, cpu: &str, prio: i32| {
            let mut s = requests(cpu, "1Mi");
            s["priority"] = json!(prio);
            Arc::new(pod(name, s))
        };
        let mut c = cluster(vec![node("n1", "2", "4Gi", json!({}), json!({}))], vec![]);
        c.set_nominated(&with_prio("nominee", "2", 10), Some("n1"));
        let mut fw = Framework::new(1);
        for (name, prio, fits) in [
            ("lower", 5, false),
            ("equal", 10, false),
            ("higher", 20, true),
        ] {
            let got = fw.schedule(&c, &with_prio(name, "1", prio));
            assert_eq!(got.is_ok(), fits, "{name}");
            if let Err(e) = got {
                assert_eq!(
                    e.to_string(),
                    "0/1 nodes are available: 1 Insufficient cpu."
                );
            }
        }
        // The nominee itself is not counted against itself, and clearing the nomination frees the room.
        assert!(fw.schedule(&c, &with_prio("nominee", "2", 10)).is_ok());
        c.set_nominated(&with_prio("nominee", "2", 10), None);
        assert!(fw.schedule(&c, &with_prio("lower", "1", 5)).is_ok());
    }

    #[test]
    fn no_nodes() {
        let c = cluster(vec![], vec![]);
        let err = Framework::new(1)
            .schedule(&c, &pod("p", json!({})))
            .unwrap_err();
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn picks_least_allocated_node() {
        let c = cluster(
            vec![
                node("busy", "4", "4Gi", json!({}), json!({})),
                node("idle", "4", "4Gi", json!({}), json!({})),
            ],
            vec![(pod("e", requests("3", "3Gi")), "busy")],
        );
        for seed in 1..20 {
            let r = Framework::new(seed)
                .schedule(&c, &pod("p", requests("500m", "512Mi")))
                .unwrap();
            assert_eq!(r.node, "idle");
        }
    }

    #[test]
    fn ties_are_broken_randomly() {
        let c = cluster(
            (0..4)
                .map(|i| node(&format!("n{i}"), "4", "4Gi", json!({}), json!({})))
                .collect(),
            vec![],
        );
        let mut fw = Framework::new(7);
        let chosen: BTreeSet<String> = (0..64)
            .map(|_| fw.schedule(&c, &pod("p", json!({}))).unwrap().node)
            .collect();
        assert!(chosen.len() > 1, "always the same node: {chosen:?}");
    }

    #[test]
    fn feasible_node_budget() {
        let fw = Framework::new(1);
        for (all, want) in [
            (50, 50),
            (100, 100),
            (1000, 420),
            (5000, 500),
            (6000, 300),
            (1000000, 50000),
        ] {
            assert_eq!(fw.num_feasible_nodes_to_find(all), want, "{all}");
        }
    }

    #[test]
    fn large_cluster_evaluates_budget_only() {
        let c = cluster(
            (0..1000)
                .map(|i| node(&format!("n{i}"), "4", "4Gi", json!({}), json!({})))
                .collect(),
            vec![],
        );
        let mut fw = Framework::new(1);
        let r = fw.schedule(&c, &pod("p", json!({}))).unwrap();
        assert_eq!((r.evaluated_nodes, r.feasible_nodes), (420, 420));
        // The next cycle starts where this one stopped.
        assert_eq!(fw.next_start_node_index, 420);
    }

    #[test]
    fn preemption_picks_lowest_priority_victims() {
        let low = |name: &str, prio: i32| {
            let mut s = requests("2", "1Gi");
            s["priority"] = json!(prio);
            pod(name, s)
        };
        let c = cluster(
            vec![
                node("a", "4", "4Gi", json!({}), json!({})),
                node("b", "4", "4Gi", json!({}), json!({})),
            ],
            vec![
                (low("a-low", 1), "a"),
                (low("a-mid", 5), "a"),
                (low("b-mid", 5), "b"),
                (low("b-mid2", 5), "b"),
            ],
        );
        let mut high = requests("2", "1Gi");
        high["priority"] = json!(10);
        let p = pod("p", high);
        let mut fw = Framework::new(1);
        let mut err = fw.schedule(&c, &p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 2 Insufficient cpu."
        );
        match fw.preempt(&c, &p, &mut err) {
            PreemptionResult::Candidate { node, victims } => {
                assert_eq!(node, "a");
                assert_eq!(
                    victims.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
                    vec!["a-low"]
                );
            }
            other => panic!("expected a candidate, got {other:?}"),
        }
        // preemptionPolicy Never
        let mut never = requests("2", "1Gi");
        never["priority"] = json!(10);
        never["preemptionPolicy"] = json!("Never");
        let p = pod("p", never);
        let mut err = fw.schedule(&c, &p).unwrap_err();
        assert!(matches!(
            fw.preempt(&c, &p, &mut err),
            PreemptionResult::NotHelpful
        ));
        assert!(err
            .to_string()
            .ends_with("preemption: not eligible due to preemptionPolicy=Never."));
    }
}
