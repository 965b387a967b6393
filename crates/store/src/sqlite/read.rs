//! Read queries of the SQLite backend (range, get, watch history replay) and the pool of
//! reader connections they run on, off the async runtime.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{db_err, schema};
use crate::keyspace::{prefix_end, range_start};
use crate::{
    Event, EventType, KeyValue, RangeRequest, RangeResponse, Result, Revision, StoreError,
};

/// Idle reader connections; a read takes one (or opens a new one) and gives it back.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    closed: std::sync::atomic::AtomicBool,
}

impl Readers {
    pub fn new(path: &Path, max_idle: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            max_idle,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Closes the idle connections; reads fail with `Closed` from now on.
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Runs `f` on a reader connection; blocking, call from a blocking thread.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => schema::open_reader(&self.path).map_err(db_err)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle && !self.closed.load(std::sync::atomic::Ordering::Acquire) {
            idle.push(conn);
        }
        out
    }
}

/// Runs blocking database work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("store read task failed: {e}")))?
}

pub(crate) fn key_string(key: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(key).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Builds a key-value from columns `at..at+6`: key, value, create_rev, rev, version, lease.
fn kv_at(row: &Row<'_>, at: usize) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(row.get(at)?)?,
        value: Bytes::from(row.get::<_, Vec<u8>>(at + 1)?),
        create_revision: row.get(at + 2)?,
        mod_revision: row.get(at + 3)?,
        version: row.get(at + 4)?,
        lease: row.get(at + 5)?,
    })
}

const CURRENT_KV: &str = "SELECT c.key, l.value, l.create_rev, l.rev, l.version, l.lease
     FROM current c JOIN log l ON l.key = c.key AND l.rev = c.rev";

/// The live value of one key (also used by the writer inside its transaction).
pub(crate) fn get_current(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(&format!("{CURRENT_KV} WHERE c.key = ?1"))?
        .query_row([key.as_bytes()], |r| kv_at(r, 0))
        .optional()
}

pub(crate) fn get(conn: &Connection, key: &str) -> Result<Option<KeyValue>> {
    get_current(conn, key).map_err(db_err)
}

fn meta_value(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
}

/// Checks that `revision` (non-zero) can be read given the store's current and compaction
/// revisions.
pub(crate) fn check_revision(
    revision: Revision,
    current: Revision,
    compacted: Revision,
) -> Result<()> {
    if revision > current {
        return Err(StoreError::FutureRevision(revision));
    }
    if revision < compacted {
        return Err(StoreError::Compacted {
            requested: revision,
            compacted,
        });
    }
    Ok(())
}

pub(crate) fn range(conn: &Connection, req: &RangeRequest) -> Result<RangeResponse> {
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    let current = meta_value(&tx, "revision").map_err(db_err)?;
    let compacted = meta_value(&tx, "compact_revision").map_err(db_err)?;
    let at = if req.revision == 0 {
        current
    } else {
        req.revision
    };
    check_revision(at, current, compacted)?;

    let lo = range_start(req.prefix.as_bytes(), req.start_after.as_bytes());
    let hi = prefix_end(req.prefix.as_bytes());
    // fetch one more than the limit to know whether there are more
    let want = if req.limit == 0 {
        i64::MAX
    } else {
        i64::try_from(req.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1)
    };
    let mut kvs = Vec::new();
    if at == current {
        let bound = if hi.is_some() {
            "AND c.key < ?2"
        } else {
            "AND ?2 IS NULL"
        };
        let mut stmt = tx
            .prepare_cached(&format!(
                "{CURRENT_KV} WHERE c.key >= ?1 {bound} ORDER BY c.key LIMIT ?3"
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![lo, hi, want], |r| kv_at(r, 0))
            .map_err(db_err)?;
        for kv in rows {
            kvs.push(kv.map_err(db_err)?);
        }
    } else {
        // newest row of each key at or below `at`; rows come newest first within a key
        let bound = if hi.is_some() {
            "AND key < ?2"
        } else {
            "AND ?2 IS NULL"
        };
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT key, value, create_rev, rev, version, lease, deleted FROM log
                 WHERE key >= ?1 {bound} AND rev <= ?3 ORDER BY key, rev DESC"
            ))
            .map_err(db_err)?;
        let mut rows = stmt.query(params![lo, hi, at]).map_err(db_err)?;
        let mut last_key: Option<Vec<u8>> = None;
        while let Some(row) = rows.next().map_err(db_err)? {
            let key: Vec<u8> = row.get(0).map_err(db_err)?;
            if last_key.as_deref() == Some(key.as_slice()) {
                continue;
            }
            last_key = Some(key);
            if row.get::<_, i64>(6).map_err(db_err)? != 0 {
                continue;
            }
            kvs.push(kv_at(row, 0).map_err(db_err)?);
            if kvs.len() as i64 >= want {
                break;
            }
        }
    }
    drop(tx);
    let more = req.limit != 0 && kvs.len() > req.limit;
    kvs.truncate(if req.limit == 0 { kvs.len() } else { req.limit });
    Ok(RangeResponse {
        kvs,
        more,
        revision: at,
    })
}

