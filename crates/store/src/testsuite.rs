//! The shared behaviour suite every [`Store`] backend must pass: one public async fn per
//! behaviour, and [`store_testsuite!`](crate::store_testsuite) to expand them into one
//! `#[tokio::test]` each for a backend.
//!
//! ```ignore
//! async fn make() -> store::testsuite::Fixture { /* a fresh, empty store */ }
//! store::store_testsuite!(make);
//! ```
//! The test crate needs `tokio` with the `macros` and `rt-multi-thread` features.
//! Every behaviour gets a fresh store and only uses keys under `/registry/`, assumes
//! nothing about the initial revision, and waits for events with generous timeouts only.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{
    Compare, Event, EventType, KeyValue, LeaseId, Op, RangeRequest, Revision, Store, StoreError,
    Txn, TxnResponse, WatchStream,
};

/// A fresh store for one behaviour, with whatever keeps it alive (temporary directory,
/// server process...) in `guard`, dropped after the test.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub guard: Box<dyn Any + Send + Sync>,
}

/// Expands to one `#[tokio::test]` per behaviour of the suite; `$make` is a path to an
/// `async fn() -> Fixture` returning a fresh, empty store.
#[macro_export]
macro_rules! store_testsuite {
    ($make:path) => {
        $crate::store_testsuite!(@each $make;
            revisions,
            create_if_absent,
            cas_conflict,
            delete,
            txn_branches,
            invalid_requests,
            range_prefix_limit_start_after,
            range_past_revision,
            watch_from_past_with_prev_kv,
            watch_prefix_filter,
            watch_ordering_many_writes,
            concurrent_mixed_txns,
            compaction,
            lease_expiry,
            lease_revoke,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture: $crate::testsuite::Fixture = $make().await;
                $crate::testsuite::$name(&*fixture.store).await;
                drop(fixture);
            }
        )*
    };
}

/// How long to wait for something that should happen promptly; only guards against hangs.
const PATIENCE: Duration = Duration::from_secs(20);

fn put_op(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: Bytes::copy_from_slice(value.as_bytes()),
        lease: 0,
    }
}

fn del_op(key: &str) -> Op {
    Op::Delete { key: key.into() }
}

async fn txn(store: &dyn Store, t: Txn) -> TxnResponse {
    store.txn(t).await.expect("txn")
}

async fn put(store: &dyn Store, key: &str, value: &str) -> TxnResponse {
    txn(
        store,
        Txn {
            success: vec![put_op(key, value)],
            ..Default::default()
        },
    )
    .await
}

async fn remove(store: &dyn Store, key: &str) -> TxnResponse {
    txn(
        store,
        Txn {
            success: vec![del_op(key)],
            ..Default::default()
        },
    )
    .await
}

async fn range(store: &dyn Store, prefix: &str, revision: Revision) -> Vec<KeyValue> {
    store
        .range(RangeRequest {
            prefix: prefix.into(),
            revision,
            ..Default::default()
        })
        .await
        .expect("range")
        .kvs
}

