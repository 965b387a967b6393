//! Object-meta rules shared by every kind: name formats, generateName, labels, annotations,
//! finalizers, ownerReferences, immutable metadata on update and `metadata.generation` bumps,
//! with the messages of upstream's `k8s.io/apimachinery/pkg/util/validation` and
//! `pkg/api/validation/objectmeta.go`.

use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::{json, Value};

use crate::status::{CauseType, FieldError};

/// Longest DNS-1123 label / label value / qualified-name part.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1035 label.
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Longest name part of a qualified name.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Upper bound of the summed length of all annotation keys and values (256 KiB).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// Length of the random suffix the API server appends to `generateName`.
pub const GENERATE_NAME_RANDOM_LENGTH: usize = 5;
/// Longest `generateName` prefix kept before the random suffix (63 - 5).
pub const MAX_GENERATED_NAME_LENGTH: usize = 63 - GENERATE_NAME_RANDOM_LENGTH;
/// Alphabet of the random suffix (upstream `utilrand.String`: no vowels, no confusable digits).
pub const GENERATE_NAME_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
/// Message of `ValidateImmutableField`.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
/// Message of `ValidateNonnegativeField`.
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";
/// Finalizers that need not be domain-qualified.
pub const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn anchored(fmt: &str) -> Regex {
    Regex::new(&format!("^{fmt}$")).expect("static regex")
}

static DNS1123_LABEL_RE: Lazy<Regex> = Lazy::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN_RE: Lazy<Regex> = Lazy::new(|| anchored(DNS1123_SUBDOMAIN_FMT));
static DNS1035_LABEL_RE: Lazy<Regex> = Lazy::new(|| anchored(DNS1035_LABEL_FMT));
static QUALIFIED_NAME_RE: Lazy<Regex> = Lazy::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE_RE: Lazy<Regex> = Lazy::new(|| anchored(LABEL_VALUE_FMT));

