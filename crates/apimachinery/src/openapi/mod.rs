//! OpenAPI v3 documents served by the API server (`GET /openapi/v3` and
//! `GET /openapi/v3/<api/v1|apis/<group>/<version>>`), as kubectl needs them for client-side
//! validation (`fieldValidation` support), strategic merge patch metadata and `kubectl explain`.
//!
//! Schemas come from the `k8s-openapi` crate (its `schemars` feature: descriptions, types,
//! formats, required fields) rewritten to upstream's v3 form (`allOf: [{$ref}]` for references with
//! siblings, `oneOf` int-or-string / quantity, untyped JSON) and completed with the vendor extensions upstream
//! derives from its Go type markers (`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`,
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`, enums: see
//! `tags.rs`) and `x-kubernetes-group-version-kind`. Paths carry upstream's operationIds,
//! parameters and `x-kubernetes-action` / `x-kubernetes-group-version-kind`.
//!
//! Built-in documents are generated on request and not kept ([`document`]); only their content
//! hashes are (the `/openapi/v3` index points at `?hash=` URLs, which clients cache for good).
//! Cost (debug build, `cargo run -p apimachinery --example openapi_stats`): the 449 component
//! schemas take ~10 ms, all 16 documents ~135 ms, 3.7 MB of compact JSON in total (api/v1 1.15 MB,
//! apps/v1 0.55 MB); kept, the serialized documents held 5.6 MB of heap for the server's life.
//! Custom resources get theirs from [`custom_resource_document`]. [`discovery_paths`] builds the
//! `/openapi/v3` index; [`field_info`] answers per-field patch metadata for the patch engines.

mod crd;
mod lookup;
mod paths;
pub mod resources;
mod schema;
#[cfg(feature = "schemars")]
mod tags;
pub mod v2;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

pub use crd::{custom_group_versions, custom_resource_document};
pub use lookup::{lookup_field, FieldInfo};
pub use resources::{builtin_group_versions, gv_path, GroupVersionDef};
pub use schema::REF_PREFIX;

use paths::{GvPaths, KindSchema, PathResource, SubOps};
use resources::SubresourceKind;
#[cfg(feature = "schemars")]
pub use schema::builtin_components;
pub use schema::{embedded_components_json, BuiltinComponents};

/// The `info.version` of every document.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// Errors building OpenAPI documents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenApiError {
    #[error("invalid custom resource definition: {0}")]
    InvalidCrd(String),
    #[error("no custom resource definition serves {0}")]
    NothingServed(String),
}

/// One serialized group-version document with its content hash.
#[derive(Debug, Clone)]
pub struct Document {
    /// `api/v1` or `apis/<group>/<version>`
    pub path: String,
    /// the JSON document
    pub bytes: Vec<u8>,
    /// upper-case hex SHA-512 of `bytes` (what upstream puts in `?hash=`)
    pub hash: String,
}

impl Document {
    /// Serializes a document and computes its hash.
    pub fn new(path: impl Into<String>, doc: &Value) -> Document {
        let bytes = serde_json::to_vec(doc).expect("a json value serializes");
        let hash = hex::encode_upper(Sha512::digest(&bytes));
        Document {
            path: path.into(),
            bytes,
            hash,
        }
    }

    /// `/openapi/v3/<path>?hash=<hash>`, the URL the discovery index points at.
    pub fn server_relative_url(&self) -> String {
        format!("/openapi/v3/{}?hash={}", self.path, self.hash)
    }

    /// The parsed document.
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.bytes).expect("document bytes are json")
    }
}

/// The `/openapi/v3` index from (path, hash) pairs:
/// `{"paths": {"<path>": {"serverRelativeURL": "/openapi/v3/<path>?hash=<hash>"}}}`.
pub fn discovery_paths<'a>(docs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut paths = Map::new();
    for (path, hash) in docs {
        paths.insert(
            path.to_string(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}") }),
        );
    }
    paths.sort_keys();
    json!({ "paths": paths })
}

/// The built-in documents, generated on first use.
pub struct Builtin {
    gvs: Vec<GroupVersionDef>,
    /// without descriptions (see [`Builtin::schemas`])
    components: BuiltinComponents,
    /// the content hash of each document, once it has been built
    hashes: BTreeMap<String, OnceLock<String>>,
}

static BUILTIN: OnceLock<Builtin> = OnceLock::new();

/// The built-in documents (component schemas are generated on the first call).
pub fn builtin() -> &'static Builtin {
    BUILTIN.get_or_init(|| {
        let gvs = builtin_group_versions();
        let components = schema::lean_embedded_components();
        let hashes = gvs.iter().map(|g| (g.path(), OnceLock::new())).collect();
        Builtin {
            gvs,
            components,
            hashes,
        }
    })
}

/// The document of a built-in group-version: `path` is `api/v1` or `apis/<group>/<version>`
/// (built on each call).
pub fn document(path: &str) -> Option<Arc<Document>> {
    builtin().document(path)
}

/// Every built-in document, in path order (built on each call).
pub fn builtin_documents() -> Vec<Arc<Document>> {
    let b = builtin();
    // one parse of the full schemas serves every document
    let mut full = None;
    b.hashes
        .keys()
        .filter_map(|p| b.document_with(p, &mut full))
        .collect()
}

/// (path, content hash) of every built-in document, in path order, for the `/openapi/v3` index
/// (the documents are built on the first call only).
pub fn builtin_hashes() -> Vec<(String, String)> {
    let b = builtin();
    if b.hashes.values().any(|h| h.get().is_none()) {
        builtin_documents();
    }
    b.hashes
        .iter()
        .filter_map(|(p, h)| Some((p.clone(), h.get()?.clone())))
        .collect()
}

/// Patch metadata of the field at `path` (object field names from the root, list indices elided)
/// of a built-in kind, e.g. `("", "v1", "Pod", ["spec", "containers"])` -> merge key `name`,
/// strategy `merge`. `None` when the kind or the field is unknown.
pub fn field_info(group: &str, version: &str, kind: &str, path: &[&str]) -> Option<FieldInfo> {
    let b = builtin();
    let root =
        b.components
            .kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))?;
    lookup_field(&b.components.schemas, root, path)
}

impl Builtin {
    /// The built-in group-versions.
    pub fn group_versions(&self) -> &[GroupVersionDef] {
        &self.gvs
    }

    /// Every built-in component schema by name (upstream's names, e.g. `io.k8s.api.core.v1.Pod`),
    /// without descriptions: what validation, pruning and patch metadata need, kept in memory.
    pub fn schemas(&self) -> &BTreeMap<String, Value> {
        &self.components.schemas
    }

    /// Every built-in component schema with its descriptions, for building documents: parsed
    /// from the embedded text on each call and not kept (only documents are kept, serialized).
    pub fn full_schemas(&self) -> BTreeMap<String, Value> {
        schema::embedded_components().schemas
    }

    /// The component schema name of a built-in kind or list kind.
    pub fn schema_name(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.components
            .kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// Whether the document of a built-in group-version has been generated already (its hash is
    /// known).
    pub fn is_generated(&self, path: &str) -> bool {
        self.hashes.get(path).is_some_and(|c| c.get().is_some())
    }

    /// The document of one built-in group-version (built on each call).
    pub fn document(&self, path: &str) -> Option<Arc<Document>> {
        self.document_with(path, &mut None)
    }

    /// [`Builtin::document`], with the full schemas parsed into `full` unless they are there.
    fn document_with(
        &self,
        path: &str,
        full: &mut Option<BTreeMap<String, Value>>,
    ) -> Option<Arc<Document>> {
        let cell = self.hashes.get(path)?;
        let gv = self.gvs.iter().find(|g| g.path() == path)?;
        let schemas = full.get_or_insert_with(|| self.full_schemas());
        let doc = Document::new(path, &self.build(gv, schemas));
        cell.get_or_init(|| doc.hash.clone());
        Some(Arc::new(doc))
    }

    fn kind_schema(&self, group: &str, version: &str, kind: &str) -> KindSchema {
        KindSchema {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            schema: self
                .schema_name(group, version, kind)
                .unwrap_or_default()
                .to_string(),
        }
    }

    fn build(&self, gv: &GroupVersionDef, schemas: &BTreeMap<String, Value>) -> Value {
        assemble(self.paths(gv), schemas, &BTreeMap::new())
    }

    /// The `paths` section of one built-in group-version document.
    fn paths(&self, gv: &GroupVersionDef) -> Map<String, Value> {
        let gp = GvPaths {
            group: &gv.group,
            version: &gv.version,
            strategic_merge: true,
        };
        let mut p = Map::new();
        paths::root_path(&gp, &mut p);
        for r in &gv.resources {
            let subresources = r
                .subresources
                .iter()
                .map(|s| {
                    let ops = match &s.kind {
                        SubresourceKind::ParentGetPutPatch => SubOps::ParentGetPutPatch,
                        SubresourceKind::ParentPut => SubOps::ParentPut,
                        SubresourceKind::Log => SubOps::Log,
                        SubresourceKind::OtherGetPutPatch(k) => SubOps::OtherGetPutPatch(
                            self.kind_schema(&k.group, &k.version, &k.kind),
                        ),
                        SubresourceKind::Create(k) => {
                            SubOps::Create(self.kind_schema(&k.group, &k.version, &k.kind))
                        }
                    };
                    (s.name.clone(), ops)
                })
                .collect();
            let pr = PathResource {
                plural: r.plural.clone(),
                kind: r.kind.clone(),
                namespaced: r.namespaced,
                verbs: r.verbs.clone(),
                schema: self
                    .schema_name(&gv.group, &gv.version, &r.kind)
                    .unwrap_or_default()
                    .to_string(),
                list_schema: self
                    .schema_name(&gv.group, &gv.version, &format!("{}List", r.kind))
                    .map(String::from),
                subresources,
            };
            paths::resource_paths(&gp, &pr, &mut p);
        }
        p
    }
}

/// Every component schema the paths reference, directly or through other schemas, looked up
/// in `own` first, then in `shared`, by name.
fn referenced_components<'a>(
    paths: &Map<String, Value>,
    shared: &'a BTreeMap<String, Value>,
    own: &'a BTreeMap<String, Value>,
) -> BTreeMap<String, &'a Value> {
    let mut out = BTreeMap::new();
    let mut stack = paths::referenced_schemas(paths);
    while let Some(n) = stack.pop() {
        if out.contains_key(&n) {
            continue;
        }
        if let Some(s) = own.get(&n).or_else(|| shared.get(&n)) {
            schema::collect_refs(s, &mut stack);
            out.insert(n, s);
        }
    }
    out
}

/// Builds a whole document from its paths: the components are every schema the paths reference,
/// looked up in `own` first, then in `shared`.
fn assemble(
    mut paths: Map<String, Value>,
    shared: &BTreeMap<String, Value>,
    own: &BTreeMap<String, Value>,
) -> Value {
    paths.sort_keys();
    let mut schemas = Map::new();
    for (n, s) in referenced_components(&paths, shared, own) {
        schemas.insert(n, s.clone());
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            }
        },
        "security": [{"BearerToken": []}],
    })
}

#[cfg(test)]
mod tests;
