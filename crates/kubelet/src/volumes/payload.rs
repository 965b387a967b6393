//! The file sets (payloads) of configMap, secret and downwardAPI volumes, computed from the API
//! objects exactly as upstream's `MakePayload` / `CollectData` do. Pure functions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, Secret,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Mode of projected files when the volume sets none (`0644`).
pub const DEFAULT_MODE: i32 = 0o644;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
    /// Owner of the file when the pod sets a fsUser (service account tokens).
    pub uid: Option<u32>,
}

impl FileProjection {
    pub fn new(data: impl Into<Vec<u8>>, mode: i32) -> Self {
        Self {
            data: data.into(),
            mode: (mode as u32) & 0o7777,
            uid: None,
        }
    }
}

/// Relative path -> file.
pub type Payload = BTreeMap<String, FileProjection>;

/// Node allocatable resources: the default limits of containers that set none (downward API).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeAllocatable {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
}

/// The payload of a configMap (or projected configMap source).
pub fn config_map_payload(
    items: &[KeyToPath],
    config_map: &ConfigMap,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let empty = BTreeMap::new();
    let data = config_map.data.as_ref().unwrap_or(&empty);
    let empty_bin = BTreeMap::new();
    let binary = config_map.binary_data.as_ref().unwrap_or(&empty_bin);
    let mut payload = Payload::new();
    if items.is_empty() {
        for (k, v) in data {
            payload.insert(k.clone(), FileProjection::new(v.as_bytes(), default_mode));
        }
        for (k, v) in binary {
            payload.insert(k.clone(), FileProjection::new(v.0.clone(), default_mode));
        }
        return Ok(payload);
    }
    for item in items {
        let bytes = if let Some(s) = data.get(&item.key) {
            s.as_bytes().to_vec()
        } else if let Some(b) = binary.get(&item.key) {
            b.0.clone()
        } else if optional {
            continue;
        } else {
            return Err(format!(
                "configmap references non-existent config key: {}",
                item.key
            ));
        };
        payload.insert(
            item.path.clone(),
            FileProjection::new(bytes, item.mode.unwrap_or(default_mode)),
        );
    }
    Ok(payload)
}

/// The payload of a secret (or projected secret source). `stringData` never reaches a reader: the
/// API server merges it into `data`.
pub fn secret_payload(
    items: &[KeyToPath],
    secret: &Secret,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, String> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let mut payload = Payload::new();
    if items.is_empty() {
        for (k, v) in data {
            payload.insert(k.clone(), FileProjection::new(v.0.clone(), default_mode));
        }
        return Ok(payload);
    }
    for item in items {
        let Some(v) = data.get(&item.key) else {
            if optional {
                continue;
            }
            return Err(format!("references non-existent secret key: {}", item.key));
        };
        payload.insert(
            item.path.clone(),
            FileProjection::new(v.0.clone(), item.mode.unwrap_or(default_mode)),
        );
    }
    Ok(payload)
}

/// The payload of a downwardAPI volume (or projected downwardAPI source). Every item is tried;
/// failures are joined like upstream's error aggregate.
pub fn downward_api_payload(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    allocatable: &NodeAllocatable,
    default_mode: i32,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let mode = item.mode.unwrap_or(default_mode);
        let value = if let Some(f) = &item.field_ref {
            extract_field_path(pod, &f.field_path)
        } else if let Some(r) = &item.resource_field_ref {
            extract_resource_value(
                r,
                pod,
                r.container_name.as_deref().unwrap_or(""),
                allocatable,
            )
        } else {
            Ok(String::new())
        };
        match value {
            Ok(v) => {
                payload.insert(clean_path(&item.path), FileProjection::new(v, mode));
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(payload)
    } else {
        Err(aggregate(errors))
    }
}

/// Joins several messages as upstream's `utilerrors.NewAggregate(...).Error()`.
pub fn aggregate(mut errors: Vec<String>) -> String {
    errors.dedup();
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    }
}

/// `filepath.Clean` for relative slash paths.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !p.starts_with('/') {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (p.starts_with('/'), joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// A pod field for the downward API volume: `metadata.{name,namespace,uid,labels,annotations}` and
/// subscripted `metadata.labels['k']` / `metadata.annotations['k']` (upstream
/// `fieldpath.ExtractFieldPathAsString`).
pub fn extract_field_path(pod: &Pod, field_path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    if let Some((path, key)) = split_subscripted(field_path) {
        return match path {
            "metadata.annotations" => {
                check_qualified_name(&key.to_lowercase(), field_path)?;
                Ok(meta
                    .annotations
                    .as_ref()
                    .unwrap_or(&empty)
                    .get(key)
                    .cloned()
                    .unwrap_or_default())
            }
            "metadata.labels" => {
                check_qualified_name(key, field_path)?;
                Ok(meta
                    .labels
                    .as_ref()
                    .unwrap_or(&empty)
                    .get(key)
                    .cloned()
                    .unwrap_or_default())
            }
            _ => Err(format!(
                "fieldPath {field_path:?} does not support subscript"
            )),
        };
    }
    match field_path {
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref().unwrap_or(&empty))),
        "metadata.labels" => Ok(format_map(meta.labels.as_ref().unwrap_or(&empty))),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        other => Err(format!("unsupported fieldPath: {other}")),
    }
}

