//! Pod and pod-template validation (upstream `ValidatePodSpec`, `ValidatePodUpdate`,
//! `ValidatePodStatusUpdate`): containers, ports, env, volumes, mounts, probes, resources,
//! tolerations and the few fields a pod update may change.

use std::collections::{BTreeSet, HashSet};

use serde_json::{json, Value};

use super::quantity;
use super::{
    arr, child, dns_label_field, dns_subdomain_field, index, int, is_ip, key, map, nonneg, present,
    s,
};
use super::{validate_port_num_or_name, PROTOCOLS};
use crate::meta::{self, NameRule};
use crate::status::FieldError;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const POD_PHASES: &[&str] = &["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// The message of a forbidden pod spec update.
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(crate) fn validate_pod(pod: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = pod.get("spec").unwrap_or(&null);
    let mut errs = validate_pod_spec_opts(spec, "spec", true);
    // upstream: pod-level annotations are validated as part of object meta; the spec must exist
    if spec.is_null() {
        errs.insert(0, FieldError::required("spec", ""));
    }
    errs
}

/// Validates an embedded PodTemplateSpec at `path` (metadata labels/annotations and spec).
/// `required` reports a missing template as `Required`.
pub fn validate_pod_template_spec(
    template: Option<&Value>,
    path: &str,
    required: bool,
) -> Vec<FieldError> {
    let Some(t) = template.filter(|t| !t.is_null()) else {
        return if required {
            vec![FieldError::required(path, "")]
        } else {
            Vec::new()
        };
    };
    let mut errs = meta::validate_template_meta(t.get("metadata"), &child(path, "metadata"));
    errs.extend(validate_pod_spec(
        t.get("spec").unwrap_or(&Value::Null),
        &child(path, "spec"),
    ));
    errs
}

/// `ValidatePodSpec` for the pod spec of a pod template at `path`.
pub fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    validate_pod_spec_opts(spec, path, false)
}

/// `ValidatePodSpec`; `is_pod` is upstream's `opts.ResourceIsPod` (a Pod rather than a
/// template, where unset host ports are still to be defaulted).
fn validate_pod_spec_opts(spec: &Value, path: &str, is_pod: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(arr(spec, "volumes"), &child(path, "volumes"), &mut errs);
    let mut names = HashSet::new();
    let containers = arr(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(child(path, "containers"), ""));
    }
    for key_name in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in arr(spec, key_name).iter().enumerate() {
            validate_container(
                c,
                &index(&child(path, key_name), i),
                key_name,
                &volumes,
                &mut names,
                &mut errs,
            );
        }
    }
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key_name in ["containers", "initContainers"] {
            for (i, c) in arr(spec, key_name).iter().enumerate() {
                for (j, p) in arr(c, "ports").iter().enumerate() {
                    let (hp, cp) = (
                        int(p, "hostPort").unwrap_or(0),
                        int(p, "containerPort").unwrap_or(0),
                    );
                    if (is_pod || hp != 0) && hp != cp {
                        errs.push(FieldError::invalid(
                            format!("{path}.{key_name}[{i}].ports[{j}].hostPort"),
                            &json!(hp),
                            "must match `containerPort` when `hostNetwork` is true",
                        ));
                    }
                }
            }
        }
    }
    match s(spec, "restartPolicy") {
        "" => errs.push(FieldError::required(child(path, "restartPolicy"), "")),
        p if RESTART_POLICIES.contains(&p) => {}
        p => errs.push(FieldError::not_supported(
            child(path, "restartPolicy"),
            &json!(p),
            RESTART_POLICIES,
        )),
    }
    match s(spec, "dnsPolicy") {
        "" => errs.push(FieldError::required(child(path, "dnsPolicy"), "")),
        p if DNS_POLICIES.contains(&p) => {}
        p => errs.push(FieldError::not_supported(
            child(path, "dnsPolicy"),
            &json!(p),
            DNS_POLICIES,
        )),
    }
    validate_dns_config(spec, path, &mut errs);
    // host ports may not collide across containers (upstream `checkHostPortConflicts`)
    let mut host_ports = HashSet::new();
    for (i, c) in arr(spec, "containers").iter().enumerate() {
        for (j, p) in arr(c, "ports").iter().enumerate() {
            let hp = int(p, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{hp}", s(p, "protocol"), s(p, "hostIP"));
            if !host_ports.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    format!("{path}.containers[{i}].ports[{j}].hostPort"),
                    &json!(key),
                ));
            }
        }
    }
    if let Some(ads) = int(spec, "activeDeadlineSeconds") {
        if !(1..=u32::MAX as i64).contains(&ads) {
            errs.push(FieldError::invalid(
                child(path, "activeDeadlineSeconds"),
                &json!(ads),
                meta::inclusive_range_error(1, u32::MAX as i64),
            ));
        }
    }
    errs.extend(meta::validate_labels(
        spec.get("nodeSelector"),
        &child(path, "nodeSelector"),
    ));
    for (k, rule) in [
        ("serviceAccountName", NameRule::Dns1123Subdomain),
        ("nodeName", NameRule::Dns1123Subdomain),
    ] {
        let v = s(spec, k);
        if !v.is_empty() {
            errs.extend(super::name_field(rule, v, &child(path, k)));
        }
    }
    for k in ["hostname", "subdomain"] {
        let v = s(spec, k);
        if !v.is_empty() {
            errs.extend(dns_label_field(v, &child(path, k)));
        }
    }
    let pcn = s(spec, "priorityClassName");
    if !pcn.is_empty() {
        errs.extend(dns_subdomain_field(pcn, &child(path, "priorityClassName")));
    }
    let p = s(spec, "preemptionPolicy");
    if !p.is_empty() && !matches!(p, "Never" | "PreemptLowerPriority") {
        errs.push(FieldError::not_supported(
            child(path, "preemptionPolicy"),
            &json!(p),
            &["Never", "PreemptLowerPriority"],
        ));
    }
    errs.extend(validate_tolerations(
        arr(spec, "tolerations"),
        &child(path, "tolerations"),
    ));
    for (i, ha) in arr(spec, "hostAliases").iter().enumerate() {
        let hp = index(&child(path, "hostAliases"), i);
        let ip = s(ha, "ip");
        if ip.is_empty() {
            errs.push(FieldError::required(child(&hp, "ip"), ""));
        } else if !is_ip(ip) {
            errs.push(FieldError::invalid(
                child(&hp, "ip"),
                &json!(ip),
                super::IP_ERROR,
            ));
        }
        for (j, h) in arr(ha, "hostnames").iter().enumerate() {
            errs.extend(dns_subdomain_field(
                h.as_str().unwrap_or(""),
                &index(&child(&hp, "hostnames"), j),
            ));
        }
    }
    for (i, g) in arr(spec, "readinessGates").iter().enumerate() {
        let t = s(g, "conditionType");
        for m in meta::is_qualified_name(t) {
            errs.push(FieldError::invalid(
                child(&index(&child(path, "readinessGates"), i), "conditionType"),
                &json!(t),
                m,
            ));
        }
    }
    if let Some(os) = spec.get("os").filter(|o| !o.is_null()) {
        let n = s(os, "name");
        if n.is_empty() {
            errs.push(FieldError::required(format!("{path}.os.name"), ""));
        } else if !matches!(n, "linux" | "windows") {
            errs.push(FieldError::not_supported(
                format!("{path}.os.name"),
                &json!(n),
                &["linux", "windows"],
            ));
        }
    }
    for (i, g) in arr(spec, "schedulingGates").iter().enumerate() {
        let n = s(g, "name");
        for m in meta::is_qualified_name(n) {
            errs.push(FieldError::invalid(
                child(&index(&child(path, "schedulingGates"), i), "name"),
                &json!(n),
                m,
            ));
        }
    }
    if let Some(a) = spec.get("affinity").filter(|a| !a.is_null()) {
        validate_affinity(a, &child(path, "affinity"), &mut errs);
    }
    validate_topology_spread(
        arr(spec, "topologySpreadConstraints"),
        &child(path, "topologySpreadConstraints"),
        &mut errs,
    );
    if let Some(sc) = spec.get("securityContext").filter(|v| !v.is_null()) {
        validate_security_context(sc, &child(path, "securityContext"), true, &mut errs);
    }
    errs
}

