//! Workload validation (upstream `pkg/apis/apps/validation`, `pkg/apis/batch/validation` and
//! the ReplicationController part of core): selectors matching templates, strategies, replica
//! counts, job completion modes, cron schedules, immutable fields on update, status counters.

use serde_json::{json, Value};

use super::pod::validate_pod_template_spec;
use super::{arr, child, int, int_or_percent_is_zero, map, nonneg, present, s};
use super::{
    selector_is_empty, selector_matches, validate_int_or_percent, validate_label_selector,
};
use crate::meta;
use crate::status::FieldError;

const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";
const MAX_PARALLELISM_INDEXED: i64 = 100_000;

fn template_labels_value(spec: &Value) -> Value {
    spec.pointer("/template/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null)
}

fn template_labels_error(spec: &Value, path: &str) -> FieldError {
    meta::invalid_go(
        format!("{path}.template.metadata.labels"),
        &template_labels_value(spec),
        SELECTOR_MISMATCH,
    )
}

/// How a workload kind's selector is checked against its template.
#[derive(Clone, Copy)]
struct SelectorRules<'a> {
    /// `Required` when the selector is absent (not for DaemonSets).
    required: bool,
    /// Message for a selector without requirements.
    empty_msg: &'a str,
    /// Detail of the Invalid error for a selector that does not parse.
    unparsable_msg: &'a str,
}

/// Selector validity, non-emptiness and agreement with the template's labels, as upstream's
/// `ValidateDeploymentSpec` / `ValidateReplicaSetSpec` / `ValidateDaemonSetSpec` /
/// `ValidateStatefulSetSpec` do it (an absent selector matches nothing, an empty one
/// everything).
fn validate_selector_for_template(
    spec: &Value,
    path: &str,
    rules: SelectorRules,
    errs: &mut Vec<FieldError>,
) {
    let sp = child(path, "selector");
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => {
            if rules.required {
                errs.push(FieldError::required(sp, ""));
            }
            if present(spec, "template") {
                errs.push(template_labels_error(spec, path));
            }
        }
        Some(sel) => {
            let sel_errs = validate_label_selector(sel, &sp);
            let invalid = !sel_errs.is_empty();
            errs.extend(sel_errs);
            if selector_is_empty(sel) {
                errs.push(FieldError::invalid(sp.clone(), sel, rules.empty_msg));
            }
            if invalid {
                errs.push(FieldError::invalid(sp, sel, rules.unparsable_msg));
            } else if present(spec, "template")
                && !selector_is_empty(sel)
                && !selector_matches(
                    sel,
                    spec.pointer("/template/metadata/labels")
                        .and_then(Value::as_object),
                )
            {
                errs.push(template_labels_error(spec, path));
            }
        }
    }
}

