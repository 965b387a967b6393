//! The kubelet HTTPS API (default :10250): client-certificate authentication against the
//! cluster CA, authorization of the API server's kubelet client and `system:masters`, and the
//! endpoints the API server proxies to: `/healthz`, `/pods`, `/runningpods`,
//! `/containerLogs/{ns}/{pod}/{container}`, `/exec/...`, `/attach/...`, `/portForward/...` and
//! `/stats/summary`. Everything about pods comes from CRI alone.

pub mod auth;
pub mod logs;
pub mod pods;
pub mod proxy;
pub mod stats;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cri::v1 as pb;
use cri::{ImageServiceClient, RuntimeServiceClient};
use futures::StreamExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response bodies of the kubelet API.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The kubelet's default API port.
pub const DEFAULT_PORT: u16 = 10250;

/// Configuration of the kubelet API server.
#[derive(Clone)]
pub struct Config {
    /// Where to listen (default `0.0.0.0:10250`).
    pub bind_address: SocketAddr,
    /// The kubelet's serving certificate and key (PEM).
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    /// CA(s) client certificates must chain to (PEM; the cluster CA).
    pub client_ca_pem: String,
    /// The CRI runtime socket.
    pub cri_socket: PathBuf,
    pub node_name: String,
    /// The kubelet's root directory: its filesystem is the node's `fs` in the stats summary.
    pub root_dir: PathBuf,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind_address", &self.bind_address)
            .field("cri_socket", &self.cri_socket)
            .field("node_name", &self.node_name)
            .field("root_dir", &self.root_dir)
            .finish_non_exhaustive()
    }
}

/// Errors starting the kubelet API server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("tls: {0}")]
    Tls(String),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cri(#[from] cri::Error),
}

/// State shared by all requests.
struct State {
    config: Config,
    rt: RuntimeServiceClient<Channel>,
    img: ImageServiceClient<Channel>,
    rates: tokio::sync::Mutex<stats::CpuRates>,
}

/// A bound kubelet API server.
pub struct Server {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
}

fn tls_config(c: &Config) -> Result<rustls::ServerConfig, ServerError> {
    let tls = |e: &dyn std::fmt::Display| ServerError::Tls(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut c.client_ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    if roots.is_empty() {
        return Err(ServerError::Tls(
            "client CA bundle holds no certificate".into(),
        ));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(&e))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut c.serving_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&e))?;
    let key = rustls_pemfile::private_key(&mut c.serving_key_pem.as_bytes())
        .map_err(|e| tls(&e))?
        .ok_or_else(|| ServerError::Tls("serving key missing".into()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(&e))?
    .with_client_cert_verifier(verifier)
    .with_single_cert(certs, key)
    .map_err(|e| tls(&e))?;
    // upgrades (exec, attach, port-forward) need HTTP/1.1
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

impl Server {
    /// Dials CRI, prepares TLS and binds the listener.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let tls = Arc::new(tls_config(&config)?);
        let (rt, img) = cri::clients(&config.cri_socket).await?;
        let addr = config.bind_address;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        Ok(Server {
            listener,
            tls,
            state: Arc::new(State {
                config,
                rt,
                img,
                rates: Default::default(),
            }),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls);
        tokio::pin!(shutdown);
        tracing::info!(addr = ?self.listener.local_addr().ok(), "kubelet API listening");
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let state = self.state.clone();
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                let user = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| auth::user_from_cert(c))
                    .map(Arc::new);
                let svc =
                    hyper::service::service_fn(move |req| handle(state.clone(), user.clone(), req));
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30));
                if let Err(e) = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended with error");
                }
            });
        }
    }
}

/// Binds and serves the kubelet API until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::bind(config).await?.serve(shutdown).await;
    Ok(())
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

