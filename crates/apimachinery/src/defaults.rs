//! Defaulting of built-in kinds on `serde_json::Value` objects, following upstream's
//! `pkg/apis/*/v1/defaults.go` (and the generated defaulters that apply pod-spec defaults to
//! every embedded pod template), plus the create-only strategy mutations (`PrepareForCreate`)
//! that need no IO: namespace finalizer, pod status, job selector.
//!
//! Defaulting is idempotent: applying it twice yields the same object, so the API server may
//! run it on every decode (create, update, patch), as upstream does.

use serde_json::{json, Map, Value};

/// Applies upstream's defaults for `group/version, kind` to `obj` in place. Unknown kinds and
/// non-objects are left unchanged.
pub fn apply_defaults(group: &str, version: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, version, kind) {
        ("", "v1", "Pod") => default_pod(obj),
        // the template is a struct upstream, so its pod spec is always defaulted
        ("", "v1", "PodTemplate") => default_pod_template(child(obj, "template")),
        ("", "v1", "ReplicationController") => default_replication_controller(obj),
        ("", "v1", "Service") => default_service(obj),
        ("", "v1", "Secret") => set_default(obj, "type", json!("Opaque")),
        ("", "v1", "Namespace") => default_namespace(obj),
        ("", "v1", "Node") => default_node(obj),
        ("", "v1", "PersistentVolume") => default_persistent_volume(obj),
        ("", "v1", "PersistentVolumeClaim") => default_pvc(obj),
        ("", "v1", "Endpoints") => {
            for_each(obj, "subsets", |s| {
                for_each(s, "ports", |p| set_default(p, "protocol", json!("TCP")))
            });
        }
        ("", "v1", "ResourceQuota") => {
            if let Some(spec) = with(obj, "spec") {
                canon_resource_list(spec, "hard");
            }
            if let Some(st) = with(obj, "status") {
                canon_resource_list(st, "hard");
                canon_resource_list(st, "used");
            }
        }
        ("", "v1", "LimitRange") => {
            if let Some(spec) = obj.get_mut("spec") {
                for_each(spec, "limits", default_limit_range_item);
            }
        }
        ("apps", "v1", "Deployment") => default_deployment(obj),
        ("apps", "v1", "ReplicaSet") => default_replica_set(obj),
        ("apps", "v1", "StatefulSet") => default_stateful_set(obj),
        ("apps", "v1", "DaemonSet") => default_daemon_set(obj),
        ("batch", "v1", "Job") => default_job(obj),
        ("batch", "v1", "CronJob") => default_cron_job(obj),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => default_hpa_v2(obj),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            if let Some(spec) = obj.get_mut("spec") {
                set_default(spec, "minReplicas", json!(1));
            }
        }
        ("networking.k8s.io", "v1", "NetworkPolicy") => default_network_policy(obj),
        ("networking.k8s.io", "v1", "IngressClass") => {
            if let Some(p) = obj.pointer_mut("/spec/parameters") {
                set_default(p, "scope", json!("Cluster"));
            }
        }
        ("rbac.authorization.k8s.io", "v1", "RoleBinding" | "ClusterRoleBinding") => {
            default_role_binding(obj)
        }
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            for_each(obj, "ports", |p| {
                set_default(p, "name", json!(""));
                set_default(p, "protocol", json!("TCP"));
            });
        }
        ("storage.k8s.io", "v1", "StorageClass") => {
            set_default(obj, "reclaimPolicy", json!("Delete"));
            set_default(obj, "volumeBindingMode", json!("Immediate"));
        }
        ("storage.k8s.io", "v1", "CSIDriver") => {
            let spec = child(obj, "spec");
            set_default(spec, "attachRequired", json!(true));
            set_default(spec, "podInfoOnMount", json!(false));
            set_default(spec, "storageCapacity", json!(false));
            set_default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
            set_default(spec, "volumeLifecycleModes", json!(["Persistent"]));
            set_default(spec, "requiresRepublish", json!(false));
            set_default(spec, "seLinuxMount", json!(false));
        }
        ("scheduling.k8s.io", "v1", "PriorityClass") => {
            set_default(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        // Ingress and PodDisruptionBudget have no defaults in v1; ConfigMap, ServiceAccount,
        // Role and ClusterRole neither.
        _ => {}
    }
}

