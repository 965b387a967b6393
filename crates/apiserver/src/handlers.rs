//! REST handlers for stored resources: get, list, create, update, patch, delete,
//! deletecollection and the status/scale/binding/finalize subresources, over the store
//! (writes, point reads) and the watch cache (lists).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::registry::ResourceInfo;
use apimachinery::selector::{FieldSelector, LabelSelector};
use apimachinery::{ApiError, FieldError};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use store::{Compare, Op, Revision, Txn};

use crate::cache::{self, CachedObject};
use crate::negotiate::BodyType;
use crate::objects::{self, meta_mut};
use crate::Api;

/// A resource request after routing: the resource, its namespace and name, the query.
pub struct Req<'a> {
    pub ri: &'a ResourceInfo,
    pub namespace: &'a str,
    pub name: &'a str,
    pub subresource: &'a str,
    pub query: &'a HashMap<String, String>,
    pub username: &'a str,
    /// The field manager recorded in managedFields for this write.
    pub manager: &'a str,
    /// The write is a server-side apply (managedFields are maintained by the apply engine).
    pub apply: bool,
    /// The version the client speaks when it differs from the storage form (`ri`): patches
    /// apply to the object in this version.
    pub view: Option<&'a ResourceInfo>,
}

/// Convert a stored object to the version a request speaks.
pub fn to_view(view: Option<&ResourceInfo>, obj: &Value) -> Value {
    match view {
        Some(v) => apimachinery::conversion::from_storage(&v.group, &v.version, &v.kind, obj),
        None => obj.clone(),
    }
}

/// Convert an object in a request's version to its storage form.
pub fn from_view(view: Option<&ResourceInfo>, obj: &Value) -> Value {
    match view {
        Some(v) => apimachinery::conversion::to_storage(&v.group, &v.version, &v.kind, obj),
        None => obj.clone(),
    }
}

impl Req<'_> {
    fn key(&self) -> String {
        self.ri.key(self.namespace, self.name)
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }

    fn group(&self) -> &str {
        &self.ri.group
    }
}

/// The outcome of a write: the object to return and the HTTP status code.
pub struct Written {
    pub obj: Value,
    pub code: u16,
}

fn store_err(e: store::StoreError) -> ApiError {
    match e {
        store::StoreError::Compacted { .. } => ApiError::expired(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// Kinds whose status is not reset on create (the client may set it).
fn keeps_status_on_create(ri: &ResourceInfo) -> bool {
    matches!((ri.group.as_str(), ri.plural.as_str()), ("", "nodes"))
}

/// The initial status upstream gives on create to kinds not prepared by apimachinery's
/// `prepare_for_create`.
fn initial_status(ri: &ResourceInfo, obj: &Value) -> Option<Value> {
    match (ri.group.as_str(), ri.plural.as_str()) {
        ("", "persistentvolumes") | ("", "persistentvolumeclaims") => {
            Some(json!({"phase": "Pending"}))
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => Some(crd_status(obj, None)),
        _ => None,
    }
}

/// The status the apiextensions server gives a CRD: names accepted, established, and the
/// storage versions ever used.
pub fn crd_status(crd: &Value, old_status: Option<&Value>) -> Value {
    let now = objects::now();
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("")
        .to_string();
    let mut stored: Vec<Value> = old_status
        .and_then(|s| s.get("storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !storage.is_empty() && !stored.iter().any(|v| v == &json!(storage)) {
        stored.push(json!(storage));
    }
    let mut names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if names.get("singular").is_none() {
        if let Some(k) = names.get("kind").and_then(Value::as_str) {
            names["singular"] = json!(k.to_ascii_lowercase());
        }
    }
    if names.get("listKind").is_none() {
        if let Some(k) = names.get("kind").and_then(Value::as_str) {
            names["listKind"] = json!(format!("{k}List"));
        }
    }
    let keep_time = |t: &str| -> String {
        old_status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(String::from)
            .unwrap_or_else(|| now.clone())
    };
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
        ],
        "storedVersions": stored,
    })
}

/// Where a scalable resource keeps its replica counts and selector (CRDs configure them).
pub struct ScalePaths {
    pub spec: String,
    pub status: String,
    pub selector: Option<String>,
}

impl ScalePaths {
    fn builtin() -> Self {
        ScalePaths {
            spec: "/spec/replicas".into(),
            status: "/status/replicas".into(),
            selector: Some("/spec/selector".into()),
        }
    }

    /// From a CRD version's `subresources.scale`.
    pub fn from_crd(crd: &Value, version: &str) -> Self {
        let to_ptr = |p: &str| {
            p.trim_start_matches('.')
                .split('.')
                .fold(String::new(), |acc, s| format!("{acc}/{s}"))
        };
        let scale = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v["name"] == version))
            .and_then(|v| v.pointer("/subresources/scale"))
            .cloned()
            .unwrap_or_default();
        ScalePaths {
            spec: scale["specReplicasPath"]
                .as_str()
                .map(to_ptr)
                .unwrap_or_else(|| "/spec/replicas".into()),
            status: scale["statusReplicasPath"]
                .as_str()
                .map(to_ptr)
                .unwrap_or_else(|| "/status/replicas".into()),
            selector: scale["labelSelectorPath"].as_str().map(to_ptr),
        }
    }
}

/// Kinds whose PUT creates a missing object, as upstream's strategies allow.
fn allows_create_on_update(ri: &ResourceInfo) -> bool {
    matches!(
        (ri.group.as_str(), ri.plural.as_str()),
        ("", "endpoints") | ("", "events") | ("events.k8s.io", "events")
    )
}

fn has_status(ri: &ResourceInfo) -> bool {
    ri.subresource("status").is_some()
}

fn check_kind(ri: &ResourceInfo, obj: &mut Value, expect_kind: &str) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let want_av = ri.api_version();
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(expect_kind.to_string()));
        }
        Some(k) if k == expect_kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({want_av}), or the kind {k} does not match {expect_kind}",
                map.get("apiVersion").and_then(Value::as_str).unwrap_or("")
            )))
        }
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(want_av));
        }
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
    }
    Ok(())
}

