//! The HTTPS edge: TLS with optional client certificates, authentication, routing to
//! discovery and resource handlers, and the one place where errors become a Status response.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::registry::{ResourceInfo, Storage};
use apimachinery::ApiError;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};

use crate::auth::{Attributes, Decision, UserInfo};
use crate::cache::CachedObject;
use crate::discovery;
use crate::handlers::{self, Filter, Req};
use crate::negotiate::{self, As, BodyType, Format};
use crate::render::{self, Include};
use crate::request::{classify, parse_query, ResourceRequest, Target, Verb};
use crate::watch::{Render, WatchParams};
use crate::Api;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Request bodies above this size get 413 (upstream's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

fn respond(code: u16, body: Vec<u8>, content_type: &str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    r
}

pub fn json_response(code: u16, v: &Value, format: Format) -> Response<Body> {
    let (bytes, ct) = negotiate::encode(v, format);
    respond(code, bytes, ct)
}

/// The single place where an error becomes an HTTP response.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code(), &e.to_status(), Format::Json);
    if let Some(s) = e.retry_after_seconds {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn text(code: u16, s: &str) -> Response<Body> {
    respond(code, s.as_bytes().to_vec(), "text/plain; charset=utf-8")
}

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0+oxkube-", env!("CARGO_PKG_VERSION")),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-11-27T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("linux/{}", if cfg!(target_arch = "x86_64") { "amd64" } else if cfg!(target_arch = "aarch64") { "arm64" } else { std::env::consts::ARCH }),
    })
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Handle one HTTP request from a connection whose verified client certificate names `peer`.
pub async fn handle(
    api: Arc<Api>,
    peer: Option<Arc<UserInfo>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let resp = match route(&api, peer, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    Ok(resp)
}

/// Bodies above the limit are still read (and dropped) up to this size, so that the client
/// gets the 413 instead of a broken connection; larger ones close the connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

async fn read_body(mut body: Incoming) -> Result<Bytes, ApiError> {
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("error reading request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

async fn route(
    api: &Arc<Api>,
    peer: Option<Arc<UserInfo>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" | "/healthz/ping" | "/livez/ping" | "/readyz/ping" => {
            return Ok(text(200, "ok"));
        }
        "/version" | "/version/" => return Ok(json_response(200, &version_info(), Format::Json)),
        crate::join::CACERTS_PATH if method == http::Method::GET => {
            // unauthenticated: the joining agent checks it against its token's CA hash
            return match &api.join {
                Some(j) => Ok(respond(200, j.ca_pem().as_bytes().to_vec(), "text/plain")),
                None => Err(not_found_path()),
            };
        }
        crate::join::NODE_IDENTITY_PATH if method == http::Method::POST => {
            let Some(j) = api.join.clone() else {
                return Err(not_found_path());
            };
            if !j.authorized(header(req.headers(), "authorization")) {
                return Err(ApiError::unauthorized());
            }
            let body = read_body(req.into_body()).await?;
            let ask: crate::join::NodeIdentityRequest =
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!("invalid node identity request: {e}"))
                })?;
            let out = j.issue(&ask)?;
            return Ok(json_response(
                200,
                &serde_json::to_value(out).unwrap_or_default(),
                Format::Json,
            ));
        }
        _ => {}
    }
    let authorization = header(req.headers(), "authorization");
    let mut user = api
        .authn
        .authenticate_with(peer.as_deref().cloned(), authorization);
    let jwt = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| apimachinery::satoken::looks_like_jwt(t.trim()));
    if user.is_none() && jwt {
        // the objects a service account token names may be newer than the watch cache:
        // read-your-writes once before refusing
        if api.cache.sync().await.is_ok() {
            user = api
                .authn
                .authenticate_with(peer.as_deref().cloned(), authorization);
        }
    }
    let user = user.ok_or_else(ApiError::unauthorized)?;
    let watch_param = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match classify(method.as_str(), &path, watch_param) {
        Target::NonResource(p) => {
            authorize(
                api,
                &Attributes {
                    user: user.clone(),
                    verb: method.as_str().to_ascii_lowercase(),
                    path: p.clone(),
                    ..Default::default()
                },
            )?;
            non_resource(api, &p, req.headers()).await
        }
        Target::Resource(rr) => resource(api, user, rr, query, req).await,
    }
}

fn authorize(api: &Api, attrs: &Attributes) -> Result<(), ApiError> {
    match api.authz.authorize(attrs) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => Err(forbidden(attrs, &reason)),
        Decision::NoOpinion => Err(forbidden(attrs, "")),
    }
}

fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let tail = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    if !a.resource_request {
        return ApiError::forbidden_msg(format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"{tail}",
            a.user.username, a.verb, a.path
        ));
    }
    let res = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let g = if a.group.is_empty() {
        "\"\"".to_string()
    } else {
        format!("\"{}\"", a.group)
    };
    ApiError::forbidden(
        &a.group,
        &a.resource,
        &a.name,
        &format!(
            "User \"{}\" cannot {} resource \"{res}\" in API group {g} {scope}{tail}",
            a.user.username, a.verb
        ),
    )
}

async fn non_resource(
    api: &Arc<Api>,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    let p = path.trim_end_matches('/');
    let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    let accept = header(headers, "accept");
    let all = api.all_resources();
    let table = discovery::group_table(&all, api.catalogue.group_versions());
    let aggregated_response = |v: &str, core: bool| {
        let body = discovery::aggregated(&table, core, &format!("apidiscovery.k8s.io/{v}"));
        let (bytes, _) = negotiate::encode(&body, Format::Json);
        respond(
            200,
            bytes,
            &format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
        )
    };
    match parts.as_slice() {
        ["api"] => {
            if let Some(v) = discovery::wants_aggregated(accept) {
                return Ok(aggregated_response(v, true));
            }
            Ok(json_response(
                200,
                &json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": api.server_address}],
                }),
                Format::Json,
            ))
        }
        ["apis"] => {
            if let Some(v) = discovery::wants_aggregated(accept) {
                return Ok(aggregated_response(v, false));
            }
            let groups: Vec<Value> = table
                .iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, vs)| discovery::group_entry(g, vs))
                .collect();
            Ok(json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                Format::Json,
            ))
        }
        ["api", "v1"] => {
            let rs: Vec<&ResourceInfo> = all
                .iter()
                .filter(|r| r.group.is_empty() && r.version == "v1")
                .collect();
            Ok(json_response(
                200,
                &discovery::resource_list("v1", &rs),
                Format::Json,
            ))
        }
        ["apis", g] => match table.iter().find(|(name, _)| name == g) {
            Some((name, vs)) => {
                let mut e = discovery::group_entry(name, vs);
                e["kind"] = json!("APIGroup");
                e["apiVersion"] = json!("v1");
                Ok(json_response(200, &e, Format::Json))
            }
            None => Err(not_found_path()),
        },
        ["apis", g, v] => {
            let rs: Vec<&ResourceInfo> = all
                .iter()
                .filter(|r| r.group == *g && r.version == *v)
                .collect();
            if rs.is_empty() {
                return Err(not_found_path());
            }
            Ok(json_response(
                200,
                &discovery::resource_list(&format!("{g}/{v}"), &rs),
                Format::Json,
            ))
        }
        ["openapi", "v3", rest @ ..] => {
            // documents are built per request: off the async workers
            let api = api.clone();
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            tokio::task::spawn_blocking(move || {
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                crate::openapi_routes::serve(&api, &rest)
            })
            .await
            .map_err(|e| ApiError::internal(format!("building the openapi document: {e}")))?
        }
        ["openapi", "v2"] => Ok(crate::openapi_routes::serve_v2(api, headers).await),
        [".well-known", "openid-configuration"] => match &api.tokens {
            Some(t) => Ok(json_response(
                200,
                &t.openid_configuration(&api.server_address),
                Format::Json,
            )),
            None => Err(not_found_path()),
        },
        ["openid", "v1", "jwks"] => match &api.tokens {
            Some(t) => {
                let (bytes, _) = negotiate::encode(&t.jwks(), Format::Json);
                Ok(respond(200, bytes, "application/jwk-set+json"))
            }
            None => Err(not_found_path()),
        },
        _ => Err(not_found_path()),
    }
}

fn not_found_path() -> ApiError {
    let mut e = ApiError::new(
        apimachinery::Reason::NotFound,
        "the server could not find the requested resource",
    );
    e.kind = None;
    e
}

fn bool_param(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true" || v == "1")
}