/// Create-only mutations of upstream's registry strategies that need no IO (the generic
/// registry runs them after defaulting, before validation): namespaces get the `kubernetes`
/// finalizer and phase Active; pods get status `{phase: Pending, qosClass}`. Jobs need the uid
/// the server assigns: call [`job_generate_selector`] as well.
pub fn prepare_for_create(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Namespace") => {
            let spec = child(obj, "spec");
            let fins = child_array(spec, "finalizers");
            if !fins.iter().any(|f| f == "kubernetes") {
                fins.push(json!("kubernetes"));
            }
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "Pod") => {
            let qos = obj.get("spec").map(pod_qos_class).unwrap_or("BestEffort");
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        _ => {}
    }
}

/// The Job's generated selector (upstream `generateSelector`): unless `spec.manualSelector` is
/// true, the pod template gets the `batch.kubernetes.io/controller-uid` and
/// `batch.kubernetes.io/job-name` labels (plus the legacy `controller-uid` and `job-name`) and
/// the selector becomes `matchLabels: {batch.kubernetes.io/controller-uid: <uid>}`. The API
/// server must call this on create with the uid it assigned (after [`apply_defaults`]).
pub fn job_generate_selector(job: &mut Value, uid: &str) {
    let name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let spec = child(job, "spec");
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let labels = child(child(child(spec, "template"), "metadata"), "labels");
    set_default(labels, "batch.kubernetes.io/controller-uid", json!(uid));
    set_default(labels, "batch.kubernetes.io/job-name", json!(name));
    set_default(labels, "controller-uid", json!(uid));
    set_default(labels, "job-name", json!(name));
    // the selector selects the controller-uid label; a conflicting user selector or label is
    // left for validation to reject, as upstream does
    let match_labels = child(child(spec, "selector"), "matchLabels");
    set_default(
        match_labels,
        "batch.kubernetes.io/controller-uid",
        json!(uid),
    );
}

/// Service create normalization of the REST layer (upstream `normalizeClusterIPs` on create):
/// a client that sets only `spec.clusterIP` gets `spec.clusterIPs: [clusterIP]`.
pub fn service_prepare_for_create(svc: &mut Value) {
    let Some(spec) = svc.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !ip.is_empty() && is_empty_obj_or_absent(spec.get("clusterIPs")) {
        spec["clusterIPs"] = json!([ip]);
    }
}

