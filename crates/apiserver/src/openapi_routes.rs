//! Serving the OpenAPI documents: v3 (the `/openapi/v3` index and one document per group
//! version, built-in ones from apimachinery, generated once, and custom ones from the CRDs) and
//! the single v2 document at `/openapi/v2` (JSON or gnostic protobuf, built on first request and
//! rebuilt when the CRDs change, with ETag / If-None-Match).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use apimachinery::openapi::{self, v2, Document};
use apimachinery::ApiError;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha512};

use crate::server::{json_response, Body};
use crate::Api;

fn not_found() -> ApiError {
    ApiError::new(
        apimachinery::Reason::NotFound,
        "the server could not find the requested resource",
    )
}

fn crd_values(api: &Api) -> Vec<Value> {
    api.crd_objects()
        .into_iter()
        .map(|o| (*o).clone())
        .collect()
}

/// The custom group versions served by CRDs: (group, version).
fn custom_group_versions(crds: &[Value]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for c in crds {
        for r in crate::discovery::crd_resources(c) {
            out.insert((r.group, r.version));
        }
    }
    out
}

fn custom_document(crds: &[Value], group: &str, version: &str) -> Option<Arc<Document>> {
    openapi::custom_resource_document(group, version, crds)
        .ok()
        .map(Arc::new)
}

pub fn serve(api: &Api, rest: &[&str]) -> Result<Response<Body>, ApiError> {
    let crds = crd_values(api);
    if rest.is_empty() {
        let mut docs = openapi::builtin_hashes();
        for (g, v) in custom_group_versions(&crds) {
            if let Some(d) = custom_document(&crds, &g, &v) {
                docs.push((d.path.clone(), d.hash.clone()));
            }
        }
        let index = openapi::discovery_paths(docs.iter().map(|(p, h)| (p.as_str(), h.as_str())));
        // the first index generates every built-in document to hash it; custom ones are built
        // each time
        release_free_heap();
        return Ok(json_response(200, &index, crate::negotiate::Format::Json));
    }
    let path = rest.join("/");
    let doc = match openapi::document(&path) {
        Some(d) => d,
        None => match rest {
            ["apis", g, v] => custom_document(&crds, g, v).ok_or_else(not_found)?,
            _ => return Err(not_found()),
        },
    };
    // documents are built per request (not kept: 5.6 MB for all); building one allocates far
    // more than its bytes
    release_free_heap();
    let etag = format!("\"{}\"", doc.hash);
    let body = Arc::try_unwrap(doc).map_or_else(|d| d.bytes.clone(), |d| d.bytes);
    let mut r = Response::new(http_body_util::BodyExt::boxed_unsync(
        http_body_util::Full::new(bytes::Bytes::from(body)),
    ));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // documents are addressed by content hash
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, immutable"),
    );
    r.headers_mut().insert(
        http::header::ETAG,
        http::HeaderValue::from_str(&etag).unwrap_or(http::HeaderValue::from_static("\"\"")),
    );
    Ok(r)
}

/// The v2 document, built lazily and kept until the CRDs change.
#[derive(Default)]
pub struct V2Cache {
    inner: Mutex<Option<Arc<V2Entry>>>,
}

struct V2Entry {
    /// fingerprint of the CRD specs the document was built from
    crds: Vec<u8>,
    protobuf: Bytes,
    /// the JSON form, kept once asked for (kubectl only asks for protobuf)
    json: std::sync::OnceLock<Bytes>,
    /// quoted, as sent in `ETag`
    etag: String,
}

impl V2Cache {
    /// The document for the current CRDs: the cached one, or a new build when the CRDs changed.
    fn get(&self, crds: &[Value]) -> Arc<V2Entry> {
        let fp = crd_fingerprint(crds);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = g.as_ref().filter(|e| e.crds == fp) {
            return e.clone();
        }
        // drop the stale document before building the next (peak memory)
        *g = None;
        let d = v2::build(crds);
        tracing::debug!(
            json_bytes = d.json.len(),
            protobuf_bytes = d.protobuf.len(),
            "built the openapi v2 document"
        );
        let e = Arc::new(V2Entry {
            crds: fp,
            protobuf: Bytes::from(d.protobuf),
            json: std::sync::OnceLock::new(),
            etag: format!("\"{}\"", d.etag),
        });
        drop(d.json);
        release_free_heap();
        *g = Some(e.clone());
        e
    }
}

impl V2Entry {
    /// The JSON form (rebuilt from the same CRDs on first request).
    fn json(&self, crds: &[Value]) -> Bytes {
        self.json
            .get_or_init(|| {
                let b = Bytes::from(v2::build_json(crds));
                release_free_heap();
                b
            })
            .clone()
    }
}

/// Gives freed heap pages back to the OS: building the v2 document is a burst of allocations
/// many times larger than what is kept, which glibc's allocator would otherwise hold on to.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the OS; it takes no pointers
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What the v2 document depends on: every served CRD's name and spec.
fn crd_fingerprint(crds: &[Value]) -> Vec<u8> {
    let mut keyed: Vec<(String, Vec<u8>)> = crds
        .iter()
        .map(|c| {
            let name = c
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let spec =
                serde_json::to_vec(c.get("spec").unwrap_or(&Value::Null)).unwrap_or_default();
            (name, spec)
        })
        .collect();
    keyed.sort();
    let mut h = Sha512::new();
    for (name, spec) in keyed {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((spec.len() as u64).to_le_bytes());
        h.update(&spec);
    }
    h.finalize().to_vec()
}

