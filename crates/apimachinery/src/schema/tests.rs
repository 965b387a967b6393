//! Table-driven tests of the schema module: unknown and duplicate fields of built-in kinds,
//! CRD validation, custom resource pruning, defaulting and validation.

use serde_json::{json, Value};

use super::*;
use crate::status::CauseType;

fn msgs(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::full_message).collect()
}

// ---------------------------------------------------------------- built-in unknown fields

#[test]
fn prune_unknown_builtin_kinds() {
    struct Case {
        name: &'static str,
        gvk: (&'static str, &'static str, &'static str),
        obj: Value,
        unknown: &'static [&'static str],
        kept: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "deployment: nested container field, metadata and status are pruned, labels kept",
            gvk: ("apps", "v1", "Deployment"),
            obj: json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"any-key": "x", "app": "web"}, "bogus": 1},
                "spec": {
                    "replica": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [
                            {"name": "a", "image": "nginx"},
                            {"name": "b", "image": "nginx", "imagex": "typo", "ports": [{"containerPort": 80, "hostIp": "x"}]}
                        ]}
                    }
                },
                "status": {"replicas": 1, "whatever": true}
            }),
            unknown: &[
                "metadata.bogus",
                "spec.replica",
                "spec.template.spec.containers[1].imagex",
                "spec.template.spec.containers[1].ports[0].hostIp",
                "status.whatever",
            ],
            kept: &["/metadata/labels/any-key", "/spec/template/spec/containers/1/ports/0/containerPort", "/status/replicas"],
        },
        Case {
            name: "configmap: data keys are a map, unknown root field",
            gvk: ("", "v1", "ConfigMap"),
            obj: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"a/b": "c"}},
                        "data": {"anything": "goes", "x.y": "z"}, "foo": "bar"}),
            unknown: &["foo"],
            kept: &["/data/anything", "/data/x.y", "/metadata/annotations/a~1b"],
        },
        Case {
            name: "controllerrevision: RawExtension data keeps everything",
            gvk: ("apps", "v1", "ControllerRevision"),
            obj: json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
                        "revision": 1, "data": {"spec": {"template": {"whatever": [1, {"x": 2}]}}}}),
            unknown: &[],
            kept: &["/data/spec/template/whatever/1/x"],
        },
        Case {
            name: "managedFields fieldsV1 is free-form",
            gvk: ("", "v1", "ConfigMap"),
            obj: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}, "extra": 1}
            ]}}),
            unknown: &["metadata.managedFields[0].extra"],
            kept: &["/metadata/managedFields/0/fieldsV1/f:data/f:a"],
        },
        Case {
            name: "crd: JSONSchemaProps recursion, $ref and x-kubernetes-* properties, JSON defaults",
            gvk: ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            obj: json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "crontabs.stable.example.com"},
                "spec": {"group": "stable.example.com", "scope": "Namespaced",
                    "names": {"plural": "crontabs", "kind": "CronTab"},
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                        "type": "object", "bogus": true,
                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"n": {"type": "integer", "default": {"any": ["json"]}, "typo": 1}}}}
                    }}, "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.n", "statusReplicasPath": ".status.n", "x": 1}}}]}}),
            unknown: &[
                "spec.versions[0].schema.openAPIV3Schema.bogus",
                "spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.n.typo",
                "spec.versions[0].subresources.scale.x",
            ],
            kept: &[
                "/spec/versions/0/schema/openAPIV3Schema/properties/spec/x-kubernetes-preserve-unknown-fields",
                "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/n/default/any/0",
                "/spec/versions/0/subresources/status",
            ],
        },
        Case {
            name: "unknown kind is untouched",
            gvk: ("example.com", "v1", "Widget"),
            obj: json!({"spec": {"anything": 1}}),
            unknown: &[],
            kept: &["/spec/anything"],
        },
    ];
    for c in cases {
        let mut obj = c.obj.clone();
        let got = prune_unknown(c.gvk.0, c.gvk.1, c.gvk.2, &mut obj);
        assert_eq!(got, c.unknown, "{}", c.name);
        for k in c.kept {
            assert!(
                obj.pointer(k).is_some(),
                "{}: {k} was dropped: {obj}",
                c.name
            );
        }
        for path in c.unknown {
            let pointer = format!("/{}", path.replace(['.', '['], "/").replace(']', ""));
            assert!(
                obj.pointer(&pointer).is_none(),
                "{}: {path} still present",
                c.name
            );
        }
        // pruning is idempotent: nothing is left to report
        assert!(
            prune_unknown(c.gvk.0, c.gvk.1, c.gvk.2, &mut obj).is_empty(),
            "{}",
            c.name
        );
    }
    assert!(is_builtin_kind("apps", "v1", "Deployment"));
    assert!(!is_builtin_kind("example.com", "v1", "Widget"));
}