/// Service update preparation of the REST layer (upstream `patchAllocatedValues` then
/// `normalizeClusterIPs`): a PUT that omits allocated values (`kubectl replace`) keeps the
/// cluster IPs, node ports (matched by port name, unless already used by another port) and
/// the health-check node port of the stored object; `clusterIP` and `clusterIPs` are kept in
/// sync.
pub fn service_prepare_for_update(new: &mut Value, old: &Value) {
    let null = Value::Null;
    let os = old.get("spec").unwrap_or(&null);
    let Some(ns) = new.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let ty = |s: &Value| {
        s.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let needs_cluster_ip = |s: &Value| ty(s) != "ExternalName";
    let needs_node_port = |s: &Value| {
        let t = ty(s);
        t == "NodePort"
            || (t == "LoadBalancer"
                && s.get("allocateLoadBalancerNodePorts")
                    .and_then(Value::as_bool)
                    != Some(false))
    };
    let needs_hc = |s: &Value| {
        ty(s) == "LoadBalancer"
            && s.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
    };
    let str_empty = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").is_empty();
    let externally_accessible = |s: &Value| {
        let t = ty(s);
        t == "NodePort"
            || t == "LoadBalancer"
            || (t == "ClusterIP"
                && s.get("externalIPs")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()))
    };
    // upstream `dropTypeDependentFields`: fields the new type does not use are dropped when
    // the client left them as they were (typically carried over by a patch)
    {
        let same = |ns: &Value, k: &str| ns.get(k) == os.get(k);
        let m = ns.as_object_mut().expect("object");
        let snapshot = Value::Object(m.clone());
        if needs_cluster_ip(os) && !needs_cluster_ip(&snapshot) {
            if same(&snapshot, "clusterIP") && same(&snapshot, "clusterIPs") {
                m.remove("clusterIP");
                m.remove("clusterIPs");
            }
            for k in ["ipFamilies", "ipFamilyPolicy"] {
                if same(&snapshot, k) {
                    m.remove(k);
                }
            }
        }
        let node_ports_of = |s: &Value| -> Vec<Value> {
            s.get("ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| p.get("nodePort").cloned().unwrap_or(Value::Null))
                        .collect()
                })
                .unwrap_or_default()
        };
        if needs_node_port(os)
            && !needs_node_port(&snapshot)
            && node_ports_of(&snapshot) == node_ports_of(os)
        {
            if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if let Some(pm) = p.as_object_mut() {
                        pm.remove("nodePort");
                    }
                }
            }
        }
        if needs_hc(os) && !needs_hc(&snapshot) && same(&snapshot, "healthCheckNodePort") {
            m.remove("healthCheckNodePort");
        }
        if ty(os) == "LoadBalancer" && ty(&snapshot) != "LoadBalancer" {
            for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
                if same(&snapshot, k) {
                    m.remove(k);
                }
            }
        }
        if externally_accessible(os)
            && !externally_accessible(&snapshot)
            && same(&snapshot, "externalTrafficPolicy")
        {
            m.remove("externalTrafficPolicy");
        }
    }
    if ty(ns) != "LoadBalancer" {
        if let Some(lb) = new.pointer_mut("/status/loadBalancer") {
            *lb = json!({});
        }
    }
    let Some(ns) = new.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if needs_cluster_ip(os) && needs_cluster_ip(ns) {
        if str_empty(ns.get("clusterIP")) && !str_empty(os.get("clusterIP")) {
            ns["clusterIP"] = os["clusterIP"].clone();
        }
        if is_empty_obj_or_absent(ns.get("clusterIPs"))
            && !is_empty_obj_or_absent(os.get("clusterIPs"))
        {
            ns["clusterIPs"] = os["clusterIPs"].clone();
        }
    }
    if needs_node_port(os) && needs_node_port(ns) {
        let node_ports = |s: &Value| -> Vec<i64> {
            s.get("ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                        .filter(|n| *n != 0)
                        .collect()
                })
                .unwrap_or_default()
        };
        let new_used = node_ports(ns);
        let used: Vec<i64> = node_ports(os)
            .into_iter()
            .filter(|p| new_used.contains(p))
            .collect();
        let by_name: Vec<(String, i64)> = os
            .get("ports")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let name = p
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        (name, p.get("nodePort").and_then(Value::as_i64).unwrap_or(0))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for_each(ns, "ports", |p| {
            if p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some((_, np)) = by_name.iter().rev().find(|(n, _)| n == name) {
                    if *np != 0 && !used.contains(np) {
                        p["nodePort"] = json!(np);
                    }
                }
            }
        });
    }
    if needs_hc(os)
        && needs_hc(ns)
        && ns
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
    {
        if let Some(hc) = os.get("healthCheckNodePort").filter(|v| !v.is_null()) {
            ns["healthCheckNodePort"] = hc.clone();
        }
    }
    let ip = ns
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let old_ip = os.get("clusterIP").and_then(Value::as_str).unwrap_or("");
    let same_ips = ns.get("clusterIPs") == os.get("clusterIPs");
    if ip.is_empty() && !old_ip.is_empty() && same_ips {
        // the user cleared the singular field (e.g. switching to ExternalName): clear the plural
        if let Some(m) = ns.as_object_mut() {
            m.remove("clusterIPs");
        }
    } else if !ip.is_empty()
        && (is_empty_obj_or_absent(ns.get("clusterIPs")) || (ip != old_ip && same_ips))
    {
        ns["clusterIPs"] = json!([ip]);
    }
}

/// QoS class of a pod spec (upstream `qos.GetPodQOS`, without pod-level resources):
/// Guaranteed when every container sets cpu and memory limits with requests equal to them,
/// BestEffort when no container sets any cpu/memory request or limit, else Burstable.
pub fn pod_qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let rq = req
                .and_then(|m| m.get(r))
                .and_then(Value::as_str)
                .and_then(crate::validation::quantity::parse);
            let lq = lim
                .and_then(|m| m.get(r))
                .and_then(Value::as_str)
                .and_then(crate::validation::quantity::parse);
            if rq.is_some_and(|q| q != 0.0) || lq.is_some_and(|q| q != 0.0) {
                any = true;
            }
            match (rq, lq) {
                (_, None) => guaranteed = false,
                (Some(a), Some(b)) if a != b => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

// ---- helpers ----

/// Sets `key` on the object `v` when it is absent or null.
fn set_default(v: &mut Value, key: &str, val: Value) {
    if let Some(m) = v.as_object_mut() {
        match m.get(key) {
            None | Some(Value::Null) => {
                m.insert(key.to_string(), val);
            }
            _ => {}
        }
    }
}

/// The object at `key`, created as `{}` when absent or null.
fn child<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let m = v.as_object_mut().expect("object");
    let e = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if e.is_null() {
        *e = json!({});
    }
    e
}

