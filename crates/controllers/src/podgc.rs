//! The pod garbage collector (upstream's pod-garbage-collector): every check period it
//! force-deletes terminated pods beyond the threshold (oldest first), pods bound to nodes that
//! no longer exist (after a quarantine and a live check), terminating pods on NotReady nodes
//! tainted out-of-service, and terminating pods that were never scheduled. Non-terminal pods
//! are marked Failed (with a DisruptionTarget condition where upstream sets one) first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use crate::informer::Informer;
use crate::nodelifecycle::TAINT_OUT_OF_SERVICE;

/// Configuration (upstream flags and constants).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--terminated-pod-gc-threshold` (12500; 0 disables that part).
    pub terminated_threshold: usize,
    /// How often the collector runs (upstream gcCheckPeriod, 20 s).
    pub check_period: Duration,
    /// How long a node must be missing before its pods are deleted (upstream 40 s).
    pub quarantine: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            terminated_threshold: 12500,
            check_period: Duration::from_secs(20),
            quarantine: Duration::from_secs(40),
        }
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_terminated(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

fn node_name(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Why a pod is collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Terminated pods beyond the threshold.
    Terminated,
    /// Terminating on a NotReady, out-of-service node.
    OutOfService,
    /// Bound to a node that no longer exists.
    Orphaned,
    /// Terminating and never scheduled.
    UnscheduledTerminating,
}

impl Reason {
    /// The DisruptionTarget condition message upstream sets, if any.
    pub fn condition_message(self) -> Option<&'static str> {
        match self {
            Reason::OutOfService => Some("PodGC: node is out-of-service"),
            Reason::Orphaned => Some("PodGC: node no longer exists"),
            _ => None,
        }
    }
}

/// Facts about a node the collector needs.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub ready: bool,
    pub out_of_service: bool,
}

pub fn node_facts(n: &Node) -> NodeFacts {
    NodeFacts {
        ready: n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True"),
        out_of_service: n
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| ts.iter().any(|t| t.key == TAINT_OUT_OF_SERVICE)),
    }
}

/// What one pass decides: pods (as indexes into `pods`) to collect, and the node names pods
/// are bound to that do not exist (candidates for the orphan quarantine).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub collect: Vec<(usize, Reason)>,
    pub missing_nodes: Vec<String>,
}

