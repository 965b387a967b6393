//! Connect subresources proxied to kubelets: `pods/log` (streamed), `pods/exec`, `pods/attach`,
//! `pods/portforward` (upgraded connections piped both ways unchanged), `nodes/proxy` (any path,
//! any method) and `pods/proxy` (to the pod IP). The pod's node gives the kubelet address (node
//! status addresses, InternalIP first; port from status.daemonEndpoints.kubeletEndpoint.Port);
//! the API server dials it over TLS with its kubelet-client certificate and verifies the
//! kubelet's serving certificate against the cluster CA.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::registry::ResourceInfo;
use apimachinery::{ApiError, FieldError, Reason};
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use relay::is_upgrade;

use crate::handlers::Req;
use crate::pki::CertPair;
use crate::request::ResourceRequest;
use crate::server::Body;
use crate::Api;

/// The default kubelet port when a node does not publish one.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("kubelet client tls: {0}")]
    Tls(String),
}

/// How the API server reaches kubelets: TLS with its kubelet-client certificate, kubelet
/// serving certificates verified against the cluster CA.
#[derive(Clone)]
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

impl KubeletClient {
    pub fn new(ca_pem: &str, client: &CertPair) -> Result<Self, ConnectError> {
        let tls = |e: &dyn std::fmt::Display| ConnectError::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        let certs: Vec<_> = rustls_pemfile::certs(&mut client.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
        let key = rustls_pemfile::private_key(&mut client.key_pem.as_bytes())
            .map_err(|e| tls(&e))?
            .ok_or_else(|| ConnectError::Tls("kubelet client key missing".into()))?;
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| tls(&e))?;
        // upgrades (exec, attach, port-forward) are HTTP/1.1
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient { tls: Arc::new(cfg) })
    }

    /// A TLS connection to a kubelet at `host:port`, its certificate checked for `host`.
    async fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("dial tcp {}: i/o timeout", join_host_port(host, port)))?
            .map_err(|e| format!("dial tcp {}: {e}", join_host_port(host, port)))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("invalid kubelet host {host:?}: {e}"))?;
        let conn = tokio_rustls::TlsConnector::from(self.tls.clone());
        tokio::time::timeout(DIAL_TIMEOUT, conn.connect(name, tcp))
            .await
            .map_err(|_| format!("tls handshake with {}: timeout", join_host_port(host, port)))?
            .map_err(|e| format!("tls handshake with {}: {e}", join_host_port(host, port)))
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The kubelet endpoint of a Node object: the first address by type preference and the
/// published kubelet port.
pub fn kubelet_endpoint(node: &Value) -> Result<(String, u16), ApiError> {
    let addrs: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| Some((x["type"].as_str()?, x["address"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    let pick = [
        "InternalIP",
        "Hostname",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
    ]
    .iter()
    .find_map(|t| addrs.iter().find(|(ty, a)| ty == t && !a.is_empty()))
    .map(|(_, a)| a.to_string());
    let Some(host) = pick else {
        let known: Vec<String> = addrs.iter().map(|(t, a)| format!("{{{t} {a}}}")).collect();
        return Err(ApiError::internal(format!(
            "no preferred addresses found; known addresses: [{}]",
            known.join(" ")
        )));
    };
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p <= u16::MAX as u64)
        .map(|p| p as u16)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((host, port))
}

/// The container a pod request addresses (upstream's validateContainer).
pub fn validate_container(pod: &Value, container: &str) -> Result<String, ApiError> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let names = |path: &str| -> Vec<String> {
        pod.pointer(path)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let regular = names("/spec/containers");
    let mut all = names("/spec/initContainers");
    all.extend(regular.iter().cloned());
    all.extend(names("/spec/ephemeralContainers"));
    if container.is_empty() {
        return match regular.len() {
            1 => Ok(regular[0].clone()),
            0 => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}"
            ))),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                all.join(" ")
            ))),
        };
    }
    if all.iter().any(|n| n == container) {
        Ok(container.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {pod_name}"
        )))
    }
}

/// Query pairs in order, percent-decoded, repeated keys kept.
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                crate::request::percent_decode(k),
                crate::request::percent_decode(v),
            )
        })
        .collect()
}

/// Percent-encodes a query component.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn last<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

fn truthy(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1" | "True" | "TRUE" | "t" | "T"))
}

fn int_param(q: &[(String, String)], k: &str) -> Result<Option<i64>, ApiError> {
    match last(q, k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid {k}: {v:?} is not an integer"))),
    }
}