fn child_array<'a>(v: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    let m = v.as_object_mut().expect("object");
    let e = m.entry(key.to_string()).or_insert_with(|| json!([]));
    if !e.is_array() {
        *e = json!([]);
    }
    e.as_array_mut().expect("array")
}

fn for_each(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(a) = v.get_mut(key).and_then(Value::as_array_mut) {
        for item in a {
            if item.is_object() {
                f(item);
            }
        }
    }
}

fn with<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.get_mut(key).filter(|c| c.is_object())
}

fn is_empty_obj_or_absent(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// Rewrites a quantity in its canonical form (`round_to_milli` for resource lists, as
/// `SetDefaults_ResourceList` does); invalid quantities are left for validation to report.
fn canon_quantity(v: &mut Value, round_to_milli: bool) {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return,
    };
    if let Some(c) = crate::validation::quantity::canonicalize(&text, round_to_milli) {
        *v = Value::String(c);
    }
}

/// Canonicalizes every quantity of the ResourceList at `key` of `v`.
fn canon_resource_list(v: &mut Value, key: &str) {
    if let Some(m) = v.get_mut(key).and_then(Value::as_object_mut) {
        for q in m.values_mut() {
            canon_quantity(q, true);
        }
    }
}

/// Canonicalizes `requests` and `limits` of the ResourceRequirements at `key` of `v`.
fn canon_requirements(v: &mut Value, key: &str) {
    if let Some(r) = with(v, key) {
        canon_resource_list(r, "requests");
        canon_resource_list(r, "limits");
    }
}

// ---- core/v1 ----

fn default_pod(pod: &mut Value) {
    let spec = child(pod, "spec");
    default_pod_spec(spec);
    // SetDefaults_Pod: requests default to limits for each resource only limited.
    for key in ["containers", "initContainers"] {
        for_each(spec, key, |c| {
            let Some(limits) = c
                .pointer("/resources/limits")
                .and_then(Value::as_object)
                .cloned()
            else {
                return;
            };
            if limits.is_empty() {
                return;
            }
            let requests = child(child(c, "resources"), "requests");
            for (k, v) in limits {
                set_default(requests, &k, v);
            }
        });
    }
    set_default(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for_each(spec, key, |c| {
                for_each(c, "ports", |p| {
                    if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0 {
                        if let Some(cp) = p.get("containerPort").cloned() {
                            p["hostPort"] = cp;
                        }
                    }
                })
            });
        }
    }
    // Priority admission: without a priorityClassName (and without a global default class,
    // which the server resolves) the pod gets priority 0 and the default preemption policy.
    if spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        set_default(spec, "priority", json!(0));
        set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// Pod-template defaults (`SetDefaults_PodSpec` and nested defaulters, not the Pod-only ones).
fn default_pod_template(template: &mut Value) {
    if !template.is_object() {
        return;
    }
    default_pod_spec(child(template, "spec"));
}

/// `SetDefaults_PodSpec` plus the defaulters of everything a PodSpec contains.
pub fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for_each(spec, key, default_container);
    }
    for_each(spec, "volumes", default_volume);
    canon_resource_list(spec, "overhead");
    canon_requirements(spec, "resources");
}

fn image_tag_is_latest(image: &str) -> bool {
    // upstream parsers.ParseImageName: a digest without tag yields no tag; no tag means latest.
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => digest.is_none(),
    }
}