/// Decide a pass (pure): `nodes` are the existing nodes by name.
pub fn plan(pods: &[Arc<Pod>], nodes: &HashMap<String, NodeFacts>, threshold: usize) -> Plan {
    let mut out = Plan::default();
    let mut taken: HashSet<usize> = HashSet::new();
    if threshold > 0 {
        let mut terminated: Vec<usize> = (0..pods.len())
            .filter(|i| is_terminated(&pods[*i]))
            .collect();
        if terminated.len() > threshold {
            // evicted pods go first, then the oldest
            terminated.sort_by_key(|i| {
                let p = &pods[*i];
                let evicted =
                    p.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted");
                let created = p
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
                    .unwrap_or(0);
                (!evicted, created, p.name_any())
            });
            let n = terminated.len() - threshold;
            for i in terminated.into_iter().take(n) {
                taken.insert(i);
                out.collect.push((i, Reason::Terminated));
            }
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        if taken.contains(&i) {
            continue;
        }
        let node = node_name(p);
        let terminating = p.metadata.deletion_timestamp.is_some();
        if node.is_empty() {
            if terminating {
                out.collect.push((i, Reason::UnscheduledTerminating));
            }
            continue;
        }
        match nodes.get(node) {
            None => {
                if !missing.iter().any(|m| m == node) {
                    missing.push(node.to_string());
                }
            }
            Some(f) if terminating && !f.ready && f.out_of_service => {
                out.collect.push((i, Reason::OutOfService));
            }
            Some(_) => {}
        }
    }
    out.missing_nodes = missing;
    out
}

pub struct PodGc {
    client: Client,
    config: Config,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    /// Nodes seen missing, since when.
    missing_since: Mutex<HashMap<String, Instant>>,
}

impl PodGc {
    pub fn new(
        client: Client,
        config: Config,
        pods: Arc<Informer<Pod>>,
        nodes: Arc<Informer<Node>>,
    ) -> Arc<Self> {
        Arc::new(PodGc {
            client,
            config,
            pods,
            nodes,
            missing_since: Default::default(),
        })
    }

    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.check_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.pass().await;
        }
    }

    /// One collection pass.
    pub async fn pass(&self) {
        let pods = self.pods.store.state();
        let nodes: HashMap<String, NodeFacts> = self
            .nodes
            .store
            .state()
            .iter()
            .map(|n| (n.name_any(), node_facts(n)))
            .collect();
        let p = plan(&pods, &nodes, self.config.terminated_threshold);
        for (i, reason) in &p.collect {
            self.collect(&pods[*i], *reason).await;
        }
        // orphans: the node must stay missing through the quarantine and a live check
        let now = Instant::now();
        let gone: Vec<String> = {
            let mut m = self.missing_since.lock().unwrap();
            m.retain(|n, _| p.missing_nodes.contains(n));
            for n in &p.missing_nodes {
                m.entry(n.clone()).or_insert(now);
            }
            m.iter()
                .filter(|(_, since)| now.duration_since(**since) >= self.config.quarantine)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let api: Api<Node> = Api::all(self.client.clone());
        for node in gone {
            match api.get_opt(&node).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    self.missing_since.lock().unwrap().remove(&node);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(%node, error = %e, "checking a missing node failed");
                    continue;
                }
            }
            for pod in pods.iter().filter(|p| node_name(p) == node) {
                tracing::info!(pod = %crate::informer::key_of(&**pod), %node, "deleting pod of a node that no longer exists");
                self.collect(pod, Reason::Orphaned).await;
            }
        }
    }

    /// Mark a pod Failed (with a DisruptionTarget condition where upstream sets one) unless
    /// it is terminal, then force-delete it.
    async fn collect(&self, pod: &Pod, reason: Reason) {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if !is_terminated(pod) {
            let mut p = pod.clone();
            let status = p.status.get_or_insert_with(Default::default);
            status.phase = Some("Failed".into());
            if let Some(msg) = reason.condition_message() {
                let conds = status.conditions.get_or_insert_with(Vec::new);
                conds.retain(|c| c.type_ != "DisruptionTarget");
                conds.push(PodCondition {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                    reason: Some("DeletionByPodGC".into()),
                    message: Some(msg.into()),
                    last_transition_time: Some(Time(Timestamp::now())),
                    ..Default::default()
                });
            }
            if let Err(e) = api.replace_status(&name, &PostParams::default(), &p).await {
                tracing::debug!(pod = %name, error = %e, "marking pod failed");
            }
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod.uid().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{name}"), ?reason, "pod garbage collected")
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "pod gc delete failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, node: &str, phase: &str, created: i64, deleting: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                deletion_timestamp: deleting
                    .then(|| Time(Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
    }

    fn names(pods: &[Arc<Pod>], p: &Plan) -> Vec<(String, Reason)> {
        p.collect
            .iter()
            .map(|(i, r)| (pods[*i].name_any(), *r))
            .collect()
    }

    #[test]
    fn terminated_pods_beyond_threshold_go_oldest_first() {
        let pods = vec![
            pod("new-done", "n1", "Succeeded", 300, false),
            pod("old-done", "n1", "Succeeded", 100, false),
            pod("mid-failed", "n1", "Failed", 200, false),
            pod("running", "n1", "Running", 50, false),
        ];
        let nodes: HashMap<String, NodeFacts> = [(
            "n1".to_string(),
            NodeFacts {
                ready: true,
                out_of_service: false,
            },
        )]
        .into();
        let p = plan(&pods, &nodes, 1);
        assert_eq!(
            names(&pods, &p),
            vec![
                ("old-done".to_string(), Reason::Terminated),
                ("mid-failed".to_string(), Reason::Terminated)
            ]
        );
        assert!(plan(&pods, &nodes, 3).collect.is_empty());
        // 0 disables the threshold
        assert!(plan(&pods, &nodes, 0).collect.is_empty());
    }

    #[test]
    fn orphans_out_of_service_and_unscheduled() {
        let pods = vec![
            pod("on-gone", "gone", "Running", 1, false),
            pod("on-gone-2", "gone", "Pending", 1, false),
            pod("oos-terminating", "oos", "Running", 1, true),
            pod("oos-running", "oos", "Running", 1, false),
            pod("notready-terminating", "nr", "Running", 1, true),
            pod("unscheduled-terminating", "", "Pending", 1, true),
            pod("unscheduled", "", "Pending", 1, false),
        ];
        let nodes: HashMap<String, NodeFacts> = [
            (
                "oos".to_string(),
                NodeFacts {
                    ready: false,
                    out_of_service: true,
                },
            ),
            (
                "nr".to_string(),
                NodeFacts {
                    ready: false,
                    out_of_service: false,
                },
            ),
        ]
        .into();
        let p = plan(&pods, &nodes, 12500);
        assert_eq!(
            names(&pods, &p),
            vec![
                ("oos-terminating".to_string(), Reason::OutOfService),
                (
                    "unscheduled-terminating".to_string(),
                    Reason::UnscheduledTerminating
                ),
            ]
        );
        assert_eq!(p.missing_nodes, vec!["gone"]);
        assert_eq!(
            Reason::Orphaned.condition_message(),
            Some("PodGC: node no longer exists")
        );
    }
}
