//! Table columns and cells for a resource: the adapter between the API server and the
//! printers in apimachinery (built-in printers, CRD additionalPrinterColumns).

use std::time::SystemTime;

use apimachinery::registry::ResourceInfo;
use apimachinery::table::{TableConvertor, Timestamp};
use serde_json::{json, Value};

/// A Table (without metadata and row objects) of the given objects.
pub fn table(ri: &ResourceInfo, objs: &[&Value], crd: Option<&Value>, now: SystemTime) -> Value {
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let now = Timestamp::from_unix_nanos(nanos);
    let conv = match crd {
        Some(crd) => TableConvertor::for_crd(crd, &ri.version).unwrap_or_else(|e| {
            tracing::warn!(error = %e, crd = %ri.plural, "bad additionalPrinterColumns; using defaults");
            TableConvertor::for_resource(&ri.group, &ri.plural)
        }),
        None => TableConvertor::for_resource(&ri.group, &ri.plural),
    };
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| json!({"cells": conv.cells(o, now)}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": conv.column_definitions(),
        "rows": rows,
    })
}
