//! SQLite schema, pragmas and opening of the database file (writer and reader connections).

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{SqliteError, Synchronous};
use crate::{LeaseId, Revision};

/// Version of the layout below, stored in `meta`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE log (
    id         INTEGER PRIMARY KEY,
    key        BLOB    NOT NULL,
    rev        INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    value      BLOB    NOT NULL,
    create_rev INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL,
    prev_rev   INTEGER NOT NULL
);
CREATE UNIQUE INDEX log_key_rev ON log (key, rev DESC);
CREATE INDEX log_rev ON log (rev);
CREATE TABLE current (
    key   BLOB    PRIMARY KEY,
    rev   INTEGER NOT NULL,
    lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX current_lease ON current (lease) WHERE lease != 0;
CREATE TABLE leases (
    id         INTEGER PRIMARY KEY,
    ttl        INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX leases_expiry ON leases (expires_ms);
";

/// What the writer needs to know about the database when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub revision: Revision,
    pub compact_revision: Revision,
    pub next_lease: LeaseId,
}

/// Takes the exclusive lock on `<path>.lock`, waiting up to `timeout` for a store that is
/// closing; the returned file holds the lock until dropped.
pub(crate) fn lock_file(path: &Path, timeout: Duration) -> Result<File, SqliteError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|source| SqliteError::LockFile {
            path: lock_path.clone(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(TryLockError::WouldBlock) => return Err(SqliteError::Locked(path.to_path_buf())),
            Err(TryLockError::Error(source)) => {
                return Err(SqliteError::LockFile {
                    path: lock_path,
                    source,
                })
            }
        }
    }
}

fn open_err(path: &Path) -> impl Fn(rusqlite::Error) -> SqliteError + '_ {
    move |source| SqliteError::Open {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens the writer connection, creating the schema on a new file, and loads the state.
pub(crate) fn open_writer(
    path: &Path,
    sync: Synchronous,
) -> Result<(Connection, State), SqliteError> {
    let err = open_err(path);
    // the store holds Secrets: a new file is private to its owner, and SQLite gives the
    // WAL and shared-memory files the database file's mode
    if !path.exists() {
        OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| SqliteError::Create {
                path: path.to_path_buf(),
                source,
            })?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(&err)?;
    // the first read of the header fails here on a file that is not a SQLite database
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(&err)?;
    if tables == 0 {
        // auto_vacuum can only be chosen before the first table exists
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(&err)?;
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::NotAStore {
            path: path.to_path_buf(),
            reason: format!("cannot switch to WAL journal mode (got {mode})"),
        });
    }
    let sync = match sync {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(&err)?;
    // keep the WAL from staying large after a checkpoint
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(&err)?;
    conn.pragma_update(None, "cache_size", -16 * 1024)
        .map_err(&err)?;
    // checkpoints run on their own thread (see checkpoint.rs), not inside commits
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(&err)?;
    if tables == 0 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA}
             INSERT INTO meta (name, value) VALUES
               ('schema_version', {SCHEMA_VERSION}), ('revision', 1),
               ('compact_revision', 0), ('next_lease', 1);
             COMMIT;"
        ))
        .map_err(&err)?;
    }
    let state = load_state(&conn).map_err(|reason| SqliteError::NotAStore {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok((conn, state))
}

fn meta(conn: &Connection, name: &str) -> Result<i64, String> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        r.get::<_, i64>(0)
    })
    .optional()
    .map_err(|e| format!("read meta {name}: {e}"))?
    .ok_or_else(|| format!("meta {name} is missing"))
}

fn load_state(conn: &Connection) -> Result<State, String> {
    let version = meta(conn, "schema_version")?;
    if version != SCHEMA_VERSION {
        return Err(format!(
            "schema version {version}, expected {SCHEMA_VERSION}"
        ));
    }
    let state = State {
        revision: meta(conn, "revision")?,
        compact_revision: meta(conn, "compact_revision")?,
        next_lease: meta(conn, "next_lease")?,
    };
    // the revision must never go backwards, whatever the meta row says
    let max_logged: Option<i64> = conn
        .query_row("SELECT max(rev) FROM log", [], |r| r.get(0))
        .map_err(|e| format!("read log: {e}"))?;
    if max_logged.unwrap_or(0) > state.revision || state.compact_revision > state.revision {
        return Err(format!(
            "inconsistent revisions: meta revision {}, compact revision {}, newest logged {}",
            state.revision,
            state.compact_revision,
            max_logged.unwrap_or(0)
        ));
    }
    Ok(state)
}

/// Opens a read-only reader connection on an existing store.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", true)?;
    conn.pragma_update(None, "cache_size", -8 * 1024)?;
    Ok(conn)
}

/// Opens the connection that checkpoints the WAL.
pub(crate) fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}
