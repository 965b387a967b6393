//! End-to-end with the kube-rs client: CRUD, optimistic concurrency, patch types, watch and
//! relist after 410, discovery, bad input (413/400/404/405/401/422) and durability across
//! kill -9.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Cluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, Config};
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn client(c: &Cluster) -> Client {
    let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// The label on every ConfigMap these tests create, so lists leave out the cluster's own
/// (e.g. kube-root-ca.crt, published by the controller manager in every namespace).
const TEST_LABEL: (&str, &str) = ("e2e", "yes");
const TEST_SELECTOR: &str = "e2e=yes";

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some([(TEST_LABEL.0.to_string(), TEST_LABEL.1.to_string())].into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

fn status_of(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
fn crud_conflicts_and_not_found() {
    let c = Cluster::start();
    rt().block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
        let created = api
            .create(&PostParams::default(), &cm("a", &[("k", "v")]))
            .await
            .unwrap();
        let rv1 = created.metadata.resource_version.clone().unwrap();
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.creation_timestamp.is_some());
        let (code, reason, msg) = status_of(
            api.create(&PostParams::default(), &cm("a", &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(msg, "configmaps \"a\" already exists");
        let mut upd = created.clone();
        upd.data = Some([("k".to_string(), "v2".to_string())].into());
        let updated = api
            .replace("a", &PostParams::default(), &upd)
            .await
            .unwrap();
        assert_ne!(
            updated.metadata.resource_version.as_deref(),
            Some(rv1.as_str())
        );
        // the old resourceVersion is stale now
        let (code, reason, msg) = status_of(
            api.replace("a", &PostParams::default(), &upd)
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert!(msg.contains("the object has been modified"), "{msg}");
        assert_eq!(
            api.get("a").await.unwrap().data.unwrap()["k"],
            "v2",
            "a rejected write changes nothing"
        );
        api.delete("a", &DeleteParams::default()).await.unwrap();
        let (code, reason, _) = status_of(api.get("a").await.unwrap_err());
        assert_eq!((code, reason.as_str()), (404, "NotFound"));
        // a namespace that does not exist
        let other: Api<ConfigMap> = Api::namespaced(client(&c).await, "nope");
        let (code, _, msg) = status_of(
            other
                .create(&PostParams::default(), &cm("x", &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 404);
        assert_eq!(msg, "namespaces \"nope\" not found");
    });
}

#[test]
fn patch_types() {
    let c = Cluster::start();
    rt().block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
        api.create(&PostParams::default(), &cm("p", &[("a", "1")]))
            .await
            .unwrap();
        let pp = PatchParams::default();
        api.patch("p", &pp, &Patch::Merge(json!({"data": {"b": "2"}})))
            .await
            .unwrap();
        let client = client(&c).await;
        let path = "/api/v1/namespaces/default/configmaps/p";
        let jp = json!([{"op": "add", "path": "/data/c", "value": "3"}])
            .to_string()
            .into_bytes();
        assert_eq!(
            raw(&client, "PATCH", path, "application/json-patch+json", jp)
                .await
                .0,
            200
        );
        api.patch("p", &pp, &Patch::Strategic(json!({"data": {"d": "4"}})))
            .await
            .unwrap();
        let got = api.get("p").await.unwrap();
        assert_eq!(
            got.data.unwrap(),
            [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        // a JSON patch that fails its test op is rejected and changes nothing
        let bad = json!([{"op": "test", "path": "/data/a", "value": "nope"}])
            .to_string()
            .into_bytes();
        assert_eq!(
            raw(&client, "PATCH", path, "application/json-patch+json", bad)
                .await
                .0,
            422
        );
        assert_eq!(api.get("p").await.unwrap().data.unwrap().len(), 4);
    });
}

#[test]
fn watch_events_and_expired_resource_version() {
    let c = Cluster::start();
    rt().block_on(async {
        let client = client(&c).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let list = api
            .list(&ListParams::default().labels(TEST_SELECTOR))
            .await
            .unwrap();
        let rv = list.metadata.resource_version.clone().unwrap();
        let mut stream = api
            .watch(
                &WatchParams::default().labels(TEST_SELECTOR).timeout(30),
                &rv,
            )
            .await
            .unwrap()
            .boxed();
        api.create(&PostParams::default(), &cm("w", &[("a", "1")]))
            .await
            .unwrap();
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap();
        api.delete("w", &DeleteParams::default()).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match ev {
                WatchEvent::Added(o) => seen.push(("ADDED", o.data.unwrap()["a"].clone())),
                WatchEvent::Modified(o) => seen.push(("MODIFIED", o.data.unwrap()["a"].clone())),
                WatchEvent::Deleted(o) => seen.push(("DELETED", o.data.unwrap()["a"].clone())),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => panic!("watch error {e:?}"),
            }
        }
        assert_eq!(
            seen,
            vec![
                ("ADDED", "1".to_string()),
                ("MODIFIED", "2".to_string()),
                ("DELETED", "2".to_string())
            ]
        );

        // churn one object past the watch cache history: watching from the start is 410
        api.create(&PostParams::default(), &cm("churn", &[]))
            .await
            .unwrap();
        for i in 0..4200 {
            api.patch(
                "churn",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"i": i.to_string()}})),
            )
            .await
            .unwrap();
        }
        let mut old = api
            .watch(&WatchParams::default().labels(TEST_SELECTOR), "5")
            .await
            .unwrap()
            .boxed();
        match tokio::time::timeout(Duration::from_secs(10), old.try_next())
            .await
            .unwrap()
        {
            Ok(Some(WatchEvent::Error(e))) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
            }
            other => panic!("expected a 410 ERROR event, got {other:?}"),
        }
        // the kube-rs watcher recovers by relisting
        let cfg = kube::runtime::watcher::Config::default().labels(TEST_SELECTOR);
        let mut w = kube::runtime::watcher(api.clone(), cfg).boxed();
        let mut names = Vec::new();
        while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), w.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            match ev {
                kube::runtime::watcher::Event::InitApply(o) => names.push(o.metadata.name.unwrap()),
                kube::runtime::watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(names, vec!["churn"]);
    });
}