async fn resource(
    api: &Arc<Api>,
    user: UserInfo,
    rr: ResourceRequest,
    query: HashMap<String, String>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let Some((view_ri, crd)) = api.lookup(&rr.group, &rr.version, &rr.resource) else {
        return Err(not_found_path());
    };
    // resources served in a version other than their storage form are converted at this edge
    let converted =
        apimachinery::conversion::needs_conversion(&view_ri.group, &view_ri.version, &view_ri.kind);
    let ri = if converted {
        api.storage_info(&view_ri)
    } else {
        view_ri.clone()
    };
    let view = converted.then_some(&view_ri);
    if !ri.namespaced && !rr.namespace.is_empty() && !(ri.plural == "namespaces") {
        return Err(not_found_path());
    }
    if !rr.subresource.is_empty() && ri.subresource(&rr.subresource).is_none() {
        return Err(not_found_path());
    }
    // a namespaced resource addressed without a namespace only supports list/watch across all
    let namespace = if ri.namespaced {
        rr.namespace.clone()
    } else {
        String::new()
    };
    if ri.namespaced
        && namespace.is_empty()
        && !matches!(rr.verb, Verb::List | Verb::Watch)
        && ri.storage == Storage::Stored
    {
        return Err(not_found_path());
    }
    authorize(
        api,
        &Attributes {
            user: user.clone(),
            verb: rr.verb.as_str().to_string(),
            namespace: namespace.clone(),
            group: rr.group.clone(),
            version: rr.version.clone(),
            resource: rr.resource.clone(),
            subresource: rr.subresource.clone(),
            name: rr.name.clone(),
            path: String::new(),
            resource_request: true,
        },
    )?;
    let verb_name = rr.verb.as_str();
    let allowed = if rr.subresource.is_empty() {
        ri.has_verb(verb_name)
    } else {
        let s = ri.subresource(&rr.subresource).expect("checked above");
        s.verbs.contains(&verb_name)
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(
            verb_name, &ri.group, &ri.plural,
        ));
    }
    if crd.is_none()
        && ri.group.is_empty()
        && matches!(
            rr.subresource.as_str(),
            "log" | "exec" | "attach" | "portforward" | "proxy"
        )
    {
        return crate::connect::serve(api, &ri, &rr, req).await;
    }
    let table_ok =
        matches!(rr.verb, Verb::Get | Verb::List | Verb::Watch) && rr.subresource.is_empty();
    let accept = negotiate::negotiate(header(req.headers(), "accept"), table_ok)?;
    let content_type = header(req.headers(), "content-type").map(String::from);
    let req_headers_ua = req.headers().clone();
    let body = if matches!(
        rr.verb,
        Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
    ) {
        read_body(req.into_body()).await?
    } else {
        Bytes::new()
    };
    let manager = field_manager(&query, header(&req_headers_ua, "user-agent"));
    let r = Req {
        ri: &ri,
        namespace: &namespace,
        name: &rr.name,
        subresource: &rr.subresource,
        query: &query,
        username: &user.username,
        manager: &manager,
        apply: false,
        view,
    };
    if ri.storage == Storage::Virtual {
        if rr.verb != Verb::Create {
            return Err(ApiError::method_not_allowed(
                verb_name, &ri.group, &ri.plural,
            ));
        }
        let obj = decode_body(&body, content_type.as_deref(), &ri)?;
        let out = crate::reviews::create(api, &ri, &namespace, &user, obj)?;
        return Ok(json_response(201, &out, accept.format));
    }
    let include = Include::from_query(query.get("includeObject"));
    let crd_ref = crd.as_deref();
    let mut warnings: Vec<String> = Vec::new();
    // a whole object in the request's version: decoded, checked per fieldValidation, and
    // converted to its storage form
    let decode_full = |warnings: &mut Vec<String>| -> Result<Value, ApiError> {
        let mut obj = decode_body(&body, content_type.as_deref(), &view_ri)?;
        warnings.extend(check_fields(
            &view_ri,
            crd_ref,
            &query,
            &body,
            content_type.as_deref(),
            &mut obj,
        )?);
        Ok(handlers::from_view(view, &obj))
    };
    let resp = match (rr.verb, rr.subresource.as_str()) {
        (Verb::Get, "" | "status") => {
            let obj = handlers::to_view(view, &api.get_object(&r).await?);
            json_response(
                200,
                &render::object(&ri, accept.as_, &obj, include, crd_ref),
                accept.format,
            )
        }
        (Verb::Get, "scale") => json_response(200, &api.get_scale(&r).await?, accept.format),
        (Verb::List, "") => {
            let filter = Filter::from_query(&view_ri, &query)?;
            let mut l = api.list(&r, &filter).await?;
            if converted {
                for it in l.items.iter_mut() {
                    *it = Arc::new(CachedObject::new(
                        it.key.clone(),
                        it.rv,
                        Arc::new(handlers::to_view(view, &it.obj())),
                    ));
                }
            }
            if accept.as_ == As::Object && accept.format == Format::Json {
                let bytes = render::list_json_bytes(
                    &view_ri,
                    &l.items,
                    &l.rv.to_string(),
                    l.continue_token.as_deref(),
                    l.remaining,
                );
                return Ok(respond(200, bytes, "application/json"));
            }
            let out = render::list(
                &view_ri,
                accept.as_,
                &l.items,
                &l.rv.to_string(),
                l.continue_token.as_deref(),
                l.remaining,
                include,
                crd_ref,
            );
            json_response(200, &out, accept.format)
        }
        (Verb::Watch, "") => {
            return watch(
                api,
                ri.clone(),
                view_ri.clone(),
                namespace.clone(),
                &rr,
                &query,
                accept,
                include,
                crd.clone(),
            )
        }
        (Verb::Create, "") => {
            let w = api.create(&r, decode_full(&mut warnings)?).await?;
            json_response(w.code, &handlers::to_view(view, &w.obj), accept.format)
        }
        (Verb::Create, "binding") => {
            let obj = decode_body(&body, content_type.as_deref(), &ri)?;
            json_response(
                201,
                &crate::subresources::bind(api, &r, obj).await?,
                accept.format,
            )
        }
        (Verb::Create, "token") => {
            let obj = decode_body(&body, content_type.as_deref(), &ri)?;
            json_response(
                201,
                &crate::subresources::token_request(api, &r, obj).await?,
                accept.format,
            )
        }
        (Verb::Create, "eviction") => {
            let obj = decode_body(&body, content_type.as_deref(), &ri)?;
            json_response(
                201,
                &crate::subresources::evict(api, &r, obj).await?,
                accept.format,
            )
        }
        (Verb::Update, "" | "status") => {
            let w = api.update(&r, decode_full(&mut warnings)?).await?;
            json_response(w.code, &handlers::to_view(view, &w.obj), accept.format)
        }
        (Verb::Update, "finalize") => {
            let obj = decode_body(&body, content_type.as_deref(), &ri)?;
            json_response(
                200,
                &crate::subresources::finalize(api, &r, obj).await?,
                accept.format,
            )
        }
        (Verb::Update, "scale") => json_response(
            200,
            &api.update_scale(&r, None, &body).await?,
            accept.format,
        ),
        (Verb::Patch, "scale") => {
            let ty = negotiate::body_type(content_type.as_deref())?;
            json_response(
                200,
                &api.update_scale(&r, Some(ty), &body).await?,
                accept.format,
            )
        }
        (Verb::Patch, "" | "status") => {
            let ty = negotiate::body_type(content_type.as_deref())?;
            if ty == BodyType::StrategicMergePatch && crd.is_some() {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json",
                ));
            }
            let w = api.patch(&r, ty, &body).await?;
            json_response(w.code, &handlers::to_view(view, &w.obj), accept.format)
        }
        (Verb::Delete, "") => {
            let opts = delete_options(&body, &query)?;
            let w = api.delete(&r, &opts).await?;
            if w.code == 200 && !returns_deleted_object(&ri) && !crate::objects::is_deleting(&w.obj)
            {
                let status = apimachinery::status::success_status(
                    &ri.group,
                    &ri.plural,
                    &rr.name,
                    crate::objects::uid(&w.obj),
                );
                json_response(200, &status, accept.format)
            } else {
                json_response(w.code, &handlers::to_view(view, &w.obj), accept.format)
            }
        }
        (Verb::DeleteCollection, "") => {
            let opts = delete_options(&body, &query)?;
            json_response(200, &api.delete_collection(&r, &opts).await?, accept.format)
        }
        _ => return Err(not_found_path()),
    };
    if ri.group == "scheduling.k8s.io"
        && ri.plural == "priorityclasses"
        && matches!(
            rr.verb,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    {
        api.note_priority_class_write().await;
    }
    let mut resp = resp;
    for w in warnings {
        let quoted = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
            resp.headers_mut().append("warning", v);
        }
    }
    Ok(resp)
}

