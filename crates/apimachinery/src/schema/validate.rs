//! OpenAPI v3 validation of custom resources against their structural schema, with the
//! field errors upstream's apiextensions-apiserver reports (kube-openapi's validator messages
//! mapped to `field.Error`s), plus `x-kubernetes-list-type` set/map uniqueness.
//! `x-kubernetes-validations` (CEL rules) are not evaluated.

use serde_json::{Map, Value};

use super::custom::{flag, properties, EMBEDDED, INT_OR_STRING, PRESERVE};
use super::{child_path, formats, index_path};
use crate::status::{CauseType, FieldError};

/// Validates a custom resource (or any value) against an OpenAPI v3 schema and returns
/// upstream's field errors, e.g.
/// `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`,
/// `spec.size: Required value`, `spec.mode: Unsupported value: "x": supported values: "a", "b"`.
/// CEL rules (`x-kubernetes-validations`) are skipped.
pub fn validate_custom(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut v = Validator {
        field_prefix: String::new(),
        errs: Vec::new(),
    };
    v.validate(schema, obj, "");
    v.errs
}

/// Validates a schema's `default` value against the schema itself; errors are reported at
/// `field_prefix` (the `...default` path of the CRD), messages relative to the default.
pub(crate) fn validate_default(
    schema: &Value,
    default: &Value,
    field_prefix: &str,
) -> Vec<FieldError> {
    let mut v = Validator {
        field_prefix: field_prefix.to_string(),
        errs: Vec::new(),
    };
    v.validate(schema, default, "");
    v.errs
}

struct Validator {
    field_prefix: String,
    errs: Vec<FieldError>,
}

/// The JSON type name kube-openapi's validator reports for a value.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_json_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
        }
        _ => false,
    }
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match expected {
        "integer" => is_json_integer(v),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// Go's `%v` of a float64 for the bounds in messages (`1`, `0.5`, `1e+21`).
fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else if f.abs() >= 1e21 {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            _ => s,
        }
    } else {
        f.to_string()
    }
}

/// Renders a list-map key set as Go's `%#v` of a `map[string]interface {}`.
fn go_map(m: &[(String, Value)]) -> String {
    let mut items: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{:?}:{}", k, go_any(v)))
        .collect();
    items.sort();
    format!("map[string]interface {{}}{{{}}}", items.join(", "))
}

fn go_any(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "interface {}(nil)".into(),
        other => other.to_string(),
    }
}

impl Validator {
    fn field(&self, path: &str) -> String {
        if self.field_prefix.is_empty() {
            path.to_string()
        } else if path.is_empty() {
            self.field_prefix.clone()
        } else if path.starts_with('[') {
            format!("{}{path}", self.field_prefix)
        } else {
            format!("{}.{path}", self.field_prefix)
        }
    }

    /// `<name> in body <rest>` (`in body <rest>` at the root), as go-openapi words it.
    fn msg(path: &str, rest: &str) -> String {
        if path.is_empty() {
            format!("in body {rest}")
        } else {
            format!("{path} in body {rest}")
        }
    }

    fn invalid(&mut self, path: &str, v: &Value, rest: &str) {
        let f = self.field(path);
        self.errs
            .push(FieldError::invalid(f, v, Self::msg(path, rest)));
    }

    fn type_invalid(&mut self, path: &str, shown: &str, expected: &str) {
        let f = self.field(path);
        self.errs.push(FieldError {
            kind: CauseType::TypeInvalid,
            field: f,
            value: Some(format!("{shown:?}")),
            detail: Self::msg(path, &format!("must be of type {expected}: {shown:?}")),
        });
    }

    fn too_many(&mut self, path: &str, actual: usize, max: u64, what: &str) {
        let f = self.field(path);
        self.errs.push(FieldError {
            kind: CauseType::TooMany,
            field: f,
            value: Some(actual.to_string()),
            detail: format!("must have at most {max} {what}"),
        });
    }

