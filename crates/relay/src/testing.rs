//! Hand-written HTTP/1.1 backends on loopback for tests of code that relays to one (the relay
//! itself, the API server's proxies, the kubelet's streaming redirect); built for the relay's
//! own tests and, with the `testing` feature, for other crates' tests.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Reads an HTTP head (up to and including the blank line) from `s`, byte by byte so nothing
/// after it is consumed. Panics on EOF or a non-UTF-8 head: it is for tests.
pub async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "eof in head: {head:?}");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A WebSocket-speaking backend for one connection: 101 with the first offered
/// `sec-websocket-protocol`, then an echo of every byte; hands back the request head it saw.
pub async fn echo_backend() -> (SocketAddr, oneshot::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let head = read_head(&mut s).await;
        let proto = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-protocol: "))
            .and_then(|v| v.split(',').next())
            .unwrap_or("")
            .trim()
            .to_string();
        let _ = tx.send(head);
        s.write_all(format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    (addr, rx)
}

/// A backend for one connection that refuses whatever it is asked with
/// `404 Not Found` and the body `unknown token`.
pub async fn refusing_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 13\r\n\r\nunknown token")
            .await
            .unwrap();
    });
    addr
}
