//! A [`PatchSchema`] read from an OpenAPI v3 schema: the Kubernetes extensions
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` of the built-in OpenAPI documents, or a
//! CustomResourceDefinition's structural `openAPIV3Schema` (which server-side apply honours for
//! custom resources).

use serde_json::{Map, Value};

use super::schema::{FieldInfo, ListType, PatchSchema, PatchStrategy};

/// Maximum `$ref` / `allOf` indirections followed for one step (guards against cycles).
const MAX_REF_DEPTH: usize = 32;

/// The schema of one kind: its root schema object plus the component schemas `$ref`s point into
/// (`#/components/schemas/<name>` or `#/definitions/<name>`; only the last segment is used).
#[derive(Debug, Clone, Default)]
pub struct OpenApiSchema {
    root: Value,
    components: Map<String, Value>,
}

impl OpenApiSchema {
    /// `root` is the kind's schema (e.g. `components.schemas["io.k8s.api.apps.v1.Deployment"]`
    /// or a CRD version's `schema.openAPIV3Schema`); `components` the map `$ref`s resolve in.
    pub fn new(root: Value, components: Map<String, Value>) -> Self {
        OpenApiSchema { root, components }
    }

    /// From a whole OpenAPI v3 document and the name of the kind's schema in
    /// `components.schemas`; `None` when the document has no such schema.
    pub fn from_document(doc: &Value, schema_name: &str) -> Option<Self> {
        let comps = doc.get("components")?.get("schemas")?.as_object()?;
        let root = comps.get(schema_name)?.clone();
        Some(OpenApiSchema::new(root, comps.clone()))
    }

    /// Follows `$ref` and single-element `allOf` wrappers.
    fn resolve<'a>(&'a self, mut s: &'a Value) -> &'a Value {
        for _ in 0..MAX_REF_DEPTH {
            if let Some(r) = s.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or_default();
                match self.components.get(name) {
                    Some(t) => s = t,
                    None => return s,
                }
                continue;
            }
            match s.get("allOf").and_then(Value::as_array) {
                Some(all) if all.len() == 1 && s.get("properties").is_none() => s = &all[0],
                _ => return s,
            }
        }
        s
    }

    fn is_array(s: &Value) -> bool {
        s.get("type").and_then(Value::as_str) == Some("array") || s.get("items").is_some()
    }

    /// The (unresolved) schema of the field at `path`, if the schema knows it.
    fn field_schema<'a>(&'a self, path: &[&str]) -> Option<&'a Value> {
        let mut cur = &self.root;
        for name in path {
            let mut s = self.resolve(cur);
            let mut guard = 0;
            while Self::is_array(s) && guard < MAX_REF_DEPTH {
                s = self.resolve(s.get("items")?);
                guard += 1;
            }
            cur = match s.get("properties").and_then(|p| p.get(*name)) {
                Some(p) => p,
                None => match s.get("additionalProperties") {
                    Some(ap) if ap.is_object() => ap,
                    _ => return None,
                },
            };
        }
        Some(cur)
    }

    /// An extension on the property itself, else on what it refers to.
    fn ext<'a>(&'a self, field: &'a Value, name: &str) -> Option<&'a Value> {
        field.get(name).or_else(|| self.resolve(field).get(name))
    }
}

