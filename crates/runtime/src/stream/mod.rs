//! The runtime's streaming server, as containerd serves it for the kubelet: CRI Exec, Attach and
//! PortForward return `http://<addr>/{exec,attach,portforward}/<token>` (a single-use token that
//! expires after a minute), and the client the kubelet proxies there speaks one of upstream's
//! streaming protocols: remotecommand over WebSocket (v5/v4/v1 channels, binary or base64) or
//! SPDY/3.1 (v4..v1), port-forward over SPDY, WebSocket channels or WebSocket-tunnelled SPDY.

pub mod cache;
pub mod portforward;
pub mod remotecommand;
pub mod session;
pub mod spdy;
pub mod websocket;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use cri::v1 as pb;
use http::{header, HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use self::cache::{CacheError, RequestCache};
use self::websocket::ChannelCodec;

/// A terminal size as the resize stream carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// The process side of an exec/attach session. Closed channels mean EOF: the backend drops
/// `stdout`/`stderr` once all output was sent; `stdin` closes when the client closes it.
#[derive(Default)]
pub struct StdIo {
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    pub stdout: Option<mpsc::Sender<Vec<u8>>>,
    pub stderr: Option<mpsc::Sender<Vec<u8>>>,
    pub resize: Option<mpsc::Receiver<TermSize>>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Non-zero exit; `message` describes it (upstream: "command ... exited with N").
    Exited {
        code: i32,
        message: String,
    },
    /// It could not be run, or the stream failed.
    Error(String),
}

/// What the streaming server runs: the container side of exec, attach and port-forward.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Runs the command; dropping the future ends it.
    async fn exec(&self, req: pb::ExecRequest, io: StdIo) -> Outcome;
    /// Streams the running container's stdio until it exits or the future is dropped.
    async fn attach(&self, req: pb::AttachRequest, io: StdIo) -> Outcome;
    /// Connects to `port` inside the sandbox's network namespace.
    async fn dial(&self, sandbox_id: &str, port: u16) -> Result<TcpStream, String>;
}

/// A request waiting for its client.
#[derive(Debug, Clone)]
pub enum Request {
    Exec(pb::ExecRequest),
    Attach(pb::AttachRequest),
    PortForward(pb::PortForwardRequest),
}

impl Request {
    fn path(&self) -> &'static str {
        match self {
            Request::Exec(_) => "exec",
            Request::Attach(_) => "attach",
            Request::PortForward(_) => "portforward",
        }
    }
}

/// Streaming server errors.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("bind streaming server on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The streaming server: the request cache and the HTTP listener.
pub struct StreamServer {
    addr: SocketAddr,
    cache: Mutex<RequestCache<Request>>,
    backend: Arc<dyn Backend>,
}

impl StreamServer {
    /// Binds `addr` (port 0: a random free port).
    pub async fn bind(
        addr: SocketAddr,
        backend: Arc<dyn Backend>,
    ) -> Result<(Arc<StreamServer>, TcpListener), StreamError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StreamError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StreamError::Bind { addr, source })?;
        Ok((
            Arc::new(StreamServer {
                addr,
                cache: Mutex::new(RequestCache::new(cache::TTL, cache::MAX_IN_FLIGHT)),
                backend,
            }),
            listener,
        ))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Caches `req` and returns the URL its client must use.
    pub fn url(&self, req: Request) -> Result<String, StreamError> {
        let path = req.path();
        let token = self
            .cache
            .lock()
            .expect("request cache")
            .insert(req, Instant::now())?;
        Ok(format!("http://{}/{path}/{token}", self.addr))
    }

    /// Serves connections until `shutdown`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let (conn, _) = tokio::select! {
                _ = &mut shutdown => return,
                c = listener.accept() => match c {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "streaming server accept");
                        continue;
                    }
                },
            };
            let me = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.handle(req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), svc)
                    .with_upgrades()
                    .await;
            });
        }
    }

    fn handle(self: Arc<Self>, mut req: hyper::Request<Body>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let path = req.uri().path().trim_matches('/').to_string();
        let Some((kind, token)) = path.split_once('/') else {
            return plain(StatusCode::NOT_FOUND, "not found");
        };
        if !matches!(kind, "exec" | "attach" | "portforward") {
            return plain(StatusCode::NOT_FOUND, "not found");
        }
        let cached = self
            .cache
            .lock()
            .expect("request cache")
            .consume(token, Instant::now());
        let Some(cached) = cached.filter(|c| c.path() == kind) else {
            return plain(StatusCode::NOT_FOUND, "invalid or expired token");
        };
        let headers = req.headers().clone();
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let on_upgrade = hyper::upgrade::on(&mut req);
        let query = req.uri().query().unwrap_or("").to_string();
        let backend = self.backend.clone();
        if upgrade == "websocket" {
            let supported = if kind == "portforward" {
                portforward::WS_PROTOCOLS
            } else {
                remotecommand::WS_PROTOCOLS
            };
            let offered = websocket::offered(header_values(&headers, "sec-websocket-protocol"));
            let protocol = if offered.is_empty() {
                ""
            } else {
                match websocket::negotiate(&offered, supported) {
                    Some(p) => p,
                    None => {
                        return plain(
                            StatusCode::BAD_REQUEST,
                            &format!(
                                "unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}"
                            ),
                        )
                    }
                }
            };
            let Some(key) = headers.get("sec-websocket-key") else {
                return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
            };
            let mut resp = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "websocket")
                .header(
                    "Sec-WebSocket-Accept",
                    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
                );
            if !protocol.is_empty() {
                resp = resp.header("Sec-WebSocket-Protocol", protocol);
            }
            let ports = match &cached {
                Request::PortForward(pf) if pf.port.is_empty() => {
                    match portforward::ports_from_query(&query) {
                        Ok(p) => p,
                        Err(e) => return plain(StatusCode::BAD_REQUEST, &e),
                    }
                }
                Request::PortForward(pf) => {
                    match pf
                        .port
                        .iter()
                        .map(|p| portforward::parse_port(&p.to_string()))
                        .collect()
                    {
                        Ok(p) => p,
                        Err(e) => return plain(StatusCode::BAD_REQUEST, &e),
                    }
                }
                _ => vec![],
            };
            if ports.len() > 127 {
                // two channels per port, numbered by one byte
                return plain(StatusCode::BAD_REQUEST, "too many ports for one connection");
            }
            tokio::spawn(async move {
                let upgraded = match on_upgrade.await {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::debug!(error = %e, "websocket upgrade failed");
                        return;
                    }
                };
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                serve_ws(ws, protocol, cached, ports, backend).await;
            });
            return resp.body(Full::default()).expect("response");
        }
        if upgrade.starts_with("spdy/3.1") {
            let supported: &[&str] = if kind == "portforward" {
                &[portforward::SPDY_PROTOCOL]
            } else {
                remotecommand::SPDY_PROTOCOLS
            };
            let offered = websocket::offered(header_values(&headers, "x-stream-protocol-version"));
            if offered.is_empty() {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "unable to upgrade: X-Stream-Protocol-Version is required",
                );
            }
            let Some(protocol) = websocket::negotiate(&offered, supported) else {
                let mut r = plain(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}"
                    ),
                );
                for p in supported {
                    r.headers_mut().append(
                        "X-Accepted-Stream-Protocol-Versions",
                        http::HeaderValue::from_static(p),
                    );
                }
                return r;
            };
            tokio::spawn(async move {
                let upgraded = match on_upgrade.await {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::debug!(error = %e, "spdy upgrade failed");
                        return;
                    }
                };
                let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                serve_spdy(r, w, protocol, cached, backend).await;
            });
            return Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "SPDY/3.1")
                .header("X-Stream-Protocol-Version", protocol)
                .body(Full::default())
                .expect("response");
        }
        plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        )
    }
}