#[test]
fn the_crd_openapi_document_keeps_ref_and_allof_properties() {
    let b = crate::openapi::builtin();
    let props = &b.schemas()
        ["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]["properties"];
    assert_eq!(props["$ref"]["type"], "string");
    assert_eq!(props["allOf"]["type"], "array");
}

#[test]
fn duplicate_fields_json_and_yaml() {
    let cases: &[(&str, &[u8], &[&str])] = &[
        ("none", br#"{"a":1,"b":{"c":[{"d":1}]}}"#, &[]),
        (
            "nested in object and list item",
            br#"{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"image":"x"},{"image":"x","image":"y"}]}}"#,
            &["metadata.name", "spec.containers[1].image"],
        ),
        ("root, reported once", br#"{"kind":"A","kind":"B","kind":"C"}"#, &["kind"]),
        ("map keys", br#"{"data":{"k":"1","k":"2"}}"#, &["data.k"]),
        ("invalid json: what was seen before the error", br#"{"a":1,"a":2,"#, &["a"]),
    ];
    for (name, body, want) in cases {
        assert_eq!(duplicate_fields(body), *want, "{name}");
    }
    let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\ndata:\n  x: '1'\nlist:\n- a: 1\n  a: 2\n";
    assert_eq!(
        duplicate_fields_yaml(yaml),
        vec!["metadata.name", "list[0].a"]
    );
    assert!(duplicate_fields_yaml(b"a: 1\nb: {c: 2}\n").is_empty());
}

#[test]
fn strict_messages_and_directive() {
    let errs = vec![
        unknown_field_message("spec.replica"),
        duplicate_field_message("metadata.name"),
        unknown_field_message("spec.replica"),
    ];
    assert_eq!(
        strict_bad_request_message("Deployment", "v1", &errs),
        r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica", duplicate field "metadata.name""#
    );
    assert_eq!(unknown_field_message(r#"a"b"#), r#"unknown field "a\"b""#);
    let many: Vec<String> = (0..150)
        .map(|i| unknown_field_message(&format!("f{i}")))
        .collect();
    assert_eq!(
        strict_decoding_error(&many)
            .matches("unknown field")
            .count(),
        MAX_STRICT_ERRORS
    );
    for (v, want) in [
        (None, Ok(FieldValidation::Warn)),
        (Some(""), Ok(FieldValidation::Warn)),
        (Some("Strict"), Ok(FieldValidation::Strict)),
        (Some("Ignore"), Ok(FieldValidation::Ignore)),
        (
            Some("strict"),
            Err(SchemaError::InvalidDirective("strict".into())),
        ),
    ] {
        assert_eq!(FieldValidation::parse(v), want, "{v:?}");
    }
    assert_eq!(
        FieldValidation::unsupported_error("x").full_message(),
        r#"fieldValidation: Unsupported value: "x": supported values: "", "Ignore", "Strict", "Warn""#
    );
}

// ---------------------------------------------------------------- custom resources

fn cr_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer", "default": 1},
                    "mode": {"type": "string", "enum": ["a", "b"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                    "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                               "properties": {"strict": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                 "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                    "free": {"type": "object", "additionalProperties": true}
                }
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }
    })
}

#[test]
fn prune_custom_resources() {
    let mut obj = json!({
        "apiVersion": "stable.example.com/v1", "kind": "CronTab",
        "metadata": {"name": "c", "labels": {"a": "b"}, "bogus": 1},
        "extra": true,
        "spec": {
            "replicas": 2, "foo": "bar",
            "labels": {"any": "thing"},
            "items": [{"name": "a"}, {"name": "b", "bar": 1}],
            "config": {"anything": {"deep": 1}, "strict": {"a": "x", "b": "y"}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "nope": 1},
                         "spec": {"x": "1", "y": "2"}, "other": 1},
            "free": {"scalar": 1, "obj": {"inner": 1}}
        },
        "status": {"ready": true, "phase": "x"}
    });
    let got = prune_custom(&cr_schema(), &mut obj);
    assert_eq!(
        got,
        vec![
            "extra",
            "spec.config.strict.b",
            "spec.foo",
            "spec.free.obj.inner",
            "spec.items[1].bar",
            "spec.template.metadata.nope",
            "spec.template.other",
            "spec.template.spec.y",
            "status.phase",
            "metadata.bogus",
        ]
    );
    for kept in [
        "/apiVersion",
        "/kind",
        "/metadata/labels/a",
        "/spec/labels/any",
        "/spec/config/anything/deep",
        "/spec/config/strict/a",
        "/spec/template/apiVersion",
        "/spec/template/metadata/name",
        "/spec/free/scalar",
        "/spec/free/obj",
        "/status/ready",
    ] {
        assert!(obj.pointer(kept).is_some(), "{kept} dropped: {obj}");
    }
    assert!(prune_custom(&cr_schema(), &mut obj).is_empty());
}

#[test]
fn default_custom_resources() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "default": {}, "properties": {
            "replicas": {"type": "integer", "default": 1},
            "strategy": {"type": "object", "default": {"type": "Rolling"}, "properties": {
                "type": {"type": "string"},
                "max": {"type": "integer", "default": 25}
            }},
            "name": {"type": "string", "default": "x"},
            "nullable": {"type": "string", "nullable": true, "default": "d"},
            "ports": {"type": "array", "items": {"type": "object", "default": {"port": 80},
                      "properties": {"port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}},
            "tags": {"type": "object", "additionalProperties": {"type": "string", "default": "t"}}
        }}
    }});
    let cases = [
        (
            "empty object gets every default, recursively",
            json!({}),
            json!({"spec": {"replicas": 1, "strategy": {"type": "Rolling", "max": 25}, "name": "x", "nullable": "d"}}),
        ),
        (
            "existing values are kept, null replaced unless nullable",
            json!({"spec": {"replicas": 3, "name": null, "nullable": null, "strategy": {"type": "Recreate"}}}),
            json!({"spec": {"replicas": 3, "name": "x", "nullable": null, "strategy": {"type": "Recreate", "max": 25}}}),
        ),
        (
            "list items and map values",
            json!({"spec": {"ports": [{"port": 1}, null], "tags": {"a": null, "b": "c"}}}),
            json!({"spec": {"ports": [{"port": 1, "protocol": "TCP"}, {"port": 80, "protocol": "TCP"}],
                         "tags": {"a": "t", "b": "c"}, "replicas": 1, "strategy": {"type": "Rolling", "max": 25},
                         "name": "x", "nullable": "d"}}),
        ),
    ];
    for (name, mut obj, want) in cases {
        default_custom(&schema, &mut obj);
        assert_eq!(obj, want, "{name}");
    }
}

#[test]
fn prune_nulls_of_custom_resources() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "string", "nullable": true}, "c": {"type": "string", "default": "x"},
        "m": {"type": "object", "additionalProperties": {"type": "string"}}
    }}}});
    let mut obj = json!({"spec": {"a": null, "b": null, "c": null, "m": {"k": null, "j": "v"}, "unknown": null}});
    prune_nulls_custom(&schema, &mut obj);
    assert_eq!(
        obj,
        json!({"spec": {"b": null, "c": null, "m": {"j": "v"}, "unknown": null}})
    );
}

