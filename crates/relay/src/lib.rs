//! The upgrade-aware HTTP relay shared by the API server (connect subresources, node, pod and
//! service proxies) and the kubelet API (exec/attach/port-forward to the runtime's streaming
//! server): a client's request is replayed to a backend over a connection the caller dialled,
//! the backend's answer comes back as is, and after a `101 Switching Protocols` both upgraded
//! connections are joined byte for byte (WebSocket, SPDY: whatever was negotiated).

use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// Errors relaying a request.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("invalid backend request: {0}")]
    Request(#[from] http::Error),
    #[error("backend handshake failed: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("backend request failed: {0}")]
    Send(#[source] hyper::Error),
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

/// Headers passed on to a backend: not the client's credentials, impersonation or connection
/// details (the hop-by-hop `Connection`, `Upgrade` and `Transfer-Encoding` stay for upgrades).
fn passed_on(name: &str, upgrade: bool) -> bool {
    !matches!(
        name,
        "host"
            | "authorization"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "keep-alive"
            | "proxy-connection"
    ) && !name.starts_with("impersonate-")
        && (upgrade || !matches!(name, "connection" | "upgrade" | "transfer-encoding"))
}

/// The request replayed to a backend: the client's method on `path_and_query`, its headers
/// filtered by [`passed_on`], `Host` set to `host` (the backend's `host:port`).
pub fn backend_request<B>(
    parts: &http::request::Parts,
    path_and_query: &str,
    host: &str,
    body: B,
) -> Result<Request<B>, RelayError> {
    let upgrade = is_upgrade(&parts.headers);
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(path_and_query)
        .body(body)?;
    for (k, v) in &parts.headers {
        if passed_on(k.as_str(), upgrade) {
            req.headers_mut().append(k.clone(), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(host) {
        req.headers_mut().insert(header::HOST, v);
    }
    Ok(req)
}

/// Sends `out` over `io` (HTTP/1.1) and returns the backend's response. When the client asked
/// for an upgrade (`client_upgrade`, from `hyper::upgrade::on` on its request) and the backend
/// answers 101, the two upgraded connections are joined in a background task once the 101 has
/// reached the client; any other answer is returned unchanged with its body streaming.
pub async fn send<I, B>(
    io: I,
    out: Request<B>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Incoming>, RelayError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(RelayError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    let mut resp = sender.send_request(out).await.map_err(RelayError::Send)?;
    if let Some(client_upgrade) =
        client_upgrade.filter(|_| resp.status() == StatusCode::SWITCHING_PROTOCOLS)
    {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, backend) = match tokio::join!(client_upgrade, backend_upgrade) {
                (Ok(c), Ok(b)) => (c, b),
                (c, b) => {
                    tracing::debug!(client = ?c.err(), backend = ?b.err(), "upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut backend = TokioIo::new(backend);
            match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
                Ok((up, down)) => tracing::debug!(up, down, "upgraded stream closed"),
                Err(e) => tracing::debug!(error = %e, "upgraded stream ended with error"),
            }
        });
    }
    Ok(resp)
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;