fn check_qualified_name(key: &str, field_path: &str) -> Result<(), String> {
    let errs = apimachinery::meta::is_qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "invalid key subscript in {field_path}: {}",
            errs.join(";")
        ))
    }
}

/// `metadata.labels['key']` -> (`metadata.labels`, `key`).
pub fn split_subscripted(field_path: &str) -> Option<(&str, &str)> {
    let s = field_path.strip_suffix("']")?;
    let (path, key) = s.split_once("['")?;
    if path.is_empty() {
        return None;
    }
    Some((path, key))
}

/// `key="value"` lines in key order, values quoted like Go's `%q` (upstream `FormatMap`).
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A container resource for the downward API (`limits.cpu`, `requests.memory`, ...), limits
/// defaulting to node allocatable (upstream `ExtractResourceValueByContainerNameAndNodeAllocatable`).
pub fn extract_resource_value(
    selector: &ResourceFieldSelector,
    pod: &Pod,
    container_name: &str,
    allocatable: &NodeAllocatable,
) -> Result<String, String> {
    let spec = pod.spec.as_ref();
    let container: Option<&Container> = spec.and_then(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .find(|c| c.name == container_name)
    });
    let Some(container) = container else {
        return Err(format!("container {container_name} not found"));
    };
    let resources = container.resources.as_ref();
    let limit = |name: &str| {
        resources
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
    };
    let request = |name: &str| {
        resources
            .and_then(|r| r.requests.as_ref())
            .and_then(|l| l.get(name))
    };
    let divisor = match &selector.divisor {
        Some(q) if quantity(q) != 0.0 => quantity(q),
        _ => 1.0,
    };
    let cpu = |q: Option<&Quantity>, default_millis: u64| {
        let millis = q.map_or(default_millis as f64, |q| (quantity(q) * 1000.0).ceil());
        let divisor_millis = (divisor * 1000.0).ceil();
        ((millis / divisor_millis).ceil() as i64).to_string()
    };
    let bytes = |q: Option<&Quantity>, default: u64| {
        let value = q.map_or(default as f64, |q| quantity(q).ceil());
        ((value / divisor.ceil()).ceil() as i64).to_string()
    };
    match selector.resource.as_str() {
        "limits.cpu" => Ok(cpu(limit("cpu"), allocatable.cpu_millis)),
        "limits.memory" => Ok(bytes(limit("memory"), allocatable.memory_bytes)),
        "limits.ephemeral-storage" => Ok(bytes(
            limit("ephemeral-storage"),
            allocatable.ephemeral_storage_bytes,
        )),
        "requests.cpu" => Ok(cpu(request("cpu"), 0)),
        "requests.memory" => Ok(bytes(request("memory"), 0)),
        "requests.ephemeral-storage" => Ok(bytes(request("ephemeral-storage"), 0)),
        r => {
            if let Some(name) = r
                .strip_prefix("requests.")
                .filter(|n| n.starts_with("hugepages-"))
            {
                return Ok(bytes(request(name), 0));
            }
            if let Some(name) = r
                .strip_prefix("limits.")
                .filter(|n| n.starts_with("hugepages-"))
            {
                return Ok(bytes(limit(name), 0));
            }
            Err(format!("unsupported container resource : {r}"))
        }
    }
}