/// The field manager of a write: the `fieldManager` parameter, else derived from the
/// User-Agent as upstream does (the part before the first '/').
fn field_manager(query: &HashMap<String, String>, user_agent: Option<&str>) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let ua = user_agent.unwrap_or("unknown");
    let prefix = ua.split('/').next().unwrap_or(ua);
    prefix.chars().take(128).collect()
}

/// Resources whose DELETE returns the deleted object rather than a Status (upstream's
/// `ReturnDeletedObject`).
fn returns_deleted_object(ri: &ResourceInfo) -> bool {
    ri.group.is_empty()
        && matches!(
            ri.plural.as_str(),
            "pods"
                | "namespaces"
                | "services"
                | "persistentvolumes"
                | "persistentvolumeclaims"
                | "nodes"
                | "serviceaccounts"
                | "replicationcontrollers"
        )
        || matches!(
            ri.group.as_str(),
            "apps"
                | "batch"
                | "autoscaling"
                | "policy"
                | "networking.k8s.io"
                | "apiextensions.k8s.io"
        )
        || ri.subresources.is_empty()
            && !ri.group.is_empty()
            && !matches!(
                ri.group.as_str(),
                "rbac.authorization.k8s.io"
                    | "coordination.k8s.io"
                    | "discovery.k8s.io"
                    | "events.k8s.io"
                    | "storage.k8s.io"
                    | "scheduling.k8s.io"
            )
}

