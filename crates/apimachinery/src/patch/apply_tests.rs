//! Tests of server-side apply and managed-fields tracking, modelled on upstream's field manager
//! behaviour (ownership, pruning, conflicts, force, Update takeover).

use super::*;
use crate::patch::schema::{BuiltinSchema, NoSchema};
use serde_json::json;

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-01T00:01:00Z";

fn dep() -> BuiltinSchema {
    BuiltinSchema::for_kind("apps", "Deployment").unwrap()
}

fn opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        manager,
        force,
        api_version: "apps/v1",
        subresource: "",
        now,
    }
}

fn upd<'a>(manager: &'a str, now: &'a str) -> UpdateOptions<'a> {
    UpdateOptions {
        manager,
        api_version: "apps/v1",
        subresource: "",
        now,
    }
}

fn config(replicas: Option<i64>, image: &str, labels: Value) -> Value {
    let mut c = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}
    });
    if let Some(r) = replicas {
        c["spec"]["replicas"] = json!(r);
    }
    c
}

fn managed(obj: &Value) -> Vec<(String, String, Value)> {
    decode_managed_fields(obj)
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.manager.clone(),
                e.operation.as_str().to_string(),
                e.fields.to_fields_v1(),
            )
        })
        .collect()
}

fn strip_mf(mut v: Value) -> Value {
    v["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    v
}

#[test]
fn apply_create_records_ownership() {
    let s = dep();
    let cfg = config(Some(3), "img:1", json!({"app": "a"}));
    let out = apply(None, &cfg, &s, &opts("m1", false, T1)).unwrap();
    assert_eq!(strip_mf(out.clone()), cfg);
    let entries = decode_managed_fields(&out).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].time.as_deref(), Some(T1));
    assert_eq!(entries[0].api_version, "apps/v1");
    assert_eq!(
        entries[0].fields.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
        })
    );
    assert_eq!(
        out["metadata"]["managedFields"][0]["fieldsType"],
        "FieldsV1"
    );
    assert_eq!(out["metadata"]["managedFields"][0]["operation"], "Apply");
}

#[test]
fn reapply_prunes_fields_no_longer_applied() {
    let s = dep();
    let live = apply(
        None,
        &config(Some(3), "img:1", json!({"app": "a", "x": "y"})),
        &s,
        &opts("m1", false, T1),
    )
    .unwrap();
    let mut cfg = config(None, "img:2", json!({"x": "y"}));
    cfg["metadata"].as_object_mut().unwrap().remove("labels");
    let out = apply(Some(&live), &cfg, &s, &opts("m1", false, T2)).unwrap();
    assert!(
        out["spec"].get("replicas").is_none(),
        "replicas pruned: {out}"
    );
    assert!(
        out["metadata"].get("labels").is_none(),
        "emptied labels map dropped: {out}"
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:2"
    );
    assert_eq!(out["metadata"]["managedFields"][0]["time"], T2);
}

#[test]
fn conflicts_force_and_shared_ownership() {
    let s = dep();
    let live = apply(
        None,
        &config(Some(3), "img:1", json!({"app": "a"})),
        &s,
        &opts("m1", false, T1),
    )
    .unwrap();

    // another applier changing an owned field conflicts
    let cfg2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 5}});
    let err = apply(Some(&live), &cfg2, &s, &opts("m2", false, T2)).unwrap_err();
    assert_eq!(err.reason(), crate::Reason::Conflict);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"m1\": .spec.replicas"
    );
    let api = err.to_api_error();
    assert_eq!(api.code(), 409);
    assert_eq!(
        api.extra_causes,
        vec![(
            "FieldManagerConflict".to_string(),
            "conflict with \"m1\"".to_string()
        )]
    );

    // force takes ownership
    let forced = apply(Some(&live), &cfg2, &s, &opts("m2", true, T2)).unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    let m = managed(&forced);
    let m1 = m.iter().find(|e| e.0 == "m1").unwrap();
    assert!(
        m1.2["f:spec"].get("f:replicas").is_none(),
        "m1 lost replicas: {:?}",
        m1.2
    );
    let m2 = m.iter().find(|e| e.0 == "m2").unwrap();
    assert_eq!(m2.2, json!({"f:spec": {"f:replicas": {}}}));

    // applying the same value shares ownership; the first applier dropping it keeps the field
    let same = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 3}});
    let shared = apply(Some(&live), &same, &s, &opts("m2", false, T2)).unwrap();
    let dropped = apply(
        Some(&shared),
        &config(None, "img:1", json!({"app": "a"})),
        &s,
        &opts("m1", false, T2),
    )
    .unwrap();
    assert_eq!(dropped["spec"]["replicas"], 3, "still owned by m2");
}