/// Reads the events of revisions `from..=to` under `prefix`, one batch per revision,
/// failing with `Compacted` if `from` has been compacted meanwhile.
pub(crate) fn replay(
    conn: &Connection,
    prefix: &str,
    from: Revision,
    to: Revision,
) -> Result<Vec<Vec<Event>>> {
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    let compacted = meta_value(&tx, "compact_revision").map_err(db_err)?;
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let lo = prefix.as_bytes();
    let hi = prefix_end(lo);
    let bound = if hi.is_some() {
        "AND l.key < ?2"
    } else {
        "AND ?2 IS NULL"
    };
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT l.key, l.value, l.create_rev, l.rev, l.version, l.lease, l.deleted,
                    p.key, p.value, p.create_rev, p.rev, p.version, p.lease
             FROM log l LEFT JOIN log p ON l.prev_rev != 0 AND p.key = l.key AND p.rev = l.prev_rev
             WHERE l.rev >= ?3 AND l.rev <= ?4 AND l.key >= ?1 {bound}
             ORDER BY l.rev, l.id"
        ))
        .map_err(db_err)?;
    let mut rows = stmt.query(params![lo, hi, from, to]).map_err(db_err)?;
    let mut batches: Vec<Vec<Event>> = Vec::new();
    let mut last_rev = 0;
    while let Some(row) = rows.next().map_err(db_err)? {
        let deleted = row.get::<_, i64>(6).map_err(db_err)? != 0;
        let mut kv = kv_at(row, 0).map_err(db_err)?;
        let prev_kv = match row.get::<_, Option<Vec<u8>>>(7).map_err(db_err)? {
            Some(_) => Some(kv_at(row, 7).map_err(db_err)?),
            None => None,
        };
        let kind = if deleted {
            kv = deleted_kv(kv.key, kv.mod_revision);
            EventType::Delete
        } else {
            EventType::Put
        };
        let rev = kv.mod_revision;
        let event = Event { kind, kv, prev_kv };
        if rev != last_rev || batches.is_empty() {
            batches.push(Vec::new());
            last_rev = rev;
        }
        if let Some(batch) = batches.last_mut() {
            batch.push(event);
        }
    }
    Ok(batches)
}

/// The key-value a delete event carries, as etcd sends it: key and revision only.
pub(crate) fn deleted_kv(key: String, revision: Revision) -> KeyValue {
    KeyValue {
        key,
        value: Bytes::new(),
        create_revision: 0,
        mod_revision: revision,
        version: 0,
        lease: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_revision_table() {
        assert!(check_revision(5, 10, 3).is_ok());
        assert!(check_revision(3, 10, 3).is_ok());
        assert!(check_revision(10, 10, 3).is_ok());
        assert!(matches!(
            check_revision(2, 10, 3),
            Err(StoreError::Compacted {
                requested: 2,
                compacted: 3
            })
        ));
        assert!(matches!(
            check_revision(11, 10, 3),
            Err(StoreError::FutureRevision(11))
        ));
    }
}
