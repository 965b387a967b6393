//! CRI streaming tests: Exec, Attach and PortForward return a URL on the runtime's streaming
//! server, and clients written here speak upstream's protocols to it (WebSocket channels v4/v5,
//! SPDY/3.1 framed with the runtime's codec, WebSocket-tunnelled SPDY), against busybox
//! containers. The same clients run against containerd's streaming server, which proves them.

use std::collections::HashMap;
use std::time::Duration;

use cri::v1 as pb;
use futures::{SinkExt, StreamExt};
use runtime::stream::spdy::{self, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::containers::{container_config, create, pod, remove_pod, start, wait_exited, Pod};
use crate::harness::Target;

/// Generous bound for one streaming session.
const SESSION: Duration = Duration::from_secs(60);

fn host_of(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    (host.to_string(), format!("/{path}"))
}

// ---------------------------------------------------------------- WebSocket client

struct Ws {
    ws: WebSocketStream<TcpStream>,
    protocol: String,
    /// Output read but not yet asked for, per channel.
    pending: HashMap<u8, Vec<u8>>,
}

async fn ws_connect(url: &str, protocols: &[&str]) -> Result<Ws, String> {
    let (host, _) = host_of(url);
    let mut req = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .unwrap();
    if !protocols.is_empty() {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols.join(", ").parse().unwrap(),
        );
    }
    let tcp = TcpStream::connect(&host).await.map_err(|e| e.to_string())?;
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let protocol = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok(Ws {
        ws,
        protocol,
        pending: HashMap::new(),
    })
}

impl Ws {
    async fn send(&mut self, channel: u8, data: &[u8]) {
        let mut v = vec![channel];
        v.extend_from_slice(data);
        self.ws.send(Message::Binary(v.into())).await.unwrap();
    }

    /// Next data message as (channel, payload); None once the server closed.
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Binary(b)) if !b.is_empty() => return Some((b[0], b[1..].to_vec())),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Everything per channel until the server closes.
    async fn collect(mut self) -> HashMap<u8, Vec<u8>> {
        let mut out = std::mem::take(&mut self.pending);
        tokio::time::timeout(SESSION, async {
            while let Some((ch, d)) = self.next().await {
                out.entry(ch).or_default().extend(d);
            }
        })
        .await
        .expect("websocket session ends");
        out
    }

    /// Reads until `channel` has produced output containing `needle`; returns that channel's
    /// output so far (other channels' output is kept for later calls).
    async fn read_until(&mut self, channel: u8, needle: &str) -> String {
        let done = tokio::time::timeout(SESSION, async {
            loop {
                let have = self.pending.get(&channel).map(Vec::as_slice).unwrap_or(b"");
                if String::from_utf8_lossy(have).contains(needle) {
                    return true;
                }
                match self.next().await {
                    Some((ch, d)) => self.pending.entry(ch).or_default().extend(d),
                    None => return false,
                }
            }
        })
        .await;
        let seen = String::from_utf8_lossy(&self.pending.remove(&channel).unwrap_or_default())
            .into_owned();
        assert!(
            matches!(done, Ok(true)),
            "no {needle:?} on channel {channel}, got {seen:?}"
        );
        seen
    }
}

fn status_of(out: &HashMap<u8, Vec<u8>>) -> serde_json::Value {
    serde_json::from_slice(out.get(&3).expect("error channel")).expect("status json")
}

fn text(out: &HashMap<u8, Vec<u8>>, ch: u8) -> String {
    String::from_utf8_lossy(out.get(&ch).map(Vec::as_slice).unwrap_or(b"")).into_owned()
}

// ---------------------------------------------------------------- SPDY client

