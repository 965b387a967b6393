//! The OpenAPI v2 (Swagger 2.0) document served at `GET /openapi/v2`: one document for every
//! built-in and custom group-version, derived from the v3 documents (`#/definitions/` refs,
//! body parameters, `consumes`/`produces`), as JSON and as gnostic's `openapi_v2.Document`
//! protobuf, which client-go requests for kubectl's client-side validation (a `kind: List`, kinds
//! the v3 documents cannot vouch for) and its OpenAPI v2 patch metadata.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use super::crd::{custom_parts, kind_schema_v2};
use super::schema::{sort_keys, REF_PREFIX};
use super::{builtin, custom_group_versions, referenced_components, KUBERNETES_VERSION};

/// The protobuf types of gnostic's `openapi.v2` package (generated from `proto/openapi_v2.proto`).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/openapi.v2.rs"));
}

/// Prefix of every schema reference in an OpenAPI v2 document.
pub const DEFINITIONS_PREFIX: &str = "#/definitions/";

/// The media type clients ask for the protobuf form with (client-go's).
pub const PROTOBUF_MEDIA_TYPE_DEPRECATED: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The media type of the protobuf form upstream answers with.
pub const PROTOBUF_MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The serialized v2 document in both forms.
#[derive(Debug, Clone)]
pub struct V2Document {
    /// Swagger 2.0 JSON
    pub json: Vec<u8>,
    /// gnostic `openapi_v2.Document` protobuf
    pub protobuf: Vec<u8>,
    /// upper-case hex SHA-512 of `json` (upstream's ETag, shared by both forms)
    pub etag: String,
}

/// Builds the v2 document of the built-in group-versions and those the CRDs (JSON objects as
/// stored) serve. A malformed CRD's group-version is left out.
pub fn build(crds: &[Value]) -> V2Document {
    let doc = document_value(crds);
    let json = serde_json::to_vec(&doc).expect("a json value serializes");
    let protobuf = to_protobuf(&doc).encode_to_vec();
    let etag = hex::encode_upper(Sha512::digest(&json));
    V2Document {
        json,
        protobuf,
        etag,
    }
}

/// Only the JSON form of [`build`].
pub fn build_json(crds: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&document_value(crds)).expect("a json value serializes")
}

/// The v2 document as JSON.
pub fn document_value(crds: &[Value]) -> Value {
    let b = builtin();
    let mut paths = Map::new();
    for gv in b.group_versions() {
        paths.extend(b.paths(gv));
    }
    let mut own: BTreeMap<String, Value> = BTreeMap::new();
    for (g, v) in custom_group_versions(crds) {
        if b.group_versions()
            .iter()
            .any(|d| d.group == g && d.version == v)
        {
            continue;
        }
        if let Ok((p, o)) = custom_parts(&g, &v, crds, kind_schema_v2) {
            paths.extend(p);
            own.extend(o);
        }
    }
    // converted straight from the shared component schemas: no merged v3 document is built
    let mut definitions = Map::new();
    let shared = b.full_schemas();
    for (name, s) in referenced_components(&paths, &shared, &own) {
        definitions.insert(name, schema(s));
    }
    let paths = paths
        .iter()
        .map(|(p, item)| (p.clone(), path_item(item)))
        .collect();
    v2_document(paths, definitions)
}

/// Converts a whole OpenAPI v3 document to Swagger 2.0.
pub fn from_v3(v3: &Value) -> Value {
    let mut definitions = Map::new();
    if let Some(schemas) = v3.pointer("/components/schemas").and_then(Value::as_object) {
        for (name, s) in schemas {
            definitions.insert(name.clone(), schema(s));
        }
    }
    let mut paths = Map::new();
    if let Some(p) = v3.get("paths").and_then(Value::as_object) {
        for (path, item) in p {
            paths.insert(path.clone(), path_item(item));
        }
    }
    v2_document(paths, definitions)
}

fn v2_document(paths: Map<String, Value>, definitions: Map<String, Value>) -> Value {
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            }
        },
        "security": [{"BearerToken": []}],
    });
    sort_keys(&mut doc);
    doc
}

/// `#/components/schemas/X` -> `#/definitions/X`.
fn v2_ref(r: &str) -> String {
    match r.strip_prefix(REF_PREFIX) {
        Some(name) => format!("{DEFINITIONS_PREFIX}{name}"),
        None => r.to_string(),
    }
}

/// The keywords of a Swagger 2.0 schema object (vendor extensions aside).
const SCHEMA_KEYWORDS: &[&str] = &[
    "$ref",
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "additionalProperties",
    "type",
    "items",
    "allOf",
    "properties",
    "discriminator",
    "readOnly",
    "externalDocs",
    "example",
];

