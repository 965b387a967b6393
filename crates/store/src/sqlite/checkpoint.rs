//! WAL checkpoints on their own thread and connection, so the writer never pays for copying
//! the WAL back into the database file (and its fsync) while requests wait.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::schema;

/// How often the WAL is checkpointed when the writer does not ask earlier.
const PERIOD: Duration = Duration::from_secs(1);

/// A WAL longer than this (about 32 MB with 4 KB pages) is checkpointed even if that makes
/// the writer wait.
const LONG_WAL_FRAMES: i64 = 8192;

/// The checkpointer thread; dropping `signal` (via [`Checkpointer::stop`]) ends it.
pub(crate) struct Checkpointer {
    signal: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(path: &Path) -> Result<Self, super::SqliteError> {
        let conn = schema::open_checkpointer(path).map_err(|source| super::SqliteError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (signal, rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || run(conn, rx))
            .map_err(super::SqliteError::Thread)?;
        Ok(Self {
            signal: Some(signal),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint soon (coalesced with one already asked for).
    pub fn poke(&self) {
        if let Some(signal) = &self.signal {
            let _ = signal.try_send(());
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.signal = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a checkpoint; returns (frames in the WAL, frames checkpointed).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

fn run(conn: Connection, rx: mpsc::Receiver<()>) {
    loop {
        match rx.recv_timeout(PERIOD) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // PASSIVE copies what it can without blocking the writer or readers; under steady
        // writes it never catches up with the end of the WAL, which then cannot restart from
        // its beginning, so a long WAL gets a TRUNCATE checkpoint (the writer waits for it)
        match checkpoint(&conn, "PASSIVE") {
            Ok((log, done)) if log > LONG_WAL_FRAMES => {
                tracing::debug!(
                    wal_frames = log,
                    checkpointed = done,
                    "wal is long, truncating"
                );
                if let Err(e) = checkpoint(&conn, "TRUNCATE") {
                    tracing::warn!(error = %e, "wal checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "wal checkpoint failed"),
        }
    }
}
