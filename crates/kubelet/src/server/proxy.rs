//! The upgrade-aware proxy between a kubelet API client and the runtime's streaming server: the
//! client's upgrade request (WebSocket or SPDY, its `Sec-WebSocket-Protocol` /
//! `X-Stream-Protocol-Version` offers untouched) is replayed to the URL CRI Exec/Attach/
//! PortForward returned, the upstream's answer goes back as is, and after a 101 both
//! connections are piped into each other byte for byte.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::Body;

/// Errors reaching the streaming server.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("unsupported streaming url {0}: only http:// is supported")]
    Scheme(String),
    #[error("error dialing backend {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("error proxying to backend: {0}")]
    Http(String),
}

/// Whether a request asks for a protocol upgrade (`Connection: Upgrade` plus `Upgrade`).
pub fn is_upgrade(h: &HeaderMap) -> bool {
    let conn_upgrade = h.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    });
    conn_upgrade && h.contains_key(header::UPGRADE)
}

/// Headers that describe the client's connection to us, not the request: dropped when the
/// request is replayed upstream (Connection and Upgrade are kept for upgrade requests).
const DROPPED: &[&str] = &["host", "authorization", "proxy-authorization", "content-length"];

/// The request to send upstream: `method` on `path_and_query` of `target`, the client's headers
/// (credentials dropped), `Host` set to the target.
pub fn upstream_request(
    parts: &http::request::Parts,
    target: &Uri,
    query: Option<&str>,
) -> Result<Request<Empty<Bytes>>, ProxyError> {
    let path = target.path();
    let pq = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(pq)
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProxyError::Http(e.to_string()))?;
    for (k, v) in &parts.headers {
        if !DROPPED.contains(&k.as_str()) && !k.as_str().starts_with("impersonate-") {
            req.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Some(a) = target.authority() {
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    Ok(req)
}

/// Proxies an upgrade request to `target` (the client's query string is passed on, as
/// upstream's upgrade-aware handler does). A non-101 answer is returned to the client as is.
pub async fn upgrade(req: Request<Incoming>, target: &Uri) -> Result<Response<Body>, ProxyError> {
    if target.scheme_str() != Some("http") {
        return Err(ProxyError::Scheme(target.to_string()));
    }
    let host = target.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
    let port = target.port_u16().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| ProxyError::Dial {
        addr: addr.clone(),
        reason: "timed out".into(),
    })?
    .map_err(|e| ProxyError::Dial {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    let _ = tcp.set_nodelay(true);
    let query = req.uri().query().map(str::to_string);
    let mut req = req;
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let out = upstream_request(&parts, target, query.as_deref())?;
    pipe(TokioIo::new(tcp), out, client_upgrade).await
}

/// Sends `out` over `io` and, on a 101, joins the two upgraded connections.
pub async fn pipe<I>(
    io: I,
    out: Request<Empty<Bytes>>,
    client_upgrade: hyper::upgrade::OnUpgrade,
) -> Result<Response<Body>, ProxyError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| ProxyError::Http(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "streaming backend connection ended");
        }
    });
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| ProxyError::Http(e.to_string()))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let body = body.map_err(|e| -> super::BoxError { Box::new(e) }).boxed_unsync();
        return Ok(Response::from_parts(parts, body));
    }
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    let mut back = Response::new(super::empty());
    *back.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *back.headers_mut() = resp.headers().clone();
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
            (Ok(c), Ok(u)) => (c, u),
            (c, u) => {
                tracing::debug!(client = ?c.err(), upstream = ?u.err(), "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => tracing::debug!(up, down, "stream closed"),
            Err(e) => tracing::debug!(error = %e, "stream ended with error"),
        }
    });
    Ok(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_detection() {
        let mut h = HeaderMap::new();
        assert!(!is_upgrade(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(!is_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(!is_upgrade(&h));
    }

    #[test]
    fn upstream_request_keeps_protocol_headers_and_drops_credentials() {
        let req = Request::builder()
            .method("POST")
            .uri("https://node:10250/exec/ns/p/c?command=ls&stdout=1")
            .header("host", "node:10250")
            .header("authorization", "Bearer secret")
            .header("connection", "Upgrade")
            .header("upgrade", "SPDY/3.1")
            .header("x-stream-protocol-version", "v4.channel.k8s.io")
            .header("x-stream-protocol-version", "v3.channel.k8s.io")
            .header("sec-websocket-protocol", "v5.channel.k8s.io")
            .header("impersonate-user", "x")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let target: Uri = "http://127.0.0.1:4321/exec/tok123".parse().unwrap();
        let out = upstream_request(&parts, &target, Some("command=ls&stdout=1")).unwrap();
        assert_eq!(out.method(), "POST");
        assert_eq!(out.uri().to_string(), "/exec/tok123?command=ls&stdout=1");
        let h = out.headers();
        assert_eq!(h["host"], "127.0.0.1:4321");
        assert!(h.get("authorization").is_none());
        assert!(h.get("impersonate-user").is_none());
        assert_eq!(h["upgrade"], "SPDY/3.1");
        let versions: Vec<_> = h.get_all("x-stream-protocol-version").iter().collect();
        assert_eq!(versions.len(), 2);
        assert_eq!(h["sec-websocket-protocol"], "v5.channel.k8s.io");
    }
}
