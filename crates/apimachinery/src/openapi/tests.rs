//! Tests of the OpenAPI v3 documents: structure, operations, extensions, lookups, CRDs.

use super::*;
use serde_json::json;

fn doc(path: &str) -> Value {
    document(path)
        .unwrap_or_else(|| panic!("no document {path}"))
        .to_value()
}

fn schema<'a>(d: &'a Value, name: &str) -> &'a Value {
    d.pointer(&format!("/components/schemas/{}", name.replace('/', "~1")))
        .unwrap_or_else(|| panic!("no schema {name}"))
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    schema::collect_refs(v, out)
}

/// Every object node of a JSON tree.
fn objects<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match v {
        Value::Object(o) => {
            out.push(o);
            o.values().for_each(|c| objects(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| objects(c, out)),
        _ => {}
    }
}

#[test]
fn every_builtin_group_version_has_a_document() {
    let want = [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/autoscaling/v1",
        "apis/autoscaling/v2",
        "apis/discovery.k8s.io/v1",
        "apis/coordination.k8s.io/v1",
        "apis/events.k8s.io/v1",
        "apis/rbac.authorization.k8s.io/v1",
        "apis/storage.k8s.io/v1",
        "apis/networking.k8s.io/v1",
        "apis/policy/v1",
        "apis/scheduling.k8s.io/v1",
        "apis/apiextensions.k8s.io/v1",
        "apis/authentication.k8s.io/v1",
        "apis/authorization.k8s.io/v1",
    ];
    for p in want {
        let d = doc(p);
        assert_eq!(d["openapi"], "3.0.0", "{p}");
        assert!(d["info"]["title"].is_string(), "{p}");
        assert!(!d["paths"].as_object().unwrap().is_empty(), "{p}");
    }
    assert!(document("apis/apps/v2").is_none());
    assert!(document("apis/nope/v1").is_none());
    assert_eq!(builtin_documents().len(), want.len());
}

#[test]
fn every_ref_resolves_inside_its_document_and_no_ref_has_siblings() {
    for d in builtin_documents() {
        let v = d.to_value();
        let mut rs = Vec::new();
        refs(&v, &mut rs);
        assert!(!rs.is_empty());
        for r in rs {
            assert!(
                v["components"]["schemas"].get(&r).is_some(),
                "{}: dangling ref {r}",
                d.path
            );
        }
        let mut objs = Vec::new();
        objects(&v, &mut objs);
        for o in objs {
            if o.get("$ref").is_some_and(Value::is_string) {
                assert_eq!(o.len(), 1, "{}: $ref with siblings {o:?}", d.path);
            }
        }
    }
}

#[test]
fn every_resource_has_its_operations_and_kind_schemas() {
    let b = builtin();
    for gv in b.group_versions() {
        let d = doc(&gv.path());
        let root = if gv.group.is_empty() {
            format!("/api/{}", gv.version)
        } else {
            format!("/apis/{}/{}", gv.group, gv.version)
        };
        for r in &gv.resources {
            let coll = if r.namespaced {
                format!("{root}/namespaces/{{namespace}}/{}", r.plural)
            } else {
                format!("{root}/{}", r.plural)
            };
            let want_gvk = json!({"group": gv.group, "kind": r.kind, "version": gv.version});
            let mut ops = vec![];
            if r.has("create") {
                ops.push((coll.clone(), "post", "post"));
            }
            if r.has("list") {
                ops.push((coll.clone(), "get", "list"));
            }
            if r.has("get") {
                ops.push((format!("{coll}/{{name}}"), "get", "get"));
            }
            if r.has("patch") {
                ops.push((format!("{coll}/{{name}}"), "patch", "patch"));
            }
            if r.has("update") {
                ops.push((format!("{coll}/{{name}}"), "put", "put"));
            }
            if r.has("delete") {
                ops.push((format!("{coll}/{{name}}"), "delete", "delete"));
            }
            if r.has("deletecollection") {
                ops.push((coll.clone(), "delete", "deletecollection"));
            }
            for (path, method, action) in ops {
                let op = d["paths"]
                    .get(&path)
                    .and_then(|p| p.get(method))
                    .unwrap_or_else(|| panic!("{}: no {method} {path}", gv.path()));
                assert_eq!(op["x-kubernetes-action"], action, "{method} {path}");
                assert_eq!(
                    op["x-kubernetes-group-version-kind"], want_gvk,
                    "{method} {path}"
                );
                assert!(op["operationId"].is_string());
            }
            let name = b.schema_name(&gv.group, &gv.version, &r.kind).unwrap();
            let s = schema(&d, name);
            assert!(
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .unwrap()
                    .contains(&want_gvk),
                "{name} lacks its gvk"
            );
            assert!(s["properties"].as_object().unwrap().len() >= 2, "{name}");
            if r.has("list") {
                let list_kind = format!("{}List", r.kind);
                let ln = b.schema_name(&gv.group, &gv.version, &list_kind).unwrap();
                let l = schema(&d, ln);
                assert_eq!(
                    l["x-kubernetes-group-version-kind"],
                    json!([{"group": gv.group, "kind": list_kind, "version": gv.version}])
                );
                assert_eq!(l["properties"]["items"]["items"], schema::ref_to(name));
            }
        }
    }
}

#[test]
fn operation_ids_follow_upstream() {
    let cases = [
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods",
            "get",
            "listCoreV1NamespacedPod",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods",
            "post",
            "createCoreV1NamespacedPod",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods",
            "delete",
            "deleteCoreV1CollectionNamespacedPod",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "get",
            "readCoreV1NamespacedPod",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "put",
            "replaceCoreV1NamespacedPod",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "patch",
            "patchCoreV1NamespacedPod",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}",
            "delete",
            "deleteCoreV1NamespacedPod",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "patch",
            "patchCoreV1NamespacedPodStatus",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            "get",
            "readCoreV1NamespacedPodLog",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
            "post",
            "createCoreV1NamespacedPodEviction",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/ephemeralcontainers",
            "patch",
            "patchCoreV1NamespacedPodEphemeralcontainers",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            "post",
            "createCoreV1NamespacedServiceAccountToken",
        ),
        (
            "api/v1",
            "/api/v1/pods",
            "get",
            "listCoreV1PodForAllNamespaces",
        ),
        (
            "api/v1",
            "/api/v1/watch/pods",
            "get",
            "watchCoreV1PodListForAllNamespaces",
        ),
        (
            "api/v1",
            "/api/v1/watch/namespaces/{namespace}/pods",
            "get",
            "watchCoreV1NamespacedPodList",
        ),
        (
            "api/v1",
            "/api/v1/watch/namespaces/{namespace}/pods/{name}",
            "get",
            "watchCoreV1NamespacedPod",
        ),
        ("api/v1", "/api/v1/nodes/{name}", "get", "readCoreV1Node"),
        (
            "api/v1",
            "/api/v1/watch/nodes",
            "get",
            "watchCoreV1NodeList",
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{name}/finalize",
            "put",
            "replaceCoreV1NamespaceFinalize",
        ),
        ("api/v1", "/api/v1/", "get", "getCoreV1APIResources"),
        (
            "apis/apps/v1",
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            "patch",
            "patchAppsV1NamespacedDeploymentScale",
        ),
        (
            "apis/apps/v1",
            "/apis/apps/v1/",
            "get",
            "getAppsV1APIResources",
        ),
        (
            "apis/rbac.authorization.k8s.io/v1",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "get",
            "listRbacAuthorizationV1ClusterRole",
        ),
        (
            "apis/discovery.k8s.io/v1",
            "/apis/discovery.k8s.io/v1/endpointslices",
            "get",
            "listDiscoveryV1EndpointSliceForAllNamespaces",
        ),
        (
            "apis/authorization.k8s.io/v1",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "post",
            "createAuthorizationV1SelfSubjectAccessReview",
        ),
        (
            "apis/autoscaling/v2",
            "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}/status",
            "get",
            "readAutoscalingV2NamespacedHorizontalPodAutoscalerStatus",
        ),
    ];
    let mut docs = BTreeMap::new();
    for (d, path, method, id) in cases {
        let v = docs.entry(d).or_insert_with(|| doc(d));
        let got = v["paths"]
            .get(path)
            .and_then(|p| p.get(method))
            .unwrap_or_else(|| panic!("no {method} {path}"));
        assert_eq!(got["operationId"], id, "{method} {path}");
    }
    // create-only and read-only resources have nothing else
    let authz = doc("apis/authorization.k8s.io/v1");
    let ssar = &authz["paths"]["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"];
    assert!(ssar.get("get").is_none() && ssar.get("delete").is_none());
    assert!(authz["paths"]
        .get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}")
        .is_none());
    let core = doc("api/v1");
    assert!(core["paths"]["/api/v1/namespaces"].get("delete").is_none());
    assert!(core["paths"]
        .get("/api/v1/watch/componentstatuses")
        .is_none());
}

