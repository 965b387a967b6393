//! The filter and score plugins of the default profile, each a pure function of the pod, the
//! node and (for the cross-node plugins) state pre-computed once per scheduling cycle.

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

#[cfg(test)]
pub(crate) mod testutil;

/// Upstream `DefaultNormalizeScore`: scales scores to 0..=100 by the maximum, optionally reversed.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = super::MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = super::MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = super::MAX_NODE_SCORE - *s;
        }
    }
}
