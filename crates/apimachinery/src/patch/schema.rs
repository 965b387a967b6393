//! Per-field patch knowledge (strategy, merge key, list type) behind a small trait, and the static
//! table for built-in kinds taken from the `patchStrategy` / `patchMergeKey` / `listType` tags of
//! upstream's k8s.io/api types.

/// How strategic merge patch combines a field (upstream's `patchStrategy` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatchStrategy {
    /// No tag: maps merge key by key, lists are replaced wholesale.
    #[default]
    Default,
    /// `patchStrategy:"merge"`: lists of maps merge by merge key, lists of scalars as a set union.
    Merge,
    /// `patchStrategy:"replace"`: the patch value replaces the field.
    Replace,
}

/// How server-side apply treats a list (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value, owned and replaced as a whole.
    Atomic,
    /// A set of scalars: each value is owned separately.
    Set,
    /// A list of objects identified by these key fields (`x-kubernetes-list-map-keys`).
    Map(Vec<String>),
}

/// What the schema knows about one field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldInfo {
    pub strategy: PatchStrategy,
    /// `patchStrategy` also contains `retainKeys` (the `$retainKeys` directive is meaningful).
    pub retain_keys: bool,
    /// `patchMergeKey`, for lists of objects merged by key.
    pub merge_key: Option<String>,
    /// `x-kubernetes-list-type` (+ keys); `None` derives it from strategy and merge key.
    pub list_type: Option<ListType>,
    /// `x-kubernetes-map-type: atomic` / `x-kubernetes-map-type`/`structType=atomic`: the map is
    /// owned and replaced as a whole by server-side apply.
    pub atomic_map: bool,
    /// The items of this list are atomic (`structType=atomic` element type, e.g. ownerReferences):
    /// apply owns and replaces each item as a whole.
    pub atomic_items: bool,
    /// Defaults of list-map key fields (`protocol: "TCP"` for ports), used to identify items
    /// whose key field is absent.
    pub key_defaults: Vec<(String, serde_json::Value)>,
}

impl FieldInfo {
    /// A `patchStrategy:"merge"` list of objects keyed by `key`.
    pub fn merge_by(key: &str) -> Self {
        FieldInfo {
            strategy: PatchStrategy::Merge,
            merge_key: Some(key.to_string()),
            list_type: Some(ListType::Map(vec![key.to_string()])),
            ..Default::default()
        }
    }

    /// A `patchStrategy:"merge"` list of objects keyed by `key` whose list-map keys are `keys`.
    pub fn merge_by_keys(key: &str, keys: &[&str]) -> Self {
        FieldInfo {
            list_type: Some(ListType::Map(keys.iter().map(|k| k.to_string()).collect())),
            ..FieldInfo::merge_by(key)
        }
    }

    /// Adds a default for a list-map key field.
    pub fn with_default(mut self, key: &str, value: &str) -> Self {
        self.key_defaults.push((
            key.to_string(),
            serde_json::Value::String(value.to_string()),
        ));
        self
    }

    /// A `patchStrategy:"merge"` list of scalars (set union), `listType=set`.
    pub fn merge_set() -> Self {
        FieldInfo {
            strategy: PatchStrategy::Merge,
            list_type: Some(ListType::Set),
            ..Default::default()
        }
    }

    /// `listType=map` with these keys and no patch strategy (apply keys the items, strategic
    /// merge patch replaces the list).
    pub fn map_list(keys: &[&str]) -> Self {
        FieldInfo {
            list_type: Some(ListType::Map(keys.iter().map(|k| k.to_string()).collect())),
            ..Default::default()
        }
    }

    /// `listType=set` with no patch strategy.
    pub fn set_list() -> Self {
        FieldInfo {
            list_type: Some(ListType::Set),
            ..Default::default()
        }
    }

    /// A map or struct owned as a whole (`mapType=atomic` / `structType=atomic`).
    pub fn atomic_map() -> Self {
        FieldInfo {
            atomic_map: true,
            ..Default::default()
        }
    }

    /// A map with `patchStrategy:"retainKeys"`.
    pub fn retain_keys() -> Self {
        FieldInfo {
            retain_keys: true,
            ..Default::default()
        }
    }

