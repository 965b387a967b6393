//! Request classification: turns a method, path and query into the API request it names
//! (group, version, namespace, resource, name, subresource, verb), as upstream's RequestInfo does.

use std::collections::HashMap;

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A resource request under /api/v1 or /apis/<group>/<version>.
    Resource(ResourceRequest),
    /// Discovery or another non-resource path (/version, /healthz, /api, /apis/apps, ...).
    NonResource(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    pub group: String,
    pub version: String,
    /// Empty for cluster-scoped requests and for lists across all namespaces.
    pub namespace: String,
    pub resource: String,
    pub name: String,
    pub subresource: String,
    pub verb: Verb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// A verb the method does not map to (e.g. HEAD, OPTIONS).
    Other,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Other => "other",
        }
    }
}

/// Subresources of namespaces that follow the namespace name directly.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parse a query string into a map (last value wins), percent-decoding keys and values.
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(q) = q {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.insert(percent_decode(k), percent_decode(v));
        }
    }
    out
}

/// Decode `%XX` escapes and `+` (as a space, per form encoding).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Classify a request. `watch_param` is the value of the `watch` query parameter.
pub fn classify(method: &str, path: &str, watch_param: bool) -> Target {
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    let (group, version, rest) = match parts.first().copied() {
        Some("api") if parts.len() >= 3 => ("", parts[1], parts.split_off(2)),
        Some("apis") if parts.len() >= 4 => (parts[1], parts[2], parts.split_off(3)),
        _ => return Target::NonResource(path.to_string()),
    };
    let mut rest = rest;
    let mut watch = watch_param;
    if rest.first() == Some(&"watch") {
        watch = true;
        rest.remove(0);
    }
    if rest.is_empty() {
        return Target::NonResource(path.to_string());
    }
    let mut namespace = String::new();
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = rest[1].to_string();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = rest.split_off(2);
        }
    }
    let resource = rest[0].to_string();
    let name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    let subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    if rest.len() > 3 && subresource != "proxy" {
        return Target::NonResource(path.to_string());
    }
    let verb = match method {
        "GET" | "HEAD" => {
            if watch {
                Verb::Watch
            } else if name.is_empty() {
                Verb::List
            } else {
                Verb::Get
            }
        }
        "POST" => Verb::Create,
        "PUT" => Verb::Update,
        "PATCH" => Verb::Patch,
        "DELETE" => {
            if name.is_empty() {
                Verb::DeleteCollection
            } else {
                Verb::Delete
            }
        }
        _ => Verb::Other,
    };
    Target::Resource(ResourceRequest {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource,
        name,
        subresource,
        verb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(method: &str, path: &str) -> ResourceRequest {
        match classify(method, path, false) {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn classifies_like_upstream() {
        let cases: &[(&str, &str, &str, &str, &str, &str, &str, Verb)] = &[
            ("GET", "/api/v1/pods", "", "v1", "", "pods", "", Verb::List),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                "",
                "v1",
                "default",
                "pods",
                "",
                Verb::List,
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/p1",
                "",
                "v1",
                "default",
                "pods",
                "p1",
                Verb::Get,
            ),
            (
                "PUT",
                "/api/v1/namespaces/default/pods/p1/status",
                "",
                "v1",
                "default",
                "pods",
                "p1",
                Verb::Update,
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system",
                "",
                "v1",
                "kube-system",
                "namespaces",
                "kube-system",
                Verb::Get,
            ),
            (
                "PUT",
                "/api/v1/namespaces/ns1/finalize",
                "",
                "v1",
                "ns1",
                "namespaces",
                "ns1",
                Verb::Update,
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/a/deployments",
                "apps",
                "v1",
                "a",
                "deployments",
                "",
                Verb::DeleteCollection,
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/a/deployments/d",
                "apps",
                "v1",
                "a",
                "deployments",
                "d",
                Verb::Delete,
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/a/deployments",
                "apps",
                "v1",
                "a",
                "deployments",
                "",
                Verb::Create,
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                "apps",
                "v1",
                "a",
                "deployments",
                "d",
                Verb::Patch,
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/a/pods",
                "",
                "v1",
                "a",
                "pods",
                "",
                Verb::Watch,
            ),
            (
                "GET",
                "/api/v1/nodes/n1",
                "",
                "v1",
                "",
                "nodes",
                "n1",
                Verb::Get,
            ),
        ];
        for (m, p, g, v, ns, res, name, verb) in cases {
            let r = rr(m, p);
            assert_eq!((r.group.as_str(), r.version.as_str()), (*g, *v), "{p}");
            assert_eq!(r.namespace, *ns, "{p}");
            assert_eq!(r.resource, *res, "{p}");
            assert_eq!(r.name, *name, "{p}");
            assert_eq!(r.verb, *verb, "{p}");
        }
        assert_eq!(
            rr("PUT", "/api/v1/namespaces/ns1/finalize").subresource,
            "finalize"
        );
        assert_eq!(
            rr("GET", "/apis/apps/v1/namespaces/a/deployments/d/scale").subresource,
            "scale"
        );
    }

    #[test]
    fn watch_param_and_non_resource_paths() {
        assert_eq!(
            match classify("GET", "/api/v1/namespaces/a/pods", true) {
                Target::Resource(r) => r.verb,
                _ => Verb::Other,
            },
            Verb::Watch
        );
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/healthz",
        ] {
            assert!(
                matches!(classify("GET", p, false), Target::NonResource(_)),
                "{p}"
            );
        }
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500&watch",
        ));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "500");
        assert_eq!(q["watch"], "");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }
}
