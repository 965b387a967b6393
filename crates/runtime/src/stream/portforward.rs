//! Port forwarding as upstream's kubelet streaming server serves it: over SPDY
//! (`portforward.k8s.io`: per connection a data and an error stream sharing a `requestID`, the
//! port in a header), over WebSocket channels (`v4.channel.k8s.io` and friends: ports from the
//! request, channel 2i carries port i's data and 2i+1 its errors, each channel's first frame the
//! port as 2 little-endian bytes), and SPDY tunnelled in binary WebSocket messages
//! (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::session::{Session, Stream};
use super::websocket::{ChannelCodec, Incoming};

pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// WebSocket subprotocols for port-forward.
pub const WS_PROTOCOLS: &[&str] = &[
    super::websocket::SPDY_TUNNEL_PORT_FORWARD,
    super::websocket::V4_BINARY,
    super::websocket::V4_BASE64,
    super::websocket::PORT_FORWARD,
];

/// Dials a port of the pod.
pub trait Dialer: Send + Sync + 'static {
    fn dial(
        &self,
        port: u16,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<TcpStream, String>> + Send>>;
    /// Names the pod in error messages.
    fn pod(&self) -> String;
}

/// Upstream's message on a pair's error stream.
pub fn error_message(port: u16, pod: &str, err: &str) -> String {
    format!("error forwarding port {port} to pod {pod}, uid : {err}")
}

/// Parses the `port` header / query value.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!("invalid port {s:?}")),
    }
}

/// Ports of a WebSocket port-forward from the query (`port=80&port=8080`, also `ports=`,
/// comma-separated values allowed).
pub fn ports_from_query(query: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "port" || k == "ports" {
            for p in v.split(',').filter(|p| !p.is_empty()) {
                out.push(parse_port(p)?);
            }
        }
    }
    Ok(out)
}

/// Request ID of a SPDY stream: its `requestID` header, or for old clients derived from the
/// stream ID (the data stream is created right after its error stream).
fn request_id(s: &Stream) -> String {
    match s.header("requestid") {
        Some(id) => id.to_string(),
        None => match s.header("streamtype") {
            Some("data") => (s.id.saturating_sub(2)).to_string(),
            _ => s.id.to_string(),
        },
    }
}

/// Serves SPDY port-forward until the client closes the connection.
pub async fn serve_spdy<R, W>(r: R, w: W, dialer: Arc<dyn Dialer>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut session = Session::start(r, w);
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    let mut tasks = Vec::new();
    while let Some(s) = session.streams.recv().await {
        let id = request_id(&s);
        let entry = pending.entry(id.clone()).or_default();
        match s.header("streamtype") {
            Some("data") if entry.0.is_none() => entry.0 = Some(s),
            Some("error") if entry.1.is_none() => entry.1 = Some(s),
            other => {
                tracing::debug!(stream_type = ?other, request = %id, "unexpected port-forward stream reset");
                s.tx.reset().await;
                continue;
            }
        }
        if let (Some(_), Some(_)) = entry {
            let (data, error) = pending.remove(&id).expect("present");
            let (data, error) = (data.expect("data"), error.expect("error"));
            let dialer = dialer.clone();
            tasks.push(tokio::spawn(forward_pair(data, error, dialer)));
        }
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        t.abort();
    }
    session.close().await;
}

async fn forward_pair(mut data: Stream, error: Stream, dialer: Arc<dyn Dialer>) {
    let port = match data.header("port").map(parse_port) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            let _ = error.tx.write(e.as_bytes()).await;
            error.tx.fin().await;
            data.tx.fin().await;
            return;
        }
        None => {
            let _ = error.tx.write(b"\"port\" header is required").await;
            error.tx.fin().await;
            data.tx.fin().await;
            return;
        }
    };
    match dialer.dial(port).await {
        Err(e) => {
            let msg = error_message(port, &dialer.pod(), &e);
            tracing::debug!(error = %msg, "port-forward dial failed");
            let _ = error.tx.write(msg.as_bytes()).await;
        }
        Ok(conn) => {
            let (mut rd, mut wr) = conn.into_split();
            let up = async {
                while let Some(d) = data.rx.recv().await {
                    if wr.write_all(&d).await.is_err() {
                        return;
                    }
                }
                // the client half-closed: pass it on
                let _ = wr.shutdown().await;
                std::future::pending::<()>().await;
            };
            let down = async {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if data.tx.write(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            };
            // the pod side ending ends the connection (as upstream's runtimes do)
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        }
    }
    data.tx.fin().await;
    error.tx.fin().await;
}

