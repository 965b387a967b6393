//! The single writer thread of the SQLite backend: group commit of queued requests (each in
//! its own savepoint inside one SQLite transaction), publication of committed events to the
//! watch hub before acknowledging, lease expiry and automatic compaction.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::checkpoint::Checkpointer;
use super::read::{deleted_kv, get_current, key_string};
use super::schema::State;
use super::{db_err, Shared};
use crate::keyspace::check_ops;
use crate::{
    Compare, Event, EventType, KeyValue, LeaseId, Op, OpResult, Result, Revision, StoreError, Txn,
    TxnResponse,
};

/// A request to the writer.
pub(crate) enum Cmd {
    Txn(Txn, oneshot::Sender<Result<TxnResponse>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
    LeaseGrant(i64, oneshot::Sender<Result<LeaseId>>),
    LeaseRevoke(LeaseId, oneshot::Sender<Result<()>>),
}

/// The answer to a request, sent once its transaction is committed (or failed).
enum Reply {
    Txn(oneshot::Sender<Result<TxnResponse>>, Result<TxnResponse>),
    Unit(oneshot::Sender<Result<()>>, Result<()>),
    Lease(oneshot::Sender<Result<LeaseId>>, Result<LeaseId>),
}

impl Reply {
    fn is_ok(&self) -> bool {
        match self {
            Reply::Txn(_, r) => r.is_ok(),
            Reply::Unit(_, r) => r.is_ok(),
            Reply::Lease(_, r) => r.is_ok(),
        }
    }

    fn fail(self, msg: &str) -> Self {
        let err = || StoreError::Backend(msg.to_string());
        match self {
            Reply::Txn(tx, _) => Reply::Txn(tx, Err(err())),
            Reply::Unit(tx, _) => Reply::Unit(tx, Err(err())),
            Reply::Lease(tx, _) => Reply::Lease(tx, Err(err())),
        }
    }

    fn send(self) {
        // the requester may have gone away: nothing to do then
        let _ = match self {
            Reply::Txn(tx, r) => tx.send(r).map_err(drop),
            Reply::Unit(tx, r) => tx.send(r).map_err(drop),
            Reply::Lease(tx, r) => tx.send(r).map_err(drop),
        };
    }
}

/// Automatic compaction advances at most this many revisions per step.
const COMPACT_STEP: Revision = 1000;

/// Incremental vacuum frees at most this many pages per step.
const VACUUM_STEP: i64 = 1024;

/// Events of one committed revision.
type Published = (Revision, Vec<Event>);

pub(crate) fn spawn(
    conn: Connection,
    state: State,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Cmd>,
    lock: File,
    checkpointer: Checkpointer,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let now = Instant::now();
            let mut writer = Writer {
                conn,
                state,
                samples: VecDeque::new(),
                // expire leases that ran out while the store was down right away
                next_lease_check: now,
                next_compaction: later(now, shared.config.compaction_interval),
                vacuum_pending: false,
                compact_goal: 0,
                checkpointer,
                commits: 0,
                shared,
            };
            writer.run(rx);
            // the database stays consistent on any exit: only committed state is acknowledged;
            // the writer connection closes last and checkpoints the WAL into the file
            writer.checkpointer.stop();
            drop(writer);
            drop(lock);
        })
}

