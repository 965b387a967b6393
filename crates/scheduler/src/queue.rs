//! The scheduling queue (sans-IO, time is passed in): an active queue ordered by priority then
//! arrival, a backoff queue (exponential per attempt, 1 s to 10 s by default) and the set of
//! unschedulable pods, which move back when a cluster event may make them schedulable (or after
//! five minutes at most), never by polling.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::framework::PodInfo;

/// How long a pod may stay unschedulable before it is retried anyway (upstream
/// `podMaxInUnschedulablePodsDuration`).
pub const MAX_UNSCHEDULABLE_DURATION: Duration = Duration::from_secs(300);

/// A pod in the queue.
#[derive(Clone, Debug)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When the last attempt failed.
    pub last_failure: Option<Instant>,
    /// Plugins that rejected the pod in its last attempt.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// Message of the last failure (to avoid rewriting an identical status).
    pub last_message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Active((Reverse<i32>, u64)),
    Backoff((Instant, u64)),
    Unschedulable(Instant),
    InFlight,
}

struct Entry {
    qp: QueuedPod,
    place: Place,
    /// Move-request cycle seen when the pod was popped.
    popped_cycle: u64,
}

/// Why a cluster event may help an unschedulable pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node was added or changed in a scheduling-relevant way: retry everything.
    NodeChange,
    /// An assigned pod was deleted (resources, ports, spread and anti-affinity freed).
    AssignedPodDelete,
    /// An assigned pod was added or its labels changed (affinity and spread).
    AssignedPodChange,
}

impl ClusterEvent {
    fn may_help(self, plugins: &BTreeSet<&'static str>) -> bool {
        match self {
            ClusterEvent::NodeChange | ClusterEvent::AssignedPodDelete => true,
            ClusterEvent::AssignedPodChange => {
                plugins.is_empty()
                    || plugins.contains("InterPodAffinity")
                    || plugins.contains("PodTopologySpread")
            }
        }
    }
}

/// The priority queue of pods waiting to be scheduled.
pub struct SchedulingQueue {
    active: BTreeMap<(Reverse<i32>, u64), String>,
    backoff: BTreeMap<(Instant, u64), String>,
    entries: HashMap<String, Entry>,
    /// Uids of the pods in the unschedulable set.
    unsched: HashSet<String>,
    seq: u64,
    move_cycle: u64,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for SchedulingQueue {
    fn default() -> Self {
        SchedulingQueue::new(Duration::from_secs(1), Duration::from_secs(10))
    }
}

impl SchedulingQueue {
    pub fn new(initial_backoff: Duration, max_backoff: Duration) -> SchedulingQueue {
        SchedulingQueue {
            active: BTreeMap::new(),
            backoff: BTreeMap::new(),
            entries: HashMap::new(),
            unsched: HashSet::new(),
            seq: 0,
            move_cycle: 0,
            initial_backoff,
            max_backoff,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Backoff after `attempts` failed attempts (upstream `calculateBackoffDuration`).
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            d *= 2;
            if d > self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn backoff_expiry(&self, qp: &QueuedPod) -> Option<Instant> {
        qp.last_failure
            .map(|t| t + self.backoff_duration(qp.attempts))
    }

    fn unplace(&mut self, uid: &str) {
        let Some(e) = self.entries.get(uid) else {
            return;
        };
        match e.place {
            Place::Active(k) => {
                self.active.remove(&k);
            }
            Place::Backoff(k) => {
                self.backoff.remove(&k);
            }
            Place::Unschedulable(_) => {
                self.unsched.remove(uid);
            }
            Place::InFlight => {}
        }
    }

    fn place_active(&mut self, uid: &str) {
        self.unsched.remove(uid);
        let seq = self.next_seq();
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        let key = (Reverse(e.qp.info.priority), seq);
        e.place = Place::Active(key);
        self.active.insert(key, uid.to_string());
    }

    /// Active when its backoff is over, backoff otherwise.
    fn place_ready_or_backoff(&mut self, uid: &str, now: Instant) {
        let expiry = self
            .entries
            .get(uid)
            .and_then(|e| self.backoff_expiry(&e.qp));
        match expiry {
            Some(t) if t > now => {
                self.unsched.remove(uid);
                let seq = self.next_seq();
                let e = self.entries.get_mut(uid).expect("entry");
                e.place = Place::Backoff((t, seq));
                self.backoff.insert((t, seq), uid.to_string());
            }
            _ => self.place_active(uid),
        }
    }

    /// Adds a new pending pod or updates one already queued.
    pub fn add_or_update(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        match self.entries.get_mut(&uid) {
            None => {
                let qp = QueuedPod {
                    info,
                    attempts: 0,
                    last_failure: None,
                    unschedulable_plugins: BTreeSet::new(),
                    last_message: None,
                };
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        qp,
                        place: Place::Active((Reverse(0), 0)),
                        popped_cycle: 0,
                    },
                );
                self.place_active(&uid);
            }
            Some(e) => {
                let spec_changed =
                    e.qp.info.pod.spec != info.pod.spec || e.qp.info.labels != info.labels;
                e.qp.info = info;
                match e.place {
                    Place::InFlight => {}
                    Place::Active(_) => {
                        self.unplace(&uid);
                        self.place_active(&uid);
                    }
                    Place::Backoff(_) => {}
                    Place::Unschedulable(_) => {
                        if spec_changed {
                            self.place_ready_or_backoff(&uid, now);
                        }
                    }
                }
            }
        }
    }

