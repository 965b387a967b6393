//! Per-field patch metadata (merge key, patch strategy, list type) read back from component
//! schemas, for the strategic merge patch and server-side apply engines.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::ref_name;

/// What the schema says about one field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldInfo {
    /// `x-kubernetes-patch-strategy`, split on commas (`merge`, `retainKeys`, `replace`)
    pub patch_strategies: Vec<String>,
    /// `x-kubernetes-patch-merge-key`
    pub patch_merge_key: Option<String>,
    /// `x-kubernetes-list-type`: `atomic`, `set` or `map`
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type` of the field or of its type: `atomic` or `granular`
    pub map_type: Option<String>,
    /// the JSON type of the field (`object`, `array`, `string`, ...) when known
    pub type_name: Option<String>,
    /// the component schema of the field (or of its list items) when it is a named type
    pub schema: Option<String>,
}

impl FieldInfo {
    /// Whether the patch strategy includes `s`.
    pub fn has_strategy(&self, s: &str) -> bool {
        self.patch_strategies.iter().any(|x| x == s)
    }
}

/// Follows `allOf: [{$ref}]` and `$ref` to the named schema.
fn resolve<'a>(
    schemas: &'a BTreeMap<String, Value>,
    mut s: &'a Value,
) -> (&'a Value, Option<&'a str>) {
    let mut name = None;
    for _ in 0..8 {
        if let Some(first) = s
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            s = first;
            continue;
        }
        if let Some(n) = ref_name(s) {
            match schemas.get(n) {
                Some(t) => {
                    name = Some(n);
                    s = t;
                    continue;
                }
                None => break,
            }
        }
        break;
    }
    (s, name)
}

fn str_ext(s: &Value, key: &str) -> Option<String> {
    s.get(key).and_then(Value::as_str).map(String::from)
}

/// Looks up the field at `path` (object field names from the root; list indices elided; map keys
/// of `additionalProperties` maps allowed) below the component schema `root`.
pub fn lookup_field(
    schemas: &BTreeMap<String, Value>,
    root: &str,
    path: &[&str],
) -> Option<FieldInfo> {
    let mut cur = schemas.get(root)?;
    let mut field: Option<&Value> = None;
    for seg in path {
        // step into the value the previous field holds: its type, list items included
        let (mut s, _) = resolve(schemas, cur);
        if s.get("type").and_then(Value::as_str) == Some("array") {
            let items = s.get("items")?;
            s = resolve(schemas, items).0;
        }
        let next = match s.get("properties").and_then(|p| p.get(*seg)) {
            Some(p) => p,
            None => s.get("additionalProperties").filter(|v| v.is_object())?,
        };
        field = Some(next);
        cur = next;
    }
    let f = field?;
    let (resolved, name) = resolve(schemas, f);
    let mut info = FieldInfo {
        patch_strategies: str_ext(f, "x-kubernetes-patch-strategy")
            .map(|s| s.split(',').map(String::from).collect())
            .unwrap_or_default(),
        patch_merge_key: str_ext(f, "x-kubernetes-patch-merge-key"),
        list_type: str_ext(f, "x-kubernetes-list-type"),
        list_map_keys: f
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        map_type: str_ext(f, "x-kubernetes-map-type")
            .or_else(|| str_ext(resolved, "x-kubernetes-map-type")),
        type_name: str_ext(resolved, "type"),
        schema: name.map(String::from),
    };
    if info.type_name.as_deref() == Some("array") {
        if let Some(items) = resolved.get("items") {
            info.schema = resolve(schemas, items).1.map(String::from);
        }
    }
    Some(info)
}
