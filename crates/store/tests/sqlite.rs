//! The shared store suite run against the SQLite backend, plus what only an embedded file
//! store has: restart, corrupt or busy files, watch back-pressure, bounded file size under
//! churn and durability of acknowledged writes across kill -9.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use store::sqlite::{SqliteConfig, SqliteError, SqliteStore};
use store::testsuite::Fixture;
use store::{EventType, Op, RangeRequest, Store, StoreError, Txn};

fn test_config() -> SqliteConfig {
    SqliteConfig {
        lease_check_interval: Duration::from_millis(100),
        ..Default::default()
    }
}

async fn make() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("state.db"), test_config()).expect("open");
    Fixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    }
}

store::store_testsuite!(make);

async fn put(store: &SqliteStore, key: &str, value: &[u8]) -> i64 {
    put_leased(store, key, value, 0).await
}

async fn put_leased(store: &SqliteStore, key: &str, value: &[u8], lease: i64) -> i64 {
    store
        .txn(Txn {
            success: vec![Op::Put {
                key: key.into(),
                value: Bytes::copy_from_slice(value),
                lease,
            }],
            ..Default::default()
        })
        .await
        .expect("put")
        .revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path, test_config()).unwrap();
    put(&store, "/registry/a", b"1").await;
    put(&store, "/registry/a", b"2").await;
    let lease = store.lease_grant(3600).await.unwrap();
    put_leased(&store, "/registry/b", b"leased", lease).await;
    let compacted = store.current_revision().await.unwrap();
    store.compact(compacted).await.unwrap();
    put(&store, "/registry/gone", b"x").await;
    let last = store
        .txn(Txn {
            success: vec![Op::Delete {
                key: "/registry/gone".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .revision;
    store.close().await;
    assert!(matches!(store.current_revision().await, Ok(r) if r == last));
    assert!(matches!(
        store.txn(Txn::default()).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        store.get("/registry/a").await,
        Err(StoreError::Closed)
    ));
    drop(store);

    let store = SqliteStore::open(&path, test_config()).unwrap();
    assert_eq!(
        store.current_revision().await.unwrap(),
        last,
        "revision restored"
    );
    assert_eq!(store.oldest_revision().await.unwrap(), compacted);
    let a = store.get("/registry/a").await.unwrap().unwrap();
    assert_eq!((&a.value[..], a.version), (&b"2"[..], 2));
    assert_eq!(
        store.get("/registry/b").await.unwrap().unwrap().lease,
        lease
    );
    assert_eq!(store.get("/registry/gone").await.unwrap(), None);
    // the revision only moves forward, even though the newest write was a delete
    assert_eq!(put(&store, "/registry/c", b"c").await, last + 1);
    // new leases never reuse an old id; the old lease is still there
    assert_ne!(store.lease_grant(10).await.unwrap(), lease);
    store.lease_revoke(lease).await.expect("lease persisted");
    assert_eq!(store.get("/registry/b").await.unwrap(), None);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_expires_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path, test_config()).unwrap();
    let lease = store.lease_grant(1).await.unwrap();
    put_leased(&store, "/registry/events/e", b"event", lease).await;
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&path, test_config()).unwrap();
    let from = store.current_revision().await.unwrap();
    let mut w = store.watch("/registry/events/", from).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let event = loop {
        let batch = tokio::time::timeout_at(deadline, w.next())
            .await
            .expect("lease expiry after restart")
            .unwrap()
            .unwrap();
        if let Some(e) = batch.into_iter().find(|e| e.kind == EventType::Delete) {
            break e;
        }
    };
    assert_eq!(event.kv.key, "/registry/events/e");
    assert_eq!(store.get("/registry/events/e").await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path, test_config()).unwrap();
    put(&store, "/registry/secrets/ns/s", b"secret").await;
    for name in ["state.db", "state.db-wal", "state.db-shm", "state.db.lock"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {mode:o}");
    }
    store.close().await;
}

#[test]
fn missing_directory_is_a_clear_error() {
    let err = SqliteStore::open("/nonexistent-dir/state.db", test_config())
        .err()
        .expect("no such directory");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent-dir/state.db"), "{msg}");
    assert!(msg.contains("No such file or directory"), "{msg}");
}

#[test]
fn corrupt_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, vec![0x5au8; 8192]).unwrap();
    let err = SqliteStore::open(&path, test_config())
        .err()
        .expect("opening garbage fails");
    assert!(matches!(err, SqliteError::Open { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("state.db") && msg.contains("not a database"),
        "{msg}"
    );
    let as_store: StoreError = err.into();
    assert!(matches!(as_store, StoreError::Backend(_)));
}

#[test]
fn foreign_sqlite_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE things (id INTEGER PRIMARY KEY);")
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path, test_config())
        .err()
        .expect("not our schema");
    assert!(matches!(err, SqliteError::NotAStore { .. }), "{err:?}");
}

