//! Admission: defaulting, validation and per-kind preparation of objects before they are
//! stored, and the patch engines that need per-kind schema knowledge.

use apimachinery::registry::ResourceInfo;
use apimachinery::{ApiError, FieldError};
use serde_json::Value;

/// Default a new object and return its validation errors.
pub fn default_and_validate_create(ri: &ResourceInfo, obj: &mut Value) -> Vec<FieldError> {
    let _ = ri;
    let name = crate::objects::name(obj).to_string();
    let mut errs = Vec::new();
    if !name.is_empty() && !apimachinery::selector::is_dns1123_subdomain(&name).is_empty() {
        errs.push(FieldError::invalid(
            "metadata.name",
            &Value::String(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ));
    }
    errs
}

/// Default an updated object and return its validation errors against the old one.
pub fn default_and_validate_update(ri: &ResourceInfo, subresource: &str, new: &mut Value, old: &Value) -> Vec<FieldError> {
    let _ = (ri, subresource, new, old);
    Vec::new()
}

/// Last preparation before the first write of an object.
pub fn before_store_create(ri: &ResourceInfo, obj: &mut Value) {
    let _ = (ri, obj);
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