/// Upstream limits of `dnsConfig` (libc resolver limits).
const MAX_DNS_NAMESERVERS: usize = 3;
const MAX_DNS_SEARCH_PATHS: usize = 32;
const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// `validatePodDNSConfig`.
fn validate_dns_config(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let dp = child(path, "dnsConfig");
    let cfg = spec.get("dnsConfig").filter(|c| !c.is_null());
    if s(spec, "dnsPolicy") == "None" {
        match cfg {
            None => {
                errs.push(FieldError::required(
                    dp,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                ));
                return;
            }
            Some(c) if arr(c, "nameservers").is_empty() => {
                errs.push(FieldError::required(
                    child(&dp, "nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            _ => {}
        }
    }
    let Some(c) = cfg else { return };
    let ns = arr(c, "nameservers");
    if ns.len() > MAX_DNS_NAMESERVERS {
        errs.push(meta::invalid_go(
            child(&dp, "nameservers"),
            &json!(ns),
            format!("must not have more than {MAX_DNS_NAMESERVERS} nameservers"),
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        let v = n.as_str().unwrap_or("");
        if !is_ip(v) {
            errs.push(FieldError::invalid(
                index(&child(&dp, "nameservers"), i),
                &json!(v),
                super::IP_ERROR,
            ));
        }
    }
    let searches = arr(c, "searches");
    if searches.len() > MAX_DNS_SEARCH_PATHS {
        errs.push(meta::invalid_go(
            child(&dp, "searches"),
            &json!(searches),
            format!("must not have more than {MAX_DNS_SEARCH_PATHS} search paths"),
        ));
    }
    let total: usize = searches
        .iter()
        .filter_map(Value::as_str)
        .map(str::len)
        .sum::<usize>()
        + searches.len().saturating_sub(1);
    if total > MAX_DNS_SEARCH_LIST_CHARS {
        errs.push(FieldError::invalid(
            child(&dp, "searches"),
            &json!(searches.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")),
            format!("must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including spaces) in the search list"),
        ));
    }
    for (i, sp) in searches.iter().enumerate() {
        let v = sp.as_str().unwrap_or("");
        // a trailing dot is allowed (fully qualified)
        errs.extend(dns_subdomain_field(
            v.strip_suffix('.').unwrap_or(v),
            &index(&child(&dp, "searches"), i),
        ));
    }
    for (i, o) in arr(c, "options").iter().enumerate() {
        if s(o, "name").is_empty() {
            errs.push(FieldError::required(
                child(&index(&child(&dp, "options"), i), "name"),
                "Option.Name must not be empty",
            ));
        }
    }
}

fn validate_volumes(vols: &[Value], path: &str, errs: &mut Vec<FieldError>) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, v) in vols.iter().enumerate() {
        let vp = index(path, i);
        let name = s(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(child(&vp, "name"), ""));
        } else {
            errs.extend(dns_label_field(name, &child(&vp, "name")));
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&vp, "name"), &json!(name)));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|k| present(v, k))
            .collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(
                vp.clone(),
                "must specify a volume type",
            )),
            [one] => validate_volume_source(one, &v[*one], &child(&vp, one), errs),
            [_, rest @ ..] => {
                for extra in rest {
                    errs.push(FieldError::forbidden(
                        child(&vp, extra),
                        "may not specify more than 1 volume type",
                    ));
                }
            }
        }
    }
    names
}