fn quantity(q: &Quantity) -> f64 {
    apimachinery::validation::quantity::parse(&q.0).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectFieldSelector, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::ByteString;

    fn ktp(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some([("a".to_string(), "A".to_string())].into()),
            binary_data: Some([("b".to_string(), ByteString(vec![0, 1]))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn config_map_payload_table() {
        let all = config_map_payload(&[], &cm(), 0o600, false).unwrap();
        assert_eq!(all["a"], FileProjection::new("A", 0o600));
        assert_eq!(all["b"].data, vec![0, 1]);
        assert_eq!(all.len(), 2);

        let items = config_map_payload(
            &[ktp("a", "dir/x", Some(0o400)), ktp("b", "y", None)],
            &cm(),
            DEFAULT_MODE,
            false,
        )
        .unwrap();
        assert_eq!(items["dir/x"], FileProjection::new("A", 0o400));
        assert_eq!(items["y"].mode, 0o644);
        assert!(!items.contains_key("a"));

        assert_eq!(
            config_map_payload(&[ktp("zz", "z", None)], &cm(), DEFAULT_MODE, false).unwrap_err(),
            "configmap references non-existent config key: zz"
        );
        assert!(
            config_map_payload(&[ktp("zz", "z", None)], &cm(), DEFAULT_MODE, true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn secret_payload_table() {
        let s = Secret {
            data: Some([("tls.key".to_string(), ByteString(b"K".to_vec()))].into()),
            ..Default::default()
        };
        assert_eq!(
            secret_payload(&[], &s, 0o400, false).unwrap()["tls.key"],
            FileProjection::new("K", 0o400)
        );
        assert_eq!(
            secret_payload(&[ktp("nope", "n", None)], &s, 0o400, false).unwrap_err(),
            "references non-existent secret key: nope"
        );
        assert!(secret_payload(&[ktp("nope", "n", None)], &s, 0o400, true)
            .unwrap()
            .is_empty());
    }

    fn pod() -> Pod {
        let mut limits = BTreeMap::new();
        limits.insert("memory".to_string(), Quantity("64Mi".into()));
        let mut requests = BTreeMap::new();
        requests.insert("cpu".to_string(), Quantity("250m".into()));
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u-1".into()),
                labels: Some(
                    [
                        ("b".to_string(), "2\"q".to_string()),
                        ("a".to_string(), "1".to_string()),
                    ]
                    .into(),
                ),
                annotations: Some([("x.io/y".to_string(), "v\n".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(limits),
                        requests: Some(requests),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn field_paths() {
        let p = pod();
        let cases = [
            ("metadata.name", Ok("web")),
            ("metadata.namespace", Ok("ns")),
            ("metadata.uid", Ok("u-1")),
            ("metadata.labels", Ok("a=\"1\"\nb=\"2\\\"q\"")),
            ("metadata.annotations", Ok("x.io/y=\"v\\n\"")),
            ("metadata.labels['a']", Ok("1")),
            ("metadata.labels['missing']", Ok("")),
            ("metadata.annotations['x.io/y']", Ok("v\n")),
            ("spec.nodeName", Err("unsupported fieldPath: spec.nodeName")),
            (
                "metadata.name['x']",
                Err("fieldPath \"metadata.name['x']\" does not support subscript"),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(
                extract_field_path(&p, path).as_deref(),
                want.map_err(|e| e.to_string()).as_deref(),
                "{path}"
            );
        }
        assert!(extract_field_path(&p, "metadata.labels['bad key']")
            .unwrap_err()
            .starts_with("invalid key subscript in metadata.labels['bad key']: "));
    }

    #[test]
    fn resource_values() {
        let p = pod();
        let alloc = NodeAllocatable {
            cpu_millis: 2000,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 10 << 30,
        };
        let sel = |r: &str, div: Option<&str>| ResourceFieldSelector {
            container_name: Some("c".into()),
            resource: r.into(),
            divisor: div.map(|d| Quantity(d.into())),
        };
        let cases = [
            (sel("limits.memory", None), "67108864"),
            (sel("limits.memory", Some("1Mi")), "64"),
            (sel("limits.cpu", None), "2"),
            (sel("limits.cpu", Some("1m")), "2000"),
            (sel("requests.cpu", None), "1"),
            (sel("requests.cpu", Some("1m")), "250"),
            (sel("requests.memory", None), "0"),
            (sel("limits.ephemeral-storage", Some("1Gi")), "10"),
        ];
        for (s, want) in cases {
            assert_eq!(
                extract_resource_value(&s, &p, "c", &alloc).unwrap(),
                want,
                "{}",
                s.resource
            );
        }
        assert_eq!(
            extract_resource_value(&sel("limits.cpu", None), &p, "nope", &alloc).unwrap_err(),
            "container nope not found"
        );
        assert_eq!(
            extract_resource_value(&sel("limits.gpu", None), &p, "c", &alloc).unwrap_err(),
            "unsupported container resource : limits.gpu"
        );
    }

    #[test]
    fn downward_payload_aggregates_errors() {
        let p = pod();
        let item = |path: &str, fp: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: fp.into(),
                api_version: None,
            }),
            ..Default::default()
        };
        let ok = downward_api_payload(
            &[
                item("./labels", "metadata.labels"),
                item("name", "metadata.name"),
            ],
            &p,
            &NodeAllocatable::default(),
            DEFAULT_MODE,
        )
        .unwrap();
        assert_eq!(ok["labels"].data, b"a=\"1\"\nb=\"2\\\"q\"");
        assert_eq!(ok["name"].data, b"web");
        let err = downward_api_payload(
            &[item("a", "spec.x"), item("b", "spec.y")],
            &p,
            &NodeAllocatable::default(),
            DEFAULT_MODE,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "[unsupported fieldPath: spec.x, unsupported fieldPath: spec.y]"
        );
    }

    #[test]
    fn go_quote_and_clean() {
        assert_eq!(go_quote("a\"b\\c\td\u{1}é"), "\"a\\\"b\\\\c\\td\\x01é\"");
        assert_eq!(clean_path("./a//b/../c"), "a/c");
        assert_eq!(clean_path("a/"), "a");
    }
}
