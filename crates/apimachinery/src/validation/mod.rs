//! Validation of built-in kinds on `serde_json::Value` objects, following upstream's
//! `pkg/apis/*/validation`: field paths and messages read like upstream's so that kubectl
//! users see the same errors. Wrap a non-empty result in `ApiError::invalid`.
//!
//! The order the API server applies these helpers in, as upstream's generic registry does:
//! - create: decode -> [`check_decodable`] (400 on failure) -> [`crate::defaults::apply_defaults`] -> on `generateName`,
//!   [`crate::meta::generate_name`] -> set uid, creationTimestamp and
//!   [`crate::meta::initial_generation`] -> [`crate::defaults::prepare_for_create`] (and
//!   [`crate::defaults::job_generate_selector`] with the uid for Jobs,
//!   [`crate::defaults::service_prepare_for_create`] for Services) -> [`validate_create`];
//! - update: decode -> `check_decodable` -> `apply_defaults` -> copy the stored status over the new one for kinds
//!   with a status subresource -> [`crate::defaults::service_prepare_for_update`] for Services
//!   -> fill an omitted resourceVersion for unconditional updates ->
//!   [`crate::meta::next_generation`] -> [`validate_update`];
//! - `/status`: copy the stored spec over the new one -> [`validate_status_update`];
//! - `pods/ephemeralcontainers`: [`validate_ephemeral_containers_update`]; custom resources:
//!   [`validate_custom_resource_create`] / [`validate_custom_resource_update`].

pub mod quantity;

mod misc;
mod pod;
mod service;
mod workloads;

use serde_json::{json, Map, Value};

use crate::meta::{self, NameRule};
use crate::status::FieldError;

pub use misc::{is_config_map_key, MAX_DATA_SIZE};
pub use pod::{
    validate_ephemeral_containers_update, validate_pod_spec, validate_pod_template_spec,
};
pub use workloads::validate_cron_schedule;

/// Whether a built-in kind is cluster-scoped (everything else is namespaced).
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus"
        ) | (
            "rbac.authorization.k8s.io",
            "ClusterRole" | "ClusterRoleBinding"
        ) | (
            "storage.k8s.io",
            "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment" | "VolumeAttributesClass"
        ) | ("scheduling.k8s.io", "PriorityClass")
            | (
                "networking.k8s.io",
                "IngressClass" | "IPAddress" | "ServiceCIDR"
            )
            | ("node.k8s.io", "RuntimeClass")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | (
                "certificates.k8s.io",
                "CertificateSigningRequest" | "ClusterTrustBundle"
            )
            | ("admissionregistration.k8s.io", _)
            | ("flowcontrol.apiserver.k8s.io", _)
            | ("resource.k8s.io", "DeviceClass")
    )
}

/// Validation of an object on create: metadata (name rule and scope of the kind) plus the
/// kind's spec rules. Unknown kinds get metadata validation only.
pub fn validate_create(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let _ = version;
    // reviews and token requests are not stored objects and carry no required metadata
    if matches!(group, "authorization.k8s.io" | "authentication.k8s.io") {
        return Vec::new();
    }
    let namespaced = !is_cluster_scoped(group, kind);
    let mut errs = meta::validate_object_meta(
        obj.get("metadata").unwrap_or(&Value::Null),
        namespaced,
        meta::name_rule(group, kind),
        "metadata",
    );
    errs.extend(validate_kind(group, kind, obj));
    if (group, kind) == ("", "Pod")
        && !arr(
            obj.get("spec").unwrap_or(&Value::Null),
            "ephemeralContainers",
        )
        .is_empty()
    {
        errs.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    errs
}

/// Validation of an update from `old` to `new`: metadata immutables, the kind's rules on the new
/// object and the kind's immutable fields.
pub fn validate_update(
    group: &str,
    version: &str,
    kind: &str,
    new: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let _ = version;
    let null = Value::Null;
    let mut errs = meta::validate_object_meta_update(
        new.get("metadata").unwrap_or(&null),
        old.get("metadata").unwrap_or(&null),
        "metadata",
    );
    errs.extend(validate_kind(group, kind, new));
    errs.extend(validate_kind_update(group, kind, new, old));
    errs
}

/// Metadata validation of a custom resource on create (upstream's generic
/// `ValidateObjectMetaAccessor` with DNS-subdomain names and generic finalizer rules); the
/// scope comes from the CRD. Schema validation is the CRD machinery's job.
pub fn validate_custom_resource_create(namespaced: bool, obj: &Value) -> Vec<FieldError> {
    meta::validate_object_meta_with(
        obj.get("metadata").unwrap_or(&Value::Null),
        namespaced,
        NameRule::Dns1123Subdomain,
        "metadata",
        false,
    )
}

/// Metadata validation of a custom resource update.
pub fn validate_custom_resource_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    meta::validate_object_meta_update_with(
        new.get("metadata").unwrap_or(&null),
        old.get("metadata").unwrap_or(&null),
        "metadata",
        false,
    )
}