fn values(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Reads batches until `n` events have arrived.
async fn collect(stream: &mut WatchStream, n: usize) -> Vec<Vec<Event>> {
    let mut batches = Vec::new();
    let mut count = 0;
    while count < n {
        let batch = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {count} of {n} events"))
            .expect("watch ended early")
            .expect("watch failed");
        assert!(!batch.is_empty(), "empty event batch");
        count += batch.len();
        batches.push(batch);
    }
    assert_eq!(count, n, "more events than expected");
    batches
}

fn flat(batches: Vec<Vec<Event>>) -> Vec<Event> {
    batches.into_iter().flatten().collect()
}

/// Revisions move by one per writing transaction, and only then; per-key create/mod
/// revision and version follow etcd.
pub async fn revisions(store: &dyn Store) {
    let r0 = store.current_revision().await.unwrap();
    let a = put(store, "/registry/a", "1").await;
    assert!(a.succeeded);
    assert_eq!(a.revision, r0 + 1);
    let kv = store.get("/registry/a").await.unwrap().expect("a exists");
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        (r0 + 1, r0 + 1, 1, 0)
    );
    assert_eq!(&kv.value[..], b"1");

    let a2 = put(store, "/registry/a", "2").await;
    assert_eq!(a2.revision, r0 + 2);
    let prev = a2.results[0]
        .prev_kv
        .as_ref()
        .expect("put returns the previous value");
    assert_eq!((&prev.value[..], prev.mod_revision), (&b"1"[..], r0 + 1));
    let kv = store.get("/registry/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r0 + 1, r0 + 2, 2)
    );

    // several writes in one transaction share one revision
    let both = txn(
        store,
        Txn {
            success: vec![put_op("/registry/b", "x"), put_op("/registry/c", "y")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(both.revision, r0 + 3);
    for key in ["/registry/b", "/registry/c"] {
        let kv = store.get(key).await.unwrap().unwrap();
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.version),
            (r0 + 3, r0 + 3, 1)
        );
    }
    assert_eq!(store.current_revision().await.unwrap(), r0 + 3);

    // a transaction that changes nothing does not create a revision
    let none = remove(store, "/registry/missing").await;
    assert!(none.succeeded);
    assert_eq!(none.revision, r0 + 3);
    assert_eq!(none.results[0].prev_kv, None);
    let failed = txn(
        store,
        Txn {
            compares: vec![Compare::Exists("/registry/missing".into())],
            success: vec![put_op("/registry/d", "z")],
            failure: vec![],
        },
    )
    .await;
    assert!(!failed.succeeded);
    assert_eq!(failed.revision, r0 + 3);
    assert_eq!(store.current_revision().await.unwrap(), r0 + 3);
    assert_eq!(store.get("/registry/d").await.unwrap(), None);
}

/// `Compare::ModRevision(key, 0)` creates only if absent.
pub async fn create_if_absent(store: &dyn Store) {
    let create = |v: &str| Txn {
        compares: vec![Compare::ModRevision("/registry/pods/ns/p".into(), 0)],
        success: vec![put_op("/registry/pods/ns/p", v)],
        failure: vec![],
    };
    let first = txn(store, create("one")).await;
    assert!(first.succeeded);
    assert!(first.current.is_empty());
    let second = txn(store, create("two")).await;
    assert!(!second.succeeded, "second create must fail");
    assert_eq!(second.revision, first.revision);
    assert_eq!(second.current.len(), 1);
    let current = second.current[0]
        .as_ref()
        .expect("current value in failed response");
    assert_eq!(
        (&current.value[..], current.mod_revision),
        (&b"one"[..], first.revision)
    );
    assert_eq!(
        &store
            .get("/registry/pods/ns/p")
            .await
            .unwrap()
            .unwrap()
            .value[..],
        b"one"
    );
}

/// Updates guarded by the mod revision: the stale one fails and reports the current value.
pub async fn cas_conflict(store: &dyn Store) {
    let key = "/registry/cm/ns/c";
    let r1 = put(store, key, "v1").await.revision;
    let update = |expect: Revision, v: &str| Txn {
        compares: vec![Compare::ModRevision(key.into(), expect)],
        success: vec![put_op(key, v)],
        failure: vec![],
    };
    let ok = txn(store, update(r1, "v2")).await;
    assert!(ok.succeeded);
    let r2 = ok.revision;
    assert!(r2 > r1);
    // a writer still holding r1 loses
    let stale = txn(store, update(r1, "v3")).await;
    assert!(!stale.succeeded);
    assert_eq!(stale.revision, r2);
    assert!(stale.results.is_empty());
    let current = stale.current[0].as_ref().unwrap();
    assert_eq!(
        (&current.value[..], current.mod_revision, current.version),
        (&b"v2"[..], r2, 2)
    );
    // compares on several keys: one mismatch fails the whole transaction
    put(store, "/registry/cm/ns/other", "o").await;
    let multi = txn(
        store,
        Txn {
            compares: vec![
                Compare::ModRevision(key.into(), r2),
                Compare::ModRevision("/registry/cm/ns/other".into(), 0),
            ],
            success: vec![put_op(key, "v4")],
            failure: vec![],
        },
    )
    .await;
    assert!(!multi.succeeded);
    assert_eq!(multi.current.len(), 2);
    assert_eq!(multi.current[0].as_ref().unwrap().mod_revision, r2);
    assert!(multi.current[1].is_some());
    assert_eq!(&store.get(key).await.unwrap().unwrap().value[..], b"v2");
}

/// Deletes return the previous value; recreating starts a new incarnation.
pub async fn delete(store: &dyn Store) {
    let key = "/registry/secrets/ns/s";
    let created = put(store, key, "a").await.revision;
    put(store, key, "b").await;
    let del = txn(
        store,
        Txn {
            compares: vec![Compare::Exists(key.into())],
            success: vec![del_op(key)],
            failure: vec![],
        },
    )
    .await;
    assert!(del.succeeded);
    let prev = del.results[0]
        .prev_kv
        .as_ref()
        .expect("delete returns the previous value");
    assert_eq!(
        (&prev.value[..], prev.create_revision, prev.version),
        (&b"b"[..], created, 2)
    );
    assert_eq!(store.get(key).await.unwrap(), None);
    assert!(range(store, "/registry/secrets/", 0).await.is_empty());

    let again = put(store, key, "c").await;
    assert_eq!(again.results[0].prev_kv, None);
    let kv = store.get(key).await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.version), (again.revision, 1));
}

