//! Validation and defaulting of `apiextensions.k8s.io/v1` CustomResourceDefinitions with
//! upstream's rules, field paths and messages. Like upstream (which converts v1 to its internal
//! version first), a schema, subresources or printer columns identical in every version are
//! validated once at `spec.validation`, `spec.subresources`, `spec.additionalPrinterColumns`.

use serde_json::{json, Value};

use super::structural::validate_schema;
use crate::meta::{is_dns1035_label, is_dns1123_subdomain};
use crate::status::FieldError;

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Applies upstream's v1 defaults: `names.singular` (lower-case kind), `names.listKind`
/// (`<Kind>List`), `conversion.strategy: None`, webhook service port 443.
pub fn default_crd(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let kind = spec
        .get("names")
        .and_then(|n| n.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        if names
            .get("singular")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && !kind.is_empty()
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && !kind.is_empty()
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    let conv = spec
        .entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
    if let Some(c) = conv.as_object_mut() {
        if c.get("strategy")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            c.insert("strategy".into(), json!("None"));
        }
        if let Some(svc) = c
            .get_mut("webhook")
            .and_then(|w| w.get_mut("clientConfig"))
            .and_then(|cc| cc.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            svc.entry("port").or_insert(json!(443));
        }
    }
}

/// Validates a (defaulted, see [`default_crd`]) v1 CustomResourceDefinition on create:
/// metadata.name is `<plural>.<group>`, group, scope, names, versions (names, exactly one storage
/// version, unique), per-version schemas (required, OpenAPI rules, structural, defaults),
/// subresources (scale paths), printer columns and conversion.
pub fn validate_crd(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");

    // metadata.name
    let name = s(crd, "/metadata/name");
    if name.is_empty() {
        if s(crd, "/metadata/generateName").is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        let mut msgs = is_dns1123_subdomain(name);
        if name != format!("{plural}.{group}") {
            msgs.push("must be spec.names.plural+\".\"+spec.group".to_string());
        }
        for m in msgs {
            errs.push(FieldError::invalid("metadata.name", &json!(name), m));
        }
    }

    // spec.group
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let e = is_dns1123_subdomain(group);
        if !e.is_empty() {
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                e.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                "should be a domain with at least one dot",
            ));
        }
    }

    // spec.scope
    let scope = s(crd, "/spec/scope");
    if scope.is_empty() {
        errs.push(FieldError::required("spec.scope", ""));
    } else if scope != "Cluster" && scope != "Namespaced" {
        errs.push(FieldError::not_supported(
            "spec.scope",
            &json!(scope),
            &["Cluster", "Namespaced"],
        ));
    }

    let empty = Vec::new();
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, v) in versions.iter().enumerate() {
        if v.pointer("/schema/openAPIV3Schema")
            .is_none_or(Value::is_null)
        {
            errs.push(FieldError::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }

    let same = |ptr: &str| -> bool {
        !versions.is_empty()
            && versions
                .iter()
                .all(|v| v.pointer(ptr) == versions[0].pointer(ptr))
    };
    let shared_schema = same("/schema");
    let shared_subresources = same("/subresources");
    let shared_columns = same("/additionalPrinterColumns");

    let mut storage = 0;
    let mut names_seen: Vec<&str> = Vec::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let vp = format!("spec.versions[{i}]");
        let vname = s(v, "/name");
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
        if names_seen.contains(&vname) {
            unique = false;
        } else {
            names_seen.push(vname);
        }
        let e = is_dns1035_label(vname);
        if !e.is_empty() {
            errs.push(FieldError::invalid(
                format!("{vp}.name"),
                &json!(vname),
                e.join(","),
            ));
        }
        if let Some(w) = v.get("deprecationWarning").and_then(Value::as_str) {
            let deprecated = v.get("deprecated").and_then(Value::as_bool) == Some(true);
            let msg = if !deprecated {
                Some("can only be set for deprecated versions")
            } else if w.len() > 256 {
                Some("must be <= 256 characters long")
            } else if w.is_empty() {
                Some("must not be an empty string")
            } else {
                None
            };
            if let Some(m) = msg {
                errs.push(FieldError::invalid(
                    format!("{vp}.deprecationWarning"),
                    &json!(w),
                    m,
                ));
            }
        }
        if !shared_schema {
            if let Some(sc) = v
                .pointer("/schema/openAPIV3Schema")
                .filter(|x| !x.is_null())
            {
                let status = status_enabled(v);
                errs.extend(validate_schema(
                    sc,
                    &format!("{vp}.schema.openAPIV3Schema"),
                    status,
                ));
            }
        }
        if !shared_subresources {
            errs.extend(validate_subresources(
                v.get("subresources"),
                &format!("{vp}.subresources"),
            ));
        }
        if !shared_columns {
            errs.extend(validate_columns(
                v.get("additionalPrinterColumns"),
                &format!("{vp}.additionalPrinterColumns"),
            ));
        }
    }
    let versions_value = crd
        .pointer("/spec/versions")
        .cloned()
        .unwrap_or(Value::Null);
    if !unique {
        errs.push(FieldError::invalid(
            "spec.versions",
            &versions_value,
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &versions_value,
            "must have exactly one version marked as storage version",
        ));
    }

    // names
    for (field, v) in [
        ("plural", plural),
        ("singular", s(crd, "/spec/names/singular")),
        ("kind", s(crd, "/spec/names/kind")),
        ("listKind", s(crd, "/spec/names/listKind")),
    ] {
        if v.is_empty() {
            errs.push(FieldError::required(format!("spec.names.{field}"), ""));
        }
    }
    errs.extend(validate_names(
        crd.pointer("/spec/names").unwrap_or(&Value::Null),
        "spec.names",
    ));

    if shared_schema {
        if let Some(sc) = versions[0]
            .pointer("/schema/openAPIV3Schema")
            .filter(|x| !x.is_null())
        {
            // upstream: the status subresource of any version restricts the shared root
            let status = versions.iter().any(status_enabled);
            errs.extend(validate_schema(
                sc,
                "spec.validation.openAPIV3Schema",
                status,
            ));
        }
    }
    if shared_subresources {
        errs.extend(validate_subresources(
            versions[0].get("subresources"),
            "spec.subresources",
        ));
    }
    if shared_columns {
        errs.extend(validate_columns(
            versions[0].get("additionalPrinterColumns"),
            "spec.additionalPrinterColumns",
        ));
    }

    errs.extend(validate_conversion(crd.pointer("/spec/conversion")));
    errs.extend(validate_api_approval(crd, group));
    if crd.pointer("/spec/preserveUnknownFields") == Some(&Value::Bool(true)) {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            &json!(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    errs
}

fn status_enabled(version: &Value) -> bool {
    version
        .pointer("/subresources/status")
        .is_some_and(|s| !s.is_null())
}

fn validate_names(names: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for field in ["plural", "singular"] {
        let v = s(names, &format!("/{field}"));
        let e = is_dns1035_label(v);
        if !v.is_empty() && !e.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.{field}"),
                &json!(v),
                e.join(","),
            ));
        }
    }
    for field in ["kind", "listKind"] {
        let v = s(names, &format!("/{field}"));
        let e = is_dns1035_label(&v.to_lowercase());
        if !v.is_empty() && !e.is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.{field}"),
                &json!(v),
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    e.join(",")
                ),
            ));
        }
    }
    for field in ["shortNames", "categories"] {
        if let Some(list) = names.get(field).and_then(Value::as_array) {
            for (i, x) in list.iter().enumerate() {
                let x = x.as_str().unwrap_or("");
                let e = is_dns1035_label(x);
                if !e.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("{path}.{field}[{i}]"),
                        &json!(x),
                        e.join(","),
                    ));
                }
            }
        }
    }
    let kind = s(names, "/kind");
    if !kind.is_empty() && kind == s(names, "/listKind") {
        errs.push(FieldError::invalid(
            format!("{path}.listKind"),
            &json!(kind),
            "kind and listKind may not be the same",
        ));
    }
    errs
}