/// Validation of a `/status` update: metadata immutables plus the kind's status rules (e.g. pod
/// phase and conditions, replica counts of workloads).
pub fn validate_status_update(
    group: &str,
    version: &str,
    kind: &str,
    new: &Value,
    old: &Value,
) -> Vec<FieldError> {
    let _ = version;
    let null = Value::Null;
    let mut errs = meta::validate_object_meta_update(
        new.get("metadata").unwrap_or(&null),
        old.get("metadata").unwrap_or(&null),
        "metadata",
    );
    let status = new.get("status").unwrap_or(&null);
    match (group, kind) {
        ("", "Pod") => {
            let restart = old
                .pointer("/spec/restartPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Always");
            errs.extend(pod::validate_pod_status(
                status,
                old.get("status").unwrap_or(&null),
                restart,
            ));
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("", "ReplicationController") => {
            errs.extend(workloads::validate_replica_status(kind, status));
        }
        ("batch", "Job") => errs.extend(workloads::validate_job_status(status)),
        ("", "Namespace") => {
            let phase = status.get("phase").and_then(Value::as_str).unwrap_or("");
            if !phase.is_empty() && !matches!(phase, "Active" | "Terminating") {
                errs.push(FieldError::not_supported(
                    "status.phase",
                    &json!(phase),
                    &["Active", "Terminating"],
                ));
            }
        }
        ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => {
            let phase = status.get("phase").and_then(Value::as_str).unwrap_or("");
            let allowed: &[&str] = if kind == "PersistentVolume" {
                &["Available", "Bound", "Failed", "Pending", "Released"]
            } else {
                &["Bound", "Lost", "Pending"]
            };
            if !phase.is_empty() && !allowed.contains(&phase) {
                errs.push(FieldError::not_supported(
                    "status.phase",
                    &json!(phase),
                    allowed,
                ));
            }
        }
        _ => {}
    }
    errs
}

fn validate_kind(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    match (group, kind) {
        ("", "Pod") => pod::validate_pod(obj),
        ("", "PodTemplate") => {
            // the template is a struct upstream: an absent one validates as empty
            let empty = json!({});
            let t = obj
                .get("template")
                .filter(|t| !t.is_null())
                .unwrap_or(&empty);
            pod::validate_pod_template_spec(Some(t), "template", false)
        }
        ("", "ReplicationController") => workloads::validate_replication_controller(obj),
        ("", "Binding") => {
            // `ValidatePodBinding`
            let null = Value::Null;
            let target = obj.get("target").unwrap_or(&null);
            let mut errs = Vec::new();
            let k = s(target, "kind");
            if !k.is_empty() && k != "Node" {
                errs.push(FieldError::not_supported(
                    "target.kind",
                    &json!(k),
                    &["Node", "<empty>"],
                ));
            }
            if s(target, "name").is_empty() {
                errs.push(FieldError::required("target.name", ""));
            }
            errs
        }
        ("", "Service") => service::validate_service(obj),
        ("", "Endpoints") => service::validate_endpoints(obj),
        ("discovery.k8s.io", "EndpointSlice") => service::validate_endpoint_slice(obj),
        ("apps", "Deployment") => workloads::validate_deployment(obj),
        ("apps", "ReplicaSet") => workloads::validate_replica_set(obj),
        ("apps", "StatefulSet") => workloads::validate_stateful_set(obj),
        ("apps", "DaemonSet") => workloads::validate_daemon_set(obj),
        ("batch", "Job") => workloads::validate_job(obj),
        ("batch", "CronJob") => workloads::validate_cron_job(obj),
        ("", "ConfigMap") => misc::validate_config_map(obj),
        ("", "Secret") => misc::validate_secret(obj),
        ("", "Namespace") => misc::validate_namespace(obj),
        ("", "Node") => misc::validate_node(obj),
        ("", "PersistentVolume") => misc::validate_persistent_volume(obj),
        ("", "PersistentVolumeClaim") => misc::validate_pvc(obj),
        ("", "ResourceQuota") => misc::validate_resource_quota(obj),
        ("", "LimitRange") => misc::validate_limit_range(obj),
        ("networking.k8s.io", "IngressClass") => misc::validate_ingress_class(obj),
        ("storage.k8s.io", "StorageClass") => misc::validate_storage_class(obj),
        ("scheduling.k8s.io", "PriorityClass") => misc::validate_priority_class(obj),
        ("rbac.authorization.k8s.io", "Role") => misc::validate_role(obj, true),
        ("rbac.authorization.k8s.io", "ClusterRole") => misc::validate_role(obj, false),
        ("rbac.authorization.k8s.io", "RoleBinding") => misc::validate_role_binding(obj, true),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            misc::validate_role_binding(obj, false)
        }
        ("networking.k8s.io", "NetworkPolicy") => misc::validate_network_policy(obj),
        ("networking.k8s.io", "Ingress") => misc::validate_ingress(obj),
        ("policy", "PodDisruptionBudget") => misc::validate_pdb(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => misc::validate_hpa(obj),
        _ => Vec::new(),
    }
}

fn validate_kind_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    match (group, kind) {
        ("", "Pod") => pod::validate_pod_update(new, old),
        ("", "Service") => service::validate_service_update(new, old),
        ("discovery.k8s.io", "EndpointSlice") => meta::validate_immutable(
            new.get("addressType"),
            old.get("addressType"),
            "addressType",
        ),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => meta::validate_immutable(
            new.pointer("/spec/selector"),
            old.pointer("/spec/selector"),
            "spec.selector",
        ),
        ("apps", "StatefulSet") => workloads::validate_stateful_set_update(new, old),
        ("batch", "Job") => workloads::validate_job_update(new, old),
        ("", "ConfigMap") => misc::validate_config_map_update(new, old),
        ("", "Secret") => misc::validate_secret_update(new, old),
        ("", "Node") => misc::validate_node_update(new, old),
        ("", "PersistentVolume") => misc::validate_persistent_volume_update(new, old),
        ("", "PersistentVolumeClaim") => misc::validate_pvc_update(new, old),
        ("storage.k8s.io", "StorageClass") => misc::validate_storage_class_update(new, old),
        ("networking.k8s.io", "IngressClass") => meta::validate_immutable(
            new.pointer("/spec/controller"),
            old.pointer("/spec/controller"),
            "spec.controller",
        ),
        ("scheduling.k8s.io", "PriorityClass") => misc::validate_priority_class_update(new, old),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if new.get("roleRef") != old.get("roleRef") {
                vec![FieldError::invalid(
                    "roleRef",
                    new.get("roleRef").unwrap_or(&Value::Null),
                    "cannot change roleRef",
                )]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// The check upstream's JSON decoding does before any validation: quantities parse and
/// `[]byte` fields (Secret `data`, ConfigMap `binaryData`) are base64. A failure is a 400
/// BadRequest upstream (`Pod in version "v1" cannot be handled as a Pod: quantities must
/// match ...`), not a 422, so it is returned as the ready `ApiError`.
pub fn check_decodable(
    group: &str,
    version: &str,
    kind: &str,
    obj: &Value,
) -> Result<(), Box<crate::ApiError>> {
    let fail = |detail: String| {
        Err(Box::new(crate::ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {detail}"
        ))))
    };
    let mut quantities: Vec<&Value> = Vec::new();
    fn lists<'a>(v: Option<&'a Value>, out: &mut Vec<&'a Value>) {
        if let Some(m) = v.and_then(Value::as_object) {
            out.extend(m.values());
        }
    }
    let pod_spec_at: &[&str] = match (group, kind) {
        ("", "Pod") => &["/spec"],
        ("", "PodTemplate") => &["/template/spec"],
        ("", "ReplicationController") | ("apps", _) | ("batch", "Job") => &["/spec/template/spec"],
        ("batch", "CronJob") => &["/spec/jobTemplate/spec/template/spec"],
        _ => &[],
    };
    for at in pod_spec_at {
        let Some(spec) = obj.pointer(at) else {
            continue;
        };
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            for c in arr(spec, list) {
                lists(c.pointer("/resources/requests"), &mut quantities);
                lists(c.pointer("/resources/limits"), &mut quantities);
            }
        }
        lists(spec.get("overhead"), &mut quantities);
        lists(spec.pointer("/resources/requests"), &mut quantities);
        lists(spec.pointer("/resources/limits"), &mut quantities);
        for v in arr(spec, "volumes") {
            if let Some(q) = v.pointer("/emptyDir/sizeLimit") {
                quantities.push(q);
            }
        }
    }
    match (group, kind) {
        ("", "PersistentVolumeClaim") => {
            lists(obj.pointer("/spec/resources/requests"), &mut quantities);
            lists(obj.pointer("/spec/resources/limits"), &mut quantities);
        }
        ("apps", "StatefulSet") => {
            for t in arr(
                obj.get("spec").unwrap_or(&Value::Null),
                "volumeClaimTemplates",
            ) {
                lists(t.pointer("/spec/resources/requests"), &mut quantities);
            }
        }
        ("", "PersistentVolume") => lists(obj.pointer("/spec/capacity"), &mut quantities),
        ("", "Node") => {
            lists(obj.pointer("/status/capacity"), &mut quantities);
            lists(obj.pointer("/status/allocatable"), &mut quantities);
        }
        ("", "ResourceQuota") => lists(obj.pointer("/spec/hard"), &mut quantities),
        ("", "LimitRange") => {
            for item in arr(obj.get("spec").unwrap_or(&Value::Null), "limits") {
                for k in [
                    "max",
                    "min",
                    "default",
                    "defaultRequest",
                    "maxLimitRequestRatio",
                ] {
                    lists(item.get(k), &mut quantities);
                }
            }
        }
        _ => {}
    }
    for q in quantities {
        let ok = match q {
            Value::String(s) => quantity::parse(s).is_some(),
            Value::Number(_) | Value::Null => true,
            _ => false,
        };
        if !ok {
            return fail(quantity::QUANTITY_FORMAT_ERROR.to_string());
        }
    }
    let bytes_field = match (group, kind) {
        ("", "Secret") => Some("data"),
        ("", "ConfigMap") => Some("binaryData"),
        _ => None,
    };
    if let Some(field) = bytes_field.and_then(|f| map(obj, f)) {
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        use base64::Engine as _;
        // Go's StdEncoding: padding required, trailing bits tolerated, newlines skipped
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
        );
        for v in field.values() {
            let Some(text) = v.as_str() else {
                if v.is_null() {
                    continue;
                }
                return fail("illegal base64 data at input byte 0".to_string());
            };
            let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            if let Err(e) = engine.decode(cleaned.as_bytes()) {
                let at = match e {
                    base64::DecodeError::InvalidByte(i, _)
                    | base64::DecodeError::InvalidLastSymbol(i, _) => i,
                    // Go reports the start of the unfinished quantum
                    _ => cleaned.len() - cleaned.len() % 4,
                };
                return fail(format!("illegal base64 data at input byte {at}"));
            }
        }
    }
    Ok(())
}