#[test]
fn discovery_lists_builtin_groups() {
    let c = Cluster::start();
    rt().block_on(async {
        let d = kube::discovery::Discovery::new(client(&c).await)
            .run()
            .await
            .unwrap();
        let groups: Vec<String> = d.groups().map(|g| g.name().to_string()).collect();
        for g in [
            "",
            "apps",
            "batch",
            "autoscaling",
            "rbac.authorization.k8s.io",
            "apiextensions.k8s.io",
            "coordination.k8s.io",
        ] {
            assert!(
                groups.iter().any(|x| x == g),
                "missing group {g:?} in {groups:?}"
            );
        }
        let apps = d.get("apps").unwrap();
        let (ar, caps) = apps.recommended_kind("Deployment").unwrap();
        assert_eq!(ar.plural, "deployments");
        assert!(caps.supports_operation("watch"));
    });
}

async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body)
        .unwrap();
    match client.request_text(req).await {
        Ok(t) => (200, serde_json::from_str(&t).unwrap_or(json!(t))),
        Err(kube::Error::Api(s)) => (s.code, json!({"reason": s.reason, "message": s.message})),
        Err(e) => panic!("{method} {path}: {e:?}"),
    }
}

#[test]
fn bad_input_gets_a_status_and_changes_nothing() {
    let c = Cluster::start();
    rt().block_on(async {
        let client = client(&c).await;
        let cms = "/api/v1/namespaces/default/configmaps";
        let big = format!("{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"a\":\"{}\"}}}}", "x".repeat(3 * 1024 * 1024 + 10));
        let (code, s) = raw(&client, "POST", cms, "application/json", big.into_bytes()).await;
        assert_eq!(code, 413, "{s}");
        let (code, s) = raw(&client, "POST", cms, "application/json", b"{\"apiVersion\": \"v1\", \"kind\":".to_vec()).await;
        assert_eq!(code, 400);
        assert!(s["message"].as_str().unwrap().contains("error decoding request body as JSON"), "{s}");
        let (code, s) = raw(&client, "POST", cms, "application/yaml", b"a: [1, 2\nb: {".to_vec()).await;
        assert_eq!(code, 400);
        assert!(s["message"].as_str().unwrap().contains("error decoding YAML"), "{s}");
        let (code, _) = raw(&client, "GET", "/api/v1/namespaces/default/nonsense", "application/json", vec![]).await;
        assert_eq!(code, 404);
        let (code, _) = raw(&client, "GET", "/apis/nope.example.com/v1/things", "application/json", vec![]).await;
        assert_eq!(code, 404);
        // namespaces have no deletecollection; bindings are create-only
        let (code, s) = raw(&client, "DELETE", "/api/v1/namespaces", "application/json", vec![]).await;
        assert_eq!(code, 405, "{s}");
        let (code, _) = raw(&client, "GET", "/api/v1/namespaces/default/bindings", "application/json", vec![]).await;
        assert_eq!(code, 405);
        // invalid object: 422 with the field named
        let (code, s) = raw(&client, "POST", cms, "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#.to_vec()).await;
        assert_eq!(code, 422, "{s}");
        assert!(s["message"].as_str().unwrap().contains("metadata.name: Invalid value: \"Bad_Name\""), "{s}");
        let (code, _) = raw(&client, "POST", cms, "text/plain", b"hello".to_vec()).await;
        assert_eq!(code, 415);
        // malformed protobuf: a bad magic, then a truncated envelope
        let (code, s) = raw(&client, "POST", cms, "application/vnd.kubernetes.protobuf", b"nope".to_vec()).await;
        assert_eq!(code, 400, "{s}");
        assert!(s["message"].as_str().unwrap().contains("protobuf"), "{s}");
        let (code, _) = raw(&client, "POST", cms, "application/vnd.kubernetes.protobuf", b"k8s\0\x0a\x7f\x0a".to_vec()).await;
        assert_eq!(code, 400);
        // nothing was stored by any of the above
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let stored: Vec<String> = api.list(&ListParams::default()).await.unwrap().items.into_iter().map(|o| o.metadata.name.unwrap()).collect();
        assert!(stored.iter().all(|n| n == "kube-root-ca.crt"), "{stored:?}");
        // unauthenticated requests get 401
        let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
        let mut cfg = Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        cfg.auth_info = Default::default();
        let anon = Client::try_from(cfg).unwrap();
        let ns: Api<Namespace> = Api::all(anon);
        let (code, reason, _) = status_of(ns.list(&ListParams::default()).await.unwrap_err());
        assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut c = Cluster::start();
    let acked: Vec<String> = rt().block_on(async {
        let client = client(&c).await;
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let api = api.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let name = format!("w{w}-{i}");
                        match api
                            .create(&PostParams::default(), &cm(&name, &[("i", "x")]))
                            .await
                        {
                            Ok(_) => {
                                if tx.send(name).is_err() {
                                    return;
                                }
                            }
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut acked = Vec::new();
        while acked.len() < 200 {
            acked.push(rx.recv().await.unwrap());
        }
        // kill the server while the writers are still going
        unsafe {
            libc::kill(c.child.as_ref().unwrap().id() as i32, libc::SIGKILL);
        }
        while let Some(n) = rx.recv().await {
            acked.push(n);
        }
        for w in writers {
            let _ = w.await;
        }
        acked
    });
    c.kill9();
    let ca_before = std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap();
    c.spawn();
    assert_eq!(
        std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap(),
        ca_before,
        "restart reuses the PKI"
    );
    rt().block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
        let names: std::collections::HashSet<String> = api
            .list(&ListParams::default().labels(TEST_SELECTOR))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect();
        let lost: Vec<&String> = acked.iter().filter(|n| !names.contains(*n)).collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged writes lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        assert!(acked.len() >= 200);
    });
}

#[test]
fn namespace_deletion_is_two_phase() {
    // without the namespace controller, so the test plays its part
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    rt().block_on(async {
        let client = client(&c).await;
        let nss: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
        let created = nss.create(&PostParams::default(), &ns).await.unwrap();
        assert_eq!(
            created.spec.unwrap().finalizers.unwrap(),
            vec!["kubernetes"]
        );
        assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
        cms.create(&PostParams::default(), &cm("inside", &[]))
            .await
            .unwrap();
        nss.delete("doomed", &DeleteParams::default())
            .await
            .unwrap();
        let ns = nss.get("doomed").await.unwrap();
        assert_eq!(
            ns.status.as_ref().unwrap().phase.as_deref(),
            Some("Terminating")
        );
        assert!(ns.metadata.deletion_timestamp.is_some());
        let (code, reason, msg) = status_of(
            cms.create(&PostParams::default(), &cm("late", &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (403, "Forbidden"));
        assert!(msg.contains("because it is being terminated"), "{msg}");
        // the namespace controller's last step: clear spec.finalizers through /finalize
        let mut fin = ns.clone();
        fin.spec.as_mut().unwrap().finalizers = Some(vec![]);
        let body = serde_json::to_vec(&fin).unwrap();
        let req = http::Request::builder()
            .method("PUT")
            .uri("/api/v1/namespaces/doomed/finalize")
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        client.request_text(req).await.unwrap();
        let (code, _, _) = status_of(nss.get("doomed").await.unwrap_err());
        assert_eq!(
            code, 404,
            "a terminating namespace without finalizers is gone"
        );
    });
}

#[test]
fn versions_share_storage_through_conversion() {
    let c = Cluster::start();
    rt().block_on(async {
        let client = client(&c).await;
        // an autoscaling/v1 HPA is readable as autoscaling/v2 and back
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}});
        let (code, _) = raw(&client, "POST", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", "application/json", v1.to_string().into_bytes()).await;
        assert_eq!(code, 200);
        let (_, v2) = raw(&client, "GET", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h", "application/json", vec![]).await;
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
        assert_eq!(v2["spec"]["minReplicas"], 1, "v2 defaults applied to the stored form");
        let (_, back) = raw(&client, "GET", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/h", "application/json", vec![]).await;
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 70);
        // a merge patch in v1 terms
        let p = json!({"spec": {"targetCPUUtilizationPercentage": 50}}).to_string().into_bytes();
        let (code, _) = raw(&client, "PATCH", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/h", "application/merge-patch+json", p).await;
        assert_eq!(code, 200);
        let (_, v2) = raw(&client, "GET", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h", "application/json", vec![]).await;
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
        let (_, list) = raw(&client, "GET", "/apis/autoscaling/v1/horizontalpodautoscalers", "application/json", vec![]).await;
        assert_eq!(list["items"][0]["apiVersion"], "autoscaling/v1");

        // an events.k8s.io/v1 Event is a core/v1 Event
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
            "eventTime": "2026-11-27T08:00:00.000000Z", "reportingController": "oxkube.io/test", "reportingInstance": "t1",
            "action": "Testing", "reason": "Tested", "note": "hello", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}});
        let (code, s) = raw(&client, "POST", "/apis/events.k8s.io/v1/namespaces/default/events", "application/json", ev.to_string().into_bytes()).await;
        assert_eq!(code, 200, "{s}");
        let (_, core) = raw(&client, "GET", "/api/v1/namespaces/default/events/e1", "application/json", vec![]).await;
        assert_eq!(core["message"], "hello");
        assert_eq!(core["involvedObject"]["name"], "p");
        let (_, sel) = raw(&client, "GET", "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dp", "application/json", vec![]).await;
        assert_eq!(sel["items"][0]["note"], "hello");
        let (_, none) = raw(&client, "GET", "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dq", "application/json", vec![]).await;
        assert_eq!(none["items"], json!([]));
    });
}

#[test]
fn reflector_follows_changes() {
    let c = Cluster::start();
    rt().block_on(async {
        let client = client(&c).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let (reader, writer) = kube::runtime::reflector::store::<ConfigMap>();
        let stream = kube::runtime::reflector(
            writer,
            kube::runtime::watcher(
                api.clone(),
                kube::runtime::watcher::Config::default().labels(TEST_SELECTOR),
            ),
        );
        let task = tokio::spawn(async move {
            let mut s = std::pin::pin!(stream);
            while s.next().await.is_some() {}
        });
        for i in 0..5 {
            api.create(&PostParams::default(), &cm(&format!("r{i}"), &[]))
                .await
                .unwrap();
        }
        api.delete("r0", &DeleteParams::default()).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut names: Vec<String> = reader
                .state()
                .iter()
                .map(|o| o.metadata.name.clone().unwrap())
                .collect();
            names.sort();
            if names == vec!["r1", "r2", "r3", "r4"] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "reflector store never converged: {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
    });
}

#[test]
fn stuck_clients_do_not_block_others() {
    let c = Cluster::start();
    // connections that never finish a TLS handshake
    let stuck: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", c.port)).unwrap())
        .collect();
    rt().block_on(async {
        let lazy = client(&c).await;
        let client = client(&c).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        // a watcher that never reads its stream
        let lazy_api: Api<ConfigMap> = Api::namespaced(lazy, "default");
        let _unread = lazy_api
            .watch(&WatchParams::default().labels(TEST_SELECTOR), "0")
            .await
            .unwrap();
        for i in 0..300 {
            let t = std::time::Instant::now();
            api.create(
                &PostParams::default(),
                &cm(&format!("s{i}"), &[("pad", &"x".repeat(2048))]),
            )
            .await
            .unwrap();
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "a create took {:?}",
                t.elapsed()
            );
        }
        let l = tokio::time::timeout(
            Duration::from_secs(10),
            api.list(&ListParams::default().labels(TEST_SELECTOR)),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(l.items.len(), 300);
    });
    drop(stuck);
}

#[test]
fn pagination_dry_run_and_initial_events() {
    let c = Cluster::start();
    rt().block_on(async {
        let client = client(&c).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        for i in 0..25 {
            api.create(&PostParams::default(), &cm(&format!("pg{i:02}"), &[]))
                .await
                .unwrap();
        }
        // limit/continue walks every object exactly once, in order
        let mut seen = Vec::new();
        let mut lp = ListParams::default().labels(TEST_SELECTOR).limit(10);
        loop {
            let page = api.list(&lp).await.unwrap();
            seen.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(tok) => {
                    assert!(page.items.len() == 10);
                    lp = lp.continue_token(&tok);
                }
                None => break,
            }
        }
        let want: Vec<String> = (0..25).map(|i| format!("pg{i:02}")).collect();
        assert_eq!(seen, want);
        // dryRun=All validates and answers but stores nothing
        let pp = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let dry = api.create(&pp, &cm("dry", &[("a", "b")])).await.unwrap();
        assert_eq!(dry.data.unwrap()["a"], "b");
        assert_eq!(status_of(api.get("dry").await.unwrap_err()).0, 404);
        let (code, _, _) = status_of(api.create(&pp, &cm("pg00", &[])).await.unwrap_err());
        assert_eq!(code, 409, "dry run still reports conflicts");
        // streaming list: sendInitialEvents delivers the state, then a bookmark marking its end
        let wc = kube::runtime::watcher::Config::default()
            .labels(TEST_SELECTOR)
            .streaming_lists();
        let mut w = kube::runtime::watcher(api.clone(), wc).boxed();
        let mut n = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), w.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                kube::runtime::watcher::Event::InitApply(_) => n += 1,
                kube::runtime::watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(n, 25);
    });
}