fn delete_options(body: &Bytes, query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let mut opts = if body.is_empty() {
        json!({})
    } else {
        negotiate::decode_object(body, BodyType::Json)?
    };
    if !opts.is_object() {
        return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
    }
    if let Some(g) = query.get("gracePeriodSeconds") {
        let g: i64 = g
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {g}")))?;
        opts["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = query.get("propagationPolicy") {
        opts["propagationPolicy"] = json!(p);
    }
    if let Some(o) = query.get("orphanDependents") {
        opts["orphanDependents"] = json!(o == "true");
    }
    if query.get("dryRun").is_some_and(|d| d == "All") {
        opts["dryRun"] = json!(["All"]);
    }
    Ok(opts)
}

/// Prune unknown fields and find duplicate ones, then apply the `fieldValidation` directive.
fn check_fields(
    ri: &ResourceInfo,
    crd: Option<&Value>,
    query: &HashMap<String, String>,
    body: &Bytes,
    content_type: Option<&str>,
    obj: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let duplicates = match negotiate::body_type(content_type)? {
        BodyType::Json => apimachinery::schema::duplicate_fields(body),
        BodyType::Yaml => apimachinery::schema::duplicate_fields_yaml(body),
        _ => Vec::new(),
    };
    let unknown = crate::admission::prune(ri, crd, obj);
    crate::admission::field_validation(
        ri,
        query.get("fieldValidation").map(String::as_str),
        &unknown,
        &duplicates,
    )
}

fn decode_body(
    body: &Bytes,
    content_type: Option<&str>,
    ri: &ResourceInfo,
) -> Result<Value, ApiError> {
    let ty = negotiate::body_type(content_type)?;
    let v = match ty {
        BodyType::Protobuf => crate::protobuf::decode(body, ri)?,
        BodyType::Json | BodyType::Yaml => negotiate::decode_object(body, ty)?,
        _ => return Err(ApiError::unsupported_media_type(content_type.unwrap_or(""))),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn watch(
    api: &Arc<Api>,
    ri: ResourceInfo,
    view_ri: ResourceInfo,
    namespace: String,
    rr: &ResourceRequest,
    query: &HashMap<String, String>,
    accept: negotiate::Accept,
    include: Include,
    crd: Option<Arc<Value>>,
) -> Result<Response<Body>, ApiError> {
    let mut filter_query = query.clone();
    if !rr.name.is_empty() {
        // GET /watch/<resource>/<name> watches one object
        let sel = match query.get("fieldSelector").filter(|s| !s.is_empty()) {
            Some(s) => format!("{s},metadata.name={}", rr.name),
            None => format!("metadata.name={}", rr.name),
        };
        filter_query.insert("fieldSelector".into(), sel);
    }
    let filter = Filter::from_query(&view_ri, &filter_query)?;
    let rv = match query.get("resourceVersion").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
        None => None,
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {t}")))?,
        ),
        None => Duration::from_secs(1800),
    };
    let send_initial = bool_param(query, "sendInitialEvents");
    if send_initial && query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![apimachinery::FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    let params = WatchParams {
        rv,
        timeout,
        bookmarks: bool_param(query, "allowWatchBookmarks"),
        send_initial_events: send_initial,
        as_: accept.as_,
    };
    let ri2 = ri.clone();
    let as_ = accept.as_;
    let converted = view_ri != ri;
    let render: Render = match (as_, accept.format) {
        (As::Object, Format::Json) if !converted => None,
        (As::Object, _) => Some(Arc::new(move |o: &Value| {
            handlers::to_view(Some(&view_ri), o)
        })),
        _ => Some(Arc::new(move |o: &Value| {
            render::object(&ri2, as_, o, include, crd.as_deref())
        })),
    };
    let rx = api.start_watch(ri, namespace, filter, params, render)?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    let ct = match accept.format {
        Format::Json => "application/json",
        Format::Yaml => "application/yaml",
    };
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(resp)
}