fn default_container(c: &mut Value) {
    if c.get("imagePullPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag_is_latest(image) {
            "Always"
        } else {
            "IfNotPresent"
        };
        c["imagePullPolicy"] = json!(policy);
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    canon_requirements(c, "resources");
    for_each(c, "ports", |p| set_default(p, "protocol", json!("TCP")));
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = with(c, key) {
            default_probe(p);
        }
    }
    if let Some(lc) = with(c, "lifecycle") {
        for key in ["postStart", "preStop"] {
            if let Some(h) = with(lc, key) {
                if let Some(g) = with(h, "httpGet") {
                    default_http_get(g);
                }
            }
        }
    }
    for_each(c, "env", |e| {
        if let Some(vf) = with(e, "valueFrom") {
            if let Some(f) = with(vf, "fieldRef") {
                set_default(f, "apiVersion", json!("v1"));
            }
            if let Some(r) = with(vf, "resourceFieldRef") {
                set_default(r, "divisor", json!("0"));
                if let Some(d) = r.get_mut("divisor") {
                    canon_quantity(d, false);
                }
            }
        }
    });
}

fn default_http_get(g: &mut Value) {
    if g.get("path")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        g["path"] = json!("/");
    }
    set_default(g, "scheme", json!("HTTP"));
}

fn default_probe(p: &mut Value) {
    // upstream treats 0 as unset for these int32 fields
    for (k, v) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        if p.get(k).and_then(Value::as_i64).unwrap_or(0) == 0 {
            p[k] = json!(v);
        }
    }
    if let Some(g) = with(p, "httpGet") {
        default_http_get(g);
    }
    if let Some(g) = with(p, "grpc") {
        set_default(g, "service", json!(""));
    }
}

fn default_downward_items(v: &mut Value) {
    for_each(v, "items", |i| {
        if let Some(f) = with(i, "fieldRef") {
            set_default(f, "apiVersion", json!("v1"));
        }
        if let Some(r) = with(i, "resourceFieldRef") {
            set_default(r, "divisor", json!("0"));
        }
    });
}

