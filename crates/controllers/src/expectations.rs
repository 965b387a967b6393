//! Controller expectations, as upstream's ControllerExpectations: after creating or deleting
//! pods a controller waits until its informer has observed them before acting again, so it never
//! over-creates or over-deletes from a stale cache. Expectations expire after five minutes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Entry {
    adds: i64,
    deletes: HashSet<String>,
    at: Instant,
}

/// Expected creations (a count) and deletions (pod keys) per controller key.
#[derive(Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Entry>>,
}

impl Expectations {
    /// True when the controller may act: nothing pending, or the expectations expired.
    pub fn satisfied(&self, key: &str) -> bool {
        let m = self.map.lock().unwrap();
        match m.get(key) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.at.elapsed() > TTL,
        }
    }

    pub fn expect_creations(&self, key: &str, n: usize) {
        let mut m = self.map.lock().unwrap();
        m.insert(
            key.to_string(),
            Entry {
                adds: n as i64,
                deletes: HashSet::new(),
                at: Instant::now(),
            },
        );
    }

    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        let mut m = self.map.lock().unwrap();
        m.insert(
            key.to_string(),
            Entry {
                adds: 0,
                deletes: pods.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// Expect `adds` creations and the deletion of `pods` at once.
    pub fn expect(&self, key: &str, adds: usize, pods: impl IntoIterator<Item = String>) {
        let mut m = self.map.lock().unwrap();
        m.insert(
            key.to_string(),
            Entry {
                adds: adds as i64,
                deletes: pods.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// A creation was observed (or will never happen because it failed).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.map.lock().unwrap().get_mut(key) {
            e.adds -= 1;
        }
    }

    /// A deletion of `pod` was observed (or will never happen).
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(e) = self.map.lock().unwrap().get_mut(key) {
            e.deletes.remove(pod);
        }
    }

    pub fn forget(&self, key: &str) {
        self.map.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_and_deletions() {
        let e = Expectations::default();
        assert!(e.satisfied("a"));
        e.expect_creations("a", 2);
        assert!(!e.satisfied("a"));
        e.creation_observed("a");
        assert!(!e.satisfied("a"));
        e.creation_observed("a");
        assert!(e.satisfied("a"));
        e.expect_deletions("a", ["ns/p1".to_string(), "ns/p2".to_string()]);
        e.deletion_observed("a", "ns/p1");
        assert!(!e.satisfied("a"));
        e.deletion_observed("a", "ns/p2");
        assert!(e.satisfied("a"));
        e.expect("c", 1, ["ns/p3".to_string()]);
        e.creation_observed("c");
        assert!(!e.satisfied("c"));
        e.deletion_observed("c", "ns/p3");
        assert!(e.satisfied("c"));
        e.expect_creations("b", 1);
        e.forget("b");
        assert!(e.satisfied("b"));
    }
}
