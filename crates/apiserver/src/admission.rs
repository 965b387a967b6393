//! Admission: defaulting, create-time preparation and validation of objects before they are
//! stored (built-in kinds through apimachinery's defaults/validation, custom resources through
//! their CRD), and the patch engines wired to per-kind schema knowledge (OpenAPI extensions).

use apimachinery::openapi;
use apimachinery::patch::{self, FieldInfo, ListType, PatchSchema, PatchStrategy};
use apimachinery::registry::ResourceInfo;
use apimachinery::schema::{self, FieldValidation};
use apimachinery::{defaults, meta, validation, ApiError, FieldError};
use serde_json::Value;

/// Patch knowledge of a built-in kind read from its OpenAPI schema extensions (cached lookups
/// in apimachinery's generated documents).
pub struct BuiltinKindSchema<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
}

impl PatchSchema for BuiltinKindSchema<'_> {
    fn lookup(&self, path: &[&str]) -> FieldInfo {
        let Some(f) = openapi::field_info(self.group, self.version, self.kind, path) else {
            return FieldInfo::default();
        };
        let strategy = if f.has_strategy("merge") {
            PatchStrategy::Merge
        } else if f.has_strategy("replace") {
            PatchStrategy::Replace
        } else {
            PatchStrategy::Default
        };
        let list_type = match f.list_type.as_deref() {
            Some("atomic") => Some(ListType::Atomic),
            Some("set") => Some(ListType::Set),
            Some("map") => Some(ListType::Map(f.list_map_keys.clone())),
            _ => None,
        };
        FieldInfo {
            strategy,
            retain_keys: f.has_strategy("retainKeys"),
            merge_key: f.patch_merge_key.clone(),
            list_type,
            atomic_map: f.map_type.as_deref() == Some("atomic"),
            ..FieldInfo::default()
        }
    }
}

/// The structural schema of a CRD version.
pub fn crd_version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"] == version))
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
}

/// Drop fields the kind's schema does not know (as decoding into upstream's Go types does);
/// returns the paths dropped.
pub fn prune(ri: &ResourceInfo, crd: Option<&Value>, obj: &mut Value) -> Vec<String> {
    match crd {
        Some(crd) => match crd_version_schema(crd, &ri.version) {
            Some(s)
                if crd
                    .pointer("/spec/preserveUnknownFields")
                    .and_then(Value::as_bool)
                    != Some(true) =>
            {
                schema::prune_custom(s, obj)
            }
            _ => Vec::new(),
        },
        None => schema::prune_unknown(&ri.group, &ri.version, &ri.kind, obj),
    }
}

/// Apply the `fieldValidation` directive to the unknown and duplicate fields of a request:
/// Strict fails with 400, Warn returns the warnings, Ignore drops them.
pub fn field_validation(
    ri: &ResourceInfo,
    directive: Option<&str>,
    unknown: &[String],
    duplicates: &[String],
) -> Result<Vec<String>, ApiError> {
    let fv = FieldValidation::parse(directive).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut msgs: Vec<String> = duplicates
        .iter()
        .map(|p| schema::duplicate_field_message(p))
        .collect();
    msgs.extend(unknown.iter().map(|p| schema::unknown_field_message(p)));
    match fv {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(msgs),
        FieldValidation::Strict if msgs.is_empty() => Ok(Vec::new()),
        FieldValidation::Strict => Err(ApiError::bad_request(schema::strict_bad_request_message(
            &ri.kind,
            &ri.version,
            &msgs,
        ))),
    }
}

/// Defaulting and schema validation of a custom resource.
fn custom_resource(ri: &ResourceInfo, crd: &Value, obj: &mut Value) -> Vec<FieldError> {
    match crd_version_schema(crd, &ri.version) {
        Some(s) => {
            schema::prune_nulls_custom(s, obj);
            schema::default_custom(s, obj);
            schema::validate_custom(s, obj)
        }
        None => Vec::new(),
    }
}