/// Fields of object metadata the server owns and clients cannot set on create.
fn reset_server_meta(obj: &mut Value) {
    let m = meta_mut(obj);
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(f);
    }
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Encode a stored value (without resourceVersion, which is the store's mod revision).
fn encode_stored(obj: &Value) -> Bytes {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    Bytes::from(serde_json::to_vec(&o).unwrap_or_default())
}

fn parse_rv(s: &str) -> Result<Revision, ApiError> {
    s.parse::<Revision>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))
}

/// A parsed label + field selector pair for one resource.
pub struct Filter {
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
    pub group: String,
    pub resource: String,
}

impl Filter {
    pub fn from_query(ri: &ResourceInfo, q: &HashMap<String, String>) -> Result<Filter, ApiError> {
        let labels =
            match q.get("labelSelector").filter(|s| !s.is_empty()) {
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let fields = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
            Some(s) => {
                let fs =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                for t in fs.terms() {
                    let probe = json!({});
                    if crate::fields::value(&ri.group, &ri.plural, &probe, &t.field).is_none() {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {}",
                            t.field
                        )));
                    }
                }
                Some(fs)
            }
            None => None,
        };
        Ok(Filter {
            labels,
            fields,
            group: ri.group.clone(),
            resource: ri.plural.clone(),
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.labels {
            if !l.matches_object(obj) {
                return false;
            }
        }
        if let Some(f) = &self.fields {
            let mut vals: HashMap<String, String> = HashMap::new();
            for t in f.terms() {
                if let Some(v) = crate::fields::value(&self.group, &self.resource, obj, &t.field) {
                    vals.insert(t.field.clone(), v);
                }
            }
            if !f.matches(&vals) {
                return false;
            }
        }
        true
    }
}

/// The continue token of a paginated list: the revision and the last key served.
fn encode_continue(rv: Revision, last_key: &str, prefix: &str) -> String {
    use base64::Engine;
    let start = last_key.strip_prefix(prefix).unwrap_or(last_key);
    let tok = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{start}\u{0000}")});
    base64::engine::general_purpose::URL_SAFE.encode(tok.to_string())
}

fn decode_continue(tok: &str) -> Result<(Revision, String), ApiError> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(tok)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0000}').unwrap_or(start);
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rv, start.to_string()))
}

/// A list result before rendering.
pub struct ListResult {
    pub items: Vec<Arc<CachedObject>>,
    pub rv: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

impl Api {
    fn namespace_prefix(&self, ri: &ResourceInfo, namespace: &str) -> String {
        if ri.namespaced && !namespace.is_empty() {
            format!("{}{namespace}/", ri.key_prefix())
        } else {
            ri.key_prefix()
        }
    }

    /// GET of one object (read from the store: a consistent read).
    pub async fn get_object(&self, r: &Req<'_>) -> Result<Value, ApiError> {
        let kv = self.store.get(&r.key()).await.map_err(store_err)?;
        match kv {
            Some(kv) => {
                cache::decode(&kv, kv.mod_revision).map_err(|e| ApiError::internal(e.to_string()))
            }
            None => Err(ApiError::not_found(r.group(), &r.ri.plural, r.name)),
        }
    }