    /// The list type server-side apply uses: explicit, else derived from the patch strategy
    /// (merge + key: map; merge without key: set; otherwise atomic).
    pub fn effective_list_type(&self) -> ListType {
        if let Some(t) = &self.list_type {
            return t.clone();
        }
        match (self.strategy, &self.merge_key) {
            (PatchStrategy::Merge, Some(k)) => ListType::Map(vec![k.clone()]),
            (PatchStrategy::Merge, None) => ListType::Set,
            _ => ListType::Atomic,
        }
    }
}

/// Per-field schema knowledge for the patch engines.
///
/// `path` is the chain of object field names from the object root to the field, with list
/// indices and list keys elided: `spec.template.spec.containers[0].env` is
/// `["spec", "template", "spec", "containers", "env"]`. Map keys (e.g. a label name) appear as
/// path elements like field names. Unknown fields answer `FieldInfo::default()` (maps merge,
/// lists are atomic and replaced).
///
/// An OpenAPI-backed implementation maps `x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and
/// `x-kubernetes-map-type` onto [`FieldInfo`].
pub trait PatchSchema {
    fn lookup(&self, path: &[&str]) -> FieldInfo;
}

/// The schema that knows nothing: every field gets the defaults. Server-side apply on custom
/// resources without list annotations behaves like this (lists atomic, maps granular).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSchema;

impl PatchSchema for NoSchema {
    fn lookup(&self, _path: &[&str]) -> FieldInfo {
        FieldInfo::default()
    }
}

/// The static schema of a built-in kind.
#[derive(Debug, Clone, Default)]
pub struct BuiltinSchema {
    entries: Vec<(Vec<String>, FieldInfo)>,
}

