//! The built-in group-versions and resources whose OpenAPI documents the API server serves,
//! derived from the resource registry (kinds, scope, verbs, subresources: one source of truth),
//! plus the binding of each kind to its k8s-openapi Rust type (where the schemas come from: only
//! the `schemars` feature, which regenerates `components.json`, needs the schemas themselves).

#[cfg(feature = "schemars")]
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use k8s_openapi::Resource;

use crate::registry::{self, ResourceInfo, Subresource};

/// Adds the schema of one Rust type (and everything it references) to a generator.
#[cfg(feature = "schemars")]
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

#[cfg(feature = "schemars")]
fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// A kind that a subresource accepts or returns when it is not the parent kind.
#[derive(Clone)]
pub struct KindRef {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// What a subresource is, which decides its operations.
#[derive(Clone)]
pub enum SubresourceKind {
    /// get/replace/patch of the parent kind (status, ephemeralcontainers, resize)
    ParentGetPutPatch,
    /// get/replace/patch of another kind (scale -> autoscaling/v1 Scale)
    OtherGetPutPatch(KindRef),
    /// create of another kind (eviction, binding, token)
    Create(KindRef),
    /// replace only of the parent kind (namespaces/finalize)
    ParentPut,
    /// pods/log: a get returning text
    Log,
}

/// One subresource of a resource.
#[derive(Clone)]
pub struct SubresourceDef {
    pub name: String,
    pub kind: SubresourceKind,
}

/// One resource of a group-version.
#[derive(Clone)]
pub struct ResourceDef {
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub subresources: Vec<SubresourceDef>,
}

impl ResourceDef {
    /// Whether the resource has the verb.
    pub fn has(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// One built-in group-version.
#[derive(Clone)]
pub struct GroupVersionDef {
    pub group: String,
    pub version: String,
    pub resources: Vec<ResourceDef>,
}

impl GroupVersionDef {
    /// The OpenAPI v3 discovery key: `api/v1` or `apis/<group>/<version>`.
    pub fn path(&self) -> String {
        gv_path(&self.group, &self.version)
    }
}

/// The OpenAPI v3 discovery key of a group-version.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Calls `$m!` with the k8s-openapi type of every built-in kind the registry names (resources
/// and the kinds their subresources take).
macro_rules! with_builtin_types {
    ($m:ident) => {
        $m!(
            core::v1::Binding,
            core::v1::ComponentStatus,
            core::v1::ConfigMap,
            core::v1::Endpoints,
            core::v1::Event,
            core::v1::LimitRange,
            core::v1::Namespace,
            core::v1::Node,
            core::v1::PersistentVolumeClaim,
            core::v1::PersistentVolume,
            core::v1::Pod,
            core::v1::PodTemplate,
            core::v1::ReplicationController,
            core::v1::ResourceQuota,
            core::v1::Secret,
            core::v1::ServiceAccount,
            core::v1::Service,
            apps::v1::ControllerRevision,
            apps::v1::DaemonSet,
            apps::v1::Deployment,
            apps::v1::ReplicaSet,
            apps::v1::StatefulSet,
            autoscaling::v1::Scale,
            autoscaling::v1::HorizontalPodAutoscaler,
            autoscaling::v2::HorizontalPodAutoscaler,
            batch::v1::CronJob,
            batch::v1::Job,
            discovery::v1::EndpointSlice,
            coordination::v1::Lease,
            events::v1::Event,
            rbac::v1::ClusterRoleBinding,
            rbac::v1::ClusterRole,
            rbac::v1::RoleBinding,
            rbac::v1::Role,
            storage::v1::CSIDriver,
            storage::v1::CSINode,
            storage::v1::CSIStorageCapacity,
            storage::v1::StorageClass,
            storage::v1::VolumeAttachment,
            networking::v1::IngressClass,
            networking::v1::Ingress,
            networking::v1::IPAddress,
            networking::v1::NetworkPolicy,
            networking::v1::ServiceCIDR,
            policy::v1::Eviction,
            policy::v1::PodDisruptionBudget,
            scheduling::v1::PriorityClass,
            apiextensions_v1::CustomResourceDefinition,
            authentication::v1::SelfSubjectReview,
            authentication::v1::TokenReview,
            authentication::v1::TokenRequest,
            authorization::v1::LocalSubjectAccessReview,
            authorization::v1::SelfSubjectAccessReview,
            authorization::v1::SelfSubjectRulesReview,
            authorization::v1::SubjectAccessReview,
        )
    };
}

/// Whether a built-in kind has a k8s-openapi type (and so a component schema).
pub fn has_schema(group: &str, version: &str, kind: &str) -> bool {
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions_v1;
    macro_rules! kinds {
        ($($t:ty),* $(,)?) => {
            $(
                if <$t as Resource>::GROUP == group
                    && <$t as Resource>::VERSION == version
                    && <$t as Resource>::KIND == kind
                {
                    return true;
                }
            )*
        };
    }
    with_builtin_types!(kinds);
    false
}

/// The k8s-openapi type of a built-in kind, as a schema generator.
#[cfg(feature = "schemars")]
pub fn schema_fn(group: &str, version: &str, kind: &str) -> Option<SchemaFn> {
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions_v1;
    macro_rules! kinds {
        ($($t:ty),* $(,)?) => {
            $(
                if <$t as Resource>::GROUP == group
                    && <$t as Resource>::VERSION == version
                    && <$t as Resource>::KIND == kind
                {
                    return Some(schema_of::<$t>);
                }
            )*
        };
    }
    with_builtin_types!(kinds);
    None
}

/// How the OpenAPI documents describe a registry subresource; `None` for connect-style ones
/// (exec, attach, portforward, proxy: their `connect` operations are not generated).
fn subresource_kind(parent: &ResourceInfo, s: &Subresource) -> Option<SubresourceKind> {
    let verbs = |v: &[&str]| {
        let mut a: Vec<&str> = s.verbs.to_vec();
        a.sort_unstable();
        a == v
    };
    let same_kind = s.kind == parent.kind && s.group == parent.group;
    let other = || -> Option<KindRef> {
        Some(KindRef {
            group: s.group.to_string(),
            version: s.version.to_string(),
            kind: s.kind.to_string(),
        })
        .filter(|_| has_schema(s.group, s.version, s.kind))
    };
    if s.name == "log" && verbs(&["get"]) {
        return Some(SubresourceKind::Log);
    }
    if verbs(&["get", "patch", "update"]) {
        return if same_kind {
            Some(SubresourceKind::ParentGetPutPatch)
        } else {
            other().map(SubresourceKind::OtherGetPutPatch)
        };
    }
    if verbs(&["update"]) && same_kind {
        return Some(SubresourceKind::ParentPut);
    }
    if verbs(&["create"]) {
        return other().map(SubresourceKind::Create);
    }
    None
}

/// The built-in group-versions in discovery order, from the resource registry. A registry kind
/// without a k8s-openapi type is left out (a test keeps the table complete).
pub fn builtin_group_versions() -> Vec<GroupVersionDef> {
    let all = registry::builtin_resources();
    let mut out: Vec<GroupVersionDef> = Vec::new();
    for (group, versions) in registry::builtin_groups() {
        for version in versions {
            let resources = all
                .iter()
                .filter(|r| r.group == group && r.version == version)
                .filter(|r| has_schema(&r.group, &r.version, &r.kind))
                .map(|r| {
                    let mut subresources: Vec<SubresourceDef> = r
                        .subresources
                        .iter()
                        .filter_map(|s| {
                            Some(SubresourceDef {
                                name: s.name.to_string(),
                                kind: subresource_kind(r, s)?,
                            })
                        })
                        .collect();
                    subresources.sort_by(|a, b| a.name.cmp(&b.name));
                    ResourceDef {
                        plural: r.plural.clone(),
                        kind: r.kind.clone(),
                        namespaced: r.namespaced,
                        verbs: r.verbs.clone(),
                        subresources,
                    }
                })
                .collect();
            out.push(GroupVersionDef {
                group: group.clone(),
                version,
                resources,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_kind_has_a_type() {
        for r in registry::builtin_resources() {
            assert!(
                has_schema(&r.group, &r.version, &r.kind),
                "no k8s-openapi type for {}/{} {}",
                r.group,
                r.version,
                r.kind
            );
        }
        assert!(has_schema("policy", "v1", "Eviction"));
        assert!(!has_schema("", "v1", "Eviction"));
        assert!(!has_schema("example.com", "v1", "Widget"));
    }

    #[cfg(feature = "schemars")]
    #[test]
    fn every_registry_kind_has_a_schema_with_the_same_scope() {
        use k8s_openapi::schemars::generate::SchemaSettings;
        let mut g = SchemaSettings::openapi3().into_generator();
        for r in registry::builtin_resources() {
            let f = schema_fn(&r.group, &r.version, &r.kind).unwrap_or_else(|| {
                panic!(
                    "no k8s-openapi type for {}/{} {}",
                    r.group, r.version, r.kind
                )
            });
            assert!(f(&mut g).as_value().get("$ref").is_some(), "{}", r.kind);
        }
        let gvs = builtin_group_versions();
        let n: usize = gvs.iter().map(|g| g.resources.len()).sum();
        assert_eq!(n, registry::builtin_resources().len());
    }

    #[test]
    fn subresources_map_to_their_operations() {
        let gvs = builtin_group_versions();
        let res = |g: &str, v: &str, plural: &str| {
            gvs.iter()
                .find(|d| d.group == g && d.version == v)
                .and_then(|d| d.resources.iter().find(|r| r.plural == plural))
                .cloned()
                .unwrap_or_else(|| panic!("{g}/{v} {plural}"))
        };
        let names = |r: &ResourceDef| -> Vec<(String, String)> {
            r.subresources
                .iter()
                .map(|s| {
                    let k = match &s.kind {
                        SubresourceKind::ParentGetPutPatch => "parent".to_string(),
                        SubresourceKind::OtherGetPutPatch(k) => format!("other {}", k.kind),
                        SubresourceKind::Create(k) => format!("create {}", k.kind),
                        SubresourceKind::ParentPut => "put".to_string(),
                        SubresourceKind::Log => "log".to_string(),
                    };
                    (s.name.clone(), k)
                })
                .collect()
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            names(&res("", "v1", "pods")),
            pairs(&[
                ("binding", "create Binding"),
                ("ephemeralcontainers", "parent"),
                ("eviction", "create Eviction"),
                ("log", "log"),
                ("resize", "parent"),
                ("status", "parent"),
            ])
        );
        assert_eq!(
            names(&res("apps", "v1", "deployments")),
            pairs(&[("scale", "other Scale"), ("status", "parent")])
        );
        assert_eq!(
            names(&res("", "v1", "namespaces")),
            pairs(&[("finalize", "put"), ("status", "parent")])
        );
        assert_eq!(
            names(&res("", "v1", "serviceaccounts")),
            pairs(&[("token", "create TokenRequest")])
        );
        // connect-style subresources have no operations here
        assert_eq!(
            names(&res("", "v1", "nodes")),
            pairs(&[("status", "parent")])
        );
        let ns = res("", "v1", "namespaces");
        assert!(!ns.namespaced && !ns.has("deletecollection"));
        // autoscaling is served in v2 (preferred) and v1
        assert!(gvs
            .iter()
            .any(|g| g.group == "autoscaling" && g.version == "v1"));
        assert!(gvs
            .iter()
            .any(|g| g.group == "autoscaling" && g.version == "v2"));
    }
}
