//! Tests of the OpenAPI v2 document: its JSON form, its protobuf form decoded back, and the rules
//! kubectl's v2 model (kube-openapi `proto.NewOpenAPIData`) enforces when it loads the document.

use std::collections::BTreeSet;

use prost::Message;
use serde_json::{json, Value};

use super::*;

fn crontab_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com", "uid": "u1", "generation": 1},
        "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["cronSpec", "note"], "properties": {
                        "cronSpec": {"type": "string", "pattern": "^\\S+$"},
                        "replicas": {"type": "integer", "minimum": 1, "default": 1},
                        "note": {"type": "string", "nullable": true},
                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                  "properties": {"a": {"type": "string"}}},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "properties": {"spec": {"type": "object"}}}
                    }},
                    "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
                }}}
            }, {
                "name": "v2", "served": false, "storage": false,
                "schema": {"openAPIV3Schema": {"type": "object"}}
            }]
        }
    })
}

fn free_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "blobs.x.example.org"},
        "spec": {
            "group": "x.example.org", "scope": "Cluster",
            "names": {"plural": "blobs", "singular": "blob", "kind": "Blob", "listKind": "BlobList"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

fn doc_with(crds: &[Value]) -> Value {
    document_value(crds)
}

fn def<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/definitions/{}", name.replace('/', "~1")))
        .unwrap_or_else(|| panic!("no definition {name}"))
}

/// The checks of kube-openapi's `Definitions.ParseSchema` (what kubectl runs on the whole
/// document before validating anything): every reference points at an existing definition and
/// has no type or properties beside it, one type at most, arrays have exactly one item schema.
fn check_models(doc: &pb::Document) -> Vec<String> {
    let defs = &doc
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    let names: BTreeSet<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    let mut errs = Vec::new();
    fn walk(s: &pb::Schema, path: &str, names: &BTreeSet<&str>, errs: &mut Vec<String>) {
        let types = s
            .r#type
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_default();
        if !s.r#ref.is_empty() {
            if s.properties
                .as_ref()
                .is_some_and(|p| !p.additional_properties.is_empty())
            {
                errs.push(format!("{path}: unallowed embedded type definition"));
            }
            if !types.is_empty() {
                errs.push(format!("{path}: definition reference can't have a type"));
            }
            match s.r#ref.strip_prefix(DEFINITIONS_PREFIX) {
                Some(n) if names.contains(n) => {}
                _ => errs.push(format!("{path}: unknown model in reference {:?}", s.r#ref)),
            }
            return;
        }
        if types.len() > 1 {
            errs.push(format!(
                "{path}: definitions with multiple types aren't supported"
            ));
        }
        if types.first().map(String::as_str) == Some("array") {
            match s.items.as_ref().map(|i| i.schema.as_slice()) {
                Some([one]) => walk(one, &format!("{path}[]"), names, errs),
                _ => errs.push(format!("{path}: array should have exactly one sub-item")),
            }
        }
        if let Some(p) = &s.properties {
            for n in &p.additional_properties {
                if let Some(v) = &n.value {
                    walk(v, &format!("{path}.{}", n.name), names, errs);
                }
            }
        }
        if let Some(pb::AdditionalPropertiesItem {
            oneof: Some(pb::additional_properties_item::Oneof::Schema(ap)),
        }) = s.additional_properties.as_deref()
        {
            walk(ap, &format!("{path}{{}}"), names, errs);
        }
        if let Some(t) = types.first() {
            if !["object", "array", "string", "number", "integer", "boolean"].contains(&t.as_str())
            {
                errs.push(format!("{path}: Unknown primitive type: {t:?}"));
            }
        }
    }
    for d in defs {
        walk(
            d.value.as_ref().expect("schema"),
            &d.name,
            &names,
            &mut errs,
        );
    }
    errs
}

fn gvk_ext(s: &pb::Schema) -> Option<Value> {
    s.vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .map(|e| serde_yaml::from_str(&e.value.as_ref().expect("value").yaml).expect("yaml"))
}

#[test]
fn protobuf_decodes_back_to_the_json_document() {
    let built = build(&[crontab_crd(), free_crd()]);
    let decoded = pb::Document::decode(built.protobuf.as_slice()).expect("decodes");
    let json: Value = serde_json::from_slice(&built.json).expect("json");
    assert_eq!(decoded, to_protobuf(&json));
    assert_eq!(decoded.swagger, "2.0");
    assert_eq!(decoded.info.as_ref().unwrap().version, KUBERNETES_VERSION);
    let defs = &decoded.definitions.as_ref().unwrap().additional_properties;
    let pod = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.Pod")
        .and_then(|d| d.value.as_ref())
        .expect("Pod");
    assert_eq!(
        gvk_ext(pod),
        Some(json!([{"group": "", "kind": "Pod", "version": "v1"}]))
    );
    let spec = pod
        .properties
        .as_ref()
        .unwrap()
        .additional_properties
        .iter()
        .find(|p| p.name == "spec")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    assert_eq!(spec.r#ref, "#/definitions/io.k8s.api.core.v1.PodSpec");
    assert!(!spec.description.is_empty());
    // the bearer token security definition survives
    let sd = decoded.security_definitions.as_ref().unwrap();
    assert_eq!(sd.additional_properties[0].name, "BearerToken");
    // an etag is the upper-case sha512 of the JSON
    assert_eq!(built.etag.len(), 128);
    assert!(built
        .etag
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
}

#[test]
fn every_definition_loads_as_a_kubectl_model() {
    let built = build(&[crontab_crd(), free_crd()]);
    let decoded = pb::Document::decode(built.protobuf.as_slice()).expect("decodes");
    let errs = check_models(&decoded);
    assert!(errs.is_empty(), "{errs:#?}");
    // and the checker catches what kubectl refuses
    let bad = to_protobuf(&json!({"definitions": {
        "A": {"$ref": "#/definitions/Missing"},
        "B": {"type": "array"},
        "C": {"$ref": "#/definitions/A", "type": "object"},
        "D": {"type": ["string", "integer"]}
    }}));
    assert_eq!(check_models(&bad).len(), 4, "{:?}", check_models(&bad));
}

#[test]
fn no_v3_construct_is_left() {
    let doc = doc_with(&[crontab_crd()]);
    assert!(!doc.to_string().contains("#/components/schemas/"));
    // schemas: no v3-only keyword (property *names* may be anything: JSONSchemaProps has oneOf)
    fn walk(s: &Value, at: &str) {
        let Some(o) = s.as_object() else { return };
        for k in ["oneOf", "anyOf", "not", "nullable"] {
            assert!(!o.contains_key(k), "{k} at {at}");
        }
        if let Some(p) = o.get("properties").and_then(Value::as_object) {
            p.iter().for_each(|(n, c)| walk(c, &format!("{at}.{n}")));
        }
        for k in ["items", "additionalProperties"] {
            if let Some(c) = o.get(k) {
                walk(c, &format!("{at}.{k}"));
            }
        }
    }
    for (n, d) in doc["definitions"].as_object().unwrap() {
        walk(d, n);
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            assert!(op.get("requestBody").is_none(), "{m} {path}");
            for (code, r) in op
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                assert!(r.get("content").is_none(), "{m} {path} {code}");
            }
        }
    }
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["security"], json!([{"BearerToken": []}]));
}