/// `now + d`, saturating at a year for absurd intervals instead of overflowing.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    state: State,
    /// (time, revision at that time), oldest first, for time-based retention.
    samples: VecDeque<(Instant, Revision)>,
    next_lease_check: Instant,
    next_compaction: Instant,
    /// A compaction committed since the last look at free pages.
    vacuum_pending: bool,
    /// Automatic compaction moves the compaction revision up to here in steps.
    compact_goal: Revision,
    checkpointer: Checkpointer,
    /// Commits since the checkpointer was last asked to run.
    commits: u32,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Cmd>) {
        let max_batch = self.shared.config.max_batch.max(1);
        loop {
            let now = Instant::now();
            let wake = if self.background_work() {
                now
            } else {
                self.next_compaction.min(self.next_lease_check)
            };
            let first = if wake <= now {
                rx.try_recv().ok()
            } else {
                match rx.recv_timeout(wake - now) {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            if let Some(first) = first {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match rx.try_recv() {
                        Ok(cmd) => batch.push(cmd),
                        Err(_) => break,
                    }
                }
                self.process(batch);
            }
            self.maintenance();
        }
        tracing::debug!(revision = self.state.revision, "store writer stopped");
    }

    fn exec(&self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(db_err)
    }

    /// Applies a batch of requests in one SQLite transaction, then publishes and replies.
    fn process(&mut self, batch: Vec<Cmd>) {
        let before = self.state;
        let mut replies = Vec::with_capacity(batch.len());
        let mut published: Vec<Published> = Vec::new();
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store write transaction failed to start");
            for cmd in batch {
                self.unapplied(cmd).fail(&msg).send();
            }
            return;
        }
        for cmd in batch {
            if let Err(e) = self.exec("SAVEPOINT cmd") {
                replies.push(self.unapplied(cmd).fail(&e.to_string()));
                continue;
            }
            let saved = self.state;
            let (reply, events) = self.apply(cmd);
            let closed = if reply.is_ok() {
                self.exec("RELEASE cmd")
            } else {
                self.state = saved;
                self.exec("ROLLBACK TO cmd; RELEASE cmd")
            };
            match closed {
                Ok(()) => {
                    published.extend(events);
                    replies.push(reply);
                }
                Err(e) => {
                    // the transaction is in an unknown state: abandon the whole batch
                    let msg = e.to_string();
                    let _ = self.exec("ROLLBACK");
                    self.state = before;
                    for r in replies {
                        r.fail(&msg).send();
                    }
                    reply.fail(&msg).send();
                    return;
                }
            }
        }
        if let Err(e) = self.exec("COMMIT") {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store commit failed");
            let _ = self.exec("ROLLBACK");
            self.state = before;
            for r in replies {
                r.fail(&msg).send();
            }
            return;
        }
        self.commits += 1;
        if self.commits >= 200 {
            self.commits = 0;
            self.checkpointer.poke();
        }
        // committed: make it visible, then acknowledge
        self.vacuum_pending |= self.state.compact_revision != before.compact_revision;
        self.shared
            .compact_revision
            .store(self.state.compact_revision, Ordering::Release);
        for (rev, events) in &published {
            self.shared.revision.store(*rev, Ordering::Release);
            self.shared.hub.publish(*rev, events);
        }
        self.shared
            .revision
            .store(self.state.revision, Ordering::Release);
        for r in replies {
            r.send();
        }
    }

    /// A reply holder for a request that could not be applied.
    fn unapplied(&self, cmd: Cmd) -> Reply {
        let err = || StoreError::Backend("not applied".into());
        match cmd {
            Cmd::Txn(_, tx) => Reply::Txn(tx, Err(err())),
            Cmd::Compact(_, tx) | Cmd::LeaseRevoke(_, tx) => Reply::Unit(tx, Err(err())),
            Cmd::LeaseGrant(_, tx) => Reply::Lease(tx, Err(err())),
        }
    }

    fn apply(&mut self, cmd: Cmd) -> (Reply, Option<Published>) {
        match cmd {
            Cmd::Txn(txn, tx) => match self.apply_txn(&txn) {
                Ok((resp, events)) => (Reply::Txn(tx, Ok(resp)), events),
                Err(e) => (Reply::Txn(tx, Err(e)), None),
            },
            Cmd::Compact(rev, tx) => (Reply::Unit(tx, self.apply_compact(rev)), None),
            Cmd::LeaseGrant(ttl, tx) => (Reply::Lease(tx, self.apply_lease_grant(ttl)), None),
            Cmd::LeaseRevoke(id, tx) => match self.apply_lease_revoke(id) {
                Ok(events) => (Reply::Unit(tx, Ok(())), events),
                Err(e) => (Reply::Unit(tx, Err(e)), None),
            },
        }
    }

    fn apply_txn(&mut self, txn: &Txn) -> Result<(TxnResponse, Option<Published>)> {
        let mut current = Vec::with_capacity(txn.compares.len());
        let mut succeeded = true;
        for cmp in &txn.compares {
            let key = match cmp {
                Compare::ModRevision(key, _) | Compare::Exists(key) => key,
            };
            let kv = get_current(&self.conn, key).map_err(db_err)?;
            succeeded &= evaluate(cmp, kv.as_ref());
            current.push(kv);
        }
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let (results, events) = self.apply_ops(ops)?;
        Ok((
            TxnResponse {
                succeeded,
                revision: self.state.revision,
                results,
                current: if succeeded { Vec::new() } else { current },
            },
            events,
        ))
    }

    /// Applies writes at the next revision; the revision only moves if something changed.
    fn apply_ops(&mut self, ops: &[Op]) -> Result<(Vec<OpResult>, Option<Published>)> {
        check_ops(ops)?;
        let rev = self.state.revision + 1;
        let mut results = Vec::with_capacity(ops.len());
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    if *lease != 0 && !self.lease_exists(*lease)? {
                        return Err(StoreError::LeaseNotFound(*lease));
                    }
                    let prev = get_current(&self.conn, key).map_err(db_err)?;
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        lease: *lease,
                    };
                    self.conn
                        .prepare_cached(
                            "INSERT INTO log (key, rev, deleted, value, create_rev, version, lease, prev_rev)
                             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                key.as_bytes(),
                                rev,
                                &value[..],
                                kv.create_revision,
                                kv.version,
                                lease,
                                prev.as_ref().map_or(0, |p| p.mod_revision),
                            ])
                        })
                        .map_err(db_err)?;
                    self.conn
                        .prepare_cached(
                            "INSERT INTO current (key, rev, lease) VALUES (?1, ?2, ?3)
                             ON CONFLICT (key) DO UPDATE SET rev = excluded.rev, lease = excluded.lease",
                        )
                        .and_then(|mut s| s.execute(params![key.as_bytes(), rev, lease]))
                        .map_err(db_err)?;
                    events.push(Event {
                        kind: EventType::Put,
                        kv,
                        prev_kv: prev.clone(),
                    });
                    results.push(OpResult { prev_kv: prev });
                }
                Op::Delete { key } => {
                    let Some(prev) = get_current(&self.conn, key).map_err(db_err)? else {
                        results.push(OpResult { prev_kv: None });
                        continue;
                    };
                    self.conn
                        .prepare_cached(
                            "INSERT INTO log (key, rev, deleted, value, create_rev, version, lease, prev_rev)
                             VALUES (?1, ?2, 1, x'', ?3, 0, 0, ?4)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                key.as_bytes(),
                                rev,
                                prev.create_revision,
                                prev.mod_revision
                            ])
                        })
                        .map_err(db_err)?;
                    self.conn
                        .prepare_cached("DELETE FROM current WHERE key = ?1")
                        .and_then(|mut s| s.execute([key.as_bytes()]))
                        .map_err(db_err)?;
                    events.push(Event {
                        kind: EventType::Delete,
                        kv: deleted_kv(key.clone(), rev),
                        prev_kv: Some(prev.clone()),
                    });
                    results.push(OpResult {
                        prev_kv: Some(prev),
                    });
                }
            }
        }
        if events.is_empty() {
            return Ok((results, None));
        }
        self.set_meta("revision", rev)?;
        self.state.revision = rev;
        Ok((results, Some((rev, events))))
    }

    fn set_meta(&self, name: &str, value: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")
            .and_then(|mut s| s.execute(params![name, value]))
            .map_err(db_err)?;
        Ok(())
    }

    fn lease_exists(&self, id: LeaseId) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM leases WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |_| Ok(())).optional())
            .map(|r| r.is_some())
            .map_err(db_err)
    }

    fn apply_compact(&mut self, rev: Revision) -> Result<()> {
        if rev <= self.state.compact_revision {
            return Err(StoreError::Compacted {
                requested: rev,
                compacted: self.state.compact_revision,
            });
        }
        if rev > self.state.revision {
            return Err(StoreError::FutureRevision(rev));
        }
        // keep every row at or after `rev` and, per key, the newest row before it unless
        // that is a tombstone: exactly what reads and watches from `rev` on can need
        let removed = self
            .conn
            .prepare_cached(
                "DELETE FROM log WHERE rev < ?1 AND (deleted = 1 OR EXISTS (
                    SELECT 1 FROM log n WHERE n.key = log.key AND n.rev > log.rev AND n.rev < ?1))",
            )
            .and_then(|mut s| s.execute([rev]))
            .map_err(db_err)?;
        self.set_meta("compact_revision", rev)?;
        self.state.compact_revision = rev;
        tracing::debug!(revision = rev, removed, "store compacted");
        Ok(())
    }

    fn apply_lease_grant(&mut self, ttl: i64) -> Result<LeaseId> {
        if ttl <= 0 {
            return Err(StoreError::Invalid(format!(
                "lease ttl must be positive, got {ttl}"
            )));
        }
        let id = self.state.next_lease;
        let expires = now_ms().saturating_add(ttl.saturating_mul(1000));
        self.conn
            .prepare_cached("INSERT INTO leases (id, ttl, expires_ms) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![id, ttl, expires]))
            .map_err(db_err)?;
        self.set_meta("next_lease", id + 1)?;
        self.state.next_lease = id + 1;
        Ok(id)
    }

    fn apply_lease_revoke(&mut self, id: LeaseId) -> Result<Option<Published>> {
        if !self.lease_exists(id)? {
            return Err(StoreError::LeaseNotFound(id));
        }
        let keys = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT key FROM current WHERE lease = ?1 ORDER BY key")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([id], |r| key_string(r.get(0)?))
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(db_err)?
        };
        let ops: Vec<Op> = keys.into_iter().map(|key| Op::Delete { key }).collect();
        let (_, events) = self.apply_ops(&ops)?;
        self.conn
            .prepare_cached("DELETE FROM leases WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(db_err)?;
        Ok(events)
    }

    fn maintenance(&mut self) {
        let now = Instant::now();
        if now >= self.next_lease_check {
            self.next_lease_check = later(now, self.shared.config.lease_check_interval);
            self.expire_leases();
        }
        let compacting = self.compact_goal > self.state.compact_revision;
        if !compacting && (now >= self.next_compaction || self.history_too_long()) {
            self.next_compaction = later(now, self.shared.config.compaction_interval);
            self.auto_compact(now);
        }
        // big deletes and vacuums are done in steps between write batches, so writes
        // never wait long behind them
        if self.compact_goal > self.state.compact_revision {
            let step = self
                .compact_goal
                .min(self.state.compact_revision + COMPACT_STEP);
            let (tx, mut rx) = oneshot::channel();
            self.process(vec![Cmd::Compact(step, tx)]);
            if let Ok(Err(e)) = rx.try_recv() {
                tracing::warn!(error = %e, revision = step, "automatic compaction failed");
                self.compact_goal = 0;
            }
        } else if self.vacuum_pending {
            self.vacuum_pending = self.vacuum();
        }
    }

    /// Whether compaction or vacuum steps are waiting.
    fn background_work(&self) -> bool {
        self.compact_goal > self.state.compact_revision || self.vacuum_pending
    }

    fn expire_leases(&mut self) {
        let expired = self
            .conn
            .prepare_cached(
                "SELECT id FROM leases WHERE expires_ms <= ?1 ORDER BY expires_ms LIMIT 256",
            )
            .and_then(|mut s| {
                s.query_map([now_ms()], |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            });
        match expired {
            Ok(ids) if !ids.is_empty() => {
                tracing::debug!(count = ids.len(), "expiring leases");
                let batch = ids
                    .into_iter()
                    .map(|id| Cmd::LeaseRevoke(id, oneshot::channel().0))
                    .collect();
                self.process(batch);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "looking for expired leases failed"),
        }
    }

    /// Whether history exceeds the revision bound by a quarter: then compaction runs without
    /// waiting for its interval, so heavy churn cannot grow the file between runs.
    fn history_too_long(&self) -> bool {
        match self.shared.config.retain_revisions {
            Some(keep) => {
                let keep = keep.max(1);
                self.state.revision - self.state.compact_revision > keep + (keep / 4).max(100)
            }
            None => false,
        }
    }

    fn auto_compact(&mut self, now: Instant) {
        let config = &self.shared.config;
        let rev = self.state.revision;
        self.samples.push_back((now, rev));
        let mut target = 0;
        if let Some(keep) = config.retain_revisions {
            target = target.max(rev - keep.max(1) + 1);
        }
        if let Some(keep) = config.retain_duration {
            while self.samples.len() >= 2 && now.duration_since(self.samples[1].0) >= keep {
                self.samples.pop_front();
            }
            if let Some(&(at, sampled)) = self.samples.front() {
                if now.duration_since(at) >= keep {
                    target = target.max(sampled);
                }
            }
        } else {
            self.samples.clear();
        }
        if target > self.state.compact_revision && target <= rev {
            self.compact_goal = target;
        }
    }

    /// Returns free pages to the file system once a good part of the file is free (under
    /// steady churn the free pages are reused instead), a step at a time; true if more
    /// steps are needed.
    fn vacuum(&self) -> bool {
        let count = |pragma: &str| -> rusqlite::Result<i64> {
            self.conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
        };
        match (count("freelist_count"), count("page_count")) {
            (Ok(free), Ok(pages)) if free > 256 && free * 4 > pages => {
                // the pragma frees one page per row: run it to completion
                let run = self
                    .conn
                    .prepare(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))
                    .and_then(|mut s| {
                        let mut rows = s.query([])?;
                        while rows.next()?.is_some() {}
                        Ok(())
                    });
                match run {
                    Ok(()) => {
                        tracing::debug!(free_pages = free, "store file shrunk");
                        free > VACUUM_STEP
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "incremental vacuum failed");
                        false
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "reading page counts failed");
                false
            }
            _ => false,
        }
    }
}

/// Whether a compare holds for the key's current value.
fn evaluate(cmp: &Compare, kv: Option<&KeyValue>) -> bool {
    match cmp {
        Compare::ModRevision(_, rev) => kv.map_or(0, |kv| kv.mod_revision) == *rev,
        Compare::Exists(_) => kv.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn kv(rev: Revision) -> KeyValue {
        KeyValue {
            key: "k".into(),
            value: Bytes::from_static(b"v"),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0,
        }
    }

    #[test]
    fn evaluate_table() {
        let k = || "k".to_string();
        let cases = [
            (Compare::ModRevision(k(), 0), None, true),
            (Compare::ModRevision(k(), 0), Some(kv(3)), false),
            (Compare::ModRevision(k(), 3), Some(kv(3)), true),
            (Compare::ModRevision(k(), 2), Some(kv(3)), false),
            (Compare::ModRevision(k(), 3), None, false),
            (Compare::Exists(k()), None, false),
            (Compare::Exists(k()), Some(kv(1)), true),
        ];
        for (cmp, current, want) in cases {
            assert_eq!(
                evaluate(&cmp, current.as_ref()),
                want,
                "{cmp:?} on {current:?}"
            );
        }
    }
}