/// The kubelet query of a pods/log request, validated as upstream validates PodLogOptions.
pub fn log_query(pod_name: &str, q: &[(String, String)]) -> Result<String, ApiError> {
    let tail = int_param(q, "tailLines")?;
    let limit = int_param(q, "limitBytes")?;
    let since_s = int_param(q, "sinceSeconds")?;
    let since_t = last(q, "sinceTime").filter(|v| !v.is_empty());
    let mut errs = Vec::new();
    if let Some(t) = tail.filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            "tailLines",
            &json!(t),
            "must be greater than or equal to 0",
        ));
    }
    if let Some(l) = limit.filter(|l| *l < 1) {
        errs.push(FieldError::invalid(
            "limitBytes",
            &json!(l),
            "must be greater than 0",
        ));
    }
    if since_s.is_some() && since_t.is_some() {
        errs.push(FieldError::forbidden(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    } else if let Some(s) = since_s.filter(|s| *s < 1) {
        errs.push(FieldError::invalid(
            "sinceSeconds",
            &json!(s),
            "must be greater than 0",
        ));
    }
    let stream = last(q, "stream").filter(|v| !v.is_empty());
    if let Some(s) = stream.filter(|s| !matches!(*s, "All" | "Stdout" | "Stderr")) {
        errs.push(FieldError::not_supported(
            "stream",
            &json!(s),
            &["All", "Stderr", "Stdout"],
        ));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("", "PodLogOptions", pod_name, errs));
    }
    let mut out: Vec<(&str, String)> = Vec::new();
    if truthy(last(q, "follow")) {
        out.push(("follow", "true".into()));
    }
    if truthy(last(q, "previous")) {
        out.push(("previous", "true".into()));
    }
    if truthy(last(q, "timestamps")) {
        out.push(("timestamps", "true".into()));
    }
    if let Some(s) = since_s {
        out.push(("sinceSeconds", s.to_string()));
    }
    if let Some(t) = since_t {
        let parsed = rfc3339_seconds(t)
            .ok_or_else(|| ApiError::bad_request(format!("invalid sinceTime: {t:?}")))?;
        out.push(("sinceTime", parsed));
    }
    if let Some(t) = tail {
        out.push(("tailLines", t.to_string()));
    }
    if let Some(l) = limit {
        out.push(("limitBytes", l.to_string()));
    }
    if let Some(s) = stream {
        out.push(("stream", s.to_string()));
    }
    Ok(encode_query(&out))
}

/// Checks an RFC 3339 time and returns it at second precision (as upstream forwards it).
fn rfc3339_seconds(t: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    Some(
        parsed
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The kubelet query of an exec or attach request (upstream's streamParams).
pub fn stream_query(q: &[(String, String)], with_command: bool) -> String {
    let mut out: Vec<(&str, String)> = Vec::new();
    for k in ["stdin", "stdout", "stderr", "tty"] {
        if truthy(last(q, k)) {
            out.push((k, "1".into()));
        }
    }
    if with_command {
        for (k, v) in q {
            if k == "command" {
                out.push(("command", v.clone()));
            }
        }
    }
    encode_query(&out)
}

/// The kubelet query of a port-forward request: `port=<p1,p2,...>` from `ports`.
pub fn port_forward_query(q: &[(String, String)]) -> Result<String, ApiError> {
    let mut ports = Vec::new();
    for (_, v) in q.iter().filter(|(k, _)| k == "ports") {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let n: u16 = p
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request(format!("invalid port {p:?}")))?;
            ports.push(n.to_string());
        }
    }
    if ports.is_empty() {
        return Ok(String::new());
    }
    Ok(encode_query(&[("port", ports.join(","))]))
}

/// The path after `.../{name}/proxy` in a raw request path ("/" when there is none).
pub fn proxy_remainder(path: &str, resource: &str, name: &str) -> String {
    let segs: Vec<&str> = path.split('/').collect();
    for i in 0..segs.len().saturating_sub(2) {
        if segs[i] == resource && segs[i + 1] == name && segs[i + 2] == "proxy" {
            let rest = &segs[i + 3..];
            if rest.is_empty() {
                return "/".into();
            }
            return format!("/{}", rest.join("/"));
        }
    }
    "/".into()
}

/// The backend request (see [`relay::backend_request`]) with errors as a Status.
pub fn backend_request<B>(
    parts: &http::request::Parts,
    path_and_query: &str,
    host: &str,
    body: B,
) -> Result<Request<B>, ApiError> {
    relay::backend_request(parts, path_and_query, host, body)
        .map_err(|e| ApiError::bad_request(format!("invalid proxy request: {e}")))
}

/// A backend response body relayed to the client (ends early if the backend fails).
fn relay(body: Incoming) -> Body {
    let s = futures::stream::unfold(body, |mut b| async move {
        match b.frame().await {
            Some(Ok(f)) => Some((Ok::<_, Infallible>(f), b)),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "backend body ended with error");
                None
            }
            None => None,
        }
    });
    StreamBody::new(s).boxed_unsync()
}

