//! A deduplicating work queue of object keys, like client-go's workqueue: a key is processed by
//! at most one worker at a time, and a key added while it is processed is processed again after.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
}

/// A shared work queue of keys (`namespace/name` or `name`).
#[derive(Clone, Default)]
pub struct Queue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl Queue {
    pub fn new() -> Queue {
        Queue::default()
    }

    /// Add a key unless it is already waiting.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.state.lock().unwrap();
        if !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.queue.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Add a key after a delay.
    pub fn add_after(&self, key: impl Into<String>, after: Duration) {
        let key = key.into();
        if after.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            q.add(key);
        });
    }

    /// Wait for the next key; the caller must call `done` when finished with it.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.state.lock().unwrap();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    if !s.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Mark a key processed; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.state.lock().unwrap();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Number of keys waiting.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Run `workers` loops that take keys from `queue` and pass them to `sync`; a failed key is
/// retried with exponential backoff (5 ms doubling up to 30 s), as client-go's rate limiter.
pub async fn run_workers<F, Fut>(name: &'static str, queue: Queue, workers: usize, sync: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let sync = Arc::new(sync);
    let failures: Arc<Mutex<std::collections::HashMap<String, u32>>> = Default::default();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (queue, sync, failures) = (queue.clone(), sync.clone(), failures.clone());
        set.spawn(async move {
            loop {
                let key = queue.next().await;
                let res = sync(key.clone()).await;
                match res {
                    Ok(()) => {
                        failures.lock().unwrap().remove(&key);
                    }
                    Err(e) => {
                        let n = {
                            let mut f = failures.lock().unwrap();
                            let n = f.entry(key.clone()).or_insert(0);
                            *n += 1;
                            *n
                        };
                        let delay = Duration::from_millis(5u64.saturating_mul(1 << n.min(13))).min(Duration::from_secs(30));
                        tracing::debug!(controller = name, key = %key, error = %format!("{e:#}"), "sync failed; retrying");
                        queue.add_after(key.clone(), delay);
                    }
                }
                queue.done(&key);
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// How often controllers re-queue every object they own, as the resync period of upstream's
/// shared informers.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(30);

/// [`run_workers`], plus a resync loop that adds every key `keys` lists each
/// [`RESYNC_PERIOD`].
pub async fn run_workers_with_resync<K, I, F, Fut>(
    name: &'static str,
    queue: Queue,
    workers: usize,
    keys: K,
    sync: F,
) where
    K: Fn() -> I + Send + 'static,
    I: IntoIterator<Item = String>,
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let q = queue.clone();
    let resync = async move {
        loop {
            tokio::time::sleep(RESYNC_PERIOD).await;
            for key in keys() {
                q.add(key);
            }
        }
    };
    tokio::join!(resync, run_workers(name, queue, workers, sync));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_dirty_keys() {
        let q = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.next().await;
        assert_eq!(k, "a");
        // added while processing: not handed out until done
        q.add("a");
        assert_eq!(q.next().await, "b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.next().await, "a");
        q.done("a");
        q.done("b");
        assert!(q.is_empty());
    }
}