#[test]
fn token_file_authentication_and_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret-token,alice,1001,\"devs,ops\"\n").unwrap();
    let c = Cluster::start_with(&["--token-auth-file", tokens.to_str().unwrap()]);
    rt().block_on(async {
        let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
        let mut cfg = Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        cfg.auth_info = Default::default();
        cfg.auth_info.token = Some("s3cret-token".to_string().into());
        let alice = Client::try_from(cfg.clone()).unwrap();
        let req = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .header("content-type", "application/json")
            .body(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#.to_vec())
            .unwrap();
        let who: serde_json::Value = serde_json::from_str(&alice.request_text(req).await.unwrap()).unwrap();
        assert_eq!(who["status"]["userInfo"]["username"], "alice");
        assert_eq!(who["status"]["userInfo"]["groups"], json!(["devs", "ops", "system:authenticated"]));
        // a TokenReview of the same token, by the admin
        let admin = client(&c).await;
        let req = http::Request::post("/apis/authentication.k8s.io/v1/tokenreviews")
            .header("content-type", "application/json")
            .body(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"s3cret-token"}}"#.to_vec())
            .unwrap();
        let tr: serde_json::Value = serde_json::from_str(&admin.request_text(req).await.unwrap()).unwrap();
        assert_eq!(tr["status"]["authenticated"], true);
        assert_eq!(tr["status"]["user"]["username"], "alice");
        // a wrong token is 401
        cfg.auth_info.token = Some("wrong".to_string().into());
        let bad = Client::try_from(cfg).unwrap();
        let ns: Api<Namespace> = Api::all(bad);
        assert_eq!(status_of(ns.list(&ListParams::default()).await.unwrap_err()).0, 401);
    });
    let rules = c.kubectl(&["auth", "can-i", "--list"]);
    assert!(
        rules.lines().next().unwrap().starts_with("Resources"),
        "{rules}"
    );
    assert!(rules.contains("*.*"), "{rules}");
}