/// Upstream `RegexError`: the message, examples and the regex.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// Upstream `MaxLenError`.
pub fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Upstream `EmptyError`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// Upstream `InclusiveRangeError`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Errors of a DNS-1123 label (`IsDNS1123Label`); empty when valid.
pub fn is_dns1123_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1123_LABEL_RE.is_match(v) {
        errs.push(regex_error(
            DNS1123_LABEL_ERR,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// Errors of a DNS-1123 subdomain (`IsDNS1123Subdomain`); empty when valid.
pub fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !DNS1123_SUBDOMAIN_RE.is_match(v) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Errors of a DNS-1035 label (`IsDNS1035Label`, used for Service names); empty when valid.
pub fn is_dns1035_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !DNS1035_LABEL_RE.is_match(v) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Errors of a qualified name such as a label key (`IsQualifiedName`); empty when valid.
pub fn is_qualified_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !QUALIFIED_NAME_RE.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Errors of a label value (`IsValidLabelValue`); empty when valid.
pub fn is_valid_label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !LABEL_VALUE_RE.is_match(v) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Errors of a name that becomes a URL path segment (`IsValidPathSegmentName`).
pub fn is_valid_path_segment_name(v: &str) -> Vec<String> {
    for bad in [".", ".."] {
        if v == bad {
            return vec![format!("may not be '{bad}'")];
        }
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if v.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// Errors of a path-segment prefix (`IsValidPathSegmentPrefix`).
pub fn is_valid_path_segment_prefix(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if v.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// How a kind's `metadata.name` is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: most kinds.
    Dns1123Subdomain,
    /// `NameIsDNSLabel`: namespaces, statefulsets.
    Dns1123Label,
    /// `NameIsDNS1035Label`: services.
    Dns1035Label,
    /// `ValidatePathSegmentName`: RBAC kinds and other names that are only URL path segments.
    PathSegment,
}

/// The name rule upstream applies to a kind (by group and kind).
pub fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("", "Namespace") => NameRule::Dns1123Label,
        ("", "Service") => NameRule::Dns1035Label,
        ("apps", "StatefulSet") => NameRule::Dns1123Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        ("apiextensions.k8s.io", _) => NameRule::Dns1123Subdomain,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Upstream's trailing-dash masking for generateName prefixes.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        format!("{}a", &name[..name.len() - 1])
    } else {
        name.to_string()
    }
}

/// Messages for `name` under `rule`; `prefix` is true when validating a generateName.
pub fn validate_name(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    let n = if prefix {
        mask_trailing_dash(name)
    } else {
        name.to_string()
    };
    match rule {
        NameRule::Dns1123Subdomain => is_dns1123_subdomain(&n),
        NameRule::Dns1123Label => is_dns1123_label(&n),
        NameRule::Dns1035Label => is_dns1035_label(&n),
        NameRule::PathSegment => {
            if prefix {
                is_valid_path_segment_prefix(name)
            } else {
                is_valid_path_segment_name(name)
            }
        }
    }
}

/// The name the API server gives an object created with `generateName` (upstream
/// `SimpleNameGenerator`): the prefix cut to 58 bytes plus the random suffix, which the caller
/// draws from [`GENERATE_NAME_ALPHABET`] ([`GENERATE_NAME_RANDOM_LENGTH`] characters).
pub fn generate_name(prefix: &str, random_suffix: &str) -> String {
    let mut base = prefix;
    if base.len() > MAX_GENERATED_NAME_LENGTH {
        let mut cut = MAX_GENERATED_NAME_LENGTH;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base = &base[..cut];
    }
    format!("{base}{random_suffix}")
}

/// Renders a value the way upstream's `field.Error` prints Go values that are not scalars
/// (`%#v`), for the common case of a string map such as labels.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Object(m) if m.values().all(Value::is_string) => {
            // Go prints maps with sorted keys
            let mut sorted: Vec<(&String, &Value)> = m.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let items: Vec<String> = a
                .iter()
                .map(|s| format!("{:?}", s.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", items.join(", "))
        }
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// An Invalid field error whose value is rendered with [`go_value`].
pub fn invalid_go(field: impl Into<String>, v: &Value, detail: impl Into<String>) -> FieldError {
    FieldError {
        kind: CauseType::Invalid,
        field: field.into(),
        value: Some(go_value(v)),
        detail: detail.into(),
    }
}

/// A NotFound field error (`field.NotFound`).
pub fn not_found(field: impl Into<String>, v: &Value) -> FieldError {
    FieldError {
        kind: CauseType::NotFound,
        field: field.into(),
        value: Some(go_value(v)),
        detail: String::new(),
    }
}

/// Label validation (`ValidateLabels`): errors are reported at `path` itself, as upstream does.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = labels.and_then(Value::as_object) else {
        return errs;
    };
    for (k, v) in map {
        errs.extend(validate_label_name(k, path));
        let val = v.as_str().unwrap_or_default();
        for m in is_valid_label_value(val) {
            errs.push(FieldError::invalid(path, &json!(val), m));
        }
    }
    errs
}

/// One label key (`ValidateLabelName`).
pub fn validate_label_name(key: &str, path: &str) -> Vec<FieldError> {
    is_qualified_name(key)
        .into_iter()
        .map(|m| FieldError::invalid(path, &json!(key), m))
        .collect()
}

/// Annotation validation (`ValidateAnnotations`): keys are case-insensitive qualified names and
/// the total size is at most 256 KiB.
pub fn validate_annotations(annotations: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = annotations.and_then(Value::as_object) else {
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in map {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, &json!(k), m));
        }
        total += k.len() + v.as_str().map(str::len).unwrap_or(0);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Finalizer validation: each a qualified name, not both `orphan` and `foregroundDeletion`, and
/// (for built-in kinds, `core_rules`) unqualified names only if standard.
pub fn validate_finalizers(
    finalizers: Option<&Value>,
    path: &str,
    core_rules: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(list) = finalizers.and_then(Value::as_array) else {
        return errs;
    };
    let names: Vec<&str> = list
        .iter()
        .map(|f| f.as_str().unwrap_or_default())
        .collect();
    for f in &names {
        for m in is_qualified_name(f) {
            errs.push(FieldError::invalid(path, &json!(f), m));
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(invalid_go(
            path,
            &Value::Array(list.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    if core_rules {
        for (i, f) in names.iter().enumerate() {
            if !f.contains('/') && !STANDARD_FINALIZERS.contains(f) {
                errs.push(FieldError::invalid(
                    format!("{path}[{i}]"),
                    &json!(f),
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
    }
    errs
}

/// ownerReferences validation (`ValidateOwnerReferences`).
pub fn validate_owner_references(refs: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(list) = refs.and_then(Value::as_array) else {
        return errs;
    };
    let mut first_controller: Option<String> = None;
    for r in list {
        let s = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (api_version, kind, name, uid) = (s("apiVersion"), s("kind"), s("name"), s("uid"));
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.apiVersion"),
                &json!(api_version),
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.kind"),
                &json!(kind),
                "must not be empty",
            ));
        }
        if name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                &json!(name),
                "must not be empty",
            ));
        }
        if uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.uid"),
                &json!(uid),
                "must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                path,
                r,
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let cur = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    &Value::Array(list.clone()),
                    format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
    errs
}

fn meta_str<'a>(meta: &'a Value, key: &str) -> &'a str {
    meta.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Object-meta validation on create (`ValidateObjectMeta` of core): name or generateName,
/// namespace presence per scope, generation, labels, annotations, ownerReferences, finalizers.
/// `meta` is the object's `metadata` (or a template's), `path` its field path.
pub fn validate_object_meta(
    meta: &Value,
    namespaced: bool,
    rule: NameRule,
    path: &str,
) -> Vec<FieldError> {
    validate_object_meta_with(meta, namespaced, rule, path, true)
}

/// [`validate_object_meta`] with the choice of finalizer rules: built-in kinds
/// (`core_finalizers`) only accept unqualified finalizer names that are standard; custom
/// resources use the generic rules (any qualified name).
pub fn validate_object_meta_with(
    meta: &Value,
    namespaced: bool,
    rule: NameRule,
    path: &str,
    core_finalizers: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate_name = meta_str(meta, "generateName");
    if !generate_name.is_empty() {
        for m in validate_name(rule, generate_name, true) {
            errs.push(FieldError::invalid(
                format!("{path}.generateName"),
                &json!(generate_name),
                m,
            ));
        }
    }
    let name = meta_str(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.name"),
            "name or generateName is required",
        ));
    } else {
        for m in validate_name(rule, name, false) {
            errs.push(FieldError::invalid(format!("{path}.name"), &json!(name), m));
        }
    }
    let ns = meta_str(meta, "namespace");
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required(format!("{path}.namespace"), ""));
        } else {
            for m in is_dns1123_label(ns) {
                errs.push(FieldError::invalid(
                    format!("{path}.namespace"),
                    &json!(ns),
                    m,
                ));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(
            format!("{path}.namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_common_meta(meta, path));
    errs.extend(validate_finalizers(
        meta.get("finalizers"),
        &format!("{path}.finalizers"),
        core_finalizers,
    ));
    errs
}

/// The checks shared by create and update: generation, labels, annotations, ownerReferences.
fn validate_common_meta(meta: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(g) = meta.get("generation").and_then(Value::as_i64) {
        if g < 0 {
            errs.push(FieldError::invalid(
                format!("{path}.generation"),
                &json!(g),
                IS_NEGATIVE,
            ));
        }
    }
    errs.extend(validate_labels(
        meta.get("labels"),
        &format!("{path}.labels"),
    ));
    errs.extend(validate_annotations(
        meta.get("annotations"),
        &format!("{path}.annotations"),
    ));
    errs.extend(validate_owner_references(
        meta.get("ownerReferences"),
        &format!("{path}.ownerReferences"),
    ));
    errs.extend(validate_managed_fields(
        meta.get("managedFields"),
        &format!("{path}.managedFields"),
    ));
    errs
}

/// Longest field manager name.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// A field manager name (`ValidateFieldManager`): at most 128 printable characters.
pub fn validate_field_manager(manager: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::too_long(path, FIELD_MANAGER_MAX_LENGTH));
    }
    if manager.chars().any(|c| c.is_control()) {
        errs.push(FieldError::invalid(
            path,
            &json!(manager),
            "must only contain printable characters",
        ));
    }
    errs
}

/// `metadata.managedFields` entries (`ValidateManagedFields`).
pub fn validate_managed_fields(fields: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(list) = fields.and_then(Value::as_array) else {
        return errs;
    };
    for (i, f) in list.iter().enumerate() {
        let fp = format!("{path}[{i}]");
        let op = f.get("operation").and_then(Value::as_str).unwrap_or("");
        if !matches!(op, "Apply" | "Update") {
            errs.push(FieldError::invalid(
                format!("{fp}.operation"),
                &json!(op),
                "must be `Apply` or `Update`",
            ));
        }
        let ft = f.get("fieldsType").and_then(Value::as_str).unwrap_or("");
        if !ft.is_empty() && ft != "FieldsV1" {
            errs.push(FieldError::invalid(
                format!("{fp}.fieldsType"),
                &json!(ft),
                "must be `FieldsV1`",
            ));
        }
        let manager = f.get("manager").and_then(Value::as_str).unwrap_or("");
        errs.extend(validate_field_manager(manager, &format!("{fp}.manager")));
    }
    errs
}

/// Metadata of a pod template or other embedded ObjectMeta: labels and annotations only.
pub fn validate_template_meta(meta: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(meta) = meta {
        errs.extend(validate_labels(
            meta.get("labels"),
            &format!("{path}.labels"),
        ));
        errs.extend(validate_annotations(
            meta.get("annotations"),
            &format!("{path}.annotations"),
        ));
    }
    errs
}

/// `ValidateImmutableField`: an Invalid "field is immutable" error when `new != old`.
pub fn validate_immutable(new: Option<&Value>, old: Option<&Value>, path: &str) -> Vec<FieldError> {
    let n = new.unwrap_or(&Value::Null);
    let o = old.unwrap_or(&Value::Null);
    if n == o {
        Vec::new()
    } else {
        vec![immutable_error(path, n)]
    }
}

/// The "field is immutable" error for the new value at `path`.
pub fn immutable_error(path: &str, new: &Value) -> FieldError {
    match new {
        Value::Null => FieldError {
            kind: CauseType::Invalid,
            field: path.to_string(),
            value: Some("null".to_string()),
            detail: FIELD_IMMUTABLE.to_string(),
        },
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {
            FieldError::invalid(path, new, FIELD_IMMUTABLE)
        }
        _ => invalid_go(path, new, FIELD_IMMUTABLE),
    }
}

/// Object-meta validation on update (`ValidateObjectMetaUpdate`): name, namespace, uid,
/// creationTimestamp, deletionTimestamp and deletionGracePeriodSeconds are immutable,
/// generation never decreases, resourceVersion is required (the server fills it for
/// unconditional updates before validating), no finalizer is added once deletion started.
pub fn validate_object_meta_update(new: &Value, old: &Value, path: &str) -> Vec<FieldError> {
    validate_object_meta_update_with(new, old, path, true)
}

/// [`validate_object_meta_update`] with the choice of finalizer rules (see
/// [`validate_object_meta_with`]).
pub fn validate_object_meta_update_with(
    new: &Value,
    old: &Value,
    path: &str,
    core_finalizers: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("deletionTimestamp").is_some_and(|d| !d.is_null()) {
        let old_f: Vec<&str> = str_list(old.get("finalizers"));
        let extra: std::collections::BTreeSet<&str> = str_list(new.get("finalizers"))
            .into_iter()
            .filter(|f| !old_f.contains(f))
            .collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                format!("{path}.finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    if meta_str(new, "resourceVersion").is_empty() {
        errs.push(FieldError::invalid(
            format!("{path}.resourceVersion"),
            &json!(""),
            "must be specified for an update",
        ));
    }
    let ng = new.get("generation").and_then(Value::as_i64).unwrap_or(0);
    let og = old.get("generation").and_then(Value::as_i64).unwrap_or(0);
    if ng < og {
        errs.push(FieldError::invalid(
            format!("{path}.generation"),
            &json!(ng),
            "must not be decremented",
        ));
    }
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let norm = |v: Option<&Value>| -> Value {
            match v {
                None | Some(Value::Null) => {
                    if matches!(key, "name" | "namespace" | "uid") {
                        json!("")
                    } else {
                        Value::Null
                    }
                }
                Some(v) => v.clone(),
            }
        };
        let (n, o) = (norm(new.get(key)), norm(old.get(key)));
        if n != o {
            errs.push(immutable_error(&format!("{path}.{key}"), &n));
        }
    }
    errs.extend(validate_common_meta(new, path));
    errs.extend(validate_finalizers(
        new.get("finalizers"),
        &format!("{path}.finalizers"),
        core_finalizers,
    ));
    errs
}

fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether upstream's registry strategy for a kind maintains `metadata.generation` (set to 1 on
/// create, bumped per [`generation_bumped`]). ConfigMaps, Secrets, Services, Namespaces,
/// Nodes, RBAC objects and the like have no generation at all. Custom resources (any group not
/// listed as built-in by the caller) do track it.
pub fn tracks_generation(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Pod")
            | ("", "ReplicationController")
            | (
                "apps",
                "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
            )
            | ("batch", "Job" | "CronJob")
            | ("networking.k8s.io", "Ingress" | "NetworkPolicy")
            | ("policy", "PodDisruptionBudget")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("admissionregistration.k8s.io", _)
            | ("flowcontrol.apiserver.k8s.io", _)
    )
}

/// `metadata.generation` of a newly created object: 1 for kinds that track it (custom
/// resources included), `None` for the others (the field is then left unset).
pub fn initial_generation(group: &str, kind: &str, custom: bool) -> Option<i64> {
    (custom || tracks_generation(group, kind)).then_some(1)
}

/// Whether an update from `old` to `new` bumps `metadata.generation`, per the kind's upstream
/// strategy: a change of `spec` for most kinds; Deployments also on annotation changes
/// (annotations are copied to their ReplicaSets); CRDs, webhooks and flow-control objects on
/// any change outside metadata and status. Custom resources (`custom = true`) bump on any change
/// outside metadata and status. Kinds without generation never bump.
pub fn generation_bumped(group: &str, kind: &str, custom: bool, old: &Value, new: &Value) -> bool {
    if custom {
        return outside_meta_status(old) != outside_meta_status(new);
    }
    if !tracks_generation(group, kind) {
        return false;
    }
    let spec_changed = old.get("spec") != new.get("spec");
    match (group, kind) {
        ("apps", "Deployment") => {
            spec_changed
                || old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations")
        }
        ("admissionregistration.k8s.io", _) | ("flowcontrol.apiserver.k8s.io", _) => {
            outside_meta_status(old) != outside_meta_status(new)
        }
        _ => spec_changed,
    }
}

/// The generation to store after an update (the old one, plus one when bumped); `None` for
/// kinds without generation.
pub fn next_generation(
    group: &str,
    kind: &str,
    custom: bool,
    old: &Value,
    new: &Value,
) -> Option<i64> {
    if !custom && !tracks_generation(group, kind) {
        return None;
    }
    let g = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Some(if generation_bumped(group, kind, custom, old, new) {
        g + 1
    } else {
        g
    })
}

fn outside_meta_status(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomain_message_matches_upstream() {
        let errs = validate_object_meta(
            &json!({"name": "Bad_Name", "namespace": "default"}),
            true,
            NameRule::Dns1123Subdomain,
            "metadata",
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].full_message(),
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
    }

    #[test]
    fn name_rules_table() {
        // (rule, name, prefix, expected messages)
        let long_label = "a".repeat(64);
        let cases: Vec<(NameRule, &str, bool, Vec<String>)> = vec![
            (NameRule::Dns1123Subdomain, "a.b-c", false, vec![]),
            (NameRule::Dns1123Subdomain, "web-", true, vec![]),
            (
                NameRule::Dns1123Label,
                "a.b",
                false,
                vec![regex_error(
                    DNS1123_LABEL_ERR,
                    DNS1123_LABEL_FMT,
                    &["my-name", "123-abc"],
                )],
            ),
            (
                NameRule::Dns1123Label,
                &long_label,
                false,
                vec![max_len_error(63)],
            ),
            (
                NameRule::Dns1035Label,
                "1abc",
                false,
                vec![regex_error(
                    DNS1035_LABEL_ERR,
                    DNS1035_LABEL_FMT,
                    &["my-name", "abc-123"],
                )],
            ),
            (NameRule::Dns1035Label, "abc", false, vec![]),
            (NameRule::PathSegment, "system:admin", false, vec![]),
            (
                NameRule::PathSegment,
                "..",
                false,
                vec!["may not be '..'".to_string()],
            ),
            (
                NameRule::PathSegment,
                "a/b%",
                false,
                vec![
                    "may not contain '/'".to_string(),
                    "may not contain '%'".to_string(),
                ],
            ),
        ];
        for (rule, name, prefix, want) in cases {
            assert_eq!(validate_name(rule, name, prefix), want, "{rule:?} {name}");
        }
        assert_eq!(name_rule("", "Service"), NameRule::Dns1035Label);
        assert_eq!(name_rule("", "Namespace"), NameRule::Dns1123Label);
        assert_eq!(
            name_rule("rbac.authorization.k8s.io", "ClusterRole"),
            NameRule::PathSegment
        );
        assert_eq!(name_rule("", "ConfigMap"), NameRule::Dns1123Subdomain);
    }

    #[test]
    fn label_message_has_double_space_like_upstream() {
        assert_eq!(
            is_dns1123_label("A")[0],
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
    }

    #[test]
    fn qualified_names_table() {
        let cases: Vec<(&str, usize, &str)> = vec![
            ("app", 0, ""),
            ("example.com/app", 0, ""),
            ("/app", 1, "prefix part must be non-empty"),
            (
                "Example.com/app",
                1,
                "prefix part a lowercase RFC 1123 subdomain",
            ),
            ("a/b/c", 1, "a qualified name must consist of"),
            ("example.com/", 2, "name part must be non-empty"),
            ("-app", 1, "name part must consist of"),
        ];
        for (v, n, prefix) in cases {
            let errs = is_qualified_name(v);
            assert_eq!(errs.len(), n, "{v}: {errs:?}");
            if n > 0 {
                assert!(errs[0].starts_with(prefix), "{v}: {}", errs[0]);
            }
        }
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
    }

    #[test]
    fn labels_and_annotations() {
        let errs = validate_labels(
            Some(&json!({"ok": "v", "bad key": "v", "k": "-bad"})),
            "metadata.labels",
        );
        let msgs: Vec<String> = errs.iter().map(FieldError::full_message).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0]
            .starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of"));
        assert!(msgs[1].starts_with(
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"
        ));
        assert!(validate_labels(Some(&json!({"k": ""})), "l").is_empty());
        // annotation keys are case-insensitive
        assert!(validate_annotations(Some(&json!({"Example.COM/Key": "v"})), "a").is_empty());
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let errs = validate_annotations(Some(&json!({ "k": big })), "metadata.annotations");
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].full_message(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
    }

    #[test]
    fn finalizers_and_owner_refs() {
        let errs = validate_finalizers(
            Some(&json!([
                "kubernetes",
                "example.com/f",
                "custom",
                "orphan",
                "foregroundDeletion"
            ])),
            "metadata.finalizers",
            true,
        );
        let msgs: Vec<String> = errs.iter().map(FieldError::full_message).collect();
        assert_eq!(
            msgs,
            vec![
                "metadata.finalizers: Invalid value: [\"kubernetes\",\"example.com/f\",\"custom\",\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set".replace("[\"kubernetes\",\"example.com/f\",\"custom\",\"orphan\",\"foregroundDeletion\"]", "[]string{\"kubernetes\", \"example.com/f\", \"custom\", \"orphan\", \"foregroundDeletion\"}"),
                "metadata.finalizers[2]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified".to_string(),
            ]
        );
        let refs = json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "", "kind": "", "name": "", "uid": ""},
            {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "2"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "3", "controller": true},
        ]);
        let errs = validate_owner_references(Some(&refs), "metadata.ownerReferences");
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.kind",
                "metadata.ownerReferences.name",
                "metadata.ownerReferences.uid",
                "metadata.ownerReferences",
                "metadata.ownerReferences",
            ]
        );
        assert_eq!(
            errs[4].detail,
            "/v1, Kind=Event is disallowed from being an owner"
        );
        assert!(errs[5]
            .detail
            .contains("Found \"true\" in references for ReplicaSet/a and ReplicaSet/b"));
    }

    #[test]
    fn namespace_scope() {
        let errs = validate_object_meta(
            &json!({"name": "x"}),
            true,
            NameRule::Dns1123Subdomain,
            "metadata",
        );
        assert_eq!(errs[0].full_message(), "metadata.namespace: Required value");
        let errs = validate_object_meta(
            &json!({"name": "x", "namespace": "d"}),
            false,
            NameRule::Dns1123Subdomain,
            "metadata",
        );
        assert_eq!(
            errs[0].full_message(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        let errs = validate_object_meta(&json!({}), false, NameRule::Dns1123Subdomain, "metadata");
        assert_eq!(
            errs[0].full_message(),
            "metadata.name: Required value: name or generateName is required"
        );
        let errs = validate_object_meta(
            &json!({"generateName": "Web-", "name": "x"}),
            false,
            NameRule::Dns1123Subdomain,
            "metadata",
        );
        assert_eq!(errs[0].field, "metadata.generateName");
    }

    #[test]
    fn managed_fields() {
        let mf = json!([
            {"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1"},
            {"manager": "x".repeat(129), "operation": "Patch", "fieldsType": "FieldsV2"},
        ]);
        let msgs: Vec<String> = validate_managed_fields(Some(&mf), "metadata.managedFields")
            .iter()
            .map(FieldError::full_message)
            .collect();
        assert_eq!(
            msgs,
            vec![
                "metadata.managedFields[1].operation: Invalid value: \"Patch\": must be `Apply` or `Update`",
                "metadata.managedFields[1].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`",
                "metadata.managedFields[1].manager: Too long: must have at most 128 bytes",
            ]
        );
    }

    #[test]
    fn generate_name_truncates_prefix() {
        assert_eq!(generate_name("web-", "x7k2p"), "web-x7k2p");
        let long = "a".repeat(70);
        let n = generate_name(&long, "bcdfg");
        assert_eq!(n.len(), 63);
        assert!(n.ends_with("abcdfg"));
    }

    #[test]
    fn meta_update_immutables() {
        let old = json!({"name": "a", "namespace": "d", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "5", "generation": 3});
        let new = json!({"name": "b", "namespace": "d", "uid": "u2", "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "5", "generation": 2});
        let errs = validate_object_meta_update(&new, &old, "metadata");
        let msgs: Vec<String> = errs.iter().map(FieldError::full_message).collect();
        assert_eq!(
            msgs,
            vec![
                "metadata.generation: Invalid value: 2: must not be decremented",
                "metadata.name: Invalid value: \"b\": field is immutable",
                "metadata.uid: Invalid value: \"u2\": field is immutable",
            ]
        );
        let mut deleting = old.clone();
        deleting["deletionTimestamp"] = json!("2024-01-02T00:00:00Z");
        let mut new2 = deleting.clone();
        new2["finalizers"] = json!(["example.com/x"]);
        let errs = validate_object_meta_update(&new2, &deleting, "metadata");
        assert_eq!(
            errs[0].full_message(),
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/x\"}"
        );
        let mut no_rv = old.clone();
        no_rv.as_object_mut().unwrap().remove("resourceVersion");
        let errs = validate_object_meta_update(&no_rv, &old, "metadata");
        assert_eq!(
            errs[0].full_message(),
            "metadata.resourceVersion: Invalid value: \"\": must be specified for an update"
        );
    }

    #[test]
    fn generation_table() {
        let dep = json!({"metadata": {"generation": 4, "annotations": {"a": "1"}}, "spec": {"replicas": 1}, "status": {}});
        let mut ann = dep.clone();
        ann["metadata"]["annotations"]["a"] = json!("2");
        let mut spec = dep.clone();
        spec["spec"]["replicas"] = json!(2);
        let mut status = dep.clone();
        status["status"]["replicas"] = json!(2);
        let mut data = dep.clone();
        data["data"] = json!({"k": "v"});
        // (group, kind, custom, new, expected next generation)
        let cases: Vec<(&str, &str, bool, &Value, Option<i64>)> = vec![
            ("apps", "Deployment", false, &ann, Some(5)),
            ("apps", "Deployment", false, &spec, Some(5)),
            ("apps", "Deployment", false, &status, Some(4)),
            ("apps", "ReplicaSet", false, &ann, Some(4)),
            ("apps", "ReplicaSet", false, &spec, Some(5)),
            ("", "Pod", false, &spec, Some(5)),
            ("", "ConfigMap", false, &data, None),
            ("", "Service", false, &spec, None),
            ("example.com", "Widget", true, &data, Some(5)),
            ("example.com", "Widget", true, &status, Some(4)),
            ("example.com", "Widget", true, &ann, Some(4)),
        ];
        for (g, k, custom, new, want) in cases {
            assert_eq!(
                next_generation(g, k, custom, &dep, new),
                want,
                "{g}/{k} {new}"
            );
        }
        assert_eq!(initial_generation("apps", "Deployment", false), Some(1));
        assert_eq!(initial_generation("", "ConfigMap", false), None);
        assert_eq!(
            initial_generation("autoscaling", "HorizontalPodAutoscaler", false),
            None
        );
        assert_eq!(initial_generation("example.com", "Widget", true), Some(1));
    }
}