fn param_names(op: &Value) -> Vec<String> {
    op["parameters"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn write_operations_carry_field_validation_and_patch_types() {
    for d in builtin_documents() {
        let v = d.to_value();
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let names = param_names(op);
                match method.as_str() {
                    "patch" => {
                        for p in ["dryRun", "fieldManager", "fieldValidation", "force"] {
                            assert!(names.contains(&p.to_string()), "{path} patch lacks {p}");
                        }
                        let content = op["requestBody"]["content"].as_object().unwrap();
                        for t in [
                            "application/strategic-merge-patch+json",
                            "application/merge-patch+json",
                            "application/json-patch+json",
                            "application/apply-patch+yaml",
                        ] {
                            assert!(content.contains_key(t), "{path} patch lacks {t}");
                        }
                        assert!(op["x-kubernetes-group-version-kind"].is_object());
                    }
                    "put" | "post" => {
                        for p in ["dryRun", "fieldManager", "fieldValidation"] {
                            assert!(names.contains(&p.to_string()), "{path} {method} lacks {p}");
                        }
                    }
                    "get" if op["x-kubernetes-action"] == "list" => {
                        for p in [
                            "labelSelector",
                            "fieldSelector",
                            "watch",
                            "resourceVersion",
                            "limit",
                        ] {
                            assert!(names.contains(&p.to_string()), "{path} list lacks {p}");
                        }
                    }
                    _ => {}
                }
                if method != "parameters" {
                    assert!(
                        op["responses"]["200"].is_object() || op["responses"]["201"].is_object()
                    );
                }
            }
            // path-level parameters of named paths include name
            if path.ends_with("{name}") {
                assert!(param_names(item).contains(&"name".to_string()), "{path}");
            }
        }
    }
}

