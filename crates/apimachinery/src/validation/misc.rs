//! Validation of the remaining built-in kinds: ConfigMap, Secret, Namespace, Node, PV, PVC,
//! StorageClass, PriorityClass, RBAC, NetworkPolicy, Ingress, PodDisruptionBudget, HPA.

use std::collections::HashSet;

use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::{json, Value};

use super::quantity;
use super::{arr, child, dns_subdomain_field, index, int, is_cidr, is_ip, key, map, present, s};
use super::{
    is_valid_port_name, is_valid_port_num, validate_int_or_percent, validate_label_selector,
    CIDR_ERROR, PROTOCOLS,
};
use crate::meta::{self, NameRule};
use crate::status::FieldError;

/// Largest total size of a ConfigMap's or Secret's data (1 MiB).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
static CONFIG_KEY_RE: Lazy<Regex> =
    Lazy::new(|| Regex::new(&format!("^{CONFIG_KEY_FMT}$")).expect("static regex"));
const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Upstream `IsConfigMapKey`.
pub fn is_config_map_key(k: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if k.len() > meta::DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(meta::max_len_error(meta::DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !CONFIG_KEY_RE.is_match(k) {
        errs.push(meta::regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if k == "." {
        errs.push("must not be '.'".to_string());
    } else if k == ".." {
        errs.push("must not be '..'".to_string());
    } else if k.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// Keys of `data`/`binaryData` (or `stringData`) and the total size.
fn validate_data_keys(
    obj: &Value,
    bags: &[&str],
    errs: &mut Vec<FieldError>,
    decode_base64: bool,
) -> usize {
    let mut total = 0;
    for (bi, bag) in bags.iter().enumerate() {
        let Some(m) = map(obj, bag) else { continue };
        for (k, v) in m {
            let kp = key(bag, k);
            for msg in is_config_map_key(k) {
                errs.push(FieldError::invalid(kp.clone(), &json!(k), msg));
            }
            for other in bags
                .iter()
                .enumerate()
                .filter(|(oi, _)| *oi != bi)
                .map(|(_, o)| o)
            {
                if map(obj, other).is_some_and(|om| om.contains_key(k)) && bags.len() == 2 {
                    errs.push(FieldError::invalid(
                        kp.clone(),
                        &json!(k),
                        format!("duplicate of key present in {other}"),
                    ));
                }
            }
            let val = v.as_str().unwrap_or("");
            total += if decode_base64 || *bag == "binaryData" {
                val.len() / 4 * 3
            } else {
                val.len()
            };
        }
    }
    total
}

pub(crate) fn validate_config_map(cm: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let total = validate_data_keys(cm, &["data", "binaryData"], &mut errs, false);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    errs
}

pub(crate) fn validate_config_map_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable") != old.get("immutable") {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        for k in ["data", "binaryData"] {
            let n = map(new, k).filter(|m| !m.is_empty());
            let o = map(old, k).filter(|m| !m.is_empty());
            if n != o {
                errs.push(FieldError::forbidden(
                    k,
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
    errs
}

pub(crate) fn validate_secret(secret: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let total = validate_data_keys(secret, &["data"], &mut errs, true);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let data = map(secret, "data");
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    match s(secret, "type") {
        "kubernetes.io/service-account-token" => {
            if secret
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .is_none()
            {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" => {
            if !has(".dockercfg") {
                errs.push(FieldError::required("data[.dockercfg]", ""));
            }
        }
        "kubernetes.io/dockerconfigjson" => {
            if !has(".dockerconfigjson") {
                errs.push(FieldError::required("data[.dockerconfigjson]", ""));
            }
        }
        "kubernetes.io/basic-auth" => {
            if !has("username") && !has("password") {
                errs.push(FieldError::required("data[username]", ""));
                errs.push(FieldError::required("data[password]", ""));
            }
        }
        "kubernetes.io/ssh-auth" => {
            if !has("ssh-privatekey") {
                errs.push(FieldError::required("data[ssh-privatekey]", ""));
            }
        }
        "kubernetes.io/tls" => {
            for k in ["tls.key", "tls.crt"] {
                if !has(k) {
                    errs.push(FieldError::required(format!("data[{k}]"), ""));
                }
            }
        }
        "" => errs.push(FieldError::required("type", "")),
        t => {
            for m in meta::is_qualified_name(t) {
                errs.push(FieldError::invalid("type", &json!(t), m));
            }
        }
    }
    errs
}

pub(crate) fn validate_secret_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = meta::validate_immutable(new.get("type"), old.get("type"), "type");
    if old.get("immutable").and_then(Value::as_bool) == Some(true) {
        if new.get("immutable") != old.get("immutable") {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
        if map(new, "data").filter(|m| !m.is_empty()) != map(old, "data").filter(|m| !m.is_empty())
        {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

pub(crate) fn validate_namespace(ns: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in arr(ns.get("spec").unwrap_or(&Value::Null), "finalizers") {
        let v = f.as_str().unwrap_or("");
        for m in meta::is_qualified_name(v) {
            errs.push(FieldError::invalid("spec.finalizers", &json!(v), m));
        }
        if !v.contains('/') && !meta::STANDARD_FINALIZERS.contains(&v) {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                &json!(v),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

fn validate_taints(taints: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (i, t) in taints.iter().enumerate() {
        let tp = index(path, i);
        let k = s(t, "key");
        errs.extend(meta::validate_label_name(k, &child(&tp, "key")));
        let v = s(t, "value");
        for m in meta::is_valid_label_value(v) {
            errs.push(FieldError::invalid(child(&tp, "value"), &json!(v), m));
        }
        let e = s(t, "effect");
        const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
        if e.is_empty() {
            errs.push(FieldError::required(child(&tp, "effect"), ""));
        } else if !EFFECTS.contains(&e) {
            errs.push(FieldError::not_supported(
                child(&tp, "effect"),
                &json!(e),
                EFFECTS,
            ));
        }
        if !seen.insert((k.to_string(), e.to_string())) {
            errs.push(FieldError::duplicate(tp, &json!(format!("{k}:{e}"))));
        }
    }
}

pub(crate) fn validate_node(node: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = node.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    validate_taints(arr(spec, "taints"), "spec.taints", &mut errs);
    for (i, c) in arr(spec, "podCIDRs").iter().enumerate() {
        let v = c.as_str().unwrap_or("");
        if !is_cidr(v) {
            errs.push(FieldError::invalid(
                index("spec.podCIDRs", i),
                &json!(v),
                CIDR_ERROR,
            ));
        }
    }
    if arr(spec, "podCIDRs").len() > 2 {
        errs.push(FieldError::invalid(
            "spec.podCIDRs",
            &json!(arr(spec, "podCIDRs")),
            "may specify no more than one CIDR for each IP family",
        ));
    }
    errs
}

pub(crate) fn validate_node_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let (ns, os) = (
        new.get("spec").unwrap_or(&null),
        old.get("spec").unwrap_or(&null),
    );
    let mut errs = Vec::new();
    if !arr(os, "podCIDRs").is_empty() && arr(ns, "podCIDRs") != arr(os, "podCIDRs") {
        errs.push(FieldError::forbidden(
            "spec.podCIDRs",
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    if !s(os, "providerID").is_empty() && s(ns, "providerID") != s(os, "providerID") {
        errs.push(FieldError::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs
}

fn validate_access_modes(spec: &Value, path: &str, required_msg: &str, errs: &mut Vec<FieldError>) {
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            child(path, "accessModes"),
            required_msg,
        ));
    }
    for m in modes {
        let v = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&v) {
            errs.push(FieldError::not_supported(
                child(path, "accessModes"),
                &json!(v),
                ACCESS_MODES,
            ));
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        errs.push(FieldError::forbidden(
            child(path, "accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

fn validate_volume_mode(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if present(spec, "volumeMode") {
        let v = s(spec, "volumeMode");
        if !matches!(v, "Block" | "Filesystem") {
            errs.push(FieldError::not_supported(
                child(path, "volumeMode"),
                &json!(v),
                &["Block", "Filesystem"],
            ));
        }
    }
}

/// `ValidatePersistentVolumeClaimSpec` (also used for StatefulSet volumeClaimTemplates).
pub(crate) fn validate_pvc_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_access_modes(spec, path, "at least 1 access mode is required", &mut errs);
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        errs.extend(validate_label_selector(sel, &child(path, "selector")));
    }
    let storage_path = key(&child(path, "resources"), "storage");
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => errs.push(FieldError::required(storage_path, "")),
        Some(q) => {
            let qs = q
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| q.to_string());
            match quantity::parse(&qs) {
                None => errs.push(FieldError::invalid(
                    storage_path,
                    &json!(qs),
                    quantity::QUANTITY_FORMAT_ERROR,
                )),
                Some(v) if v <= 0.0 => errs.push(FieldError::invalid(
                    storage_path,
                    &json!(qs),
                    "must be greater than zero",
                )),
                _ => {}
            }
        }
    }
    validate_volume_mode(spec, path, &mut errs);
    let sc = s(spec, "storageClassName");
    if !sc.is_empty() {
        errs.extend(dns_subdomain_field(sc, &child(path, "storageClassName")));
    }
    errs
}

pub(crate) fn validate_pvc(pvc: &Value) -> Vec<FieldError> {
    validate_pvc_spec(pvc.get("spec").unwrap_or(&Value::Null), "spec")
}

/// PVC spec is immutable except `resources.requests` (no shrinking), `volumeAttributesClassName`
/// and binding `volumeName` once.
pub(crate) fn validate_pvc_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let (ns, os) = (
        new.get("spec").unwrap_or(&null),
        old.get("spec").unwrap_or(&null),
    );
    let mut errs = Vec::new();
    let mut munged = os.clone();
    if let Some(m) = munged.as_object_mut() {
        if let Some(req) = ns.pointer("/resources/requests") {
            let res = m.entry("resources").or_insert_with(|| json!({}));
            if let Some(r) = res.as_object_mut() {
                r.insert("requests".into(), req.clone());
            }
        }
        match ns.get("volumeAttributesClassName") {
            Some(v) => m.insert("volumeAttributesClassName".into(), v.clone()),
            None => m.remove("volumeAttributesClassName"),
        };
        if s(os, "volumeName").is_empty() {
            if let Some(v) = ns.get("volumeName") {
                m.insert("volumeName".into(), v.clone());
            }
        }
    }
    if &munged != ns {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let q = |v: &Value| {
        v.pointer("/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(quantity::parse)
    };
    if let (Some(n), Some(o)) = (q(ns), q(os)) {
        if n < o {
            errs.push(FieldError::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than previous value",
            ));
        }
    }
    errs
}

const PV_SOURCES: &[&str] = &[
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "iscsi",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

pub(crate) fn validate_persistent_volume(pv: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = pv.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    validate_access_modes(spec, "spec", "", &mut errs);
    match map(spec, "capacity") {
        None => errs.push(FieldError::required("spec.capacity", "")),
        Some(c) if c.is_empty() => errs.push(FieldError::required("spec.capacity", "")),
        Some(c) => {
            if !c.contains_key("storage") || c.len() > 1 {
                errs.push(FieldError::not_supported(
                    "spec.capacity",
                    &Value::Object(c.clone()),
                    &["storage"],
                ));
            }
            for (r, q) in c {
                let qs = q.as_str().unwrap_or("");
                if quantity::parse(qs).is_none() {
                    errs.push(FieldError::invalid(
                        key("spec.capacity", r),
                        &json!(qs),
                        quantity::QUANTITY_FORMAT_ERROR,
                    ));
                }
            }
        }
    }
    let rp = s(spec, "persistentVolumeReclaimPolicy");
    if !rp.is_empty() && !matches!(rp, "Delete" | "Recycle" | "Retain") {
        errs.push(FieldError::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            &json!(rp),
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let sources: Vec<&str> = PV_SOURCES
        .iter()
        .copied()
        .filter(|k| present(spec, k))
        .collect();
    match sources.as_slice() {
        [] => errs.push(FieldError::required("spec", "must specify a volume type")),
        [one] => {
            let src = &spec[*one];
            match *one {
                "hostPath" | "local" if s(src, "path").is_empty() => {
                    errs.push(FieldError::required(format!("spec.{one}.path"), ""))
                }
                "nfs" if s(src, "server").is_empty() => {
                    errs.push(FieldError::required("spec.nfs.server", ""))
                }
                "csi" if s(src, "driver").is_empty() => {
                    errs.push(FieldError::required("spec.csi.driver", ""))
                }
                "csi" if s(src, "volumeHandle").is_empty() => {
                    errs.push(FieldError::required("spec.csi.volumeHandle", ""))
                }
                _ => {}
            }
            if *one == "local" && !present(spec, "nodeAffinity") {
                errs.push(FieldError::required(
                    "spec.nodeAffinity",
                    "Local volume requires node affinity",
                ));
            }
        }
        [_, rest @ ..] => {
            for extra in rest {
                errs.push(FieldError::forbidden(
                    format!("spec.{extra}"),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    validate_volume_mode(spec, "spec", &mut errs);
    let sc = s(spec, "storageClassName");
    if !sc.is_empty() {
        errs.extend(dns_subdomain_field(sc, "spec.storageClassName"));
    }
    errs
}

pub(crate) fn validate_persistent_volume_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let (ns, os) = (
        new.get("spec").unwrap_or(&null),
        old.get("spec").unwrap_or(&null),
    );
    let mut errs = Vec::new();
    let source = |spec: &Value| -> Vec<(String, Value)> {
        PV_SOURCES
            .iter()
            .filter_map(|k| spec.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect()
    };
    if source(ns) != source(os) {
        errs.push(FieldError::forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    errs.extend(meta::validate_immutable(
        ns.get("volumeMode"),
        os.get("volumeMode"),
        "volumeMode",
    ));
    if present(os, "nodeAffinity") {
        errs.extend(meta::validate_immutable(
            ns.get("nodeAffinity"),
            os.get("nodeAffinity"),
            "nodeAffinity",
        ));
    }
    errs
}

pub(crate) fn validate_storage_class(sc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let p = s(sc, "provisioner");
    if p.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        for m in meta::is_qualified_name(&p.to_lowercase()) {
            errs.push(FieldError::invalid("provisioner", &json!(p), m));
        }
    }
    let rp = s(sc, "reclaimPolicy");
    if !matches!(rp, "Delete" | "Retain") {
        errs.push(FieldError::not_supported(
            "reclaimPolicy",
            &json!(rp),
            &["Delete", "Retain"],
        ));
    }
    let vbm = s(sc, "volumeBindingMode");
    if vbm.is_empty() {
        errs.push(FieldError::required("volumeBindingMode", ""));
    } else if !matches!(vbm, "Immediate" | "WaitForFirstConsumer") {
        errs.push(FieldError::not_supported(
            "volumeBindingMode",
            &json!(vbm),
            &["Immediate", "WaitForFirstConsumer"],
        ));
    }
    if let Some(params) = map(sc, "parameters") {
        if params.len() > 512 {
            errs.push(FieldError::too_long("parameters", 512));
        }
        for k in params.keys() {
            if k.is_empty() {
                errs.push(FieldError::invalid(
                    "parameters",
                    &json!(k),
                    "field can not be empty.",
                ));
            }
        }
    }
    errs
}

pub(crate) fn validate_storage_class_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if map(new, "parameters").filter(|m| !m.is_empty())
        != map(old, "parameters").filter(|m| !m.is_empty())
    {
        errs.push(FieldError::forbidden(
            "parameters",
            "updates to parameters are forbidden.",
        ));
    }
    if s(new, "provisioner") != s(old, "provisioner") {
        errs.push(FieldError::forbidden(
            "provisioner",
            "updates to provisioner are forbidden.",
        ));
    }
    if new.get("reclaimPolicy") != old.get("reclaimPolicy") {
        errs.push(FieldError::forbidden(
            "reclaimPolicy",
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    errs.extend(meta::validate_immutable(
        new.get("volumeBindingMode"),
        old.get("volumeBindingMode"),
        "volumeBindingMode",
    ));
    errs
}

/// Highest priority a user-defined PriorityClass may have.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

pub(crate) fn validate_priority_class(pc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = pc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let system = matches!(name, "system-cluster-critical" | "system-node-critical");
    if name.starts_with("system-") && !system {
        errs.push(FieldError::forbidden(
            "metadata.name",
            "priority class names with 'system-' prefix are reserved",
        ));
    }
    let value = int(pc, "value").unwrap_or(0);
    if !system && value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
        ));
    }
    let pp = s(pc, "preemptionPolicy");
    if present(pc, "preemptionPolicy") && !matches!(pp, "Never" | "PreemptLowerPriority") {
        errs.push(FieldError::not_supported(
            "preemptionPolicy",
            &json!(pp),
            &["Never", "PreemptLowerPriority"],
        ));
    }
    errs
}

pub(crate) fn validate_priority_class_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if new.get("value") != old.get("value") {
        errs.push(FieldError::forbidden(
            "value",
            "may not be changed in an update.",
        ));
    }
    errs.extend(meta::validate_immutable(
        new.get("preemptionPolicy"),
        old.get("preemptionPolicy"),
        "preemptionPolicy",
    ));
    errs
}

pub(crate) fn validate_role(role: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, rule) in arr(role, "rules").iter().enumerate() {
        let rp = index("rules", i);
        if arr(rule, "verbs").is_empty() {
            errs.push(FieldError::required(
                child(&rp, "verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr(rule, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                errs.push(meta::invalid_go(
                    child(&rp, "nonResourceURLs"),
                    &json!(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(rule, "apiGroups").is_empty() || !arr(rule, "resources").is_empty() {
                errs.push(meta::invalid_go(
                    child(&rp, "nonResourceURLs"),
                    &json!(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(rule, "apiGroups").is_empty() {
            errs.push(FieldError::required(
                child(&rp, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr(rule, "resources").is_empty() {
            errs.push(FieldError::required(
                child(&rp, "resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    if let Some(ar) = role.get("aggregationRule").filter(|a| !a.is_null()) {
        for (i, sel) in arr(ar, "clusterRoleSelectors").iter().enumerate() {
            errs.extend(validate_label_selector(
                sel,
                &index("aggregationRule.clusterRoleSelectors", i),
            ));
        }
    }
    errs
}

pub(crate) fn validate_role_binding(rb: &Value, namespaced: bool) -> Vec<FieldError> {
    let null = Value::Null;
    let rr = rb.get("roleRef").unwrap_or(&null);
    let mut errs = Vec::new();
    let g = s(rr, "apiGroup");
    if g != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &json!(g),
            &[RBAC_GROUP],
        ));
    }
    let kind = s(rr, "kind");
    if namespaced {
        if !matches!(kind, "Role" | "ClusterRole") {
            errs.push(FieldError::not_supported(
                "roleRef.kind",
                &json!(kind),
                &["Role", "ClusterRole"],
            ));
        }
    } else if kind != "ClusterRole" {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            &json!(kind),
            &["ClusterRole"],
        ));
    }
    let name = s(rr, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        errs.extend(super::name_field(
            NameRule::PathSegment,
            name,
            "roleRef.name",
        ));
    }
    for (i, sub) in arr(rb, "subjects").iter().enumerate() {
        let sp = index("subjects", i);
        let n = s(sub, "name");
        if n.is_empty() {
            errs.push(FieldError::required(child(&sp, "name"), ""));
        }
        let ag = s(sub, "apiGroup");
        match s(sub, "kind") {
            "ServiceAccount" => {
                if !n.is_empty() {
                    errs.extend(super::name_field(
                        NameRule::Dns1123Subdomain,
                        n,
                        &child(&sp, "name"),
                    ));
                }
                if !ag.is_empty() {
                    errs.push(FieldError::not_supported(
                        child(&sp, "apiGroup"),
                        &json!(ag),
                        &[""],
                    ));
                }
                if !namespaced && s(sub, "namespace").is_empty() {
                    errs.push(FieldError::required(child(&sp, "namespace"), ""));
                }
            }
            "User" | "Group" => {
                if ag != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        child(&sp, "apiGroup"),
                        &json!(ag),
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&sp, "kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

fn validate_np_ports(ports: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, p) in ports.iter().enumerate() {
        let pp = index(path, i);
        let proto = s(p, "protocol");
        if present(p, "protocol") && !PROTOCOLS.contains(&proto) {
            errs.push(FieldError::not_supported(
                child(&pp, "protocol"),
                &json!(proto),
                PROTOCOLS,
            ));
        }
        match p.get("port") {
            Some(Value::Number(n)) => {
                let port = n.as_i64().unwrap_or(0);
                for m in is_valid_port_num(port) {
                    errs.push(FieldError::invalid(child(&pp, "port"), &json!(port), m));
                }
                if let Some(end) = int(p, "endPort") {
                    if end < port {
                        errs.push(FieldError::invalid(
                            child(&pp, "endPort"),
                            &json!(end),
                            "must be greater than or equal to `port`",
                        ));
                    }
                    for m in is_valid_port_num(end) {
                        errs.push(FieldError::invalid(child(&pp, "endPort"), &json!(end), m));
                    }
                }
            }
            Some(Value::String(name)) => {
                if present(p, "endPort") {
                    errs.push(FieldError::forbidden(
                        child(&pp, "endPort"),
                        "may not be specified when `port` is non-numeric",
                    ));
                }
                for m in is_valid_port_name(name) {
                    errs.push(FieldError::invalid(child(&pp, "port"), &json!(name), m));
                }
            }
            _ => {
                if present(p, "endPort") {
                    errs.push(FieldError::forbidden(
                        child(&pp, "endPort"),
                        "may not be specified when `port` is not specified",
                    ));
                }
            }
        }
    }
}

/// Whether CIDR `inner` lies within CIDR `outer` and is strictly smaller.
fn cidr_strict_subset(inner: &str, outer: &str) -> bool {
    fn parse(c: &str) -> Option<(u128, u32, u32)> {
        let (ip, bits) = c.split_once('/')?;
        let bits: u32 = bits.parse().ok()?;
        match ip.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(a) => Some((u32::from(a) as u128, bits, 32)),
            std::net::IpAddr::V6(a) => Some((u128::from(a), bits, 128)),
        }
    }
    let (Some((ia, ib, iw)), Some((oa, ob, ow))) = (parse(inner), parse(outer)) else {
        return false;
    };
    if iw != ow || ib <= ob {
        return false;
    }
    let shift = ow - ob;
    let net = |a: u128| if shift >= 128 { 0 } else { a >> shift };
    net(ia) == net(oa)
}

fn validate_np_peers(peers: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, peer) in peers.iter().enumerate() {
        let pp = index(path, i);
        let n = ["podSelector", "namespaceSelector", "ipBlock"]
            .iter()
            .filter(|k| present(peer, k))
            .count();
        if n == 0 {
            errs.push(FieldError::required(pp.clone(), "must specify a peer"));
        } else if present(peer, "ipBlock") && n > 1 {
            errs.push(FieldError::forbidden(
                pp.clone(),
                "may not specify both ipBlock and another peer",
            ));
        }
        for k in ["podSelector", "namespaceSelector"] {
            if let Some(sel) = peer.get(k).filter(|v| !v.is_null()) {
                errs.extend(validate_label_selector(sel, &child(&pp, k)));
            }
        }
        if let Some(b) = peer.get("ipBlock").filter(|v| !v.is_null()) {
            let bp = child(&pp, "ipBlock");
            let cidr = s(b, "cidr");
            if cidr.is_empty() {
                errs.push(FieldError::required(child(&bp, "cidr"), ""));
            } else if !is_cidr(cidr) {
                errs.push(FieldError::invalid(
                    child(&bp, "cidr"),
                    &json!(cidr),
                    CIDR_ERROR,
                ));
            }
            for (j, e) in arr(b, "except").iter().enumerate() {
                let v = e.as_str().unwrap_or("");
                let ep = index(&child(&bp, "except"), j);
                if !is_cidr(v) {
                    errs.push(FieldError::invalid(ep, &json!(v), CIDR_ERROR));
                } else if is_cidr(cidr) && !cidr_strict_subset(v, cidr) {
                    errs.push(FieldError::invalid(
                        ep,
                        &json!(v),
                        "must be a strict subset of `cidr`",
                    ));
                }
            }
        }
    }
}

pub(crate) fn validate_network_policy(np: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = np.get("spec").unwrap_or(&null);
    let mut errs =
        validate_label_selector(spec.get("podSelector").unwrap_or(&null), "spec.podSelector");
    for (i, r) in arr(spec, "ingress").iter().enumerate() {
        let rp = index("spec.ingress", i);
        validate_np_ports(arr(r, "ports"), &child(&rp, "ports"), &mut errs);
        validate_np_peers(arr(r, "from"), &child(&rp, "from"), &mut errs);
    }
    for (i, r) in arr(spec, "egress").iter().enumerate() {
        let rp = index("spec.egress", i);
        validate_np_ports(arr(r, "ports"), &child(&rp, "ports"), &mut errs);
        validate_np_peers(arr(r, "to"), &child(&rp, "to"), &mut errs);
    }
    let types = arr(spec, "policyTypes");
    for (i, t) in types.iter().enumerate() {
        let v = t.as_str().unwrap_or("");
        if !matches!(v, "Ingress" | "Egress") {
            errs.push(FieldError::not_supported(
                index("spec.policyTypes", i),
                &json!(v),
                &["Ingress", "Egress"],
            ));
        }
    }
    if types.len() > 2 {
        errs.push(meta::invalid_go(
            "spec.policyTypes",
            &json!(types),
            "may not specify more than two policyTypes",
        ));
    }
    errs
}

/// Upstream `IsWildcardDNS1123Subdomain`.
fn wildcard_subdomain_errors(host: &str) -> Vec<String> {
    const FMT: &str = r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
    let mut errs = Vec::new();
    if host.len() > meta::DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(meta::max_len_error(meta::DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    let ok = host
        .strip_prefix("*.")
        .is_some_and(|rest| meta::is_dns1123_subdomain(rest).is_empty());
    if !ok {
        errs.push(meta::regex_error(
            "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character",
            FMT,
            &["*.example.com"],
        ));
    }
    errs
}

/// `validateIngressTypedLocalObjectReference` (resource backends, IngressClass parameters).
fn validate_typed_local_ref(r: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(g) = r.get("apiGroup").and_then(Value::as_str) {
        errs.extend(dns_subdomain_field(g, &child(path, "apiGroup")));
    }
    for k in ["kind", "name"] {
        let v = s(r, k);
        if v.is_empty() {
            errs.push(FieldError::required(
                child(path, k),
                format!("{k} is required"),
            ));
        } else {
            errs.extend(super::name_field(NameRule::PathSegment, v, &child(path, k)));
        }
    }
}

/// `validateIngressBackend`.
fn validate_ingress_backend(b: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match (present(b, "service"), present(b, "resource")) {
        (true, true) => errs.push(FieldError::invalid(
            path,
            &json!(""),
            "cannot set both resource and service backends",
        )),
        (false, false) => errs.push(FieldError::invalid(
            path,
            &json!(""),
            "resource or service backend is required",
        )),
        (false, true) => validate_typed_local_ref(&b["resource"], &child(path, "resource"), errs),
        (true, false) => {
            let svc = &b["service"];
            let name = s(svc, "name");
            let np = format!("{path}.service.name");
            if name.is_empty() {
                errs.push(FieldError::required(np, ""));
            } else {
                for m in meta::is_dns1035_label(name) {
                    errs.push(FieldError::invalid(np.clone(), &json!(name), m));
                }
            }
            let port = svc.get("port").unwrap_or(&Value::Null);
            let pname = s(port, "name");
            let pnum = int(port, "number").unwrap_or(0);
            match (!pname.is_empty(), pnum != 0) {
                (true, true) => errs.push(FieldError::invalid(
                    path,
                    &json!(""),
                    "cannot set both port name & port number",
                )),
                (true, false) => {
                    for m in is_valid_port_name(pname) {
                        errs.push(FieldError::invalid(
                            format!("{path}.service.port.name"),
                            &json!(pname),
                            m,
                        ));
                    }
                }
                (false, true) => {
                    for m in is_valid_port_num(pnum) {
                        errs.push(FieldError::invalid(
                            format!("{path}.service.port.number"),
                            &json!(pnum),
                            m,
                        ));
                    }
                }
                (false, false) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
    }
}

const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

pub(crate) fn validate_ingress(ing: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = ing.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    let rules = arr(spec, "rules");
    match spec.get("defaultBackend").filter(|b| !b.is_null()) {
        Some(b) => validate_ingress_backend(b, "spec.defaultBackend", &mut errs),
        None if rules.is_empty() => errs.push(FieldError::invalid(
            "spec",
            &json!(rules),
            "either `defaultBackend` or `rules` must be specified",
        )),
        None => {}
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = index("spec.rules", i);
        let host = s(rule, "host");
        if !host.is_empty() {
            if is_ip(host) {
                errs.push(FieldError::invalid(
                    child(&rp, "host"),
                    &json!(host),
                    "must be a DNS name, not an IP address",
                ));
            }
            let msgs = if host.contains('*') {
                wildcard_subdomain_errors(host)
            } else {
                meta::is_dns1123_subdomain(host)
            };
            for m in msgs {
                errs.push(FieldError::invalid(child(&rp, "host"), &json!(host), m));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
            continue;
        };
        let hp = child(&rp, "http");
        let paths = arr(http, "paths");
        if paths.is_empty() {
            errs.push(FieldError::required(child(&hp, "paths"), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = index(&child(&hp, "paths"), j);
            let path = s(p, "path");
            match s(p, "pathType") {
                "" => {
                    errs.push(FieldError::required(
                        child(&pp, "pathType"),
                        "pathType must be specified",
                    ));
                    continue;
                }
                "Exact" | "Prefix" => {
                    if !path.starts_with('/') {
                        errs.push(FieldError::invalid(
                            child(&pp, "path"),
                            &json!(path),
                            "must be an absolute path",
                        ));
                    }
                    for seq in INVALID_PATH_SEQUENCES {
                        if path.contains(seq) {
                            errs.push(FieldError::invalid(
                                child(&pp, "path"),
                                &json!(path),
                                format!("must not contain '{seq}'"),
                            ));
                        }
                    }
                    for suf in INVALID_PATH_SUFFIXES {
                        if path.ends_with(suf) {
                            errs.push(FieldError::invalid(
                                child(&pp, "path"),
                                &json!(path),
                                format!("cannot end with '{suf}'"),
                            ));
                        }
                    }
                }
                "ImplementationSpecific" => {
                    if !path.is_empty() && !path.starts_with('/') {
                        errs.push(FieldError::invalid(
                            child(&pp, "path"),
                            &json!(path),
                            "must be an absolute path",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    child(&pp, "pathType"),
                    &json!(other),
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            validate_ingress_backend(
                p.get("backend").unwrap_or(&null),
                &child(&pp, "backend"),
                &mut errs,
            );
        }
    }
    for (i, t) in arr(spec, "tls").iter().enumerate() {
        let tp = index("spec.tls", i);
        for (j, h) in arr(t, "hosts").iter().enumerate() {
            let host = h.as_str().unwrap_or("");
            let msgs = if host.contains('*') {
                wildcard_subdomain_errors(host)
            } else {
                meta::is_dns1123_subdomain(host)
            };
            for m in msgs {
                errs.push(FieldError::invalid(
                    index(&child(&tp, "hosts"), j),
                    &json!(host),
                    m,
                ));
            }
        }
        let secret = s(t, "secretName");
        if !secret.is_empty() {
            errs.extend(dns_subdomain_field(secret, &child(&tp, "secretName")));
        }
    }
    let class = s(spec, "ingressClassName");
    if !class.is_empty() {
        errs.extend(dns_subdomain_field(class, "spec.ingressClassName"));
    }
    errs
}

pub(crate) fn validate_pdb(pdb: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = pdb.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    if present(spec, "minAvailable") && present(spec, "maxUnavailable") {
        errs.push(FieldError::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for k in ["minAvailable", "maxUnavailable"] {
        errs.extend(validate_int_or_percent(
            spec.get(k),
            &format!("spec.{k}"),
            true,
        ));
    }
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        errs.extend(validate_label_selector(sel, "spec.selector"));
    }
    if present(spec, "unhealthyPodEvictionPolicy") {
        let p = s(spec, "unhealthyPodEvictionPolicy");
        if !matches!(p, "AlwaysAllow" | "IfHealthyBudget") {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                &json!(p),
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
    errs
}

fn validate_scaling_rules(rules: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(r) = rules.filter(|r| !r.is_null()) else {
        return;
    };
    if let Some(w) = int(r, "stabilizationWindowSeconds") {
        if w < 0 {
            errs.push(FieldError::invalid(
                child(path, "stabilizationWindowSeconds"),
                &json!(w),
                meta::IS_NEGATIVE,
            ));
        } else if w > 3600 {
            errs.push(FieldError::invalid(
                child(path, "stabilizationWindowSeconds"),
                &json!(w),
                "must be less than or equal to 3600",
            ));
        }
    }
    let sp = s(r, "selectPolicy");
    if present(r, "selectPolicy") && !matches!(sp, "Disabled" | "Max" | "Min") {
        errs.push(FieldError::not_supported(
            child(path, "selectPolicy"),
            &json!(sp),
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = arr(r, "policies");
    if present(r, "policies") && policies.is_empty() {
        errs.push(FieldError::required(
            child(path, "policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let pp = index(&child(path, "policies"), i);
        let t = s(p, "type");
        if !matches!(t, "Pods" | "Percent") {
            errs.push(FieldError::not_supported(
                child(&pp, "type"),
                &json!(t),
                &["Percent", "Pods"],
            ));
        }
        let v = int(p, "value").unwrap_or(0);
        if v <= 0 {
            errs.push(FieldError::invalid(
                child(&pp, "value"),
                &json!(v),
                "must be greater than zero",
            ));
        }
        let ps = int(p, "periodSeconds").unwrap_or(0);
        if ps <= 0 {
            errs.push(FieldError::invalid(
                child(&pp, "periodSeconds"),
                &json!(ps),
                "must be greater than zero",
            ));
        } else if ps > 1800 {
            errs.push(FieldError::invalid(
                child(&pp, "periodSeconds"),
                &json!(ps),
                "must be less than or equal to 1800",
            ));
        }
    }
}

pub(crate) fn validate_hpa(hpa: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = hpa.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    let r = spec.get("scaleTargetRef").unwrap_or(&null);
    if s(r, "kind").is_empty() {
        errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
    } else {
        errs.extend(super::name_field(
            NameRule::PathSegment,
            s(r, "kind"),
            "spec.scaleTargetRef.kind",
        ));
    }
    if s(r, "name").is_empty() {
        errs.push(FieldError::required("spec.scaleTargetRef.name", ""));
    } else {
        errs.extend(super::name_field(
            NameRule::PathSegment,
            s(r, "name"),
            "spec.scaleTargetRef.name",
        ));
    }
    let min = int(spec, "minReplicas");
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            &json!(m),
            "must be greater than or equal to 1",
        ));
    }
    let max = int(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    if let Some(t) = int(spec, "targetCPUUtilizationPercentage").filter(|t| *t < 1) {
        errs.push(FieldError::invalid(
            "spec.targetCPUUtilizationPercentage",
            &json!(t),
            "must be greater than 0",
        ));
    }
    const METRIC_TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    for (i, m) in arr(spec, "metrics").iter().enumerate() {
        let t = s(m, "type");
        let mp = index("spec.metrics", i);
        if t.is_empty() {
            errs.push(FieldError::required(
                child(&mp, "type"),
                "must specify a metric source type",
            ));
        } else if !METRIC_TYPES.contains(&t) {
            errs.push(FieldError::not_supported(
                child(&mp, "type"),
                &json!(t),
                METRIC_TYPES,
            ));
        }
    }
    if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
        validate_scaling_rules(b.get("scaleUp"), "spec.behavior.scaleUp", &mut errs);
        validate_scaling_rules(b.get("scaleDown"), "spec.behavior.scaleDown", &mut errs);
    }
    errs
}

/// Quantities of a ResourceList at `path`: valid and non-negative; resources counted in whole
/// objects (`pods`, `count/...`, `services`, ...) must be integers.
fn validate_quantity_list(list: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = list.and_then(Value::as_object) else {
        return;
    };
    for (k, q) in m {
        let kp = key(path, k);
        if k.contains('/')
            && !k.starts_with("count/")
            && !k.starts_with("requests.")
            && !k.starts_with("limits.")
        {
            for msg in meta::is_qualified_name(k) {
                errs.push(FieldError::invalid(kp.clone(), &json!(k), msg));
            }
        }
        let qs = q
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| q.to_string());
        match quantity::parse(&qs) {
            None => errs.push(FieldError::invalid(
                kp,
                &json!(qs),
                quantity::QUANTITY_FORMAT_ERROR,
            )),
            Some(v) if v < 0.0 => errs.push(FieldError::invalid(kp, &json!(qs), meta::IS_NEGATIVE)),
            Some(_) => {
                let integral = k.starts_with("count/")
                    || matches!(
                        k.as_str(),
                        "pods"
                            | "services"
                            | "replicationcontrollers"
                            | "resourcequotas"
                            | "secrets"
                            | "configmaps"
                            | "persistentvolumeclaims"
                            | "services.nodeports"
                            | "services.loadbalancers"
                    );
                if integral && !quantity::is_integer(&qs) {
                    errs.push(FieldError::invalid(kp, &json!(qs), "must be an integer"));
                }
            }
        }
    }
}

pub(crate) fn validate_resource_quota(rq: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = rq.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    validate_quantity_list(spec.get("hard"), "spec.hard", &mut errs);
    const SCOPES: &[&str] = &[
        "BestEffort",
        "CrossNamespacePodAffinity",
        "NotBestEffort",
        "NotTerminating",
        "PriorityClass",
        "Terminating",
        "VolumeAttributesClass",
    ];
    for (i, sc) in arr(spec, "scopes").iter().enumerate() {
        let v = sc.as_str().unwrap_or("");
        if !SCOPES.contains(&v) {
            errs.push(FieldError::not_supported(
                index("spec.scopes", i),
                &json!(v),
                SCOPES,
            ));
        }
    }
    errs
}

pub(crate) fn validate_limit_range(lr: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = lr.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    const TYPES: &[&str] = &["Container", "PersistentVolumeClaim", "Pod"];
    for (i, item) in arr(spec, "limits").iter().enumerate() {
        let ip = index("spec.limits", i);
        let t = s(item, "type");
        if !TYPES.contains(&t) {
            errs.push(FieldError::not_supported(
                child(&ip, "type"),
                &json!(t),
                TYPES,
            ));
        }
        for k in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            validate_quantity_list(item.get(k), &child(&ip, k), &mut errs);
        }
        if t == "Pod" {
            for k in ["default", "defaultRequest"] {
                if map(item, k).is_some_and(|m| !m.is_empty()) {
                    errs.push(FieldError::forbidden(
                        child(&ip, k),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        let get = |k: &str, r: &str| -> Option<(f64, String)> {
            let q = item.get(k)?.get(r)?;
            let qs = q
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| q.to_string());
            quantity::parse(&qs).map(|v| (v, qs))
        };
        let mut names: Vec<&String> = Vec::new();
        for k in ["max", "min", "default", "defaultRequest"] {
            if let Some(m) = map(item, k) {
                names.extend(m.keys());
            }
        }
        names.sort();
        names.dedup();
        for r in names {
            let (min, max, def, req) = (
                get("min", r),
                get("max", r),
                get("default", r),
                get("defaultRequest", r),
            );
            let mut check = |a: &Option<(f64, String)>,
                             b: &Option<(f64, String)>,
                             field: &str,
                             subject: &Option<(f64, String)>,
                             msg: &dyn Fn(&str, &str) -> String| {
                if let (Some((av, as_)), Some((bv, bs)), Some((_, ss))) = (a, b, subject) {
                    if av > bv {
                        errs.push(FieldError::invalid(
                            key(&child(&ip, field), r),
                            &json!(ss),
                            msg(as_, bs),
                        ));
                    }
                }
            };
            check(&min, &max, "min", &min, &|a, b| {
                format!("min value {a} is greater than max value {b}")
            });
            check(&min, &req, "defaultRequest", &req, &|a, b| {
                format!("min value {a} is greater than default request value {b}")
            });
            check(&req, &max, "defaultRequest", &req, &|a, b| {
                format!("default request value {a} is greater than max value {b}")
            });
            check(&req, &def, "defaultRequest", &req, &|a, b| {
                format!("default request value {a} is greater than default limit value {b}")
            });
            check(&min, &def, "default", &def, &|a, b| {
                format!("min value {a} is greater than default value {b}")
            });
            check(&def, &max, "default", &def, &|a, b| {
                format!("default value {a} is greater than max value {b}")
            });
        }
    }
    errs
}

pub(crate) fn validate_ingress_class(ic: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = ic.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    let c = s(spec, "controller");
    if c.len() > 250 {
        errs.push(FieldError::too_long("spec.controller", 250));
    }
    // upstream `IsDomainPrefixedPath`
    match c.split_once('/') {
        _ if c.is_empty() => errs.push(FieldError::required("spec.controller", "")),
        Some((host, _)) => {
            for m in meta::is_dns1123_subdomain(host) {
                errs.push(FieldError::invalid("spec.controller", &json!(host), m));
            }
        }
        None => errs.push(FieldError::invalid(
            "spec.controller",
            &json!(c),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    if let Some(p) = spec.get("parameters").filter(|p| !p.is_null()) {
        validate_typed_local_ref(p, "spec.parameters", &mut errs);
        match s(p, "scope") {
            "" | "Cluster" => {
                if present(p, "namespace") {
                    errs.push(FieldError::forbidden(
                        "spec.parameters.namespace",
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            "Namespace" => {
                if s(p, "namespace").is_empty() {
                    errs.push(FieldError::required(
                        "spec.parameters.namespace",
                        "`parameters.scope` is set to 'Namespace'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.parameters.scope",
                &json!(other),
                &["Cluster", "Namespace"],
            )),
        }
    }
    errs
}