fn default_volume(v: &mut Value) {
    let has_source = v
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, val)| k != "name" && !val.is_null()));
    if !has_source {
        v["emptyDir"] = json!({});
        return;
    }
    for key in ["secret", "configMap"] {
        if let Some(s) = with(v, key) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = with(v, "downwardAPI") {
        set_default(d, "defaultMode", json!(420));
        default_downward_items(d);
    }
    if let Some(p) = with(v, "projected") {
        set_default(p, "defaultMode", json!(420));
        for_each(p, "sources", |s| {
            if let Some(t) = with(s, "serviceAccountToken") {
                set_default(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = with(s, "downwardAPI") {
                default_downward_items(d);
            }
        });
    }
    if let Some(h) = with(v, "hostPath") {
        set_default(h, "type", json!(""));
    }
    if let Some(i) = with(v, "iscsi") {
        set_default(i, "iscsiInterface", json!("default"));
    }
    if let Some(r) = with(v, "rbd") {
        set_default(r, "pool", json!("rbd"));
        set_default(r, "user", json!("admin"));
        set_default(r, "keyring", json!("/etc/ceph/keyring"));
    }
    if let Some(e) = v.pointer_mut("/ephemeral/volumeClaimTemplate/spec") {
        set_default(e, "volumeMode", json!("Filesystem"));
        canon_requirements(e, "resources");
    }
    if let Some(q) = v.pointer_mut("/emptyDir/sizeLimit") {
        canon_quantity(q, false);
    }
}

fn default_replication_controller(rc: &mut Value) {
    let labels = rc
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = labels {
        let spec = child(rc, "spec");
        if is_empty_obj_or_absent(spec.get("selector")) {
            spec["selector"] = labels.clone();
        }
        let meta = child(rc, "metadata");
        if is_empty_obj_or_absent(meta.get("labels")) {
            meta["labels"] = labels;
        }
    }
    let spec = child(rc, "spec");
    set_default(spec, "replicas", json!(1));
    if let Some(t) = with(spec, "template") {
        default_pod_template(t);
    }
}

fn default_service(svc: &mut Value) {
    let spec = child(svc, "spec");
    if spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        spec["type"] = json!("ClusterIP");
    }
    if spec
        .get("sessionAffinity")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        spec["sessionAffinity"] = json!("None");
    }
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            if let Some(m) = spec.as_object_mut() {
                m.remove("sessionAffinityConfig");
            }
        }
        Some("ClientIP") => {
            let cip = child(child(spec, "sessionAffinityConfig"), "clientIP");
            set_default(cip, "timeoutSeconds", json!(10800));
        }
        _ => {}
    }
    for_each(spec, "ports", |p| {
        set_default(p, "protocol", json!("TCP"));
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            if let Some(port) = p.get("port").cloned() {
                p["targetPort"] = port;
            }
        }
    });
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && external_ips);
    if externally_accessible
        && spec
            .get("externalTrafficPolicy")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        // Set by the REST layer's IP allocator upstream: headless services without a selector
        // default to RequireDualStack, every other non-ExternalName service to SingleStack.
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        let selectorless = is_empty_obj_or_absent(spec.get("selector"));
        let policy = if headless && selectorless {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        set_default(spec, "ipFamilyPolicy", json!(policy));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
        if let Some(ingress) = svc
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
        {
            for ing in ingress {
                if ing
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| !ip.is_empty())
                {
                    set_default(ing, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

fn default_namespace(ns: &mut Value) {
    let name = ns
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        let labels = child(child(ns, "metadata"), "labels");
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
    if let Some(status) = with(ns, "status") {
        if status
            .get("phase")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            status["phase"] = json!("Active");
        }
    }
}

fn default_node(node: &mut Value) {
    if let Some(status) = with(node, "status") {
        canon_resource_list(status, "capacity");
        canon_resource_list(status, "allocatable");
        if is_empty_obj_or_absent(status.get("allocatable")) {
            if let Some(cap) = status
                .get("capacity")
                .filter(|c| c.as_object().is_some_and(|m| !m.is_empty()))
                .cloned()
            {
                status["allocatable"] = cap;
            }
        }
    }
}

fn default_persistent_volume(pv: &mut Value) {
    let spec = child(pv, "spec");
    set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    set_default(spec, "volumeMode", json!("Filesystem"));
    canon_resource_list(spec, "capacity");
    let status = child(pv, "status");
    set_default(status, "phase", json!("Pending"));
}

fn default_pvc(pvc: &mut Value) {
    let spec = child(pvc, "spec");
    set_default(spec, "volumeMode", json!("Filesystem"));
    canon_requirements(spec, "resources");
    if let Some(st) = with(pvc, "status") {
        canon_resource_list(st, "capacity");
    }
    set_default(child(pvc, "status"), "phase", json!("Pending"));
}

fn default_limit_range_item(item: &mut Value) {
    for k in [
        "max",
        "min",
        "default",
        "defaultRequest",
        "maxLimitRequestRatio",
    ] {
        canon_resource_list(item, k);
    }
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let get = |item: &Value, k: &str| {
        item.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let max = get(item, "max");
    let min = get(item, "min");
    let mut default = get(item, "default");
    for (k, v) in max {
        default.entry(k).or_insert(v);
    }
    let mut default_request = get(item, "defaultRequest");
    for (k, v) in default.iter().chain(min.iter()) {
        default_request.entry(k.clone()).or_insert(v.clone());
    }
    if !default.is_empty() {
        item["default"] = Value::Object(default);
    }
    if !default_request.is_empty() {
        item["defaultRequest"] = Value::Object(default_request);
    }
}

// ---- apps/v1 ----

/// Pod defaults of `spec.template`, which is a struct (always present) in these kinds.
fn default_template_of(spec: &mut Value) {
    default_pod_template(child(spec, "template"));
}

fn default_deployment(d: &mut Value) {
    let spec = child(d, "spec");
    set_default(spec, "replicas", json!(1));
    let strategy = child(spec, "strategy");
    if strategy
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        strategy["type"] = json!("RollingUpdate");
    }
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = child(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!("25%"));
        set_default(ru, "maxSurge", json!("25%"));
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    default_template_of(spec);
}

fn default_replica_set(rs: &mut Value) {
    let spec = child(rs, "spec");
    set_default(spec, "replicas", json!(1));
    default_template_of(spec);
}

fn default_stateful_set(s: &mut Value) {
    let spec = child(s, "spec");
    if spec
        .get("podManagementPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        spec["podManagementPolicy"] = json!("OrderedReady");
    }
    let us = child(spec, "updateStrategy");
    if us
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        us["type"] = json!("RollingUpdate");
        child(us, "rollingUpdate");
    }
    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        if let Some(ru) = with(us, "rollingUpdate") {
            set_default(ru, "partition", json!(0));
        }
    }
    let policy = child(spec, "persistentVolumeClaimRetentionPolicy");
    set_default(policy, "whenDeleted", json!("Retain"));
    set_default(policy, "whenScaled", json!("Retain"));
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for_each(spec, "volumeClaimTemplates", default_pvc);
    default_template_of(spec);
}

fn default_daemon_set(ds: &mut Value) {
    let spec = child(ds, "spec");
    let us = child(spec, "updateStrategy");
    if us
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        us["type"] = json!("RollingUpdate");
    }
    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = child(us, "rollingUpdate");
        set_default(ru, "maxUnavailable", json!(1));
        set_default(ru, "maxSurge", json!(0));
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    default_template_of(spec);
}