/// The failure branch runs when a compare fails; all ops of a branch are atomic.
pub async fn txn_branches(store: &dyn Store) {
    put(store, "/registry/x", "1").await;
    let resp = txn(
        store,
        Txn {
            compares: vec![Compare::ModRevision("/registry/x".into(), 0)],
            success: vec![put_op("/registry/y", "never")],
            failure: vec![del_op("/registry/x"), put_op("/registry/z", "fallback")],
        },
    )
    .await;
    assert!(!resp.succeeded);
    assert_eq!(resp.results.len(), 2);
    assert_eq!(&resp.results[0].prev_kv.as_ref().unwrap().value[..], b"1");
    assert_eq!(resp.results[1].prev_kv, None);
    assert_eq!(
        values(&range(store, "/registry/", 0).await),
        pairs(&[("/registry/z", "fallback")])
    );
    let z = store.get("/registry/z").await.unwrap().unwrap();
    assert_eq!(z.mod_revision, resp.revision);
}

/// Malformed requests are rejected without writing.
pub async fn invalid_requests(store: &dyn Store) {
    let before = store.current_revision().await.unwrap();
    let dup = store
        .txn(Txn {
            success: vec![put_op("/registry/k", "1"), put_op("/registry/k", "2")],
            ..Default::default()
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Invalid(_))),
        "duplicate key: {dup:?}"
    );
    let lease = store
        .txn(Txn {
            success: vec![
                put_op("/registry/ok", "1"),
                Op::Put {
                    key: "/registry/leased".into(),
                    value: Bytes::new(),
                    lease: 987_654_321,
                },
            ],
            ..Default::default()
        })
        .await;
    assert!(
        matches!(lease, Err(StoreError::LeaseNotFound(987_654_321))),
        "{lease:?}"
    );
    assert_eq!(store.current_revision().await.unwrap(), before);
    assert!(
        range(store, "/registry/", 0).await.is_empty(),
        "nothing of a failed txn is kept"
    );
}