/// Which form of the v2 document an `Accept` header asks for (kube-openapi's negotiation: the
/// first acceptable clause by quality wins; no header means anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Form {
    Json,
    Protobuf,
}

/// The form to serve, `None` when nothing acceptable is offered (406).
pub fn negotiate_v2(accept: Option<&str>) -> Option<V2Form> {
    let accept = accept
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("*/*");
    let mut clauses: Vec<(f32, usize, &str)> = accept
        .split(',')
        .enumerate()
        .filter_map(|(i, c)| {
            let mut parts = c.split(';');
            let media = parts.next()?.trim();
            let mut q = 1.0f32;
            for p in parts {
                if let Some(v) = p.trim().strip_prefix("q=") {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            (q > 0.0).then_some((q, i, media))
        })
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, media) in clauses {
        let (t, sub) = media.split_once('/').unwrap_or((media, ""));
        if t != "application" && t != "*" {
            continue;
        }
        match sub {
            "json" | "*" => return Some(V2Form::Json),
            "com.github.proto-openapi.spec.v2@v1.0+protobuf"
            | "com.github.proto-openapi.spec.v2.v1.0+protobuf" => return Some(V2Form::Protobuf),
            _ => {}
        }
    }
    None
}

/// Whether an `If-None-Match` header matches the entity tag (weak comparison, as upstream's
/// `http.ServeContent`).
fn none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(h) = header else {
        return false;
    };
    h.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

/// `GET /openapi/v2`. A (re)build runs on the blocking pool, not on a request worker.
pub async fn serve_v2(api: &Arc<Api>, headers: &HeaderMap) -> Response<Body> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let mut r = Response::new(http_body_util::BodyExt::boxed_unsync(
        http_body_util::Full::new(Bytes::new()),
    ));
    r.headers_mut()
        .insert(http::header::VARY, HeaderValue::from_static("Accept"));
    let Some(form) = negotiate_v2(header(http::header::ACCEPT)) else {
        *r.status_mut() = StatusCode::NOT_ACCEPTABLE;
        return r;
    };
    let if_none_match = header(http::header::IF_NONE_MATCH).map(String::from);
    let api = api.clone();
    let got = tokio::task::spawn_blocking(move || {
        let crds = crd_values(&api);
        let doc = api.openapi_v2.get(&crds);
        if none_match(if_none_match.as_deref(), &doc.etag) {
            return (doc.etag.clone(), None);
        }
        let bytes = match form {
            V2Form::Json => doc.json(&crds),
            V2Form::Protobuf => doc.protobuf.clone(),
        };
        (doc.etag.clone(), Some(bytes))
    })
    .await;
    let Ok((etag, bytes)) = got else {
        tracing::error!("building the openapi v2 document failed");
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return r;
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(http::header::ETAG, v);
    }
    let Some(bytes) = bytes else {
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return r;
    };
    let content_type = match form {
        V2Form::Json => "application/json",
        V2Form::Protobuf => v2::PROTOBUF_MEDIA_TYPE,
    };
    *r.body_mut() = http_body_util::BodyExt::boxed_unsync(http_body_util::Full::new(bytes));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let cases = [
            (None, Some(V2Form::Json)),
            (Some(""), Some(V2Form::Json)),
            (Some("*/*"), Some(V2Form::Json)),
            (Some("application/json"), Some(V2Form::Json)),
            (
                Some("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
                Some(V2Form::Protobuf),
            ),
            (
                Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
                Some(V2Form::Protobuf),
            ),
            (
                Some("application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
                Some(V2Form::Protobuf),
            ),
            (
                Some("application/com.github.proto-openapi.spec.v2@v1.0+protobuf;q=0, application/json"),
                Some(V2Form::Json),
            ),
            (Some("text/html"), None),
            (Some("application/yaml"), None),
            (Some("application/*"), Some(V2Form::Json)),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate_v2(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn if_none_match() {
        let etag = "\"ABC\"";
        assert!(none_match(Some("\"ABC\""), etag));
        assert!(none_match(Some("\"X\", W/\"ABC\""), etag));
        assert!(none_match(Some("*"), etag));
        assert!(!none_match(Some("\"ABD\""), etag));
        assert!(!none_match(None, etag));
    }

    #[test]
    fn fingerprint_follows_crd_specs_only() {
        let a = serde_json::json!({"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"group": "g"}});
        let mut a2 = a.clone();
        a2["metadata"]["resourceVersion"] = "2".into();
        a2["status"] = serde_json::json!({"conditions": []});
        assert_eq!(
            crd_fingerprint(std::slice::from_ref(&a)),
            crd_fingerprint(&[a2])
        );
        let mut a3 = a.clone();
        a3["spec"]["group"] = "h".into();
        assert_ne!(
            crd_fingerprint(std::slice::from_ref(&a)),
            crd_fingerprint(&[a3])
        );
        let b = serde_json::json!({"metadata": {"name": "b"}, "spec": {}});
        assert_eq!(
            crd_fingerprint(&[a.clone(), b.clone()]),
            crd_fingerprint(&[b, a.clone()])
        );
        assert_ne!(crd_fingerprint(&[a]), crd_fingerprint(&[]));
    }
}
