//! What a pod sync must do (upstream `computePodActions`): whether the sandbox must be (re)created
//! (killing what ran in the old one), which init container runs next (regular ones in order,
//! restartable ones = sidecars kept running), which app containers start or restart per
//! restartPolicy, and which running containers must be killed (spec hash changed, liveness
//! failed, unknown to the spec). Backoff is applied by the worker when it starts a container.
//! Sans-IO.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::labels;
use crate::podstate::{CState, PodRuntime};

/// Which list of the pod spec a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    Sidecar,
    App,
}

impl Kind {
    /// The `fieldPath` prefix events use for containers of this kind.
    pub fn field_path(self, name: &str) -> String {
        match self {
            Kind::App => format!("spec.containers{{{name}}}"),
            _ => format!("spec.initContainers{{{name}}}"),
        }
    }
}

/// A container to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub name: String,
    pub kind: Kind,
}

/// A running container to kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub id: String,
    pub name: String,
    /// Why (the Killing event's message), e.g. `Container app failed liveness probe, will be
    /// restarted`.
    pub message: String,
    /// The grace period of a kill for a failed probe when the probe sets its own
    /// `terminationGracePeriodSeconds` (upstream: it overrides the pod's).
    pub probe_grace: Option<i64>,
}

/// The actions of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Stop every container and sandbox of the pod first.
    pub kill_pod: bool,
    /// Create a sandbox with this attempt number.
    pub create_sandbox: Option<u32>,
    pub kill: Vec<Kill>,
    pub start: Vec<Start>,
    /// A regular init container failed under restartPolicy Never: the pod has failed.
    pub init_failed: bool,
}

pub(crate) fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Whether an exited container is restarted under the pod's restart policy.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The reason and message of a pod failed for its `activeDeadlineSeconds` (upstream
/// `activeDeadlineHandler`).
pub const DEADLINE_REASON: &str = "DeadlineExceeded";
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// How long the pod may still run under its `activeDeadlineSeconds`, counted from its status'
/// `startTime` (zero: the deadline has passed); `None` without a deadline or a start time.
pub fn active_deadline_left(
    pod: &Pod,
    now: k8s_openapi::jiff::Timestamp,
) -> Option<std::time::Duration> {
    let ads = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = pod.status.as_ref()?.start_time.as_ref()?.0;
    let ran_ms = now.as_millisecond() - start.as_millisecond();
    let left_ms = ads.saturating_mul(1000).saturating_sub(ran_ms);
    Some(std::time::Duration::from_millis(left_ms.max(0) as u64))
}

/// Liveness failures reported by the prober, by container name.
pub type LivenessFailures = HashSet<String>;

