//! Probe manager tests with a scripted ExecSync and tokio's paused clock.

use super::*;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ExecAction, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::VecDeque;

/// Exit codes per command name (the last one repeats); every call is recorded.
#[derive(Default)]
struct ScriptedExec {
    script: Mutex<HashMap<String, VecDeque<i32>>>,
    calls: Mutex<Vec<(String, String, tokio::time::Instant)>>,
}

impl ScriptedExec {
    fn with(script: &[(&str, &[i32])]) -> Arc<Self> {
        let s = Self::default();
        for (cmd, codes) in script {
            s.script
                .lock()
                .unwrap()
                .insert(cmd.to_string(), codes.iter().copied().collect());
        }
        Arc::new(s)
    }
    fn calls_of(&self, cmd: &str) -> Vec<(String, tokio::time::Instant)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _, _)| c == cmd)
            .map(|(_, id, t)| (id.clone(), *t))
            .collect()
    }
}

#[async_trait]
impl ContainerExec for ScriptedExec {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let name = cmd[0].clone();
        self.calls.lock().unwrap().push((
            name.clone(),
            container_id.into(),
            tokio::time::Instant::now(),
        ));
        let mut script = self.script.lock().unwrap();
        let q = script.entry(name.clone()).or_default();
        let code = if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().copied().unwrap_or(0)
        };
        Ok(ExecOutput {
            exit_code: code,
            output: format!("{name} said {code}").into_bytes(),
            stderr: Vec::new(),
        })
    }
}