#[test]
fn put_creates_endpoints_but_not_configmaps() {
    let c = Cluster::start();
    rt().block_on(async {
        let client = client(&c).await;
        let ep = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "svc"},
            "subsets": [{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}]}]})
        .to_string()
        .into_bytes();
        let (code, s) = raw(
            &client,
            "PUT",
            "/api/v1/namespaces/default/endpoints/svc",
            "application/json",
            ep,
        )
        .await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(s["subsets"][0]["addresses"][0]["ip"], "10.42.0.5");
        let cmb = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
            .to_string()
            .into_bytes();
        let (code, _) = raw(
            &client,
            "PUT",
            "/api/v1/namespaces/default/configmaps/x",
            "application/json",
            cmb,
        )
        .await;
        assert_eq!(code, 404);
    });
}

#[test]
fn server_side_apply_with_kube_rs() {
    let c = Cluster::start();
    rt().block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "labels": {"e2e": "yes"}}, "data": {"a": "1", "b": "2"}});
        let pp = PatchParams::apply("tool-a");
        let got = api.patch("ssa", &pp, &Patch::Apply(&cfg)).await.unwrap();
        assert_eq!(got.data.as_ref().unwrap()["b"], "2");
        let mf = got.metadata.managed_fields.unwrap();
        assert_eq!(mf[0].manager.as_deref(), Some("tool-a"));
        assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
        // another manager takes a field only with force
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "9"}});
        let (code, reason, msg) = status_of(api.patch("ssa", &PatchParams::apply("tool-b"), &Patch::Apply(&other)).await.unwrap_err());
        assert_eq!((code, reason.as_str()), (409, "Conflict"));
        assert!(msg.contains("tool-a") && msg.contains(".data.a"), "{msg}");
        let forced = api.patch("ssa", &PatchParams::apply("tool-b").force(), &Patch::Apply(&other)).await.unwrap();
        assert_eq!(forced.data.as_ref().unwrap()["a"], "9");
        // tool-a re-applies without b: b goes, a now belongs to tool-b and stays
        let fewer = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "labels": {"e2e": "yes"}}, "data": {}});
        let after = api.patch("ssa", &pp, &Patch::Apply(&fewer)).await.unwrap();
        let data = after.data.unwrap_or_default();
        assert_eq!(data.get("a").map(String::as_str), Some("9"));
        assert!(!data.contains_key("b"), "{data:?}");
    });
}

/// SIGTERM stops the whole server (API server, scheduler, controller manager) cleanly: exit
/// status 0 and no panic on the way out.
#[test]
fn sigterm_shuts_down_cleanly() {
    let mut c = Cluster::start();
    c.kubectl(&["create", "configmap", "before-stop"]);
    let mut child = c.child.take().expect("server running");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let log = c.log();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(!log.contains("panicked"), "panic while stopping:\n{log}");
}