/// Serves port-forward over WebSocket channels for `ports`.
pub async fn serve_websocket<S>(
    ws: WebSocketStream<S>,
    codec: ChannelCodec,
    ports: Vec<u16>,
    dialer: Arc<dyn Dialer>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut source) = ws.split();
    for (i, p) in ports.iter().enumerate() {
        let lp = p.to_le_bytes();
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            if sink.send(codec.encode(ch, &lp)).await.is_err() {
                return;
            }
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(32);
    let mut ups: Vec<Option<mpsc::Sender<Vec<u8>>>> = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (up_tx, mut up_rx) = mpsc::channel::<Vec<u8>>(16);
        ups.push(Some(up_tx));
        let out = out_tx.clone();
        let dialer = dialer.clone();
        tasks.push(tokio::spawn(async move {
            let data_ch = 2 * i as u8;
            match dialer.dial(port).await {
                Err(e) => {
                    let msg = error_message(port, &dialer.pod(), &e);
                    let _ = out.send((data_ch + 1, msg.into_bytes())).await;
                }
                Ok(conn) => {
                    let (mut rd, mut wr) = conn.into_split();
                    let up = async {
                        while let Some(d) = up_rx.recv().await {
                            if wr.write_all(&d).await.is_err() {
                                break;
                            }
                        }
                        std::future::pending::<()>().await;
                    };
                    let down = async {
                        let mut buf = vec![0u8; 32 * 1024];
                        loop {
                            match rd.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if out.send((data_ch, buf[..n].to_vec())).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                }
            }
        }));
    }
    drop(out_tx);
    loop {
        tokio::select! {
            o = out_rx.recv() => match o {
                Some((ch, d)) => if sink.send(codec.encode(ch, &d)).await.is_err() { break },
                // every port is done
                None => break,
            },
            m = source.next() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(m)) => {
                    if let Ok(Some(Incoming::Data(ch, d))) = codec.decode(&m) {
                        let i = (ch / 2) as usize;
                        if ch % 2 == 0 && !d.is_empty() {
                            if let Some(Some(tx)) = ups.get(i) {
                                if tx.send(d).await.is_err() {
                                    ups[i] = None;
                                }
                            }
                        }
                    }
                }
            },
        }
    }
    for t in tasks {
        t.abort();
    }
    let _ = sink.close().await;
}

/// Serves SPDY port-forward tunnelled through binary WebSocket messages.
pub async fn serve_tunnel<S>(ws: WebSocketStream<S>, dialer: Arc<dyn Dialer>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut tr, mut tw) = tokio::io::split(ours);
    let (r, w) = tokio::io::split(theirs);
    let spdy = tokio::spawn(serve_spdy(r, w, dialer));
    let inbound = async {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Binary(b) if tw.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = tw.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    // the SPDY side closing (outbound EOF) ends the tunnel
    tokio::select! {
        _ = async { tokio::join!(inbound, std::future::pending::<()>()) } => {}
        _ = outbound => {}
    }
    spdy.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_messages() {
        assert_eq!(ports_from_query("port=80&port=8080"), Ok(vec![80, 8080]));
        assert_eq!(ports_from_query("ports=80,443&x=1"), Ok(vec![80, 443]));
        assert_eq!(ports_from_query(""), Ok(vec![]));
        assert!(ports_from_query("port=0").is_err());
        assert!(ports_from_query("port=70000").is_err());
        assert!(parse_port("abc").is_err());
        assert_eq!(
            error_message(81, "abc", "connection refused"),
            "error forwarding port 81 to pod abc, uid : connection refused"
        );
    }
}