fn exec_probe(cmd: &str, period: i32, failure_threshold: i32, initial_delay: i32) -> Option<Probe> {
    Some(Probe {
        exec: Some(ExecAction {
            command: Some(vec![cmd.into()]),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        initial_delay_seconds: Some(initial_delay),
        ..Default::default()
    })
}

fn pod(container: Container) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("uid".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn running(id: &str) -> ContainerState {
    ContainerState {
        container_id: id.into(),
        running_since: Some(SystemTime::now()),
        terminated: false,
    }
}

async fn next_result(
    rx: &mut mpsc::UnboundedReceiver<ProbeEvent>,
) -> (String, ProbeType, ProbeResult) {
    loop {
        match rx.recv().await.expect("manager alive") {
            ProbeEvent::Result {
                container_id,
                probe,
                result,
                ..
            } => return (container_id, probe, result),
            ProbeEvent::Event { .. } => continue,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_thresholds_and_reports_events() {
    let exec = ScriptedExec::with(&[("ready", &[0, 1, 1, 0])]);
    let (m, mut rx) = ProbeManager::new(exec.clone());
    let c = Container {
        name: "app".into(),
        readiness_probe: exec_probe("ready", 1, 2, 0),
        ..Default::default()
    };
    m.add_pod(&pod(c));
    m.set_container_state("uid", "app", running("c1"));
    use ProbeResult::*;
    use ProbeType::Readiness as R;
    assert_eq!(next_result(&mut rx).await, ("c1".into(), R, Failure));
    assert_eq!(next_result(&mut rx).await, ("c1".into(), R, Success));
    assert_eq!(m.result("uid", "app", "c1", R), Some(Success));
    // two failures in a row (threshold 2) -> Failure, with one Unhealthy event per failed run
    let mut unhealthy = Vec::new();
    let failed = loop {
        match rx.recv().await.unwrap() {
            ProbeEvent::Event {
                reason, message, ..
            } => unhealthy.push((reason, message)),
            ProbeEvent::Result { result, .. } => break result,
        }
    };
    assert_eq!(failed, Failure);
    assert_eq!(
        unhealthy,
        vec![
            (
                "Unhealthy",
                "Readiness probe failed: ready said 1".to_string()
            ),
            (
                "Unhealthy",
                "Readiness probe failed: ready said 1".to_string()
            )
        ]
    );
    assert_eq!(next_result(&mut rx).await, ("c1".into(), R, Success));
    // one run per period
    let calls = exec.calls_of("ready");
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_secs(1)),
        "{gaps:?}"
    );
    m.remove_pod("uid");
    assert_eq!(m.result("uid", "app", "c1", R), None);
}

#[tokio::test(start_paused = true)]
async fn startup_gates_liveness_and_liveness_failure_holds() {
    let exec = ScriptedExec::with(&[("start", &[1, 0]), ("live", &[0, 1])]);
    let (m, mut rx) = ProbeManager::new(exec.clone());
    let c = Container {
        name: "app".into(),
        startup_probe: exec_probe("start", 1, 5, 0),
        liveness_probe: exec_probe("live", 1, 1, 0),
        ..Default::default()
    };
    m.add_pod(&pod(c));
    m.set_container_state("uid", "app", running("c1"));
    use ProbeResult::*;
    use ProbeType::*;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(next_result(&mut rx).await);
    }
    // the initial values come in either order, then startup succeeds, then liveness fails
    seen[..2].sort_by_key(|r| format!("{:?}", r.1));
    assert_eq!(
        seen,
        vec![
            ("c1".into(), Liveness, Success),
            ("c1".into(), Startup, Unknown),
            ("c1".into(), Startup, Success),
            ("c1".into(), Liveness, Failure),
        ]
    );
    let first_live = exec.calls_of("live")[0].1;
    let start_ok = exec.calls_of("start")[1].1;
    assert!(
        first_live >= start_ok,
        "liveness ran before startup succeeded"
    );
    // on hold: no more liveness runs for c1
    let live_runs = exec.calls_of("live").len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(exec.calls_of("live").len(), live_runs);
    // a new container resets everything: startup must pass again before liveness runs
    m.set_container_state("uid", "app", running("c2"));
    let mut again = Vec::new();
    while again.len() < 3 {
        again.push(next_result(&mut rx).await);
    }
    again.sort_by_key(|r| format!("{:?}{:?}", r.1, r.2));
    assert_eq!(
        again,
        vec![
            ("c2".into(), Liveness, Success),
            ("c2".into(), Startup, Success),
            ("c2".into(), Startup, Unknown),
        ]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start_c2 = exec
        .calls_of("start")
        .into_iter()
        .filter(|(id, _)| id == "c2")
        .map(|(_, t)| t)
        .max()
        .expect("startup probed c2");
    let live_c2: Vec<_> = exec
        .calls_of("live")
        .into_iter()
        .filter(|(id, _)| id == "c2")
        .collect();
    assert!(!live_c2.is_empty(), "liveness resumed on the new container");
    assert!(live_c2.iter().all(|(_, t)| *t >= start_c2));
}

#[tokio::test(start_paused = true)]
async fn initial_delay_and_termination() {
    let exec = ScriptedExec::with(&[("live", &[0])]);
    let (m, mut rx) = ProbeManager::new(exec.clone());
    let c = Container {
        name: "app".into(),
        liveness_probe: exec_probe("live", 10, 3, 30),
        ..Default::default()
    };
    m.add_pod(&pod(c));
    let t0 = tokio::time::Instant::now();
    m.set_container_state("uid", "app", running("c1"));
    assert_eq!(
        next_result(&mut rx).await,
        ("c1".into(), ProbeType::Liveness, ProbeResult::Success)
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    let calls = exec.calls_of("live");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].1 - t0 >= Duration::from_secs(30));
    // a stopped container publishes Failure (the pod worker only acts on running containers)
    m.set_container_state(
        "uid",
        "app",
        ContainerState {
            container_id: "c1".into(),
            running_since: None,
            terminated: true,
        },
    );
    assert_eq!(
        next_result(&mut rx).await,
        ("c1".into(), ProbeType::Liveness, ProbeResult::Failure)
    );
    // termination: liveness reports Success and the worker stops
    m.set_container_state("uid", "app", running("c1"));
    m.set_terminating("uid");
    assert_eq!(
        next_result(&mut rx).await,
        ("c1".into(), ProbeType::Liveness, ProbeResult::Success)
    );
    let n = exec.calls_of("live").len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(exec.calls_of("live").len(), n);
}
