//! Table-driven tests of strategic merge patch against upstream's documented behaviour.

use super::*;
use crate::patch::schema::{BuiltinSchema, NoSchema};
use serde_json::json;

fn pod() -> BuiltinSchema {
    BuiltinSchema::for_kind("", "Pod").unwrap()
}

#[test]
fn smp_table() {
    let pod_s = pod();
    let dep_s = BuiltinSchema::for_kind("apps", "Deployment").unwrap();
    let svc_s = BuiltinSchema::for_kind("", "Service").unwrap();
    let node_s = BuiltinSchema::for_kind("", "Node").unwrap();
    let two = json!({"spec": {"containers": [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:1"}]}});
    let cases: Vec<(&str, &dyn PatchSchema, Value, Value, Value)> = vec![
        (
            "labels add, change and delete",
            &pod_s,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"a": "9", "b": null, "c": "3"}}}),
            json!({"metadata": {"labels": {"a": "9", "c": "3"}}}),
        ),
        (
            "null for an absent field is ignored, nulls inside new maps are dropped",
            &pod_s,
            json!({"metadata": {"name": "p"}}),
            json!({"metadata": {"x": null, "annotations": {"gone": null, "k": "v"}}}),
            json!({"metadata": {"name": "p", "annotations": {"k": "v"}}}),
        ),
        (
            "containers merge by name",
            &pod_s,
            two.clone(),
            json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
            json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]}}),
        ),
        (
            "new merge-list item goes before server-only items",
            &pod_s,
            two.clone(),
            json!({"spec": {"containers": [{"name": "c", "image": "c:1"}]}}),
            json!({"spec": {"containers": [
                {"name": "c", "image": "c:1"}, {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}),
        ),
        (
            "patched items keep the live order relative to server-only items",
            &pod_s,
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "x"}, {"name": "a", "image": "y"}]}}),
            // b precedes c in the live list, so it stays in front of it
            json!({"spec": {"containers": [{"name": "b"}, {"name": "c", "image": "x"}, {"name": "a", "image": "y"}]}}),
        ),
        (
            "$patch delete removes a list element",
            &pod_s,
            two.clone(),
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "b:1"}]}}),
        ),
        (
            "$patch replace on a list",
            &pod_s,
            two.clone(),
            json!({"spec": {"containers": [{"name": "z", "image": "z:1"}, {"$patch": "replace"}]}}),
            json!({"spec": {"containers": [{"name": "z", "image": "z:1"}]}}),
        ),
        (
            "$patch replace on a map",
            &pod_s,
            json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}, "x": 1}}),
            json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
            json!({"spec": {"nodeSelector": {"c": "3"}, "x": 1}}),
        ),
        (
            "$patch delete on a map empties it",
            &pod_s,
            json!({"metadata": {"labels": {"a": "1"}, "name": "p"}}),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({"metadata": {"labels": {}, "name": "p"}}),
        ),
        (
            "nested env merge by name inside a container",
            &pod_s,
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "3"}, {"name": "X", "$patch": "delete"}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "Y", "value": "3"}]}]}}),
        ),
        (
            "ports merge by numeric containerPort",
            &pod_s,
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "web"}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "web"}, {"containerPort": 443}]}]}}),
        ),
        (
            "finalizers merge as a set",
            &pod_s,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList removes set members",
            &pod_s,
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "c", "zz"]}}),
            json!({"metadata": {"finalizers": ["b"]}}),
        ),
        (
            "tolerations are atomic and replaced",
            &pod_s,
            json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}),
            json!({"spec": {"tolerations": [{"key": "c"}]}}),
            json!({"spec": {"tolerations": [{"key": "c"}]}}),
        ),
        (
            "$setElementOrder reorders without content changes",
            &pod_s,
            two.clone(),
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:1"}]}}),
        ),
        (
            "$setElementOrder places a new item",
            &pod_s,
            two.clone(),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}, {"name": "b"}],
                "containers": [{"name": "c", "image": "c:1"}]}}),
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:1"}, {"name": "c", "image": "c:1"}, {"name": "b", "image": "b:1"}]}}),
        ),
        (
            "$setElementOrder on a primitive merge list",
            &pod_s,
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}}),
            json!({"metadata": {"finalizers": ["b", "c", "a"]}}),
        ),
        (
            "$retainKeys clears unlisted keys",
            &dep_s,
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        ),
        (
            "deployment pod template containers merge",
            &dep_s,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "b", "image": "1"}]}}}}),
        ),
        (
            "without schema lists are replaced",
            &NoSchema,
            two.clone(),
            json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
            json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
        ),
        (
            "type change replaces",
            &pod_s,
            json!({"spec": {"x": {"a": 1}}}),
            json!({"spec": {"x": "flat"}}),
            json!({"spec": {"x": "flat"}}),
        ),
        (
            "new list with a delete directive element is cleaned",
            &pod_s,
            json!({"spec": {}}),
            json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "a", "image": "1"}]}}),
        ),
        (
            "service ports merge by port",
            &svc_s,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}]}}),
        ),
        (
            "$retainKeys inside a volume list element switches the volume source",
            &pod_s,
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}, {"name": "w", "emptyDir": {}}]}}),
        ),
        (
            "numeric primitive set merge (node podCIDRs style)",
            &node_s,
            json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
            json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
            json!({"spec": {"podCIDRs": ["10.0.0.0/24", "fd00::/64"]}}),
        ),
        (
            "ownerReferences merge by uid",
            &pod_s,
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "controller": true}]}}),
        ),
        (
            "$setElementOrder with a deletion and an addition keeps server-only items where the in-place merge left them",
            &pod_s,
            json!({"spec": {"containers": [{"name": "old"}, {"name": "keep", "image": "k"}, {"name": "srv", "image": "s"}]}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "keep"}, {"name": "new"}],
                "containers": [{"name": "new", "image": "n"}, {"name": "old", "$patch": "delete"}]}}),
            json!({"spec": {"containers": [{"name": "keep", "image": "k"}, {"name": "srv", "image": "s"}, {"name": "new", "image": "n"}]}}),
        ),
    ];
    for (desc, schema, orig, patch, want) in cases {
        let got =
            strategic_merge_patch(&orig, &patch, schema).unwrap_or_else(|e| panic!("{desc}: {e}"));
        assert_eq!(got, want, "{desc}");
    }
}

