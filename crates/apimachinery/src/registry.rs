//! The resource registry: every built-in group/version/resource the API server serves, with its
//! kind, scope, verbs, short names, categories and subresources (upstream's discovery facts).

/// Verbs upstream serves on a normal, fully featured resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of a resource without deletecollection (namespaces).
pub const NO_COLLECTION_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Verbs of a create-only virtual resource (reviews, bindings).
pub const CREATE_ONLY: &[&str] = &["create"];

/// A subresource served under a resource, e.g. `deployments/scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// The kind the subresource accepts and returns (e.g. `Scale` in group autoscaling/v1).
    pub kind: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub verbs: &'static [&'static str],
}

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const CONNECT_VERBS: &[&str] = &["create", "get"];

/// How objects of a resource are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Stored in the state store.
    Stored,
    /// Computed per request and never stored (reviews).
    Virtual,
}

/// One resource of one group version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// The plural resource name used in URLs.
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<Subresource>,
    pub storage: Storage,
    /// For resources served in several versions: the version objects are stored in.
    pub storage_version: String,
    /// The group whose key space objects are stored in (events.k8s.io Events are stored as
    /// core Events).
    pub storage_group: String,
}

impl ResourceInfo {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// The store key prefix shared by every object of this resource (all versions share it).
    pub fn key_prefix(&self) -> String {
        let g = if self.storage_group.is_empty() {
            "core"
        } else {
            self.storage_group.as_str()
        };
        format!("/registry/{g}/{}/", self.plural)
    }

    /// The store key of one object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}{namespace}/{name}", self.key_prefix())
        } else {
            format!("{}{name}", self.key_prefix())
        }
    }
}

struct Spec {
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short: &'static [&'static str],
    categories: &'static [&'static str],
    subs: &'static [(&'static str, SubKind)],
    storage: Storage,
}

#[derive(Clone, Copy)]
enum SubKind {
    Status,
    Scale,
    /// A connect-style subresource (log, exec, proxy...) or a create-only one (binding, eviction, token).
    Other(
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    ),
}

const ALL: &[&str] = &["all"];

macro_rules! spec {
    ($group:expr, [$($v:expr),+], $kind:expr, $plural:expr, $ns:expr, $verbs:expr, [$($short:expr),*], $cats:expr, [$($sub:expr),*]) => {
        Spec {
            group: $group,
            versions: &[$($v),+],
            kind: $kind,
            plural: $plural,
            namespaced: $ns,
            verbs: $verbs,
            short: &[$($short),*],
            categories: $cats,
            subs: &[$($sub),*],
            storage: Storage::Stored,
        }
    };
}

const NS: bool = true;
const CLUSTER: bool = false;
const NONE: &[&str] = &[];

