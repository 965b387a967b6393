//! Unknown-field pruning of built-in kinds against their OpenAPI component schemas: what
//! upstream's JSON decoding into Go structs drops silently, and reports with
//! `fieldValidation=Warn|Strict`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{child_path, index_path};
use crate::openapi::{self, REF_PREFIX};

/// Types whose Go decoding keeps any JSON (custom unmarshalers / `interface{}`).
const OPAQUE: &[&str] = &[
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
];

/// Go structs without fields: every key is unknown.
const EMPTY_STRUCTS: &[&str] =
    &["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceStatus"];

const SCHEMA_PROPS: &str =
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
/// The JSONSchemaPropsOr* union types (OrArray first).
const SCHEMA_PROPS_OR: &[&str] = &[
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray",
];

pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Whether `group/version, Kind=kind` is a built-in kind with a schema.
pub fn is_builtin_kind(group: &str, version: &str, kind: &str) -> bool {
    openapi::builtin()
        .schema_name(group, version, kind)
        .is_some()
}

/// Removes from `obj` (a built-in kind: Pod, Deployment, ...) every field its schema does not
/// define, as upstream's decoding into Go structs does, and returns their paths in upstream's
/// format (`spec.template.spec.containers[0].foo`), in document order. Maps
/// (`additionalProperties`: labels, data) keep all their keys; RawExtension, FieldsV1 and
/// `x-kubernetes-preserve-unknown-fields` subtrees keep everything; metadata is checked against
/// ObjectMeta and status is pruned too. A kind without a schema is left untouched.
pub fn prune_unknown(group: &str, version: &str, kind: &str, obj: &mut Value) -> Vec<String> {
    let b = openapi::builtin();
    let Some(name) = b.schema_name(group, version, kind) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(root) = b.schemas().get(name) {
        prune(b.schemas(), root, Some(name), obj, "", &mut out);
    }
    out
}

/// Prunes `obj` against the named component schema (used for ObjectMeta of custom resources).
pub(crate) fn prune_with_component(name: &str, obj: &mut Value, path: &str) -> Vec<String> {
    let b = openapi::builtin();
    let mut out = Vec::new();
    if let Some(s) = b.schemas().get(name) {
        prune(b.schemas(), s, Some(name), obj, path, &mut out);
    }
    out
}

/// Follows `$ref` and single-entry `allOf` to the schema that describes a value, with its
/// component name when it is a named type.
pub(crate) fn resolve<'a>(
    schemas: &'a BTreeMap<String, Value>,
    mut s: &'a Value,
    mut name: Option<&'a str>,
) -> (&'a Value, Option<&'a str>) {
    for _ in 0..16 {
        if let Some(r) = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX))
        {
            match schemas.get(r) {
                Some(t) => {
                    s = t;
                    name = Some(r);
                    continue;
                }
                None => break,
            }
        }
        if s.get("properties").is_none() && s.get("type").is_none() {
            if let Some(first) = s
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                s = first;
                continue;
            }
        }
        break;
    }
    (s, name)
}

fn prune(
    schemas: &BTreeMap<String, Value>,
    schema: &Value,
    name: Option<&str>,
    v: &mut Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let (s, name) = resolve(schemas, schema, name);
    if let Some(n) = name {
        if OPAQUE.contains(&n) {
            return;
        }
    }
    if !s.is_object() || s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(n) = name.filter(|n| SCHEMA_PROPS_OR.contains(n)) {
        // JSONSchemaPropsOrArray / OrBool / OrStringArray are untyped in the schema (any JSON):
        // their custom Go unmarshalers decode the object form (and OrArray's list of objects)
        // into JSONSchemaProps without strict checks, so unknown fields there are dropped
        // silently
        let props = schemas.get(SCHEMA_PROPS);
        match (&mut *v, props) {
            (Value::Object(_), Some(p)) => {
                prune(schemas, p, Some(SCHEMA_PROPS), v, path, &mut Vec::new())
            }
            (Value::Array(items), Some(p)) if n == SCHEMA_PROPS_OR[0] => {
                for (i, item) in items.iter_mut().enumerate() {
                    let at = index_path(path, i);
                    prune(schemas, p, Some(SCHEMA_PROPS), item, &at, &mut Vec::new());
                }
            }
            _ => {}
        }
        return;
    }
    match v {
        Value::Object(obj) => prune_object(schemas, s, name, obj, path, out),
        Value::Array(items) => {
            let Some(item_schema) = s.get("items") else {
                return;
            };
            for (i, item) in items.iter_mut().enumerate() {
                prune(schemas, item_schema, None, item, &index_path(path, i), out);
            }
        }
        _ => {}
    }
}

fn prune_object(
    schemas: &BTreeMap<String, Value>,
    s: &Value,
    name: Option<&str>,
    obj: &mut Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties").filter(|a| a.is_object());
    let empty_struct = name.is_some_and(|n| EMPTY_STRUCTS.contains(&n));
    if props.is_none() && additional.is_none() && !empty_struct {
        // an object without a declared shape (free-form): decoded as map[string]interface{}
        return;
    }
    let mut unknown = Vec::new();
    for (k, child) in obj.iter_mut() {
        let p = child_path(path, k);
        if let Some(ps) = props.and_then(|p| p.get(k)) {
            prune(schemas, ps, None, child, &p, out);
        } else if let Some(a) = additional {
            prune(schemas, a, None, child, &p, out);
        } else {
            out.push(p);
            unknown.push(k.clone());
        }
    }
    for k in unknown {
        obj.shift_remove(&k);
    }
}
