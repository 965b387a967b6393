//! The per-worker threshold state machine of upstream's prober worker: consecutive results are
//! counted, the effective result only changes once successThreshold/failureThreshold is reached,
//! a new container resets to the probe type's initial value, and a liveness/startup failure puts
//! the worker on hold until the container is replaced. Pure.

use super::{ProbeResult, ProbeType};

/// Threshold bookkeeping of one probe of one container.
#[derive(Debug, Clone)]
pub struct ProbeState {
    probe: ProbeType,
    success_threshold: u32,
    failure_threshold: u32,
    container_id: String,
    last: ProbeResult,
    run: u32,
    on_hold: bool,
    /// The effective result last published for `container_id`.
    current: Option<ProbeResult>,
}

impl ProbeState {
    pub fn new(probe: ProbeType, success_threshold: i32, failure_threshold: i32) -> Self {
        Self {
            probe,
            success_threshold: success_threshold.max(1) as u32,
            failure_threshold: failure_threshold.max(1) as u32,
            container_id: String::new(),
            last: ProbeResult::Unknown,
            run: 0,
            on_hold: false,
            current: None,
        }
    }

    /// The container the state is about.
    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// Whether probing is paused until a new container shows up.
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// The effective result for the current container.
    pub fn current(&self) -> Option<ProbeResult> {
        self.current
    }

    fn set(&mut self, r: ProbeResult) -> Option<ProbeResult> {
        if self.current == Some(r) {
            None
        } else {
            self.current = Some(r);
            Some(r)
        }
    }

    /// A (possibly new) container id was observed. For a new container the counters reset and the
    /// probe type's initial value is published (readiness Failure, liveness Success, startup
    /// Unknown).
    pub fn observe_container(&mut self, container_id: &str) -> Option<ProbeResult> {
        if container_id == self.container_id {
            return None;
        }
        self.container_id = container_id.to_string();
        self.last = ProbeResult::Unknown;
        self.run = 0;
        self.on_hold = false;
        self.current = None;
        self.set(self.probe.initial_result())
    }

    /// The container stopped running: upstream publishes Failure.
    pub fn container_not_running(&mut self) -> Option<ProbeResult> {
        if self.container_id.is_empty() {
            return None;
        }
        self.set(ProbeResult::Failure)
    }

    /// The pod is being deleted: liveness and startup report Success so nothing restarts it.
    pub fn pod_terminating(&mut self) -> Option<ProbeResult> {
        self.set(ProbeResult::Success)
    }

    /// One probe run's result (Success or Failure; warnings count as Success). Returns the
    /// effective result when it is published and differs from the previous one.
    pub fn record(&mut self, result: ProbeResult) -> Option<ProbeResult> {
        if self.last == result {
            self.run += 1;
        } else {
            self.last = result;
            self.run = 1;
        }
        if (result == ProbeResult::Failure && self.run < self.failure_threshold)
            || (result == ProbeResult::Success && self.run < self.success_threshold)
        {
            return None;
        }
        let published = self.set(result);
        if result == ProbeResult::Failure
            && matches!(self.probe, ProbeType::Liveness | ProbeType::Startup)
        {
            self.on_hold = true;
            self.run = 0;
        }
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeResult::{Failure as F, Success as S, Unknown as U};

    /// (probe, success threshold, failure threshold, results, published after each)
    type Case = (
        ProbeType,
        i32,
        i32,
        Vec<ProbeResult>,
        Vec<Option<ProbeResult>>,
    );

    #[test]
    fn thresholds_table() {
        let cases: Vec<Case> = vec![
            // readiness starts failed; one success is enough by default
            (
                ProbeType::Readiness,
                1,
                3,
                vec![S, S, F, F, F, S],
                vec![Some(S), None, None, None, Some(F), Some(S)],
            ),
            // successThreshold 2 needs two in a row
            (
                ProbeType::Readiness,
                2,
                1,
                vec![S, F, S, S],
                vec![None, None, None, Some(S)],
            ),
            // liveness starts successful; failureThreshold 3
            (
                ProbeType::Liveness,
                1,
                3,
                vec![F, F, S, F, F, F],
                vec![None, None, None, None, None, Some(F)],
            ),
            // startup: Unknown until the first success
            (
                ProbeType::Startup,
                1,
                2,
                vec![F, S, S],
                vec![None, Some(S), None],
            ),
            (ProbeType::Startup, 1, 2, vec![F, F], vec![None, Some(F)]),
        ];
        for (probe, st, ft, results, want) in cases {
            let mut s = ProbeState::new(probe, st, ft);
            let initial = s.observe_container("c1");
            assert_eq!(initial, Some(probe.initial_result()), "{probe:?}");
            let got: Vec<Option<ProbeResult>> = results.iter().map(|r| s.record(*r)).collect();
            assert_eq!(got, want, "{probe:?} st={st} ft={ft} {results:?}");
        }
        assert_eq!(ProbeType::Startup.initial_result(), U);
    }

    #[test]
    fn liveness_failure_holds_until_new_container() {
        let mut s = ProbeState::new(ProbeType::Liveness, 1, 1);
        s.observe_container("c1");
        assert_eq!(s.record(F), Some(F));
        assert!(s.on_hold());
        assert_eq!(s.observe_container("c1"), None);
        assert!(s.on_hold());
        assert_eq!(s.observe_container("c2"), Some(S));
        assert!(!s.on_hold());
        assert_eq!(s.container_id(), "c2");
    }

    #[test]
    fn readiness_failure_does_not_hold_and_stopped_container_fails() {
        let mut s = ProbeState::new(ProbeType::Readiness, 1, 1);
        assert_eq!(s.container_not_running(), None);
        s.observe_container("c1");
        assert_eq!(s.record(S), Some(S));
        assert_eq!(s.record(F), Some(F));
        assert!(!s.on_hold());
        assert_eq!(s.record(S), Some(S));
        assert_eq!(s.container_not_running(), Some(F));
        assert_eq!(s.current(), Some(F));
    }
}