#[test]
fn validate_custom_resources() {
    let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
        (
            "type integer",
            json!({"type": "integer"}),
            json!("three"),
            vec![
                r#"spec.v: Invalid value: "string": spec.v in body must be of type integer: "string""#,
            ],
        ),
        (
            "integer accepts 3.0, number accepts 3",
            json!({"type": "integer"}),
            json!(3.0),
            vec![],
        ),
        ("number", json!({"type": "number"}), json!(3), vec![]),
        (
            "boolean",
            json!({"type": "boolean"}),
            json!(1),
            vec![
                r#"spec.v: Invalid value: "integer": spec.v in body must be of type boolean: "integer""#,
            ],
        ),
        (
            "object",
            json!({"type": "object"}),
            json!([1]),
            vec![
                r#"spec.v: Invalid value: "array": spec.v in body must be of type object: "array""#,
            ],
        ),
        (
            "null not nullable",
            json!({"type": "string"}),
            Value::Null,
            vec![r#"spec.v: Invalid value: "null": spec.v in body must be of type string: "null""#],
        ),
        (
            "null nullable",
            json!({"type": "string", "nullable": true}),
            Value::Null,
            vec![],
        ),
        (
            "enum",
            json!({"type": "string", "enum": ["a", "b"]}),
            json!("x"),
            vec![r#"spec.v: Unsupported value: "x": supported values: "a", "b""#],
        ),
        (
            "enum of numbers",
            json!({"type": "integer", "enum": [1, 2]}),
            json!(3),
            vec![r#"spec.v: Unsupported value: 3: supported values: "1", "2""#],
        ),
        (
            "minimum",
            json!({"type": "integer", "minimum": 1}),
            json!(0),
            vec!["spec.v: Invalid value: 0: spec.v in body should be greater than or equal to 1"],
        ),
        (
            "exclusiveMinimum",
            json!({"type": "number", "minimum": 0.5, "exclusiveMinimum": true}),
            json!(0.5),
            vec!["spec.v: Invalid value: 0.5: spec.v in body should be greater than 0.5"],
        ),
        (
            "maximum",
            json!({"type": "integer", "maximum": 10}),
            json!(11),
            vec!["spec.v: Invalid value: 11: spec.v in body should be less than or equal to 10"],
        ),
        (
            "exclusiveMaximum",
            json!({"type": "integer", "maximum": 10, "exclusiveMaximum": true}),
            json!(10),
            vec!["spec.v: Invalid value: 10: spec.v in body should be less than 10"],
        ),
        (
            "multipleOf",
            json!({"type": "integer", "multipleOf": 5}),
            json!(12),
            vec!["spec.v: Invalid value: 12: spec.v in body should be a multiple of 5"],
        ),
        (
            "maxLength counts characters",
            json!({"type": "string", "maxLength": 3}),
            json!("abcd"),
            vec!["spec.v: Too long: may not be longer than 3"],
        ),
        (
            "maxLength ok",
            json!({"type": "string", "maxLength": 3}),
            json!("äöü"),
            vec![],
        ),
        (
            "minLength",
            json!({"type": "string", "minLength": 2}),
            json!("a"),
            vec![r#"spec.v: Invalid value: "a": spec.v in body should be at least 2 chars long"#],
        ),
        (
            "pattern",
            json!({"type": "string", "pattern": "^[a-z]+$"}),
            json!("ABC"),
            vec![r#"spec.v: Invalid value: "ABC": spec.v in body should match '^[a-z]+$'"#],
        ),
        (
            "minItems",
            json!({"type": "array", "items": {"type": "string"}, "minItems": 2}),
            json!(["a"]),
            vec!["spec.v: Invalid value: 1: spec.v in body should have at least 2 items"],
        ),
        (
            "maxItems",
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 2}),
            json!(["a", "b", "c"]),
            vec!["spec.v: Too many: 3: must have at most 2 items"],
        ),
        (
            "uniqueItems",
            json!({"type": "array", "items": {"type": "integer"}, "uniqueItems": true}),
            json!([1, 1]),
            vec![r#"spec.v: Invalid value: "": spec.v in body shouldn't contain duplicates"#],
        ),
        (
            "maxProperties",
            json!({"type": "object", "maxProperties": 1}),
            json!({"a": 1, "b": 2}),
            vec!["spec.v: Too many: 2: must have at most 1 items"],
        ),
        (
            "minProperties",
            json!({"type": "object", "minProperties": 2}),
            json!({"a": 1}),
            vec![
                r#"spec.v: Invalid value: {"a":1}: spec.v in body should have at least 2 properties"#,
            ],
        ),
        (
            "required and nested item paths",
            json!({"type": "object", "required": ["size"], "properties": {"items": {"type": "array", "items": {"type": "object", "required": ["name"]}}}}),
            json!({"items": [{"name": "a"}, {}]}),
            vec![
                "spec.v.size: Required value",
                "spec.v.items[1].name: Required value",
            ],
        ),
        (
            "additionalProperties schema",
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
            json!({"k": 1}),
            vec![
                r#"spec.v.k: Invalid value: "integer": spec.v.k in body must be of type string: "integer""#,
            ],
        ),
        (
            "date-time",
            json!({"type": "string", "format": "date-time"}),
            json!("yesterday"),
            vec![
                r#"spec.v: Invalid value: "yesterday": spec.v in body must be of type date-time: "yesterday""#,
            ],
        ),
        (
            "date-time ok",
            json!({"type": "string", "format": "date-time"}),
            json!("2024-02-29T10:00:00.5+02:00"),
            vec![],
        ),
        (
            "date",
            json!({"type": "string", "format": "date"}),
            json!("2023-02-29"),
            vec![
                r#"spec.v: Invalid value: "2023-02-29": spec.v in body must be of type date: "2023-02-29""#,
            ],
        ),
        (
            "byte",
            json!({"type": "string", "format": "byte"}),
            json!("not base64!"),
            vec![
                r#"spec.v: Invalid value: "not base64!": spec.v in body must be of type byte: "not base64!""#,
            ],
        ),
        (
            "byte ok",
            json!({"type": "string", "format": "byte"}),
            json!("aGVsbG8="),
            vec![],
        ),
        (
            "ipv4 / cidr / uuid ok",
            json!({"type": "array", "items": {"type": "string", "format": "cidr"}}),
            json!(["10.0.0.0/8", "::1/128"]),
            vec![],
        ),
        (
            "uuid",
            json!({"type": "string", "format": "uuid"}),
            json!("nope"),
            vec![r#"spec.v: Invalid value: "nope": spec.v in body must be of type uuid: "nope""#],
        ),
        (
            "int32 format is not range checked (as upstream)",
            json!({"type": "integer", "format": "int32"}),
            json!(9999999999i64),
            vec![],
        ),
        (
            "unknown format ignored",
            json!({"type": "string", "format": "color"}),
            json!("x"),
            vec![],
        ),
        (
            "int-or-string",
            json!({"x-kubernetes-int-or-string": true}),
            json!(true),
            vec![
                r#"spec.v: Invalid value: "boolean": spec.v in body must be of type integer,string: "boolean""#,
            ],
        ),
        (
            "int-or-string ok",
            json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
            json!("25%"),
            vec![],
        ),
        (
            "list-type set",
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}),
            json!(["a", "b", "a"]),
            vec![r#"spec.v[2]: Duplicate value: "a""#],
        ),
        (
            "list-type map",
            json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}),
            json!([{"name": "http", "port": 80}, {"name": "http", "port": 81}, {"name": "https"}]),
            vec![r#"spec.v[1]: Duplicate value: map[string]interface {}{"name":"http"}"#],
        ),
        (
            "anyOf",
            json!({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}),
            json!("x"),
            vec![
                r#"spec.v: Invalid value: "x": spec.v in body must validate at least one schema (anyOf)"#,
            ],
        ),
        (
            "embedded resource needs apiVersion and kind",
            json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}),
            json!({"kind": "Not_A_Kind", "spec": {}}),
            vec![
                "spec.v.apiVersion: Required value: must not be empty",
                r#"spec.v.kind: Invalid value: "Not_A_Kind": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            ],
        ),
        (
            "embedded resource ok",
            json!({"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            vec![],
        ),
        (
            "preserve-unknown-fields without type accepts anything",
            json!({"x-kubernetes-preserve-unknown-fields": true}),
            json!([1, "a"]),
            vec![],
        ),
    ];
    for (name, schema, value, want) in cases {
        let root = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"v": schema}}}});
        let errs = validate_custom(&root, &json!({"spec": {"v": value}}));
        assert_eq!(msgs(&errs), want, "{name}");
    }
    // causes carry upstream's reasons
    let errs = validate_custom(
        &json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
        &json!({"n": "x"}),
    );
    assert_eq!(errs[0].kind, CauseType::TypeInvalid);
    assert_eq!(errs[0].kind.reason(), "FieldValueTypeInvalid");
    let root_errs = validate_custom(&json!({"type": "object"}), &json!("x"));
    assert_eq!(
        msgs(&root_errs),
        vec![r#": Invalid value: "string": in body must be of type object: "string""#]
    );
}