/// Plans the sync of `pod` given what the runtime has.
pub fn plan(pod: &Pod, rt: &PodRuntime, liveness_failed: &LivenessFailures) -> Plan {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = restart_policy(pod).to_string();
    let inits: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let mut p = Plan::default();

    let latest = rt.latest_sandbox();
    let ready_count = rt.sandboxes.iter().filter(|s| s.ready).count();
    let changed = match latest {
        None => true,
        Some(s) => !s.ready || (!host_network && s.ips.is_empty()) || ready_count > 1,
    };
    if changed {
        let attempt = latest.map(|s| s.attempt + 1).unwrap_or(0);
        let any_ran = !rt.containers.is_empty();
        p.kill_pod = latest.is_some() || rt.running().next().is_some();
        if policy == "Never" && attempt != 0 && any_ran {
            // the pod is not restarted: its containers stay as they ended
            return p;
        }
        let app: Vec<&Container> = spec
            .containers
            .iter()
            .filter(|c| {
                !(policy == "OnFailure"
                    && rt
                        .instances(&c.name)
                        .next()
                        .is_some_and(|i| i.state == CState::Exited && i.exit_code == 0))
            })
            .collect();
        if app.is_empty() && inits.is_empty() {
            return p;
        }
        p.create_sandbox = Some(attempt);
        if let Some(first) = inits.first() {
            p.start.push(Start {
                name: first.name.clone(),
                kind: if is_sidecar(first) {
                    Kind::Sidecar
                } else {
                    Kind::Init
                },
            });
        } else {
            p.start.extend(app.iter().map(|c| Start {
                name: c.name.clone(),
                kind: Kind::App,
            }));
        }
        return p;
    }
    let sandbox = latest.expect("sandbox checked above");
    let current = |name: &str| rt.in_sandbox(name, &sandbox.id);

    // kill running containers the spec does not know
    let known: HashSet<&str> = inits
        .iter()
        .map(|c| c.name.as_str())
        .chain(spec.containers.iter().map(|c| c.name.as_str()))
        .collect();
    for c in rt.running() {
        if c.sandbox_id == sandbox.id && !known.contains(c.name.as_str()) {
            p.kill.push(Kill {
                probe_grace: None,
                id: c.id.clone(),
                name: c.name.clone(),
                message: "Container is not in the pod spec".into(),
            });
        }
    }

    // app containers already created in this sandbox mean initialization finished
    let mut initialized = spec.containers.iter().any(|c| current(&c.name).is_some());
    let hash_changed = |c: &Container, id_hash: &str| labels::container_hash(c) != id_hash;
    if !initialized {
        initialized = true;
        for ic in &inits {
            let sidecar = is_sidecar(ic);
            let kind = if sidecar { Kind::Sidecar } else { Kind::Init };
            let start = Start {
                name: ic.name.clone(),
                kind,
            };
            match current(&ic.name) {
                None => {
                    p.start.push(start);
                    initialized = false;
                    break;
                }
                Some(i) => match i.state {
                    CState::Created | CState::Unknown => {
                        p.kill.push(Kill {
                            probe_grace: None,
                            id: i.id.clone(),
                            name: i.name.clone(),
                            message: "Container is in an unknown state, will be restarted".into(),
                        });
                        p.start.push(start);
                        initialized = false;
                        break;
                    }
                    CState::Running => {
                        if sidecar {
                            if hash_changed(ic, &i.hash) {
                                p.kill.push(Kill {
                                    probe_grace: None,
                                    id: i.id.clone(),
                                    name: i.name.clone(),
                                    message: "Init container spec hash changed".into(),
                                });
                                p.start.push(start);
                                initialized = false;
                                break;
                            }
                            continue;
                        }
                        initialized = false;
                        break;
                    }
                    CState::Exited => {
                        if sidecar {
                            p.start.push(start);
                            initialized = false;
                            break;
                        }
                        if i.exit_code == 0 {
                            continue;
                        }
                        initialized = false;
                        if policy == "Never" {
                            p.init_failed = true;
                        } else {
                            p.start.push(start);
                        }
                        break;
                    }
                },
            }
        }
    } else {
        // keep sidecars running after initialization
        for ic in inits.iter().filter(|c| is_sidecar(c)) {
            match current(&ic.name) {
                Some(i) if i.state == CState::Running => {
                    if hash_changed(ic, &i.hash) || liveness_failed.contains(&ic.name) {
                        p.kill.push(Kill {
                            probe_grace: None,
                            id: i.id.clone(),
                            name: i.name.clone(),
                            message: "Init container spec hash changed".into(),
                        });
                        p.start.push(Start {
                            name: ic.name.clone(),
                            kind: Kind::Sidecar,
                        });
                    }
                }
                _ => p.start.push(Start {
                    name: ic.name.clone(),
                    kind: Kind::Sidecar,
                }),
            }
        }
    }
    if !initialized {
        return p;
    }

    for c in &spec.containers {
        let start = Start {
            name: c.name.clone(),
            kind: Kind::App,
        };
        match current(&c.name) {
            None => p.start.push(start),
            Some(i) => match i.state {
                CState::Created | CState::Unknown => {
                    p.kill.push(Kill {
                        probe_grace: None,
                        id: i.id.clone(),
                        name: i.name.clone(),
                        message: "Container is in an unknown state, will be restarted".into(),
                    });
                    p.start.push(start);
                }
                CState::Running => {
                    if hash_changed(c, &i.hash) {
                        p.kill.push(Kill {
                            probe_grace: None,
                            id: i.id.clone(),
                            name: i.name.clone(),
                            message: format!(
                                "Container {} definition changed, will be restarted",
                                c.name
                            ),
                        });
                        p.start.push(start);
                    } else if liveness_failed.contains(&c.name) {
                        p.kill.push(Kill {
                            probe_grace: None,
                            id: i.id.clone(),
                            name: i.name.clone(),
                            message: format!(
                                "Container {} failed liveness probe, will be restarted",
                                c.name
                            ),
                        });
                        if let Some(k) = p.kill.last_mut() {
                            k.probe_grace = c
                                .liveness_probe
                                .as_ref()
                                .and_then(|p| p.termination_grace_period_seconds)
                                .or_else(|| {
                                    c.startup_probe
                                        .as_ref()
                                        .and_then(|p| p.termination_grace_period_seconds)
                                });
                        }
                        if should_restart(&policy, 1) {
                            p.start.push(start);
                        }
                    }
                }
                CState::Exited => {
                    if should_restart(&policy, i.exit_code) {
                        p.start.push(start);
                    }
                }
            },
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podstate::{RuntimeContainer, RuntimeSandbox};
    use serde_json::json;
    use std::collections::HashMap;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}, "spec": spec}))
            .unwrap()
    }

    fn sb(id: &str, attempt: u32, ready: bool, created: i64) -> RuntimeSandbox {
        RuntimeSandbox {
            id: id.into(),
            attempt,
            ready,
            created_at: created,
            ips: vec!["10.42.0.2".into()],
            host_network: false,
        }
    }

    fn c(
        p: &Pod,
        name: &str,
        sandbox: &str,
        state: CState,
        exit: i32,
        created: i64,
    ) -> RuntimeContainer {
        let spec = p.spec.as_ref().unwrap();
        let hash = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .map(labels::container_hash)
            .unwrap_or_default();
        RuntimeContainer {
            id: format!("{name}-{created}"),
            sandbox_id: sandbox.into(),
            name: name.into(),
            attempt: 0,
            restart_count: 0,
            hash,
            state,
            created_at: created,
            started_at: created,
            finished_at: 0,
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            annotations: HashMap::new(),
            log_path: String::new(),
        }
    }

    fn starts(p: &Plan) -> Vec<String> {
        p.start.iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn new_pod_creates_sandbox_and_starts_containers() {
        let p =
            pod(json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}));
        let plan = plan(&p, &PodRuntime::default(), &HashSet::new());
        assert_eq!(plan.create_sandbox, Some(0));
        assert!(!plan.kill_pod);
        assert_eq!(starts(&plan), vec!["a", "b"]);
    }

    #[test]
    fn init_containers_run_in_order() {
        let p = pod(json!({
            "initContainers": [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}]}));
        let s = sb("s", 0, true, 1);
        let cases = vec![
            (vec![], vec!["i1"]),
            (vec![c(&p, "i1", "s", CState::Running, 0, 2)], vec![]),
            (vec![c(&p, "i1", "s", CState::Exited, 0, 2)], vec!["i2"]),
            (
                vec![
                    c(&p, "i1", "s", CState::Exited, 0, 2),
                    c(&p, "i2", "s", CState::Exited, 0, 3),
                ],
                vec!["a"],
            ),
            // a failed init container is retried (restartPolicy Always)
            (vec![c(&p, "i1", "s", CState::Exited, 1, 2)], vec!["i1"]),
            // once the app container exists, init is done even if init containers vanished
            (vec![c(&p, "a", "s", CState::Running, 0, 4)], vec![]),
        ];
        for (i, (containers, want)) in cases.into_iter().enumerate() {
            let rt = PodRuntime::new(vec![s.clone()], containers);
            let plan = plan(&p, &rt, &HashSet::new());
            assert_eq!(plan.create_sandbox, None, "case {i}");
            assert_eq!(starts(&plan), want, "case {i}");
        }
    }

    #[test]
    fn init_failure_with_never_fails_the_pod() {
        let p = pod(json!({"restartPolicy": "Never",
            "initContainers": [{"name": "i1", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}]}));
        let rt = PodRuntime::new(
            vec![sb("s", 0, true, 1)],
            vec![c(&p, "i1", "s", CState::Exited, 2, 2)],
        );
        let plan = plan(&p, &rt, &HashSet::new());
        assert!(plan.init_failed);
        assert!(plan.start.is_empty());
    }

    #[test]
    fn sidecars_start_before_later_init_and_stay_up() {
        let p = pod(json!({
            "initContainers": [{"name": "side", "image": "x", "restartPolicy": "Always"},
                               {"name": "i2", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}]}));
        let s = sb("s", 0, true, 1);
        let cases = vec![
            (vec![], vec!["side"]),
            (vec![c(&p, "side", "s", CState::Running, 0, 2)], vec!["i2"]),
            (
                vec![
                    c(&p, "side", "s", CState::Running, 0, 2),
                    c(&p, "i2", "s", CState::Exited, 0, 3),
                ],
                vec!["a"],
            ),
            // the sidecar died after initialization: restarted, the app keeps running
            (
                vec![
                    c(&p, "side", "s", CState::Exited, 1, 2),
                    c(&p, "a", "s", CState::Running, 0, 4),
                ],
                vec!["side"],
            ),
        ];
        for (i, (containers, want)) in cases.into_iter().enumerate() {
            let rt = PodRuntime::new(vec![s.clone()], containers);
            assert_eq!(starts(&plan(&p, &rt, &HashSet::new())), want, "case {i}");
        }
    }

    #[test]
    fn restart_policy_table() {
        for (policy, exit, restart) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 137, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ] {
            let p =
                pod(json!({"restartPolicy": policy, "containers": [{"name": "a", "image": "x"}]}));
            let rt = PodRuntime::new(
                vec![sb("s", 0, true, 1)],
                vec![c(&p, "a", "s", CState::Exited, exit, 2)],
            );
            let got = !plan(&p, &rt, &HashSet::new()).start.is_empty();
            assert_eq!(got, restart, "{policy} exit {exit}");
        }
    }

    #[test]
    fn dead_sandbox_is_recreated_unless_never() {
        let always = pod(json!({"containers": [{"name": "a", "image": "x"}]}));
        let rt = PodRuntime::new(
            vec![sb("s", 0, false, 1)],
            vec![c(&always, "a", "s", CState::Exited, 137, 2)],
        );
        let pl = plan(&always, &rt, &HashSet::new());
        assert!(pl.kill_pod);
        assert_eq!(pl.create_sandbox, Some(1));
        assert_eq!(starts(&pl), vec!["a"]);
        let never =
            pod(json!({"restartPolicy": "Never", "containers": [{"name": "a", "image": "x"}]}));
        let pl = plan(&never, &rt, &HashSet::new());
        assert!(pl.kill_pod);
        assert_eq!(pl.create_sandbox, None);
        assert!(pl.start.is_empty());
    }

    #[test]
    fn changed_image_and_liveness_failure_kill_the_container() {
        let p = pod(json!({"containers": [{"name": "a", "image": "x"}]}));
        let mut running = c(&p, "a", "s", CState::Running, 0, 2);
        let rt = PodRuntime::new(vec![sb("s", 0, true, 1)], vec![running.clone()]);
        assert_eq!(plan(&p, &rt, &HashSet::new()), Plan::default());
        let failed: HashSet<String> = ["a".to_string()].into();
        let pl = plan(&p, &rt, &failed);
        assert_eq!(pl.kill.len(), 1);
        assert_eq!(
            pl.kill[0].message,
            "Container a failed liveness probe, will be restarted"
        );
        assert_eq!(pl.kill[0].probe_grace, None);
        assert_eq!(starts(&pl), vec!["a"]);
        // a liveness probe with its own grace period: the kill uses it
        let with_grace = pod(json!({"containers": [{"name": "a", "image": "x",
            "livenessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 7}}]}));
        let rt_g = PodRuntime::new(
            vec![sb("s", 0, true, 1)],
            vec![c(&with_grace, "a", "s", CState::Running, 0, 2)],
        );
        let pl = plan(&with_grace, &rt_g, &failed);
        assert_eq!(pl.kill[0].probe_grace, Some(7));
        running.hash = "other".into();
        let rt = PodRuntime::new(vec![sb("s", 0, true, 1)], vec![running]);
        let pl = plan(&p, &rt, &HashSet::new());
        assert_eq!(pl.kill[0].id, "a-2");
        assert_eq!(starts(&pl), vec!["a"]);
    }

    #[test]
    fn unknown_containers_are_killed() {
        let p = pod(json!({"containers": [{"name": "a", "image": "x"}]}));
        let other = pod(json!({"containers": [{"name": "gone", "image": "x"}]}));
        let rt = PodRuntime::new(
            vec![sb("s", 0, true, 1)],
            vec![
                c(&p, "a", "s", CState::Running, 0, 2),
                c(&other, "gone", "s", CState::Running, 0, 3),
            ],
        );
        let pl = plan(&p, &rt, &HashSet::new());
        assert_eq!(pl.kill.len(), 1);
        assert_eq!(pl.kill[0].name, "gone");
    }

    #[test]
    fn active_deadline_table() {
        use k8s_openapi::jiff::Timestamp;
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let pod = |ads: Option<i64>, start: Option<&str>| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c"}], "activeDeadlineSeconds": ads},
                "status": {"startTime": start},
            }))
            .unwrap()
        };
        let cases = [
            (None, Some("2026-01-01T00:00:00Z"), None),
            (Some(30), None, None),
            (Some(90), Some("2026-01-01T00:00:00Z"), Some(30_000)),
            (Some(60), Some("2026-01-01T00:00:00Z"), Some(0)),
            (Some(10), Some("2026-01-01T00:00:00Z"), Some(0)),
            (Some(61), Some("2026-01-01T00:00:00Z"), Some(1_000)),
        ];
        for (ads, start, want) in cases {
            let got = active_deadline_left(&pod(ads, start), now).map(|d| d.as_millis() as i64);
            assert_eq!(got, want, "{ads:?} {start:?}");
        }
    }
}
