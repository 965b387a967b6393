//! A container's environment, as upstream's `makeEnvironmentVariables`: service link variables
//! (`FOO_SERVICE_HOST`, docker-link style `FOO_PORT_80_TCP...`), `envFrom` (configMap/secret with
//! prefix), `env` (value with `$(VAR)` expansion, configMapKeyRef, secretKeyRef, fieldRef,
//! resourceFieldRef, optional), and `$(VAR)` expansion of command and args. Sans-IO: the
//! configMaps and secrets referenced are fetched by the caller (see [`references`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::expand::expand;
use crate::qos;

/// Why a container's environment cannot be built (reported as CreateContainerConfigError).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKey {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    #[error("unsupported container resource: {0}")]
    Resource(String),
    #[error("container {0} not found in pod for resourceFieldRef")]
    ResourceContainer(String),
}

/// What the environment of a container is built from.
pub struct EnvSources<'a> {
    pub pod: &'a Pod,
    /// Every service of the pod's namespace and of `default` (others are ignored).
    pub services: &'a [Service],
    /// The configMaps and secrets of the pod's namespace the container refers to, by name
    /// (missing ones are absent).
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
    pub secrets: &'a BTreeMap<String, Secret>,
    pub host_ips: &'a [String],
    pub pod_ips: &'a [String],
    /// Node allocatable cpu (milli), memory and ephemeral storage (bytes), used for limits a
    /// container does not set.
    pub node_allocatable: (i64, i64, i64),
}

/// The built environment and warnings upstream reports as events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Env {
    pub vars: Vec<(String, String)>,
    /// Keys skipped because they are not valid variable names, as the message of an
    /// `InvalidEnvironmentVariableNames` event.
    pub warnings: Vec<String>,
}

impl Env {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The configMap and secret names a container's env and envFrom refer to.
pub fn references(c: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for ef in c.env_from.iter().flatten() {
        if let Some(r) = &ef.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &ef.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.config_map_key_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &vf.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    (cms, secrets)
}

fn env_name(service: &str) -> String {
    service.to_uppercase().replace('-', "_")
}

fn join_host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Service environment variables (upstream `envvars.FromServices`) of the given services.
pub fn service_env(services: &[&Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let ports = spec.ports.clone().unwrap_or_default();
        let prefix = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
        if let Some(first) = ports.first() {
            out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        }
        for p in &ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(name)),
                    p.port.to_string(),
                ));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{}", join_host_port(&ip, p.port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.clone()));
        }
    }
    out
}

/// The services whose variables a pod gets (upstream `getServiceEnvVarMap`): the `kubernetes`
/// service of `default` always, every service of the pod's namespace when service links are on
/// (a pod-namespace service shadows a same-named master service).
pub fn pod_services<'a>(services: &'a [Service], namespace: &str, links: bool) -> Vec<&'a Service> {
    let mut by_name: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        let name = s.metadata.name.clone().unwrap_or_default();
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        let ip_set = s
            .spec
            .as_ref()
            .and_then(|sp| sp.cluster_ip.as_deref())
            .is_some_and(|ip| !ip.is_empty() && ip != "None");
        if !ip_set {
            continue;
        }
        if ns == "default" && name == "kubernetes" {
            by_name.entry(name).or_insert(s);
        } else if ns == namespace && links {
            by_name.insert(name, s);
        }
    }
    by_name.into_values().collect()
}

/// Upstream's strict `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || "-._".contains(c) => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// An ordered map where a later insert replaces the value in place.
#[derive(Default)]
struct Ordered(Vec<(String, String)>);

impl Ordered {
    fn set(&mut self, k: String, v: String) {
        match self.0.iter_mut().find(|(n, _)| *n == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k, v)),
        }
    }
    fn get(&self, k: &str) -> Option<&String> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }
}