    fn validate(&mut self, s: &Value, v: &Value, path: &str) {
        if !s.is_object() {
            return;
        }
        let int_or_string = flag(Some(s), INT_OR_STRING);
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
        if v.is_null() {
            if flag(Some(s), "nullable") {
                return;
            }
            if int_or_string {
                self.type_invalid(path, "null", "integer,string");
            } else if !ty.is_empty() {
                self.type_invalid(path, "null", ty);
            }
            return;
        }
        if int_or_string {
            if !(is_json_integer(v) || v.is_string()) {
                self.type_invalid(path, type_name(v), "integer,string");
                return;
            }
        } else if !ty.is_empty() && !type_matches(ty, v) {
            self.type_invalid(path, type_name(v), ty);
            return;
        }

        self.junctors(s, v, path);

        if let Some(en) = s.get("enum").and_then(Value::as_array) {
            if !en.iter().any(|e| json_eq(e, v)) {
                let supported: Vec<String> = en
                    .iter()
                    .map(|e| match e {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
                let f = self.field(path);
                self.errs.push(FieldError::not_supported(f, v, &refs));
            }
        }

        match v {
            Value::String(st) => self.string(s, st, v, path),
            Value::Number(_) => self.number(s, v, path),
            Value::Array(items) => self.array(s, items, v, path),
            Value::Object(m) => self.object(s, m, v, path),
            _ => {}
        }
    }

    fn junctors(&mut self, s: &Value, v: &Value, path: &str) {
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.validate(sub, v, path);
            }
        }
        let passes = |sub: &Value| {
            let mut t = Validator {
                field_prefix: String::new(),
                errs: Vec::new(),
            };
            t.validate(sub, v, path);
            t.errs.is_empty()
        };
        if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
            if !any.is_empty() && !any.iter().any(passes) {
                self.invalid(path, v, "must validate at least one schema (anyOf)");
            }
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            if !one.is_empty() && one.iter().filter(|x| passes(x)).count() != 1 {
                self.invalid(path, v, "must validate one and only one schema (oneOf)");
            }
        }
        if let Some(not) = s.get("not").filter(|n| n.is_object()) {
            if passes(not) {
                self.invalid(path, v, "must not validate the schema (not)");
            }
        }
    }

    fn string(&mut self, s: &Value, st: &str, v: &Value, path: &str) {
        let len = st.chars().count() as u64;
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                // upstream maps maxLength to field.TooLongMaxLength
                let f = self.field(path);
                self.errs.push(FieldError {
                    kind: CauseType::TooLong,
                    field: f,
                    value: None,
                    detail: format!("may not be longer than {max}"),
                });
            }
        }
        if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
            if len < min {
                self.invalid(path, v, &format!("should be at least {min} chars long"));
            }
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            if let Ok(re) = regex::Regex::new(p) {
                if !re.is_match(st) {
                    self.invalid(path, v, &format!("should match '{p}'"));
                }
            }
        }
        if let Some(fmt) = s.get("format").and_then(Value::as_str) {
            if formats::check(fmt, st) == Some(false) {
                let f = self.field(path);
                self.errs.push(FieldError {
                    kind: CauseType::TypeInvalid,
                    field: f,
                    value: Some(format!("{st:?}")),
                    detail: Self::msg(path, &format!("must be of type {fmt}: {st:?}")),
                });
            }
        }
    }

    fn number(&mut self, s: &Value, v: &Value, path: &str) {
        let Some(x) = v.as_f64() else {
            return;
        };
        let excl = |k: &str| s.get(k).and_then(Value::as_bool) == Some(true);
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if excl("exclusiveMaximum") && x >= max {
                self.invalid(path, v, &format!("should be less than {}", go_float(max)));
            } else if x > max {
                self.invalid(
                    path,
                    v,
                    &format!("should be less than or equal to {}", go_float(max)),
                );
            }
        }
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if excl("exclusiveMinimum") && x <= min {
                self.invalid(
                    path,
                    v,
                    &format!("should be greater than {}", go_float(min)),
                );
            } else if x < min {
                self.invalid(
                    path,
                    v,
                    &format!("should be greater than or equal to {}", go_float(min)),
                );
            }
        }
        if let Some(m) = s.get("multipleOf").and_then(Value::as_f64) {
            if m > 0.0 {
                let q = x / m;
                if (q - q.round()).abs() > 1e-9 {
                    self.invalid(path, v, &format!("should be a multiple of {}", go_float(m)));
                }
            }
        }
    }

    fn array(&mut self, s: &Value, items: &[Value], v: &Value, path: &str) {
        if let Some(is) = s.get("items").filter(|i| i.is_object()) {
            for (i, item) in items.iter().enumerate() {
                self.validate(is, item, &index_path(path, i));
            }
        }
        let n = items.len();
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if (n as u64) < min {
                self.invalid(
                    path,
                    &Value::from(n),
                    &format!("should have at least {min} items"),
                );
            }
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
            if n as u64 > max {
                self.too_many(path, n, max, "items");
            }
        }
        if s.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            let dup = items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].iter().any(|b| json_eq(a, b)));
            if dup {
                self.invalid(
                    path,
                    &Value::String(String::new()),
                    "shouldn't contain duplicates",
                );
            }
        }
        let _ = v;
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => {
                for (i, a) in items.iter().enumerate() {
                    if items[..i].iter().any(|b| json_eq(a, b)) {
                        let f = self.field(&index_path(path, i));
                        self.errs.push(FieldError::duplicate(f, a));
                    }
                }
            }
            Some("map") => {
                let keys: Vec<&str> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let key_of = |item: &Value| -> Vec<(String, Value)> {
                    keys.iter()
                        .map(|k| {
                            let kv = item.get(*k).cloned().or_else(|| {
                                s.pointer(&format!("/items/properties/{k}/default"))
                                    .cloned()
                            });
                            (k.to_string(), kv.unwrap_or(Value::Null))
                        })
                        .collect()
                };
                let mut seen: Vec<Vec<(String, Value)>> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if !item.is_object() {
                        continue;
                    }
                    let k = key_of(item);
                    if seen
                        .iter()
                        .any(|x| x.iter().zip(&k).all(|(a, b)| json_eq(&a.1, &b.1)))
                    {
                        let f = self.field(&index_path(path, i));
                        self.errs.push(FieldError {
                            kind: CauseType::Duplicate,
                            field: f,
                            value: Some(go_map(&k)),
                            detail: String::new(),
                        });
                    } else {
                        seen.push(k);
                    }
                }
            }
            _ => {}
        }
    }

    /// apiVersion and kind of an `x-kubernetes-embedded-resource` object (upstream's
    /// `validateEmbeddedResource`).
    fn embedded(&mut self, m: &Map<String, Value>, path: &str) {
        let ap = child_path(path, "apiVersion");
        let kp = child_path(path, "kind");
        if !m.contains_key("apiVersion") {
            let f = self.field(&ap);
            self.errs.push(FieldError::required(f, "must not be empty"));
        }
        if !m.contains_key("kind") {
            let f = self.field(&kp);
            self.errs.push(FieldError::required(f, "must not be empty"));
        }
        if let Some(a) = m.get("apiVersion") {
            let f = self.field(&ap);
            match a.as_str() {
                None => self
                    .errs
                    .push(FieldError::invalid(f, a, "must be a string")),
                Some("") => self
                    .errs
                    .push(FieldError::invalid(f, a, "must not be empty")),
                Some(gv) if gv.matches('/').count() > 1 => self.errs.push(FieldError::invalid(
                    f,
                    a,
                    format!("unexpected GroupVersion string: {gv}"),
                )),
                _ => {}
            }
        }
        if let Some(k) = m.get("kind") {
            let f = self.field(&kp);
            match k.as_str() {
                None => self
                    .errs
                    .push(FieldError::invalid(f, k, "must be a string")),
                Some("") => self
                    .errs
                    .push(FieldError::invalid(f, k, "must not be empty")),
                Some(kind) => {
                    let e = crate::meta::is_dns1035_label(&kind.to_lowercase());
                    if !e.is_empty() {
                        self.errs.push(FieldError::invalid(
                            f,
                            k,
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                e.join(",")
                            ),
                        ));
                    }
                }
            }
        }
    }

    fn object(&mut self, s: &Value, m: &Map<String, Value>, v: &Value, path: &str) {
        if !path.is_empty() && flag(Some(s), EMBEDDED) {
            self.embedded(m, path);
        }
        let n = m.len();
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
            if n as u64 > max {
                self.too_many(path, n, max, "items");
            }
        }
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
            if (n as u64) < min {
                self.invalid(path, v, &format!("should have at least {min} properties"));
            }
        }
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    let f = self.field(&child_path(path, r));
                    self.errs.push(FieldError::required(f, ""));
                }
            }
        }
        let props = properties(s);
        let add = s.get("additionalProperties");
        let preserve = flag(Some(s), PRESERVE);
        for (k, child) in m {
            let p = child_path(path, k);
            if let Some(ps) = props.and_then(|p| p.get(k)) {
                self.validate(ps, child, &p);
            } else if let Some(a) = add {
                match a {
                    Value::Object(_) => self.validate(a, child, &p),
                    Value::Bool(false) if !preserve => {
                        self.invalid(&p, child, "is a forbidden property");
                    }
                    _ => {}
                }
            }
        }
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
