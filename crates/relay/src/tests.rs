//! Tests of the relay against hand-written HTTP/1.1 backends on loopback.

use super::*;
use crate::testing::{echo_backend, read_head, refusing_backend};
use http_body_util::BodyExt;
use std::convert::Infallible;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn upgrade_detection() {
    let mut h = HeaderMap::new();
    assert!(!is_upgrade(&h));
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("keep-alive, Upgrade"),
    );
    assert!(!is_upgrade(&h));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(is_upgrade(&h));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    assert!(!is_upgrade(&h));
}

#[test]
fn backend_requests_drop_credentials_and_hop_by_hop_headers() {
    let req = Request::builder()
        .method("GET")
        .uri("/api/v1/nodes/n/proxy/pods")
        .header("authorization", "Bearer x")
        .header("impersonate-user", "y")
        .header("connection", "keep-alive")
        .header("accept", "application/json")
        .body(())
        .unwrap();
    let (parts, _) = req.into_parts();
    let out = backend_request(&parts, "/pods", "10.0.0.1:10250", ()).unwrap();
    let h = out.headers();
    assert!(h.get("authorization").is_none() && h.get("impersonate-user").is_none());
    assert!(
        h.get("connection").is_none(),
        "hop-by-hop header of a plain request"
    );
    assert_eq!(h["accept"], "application/json");
    assert_eq!(h["host"], "10.0.0.1:10250");
    assert_eq!(out.uri().to_string(), "/pods");

    let up = Request::builder()
        .method("POST")
        .uri("/x")
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .header("x-stream-protocol-version", "v4.channel.k8s.io")
        .header("x-stream-protocol-version", "v3.channel.k8s.io")
        .header("sec-websocket-protocol", "v5.channel.k8s.io")
        .body(())
        .unwrap();
    let (parts, _) = up.into_parts();
    let out = backend_request(&parts, "/exec/a/b/c?command=ls", "h:1", ()).unwrap();
    let h = out.headers();
    assert_eq!(out.method(), "POST");
    assert_eq!(h["connection"], "Upgrade");
    assert_eq!(h["upgrade"], "SPDY/3.1");
    assert_eq!(h.get_all("x-stream-protocol-version").iter().count(), 2);
    assert_eq!(h["sec-websocket-protocol"], "v5.channel.k8s.io");
}

/// Serves one connection, relaying each request to `backend` at `path`.
async fn front(backend: std::net::SocketAddr, path: &'static str) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| async move {
            let up = is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
            let (parts, body) = req.into_parts();
            let out = backend_request(&parts, path, &backend.to_string(), body).unwrap();
            let tcp = tokio::net::TcpStream::connect(backend).await.unwrap();
            let resp = send(TokioIo::new(tcp), out, up).await.unwrap();
            Ok::<_, Infallible>(resp)
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .with_upgrades()
            .await;
    });
    addr
}

#[tokio::test]
async fn upgraded_connections_are_piped_unchanged() {
    let (backend, seen) = echo_backend().await;
    let addr = front(backend, "/exec/default/web/app?command=sh&stdin=1").await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /api/v1/namespaces/default/pods/web/exec?command=sh&stdin=true HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer secret\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io, v4.channel.k8s.io\r\n\r\n").await.unwrap();
    let head = read_head(&mut c).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-protocol: v5.channel.k8s.io"),
        "{head}"
    );
    let backend_head = seen.await.unwrap();
    assert!(
        backend_head.starts_with("GET /exec/default/web/app?command=sh&stdin=1 HTTP/1.1"),
        "{backend_head}"
    );
    assert!(backend_head.contains("sec-websocket-protocol: v5.channel.k8s.io, v4.channel.k8s.io"));
    assert!(!backend_head.to_ascii_lowercase().contains("secret"));
    // arbitrary bytes, including ones that are not valid HTTP, come back unchanged
    let payload: Vec<u8> = (0..=255u8).rev().cycle().take(200_000).collect();
    let (mut r, mut w) = c.into_split();
    let writer = tokio::spawn({
        let payload = payload.clone();
        async move {
            w.write_all(&payload).await.unwrap();
            w
        }
    });
    let mut back = vec![0u8; payload.len()];
    r.read_exact(&mut back).await.unwrap();
    assert_eq!(back, payload);
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn plain_requests_are_relayed_with_their_body() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let head = read_head(&mut s).await;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        let first = head.lines().next().unwrap().to_string();
        let reply = format!("{first}|{}", String::from_utf8(body).unwrap());
        s.write_all(format!("HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{reply}", reply.len()).as_bytes()).await.unwrap();
    });
    let addr = front(backend, "/configz?x=1").await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"PUT /api/v1/nodes/n/proxy/configz?x=1 HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").await.unwrap();
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp).await;
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    assert!(resp.ends_with("PUT /configz?x=1 HTTP/1.1|hello"), "{resp}");
}

#[tokio::test]
async fn a_refused_upgrade_is_returned_as_is() {
    let backend = refusing_backend().await;
    let tcp = tokio::net::TcpStream::connect(backend).await.unwrap();
    let req = Request::builder()
        .method("POST")
        .uri("/exec/bad")
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send(TokioIo::new(tcp), req, None).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"unknown token");
}

#[tokio::test]
async fn a_backend_that_hangs_up_is_a_send_error() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        drop(s);
    });
    let tcp = tokio::net::TcpStream::connect(backend).await.unwrap();
    let req = Request::builder()
        .uri("/x")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let err = send(TokioIo::new(tcp), req, None).await.unwrap_err();
    assert!(matches!(err, RelayError::Send(_)), "{err}");
}