/// A byte transport under the SPDY client: a plain upgraded TCP connection, or the WebSocket
/// tunnel (each write one binary message).
enum Transport {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

struct Spdy {
    io: Transport,
    enc: spdy::Encoder,
    dec: spdy::Decoder,
    next_id: u32,
}

/// Upgrades `url` to SPDY/3.1 offering `protocols`; returns the client and the chosen protocol.
async fn spdy_connect(url: &str, protocols: &[&str]) -> Result<(Spdy, String), String> {
    let (host, path) = host_of(url);
    let mut tcp = TcpStream::connect(&host).await.map_err(|e| e.to_string())?;
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nContent-Length: 0\r\n"
    );
    for p in protocols {
        req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut b).await.map_err(|e| e.to_string())? == 0 {
            return Err(format!(
                "eof in response head: {}",
                String::from_utf8_lossy(&head)
            ));
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        return Err(head);
    }
    let proto = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-stream-protocol-version")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok((
        Spdy {
            io: Transport::Tcp(tcp),
            enc: spdy::Encoder::new(),
            dec: spdy::Decoder::new(),
            next_id: 1,
        },
        proto,
    ))
}

impl Spdy {
    async fn write(&mut self, f: Frame) {
        let bytes = self.enc.encode(&f);
        match &mut self.io {
            Transport::Tcp(t) => t.write_all(&bytes).await.unwrap(),
            Transport::Ws(w) => w.send(Message::Binary(bytes.into())).await.unwrap(),
        }
    }

    /// Opens a client stream (odd IDs) with `headers`.
    async fn open(&mut self, headers: &[(&str, &str)]) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        self.write(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .await;
        id
    }

    async fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        self.write(Frame::Data {
            stream_id: id,
            fin,
            data: data.to_vec(),
        })
        .await;
    }

    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.next_frame().expect("valid spdy from the server") {
                return Some(f);
            }
            match &mut self.io {
                Transport::Tcp(t) => {
                    let mut buf = vec![0u8; 32 * 1024];
                    let n = t.read(&mut buf).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    self.dec.feed(&buf[..n]);
                }
                Transport::Ws(w) => match w.next().await? {
                    Ok(Message::Binary(b)) => self.dec.feed(&b),
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                },
            }
        }
    }

    /// Data per stream until every stream in `until_fin` has ended (FIN/RST) or the
    /// connection closes; also answers that every opened stream got its SYN_REPLY.
    async fn collect(&mut self, until_fin: &[u32]) -> (HashMap<u32, Vec<u8>>, Vec<u32>) {
        let mut out: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut replied = Vec::new();
        let mut open: Vec<u32> = until_fin.to_vec();
        tokio::time::timeout(SESSION, async {
            while !open.is_empty() {
                match self.frame().await {
                    Some(Frame::Data {
                        stream_id,
                        fin,
                        data,
                    }) => {
                        out.entry(stream_id).or_default().extend(data);
                        if fin {
                            open.retain(|s| *s != stream_id);
                        }
                    }
                    Some(Frame::SynReply { stream_id, .. }) => replied.push(stream_id),
                    Some(Frame::RstStream { stream_id, .. }) => open.retain(|s| *s != stream_id),
                    Some(_) => {}
                    None => break,
                }
            }
        })
        .await
        .expect("spdy session ends");
        (out, replied)
    }
}

// ---------------------------------------------------------------- helpers

async fn running(t: &mut Target, name: &str, cfg: pb::ContainerConfig) -> (Pod, String) {
    let (sb, _) = pod(t, name).await;
    let id = create(t, &sb, cfg).await.expect("create");
    start(t, &id).await.expect("start");
    (sb, id)
}