fn text(code: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(format!("{msg}\n")));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(v: &Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A request error: status code and plain-text message.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl Failure {
    fn bad_request(m: impl std::fmt::Display) -> Self {
        Failure(StatusCode::BAD_REQUEST, m.to_string())
    }
    fn not_found(m: impl std::fmt::Display) -> Self {
        Failure(StatusCode::NOT_FOUND, m.to_string())
    }
}

impl From<pods::LookupError> for Failure {
    fn from(e: pods::LookupError) -> Self {
        match e {
            pods::LookupError::NoPrevious { .. } => Failure::bad_request(e),
            _ => Failure::not_found(e),
        }
    }
}

/// The HTTP status of a failed CRI call (upstream's streaming.WriteError mapping).
fn cri_failure(what: &str, s: tonic::Status) -> Failure {
    let code = match s.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure(code, format!("{what}: {}", s.message()))
}

/// All query pairs in order, percent-decoded (repeated keys such as `command` kept).
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' if i + 2 < b.len() => {
                    match std::str::from_utf8(&b[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
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
    };
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn handle(
    state: Arc<State>,
    user: Option<Arc<auth::User>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(user) = user else {
        // bearer tokens would need a TokenReview; anonymous requests are rejected
        return Ok(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    };
    if !auth::allowed(&user) {
        let attrs = auth::attributes(req.method().as_str(), &path);
        return Ok(text(
            StatusCode::FORBIDDEN,
            &auth::forbidden_message(&user, &attrs),
        ));
    }
    let method = req.method().clone();
    let r = route(&state, req).await;
    Ok(match r {
        Ok(resp) => resp,
        Err(Failure(code, msg)) => {
            tracing::debug!(%method, %path, %code, %msg, "kubelet api request failed");
            text(code, &msg)
        }
    })
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Failure> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let stream_method = get || req.method() == Method::POST;
    let not_allowed = || Failure(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into());
    match parts.as_slice() {
        ["healthz"] | ["healthz", "ping"] if get => Ok(text(StatusCode::OK, "ok")),
        ["pods"] if get => Ok(json(&pod_list(state).await?)),
        ["runningpods"] if get => {
            let pods = list_pods(state).await?;
            Ok(json(&pods::running_pods(&pods)))
        }
        ["stats", "summary"] if get || req.method() == Method::POST => {
            Ok(json(&summary(state).await?))
        }
        ["containerLogs", ns, pod, container] if get => {
            let q = query_pairs(req.uri().query());
            container_logs(state, ns, pod, container, &q).await
        }
        ["exec", ns, pod, container] | ["exec", ns, pod, _, container] if stream_method => {
            exec(state, ns, pod, container, req).await
        }
        ["attach", ns, pod, container] | ["attach", ns, pod, _, container] if stream_method => {
            attach(state, ns, pod, container, req).await
        }
        ["portForward", ns, pod] | ["portForward", ns, pod, _] if stream_method => {
            port_forward(state, ns, pod, req).await
        }
        ["healthz"]
        | ["healthz", "ping"]
        | ["pods"]
        | ["runningpods"]
        | ["stats", "summary"]
        | ["containerLogs", _, _, _] => Err(not_allowed()),
        ["exec" | "attach", _, _, _] | ["exec" | "attach", _, _, _, _] => Err(not_allowed()),
        ["portForward", _, _] | ["portForward", _, _, _] => Err(not_allowed()),
        _ => Err(Failure::not_found("404 page not found")),
    }
}

async fn list_pods(state: &State) -> Result<Vec<pods::Pod>, Failure> {
    let mut rt = state.rt.clone();
    let sandboxes = rt
        .list_pod_sandbox(pb::ListPodSandboxRequest { filter: None })
        .await
        .map_err(|s| cri_failure("failed to list pod sandboxes", s))?
        .into_inner()
        .items;
    let containers = rt
        .list_containers(pb::ListContainersRequest { filter: None })
        .await
        .map_err(|s| cri_failure("failed to list containers", s))?
        .into_inner()
        .containers;
    Ok(pods::group(&sandboxes, &containers))
}

async fn container_status(state: &State, id: &str) -> Result<pb::ContainerStatus, Failure> {
    state
        .rt
        .clone()
        .container_status(pb::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        })
        .await
        .map_err(|s| cri_failure("failed to get container status", s))?
        .into_inner()
        .status
        .ok_or_else(|| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "runtime returned no status".into(),
            )
        })
}

