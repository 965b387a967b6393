//! Authentication and authorization of kubelet API requests: the client certificate's identity
//! (CN = user, O = groups, verified against the cluster CA by TLS) and the decision who may use
//! the node's API, with upstream's request attributes (verb from the method, subresource from
//! the path) for the 403 message.

/// The user a verified client certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The user the API server's kubelet client certificate names (kubeadm's convention).
pub const APISERVER_KUBELET_CLIENT: &str = "kube-apiserver-kubelet-client";
/// The group whose members may do anything.
pub const MASTERS_GROUP: &str = "system:masters";

/// The identity of a DER client certificate, if it has a common name.
pub fn user_from_cert(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Some(User { name, groups })
}

/// The authorization attributes of a request (upstream's kubelet auth: resource `nodes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub verb: &'static str,
    pub subresource: &'static str,
}

/// Upstream's mapping of a kubelet request to node subresources.
pub fn attributes(method: &str, path: &str) -> Attributes {
    let verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let subresource = match first {
        "stats" => "stats",
        "metrics" => "metrics",
        "logs" => "log",
        "configz" => "configz",
        "healthz" => "healthz",
        "pods" => "pods",
        _ => "proxy",
    };
    Attributes { verb, subresource }
}

/// Whether `user` may use the kubelet API.
pub fn allowed(user: &User) -> bool {
    user.name == APISERVER_KUBELET_CLIENT || user.groups.iter().any(|g| g == MASTERS_GROUP)
}

/// The body of a 403, as upstream's kubelet words it.
pub fn forbidden_message(user: &User, attrs: &Attributes) -> String {
    format!(
        "Forbidden (user={}, verb={}, resource=nodes, subresource={})",
        user.name, attrs.verb, attrs.subresource
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn who_may_use_the_api() {
        let cases = [
            (user(APISERVER_KUBELET_CLIENT, &[]), true),
            (
                user("kube-apiserver-kubelet-client", &["system:masters"]),
                true,
            ),
            (user("system:admin", &["system:masters"]), true),
            (user("bob", &["system:authenticated", "dev"]), false),
            (user("system:node:n1", &["system:nodes"]), false),
        ];
        for (u, want) in cases {
            assert_eq!(allowed(&u), want, "{u:?}");
        }
    }

    #[test]
    fn attributes_like_upstream() {
        let cases = [
            ("GET", "/stats/summary", "get", "stats"),
            ("GET", "/metrics/cadvisor", "get", "metrics"),
            ("GET", "/logs/syslog", "get", "log"),
            ("GET", "/pods", "get", "pods"),
            ("GET", "/healthz", "get", "healthz"),
            ("POST", "/exec/ns/p/c", "create", "proxy"),
            ("GET", "/containerLogs/ns/p/c", "get", "proxy"),
            ("DELETE", "/runningpods/", "delete", "proxy"),
        ];
        for (m, p, verb, sub) in cases {
            assert_eq!(
                attributes(m, p),
                Attributes {
                    verb,
                    subresource: sub
                },
                "{m} {p}"
            );
        }
        assert_eq!(
            forbidden_message(&user("bob", &[]), &attributes("GET", "/pods")),
            "Forbidden (user=bob, verb=get, resource=nodes, subresource=pods)"
        );
    }
}
