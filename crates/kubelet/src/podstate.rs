//! The runtime's view of one pod (its sandboxes and containers as CRI reports them), built from
//! CRI messages and their labels/annotations; the input of status computation and planning.

use std::collections::HashMap;

use cri::v1 as pb;

use crate::labels;

/// State of a container as CRI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl CState {
    pub fn from_pb(s: i32) -> CState {
        match pb::ContainerState::try_from(s) {
            Ok(pb::ContainerState::ContainerCreated) => CState::Created,
            Ok(pb::ContainerState::ContainerRunning) => CState::Running,
            Ok(pb::ContainerState::ContainerExited) => CState::Exited,
            _ => CState::Unknown,
        }
    }
}

/// One container instance of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeContainer {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    pub restart_count: i32,
    pub hash: String,
    pub state: CState,
    /// CRI timestamps, nanoseconds since the epoch (0 when unset).
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    pub annotations: HashMap<String, String>,
    pub log_path: String,
}

impl RuntimeContainer {
    /// From a ContainerStatus (the complete view) and the sandbox it belongs to.
    pub fn from_status(s: &pb::ContainerStatus, sandbox_id: &str) -> RuntimeContainer {
        let meta = s.metadata.clone().unwrap_or_default();
        let name = s
            .labels
            .get(labels::CONTAINER_NAME)
            .cloned()
            .unwrap_or(meta.name);
        RuntimeContainer {
            id: s.id.clone(),
            sandbox_id: sandbox_id.to_string(),
            name,
            attempt: meta.attempt,
            restart_count: labels::restart_count(&s.annotations),
            hash: s
                .annotations
                .get(labels::CONTAINER_HASH)
                .cloned()
                .unwrap_or_default(),
            state: CState::from_pb(s.state),
            created_at: s.created_at,
            started_at: s.started_at,
            finished_at: s.finished_at,
            exit_code: s.exit_code,
            reason: s.reason.clone(),
            message: s.message.clone(),
            image: s
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            image_ref: s.image_ref.clone(),
            annotations: s.annotations.clone(),
            log_path: s.log_path.clone(),
        }
    }
}

/// One sandbox of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSandbox {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
    pub ips: Vec<String>,
    pub host_network: bool,
}

impl RuntimeSandbox {
    pub fn from_status(s: &pb::PodSandboxStatus) -> RuntimeSandbox {
        let mut ips = Vec::new();
        if let Some(n) = &s.network {
            if !n.ip.is_empty() {
                ips.push(n.ip.clone());
            }
            ips.extend(n.additional_ips.iter().map(|i| i.ip.clone()));
        }
        let host_network = s
            .linux
            .as_ref()
            .and_then(|l| l.namespaces.as_ref())
            .and_then(|n| n.options.as_ref())
            .is_some_and(|o| o.network == pb::NamespaceMode::Node as i32);
        RuntimeSandbox {
            id: s.id.clone(),
            attempt: s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            ready: s.state == pb::PodSandboxState::SandboxReady as i32,
            created_at: s.created_at,
            ips,
            host_network,
        }
    }
}

/// Everything the runtime has for one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRuntime {
    /// Newest first.
    pub sandboxes: Vec<RuntimeSandbox>,
    /// Newest first.
    pub containers: Vec<RuntimeContainer>,
}

impl PodRuntime {
    pub fn new(mut sandboxes: Vec<RuntimeSandbox>, mut containers: Vec<RuntimeContainer>) -> Self {
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        containers.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.attempt.cmp(&a.attempt))
        });
        PodRuntime {
            sandboxes,
            containers,
        }
    }

    pub fn latest_sandbox(&self) -> Option<&RuntimeSandbox> {
        self.sandboxes.first()
    }

    /// Instances of a container across sandboxes, newest first.
    pub fn instances<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a RuntimeContainer> + 'a {
        self.containers.iter().filter(move |c| c.name == name)
    }

    /// The newest instance of a container in a given sandbox.
    pub fn in_sandbox(&self, name: &str, sandbox_id: &str) -> Option<&RuntimeContainer> {
        self.containers
            .iter()
            .find(|c| c.name == name && c.sandbox_id == sandbox_id)
    }

    pub fn running(&self) -> impl Iterator<Item = &RuntimeContainer> {
        self.containers
            .iter()
            .filter(|c| c.state == CState::Running)
    }

    pub fn is_empty(&self) -> bool {
        self.sandboxes.is_empty() && self.containers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_from_cri_status_reads_annotations() {
        let s = pb::ContainerStatus {
            id: "abc".into(),
            metadata: Some(pb::ContainerMetadata {
                name: "c".into(),
                attempt: 2,
            }),
            state: pb::ContainerState::ContainerExited as i32,
            exit_code: 3,
            labels: [(labels::CONTAINER_NAME.to_string(), "c".to_string())].into(),
            annotations: [
                (labels::RESTART_COUNT.to_string(), "2".to_string()),
                (labels::CONTAINER_HASH.to_string(), "beef".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let c = RuntimeContainer::from_status(&s, "sb");
        assert_eq!(
            (
                c.name.as_str(),
                c.attempt,
                c.restart_count,
                c.hash.as_str(),
                c.state,
                c.exit_code
            ),
            ("c", 2, 2, "beef", CState::Exited, 3)
        );
    }

    #[test]
    fn sandbox_from_cri_status() {
        let s = pb::PodSandboxStatus {
            id: "sb".into(),
            metadata: Some(pb::PodSandboxMetadata {
                attempt: 1,
                ..Default::default()
            }),
            state: pb::PodSandboxState::SandboxReady as i32,
            network: Some(pb::PodSandboxNetworkStatus {
                ip: "10.42.0.5".into(),
                additional_ips: vec![pb::PodIp {
                    ip: "fd00::5".into(),
                }],
            }),
            ..Default::default()
        };
        let sb = RuntimeSandbox::from_status(&s);
        assert!(sb.ready);
        assert_eq!(sb.attempt, 1);
        assert_eq!(sb.ips, vec!["10.42.0.5", "fd00::5"]);
        assert!(!sb.host_network);
    }

    #[test]
    fn ordering_newest_first() {
        let c = |id: &str, created: i64| RuntimeContainer {
            id: id.into(),
            sandbox_id: "s".into(),
            name: "c".into(),
            attempt: 0,
            restart_count: 0,
            hash: String::new(),
            state: CState::Exited,
            created_at: created,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            annotations: HashMap::new(),
            log_path: String::new(),
        };
        let rt = PodRuntime::new(vec![], vec![c("old", 1), c("new", 5), c("mid", 3)]);
        let ids: Vec<_> = rt.instances("c").map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["new", "mid", "old"]);
        assert_eq!(rt.in_sandbox("c", "s").unwrap().id, "new");
    }
}