/// The patch schema of a resource: the built-in kind's, or the CRD version's structural schema.
fn schema_for<'a>(ri: &'a ResourceInfo, crd: Option<&Value>) -> Box<dyn PatchSchema + 'a> {
    match crd {
        Some(crd) => {
            let schema = crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .and_then(|vs| vs.iter().find(|v| v["name"] == ri.version.as_str()))
                .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
                .cloned();
            match schema {
                Some(s) => Box::new(patch::OpenApiSchema::new(s, Default::default())),
                None => Box::new(patch::NoSchema),
            }
        }
        None => Box::new(BuiltinKindSchema {
            group: &ri.group,
            version: &ri.version,
            kind: &ri.kind,
        }),
    }
}

fn patch_err(e: patch::PatchError) -> ApiError {
    e.to_api_error()
}

/// Default and prepare a new object (its uid is already set) and return its validation errors.
pub fn default_and_validate_create(
    ri: &ResourceInfo,
    crd: Option<&Value>,
    obj: &mut Value,
) -> Vec<FieldError> {
    if let Some(crd) = crd {
        let rule = meta::name_rule(&ri.group, &ri.kind);
        let empty = Value::Object(Default::default());
        let mut errs = meta::validate_object_meta(
            obj.get("metadata").unwrap_or(&empty),
            ri.namespaced,
            rule,
            "metadata",
        );
        errs.extend(custom_resource(ri, crd, obj));
        return errs;
    }
    if is_crd(ri) {
        schema::default_crd(obj);
        let mut errs = validation::validate_create(&ri.group, &ri.version, &ri.kind, obj);
        errs.extend(schema::validate_crd(obj));
        return errs;
    }
    defaults::apply_defaults(&ri.group, &ri.version, &ri.kind, obj);
    defaults::prepare_for_create(&ri.group, &ri.kind, obj);
    if ri.group == "batch" && ri.kind == "Job" {
        let uid = crate::objects::uid(obj).to_string();
        defaults::job_generate_selector(obj, &uid);
    }
    validation::validate_create(&ri.group, &ri.version, &ri.kind, obj)
}

/// Default an updated object and return its validation errors against the old one.
pub fn default_and_validate_update(
    ri: &ResourceInfo,
    crd: Option<&Value>,
    subresource: &str,
    new: &mut Value,
    old: &Value,
) -> Vec<FieldError> {
    let empty = Value::Object(Default::default());
    if let Some(crd) = crd {
        let mut errs = meta::validate_object_meta_update(
            new.get("metadata").unwrap_or(&empty),
            old.get("metadata").unwrap_or(&empty),
            "metadata",
        );
        if matches!(subresource, "" | "status") {
            errs.extend(custom_resource(ri, crd, new));
        }
        return errs;
    }
    if is_crd(ri) && subresource.is_empty() {
        schema::default_crd(new);
        let mut errs = validation::validate_update(&ri.group, &ri.version, &ri.kind, new, old);
        errs.extend(schema::validate_crd(new));
        return errs;
    }
    match subresource {
        "status" => validation::validate_status_update(&ri.group, &ri.version, &ri.kind, new, old),
        "" => {
            defaults::apply_defaults(&ri.group, &ri.version, &ri.kind, new);
            validation::validate_update(&ri.group, &ri.version, &ri.kind, new, old)
        }
        // binding, scale, finalize: the server changes one field it checks itself
        _ => meta::validate_object_meta_update(
            new.get("metadata").unwrap_or(&empty),
            old.get("metadata").unwrap_or(&empty),
            "metadata",
        ),
    }
}

fn is_crd(ri: &ResourceInfo) -> bool {
    ri.group == "apiextensions.k8s.io" && ri.kind == "CustomResourceDefinition"
}

/// Strategic merge patch of an object of a built-in kind.
pub fn strategic_merge(ri: &ResourceInfo, old: &Value, p: &Value) -> Result<Value, ApiError> {
    let schema = BuiltinKindSchema {
        group: &ri.group,
        version: &ri.version,
        kind: &ri.kind,
    };
    patch::strategic_merge_patch(old, p, &schema).map_err(patch_err)
}

