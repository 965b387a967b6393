//! Static checks of a CRD version's `openAPIV3Schema`: upstream's OpenAPI schema rules for
//! CustomResourceDefinitions (forbidden keywords, list/map type extensions) and the structural
//! schema invariants (a type at every level, metadata restrictions, embedded resources,
//! int-or-string, nothing structural inside value validations), then defaults validated
//! against their schema.

use serde_json::{json, Value};

use super::custom::{flag, properties, EMBEDDED, INT_OR_STRING, PRESERVE};
use super::validate::validate_default;
use crate::status::FieldError;

const META_FIELDS: &[&str] = &["metadata", "apiVersion", "kind"];
const OPENAPI_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

fn child(path: &str, c: &str) -> String {
    format!("{path}.{c}")
}

fn str_of<'a>(s: &'a Value, k: &str) -> &'a str {
    s.get(k).and_then(Value::as_str).unwrap_or("")
}

/// JSONSchemaProps fields in Go declaration order (JSON name, Go name): the order upstream
/// checks the root of a schema in when the status subresource is enabled.
const ROOT_FIELDS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("$schema", "Schema"),
    ("$ref", "Ref"),
    ("description", "Description"),
    ("type", "Type"),
    ("format", "Format"),
    ("title", "Title"),
    ("default", "Default"),
    ("maximum", "Maximum"),
    ("exclusiveMaximum", "ExclusiveMaximum"),
    ("minimum", "Minimum"),
    ("exclusiveMinimum", "ExclusiveMinimum"),
    ("maxLength", "MaxLength"),
    ("minLength", "MinLength"),
    ("pattern", "Pattern"),
    ("maxItems", "MaxItems"),
    ("minItems", "MinItems"),
    ("uniqueItems", "UniqueItems"),
    ("multipleOf", "MultipleOf"),
    ("enum", "Enum"),
    ("maxProperties", "MaxProperties"),
    ("minProperties", "MinProperties"),
    ("required", "Required"),
    ("items", "Items"),
    ("allOf", "AllOf"),
    ("oneOf", "OneOf"),
    ("anyOf", "AnyOf"),
    ("not", "Not"),
    ("properties", "Properties"),
    ("additionalProperties", "AdditionalProperties"),
    ("patternProperties", "PatternProperties"),
    ("dependencies", "Dependencies"),
    ("additionalItems", "AdditionalItems"),
    ("definitions", "Definitions"),
    ("externalDocs", "ExternalDocs"),
    ("example", "Example"),
    ("nullable", "Nullable"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "XPreserveUnknownFields",
    ),
    ("x-kubernetes-embedded-resource", "XEmbeddedResource"),
    ("x-kubernetes-int-or-string", "XIntOrString"),
    ("x-kubernetes-list-map-keys", "XListMapKeys"),
    ("x-kubernetes-list-type", "XListType"),
    ("x-kubernetes-map-type", "XMapType"),
    ("x-kubernetes-validations", "XValidations"),
];

const ALLOWED_AT_ROOT_WITH_STATUS: &[&str] = &[
    "Description",
    "Type",
    "Format",
    "Title",
    "Maximum",
    "ExclusiveMaximum",
    "Minimum",
    "ExclusiveMinimum",
    "MaxLength",
    "MinLength",
    "Pattern",
    "MaxItems",
    "MinItems",
    "UniqueItems",
    "MultipleOf",
    "Required",
    "Items",
    "Properties",
    "ExternalDocs",
    "Example",
    "XPreserveUnknownFields",
    "XValidations",
];

fn is_zero(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false)) || v == "" || v == &json!(0)
}

/// Keywords whose presence makes upstream fail to build the structural schema; the structural
/// checks are skipped then (the OpenAPI rules report them).
const NOT_STRUCTURAL: &[&str] = &[
    "id is not supported",
    "additionalItems is not supported",
    "patternProperties is not supported",
    "definitions is not supported",
    "dependencies is not supported",
    "$ref is not supported",
    "items must be a schema object and not an array",
];