/// Builds the environment of `container` in `src.pod`.
pub fn make_env(src: &EnvSources<'_>, container: &Container) -> Result<Env, EnvError> {
    let pod = src.pod;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let services = pod_services(src.services, &ns, links);
    let svc_env = service_env(&services);
    let svc_lookup = |k: &str| svc_env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());

    let mut tmp = Ordered::default();
    let mut warnings = Vec::new();
    for ef in container.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        let mut invalid = Vec::new();
        let (entries, kind, name): (Vec<(String, String)>, &str, String) =
            if let Some(r) = &ef.config_map_ref {
                match src.config_maps.get(&r.name) {
                    Some(cm) => (
                        cm.data.clone().unwrap_or_default().into_iter().collect(),
                        "configMap",
                        r.name.clone(),
                    ),
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                }
            } else if let Some(r) = &ef.secret_ref {
                match src.secrets.get(&r.name) {
                    Some(s) => (
                        s.data
                            .clone()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                            .collect(),
                        "secret",
                        r.name.clone(),
                    ),
                    None if r.optional == Some(true) => continue,
                    None => return Err(EnvError::SecretNotFound(r.name.clone())),
                }
            } else {
                continue;
            };
        for (k, v) in entries {
            let k = format!("{prefix}{k}");
            if !is_env_var_name(&k) {
                invalid.push(k);
                continue;
            }
            tmp.set(k, v);
        }
        if !invalid.is_empty() {
            invalid.sort();
            warnings.push(format!(
                "Keys [{}] from the EnvFrom {kind} {ns}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }
    for e in container.env.iter().flatten() {
        let mut value = e.value.clone().unwrap_or_default();
        if !value.is_empty() {
            value = expand(&value, &|k: &str| {
                tmp.get(k).cloned().or_else(|| svc_lookup(k))
            });
        } else if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                value = field_value(pod, &f.field_path, src.host_ips, src.pod_ips)?;
            } else if let Some(r) = &vf.resource_field_ref {
                let cname = r
                    .container_name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| container.name.clone());
                let target = find_container(pod, &cname)
                    .or_else(|| (cname == container.name).then_some(container))
                    .ok_or(EnvError::ResourceContainer(cname))?;
                value = resource_value(
                    target,
                    &r.resource,
                    r.divisor.as_ref(),
                    src.node_allocatable,
                )?;
            } else if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional == Some(true);
                match src.config_maps.get(&r.name) {
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => value = v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::ConfigMapKey {
                                key: r.key.clone(),
                                namespace: ns.clone(),
                                name: r.name.clone(),
                            })
                        }
                    },
                }
            } else if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional == Some(true);
                match src.secrets.get(&r.name) {
                    None if optional => continue,
                    None => return Err(EnvError::SecretNotFound(r.name.clone())),
                    Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => value = String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::SecretKey {
                                key: r.key.clone(),
                                namespace: ns.clone(),
                                name: r.name.clone(),
                            })
                        }
                    },
                }
            }
        }
        tmp.set(e.name.clone(), value);
    }
    let mut vars = tmp.0;
    for (k, v) in svc_env {
        if !vars.iter().any(|(n, _)| *n == k) {
            vars.push((k, v));
        }
    }
    Ok(Env { vars, warnings })
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// The value of a downward API field path (upstream `podFieldSelectorRuntimeValue`).
pub fn field_value(
    pod: &Pod,
    path: &str,
    host_ips: &[String],
    pod_ips: &[String],
) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
        rest.strip_suffix("']").map(str::to_string)
    };
    let v = match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => host_ips.join(","),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        "metadata.labels" | "metadata.annotations" => {
            // whole maps only make sense as downward API volume files
            return Err(EnvError::FieldPath(path.to_string()));
        }
        _ => {
            if let Some(k) = subscript("metadata.labels") {
                m.labels
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else if let Some(k) = subscript("metadata.annotations") {
                m.annotations
                    .as_ref()
                    .and_then(|l| l.get(&k))
                    .cloned()
                    .unwrap_or_default()
            } else {
                return Err(EnvError::FieldPath(path.to_string()));
            }
        }
    };
    Ok(v)
}

/// The value of a resourceFieldRef (upstream `ExtractContainerResourceValue` with limits
/// defaulted to node allocatable).
pub fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
    allocatable: (i64, i64, i64),
) -> Result<String, EnvError> {
    let res = c.resources.as_ref();
    let get = |limits: bool, name: &str| -> Option<&Quantity> {
        let l = if limits {
            res.and_then(|r| r.limits.as_ref())
        } else {
            res.and_then(|r| r.requests.as_ref())
        };
        l.and_then(|l| l.get(name))
    };
    let one = Quantity("1".into());
    let divisor = divisor.unwrap_or(&one);
    let ceil_div = |a: i64, b: i64| -> i64 {
        if b <= 0 {
            0
        } else {
            (a + b - 1).div_euclid(b)
        }
    };
    let (limits, name) = match resource.split_once('.') {
        Some(("limits", n)) => (true, n),
        Some(("requests", n)) => (false, n),
        _ => return Err(EnvError::Resource(resource.to_string())),
    };
    let v = match name {
        "cpu" => {
            let m = match get(limits, "cpu") {
                Some(q) => qos::milli(q),
                None if limits => allocatable.0,
                None => 0,
            };
            ceil_div(m, qos::milli(divisor).max(1))
        }
        "memory" | "ephemeral-storage" => {
            let alloc = if name == "memory" {
                allocatable.1
            } else {
                allocatable.2
            };
            let b = match get(limits, name) {
                Some(q) => qos::value(q),
                None if limits => alloc,
                None => 0,
            };
            ceil_div(b, qos::value(divisor).max(1))
        }
        _ => return Err(EnvError::Resource(resource.to_string())),
    };
    Ok(v.to_string())
}