fn header_values<'a>(h: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    h.get_all(name).iter().filter_map(|v| v.to_str().ok())
}

fn plain(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(format!("{msg}\n"))))
        .expect("response")
}

struct SandboxDialer {
    backend: Arc<dyn Backend>,
    sandbox: String,
}

impl portforward::Dialer for SandboxDialer {
    fn dial(
        &self,
        port: u16,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<TcpStream, String>> + Send>>
    {
        let b = self.backend.clone();
        let s = self.sandbox.clone();
        Box::pin(async move { b.dial(&s, port).await })
    }
    fn pod(&self) -> String {
        self.sandbox.clone()
    }
}

fn exec_options(r: &Request) -> remotecommand::Options {
    match r {
        Request::Exec(e) => remotecommand::Options {
            stdin: e.stdin,
            stdout: e.stdout,
            stderr: e.stderr,
            tty: e.tty,
        },
        Request::Attach(a) => remotecommand::Options {
            stdin: a.stdin,
            stdout: a.stdout,
            stderr: a.stderr,
            tty: a.tty,
        },
        Request::PortForward(_) => unreachable!("not a remotecommand"),
    }
}

async fn run_command(backend: Arc<dyn Backend>, req: Request, io: StdIo) -> Outcome {
    // upstream's ServeExec/ServeAttach wording
    match req {
        Request::Exec(e) => match backend.exec(e, io).await {
            Outcome::Error(e) => {
                Outcome::Error(format!("error executing command in container: {e}"))
            }
            o => o,
        },
        Request::Attach(a) => match backend.attach(a, io).await {
            Outcome::Error(e) => Outcome::Error(format!("error attaching to container: {e}")),
            o => o,
        },
        Request::PortForward(_) => Outcome::Error("not a remotecommand".into()),
    }
}

async fn serve_ws<S>(
    ws: WebSocketStream<S>,
    protocol: &'static str,
    req: Request,
    ports: Vec<u16>,
    backend: Arc<dyn Backend>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match req {
        Request::PortForward(pf) => {
            let dialer = Arc::new(SandboxDialer {
                backend,
                sandbox: pf.pod_sandbox_id,
            });
            if protocol == websocket::SPDY_TUNNEL_PORT_FORWARD {
                portforward::serve_tunnel(ws, dialer).await;
            } else {
                let codec = ChannelCodec::for_protocol(protocol).expect("negotiated");
                portforward::serve_websocket(ws, codec, ports, dialer).await;
            }
        }
        req => {
            let codec = ChannelCodec::for_protocol(protocol).expect("negotiated");
            let opts = exec_options(&req);
            remotecommand::serve_websocket(ws, codec, opts, |io| run_command(backend, req, io))
                .await;
        }
    }
}

async fn serve_spdy<R, W>(
    r: R,
    w: W,
    protocol: &'static str,
    req: Request,
    backend: Arc<dyn Backend>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match req {
        Request::PortForward(pf) => {
            let dialer = Arc::new(SandboxDialer {
                backend,
                sandbox: pf.pod_sandbox_id,
            });
            portforward::serve_spdy(r, w, dialer).await;
        }
        req => {
            let opts = exec_options(&req);
            let version = remotecommand::spdy_version(protocol);
            remotecommand::serve_spdy(r, w, version, opts, |io| run_command(backend, req, io))
                .await;
        }
    }
}