fn validate_file_mode(v: &Value, k: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(m) = int(v, k) {
        if !(0..=0o777).contains(&m) {
            errs.push(FieldError::invalid(
                child(path, k),
                &json!(m),
                FILE_MODE_ERROR,
            ));
        }
    }
}

fn validate_volume_source(kind: &str, src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match kind {
        "configMap" => {
            if s(src, "name").is_empty() {
                errs.push(FieldError::required(child(path, "name"), ""));
            }
            validate_file_mode(src, "defaultMode", path, errs);
            validate_key_to_paths(src, path, errs);
        }
        "secret" => {
            if s(src, "secretName").is_empty() {
                errs.push(FieldError::required(child(path, "secretName"), ""));
            }
            validate_file_mode(src, "defaultMode", path, errs);
            validate_key_to_paths(src, path, errs);
        }
        "hostPath" => {
            if s(src, "path").is_empty() {
                errs.push(FieldError::required(child(path, "path"), ""));
            }
            let t = s(src, "type");
            if !HOST_PATH_TYPES.contains(&t) {
                errs.push(FieldError::not_supported(
                    child(path, "type"),
                    &json!(t),
                    HOST_PATH_TYPES,
                ));
            }
        }
        "persistentVolumeClaim" if s(src, "claimName").is_empty() => {
            errs.push(FieldError::required(child(path, "claimName"), ""));
        }
        "emptyDir" => {
            let m = s(src, "medium");
            if !matches!(m, "" | "Memory") && !m.starts_with("HugePages") {
                errs.push(FieldError::not_supported(
                    child(path, "medium"),
                    &json!(m),
                    &["", "Memory", "HugePages"],
                ));
            }
            if let Some(q) = src.get("sizeLimit").and_then(Value::as_str) {
                validate_quantity(q, &child(path, "sizeLimit"), errs);
            }
        }
        "nfs" => {
            if s(src, "server").is_empty() {
                errs.push(FieldError::required(child(path, "server"), ""));
            }
            let p = s(src, "path");
            if p.is_empty() {
                errs.push(FieldError::required(child(path, "path"), ""));
            } else if !p.starts_with('/') {
                errs.push(FieldError::invalid(
                    child(path, "path"),
                    &json!(p),
                    "must be an absolute path",
                ));
            }
        }
        "downwardAPI" | "projected" => validate_file_mode(src, "defaultMode", path, errs),
        "csi" if s(src, "driver").is_empty() => {
            errs.push(FieldError::required(child(path, "driver"), ""));
        }
        _ => {}
    }
}

fn validate_key_to_paths(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (i, item) in arr(src, "items").iter().enumerate() {
        let ip = index(&child(path, "items"), i);
        if s(item, "key").is_empty() {
            errs.push(FieldError::required(child(&ip, "key"), ""));
        }
        let p = s(item, "path");
        if p.is_empty() {
            errs.push(FieldError::required(child(&ip, "path"), ""));
        } else if p.starts_with('/') {
            errs.push(FieldError::invalid(
                child(&ip, "path"),
                &json!(p),
                "must be a relative path",
            ));
        } else if p.split('/').any(|seg| seg == "..") {
            errs.push(FieldError::invalid(
                child(&ip, "path"),
                &json!(p),
                "must not contain '..'",
            ));
        }
        validate_file_mode(item, "mode", &ip, errs);
    }
}

/// Upstream relaxed env var name rule (RelaxedEnvironmentVariableValidation, on in 1.33).
fn is_env_var_name(n: &str) -> Vec<String> {
    if n.chars().all(|c| (' '..='~').contains(&c) && c != '=') {
        Vec::new()
    } else {
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='".to_string()]
    }
}