/// upstream's `validateSimpleJSONPath`
fn simple_json_path(p: &str, field: &str) -> Vec<FieldError> {
    if p.is_empty() {
        vec![FieldError::invalid(field, &json!(p), "must not be empty")]
    } else if !p.starts_with('.') {
        vec![FieldError::invalid(
            field,
            &json!(p),
            "must be a simple json path starting with .",
        )]
    } else {
        Vec::new()
    }
}

fn validate_subresources(sub: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(scale) = sub.and_then(|x| x.get("scale")).filter(|x| !x.is_null()) else {
        return errs;
    };
    for (field, prefix, what) in [
        (
            "specReplicasPath",
            ".spec.",
            "should be a json path under .spec",
        ),
        (
            "statusReplicasPath",
            ".status.",
            "should be a json path under .status",
        ),
    ] {
        let fp = format!("{path}.scale.{field}");
        let v = s(scale, &format!("/{field}"));
        if v.is_empty() {
            errs.push(FieldError::required(fp, ""));
            continue;
        }
        let e = simple_json_path(v, &fp);
        if !e.is_empty() {
            errs.extend(e);
        } else if !v.starts_with(prefix) {
            errs.push(FieldError::invalid(fp, &json!(v), what));
        }
    }
    let sel = s(scale, "/labelSelectorPath");
    if !sel.is_empty() {
        let fp = format!("{path}.scale.labelSelectorPath");
        let e = simple_json_path(sel, &fp);
        if !e.is_empty() {
            errs.extend(e);
        } else if !sel.starts_with(".spec.") && !sel.starts_with(".status.") {
            errs.push(FieldError::invalid(
                fp,
                &json!(sel),
                "should be a json path under either .spec or .status",
            ));
        }
    }
    errs
}