/// (schema, property, merge key, strategy, list type, map keys)
type Ext = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    &'static [&'static str],
);

#[test]
fn patch_and_list_extensions_match_upstream_markers() {
    let cases: &[(&str, Ext)] = &[
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.PodSpec",
                "containers",
                Some("name"),
                Some("merge"),
                Some("map"),
                &["name"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.PodSpec",
                "initContainers",
                Some("name"),
                Some("merge"),
                Some("map"),
                &["name"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.PodSpec",
                "volumes",
                Some("name"),
                Some("merge,retainKeys"),
                Some("map"),
                &["name"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.PodSpec",
                "tolerations",
                None,
                None,
                Some("atomic"),
                &[],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.PodSpec",
                "imagePullSecrets",
                Some("name"),
                Some("merge"),
                Some("map"),
                &["name"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.Container",
                "env",
                Some("name"),
                Some("merge"),
                Some("map"),
                &["name"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.Container",
                "ports",
                Some("containerPort"),
                Some("merge"),
                Some("map"),
                &["containerPort", "protocol"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.Container",
                "volumeMounts",
                Some("mountPath"),
                Some("merge"),
                Some("map"),
                &["mountPath"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.ServiceSpec",
                "ports",
                Some("port"),
                Some("merge"),
                Some("map"),
                &["port", "protocol"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.api.core.v1.PodStatus",
                "conditions",
                Some("type"),
                Some("merge"),
                Some("map"),
                &["type"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                "finalizers",
                None,
                Some("merge"),
                Some("set"),
                &[],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                "ownerReferences",
                Some("uid"),
                Some("merge"),
                Some("map"),
                &["uid"],
            ),
        ),
        (
            "api/v1",
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                "managedFields",
                None,
                None,
                Some("atomic"),
                &[],
            ),
        ),
        (
            "apis/apps/v1",
            (
                "io.k8s.api.apps.v1.DeploymentStatus",
                "conditions",
                Some("type"),
                Some("merge"),
                Some("map"),
                &["type"],
            ),
        ),
        (
            "apis/apps/v1",
            (
                "io.k8s.api.apps.v1.DeploymentSpec",
                "strategy",
                None,
                Some("retainKeys"),
                None,
                &[],
            ),
        ),
        (
            "apis/apps/v1",
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
                "matchExpressions",
                None,
                None,
                Some("atomic"),
                &[],
            ),
        ),
        (
            "apis/rbac.authorization.k8s.io/v1",
            (
                "io.k8s.api.rbac.v1.ClusterRole",
                "rules",
                None,
                None,
                Some("atomic"),
                &[],
            ),
        ),
    ];
    let mut docs = BTreeMap::new();
    for (d, (s, p, mk, st, lt, keys)) in cases {
        let v = docs.entry(*d).or_insert_with(|| doc(d));
        let prop = &schema(v, s)["properties"][p];
        assert!(prop.is_object(), "{s}.{p} missing");
        assert_eq!(
            prop.get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str),
            *mk,
            "{s}.{p}"
        );
        assert_eq!(
            prop.get("x-kubernetes-patch-strategy")
                .and_then(Value::as_str),
            *st,
            "{s}.{p}"
        );
        assert_eq!(
            prop.get("x-kubernetes-list-type").and_then(Value::as_str),
            *lt,
            "{s}.{p}"
        );
        let got_keys: Vec<&str> = prop
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|k| k.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(got_keys, *keys, "{s}.{p}");
    }
}

#[cfg(feature = "schemars")]
#[test]
fn every_extension_tag_names_an_existing_property() {
    let b = builtin();
    let mut missing = Vec::new();
    for t in tags::FIELD_TAGS {
        if let Some(s) = b.schemas().get(t.schema) {
            // fields newer than k8s-openapi's v1_33 spec would silently lose their extensions
            if s.pointer(&format!("/properties/{}", t.field)).is_none() {
                missing.push(format!("{}.{}", t.schema, t.field));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tagged but not in the schema: {missing:?}"
    );
}

#[test]
fn types_formats_enums_and_map_types() {
    let core = doc("api/v1");
    let ios = schema(&core, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(ios["format"], "int-or-string");
    assert_eq!(
        ios["oneOf"],
        json!([{"type": "integer"}, {"type": "string"}])
    );
    let q = schema(&core, "io.k8s.apimachinery.pkg.api.resource.Quantity");
    assert_eq!(q["oneOf"], json!([{"type": "string"}, {"type": "number"}]));
    assert!(q.get("format").is_none());
    let t = schema(&core, "io.k8s.apimachinery.pkg.apis.meta.v1.Time");
    assert_eq!(
        (t["type"].as_str(), t["format"].as_str()),
        (Some("string"), Some("date-time"))
    );
    let c = schema(&core, "io.k8s.api.core.v1.Container");
    assert_eq!(
        c["properties"]["imagePullPolicy"]["enum"],
        json!(["Always", "IfNotPresent", "Never"])
    );
    assert_eq!(c["required"], json!(["name"]));
    assert!(
        c["properties"]["name"]["description"]
            .as_str()
            .unwrap()
            .len()
            > 10
    );
    let svc = schema(&core, "io.k8s.api.core.v1.ServiceSpec");
    assert_eq!(
        svc["properties"]["ipFamilies"]["items"]["enum"],
        json!(["", "IPv4", "IPv6"])
    );
    assert_eq!(
        svc["properties"]["type"]["enum"],
        json!(["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])
    );
    let lor = schema(&core, "io.k8s.api.core.v1.LocalObjectReference");
    assert_eq!(lor["x-kubernetes-map-type"], "atomic");
    // references with a description are wrapped as upstream does
    let pod = schema(&core, "io.k8s.api.core.v1.Pod");
    assert_eq!(
        pod["properties"]["spec"]["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}])
    );
    assert!(pod["properties"]["spec"]["description"].is_string());
    assert!(pod.get("required").is_none(), "metadata is never required");
    let status = schema(&core, "io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    assert_eq!(
        status["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Status", "version": "v1"}])
    );
    // a property named `$ref` is not a reference
    let ext = doc("apis/apiextensions.k8s.io/v1");
    let props = schema(
        &ext,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
    );
    assert_eq!(props["properties"]["$ref"]["type"], "string");
    let any = schema(
        &ext,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    );
    assert!(any.get("type").is_none() && any["description"].is_string());
    let del = schema(&core, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
    assert!(del["x-kubernetes-group-version-kind"]
        .as_array()
        .unwrap()
        .contains(&json!({"group": "apps", "kind": "DeleteOptions", "version": "v1"})));
}

/// (group, version, kind, path, merge key, strategies, list type)
type LookupCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    &'static [&'static str],
    Option<&'static str>,
);

#[test]
fn field_info_follows_paths_through_references_and_lists() {
    let cases: &[LookupCase] = &[
        (
            "",
            "v1",
            "Pod",
            &["spec", "containers"],
            Some("name"),
            &["merge"],
            Some("map"),
        ),
        (
            "",
            "v1",
            "Pod",
            &["spec", "containers", "env"],
            Some("name"),
            &["merge"],
            Some("map"),
        ),
        (
            "",
            "v1",
            "Pod",
            &["spec", "containers", "ports"],
            Some("containerPort"),
            &["merge"],
            Some("map"),
        ),
        (
            "",
            "v1",
            "Pod",
            &["spec", "volumes"],
            Some("name"),
            &["merge", "retainKeys"],
            Some("map"),
        ),
        (
            "",
            "v1",
            "Pod",
            &["spec", "tolerations"],
            None,
            &[],
            Some("atomic"),
        ),
        (
            "",
            "v1",
            "Pod",
            &["metadata", "finalizers"],
            None,
            &["merge"],
            Some("set"),
        ),
        (
            "",
            "v1",
            "Pod",
            &["metadata", "ownerReferences"],
            Some("uid"),
            &["merge"],
            Some("map"),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            &["spec", "template", "spec", "containers"],
            Some("name"),
            &["merge"],
            Some("map"),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            &["spec", "strategy"],
            None,
            &["retainKeys"],
            None,
        ),
        (
            "batch",
            "v1",
            "CronJob",
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "initContainers",
            ],
            Some("name"),
            &["merge"],
            Some("map"),
        ),
        (
            "",
            "v1",
            "Service",
            &["spec", "ports"],
            Some("port"),
            &["merge"],
            Some("map"),
        ),
        ("", "v1", "Pod", &["metadata", "labels"], None, &[], None),
    ];
    for (g, v, k, path, mk, st, lt) in cases {
        let info = field_info(g, v, k, path).unwrap_or_else(|| panic!("{k} {path:?}"));
        assert_eq!(info.patch_merge_key.as_deref(), *mk, "{k} {path:?}");
        assert_eq!(
            info.patch_strategies,
            st.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{k} {path:?}"
        );
        assert_eq!(info.list_type.as_deref(), *lt, "{k} {path:?}");
    }
    let c = field_info("", "v1", "Pod", &["spec", "containers"]).unwrap();
    assert_eq!(c.schema.as_deref(), Some("io.k8s.api.core.v1.Container"));
    assert_eq!(c.type_name.as_deref(), Some("array"));
    let sel = field_info("apps", "v1", "Deployment", &["spec", "selector"]).unwrap();
    assert_eq!(sel.map_type.as_deref(), Some("atomic"));
    // map values (labels) and unknown fields / kinds
    assert!(field_info("", "v1", "Pod", &["metadata", "labels", "app"]).is_some());
    assert!(field_info("", "v1", "Pod", &["spec", "nope"]).is_none());
    assert!(field_info("", "v1", "Nope", &["spec"]).is_none());
}

#[test]
fn discovery_index_points_at_hashed_documents() {
    let docs = builtin_documents();
    let idx = discovery_paths(docs.iter().map(|d| (d.path.as_str(), d.hash.as_str())));
    let hashes = builtin_hashes();
    assert_eq!(
        hashes,
        docs.iter()
            .map(|d| (d.path.clone(), d.hash.clone()))
            .collect::<Vec<_>>()
    );
    let apps = document("apis/apps/v1").unwrap();
    assert_eq!(
        idx["paths"]["apis/apps/v1"]["serverRelativeURL"],
        format!("/openapi/v3/apis/apps/v1?hash={}", apps.hash)
    );
    assert_eq!(apps.hash.len(), 128);
    assert!(apps
        .hash
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    assert_eq!(idx["paths"].as_object().unwrap().len(), docs.len());
    // the hash follows the content
    let a = Document::new("x", &json!({"a": 1}));
    let b = Document::new("x", &json!({"a": 2}));
    assert_ne!(a.hash, b.hash);
    assert_eq!(a.hash, Document::new("x", &json!({"a": 1})).hash);
    // generation is deterministic
    let again = Document::new("apis/apps/v1", &apps.to_value());
    assert_eq!(again.hash, apps.hash);
}

fn crontab_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "names": {"kind": "CronTab", "plural": "crontabs", "singular": "crontab", "listKind": "CronTabList"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "cronSpec": {"type": "string", "description": "the schedule"},
                                    "replicas": {"type": "integer"},
                                    "port": {"x-kubernetes-int-or-string": true},
                                    "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                                              "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
                                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        },
                    }},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                },
                {"name": "v2", "served": false, "storage": false},
            ],
        },
    })
}