fn proxy_error(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(Reason::InternalError, format!("{what}: {e}"))
}

/// Sends `out` over `io` through the shared relay (an upgrade answered 101 is joined byte for
/// byte; any other answer is returned as is, its body streamed).
pub async fn forward<I>(
    io: I,
    out: Request<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>, ApiError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let resp = relay::send(io, out, client_upgrade)
        .await
        .map_err(|e| match e {
            relay::RelayError::Handshake(e) => proxy_error("error dialing backend", e),
            relay::RelayError::Send(e) => proxy_error("error trying to reach service", e),
            e @ relay::RelayError::Request(_) => proxy_error("error proxying", e),
        })?;
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, relay(body)))
}

/// A non-2xx kubelet answer to pods/log as a Status (upstream's GenericHttpResponseChecker).
async fn check_log_response(resp: Response<Body>, pod: &str) -> Result<Response<Body>, ApiError> {
    let code = resp.status().as_u16();
    if (200..=206).contains(&code) {
        return Ok(resp);
    }
    let body = resp.into_body();
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(16 * 1024)])
        .trim_end()
        .to_string();
    Err(match code {
        400 => ApiError::bad_request(text),
        500 => ApiError::internal(text),
        _ => {
            let (reason, msg) = match code {
                401 => (
                    Reason::Unauthorized,
                    "the server has asked for the client to provide credentials",
                ),
                403 => (
                    Reason::Forbidden,
                    "the server does not allow access to the requested resource",
                ),
                404 => (
                    Reason::NotFound,
                    "the server could not find the requested resource",
                ),
                503 => (
                    Reason::ServiceUnavailable,
                    "the server is currently unable to handle the request",
                ),
                _ => (
                    Reason::InternalError,
                    "an error on the server has prevented the request from succeeding",
                ),
            };
            let mut e = ApiError::new(reason, format!("{msg} ( pods/log {pod})"));
            e.name = Some(pod.to_string());
            e.kind = Some("pods/log".into());
            e.extra_causes
                .push(("UnexpectedServerResponse".into(), text));
            e
        }
    })
}

async fn get(api: &Api, resource: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let ri = api
        .lookup("", "v1", resource)
        .expect("core resources are built in")
        .0;
    let q = HashMap::new();
    api.get_object(&Req {
        ri: &ri,
        namespace,
        name,
        subresource: "",
        query: &q,
        username: "system:apiserver",
        manager: "",
        apply: false,
        view: None,
    })
    .await
}

fn node_of(pod: &Value, name: &str, empty_ok: bool) -> Result<Option<String>, ApiError> {
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        if empty_ok {
            return Ok(None);
        }
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    Ok(Some(node.to_string()))
}

/// Sends a request to the kubelet of `node` at `path_and_query`.
async fn to_kubelet(
    api: &Api,
    node: &str,
    path_and_query: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let client = api.kubelet_client.get().cloned().ok_or_else(|| {
        ApiError::service_unavailable("the API server has no kubelet client credentials")
    })?;
    let node_obj = get(api, "nodes", "", node).await?;
    let (host, port) = kubelet_endpoint(&node_obj)?;
    let upgrade = is_upgrade(req.headers());
    let mut req = req;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let out = backend_request(&parts, path_and_query, &join_host_port(&host, port), body)?;
    let what = if upgrade {
        "error dialing backend"
    } else {
        "error trying to reach service"
    };
    let tls = client
        .dial(&host, port)
        .await
        .map_err(|e| proxy_error(what, e))?;
    forward(TokioIo::new(tls), out, client_upgrade).await
}

