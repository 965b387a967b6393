//! Rendering of objects and lists in the representation the client negotiated: the object,
//! a meta.k8s.io/v1 Table, or PartialObjectMetadata.

use std::sync::Arc;

use apimachinery::registry::ResourceInfo;
use serde_json::{json, Map, Value};

use crate::cache::CachedObject;
use crate::negotiate::As;

/// PartialObjectMetadata of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// How much of each object a Table row carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn from_query(v: Option<&String>) -> Include {
        match v.map(String::as_str) {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// A Table of objects (a single GET renders a one-row table).
pub fn table(
    ri: &ResourceInfo,
    objs: &[Arc<Value>],
    list_rv: Option<&str>,
    cont: Option<&str>,
    include: Include,
    crd: Option<&Value>,
) -> Value {
    let now = std::time::SystemTime::now();
    let refs: Vec<&Value> = objs.iter().map(|o| o.as_ref()).collect();
    let mut t = crate::tables::table(ri, &refs, crd, now);
    if let Some(rows) = t.get_mut("rows").and_then(Value::as_array_mut) {
        for (row, obj) in rows.iter_mut().zip(objs.iter()) {
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(obj),
                Include::Object => row["object"] = (**obj).clone(),
            }
        }
    }
    let mut meta = Map::new();
    if let Some(rv) = list_rv {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    t["metadata"] = Value::Object(meta);
    t
}

/// A JSON list of objects built from their cached serializations (no re-encoding).
pub fn list_json_bytes(
    ri: &ResourceInfo,
    items: &[Arc<CachedObject>],
    rv: &str,
    cont: Option<&str>,
    remaining: Option<i64>,
) -> Vec<u8> {
    let mut meta = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    let head = json!({"kind": ri.list_kind(), "apiVersion": ri.api_version(), "metadata": meta});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    out.pop(); // the closing brace
    let size: usize = items.iter().map(|i| i.raw.len() + 1).sum();
    out.reserve(size + 16);
    out.extend_from_slice(b",\"items\":[");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&it.raw);
    }
    out.extend_from_slice(b"]}");
    out
}

/// A list object of the negotiated representation.
pub fn list(
    ri: &ResourceInfo,
    as_: As,
    items: &[Arc<CachedObject>],
    rv: &str,
    cont: Option<&str>,
    remaining: Option<i64>,
    include: Include,
    crd: Option<&Value>,
) -> Value {
    let items: Vec<Arc<Value>> = items.iter().map(|i| i.obj()).collect();
    let items = &items[..];
    match as_ {
        As::Table => table(ri, items, Some(rv), cont, include, crd),
        As::Metadata | As::Object => {
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            if let Some(r) = remaining {
                meta["remainingItemCount"] = json!(r);
            }
            let (kind, av, items): (String, String, Vec<Value>) = if as_ == As::Metadata {
                (
                    "PartialObjectMetadataList".into(),
                    "meta.k8s.io/v1".into(),
                    items.iter().map(|o| partial_metadata(o)).collect(),
                )
            } else {
                (
                    ri.list_kind(),
                    ri.api_version(),
                    items.iter().map(|o| (**o).clone()).collect(),
                )
            };
            json!({"kind": kind, "apiVersion": av, "metadata": meta, "items": items})
        }
    }
}

/// One object in the negotiated representation.
pub fn object(
    ri: &ResourceInfo,
    as_: As,
    obj: &Value,
    include: Include,
    crd: Option<&Value>,
) -> Value {
    match as_ {
        As::Object => obj.clone(),
        As::Metadata => partial_metadata(obj),
        As::Table => table(ri, &[Arc::new(obj.clone())], None, None, include, crd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_list_equals_value_list() {
        let ri = apimachinery::registry::builtin_resources()
            .into_iter()
            .find(|r| r.plural == "configmaps")
            .unwrap();
        let items: Vec<Arc<CachedObject>> = (0..3)
            .map(|i| {
                Arc::new(CachedObject::new(
                    format!("k{i}"),
                    i,
                    Arc::new(
                        json!({"metadata": {"name": format!("c{i}")}, "data": {"a": "\"quoted\""}}),
                    ),
                ))
            })
            .collect();
        let bytes = list_json_bytes(&ri, &items, "9", Some("tok"), Some(4));
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        let expected = list(
            &ri,
            As::Object,
            &items,
            "9",
            Some("tok"),
            Some(4),
            Include::Metadata,
            None,
        );
        assert_eq!(parsed, expected);
        let empty = list_json_bytes(&ri, &[], "1", None, None);
        assert_eq!(
            serde_json::from_slice::<Value>(&empty).unwrap()["items"],
            json!([])
        );
    }
}