    /// LIST, served from the watch cache (or from the store for continue/Exact reads).
    pub async fn list(&self, r: &Req<'_>, filter: &Filter) -> Result<ListResult, ApiError> {
        let q = r.query;
        let limit: usize = match q.get("limit").filter(|s| !s.is_empty()) {
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?
                .max(0) as usize,
            None => 0,
        };
        let prefix = self.namespace_prefix(r.ri, r.namespace);
        let rc = self.cache.resource(&r.ri.key_prefix());
        if let Some(tok) = q.get("continue").filter(|s| !s.is_empty()) {
            let (rv, start) = decode_continue(tok)?;
            return self
                .list_from_store(
                    r,
                    filter,
                    &format!("{}{start}", r.ri.key_prefix()),
                    &prefix,
                    rv,
                    limit,
                )
                .await;
        }
        let rv_param = q.get("resourceVersion").map(String::as_str).unwrap_or("");
        let rv_match = q
            .get("resourceVersionMatch")
            .map(String::as_str)
            .unwrap_or("");
        match (rv_param, rv_match) {
            ("", "") => {
                self.cache
                    .sync()
                    .await
                    .map_err(|e| ApiError::timeout(e.to_string()))?;
            }
            ("0", _) => {}
            (rv, "Exact") => {
                let rv = parse_rv(rv)?;
                return self
                    .list_from_store(r, filter, "", &prefix, rv, limit)
                    .await;
            }
            (rv, "" | "NotOlderThan") => {
                let rv = parse_rv(rv)?;
                self.cache
                    .wait_for(rv, Duration::from_secs(3))
                    .await
                    .map_err(|e| {
                        let mut err = ApiError::timeout(e.to_string());
                        err.retry_after_seconds = Some(1);
                        err
                    })?;
            }
            (_, m) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch: Unsupported value: \"{m}\""
                )))
            }
        }
        let (objs, rv) = rc.snapshot(&prefix, &self.cache.revision_rx());
        let mut items = Vec::new();
        let mut last: Option<&Arc<CachedObject>> = None;
        let mut more = false;
        let mut counted = 0usize;
        for o in &objs {
            if !filter.matches(&o.attrs) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(o.clone());
            last = Some(o);
            counted += 1;
        }
        let (continue_token, remaining) = if more {
            let last = last.expect("a full page has a last item");
            let remaining = if filter.is_everything() {
                Some((objs.len() - counted) as i64)
            } else {
                None
            };
            (
                Some(encode_continue(rv, &last.key, &r.ri.key_prefix())),
                remaining,
            )
        } else {
            (None, None)
        };
        Ok(ListResult {
            items,
            rv,
            continue_token,
            remaining,
        })
    }

    async fn list_from_store(
        &self,
        r: &Req<'_>,
        filter: &Filter,
        start_after: &str,
        prefix: &str,
        rv: Revision,
        limit: usize,
    ) -> Result<ListResult, ApiError> {
        let mut items = Vec::new();
        let mut cursor = start_after.to_string();
        loop {
            let resp = self
                .store
                .range(store::RangeRequest {
                    prefix: prefix.to_string(),
                    start_after: cursor.clone(),
                    revision: rv,
                    limit: if limit > 0 { limit + 1 } else { 0 },
                })
                .await
                .map_err(|e| match e {
                    store::StoreError::Compacted { .. } => ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ),
                    store::StoreError::FutureRevision(_) => {
                        let mut err = ApiError::timeout(format!("Too large resource version: {rv}"));
                        err.retry_after_seconds = Some(1);
                        err
                    }
                    other => store_err(other),
                })?;
            let n = resp.kvs.len();
            for kv in resp.kvs {
                cursor = kv.key.clone();
                let obj = cache::decode(&kv, kv.mod_revision)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                if !filter.matches(&obj) {
                    continue;
                }
                if limit > 0 && items.len() == limit {
                    let prev_key = items
                        .last()
                        .map(|o: &Arc<CachedObject>| o.key.clone())
                        .unwrap_or_default();
                    return Ok(ListResult {
                        items,
                        rv,
                        continue_token: Some(encode_continue(rv, &prev_key, &r.ri.key_prefix())),
                        remaining: None,
                    });
                }
                items.push(Arc::new(CachedObject::new(
                    kv.key.clone(),
                    kv.mod_revision,
                    Arc::new(obj),
                )));
            }
            if limit == 0 || n <= limit {
                break;
            }
        }
        Ok(ListResult {
            items,
            rv,
            continue_token: None,
            remaining: None,
        })
    }

    /// The namespace of a new object must exist and not be terminating.
    async fn ensure_namespace(&self, ri: &ResourceInfo, namespace: &str) -> Result<(), ApiError> {
        if !ri.namespaced {
            return Ok(());
        }
        let ns_key = format!("/registry/core/namespaces/{namespace}");
        // as upstream's NamespaceLifecycle admission: the cached namespace when there is one
        // (its deletion start is seen there), else a live read (a namespace created a moment ago)
        let cached = self
            .cache
            .resource("/registry/core/namespaces/")
            .get(&ns_key)
            .map(|c| c.obj());
        let ns = match cached {
            Some(ns) => Some(ns),
            None => self.live_object(&ns_key).await?,
        };
        match ns {
            None => Err(ApiError::not_found("", "namespaces", namespace)),
            Some(ns) if objects::is_deleting(&ns) => Err(ApiError::forbidden(
                &ri.group,
                &ri.plural,
                "",
                &format!("unable to create new content in namespace {namespace} because it is being terminated"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Whether a resource is served from a CRD.
    pub fn is_custom(&self, ri: &ResourceInfo) -> bool {
        self.catalogue
            .builtin(&ri.group, &ri.version, &ri.plural)
            .is_none()
    }

    /// The CRD serving a custom resource (None for built-in kinds).
    pub fn crd_of(&self, ri: &ResourceInfo) -> Option<Arc<Value>> {
        if !self.is_custom(ri) {
            return None;
        }
        self.lookup(&ri.group, &ri.version, &ri.plural)
            .and_then(|(_, crd)| crd)
    }

    fn tracks_generation(&self, ri: &ResourceInfo) -> bool {
        self.is_custom(ri) || apimachinery::meta::tracks_generation(&ri.group, &ri.kind)
    }

    /// POST: create an object.
    pub async fn create(&self, r: &Req<'_>, mut obj: Value) -> Result<Written, ApiError> {
        let ri = r.ri;
        check_kind(ri, &mut obj, &ri.kind)?;
        reset_server_meta(&mut obj);
        // namespace from the URL; a conflicting one in the body is an error
        if ri.namespaced {
            let body_ns = objects::namespace(&obj).to_string();
            if !body_ns.is_empty() && body_ns != r.namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta_mut(&mut obj).insert("namespace".into(), Value::String(r.namespace.to_string()));
        } else {
            meta_mut(&mut obj).remove("namespace");
        }
        if objects::name(&obj).is_empty() {
            let gen = objects::meta_str(&obj, "generateName").to_string();
            if gen.is_empty() {
                return Err(ApiError::invalid(
                    &ri.group,
                    &ri.kind,
                    "",
                    vec![FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            meta_mut(&mut obj).insert(
                "name".into(),
                Value::String(format!("{gen}{}", random_suffix())),
            );
        }
        let name = objects::name(&obj).to_string();
        {
            let m = meta_mut(&mut obj);
            m.insert(
                "uid".into(),
                Value::String(uuid::Uuid::new_v4().to_string()),
            );
            m.insert("creationTimestamp".into(), Value::String(objects::now()));
            if self.tracks_generation(ri) {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if has_status(ri) && !keeps_status_on_create(ri) {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        let crd = self.crd_of(ri);
        if ri.group.is_empty() && ri.plural == "pods" {
            self.admit_pod_priority(&mut obj).await?;
            crate::admission::add_default_tolerations(&mut obj, &self.default_tolerations);
            self.admit_pod_service_account(r.namespace, &mut obj)
                .await?;
        }
        if crate::services::is_service(ri) && crd.is_none() {
            apimachinery::defaults::service_prepare_for_create(&mut obj);
        }
        let causes = crate::admission::default_and_validate_create(ri, crd.as_deref(), &mut obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&ri.group, &ri.kind, &name, causes));
        }
        if has_status(ri) && !keeps_status_on_create(ri) {
            if let Some(st) = initial_status(ri, &obj) {
                obj["status"] = st;
            }
        }
        self.ensure_namespace(ri, r.namespace).await?;
        if !r.apply && !r.manager.is_empty() {
            crate::admission::track_update(ri, crd.as_deref(), None, &mut obj, r.manager, "")?;
        }
        objects::normalize_meta(&mut obj);
        let key = ri.key(r.namespace, &name);
        let service = crate::services::is_service(ri) && crd.is_none();
        let unassigned = obj.clone();
        // a Service's values are claimed in the same transaction; a value another create took
        // meanwhile makes the transaction fail and the assignment is made again
        for _attempt in 0..16 {
            obj = unassigned.clone();
            let plan = if service {
                Some(self.plan_service(&mut obj, None).await?)
            } else {
                None
            };
            if r.dry_run() {
                if self.store.get(&key).await.map_err(store_err)?.is_some() {
                    return Err(ApiError::already_exists(&ri.group, &ri.plural, &name));
                }
                return Ok(Written { obj, code: 201 });
            }
            let lease = self.lease_for(ri).await?;
            let mut compares = vec![Compare::ModRevision(key.clone(), 0)];
            let mut success = vec![Op::Put {
                key: key.clone(),
                value: encode_stored(&obj),
                lease,
            }];
            if let Some(plan) = &plan {
                let (c, o) = crate::services::claim_txn(plan, &obj);
                compares.extend(c);
                success.extend(o);
            }
            let resp = self
                .store
                .txn(Txn {
                    compares,
                    success,
                    failure: vec![],
                })
                .await
                .map_err(store_err)?;
            if !resp.succeeded {
                if !service || resp.current.first().is_some_and(Option::is_some) {
                    return Err(ApiError::already_exists(&ri.group, &ri.plural, &name));
                }
                continue;
            }
            cache::set_rv(&mut obj, resp.revision);
            return Ok(Written { obj, code: 201 });
        }
        Err(ApiError::internal(
            "failed to allocate the service's values: too many concurrent allocations",
        ))
    }

    /// The ServiceAccount admission of a new pod (upstream's ServiceAccount plugin): the
    /// account from the watch cache, else from the store (an account created a moment ago, as
    /// upstream's live lookup on an informer miss). A missing account is let through without
    /// the token volume (upstream refuses the pod) so that clusters without the controller
    /// manager, which creates the `default` accounts, still accept pods.
    async fn admit_pod_service_account(
        &self,
        namespace: &str,
        pod: &mut Value,
    ) -> Result<(), ApiError> {
        use crate::serviceaccounts::ObjectSource;
        let name = crate::serviceaccounts::pod_service_account(pod);
        let key = format!("/registry/core/serviceaccounts/{namespace}/{name}");
        let sa = match self.cache.object(&key) {
            Some(sa) => Some(sa),
            None => self.live_object(&key).await?,
        };
        match sa {
            Some(sa) => crate::serviceaccounts::admit_pod(pod, &sa, &random_suffix()),
            None => {
                tracing::debug!(%namespace, account = %name, "pod created without its service account")
            }
        }
        Ok(())
    }

    /// An object read from the store (not the cache), decoded as the cache holds it.
    async fn live_object(&self, key: &str) -> Result<Option<Arc<Value>>, ApiError> {
        match self.store.get(key).await.map_err(store_err)? {
            Some(kv) => Ok(Some(Arc::new(
                cache::decode(&kv, kv.mod_revision)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            ))),
            None => Ok(None),
        }
    }

    /// Record that this server wrote a PriorityClass (any verb): pods admitted after the write
    /// was acknowledged wait for the cache to hold it (see [`Api::admit_pod_priority`]).
    pub async fn note_priority_class_write(&self) {
        match self.store.current_revision().await {
            Ok(rev) => {
                self.priority_classes_written
                    .fetch_max(rev, std::sync::atomic::Ordering::AcqRel);
            }
            Err(e) => tracing::warn!(error = %e, "revision after a PriorityClass write unknown"),
        }
    }

    /// Priority admission (upstream's Priority plugin): resolve `spec.priorityClassName` (or
    /// the global default class) into `spec.priority` and `spec.preemptionPolicy`. It reads the
    /// watch cache's current state, as upstream reads its informer, without waiting for the
    /// cache per pod; it waits only while the cache has not applied a PriorityClass write this
    /// server acknowledged (a default class created just before its pod applies to it), and a
    /// named class the cache does not hold yet (written through another server) is read from
    /// the store before the pod is refused.
    async fn admit_pod_priority(&self, pod: &mut Value) -> Result<(), ApiError> {
        let written = self
            .priority_classes_written
            .load(std::sync::atomic::Ordering::Acquire);
        if self.cache.revision() < written {
            self.cache
                .wait_for(written, Duration::from_secs(5))
                .await
                .map_err(|e| ApiError::timeout(e.to_string()))?;
        }
        let prefix = "/registry/scheduling.k8s.io/priorityclasses/";
        let classes = self.cache.resource(prefix);
        let name = pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let class = if name.is_empty() {
            let all: Vec<Arc<Value>> = classes
                .snapshot(prefix, &self.cache.revision_rx())
                .0
                .iter()
                .map(|c| c.obj())
                .collect();
            crate::admission::default_priority_class(all.iter().map(|c| &**c)).cloned()
        } else {
            let key = format!("{prefix}{name}");
            let found = match classes.get(&key) {
                Some(c) => Some(c.obj()),
                None => self.live_object(&key).await?,
            };
            match found {
                Some(c) => Some((*c).clone()),
                None => {
                    return Err(ApiError::forbidden(
                        "",
                        "pods",
                        objects::name(pod),
                        &format!("no PriorityClass with name {name} was found"),
                    ))
                }
            }
        };
        crate::admission::apply_priority_class(pod, class.as_ref())
            .map_err(|msg| ApiError::forbidden("", "pods", objects::name(pod), &msg))
    }

    /// Events expire: they are stored with a TTL lease.
    async fn lease_for(&self, ri: &ResourceInfo) -> Result<i64, ApiError> {
        if ri.plural != "events" {
            return Ok(0);
        }
        self.event_lease().await.map_err(store_err)
    }

    /// PUT: replace an object (or its status/scale subresource).
    pub async fn update(&self, r: &Req<'_>, new: Value) -> Result<Written, ApiError> {
        let precondition = objects::resource_version(&new).to_string();
        let body = Arc::new(new);
        let b = body.clone();
        match self
            .guaranteed_update(r, &precondition, move |_old| Ok((*b).clone()))
            .await
        {
            // kinds upstream lets PUT create (AllowCreateOnUpdate)
            Err(e)
                if e.reason == apimachinery::Reason::NotFound
                    && r.subresource.is_empty()
                    && allows_create_on_update(r.ri) =>
            {
                let mut obj = (*body).clone();
                if objects::name(&obj).is_empty() {
                    meta_mut(&mut obj).insert("name".into(), Value::String(r.name.to_string()));
                }
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                self.create(r, obj).await
            }
            other => other,
        }
    }

    /// Read-modify-write with compare-and-swap, retried on conflicts when the caller gave no
    /// resourceVersion precondition. `mutate` gets the current object and returns the new one.
    pub async fn guaranteed_update<F>(
        &self,
        r: &Req<'_>,
        precondition: &str,
        mutate: F,
    ) -> Result<Written, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        self.guaranteed_update_with(r, precondition, false, mutate)
            .await
    }

    /// As [`Api::guaranteed_update`], starting from the watch cache's copy of the object (as
    /// upstream's GuaranteedUpdate with a cached existing object): the write still compares the
    /// stored revision, so a stale copy only costs a retry from the store. For writes without a
    /// resourceVersion precondition whose checks only get stricter as the object ages (binding).
    pub async fn guaranteed_update_cached<F>(
        &self,
        r: &Req<'_>,
        mutate: F,
    ) -> Result<Written, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        self.guaranteed_update_with(r, "", true, mutate).await
    }

    async fn guaranteed_update_with<F>(
        &self,
        r: &Req<'_>,
        precondition: &str,
        cached_first: bool,
        mutate: F,
    ) -> Result<Written, ApiError>
    where
        F: Fn(&Value) -> Result<Value, ApiError>,
    {
        let ri = r.ri;
        let key = r.key();
        // the cache does not know leases: only objects that never have one (not events)
        let mut cached = if cached_first && ri.plural != "events" {
            self.cache.resource(&ri.key_prefix()).get(&key)
        } else {
            None
        };
        for _attempt in 0..16 {
            let from_cache = cached.is_some();
            let (kv, old) = match cached.take() {
                Some(c) => {
                    let old = (*c.obj()).clone();
                    (
                        store::KeyValue {
                            key: key.clone(),
                            value: Vec::new().into(),
                            create_revision: 0,
                            mod_revision: c.rv,
                            version: 0,
                            lease: 0,
                        },
                        old,
                    )
                }
                None => {
                    let Some(kv) = self.store.get(&key).await.map_err(store_err)? else {
                        return Err(ApiError::not_found(&ri.group, &ri.plural, r.name));
                    };
                    let old = cache::decode(&kv, kv.mod_revision)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    (kv, old)
                }
            };
            if !precondition.is_empty() && precondition != kv.mod_revision.to_string() {
                parse_rv(precondition)?;
                return Err(ApiError::stale_resource_version(
                    &ri.group, &ri.plural, r.name,
                ));
            }
            let mut new = match mutate(&old) {
                Ok(n) => n,
                // only the stored object's verdict is final
                Err(_) if from_cache => continue,
                Err(e) => return Err(e),
            };
            if !new.is_object() {
                return Err(ApiError::bad_request(
                    "the request body must be a JSON object",
                ));
            }
            let new_rv = objects::resource_version(&new).to_string();
            if !new_rv.is_empty() && new_rv != kv.mod_revision.to_string() {
                parse_rv(&new_rv)?;
                return Err(ApiError::stale_resource_version(
                    &ri.group, &ri.plural, r.name,
                ));
            }
            self.prepare_update(r, &old, &mut new)?;
            let service =
                crate::services::is_service(ri) && r.subresource.is_empty() && !self.is_custom(ri);
            let plan = if service {
                Some(self.plan_service(&mut new, Some(&old)).await?)
            } else {
                None
            };
            if r.dry_run() {
                cache::set_rv(&mut new, kv.mod_revision);
                return Ok(Written {
                    obj: new,
                    code: 200,
                });
            }
            // unchanged objects are not written (no new resourceVersion), as upstream
            let mut cmp_new = new.clone();
            cache::set_rv(&mut cmp_new, kv.mod_revision);
            if cmp_new == old {
                return Ok(Written {
                    obj: old,
                    code: 200,
                });
            }
            let finished = objects::is_deleting(&new)
                && objects::finalizers(&new).is_empty()
                && !(ri.group.is_empty()
                    && ri.plural == "namespaces"
                    && namespace_finalizers_pending(&new))
                && objects::meta(&new)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    == 0;
            let op = if finished {
                Op::Delete { key: key.clone() }
            } else {
                Op::Put {
                    key: key.clone(),
                    value: encode_stored(&new),
                    lease: kv.lease,
                }
            };
            let mut compares = vec![Compare::ModRevision(key.clone(), kv.mod_revision)];
            let mut success = vec![op];
            if finished && crate::services::is_service(ri) && !self.is_custom(ri) {
                // the Service is gone: every value it held is free again
                success.extend(crate::services::release_all(&old));
            } else if let Some(plan) = &plan {
                let (c, o) = crate::services::claim_txn(plan, &new);
                compares.extend(c);
                success.extend(o);
            }
            let resp = self
                .store
                .txn(Txn {
                    compares,
                    success,
                    failure: vec![],
                })
                .await
                .map_err(store_err)?;
            if resp.succeeded {
                cache::set_rv(&mut new, resp.revision);
                return Ok(Written {
                    obj: new,
                    code: 200,
                });
            }
            // the object is unchanged: a value it asked for was taken meanwhile; assign again
            if plan.is_some()
                && resp
                    .current
                    .first()
                    .is_some_and(|c| c.as_ref().map(|kv| kv.mod_revision) == Some(kv.mod_revision))
            {
                continue;
            }
            if !precondition.is_empty() {
                return Err(ApiError::stale_resource_version(
                    &ri.group, &ri.plural, r.name,
                ));
            }
        }
        Err(ApiError::stale_resource_version(
            &ri.group, &ri.plural, r.name,
        ))
    }

    /// Carry server-owned fields over from the old object and validate the update.
    fn prepare_update(&self, r: &Req<'_>, old: &Value, new: &mut Value) -> Result<(), ApiError> {
        let ri = r.ri;
        match r.subresource {
            "status" => {
                // a status update changes only status
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                if let Some(mf) = objects::meta(new)
                    .and_then(|m| m.get("managedFields"))
                    .cloned()
                {
                    meta_mut(&mut merged).insert("managedFields".into(), mf);
                }
                // the apps workloads' status strategies keep only spec and labels: controllers
                // record annotations (e.g. deployment.kubernetes.io/revision) through /status
                if ri.group == "apps" {
                    match objects::meta(new)
                        .and_then(|m| m.get("annotations"))
                        .cloned()
                    {
                        Some(a) => {
                            meta_mut(&mut merged).insert("annotations".into(), a);
                        }
                        None => {
                            meta_mut(&mut merged).remove("annotations");
                        }
                    }
                }
                *new = merged;
            }
            "" => {
                check_kind(ri, new, &ri.kind)?;
                let body_name = objects::name(new).to_string();
                if !body_name.is_empty() && body_name != r.name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({})",
                        r.name
                    )));
                }
                if ri.group == "apiextensions.k8s.io" && ri.plural == "customresourcedefinitions" {
                    new["status"] = crd_status(new, old.get("status"));
                } else if has_status(ri) {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        // server-owned metadata: filled from the old object when absent (a changed value fails
        // validation as immutable), deletion fields always carried over
        let old_meta = objects::meta(old).cloned().unwrap_or_default();
        {
            let m = meta_mut(new);
            for f in ["name", "namespace", "uid", "creationTimestamp"] {
                if m.get(f).is_none_or(|v| v.is_null() || v == "") {
                    if let Some(v) = old_meta.get(f) {
                        m.insert(f.into(), v.clone());
                    }
                }
            }
            for f in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
        }
        if objects::resource_version(new).is_empty() {
            cache::set_rv(new, parse_rv(objects::resource_version(old)).unwrap_or(0));
        }
        let custom = self.is_custom(ri);
        let crd = self.crd_of(ri);
        if crate::services::is_service(ri) && !custom && r.subresource.is_empty() {
            // allocated values a PUT left out are kept, fields of the old type dropped
            apimachinery::defaults::service_prepare_for_update(new, old);
        }
        let causes = crate::admission::default_and_validate_update(
            ri,
            crd.as_deref(),
            r.subresource,
            new,
            old,
        );
        // only writes of the main resource move the generation (status strategies never do)
        if r.subresource.is_empty() || r.subresource == "scale" {
            if let Some(g) =
                apimachinery::meta::next_generation(&ri.group, &ri.kind, custom, old, new)
            {
                meta_mut(new).insert("generation".into(), json!(g));
            }
        }
        objects::normalize_meta(new);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&ri.group, &ri.kind, r.name, causes));
        }
        Ok(())
    }

    /// PATCH with any of the four patch types.
    pub async fn patch(&self, r: &Req<'_>, ty: BodyType, body: &[u8]) -> Result<Written, ApiError> {
        let ri = r.ri;
        let field_manager = r.query.get("fieldManager").cloned().unwrap_or_default();
        let force = r.query.get("force").is_some_and(|v| v == "true");
        let patch = crate::patch::Patch::parse(ty, body)?;
        let sub = r.subresource.to_string();
        let crd = self.crd_of(ri);
        let is_apply = ty == BodyType::ApplyPatch;
        let r = &Req {
            apply: is_apply,
            ..*r
        };
        let result = self
            .guaranteed_update(r, "", |old| {
                let pri = r.view.unwrap_or(ri);
                let cur = to_view(r.view, old);
                let mut new =
                    patch.apply(pri, crd.as_deref(), &cur, &field_manager, force, &sub)?;
                let unknown = crate::admission::prune(pri, crd.as_deref(), &mut new);
                crate::admission::field_validation(
                    pri,
                    r.query.get("fieldValidation").map(String::as_str),
                    &unknown,
                    &[],
                )?;
                let mut new = from_view(r.view, &new);
                // a patch that sets resourceVersion is a precondition
                if objects::resource_version(&new).is_empty() {
                    cache::set_rv(
                        &mut new,
                        parse_rv(objects::resource_version(old)).unwrap_or(0),
                    );
                }
                Ok(new)
            })
            .await;
        match result {
            Err(e)
                if e.reason == apimachinery::Reason::NotFound
                    && ty == BodyType::ApplyPatch
                    && r.subresource.is_empty() =>
            {
                // server-side apply creates missing objects
                let obj = patch.apply(
                    r.view.unwrap_or(ri),
                    crd.as_deref(),
                    &Value::Null,
                    &field_manager,
                    force,
                    "",
                )?;
                let mut obj = from_view(r.view, &obj);
                if objects::name(&obj).is_empty() {
                    meta_mut(&mut obj).insert("name".into(), Value::String(r.name.to_string()));
                }
                self.create(r, obj).await
            }
            other => other,
        }
    }

    /// DELETE of one object: graceful for pods, two-phase with finalizers.
    pub async fn delete(&self, r: &Req<'_>, options: &Value) -> Result<Written, ApiError> {
        let ri = r.ri;
        let key = r.key();
        let propagation = options
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| {
                options
                    .get("orphanDependents")
                    .and_then(Value::as_bool)
                    .map(|o| {
                        if o {
                            "Orphan".to_string()
                        } else {
                            "Background".to_string()
                        }
                    })
            })
            .unwrap_or_default();
        if !propagation.is_empty()
            && !matches!(propagation.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![FieldError::not_supported(
                    "propagationPolicy",
                    &json!(propagation),
                    &["Foreground", "Background", "Orphan"],
                )],
            ));
        }
        let grace_opt = options.get("gracePeriodSeconds").and_then(Value::as_i64);
        let pre_uid = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let pre_rv = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let dry_run = r.dry_run()
            || options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        for _ in 0..16 {
            let Some(kv) = self.store.get(&key).await.map_err(store_err)? else {
                return Err(ApiError::not_found(&ri.group, &ri.plural, r.name));
            };
            let old = cache::decode(&kv, kv.mod_revision)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            if !pre_uid.is_empty() && pre_uid != objects::uid(&old) {
                return Err(ApiError::conflict(&ri.group, &ri.plural, r.name, &format!(
                    "Precondition failed: UID in precondition: {pre_uid}, UID in object meta: {}", objects::uid(&old))));
            }
            if !pre_rv.is_empty() && pre_rv != kv.mod_revision.to_string() {
                return Err(ApiError::conflict(&ri.group, &ri.plural, r.name, &format!(
                    "Precondition failed: ResourceVersion in precondition: {pre_rv}, ResourceVersion in object meta: {}", kv.mod_revision)));
            }
            let mut new = old.clone();
            let mut finalizers = objects::finalizers(&old);
            match propagation.as_str() {
                "Orphan"
                    if !objects::is_deleting(&old) || finalizers.iter().any(|f| f == "orphan") =>
                {
                    if !finalizers.iter().any(|f| f == "orphan") {
                        finalizers.push("orphan".into());
                    }
                    finalizers.retain(|f| f != "foregroundDeletion");
                }
                "Foreground" => {
                    if !finalizers.iter().any(|f| f == "foregroundDeletion") {
                        finalizers.push("foregroundDeletion".into());
                    }
                    finalizers.retain(|f| f != "orphan");
                }
                "Background" => finalizers.retain(|f| f != "orphan" && f != "foregroundDeletion"),
                _ => {}
            }
            // graceful deletion (pods bound to a node)
            let mut grace = 0i64;
            if ri.group.is_empty() && ri.plural == "pods" {
                let bound = !old
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty();
                let phase = old
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let default = old
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30);
                grace = grace_opt.unwrap_or(default).max(0);
                if !bound || phase == "Succeeded" || phase == "Failed" {
                    grace = 0;
                }
                if let Some(cur) = objects::meta(&old)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64)
                {
                    if objects::is_deleting(&old) {
                        grace = grace.min(cur);
                    }
                }
            }
            let is_ns = ri.group.is_empty() && ri.plural == "namespaces";
            let immediate = finalizers.is_empty()
                && grace == 0
                && !(is_ns && namespace_finalizers_pending(&old));
            let txn_ops;
            let code;
            if immediate {
                txn_ops = if crate::services::is_service(ri) && !self.is_custom(ri) {
                    let mut ops = vec![Op::Delete { key: key.clone() }];
                    ops.extend(crate::services::release_all(&old));
                    ops
                } else {
                    vec![Op::Delete { key: key.clone() }]
                };
                code = 200;
            } else {
                objects::set_finalizers(&mut new, &finalizers);
                let m = meta_mut(&mut new);
                if !objects::is_deleting(&old) || grace > 0 {
                    let at = std::time::SystemTime::now() + Duration::from_secs(grace as u64);
                    if !m.contains_key("deletionTimestamp") || grace > 0 {
                        m.insert(
                            "deletionTimestamp".into(),
                            Value::String(objects::rfc3339(at)),
                        );
                    }
                }
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if self.tracks_generation(ri) && !objects::is_deleting(&old) {
                    let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
                    m.insert("generation".into(), json!(g + 1));
                }
                if is_ns {
                    new["status"]["phase"] = json!("Terminating");
                }
                txn_ops = vec![Op::Put {
                    key: key.clone(),
                    value: encode_stored(&new),
                    lease: kv.lease,
                }];
                code = if is_ns { 200 } else { 202 };
            }
            if dry_run {
                return Ok(Written {
                    obj: if immediate { old } else { new },
                    code,
                });
            }
            let resp = self
                .store
                .txn(Txn {
                    compares: vec![Compare::ModRevision(key.clone(), kv.mod_revision)],
                    success: txn_ops,
                    failure: vec![],
                })
                .await
                .map_err(store_err)?;
            if resp.succeeded {
                if immediate
                    && ri.group == "apiextensions.k8s.io"
                    && ri.plural == "customresourcedefinitions"
                {
                    self.purge_custom_resources(&old).await;
                }
                if immediate {
                    let mut gone = old;
                    cache::set_rv(&mut gone, resp.revision);
                    return Ok(Written {
                        obj: gone,
                        code: 200,
                    });
                }
                cache::set_rv(&mut new, resp.revision);
                return Ok(Written { obj: new, code });
            }
        }
        Err(ApiError::stale_resource_version(
            &ri.group, &ri.plural, r.name,
        ))
    }

    /// Remove every stored object of a deleted CRD (upstream's customresourcecleanup finalizer).
    async fn purge_custom_resources(&self, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("");
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("");
        if group.is_empty() || plural.is_empty() {
            return;
        }
        let prefix = format!("/registry/{group}/{plural}/");
        let Ok(resp) = self
            .store
            .range(store::RangeRequest {
                prefix,
                ..Default::default()
            })
            .await
        else {
            return;
        };
        for kv in resp.kvs {
            let txn = Txn {
                compares: vec![Compare::ModRevision(kv.key.clone(), kv.mod_revision)],
                success: vec![Op::Delete {
                    key: kv.key.clone(),
                }],
                failure: vec![],
            };
            if let Err(e) = self.store.txn(txn).await {
                tracing::warn!(key = %kv.key, error = %e, "could not delete a custom resource of a deleted CRD");
            }
        }
    }

    /// DELETE of a collection: deletes every object the selectors match.
    pub async fn delete_collection(&self, r: &Req<'_>, options: &Value) -> Result<Value, ApiError> {
        let filter = Filter::from_query(r.ri, r.query)?;
        self.cache
            .sync()
            .await
            .map_err(|e| ApiError::timeout(e.to_string()))?;
        let prefix = self.namespace_prefix(r.ri, r.namespace);
        let (objs, _) = self
            .cache
            .resource(&r.ri.key_prefix())
            .snapshot(&prefix, &self.cache.revision_rx());
        let mut deleted = Vec::new();
        for o in objs.iter().filter(|o| filter.matches(&o.attrs)) {
            let name = objects::name(&o.attrs).to_string();
            let ns = objects::namespace(&o.attrs).to_string();
            let sub = Req {
                namespace: &ns,
                name: &name,
                subresource: "",
                ..*r
            };
            match self.delete(&sub, options).await {
                Ok(w) => deleted.push(w.obj),
                Err(e) if e.reason == apimachinery::Reason::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": r.ri.list_kind(),
            "apiVersion": r.ri.api_version(),
            "metadata": {"resourceVersion": self.cache.revision().to_string()},
            "items": deleted,
        }))
    }

    /// GET /scale: the autoscaling/v1 Scale of a scalable resource.
    fn scale_paths(&self, ri: &ResourceInfo) -> ScalePaths {
        match self.lookup(&ri.group, &ri.version, &ri.plural) {
            Some((_, Some(crd))) => ScalePaths::from_crd(&crd, &ri.version),
            _ => ScalePaths::builtin(),
        }
    }

    pub async fn get_scale(&self, r: &Req<'_>) -> Result<Value, ApiError> {
        let obj = self.get_object(r).await?;
        Ok(scale_of(r.ri, &obj, &self.scale_paths(r.ri)))
    }

    /// PUT/PATCH /scale: sets spec.replicas.
    pub async fn update_scale(
        &self,
        r: &Req<'_>,
        ty: Option<BodyType>,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let ri = r.ri;
        let patch = match ty {
            Some(t) => Some(crate::patch::Patch::parse(t, body)?),
            None => None,
        };
        let body_obj = match ty {
            None => Some(crate::negotiate::decode_object(body, BodyType::Json)?),
            Some(_) => None,
        };
        let mut precondition = String::new();
        if let Some(b) = &body_obj {
            precondition = objects::resource_version(b).to_string();
        }
        let scale_ri = scale_resource_info();
        let paths = self.scale_paths(ri);
        let w = self
            .guaranteed_update(
                &Req {
                    subresource: "scale",
                    ..*r
                },
                &precondition,
                |old| {
                    let cur = scale_of(ri, old, &paths);
                    let want = match (&patch, &body_obj) {
                        (Some(p), _) => p.apply(&scale_ri, None, &cur, "scale", true, "")?,
                        (None, Some(b)) => b.clone(),
                        _ => cur.clone(),
                    };
                    let replicas = want
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    if replicas < 0 {
                        return Err(ApiError::invalid(
                            "autoscaling",
                            "Scale",
                            r.name,
                            vec![FieldError::invalid(
                                "spec.replicas",
                                &json!(replicas),
                                "must be greater than or equal to 0",
                            )],
                        ));
                    }
                    let mut new = old.clone();
                    set_pointer(&mut new, &paths.spec, json!(replicas));
                    if objects::resource_version(&want) != objects::resource_version(&cur)
                        && !objects::resource_version(&want).is_empty()
                    {
                        return Err(ApiError::stale_resource_version(
                            &ri.group, &ri.plural, r.name,
                        ));
                    }
                    Ok(new)
                },
            )
            .await?;
        Ok(scale_of(ri, &w.obj, &paths))
    }
}