    /// Forgets a pod (deleted, or assigned by someone else).
    pub fn delete(&mut self, uid: &str) {
        self.unplace(uid);
        self.entries.remove(uid);
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Moves expired backoff entries to the active queue.
    fn flush_backoff(&mut self, now: Instant) {
        while let Some((&(t, seq), _)) = self.backoff.iter().next() {
            if t > now {
                break;
            }
            let uid = self.backoff.remove(&(t, seq)).expect("present");
            self.place_active(&uid);
        }
    }

    /// Retries pods unschedulable for longer than [`MAX_UNSCHEDULABLE_DURATION`].
    fn flush_unschedulable_leftover(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .unsched
            .iter()
            .filter(|uid| {
                matches!(self.entries[*uid].place, Place::Unschedulable(t) if now.duration_since(t) >= MAX_UNSCHEDULABLE_DURATION)
            })
            .cloned()
            .collect();
        for uid in stale {
            self.place_ready_or_backoff(&uid, now);
        }
    }

    /// The next pod to schedule; it stays in the queue (in flight) until `done`, `unschedulable`
    /// or `error` is called.
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush_backoff(now);
        let (&key, _) = self.active.iter().next()?;
        let uid = self.active.remove(&key).expect("present");
        let cycle = self.move_cycle;
        let e = self.entries.get_mut(&uid).expect("entry");
        e.place = Place::InFlight;
        e.popped_cycle = cycle;
        e.qp.attempts += 1;
        Some(e.qp.clone())
    }

    /// The pod was scheduled (assumed): it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        self.delete(uid);
    }

    /// The pod did not fit. If a cluster event arrived while it was being scheduled it goes to
    /// backoff at once, otherwise it waits for an event in the unschedulable set.
    pub fn unschedulable(
        &mut self,
        uid: &str,
        plugins: BTreeSet<&'static str>,
        message: String,
        now: Instant,
    ) {
        let cycle = self.move_cycle;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        e.qp.last_failure = Some(now);
        e.qp.unschedulable_plugins = plugins;
        e.qp.last_message = Some(message);
        if e.popped_cycle < cycle {
            self.place_ready_or_backoff(uid, now);
        } else {
            e.place = Place::Unschedulable(now);
            self.unsched.insert(uid.to_string());
        }
    }

    /// An error (e.g. the binding failed): retry after backoff.
    pub fn error(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.place != Place::InFlight {
            return;
        }
        e.qp.last_failure = Some(now);
        self.place_ready_or_backoff(uid, now);
    }

    /// Re-adds a pod whose binding failed after it left the queue.
    pub fn requeue_failed_binding(&mut self, info: Arc<PodInfo>, attempts: u32, now: Instant) {
        let uid = info.uid.clone();
        self.delete(&uid);
        let qp = QueuedPod {
            info,
            attempts,
            last_failure: Some(now),
            unschedulable_plugins: BTreeSet::new(),
            last_message: None,
        };
        self.entries.insert(
            uid.clone(),
            Entry {
                qp,
                place: Place::InFlight,
                popped_cycle: self.move_cycle,
            },
        );
        self.place_ready_or_backoff(&uid, now);
    }

    /// Moves unschedulable pods the event may help to the active or backoff queue.
    pub fn on_cluster_event(&mut self, ev: ClusterEvent, now: Instant) {
        self.move_cycle += 1;
        let movable: Vec<String> = self
            .unsched
            .iter()
            .filter(|uid| ev.may_help(&self.entries[*uid].qp.unschedulable_plugins))
            .cloned()
            .collect();
        for uid in movable {
            self.place_ready_or_backoff(&uid, now);
        }
    }

    /// When the queue next needs attention (a backoff expiring or a leftover flush).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoff = self.backoff.keys().next().map(|(t, _)| *t);
        let leftover = self
            .unsched
            .iter()
            .filter_map(|uid| match self.entries[uid].place {
                Place::Unschedulable(t) => Some(t + MAX_UNSCHEDULABLE_DURATION),
                _ => None,
            })
            .min();
        match (backoff, leftover) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Periodic housekeeping: flushes leftovers and expired backoffs.
    pub fn tick(&mut self, now: Instant) {
        self.flush_unschedulable_leftover(now);
        self.flush_backoff(now);
    }

