//! The built-in group-versions and resources whose OpenAPI v3 documents the API server serves.

use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};

/// Adds the schema of one Rust type (and everything it references) to a generator.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// Every verb of a normal resource.
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
/// Every verb but deletecollection (namespaces).
pub const NO_DELETECOLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Create-only resources (reviews, bindings).
pub const CREATE_ONLY: &[&str] = &["create"];
/// Read-only list resources (componentstatuses).
pub const GET_LIST: &[&str] = &["get", "list"];

/// A kind that a subresource accepts or returns when it is not the parent kind.
#[derive(Clone, Copy)]
pub struct KindRef {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub schema: SchemaFn,
}

/// What a subresource is, which decides its operations.
#[derive(Clone, Copy)]
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
#[derive(Clone, Copy)]
pub struct SubresourceDef {
    pub name: &'static str,
    pub kind: SubresourceKind,
}

/// One resource of a group-version.
#[derive(Clone)]
pub struct ResourceDef {
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub subresources: Vec<SubresourceDef>,
    pub schema: SchemaFn,
}

impl ResourceDef {
    /// Whether the resource has the verb.
    pub fn has(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

/// One built-in group-version.
#[derive(Clone)]
pub struct GroupVersionDef {
    pub group: &'static str,
    pub version: &'static str,
    pub resources: Vec<ResourceDef>,
}

impl GroupVersionDef {
    /// The OpenAPI v3 discovery key: `api/v1` or `apis/<group>/<version>`.
    pub fn path(&self) -> String {
        gv_path(self.group, self.version)
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

trait Scoped {
    const NAMESPACED: bool;
}
impl Scoped for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scoped for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn res<T>(verbs: &'static [&'static str], subresources: Vec<SubresourceDef>) -> ResourceDef
where
    T: Resource + JsonSchema,
    T::Scope: Scoped,
{
    ResourceDef {
        plural: T::URL_PATH_SEGMENT,
        kind: T::KIND,
        namespaced: <T::Scope as Scoped>::NAMESPACED,
        verbs,
        subresources,
        schema: schema_of::<T>,
    }
}

fn kind_ref<T: Resource + JsonSchema>() -> KindRef {
    KindRef {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        schema: schema_of::<T>,
    }
}

fn status() -> SubresourceDef {
    SubresourceDef {
        name: "status",
        kind: SubresourceKind::ParentGetPutPatch,
    }
}

fn scale() -> SubresourceDef {
    SubresourceDef {
        name: "scale",
        kind: SubresourceKind::OtherGetPutPatch(
            kind_ref::<k8s_openapi::api::autoscaling::v1::Scale>(),
        ),
    }
}

/// The built-in group-versions in the order the API server lists them.
pub fn builtin_group_versions() -> Vec<GroupVersionDef> {
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions_v1;
    let gv = |group, version, resources| GroupVersionDef {
        group,
        version,
        resources,
    };
    vec![
        gv(
            "",
            "v1",
            vec![
                res::<core::v1::Binding>(CREATE_ONLY, vec![]),
                res::<core::v1::ComponentStatus>(GET_LIST, vec![]),
                res::<core::v1::ConfigMap>(ALL_VERBS, vec![]),
                res::<core::v1::Endpoints>(ALL_VERBS, vec![]),
                res::<core::v1::Event>(ALL_VERBS, vec![]),
                res::<core::v1::LimitRange>(ALL_VERBS, vec![]),
                res::<core::v1::Namespace>(
                    NO_DELETECOLLECTION,
                    vec![
                        SubresourceDef {
                            name: "finalize",
                            kind: SubresourceKind::ParentPut,
                        },
                        status(),
                    ],
                ),
                res::<core::v1::Node>(ALL_VERBS, vec![status()]),
                res::<core::v1::PersistentVolumeClaim>(ALL_VERBS, vec![status()]),
                res::<core::v1::PersistentVolume>(ALL_VERBS, vec![status()]),
                res::<core::v1::Pod>(
                    ALL_VERBS,
                    vec![
                        SubresourceDef {
                            name: "binding",
                            kind: SubresourceKind::Create(kind_ref::<core::v1::Binding>()),
                        },
                        SubresourceDef {
                            name: "ephemeralcontainers",
                            kind: SubresourceKind::ParentGetPutPatch,
                        },
                        SubresourceDef {
                            name: "eviction",
                            kind: SubresourceKind::Create(kind_ref::<policy::v1::Eviction>()),
                        },
                        SubresourceDef {
                            name: "log",
                            kind: SubresourceKind::Log,
                        },
                        SubresourceDef {
                            name: "resize",
                            kind: SubresourceKind::ParentGetPutPatch,
                        },
                        status(),
                    ],
                ),
                res::<core::v1::PodTemplate>(ALL_VERBS, vec![]),
                res::<core::v1::ReplicationController>(ALL_VERBS, vec![scale(), status()]),
                res::<core::v1::ResourceQuota>(ALL_VERBS, vec![status()]),
                res::<core::v1::Secret>(ALL_VERBS, vec![]),
                res::<core::v1::ServiceAccount>(
                    ALL_VERBS,
                    vec![SubresourceDef {
                        name: "token",
                        kind: SubresourceKind::Create(
                            kind_ref::<authentication::v1::TokenRequest>(),
                        ),
                    }],
                ),
                res::<core::v1::Service>(ALL_VERBS, vec![status()]),
            ],
        ),
        gv(
            "apps",
            "v1",
            vec![
                res::<apps::v1::ControllerRevision>(ALL_VERBS, vec![]),
                res::<apps::v1::DaemonSet>(ALL_VERBS, vec![status()]),
                res::<apps::v1::Deployment>(ALL_VERBS, vec![scale(), status()]),
                res::<apps::v1::ReplicaSet>(ALL_VERBS, vec![scale(), status()]),
                res::<apps::v1::StatefulSet>(ALL_VERBS, vec![scale(), status()]),
            ],
        ),
        gv(
            "batch",
            "v1",
            vec![
                res::<batch::v1::CronJob>(ALL_VERBS, vec![status()]),
                res::<batch::v1::Job>(ALL_VERBS, vec![status()]),
            ],
        ),
        gv(
            "autoscaling",
            "v1",
            vec![res::<autoscaling::v1::HorizontalPodAutoscaler>(
                ALL_VERBS,
                vec![status()],
            )],
        ),
        gv(
            "autoscaling",
            "v2",
            vec![res::<autoscaling::v2::HorizontalPodAutoscaler>(
                ALL_VERBS,
                vec![status()],
            )],
        ),
        gv(
            "discovery.k8s.io",
            "v1",
            vec![res::<discovery::v1::EndpointSlice>(ALL_VERBS, vec![])],
        ),
        gv(
            "coordination.k8s.io",
            "v1",
            vec![res::<coordination::v1::Lease>(ALL_VERBS, vec![])],
        ),
        gv(
            "events.k8s.io",
            "v1",
            vec![res::<events::v1::Event>(ALL_VERBS, vec![])],
        ),
        gv(
            "rbac.authorization.k8s.io",
            "v1",
            vec![
                res::<rbac::v1::ClusterRoleBinding>(ALL_VERBS, vec![]),
                res::<rbac::v1::ClusterRole>(ALL_VERBS, vec![]),
                res::<rbac::v1::RoleBinding>(ALL_VERBS, vec![]),
                res::<rbac::v1::Role>(ALL_VERBS, vec![]),
            ],
        ),
        gv(
            "storage.k8s.io",
            "v1",
            vec![
                res::<storage::v1::CSIDriver>(ALL_VERBS, vec![]),
                res::<storage::v1::CSINode>(ALL_VERBS, vec![]),
                res::<storage::v1::CSIStorageCapacity>(ALL_VERBS, vec![]),
                res::<storage::v1::StorageClass>(ALL_VERBS, vec![]),
                res::<storage::v1::VolumeAttachment>(ALL_VERBS, vec![status()]),
            ],
        ),
        gv(
            "networking.k8s.io",
            "v1",
            vec![
                res::<networking::v1::IngressClass>(ALL_VERBS, vec![]),
                res::<networking::v1::Ingress>(ALL_VERBS, vec![status()]),
                res::<networking::v1::IPAddress>(ALL_VERBS, vec![]),
                res::<networking::v1::NetworkPolicy>(ALL_VERBS, vec![]),
                res::<networking::v1::ServiceCIDR>(ALL_VERBS, vec![status()]),
            ],
        ),
        gv(
            "policy",
            "v1",
            vec![res::<policy::v1::PodDisruptionBudget>(
                ALL_VERBS,
                vec![status()],
            )],
        ),
        gv(
            "scheduling.k8s.io",
            "v1",
            vec![res::<scheduling::v1::PriorityClass>(ALL_VERBS, vec![])],
        ),
        gv(
            "apiextensions.k8s.io",
            "v1",
            vec![res::<apiextensions_v1::CustomResourceDefinition>(
                ALL_VERBS,
                vec![status()],
            )],
        ),
        gv(
            "authentication.k8s.io",
            "v1",
            vec![
                res::<authentication::v1::SelfSubjectReview>(CREATE_ONLY, vec![]),
                res::<authentication::v1::TokenReview>(CREATE_ONLY, vec![]),
            ],
        ),
        gv(
            "authorization.k8s.io",
            "v1",
            vec![
                res::<authorization::v1::LocalSubjectAccessReview>(CREATE_ONLY, vec![]),
                res::<authorization::v1::SelfSubjectAccessReview>(CREATE_ONLY, vec![]),
                res::<authorization::v1::SelfSubjectRulesReview>(CREATE_ONLY, vec![]),
                res::<authorization::v1::SubjectAccessReview>(CREATE_ONLY, vec![]),
            ],
        ),
    ]
}
