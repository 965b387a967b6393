//! The sans-IO scheduling core: the cluster snapshot (nodes and the pods assigned to them), the
//! filter and score plugins, and the scheduling algorithm (filter, score, select, diagnose).

pub mod cluster;
pub mod plugins;
pub mod resource;
pub mod schedule;

pub use cluster::{AffinityTerm, Cluster, HostPort, NodeInfo, PodInfo, WeightedAffinityTerm};
pub use schedule::{FitError, Framework, PreemptionResult, ScheduleResult};

/// How a filter rejected a node (upstream `framework.Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The node does not fit now but could after preemption.
    Unschedulable,
    /// Preemption would not help on this node.
    UnschedulableAndUnresolvable,
}

/// The verdict of a filter plugin on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub plugin: &'static str,
    pub reasons: Vec<String>,
}

impl Status {
    pub fn unschedulable(plugin: &'static str, reason: impl Into<String>) -> Status {
        Status {
            code: Code::Unschedulable,
            plugin,
            reasons: vec![reason.into()],
        }
    }

    pub fn unresolvable(plugin: &'static str, reason: impl Into<String>) -> Status {
        Status {
            code: Code::UnschedulableAndUnresolvable,
            plugin,
            reasons: vec![reason.into()],
        }
    }
}

/// The highest score a score plugin gives a node after normalization.
pub const MAX_NODE_SCORE: i64 = 100;