impl PatchSchema for OpenApiSchema {
    fn lookup(&self, path: &[&str]) -> FieldInfo {
        let Some(field) = self.field_schema(path) else {
            return FieldInfo::default();
        };
        let mut info = FieldInfo::default();
        if let Some(ps) = self
            .ext(field, "x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
        {
            for part in ps.split(',').map(str::trim) {
                match part {
                    "merge" => info.strategy = PatchStrategy::Merge,
                    "replace" => info.strategy = PatchStrategy::Replace,
                    "retainKeys" => info.retain_keys = true,
                    _ => {}
                }
            }
        }
        info.merge_key = self
            .ext(field, "x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
            .map(str::to_string);
        let keys: Vec<String> = self
            .ext(field, "x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        info.list_type = match self
            .ext(field, "x-kubernetes-list-type")
            .and_then(Value::as_str)
        {
            Some("atomic") => Some(ListType::Atomic),
            Some("set") => Some(ListType::Set),
            Some("map") if !keys.is_empty() => Some(ListType::Map(keys.clone())),
            _ => None,
        };
        info.atomic_map = self
            .ext(field, "x-kubernetes-map-type")
            .and_then(Value::as_str)
            == Some("atomic");
        if let Some(items) = self.resolve(field).get("items").map(|i| self.resolve(i)) {
            info.atomic_items =
                items.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
        }
        // defaults of list-map keys, from the item schema
        if let Some(ListType::Map(keys)) = &info.list_type {
            let resolved = self.resolve(field);
            if let Some(items) = resolved.get("items").map(|i| self.resolve(i)) {
                for k in keys {
                    if let Some(d) = items
                        .get("properties")
                        .and_then(|p| p.get(k))
                        .and_then(|p| p.get("default"))
                    {
                        info.key_defaults.push((k.clone(), d.clone()));
                    }
                }
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{apply, decode_managed_fields, strategic_merge_patch, ApplyOptions};
    use serde_json::json;

    /// A miniature of the Kubernetes OpenAPI v3 shape: refs wrapped in allOf, extensions on the
    /// property, map-type on the referenced definition.
    fn doc() -> Value {
        json!({"components": {"schemas": {
            "test.Widget": {"type": "object", "properties": {
                "metadata": {"allOf": [{"$ref": "#/components/schemas/test.Meta"}]},
                "spec": {"allOf": [{"$ref": "#/components/schemas/test.WidgetSpec"}]}
            }},
            "test.Meta": {"type": "object", "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {"type": "array", "items": {"type": "string"},
                    "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}
            }},
            "test.WidgetSpec": {"type": "object", "properties": {
                "parts": {"type": "array",
                    "items": {"allOf": [{"$ref": "#/components/schemas/test.Part"}]},
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "protocol"],
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge,retainKeys"},
                "selector": {"allOf": [{"$ref": "#/components/schemas/test.Selector"}]},
                "byName": {"type": "object", "additionalProperties": {
                    "allOf": [{"$ref": "#/components/schemas/test.WidgetSpec"}]}},
                "tags": {"type": "array", "items": {"type": "string"}},
                "refs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["uid"],
                    "items": {"allOf": [{"$ref": "#/components/schemas/test.Ref"}]}}
            }},
            "test.Ref": {"type": "object", "x-kubernetes-map-type": "atomic",
                "properties": {"uid": {"type": "string"}}},
            "test.Part": {"type": "object", "properties": {
                "name": {"type": "string"},
                "protocol": {"type": "string", "default": "TCP"},
                "sub": {"type": "array", "items": {"type": "object"},
                    "x-kubernetes-patch-merge-key": "id", "x-kubernetes-patch-strategy": "merge"}
            }},
            "test.Selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                "properties": {"matchLabels": {"type": "object"}}}
        }}})
    }

    #[test]
    fn lookups() {
        let s = OpenApiSchema::from_document(&doc(), "test.Widget").unwrap();
        let parts = s.lookup(&["spec", "parts"]);
        assert_eq!(parts.strategy, PatchStrategy::Merge);
        assert!(parts.retain_keys);
        assert_eq!(parts.merge_key.as_deref(), Some("name"));
        assert_eq!(
            parts.list_type,
            Some(ListType::Map(vec!["name".into(), "protocol".into()]))
        );
        assert_eq!(
            parts.key_defaults,
            vec![("protocol".to_string(), json!("TCP"))]
        );
        let sub = s.lookup(&["spec", "parts", "sub"]);
        assert_eq!(
            (sub.strategy, sub.merge_key.as_deref()),
            (PatchStrategy::Merge, Some("id"))
        );
        assert_eq!(sub.effective_list_type(), ListType::Map(vec!["id".into()]));
        assert!(s.lookup(&["spec", "selector"]).atomic_map);
        assert!(s.lookup(&["spec", "refs"]).atomic_items);
        assert!(!s.lookup(&["spec", "parts"]).atomic_items);
        assert_eq!(
            s.lookup(&["metadata", "finalizers"]).effective_list_type(),
            ListType::Set
        );
        // through a map of structs
        assert_eq!(
            s.lookup(&["spec", "byName", "anykey", "parts"])
                .merge_key
                .as_deref(),
            Some("name")
        );
        // unknown and plain fields
        assert_eq!(s.lookup(&["spec", "nope"]), FieldInfo::default());
        assert_eq!(
            s.lookup(&["spec", "tags"]).effective_list_type(),
            ListType::Atomic
        );
        assert_eq!(
            s.lookup(&["metadata", "labels", "app"]),
            FieldInfo::default()
        );
    }

    #[test]
    fn drives_smp_and_apply() {
        let s = OpenApiSchema::from_document(&doc(), "test.Widget").unwrap();
        let orig = json!({"spec": {"parts": [{"name": "a", "x": 1}, {"name": "b"}]}});
        let got = strategic_merge_patch(
            &orig,
            &json!({"spec": {"parts": [{"name": "a", "x": 2}]}}),
            &s,
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"spec": {"parts": [{"name": "a", "x": 2}, {"name": "b"}]}})
        );

        let cfg = json!({"apiVersion": "t/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"parts": [{"name": "a"}], "selector": {"matchLabels": {"k": "v"}}}});
        let o = ApplyOptions {
            manager: "m",
            force: false,
            api_version: "t/v1",
            subresource: "",
            now: "2024-01-01T00:00:00Z",
        };
        let out = apply(None, &cfg, &s, &o).unwrap();
        assert_eq!(
            decode_managed_fields(&out).unwrap()[0]
                .fields
                .to_fields_v1(),
            json!({"f:spec": {"f:parts": {"k:{\"name\":\"a\",\"protocol\":\"TCP\"}": {".": {}, "f:name": {}}}, "f:selector": {}}})
        );
    }

    #[test]
    fn crd_structural_schema_without_components() {
        let root = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                "items": {"type": "object", "properties": {"id": {"type": "integer"}}}}}}}});
        let s = OpenApiSchema::new(root, Map::new());
        assert_eq!(
            s.lookup(&["spec", "items"]).effective_list_type(),
            ListType::Map(vec!["id".into()])
        );
        // no patch strategy: strategic merge patch would replace the list (and is refused for CRs anyway)
        assert_eq!(
            s.lookup(&["spec", "items"]).strategy,
            PatchStrategy::Default
        );
    }
}
