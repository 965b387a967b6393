//! The HTTP(S) GET client of httpGet probes and lifecycle hooks: one connection per request
//! (keep-alives off, as upstream's probe transport), TLS without certificate verification, at
//! most 10 redirects, and a redirect to another host ends the chain with the 3xx response (upstream
//! `followNonLocalRedirects=false`). The response body is read up to 10 KiB.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest part of a response body kept for the probe output.
pub const MAX_BODY: usize = 10 * 1024;
/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 10;

/// A GET request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    /// `http` or `https`.
    pub scheme: String,
    /// Host to connect to (IP or name) and port.
    pub host: String,
    pub port: u16,
    /// Path and query as given (`/healthz?x=1`).
    pub path: String,
    /// Headers in order; a `Host` header overrides the Host sent.
    pub headers: Vec<(String, String)>,
}

impl HttpGet {
    /// The URL, as upstream's `formatURL` builds it.
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let path = if self.path.is_empty() || self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        format!("{}://{}:{}{}", self.scheme, host, self.port, path)
    }
}

/// The last response of a GET (after redirects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
    /// The chain stopped at a redirect to another host.
    pub redirect_not_followed: bool,
}

/// Transport failures, worded like Go's client errors (`Get "url": ...`).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("Get {url:?}: {message}")]
    Get { url: String, message: String },
    #[error("Get {url:?}: http: server gave HTTP response to HTTPS client")]
    HttpToHttps { url: String },
}

/// A TLS verifier that accepts every certificate (probes do not verify, as upstream).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Go's wording of a dial failure: `dial tcp 10.0.0.1:80: connect: connection refused`.
pub fn dial_error(addr: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        std::io::ErrorKind::TimedOut => format!("dial tcp {addr}: i/o timeout"),
        _ => format!(
            "dial tcp {addr}: {}",
            e.to_string().split(" (os error").next().unwrap_or("")
        ),
    }
}

/// `host:port`, bracketing IPv6 literals.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Sends the GET (following same-host redirects). The caller bounds the whole call with its
/// timeout.
pub async fn get(req: &HttpGet, user_agent: &str) -> Result<HttpResponse, HttpError> {
    let mut current = req.clone();
    let original_host = req.host.clone();
    let mut redirects = 0;
    loop {
        let url = current.url();
        let resp = send_once(&current, user_agent).await?;
        let status = resp.0;
        let location = resp.1;
        let body = resp.2;
        let is_redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
        let Some(location) = location.filter(|_| is_redirect) else {
            return Ok(HttpResponse {
                status: status.as_u16(),
                body,
                redirect_not_followed: false,
            });
        };
        let next = resolve_redirect(&current, &location).map_err(|message| HttpError::Get {
            url: url.clone(),
            message,
        })?;
        if next.host != original_host {
            return Ok(HttpResponse {
                status: status.as_u16(),
                body,
                redirect_not_followed: true,
            });
        }
        redirects += 1;
        if redirects >= MAX_REDIRECTS {
            return Err(HttpError::Get {
                url: next.url(),
                message: format!("stopped after {MAX_REDIRECTS} redirects"),
            });
        }
        current = next;
    }
}

/// The request a redirect `Location` leads to (absolute or relative to the current URL).
pub fn resolve_redirect(current: &HttpGet, location: &str) -> Result<HttpGet, String> {
    let mut next = current.clone();
    if let Some(rest) = location
        .strip_prefix("http://")
        .map(|r| ("http", r))
        .or_else(|| location.strip_prefix("https://").map(|r| ("https", r)))
    {
        let (scheme, rest) = rest;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_authority(authority, if scheme == "https" { 443 } else { 80 })?;
        next.scheme = scheme.into();
        next.host = host;
        next.port = port;
        next.path = path.into();
    } else if location.starts_with("//") {
        return resolve_redirect(current, &format!("{}:{location}", current.scheme));
    } else if location.starts_with('/') {
        next.path = location.into();
    } else {
        // relative to the current path's directory
        let base = current.path.split('?').next().unwrap_or("");
        let dir = match base.rfind('/') {
            Some(i) => &base[..=i],
            None => "/",
        };
        next.path = format!("{dir}{location}");
    }
    Ok(next)
}

fn split_authority(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("invalid redirect location host {authority:?}");
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => default_port,
        };
        return Ok((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), p.parse().map_err(|_| bad())?)),
        None => Ok((authority.to_string(), default_port)),
    }
}