const SPECS: &[Spec] = &[
    // core/v1
    spec!(
        "",
        ["v1"],
        "Binding",
        "bindings",
        NS,
        CREATE_ONLY,
        [],
        NONE,
        []
    ),
    spec!(
        "",
        ["v1"],
        "ConfigMap",
        "configmaps",
        NS,
        ALL_VERBS,
        ["cm"],
        NONE,
        []
    ),
    spec!(
        "",
        ["v1"],
        "Endpoints",
        "endpoints",
        NS,
        ALL_VERBS,
        ["ep"],
        NONE,
        []
    ),
    spec!(
        "",
        ["v1"],
        "Event",
        "events",
        NS,
        ALL_VERBS,
        ["ev"],
        NONE,
        []
    ),
    spec!(
        "",
        ["v1"],
        "LimitRange",
        "limitranges",
        NS,
        ALL_VERBS,
        ["limits"],
        NONE,
        []
    ),
    spec!(
        "",
        ["v1"],
        "Namespace",
        "namespaces",
        CLUSTER,
        NO_COLLECTION_VERBS,
        ["ns"],
        NONE,
        [
            ("status", SubKind::Status),
            (
                "finalize",
                SubKind::Other("Namespace", "", "v1", &["update"])
            )
        ]
    ),
    spec!(
        "",
        ["v1"],
        "Node",
        "nodes",
        CLUSTER,
        ALL_VERBS,
        ["no"],
        NONE,
        [
            ("status", SubKind::Status),
            (
                "proxy",
                SubKind::Other(
                    "NodeProxyOptions",
                    "",
                    "v1",
                    &["create", "delete", "get", "patch", "update"]
                )
            )
        ]
    ),
    spec!(
        "",
        ["v1"],
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        NS,
        ALL_VERBS,
        ["pvc"],
        NONE,
        [("status", SubKind::Status)]
    ),
    spec!(
        "",
        ["v1"],
        "PersistentVolume",
        "persistentvolumes",
        CLUSTER,
        ALL_VERBS,
        ["pv"],
        NONE,
        [("status", SubKind::Status)]
    ),
    spec!(
        "",
        ["v1"],
        "Pod",
        "pods",
        NS,
        ALL_VERBS,
        ["po"],
        ALL,
        [
            ("status", SubKind::Status),
            ("binding", SubKind::Other("Binding", "", "v1", CREATE_ONLY)),
            (
                "eviction",
                SubKind::Other("Eviction", "policy", "v1", CREATE_ONLY)
            ),
            (
                "ephemeralcontainers",
                SubKind::Other("Pod", "", "v1", STATUS_VERBS)
            ),
            ("resize", SubKind::Other("Pod", "", "v1", STATUS_VERBS)),
            ("log", SubKind::Other("Pod", "", "v1", &["get"])),
            (
                "exec",
                SubKind::Other("PodExecOptions", "", "v1", CONNECT_VERBS)
            ),
            (
                "attach",
                SubKind::Other("PodAttachOptions", "", "v1", CONNECT_VERBS)
            ),
            (
                "portforward",
                SubKind::Other("PodPortForwardOptions", "", "v1", CONNECT_VERBS)
            ),
            (
                "proxy",
                SubKind::Other(
                    "PodProxyOptions",
                    "",
                    "v1",
                    &["create", "delete", "get", "patch", "update"]
                )
            )
        ]
    ),
    spec!(
        "",
        ["v1"],
        "PodTemplate",
        "podtemplates",
        NS,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    spec!(
        "",
        ["v1"],
        "ReplicationController",
        "replicationcontrollers",
        NS,
        ALL_VERBS,
        ["rc"],
        ALL,
        [("status", SubKind::Status), ("scale", SubKind::Scale)]
    ),
    spec!(
        "",
        ["v1"],
        "ResourceQuota",
        "resourcequotas",
        NS,
        ALL_VERBS,
        ["quota"],
        NONE,
        [("status", SubKind::Status)]
    ),
    spec!("", ["v1"], "Secret", "secrets", NS, ALL_VERBS, [], NONE, []),
    spec!(
        "",
        ["v1"],
        "ServiceAccount",
        "serviceaccounts",
        NS,
        ALL_VERBS,
        ["sa"],
        NONE,
        [(
            "token",
            SubKind::Other("TokenRequest", "authentication.k8s.io", "v1", CREATE_ONLY)
        )]
    ),
    spec!(
        "",
        ["v1"],
        "Service",
        "services",
        NS,
        ALL_VERBS,
        ["svc"],
        ALL,
        [
            ("status", SubKind::Status),
            (
                "proxy",
                SubKind::Other(
                    "ServiceProxyOptions",
                    "",
                    "v1",
                    &["create", "delete", "get", "patch", "update"]
                )
            )
        ]
    ),
    // apps/v1
    spec!(
        "apps",
        ["v1"],
        "ControllerRevision",
        "controllerrevisions",
        NS,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    spec!(
        "apps",
        ["v1"],
        "DaemonSet",
        "daemonsets",
        NS,
        ALL_VERBS,
        ["ds"],
        ALL,
        [("status", SubKind::Status)]
    ),
    spec!(
        "apps",
        ["v1"],
        "Deployment",
        "deployments",
        NS,
        ALL_VERBS,
        ["deploy"],
        ALL,
        [("status", SubKind::Status), ("scale", SubKind::Scale)]
    ),
    spec!(
        "apps",
        ["v1"],
        "ReplicaSet",
        "replicasets",
        NS,
        ALL_VERBS,
        ["rs"],
        ALL,
        [("status", SubKind::Status), ("scale", SubKind::Scale)]
    ),
    spec!(
        "apps",
        ["v1"],
        "StatefulSet",
        "statefulsets",
        NS,
        ALL_VERBS,
        ["sts"],
        ALL,
        [("status", SubKind::Status), ("scale", SubKind::Scale)]
    ),
    // batch/v1
    spec!(
        "batch",
        ["v1"],
        "CronJob",
        "cronjobs",
        NS,
        ALL_VERBS,
        ["cj"],
        ALL,
        [("status", SubKind::Status)]
    ),
    spec!(
        "batch",
        ["v1"],
        "Job",
        "jobs",
        NS,
        ALL_VERBS,
        [],
        ALL,
        [("status", SubKind::Status)]
    ),
    // autoscaling
    spec!(
        "autoscaling",
        ["v2", "v1"],
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        NS,
        ALL_VERBS,
        ["hpa"],
        ALL,
        [("status", SubKind::Status)]
    ),
    // discovery.k8s.io
    spec!(
        "discovery.k8s.io",
        ["v1"],
        "EndpointSlice",
        "endpointslices",
        NS,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    // coordination.k8s.io
    spec!(
        "coordination.k8s.io",
        ["v1"],
        "Lease",
        "leases",
        NS,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    // events.k8s.io
    spec!(
        "events.k8s.io",
        ["v1"],
        "Event",
        "events",
        NS,
        ALL_VERBS,
        ["ev"],
        NONE,
        []
    ),
    // rbac
    spec!(
        "rbac.authorization.k8s.io",
        ["v1"],
        "ClusterRoleBinding",
        "clusterrolebindings",
        CLUSTER,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    spec!(
        "rbac.authorization.k8s.io",
        ["v1"],
        "ClusterRole",
        "clusterroles",
        CLUSTER,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    spec!(
        "rbac.authorization.k8s.io",
        ["v1"],
        "RoleBinding",
        "rolebindings",
        NS,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    spec!(
        "rbac.authorization.k8s.io",
        ["v1"],
        "Role",
        "roles",
        NS,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    // storage.k8s.io
    spec!(
        "storage.k8s.io",
        ["v1"],
        "CSIDriver",
        "csidrivers",
        CLUSTER,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    spec!(
        "storage.k8s.io",
        ["v1"],
        "StorageClass",
        "storageclasses",
        CLUSTER,
        ALL_VERBS,
        ["sc"],
        NONE,
        []
    ),
    spec!(
        "storage.k8s.io",
        ["v1"],
        "VolumeAttachment",
        "volumeattachments",
        CLUSTER,
        ALL_VERBS,
        [],
        NONE,
        [("status", SubKind::Status)]
    ),
    // networking.k8s.io
    spec!(
        "networking.k8s.io",
        ["v1"],
        "IngressClass",
        "ingressclasses",
        CLUSTER,
        ALL_VERBS,
        [],
        NONE,
        []
    ),
    spec!(
        "networking.k8s.io",
        ["v1"],
        "Ingress",
        "ingresses",
        NS,
        ALL_VERBS,
        ["ing"],
        NONE,
        [("status", SubKind::Status)]
    ),
    spec!(
        "networking.k8s.io",
        ["v1"],
        "NetworkPolicy",
        "networkpolicies",
        NS,
        ALL_VERBS,
        ["netpol"],
        NONE,
        []
    ),
    // policy/v1
    spec!(
        "policy",
        ["v1"],
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        NS,
        ALL_VERBS,
        ["pdb"],
        NONE,
        [("status", SubKind::Status)]
    ),
    // scheduling.k8s.io
    spec!(
        "scheduling.k8s.io",
        ["v1"],
        "PriorityClass",
        "priorityclasses",
        CLUSTER,
        ALL_VERBS,
        ["pc"],
        NONE,
        []
    ),
    // apiextensions.k8s.io
    spec!(
        "apiextensions.k8s.io",
        ["v1"],
        "CustomResourceDefinition",
        "customresourcedefinitions",
        CLUSTER,
        ALL_VERBS,
        ["crd", "crds"],
        &["api-extensions"],
        [("status", SubKind::Status)]
    ),
    // virtual review resources
    Spec {
        storage: Storage::Virtual,
        ..spec!(
            "authentication.k8s.io",
            ["v1"],
            "TokenReview",
            "tokenreviews",
            CLUSTER,
            CREATE_ONLY,
            [],
            NONE,
            []
        )
    },
    Spec {
        storage: Storage::Virtual,
        ..spec!(
            "authentication.k8s.io",
            ["v1"],
            "SelfSubjectReview",
            "selfsubjectreviews",
            CLUSTER,
            CREATE_ONLY,
            [],
            NONE,
            []
        )
    },
    Spec {
        storage: Storage::Virtual,
        ..spec!(
            "authorization.k8s.io",
            ["v1"],
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            NS,
            CREATE_ONLY,
            [],
            NONE,
            []
        )
    },
    Spec {
        storage: Storage::Virtual,
        ..spec!(
            "authorization.k8s.io",
            ["v1"],
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            CLUSTER,
            CREATE_ONLY,
            [],
            NONE,
            []
        )
    },
    Spec {
        storage: Storage::Virtual,
        ..spec!(
            "authorization.k8s.io",
            ["v1"],
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            NS,
            CREATE_ONLY,
            [],
            NONE,
            []
        )
    },
    Spec {
        storage: Storage::Virtual,
        ..spec!(
            "authorization.k8s.io",
            ["v1"],
            "SubjectAccessReview",
            "subjectaccessreviews",
            CLUSTER,
            CREATE_ONLY,
            [],
            NONE,
            []
        )
    },
];

/// The singular name upstream reports: the lowercased kind.
fn singular_of(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

/// Every built-in resource, one entry per served version, in discovery order.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    let mut out = Vec::new();
    for s in SPECS {
        for v in s.versions {
            let subresources = s
                .subs
                .iter()
                .map(|(name, k)| match *k {
                    SubKind::Status => Subresource {
                        name,
                        kind: s.kind,
                        group: s.group,
                        version: v,
                        verbs: STATUS_VERBS,
                    },
                    SubKind::Scale => Subresource {
                        name,
                        kind: "Scale",
                        group: "autoscaling",
                        version: "v1",
                        verbs: STATUS_VERBS,
                    },
                    SubKind::Other(kind, group, version, verbs) => Subresource {
                        name,
                        kind,
                        group,
                        version,
                        verbs,
                    },
                })
                .collect();
            out.push(ResourceInfo {
                group: s.group.to_string(),
                version: v.to_string(),
                kind: s.kind.to_string(),
                plural: s.plural.to_string(),
                singular: singular_of(s.kind),
                namespaced: s.namespaced,
                verbs: s.verbs.iter().map(|v| v.to_string()).collect(),
                short_names: s.short.iter().map(|v| v.to_string()).collect(),
                categories: s.categories.iter().map(|v| v.to_string()).collect(),
                subresources,
                storage: s.storage,
                storage_version: s.versions[0].to_string(),
                storage_group: if s.group == "events.k8s.io" {
                    String::new()
                } else {
                    s.group.to_string()
                },
            });
        }
    }
    out
}

/// The built-in group versions in discovery order: (group, [versions, preferred first]).
pub fn builtin_groups() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for s in SPECS {
        match out.iter_mut().find(|(g, _)| g == s.group) {
            Some((_, vs)) => {
                for v in s.versions {
                    if !vs.iter().any(|x| x == v) {
                        vs.push(v.to_string());
                    }
                }
            }
            None => out.push((
                s.group.to_string(),
                s.versions.iter().map(|v| v.to_string()).collect(),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_have_scale_and_status() {
        let all = builtin_resources();
        let d = all.iter().find(|r| r.plural == "deployments").unwrap();
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.subresource("scale").unwrap().kind, "Scale");
        assert_eq!(d.subresource("status").unwrap().kind, "Deployment");
        assert_eq!(
            d.key("default", "web"),
            "/registry/apps/deployments/default/web"
        );
        assert_eq!(d.short_names, vec!["deploy"]);
        assert!(d.categories.contains(&"all".to_string()));
    }

    #[test]
    fn hpa_served_in_two_versions_sharing_storage() {
        let all = builtin_resources();
        let hpas: Vec<_> = all
            .iter()
            .filter(|r| r.plural == "horizontalpodautoscalers")
            .collect();
        assert_eq!(hpas.len(), 2);
        assert!(hpas.iter().all(|h| h.storage_version == "v2"));
        assert_eq!(hpas[0].key_prefix(), hpas[1].key_prefix());
        let groups = builtin_groups();
        let auto = groups.iter().find(|(g, _)| g == "autoscaling").unwrap();
        assert_eq!(auto.1, vec!["v2", "v1"]);
    }

    #[test]
    fn both_event_apis_share_one_key_space() {
        let all = builtin_resources();
        let core = all
            .iter()
            .find(|r| r.plural == "events" && r.group.is_empty())
            .unwrap();
        let v1 = all
            .iter()
            .find(|r| r.plural == "events" && r.group == "events.k8s.io")
            .unwrap();
        assert_eq!(core.key_prefix(), "/registry/core/events/");
        assert_eq!(v1.key_prefix(), core.key_prefix());
    }

    #[test]
    fn namespaces_are_cluster_scoped_without_deletecollection() {
        let all = builtin_resources();
        let ns = all.iter().find(|r| r.plural == "namespaces").unwrap();
        assert!(!ns.namespaced);
        assert!(!ns.has_verb("deletecollection"));
        assert_eq!(
            ns.key("", "kube-system"),
            "/registry/core/namespaces/kube-system"
        );
    }
}