/// Built-in kinds (group, kind) that accept strategic merge patch.
const BUILTIN_KINDS: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "PodTemplate"),
    ("", "ReplicationController"),
    ("", "Service"),
    ("", "Endpoints"),
    ("", "Node"),
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("", "Event"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("", "Binding"),
    ("", "ComponentStatus"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ControllerRevision"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("autoscaling", "Scale"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("networking.k8s.io", "IPAddress"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("coordination.k8s.io", "Lease"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "CSIStorageCapacity"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("events.k8s.io", "Event"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

impl BuiltinSchema {
    /// The schema of a built-in kind, or `None` for kinds this table does not know (custom
    /// resources: upstream rejects strategic merge patch on them with 415 and server-side apply
    /// uses the CRD's structural schema; with no annotations that is [`NoSchema`]).
    pub fn for_kind(group: &str, kind: &str) -> Option<Self> {
        if !BUILTIN_KINDS.contains(&(group, kind)) {
            return None;
        }
        let mut s = BuiltinSchema::default();
        s.object_meta("metadata");
        let cond = || FieldInfo::merge_by("type");
        match (group, kind) {
            ("", "Pod") => {
                s.pod_spec("spec");
                s.pod_status("status");
            }
            ("", "PodTemplate") => s.pod_template("template"),
            ("", "ReplicationController") => {
                s.pod_template("spec.template");
                s.add("spec.selector", FieldInfo::atomic_map());
                s.add("status.conditions", cond());
            }
            ("apps", "Deployment")
            | ("apps", "ReplicaSet")
            | ("apps", "StatefulSet")
            | ("apps", "DaemonSet") => {
                s.pod_template("spec.template");
                s.add("spec.selector", FieldInfo::atomic_map());
                s.add("status.conditions", cond());
                if kind == "Deployment" {
                    s.add("spec.strategy", FieldInfo::retain_keys());
                }
            }
            ("batch", "Job") => {
                s.pod_template("spec.template");
                s.add("spec.selector", FieldInfo::atomic_map());
                s.add(
                    "status.conditions",
                    FieldInfo {
                        list_type: Some(ListType::Atomic),
                        ..cond()
                    },
                );
                s.add(
                    "spec.podFailurePolicy.rules.onExitCodes.values",
                    FieldInfo::set_list(),
                );
                s.add(
                    "status.uncountedTerminatedPods.succeeded",
                    FieldInfo::set_list(),
                );
                s.add(
                    "status.uncountedTerminatedPods.failed",
                    FieldInfo::set_list(),
                );
            }
            ("batch", "CronJob") => {
                s.object_meta("spec.jobTemplate.metadata");
                s.pod_template("spec.jobTemplate.spec.template");
                s.add("spec.jobTemplate.spec.selector", FieldInfo::atomic_map());
            }
            ("", "Service") => {
                s.add(
                    "spec.ports",
                    FieldInfo::merge_by_keys("port", &["port", "protocol"])
                        .with_default("protocol", "TCP"),
                );
                s.add("spec.selector", FieldInfo::atomic_map());
                s.add("status.conditions", cond());
            }
            ("", "Node") => {
                s.add("spec.podCIDRs", FieldInfo::merge_set());
                s.add("status.conditions", cond());
                s.add("status.addresses", cond());
            }
            ("", "Namespace") | ("", "PersistentVolumeClaim") => s.add("status.conditions", cond()),
            ("", "ServiceAccount") => s.add("secrets", FieldInfo::merge_by("name")),
            ("policy", "PodDisruptionBudget") => {
                s.add(
                    "spec.selector",
                    FieldInfo {
                        strategy: PatchStrategy::Replace,
                        ..FieldInfo::atomic_map()
                    },
                );
                s.add("status.conditions", cond());
            }
            ("networking.k8s.io", "NetworkPolicy") => {
                s.add("spec.podSelector", FieldInfo::atomic_map())
            }
            ("networking.k8s.io", "ServiceCIDR")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("apiregistration.k8s.io", "APIService")
            | ("flowcontrol.apiserver.k8s.io", "FlowSchema")
            | ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => {
                s.add("status.conditions", cond())
            }
            // listType=map without a patch strategy: keyed for apply, replaced by SMP
            ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("certificates.k8s.io", "CertificateSigningRequest") => {
                s.add("status.conditions", FieldInfo::map_list(&["type"]))
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")
            | ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
                s.add("webhooks", FieldInfo::merge_by("name"));
                s.add("webhooks.matchConditions", FieldInfo::merge_by("name"));
            }
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
                s.add("spec.matchConditions", FieldInfo::merge_by("name"));
                s.add("spec.variables", FieldInfo::merge_by("name"));
                s.add("status.conditions", FieldInfo::map_list(&["type"]));
            }
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
                s.add("spec.validationActions", FieldInfo::set_list())
            }
            ("storage.k8s.io", "CSINode") => s.add("spec.drivers", FieldInfo::merge_by("name")),
            ("storage.k8s.io", "CSIDriver") => {
                s.add("spec.volumeLifecycleModes", FieldInfo::set_list())
            }
            ("discovery.k8s.io", "EndpointSlice") => {
                s.add("endpoints.addresses", FieldInfo::set_list())
            }
            _ => {}
        }
        Some(s)
    }

    fn add(&mut self, path: &str, info: FieldInfo) {
        self.entries
            .push((path.split('.').map(str::to_string).collect(), info));
    }

    fn object_meta(&mut self, p: &str) {
        self.add(&format!("{p}.finalizers"), FieldInfo::merge_set());
        self.add(
            &format!("{p}.ownerReferences"),
            FieldInfo {
                atomic_items: true,
                ..FieldInfo::merge_by("uid")
            },
        );
    }

    fn pod_template(&mut self, p: &str) {
        self.object_meta(&format!("{p}.metadata"));
        self.pod_spec(&format!("{p}.spec"));
    }

    fn pod_spec(&mut self, p: &str) {
        let by_name = || FieldInfo::merge_by("name");
        self.add(
            &format!("{p}.volumes"),
            FieldInfo {
                retain_keys: true,
                ..by_name()
            },
        );
        for c in ["initContainers", "containers", "ephemeralContainers"] {
            let cp = format!("{p}.{c}");
            self.add(&cp, by_name());
            self.add(
                &format!("{cp}.ports"),
                FieldInfo::merge_by_keys("containerPort", &["containerPort", "protocol"])
                    .with_default("protocol", "TCP"),
            );
            self.add(&format!("{cp}.env"), by_name());
            self.add(
                &format!("{cp}.volumeMounts"),
                FieldInfo::merge_by("mountPath"),
            );
            self.add(
                &format!("{cp}.volumeDevices"),
                FieldInfo::merge_by("devicePath"),
            );
            self.add(
                &format!("{cp}.resources.claims"),
                FieldInfo::map_list(&["name"]),
            );
        }
        self.add(&format!("{p}.imagePullSecrets"), by_name());
        self.add(&format!("{p}.hostAliases"), FieldInfo::merge_by("ip"));
        self.add(
            &format!("{p}.topologySpreadConstraints"),
            FieldInfo::merge_by_keys("topologyKey", &["topologyKey", "whenUnsatisfiable"]),
        );
        self.add(
            &format!("{p}.resourceClaims"),
            FieldInfo {
                retain_keys: true,
                ..by_name()
            },
        );
        self.add(&format!("{p}.schedulingGates"), by_name());
        self.add(&format!("{p}.nodeSelector"), FieldInfo::atomic_map());
    }

    fn pod_status(&mut self, p: &str) {
        self.add(&format!("{p}.conditions"), FieldInfo::merge_by("type"));
        self.add(&format!("{p}.podIPs"), FieldInfo::merge_by("ip"));
        // hostIPs: patchMergeKey ip but listType atomic
        self.add(
            &format!("{p}.hostIPs"),
            FieldInfo {
                list_type: Some(ListType::Atomic),
                ..FieldInfo::merge_by("ip")
            },
        );
        self.add(
            &format!("{p}.resourceClaimStatuses"),
            FieldInfo {
                retain_keys: true,
                ..FieldInfo::merge_by("name")
            },
        );
    }
}

