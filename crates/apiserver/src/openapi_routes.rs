//! Serving the OpenAPI v3 documents: the `/openapi/v3` index and one document per group
//! version, built-in ones from apimachinery (generated once) and custom ones from the CRDs.

use std::collections::BTreeSet;
use std::sync::Arc;

use apimachinery::openapi::{self, Document};
use apimachinery::ApiError;
use http::Response;
use serde_json::Value;

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
        let mut docs = openapi::builtin_documents();
        for (g, v) in custom_group_versions(&crds) {
            if let Some(d) = custom_document(&crds, &g, &v) {
                docs.push(d);
            }
        }
        let index = openapi::discovery_paths(docs.iter().map(|d| d.as_ref()));
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
    let mut r = Response::new(http_body_util::BodyExt::boxed_unsync(
        http_body_util::Full::new(bytes::Bytes::from(doc.bytes.clone())),
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
        http::HeaderValue::from_str(&format!("\"{}\"", doc.hash))
            .unwrap_or(http::HeaderValue::from_static("\"\"")),
    );
    Ok(r)
}