fn with_query(path: &str, q: &str) -> String {
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

fn require_upgrade(req: &Request<Incoming>) -> Result<(), ApiError> {
    if is_upgrade(req.headers()) {
        Ok(())
    } else {
        Err(ApiError::bad_request("Upgrade request required"))
    }
}

/// Serves a connect subresource of pods or nodes.
pub async fn serve(
    api: &Arc<Api>,
    ri: &ResourceInfo,
    rr: &ResourceRequest,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let q = query_pairs(req.uri().query());
    let ns = rr.namespace.as_str();
    let name = rr.name.as_str();
    match (ri.plural.as_str(), rr.subresource.as_str()) {
        ("pods", "log") => {
            let pod = get(api, "pods", ns, name).await?;
            let container = validate_container(&pod, last(&q, "container").unwrap_or(""))?;
            let query = log_query(name, &q)?;
            let Some(node) = node_of(&pod, name, true)? else {
                // an unscheduled pod has no logs yet: an empty stream, as upstream
                return Ok(text_plain(http_body_util::Empty::new().boxed_unsync()));
            };
            let path = format!("/containerLogs/{ns}/{name}/{container}");
            let resp = to_kubelet(api, &node, &with_query(&path, &query), req).await?;
            let resp = check_log_response(resp, name).await?;
            let (_, body) = resp.into_parts();
            Ok(text_plain(body))
        }
        ("pods", sub @ ("exec" | "attach")) => {
            let pod = get(api, "pods", ns, name).await?;
            let container = validate_container(&pod, last(&q, "container").unwrap_or(""))?;
            let node = node_of(&pod, name, false)?.expect("unscheduled pods are refused");
            require_upgrade(&req)?;
            let path = format!("/{sub}/{ns}/{name}/{container}");
            let query = stream_query(&q, sub == "exec");
            to_kubelet(api, &node, &with_query(&path, &query), req).await
        }
        ("pods", "portforward") => {
            let pod = get(api, "pods", ns, name).await?;
            let node = node_of(&pod, name, false)?.expect("unscheduled pods are refused");
            require_upgrade(&req)?;
            let query = port_forward_query(&q)?;
            let path = format!("/portForward/{ns}/{name}");
            to_kubelet(api, &node, &with_query(&path, &query), req).await
        }
        ("nodes", "proxy") => {
            let rest = proxy_remainder(req.uri().path(), "nodes", name);
            let raw_q = req.uri().query().unwrap_or("").to_string();
            // the node must exist
            get(api, "nodes", "", name).await?;
            to_kubelet(api, name, &with_query(&rest, &raw_q), req).await
        }
        ("pods", "proxy") => pod_proxy(api, ns, name, req).await,
        ("services", "proxy") => service_proxy(api, ns, name, req).await,
        _ => Err(ApiError::new(
            Reason::NotFound,
            "the server could not find the requested resource",
        )),
    }
}

fn text_plain(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// `[scheme:]name[:port]` of pods/proxy and services/proxy (upstream's SplitSchemeNamePort).
pub fn split_scheme_name_port(id: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [n] => ("", *n, ""),
        [n, p] => ("", *n, *p),
        [s, n, p] => (*s, *n, *p),
        _ => return None,
    };
    if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
        return None;
    }
    Some((scheme.to_string(), name.to_string(), port.to_string()))
}

/// The service port name a services/proxy port names (a number is looked up among the
/// service's ports, as upstream does).
pub fn service_port_name(svc: &Value, port: &str, id: &str) -> Result<String, ApiError> {
    if port.parse::<u16>().is_err() {
        return Ok(port.to_string());
    }
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(port))
        })
        .map(|p| p["name"].as_str().unwrap_or("").to_string())
        .ok_or_else(|| {
            ApiError::bad_request(format!("no service port {port} found for service {id:?}"))
        })
}