// ---- shared helpers ----

/// `base.child`, or `child` when base is empty.
pub(crate) fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

pub(crate) fn key(base: &str, k: &str) -> String {
    format!("{base}[{k}]")
}

pub(crate) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn map<'a>(v: &'a Value, k: &str) -> Option<&'a Map<String, Value>> {
    v.get(k).and_then(Value::as_object)
}

pub(crate) fn int(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

pub(crate) fn present(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}

/// `ValidateNonnegativeField` for an optional integer field.
pub(crate) fn nonneg(v: &Value, k: &str, base: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = int(v, k) {
        if n < 0 {
            errs.push(FieldError::invalid(
                child(base, k),
                &json!(n),
                meta::IS_NEGATIVE,
            ));
        }
    }
}

/// Upstream `IsValidPortNum`.
pub(crate) fn is_valid_port_num(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) {
        Vec::new()
    } else {
        vec![meta::inclusive_range_error(1, 65535)]
    }
}

/// Upstream `IsValidPortName` (IANA service names).
pub(crate) fn is_valid_port_name(p: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if p.len() > 15 {
        errs.push(meta::max_len_error(15));
    }
    if !p
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !p.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if p.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if p.starts_with('-') || p.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// `ValidatePortNumOrName` for an int-or-string port.
pub(crate) fn validate_port_num_or_name(v: Option<&Value>, path: &str) -> Vec<FieldError> {
    match v {
        Some(Value::Number(n)) => {
            let p = n.as_i64().unwrap_or(-1);
            is_valid_port_num(p)
                .into_iter()
                .map(|m| FieldError::invalid(path, &json!(p), m))
                .collect()
        }
        Some(Value::String(name)) => is_valid_port_name(name)
            .into_iter()
            .map(|m| FieldError::invalid(path, &json!(name), m))
            .collect(),
        _ => vec![FieldError::invalid(
            path,
            v.unwrap_or(&Value::Null),
            "must be an int or a string",
        )],
    }
}

pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// A required protocol enum (`Required` when empty, `NotSupported` when unknown).
pub(crate) fn validate_protocol(v: &Value, path: &str) -> Vec<FieldError> {
    match v.get("protocol").and_then(Value::as_str).unwrap_or("") {
        "" => vec![FieldError::required(child(path, "protocol"), "")],
        p if PROTOCOLS.contains(&p) => Vec::new(),
        p => vec![FieldError::not_supported(
            child(path, "protocol"),
            &json!(p),
            PROTOCOLS,
        )],
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent` for int-or-percent fields.
pub(crate) fn validate_int_or_percent(
    v: Option<&Value>,
    path: &str,
    max100: bool,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) => {
            let i = n.as_i64().unwrap_or(-1);
            if i < 0 {
                errs.push(FieldError::invalid(path, &json!(i), meta::IS_NEGATIVE));
            }
        }
        Some(Value::String(p)) => match p
            .strip_suffix('%')
            .and_then(|d| d.parse::<i64>().ok())
            .filter(|_| !p.starts_with('+'))
        {
            Some(pct) => {
                if pct < 0 {
                    errs.push(FieldError::invalid(path, &json!(p), meta::IS_NEGATIVE));
                } else if max100 && pct > 100 {
                    errs.push(FieldError::invalid(
                        path,
                        &json!(p),
                        "must not be greater than 100%",
                    ));
                }
            }
            None => errs.push(FieldError::invalid(
                path,
                &json!(p),
                "must be an integer or percentage (e.g '5%')",
            )),
        },
        Some(other) => errs.push(FieldError::invalid(
            path,
            other,
            "must be an integer or percentage (e.g '5%')",
        )),
    }
    errs
}

/// Whether an int-or-percent value is zero (`0` or `"0%"`).
pub(crate) fn int_or_percent_is_zero(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => s == "0%" || s == "0",
        _ => false,
    }
}

/// `ValidateLabelSelector`.
pub(crate) fn validate_label_selector(sel: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, req) in arr(sel, "matchExpressions").iter().enumerate() {
        let rp = index(&child(path, "matchExpressions"), i);
        let values = arr(req, "values");
        match s(req, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&rp, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&rp, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::invalid(
                child(&rp, "operator"),
                &json!(op),
                "not a valid selector operator",
            )),
        }
        errs.extend(meta::validate_label_name(s(req, "key"), &child(&rp, "key")));
        for (j, v) in values.iter().enumerate() {
            let val = v.as_str().unwrap_or("");
            for m in meta::is_valid_label_value(val) {
                errs.push(FieldError::invalid(
                    index(&child(&rp, "values"), j),
                    &json!(val),
                    m,
                ));
            }
        }
    }
    errs.extend(meta::validate_labels(
        sel.get("matchLabels"),
        &child(path, "matchLabels"),
    ));
    errs
}

/// Whether a LabelSelector (matchLabels + matchExpressions) selects `labels`.
pub fn selector_matches(sel: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let empty = Map::new();
    let labels = labels.unwrap_or(&empty);
    if let Some(ml) = map(sel, "matchLabels") {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return false;
            }
        }
    }
    for req in arr(sel, "matchExpressions") {
        let k = s(req, "key");
        let vals: Vec<&str> = arr(req, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let cur = labels.get(k).and_then(Value::as_str);
        let ok = match s(req, "operator") {
            "In" => cur.is_some_and(|c| vals.contains(&c)),
            "NotIn" => !cur.is_some_and(|c| vals.contains(&c)),
            "Exists" => cur.is_some(),
            "DoesNotExist" => cur.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a LabelSelector has no requirements at all.
pub(crate) fn selector_is_empty(sel: &Value) -> bool {
    map(sel, "matchLabels").is_none_or(Map::is_empty) && arr(sel, "matchExpressions").is_empty()
}

/// A DNS-1123 label field (container names, port names of services, volume names).
pub(crate) fn dns_label_field(v: &str, path: &str) -> Vec<FieldError> {
    meta::is_dns1123_label(v)
        .into_iter()
        .map(|m| FieldError::invalid(path, &json!(v), m))
        .collect()
}

/// A DNS-1123 subdomain field.
pub(crate) fn dns_subdomain_field(v: &str, path: &str) -> Vec<FieldError> {
    meta::is_dns1123_subdomain(v)
        .into_iter()
        .map(|m| FieldError::invalid(path, &json!(v), m))
        .collect()
}

/// A name validated with a kind's name rule (references to other objects).
pub(crate) fn name_field(rule: NameRule, v: &str, path: &str) -> Vec<FieldError> {
    meta::validate_name(rule, v, false)
        .into_iter()
        .map(|m| FieldError::invalid(path, &json!(v), m))
        .collect()
}

/// Whether `ip` is a valid IPv4 or IPv6 address.
pub(crate) fn is_ip(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>().is_ok()
}

/// Whether `cidr` is a valid CIDR.
pub(crate) fn is_cidr(cidr: &str) -> bool {
    let Some((ip, bits)) = cidr.split_once('/') else {
        return false;
    };
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    bits <= if addr.is_ipv4() { 32 } else { 128 }
}

pub(crate) const IP_ERROR: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
pub(crate) const CIDR_ERROR: &str =
    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

#[cfg(test)]
mod tests;