#[test]
fn smp_errors() {
    let s = pod();
    let orig = json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["x"]}});
    let cases: Vec<(&str, Value, PatchError)> = vec![
        (
            "patch not an object",
            json!([1]),
            PatchError::BadRequest("invalid JSON document".into()),
        ),
        (
            "merge key missing",
            json!({"spec": {"containers": [{"image": "x"}]}}),
            PatchError::Internal(
                "map: {\"image\":\"x\"} does not contain declared merge key: name".into(),
            ),
        ),
        (
            "retainKeys not a list",
            json!({"spec": {"$retainKeys": "x"}}),
            PatchError::BadRequest("invalid patch format of retainKeys".into()),
        ),
        (
            "patched key missing from retainKeys",
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
            PatchError::BadRequest("invalid patch format of retainKeys".into()),
        ),
        (
            "unknown $patch directive",
            json!({"spec": {"$patch": "frob"}}),
            PatchError::Internal("unknown patch type: frob in map: {\"$patch\":\"frob\"}".into()),
        ),
        (
            "merge directive in a list",
            json!({"spec": {"containers": [{"$patch": "merge"}]}}),
            PatchError::Internal("merging lists cannot yet be specified in the patch".into()),
        ),
        (
            "list of lists",
            json!({"metadata": {"finalizers": [["a"]]}}),
            PatchError::Internal("list element types are not identical: [\"x\"] [[\"a\"]]".into()),
        ),
        (
            "deleteFromPrimitiveList without field",
            json!({"metadata": {"$deleteFromPrimitiveList": ["x"]}}),
            PatchError::BadRequest("invalid patch format of primitive list".into()),
        ),
        (
            "setElementOrder without field",
            json!({"metadata": {"$setElementOrder": ["x"]}}),
            PatchError::BadRequest("invalid patch format of setElementOrder list".into()),
        ),
        (
            "mixed element types",
            json!({"metadata": {"finalizers": [1]}}),
            PatchError::Internal("list element types are not identical: [\"x\"] [1]".into()),
        ),
    ];
    for (desc, patch, want) in cases {
        let got = strategic_merge_patch(&orig, &patch, &s).unwrap_err();
        assert_eq!(got, want, "{desc}");
    }
    assert_eq!(
        strategic_merge_patch(
            &json!({"metadata": {"finalizers": []}}),
            &json!({"metadata": {"finalizers": [["a"]]}}),
            &s
        )
        .unwrap_err(),
        PatchError::Unprocessable("lists of lists are not supported".into())
    );
    assert_eq!(PatchError::BadRequest(String::new()).reason().code(), 400);
    assert_eq!(
        PatchError::Unprocessable(String::new()).reason().code(),
        422
    );
}