    /// Numbers of (active, backoff, unschedulable, in flight) pods.
    pub fn lens(&self) -> (usize, usize, usize, usize) {
        let unsched = self.unsched.len();
        let inflight = self
            .entries
            .values()
            .filter(|e| e.place == Place::InFlight)
            .count();
        (self.active.len(), self.backoff.len(), unsched, inflight)
    }

    /// Uids of all queued pods.
    pub fn uids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// The last failure message recorded for a queued pod.
    pub fn last_message(&self, uid: &str) -> Option<&str> {
        self.entries
            .get(uid)
            .and_then(|e| e.qp.last_message.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::pod;
    use serde_json::json;

    fn p(name: &str, prio: i32) -> Arc<PodInfo> {
        Arc::new(pod(name, json!({"priority": prio})))
    }

    fn plugins(names: &[&'static str]) -> BTreeSet<&'static str> {
        names.iter().copied().collect()
    }

    #[test]
    fn priority_then_fifo() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        for (n, prio) in [("a", 0), ("b", 10), ("c", 0), ("d", 10)] {
            q.add_or_update(p(n, prio), now);
        }
        let order: Vec<String> = std::iter::from_fn(|| q.pop(now))
            .map(|qp| qp.info.name.clone())
            .collect();
        assert_eq!(order, vec!["b", "d", "a", "c"]);
    }

    #[test]
    fn backoff_durations() {
        let q = SchedulingQueue::default();
        let got: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn unschedulable_waits_for_event_then_backs_off() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(p("a", 0), t0);
        let qp = q.pop(t0).unwrap();
        q.unschedulable(&qp.info.uid, plugins(&["NodeResourcesFit"]), "m".into(), t0);
        // Not retried by time alone (before the leftover flush).
        assert!(q.pop(t0 + Duration::from_secs(30)).is_none());
        assert_eq!(q.lens(), (0, 0, 1, 0));
        // An assigned pod being added does not help a resource failure.
        q.on_cluster_event(
            ClusterEvent::AssignedPodChange,
            t0 + Duration::from_millis(100),
        );
        assert_eq!(q.lens(), (0, 0, 1, 0));
        // A node event moves it to backoff (1 s after the failure), then active.
        q.on_cluster_event(ClusterEvent::NodeChange, t0 + Duration::from_millis(200));
        assert_eq!(q.lens(), (0, 1, 0, 0));
        assert!(q.pop(t0 + Duration::from_millis(500)).is_none());
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(1)));
        let again = q.pop(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(again.attempts, 2);
    }

    #[test]
    fn affinity_failures_move_on_pod_events() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(p("a", 0), t0);
        let qp = q.pop(t0).unwrap();
        q.unschedulable(&qp.info.uid, plugins(&["InterPodAffinity"]), "m".into(), t0);
        q.on_cluster_event(ClusterEvent::AssignedPodChange, t0 + Duration::from_secs(5));
        assert_eq!(q.lens(), (1, 0, 0, 0));
    }

    #[test]
    fn event_during_attempt_skips_unschedulable_set() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(p("a", 0), t0);
        let qp = q.pop(t0).unwrap();
        q.on_cluster_event(ClusterEvent::NodeChange, t0);
        q.unschedulable(&qp.info.uid, plugins(&["NodeResourcesFit"]), "m".into(), t0);
        assert_eq!(q.lens(), (0, 1, 0, 0));
    }

    #[test]
    fn leftover_flush_after_five_minutes() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(p("a", 0), t0);
        let qp = q.pop(t0).unwrap();
        q.unschedulable(&qp.info.uid, plugins(&["NodeAffinity"]), "m".into(), t0);
        assert_eq!(q.next_wakeup(), Some(t0 + MAX_UNSCHEDULABLE_DURATION));
        q.tick(t0 + MAX_UNSCHEDULABLE_DURATION);
        assert!(q.pop(t0 + MAX_UNSCHEDULABLE_DURATION).is_some());
    }

    #[test]
    fn delete_and_update() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(p("a", 0), t0);
        q.add_or_update(p("b", 0), t0);
        q.delete("uid-a");
        // Raising b's priority re-sorts it; an update of a queued pod keeps one entry.
        q.add_or_update(p("c", 5), t0);
        q.add_or_update(p("b", 9), t0);
        let order: Vec<String> = std::iter::from_fn(|| q.pop(t0))
            .map(|qp| qp.info.name.clone())
            .collect();
        assert_eq!(order, vec!["b", "c"]);
        // An unschedulable pod whose spec changes is retried.
        q.unschedulable("uid-b", plugins(&["NodeAffinity"]), "m".into(), t0);
        q.add_or_update(
            Arc::new(pod("b", json!({"priority": 9, "nodeSelector": {"x": "y"}}))),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(q.lens().0, 1);
    }
}