fn exec_req(id: &str, cmd: &[&str], stdin: bool, tty: bool) -> pb::ExecRequest {
    pb::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

async fn exec_url(t: &mut Target, req: pb::ExecRequest) -> String {
    t.rt.exec(req).await.expect("Exec").into_inner().url
}

fn exit_code(status: &serde_json::Value) -> Option<String> {
    status["details"]["causes"]
        .as_array()?
        .iter()
        .find(|c| c["reason"] == "ExitCode")
        .and_then(|c| c["message"].as_str())
        .map(str::to_string)
}

// ---------------------------------------------------------------- tests

/// Exec over WebSocket `v4.channel.k8s.io`: stdin, stdout, stderr, exit codes as Status.
pub async fn exec_over_websocket_v4(mut t: Target) {
    let (sb, id) = running(&mut t, "wsv4", container_config("c", &["sleep", "1000"])).await;
    let script = "read x; echo out:$x; echo err:$x >&2; exit 3";
    let url = exec_url(&mut t, exec_req(&id, &["sh", "-c", script], true, false)).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(ws.protocol, "v4.channel.k8s.io");
    ws.send(0, b"hello\n").await;
    let out = ws.collect().await;
    assert_eq!(text(&out, 1), "out:hello\n");
    assert_eq!(text(&out, 2), "err:hello\n");
    let st = status_of(&out);
    assert_eq!(st["status"], "Failure", "{st}");
    assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
    assert_eq!(exit_code(&st).as_deref(), Some("3"), "{st}");

    // success, and the URL is single-use
    let url = exec_url(&mut t, exec_req(&id, &["echo", "fine"], false, false)).await;
    let out = ws_connect(&url, &["v4.channel.k8s.io"])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(text(&out, 1), "fine\n");
    assert_eq!(status_of(&out)["status"], "Success");
    assert!(
        ws_connect(&url, &["v4.channel.k8s.io"]).await.is_err(),
        "a used token is refused"
    );

    // a command that is not there is a failure, never success
    let url = exec_url(&mut t, exec_req(&id, &["/no/such/tool"], false, false)).await;
    let out = ws_connect(&url, &["v4.channel.k8s.io"])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(status_of(&out)["status"], "Failure", "{out:?}");
    remove_pod(&mut t, &sb.id).await;
}

/// Exec over `v5.channel.k8s.io` (kubectl 1.33's default): closing stdin with the close signal.
pub async fn exec_over_websocket_v5(mut t: Target) {
    let (sb, id) = running(&mut t, "wsv5", container_config("c", &["sleep", "1000"])).await;
    let url = exec_url(
        &mut t,
        exec_req(&id, &["sh", "-c", "cat; echo done"], true, false),
    )
    .await;
    let mut ws = ws_connect(&url, &["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(ws.protocol, "v5.channel.k8s.io");
    ws.send(0, b"abc").await;
    ws.send(0, b"def\n").await;
    // channel 255: "close channel 0" (stdin EOF); cat ends, the command finishes
    ws.send(255, &[0]).await;
    let out = ws.collect().await;
    assert_eq!(text(&out, 1), "abcdef\ndone\n");
    assert_eq!(status_of(&out)["status"], "Success");
    remove_pod(&mut t, &sb.id).await;
}

/// Exec on a terminal: the process sees a tty, resize reaches it, output comes on stdout.
pub async fn exec_with_tty(mut t: Target) {
    let (sb, id) = running(&mut t, "tty", container_config("c", &["sleep", "1000"])).await;
    let script = "test -t 0 && echo is-a-tty; read x; stty size; echo got:$x";
    let url = exec_url(&mut t, exec_req(&id, &["sh", "-c", script], true, true)).await;
    let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    ws.read_until(1, "is-a-tty").await;
    ws.send(4, br#"{"Width":123,"Height":45}"#).await;
    // give the resize a head start over the line (containerd applies it asynchronously)
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(0, b"hi\r").await;
    let out = ws.collect().await;
    let s = text(&out, 1);
    assert!(s.contains("45 123"), "{s:?}");
    assert!(s.contains("got:hi"), "{s:?}");
    assert!(
        !out.contains_key(&2) || out[&2].is_empty(),
        "no stderr on a tty"
    );
    assert_eq!(status_of(&out)["status"], "Success");
    remove_pod(&mut t, &sb.id).await;
}

/// Exec over SPDY (kubectl's fallback): streams by streamType, status on the error stream.
pub async fn exec_over_spdy(mut t: Target) {
    let (sb, id) = running(&mut t, "spdy", container_config("c", &["sleep", "1000"])).await;
    let script = "read x; echo out:$x; echo err:$x >&2; exit 7";
    let url = exec_url(&mut t, exec_req(&id, &["sh", "-c", script], true, false)).await;
    let (mut c, proto) = spdy_connect(
        &url,
        &[
            "v4.channel.k8s.io",
            "v3.channel.k8s.io",
            "v2.channel.k8s.io",
            "channel.k8s.io",
        ],
    )
    .await
    .unwrap();
    assert_eq!(proto, "v4.channel.k8s.io");
    let err = c.open(&[("streamType", "error")]).await;
    let stdin = c.open(&[("streamType", "stdin")]).await;
    let stdout = c.open(&[("streamType", "stdout")]).await;
    let stderr = c.open(&[("streamType", "stderr")]).await;
    c.data(stdin, b"spdy\n", true).await;
    let (out, replied) = c.collect(&[err, stdout, stderr]).await;
    for s in [err, stdin, stdout, stderr] {
        assert!(replied.contains(&s), "stream {s} got its SYN_REPLY");
    }
    assert_eq!(String::from_utf8_lossy(&out[&stdout]), "out:spdy\n");
    assert_eq!(String::from_utf8_lossy(&out[&stderr]), "err:spdy\n");
    let st: serde_json::Value = serde_json::from_slice(&out[&err]).unwrap();
    assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
    assert_eq!(exit_code(&st).as_deref(), Some("7"));

    // an unknown protocol is refused with the accepted ones listed
    let url = exec_url(&mut t, exec_req(&id, &["true"], false, false)).await;
    let e = spdy_connect(&url, &["v9.channel.k8s.io"])
        .await
        .err()
        .expect("refused");
    assert!(e.starts_with("HTTP/1.1 403"), "{e}");
    remove_pod(&mut t, &sb.id).await;
}

/// Exec and Attach requests are validated as upstream's streaming server does.
pub async fn stream_requests_are_validated(mut t: Target) {
    let (sb, id) = running(&mut t, "valid", container_config("c", &["sleep", "1000"])).await;
    let mut bad = exec_req(&id, &["true"], false, true);
    bad.stderr = true;
    let e = t.rt.exec(bad).await.expect_err("tty+stderr");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let mut bad = exec_req(&id, &["true"], false, false);
    bad.stdout = false;
    bad.stderr = false;
    let e = t.rt.exec(bad).await.expect_err("no streams");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let e =
        t.rt.attach(pb::AttachRequest {
            container_id: id.clone(),
            stdin: false,
            tty: true,
            stdout: true,
            stderr: true,
        })
        .await
        .expect_err("tty+stderr");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    let e =
        t.rt.port_forward(pb::PortForwardRequest {
            pod_sandbox_id: String::new(),
            port: vec![80],
        })
        .await
        .expect_err("no sandbox");
    assert_ne!(e.code(), tonic::Code::Ok);
    remove_pod(&mut t, &sb.id).await;
}

/// Attach to a container that keeps stdin open: output of both streams, stdin fed.
pub async fn attach_streams_stdio(mut t: Target) {
    let mut cfg = container_config(
        "c",
        &[
            "sh",
            "-c",
            "while read l; do echo got:$l; echo err:$l >&2; done; echo bye",
        ],
    );
    cfg.stdin = true;
    let (sb, id) = running(&mut t, "attach", cfg).await;
    let attach = |stdin: bool| pb::AttachRequest {
        container_id: id.clone(),
        stdin,
        tty: false,
        stdout: true,
        stderr: true,
    };
    let url =
        t.rt.attach(attach(true))
            .await
            .expect("Attach")
            .into_inner()
            .url;
    let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    ws.send(0, b"one\n").await;
    ws.read_until(1, "got:one").await;
    ws.read_until(2, "err:one").await;
    drop(ws);
    // a second session: the container's stdin stayed open (not stdin_once)
    let url =
        t.rt.attach(attach(true))
            .await
            .expect("Attach")
            .into_inner()
            .url;
    let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    ws.send(0, b"two\n").await;
    let s = ws.read_until(1, "got:two").await;
    assert!(!s.contains("got:one"), "attach does not replay: {s:?}");
    drop(ws);
    remove_pod(&mut t, &sb.id).await;
}

/// Attach to a container running a shell on a terminal.
pub async fn attach_to_tty(mut t: Target) {
    let mut cfg = container_config("c", &["sh"]);
    cfg.stdin = true;
    cfg.tty = true;
    let (sb, id) = running(&mut t, "attachtty", cfg).await;
    let url =
        t.rt.attach(pb::AttachRequest {
            container_id: id.clone(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        })
        .await
        .expect("Attach")
        .into_inner()
        .url;
    let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    ws.send(4, br#"{"Width":90,"Height":20}"#).await;
    // give the resize a head start over the line (containerd applies it asynchronously)
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(0, b"echo $((6*7)); stty size\r").await;
    let seen = ws.read_until(1, "20 90").await;
    assert!(seen.contains("42"), "{seen:?}");
    // exiting the shell ends the container and the session
    ws.send(0, b"exit\r").await;
    let out = ws.collect().await;
    assert_eq!(status_of(&out)["status"], "Success", "{out:?}");
    let st = wait_exited(&mut t, &id).await;
    assert_eq!(st.exit_code, 0);
    remove_pod(&mut t, &sb.id).await;
}

/// An echo server on port 8080 in a pod (busybox nc, persistent).
async fn echo_pod(t: &mut Target, name: &str) -> (Pod, String) {
    running(
        t,
        name,
        container_config("echo", &["nc", "-ll", "-p", "8080", "-e", "cat"]),
    )
    .await
}

async fn pf_url(t: &mut Target, sb: &str, ports: &[i32]) -> String {
    t.rt.port_forward(pb::PortForwardRequest {
        pod_sandbox_id: sb.into(),
        port: ports.to_vec(),
    })
    .await
    .expect("PortForward")
    .into_inner()
    .url
}

/// One echo round trip over a SPDY port-forward connection (already upgraded).
async fn spdy_echo(c: &mut Spdy, request_id: &str, port: &str, msg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let err = c
        .open(&[
            ("streamType", "error"),
            ("port", port),
            ("requestID", request_id),
        ])
        .await;
    let data = c
        .open(&[
            ("streamType", "data"),
            ("port", port),
            ("requestID", request_id),
        ])
        .await;
    c.data(data, msg, false).await;
    let mut got: HashMap<u32, Vec<u8>> = HashMap::new();
    tokio::time::timeout(SESSION, async {
        loop {
            match c.frame().await {
                Some(Frame::Data {
                    stream_id,
                    fin,
                    data: d,
                }) => {
                    got.entry(stream_id).or_default().extend(d);
                    let echoed = got.get(&data).is_some_and(|v| v.len() >= msg.len());
                    let failed = stream_id == err && (fin || got.contains_key(&err));
                    if echoed || failed {
                        break;
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
    })
    .await
    .expect("port-forward answers");
    // done with this connection
    c.data(data, b"", true).await;
    (
        got.remove(&data).unwrap_or_default(),
        got.remove(&err).unwrap_or_default(),
    )
}

/// Port-forward over SPDY (`portforward.k8s.io`, kubectl before 1.31 and with the websocket
/// feature off): data round trip, and a refused port reported on the error stream.
pub async fn port_forward_over_spdy(mut t: Target) {
    let (sb, _) = echo_pod(&mut t, "pfspdy").await;
    // nc starts asynchronously: retry until it answers
    let (mut echoed, mut err) = (vec![], vec![]);
    for n in 0..50 {
        let url = pf_url(&mut t, &sb.id, &[]).await;
        let (mut c, proto) = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
        assert_eq!(proto, "portforward.k8s.io");
        (echoed, err) = spdy_echo(&mut c, &n.to_string(), "8080", b"ping over spdy\n").await;
        if !echoed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        String::from_utf8_lossy(&echoed),
        "ping over spdy\n",
        "error stream: {}",
        String::from_utf8_lossy(&err)
    );
    // two connections in one session, one to a closed port
    let url = pf_url(&mut t, &sb.id, &[]).await;
    let (mut c, _) = spdy_connect(&url, &["portforward.k8s.io"]).await.unwrap();
    let (echoed, _) = spdy_echo(&mut c, "0", "8080", b"first\n").await;
    assert_eq!(echoed, b"first\n");
    let (echoed, err) = spdy_echo(&mut c, "1", "1", b"nobody\n").await;
    assert!(echoed.is_empty());
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("forwarding port 1"), "{err}");
    remove_pod(&mut t, &sb.id).await;
}

/// Port-forward over WebSocket channels (kube-rs, Python): the port prefix on each channel,
/// data on 2i, errors on 2i+1.
pub async fn port_forward_over_websocket(mut t: Target) {
    let (sb, _) = echo_pod(&mut t, "pfws").await;
    let mut echoed = String::new();
    for _ in 0..50 {
        let url = pf_url(&mut t, &sb.id, &[8080, 1]).await;
        let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
        assert_eq!(ws.protocol, "v4.channel.k8s.io");
        let mut first: HashMap<u8, Vec<u8>> = HashMap::new();
        while first.len() < 4 {
            let (ch, d) = ws.next().await.expect("port prefix frames");
            first.entry(ch).or_insert(d);
        }
        assert_eq!(first[&0], 8080u16.to_le_bytes());
        assert_eq!(first[&1], 8080u16.to_le_bytes());
        assert_eq!(first[&2], 1u16.to_le_bytes());
        assert_eq!(first[&3], 1u16.to_le_bytes());
        ws.send(0, b"ping over websocket\n").await;
        let mut got: HashMap<u8, Vec<u8>> = HashMap::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some((ch, d)) = ws.next().await {
                got.entry(ch).or_default().extend(d);
                if got.get(&0).is_some_and(|v| v.ends_with(b"\n")) && got.contains_key(&3) {
                    break;
                }
            }
        })
        .await;
        let err = String::from_utf8_lossy(got.get(&3).map(Vec::as_slice).unwrap_or(b""));
        assert!(err.contains("forwarding port 1"), "{err}");
        echoed =
            String::from_utf8_lossy(got.get(&0).map(Vec::as_slice).unwrap_or(b"")).into_owned();
        if !echoed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(echoed, "ping over websocket\n");
    remove_pod(&mut t, &sb.id).await;
}

/// kubectl 1.31+'s port-forward: SPDY frames carried in binary WebSocket messages.
pub async fn port_forward_over_tunnelled_spdy(mut t: Target) {
    let (sb, _) = echo_pod(&mut t, "pftunnel").await;
    let (mut echoed, mut err) = (vec![], vec![]);
    for n in 0..50 {
        let url = pf_url(&mut t, &sb.id, &[]).await;
        let ws = ws_connect(&url, &["SPDY/3.1+portforward.k8s.io"])
            .await
            .unwrap();
        assert_eq!(ws.protocol, "SPDY/3.1+portforward.k8s.io");
        let mut c = Spdy {
            io: Transport::Ws(Box::new(ws.ws)),
            enc: spdy::Encoder::new(),
            dec: spdy::Decoder::new(),
            next_id: 1,
        };
        (echoed, err) =
            spdy_echo(&mut c, &n.to_string(), "8080", b"ping through the tunnel\n").await;
        if !echoed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        String::from_utf8_lossy(&echoed),
        "ping through the tunnel\n",
        "error stream: {}",
        String::from_utf8_lossy(&err)
    );
    remove_pod(&mut t, &sb.id).await;
}

/// PSS of the shim holding container `id` (KiB), for oxkube; containerd's shim serves a whole
/// pod, so its figure is per pod.
fn shim_pss_kib(kind: crate::harness::Kind, id: &str) -> Option<u64> {
    let needle = match kind {
        crate::harness::Kind::Oxkube => id[..32].to_string(),
        crate::harness::Kind::Containerd => id.to_string(),
    };
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !comm.contains("shim") {
            continue;
        }
        let holds = String::from_utf8_lossy(&cmd).contains(&needle)
            || std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| {
                    std::fs::read_to_string(format!("/proc/{c}/cgroup"))
                        .unwrap_or_default()
                        .contains(&needle)
                });
        if !holds {
            continue;
        }
        let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let l = s.lines().find(|l| l.starts_with("Pss:"))?;
        return l.split_whitespace().nth(1)?.parse().ok();
    }
    None
}

/// Figures, not assertions: exec session latency over WebSocket v4 (CRI Exec + upgrade +
/// `true` + status) and shim memory with stdin/tty/attach.
pub async fn bench_streaming(mut t: Target) {
    let (sb, plain) = running(
        &mut t,
        "benchs",
        container_config("plain", &["sleep", "1000"]),
    )
    .await;
    let mut cfg = container_config("tty", &["sh"]);
    cfg.stdin = true;
    cfg.tty = true;
    let tty = create(&mut t, &sb, cfg).await.unwrap();
    start(&mut t, &tty).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..30 {
        let begin = std::time::Instant::now();
        let url = exec_url(&mut t, exec_req(&plain, &["true"], false, false)).await;
        let out = ws_connect(&url, &["v4.channel.k8s.io"])
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(status_of(&out)["status"], "Success");
        times.push(begin.elapsed());
    }
    times.sort();
    let url =
        t.rt.attach(pb::AttachRequest {
            container_id: tty.clone(),
            stdin: true,
            tty: true,
            stdout: true,
            stderr: false,
        })
        .await
        .unwrap()
        .into_inner()
        .url;
    let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    ws.send(0, b"echo attached\r").await;
    ws.read_until(1, "attached").await;
    eprintln!(
        "BENCH {:?}: websocket exec session p50 {:?} p90 {:?}; shim PSS plain {:?} KiB, stdin+tty with a client attached {:?} KiB",
        t.kind,
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        shim_pss_kib(t.kind, &plain),
        shim_pss_kib(t.kind, &tty),
    );
    drop(ws);
    remove_pod(&mut t, &sb.id).await;
}

/// A client that goes away ends its exec'd process (the kubelet's request context ends, the
/// runtime kills the process, as containerd does).
pub async fn exec_ends_when_the_client_goes_away(mut t: Target) {
    let (sb, id) = running(&mut t, "gone", container_config("c", &["sleep", "1000"])).await;
    let url = exec_url(
        &mut t,
        exec_req(
            &id,
            &["sh", "-c", "echo started; exec sleep 777"],
            true,
            false,
        ),
    )
    .await;
    let mut ws = ws_connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    ws.read_until(1, "started").await;
    let ps = |t: &mut Target| {
        let mut rt = t.rt.clone();
        let id = id.clone();
        async move {
            let r = rt
                .exec_sync(pb::ExecSyncRequest {
                    container_id: id,
                    cmd: vec!["ps".into()],
                    timeout: 10,
                })
                .await
                .expect("ExecSync")
                .into_inner();
            String::from_utf8_lossy(&r.stdout).into_owned()
        }
    };
    assert!(ps(&mut t).await.contains("sleep 777"));
    drop(ws);
    let mut left = String::new();
    for _ in 0..100 {
        left = ps(&mut t).await;
        if !left.contains("sleep 777") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!left.contains("sleep 777"), "{left}");
    remove_pod(&mut t, &sb.id).await;
}
