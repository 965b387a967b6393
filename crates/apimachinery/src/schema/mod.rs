//! Schema-driven decoding rules the API server applies to request bodies: unknown and duplicate
//! field detection for built-in kinds (the `fieldValidation` query parameter), and
//! CustomResourceDefinition support (CRD validation with the structural schema rules, pruning,
//! defaulting and OpenAPI v3 validation of custom resources). Pure functions on
//! `serde_json::Value`, no IO.
//!
//! Field paths follow upstream: object fields joined with `.`, list items as `[i]`
//! (`spec.template.spec.containers[0].foo`) in decoding messages; CRD schema paths use
//! `properties[name]` as upstream's `field.Path.Key` does.
//!
//! How upstream applies these to a create/update/patch body (`?fieldValidation=`, see
//! [`FieldValidation`]):
//! - built-in kind: `duplicate_fields(body)` (or `duplicate_fields_yaml`) and
//!   `prune_unknown(g, v, kind, &mut obj)`; each path becomes `duplicate field "p"` /
//!   `unknown field "p"` ([`duplicate_field_message`], [`unknown_field_message`]): Strict fails
//!   with 400 [`strict_bad_request_message`], Warn sends each message as a `Warning: 299 - "..."`
//!   header, Ignore drops them silently; the unknown fields are dropped in every mode.
//! - custom resource (schema = the served version's `openAPIV3Schema`): duplicates as above,
//!   `prune_custom` (unknown fields, reported the same way), `prune_nulls_custom`,
//!   `default_custom`, then `validate_custom` (422 Invalid with the returned causes, after
//!   the usual ObjectMeta validation). `default_custom` also runs on every read from storage.
//! - CustomResourceDefinition create: `default_crd`, then `validate_crd` (422 Invalid).

mod builtin;
mod crd;
mod custom;
mod duplicates;
mod formats;
mod structural;
mod validate;

#[cfg(test)]
mod tests;

pub use builtin::{is_builtin_kind, prune_unknown};
pub use crd::{default_crd, validate_crd};
pub use custom::{default_custom, prune_custom, prune_nulls_custom};
pub use duplicates::{duplicate_fields, duplicate_fields_yaml};
pub use validate::validate_custom;

use serde_json::Value;

use crate::status::FieldError;

/// How the API server treats unknown and duplicate fields (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// drop them silently
    Ignore,
    /// drop them and return one `Warning` header per field (the default)
    #[default]
    Warn,
    /// fail the request with 400 BadRequest
    Strict,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("invalid fieldValidation directive {0:?}: valid values are Ignore, Warn and Strict")]
    InvalidDirective(String),
}

impl FieldValidation {
    /// Parses the query parameter; absent or empty is `Warn`.
    pub fn parse(v: Option<&str>) -> Result<FieldValidation, SchemaError> {
        match v.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(SchemaError::InvalidDirective(other.to_string())),
        }
    }

    /// The cause upstream reports for an unsupported directive (inside an Invalid
    /// `CreateOptions.meta.k8s.io ""` / `UpdateOptions` / `PatchOptions` status):
    /// `fieldValidation: Unsupported value: "x": supported values: "", "Ignore", "Strict", "Warn"`.
    pub fn unsupported_error(value: &str) -> FieldError {
        FieldError::not_supported(
            "fieldValidation",
            &Value::String(value.to_string()),
            &["", "Ignore", "Strict", "Warn"],
        )
    }
}

/// `unknown field "spec.foo"`: the text of a strict decoding error and of its `Warning` header.
pub fn unknown_field_message(path: &str) -> String {
    format!("unknown field {}", go_quote(path))
}

/// `duplicate field "spec.foo"`.
pub fn duplicate_field_message(path: &str) -> String {
    format!("duplicate field {}", go_quote(path))
}

/// Upstream keeps at most this many strict decoding errors per body.
pub const MAX_STRICT_ERRORS: usize = 100;

/// `strict decoding error: unknown field "a", duplicate field "b"` from messages built with
/// [`unknown_field_message`] / [`duplicate_field_message`] (duplicates removed, at most
/// [`MAX_STRICT_ERRORS`] kept, as upstream).
pub fn strict_decoding_error(messages: &[String]) -> String {
    let mut seen = std::collections::HashSet::new();
    let kept: Vec<&str> = messages
        .iter()
        .filter(|m| seen.insert(m.as_str()))
        .take(MAX_STRICT_ERRORS)
        .map(String::as_str)
        .collect();
    format!("strict decoding error: {}", kept.join(", "))
}

/// The BadRequest message of a body rejected by strict decoding:
/// `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: ...`.
pub fn strict_bad_request_message(kind: &str, version: &str, messages: &[String]) -> String {
    format!(
        "{kind} in version {} cannot be handled as a {kind}: {}",
        go_quote(version),
        strict_decoding_error(messages)
    )
}

/// Go's `%q` / `strconv.Quote` for the strings that occur in field paths.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `parent.key` (or `key` at the root): upstream's strict-decoding and OpenAPI validation paths.
pub(crate) fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
