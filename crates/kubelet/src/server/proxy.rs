//! The upgrade-aware proxy between a kubelet API client and the runtime's streaming server: the
//! client's upgrade request (WebSocket or SPDY, its `Sec-WebSocket-Protocol` /
//! `X-Stream-Protocol-Version` offers untouched) is replayed through the shared [`relay`] to the
//! URL CRI Exec/Attach/PortForward returned; the answer goes back as is, and after a 101 both
//! connections are piped into each other byte for byte.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, Uri};
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
    Http(#[from] relay::RelayError),
}

/// The request to send upstream: the client's upgrade request on the target's path with the
/// client's query (credentials dropped by the relay), without a body.
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
    let host = target.authority().map(|a| a.as_str()).unwrap_or("");
    let mut req = relay::backend_request(parts, &pq, host, Empty::<Bytes>::new())?;
    // the body is not relayed
    req.headers_mut().remove(header::CONTENT_LENGTH);
    req.headers_mut().remove(header::TRANSFER_ENCODING);
    Ok(req)
}

/// Proxies an upgrade request to `target` (the client's query string is passed on, as
/// upstream's upgrade-aware handler does). A non-101 answer is returned to the client as is.
pub async fn upgrade(req: Request<Incoming>, target: &Uri) -> Result<Response<Body>, ProxyError> {
    if target.scheme_str() != Some("http") {
        return Err(ProxyError::Scheme(target.to_string()));
    }
    let host = target
        .host()
        .unwrap_or("127.0.0.1")
        .trim_matches(['[', ']']);
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
    let resp = relay::send(TokioIo::new(tcp), out, Some(client_upgrade)).await?;
    let (parts, body) = resp.into_parts();
    let body = body
        .map_err(|e| -> super::BoxError { Box::new(e) })
        .boxed_unsync();
    Ok(Response::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

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

    use relay::testing::{echo_backend, read_head, refusing_backend};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The runtime's streaming server stand-in: the relay's echo backend at an exec URL.
    async fn echo_upstream() -> (Uri, tokio::sync::oneshot::Receiver<String>) {
        let (addr, seen) = echo_backend().await;
        (format!("http://{addr}/exec/token-1").parse().unwrap(), seen)
    }

    /// A streaming server that refuses the token with 404 and a body.
    async fn refusing_upstream() -> Uri {
        let addr = refusing_backend().await;
        format!("http://{addr}/exec/bad").parse().unwrap()
    }

    /// Serves one connection whose requests are proxied to `target`.
    async fn front(target: Uri) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |req| {
                let target = target.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(match upgrade(req, &target).await {
                        Ok(r) => r,
                        Err(e) => {
                            let mut r = Response::new(super::super::full(e.to_string()));
                            *r.status_mut() = StatusCode::BAD_GATEWAY;
                            r
                        }
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .with_upgrades()
                .await;
        });
        addr
    }

    #[tokio::test]
    async fn pipes_an_upgraded_connection_both_ways() {
        let (target, seen) = echo_upstream().await;
        let addr = front(target).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /exec/ns/pod/ctr?command=sh&stdin=1 HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n\r\n").await.unwrap();
        let head = read_head(&mut c).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains("sec-websocket-protocol: v5.channel.k8s.io"),
            "{head}"
        );
        let upstream_head = seen.await.unwrap();
        assert!(
            upstream_head.starts_with("GET /exec/token-1?command=sh&stdin=1 HTTP/1.1"),
            "{upstream_head}"
        );
        assert!(
            upstream_head.contains("sec-websocket-protocol: v5.channel.k8s.io, v4.channel.k8s.io")
        );
        assert!(!upstream_head.to_ascii_lowercase().contains("authorization"));
        // the upgraded connection is joined to the upstream (byte fidelity is the relay's test)
        c.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
    }

    #[tokio::test]
    async fn a_refused_upgrade_is_returned_as_is() {
        let addr = front(refusing_upstream().await).await;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"POST /exec/ns/pod/ctr HTTP/1.1\r\nHost: node\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n").await.unwrap();
        // the connection stays open (keep-alive): read until the 13-byte body is in
        let mut resp = Vec::new();
        let mut buf = [0u8; 256];
        while !resp.ends_with(b"unknown token") {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "eof: {}", String::from_utf8_lossy(&resp));
            resp.extend_from_slice(&buf[..n]);
        }
        let resp = String::from_utf8(resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
        assert!(resp.ends_with("unknown token"), "{resp}");
    }

    #[tokio::test]
    async fn an_unreachable_backend_is_a_dial_error() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let target: Uri = format!("http://{addr}/x").parse().unwrap();
        let front = front(target).await;
        let mut c = tokio::net::TcpStream::connect(front).await.unwrap();
        c.write_all(
            b"GET /x HTTP/1.1\r\nHost: n\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
        let head = read_head(&mut c).await;
        assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    }
}