async fn pod_list(state: &State) -> Result<Value, Failure> {
    let pods = list_pods(state).await?;
    let mut statuses = HashMap::new();
    for p in &pods {
        // the current and the previous container of each name
        for name in p.container_names() {
            for c in p.named(&name).into_iter().take(2) {
                if let Ok(s) = container_status(state, &c.id).await {
                    statuses.insert(c.id.clone(), s);
                }
            }
        }
    }
    let runtime = state
        .rt
        .clone()
        .version(pb::VersionRequest {
            version: cri::API_VERSION.into(),
        })
        .await
        .map(|v| v.into_inner().runtime_name)
        .unwrap_or_else(|_| "cri".into());
    Ok(pods::pod_list(
        &pods,
        &statuses,
        &runtime,
        &state.config.node_name,
    ))
}

/// Reports whether a container is still running, for `follow`.
struct ContainerAlive {
    rt: RuntimeServiceClient<Channel>,
    id: String,
}

impl logs::Liveness for ContainerAlive {
    async fn running(&mut self) -> bool {
        match self
            .rt
            .container_status(pb::ContainerStatusRequest {
                container_id: self.id.clone(),
                verbose: false,
            })
            .await
        {
            Ok(r) => r.into_inner().status.is_some_and(|s| {
                s.state == pb::ContainerState::ContainerRunning as i32
                    || s.state == pb::ContainerState::ContainerCreated as i32
            }),
            Err(_) => false,
        }
    }
}

async fn container_logs(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    container: &str,
    q: &[(String, String)],
) -> Result<Response<Body>, Failure> {
    let opts = logs::LogOptions::from_query(q, chrono::Utc::now()).map_err(Failure::bad_request)?;
    let pods = list_pods(state).await?;
    let p = pods::find(&pods, ns, pod)?;
    let c = pods::resolve(p, container, opts.previous)?;
    let status = container_status(state, &c.id).await?;
    if status.state == pb::ContainerState::ContainerCreated as i32 && !opts.previous {
        return Err(Failure::bad_request(format!(
            "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
        )));
    }
    if status.log_path.is_empty() {
        return Err(Failure::bad_request(format!(
            "container {container:?} in pod {pod:?} has no log file"
        )));
    }
    let path = PathBuf::from(&status.log_path);
    if let Err(e) = tokio::fs::metadata(&path).await {
        return Err(Failure::bad_request(format!(
            "failed to open log file {:?}: {e}",
            path.display().to_string()
        )));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let alive = ContainerAlive {
        rt: state.rt.clone(),
        id: c.id.clone(),
    };
    tokio::spawn(async move {
        if let Err(e) = logs::stream_log(&path, &opts, alive, tx).await {
            tracing::warn!(error = %e, "streaming container log failed");
        }
    });
    let body = StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(|b| Ok::<_, BoxError>(Frame::data(b))),
    );
    let mut r = Response::new(body.boxed_unsync());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

/// stdin/stdout/stderr/tty of an exec or attach request (upstream's remotecommand options).
#[derive(Debug, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub command: Vec<String>,
}