/// Template required and valid (`full_pod_spec`: StatefulSets only check the template's labels
/// and annotations upstream), `restartPolicy: Always`, no activeDeadlineSeconds.
fn validate_always_restart_template(
    spec: &Value,
    path: &str,
    owner: &str,
    full_pod_spec: bool,
    errs: &mut Vec<FieldError>,
) {
    let tp = child(path, "template");
    // the template is a pointer only in ReplicationControllers; elsewhere it is a struct and an
    // absent one validates as empty
    let empty = json!({});
    let template = match spec.get("template").filter(|t| !t.is_null()) {
        Some(t) => t,
        None if owner == "ReplicationController" => {
            errs.push(FieldError::required(tp, ""));
            return;
        }
        None => &empty,
    };
    if full_pod_spec {
        errs.extend(validate_pod_template_spec(Some(template), &tp, true));
    } else {
        errs.extend(meta::validate_template_meta(
            template.get("metadata"),
            &child(&tp, "metadata"),
        ));
    }
    let t = template;
    let rp = s(t.get("spec").unwrap_or(&Value::Null), "restartPolicy");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            format!("{tp}.spec.restartPolicy"),
            &json!(rp),
            &["Always"],
        ));
    }
    if t.pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            format!("{tp}.spec.activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

const RS_SELECTOR: SelectorRules = SelectorRules {
    required: true,
    empty_msg: "empty selector is invalid for deployment",
    unparsable_msg: "invalid label selector",
};

pub(crate) fn validate_deployment(d: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = d.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    nonneg(spec, "replicas", "spec", &mut errs);
    validate_selector_for_template(spec, "spec", RS_SELECTOR, &mut errs);
    validate_always_restart_template(spec, "spec", "ReplicaSet", true, &mut errs);
    let strategy = spec.get("strategy").unwrap_or(&null);
    match s(strategy, "type") {
        "Recreate" => {
            if present(strategy, "rollingUpdate") {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|r| !r.is_null()) {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let p = "spec.strategy.rollingUpdate";
                errs.extend(validate_int_or_percent(
                    ru.get("maxUnavailable"),
                    &child(p, "maxUnavailable"),
                    false,
                ));
                errs.extend(validate_int_or_percent(
                    ru.get("maxSurge"),
                    &child(p, "maxSurge"),
                    false,
                ));
                if int_or_percent_is_zero(ru.get("maxUnavailable"))
                    && int_or_percent_is_zero(ru.get("maxSurge"))
                {
                    errs.push(FieldError::invalid(
                        child(p, "maxUnavailable"),
                        ru.get("maxUnavailable").unwrap_or(&null),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if let Some(Value::String(pct)) = ru.get("maxUnavailable") {
                    if pct
                        .strip_suffix('%')
                        .and_then(|d| d.parse::<i64>().ok())
                        .is_some_and(|v| v > 100)
                    {
                        errs.push(FieldError::invalid(
                            child(p, "maxUnavailable"),
                            &json!(pct),
                            "must not be greater than 100%",
                        ));
                    }
                }
            }
        },
        t => errs.push(FieldError::not_supported(
            "spec.strategy",
            &json!(t),
            &["Recreate", "RollingUpdate"],
        )),
    }
    for k in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        nonneg(spec, k, "spec", &mut errs);
    }
    if let Some(pds) = int(spec, "progressDeadlineSeconds") {
        if pds <= int(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &json!(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

pub(crate) fn validate_replica_set(rs: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = rs.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    nonneg(spec, "replicas", "spec", &mut errs);
    nonneg(spec, "minReadySeconds", "spec", &mut errs);
    validate_selector_for_template(spec, "spec", RS_SELECTOR, &mut errs);
    validate_always_restart_template(spec, "spec", "ReplicaSet", true, &mut errs);
    errs
}

pub(crate) fn validate_replication_controller(rc: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = rc.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    nonneg(spec, "minReadySeconds", "spec", &mut errs);
    let selector = map(spec, "selector").filter(|m| !m.is_empty());
    if selector.is_none() {
        errs.push(FieldError::required("spec.selector", ""));
    }
    nonneg(spec, "replicas", "spec", &mut errs);
    if let (Some(sel), Some(_)) = (selector, spec.get("template").filter(|t| !t.is_null())) {
        let labels = spec
            .pointer("/template/metadata/labels")
            .and_then(Value::as_object);
        if !sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            errs.push(template_labels_error(spec, "spec"));
        }
    }
    validate_always_restart_template(spec, "spec", "ReplicationController", true, &mut errs);
    errs
}

pub(crate) fn validate_stateful_set(sts: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = sts.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    match s(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        p => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            &json!(p),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = spec.get("updateStrategy").unwrap_or(&null);
    match s(us, "type") {
        "" => errs.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(ru) = us.get("rollingUpdate").filter(|r| !r.is_null()) {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    ru,
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = us.get("rollingUpdate").filter(|r| !r.is_null()) {
                nonneg(
                    ru,
                    "partition",
                    "spec.updateStrategy.rollingUpdate",
                    &mut errs,
                );
                if let Some(mu) = ru.get("maxUnavailable").filter(|v| !v.is_null()) {
                    let p = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                    errs.extend(validate_int_or_percent(Some(mu), p, true));
                    if int_or_percent_is_zero(Some(mu)) {
                        errs.push(FieldError::invalid(p, mu, "cannot be 0"));
                    }
                }
            }
        }
        t => errs.push(FieldError::invalid(
            "spec.updateStrategy",
            &json!(t),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = spec
        .get("persistentVolumeClaimRetentionPolicy")
        .filter(|p| !p.is_null())
    {
        for k in ["whenDeleted", "whenScaled"] {
            let v = s(policy, k);
            if !matches!(v, "Retain" | "Delete") {
                errs.push(FieldError::not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{k}"),
                    &json!(v),
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    for k in ["replicas", "minReadySeconds"] {
        nonneg(spec, k, "spec", &mut errs);
    }
    if let Some(o) = spec.get("ordinals").filter(|o| !o.is_null()) {
        nonneg(o, "start", "spec.ordinals", &mut errs);
    }
    // upstream checks neither serviceName nor volumeClaimTemplates, and of the pod template
    // only its labels and annotations
    let rules = SelectorRules {
        required: true,
        empty_msg: "empty selector is invalid for statefulset",
        unparsable_msg: "",
    };
    validate_selector_for_template(spec, "spec", rules, &mut errs);
    validate_always_restart_template(spec, "spec", "StatefulSet", false, &mut errs);
    errs
}

/// StatefulSet spec updates may only touch the listed fields.
pub(crate) fn validate_stateful_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let strip = |v: &Value| {
        let mut spec = v.get("spec").cloned().unwrap_or(Value::Null);
        if let Some(m) = spec.as_object_mut() {
            for k in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                m.remove(k);
            }
        }
        spec
    };
    if strip(new) != strip(old) {
        vec![FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )]
    } else {
        Vec::new()
    }
}

pub(crate) fn validate_daemon_set(ds: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = ds.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    let rules = SelectorRules {
        required: false,
        empty_msg: "empty selector is invalid for daemonset",
        unparsable_msg: "invalid label selector",
    };
    validate_selector_for_template(spec, "spec", rules, &mut errs);
    validate_always_restart_template(spec, "spec", "DaemonSet", true, &mut errs);
    for k in [
        "minReadySeconds",
        "templateGeneration",
        "revisionHistoryLimit",
    ] {
        nonneg(spec, k, "spec", &mut errs);
    }
    let us = spec.get("updateStrategy").unwrap_or(&null);
    match s(us, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match us.get("rollingUpdate").filter(|r| !r.is_null()) {
            None => errs.push(FieldError::required(
                "spec.updateStrategy.rollingUpdate",
                "",
            )),
            Some(ru) => {
                let p = "spec.updateStrategy.rollingUpdate";
                errs.extend(validate_int_or_percent(
                    ru.get("maxUnavailable"),
                    &child(p, "maxUnavailable"),
                    true,
                ));
                errs.extend(validate_int_or_percent(
                    ru.get("maxSurge"),
                    &child(p, "maxSurge"),
                    true,
                ));
                let mu_zero = ru.get("maxUnavailable").is_none_or(Value::is_null)
                    || int_or_percent_is_zero(ru.get("maxUnavailable"));
                let ms_zero = ru.get("maxSurge").is_none_or(Value::is_null)
                    || int_or_percent_is_zero(ru.get("maxSurge"));
                match (mu_zero, ms_zero) {
                    (false, false) => errs.push(FieldError::invalid(
                        child(p, "maxSurge"),
                        ru.get("maxSurge").unwrap_or(&null),
                        "may not be set when maxUnavailable is non-zero",
                    )),
                    (true, true) => errs.push(FieldError::required(
                        child(p, "maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    )),
                    _ => {}
                }
            }
        },
        t => errs.push(FieldError::not_supported(
            "spec.updateStrategy",
            &json!(t),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    errs
}

/// The JobSpec rules shared by Jobs and CronJob job templates (`validateJobSpec`).
fn validate_job_spec_common(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for k in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonneg(spec, k, path, errs);
    }
    let mode = s(spec, "completionMode");
    if present(spec, "completionMode") {
        match mode {
            "NonIndexed" => {}
            "Indexed" => {
                if !present(spec, "completions") {
                    errs.push(FieldError::required(
                        child(path, "completions"),
                        "when completion mode is Indexed",
                    ));
                }
                if let Some(p) = int(spec, "parallelism").filter(|p| *p > MAX_PARALLELISM_INDEXED) {
                    errs.push(FieldError::invalid(
                        child(path, "parallelism"),
                        &json!(p),
                        format!("must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"),
                    ));
                }
            }
            m => errs.push(FieldError::not_supported(
                child(path, "completionMode"),
                &json!(m),
                &["NonIndexed", "Indexed"],
            )),
        }
    }
    if present(spec, "backoffLimitPerIndex") && mode != "Indexed" {
        errs.push(FieldError::required(
            child(path, "completionMode"),
            "when backoffLimitPerIndex is specified, completionMode must be \"Indexed\"",
        ));
    }
    if present(spec, "podReplacementPolicy") {
        let p = s(spec, "podReplacementPolicy");
        if !matches!(p, "Failed" | "TerminatingOrFailed") {
            errs.push(FieldError::not_supported(
                child(path, "podReplacementPolicy"),
                &json!(p),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    for (i, rule) in arr(
        spec.get("podFailurePolicy").unwrap_or(&Value::Null),
        "rules",
    )
    .iter()
    .enumerate()
    {
        let rp = format!("{path}.podFailurePolicy.rules[{i}]");
        let a = s(rule, "action");
        const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
        if !ACTIONS.contains(&a) {
            errs.push(FieldError::not_supported(
                child(&rp, "action"),
                &json!(a),
                ACTIONS,
            ));
        }
        if present(rule, "onExitCodes") == present(rule, "onPodConditions") {
            errs.push(FieldError::invalid(
                rp,
                &json!(""),
                "specifying one of OnExitCodes and OnPodConditions is required",
            ));
        }
    }
    let tp = child(path, "template");
    let empty = json!({});
    let template = spec
        .get("template")
        .filter(|t| !t.is_null())
        .unwrap_or(&empty);
    errs.extend(validate_pod_template_spec(Some(template), &tp, true));
    {
        let t = template;
        let rp = s(t.get("spec").unwrap_or(&Value::Null), "restartPolicy");
        match rp {
            "" | "Always" => errs.push(FieldError::required(
                format!("{tp}.spec.restartPolicy"),
                "valid values: \"OnFailure\", \"Never\"",
            )),
            "OnFailure" | "Never" => {}
            other => errs.push(FieldError::not_supported(
                format!("{tp}.spec.restartPolicy"),
                &json!(other),
                &["OnFailure", "Never"],
            )),
        }
    }
}

pub(crate) fn validate_job(job: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = job.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    // ValidateGeneratedSelector: with a generated selector the template carries the generated
    // labels and the selector selects them
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if let (false, Some(sel)) = (manual, spec.get("selector").filter(|s| !s.is_null())) {
        let uid = job
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = job
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if uid.is_empty() {
            errs.push(FieldError::required("metadata.uid", ""));
        }
        let labels = spec.pointer("/template/metadata/labels");
        let expected = [
            ("controller-uid", uid),
            ("job-name", name),
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
        ];
        for (k, want) in expected {
            let lp = format!("spec.template.metadata.labels[{k}]");
            match labels.and_then(|l| l.get(k)).and_then(Value::as_str) {
                None => errs.push(FieldError::required(lp, format!("must be '{want}'"))),
                Some(v) if v != want => errs.push(meta::invalid_go(
                    lp,
                    labels.unwrap_or(&Value::Null),
                    format!("must be '{want}'"),
                )),
                _ => {}
            }
        }
        let expected_labels: serde_json::Map<String, Value> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        if validate_label_selector(sel, "spec.selector").is_empty()
            && !selector_matches(sel, Some(&expected_labels))
        {
            errs.push(FieldError::invalid(
                "spec.selector",
                sel,
                "`selector` not auto-generated",
            ));
        }
    }
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            errs.extend(validate_label_selector(sel, "spec.selector"));
            if !selector_matches(
                sel,
                spec.pointer("/template/metadata/labels")
                    .and_then(Value::as_object),
            ) {
                errs.push(template_labels_error(spec, "spec"));
            }
        }
    }
    validate_job_spec_common(spec, "spec", &mut errs);
    // the controller names pods `<job>-<index>`, which must stay a DNS label
    if s(spec, "completionMode") == "Indexed" {
        if let Some(c) = int(spec, "completions").filter(|c| *c > 0) {
            let name = job
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let hostname = format!("{name}-{}", c - 1);
            if !meta::is_dns1123_label(&hostname).is_empty() {
                errs.push(FieldError::invalid(
                    "metadata.name",
                    &json!(name),
                    format!("will not able to create pod with invalid DNS label: {hostname}"),
                ));
            }
        }
    }
    errs
}

/// `ValidateJobSpecUpdate`: selector, completions (except elastic indexed jobs), completion
/// mode, failure policies are immutable; the template is immutable unless the job is suspended
/// and never started, when only scheduling directives, labels and annotations may change.
pub(crate) fn validate_job_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let ns = new.get("spec").unwrap_or(&null);
    let os = old.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    let elastic = s(ns, "completionMode") == "Indexed"
        && ns.get("completions") == ns.get("parallelism")
        && os.get("completions") == os.get("parallelism");
    if !elastic {
        errs.extend(meta::validate_immutable(
            ns.get("completions"),
            os.get("completions"),
            "spec.completions",
        ));
    }
    errs.extend(meta::validate_immutable(
        ns.get("selector"),
        os.get("selector"),
        "spec.selector",
    ));
    let suspended_unstarted = os.get("suspend").and_then(Value::as_bool) == Some(true)
        && old.pointer("/status/startTime").is_none_or(Value::is_null);
    let munge = |t: &Value| {
        let mut t = t.clone();
        if suspended_unstarted {
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for k in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                    spec.remove(k);
                }
            }
            if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
        }
        t
    };
    let nt = munge(ns.get("template").unwrap_or(&null));
    let ot = munge(os.get("template").unwrap_or(&null));
    if nt != ot {
        errs.push(meta::immutable_error(
            "spec.template",
            ns.get("template").unwrap_or(&null),
        ));
    }
    for k in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        errs.extend(meta::validate_immutable(
            ns.get(k),
            os.get(k),
            &format!("spec.{k}"),
        ));
    }
    errs
}

pub(crate) fn validate_cron_job(cj: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let spec = cj.get("spec").unwrap_or(&null);
    let mut errs = Vec::new();
    let name = cj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be no more than 52 characters",
        ));
    }
    let schedule = s(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        // robfig/cron's ParseStandard accepts a leading `TZ=`/`CRON_TZ=` token
        let body = match schedule.split_once(' ') {
            Some((tz, rest)) if tz.starts_with("TZ=") || tz.starts_with("CRON_TZ=") => rest,
            _ => schedule,
        };
        if let Err(e) = validate_cron_schedule(body) {
            errs.push(FieldError::invalid("spec.schedule", &json!(schedule), e));
        }
        if schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                &json!(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(tz) = spec.get("timeZone").and_then(Value::as_str) {
        errs.extend(validate_time_zone(tz));
    }
    match s(spec, "concurrencyPolicy") {
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        "Allow" | "Forbid" | "Replace" => {}
        p => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            &json!(p),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for k in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        nonneg(spec, k, "spec", &mut errs);
    }
    let jt = spec.get("jobTemplate").unwrap_or(&null);
    errs.extend(meta::validate_template_meta(
        jt.get("metadata"),
        "spec.jobTemplate.metadata",
    ));
    let js = jt.get("spec").unwrap_or(&null);
    if let Some(sel) = js.get("selector").filter(|s| !s.is_null()) {
        errs.push(FieldError::invalid(
            "spec.jobTemplate.spec.selector",
            sel,
            "`selector` will be auto-generated",
        ));
    }
    if js.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            &json!(true),
            &["nil", "false"],
        ));
    }
    validate_job_spec_common(js, "spec.jobTemplate.spec", &mut errs);
    errs
}

/// CronJob `spec.timeZone` (upstream `validateTimeZone`). Without a time-zone database (this
/// crate does no IO) names are checked for the IANA `Area/Location` shape only.
fn validate_time_zone(tz: &str) -> Vec<FieldError> {
    let p = "spec.timeZone";
    if tz.is_empty() {
        return vec![FieldError::invalid(
            p,
            &json!(tz),
            "timeZone must be nil or non-empty string",
        )];
    }
    if tz.eq_ignore_ascii_case("Local") {
        return vec![FieldError::invalid(
            p,
            &json!(tz),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    let plausible = !tz.starts_with('/')
        && !tz.ends_with('/')
        && !tz
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        && tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c));
    if plausible {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            p,
            &json!(tz),
            format!("unknown time zone {tz}"),
        )]
    }
}

/// Validates a standard 5-field cron schedule or a robfig/cron descriptor (`@daily`,
/// `@every 1h`), returning the parser error message upstream reports.
pub fn validate_cron_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if let Some(d) = schedule.strip_prefix('@') {
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ if d.starts_with("every ") => {
                let dur = &d[6..];
                let ok = !dur.is_empty()
                    && dur
                        .chars()
                        .all(|c| c.is_ascii_digit() || "hmsuµn.".contains(c))
                    && dur.chars().next().is_some_and(|c| c.is_ascii_digit());
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "failed to parse duration {schedule}: time: invalid duration \"{dur}\""
                    ))
                }
            }
            _ => Err(format!("unrecognized descriptor: {schedule}")),
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(i64, i64, &[&str], i64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (lo, hi, names, name_base)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            let parse = |v: &str| -> Result<i64, String> {
                if let Some(pos) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                    return Ok(pos as i64 + name_base);
                }
                v.parse::<i64>()
                    .map_err(|_| format!("failed to parse int from {v}: strconv.Atoi: parsing \"{v}\": invalid syntax"))
            };
            let (start, end) = if range == "*" || range == "?" {
                (lo, hi)
            } else if let Some((a, b)) = range.split_once('-') {
                (parse(a)?, parse(b)?)
            } else {
                let v = parse(range)?;
                (v, v)
            };
            if start < lo {
                return Err(format!(
                    "beginning of range ({start}) below minimum ({lo}): {part}"
                ));
            }
            if end > hi {
                return Err(format!("end of range ({end}) above maximum ({hi}): {part}"));
            }
            if start > end {
                return Err(format!(
                    "beginning of range ({start}) beyond end of range ({end}): {part}"
                ));
            }
            if let Some(st) = step {
                let n = st
                    .parse::<i64>()
                    .map_err(|_| format!("failed to parse int from {st}: strconv.Atoi: parsing \"{st}\": invalid syntax"))?;
                if n == 0 {
                    return Err(format!("step of range should be a positive number: {part}"));
                }
            }
        }
    }
    Ok(())
}

/// Status counters of workload kinds: all non-negative, none above `status.replicas` (and
/// available not above ready).
pub(crate) fn validate_replica_status(kind: &str, status: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(m) = status.as_object() {
        for (k, v) in m {
            if let Some(n) = v.as_i64() {
                if n < 0 {
                    errs.push(FieldError::invalid(
                        format!("status.{k}"),
                        &json!(n),
                        meta::IS_NEGATIVE,
                    ));
                }
            }
        }
    }
    let bounded: &[&str] = match kind {
        "Deployment" => &["updatedReplicas", "readyReplicas", "availableReplicas"],
        "ReplicaSet" | "ReplicationController" => {
            &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"]
        }
        "StatefulSet" => &[
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
        ],
        _ => &[],
    };
    let replicas = int(status, "replicas").unwrap_or(0);
    for k in bounded {
        if let Some(n) = int(status, k).filter(|n| *n > replicas) {
            errs.push(FieldError::invalid(
                format!("status.{k}"),
                &json!(n),
                "cannot be greater than status.replicas",
            ));
        }
    }
    if let (Some(a), r) = (
        int(status, "availableReplicas"),
        int(status, "readyReplicas").unwrap_or(0),
    ) {
        if a > r && !bounded.is_empty() {
            let detail = if kind == "StatefulSet" {
                "cannot be greater than status.readyReplicas"
            } else {
                "cannot be greater than readyReplicas"
            };
            errs.push(FieldError::invalid(
                "status.availableReplicas",
                &json!(a),
                detail,
            ));
        }
    }
    errs
}

pub(crate) fn validate_job_status(status: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for k in ["active", "succeeded", "failed", "ready", "terminating"] {
        nonneg(status, k, "status", &mut errs);
    }
    errs
}