#[tokio::test]
async fn second_instance_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let first = SqliteStore::open(&path, test_config()).unwrap();
    let config = SqliteConfig {
        open_lock_timeout: Duration::from_millis(50),
        ..test_config()
    };
    let err = SqliteStore::open(&path, config.clone())
        .err()
        .expect("locked");
    assert!(matches!(err, SqliteError::Locked(_)), "{err:?}");
    first.close().await;
    let again = SqliteStore::open(&path, config).expect("free after close");
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_lags_and_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        watch_buffer: 4,
        ..test_config()
    };
    let store = SqliteStore::open(dir.path().join("state.db"), config).unwrap();
    let mut slow = store.watch("/registry/", 0).await.unwrap();
    let mut fast = store.watch("/registry/", 0).await.unwrap();
    assert_eq!(store.watcher_count(), 2);
    let mut fast_seen = 0;
    for i in 0..20 {
        put(&store, &format!("/registry/k{i}"), b"v").await;
        fast_seen += fast.next().await.unwrap().unwrap().len();
    }
    assert_eq!(fast_seen, 20);
    // the slow watcher gets what it buffered, then the lag error, then the end
    let mut delivered = 0;
    let end = loop {
        match slow
            .next()
            .await
            .expect("lagged watch reports before ending")
        {
            Ok(batch) => delivered += batch.len(),
            Err(e) => break e,
        }
    };
    assert!(matches!(end, StoreError::WatchLagged), "{end:?}");
    assert_eq!(delivered, 4);
    assert!(slow.next().await.is_none());
    assert_eq!(store.watcher_count(), 1, "the lagged watcher was dropped");
    drop(fast);
    assert_eq!(store.watcher_count(), 0, "a dropped watch unregisters");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_bounds_history() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig {
        compaction_interval: Duration::from_millis(50),
        retain_revisions: Some(10),
        retain_duration: None,
        ..test_config()
    };
    let store = SqliteStore::open(dir.path().join("state.db"), config).unwrap();
    let first = put(&store, "/registry/a", b"0").await;
    for i in 1..50 {
        put(&store, "/registry/a", format!("{i}").as_bytes()).await;
    }
    let last = store.current_revision().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.oldest_revision().await.unwrap() < last - 9 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no automatic compaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.oldest_revision().await.unwrap(),
        last - 9,
        "keeps the last 10 revisions"
    );
    let old = store
        .range(RangeRequest {
            prefix: "/registry/".into(),
            revision: first,
            ..Default::default()
        })
        .await;
    assert!(matches!(old, Err(StoreError::Compacted { .. })), "{old:?}");
    let kv = store.get("/registry/a").await.unwrap().unwrap();
    assert_eq!((&kv.value[..], kv.version), (&b"49"[..], 50));
    store.close().await;
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// 100,000 updates of 100 objects of about 1 KB: automatic compaction keeps the file small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_keeps_file_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let config = SqliteConfig {
        compaction_interval: Duration::from_millis(500),
        ..test_config()
    };
    let store = Arc::new(SqliteStore::open(&path, config).unwrap());
    let value = vec![b'x'; 1000];
    let writers = 16;
    let updates = 100_000;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in (w..updates).step_by(writers) {
                    put(
                        &store,
                        &format!("/registry/configmaps/ns/cm-{:03}", i % 100),
                        &value,
                    )
                    .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rev = store.current_revision().await.unwrap();
    assert!(rev > updates as i64);
    let before = file_size(&path);
    // one final explicit compaction, as the background would do on its next run
    store.compact(rev - 100).await.ok();
    let count = store
        .range(RangeRequest {
            prefix: "/registry/configmaps/".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .kvs
        .len();
    assert_eq!(count, 100);
    store.close().await;
    let db = file_size(&path);
    let wal = file_size(&path.with_extension("db-wal"));
    eprintln!(
        "churn: revision {rev}, db {before} bytes before final compaction, {db} after, wal {wal}"
    );
    assert!(db < 50 * 1024 * 1024, "database file is {db} bytes");
    assert_eq!(wal, 0, "closing folds the wal into the database file");
}

const KILL9_ENV: &str = "OXKUBE_STORE_KILL9_DB";
const KILL9_ROUND_ENV: &str = "OXKUBE_STORE_KILL9_ROUND";

/// Child side of `acknowledged_writes_survive_kill_9`: writes until killed, printing each
/// acknowledged write, with compaction running all the time. Does nothing unless started by
/// that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_child() {
    let Ok(path) = std::env::var(KILL9_ENV) else {
        return;
    };
    let round = std::env::var(KILL9_ROUND_ENV).unwrap_or_default();
    let config = SqliteConfig {
        compaction_interval: Duration::from_millis(20),
        retain_revisions: Some(100),
        ..SqliteConfig::default()
    };
    let store = Arc::new(SqliteStore::open(&path, config).unwrap());
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let round = round.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/registry/k/{round}/{w}-{i}");
                    let rev = put(&store, &key, key.as_bytes()).await;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {key} {rev}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Runs the child until it acknowledged `n` writes, SIGKILLs it and returns every
/// acknowledgement it printed.
fn run_child_until_killed(path: &Path, round: usize, n: usize) -> Vec<(String, i64)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["kill9_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(KILL9_ENV, path)
        .env(KILL9_ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let parse = |line: &str| {
        let rest = line.strip_prefix("ack ")?;
        let (key, rev) = rest.split_once(' ')?;
        Some((key.to_string(), rev.parse::<i64>().ok()?))
    };
    while acked.len() < n {
        let Some(line) = lines.next() else { break };
        if let Some(ack) = parse(&line.unwrap()) {
            acked.push(ack);
        }
    }
    // SIGKILL while the child keeps writing
    child.kill().expect("kill -9 child");
    child.wait().unwrap();
    // acknowledgements already in the pipe count too
    for line in lines.map_while(|l| l.ok()) {
        if let Some(ack) = parse(&line) {
            acked.push(ack);
        }
    }
    assert!(acked.len() >= n, "child wrote only {} keys", acked.len());
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut acked = Vec::new();
    let mut last_revision = 0;
    for (round, n) in [300, 1000, 2000].into_iter().enumerate() {
        acked.extend(run_child_until_killed(&path, round, n));
        let check: String = rusqlite::Connection::open(&path)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
            .expect("integrity check");
        assert_eq!(check, "ok", "database damaged by kill -9");
        let store = SqliteStore::open(&path, test_config()).expect("reopen after kill -9");
        let current = store.current_revision().await.unwrap();
        assert!(
            current >= last_revision,
            "revision went back from {last_revision} to {current}"
        );
        for (key, rev) in &acked {
            let kv = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged {key} lost"));
            assert_eq!((kv.mod_revision, &kv.value[..]), (*rev, key.as_bytes()));
            assert!(*rev <= current);
        }
        eprintln!(
            "kill -9 round {round}: {} acknowledged writes all present, revision {current}",
            acked.len()
        );
        last_revision = current;
        store.close().await;
    }
}