/// A ready endpoint (address, port) of EndpointSlices for the service port named `port_name`.
pub fn pick_endpoint(slices: &[Value], port_name: &str) -> Option<(std::net::IpAddr, u16)> {
    let mut candidates = Vec::new();
    for s in slices {
        let Some(port) = s
            .pointer("/ports")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            })
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for e in s["endpoints"].as_array().into_iter().flatten() {
            if e.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            if let Some(ip) = e
                .pointer("/addresses/0")
                .and_then(Value::as_str)
                .and_then(|a| a.parse().ok())
            {
                candidates.push((ip, port));
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let i = rand::random_range(0..candidates.len());
    Some(candidates[i])
}

/// services/proxy: plain HTTP to a ready endpoint of the service port.
async fn service_proxy(
    api: &Api,
    ns: &str,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    if scheme == "https" {
        return Err(ApiError::bad_request(
            "https to services is not supported by this server's services/proxy",
        ));
    }
    let svc = get(api, "services", ns, &name).await?;
    let port_name = service_port_name(&svc, &port, id)?;
    let (ri, _) = api
        .lookup("discovery.k8s.io", "v1", "endpointslices")
        .expect("endpointslices are built in");
    let q = HashMap::from([(
        "labelSelector".to_string(),
        format!("kubernetes.io/service-name={name}"),
    )]);
    let filter = crate::handlers::Filter::from_query(&ri, &q)?;
    let list = api
        .list(
            &Req {
                ri: &ri,
                namespace: ns,
                name: "",
                subresource: "",
                query: &q,
                username: "system:apiserver",
                manager: "",
                apply: false,
                view: None,
            },
            &filter,
        )
        .await?;
    let slices: Vec<Value> = list.items.iter().map(|o| (*o.obj()).clone()).collect();
    let (ip, port) = pick_endpoint(&slices, &port_name).ok_or_else(|| {
        ApiError::service_unavailable(format!("no endpoints available for service {id:?}"))
    })?;
    let rest = proxy_remainder(req.uri().path(), "services", id);
    let raw_q = req.uri().query().unwrap_or("").to_string();
    dial_and_forward(ip, port, &with_query(&rest, &raw_q), req).await
}

/// Plain-HTTP proxying of `req` to `ip:port` at `path_and_query`.
async fn dial_and_forward(
    ip: std::net::IpAddr,
    port: u16,
    path_and_query: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let upgrade = is_upgrade(req.headers());
    let mut req = req;
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let host = join_host_port(&ip.to_string(), port);
    let out = backend_request(&parts, path_and_query, &host, body)?;
    let tcp = tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect((ip, port)))
        .await
        .map_err(|_| {
            proxy_error(
                "error trying to reach service",
                format!("dial tcp {host}: i/o timeout"),
            )
        })?
        .map_err(|e| {
            proxy_error(
                "error trying to reach service",
                format!("dial tcp {host}: {e}"),
            )
        })?;
    forward(TokioIo::new(tcp), out, client_upgrade).await
}