#[test]
fn scalar_types_in_their_v2_form() {
    let doc = doc_with(&[]);
    let ios = def(&doc, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(ios["type"], "string");
    assert_eq!(ios["format"], "int-or-string");
    let q = def(&doc, "io.k8s.apimachinery.pkg.api.resource.Quantity");
    assert_eq!(q["type"], "string");
    assert!(q.get("format").is_none());
    // any JSON: no type at all
    let j = def(
        &doc,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    );
    assert!(j.get("type").is_none(), "{j}");
    // a reference with a description is a plain $ref with a sibling
    let meta = &def(&doc, "io.k8s.api.core.v1.ConfigMap")["properties"]["metadata"];
    assert_eq!(
        meta["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(meta.get("allOf").is_none());
    assert!(meta["description"].is_string());
}

#[test]
fn patch_metadata_is_kept() {
    let doc = doc_with(&[]);
    let containers = &def(&doc, "io.k8s.api.core.v1.PodSpec")["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["type"], "array");
    assert_eq!(
        containers["items"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    let labels =
        &def(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")["properties"]["labels"];
    assert_eq!(labels["type"], "object");
    assert_eq!(labels["additionalProperties"]["type"], "string");
}

#[test]
fn operations_in_swagger_form() {
    let doc = doc_with(&[]);
    let coll = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"];
    let post = &coll["post"];
    assert_eq!(post["operationId"], "createCoreV1NamespacedConfigMap");
    assert_eq!(post["x-kubernetes-action"], "post");
    assert_eq!(
        post["x-kubernetes-group-version-kind"],
        json!({"group": "", "kind": "ConfigMap", "version": "v1"})
    );
    assert_eq!(post["consumes"], json!(["*/*"]));
    assert_eq!(post["schemes"], json!(["https"]));
    assert!(post["produces"]
        .as_array()
        .unwrap()
        .contains(&json!("application/vnd.kubernetes.protobuf")));
    let params = post["parameters"].as_array().unwrap();
    assert_eq!(
        params[0],
        json!({"in": "body", "name": "body", "required": true,
               "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap"}})
    );
    let fv = params
        .iter()
        .find(|p| p["name"] == "fieldValidation")
        .expect("fieldValidation");
    assert_eq!(fv["in"], "query");
    assert_eq!(fv["type"], "string");
    assert_eq!(fv["uniqueItems"], true);
    assert!(fv.get("schema").is_none());
    assert_eq!(
        post["responses"]["201"]["schema"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.ConfigMap"
    );
    assert_eq!(
        post["responses"]["401"],
        json!({"description": "Unauthorized"})
    );
    // path-level parameters
    let ns = coll["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "namespace")
        .unwrap();
    assert_eq!(ns["in"], "path");
    assert_eq!(ns["required"], true);
    // patch consumes every patch type, strategic merge for built-ins
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    let consumes = patch["consumes"].as_array().unwrap();
    assert!(consumes.contains(&json!("application/strategic-merge-patch+json")));
    assert!(consumes.contains(&json!("application/apply-patch+yaml")));
    assert_eq!(
        patch["parameters"][0]["schema"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    );
    // delete takes an optional body
    let del = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["delete"];
    assert_eq!(del["parameters"][0]["in"], "body");
    assert!(del["parameters"][0].get("required").is_none());
}

#[test]
fn custom_resources_are_included_as_upstream_publishes_them_for_kubectl() {
    let doc = doc_with(&[crontab_crd(), free_crd()]);
    let ct = def(&doc, "com.example.stable.v1.CronTab");
    assert_eq!(
        ct["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );
    assert_eq!(
        ct["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(ct["properties"]["apiVersion"]["type"], "string");
    let spec = &ct["properties"]["spec"];
    // nullable: no type, not required
    assert!(spec["properties"]["note"].get("type").is_none());
    assert_eq!(spec["required"], json!(["cronSpec"]));
    // int-or-string: the alternatives are gone, so no type
    assert!(spec["properties"]["port"].get("type").is_none());
    assert!(spec["properties"]["port"].get("anyOf").is_none());
    // preserve-unknown-fields object: neither type nor properties
    assert!(spec["properties"]["extra"].get("type").is_none());
    assert!(spec["properties"]["extra"].get("properties").is_none());
    // value validation stays
    assert_eq!(spec["properties"]["replicas"]["minimum"], 1);
    // embedded resources get apiVersion/kind/metadata
    let tpl = &spec["properties"]["template"];
    assert_eq!(tpl["properties"]["kind"]["type"], "string");
    assert_eq!(tpl["required"], json!(["kind", "apiVersion"]));
    // the list kind
    let list = def(&doc, "com.example.stable.v1.CronTabList");
    assert_eq!(
        list["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTabList", "version": "v1"}])
    );
    assert_eq!(
        list["properties"]["items"]["items"]["$ref"],
        "#/definitions/com.example.stable.v1.CronTab"
    );
    // paths, merge patch only
    let item = &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"];
    assert_eq!(
        item["get"]["operationId"],
        "readStableExampleComV1NamespacedCronTab"
    );
    assert!(!item["patch"]["consumes"]
        .as_array()
        .unwrap()
        .contains(&json!("application/strategic-merge-patch+json")));
    assert!(doc["paths"]
        .get("/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status")
        .is_some());
    // a version not served is absent
    assert!(doc["definitions"]
        .get("com.example.stable.v2.CronTab")
        .is_none());
    // a root that keeps unknown fields: just an object, so kubectl accepts any field
    assert_eq!(
        def(&doc, "org.example.x.v1alpha1.Blob"),
        &json!({"type": "object", "x-kubernetes-group-version-kind":
            [{"group": "x.example.org", "kind": "Blob", "version": "v1alpha1"}]})
    );
}

#[test]
fn the_document_changes_with_the_crds_only() {
    let a = build(&[crontab_crd()]);
    let b = build(&[crontab_crd()]);
    assert_eq!(a.etag, b.etag);
    assert_eq!(a.protobuf, b.protobuf);
    let none = build(&[]);
    assert_ne!(a.etag, none.etag);
    let mut changed = crontab_crd();
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["image"] = json!({"type": "string"});
    assert_ne!(build(&[changed]).etag, a.etag);
}

#[test]
fn v2_structural_reduction() {
    let cases = [
        (
            json!({"type": "object", "nullable": true, "properties": {"a": {"type": "string"}}}),
            json!({}),
        ),
        (
            json!({"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}}),
            json!({"x-kubernetes-preserve-unknown-fields": true}),
        ),
        (
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {}}}),
            json!({"x-kubernetes-preserve-unknown-fields": true}),
        ),
        (
            json!({"type": "string", "allOf": [{"pattern": "a"}], "oneOf": [{"pattern": "b"}], "not": {"pattern": "c"}}),
            json!({"type": "string"}),
        ),
        (
            json!({"type": "object", "required": ["a", "b"], "properties": {
                "a": {"type": "string", "nullable": true}, "b": {"type": "string"}}}),
            json!({"type": "object", "required": ["b"], "properties": {"a": {}, "b": {"type": "string"}}}),
        ),
        (
            json!({"type": "object", "required": ["a"], "additionalProperties": {"type": "string", "nullable": true}}),
            json!({"type": "object", "additionalProperties": {}}),
        ),
        (
            json!({"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer", "anyOf": [{"minimum": 1}]}}}}),
            json!({"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}}),
        ),
    ];
    for (mut input, want) in cases {
        let orig = input.clone();
        crate::openapi::crd::to_v2_structural(&mut input);
        assert_eq!(input, want, "from {orig}");
    }
}

#[test]
fn a_single_v3_document_converts_like_the_whole() {
    let whole = doc_with(&[]);
    let apps = crate::openapi::document("apis/apps/v1").unwrap().to_value();
    let part = from_v3(&apps);
    assert_eq!(part["swagger"], "2.0");
    let defs = part["definitions"].as_object().unwrap();
    assert!(defs.contains_key("io.k8s.api.apps.v1.Deployment"));
    for (name, d) in defs {
        assert_eq!(d, def(&whole, name), "{name}");
    }
    for (path, item) in part["paths"].as_object().unwrap() {
        assert_eq!(item, &whole["paths"][path], "{path}");
    }
}
