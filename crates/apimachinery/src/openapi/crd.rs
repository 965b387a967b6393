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
/// For OpenAPI v2 (`v2`), objects that keep unknown fields get none: kubectl would then refuse
/// every other field.
fn add_embedded_properties(s: &mut Value, v2: bool) {
    let Some(o) = s.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        props
            .values_mut()
            .for_each(|p| add_embedded_properties(p, v2));
    }
    if let Some(items) = o.get_mut("items") {
        add_embedded_properties(items, v2);
    }
    if let Some(ap) = o.get_mut("additionalProperties") {
        add_embedded_properties(ap, v2);
    }
    if v2 && o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    if o.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
        add_type_meta_properties(
            o,
            EMBEDDED_API_VERSION_DESCRIPTION,
            EMBEDDED_KIND_DESCRIPTION,
        );
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
    add_embedded_properties(&mut s, false);
    with_type_meta(s, gvk)
}

/// The OpenAPI v2 schema of a custom resource kind, as upstream publishes it for kubectl's
/// client-side validation: without a schema, or when the root keeps unknown fields, just an
/// object (so no field is refused); otherwise the schema reduced to what kubectl's v2 model
/// understands ([`to_v2_structural`]).
pub(super) fn kind_schema_v2(
    openapi_schema: Option<&Value>,
    group: &str,
    version: &str,
    kind: &str,
) -> Value {
    let gvk = json!([super::schema::gvk(group, version, kind)]);
    let Some(src) = openapi_schema.filter(|s| {
        s.is_object() && s.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
    }) else {
        return json!({"type": "object", "x-kubernetes-group-version-kind": gvk});
    };
    let mut s = src.clone();
    to_v2_structural(&mut s);
    add_embedded_properties(&mut s, true);
    with_type_meta(s, gvk)
}

/// Upstream's `ToStructuralOpenAPIV2`: drops the junctors (allOf/oneOf/anyOf/not); a nullable
/// value loses its type, items and properties (and is no longer required); a value keeping
/// unknown fields loses items and properties, and its object type; an array without items loses
/// its type.
pub(super) fn to_v2_structural(s: &mut Value) {
    let Some(o) = s.as_object_mut() else {
        return;
    };
    for k in ["allOf", "oneOf", "anyOf", "not"] {
        o.shift_remove(k);
    }
    let nullable = o.shift_remove("nullable") == Some(Value::Bool(true));
    let preserve = o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if nullable {
        o.shift_remove("type");
    }
    if nullable || preserve {
        o.shift_remove("items");
        o.shift_remove("properties");
    }
    let ty = o.get("type").and_then(Value::as_str).map(String::from);
    if ty.as_deref() == Some("array") && o.get("items").is_none() {
        o.shift_remove("type");
    }
    if preserve && ty.as_deref() == Some("object") {
        o.shift_remove("type");
    }
    let is_nullable = |v: &Value| v.get("nullable") == Some(&Value::Bool(true));
    let nullable_props: Vec<String> = o
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter(|(_, v)| is_nullable(v))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let nullable_values = o.get("additionalProperties").is_some_and(is_nullable);
    if let Some(Value::Array(req)) = o.get_mut("required") {
        req.retain(|r| {
            !r.as_str()
                .is_some_and(|r| nullable_props.iter().any(|p| p == r))
        });
        if req.is_empty() || nullable_values {
            o.shift_remove("required");
        }
    }
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        props.values_mut().for_each(to_v2_structural);
    }
    if let Some(items) = o.get_mut("items") {
        to_v2_structural(items);
    }
    if let Some(ap) = o.get_mut("additionalProperties") {
        to_v2_structural(ap);
    }
}

/// Declares the apiVersion, kind (with these descriptions) and metadata properties in an
/// object schema.
fn add_type_meta_properties(o: &mut Map<String, Value>, api_version: &str, kind: &str) {
    let props = o
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(p) = props {
        p.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": api_version}),
        );
        p.insert(
            "kind".into(),
            json!({"type": "string", "description": kind}),
        );
        p.insert(
            "metadata".into(),
            json!({"allOf": [ref_to(OBJECT_META)], "description": METADATA_DESCRIPTION}),
        );
    }
}

/// Adds apiVersion, kind, metadata and the group-version-kind to a custom kind's schema.
fn with_type_meta(mut s: Value, gvk: Value) -> Value {
    let o = s.as_object_mut().expect("checked object");
    o.entry("type").or_insert_with(|| "object".into());
    add_type_meta_properties(o, API_VERSION_DESCRIPTION, KIND_DESCRIPTION);
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
    let (p, own) = custom_parts(group, version, crds, kind_schema)?;
    let doc = assemble(p, &builtin().full_schemas(), &own);
    Ok(Document::new(super::gv_path(group, version), &doc))
}

/// Builds the schema of a custom kind from its version's `openAPIV3Schema` (absent when the
/// version has none).
pub(super) type KindSchemaFn = fn(Option<&Value>, &str, &str, &str) -> Value;

/// The paths and own component schemas (kinds and lists) of one custom group-version.
pub(super) type CustomParts = (Map<String, Value>, BTreeMap<String, Value>);

/// The paths and own component schemas (kinds and lists) of one custom group-version.
pub(super) fn custom_parts(
    group: &str,
    version: &str,
    crds: &[Value],
    kind_schema: KindSchemaFn,
) -> Result<CustomParts, OpenApiError> {
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
    Ok((p, own))
}

/// The (group, version) pairs the CRDs serve, sorted.
pub fn custom_group_versions(crds: &[Value]) -> Vec<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for crd in crds {
        let Some(group) = crd.pointer("/spec/group").and_then(Value::as_str) else {
            continue;
        };
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            if let Some(name) = v.get("name").and_then(Value::as_str) {
                out.insert((group.to_string(), name.to_string()));
            }
        }
    }
    out.into_iter().collect()
}
