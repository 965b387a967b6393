//! Component schemas of the built-in kinds: k8s-openapi's JSON schemas rewritten to the form
//! upstream's OpenAPI v3 documents use, plus the Kubernetes vendor extensions k8s-openapi lacks.
//!
//! They are generated from k8s-openapi's `schemars` schemas by [`builtin_components`] (feature
//! `schemars`, `cargo run -p apimachinery --features schemars --example gen_openapi_components`)
//! into `components.json`, which the server embeds and parses on first use
//! ([`embedded_components`]): the schema generator is 4 MB of machine code (a `JsonSchema` impl
//! per k8s-openapi type) that the server would otherwise carry and page in at its first write.

use std::collections::BTreeMap;

#[cfg(feature = "schemars")]
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
#[cfg(feature = "schemars")]
use k8s_openapi::schemars::generate::SchemaSettings;
#[cfg(feature = "schemars")]
use k8s_openapi::schemars::SchemaGenerator;
#[cfg(feature = "schemars")]
use serde_json::Map;
use serde_json::{json, Value};

#[cfg(feature = "schemars")]
use super::resources::{schema_fn, GroupVersionDef, SchemaFn, SubresourceKind};
#[cfg(feature = "schemars")]
use super::tags::{FIELD_TAGS, STRUCT_TAGS};

/// [`BuiltinComponents`] as generated from k8s-openapi, as JSON text (see
/// [`BuiltinComponents::to_json`]).
const EMBEDDED: &str = include_str!("components.json");

/// Prefix of every schema reference in an OpenAPI v3 document.
pub const REF_PREFIX: &str = "#/components/schemas/";

pub(super) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(super) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(super) const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
#[cfg(feature = "schemars")]
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
#[cfg(feature = "schemars")]
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
#[cfg(feature = "schemars")]
/// Types whose OpenAPISchemaType is nil upstream (they hold any JSON value).
const UNTYPED: &[&str] = &[
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
];

pub(super) const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
pub(super) const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

#[cfg(feature = "schemars")]
/// Vendor extensions of one property of a built-in type (see `tags.rs`).
pub struct FieldTag {
    pub schema: &'static str,
    pub field: &'static str,
    pub merge_key: Option<&'static str>,
    pub strategy: Option<&'static str>,
    pub list_type: Option<&'static str>,
    pub map_keys: &'static [&'static str],
    pub map_type: Option<&'static str>,
    pub enum_values: &'static [&'static str],
    pub enum_on_items: bool,
}

#[cfg(feature = "schemars")]
/// Vendor extensions of a whole built-in type.
pub struct StructTag {
    pub schema: &'static str,
    pub map_type: &'static str,
}

/// The name a `{"$ref": ...}` schema points at.
pub fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(REF_PREFIX)
}

/// A `{"$ref": ...}` to a component schema.
pub fn ref_to(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

/// An `x-kubernetes-group-version-kind` entry.
pub fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

#[cfg(feature = "schemars")]
fn schema_name(g: &mut SchemaGenerator, f: SchemaFn) -> String {
    let s = f(g);
    ref_name(s.as_value())
        .expect("k8s-openapi types are referenced by name")
        .to_string()
}

/// Every component schema the built-in documents need, in upstream's form, plus the schema
/// name of each built-in kind.
#[derive(Debug, PartialEq)]
pub struct BuiltinComponents {
    pub schemas: BTreeMap<String, Value>,
    /// (group, version, kind) -> schema name, for kinds and list kinds
    pub kinds: BTreeMap<(String, String, String), String>,
}

impl BuiltinComponents {
    /// `{"kinds": [[group, version, kind, schema name], ...], "schemas": {name: schema, ...}}`,
    /// pretty-printed, in key order, with a final newline (what `components.json` holds).
    pub fn to_json(&self) -> Vec<u8> {
        let kinds: Vec<[&str; 4]> = self
            .kinds
            .iter()
            .map(|((g, v, k), n)| [g.as_str(), v.as_str(), k.as_str(), n.as_str()])
            .collect();
        let mut out =
            serde_json::to_vec_pretty(&json!({ "kinds": kinds, "schemas": self.schemas }))
                .expect("a json value serializes");
        out.push(b'\n');
        out
    }

    /// Parses what [`BuiltinComponents::to_json`] wrote.
    pub fn from_json(bytes: &[u8]) -> Result<BuiltinComponents, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            kinds: Vec<(String, String, String, String)>,
            schemas: BTreeMap<String, Value>,
        }
        let raw: Raw = serde_json::from_slice(bytes)?;
        Ok(BuiltinComponents {
            schemas: raw.schemas,
            kinds: raw
                .kinds
                .into_iter()
                .map(|(g, v, k, n)| ((g, v, k), n))
                .collect(),
        })
    }
}