/// `command` and `args` with `$(VAR)` expanded against the final environment.
pub fn expand_command(c: &Container, env: &Env) -> (Vec<String>, Vec<String>) {
    let lookup = |k: &str| env.get(k).map(str::to_string);
    let ex = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| expand(s, &lookup)).collect()
    };
    (ex(&c.command), ex(&c.args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                         "labels": {"app": "x"}, "annotations": {"a/b": "c"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .unwrap()
    }

    fn cm(name: &str, data: serde_json::Value) -> (String, ConfigMap) {
        (
            name.to_string(),
            serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap(),
        )
    }

    fn secret(name: &str, data: serde_json::Value) -> (String, Secret) {
        (
            name.to_string(),
            serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap(),
        )
    }

    #[test]
    fn service_variables_like_upstream() {
        let s = svc(
            "ns1",
            "my-db",
            "10.43.0.7",
            json!([{"name": "sql-port", "port": 5432, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]),
        );
        let got: BTreeMap<_, _> = service_env(&[&s]).into_iter().collect();
        let want: BTreeMap<String, String> = [
            ("MY_DB_SERVICE_HOST", "10.43.0.7"),
            ("MY_DB_SERVICE_PORT", "5432"),
            ("MY_DB_SERVICE_PORT_SQL_PORT", "5432"),
            ("MY_DB_PORT", "tcp://10.43.0.7:5432"),
            ("MY_DB_PORT_5432_TCP", "tcp://10.43.0.7:5432"),
            ("MY_DB_PORT_5432_TCP_PROTO", "tcp"),
            ("MY_DB_PORT_5432_TCP_PORT", "5432"),
            ("MY_DB_PORT_5432_TCP_ADDR", "10.43.0.7"),
            ("MY_DB_PORT_53_UDP", "udp://10.43.0.7:53"),
            ("MY_DB_PORT_53_UDP_PROTO", "udp"),
            ("MY_DB_PORT_53_UDP_PORT", "53"),
            ("MY_DB_PORT_53_UDP_ADDR", "10.43.0.7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        let v6 = svc("ns1", "v6", "fd00::1", json!([{"port": 80}]));
        let got: BTreeMap<_, _> = service_env(&[&v6]).into_iter().collect();
        assert_eq!(got["V6_PORT"], "tcp://[fd00::1]:80");
    }

    #[test]
    fn service_selection_table() {
        let all = vec![
            svc(
                "default",
                "kubernetes",
                "10.43.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
            svc("default", "other", "10.43.0.2", json!([{"port": 80}])),
            svc("ns1", "mine", "10.43.0.3", json!([{"port": 80}])),
            svc("ns1", "headless", "None", json!([{"port": 80}])),
            svc("ns2", "theirs", "10.43.0.4", json!([{"port": 80}])),
        ];
        let names = |v: Vec<&Service>| -> Vec<String> {
            v.iter().map(|s| s.metadata.name.clone().unwrap()).collect()
        };
        assert_eq!(
            names(pod_services(&all, "ns1", true)),
            vec!["kubernetes", "mine"]
        );
        assert_eq!(names(pod_services(&all, "ns1", false)), vec!["kubernetes"]);
        assert_eq!(
            names(pod_services(&all, "default", true)),
            vec!["kubernetes", "other"]
        );
    }

    fn build(
        p: &Pod,
        cms: &[(String, ConfigMap)],
        secrets: &[(String, Secret)],
        services: &[Service],
    ) -> Result<Env, EnvError> {
        let config_maps: BTreeMap<_, _> = cms.iter().cloned().collect();
        let secrets: BTreeMap<_, _> = secrets.iter().cloned().collect();
        let host = vec!["192.168.1.5".to_string()];
        let ips = vec!["10.42.0.9".to_string(), "fd00::9".to_string()];
        let src = EnvSources {
            pod: p,
            services,
            config_maps: &config_maps,
            secrets: &secrets,
            host_ips: &host,
            pod_ips: &ips,
            node_allocatable: (2000, 4 << 30, 10 << 30),
        };
        make_env(&src, &p.spec.as_ref().unwrap().containers[0])
    }

    #[test]
    fn env_sources_and_expansion() {
        let p = pod(json!({"containers": [{"name": "c", "image": "busybox",
        "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}},
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "sec"}}],
        "env": [
            {"name": "A", "value": "a"},
            {"name": "B", "value": "$(A)-$(CFG_one)-$(MISSING)-$$(A)-$(KUBERNETES_SERVICE_HOST)"},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "one"}}},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "ANN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['a/b']"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "A", "value": "override"}
        ]}]}));
        let services = vec![svc(
            "default",
            "kubernetes",
            "10.43.0.1",
            json!([{"name": "https", "port": 443}]),
        )];
        let env = build(
            &p,
            &[cm("cfg", json!({"one": "1", "bad key": "x"}))],
            &[secret("sec", json!({"pw": "czNjcjN0"}))],
            &services,
        )
        .unwrap();
        let cases = [
            ("CFG_one", "1"),
            ("pw", "s3cr3t"),
            ("A", "override"),
            ("B", "a-1-$(MISSING)-$(A)-10.43.0.1"),
            ("FROM_CM", "1"),
            ("FROM_SECRET", "s3cr3t"),
            ("POD_NAME", "web"),
            ("POD_NS", "ns1"),
            ("POD_UID", "u-1"),
            ("LABEL", "x"),
            ("ANN", "c"),
            ("POD_IP", "10.42.0.9"),
            ("POD_IPS", "10.42.0.9,fd00::9"),
            ("HOST_IP", "192.168.1.5"),
            ("MEM_LIMIT", "64"),
            // no cpu limit: node allocatable (2 cpus)
            ("CPU_LIMIT", "2"),
            ("CPU_REQ_M", "250"),
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ];
        for (k, v) in cases {
            assert_eq!(env.get(k), Some(v), "{k}");
        }
        assert_eq!(env.get("OPT"), None);
        assert_eq!(env.vars.iter().filter(|(k, _)| k == "A").count(), 1);
        assert_eq!(env.warnings.len(), 1);
        assert!(
            env.warnings[0].contains("[CFG_bad key]"),
            "{:?}",
            env.warnings
        );
    }

    #[test]
    fn missing_sources_are_errors_unless_optional() {
        let cases = [
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]),
                json!(null),
                Err(EnvError::ConfigMapNotFound("nope".into())),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]),
                json!(null),
                Err(EnvError::ConfigMapKey {
                    key: "k".into(),
                    namespace: "ns1".into(),
                    name: "cfg".into(),
                }),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}}]),
                json!(null),
                Ok(None),
            ),
            (
                json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]),
                json!(null),
                Err(EnvError::SecretNotFound("nope".into())),
            ),
            (
                json!(null),
                json!([{"configMapRef": {"name": "nope"}}]),
                Err(EnvError::ConfigMapNotFound("nope".into())),
            ),
            (
                json!(null),
                json!([{"secretRef": {"name": "nope", "optional": true}}]),
                Ok(None),
            ),
            (
                json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]),
                json!(null),
                Err(EnvError::FieldPath("spec.bogus".into())),
            ),
        ];
        for (i, (env, env_from, want)) in cases.into_iter().enumerate() {
            let p = pod(
                json!({"containers": [{"name": "c", "image": "i", "env": env, "envFrom": env_from}]}),
            );
            let got = build(&p, &[cm("cfg", json!({"one": "1"}))], &[], &[])
                .map(|e| e.get("X").map(str::to_string));
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn command_and_args_expand_with_final_env() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i",
            "command": ["sh", "-c", "echo $(GREETING) $$(GREETING) $(NOPE)"],
            "args": ["$(GREETING)"],
            "env": [{"name": "GREETING", "value": "hi"}]}]}));
        let env = build(&p, &[], &[], &[]).unwrap();
        let (cmd, args) = expand_command(&p.spec.as_ref().unwrap().containers[0], &env);
        assert_eq!(cmd, vec!["sh", "-c", "echo hi $(GREETING) $(NOPE)"]);
        assert_eq!(args, vec!["hi"]);
    }

    #[test]
    fn env_var_names() {
        for (n, ok) in [
            ("A", true),
            ("a.b-c_1", true),
            ("_x", true),
            ("1a", false),
            ("a b", false),
            ("", false),
        ] {
            assert_eq!(is_env_var_name(n), ok, "{n}");
        }
    }

    #[test]
    fn references_collects_names() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i",
            "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s1"}}],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "b", "key": "k"}}},
                    {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}]}]}));
        let (cms, secrets) = references(&p.spec.as_ref().unwrap().containers[0]);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), vec!["s1", "s2"]);
    }
}
