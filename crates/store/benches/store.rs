//! Store benchmark (`cargo bench -p store`): write throughput with 16 concurrent writers,
//! write latency at 200 writes/s from one writer, file size after 100,000 updates of 100
//! objects, and watch fan-out latency to 500 watchers. Prints figures; asserts nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use store::sqlite::{SqliteConfig, SqliteStore, Synchronous};
use store::{Op, Store, Txn};

fn put_txn(key: String, value: Bytes) -> Txn {
    Txn {
        success: vec![Op::Put {
            key,
            value,
            lease: 0,
        }],
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn open(dir: &tempfile::TempDir, name: &str, config: SqliteConfig) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir.path().join(name), config).expect("open store"))
}

async fn concurrent_writes(
    dir: &tempfile::TempDir,
    sync: Synchronous,
    writers: usize,
    total: usize,
) {
    let store = open(
        dir,
        &format!("throughput-{sync:?}.db"),
        SqliteConfig {
            synchronous: sync,
            ..Default::default()
        },
    )
    .await;
    let value = Bytes::from(vec![b'v'; 1000]);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in (w..total).step_by(writers) {
                    store
                        .txn(put_txn(
                            format!("/registry/pods/ns/p{}", i % 1000),
                            value.clone(),
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "writes/s, {writers} concurrent writers, synchronous={sync:?}: {:.0} ({total} single-key puts of 1 KB in {secs:.2} s)",
        total as f64 / secs
    );
    store.close().await;
}

async fn paced_latency(dir: &tempfile::TempDir, sync: Synchronous, rate: u32, count: usize) {
    let store = open(
        dir,
        &format!("latency-{sync:?}.db"),
        SqliteConfig {
            synchronous: sync,
            ..Default::default()
        },
    )
    .await;
    let value = Bytes::from(vec![b'v'; 1000]);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lat = Vec::with_capacity(count);
    for i in 0..count {
        tick.tick().await;
        let t = Instant::now();
        store
            .txn(put_txn(
                format!("/registry/pods/ns/p{}", i % 100),
                value.clone(),
            ))
            .await
            .unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "write latency at {rate}/s from one writer, synchronous={sync:?}: p50 {} p99 {} max {} ({count} writes)",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
    store.close().await;
}

/// The same hop as a write (std channel to a thread, oneshot back) with no database work:
/// the scheduling noise of the machine, to read the latency figures against.
async fn baseline_latency(rate: u32, count: usize) {
    let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>();
    let thread = std::thread::spawn(move || {
        while let Ok(reply) = rx.recv() {
            let _ = reply.send(());
        }
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lat = Vec::with_capacity(count);
    for _ in 0..count {
        tick.tick().await;
        let t = Instant::now();
        let (reply, done) = tokio::sync::oneshot::channel();
        tx.send(reply).unwrap();
        done.await.unwrap();
        lat.push(t.elapsed());
    }
    drop(tx);
    thread.join().unwrap();
    lat.sort();
    println!(
        "baseline: thread round trip without database at {rate}/s: p50 {} p99 {} max {} (machine noise)",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
}

async fn reads(dir: &tempfile::TempDir) {
    let store = open(dir, "reads.db", SqliteConfig::default()).await;
    let value = Bytes::from(vec![b'r'; 1000]);
    for i in 0..1000 {
        store
            .txn(put_txn(format!("/registry/pods/ns/p{i:04}"), value.clone()))
            .await
            .unwrap();
    }
    let mut gets = Vec::new();
    for i in 0..2000 {
        let t = Instant::now();
        store
            .get(&format!("/registry/pods/ns/p{:04}", i % 1000))
            .await
            .unwrap()
            .unwrap();
        gets.push(t.elapsed());
    }
    gets.sort();
    let mut lists = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let resp = store
            .range(store::RangeRequest {
                prefix: "/registry/pods/".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(resp.kvs.len(), 1000);
        lists.push(t.elapsed());
    }
    lists.sort();
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    store
                        .get(&format!("/registry/pods/ns/p{:04}", (w * 500 + i) % 1000))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "reads: get p50 {} p99 {}; 16 concurrent readers {:.0} gets/s; list of 1000 keys (1 KB) p50 {} p99 {}",
        ms(percentile(&gets, 0.5)),
        ms(percentile(&gets, 0.99)),
        8000.0 / started.elapsed().as_secs_f64(),
        ms(percentile(&lists, 0.5)),
        ms(percentile(&lists, 0.99)),
    );
    store.close().await;
}

async fn churn(dir: &tempfile::TempDir) {
    let path = dir.path().join("churn.db");
    let config = SqliteConfig {
        compaction_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let store = Arc::new(SqliteStore::open(&path, config).unwrap());
    let value = Bytes::from(vec![b'c'; 1000]);
    let started = Instant::now();
    let writers = 16;
    let total = 100_000;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in (w..total).step_by(writers) {
                    store
                        .txn(put_txn(
                            format!("/registry/configmaps/ns/cm-{:03}", i % 100),
                            value.clone(),
                        ))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = path.with_extension("db-wal");
    let during = size(&path);
    // let the background compaction run once more
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.close().await;
    println!(
        "churn: 100,000 updates of 100 objects (1 KB) in {secs:.1} s; db file {:.1} MB at the end of churn, {:.1} MB after background compaction (wal {:.1} MB), oldest retained revision {}",
        during as f64 / 1e6,
        size(&path) as f64 / 1e6,
        size(&wal) as f64 / 1e6,
        store.oldest_revision().await.unwrap(),
    );
}

async fn fanout(dir: &tempfile::TempDir, watchers: usize, writes: usize) {
    let store = open(dir, "fanout.db", SqliteConfig::default()).await;
    let started = Arc::new(std::sync::Mutex::new(Vec::<(i64, Instant)>::new()));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut w = store.watch("/registry/pods/", 0).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(writes);
            while got.len() < writes {
                let batch = w.next().await.unwrap().unwrap();
                let now = Instant::now();
                for e in batch {
                    got.push((e.kv.mod_revision, now));
                }
            }
            got
        }));
    }
    let value = Bytes::from(vec![b'w'; 1000]);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..writes {
        tick.tick().await;
        let t = Instant::now();
        let rev = store
            .txn(put_txn(format!("/registry/pods/ns/p{i}"), value.clone()))
            .await
            .unwrap()
            .revision;
        started.lock().unwrap().push((rev, t));
    }
    let starts: std::collections::HashMap<i64, Instant> =
        started.lock().unwrap().iter().copied().collect();
    let mut all = Vec::new();
    let mut last_per_write: std::collections::HashMap<i64, Duration> = Default::default();
    for t in tasks {
        for (rev, at) in t.await.unwrap() {
            let d = at.duration_since(starts[&rev]);
            all.push(d);
            let e = last_per_write.entry(rev).or_default();
            *e = (*e).max(d);
        }
    }
    all.sort();
    let mut last: Vec<Duration> = last_per_write.into_values().collect();
    last.sort();
    println!(
        "watch fan-out to {watchers} watchers ({writes} writes at 50/s, from txn call to delivery): p50 {} p99 {}; to the last watcher: p50 {} p99 {}",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&last, 0.5)),
        ms(percentile(&last, 0.99)),
    );
    store.close().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir_in(
            std::env::var("STORE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .unwrap();
        // `cargo bench -p store -- latency fanout` runs only the named parts
        let only: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        let run = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
        if run("throughput") {
            for sync in [Synchronous::Full, Synchronous::Normal] {
                concurrent_writes(&dir, sync, 16, 40_000).await;
            }
        }
        if run("latency") {
            for sync in [Synchronous::Full, Synchronous::Normal] {
                paced_latency(&dir, sync, 200, 2_000).await;
            }
            baseline_latency(200, 2_000).await;
        }
        if run("reads") {
            reads(&dir).await;
        }
        if run("churn") {
            churn(&dir).await;
        }
        if run("fanout") {
            fanout(&dir, 500, 200).await;
        }
    });
}
