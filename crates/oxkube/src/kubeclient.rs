//! The kube-rs client the built-in components use: every request of a component multiplexed as
//! HTTP/2 streams over ONE TLS connection to the API server.
//!
//! kube-rs's default stack (hyper-util's pooled client) opens one HTTP/1.1 connection per
//! concurrent request, and every watch is a request that never ends: the garbage collector alone
//! watches every resource, so the control plane held ~60 TLS connections (each with buffers on
//! both ends) at idle. Here a component holds one connection whatever it watches; it is
//! re-established on the next request after it breaks (kube-rs watchers retry by themselves).
//! WebSocket upgrades (exec/attach/port-forward) need HTTP/1.1 and are not used by components.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kube::client::{Body, ConfigExt};
use tokio::sync::Mutex;
use tower::ServiceBuilder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A kube-rs client for `config` whose requests share one HTTP/2 connection.
pub fn client(config: kube::Config) -> anyhow::Result<kube::Client> {
    let mut tls = config.rustls_client_config().context("TLS configuration")?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let authority = config
        .cluster_url
        .authority()
        .context("cluster URL has no host")?
        .clone();
    if config.cluster_url.scheme_str() != Some("https") {
        anyhow::bail!("cluster URL {} is not https", config.cluster_url);
    }
    let server_name = rustls::pki_types::ServerName::try_from(
        config
            .tls_server_name
            .clone()
            .unwrap_or_else(|| authority.host().trim_matches(['[', ']']).to_string()),
    )
    .context("server name")?;
    let channel = H2Channel {
        inner: Arc::new(Inner {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            server_name,
            addr: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(443)
            ),
            connect_timeout: config.connect_timeout.unwrap_or(Duration::from_secs(30)),
            sender: Mutex::new(None),
        }),
    };
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(channel);
    Ok(kube::Client::new(service, config.default_namespace))
}

struct Inner {
    tls: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
    addr: String,
    connect_timeout: Duration,
    /// The live connection's handle; `None` (or a closed one) means the next request dials.
    sender: Mutex<Option<SendRequest<Body>>>,
}

impl Inner {
    async fn connect(&self) -> Result<SendRequest<Body>, BoxError> {
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(&self.addr),
        )
        .await
        .map_err(|_| format!("connecting to {} timed out", self.addr))??;
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(format!("{} did not negotiate HTTP/2", self.addr).into());
        }
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true)
            .adaptive_window(true)
            .handshake(TokioIo::new(tls))
            .await?;
        let addr = self.addr.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "API connection closed");
            }
        });
        Ok(sender)
    }

    /// The shared connection, dialled if there is none or it broke.
    async fn sender(&self) -> Result<SendRequest<Body>, BoxError> {
        let mut slot = self.sender.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let s = self.connect().await?;
        *slot = Some(s.clone());
        Ok(s)
    }
}

#[derive(Clone)]
struct H2Channel {
    inner: Arc<Inner>,
}

impl tower::Service<http::Request<Body>> for H2Channel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut sender = inner.sender().await?;
            sender.ready().await?;
            Ok(sender.send_request(req).await?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_plain_http_clusters() {
        let cfg = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let err = client(cfg).err().expect("plain http must be refused");
        assert!(err.to_string().contains("not https"), "{err}");
    }
}