/// Server-side apply of a configuration by a field manager (`old` is Null when creating).
pub fn server_side_apply(
    ri: &ResourceInfo,
    crd: Option<&Value>,
    old: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    subresource: &str,
) -> Result<Value, ApiError> {
    if manager.is_empty() {
        return Err(ApiError::bad_request(
            "PATCH requests of type apply require a fieldManager query parameter",
        ));
    }
    let schema = schema_for(ri, crd);
    let now = crate::objects::now();
    let api_version = ri.api_version();
    let opts = patch::apply::ApplyOptions {
        manager,
        force,
        api_version: &api_version,
        subresource,
        now: &now,
    };
    let live = if old.is_null() { None } else { Some(old) };
    patch::apply::apply(live, config, schema.as_ref(), &opts).map_err(patch_err)
}

/// Record a non-apply write by `manager` in the object's managedFields.
pub fn track_update(
    ri: &ResourceInfo,
    crd: Option<&Value>,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
) -> Result<(), ApiError> {
    let schema = schema_for(ri, crd);
    let now = crate::objects::now();
    let api_version = ri.api_version();
    let opts = patch::apply::UpdateOptions {
        manager,
        api_version: &api_version,
        subresource,
        now: &now,
    };
    patch::apply::update_managed_fields(old, new, schema.as_ref(), &opts).map_err(patch_err)
}

/// The tolerationSeconds of the NoExecute tolerations for not-ready and unreachable nodes that
/// pods get by default (upstream's DefaultTolerationSeconds admission plugin; 300 s each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultTolerations {
    pub not_ready_seconds: i64,
    pub unreachable_seconds: i64,
}

impl Default for DefaultTolerations {
    fn default() -> Self {
        DefaultTolerations {
            not_ready_seconds: 300,
            unreachable_seconds: 300,
        }
    }
}

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Add the default not-ready/unreachable NoExecute tolerations to a new pod that does not
/// already tolerate those taints.
pub fn add_default_tolerations(pod: &mut Value, d: &DefaultTolerations) {
    let existing = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tolerates = |key: &str| {
        existing.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let mut add = Vec::new();
    for (key, secs) in [
        (TAINT_NOT_READY, d.not_ready_seconds),
        (TAINT_UNREACHABLE, d.unreachable_seconds),
    ] {
        if !tolerates(key) {
            add.push(serde_json::json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}));
        }
    }
    if add.is_empty() {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec
        .entry("tolerations")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    list.as_array_mut().expect("set above").extend(add);
}

/// The global default PriorityClass among `classes`: the one marked `globalDefault`; when a
/// race left several, the one with the lowest value (upstream's Priority admission).
pub fn default_priority_class<'a>(
    classes: impl IntoIterator<Item = &'a Value>,
) -> Option<&'a Value> {
    classes
        .into_iter()
        .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0))
}