/// A namespace's own finalizers (spec.finalizers, e.g. `kubernetes`) still to run.
fn namespace_finalizers_pending(ns: &Value) -> bool {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// The ResourceInfo used to patch Scale objects.
fn scale_resource_info() -> ResourceInfo {
    ResourceInfo {
        group: "autoscaling".into(),
        version: "v1".into(),
        kind: "Scale".into(),
        plural: "scale".into(),
        singular: "scale".into(),
        namespaced: true,
        verbs: vec![],
        short_names: vec![],
        categories: vec![],
        subresources: vec![],
        storage: apimachinery::registry::Storage::Virtual,
        storage_version: "v1".into(),
        storage_group: "autoscaling".into(),
    }
}

/// Build the autoscaling/v1 Scale of an object.
/// Set the value at a JSON pointer, creating objects on the way.
fn set_pointer(obj: &mut Value, ptr: &str, v: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        if i == parts.len() - 1 {
            cur[*p] = v;
            return;
        }
        cur = cur
            .as_object_mut()
            .expect("made an object")
            .entry(p.to_string())
            .or_insert_with(|| json!({}));
    }
}

pub fn scale_of(ri: &ResourceInfo, obj: &Value, paths: &ScalePaths) -> Value {
    let m = objects::meta(obj).cloned().unwrap_or_default();
    let mut meta = Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(f) {
            meta.insert(f.into(), v.clone());
        }
    }
    let selector = match paths.selector.as_deref().and_then(|p| obj.pointer(p)) {
        Some(Value::String(s)) => s.clone(),
        Some(sel) if ri.plural == "replicationcontrollers" => {
            let labels: Vec<String> = sel
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            labels.join(",")
        }
        Some(sel) => LabelSelector::from_label_selector(Some(sel))
            .map(|s| s.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    let mut status =
        json!({"replicas": obj.pointer(&paths.status).and_then(Value::as_i64).unwrap_or(0)});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": obj.pointer(&paths.spec).and_then(Value::as_i64).unwrap_or(0)},
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_roundtrip_and_reject_garbage() {
        let t = encode_continue(
            42,
            "/registry/core/pods/default/web-1",
            "/registry/core/pods/",
        );
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "default/web-1".to_string())
        );
        assert_eq!(decode_continue("!!!").unwrap_err().code(), 400);
    }

    #[test]
    fn scale_from_deployment() {
        let ri = apimachinery::registry::builtin_resources()
            .into_iter()
            .find(|r| r.plural == "deployments")
            .unwrap();
        let d = json!({"metadata": {"name": "web", "namespace": "d", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&ri, &d, &ScalePaths::builtin());
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}