fn validate_container(
    c: &Value,
    path: &str,
    list: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = s(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(child(path, "name"), ""));
    } else {
        errs.extend(dns_label_field(name, &child(path, "name")));
        if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(child(path, "name"), &json!(name)));
        }
    }
    let image = s(c, "image");
    if image.is_empty() {
        errs.push(FieldError::required(child(path, "image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            child(path, "image"),
            &json!(image),
            "must not have leading or trailing whitespace",
        ));
    }
    match s(c, "imagePullPolicy") {
        "" => errs.push(FieldError::required(child(path, "imagePullPolicy"), "")),
        p if PULL_POLICIES.contains(&p) => {}
        p => errs.push(FieldError::not_supported(
            child(path, "imagePullPolicy"),
            &json!(p),
            PULL_POLICIES,
        )),
    }
    match s(c, "terminationMessagePolicy") {
        "" => errs.push(FieldError::required(
            child(path, "terminationMessagePolicy"),
            "must be 'File' or 'FallbackToLogsOnError'",
        )),
        "File" | "FallbackToLogsOnError" => {}
        p => errs.push(FieldError::invalid(
            child(path, "terminationMessagePolicy"),
            &json!(p),
            "must be 'File' or 'FallbackToLogsOnError'",
        )),
    }
    // ports
    let mut port_names = HashSet::new();
    for (i, p) in arr(c, "ports").iter().enumerate() {
        let pp = index(&child(path, "ports"), i);
        let pname = s(p, "name");
        if !pname.is_empty() {
            for m in super::is_valid_port_name(pname) {
                errs.push(FieldError::invalid(child(&pp, "name"), &json!(pname), m));
            }
            if !port_names.insert(pname.to_string()) {
                errs.push(FieldError::duplicate(child(&pp, "name"), &json!(pname)));
            }
        }
        match int(p, "containerPort").unwrap_or(0) {
            0 => errs.push(FieldError::required(child(&pp, "containerPort"), "")),
            n => {
                for m in super::is_valid_port_num(n) {
                    errs.push(FieldError::invalid(
                        child(&pp, "containerPort"),
                        &json!(n),
                        m,
                    ));
                }
            }
        }
        if let Some(h) = int(p, "hostPort").filter(|h| *h != 0) {
            for m in super::is_valid_port_num(h) {
                errs.push(FieldError::invalid(child(&pp, "hostPort"), &json!(h), m));
            }
        }
        match s(p, "protocol") {
            "" => errs.push(FieldError::required(child(&pp, "protocol"), "")),
            pr if PROTOCOLS.contains(&pr) => {}
            pr => errs.push(FieldError::not_supported(
                child(&pp, "protocol"),
                &json!(pr),
                PROTOCOLS,
            )),
        }
    }
    // env
    for (i, e) in arr(c, "env").iter().enumerate() {
        let ep = index(&child(path, "env"), i);
        let n = s(e, "name");
        if n.is_empty() {
            errs.push(FieldError::required(child(&ep, "name"), ""));
        } else {
            for m in is_env_var_name(n) {
                errs.push(FieldError::invalid(child(&ep, "name"), &json!(n), m));
            }
        }
        if let Some(vf) = e.get("valueFrom").filter(|v| !v.is_null()) {
            let vfp = child(&ep, "valueFrom");
            if !s(e, "value").is_empty() {
                errs.push(FieldError::invalid(
                    vfp.clone(),
                    &json!(""),
                    "may not be specified when `value` is not empty",
                ));
            }
            let n_src = [
                "fieldRef",
                "resourceFieldRef",
                "configMapKeyRef",
                "secretKeyRef",
                "fileKeyRef",
            ]
            .iter()
            .filter(|k| present(vf, k))
            .count();
            if n_src == 0 {
                errs.push(FieldError::invalid(vfp, &json!(""), "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
            } else if n_src > 1 {
                errs.push(FieldError::invalid(
                    vfp,
                    &json!(""),
                    "may not have more than one field specified at a time",
                ));
            }
        }
    }
    // volume mounts
    let mut mount_paths = HashSet::new();
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let mp = index(&child(path, "volumeMounts"), i);
        let n = s(m, "name");
        if n.is_empty() {
            errs.push(FieldError::required(child(&mp, "name"), ""));
        } else if !volumes.contains(n) {
            errs.push(meta::not_found(child(&mp, "name"), &json!(n)));
        }
        let p = s(m, "mountPath");
        if p.is_empty() {
            errs.push(FieldError::required(child(&mp, "mountPath"), ""));
        } else if !mount_paths.insert(p.to_string()) {
            errs.push(FieldError::invalid(
                child(&mp, "mountPath"),
                &json!(p),
                "must be unique",
            ));
        }
        let sp = s(m, "subPath");
        if sp.starts_with('/') {
            errs.push(FieldError::invalid(
                child(&mp, "subPath"),
                &json!(sp),
                "must be a relative path",
            ));
        } else if sp.split('/').any(|seg| seg == "..") {
            errs.push(FieldError::invalid(
                child(&mp, "subPath"),
                &json!(sp),
                "must not contain '..'",
            ));
        }
    }
    // probes
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(probe).filter(|p| !p.is_null()) {
            let pp = child(path, probe);
            if list == "ephemeralContainers" {
                // reported below with the other fields ephemeral containers may not set
                continue;
            }
            if list == "initContainers" && s(c, "restartPolicy") != "Always" {
                errs.push(FieldError::forbidden(
                    pp,
                    "may not be set for init containers without restartPolicy=Always",
                ));
                continue;
            }
            validate_probe(p, &pp, probe != "readinessProbe", errs);
        }
    }
    if list == "initContainers" {
        let rp = s(c, "restartPolicy");
        if !rp.is_empty() && rp != "Always" {
            errs.push(FieldError::not_supported(
                child(path, "restartPolicy"),
                &json!(rp),
                &["Always"],
            ));
        }
    }
    validate_resources(c.get("resources"), &child(path, "resources"), errs);
    if list == "ephemeralContainers" {
        for k in [
            "ports",
            "resources",
            "lifecycle",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "resizePolicy",
        ] {
            let set = match c.get(k) {
                None | Some(Value::Null) => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                errs.push(FieldError::forbidden(
                    child(path, k),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }
    if let Some(sc) = c.get("securityContext").filter(|v| !v.is_null()) {
        validate_security_context(sc, &child(path, "securityContext"), false, errs);
    }
    for (i, e) in arr(c, "envFrom").iter().enumerate() {
        let ep = index(&child(path, "envFrom"), i);
        let prefix = s(e, "prefix");
        if !prefix.is_empty() {
            for m in is_env_var_name(prefix) {
                errs.push(FieldError::invalid(child(&ep, "prefix"), &json!(prefix), m));
            }
        }
        match (present(e, "configMapRef"), present(e, "secretRef")) {
            (false, false) => errs.push(FieldError::invalid(
                ep,
                &json!(""),
                "must specify one of: `configMapRef` or `secretRef`",
            )),
            (true, true) => errs.push(FieldError::invalid(
                ep,
                &json!(""),
                "may not have more than one field specified at a time",
            )),
            _ => {}
        }
    }
    if let Some(lc) = c.get("lifecycle").filter(|v| !v.is_null()) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lc.get(hook).filter(|v| !v.is_null()) {
                let hp = child(&child(path, "lifecycle"), hook);
                let n = ["exec", "httpGet", "tcpSocket", "sleep"]
                    .iter()
                    .filter(|k| present(h, k))
                    .count();
                if n == 0 {
                    errs.push(FieldError::required(hp, "must specify a handler type"));
                } else if n > 1 {
                    errs.push(FieldError::forbidden(
                        hp,
                        "may not specify more than 1 handler type",
                    ));
                }
            }
        }
    }
}

/// The `int32` id range of `runAsUser`, `runAsGroup`, `fsGroup`, `supplementalGroups`.
const MAX_ID: i64 = i32::MAX as i64;

/// Pod- and container-level security contexts: id ranges and seccomp/AppArmor profile shapes.
fn validate_security_context(sc: &Value, path: &str, pod_level: bool, errs: &mut Vec<FieldError>) {
    for k in ["runAsUser", "runAsGroup", "fsGroup"] {
        if let Some(id) = int(sc, k) {
            if !(0..=MAX_ID).contains(&id) {
                errs.push(FieldError::invalid(
                    child(path, k),
                    &json!(id),
                    meta::inclusive_range_error(0, MAX_ID),
                ));
            }
        }
    }
    if pod_level {
        for (i, g) in arr(sc, "supplementalGroups").iter().enumerate() {
            let id = g.as_i64().unwrap_or(-1);
            if !(0..=MAX_ID).contains(&id) {
                errs.push(FieldError::invalid(
                    index(&child(path, "supplementalGroups"), i),
                    &json!(id),
                    meta::inclusive_range_error(0, MAX_ID),
                ));
            }
        }
        if present(sc, "fsGroupChangePolicy") {
            let p = s(sc, "fsGroupChangePolicy");
            if !matches!(p, "OnRootMismatch" | "Always") {
                errs.push(FieldError::not_supported(
                    child(path, "fsGroupChangePolicy"),
                    &json!(p),
                    &["OnRootMismatch", "Always"],
                ));
            }
        }
    } else if sc.get("privileged").and_then(Value::as_bool) == Some(true)
        && sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false)
    {
        errs.push(FieldError::invalid(
            path.to_string(),
            &json!(""),
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ));
    }
    for (k, types) in [
        (
            "seccompProfile",
            &["Localhost", "RuntimeDefault", "Unconfined"][..],
        ),
        (
            "appArmorProfile",
            &["Localhost", "RuntimeDefault", "Unconfined"][..],
        ),
    ] {
        if let Some(p) = sc.get(k).filter(|v| !v.is_null()) {
            let pp = child(path, k);
            let t = s(p, "type");
            if t.is_empty() {
                errs.push(FieldError::required(child(&pp, "type"), ""));
            } else if !types.contains(&t) {
                errs.push(FieldError::not_supported(
                    child(&pp, "type"),
                    &json!(t),
                    types,
                ));
            }
            let local = s(p, "localhostProfile");
            if t == "Localhost" && local.is_empty() {
                errs.push(FieldError::required(
                    child(&pp, "localhostProfile"),
                    format!("must be set when {k} type is Localhost"),
                ));
            } else if t != "Localhost" && present(p, "localhostProfile") {
                errs.push(FieldError::invalid(
                    child(&pp, "localhostProfile"),
                    &json!(local),
                    format!("can only be set when {k} type is Localhost"),
                ));
            }
        }
    }
}

const NODE_SELECTOR_OPS: &[&str] = &["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"];

/// A NodeSelectorRequirement list (`matchExpressions` of node affinity).
fn validate_node_selector_requirements(reqs: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    for (i, r) in reqs.iter().enumerate() {
        let rp = index(path, i);
        let values = arr(r, "values");
        match s(r, "operator") {
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
            "Gt" | "Lt" => {
                if values.len() != 1 {
                    errs.push(FieldError::required(
                        child(&rp, "values"),
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    ));
                }
            }
            op => errs.push(FieldError::not_supported(
                child(&rp, "operator"),
                &json!(op),
                NODE_SELECTOR_OPS,
            )),
        }
        errs.extend(meta::validate_label_name(s(r, "key"), &child(&rp, "key")));
    }
}

fn validate_node_selector_term(term: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_node_selector_requirements(
        arr(term, "matchExpressions"),
        &child(path, "matchExpressions"),
        errs,
    );
    for (i, r) in arr(term, "matchFields").iter().enumerate() {
        let rp = index(&child(path, "matchFields"), i);
        let k = s(r, "key");
        if k != "metadata.name" {
            errs.push(FieldError::invalid(
                child(&rp, "key"),
                &json!(k),
                "not a valid field selector key",
            ));
        }
        let op = s(r, "operator");
        if !matches!(op, "In" | "NotIn") {
            errs.push(FieldError::invalid(
                child(&rp, "operator"),
                &json!(op),
                "not a valid selector operator",
            ));
        }
        if arr(r, "values").len() != 1 {
            errs.push(FieldError::required(
                child(&rp, "values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            ));
        }
    }
}

fn validate_pod_affinity_term(term: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(sel) = term.get("labelSelector").filter(|v| !v.is_null()) {
        errs.extend(super::validate_label_selector(
            sel,
            &child(path, "labelSelector"),
        ));
    }
    if let Some(sel) = term.get("namespaceSelector").filter(|v| !v.is_null()) {
        errs.extend(super::validate_label_selector(
            sel,
            &child(path, "namespaceSelector"),
        ));
    }
    for (i, ns) in arr(term, "namespaces").iter().enumerate() {
        let v = ns.as_str().unwrap_or("");
        errs.extend(dns_label_field(v, &index(&child(path, "namespaces"), i)));
    }
    let tk = s(term, "topologyKey");
    if tk.is_empty() {
        errs.push(FieldError::required(
            child(path, "topologyKey"),
            "can not be empty",
        ));
    } else {
        errs.extend(meta::validate_label_name(tk, &child(path, "topologyKey")));
    }
}

fn validate_weight(term: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let w = int(term, "weight").unwrap_or(0);
    if !(1..=100).contains(&w) {
        errs.push(FieldError::invalid(
            child(path, "weight"),
            &json!(w),
            "must be in the range 1-100",
        ));
    }
}

/// `validateAffinity`: node affinity terms and pod (anti-)affinity terms.
fn validate_affinity(a: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(na) = a.get("nodeAffinity").filter(|v| !v.is_null()) {
        let np = child(path, "nodeAffinity");
        if let Some(req) = na
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .filter(|v| !v.is_null())
        {
            let rp = child(&np, "requiredDuringSchedulingIgnoredDuringExecution");
            let terms = arr(req, "nodeSelectorTerms");
            if terms.is_empty() {
                errs.push(FieldError::required(
                    child(&rp, "nodeSelectorTerms"),
                    "must have at least one node selector term",
                ));
            }
            for (i, t) in terms.iter().enumerate() {
                validate_node_selector_term(t, &index(&child(&rp, "nodeSelectorTerms"), i), errs);
            }
        }
        for (i, t) in arr(na, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            let tp = index(
                &child(&np, "preferredDuringSchedulingIgnoredDuringExecution"),
                i,
            );
            validate_weight(t, &tp, errs);
            validate_node_selector_term(
                t.get("preference").unwrap_or(&Value::Null),
                &child(&tp, "preference"),
                errs,
            );
        }
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(pa) = a.get(kind).filter(|v| !v.is_null()) else {
            continue;
        };
        let pp = child(path, kind);
        for (i, t) in arr(pa, "requiredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            validate_pod_affinity_term(
                t,
                &index(
                    &child(&pp, "requiredDuringSchedulingIgnoredDuringExecution"),
                    i,
                ),
                errs,
            );
        }
        for (i, t) in arr(pa, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            let tp = index(
                &child(&pp, "preferredDuringSchedulingIgnoredDuringExecution"),
                i,
            );
            validate_weight(t, &tp, errs);
            validate_pod_affinity_term(
                t.get("podAffinityTerm").unwrap_or(&Value::Null),
                &child(&tp, "podAffinityTerm"),
                errs,
            );
        }
    }
}

/// `validateTopologySpreadConstraints`.
fn validate_topology_spread(cs: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let mut seen = HashSet::new();
    for (i, c) in cs.iter().enumerate() {
        let cp = index(path, i);
        let skew = int(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(FieldError::invalid(
                child(&cp, "maxSkew"),
                &json!(skew),
                "must be greater than zero",
            ));
        }
        let tk = s(c, "topologyKey");
        if tk.is_empty() {
            errs.push(FieldError::required(
                child(&cp, "topologyKey"),
                "can not be empty",
            ));
        } else {
            errs.extend(meta::validate_label_name(tk, &child(&cp, "topologyKey")));
        }
        let wu = s(c, "whenUnsatisfiable");
        if !matches!(wu, "DoNotSchedule" | "ScheduleAnyway") {
            errs.push(FieldError::not_supported(
                child(&cp, "whenUnsatisfiable"),
                &json!(wu),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if !seen.insert((tk.to_string(), wu.to_string())) {
            errs.push(FieldError::duplicate(
                cp.clone(),
                &json!(format!("{{{tk}, {wu}}}")),
            ));
        }
        if let Some(md) = int(c, "minDomains") {
            if md <= 0 {
                errs.push(FieldError::invalid(
                    child(&cp, "minDomains"),
                    &json!(md),
                    "must be greater than zero",
                ));
            } else if wu != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    child(&cp, "minDomains"),
                    &json!(md),
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway",
                ));
            }
        }
        for k in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if present(c, k) {
                let v = s(c, k);
                if !matches!(v, "Honor" | "Ignore") {
                    errs.push(FieldError::not_supported(
                        child(&cp, k),
                        &json!(v),
                        &["Honor", "Ignore"],
                    ));
                }
            }
        }
        if let Some(sel) = c.get("labelSelector").filter(|v| !v.is_null()) {
            errs.extend(super::validate_label_selector(
                sel,
                &child(&cp, "labelSelector"),
            ));
        }
    }
}

fn validate_probe(p: &Value, path: &str, success_must_be_one: bool, errs: &mut Vec<FieldError>) {
    let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .filter(|k| present(p, k))
        .collect();
    match handlers.as_slice() {
        [] => errs.push(FieldError::required(
            path.to_string(),
            "must specify a handler type",
        )),
        [_, rest @ ..] => {
            for extra in rest {
                errs.push(FieldError::forbidden(
                    child(path, extra),
                    "may not specify more than 1 handler type",
                ));
            }
        }
    }
    if let Some(g) = p.get("httpGet").filter(|g| !g.is_null()) {
        let gp = child(path, "httpGet");
        errs.extend(validate_port_num_or_name(
            g.get("port"),
            &child(&gp, "port"),
        ));
        let scheme = s(g, "scheme");
        if !matches!(scheme, "HTTP" | "HTTPS") {
            errs.push(FieldError::not_supported(
                child(&gp, "scheme"),
                &json!(scheme),
                &["HTTP", "HTTPS"],
            ));
        }
    }
    if let Some(t) = p.get("tcpSocket").filter(|t| !t.is_null()) {
        errs.extend(validate_port_num_or_name(
            t.get("port"),
            &child(&child(path, "tcpSocket"), "port"),
        ));
    }
    if let Some(g) = p.get("grpc").filter(|g| !g.is_null()) {
        let port = int(g, "port").unwrap_or(0);
        for m in super::is_valid_port_num(port) {
            errs.push(FieldError::invalid(
                child(&child(path, "grpc"), "port"),
                &json!(port),
                m,
            ));
        }
    }
    if let Some(e) = p.get("exec").filter(|e| !e.is_null()) {
        if arr(e, "command").is_empty() {
            errs.push(FieldError::required(
                child(&child(path, "exec"), "command"),
                "",
            ));
        }
    }
    for k in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
        "terminationGracePeriodSeconds",
    ] {
        nonneg(p, k, path, errs);
    }
    if success_must_be_one {
        if let Some(st) = int(p, "successThreshold").filter(|v| *v != 1) {
            errs.push(FieldError::invalid(
                child(path, "successThreshold"),
                &json!(st),
                "must be 1",
            ));
        }
    }
}

fn is_standard_container_resource(r: &str) -> bool {
    matches!(r, "cpu" | "memory" | "ephemeral-storage") || r.starts_with("hugepages-")
}

fn validate_quantity(q: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<f64> {
    match quantity::parse(q) {
        None => {
            errs.push(FieldError::invalid(
                path,
                &json!(q),
                quantity::QUANTITY_FORMAT_ERROR,
            ));
            None
        }
        Some(v) if v < 0.0 => {
            errs.push(FieldError::invalid(path, &json!(q), meta::IS_NEGATIVE));
            None
        }
        Some(v) => Some(v),
    }
}

fn quantity_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ValidateContainerResourceRequirements`: names, quantities, requests <= limits.
fn validate_resources(res: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(res) = res.filter(|r| r.is_object()) else {
        return;
    };
    let mut limits = std::collections::HashMap::new();
    for k in ["limits", "requests"] {
        let Some(m) = map(res, k) else { continue };
        let base = child(path, k);
        for (r, q) in m {
            let rp = key(&base, r);
            if r.contains('/') {
                for msg in meta::is_qualified_name(r) {
                    errs.push(FieldError::invalid(rp.clone(), &json!(r), msg));
                }
            } else if !is_standard_container_resource(r) {
                errs.push(FieldError::invalid(
                    rp.clone(),
                    &json!(r),
                    "must be a standard resource for containers",
                ));
                continue;
            }
            let qs = quantity_str(q);
            let Some(val) = validate_quantity(&qs, &rp, errs) else {
                continue;
            };
            if r.contains('/') && !r.starts_with("kubernetes.io/") && !quantity::is_integer(&qs) {
                errs.push(FieldError::invalid(
                    rp.clone(),
                    &json!(qs),
                    "must be an integer",
                ));
            }
            if k == "limits" {
                limits.insert(r.clone(), (val, qs));
            } else if let Some((lv, ls)) = limits.get(r) {
                if val > *lv + f64::EPSILON * lv.abs() {
                    errs.push(FieldError::invalid(
                        rp,
                        &json!(qs),
                        format!("must be less than or equal to {r} limit of {ls}"),
                    ));
                }
            }
        }
    }
}

fn validate_tolerations(tols: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in tols.iter().enumerate() {
        let tp = index(path, i);
        let k = s(t, "key");
        if !k.is_empty() {
            errs.extend(meta::validate_label_name(k, &child(&tp, "key")));
        }
        let op = s(t, "operator");
        if k.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                child(&tp, "operator"),
                &json!(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = s(t, "effect");
        if present(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&tp, "effect"),
                &json!(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = s(t, "value");
        match op {
            "" | "Equal" => {
                for m in meta::is_valid_label_value(value) {
                    errs.push(FieldError::invalid(
                        child(&tp, "operator"),
                        &json!(value),
                        m,
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&tp, "operator"),
                        &json!(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&tp, "operator"),
                &json!(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                child(&tp, "effect"),
                &json!(effect),
                TAINT_EFFECTS,
            ));
        }
    }
    errs
}

/// `ValidatePodUpdate`: besides the new pod's own validity, only container images,
/// activeDeadlineSeconds (set or lowered), added tolerations, terminationGracePeriodSeconds
/// (negative -> 1) and removed schedulingGates may change.
pub(crate) fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let null = Value::Null;
    let ns = new.get("spec").unwrap_or(&null);
    let os = old.get("spec").unwrap_or(&null);
    for list in ["containers", "initContainers"] {
        if arr(ns, list).len() != arr(os, list).len() {
            errs.push(FieldError::forbidden(
                format!("spec.{list}"),
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
    }
    // activeDeadlineSeconds
    match (
        int(ns, "activeDeadlineSeconds"),
        int(os, "activeDeadlineSeconds"),
    ) {
        (Some(n), _) if !(0..=i32::MAX as i64).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &json!(n),
                meta::inclusive_range_error(0, i32::MAX as i64),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &json!(n),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                &Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }
    // tolerations: existing ones may not change except tolerationSeconds
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let new_tols: Vec<Value> = arr(ns, "tolerations").iter().map(strip).collect();
    for ot in arr(os, "tolerations") {
        if !new_tols.contains(&strip(ot)) {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }
    // munge the old spec with the mutable fields of the new one and compare
    let mut munged = os.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            let new_list = arr(ns, list);
            if let Some(Value::Array(olds)) = m.get_mut(list) {
                if olds.len() == new_list.len() {
                    for (o, n) in olds.iter_mut().zip(new_list) {
                        if let (Some(om), Some(img)) = (o.as_object_mut(), n.get("image")) {
                            om.insert("image".into(), img.clone());
                        }
                    }
                }
            }
        }
        // ephemeral containers change only through the ephemeralcontainers subresource
        for k in ["activeDeadlineSeconds", "tolerations"] {
            match ns.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        let old_tgps = int(os, "terminationGracePeriodSeconds");
        if old_tgps.is_some_and(|t| t < 0) && int(ns, "terminationGracePeriodSeconds") == Some(1) {
            m.insert("terminationGracePeriodSeconds".into(), json!(1));
        }
        // scheduling gates may only be removed
        let new_gates = arr(ns, "schedulingGates");
        let old_gates = arr(os, "schedulingGates");
        if new_gates.iter().all(|g| old_gates.contains(g)) {
            match ns.get("schedulingGates") {
                Some(v) => m.insert("schedulingGates".into(), v.clone()),
                None => m.remove("schedulingGates"),
            };
        }
    }
    if &munged != ns {
        let changed: BTreeSet<String> = changed_keys(&munged, ns);
        let detail = format!(
            "{POD_UPDATE_FORBIDDEN}\n  changed: {}",
            changed.into_iter().collect::<Vec<_>>().join(", ")
        );
        errs.push(FieldError::forbidden("spec", detail));
    }
    errs
}

fn changed_keys(a: &Value, b: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let (Some(am), Some(bm)) = (a.as_object(), b.as_object()) else {
        return keys;
    };
    for k in am.keys().chain(bm.keys()) {
        if am.get(k) != bm.get(k) {
            keys.insert(format!("spec.{k}"));
        }
    }
    keys
}

/// `ValidatePodStatusUpdate` (the parts that need no feature gates): phase enum, no change out
/// of a terminal phase, condition types, IPs, container status counters.
pub(crate) fn validate_pod_status(
    status: &Value,
    old: &Value,
    restart_policy: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // upstream `ValidateContainerStateTransition`: unless containers always restart, a
    // terminated container (that may not restart on failure) stays terminated
    if restart_policy != "Always" {
        for list in ["containerStatuses", "initContainerStatuses"] {
            let news = arr(status, list);
            for (i, o) in arr(old, list).iter().enumerate() {
                let Some(term) = o.pointer("/state/terminated").filter(|t| !t.is_null()) else {
                    continue;
                };
                if int(term, "exitCode").unwrap_or(0) != 0 && restart_policy == "OnFailure" {
                    continue;
                }
                let name = s(o, "name");
                if news.iter().any(|n| {
                    s(n, "name") == name
                        && n.pointer("/state/terminated").is_none_or(Value::is_null)
                }) {
                    errs.push(FieldError::forbidden(
                        format!("status.{list}[{i}].state"),
                        "may not be transitioned to non-terminated state",
                    ));
                }
            }
        }
    }
    let phase = s(status, "phase");
    if !phase.is_empty() && !POD_PHASES.contains(&phase) {
        errs.push(FieldError::not_supported(
            "status.phase",
            &json!(phase),
            POD_PHASES,
        ));
    }
    let old_phase = s(old, "phase");
    if matches!(old_phase, "Succeeded" | "Failed") && phase != old_phase {
        errs.push(FieldError::forbidden(
            "status.phase",
            format!("cannot transition from terminal phase {old_phase:?}"),
        ));
    }
    for (i, c) in arr(status, "conditions").iter().enumerate() {
        let cp = index("status.conditions", i);
        let t = s(c, "type");
        if t.is_empty() {
            errs.push(FieldError::required(
                child(&cp, "type"),
                "must be specified",
            ));
        } else {
            for m in meta::is_qualified_name(t) {
                errs.push(FieldError::invalid(child(&cp, "type"), &json!(t), m));
            }
        }
        let st = s(c, "status");
        if !matches!(st, "True" | "False" | "Unknown") {
            errs.push(FieldError::not_supported(
                child(&cp, "status"),
                &json!(st),
                &["True", "False", "Unknown"],
            ));
        }
    }
    for (k, field) in [("podIPs", "ip"), ("hostIPs", "ip")] {
        for (i, ip) in arr(status, k).iter().enumerate() {
            let v = s(ip, field);
            if !is_ip(v) {
                errs.push(FieldError::invalid(
                    child(&index(&format!("status.{k}"), i), field),
                    &json!(v),
                    super::IP_ERROR,
                ));
            }
        }
    }
    let nnn = s(status, "nominatedNodeName");
    if !nnn.is_empty() {
        errs.extend(dns_subdomain_field(nnn, "status.nominatedNodeName"));
    }
    for list in [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ] {
        for (i, cs) in arr(status, list).iter().enumerate() {
            nonneg(
                cs,
                "restartCount",
                &index(&format!("status.{list}"), i),
                &mut errs,
            );
        }
    }
    errs
}

/// `ValidatePodEphemeralContainersUpdate` (the `pods/ephemeralcontainers` subresource): only
/// `spec.ephemeralContainers` may change, existing ones may be neither removed nor modified,
/// and the pod with its new ephemeral containers must be valid.
pub fn validate_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let (ns, os) = (
        new.get("spec").unwrap_or(&null),
        old.get("spec").unwrap_or(&null),
    );
    let mut errs = validate_pod_spec_opts(ns, "spec", true);
    let news = arr(ns, "ephemeralContainers");
    for o in arr(os, "ephemeralContainers") {
        let name = s(o, "name");
        match news.iter().find(|n| s(n, "name") == name) {
            None => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(n) if n != o => errs.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!("existing ephemeral containers {name:?} may not be changed\n"),
            )),
            _ => {}
        }
    }
    let strip = |spec: &Value| {
        let mut spec = spec.clone();
        if let Some(m) = spec.as_object_mut() {
            m.remove("ephemeralContainers");
        }
        spec
    };
    if strip(ns) != strip(os) {
        errs.push(FieldError::forbidden(
            "spec",
            "only ephemeralContainers may be changed through this subresource",
        ));
    }
    errs
}
