//! Table columns and cells for a resource: the adapter between the API server and the
//! printers in apimachinery.

use std::time::SystemTime;

use apimachinery::registry::ResourceInfo;
use serde_json::{json, Value};

/// A Table (without metadata) of the given objects.
pub fn table(ri: &ResourceInfo, objs: &[&Value], crd: Option<&Value>, now: SystemTime) -> Value {
    let _ = (ri, crd, now);
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            json!({"cells": [crate::objects::name(o), o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)]})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": rows,
    })
}