#[test]
fn custom_resource_document_from_crd_schema() {
    let d = custom_resource_document("stable.example.com", "v1", &[crontab_crd()]).unwrap();
    assert_eq!(d.path, "apis/stable.example.com/v1");
    let v = d.to_value();
    let s = schema(&v, "com.example.stable.v1.CronTab");
    assert_eq!(
        s["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );
    assert_eq!(
        s["properties"]["metadata"]["allOf"],
        json!([schema::ref_to(schema::OBJECT_META)])
    );
    assert_eq!(
        s["properties"]["spec"]["properties"]["cronSpec"]["description"],
        "the schedule"
    );
    assert_eq!(
        s["properties"]["spec"]["properties"]["port"]["x-kubernetes-int-or-string"],
        true
    );
    assert_eq!(
        s["properties"]["spec"]["properties"]["items"]["x-kubernetes-list-map-keys"],
        json!(["name"])
    );
    assert_eq!(
        s["properties"]["status"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let tpl = &s["properties"]["spec"]["properties"]["template"];
    assert!(tpl["properties"]["metadata"].is_object() && tpl["properties"]["kind"].is_object());
    assert_eq!(tpl["required"], json!(["kind", "apiVersion"]));
    let l = schema(&v, "com.example.stable.v1.CronTabList");
    assert_eq!(
        l["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTabList", "version": "v1"}])
    );
    // meta schemas come along, every ref resolves
    let mut rs = Vec::new();
    refs(&v, &mut rs);
    for r in rs {
        assert!(v["components"]["schemas"].get(&r).is_some(), "dangling {r}");
    }
    let root = "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs";
    let patch = &v["paths"][format!("{root}/{{name}}")]["patch"];
    assert_eq!(
        patch["operationId"],
        "patchStableExampleComV1NamespacedCronTab"
    );
    assert!(param_names(patch).contains(&"fieldValidation".to_string()));
    let content = patch["requestBody"]["content"].as_object().unwrap();
    assert!(!content.contains_key("application/strategic-merge-patch+json"));
    assert!(content.contains_key("application/merge-patch+json"));
    assert_eq!(
        v["paths"][format!("{root}/{{name}}/status")]["get"]["x-kubernetes-action"],
        "get"
    );
    let scale = &v["paths"][format!("{root}/{{name}}/scale")]["put"];
    assert_eq!(
        scale["requestBody"]["content"]["*/*"]["schema"],
        schema::ref_to("io.k8s.api.autoscaling.v1.Scale")
    );
    assert!(v["paths"]
        .get("/apis/stable.example.com/v1/crontabs")
        .is_some());
    assert!(v["paths"]
        .get("/apis/stable.example.com/v1/watch/crontabs")
        .is_none());
    // lookup works on custom documents too
    let comps: BTreeMap<String, Value> = v["components"]["schemas"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let info = lookup_field(&comps, "com.example.stable.v1.CronTab", &["spec", "items"]).unwrap();
    assert_eq!(info.list_map_keys, vec!["name".to_string()]);
    let fin = lookup_field(
        &comps,
        "com.example.stable.v1.CronTab",
        &["metadata", "finalizers"],
    )
    .unwrap();
    assert_eq!(fin.list_type.as_deref(), Some("set"));
}

#[test]
fn custom_resource_document_errors_and_schemaless_crds() {
    assert_eq!(
        custom_resource_document("stable.example.com", "v2", &[crontab_crd()]).unwrap_err(),
        OpenApiError::NothingServed("stable.example.com/v2".into())
    );
    assert!(custom_resource_document("other.example.com", "v1", &[crontab_crd()]).is_err());
    let mut bad = crontab_crd();
    bad["spec"]["names"]["kind"] = json!("");
    assert_eq!(
        custom_resource_document("stable.example.com", "v1", &[bad]).unwrap_err(),
        OpenApiError::InvalidCrd("spec.names.kind is required".into())
    );
    let mut schemaless = crontab_crd();
    schemaless["spec"]["scope"] = json!("Cluster");
    schemaless["spec"]["versions"][0]
        .as_object_mut()
        .unwrap()
        .remove("schema");
    let v = custom_resource_document("stable.example.com", "v1", &[schemaless])
        .unwrap()
        .to_value();
    let s = schema(&v, "com.example.stable.v1.CronTab");
    assert_eq!(s["type"], "object");
    assert!(s.get("properties").is_none());
    assert!(v["paths"]
        .get("/apis/stable.example.com/v1/crontabs/{name}")
        .is_some());
}

/// `components.json` is what the generator makes of k8s-openapi today (regenerate with
/// `cargo run -p apimachinery --features schemars --example gen_openapi_components`).
#[cfg(feature = "schemars")]
#[test]
fn embedded_components_are_what_the_generator_makes() {
    let generated = builtin_components(&builtin_group_versions());
    let embedded = embedded_components_json();
    assert!(
        generated.to_json() == embedded,
        "components.json is stale: run `cargo run -p apimachinery --features schemars --example gen_openapi_components`"
    );
    assert_eq!(BuiltinComponents::from_json(&embedded).unwrap(), generated);
}

#[test]
fn embedded_components_round_trip_and_cover_every_kind() {
    let json = embedded_components_json();
    let c = BuiltinComponents::from_json(&json).unwrap();
    assert_eq!(c.to_json(), json);
    for gv in builtin_group_versions() {
        for r in &gv.resources {
            let name = &c.kinds[&(gv.group.clone(), gv.version.clone(), r.kind.clone())];
            assert!(c.schemas.contains_key(name), "{name}");
        }
    }
    let pod = &c.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(pod["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(pod["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(
        c.kinds[&("".to_string(), "v1".to_string(), "PodList".to_string())],
        "io.k8s.api.core.v1.PodList"
    );
}

#[test]
fn strip_descriptions_removes_schema_descriptions_only() {
    // (schema, after stripping)
    let cases = [
        (
            json!({"description": "d", "type": "string"}),
            json!({"type": "string"}),
        ),
        (
            // a property named description stays; its own description goes
            json!({"properties": {"description": {"description": "d", "type": "string"}}}),
            json!({"properties": {"description": {"type": "string"}}}),
        ),
        (
            json!({"items": {"description": "d", "allOf": [{"description": "x", "$ref": "r"}]},
                   "additionalProperties": {"description": "d"}, "not": {"description": "d"},
                   "oneOf": [{"description": "d"}], "anyOf": [{"description": "d"}]}),
            json!({"items": {"allOf": [{"$ref": "r"}]}, "additionalProperties": {},
                   "not": {}, "oneOf": [{}], "anyOf": [{}]}),
        ),
        (
            // values that are not schemas are left alone
            json!({"enum": [{"description": "v"}], "default": {"description": "v"}}),
            json!({"enum": [{"description": "v"}], "default": {"description": "v"}}),
        ),
    ];
    for (mut input, want) in cases {
        schema::strip_descriptions(&mut input);
        assert_eq!(input, want);
    }
}

#[test]
fn kept_schemas_have_no_descriptions_but_documents_do() {
    let b = builtin();
    let mut strings = Vec::new();
    fn descriptions(v: &Value, under_properties: bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    if k == "description" && !under_properties {
                        out.push(c.to_string());
                    }
                    descriptions(c, k == "properties", out);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| descriptions(c, false, out)),
            _ => {}
        }
    }
    for s in b.schemas().values() {
        descriptions(s, false, &mut strings);
    }
    assert!(
        strings.is_empty(),
        "kept descriptions: {:?}",
        &strings[..strings.len().min(3)]
    );
    // the same schemas otherwise: PriorityClass keeps its `description` field
    let pc = &b.schemas()["io.k8s.api.scheduling.v1.PriorityClass"];
    assert_eq!(pc["properties"]["description"]["type"], "string");
    let full = b.full_schemas();
    assert_eq!(full.len(), b.schemas().len());
    assert!(full["io.k8s.api.core.v1.Pod"]["description"].is_string());
    // documents are built from the full schemas
    let d = doc("api/v1");
    assert!(schema(&d, "io.k8s.api.core.v1.Pod")["description"].is_string());
    // and patch metadata still comes from the kept ones
    let f = field_info("", "v1", "Pod", &["spec", "containers"]).unwrap();
    assert_eq!(f.patch_merge_key.as_deref(), Some("name"));
}
