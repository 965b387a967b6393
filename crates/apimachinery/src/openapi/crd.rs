//! OpenAPI v3 group-version documents of custom resources, built from their
//! CustomResourceDefinitions' `openAPIV3Schema` the way upstream's apiextensions builder does.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::paths::{self, GvPaths, KindSchema, PathResource, SubOps};
use super::schema::{
    list_schema, list_schema_name, ref_to, sort_keys, API_VERSION_DESCRIPTION, KIND_DESCRIPTION,
    OBJECT_META,
};
use super::{assemble, builtin, Document, OpenApiError};

const METADATA_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const EMBEDDED_API_VERSION_DESCRIPTION: &str = "apiVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const EMBEDDED_KIND_DESCRIPTION: &str = "kind is a string value representing the type of this object. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const SCALE_SCHEMA: &str = "io.k8s.api.autoscaling.v1.Scale";

fn str_at<'a>(v: &'a Value, pointer: &str) -> Result<&'a str, OpenApiError> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            OpenApiError::InvalidCrd(format!("{} is required", &pointer[1..].replace('/', ".")))
        })
}

/// `stable.example.com` + `v1` + `CronTab` -> `com.example.stable.v1.CronTab` (upstream's
/// REST-friendly name of a custom resource type).
pub fn custom_schema_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{kind}", parts.join("."))
}

/// Adds apiVersion/kind/metadata to every `x-kubernetes-embedded-resource` object, as upstream.
fn add_embedded_properties(s: &mut Value) {
    let Some(o) = s.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        props.values_mut().for_each(add_embedded_properties);
    }
    if let Some(items) = o.get_mut("items") {
        add_embedded_properties(items);
    }
    if let Some(ap) = o.get_mut("additionalProperties") {
        add_embedded_properties(ap);
    }
    if o.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
        let props = o
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(p) = props {
            p.insert(
                "apiVersion".into(),
                json!({"type": "string", "description": EMBEDDED_API_VERSION_DESCRIPTION}),
            );
            p.insert(
                "kind".into(),
                json!({"type": "string", "description": EMBEDDED_KIND_DESCRIPTION}),
            );
            p.insert(
                "metadata".into(),
                json!({"allOf": [ref_to(OBJECT_META)], "description": METADATA_DESCRIPTION}),
            );
        }
        let req = o.entry("required").or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(r) = req {
            for k in ["kind", "apiVersion"] {
                if !r.iter().any(|x| x == k) {
                    r.push(k.into());
                }
            }
        }
    }
}

/// The schema of a custom resource kind from its version's `openAPIV3Schema`.
fn kind_schema(openapi_schema: Option<&Value>, group: &str, version: &str, kind: &str) -> Value {
    let gvk = json!([super::schema::gvk(group, version, kind)]);
    let Some(src) = openapi_schema.filter(|s| s.is_object()) else {
        // no schema: anything goes; properties would make kubectl reject unknown fields
        return json!({"type": "object", "x-kubernetes-group-version-kind": gvk});
    };
    let mut s = src.clone();
    add_embedded_properties(&mut s);
    let o = s.as_object_mut().expect("checked object");
    o.entry("type").or_insert_with(|| "object".into());
    let props = o
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(p) = props {
        p.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": API_VERSION_DESCRIPTION}),
        );
        p.insert(
            "kind".into(),
            json!({"type": "string", "description": KIND_DESCRIPTION}),
        );
        p.insert(
            "metadata".into(),
            json!({"allOf": [ref_to(OBJECT_META)], "description": METADATA_DESCRIPTION}),
        );
    }
    o.insert("x-kubernetes-group-version-kind".into(), gvk);
    s
}

/// The OpenAPI v3 document of one custom group-version (`apis/<group>/<version>`) from the
/// CustomResourceDefinitions (JSON objects as stored) that serve it. CRDs of other groups or not
/// serving the version are skipped; an error if none serves it or one is malformed.
pub fn custom_resource_document(
    group: &str,
    version: &str,
    crds: &[Value],
) -> Result<Document, OpenApiError> {
    let b = builtin();
    let gp = GvPaths {
        group,
        version,
        strategic_merge: false,
    };
    let mut own: BTreeMap<String, Value> = BTreeMap::new();
    let mut p = Map::new();
    for crd in crds {
        if str_at(crd, "/spec/group")? != group {
            continue;
        }
        let kind = str_at(crd, "/spec/names/kind")?;
        let plural = str_at(crd, "/spec/names/plural")?;
        let list_kind = crd
            .pointer("/spec/names/listKind")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .unwrap_or_else(|| format!("{kind}List"));
        let namespaced = str_at(crd, "/spec/scope")? == "Namespaced";
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or_else(|| OpenApiError::InvalidCrd("spec.versions is required".into()))?;
        let Some(v) = versions.iter().find(|v| {
            v.get("name").and_then(Value::as_str) == Some(version)
                && v.get("served").and_then(Value::as_bool) != Some(false)
        }) else {
            continue;
        };
        let name = custom_schema_name(group, version, kind);
        let schema = kind_schema(v.pointer("/schema/openAPIV3Schema"), group, version, kind);
        own.insert(name.clone(), schema);
        let list_name = list_schema_name(&name);
        let mut list = list_schema(&own, &name, kind);
        list["description"] = format!("{list_kind} is a list of {kind}").into();
        list["x-kubernetes-group-version-kind"] =
            json!([super::schema::gvk(group, version, &list_kind)]);
        own.insert(list_name.clone(), list);

        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push(("status".to_string(), SubOps::ParentGetPutPatch));
        }
        if v.pointer("/subresources/scale").is_some() {
            // upstream tags the scale operations with the custom kind, body autoscaling/v1 Scale
            subresources.push((
                "scale".to_string(),
                SubOps::OtherGetPutPatch(KindSchema {
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                    schema: SCALE_SCHEMA.into(),
                }),
            ));
        }
        let pr = PathResource {
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            // custom resources have no deprecated /watch/ paths
            verbs: [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            schema: name,
            list_schema: Some(list_name),
            subresources,
        };
        paths::resource_paths(&gp, &pr, &mut p);
    }
    if own.is_empty() {
        return Err(OpenApiError::NothingServed(format!("{group}/{version}")));
    }
    paths::root_path(&gp, &mut p);
    for s in own.values_mut() {
        sort_keys(s);
    }
    let doc = assemble(p, b.schemas(), &own);
    Ok(Document::new(super::gv_path(group, version), &doc))
}