/// All checks of one `openAPIV3Schema` at `path` (e.g. `spec.validation.openAPIV3Schema`), in
/// upstream's order: the root restrictions of the status subresource and of `nullable`, the
/// structural invariants (sorted), or when they hold the defaults, then the OpenAPI rules.
pub(crate) fn validate_schema(schema: &Value, path: &str, status_enabled: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if status_enabled {
        for (json_name, go_name) in ROOT_FIELDS {
            let Some(v) = schema.get(*json_name).filter(|v| !is_zero(v)) else {
                continue;
            };
            if *go_name == "Type" {
                if v != "object" {
                    errs.push(FieldError::invalid(
                        child(path, "type"),
                        v,
                        "only \"object\" is allowed as the type at the root of the schema if the status subresource is enabled",
                    ));
                    break;
                }
                continue;
            }
            if !ALLOWED_AT_ROOT_WITH_STATUS.contains(go_name) {
                errs.push(FieldError::invalid(
                    path,
                    schema,
                    format!(
                        "only [{}] fields are allowed at the root of the schema if the status subresource is enabled",
                        ALLOWED_AT_ROOT_WITH_STATUS.join(" ")
                    ),
                ));
                break;
            }
        }
    }
    if flag(Some(schema), "nullable") {
        errs.push(FieldError::forbidden(
            child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut rules = Vec::new();
    openapi_rules(schema, path, &Ctx::default(), true, &mut rules);
    let structural_ok = !rules
        .iter()
        .any(|e| NOT_STRUCTURAL.contains(&e.detail.as_str()));
    if structural_ok {
        let mut st = Vec::new();
        structural(Some(schema), Level::Root, path, &mut st);
        completeness(schema, Some(schema), path, path, &mut st);
        st.sort_by_key(FieldError::full_message);
        if st.is_empty() {
            validate_defaults(schema, path, true, &mut errs);
        } else {
            errs.extend(st);
        }
    }
    errs.extend(rules);
    errs
}

#[derive(Clone, Default)]
struct Ctx {
    forbid_defaults: Option<String>,
    inside_meta: bool,
}

fn openapi_rules(s: &Value, path: &str, ctx: &Ctx, root: bool, errs: &mut Vec<FieldError>) {
    let Some(o) = s.as_object() else {
        return;
    };
    let ty = str_of(s, "type");
    if !ty.is_empty() && !OPENAPI_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            child(path, "type"),
            &json!(ty),
            OPENAPI_TYPES,
        ));
    }
    if o.contains_key("default") {
        if let Some(reason) = &ctx.forbid_defaults {
            errs.push(FieldError::forbidden(
                child(path, "default"),
                format!("must not be set {reason}"),
            ));
        }
    }
    for (k, what) in [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ] {
        if o.get(k)
            .is_some_and(|v| !v.is_null() && v != "" && v != &json!({}))
        {
            errs.push(FieldError::forbidden(child(path, k), what));
        }
    }
    if ty == "null" {
        errs.push(FieldError::forbidden(
            child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if o.get("items").is_some_and(Value::is_array) {
        errs.push(FieldError::forbidden(
            child(path, "items"),
            "items must be a schema object and not an array",
        ));
    }
    if ctx.inside_meta && flag(Some(s), EMBEDDED) {
        errs.push(FieldError::forbidden(
            child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
    if o.get("uniqueItems") == Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden(
            child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(ap) = o.get("additionalProperties") {
        let has_props = properties(s).is_some_and(|p| !p.is_empty());
        if has_props && (ap == &Value::Bool(false) || ap.is_object()) {
            errs.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        let mut sub = ctx.clone();
        if ctx.inside_meta {
            sub.forbid_defaults =
                Some("inside additionalProperties applying to object metadata".into());
        }
        openapi_rules(ap, &child(path, "additionalProperties"), &sub, false, errs);
    }
    if let Some(props) = properties(s) {
        for (k, ps) in props {
            let mut sub = ctx.clone();
            if (root || flag(Some(s), EMBEDDED)) && META_FIELDS.contains(&k.as_str()) {
                sub.inside_meta = true;
                if root {
                    sub.forbid_defaults = Some(format!("in top-level {k}"));
                }
            }
            openapi_rules(ps, &key(&child(path, "properties"), k), &sub, false, errs);
        }
    }
    if let Some(not) = o.get("not") {
        openapi_rules(not, &child(path, "not"), ctx, false, errs);
    }
    for j in ["allOf", "oneOf", "anyOf"] {
        if let Some(a) = o.get(j).and_then(Value::as_array) {
            for (i, sub) in a.iter().enumerate() {
                openapi_rules(sub, &format!("{path}.{j}[{i}]"), ctx, false, errs);
            }
        }
    }
    if let Some(items) = o.get("items").filter(|i| i.is_object()) {
        openapi_rules(items, &child(path, "items"), ctx, false, errs);
    }
    if o.get(PRESERVE) == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            child(path, PRESERVE),
            &json!(false),
            "must be true or undefined",
        ));
    }
    list_and_map_types(s, path, ty, errs);
    if let Some(rules) = o.get("x-kubernetes-validations").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{path}.x-kubernetes-validations[{i}]");
            let rule = str_of(r, "rule").trim();
            let msg = str_of(r, "message");
            if rule.is_empty() {
                errs.push(FieldError::required(
                    child(&rp, "rule"),
                    "rule is not specified",
                ));
            } else if !msg.is_empty() && msg.trim().is_empty() {
                errs.push(FieldError::invalid(
                    child(&rp, "message"),
                    &json!(msg),
                    "message must be non-empty if specified",
                ));
            } else if msg.trim().contains(['\n', '\r']) {
                errs.push(FieldError::invalid(
                    child(&rp, "message"),
                    &json!(msg),
                    "message must not contain line breaks",
                ));
            } else if rule.contains(['\n', '\r']) && msg.trim().is_empty() {
                errs.push(FieldError::required(
                    child(&rp, "message"),
                    "message must be specified if rule contains line breaks",
                ));
            }
        }
    }
}

fn list_and_map_types(s: &Value, path: &str, ty: &str, errs: &mut Vec<FieldError>) {
    let map_type = s.get("x-kubernetes-map-type").and_then(Value::as_str);
    let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
    let map_keys: Vec<&str> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let items = s.get("items").filter(|i| i.is_object());
    if let Some(mt) = map_type {
        if ty != "object" {
            let d = "must be object if x-kubernetes-map-type is specified";
            errs.push(if ty.is_empty() {
                FieldError::required(child(path, "type"), d)
            } else {
                FieldError::invalid(child(path, "type"), &json!(ty), d)
            });
        }
        if mt != "atomic" && mt != "granular" {
            errs.push(FieldError::not_supported(
                child(path, "x-kubernetes-map-type"),
                &json!(mt),
                &["atomic", "granular"],
            ));
        }
    }
    if let Some(lt) = list_type {
        if ty != "array" {
            let d = "must be array if x-kubernetes-list-type is specified";
            errs.push(if ty.is_empty() {
                FieldError::required(child(path, "type"), d)
            } else {
                FieldError::invalid(child(path, "type"), &json!(ty), d)
            });
        } else if lt == "set" {
            if let Some(is) = items {
                let it = str_of(is, "type");
                let atomic_msg = "must be atomic as item of a list with x-kubernetes-list-type=set";
                if it == "array" {
                    if let Some(ilt) = is.get("x-kubernetes-list-type").and_then(Value::as_str) {
                        if ilt != "atomic" {
                            errs.push(FieldError::invalid(
                                child(path, "items.x-kubernetes-list-type"),
                                &json!(ilt),
                                atomic_msg,
                            ));
                        }
                    }
                } else if it == "object"
                    && is.get("x-kubernetes-map-type").and_then(Value::as_str) != Some("atomic")
                {
                    errs.push(FieldError::invalid(
                        child(path, "items.x-kubernetes-map-type"),
                        &Value::Null,
                        atomic_msg,
                    ));
                }
            }
        }
        if !["atomic", "set", "map"].contains(&lt) {
            errs.push(FieldError::not_supported(
                child(path, "x-kubernetes-list-type"),
                &json!(lt),
                &["atomic", "set", "map"],
            ));
        }
    }
    if !map_keys.is_empty() {
        let d = "must be map if x-kubernetes-list-map-keys is non-empty";
        match list_type {
            None => errs.push(FieldError::required(
                child(path, "x-kubernetes-list-type"),
                d,
            )),
            Some(lt) if lt != "map" => errs.push(FieldError::invalid(
                child(path, "x-kubernetes-list-type"),
                &json!(lt),
                d,
            )),
            _ => {}
        }
    }
    if list_type == Some("map") {
        if map_keys.is_empty() {
            errs.push(FieldError::required(
                child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match items {
            None => errs.push(FieldError::required(
                child(path, "items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(is) if str_of(is, "type") != "object" => errs.push(FieldError::invalid(
                child(path, "items.type"),
                &json!(str_of(is, "type")),
                "must be object if parent array's x-kubernetes-list-type is map",
            )),
            Some(is) => {
                let mut seen = Vec::new();
                let keys_json = json!(map_keys);
                for k in &map_keys {
                    match properties(is).and_then(|p| p.get(*k)) {
                        Some(ks) => {
                            let kt = str_of(ks, "type");
                            if kt == "array" || kt == "object" {
                                errs.push(FieldError::invalid(
                                    format!("{path}.items.properties[{k}].type"),
                                    &json!("object"),
                                    "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                ));
                            }
                        }
                        None => errs.push(FieldError::invalid(
                            child(path, "x-kubernetes-list-map-keys"),
                            &keys_json,
                            "entries must all be names of item properties",
                        )),
                    }
                    if seen.contains(k) {
                        errs.push(FieldError::invalid(
                            child(path, "x-kubernetes-list-map-keys"),
                            &keys_json,
                            "must not contain duplicate entries",
                        ));
                    }
                    seen.push(*k);
                }
            }
        }
    }
    // set and map list items (and map keys) must not be nullable; map keys required or defaulted
    if let (Some(lt @ ("set" | "map")), Some(is)) = (list_type, items) {
        if flag(Some(is), "nullable") {
            errs.push(FieldError::forbidden(
                child(path, "items.nullable"),
                format!("cannot be nullable when x-kubernetes-list-type is {lt}"),
            ));
        }
        if lt == "map" {
            let required: Vec<&str> = is
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for k in &map_keys {
                let Some(ks) = properties(is).and_then(|p| p.get(*k)) else {
                    continue;
                };
                if !required.contains(k) && ks.get("default").is_none() {
                    errs.push(FieldError::required(
                        format!("{path}.items.properties[{k}].default"),
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    ));
                }
                if flag(Some(ks), "nullable") {
                    errs.push(FieldError::forbidden(
                        format!("{path}.items.properties[{k}].nullable"),
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    ));
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn is_int_or_string_any_of(any: Option<&Value>) -> bool {
    any == Some(&json!([{"type": "integer"}, {"type": "string"}]))
}

fn structural(s: Option<&Value>, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    let Some(s) = s.filter(|s| s.is_object()) else {
        return;
    };
    let ty = str_of(s, "type");
    let embedded = flag(Some(s), EMBEDDED);
    let preserve = flag(Some(s), PRESERVE);
    let ios = flag(Some(s), INT_OR_STRING);
    if ty == "array" && s.get("items").is_none() {
        errs.push(FieldError::required(
            child(path, "items"),
            "must be specified",
        ));
    }
    structural(s.get("items"), Level::Item, &child(path, "items"), errs);
    if let Some(props) = properties(s) {
        for (k, ps) in props {
            structural(
                Some(ps),
                Level::Field,
                &key(&child(path, "properties"), k),
                errs,
            );
        }
    }
    if let Some(ap) = s.get("additionalProperties") {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(
                child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        structural(
            Some(ap),
            Level::Field,
            &child(path, "additionalProperties"),
            errs,
        );
    }
    if ios && preserve {
        errs.push(FieldError::invalid(
            child(path, PRESERVE),
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if ios && embedded {
        errs.push(FieldError::invalid(
            child(path, EMBEDDED),
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    // value validations: anyOf / allOf / oneOf / not
    let skip_any_of = is_int_or_string_any_of(s.get("anyOf"));
    let skip_first_all_of_any_of = s
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|f| is_int_or_string_any_of(f.get("anyOf")));
    value_validation(s, skip_any_of, skip_first_all_of_any_of, lvl, path, errs);
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        if let Err(e) = regex::Regex::new(p) {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            errs.push(FieldError::invalid(
                child(path, "pattern"),
                &json!(p),
                format!("must be a valid regular expression, but isn't: {first}"),
            ));
        }
    }

    let check_metadata = lvl == Level::Root || embedded;
    if embedded && ty != "object" {
        let d = "must be object if x-kubernetes-embedded-resource is true";
        errs.push(if ty.is_empty() {
            FieldError::required(child(path, "type"), d)
        } else {
            FieldError::invalid(child(path, "type"), &json!(ty), d)
        });
    } else if ty.is_empty() && !ios && !preserve {
        let d = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(child(path, "type"), d));
    }
    if embedded && s.get("additionalProperties").is_some() {
        errs.push(FieldError::forbidden(
            child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid(
            child(path, "type"),
            &json!(ty),
            "must be object at the root",
        ));
    }
    let props = properties(s);
    for k in ["kind", "apiVersion"] {
        if let Some(ps) = props.and_then(|p| p.get(k)).filter(|_| check_metadata) {
            let t = str_of(ps, "type");
            if t != "string" {
                errs.push(FieldError::invalid(
                    format!("{path}.properties[{k}].type"),
                    &json!(t),
                    "must be string",
                ));
            }
        }
    }
    if let Some(meta) = props.and_then(|p| p.get("metadata")) {
        let mp = key(&child(path, "properties"), "metadata");
        if check_metadata && str_of(meta, "type") != "object" {
            errs.push(FieldError::invalid(
                child(&mp, "type"),
                &json!(str_of(meta, "type")),
                "must be object",
            ));
        }
        if lvl == Level::Root && !metadata_only_names(meta) {
            errs.push(FieldError::forbidden(
                mp,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if embedded && !preserve && props.is_none_or(|p| p.is_empty()) {
        errs.push(FieldError::required(
            child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// Whether a root `metadata` schema only restricts name and generateName (type and default
/// aside).
fn metadata_only_names(meta: &Value) -> bool {
    let Some(o) = meta.as_object() else {
        return true;
    };
    o.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v
            .as_object()
            .is_some_and(|p| !p.is_empty() && p.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}

fn value_validation(
    s: &Value,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    lvl: Level,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        if let Some(a) = s.get("anyOf").and_then(Value::as_array) {
            for (i, sub) in a.iter().enumerate() {
                nested(sub, false, lvl, &format!("{path}.anyOf[{i}]"), errs);
            }
        }
    }
    if let Some(a) = s.get("allOf").and_then(Value::as_array) {
        for (i, sub) in a.iter().enumerate() {
            nested(
                sub,
                skip_first_all_of_any_of && i == 0,
                lvl,
                &format!("{path}.allOf[{i}]"),
                errs,
            );
        }
    }
    if let Some(a) = s.get("oneOf").and_then(Value::as_array) {
        for (i, sub) in a.iter().enumerate() {
            nested(sub, false, lvl, &format!("{path}.oneOf[{i}]"), errs);
        }
    }
    if let Some(n) = s.get("not") {
        nested(n, false, lvl, &child(path, "not"), errs);
    }
}

/// A schema inside a value validation may only validate values, not specify structure.
fn nested(s: &Value, skip_any_of: bool, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    if !s.is_object() {
        return;
    }
    value_validation(s, skip_any_of, false, lvl, path, errs);
    if let Some(items) = s.get("items") {
        nested(items, false, lvl, &child(path, "items"), errs);
    }
    if let Some(props) = properties(s) {
        for (k, ps) in props {
            nested(
                ps,
                false,
                Level::Field,
                &key(&child(path, "properties"), k),
                errs,
            );
        }
    }
    let o = s.as_object().expect("checked object");
    let forbid = |errs: &mut Vec<FieldError>, k: &str, d: &str| {
        errs.push(FieldError::forbidden(child(path, k), d))
    };
    if o.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        forbid(errs, "type", "must be empty to be structural");
    }
    if let Some(ap) = o.get("additionalProperties") {
        forbid(
            errs,
            "additionalProperties",
            "must be undefined to be structural",
        );
        let _ = ap;
    }
    if o.contains_key("default") {
        forbid(errs, "default", "must be undefined to be structural");
    }
    if o.get("title")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        forbid(errs, "title", "must be empty to be structural");
    }
    if o.get("description")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
    {
        forbid(errs, "description", "must be empty to be structural");
    }
    if flag(Some(s), "nullable") {
        forbid(errs, "nullable", "must be false to be structural");
    }
    for k in [PRESERVE, EMBEDDED, INT_OR_STRING] {
        if flag(Some(s), k) {
            forbid(errs, k, "must be false to be structural");
        }
    }
    if o.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        forbid(
            errs,
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        );
    }
    if o.contains_key("x-kubernetes-list-type") {
        forbid(
            errs,
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        );
    }
    if o.contains_key("x-kubernetes-map-type") {
        forbid(
            errs,
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        );
    }
    if o.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        forbid(
            errs,
            "x-kubernetes-validations",
            "must be empty to be structural",
        );
    }
    if properties(s).is_some_and(|p| p.contains_key("metadata")) {
        errs.push(FieldError::forbidden(
            key(&child(path, "properties"), "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// Every `default` must validate against the schema it is the default of.
fn validate_defaults(s: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let Some(o) = s.as_object() else {
        return;
    };
    if let Some(d) = o.get("default") {
        let dp = child(path, "default");
        let mut pruned = d.clone();
        if !super::custom::prune_value(s, &mut pruned, flag(Some(s), EMBEDDED)).is_empty() {
            errs.push(FieldError::invalid(&dp, d, "must not have unknown fields"));
        }
        errs.extend(validate_default(s, d, &dp));
    }
    // upstream does not follow additionalProperties: defaults are forbidden there
    if let Some(items) = o.get("items").filter(|i| i.is_object()) {
        validate_defaults(items, &child(path, "items"), false, errs);
    }
    if let Some(props) = properties(s) {
        for (k, ps) in props {
            if root && k == "metadata" {
                continue;
            }
            validate_defaults(ps, &key(&child(path, "properties"), k), false, errs);
        }
    }
}

/// Every property or items schema a value validation (allOf/anyOf/oneOf/not) of the root
/// mentions must also be specified structurally (upstream's `validateStructuralCompleteness`).
fn completeness(
    v: &Value,
    s: Option<&Value>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_path,
            format!("because it is defined in {v_path}"),
        ));
        return;
    };
    if let Some(not) = v.get("not").filter(|n| n.is_object()) {
        complete_nested(not, Some(s), s_path, &child(v_path, "not"), errs);
    }
    for j in ["allOf", "anyOf", "oneOf"] {
        if let Some(a) = v.get(j).and_then(Value::as_array) {
            for (i, sub) in a.iter().enumerate() {
                complete_nested(sub, Some(s), s_path, &format!("{v_path}.{j}[{i}]"), errs);
            }
        }
    }
}

fn complete_nested(
    v: &Value,
    s: Option<&Value>,
    s_path: &str,
    v_path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_path,
            format!("because it is defined in {v_path}"),
        ));
        return;
    };
    completeness(v, Some(s), s_path, v_path, errs);
    if let Some(items) = v.get("items").filter(|i| i.is_object()) {
        complete_nested(
            items,
            s.get("items").filter(|i| i.is_object()),
            &child(s_path, "items"),
            &child(v_path, "items"),
            errs,
        );
    }
    if let Some(props) = properties(v) {
        for (k, vf) in props {
            let sp = key(&child(s_path, "properties"), k);
            let vp = key(&child(v_path, "properties"), k);
            match properties(s).and_then(|p| p.get(k)) {
                Some(sf) => complete_nested(vf, Some(sf), &sp, &vp, errs),
                None => errs.push(FieldError::required(
                    sp,
                    format!("because it is defined in {vp}"),
                )),
            }
        }
    }
}