// ---------------------------------------------------------------- CustomResourceDefinitions

fn base_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "listKind": "CronTabList", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {"type": "object", "properties": {
                            "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                            "replicas": {"type": "integer", "minimum": 1, "default": 1},
                            "port": {"x-kubernetes-int-or-string": true},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                                      "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
                            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
                        }},
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
                    }
                }},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}]
            }],
            "conversion": {"strategy": "None"}
        }
    })
}

fn schema_at(crd: &mut Value) -> &mut Value {
    crd.pointer_mut("/spec/versions/0/schema/openAPIV3Schema")
        .unwrap()
}

#[test]
fn valid_crd_has_no_errors() {
    assert_eq!(msgs(&validate_crd(&base_crd())), Vec::<String>::new());
    let mut two = base_crd();
    let mut v2 = two["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    v2["storage"] = json!(false);
    two["spec"]["versions"].as_array_mut().unwrap().push(v2);
    assert_eq!(msgs(&validate_crd(&two)), Vec::<String>::new());
}

#[test]
fn crd_validation_rules() {
    type Mutate = fn(&mut Value);
    let cases: Vec<(&str, Mutate, &str)> = vec![
        ("name must be plural.group", |c| c["metadata"]["name"] = json!("foo.stable.example.com"),
         r#"metadata.name: Invalid value: "foo.stable.example.com": must be spec.names.plural+"."+spec.group"#),
        ("name required", |c| c["metadata"] = json!({}), "metadata.name: Required value: name or generateName is required"),
        ("group needs a dot", |c| { c["spec"]["group"] = json!("example"); c["metadata"]["name"] = json!("crontabs.example"); },
         r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#),
        ("group required", |c| c["spec"]["group"] = json!(""), "spec.group: Required value"),
        ("scope enum", |c| c["spec"]["scope"] = json!("Global"),
         r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#),
        ("scope required", |c| { c["spec"].as_object_mut().unwrap().remove("scope"); }, "spec.scope: Required value"),
        ("at least one version", |c| c["spec"]["versions"] = json!([]),
         "spec.versions: Invalid value: []: must have exactly one version marked as storage version"),
        ("exactly one storage version", |c| c["spec"]["versions"][0]["storage"] = json!(false),
         "must have exactly one version marked as storage version"),
        ("version names unique", |c| { let v = c["spec"]["versions"][0].clone(); let mut v2 = v.clone(); v2["storage"] = json!(false); c["spec"]["versions"] = json!([v, v2]); },
         "must contain unique version names"),
        ("version name is a DNS-1035 label", |c| c["spec"]["versions"][0]["name"] = json!("V1"),
         r#"spec.versions[0].name: Invalid value: "V1": a DNS-1035 label must consist of lower case alphanumeric characters"#),
        ("schema required", |c| { c["spec"]["versions"][0].as_object_mut().unwrap().remove("schema"); },
         "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"),
        ("plural", |c| c["spec"]["names"]["plural"] = json!("Crons"), r#"spec.names.plural: Invalid value: "Crons": a DNS-1035 label"#),
        ("kind may have mixed case only", |c| c["spec"]["names"]["kind"] = json!("Cron_Tab"),
         r#"spec.names.kind: Invalid value: "Cron_Tab": may have mixed case, but should otherwise match: a DNS-1035 label"#),
        ("kind and listKind differ", |c| c["spec"]["names"]["listKind"] = json!("CronTab"),
         r#"spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same"#),
        ("singular required", |c| c["spec"]["names"]["singular"] = json!(""), "spec.names.singular: Required value"),
        ("shortNames", |c| c["spec"]["names"]["shortNames"] = json!(["ok", "Not_OK"]), r#"spec.names.shortNames[1]: Invalid value: "Not_OK""#),
        ("property without type", |c| schema_at(c)["properties"]["spec"]["properties"]["foo"] = json!({"description": "x"}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[foo].type: Required value: must not be empty for specified object fields"),
        ("array items without type", |c| schema_at(c)["properties"]["spec"]["properties"]["l"] = json!({"type": "array", "items": {}}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[l].items.type: Required value: must not be empty for specified array items"),
        ("array without items", |c| schema_at(c)["properties"]["spec"]["properties"]["l"] = json!({"type": "array"}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[l].items: Required value: must be specified"),
        ("root must be object", |c| schema_at(c)["type"] = json!("string"),
         r#"spec.validation.openAPIV3Schema.type: Invalid value: "string": must be object at the root"#),
        ("properties with additionalProperties", |c| schema_at(c)["properties"]["spec"]["additionalProperties"] = json!({"type": "string"}),
         "spec.validation.openAPIV3Schema.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"),
        ("metadata restrictions", |c| schema_at(c)["properties"]["metadata"] = json!({"type": "object", "properties": {"labels": {"type": "object"}}}),
         "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"),
        ("metadata must be an object", |c| schema_at(c)["properties"]["metadata"] = json!({"type": "string"}),
         r#"spec.validation.openAPIV3Schema.properties[metadata].type: Invalid value: "string": must be object"#),
        ("kind must be string", |c| schema_at(c)["properties"]["kind"] = json!({"type": "integer"}),
         r#"spec.validation.openAPIV3Schema.properties[kind].type: Invalid value: "integer": must be string"#),
        ("$ref", |c| schema_at(c)["properties"]["spec"]["properties"]["r"] = json!({"$ref": "#/definitions/x"}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[r].$ref: Forbidden: $ref is not supported"),
        ("uniqueItems", |c| schema_at(c)["properties"]["spec"]["properties"]["u"] = json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[u].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"),
        ("preserve-unknown-fields false", |c| schema_at(c)["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"] = json!(false),
         "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"),
        ("type null", |c| schema_at(c)["properties"]["spec"]["properties"]["n"] = json!({"type": "null"}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[n].type: Forbidden: type cannot be set to null, use nullable as an alternative"),
        ("embedded resource must be object", |c| schema_at(c)["properties"]["spec"]["properties"]["e"] = json!({"x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[e].type: Required value: must be object if x-kubernetes-embedded-resource is true"),
        ("embedded resource needs properties or preserve", |c| schema_at(c)["properties"]["spec"]["properties"]["e"] = json!({"type": "object", "x-kubernetes-embedded-resource": true}),
         "spec.validation.openAPIV3Schema.properties[spec].properties[e].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"),
        ("int-or-string and preserve", |c| schema_at(c)["properties"]["spec"]["properties"]["port"]["x-kubernetes-preserve-unknown-fields"] = json!(true),
         "spec.validation.openAPIV3Schema.properties[spec].properties[port].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"),
        ("types inside value validations", |c| schema_at(c)["properties"]["spec"]["properties"]["cronSpec"]["anyOf"] = json!([{"type": "string"}, {"description": "d"}]),
         "spec.validation.openAPIV3Schema.properties[spec].properties[cronSpec].anyOf[0].type: Forbidden: must be empty to be structural"),
        ("metadata in nested context", |c| schema_at(c)["properties"]["spec"]["allOf"] = json!([{"properties": {"metadata": {}}}]),
         "spec.validation.openAPIV3Schema.properties[spec].allOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"),
        ("value validations only mention specified fields", |c| schema_at(c)["anyOf"] = json!([{"properties": {"spec": {"required": ["x"]}}}, {"properties": {"other": {}}}]),
         "spec.validation.openAPIV3Schema.properties[other]: Required value: because it is defined in spec.validation.openAPIV3Schema.anyOf[1].properties[other]"),
        ("status subresource restricts the root", |c| schema_at(c)["anyOf"] = json!([{"required": ["spec"]}]),
         "spec.validation.openAPIV3Schema: Invalid value: {"),
        ("status subresource restricts the root (message)", |c| schema_at(c)["minProperties"] = json!(1),
         "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status subresource is enabled"),
        ("nullable root", |c| schema_at(c)["nullable"] = json!(true),
         "spec.validation.openAPIV3Schema.nullable: Forbidden: nullable cannot be true at the root"),
        ("additionalProperties at the root", |c| { let s = schema_at(c); s.as_object_mut().unwrap().remove("properties"); s["additionalProperties"] = json!({"type": "string"}); },
         "spec.validation.openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root"),
        ("invalid pattern", |c| schema_at(c)["properties"]["spec"]["properties"]["cronSpec"]["pattern"] = json!("(["),
         "spec.validation.openAPIV3Schema.properties[spec].properties[cronSpec].pattern: Invalid value: \"([\": must be a valid regular expression, but isn't"),
        ("list-type map needs keys", |c| { schema_at(c)["properties"]["spec"]["properties"]["ports"].as_object_mut().unwrap().remove("x-kubernetes-list-map-keys"); },
         "spec.validation.openAPIV3Schema.properties[spec].properties[ports].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"),
        ("list-map key must be required or defaulted", |c| schema_at(c)["properties"]["spec"]["properties"]["ports"]["items"]["required"] = json!([]),
         "spec.validation.openAPIV3Schema.properties[spec].properties[ports].items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"),
        ("list-type on non-array", |c| schema_at(c)["properties"]["spec"]["properties"]["cronSpec"]["x-kubernetes-list-type"] = json!("set"),
         r#"spec.validation.openAPIV3Schema.properties[spec].properties[cronSpec].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified"#),
        ("unknown list-type", |c| schema_at(c)["properties"]["spec"]["properties"]["ports"]["x-kubernetes-list-type"] = json!("bag"),
         r#"x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map""#),
        ("default must validate", |c| schema_at(c)["properties"]["spec"]["properties"]["replicas"]["default"] = json!("one"),
         r#"spec.validation.openAPIV3Schema.properties[spec].properties[replicas].default: Invalid value: "string": in body must be of type integer: "string""#),
        ("default must satisfy minimum", |c| schema_at(c)["properties"]["spec"]["properties"]["replicas"]["default"] = json!(0),
         "spec.validation.openAPIV3Schema.properties[spec].properties[replicas].default: Invalid value: 0: in body should be greater than or equal to 1"),
        ("defaults must be pruned", |c| schema_at(c)["properties"]["spec"]["properties"]["strategy"] = json!({"type": "object", "default": {"type": "x", "bogus": 1}, "properties": {"type": {"type": "string"}}}),
         r#"spec.validation.openAPIV3Schema.properties[spec].properties[strategy].default: Invalid value: {"type":"x","bogus":1}: must not have unknown fields"#),
        ("no defaults in top-level metadata", |c| schema_at(c)["properties"]["metadata"]["default"] = json!({}),
         "spec.validation.openAPIV3Schema.properties[metadata].default: Forbidden: must not be set in top-level metadata"),
        ("rule required", |c| schema_at(c)["properties"]["spec"]["x-kubernetes-validations"] = json!([{"rule": " "}]),
         "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Required value: rule is not specified"),
        ("scale spec path", |c| c["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] = json!(".status.replicas"),
         r#"spec.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec"#),
        ("scale status path required", |c| { c["spec"]["versions"][0]["subresources"]["scale"].as_object_mut().unwrap().remove("statusReplicasPath"); },
         "spec.subresources.scale.statusReplicasPath: Required value"),
        ("scale simple json path", |c| c["spec"]["versions"][0]["subresources"]["scale"]["labelSelectorPath"] = json!("status.sel"),
         r#"spec.subresources.scale.labelSelectorPath: Invalid value: "status.sel": must be a simple json path starting with ."#),
        ("printer column type", |c| c["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = json!("float"),
         r#"spec.additionalPrinterColumns[0].type: Unsupported value: "float": supported values: "boolean", "date", "integer", "number", "string""#),
        ("printer column jsonPath", |c| c["spec"]["versions"][0]["additionalPrinterColumns"][0]["jsonPath"] = json!(""),
         "spec.additionalPrinterColumns[0].jsonPath: Required value"),
        ("preserveUnknownFields", |c| c["spec"]["preserveUnknownFields"] = json!(true),
         "spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"),
        ("conversion strategy", |c| c["spec"]["conversion"]["strategy"] = json!("Magic"),
         r#"spec.conversion.strategy: Unsupported value: "Magic": supported values: "None", "Webhook""#),
        ("webhook conversion needs a client config", |c| c["spec"]["conversion"] = json!({"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"]}}),
         "spec.conversion.webhook.clientConfig: Required value: required when strategy is set to Webhook"),
        ("deprecation warning only when deprecated", |c| c["spec"]["versions"][0]["deprecationWarning"] = json!("old"),
         r#"spec.versions[0].deprecationWarning: Invalid value: "old": can only be set for deprecated versions"#),
    ];
    for (name, mutate, want) in cases {
        let mut crd = base_crd();
        mutate(&mut crd);
        let got = msgs(&validate_crd(&crd));
        assert!(
            got.iter().any(|m| m.contains(want)),
            "{name}: want {want:?} in {got:#?}"
        );
    }
}

#[test]
fn protected_groups_need_api_approval() {
    let mut crd = base_crd();
    crd["spec"]["group"] = json!("policy.k8s.io");
    crd["metadata"]["name"] = json!("crontabs.policy.k8s.io");
    assert_eq!(
        msgs(&validate_crd(&crd)),
        vec![
            r#"metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111"#
        ]
    );
    for (value, ok) in [
        ("https://github.com/kubernetes/kubernetes/pull/78458", true),
        ("unapproved, experimental", true),
        ("yes please", false),
    ] {
        crd["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": value});
        assert_eq!(validate_crd(&crd).is_empty(), ok, "{value}");
    }
    crd["spec"]["group"] = json!("k8s.io.example.com");
    crd["metadata"] = json!({"name": "crontabs.k8s.io.example.com"});
    assert!(validate_crd(&crd).is_empty());
}

#[test]
fn crd_schema_paths_per_version_when_schemas_differ() {
    let mut crd = base_crd();
    let mut v2 = crd["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    v2["storage"] = json!(false);
    v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["bad"] = json!({});
    v2["subresources"]["scale"]["specReplicasPath"] = json!("spec.replicas");
    crd["spec"]["versions"].as_array_mut().unwrap().push(v2);
    assert_eq!(
        msgs(&validate_crd(&crd)),
        vec![
            "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[bad].type: Required value: must not be empty for specified object fields",
            r#"spec.versions[1].subresources.scale.specReplicasPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#,
        ]
    );
}

#[test]
fn structural_errors_are_sorted_like_upstream() {
    let mut crd = base_crd();
    schema_at(&mut crd)["properties"]["spec"]["properties"]["z"] = json!({});
    schema_at(&mut crd)["properties"]["spec"]["properties"]["a"] = json!({});
    let got = msgs(&validate_crd(&crd));
    assert_eq!(
        got,
        vec![
            "spec.validation.openAPIV3Schema.properties[spec].properties[a].type: Required value: must not be empty for specified object fields",
            "spec.validation.openAPIV3Schema.properties[spec].properties[z].type: Required value: must not be empty for specified object fields",
        ]
    );
}

#[test]
fn crd_defaults() {
    let mut crd = json!({"spec": {"names": {"plural": "crontabs", "kind": "CronTab"},
        "conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {"service": {"name": "s", "namespace": "n"}}}}}});
    default_crd(&mut crd);
    assert_eq!(crd["spec"]["names"]["singular"], "crontab");
    assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
    assert_eq!(
        crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
        443
    );
    let mut bare =
        json!({"spec": {"names": {"kind": "A", "singular": "keep", "listKind": "AList2"}}});
    default_crd(&mut bare);
    assert_eq!(bare["spec"]["names"]["singular"], "keep");
    assert_eq!(bare["spec"]["names"]["listKind"], "AList2");
    assert_eq!(bare["spec"]["conversion"]["strategy"], "None");
}

#[test]
fn a_validated_crd_schema_drives_its_custom_resources() {
    let crd = base_crd();
    assert!(validate_crd(&crd).is_empty());
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut cr = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "c"},
        "spec": {"cronSpec": "* * * * */5", "port": "http", "unknown": 1, "extra": {"free": {"x": 1}},
                 "ports": [{"name": "a"}, {"name": "a"}],
                 "template": {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": []}}}});
    assert_eq!(prune_custom(schema, &mut cr), vec!["spec.unknown"]);
    default_custom(schema, &mut cr);
    assert_eq!(cr["spec"]["replicas"], 1);
    assert_eq!(
        msgs(&validate_custom(schema, &cr)),
        vec![r#"spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a"}"#]
    );
    cr["spec"]["cronSpec"] = json!("often");
    cr["spec"]["replicas"] = json!(0);
    cr["spec"]["ports"] = json!([]);
    assert_eq!(
        msgs(&validate_custom(schema, &cr)),
        vec![
            r#"spec.cronSpec: Invalid value: "often": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ]
    );
}

#[test]
fn crd_schema_or_types_drop_unknown_fields_silently() {
    let mut crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "a.example.com"},
    "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "l": {"type": "array", "items": {"type": "string", "dropped": 1}},
        "m": {"type": "object", "additionalProperties": {"type": "string", "gone": true}},
        "b": {"type": "object", "additionalProperties": true},
        "t": {"type": "array", "items": [{"type": "string", "lost": 1}]}
    }}}}]}});
    let got = prune_unknown(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        &mut crd,
    );
    assert!(got.is_empty(), "{got:?}");
    let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    assert_eq!(props["l"]["items"], json!({"type": "string"}));
    assert_eq!(
        props["m"]["additionalProperties"],
        json!({"type": "string"})
    );
    assert_eq!(props["b"]["additionalProperties"], json!(true));
    assert_eq!(props["t"]["items"], json!([{"type": "string"}]));
}