// ---- batch/v1 ----

fn default_job(job: &mut Value) {
    let template_labels = job
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    let spec = child(job, "spec");
    let absent = |s: &Value, k: &str| s.get(k).is_none_or(Value::is_null);
    if absent(spec, "completions") && absent(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    if absent(spec, "backoffLimit") {
        let limit = if absent(spec, "backoffLimitPerIndex") {
            6
        } else {
            i32::MAX as i64
        };
        spec["backoffLimit"] = json!(limit);
    }
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let has_failure_policy = !absent(spec, "podFailurePolicy");
    if let Some(pfp) = with(spec, "podFailurePolicy") {
        for_each(pfp, "rules", |r| {
            for_each(r, "onPodConditions", |c| {
                set_default(c, "status", json!("True"))
            })
        });
    }
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    set_default(spec, "manualSelector", json!(false));
    default_template_of(spec);
    if let Some(labels) = template_labels {
        let meta = child(job, "metadata");
        if is_empty_obj_or_absent(meta.get("labels")) {
            meta["labels"] = labels;
        }
    }
}

fn default_cron_job(cj: &mut Value) {
    let spec = child(cj, "spec");
    if spec
        .get("concurrencyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        spec["concurrencyPolicy"] = json!("Allow");
    }
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    // jobTemplate, its spec and their pod template are structs upstream: always defaulted
    default_template_of(child(child(spec, "jobTemplate"), "spec"));
}

// ---- autoscaling/v2 ----

fn default_hpa_v2(hpa: &mut Value) {
    let spec = child(hpa, "spec");
    set_default(spec, "minReplicas", json!(1));
    if is_empty_obj_or_absent(spec.get("metrics")) {
        spec["metrics"] = json!([{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
        }]);
    }
    if let Some(b) = with(spec, "behavior") {
        let up = child(b, "scaleUp");
        set_default(up, "stabilizationWindowSeconds", json!(0));
        set_default(up, "selectPolicy", json!("Max"));
        if is_empty_obj_or_absent(up.get("policies")) {
            up["policies"] = json!([
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}
            ]);
        }
        let down = child(b, "scaleDown");
        set_default(down, "selectPolicy", json!("Max"));
        if is_empty_obj_or_absent(down.get("policies")) {
            down["policies"] = json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]);
        }
    }
}

// ---- networking.k8s.io/v1, rbac ----

fn default_network_policy(np: &mut Value) {
    let spec = child(np, "spec");
    for dir in ["ingress", "egress"] {
        for_each(spec, dir, |r| {
            for_each(r, "ports", |p| set_default(p, "protocol", json!("TCP")))
        });
    }
    if is_empty_obj_or_absent(spec.get("policyTypes")) {
        let mut types = vec![json!("Ingress")];
        if !is_empty_obj_or_absent(spec.get("egress")) {
            types.push(json!("Egress"));
        }
        spec["policyTypes"] = Value::Array(types);
    }
}

fn default_role_binding(rb: &mut Value) {
    if let Some(r) = with(rb, "roleRef") {
        if r.get("apiGroup")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            r["apiGroup"] = json!("rbac.authorization.k8s.io");
        }
    }
    for_each(rb, "subjects", |s| {
        if s.get("apiGroup")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            if let Some("User" | "Group") = s.get("kind").and_then(Value::as_str) {
                s["apiGroup"] = json!("rbac.authorization.k8s.io");
            }
        }
    });
}

#[cfg(test)]
mod tests;