fn build_request(req: &HttpGet, user_agent: &str) -> Result<Request<Empty<Bytes>>, String> {
    let path = if req.path.is_empty() {
        "/"
    } else {
        req.path.as_str()
    };
    let uri: Uri = path
        .parse()
        .map_err(|e| format!("invalid path {path:?}: {e}"))?;
    let mut headers = HeaderMap::new();
    for (k, v) in &req.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(v).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::USER_AGENT) {
        headers.insert(
            http::header::USER_AGENT,
            HeaderValue::from_str(user_agent).map_err(|e| e.to_string())?,
        );
    }
    match headers.get(http::header::ACCEPT) {
        None => {
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        Some(v) if v.is_empty() => {
            headers.remove(http::header::ACCEPT);
        }
        Some(_) => {}
    }
    let host_header = match headers.get(http::header::HOST) {
        Some(h) if !h.is_empty() => h.clone(),
        _ => HeaderValue::from_str(&join_host_port(&req.host, req.port))
            .map_err(|e| e.to_string())?,
    };
    headers.insert(http::header::HOST, host_header);
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    *request.headers_mut() = headers;
    Ok(request)
}

type Sent = (StatusCode, Option<String>, String);

async fn send_once(req: &HttpGet, user_agent: &str) -> Result<Sent, HttpError> {
    let url = req.url();
    let fail = |message: String| HttpError::Get {
        url: url.clone(),
        message,
    };
    let request = build_request(req, user_agent).map_err(fail)?;
    let addr = join_host_port(&req.host, req.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| fail(dial_error(&addr, &e)))?;
    let _ = tcp.set_nodelay(true);
    if req.scheme == "https" {
        let name = match req.host.parse::<std::net::IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::IpAddress(ip.into()),
            Err(_) => rustls::pki_types::ServerName::try_from(req.host.clone())
                .map_err(|e| fail(e.to_string()))?,
        };
        let tls = match tls_connector().connect(name, tcp).await {
            Ok(t) => t,
            Err(e) => {
                // a plain HTTP server answering a TLS hello
                let text = e.to_string();
                if text.contains("corrupt message") || text.contains("InvalidContentType") {
                    return Err(HttpError::HttpToHttps { url });
                }
                return Err(fail(text));
            }
        };
        exchange(tls, request).await.map_err(fail)
    } else {
        exchange(tcp, request).await.map_err(fail)
    }
}

async fn exchange<S>(stream: S, request: Request<Empty<Bytes>>) -> Result<Sent, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Title-Case header names on the wire, as Go's client writes them
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let mut body = resp.into_body();
        let mut data = Vec::new();
        while data.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        data.extend_from_slice(chunk);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        data.truncate(MAX_BODY);
        Ok((
            status,
            location,
            String::from_utf8_lossy(&data).into_owned(),
        ))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_req(path: &str) -> HttpGet {
        HttpGet {
            scheme: "http".into(),
            host: "10.1.0.5".into(),
            port: 8080,
            path: path.into(),
            headers: vec![],
        }
    }

    #[test]
    fn urls() {
        assert_eq!(get_req("/healthz").url(), "http://10.1.0.5:8080/healthz");
        assert_eq!(get_req("").url(), "http://10.1.0.5:8080");
        assert_eq!(get_req("ready?x=1").url(), "http://10.1.0.5:8080/ready?x=1");
        let v6 = HttpGet {
            host: "fd00::1".into(),
            scheme: "https".into(),
            ..get_req("/")
        };
        assert_eq!(v6.url(), "https://[fd00::1]:8080/");
    }

    #[test]
    fn redirects_resolve() {
        let cur = get_req("/a/b?q=1");
        let cases = [
            ("/x", ("http", "10.1.0.5", 8080, "/x")),
            ("c", ("http", "10.1.0.5", 8080, "/a/c")),
            ("http://other:81/y", ("http", "other", 81, "/y")),
            ("https://10.1.0.5/z", ("https", "10.1.0.5", 443, "/z")),
            ("//h2", ("http", "h2", 80, "/")),
            ("http://[fd00::2]:9/p", ("http", "fd00::2", 9, "/p")),
        ];
        for (loc, (scheme, host, port, path)) in cases {
            let n = resolve_redirect(&cur, loc).unwrap();
            assert_eq!(
                (n.scheme.as_str(), n.host.as_str(), n.port, n.path.as_str()),
                (scheme, host, port, path),
                "{loc}"
            );
        }
    }

    #[test]
    fn request_headers() {
        let mut r = get_req("/h");
        r.headers = vec![
            ("Host".into(), "example.com".into()),
            ("X-Custom".into(), "1".into()),
            ("Accept".into(), "".into()),
        ];
        let req = build_request(&r, "kube-probe/1.33").unwrap();
        let h = req.headers();
        assert_eq!(h["host"], "example.com");
        assert_eq!(h["user-agent"], "kube-probe/1.33");
        assert_eq!(h["x-custom"], "1");
        assert!(!h.contains_key("accept"));
        let plain = build_request(&get_req("/"), "kube-probe/1.33").unwrap();
        assert_eq!(plain.headers()["accept"], "*/*");
        assert_eq!(plain.headers()["host"], "10.1.0.5:8080");
        let mut ua = get_req("/");
        ua.headers = vec![("user-agent".into(), "mine".into())];
        assert_eq!(
            build_request(&ua, "kube-probe/1.33").unwrap().headers()["user-agent"],
            "mine"
        );
    }
}
