//! Pruning, defaulting and null-pruning of custom resources with their version's structural
//! `openAPIV3Schema`, as upstream's apiextensions-apiserver applies them on decode and read.

use serde_json::{Map, Value};

use super::builtin::{prune_with_component, OBJECT_META};
use super::{child_path, index_path};

pub(crate) const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";
pub(crate) const EMBEDDED: &str = "x-kubernetes-embedded-resource";
pub(crate) const INT_OR_STRING: &str = "x-kubernetes-int-or-string";

pub(crate) fn flag(s: Option<&Value>, key: &str) -> bool {
    s.and_then(|s| s.get(key)).and_then(Value::as_bool) == Some(true)
}

pub(crate) fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

/// What `additionalProperties` allows: `None` when absent or `false`, `Some(None)` for `true`
/// (any value, but nested objects are pruned as upstream's structural pruning does),
/// `Some(Some(schema))` for a schema.
fn additional(s: &Value) -> Option<Option<&Value>> {
    match s.get("additionalProperties")? {
        Value::Bool(true) => Some(None),
        o @ Value::Object(_) => Some(Some(o)),
        _ => None,
    }
}

/// Removes from a custom resource every field its schema does not specify and returns their
/// paths: the pruned ones sorted, then those of the root metadata, as upstream (`spec.foo`,
/// `spec.items[0].bar`, `metadata.foo`). `x-kubernetes-preserve-unknown-fields` subtrees keep unknown fields (their
/// specified fields are still pruned inside); `apiVersion`, `kind` and `metadata` are kept at
/// the root and in `x-kubernetes-embedded-resource` objects, where metadata is pruned to
/// ObjectMeta.
pub fn prune_custom(schema: &Value, obj: &mut Value) -> Vec<String> {
    // upstream sorts the pruned paths, then appends the unknown fields of the root metadata
    let mut root_meta = Vec::new();
    if let Some(meta) = obj.get_mut("metadata") {
        root_meta = prune_with_component(OBJECT_META, meta, "metadata");
    }
    let mut out = Vec::new();
    prune(Some(schema), obj, "", true, &mut out);
    out.sort();
    out.extend(root_meta);
    out
}

/// Prunes any value against a schema (a default value, for CRD validation); `embedded` keeps
/// apiVersion/kind/metadata at its top.
pub(crate) fn prune_value(schema: &Value, v: &mut Value, embedded: bool) -> Vec<String> {
    let mut out = Vec::new();
    prune(Some(schema), v, "", embedded, &mut out);
    out
}

fn prune(s: Option<&Value>, v: &mut Value, path: &str, root: bool, out: &mut Vec<String>) {
    let embedded = root || flag(s, EMBEDDED);
    if flag(s, PRESERVE) {
        skip_prune(s, v, path, embedded, out);
        return;
    }
    match v {
        Value::Object(m) => {
            let Some(s) = s else {
                out.extend(m.keys().map(|k| child_path(path, k)));
                m.clear();
                return;
            };
            let mut unknown = Vec::new();
            for (k, child) in m.iter_mut() {
                if !prune_field(s, k, child, path, embedded, out) {
                    out.push(child_path(path, k));
                    unknown.push(k.clone());
                }
            }
            for k in unknown {
                m.shift_remove(&k);
            }
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.get("items"));
            for (i, item) in items.iter_mut().enumerate() {
                prune(item_schema, item, &index_path(path, i), false, out);
            }
        }
        _ => {}
    }
}

/// Prunes field `k` of an object at `path` against the object's schema `s`; false when `s`
/// neither declares nor allows the field (an unknown field, which the caller handles).
fn prune_field(
    s: &Value,
    k: &str,
    child: &mut Value,
    path: &str,
    embedded: bool,
    out: &mut Vec<String>,
) -> bool {
    let p = child_path(path, k);
    if embedded && (k == "apiVersion" || k == "kind") {
        return true;
    }
    if embedded && k == "metadata" {
        if !path.is_empty() {
            out.extend(prune_with_component(OBJECT_META, child, &p));
        }
        return true;
    }
    if let Some(ps) = properties(s).and_then(|p| p.get(k)) {
        prune(Some(ps), child, &p, false, out);
    } else if let Some(a) = additional(s) {
        prune(a, child, &p, false, out);
    } else {
        return false;
    }
    true
}

fn skip_prune(s: Option<&Value>, v: &mut Value, path: &str, embedded: bool, out: &mut Vec<String>) {
    let Some(s) = s else {
        return;
    };
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                prune_field(s, k, child, path, embedded, out);
            }
        }
        Value::Array(items) => {
            let item_schema = s.get("items");
            for (i, item) in items.iter_mut().enumerate() {
                let embedded = flag(item_schema, EMBEDDED);
                skip_prune(item_schema, item, &index_path(path, i), embedded, out);
            }
        }
        _ => {}
    }
}

fn default_of(s: Option<&Value>) -> Option<&Value> {
    s.and_then(|s| s.get("default"))
}

fn nullable(s: Option<&Value>) -> bool {
    flag(s, "nullable")
}

/// A null where the schema forbids null but has a default: the default replaces it.
fn is_non_nullable_null(v: &Value, s: Option<&Value>) -> bool {
    v.is_null() && s.is_some() && !nullable(s) && default_of(s).is_some()
}

/// Applies the schema's `default` values to a custom resource as upstream does on decode and
/// on read from storage: a missing property (or a null one the schema does not allow) gets its
/// default, then defaulting recurses into every value, defaults included.
pub fn default_custom(schema: &Value, obj: &mut Value) {
    default(Some(schema), obj);
}

fn default(s: Option<&Value>, v: &mut Value) {
    let Some(s) = s else {
        return;
    };
    match v {
        Value::Object(m) => {
            if let Some(props) = properties(s) {
                for (k, ps) in props {
                    let Some(d) = ps.get("default") else {
                        continue;
                    };
                    let missing = match m.get(k) {
                        None => true,
                        Some(x) => is_non_nullable_null(x, Some(ps)),
                    };
                    if missing {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            let props = properties(s);
            let add = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m.iter_mut() {
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    default(Some(ps), child);
                } else if let Some(a) = add {
                    if is_non_nullable_null(child, Some(a)) {
                        *child = a["default"].clone();
                    }
                    default(Some(a), child);
                }
            }
        }
        Value::Array(items) => {
            let is = s.get("items");
            for item in items.iter_mut() {
                if is_non_nullable_null(item, is) {
                    *item = is
                        .and_then(|s| s.get("default"))
                        .cloned()
                        .unwrap_or(Value::Null);
                }
                default(is, item);
            }
        }
        _ => {}
    }
}

/// Drops null values of fields the schema neither makes nullable nor defaults (upstream's
/// `PruneNonNullableNullsWithoutDefaults`, applied after defaulting on decode).
pub fn prune_nulls_custom(schema: &Value, obj: &mut Value) {
    prune_nulls(Some(schema), obj);
}

fn prune_nulls(s: Option<&Value>, v: &mut Value) {
    let Some(s) = s else {
        return;
    };
    match v {
        Value::Object(m) => {
            let mut drop = Vec::new();
            for (k, child) in m.iter_mut() {
                let cs = properties(s)
                    .and_then(|p| p.get(k))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()));
                let Some(cs) = cs else {
                    continue;
                };
                if child.is_null() && cs.get("default").is_none() && !nullable(Some(cs)) {
                    drop.push(k.clone());
                } else {
                    prune_nulls(Some(cs), child);
                }
            }
            for k in drop {
                m.shift_remove(&k);
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                prune_nulls(s.get("items"), item);
            }
        }
        _ => {}
    }
}