/// The JSON of the embedded components.
pub fn embedded_components_json() -> Vec<u8> {
    EMBEDDED.as_bytes().to_vec()
}

/// The component schemas of all built-in group-versions, from the embedded generated file.
pub fn embedded_components() -> BuiltinComponents {
    BuiltinComponents::from_json(EMBEDDED.as_bytes())
        .expect("the embedded openapi components are valid")
}

/// [`embedded_components`] without descriptions: what validation, pruning and patch metadata
/// read, kept for the server's lifetime (descriptions are two thirds of the text; parsed, the
/// full set takes ~2.7 MB of heap, this one about a third of it).
pub fn lean_embedded_components() -> BuiltinComponents {
    let mut c = embedded_components();
    for s in c.schemas.values_mut() {
        strip_descriptions(s);
    }
    c
}

/// Removes `description` from a schema and the schemas below it (properties, items,
/// additionalProperties, allOf/oneOf/anyOf/not); a property named `description` stays.
pub fn strip_descriptions(schema: &mut Value) {
    let Value::Object(m) = schema else {
        return;
    };
    m.shift_remove("description");
    for (k, child) in m.iter_mut() {
        match (k.as_str(), child) {
            ("properties" | "patternProperties", Value::Object(props)) => {
                props.values_mut().for_each(strip_descriptions)
            }
            ("allOf" | "oneOf" | "anyOf", Value::Array(a)) => {
                a.iter_mut().for_each(strip_descriptions)
            }
            ("items" | "additionalProperties" | "not", c) => strip_descriptions(c),
            _ => {}
        }
    }
}

/// Generates the component schemas of all built-in group-versions from k8s-openapi's types.
#[cfg(feature = "schemars")]
pub fn builtin_components(gvs: &[GroupVersionDef]) -> BuiltinComponents {
    let schema_of = |group: &str, version: &str, kind: &str| {
        schema_fn(group, version, kind).expect("every built-in kind has a k8s-openapi type")
    };
    let mut g = SchemaSettings::openapi3().into_generator();
    let mut kinds: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut lists: Vec<(String, String, String, String)> = Vec::new(); // group, version, kind, item schema
    let key = |g: &str, v: &str, k: &str| (g.to_string(), v.to_string(), k.to_string());
    for gv in gvs {
        for r in &gv.resources {
            let name = schema_name(&mut g, schema_of(&gv.group, &gv.version, &r.kind));
            kinds.insert(key(&gv.group, &gv.version, &r.kind), name.clone());
            if r.has("list") {
                lists.push((
                    gv.group.to_string(),
                    gv.version.to_string(),
                    r.kind.to_string(),
                    name,
                ));
            }
            for s in &r.subresources {
                match &s.kind {
                    SubresourceKind::OtherGetPutPatch(k) | SubresourceKind::Create(k) => {
                        let name = schema_name(&mut g, schema_of(&k.group, &k.version, &k.kind));
                        kinds.insert(key(&k.group, &k.version, &k.kind), name);
                    }
                    _ => {}
                }
            }
        }
    }
    g.subschema_for::<meta::ListMeta>();
    g.subschema_for::<meta::Status>();
    g.subschema_for::<meta::DeleteOptions>();
    g.subschema_for::<meta::WatchEvent<k8s_openapi::api::core::v1::Pod>>();
    g.subschema_for::<meta::Patch>();
    g.subschema_for::<meta::APIResourceList>();
    let defs = g.take_definitions(false);
    let mut schemas: BTreeMap<String, Value> = defs.into_iter().collect();

    for (group, version, kind, item) in lists {
        let list_kind = format!("{kind}List");
        let list_name = list_schema_name(&item);
        let list = list_schema(&schemas, &item, &kind);
        schemas.insert(list_name.clone(), list);
        kinds.insert(key(&group, &version, &list_kind), list_name);
    }

    for (name, schema) in schemas.iter_mut() {
        postprocess(name, schema);
    }
    add_meta_schemas(&mut schemas);

    // x-kubernetes-group-version-kind on every kind; options and events list every group-version
    for ((group, version, kind), name) in &kinds {
        if let Some(s) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            push_gvk(s, gvk(group, version, kind));
        }
    }
    for common in [DELETE_OPTIONS, WATCH_EVENT] {
        let kind = common.rsplit('.').next().unwrap_or_default();
        if let Some(s) = schemas.get_mut(common).and_then(Value::as_object_mut) {
            for gv in gvs {
                push_gvk(s, gvk(&gv.group, &gv.version, kind));
            }
        }
    }
    if let Some(s) = schemas.get_mut(STATUS).and_then(Value::as_object_mut) {
        push_gvk(s, gvk("", "v1", "Status"));
    }
    for s in schemas.values_mut() {
        sort_keys(s);
    }
    BuiltinComponents { schemas, kinds }
}

