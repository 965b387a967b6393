//! In-process watch fan-out of the SQLite backend: the writer publishes each committed
//! transaction to the hub, which hands it to every watcher whose prefix matches through a
//! bounded channel. A watch from a past revision registers first, then replays history up
//! to the revision it registered at, then continues with live events: no gap, no duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures::StreamExt;
use tokio::sync::mpsc;

use super::{read, Shared};
use crate::{Event, Result, Revision, StoreError, WatchStream};

struct Watcher {
    prefix: String,
    /// Only events at or after this revision are delivered.
    start: Revision,
    tx: mpsc::Sender<Vec<Event>>,
    lagged: Arc<AtomicBool>,
}

struct HubInner {
    last_rev: Revision,
    next_id: u64,
    watchers: HashMap<u64, Watcher>,
    closed: bool,
}

/// The set of live watchers.
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
}

struct Registration {
    id: u64,
    /// Revisions up to this one are in the database and will not be published again.
    last_rev: Revision,
    rx: mpsc::Receiver<Vec<Event>>,
    lagged: Arc<AtomicBool>,
}

impl Hub {
    pub fn new(revision: Revision) -> Self {
        Self {
            inner: Mutex::new(HubInner {
                last_rev: revision,
                next_id: 0,
                watchers: HashMap::new(),
                closed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, prefix: &str, start: Revision, capacity: usize) -> Option<Registration> {
        let mut inner = self.lock();
        if inner.closed {
            return None;
        }
        // tokio bounds a channel to usize::MAX >> 3 permits
        let (tx, rx) = mpsc::channel(capacity.clamp(1, 1 << 24));
        let lagged = Arc::new(AtomicBool::new(false));
        let id = inner.next_id;
        inner.next_id += 1;
        let start = if start == 0 {
            inner.last_rev + 1
        } else {
            start
        };
        inner.watchers.insert(
            id,
            Watcher {
                prefix: prefix.to_string(),
                start,
                tx,
                lagged: lagged.clone(),
            },
        );
        Some(Registration {
            id,
            last_rev: inner.last_rev,
            rx,
            lagged,
        })
    }

    fn unregister(&self, id: u64) {
        self.lock().watchers.remove(&id);
    }

    /// Number of registered watchers.
    pub fn watchers(&self) -> usize {
        self.lock().watchers.len()
    }

    /// Delivers the committed events of revision `rev` (all events share that revision).
    /// A watcher whose buffer is full is dropped and marked lagged.
    pub fn publish(&self, rev: Revision, events: &[Event]) {
        let mut inner = self.lock();
        inner.last_rev = inner.last_rev.max(rev);
        inner.watchers.retain(|_, w| {
            if rev < w.start {
                return true;
            }
            let matching: Vec<Event> =
                events.iter().filter(|e| e.kv.key.starts_with(&w.prefix)).cloned().collect();
            if matching.is_empty() {
                return true;
            }
            match w.tx.try_send(matching) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    w.lagged.store(true, Ordering::Release);
                    tracing::warn!(prefix = %w.prefix, revision = rev, "watcher lagged, closing it");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Ends every watch (the store is closing).
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.watchers.clear();
    }
}

/// Unregisters the watcher when its stream is dropped.
struct Guard {
    shared: Weak<Shared>,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.hub.unregister(self.id);
        }
    }
}

enum Phase {
    Replay { next: Revision, until: Revision },
    Live,
    Done,
}

struct State {
    shared: Arc<Shared>,
    prefix: String,
    phase: Phase,
    pending: VecDeque<Vec<Event>>,
    rx: mpsc::Receiver<Vec<Event>>,
    lagged: Arc<AtomicBool>,
    last_rev: Revision,
    _guard: Guard,
}

pub(crate) fn watch(shared: &Arc<Shared>, prefix: &str, start: Revision) -> Result<WatchStream> {
    if start < 0 {
        return Err(StoreError::Invalid(format!(
            "negative watch revision {start}"
        )));
    }
    let compacted = shared.compact_revision();
    if start != 0 && start < compacted {
        return Err(StoreError::Compacted {
            requested: start,
            compacted,
        });
    }
    let reg = shared
        .hub
        .register(prefix, start, shared.config.watch_buffer)
        .ok_or(StoreError::Closed)?;
    let phase = if start != 0 && start <= reg.last_rev {
        Phase::Replay {
            next: start,
            until: reg.last_rev,
        }
    } else {
        Phase::Live
    };
    let state = State {
        shared: shared.clone(),
        prefix: prefix.to_string(),
        phase,
        pending: VecDeque::new(),
        rx: reg.rx,
        lagged: reg.lagged,
        last_rev: 0,
        _guard: Guard {
            shared: Arc::downgrade(shared),
            id: reg.id,
        },
    };
    Ok(futures::stream::unfold(state, next_batch).boxed())
}

async fn next_batch(mut st: State) -> Option<(Result<Vec<Event>>, State)> {
    loop {
        if let Some(batch) = st.pending.pop_front() {
            st.last_rev = batch
                .first()
                .map(|e| e.kv.mod_revision)
                .unwrap_or(st.last_rev);
            return Some((Ok(batch), st));
        }
        match st.phase {
            Phase::Done => return None,
            Phase::Replay { next, until } => {
                if next > until {
                    st.phase = Phase::Live;
                    continue;
                }
                let to =
                    until.min(next.saturating_add(st.shared.config.watch_replay_chunk.max(1) - 1));
                let shared = st.shared.clone();
                let prefix = st.prefix.clone();
                let res = read::blocking(move || {
                    shared
                        .readers
                        .with(|conn| read::replay(conn, &prefix, next, to))
                })
                .await;
                match res {
                    Ok(batches) => {
                        st.pending.extend(batches);
                        st.phase = Phase::Replay {
                            next: to + 1,
                            until,
                        };
                    }
                    Err(e) => {
                        st.phase = Phase::Done;
                        return Some((Err(e), st));
                    }
                }
            }
            Phase::Live => match st.rx.recv().await {
                Some(batch) => {
                    let rev = batch.first().map(|e| e.kv.mod_revision).unwrap_or(0);
                    if rev <= st.last_rev {
                        // already delivered by the replay
                        continue;
                    }
                    st.last_rev = rev;
                    return Some((Ok(batch), st));
                }
                None => {
                    st.phase = Phase::Done;
                    let err = if st.lagged.load(Ordering::Acquire) {
                        StoreError::WatchLagged
                    } else {
                        StoreError::Closed
                    };
                    return Some((Err(err), st));
                }
            },
        }
    }
}