#[test]
fn several_conflicts_message() {
    let s = dep();
    let live = apply(
        None,
        &config(Some(3), "img:1", json!({"app": "a"})),
        &s,
        &opts("m1", false, T1),
    )
    .unwrap();
    let mut live2 = live.clone();
    live2["metadata"]["labels"]["team"] = json!("x");
    update_managed_fields(Some(&live), &mut live2, &s, &upd("editor", T1)).unwrap();
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"team": "y", "app": "b"}},
        "spec": {"replicas": 1}});
    let err = apply(Some(&live2), &cfg, &s, &opts("m3", false, T2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"editor\" using apps/v1 at 2024-01-01T00:00:00Z:\n- .metadata.labels.team\nconflicts with \"m1\":\n- .metadata.labels.app\n- .spec.replicas"
    );
}

#[test]
fn update_takes_ownership_from_appliers() {
    let s = dep();
    let live = apply(
        None,
        &config(Some(3), "img:1", json!({"app": "a"})),
        &s,
        &opts("m1", false, T1),
    )
    .unwrap();
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(7);
    // a client that sends no managedFields keeps the live ones
    edited["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    update_managed_fields(Some(&live), &mut edited, &s, &upd("kubectl-edit", T2)).unwrap();
    let m = managed(&edited);
    let ed = m.iter().find(|e| e.0 == "kubectl-edit").unwrap();
    assert_eq!(ed.1, "Update");
    assert_eq!(ed.2, json!({"f:spec": {"f:replicas": {}}}));
    let m1 = m.iter().find(|e| e.0 == "m1").unwrap();
    assert!(m1.2["f:spec"].get("f:replicas").is_none());
    // entries sorted: Apply before Update
    assert_eq!(edited["metadata"]["managedFields"][0]["manager"], "m1");

    // re-applying the old value now conflicts with the editor
    let err = apply(
        Some(&edited),
        &config(Some(3), "img:1", json!({"app": "a"})),
        &s,
        &opts("m1", false, T2),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1 at 2024-01-01T00:01:00Z: .spec.replicas"
    );
}

#[test]
fn update_on_create_and_removal() {
    let s = dep();
    let mut created = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"app": "a"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    update_managed_fields(None, &mut created, &s, &upd("kubectl-create", T1)).unwrap();
    assert_eq!(
        managed(&created),
        vec![(
            "kubectl-create".to_string(),
            "Update".to_string(),
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {".": {}, "f:template": {".": {}, "f:spec": {".": {}, "f:containers": {".": {},
                    "k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
            })
        )]
    );
    // another manager removes the label: it leaves every set
    let mut next = created.clone();
    next["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app");
    update_managed_fields(Some(&created), &mut next, &s, &upd("other", T2)).unwrap();
    let m = managed(&next);
    assert_eq!(m.len(), 1, "no-op manager not recorded: {m:?}");
    assert!(m[0].2["f:metadata"]["f:labels"].get("f:app").is_none());
    // a no-op update records nothing new
    let mut same = next.clone();
    update_managed_fields(Some(&next), &mut same, &s, &upd("noop", T2)).unwrap();
    assert_eq!(managed(&same), managed(&next));
}

#[test]
fn reset_with_empty_entry() {
    let s = dep();
    let live = apply(
        None,
        &config(Some(3), "img:1", json!({"app": "a"})),
        &s,
        &opts("m1", false, T1),
    )
    .unwrap();
    let mut new = live.clone();
    new["metadata"]["managedFields"] = json!([{}]);
    update_managed_fields(Some(&live), &mut new, &s, &upd("x", T2)).unwrap();
    assert!(new["metadata"].get("managedFields").is_none(), "{new}");
}

#[test]
fn set_lists_and_atomic_lists() {
    let pod = BuiltinSchema::for_kind("", "Pod").unwrap();
    let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a", "b"]},
        "spec": {"tolerations": [{"key": "k"}]}});
    let out = apply(
        None,
        &cfg,
        &pod,
        &ApplyOptions {
            api_version: "v1",
            ..opts("m", false, T1)
        },
    )
    .unwrap();
    assert_eq!(
        managed(&out)[0].2,
        json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}, "f:spec": {"f:tolerations": {}}})
    );
    let cfg2 =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["b"]}});
    let out2 = apply(
        Some(&out),
        &cfg2,
        &pod,
        &ApplyOptions {
            api_version: "v1",
            ..opts("m", false, T2)
        },
    )
    .unwrap();
    assert_eq!(out2["metadata"]["finalizers"], json!(["b"]));
    assert!(out2.get("spec").is_none(), "{out2}");

    // custom resources without list annotations: lists are atomic
    let cr = json!({"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w"}, "spec": {"items": [1, 2]}});
    let out3 = apply(
        None,
        &cr,
        &NoSchema,
        &ApplyOptions {
            api_version: "example.com/v1",
            ..opts("m", false, T1)
        },
    )
    .unwrap();
    assert_eq!(managed(&out3)[0].2, json!({"f:spec": {"f:items": {}}}));
}