/// Converts one v3 schema to v2: references point into `#/definitions/`, a lone `allOf: [{$ref}]`
/// becomes the `$ref` itself (v2 allows siblings of `$ref`), alternatives (`oneOf`, `anyOf`,
/// `not`) and `nullable` do not exist in v2 (a `oneOf` of primitives admitting strings, as
/// int-or-string and Quantity, becomes `type: string`).
pub fn schema(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    if o.get("type").is_none() {
        if let Some(alts) = o.get("oneOf").and_then(Value::as_array) {
            if alts
                .iter()
                .any(|a| a.get("type").and_then(Value::as_str) == Some("string"))
                && alts.iter().all(|a| a.get("$ref").is_none())
            {
                out.insert("type".into(), "string".into());
            }
        }
    }
    for (k, child) in o {
        match k.as_str() {
            "$ref" => match child.as_str() {
                Some(r) => {
                    out.insert(k.clone(), v2_ref(r).into());
                }
                None => {
                    out.insert(k.clone(), child.clone());
                }
            },
            "allOf" => {
                let alts = child.as_array().map(Vec::as_slice).unwrap_or_default();
                match alts {
                    [one]
                        if one.get("$ref").is_some_and(Value::is_string)
                            && one.as_object().is_some_and(|m| m.len() == 1) =>
                    {
                        out.insert(
                            "$ref".into(),
                            v2_ref(one["$ref"].as_str().unwrap_or_default()).into(),
                        );
                    }
                    _ => {
                        out.insert(k.clone(), Value::Array(alts.iter().map(schema).collect()));
                    }
                }
            }
            "properties" => {
                let props = child
                    .as_object()
                    .map(|m| m.iter().map(|(n, s)| (n.clone(), schema(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" if child.is_object() => {
                out.insert(k.clone(), schema(child));
            }
            _ if k.starts_with("x-") || SCHEMA_KEYWORDS.contains(&k.as_str()) => {
                out.insert(k.clone(), child.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    let Some(o) = item.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in o {
        if k == "parameters" {
            let params = v.as_array().map(Vec::as_slice).unwrap_or_default();
            out.insert(k.clone(), params.iter().map(parameter).collect());
        } else if METHODS.contains(&k.as_str()) {
            out.insert(k.clone(), operation(v));
        } else if k.starts_with("x-") {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// A v3 query/path parameter (`schema: {type, uniqueItems}`) in v2 form (type inline).
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    for k in ["description", "in", "name"] {
        if let Some(v) = p.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if p.get("required") == Some(&Value::Bool(true)) {
        out.insert("required".into(), true.into());
    }
    if let Some(s) = p.get("schema").and_then(Value::as_object) {
        for (k, v) in s {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let Some(o) = op.as_object() else {
        return Value::Object(out);
    };
    for (k, v) in o {
        if k.starts_with("x-")
            || ["description", "operationId", "tags", "deprecated"].contains(&k.as_str())
        {
            out.insert(k.clone(), v.clone());
        }
    }
    let mut params = Vec::new();
    let mut consumes = vec![Value::from("*/*")];
    if let Some(body) = o.get("requestBody") {
        if let Some(content) = body.get("content").and_then(Value::as_object) {
            consumes = content.keys().map(|k| Value::from(k.as_str())).collect();
            if let Some(s) = content.values().find_map(|c| c.get("schema")) {
                let mut p = json!({"in": "body", "name": "body", "schema": schema(s)});
                if body.get("required") == Some(&Value::Bool(true)) {
                    p["required"] = true.into();
                }
                params.push(p);
            }
        }
    }
    if let Some(ps) = o.get("parameters").and_then(Value::as_array) {
        params.extend(ps.iter().map(parameter));
    }
    out.insert("consumes".into(), Value::Array(consumes));
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    let mut produces: Vec<Value> = Vec::new();
    let mut responses = Map::new();
    if let Some(rs) = o.get("responses").and_then(Value::as_object) {
        for (code, r) in rs {
            let mut resp = Map::new();
            if let Some(d) = r.get("description") {
                resp.insert("description".into(), d.clone());
            }
            if let Some(content) = r.get("content").and_then(Value::as_object) {
                for t in content.keys() {
                    if !produces.iter().any(|p| p == t) {
                        produces.push(t.as_str().into());
                    }
                }
                if let Some(s) = content.values().find_map(|c| c.get("schema")) {
                    resp.insert("schema".into(), schema(s));
                }
            }
            responses.insert(code.clone(), Value::Object(resp));
        }
    }
    if !produces.is_empty() {
        out.insert("produces".into(), Value::Array(produces));
    }
    out.insert("responses".into(), Value::Object(responses));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

// ---- protobuf ----

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or_default()
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or_default()
}

fn i(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or_default()
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON value as gnostic keeps it: YAML text (JSON is YAML).
fn any(v: &Value) -> pb::Any {
    pb::Any {
        value: None,
        yaml: format!("{v}\n"),
    }
}

/// Every `x-` key of an object as a vendor extension.
fn extensions(v: &Value) -> Vec<pb::NamedAny> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.starts_with("x-"))
                .map(|(k, v)| pb::NamedAny {
                    name: k.clone(),
                    value: Some(any(v)),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Converts a v2 JSON document to gnostic's protobuf form.
pub fn to_protobuf(doc: &Value) -> pb::Document {
    let info = doc.get("info").unwrap_or(&Value::Null);
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(name, item)| pb::NamedPathItem {
                    name: name.clone(),
                    value: Some(pb_path_item(item)),
                })
                .collect()
        })
        .unwrap_or_default();
    let definitions = doc
        .get("definitions")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(name, sch)| pb::NamedSchema {
                    name: name.clone(),
                    value: Some(pb_schema(sch)),
                })
                .collect()
        })
        .unwrap_or_default();
    let security_definitions = doc
        .get("securityDefinitions")
        .and_then(Value::as_object)
        .map(|m| pb::SecurityDefinitions {
            additional_properties: m
                .iter()
                .map(|(name, d)| pb::NamedSecurityDefinitionsItem {
                    name: name.clone(),
                    value: Some(pb::SecurityDefinitionsItem {
                        oneof: Some(pb::security_definitions_item::Oneof::ApiKeySecurity(
                            pb::ApiKeySecurity {
                                r#type: s(d, "type"),
                                name: s(d, "name"),
                                r#in: s(d, "in"),
                                description: s(d, "description"),
                                vendor_extension: extensions(d),
                            },
                        )),
                    }),
                })
                .collect(),
        });
    pb::Document {
        swagger: s(doc, "swagger"),
        info: Some(pb::Info {
            title: s(info, "title"),
            version: s(info, "version"),
            description: s(info, "description"),
            terms_of_service: String::new(),
            vendor_extension: extensions(info),
        }),
        host: String::new(),
        base_path: String::new(),
        schemes: strings(doc, "schemes"),
        consumes: strings(doc, "consumes"),
        produces: strings(doc, "produces"),
        paths: Some(pb::Paths {
            vendor_extension: vec![],
            path: paths,
        }),
        definitions: Some(pb::Definitions {
            additional_properties: definitions,
        }),
        security: pb_security(doc.get("security")),
        security_definitions,
        vendor_extension: extensions(doc),
    }
}

fn pb_security(v: Option<&Value>) -> Vec<pb::SecurityRequirement> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|req| pb::SecurityRequirement {
                    additional_properties: req
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(name, scopes)| pb::NamedStringArray {
                                    name: name.clone(),
                                    value: Some(pb::StringArray {
                                        value: scopes
                                            .as_array()
                                            .map(|a| {
                                                a.iter()
                                                    .filter_map(|x| x.as_str().map(String::from))
                                                    .collect()
                                            })
                                            .unwrap_or_default(),
                                    }),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pb_path_item(item: &Value) -> pb::PathItem {
    let op = |m: &str| item.get(m).map(pb_operation);
    pb::PathItem {
        r#ref: String::new(),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: pb_parameters(item.get("parameters")),
        vendor_extension: extensions(item),
    }
}

fn pb_parameters(v: Option<&Value>) -> Vec<pb::ParametersItem> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(pb_parameter).collect())
        .unwrap_or_default()
}

fn pb_parameter(p: &Value) -> pb::ParametersItem {
    use pb::non_body_parameter::Oneof as NonBody;
    let param = match p.get("in").and_then(Value::as_str) {
        Some("body") => pb::parameter::Oneof::BodyParameter(pb::BodyParameter {
            description: s(p, "description"),
            name: s(p, "name"),
            r#in: s(p, "in"),
            required: b(p, "required"),
            schema: p.get("schema").map(pb_schema),
            vendor_extension: extensions(p),
        }),
        Some("path") => pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(NonBody::PathParameterSubSchema(
                pb::PathParameterSubSchema {
                    required: b(p, "required"),
                    r#in: s(p, "in"),
                    description: s(p, "description"),
                    name: s(p, "name"),
                    r#type: s(p, "type"),
                    format: s(p, "format"),
                    unique_items: b(p, "uniqueItems"),
                    vendor_extension: extensions(p),
                },
            )),
        }),
        Some("header") => pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(NonBody::HeaderParameterSubSchema(
                pb::HeaderParameterSubSchema {
                    required: b(p, "required"),
                    r#in: s(p, "in"),
                    description: s(p, "description"),
                    name: s(p, "name"),
                    r#type: s(p, "type"),
                    format: s(p, "format"),
                    unique_items: b(p, "uniqueItems"),
                    vendor_extension: extensions(p),
                },
            )),
        }),
        _ => pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(NonBody::QueryParameterSubSchema(
                pb::QueryParameterSubSchema {
                    required: b(p, "required"),
                    r#in: s(p, "in"),
                    description: s(p, "description"),
                    name: s(p, "name"),
                    allow_empty_value: b(p, "allowEmptyValue"),
                    r#type: s(p, "type"),
                    format: s(p, "format"),
                    unique_items: b(p, "uniqueItems"),
                    vendor_extension: extensions(p),
                },
            )),
        }),
    };
    pb::ParametersItem {
        oneof: Some(pb::parameters_item::Oneof::Parameter(pb::Parameter {
            oneof: Some(param),
        })),
    }
}

fn pb_operation(op: &Value) -> pb::Operation {
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(code, r)| pb::NamedResponseValue {
                    name: code.clone(),
                    value: Some(pb::ResponseValue {
                        oneof: Some(pb::response_value::Oneof::Response(pb::Response {
                            description: s(r, "description"),
                            schema: r.get("schema").map(|sch| pb::SchemaItem {
                                oneof: Some(pb::schema_item::Oneof::Schema(pb_schema(sch))),
                            }),
                            vendor_extension: extensions(r),
                        })),
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    pb::Operation {
        tags: strings(op, "tags"),
        summary: s(op, "summary"),
        description: s(op, "description"),
        external_docs: None,
        operation_id: s(op, "operationId"),
        produces: strings(op, "produces"),
        consumes: strings(op, "consumes"),
        parameters: pb_parameters(op.get("parameters")),
        responses: Some(pb::Responses {
            response_code: responses,
            vendor_extension: vec![],
        }),
        schemes: strings(op, "schemes"),
        deprecated: b(op, "deprecated"),
        security: pb_security(op.get("security")),
        vendor_extension: extensions(op),
    }
}

/// One v2 JSON schema as gnostic's `Schema` message.
pub fn pb_schema(v: &Value) -> pb::Schema {
    let additional_properties = match v.get("additionalProperties") {
        Some(Value::Bool(x)) => Some(pb::AdditionalPropertiesItem {
            oneof: Some(pb::additional_properties_item::Oneof::Boolean(*x)),
        }),
        Some(sch @ Value::Object(_)) => Some(pb::AdditionalPropertiesItem {
            oneof: Some(pb::additional_properties_item::Oneof::Schema(Box::new(
                pb_schema(sch),
            ))),
        }),
        _ => None,
    };
    let r#type = match v.get("type") {
        Some(Value::String(t)) => Some(pb::TypeItem {
            value: vec![t.clone()],
        }),
        Some(Value::Array(ts)) => Some(pb::TypeItem {
            value: ts
                .iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        }),
        _ => None,
    };
    let items = match v.get("items") {
        Some(sch @ Value::Object(_)) => Some(pb::ItemsItem {
            schema: vec![pb_schema(sch)],
        }),
        Some(Value::Array(a)) => Some(pb::ItemsItem {
            schema: a.iter().map(pb_schema).collect(),
        }),
        _ => None,
    };
    let properties = v
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| pb::Properties {
            additional_properties: m
                .iter()
                .map(|(name, sch)| pb::NamedSchema {
                    name: name.clone(),
                    value: Some(pb_schema(sch)),
                })
                .collect(),
        });
    pb::Schema {
        r#ref: s(v, "$ref"),
        format: s(v, "format"),
        title: s(v, "title"),
        description: s(v, "description"),
        default: v.get("default").map(any),
        multiple_of: f(v, "multipleOf"),
        maximum: f(v, "maximum"),
        exclusive_maximum: b(v, "exclusiveMaximum"),
        minimum: f(v, "minimum"),
        exclusive_minimum: b(v, "exclusiveMinimum"),
        max_length: i(v, "maxLength"),
        min_length: i(v, "minLength"),
        pattern: s(v, "pattern"),
        max_items: i(v, "maxItems"),
        min_items: i(v, "minItems"),
        unique_items: b(v, "uniqueItems"),
        max_properties: i(v, "maxProperties"),
        min_properties: i(v, "minProperties"),
        required: strings(v, "required"),
        r#enum: v
            .get("enum")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(any).collect())
            .unwrap_or_default(),
        additional_properties: additional_properties.map(Box::new),
        r#type,
        items,
        all_of: v
            .get("allOf")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(pb_schema).collect())
            .unwrap_or_default(),
        properties,
        discriminator: s(v, "discriminator"),
        read_only: b(v, "readOnly"),
        external_docs: None,
        example: v.get("example").map(any),
        vendor_extension: extensions(v),
    }
}

#[cfg(test)]
mod tests;