/// Priority admission of a new pod whose class was resolved to `class` (None: the pod names
/// no class and there is no global default, so the pod defaults apply). Sets
/// `spec.priorityClassName` (the default class's name), `spec.priority` and
/// `spec.preemptionPolicy`; a pod that gives other values than its class is refused with the
/// returned message.
pub fn apply_priority_class(pod: &mut Value, class: Option<&Value>) -> Result<(), String> {
    let Some(class) = class else { return Ok(()) };
    let value = class.get("value").and_then(Value::as_i64).unwrap_or(0);
    if let Some(p) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
        if p != value {
            return Err(format!("the integer value of priority ({p}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"));
        }
    }
    let policy = class.get("preemptionPolicy").and_then(Value::as_str);
    if let (Some(policy), Some(given)) = (
        policy,
        pod.pointer("/spec/preemptionPolicy")
            .and_then(Value::as_str),
    ) {
        if given != policy {
            return Err(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"));
        }
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let class_name = class
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    spec.insert("priorityClassName".into(), Value::from(class_name));
    spec.insert("priority".into(), Value::from(value));
    spec.insert(
        "preemptionPolicy".into(),
        Value::from(policy.unwrap_or("PreemptLowerPriority")),
    );
    Ok(())
}

#[cfg(test)]
mod priority_tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, value: i64, default: bool, policy: Option<&str>) -> Value {
        let mut c = json!({"metadata": {"name": name}, "value": value, "globalDefault": default});
        if let Some(p) = policy {
            c["preemptionPolicy"] = json!(p);
        }
        c
    }

    #[test]
    fn the_lowest_global_default_wins() {
        let cases: Vec<(Vec<Value>, Option<&str>)> = vec![
            (vec![], None),
            (vec![class("a", 10, false, None)], None),
            (
                vec![class("a", 10, false, None), class("b", 5, true, None)],
                Some("b"),
            ),
            (
                vec![
                    class("hi", 100, true, None),
                    class("lo", 7, true, None),
                    class("x", 1, false, None),
                ],
                Some("lo"),
            ),
        ];
        for (classes, want) in cases {
            let got = default_priority_class(classes.iter())
                .and_then(|c| c.pointer("/metadata/name"))
                .and_then(Value::as_str);
            assert_eq!(got, want, "{classes:?}");
        }
    }

    #[test]
    fn the_class_sets_priority_and_policy_and_refuses_other_values() {
        let never = class("never", 50, false, Some("Never"));
        let plain = class("plain", 3, false, None);
        // (pod spec, class, Ok(spec after) or Err(start of the message))
        let cases: Vec<(Value, Option<&Value>, Result<Value, &str>)> = vec![
            (json!({}), None, Ok(json!({}))),
            (
                json!({}),
                Some(&never),
                Ok(
                    json!({"priorityClassName": "never", "priority": 50, "preemptionPolicy": "Never"}),
                ),
            ),
            (
                json!({"priorityClassName": "plain"}),
                Some(&plain),
                Ok(
                    json!({"priorityClassName": "plain", "priority": 3, "preemptionPolicy": "PreemptLowerPriority"}),
                ),
            ),
            (
                json!({"priority": 50, "preemptionPolicy": "Never"}),
                Some(&never),
                Ok(
                    json!({"priorityClassName": "never", "priority": 50, "preemptionPolicy": "Never"}),
                ),
            ),
            (
                json!({"priority": 49}),
                Some(&never),
                Err("the integer value of priority (49)"),
            ),
            (
                json!({"preemptionPolicy": "PreemptLowerPriority"}),
                Some(&never),
                Err("the string value of PreemptionPolicy (PreemptLowerPriority)"),
            ),
        ];
        for (spec, class, want) in cases {
            let mut pod = json!({"metadata": {"name": "p"}, "spec": spec.clone()});
            let got = apply_priority_class(&mut pod, class);
            match want {
                Ok(after) => {
                    assert_eq!(got, Ok(()), "{spec:?}");
                    assert_eq!(pod["spec"], after, "{spec:?}");
                }
                Err(start) => {
                    let msg = got.expect_err("refused");
                    assert!(msg.starts_with(start), "{msg}");
                }
            }
        }
    }
}

#[cfg(test)]
mod toleration_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_tolerations_are_added_unless_tolerated() {
        let d = DefaultTolerations {
            not_ready_seconds: 5,
            unreachable_seconds: 7,
        };
        // (existing tolerations, expected keys and seconds added)
        let cases: Vec<(Value, Vec<(&str, i64)>)> = vec![
            (
                json!(null),
                vec![(TAINT_NOT_READY, 5), (TAINT_UNREACHABLE, 7)],
            ),
            (
                json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]),
                vec![(TAINT_NOT_READY, 5)],
            ),
            // an empty key with Exists tolerates everything
            (json!([{"operator": "Exists"}]), vec![]),
            // a NoSchedule toleration does not cover NoExecute
            (
                json!([{"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]),
                vec![(TAINT_NOT_READY, 5), (TAINT_UNREACHABLE, 7)],
            ),
        ];
        for (existing, want) in cases {
            let mut pod = json!({"spec": {"containers": []}});
            if !existing.is_null() {
                pod["spec"]["tolerations"] = existing.clone();
            }
            let before = existing.as_array().map(Vec::len).unwrap_or(0);
            add_default_tolerations(&mut pod, &d);
            let all = pod["spec"]["tolerations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let added: Vec<(&str, i64)> = all[before..]
                .iter()
                .map(|t| {
                    assert_eq!(t["effect"], "NoExecute");
                    assert_eq!(t["operator"], "Exists");
                    let key = if t["key"] == TAINT_NOT_READY {
                        TAINT_NOT_READY
                    } else {
                        TAINT_UNREACHABLE
                    };
                    (key, t["tolerationSeconds"].as_i64().unwrap())
                })
                .collect();
            assert_eq!(added, want, "existing {existing}");
        }
    }
}