const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
const COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

fn validate_columns(cols: Option<&Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(cols) = cols.and_then(Value::as_array) else {
        return errs;
    };
    for (i, c) in cols.iter().enumerate() {
        let cp = format!("{path}[{i}]");
        if s(c, "/name").is_empty() {
            errs.push(FieldError::required(format!("{cp}.name"), ""));
        }
        let t = s(c, "/type");
        if t.is_empty() {
            errs.push(FieldError::required(
                format!("{cp}.type"),
                format!("must be one of {}", COLUMN_TYPES.join(",")),
            ));
        } else if !COLUMN_TYPES.contains(&t) {
            errs.push(FieldError::not_supported(
                format!("{cp}.type"),
                &json!(t),
                COLUMN_TYPES,
            ));
        }
        let f = s(c, "/format");
        if !f.is_empty() && !COLUMN_FORMATS.contains(&f) {
            errs.push(FieldError::not_supported(
                format!("{cp}.format"),
                &json!(f),
                COLUMN_FORMATS,
            ));
        }
        let jp = s(c, "/jsonPath");
        if jp.is_empty() {
            errs.push(FieldError::required(format!("{cp}.jsonPath"), ""));
        } else {
            errs.extend(simple_json_path(jp, &format!("{cp}.jsonPath")));
        }
    }
    errs
}

fn validate_conversion(conv: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(conv) = conv.filter(|c| !c.is_null()) else {
        return errs;
    };
    let strategy = s(conv, "/strategy");
    match strategy {
        "" => errs.push(FieldError::required("spec.conversion.strategy", "")),
        "None" => {
            if conv.get("webhook").is_some_and(|w| !w.is_null()) {
                errs.push(FieldError::forbidden(
                    "spec.conversion.webhook",
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => match conv.get("webhook").filter(|w| !w.is_null()) {
            None => errs.push(FieldError::required(
                "spec.conversion.webhook",
                "required when strategy is set to Webhook",
            )),
            Some(w) => {
                if w.get("clientConfig").is_none_or(Value::is_null) {
                    errs.push(FieldError::required(
                        "spec.conversion.webhook.clientConfig",
                        "required when strategy is set to Webhook",
                    ));
                }
                let versions = w.get("conversionReviewVersions").and_then(Value::as_array);
                match versions {
                    None => errs.push(FieldError::required(
                        "spec.conversion.webhook.conversionReviewVersions",
                        "",
                    )),
                    Some(list) if list.is_empty() => errs.push(FieldError::required(
                        "spec.conversion.webhook.conversionReviewVersions",
                        "",
                    )),
                    Some(list) => {
                        if !list.iter().any(|v| v == "v1" || v == "v1beta1") {
                            let vals: Vec<String> = list
                                .iter()
                                .filter_map(|v| v.as_str().map(String::from))
                                .collect();
                            errs.push(FieldError::invalid(
                                "spec.conversion.webhook.conversionReviewVersions",
                                &json!(vals),
                                "must include at least one of v1, v1beta1",
                            ));
                        }
                    }
                }
            }
        },
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            &json!(other),
            &["None", "Webhook"],
        )),
    }
    errs
}

const API_APPROVED: &str = "api-approved.kubernetes.io";

/// CRDs in the community's protected groups (`k8s.io`, `kubernetes.io` and their subdomains)
/// must carry the `api-approved.kubernetes.io` annotation: a URL, or a reason starting with
/// `unapproved`.
fn validate_api_approval(crd: &Value, group: &str) -> Vec<FieldError> {
    let protected = ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|g| group == *g || group.ends_with(&format!(".{g}")));
    if !protected {
        return Vec::new();
    }
    let field = format!("metadata.annotations[{API_APPROVED}]");
    match crd
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(API_APPROVED))
        .and_then(Value::as_str)
    {
        None => vec![FieldError::required(
            field,
            format!("protected groups must have approval annotation \"{API_APPROVED}\", see https://github.com/kubernetes/enhancements/pull/1111"),
        )],
        Some(v) if v.starts_with("unapproved") || is_request_uri(v) => Vec::new(),
        Some(v) => vec![FieldError::invalid(
            field,
            &json!(v),
            format!("protected groups must have approval annotation \"{API_APPROVED}\" with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"),
        )],
    }
}

/// Go's `url.ParseRequestURI` succeeding: an absolute URL (`scheme:...`) or an absolute path.
fn is_request_uri(v: &str) -> bool {
    if v.starts_with('/') {
        return true;
    }
    match v.split_once(':') {
        Some((scheme, _)) => {
            scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}