#[cfg(feature = "schemars")]
fn push_gvk(s: &mut Map<String, Value>, entry: Value) {
    let list = s
        .entry("x-kubernetes-group-version-kind")
        .or_insert_with(|| Value::Array(vec![]));
    if let Value::Array(a) = list {
        if !a.contains(&entry) {
            a.push(entry);
        }
    }
}

/// `io.k8s.api.core.v1.Pod` -> `io.k8s.api.core.v1.PodList`.
pub fn list_schema_name(item: &str) -> String {
    format!("{item}List")
}

/// The schema of `<Kind>List` for an item schema.
pub fn list_schema(schemas: &BTreeMap<String, Value>, item: &str, kind: &str) -> Value {
    let prop_description = |p: &str, default: &str| -> Value {
        schemas
            .get(item)
            .and_then(|s| s.pointer(&format!("/properties/{p}/description")))
            .cloned()
            .unwrap_or_else(|| Value::String(default.to_string()))
    };
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": prop_description("apiVersion", API_VERSION_DESCRIPTION), "type": "string"},
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": ref_to(item),
            },
            "kind": {"description": prop_description("kind", KIND_DESCRIPTION), "type": "string"},
            "metadata": {
                "allOf": [ref_to(LIST_META)],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
    })
}

#[cfg(feature = "schemars")]
/// Rewrites one k8s-openapi schema to upstream's v3 form and adds the vendor extensions.
fn postprocess(name: &str, schema: &mut Value) {
    match name {
        // kube-openapi's v3 form of these two scalar types
        INT_OR_STRING => {
            *schema = json!({
                "description": schema.get("description").cloned().unwrap_or(Value::Null),
                "format": "int-or-string",
                "oneOf": [{"type": "integer"}, {"type": "string"}],
            });
            return;
        }
        // (Quantity's OpenAPISchemaFormat is empty upstream: no format)
        QUANTITY => {
            *schema = json!({
                "description": schema.get("description").cloned().unwrap_or(Value::Null),
                "oneOf": [{"type": "string"}, {"type": "number"}],
            });
            return;
        }
        // any JSON value: upstream declares no type (k8s-openapi says object)
        n if UNTYPED.contains(&n) => {
            *schema = json!({
                "description": schema.get("description").cloned().unwrap_or(Value::Null),
            });
            return;
        }
        _ => {}
    }
    wrap_ref_siblings(schema);
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    // k8s-openapi makes `metadata` a required Rust field; upstream's schemas never require it
    if let Some(Value::Array(req)) = obj.get_mut("required") {
        req.retain(|r| r != "metadata");
        if req.is_empty() {
            obj.remove("required");
        }
    }
    if let Some(t) = STRUCT_TAGS.iter().find(|t| t.schema == name) {
        obj.insert("x-kubernetes-map-type".into(), t.map_type.into());
    }
    let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for tag in FIELD_TAGS.iter().filter(|t| t.schema == name) {
        if let Some(Value::Object(p)) = props.get_mut(tag.field) {
            apply_field_tag(p, tag);
        }
    }
}