/// Range by prefix, with limit and pagination by `start_after`.
pub async fn range_prefix_limit_start_after(store: &dyn Store) {
    for key in [
        "/registry/p/e",
        "/registry/p/a",
        "/registry/p/c",
        "/registry/p/b",
        "/registry/p/d",
    ] {
        put(store, key, key).await;
    }
    put(store, "/registry/p", "parent").await;
    put(store, "/registry/pq/x", "sibling").await;
    put(store, "/registry/q/a", "other").await;

    let all = range(store, "/registry/p/", 0).await;
    let keys: Vec<&str> = all.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "/registry/p/a",
            "/registry/p/b",
            "/registry/p/c",
            "/registry/p/d",
            "/registry/p/e"
        ]
    );

    let page = |start_after: &str, limit: usize| RangeRequest {
        prefix: "/registry/p/".into(),
        start_after: start_after.into(),
        limit,
        revision: 0,
    };
    let first = store.range(page("", 2)).await.unwrap();
    assert_eq!(
        first
            .kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/registry/p/a", "/registry/p/b"]
    );
    assert!(first.more);
    let rev = store.current_revision().await.unwrap();
    assert_eq!(first.revision, rev);
    let second = store.range(page("/registry/p/b", 2)).await.unwrap();
    assert_eq!(
        second
            .kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/registry/p/c", "/registry/p/d"]
    );
    assert!(second.more);
    let last = store.range(page("/registry/p/d", 2)).await.unwrap();
    assert_eq!(
        last.kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/registry/p/e"]
    );
    assert!(!last.more);
    let exact = store.range(page("", 5)).await.unwrap();
    assert_eq!(exact.kvs.len(), 5);
    assert!(!exact.more, "limit equal to the count: no more");
    let none = store.range(page("/registry/p/e", 0)).await.unwrap();
    assert!(none.kvs.is_empty() && !none.more);

    // an exact key is its own prefix; get does not match longer keys
    assert_eq!(
        store.get("/registry/p").await.unwrap().unwrap().value,
        Bytes::from_static(b"parent")
    );
    assert_eq!(store.get("/registry/p/").await.unwrap(), None);
    assert_eq!(range(store, "/registry/", 0).await.len(), 8);
}

