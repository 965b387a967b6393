//! Per-key exponential backoff as upstream's `flowcontrol.Backoff`, used for CrashLoopBackOff
//! (key: pod uid + container name + spec hash) and image pull backoff (key: pod uid + image).
//!
//! Semantics (upstream): `next(key, event_time)` starts at `initial` when the key is unknown or
//! its last update is more than `2 * max` before `event_time` (the container ran long enough to
//! count as stable), otherwise doubles up to `max`; `in_backoff_since(key, event_time)` is true
//! while less than the current backoff has passed since `event_time`. Sans-IO: the caller passes
//! the current time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

/// Exponential per-key backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event_time: Instant, last_update: Instant) -> bool {
        event_time.saturating_duration_since(last_update) > self.max * 2
    }

    /// The current backoff of `key` (zero when unknown).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map(|e| e.backoff).unwrap_or_default()
    }

    /// Records one more failure of `key` observed at `event_time`; `now` is the current time.
    pub fn next(&mut self, key: &str, event_time: Instant, now: Instant) {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(event_time, e.last_update) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    /// Whether `key` is still backing off from a failure at `event_time`; returns the time
    /// left when it is.
    pub fn in_backoff_since(
        &self,
        key: &str,
        event_time: Instant,
        now: Instant,
    ) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if self.expired(event_time, e.last_update) {
            return None;
        }
        let since = now.saturating_duration_since(event_time);
        (since < e.backoff).then(|| e.backoff - since)
    }

    /// Whether `key` is still backing off counting from its last update (upstream
    /// `IsInBackOffSinceUpdate`, used for image pulls); returns the time left when it is.
    pub fn in_backoff_since_update(&self, key: &str, now: Instant) -> Option<Duration> {
        let e = self.entries.get(key)?;
        let since = now.saturating_duration_since(e.last_update);
        (since < e.backoff).then(|| e.backoff - since)
    }

    /// Forgets `key`.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every key starting with `prefix` (a pod's entries when it goes away).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_up_to_max() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S(10), S(300));
        let mut want = vec![10, 20, 40, 80, 160, 300, 300];
        let mut now = t0;
        for w in want.drain(..) {
            // each failure happens shortly after the previous restart
            b.next("k", now, now);
            assert_eq!(b.get("k"), S(w));
            now += S(w + 1);
        }
    }

    #[test]
    fn in_backoff_table() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S(10), S(300));
        // unknown key: never in backoff
        assert_eq!(b.in_backoff_since("k", t0, t0), None);
        b.next("k", t0, t0);
        let cases = [
            (0u64, Some(S(10))),
            (3, Some(S(7))),
            (9, Some(S(1))),
            (10, None),
            (60, None),
        ];
        for (after, want) in cases {
            assert_eq!(b.in_backoff_since("k", t0, t0 + S(after)), want, "{after}");
        }
    }

    #[test]
    fn resets_after_running_twice_max() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S(10), S(300));
        b.next("k", t0, t0);
        b.next("k", t0 + S(11), t0 + S(11));
        assert_eq!(b.get("k"), S(20));
        // the container then ran for more than 10 minutes before failing again
        let failed = t0 + S(11) + S(601);
        assert_eq!(b.in_backoff_since("k", failed, failed), None);
        b.next("k", failed, failed);
        assert_eq!(b.get("k"), S(10));
    }

    #[test]
    fn configurable_initial_and_max() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(100), S(1));
        let mut now = t0;
        let mut seen = vec![];
        for _ in 0..6 {
            b.next("k", now, now);
            seen.push(b.get("k").as_millis());
            now += Duration::from_millis(10);
        }
        assert_eq!(seen, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn since_update_counts_from_the_last_failure() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S(10), S(300));
        assert_eq!(b.in_backoff_since_update("img", t0), None);
        b.next("img", t0, t0);
        assert_eq!(b.in_backoff_since_update("img", t0 + S(4)), Some(S(6)));
        assert_eq!(b.in_backoff_since_update("img", t0 + S(10)), None);
        b.next("img", t0 + S(10), t0 + S(10));
        assert_eq!(b.in_backoff_since_update("img", t0 + S(25)), Some(S(5)));
    }

    #[test]
    fn forget_prefix_drops_only_that_pod() {
        let t0 = Instant::now();
        let mut b = Backoff::new(S(10), S(300));
        b.next("uid1/a", t0, t0);
        b.next("uid2/a", t0, t0);
        b.forget_prefix("uid1/");
        assert_eq!(b.get("uid1/a"), Duration::ZERO);
        assert_eq!(b.get("uid2/a"), S(10));
    }
}

/// A duration formatted as Go's `time.Duration.String` for whole seconds (`10s`, `1m20s`,
/// `5m0s`), as upstream's backoff messages print it.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        return format!("{s}s");
    }
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

#[cfg(test)]
mod fmt_tests {
    use super::*;

    #[test]
    fn go_duration_table() {
        for (secs, want) in [
            (0, "0s"),
            (10, "10s"),
            (80, "1m20s"),
            (160, "2m40s"),
            (300, "5m0s"),
            (3720, "1h2m0s"),
        ] {
            assert_eq!(go_duration(Duration::from_secs(secs)), want);
        }
    }
}