impl PatchSchema for BuiltinSchema {
    fn lookup(&self, path: &[&str]) -> FieldInfo {
        self.entries
            .iter()
            .find(|(p, _)| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))
            .map(|(_, i)| i.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lookups() {
        let dep = BuiltinSchema::for_kind("apps", "Deployment").unwrap();
        let pod = BuiltinSchema::for_kind("", "Pod").unwrap();
        let cj = BuiltinSchema::for_kind("batch", "CronJob").unwrap();
        let svc = BuiltinSchema::for_kind("", "Service").unwrap();
        let cases: Vec<(&BuiltinSchema, &str, PatchStrategy, Option<&str>, ListType)> = vec![
            (
                &pod,
                "spec.containers",
                PatchStrategy::Merge,
                Some("name"),
                ListType::Map(vec!["name".into()]),
            ),
            (
                &pod,
                "spec.containers.env",
                PatchStrategy::Merge,
                Some("name"),
                ListType::Map(vec!["name".into()]),
            ),
            (
                &pod,
                "spec.initContainers.ports",
                PatchStrategy::Merge,
                Some("containerPort"),
                ListType::Map(vec!["containerPort".into(), "protocol".into()]),
            ),
            (
                &pod,
                "spec.volumes",
                PatchStrategy::Merge,
                Some("name"),
                ListType::Map(vec!["name".into()]),
            ),
            (
                &pod,
                "spec.tolerations",
                PatchStrategy::Default,
                None,
                ListType::Atomic,
            ),
            (
                &pod,
                "metadata.finalizers",
                PatchStrategy::Merge,
                None,
                ListType::Set,
            ),
            (
                &pod,
                "metadata.ownerReferences",
                PatchStrategy::Merge,
                Some("uid"),
                ListType::Map(vec!["uid".into()]),
            ),
            (
                &pod,
                "status.conditions",
                PatchStrategy::Merge,
                Some("type"),
                ListType::Map(vec!["type".into()]),
            ),
            (
                &dep,
                "spec.template.spec.containers.volumeMounts",
                PatchStrategy::Merge,
                Some("mountPath"),
                ListType::Map(vec!["mountPath".into()]),
            ),
            (
                &dep,
                "spec.template.metadata.finalizers",
                PatchStrategy::Merge,
                None,
                ListType::Set,
            ),
            (
                &dep,
                "spec.containers",
                PatchStrategy::Default,
                None,
                ListType::Atomic,
            ),
            (
                &cj,
                "spec.jobTemplate.spec.template.spec.imagePullSecrets",
                PatchStrategy::Merge,
                Some("name"),
                ListType::Map(vec!["name".into()]),
            ),
            (
                &svc,
                "spec.ports",
                PatchStrategy::Merge,
                Some("port"),
                ListType::Map(vec!["port".into(), "protocol".into()]),
            ),
        ];
        for (s, path, strategy, key, lt) in cases {
            let p: Vec<&str> = path.split('.').collect();
            let info = s.lookup(&p);
            assert_eq!(info.strategy, strategy, "{path}");
            assert_eq!(info.merge_key.as_deref(), key, "{path}");
            assert_eq!(info.effective_list_type(), lt, "{path}");
        }
        assert!(dep.lookup(&["spec", "strategy"]).retain_keys);
        assert!(dep.lookup(&["spec", "selector"]).atomic_map);
        assert!(BuiltinSchema::for_kind("example.com", "Widget").is_none());
        assert!(BuiltinSchema::for_kind("", "ConfigMap").is_some());
    }
}