#[test]
fn apply_merges_list_items_and_keeps_foreign_ones() {
    let s = dep();
    let live = apply(
        None,
        &config(Some(1), "a:1", json!({})),
        &s,
        &opts("m1", false, T1),
    )
    .unwrap();
    // m2 adds a sidecar container
    let side = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:1"}]}}}});
    let both = apply(Some(&live), &side, &s, &opts("m2", false, T1)).unwrap();
    let names: Vec<&str> = both["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["c", "side"]);
    // m1 re-applies its config: the sidecar owned by m2 stays
    let again = apply(
        Some(&both),
        &config(Some(1), "a:2", json!({})),
        &s,
        &opts("m1", false, T2),
    )
    .unwrap();
    assert_eq!(
        again["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // m2 stops applying the sidecar: it is removed
    let side_gone =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
    let after = apply(Some(&again), &side_gone, &s, &opts("m2", false, T2)).unwrap();
    let cs = after["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0]["image"], "a:2");
}

#[test]
fn apply_input_errors() {
    let s = dep();
    let mut cfg = config(Some(1), "a", json!({}));
    cfg["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    assert_eq!(
        apply(None, &cfg, &s, &opts("m", false, T1)).unwrap_err(),
        PatchError::BadRequest("metadata.managedFields must be nil".into())
    );
    assert!(matches!(
        apply(None, &json!([1]), &s, &opts("m", false, T1)),
        Err(PatchError::BadRequest(_))
    ));
    let parsed = parse_apply_patch(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    assert_eq!(
        parsed,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}})
    );
    assert!(parse_apply_patch(b"- a\n- b\n").is_err());
    assert!(parse_apply_patch(b"a: [").is_err());
}

#[test]
fn first_apply_to_unmanaged_object_sees_before_first_apply() {
    let s = dep();
    let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2, "paused": false}});
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 4}});
    let err = apply(Some(&live), &cfg, &s, &opts("m", false, T1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1 at 2024-01-01T00:00:00Z: .spec.replicas"
    );
    let out = apply(Some(&live), &cfg, &s, &opts("m", true, T1)).unwrap();
    let m = managed(&out);
    assert_eq!(m.len(), 2);
    let bfa = m.iter().find(|e| e.0 == BEFORE_FIRST_APPLY).unwrap();
    assert_eq!(bfa.2, json!({"f:spec": {"f:paused": {}}}));
}