#[cfg(feature = "schemars")]
fn apply_field_tag(p: &mut Map<String, Value>, tag: &FieldTag) {
    if let Some(k) = tag.merge_key {
        p.insert("x-kubernetes-patch-merge-key".into(), k.into());
    }
    if let Some(s) = tag.strategy {
        p.insert("x-kubernetes-patch-strategy".into(), s.into());
    }
    if let Some(l) = tag.list_type {
        p.insert("x-kubernetes-list-type".into(), l.into());
    }
    if !tag.map_keys.is_empty() {
        p.insert("x-kubernetes-list-map-keys".into(), json!(tag.map_keys));
    }
    if let Some(m) = tag.map_type {
        p.insert("x-kubernetes-map-type".into(), m.into());
    }
    if !tag.enum_values.is_empty() {
        let target = if tag.enum_on_items {
            p.get_mut("items").and_then(Value::as_object_mut)
        } else {
            Some(p)
        };
        if let Some(t) = target {
            // only on plain strings: a referenced type keeps its own schema
            if t.get("type").and_then(Value::as_str) == Some("string") {
                t.insert("enum".into(), json!(tag.enum_values));
            }
        }
    }
}

#[cfg(feature = "schemars")]
/// `{"$ref": X, "description": D}` is not valid OpenAPI 3.0 (siblings of `$ref` are ignored):
/// upstream writes `{"allOf": [{"$ref": X}], "description": D}`.
pub fn wrap_ref_siblings(v: &mut Value) {
    match v {
        Value::Object(o) => {
            // (a string: JSONSchemaProps has a *property* named `$ref`)
            if o.len() > 1 && o.get("$ref").is_some_and(Value::is_string) {
                if let Some(r) = o.shift_remove("$ref") {
                    o.insert("allOf".into(), json!([{ "$ref": r }]));
                }
            }
            for (k, child) in o.iter_mut() {
                match k.as_str() {
                    // maps from names to schemas: the map itself is not a schema (a property
                    // may well be called `$ref`, as in JSONSchemaProps)
                    "properties" | "patternProperties" | "definitions" => {
                        if let Value::Object(m) = child {
                            m.values_mut().for_each(wrap_ref_siblings);
                        }
                    }
                    // literal values, not schemas
                    "enum" | "default" | "example" => {}
                    _ => wrap_ref_siblings(child),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(wrap_ref_siblings),
        _ => {}
    }
}

#[cfg(all(test, feature = "schemars"))]
mod wrap_tests {
    use super::*;

    #[test]
    fn property_named_ref_is_not_a_reference() {
        let mut v = json!({"properties": {
            "$ref": {"type": "string"},
            "allOf": {"type": "array", "items": {"$ref": "#/components/schemas/X"}},
            "child": {"$ref": "#/components/schemas/Y", "description": "d"}
        }});
        wrap_ref_siblings(&mut v);
        assert_eq!(v["properties"]["$ref"], json!({"type": "string"}));
        assert_eq!(
            v["properties"]["allOf"]["items"],
            json!({"$ref": "#/components/schemas/X"})
        );
        assert_eq!(
            v["properties"]["child"],
            json!({"allOf": [{"$ref": "#/components/schemas/Y"}], "description": "d"})
        );
    }
}

/// Sorts object keys recursively (upstream documents are written with sorted keys).
pub fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.sort_keys();
            o.values_mut().for_each(sort_keys);
        }
        Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(feature = "schemars")]
fn add_meta_schemas(schemas: &mut BTreeMap<String, Value>) {
    // k8s-openapi models Patch as an empty schema; upstream gives it a type
    schemas.insert(
        PATCH.to_string(),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }),
    );
}

/// Pushes the names of every `$ref` inside a schema.
pub fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(r) = o
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                out.push(r.to_string());
            }
            o.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, out)),
        _ => {}
    }
}