/// Reads at past revisions see the state of that revision; future ones fail.
pub async fn range_past_revision(store: &dyn Store) {
    let r1 = put(store, "/registry/r/a", "1").await.revision;
    let r2 = put(store, "/registry/r/a", "2").await.revision;
    let r3 = put(store, "/registry/r/b", "b").await.revision;
    let r4 = remove(store, "/registry/r/a").await.revision;
    let r5 = put(store, "/registry/r/c", "c").await.revision;
    let at = |rev| range(store, "/registry/r/", rev);
    assert!(at(r1 - 1).await.is_empty());
    assert_eq!(values(&at(r1).await), pairs(&[("/registry/r/a", "1")]));
    assert_eq!(values(&at(r2).await), pairs(&[("/registry/r/a", "2")]));
    assert_eq!(
        values(&at(r3).await),
        pairs(&[("/registry/r/a", "2"), ("/registry/r/b", "b")])
    );
    assert_eq!(values(&at(r4).await), pairs(&[("/registry/r/b", "b")]));
    assert_eq!(
        values(&at(r5).await),
        pairs(&[("/registry/r/b", "b"), ("/registry/r/c", "c")])
    );
    let old = at(r3).await;
    assert_eq!(
        (old[0].create_revision, old[0].mod_revision, old[0].version),
        (r1, r2, 2)
    );

    let paged = store
        .range(RangeRequest {
            prefix: "/registry/r/".into(),
            revision: r3,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(values(&paged.kvs), pairs(&[("/registry/r/a", "2")]));
    assert!(paged.more);
    assert_eq!(paged.revision, r3);
    let rest = store
        .range(RangeRequest {
            prefix: "/registry/r/".into(),
            start_after: "/registry/r/a".into(),
            revision: r3,
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(values(&rest.kvs), pairs(&[("/registry/r/b", "b")]));
    assert!(!rest.more);

    let future = store
        .range(RangeRequest {
            prefix: "/registry/r/".into(),
            revision: r5 + 10,
            ..Default::default()
        })
        .await;
    assert!(
        matches!(future, Err(StoreError::FutureRevision(_))),
        "{future:?}"
    );
}

/// A watch from a past revision replays history with previous values, then goes live.
pub async fn watch_from_past_with_prev_kv(store: &dyn Store) {
    let r1 = put(store, "/registry/w/a", "1").await.revision;
    put(store, "/registry/w/a", "2").await;
    let r3 = remove(store, "/registry/w/a").await.revision;
    let both = txn(
        store,
        Txn {
            success: vec![put_op("/registry/w/b", "b"), put_op("/registry/w/c", "c")],
            ..Default::default()
        },
    )
    .await
    .revision;

    let mut w = store.watch("/registry/w/", r1 + 1).await.expect("watch");
    // live writes after the watch started follow the replay
    let r5 = put(store, "/registry/w/b", "b2").await.revision;
    let batches = collect(&mut w, 5).await;
    let revs: Vec<Revision> = batches.iter().map(|b| b[0].kv.mod_revision).collect();
    assert_eq!(
        revs,
        [r1 + 1, r3, both, r5],
        "one batch per transaction, in order"
    );
    assert_eq!(batches[2].len(), 2, "both writes of one txn in one batch");
    for batch in &batches {
        assert!(batch
            .iter()
            .all(|e| e.kv.mod_revision == batch[0].kv.mod_revision));
    }
    let events = flat(batches);

    assert_eq!(events[0].kind, EventType::Put);
    assert_eq!(&events[0].kv.value[..], b"2");
    assert_eq!(
        (events[0].kv.create_revision, events[0].kv.version),
        (r1, 2)
    );
    let prev = events[0].prev_kv.as_ref().expect("prev_kv of an update");
    assert_eq!((&prev.value[..], prev.mod_revision), (&b"1"[..], r1));

    assert_eq!(events[1].kind, EventType::Delete);
    assert_eq!(
        (events[1].kv.key.as_str(), events[1].kv.mod_revision),
        ("/registry/w/a", r3)
    );
    assert!(events[1].kv.value.is_empty());
    assert_eq!(
        &events[1]
            .prev_kv
            .as_ref()
            .expect("prev_kv of a delete")
            .value[..],
        b"2"
    );

    assert_eq!(
        (events[2].kv.key.as_str(), events[2].prev_kv.as_ref()),
        ("/registry/w/b", None)
    );
    assert_eq!(events[3].kv.key, "/registry/w/c");
    assert_eq!(events[4].kind, EventType::Put);
    assert_eq!(&events[4].prev_kv.as_ref().unwrap().value[..], b"b");
    assert_eq!(events[4].kv.version, 2);

    // watching from the next revision only sees new writes
    let mut live = store.watch("/registry/w/", 0).await.unwrap();
    let r6 = put(store, "/registry/w/c", "c2").await.revision;
    let got = flat(collect(&mut live, 1).await);
    assert_eq!(got[0].kv.mod_revision, r6);
    let also = flat(collect(&mut w, 1).await);
    assert_eq!(also[0].kv.mod_revision, r6);
}

/// Watches only see keys under their prefix.
pub async fn watch_prefix_filter(store: &dyn Store) {
    let mut pods = store.watch("/registry/pods/", 0).await.unwrap();
    let mut ns = store.watch("/registry/pods/default/", 0).await.unwrap();
    put(store, "/registry/pods/default/a", "1").await;
    put(store, "/registry/podsx/default/a", "1").await;
    put(store, "/registry/services/default/a", "1").await;
    put(store, "/registry/pods/kube-system/b", "1").await;
    let last = put(store, "/registry/pods/default/c", "1").await.revision;
    let keys = |evs: Vec<Event>| evs.into_iter().map(|e| e.kv.key).collect::<Vec<_>>();
    assert_eq!(
        keys(flat(collect(&mut pods, 3).await)),
        [
            "/registry/pods/default/a",
            "/registry/pods/kube-system/b",
            "/registry/pods/default/c"
        ]
    );
    let ns_events = flat(collect(&mut ns, 2).await);
    assert_eq!(ns_events[1].kv.mod_revision, last);
    assert_eq!(
        keys(ns_events),
        ["/registry/pods/default/a", "/registry/pods/default/c"]
    );
}

/// Under concurrent writers every watch sees every write exactly once in revision order,
/// including one that switches from replay to live while writes continue.
pub async fn watch_ordering_many_writes(store: &dyn Store) {
    const WRITERS: usize = 8;
    const EACH: usize = 60;
    let start = store.current_revision().await.unwrap() + 1;
    let mut live = store.watch("/registry/o/", 0).await.unwrap();
    let store_ptr: &dyn Store = store;
    let mut late: Option<WatchStream> = None;
    let writes = async {
        let tasks = (0..WRITERS).map(|w| async move {
            for i in 0..EACH {
                let key = format!("/registry/o/{w}/{}", i % 7);
                put(store_ptr, &key, &format!("{w}-{i}")).await;
                tokio::task::yield_now().await;
            }
        });
        futures::future::join_all(tasks).await;
    };
    let start_late = async {
        // wait until some writes happened, then watch from the very first one
        loop {
            if store_ptr.current_revision().await.unwrap() >= start + 40 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        late = Some(store_ptr.watch("/registry/o/", start).await.unwrap());
    };
    futures::join!(writes, start_late);
    let total = WRITERS * EACH;
    let end = store.current_revision().await.unwrap();
    assert_eq!(end, start + total as Revision - 1);

    let mut late = late.expect("late watch");
    for stream in [&mut live, &mut late] {
        let events = flat(collect(stream, total).await);
        let revs: Vec<Revision> = events.iter().map(|e| e.kv.mod_revision).collect();
        let want: Vec<Revision> = (start..=end).collect();
        assert_eq!(revs, want, "every revision once, in order");
        // per key, each event's prev_kv is the previous event of that key
        let mut last: BTreeMap<String, KeyValue> = BTreeMap::new();
        for e in &events {
            assert_eq!(
                e.prev_kv.as_ref(),
                last.get(&e.kv.key),
                "prev_kv of {}",
                e.kv.key
            );
            last.insert(e.kv.key.clone(), e.kv.clone());
        }
    }
}

/// Concurrent transactions where many fail (unknown lease, duplicate key, stale compare)
/// leave no trace, and the successful ones get distinct, gap-free revisions.
pub async fn concurrent_mixed_txns(store: &dyn Store) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 25;
    let start = store.current_revision().await.unwrap();
    let tasks = (0..TASKS).map(|t| async move {
        let mut revs = Vec::new();
        for i in 0..ROUNDS {
            let key = format!("/registry/m/{t}");
            let ok = put(store, &key, &format!("{i}")).await;
            assert!(ok.succeeded);
            revs.push(ok.revision);
            let leased = store
                .txn(Txn {
                    success: vec![Op::Put {
                        key: key.clone(),
                        value: Bytes::new(),
                        lease: 987_654_321,
                    }],
                    ..Default::default()
                })
                .await;
            assert!(
                matches!(leased, Err(StoreError::LeaseNotFound(_))),
                "{leased:?}"
            );
            let dup = store
                .txn(Txn {
                    success: vec![put_op(&key, "x"), del_op(&key)],
                    ..Default::default()
                })
                .await;
            assert!(matches!(dup, Err(StoreError::Invalid(_))), "{dup:?}");
            let stale = txn(
                store,
                Txn {
                    compares: vec![Compare::ModRevision(key.clone(), ok.revision - 1)],
                    success: vec![put_op(&key, "stale")],
                    failure: vec![],
                },
            )
            .await;
            assert!(!stale.succeeded);
            assert_eq!(stale.current[0].as_ref().unwrap().mod_revision, ok.revision);
        }
        revs
    });
    let mut revs: Vec<Revision> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect();
    revs.sort();
    let want: Vec<Revision> = (start + 1..=start + (TASKS * ROUNDS) as Revision).collect();
    assert_eq!(revs, want, "successful writes own every new revision, once");
    assert_eq!(
        store.current_revision().await.unwrap(),
        start + (TASKS * ROUNDS) as Revision
    );
    let kvs = range(store, "/registry/m/", 0).await;
    assert_eq!(kvs.len(), TASKS);
    for kv in kvs {
        assert_eq!(&kv.value[..], format!("{}", ROUNDS - 1).as_bytes());
        assert_eq!(kv.version, ROUNDS as i64);
    }
}

/// Compaction drops history: reads and watches before it fail with `Compacted`, current
/// values and the compaction revision itself stay readable.
pub async fn compaction(store: &dyn Store) {
    let r1 = put(store, "/registry/c/a", "1").await.revision;
    let r2 = put(store, "/registry/c/a", "2").await.revision;
    let r3 = put(store, "/registry/c/b", "1").await.revision;
    let r4 = remove(store, "/registry/c/b").await.revision;
    let r5 = put(store, "/registry/c/a", "3").await.revision;
    store.compact(r3).await.expect("compact");
    assert_eq!(store.oldest_revision().await.unwrap(), r3);

    let before = store
        .range(RangeRequest {
            prefix: "/registry/c/".into(),
            revision: r2,
            ..Default::default()
        })
        .await;
    assert!(
        matches!(before, Err(StoreError::Compacted { requested, compacted }) if requested == r2 && compacted == r3),
        "{before:?}"
    );
    let watch = store.watch("/registry/c/", r1).await;
    assert!(
        matches!(watch, Err(StoreError::Compacted { .. })),
        "watch from a compacted revision"
    );

    assert_eq!(
        values(&range(store, "/registry/c/", r3).await),
        pairs(&[("/registry/c/a", "2"), ("/registry/c/b", "1")])
    );
    assert_eq!(
        values(&range(store, "/registry/c/", r4).await),
        pairs(&[("/registry/c/a", "2")])
    );
    assert_eq!(
        values(&range(store, "/registry/c/", 0).await),
        pairs(&[("/registry/c/a", "3")])
    );

    // the compaction revision itself can be watched from
    let mut at = store
        .watch("/registry/c/", r3)
        .await
        .expect("watch from the compaction revision");
    let first = flat(collect(&mut at, 1).await);
    assert_eq!(
        (first[0].kv.key.as_str(), first[0].kv.mod_revision),
        ("/registry/c/b", r3)
    );
    drop(at);
    // history after the compaction revision, with previous values, is still there
    let mut w = store
        .watch("/registry/c/", r4)
        .await
        .expect("watch from retained revision");
    let events = flat(collect(&mut w, 2).await);
    assert_eq!(
        (events[0].kind, events[0].kv.mod_revision),
        (EventType::Delete, r4)
    );
    assert_eq!(&events[0].prev_kv.as_ref().unwrap().value[..], b"1");
    assert_eq!(events[1].kv.mod_revision, r5);
    assert_eq!(&events[1].prev_kv.as_ref().unwrap().value[..], b"2");

    let again = store.compact(r3).await;
    assert!(
        matches!(again, Err(StoreError::Compacted { .. })),
        "{again:?}"
    );
    let future = store.compact(r5 + 100).await;
    assert!(
        matches!(future, Err(StoreError::FutureRevision(_))),
        "{future:?}"
    );
    store
        .compact(r5)
        .await
        .expect("compact to the current revision");
    assert_eq!(
        values(&range(store, "/registry/c/", r5).await),
        pairs(&[("/registry/c/a", "3")])
    );
    let kv = store.get("/registry/c/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.version),
        (r1, 3),
        "key metadata survives compaction"
    );
}

async fn wait_for_delete(w: &mut WatchStream, key: &str) -> Event {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let batch = tokio::time::timeout_at(deadline, w.next())
            .await
            .unwrap_or_else(|_| panic!("no delete of {key}"))
            .expect("watch ended")
            .expect("watch failed");
        if let Some(e) = batch
            .into_iter()
            .find(|e| e.kind == EventType::Delete && e.kv.key == key)
        {
            return e;
        }
    }
}

async fn put_leased(store: &dyn Store, key: &str, lease: LeaseId) -> TxnResponse {
    txn(
        store,
        Txn {
            success: vec![Op::Put {
                key: key.into(),
                value: Bytes::from_static(b"leased"),
                lease,
            }],
            ..Default::default()
        },
    )
    .await
}

/// Keys attached to a lease are deleted, with delete events, when it expires.
pub async fn lease_expiry(store: &dyn Store) {
    let short = store.lease_grant(1).await.expect("grant");
    let long = store.lease_grant(3600).await.expect("grant");
    assert_ne!(short, long);
    let bad = store.lease_grant(0).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    let mut w = store.watch("/registry/events/", 0).await.unwrap();
    put_leased(store, "/registry/events/ns/e1", short).await;
    put_leased(store, "/registry/events/ns/e2", long).await;
    put(store, "/registry/events/ns/e3", "plain").await;
    assert_eq!(
        store
            .get("/registry/events/ns/e1")
            .await
            .unwrap()
            .unwrap()
            .lease,
        short
    );

    let e = wait_for_delete(&mut w, "/registry/events/ns/e1").await;
    let prev = e.prev_kv.expect("prev_kv of the expiry delete");
    assert_eq!(prev.lease, short);
    assert_eq!(store.get("/registry/events/ns/e1").await.unwrap(), None);
    assert!(store.get("/registry/events/ns/e2").await.unwrap().is_some());
    assert!(store.get("/registry/events/ns/e3").await.unwrap().is_some());
    // the expired lease is gone
    let gone = store.lease_revoke(short).await;
    assert!(
        matches!(gone, Err(StoreError::LeaseNotFound(id)) if id == short),
        "{gone:?}"
    );
}

/// Revoking a lease deletes its keys at once; unknown leases are reported.
pub async fn lease_revoke(store: &dyn Store) {
    let lease = store.lease_grant(3600).await.unwrap();
    let other = store.lease_grant(3600).await.unwrap();
    put_leased(store, "/registry/l/a", lease).await;
    put_leased(store, "/registry/l/b", lease).await;
    put_leased(store, "/registry/l/c", other).await;
    // re-putting without the lease detaches the key
    put_leased(store, "/registry/l/d", lease).await;
    put(store, "/registry/l/d", "detached").await;
    let mut w = store.watch("/registry/l/", 0).await.unwrap();
    let before = store.current_revision().await.unwrap();
    store.lease_revoke(lease).await.expect("revoke");
    let events = flat(collect(&mut w, 2).await);
    let mut deleted: Vec<&str> = events.iter().map(|e| e.kv.key.as_str()).collect();
    deleted.sort();
    assert_eq!(deleted, ["/registry/l/a", "/registry/l/b"]);
    assert!(events
        .iter()
        .all(|e| e.kind == EventType::Delete && e.kv.mod_revision > before));
    assert!(events
        .iter()
        .all(|e| e.prev_kv.as_ref().map(|p| p.lease) == Some(lease)));
    assert_eq!(
        values(&range(store, "/registry/l/", 0).await),
        pairs(&[("/registry/l/c", "leased"), ("/registry/l/d", "detached")])
    );
    let again = store.lease_revoke(lease).await;
    assert!(
        matches!(again, Err(StoreError::LeaseNotFound(_))),
        "{again:?}"
    );
    let put_after = store
        .txn(Txn {
            success: vec![Op::Put {
                key: "/registry/l/e".into(),
                value: Bytes::new(),
                lease,
            }],
            ..Default::default()
        })
        .await;
    assert!(
        matches!(put_after, Err(StoreError::LeaseNotFound(_))),
        "{put_after:?}"
    );
}