/// pods/proxy: plain HTTP to the pod IP on the named or first declared container port.
async fn pod_proxy(
    api: &Api,
    ns: &str,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let (scheme, name, mut port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    if scheme == "https" {
        return Err(ApiError::bad_request(
            "https to pods is not supported by this server's pods/proxy",
        ));
    }
    let pod = get(api, "pods", ns, &name).await?;
    if port.is_empty() {
        port = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter().find_map(|c| {
                    c.pointer("/ports/0/containerPort")
                        .and_then(Value::as_u64)
                        .map(|p| p.to_string())
                })
            })
            .unwrap_or_else(|| "80".into());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    let ip: std::net::IpAddr = pod
        .pointer("/status/podIPs/0/ip")
        .or_else(|| pod.pointer("/status/podIP"))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .filter(|ip: &std::net::IpAddr| {
            !ip.is_unspecified() && !ip.is_multicast() && !ip.is_loopback()
        })
        .ok_or_else(|| ApiError::bad_request("address not allowed"))?;
    let rest = proxy_remainder(req.uri().path(), "pods", id);
    let raw_q = req.uri().query().unwrap_or("").to_string();
    dial_and_forward(ip, port, &with_query(&rest, &raw_q), req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        query_pairs(Some(s))
    }

    #[test]
    fn kubelet_endpoint_prefers_internal_ip_and_published_port() {
        let node = json!({"status": {
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "ExternalIP", "address": "1.2.3.4"},
                {"type": "InternalIP", "address": "10.0.0.5"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}},
        }});
        assert_eq!(kubelet_endpoint(&node).unwrap(), ("10.0.0.5".into(), 12345));
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(kubelet_endpoint(&node).unwrap(), ("n1".into(), 10250));
        let e = kubelet_endpoint(&json!({"status": {}})).unwrap_err();
        assert_eq!(e.code(), 500);
        assert!(
            e.message.contains("no preferred addresses found"),
            "{}",
            e.message
        );
    }

    #[test]
    fn container_validation_like_upstream() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        let two = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(validate_container(&one, "").unwrap(), "a");
        assert_eq!(validate_container(&two, "b").unwrap(), "b");
        assert_eq!(validate_container(&two, "init").unwrap(), "init");
        let e = validate_container(&two, "").unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        let e = validate_container(&one, "zz").unwrap_err();
        assert_eq!(
            (e.code(), e.message.as_str()),
            (400, "container zz is not valid for pod p")
        );
    }

    #[test]
    fn log_queries() {
        assert_eq!(
            log_query(
                "p",
                &q("follow=true&tailLines=10&timestamps=true&previous=1&limitBytes=5&container=a")
            )
            .unwrap(),
            "follow=true&previous=true&timestamps=true&tailLines=10&limitBytes=5"
        );
        assert_eq!(
            log_query("p", &q("sinceTime=2026-11-27T10%3A00%3A00.5%2B01%3A00")).unwrap(),
            "sinceTime=2026-11-27T09%3A00%3A00Z"
        );
        assert_eq!(
            log_query("p", &q("sinceSeconds=30")).unwrap(),
            "sinceSeconds=30"
        );
        for (bad, code) in [
            ("tailLines=-1", 422),
            ("limitBytes=0", 422),
            ("sinceSeconds=0", 422),
            ("sinceSeconds=5&sinceTime=2026-11-27T10:00:00Z", 422),
            ("stream=stdin", 422),
            ("tailLines=x", 400),
            ("sinceTime=yesterday", 400),
        ] {
            let e = log_query("p", &q(bad)).unwrap_err();
            assert_eq!(e.code(), code, "{bad}: {e}");
        }
        let e = log_query("p", &q("tailLines=-1")).unwrap_err();
        assert_eq!(e.to_status()["details"]["kind"], "PodLogOptions");
    }

    #[test]
    fn stream_and_port_forward_queries() {
        assert_eq!(
            stream_query(&q("command=sh&command=-c&command=echo+hi&stdin=true&stdout=1&tty=false&container=a"), true),
            "stdin=1&stdout=1&command=sh&command=-c&command=echo%20hi"
        );
        assert_eq!(stream_query(&q("stdout=1&command=x"), false), "stdout=1");
        assert_eq!(
            port_forward_query(&q("ports=80&ports=443,8080")).unwrap(),
            "port=80%2C443%2C8080"
        );
        assert_eq!(port_forward_query(&q("")).unwrap(), "");
        assert_eq!(
            port_forward_query(&q("ports=http")).unwrap_err().code(),
            400
        );
    }

    #[test]
    fn proxy_paths() {
        let cases = [
            ("/api/v1/nodes/n1/proxy/healthz", "nodes", "n1", "/healthz"),
            (
                "/api/v1/nodes/n1/proxy/stats/summary",
                "nodes",
                "n1",
                "/stats/summary",
            ),
            ("/api/v1/nodes/n1/proxy/", "nodes", "n1", "/"),
            ("/api/v1/nodes/n1/proxy", "nodes", "n1", "/"),
            ("/api/v1/nodes/n1/proxy/a%20b/", "nodes", "n1", "/a%20b/"),
            (
                "/api/v1/namespaces/d/pods/web:8080/proxy/x",
                "pods",
                "web:8080",
                "/x",
            ),
        ];
        for (path, res, name, want) in cases {
            assert_eq!(proxy_remainder(path, res, name), want, "{path}");
        }
        assert_eq!(
            split_scheme_name_port("http:web:80"),
            Some(("http".into(), "web".into(), "80".into()))
        );
        assert_eq!(
            split_scheme_name_port("web"),
            Some(("".into(), "web".into(), "".into()))
        );
        assert_eq!(split_scheme_name_port("ftp:web:1"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn service_ports_and_endpoints() {
        let svc =
            json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "", "port": 9}]}});
        assert_eq!(service_port_name(&svc, "80", "s:80").unwrap(), "http");
        assert_eq!(service_port_name(&svc, "9", "s:9").unwrap(), "");
        assert_eq!(service_port_name(&svc, "web", "s:web").unwrap(), "web");
        assert_eq!(
            service_port_name(&svc, "81", "s:81").unwrap_err().code(),
            400
        );
        let slices = vec![
            json!({"ports": [{"name": "other", "port": 1}], "endpoints": [{"addresses": ["10.0.0.9"]}]}),
            json!({"ports": [{"name": "http", "port": 8080}], "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
            ]}),
        ];
        for _ in 0..20 {
            assert_eq!(
                pick_endpoint(&slices, "http"),
                Some(("10.0.0.2".parse().unwrap(), 8080))
            );
        }
        assert_eq!(pick_endpoint(&slices, "nope"), None);
    }
}