impl StreamOptions {
    pub fn from_query(q: &[(String, String)]) -> Result<Self, String> {
        let flag = |name: &str| {
            q.iter()
                .any(|(k, v)| k == name && matches!(v.as_str(), "1" | "true" | "True"))
        };
        let tty = flag("tty");
        let mut o = StreamOptions {
            stdin: flag("stdin") || flag("input"),
            stdout: flag("stdout") || flag("output"),
            stderr: flag("stderr") || flag("error"),
            tty,
            command: q
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
        };
        // with a tty, stderr is merged into stdout
        if o.tty && o.stderr {
            o.stderr = false;
        }
        if !o.stdin && !o.stdout && !o.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

fn require_upgrade(req: &Request<Incoming>) -> Result<(), Failure> {
    if relay::is_upgrade(req.headers()) {
        Ok(())
    } else {
        Err(Failure::bad_request("Upgrade request required"))
    }
}

async fn proxy_to(url: &str, req: Request<Incoming>) -> Result<Response<Body>, Failure> {
    let uri: Uri = url.parse().map_err(|e| {
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("runtime returned a bad streaming url {url:?}: {e}"),
        )
    })?;
    proxy::upgrade(req, &uri).await.map_err(|e| match e {
        proxy::ProxyError::Dial { .. } => Failure(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        _ => Failure(StatusCode::BAD_GATEWAY, e.to_string()),
    })
}

async fn running_container(
    state: &State,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<pb::Container, Failure> {
    let pods = list_pods(state).await?;
    let p = pods::find(&pods, ns, pod)?;
    let c = pods::resolve(p, container, false)?;
    if c.state != pb::ContainerState::ContainerRunning as i32 {
        return Err(Failure::bad_request(format!(
            "container {container:?} in pod {pod:?} is not running"
        )));
    }
    Ok(c.clone())
}

async fn exec(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    container: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let o =
        StreamOptions::from_query(&query_pairs(req.uri().query())).map_err(Failure::bad_request)?;
    require_upgrade(&req)?;
    let c = running_container(state, ns, pod, container).await?;
    let url = state
        .rt
        .clone()
        .exec(pb::ExecRequest {
            container_id: c.id,
            cmd: o.command,
            tty: o.tty,
            stdin: o.stdin,
            stdout: o.stdout,
            stderr: o.stderr,
        })
        .await
        .map_err(|s| cri_failure("failed to get exec url", s))?
        .into_inner()
        .url;
    proxy_to(&url, req).await
}

async fn attach(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    container: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let o =
        StreamOptions::from_query(&query_pairs(req.uri().query())).map_err(Failure::bad_request)?;
    require_upgrade(&req)?;
    let c = running_container(state, ns, pod, container).await?;
    let url = state
        .rt
        .clone()
        .attach(pb::AttachRequest {
            container_id: c.id,
            stdin: o.stdin,
            tty: o.tty,
            stdout: o.stdout,
            stderr: o.stderr,
        })
        .await
        .map_err(|s| cri_failure("failed to get attach url", s))?
        .into_inner()
        .url;
    proxy_to(&url, req).await
}

/// Ports of a port-forward request: `port` values, each possibly comma-separated.
pub fn forward_ports(q: &[(String, String)]) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for (_, v) in q.iter().filter(|(k, _)| k == "port" || k == "ports") {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => out.push(n as i32),
                _ => return Err(format!("invalid port {p:?}")),
            }
        }
    }
    Ok(out)
}

async fn port_forward(
    state: &Arc<State>,
    ns: &str,
    pod: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let ports = forward_ports(&query_pairs(req.uri().query())).map_err(Failure::bad_request)?;
    require_upgrade(&req)?;
    let pods = list_pods(state).await?;
    let p = pods::find(&pods, ns, pod)?;
    let sandbox = p.sandbox().id.clone();
    let url = state
        .rt
        .clone()
        .port_forward(pb::PortForwardRequest {
            pod_sandbox_id: sandbox,
            port: ports,
        })
        .await
        .map_err(|s| cri_failure("failed to get port-forward url", s))?
        .into_inner()
        .url;
    proxy_to(&url, req).await
}