#[test]
fn list_map_keys_use_schema_defaults() {
    let s = dep();
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}}});
    let created = apply(None, &cfg, &s, &opts("m", false, T1)).unwrap();
    // the server defaults protocol afterwards
    let mut live = created.clone();
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
    let again = apply(Some(&live), &cfg, &s, &opts("m", false, T2)).unwrap();
    let ports = again["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap();
    assert_eq!(ports.len(), 1, "no duplicate item: {ports:?}");
    assert_eq!(ports[0]["protocol"], "TCP");
    assert_eq!(
        managed(&again)[0].2["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"c\"}"]["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
}

#[test]
fn duplicate_keys_in_applied_config() {
    let s = dep();
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A"}, {"name": "A"}]}]}}}});
    let err = apply(None, &cfg, &s, &opts("m", false, T1)).unwrap_err();
    assert_eq!(
        err,
        PatchError::Internal(
            "failed to create typed patch object (ns/d; apps/v1, Kind=Deployment): .spec.template.spec.containers[name=\"c\"].env: duplicate entries for key [name=\"A\"]".into()
        )
    );
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}});
    assert_eq!(
        apply(None, &cfg, &s, &opts("m", false, T1)).unwrap_err().to_string(),
        "failed to create typed patch object (/d; apps/v1, Kind=Deployment): .spec.template.spec.containers: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
    let pod = BuiltinSchema::for_kind("", "Pod").unwrap();
    let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a", "a"]}});
    let err = apply(None, &cfg, &pod, &opts("m", false, T1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (/p; /v1, Kind=Pod): .metadata.finalizers: duplicate entries for value [=\"a\"]"
    );
}

#[test]
fn apply_list_merge_order() {
    // live-only items keep their place, shared items follow the configuration's order
    let s = BuiltinSchema::for_kind("", "Pod").unwrap();
    let names = |v: &Value| -> Vec<String> {
        v["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let cases = [
        (vec!["a", "x", "b"], vec!["b", "a"], vec!["x", "b", "a"]),
        (vec!["a", "b"], vec!["b", "a"], vec!["b", "a"]),
        (vec!["a", "b"], vec!["a", "n", "b"], vec!["a", "n", "b"]),
        (vec!["x", "a"], vec!["n", "a"], vec!["x", "n", "a"]),
        (vec![], vec!["a", "b"], vec!["a", "b"]),
    ];
    for (live, cfg, want) in cases {
        let mk = |ns: &[&str]| {
            let cs: Vec<Value> = ns.iter().map(|n| json!({"name": n})).collect();
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": cs}})
        };
        let mut live_obj = mk(&live);
        live_obj["metadata"]["managedFields"] = json!([{"manager": "other", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]);
        let out = apply(
            Some(&live_obj),
            &mk(&cfg),
            &s,
            &ApplyOptions {
                api_version: "v1",
                ..opts("m", true, T1)
            },
        )
        .unwrap();
        assert_eq!(names(&out), want, "live {live:?} config {cfg:?}");
    }
}

#[test]
fn noop_apply_keeps_managed_fields_unchanged() {
    let s = dep();
    let cfg = config(Some(3), "img:1", json!({"app": "a"}));
    let live = apply(None, &cfg, &s, &opts("m1", false, T1)).unwrap();
    let again = apply(Some(&live), &cfg, &s, &opts("m1", false, T2)).unwrap();
    assert_eq!(again, live, "no-op apply leaves the object byte-identical");
    let changed = apply(
        Some(&live),
        &config(Some(4), "img:1", json!({"app": "a"})),
        &s,
        &opts("m1", false, T2),
    )
    .unwrap();
    assert_eq!(changed["metadata"]["managedFields"][0]["time"], T2);
}

#[test]
fn update_managers_are_capped() {
    let s = NoSchema;
    let mut obj =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    for i in 0..12 {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("v");
        let now = format!("2024-01-01T00:00:{i:02}Z");
        update_managed_fields(
            Some(&obj),
            &mut next,
            &s,
            &UpdateOptions {
                manager: &format!("m{i}"),
                api_version: "v1",
                subresource: "",
                now: &now,
            },
        )
        .unwrap();
        obj = next;
    }
    let m = managed(&obj);
    assert_eq!(m.len(), MAX_UPDATE_MANAGERS);
    let bucket = m.iter().find(|e| e.0 == ANCIENT_CHANGES).expect("bucket");
    // the three oldest changes (m0..m2) were folded into the bucket
    assert_eq!(
        bucket.2,
        json!({"f:data": {"f:k0": {}, "f:k1": {}, "f:k2": {}}})
    );
    assert!(!m.iter().any(|e| e.0 == "m0" || e.0 == "m2"));
    assert!(m.iter().any(|e| e.0 == "m11"));
}

#[test]
fn shared_set_lists_and_atomic_conflicts() {
    let pod = BuiltinSchema::for_kind("", "Pod").unwrap();
    let o = |m: &'static str| ApplyOptions {
        api_version: "v1",
        ..opts(m, false, T1)
    };
    let base = |fin: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": fin}});
    let a = apply(None, &base(json!(["a"])), &pod, &o("A")).unwrap();
    let ab = apply(Some(&a), &base(json!(["b"])), &pod, &o("B")).unwrap();
    assert_eq!(ab["metadata"]["finalizers"], json!(["a", "b"]));
    let mut no_fin = base(json!([]));
    no_fin["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    let b_only = apply(Some(&ab), &no_fin, &pod, &o("A")).unwrap();
    assert_eq!(b_only["metadata"]["finalizers"], json!(["b"]));

    // atomic lists conflict as a whole
    let tol = |t: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"tolerations": [{"key": t}]}});
    let x = apply(None, &tol("x"), &pod, &o("A")).unwrap();
    let err = apply(Some(&x), &tol("y"), &pod, &o("B")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"A\": .spec.tolerations"
    );
}

#[test]
fn owner_references_items_are_atomic() {
    let pod = BuiltinSchema::for_kind("", "Pod").unwrap();
    let o = ApplyOptions {
        api_version: "v1",
        ..opts("m", false, T1)
    };
    let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
        "ownerReferences": [{"uid": "u1", "name": "rs", "kind": "ReplicaSet", "apiVersion": "apps/v1"}]}});
    let out = apply(None, &cfg, &pod, &o).unwrap();
    assert_eq!(
        managed(&out)[0].2,
        json!({"f:metadata": {"f:ownerReferences": {"k:{\"uid\":\"u1\"}": {}}}})
    );
    // the applied item replaces the live one as a whole
    let mut live = out.clone();
    live["metadata"]["ownerReferences"][0]["controller"] = json!(true);
    let again = apply(Some(&live), &cfg, &pod, &ApplyOptions { force: true, ..o }).unwrap();
    assert!(
        again["metadata"]["ownerReferences"][0]
            .get("controller")
            .is_none(),
        "{again}"
    );
}

#[test]
fn managed_fields_on_odd_objects() {
    let s = NoSchema;
    // an object without metadata gets one
    let mut v = json!({"data": {"a": "1"}});
    update_managed_fields(None, &mut v, &s, &upd("m", T1)).unwrap();
    assert_eq!(v["metadata"]["managedFields"][0]["manager"], "m");
    // a non-object is left alone
    let mut arr = json!([1, 2]);
    update_managed_fields(None, &mut arr, &s, &upd("m", T1)).unwrap();
    assert_eq!(arr, json!([1, 2]));
}