async fn summary(state: &State) -> Result<Value, Failure> {
    let pods = list_pods(state).await?;
    let mut rt = state.rt.clone();
    let container_stats = rt
        .list_container_stats(pb::ListContainerStatsRequest { filter: None })
        .await
        .map_err(|s| cri_failure("failed to list container stats", s))?
        .into_inner()
        .stats;
    // runtimes without pod sandbox stats get pod figures summed from their containers
    let sandbox_stats = match rt
        .list_pod_sandbox_stats(pb::ListPodSandboxStatsRequest { filter: None })
        .await
    {
        Ok(r) => r.into_inner().stats,
        Err(s) if s.code() == tonic::Code::Unimplemented => Vec::new(),
        Err(s) => return Err(cri_failure("failed to list pod sandbox stats", s)),
    };
    let image_fs = state
        .img
        .clone()
        .image_fs_info(pb::ImageFsInfoRequest {})
        .await
        .ok()
        .and_then(|r| r.into_inner().image_filesystems.into_iter().next());
    let image_fs_json = image_fs.map(|u| {
        let cap = u
            .fs_id
            .as_ref()
            .and_then(|id| stats::fs_stats(std::path::Path::new(&id.mountpoint)));
        let time = pods::rfc3339(u.timestamp);
        let mut v = serde_json::json!({"time": time});
        if let Some(c) = cap {
            v = serde_json::json!({
                "time": time,
                "availableBytes": c.available,
                "capacityBytes": c.capacity,
                "inodesFree": c.inodes_free,
                "inodes": c.inodes,
            });
        }
        if let Some(b) = &u.used_bytes {
            v["usedBytes"] = b.value.into();
        }
        if let Some(i) = &u.inodes_used {
            v["inodesUsed"] = i.value.into();
        }
        v
    });
    let container_fs = container_stats
        .iter()
        .find_map(|s| s.writable_layer.as_ref()?.fs_id.clone())
        .and_then(|id| stats::fs_stats(std::path::Path::new(&id.mountpoint)));
    let root = state.config.root_dir.clone();
    let node = tokio::task::spawn_blocking(move || stats::read_node(&root))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut rates = state.rates.lock().await;
    Ok(stats::summary(
        &stats::Inputs {
            node_name: &state.config.node_name,
            node: &node,
            image_fs: image_fs_json,
            container_fs,
            pods: &pods,
            container_stats: &container_stats,
            sandbox_stats: &sandbox_stats,
        },
        &mut rates,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        query_pairs(Some(s))
    }

    #[test]
    fn query_pairs_keep_repeats_and_decode() {
        assert_eq!(
            q("command=sh&command=-c&command=echo%20hi+there&stdout=1&x"),
            vec![
                ("command".into(), "sh".into()),
                ("command".into(), "-c".into()),
                ("command".into(), "echo hi there".into()),
                ("stdout".into(), "1".into()),
                ("x".into(), "".into()),
            ]
        );
        assert_eq!(q("a=%zz%4"), vec![("a".into(), "%zz%4".into())]);
    }

    #[test]
    fn stream_options_like_upstream() {
        let o =
            StreamOptions::from_query(&q("command=ls&command=-l&stdout=1&stderr=true")).unwrap();
        assert_eq!(
            o,
            StreamOptions {
                stdin: false,
                stdout: true,
                stderr: true,
                tty: false,
                command: vec!["ls".into(), "-l".into()]
            }
        );
        let tty = StreamOptions::from_query(&q("stdin=1&stdout=1&stderr=1&tty=1")).unwrap();
        assert!(tty.tty && tty.stdin && tty.stdout && !tty.stderr);
        assert_eq!(
            StreamOptions::from_query(&q("command=ls")).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
    }

    #[test]
    fn port_forward_ports() {
        assert_eq!(
            forward_ports(&q("port=80,443&port=8080")).unwrap(),
            vec![80, 443, 8080]
        );
        assert_eq!(forward_ports(&q("")).unwrap(), Vec::<i32>::new());
        assert!(forward_ports(&q("port=0")).is_err());
        assert!(forward_ports(&q("port=http")).is_err());
    }
}
