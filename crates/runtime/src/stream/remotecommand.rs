//! remotecommand (exec/attach) as upstream's kubelet streaming server serves it: the error
//! channel's Status (v4+: metav1.Status JSON with NonZeroExitCode/ExitCode causes; older
//! protocols: the plain message), terminal resize messages, and the two transports: WebSocket
//! channels (v5/v4/v1, binary or base64) and SPDY streams chosen by their `streamType` header.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::session::{Session, Stream};
use super::websocket::{ChannelCodec, Incoming};
use super::{Outcome, StdIo, TermSize};

/// SPDY remotecommand protocols, newest first.
pub const SPDY_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// WebSocket remotecommand protocols.
pub const WS_PROTOCOLS: &[&str] = &[
    super::websocket::V5_BINARY,
    super::websocket::V4_BINARY,
    super::websocket::V4_BASE64,
    super::websocket::V1_BINARY,
    super::websocket::V1_BASE64,
];

/// Channel numbers (WebSocket) of the remotecommand streams.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;

/// How long a SPDY client has to open all its streams (upstream's stream creation timeout).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Which streams the session carries (from the CRI request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The error-channel message of protocols v4 and v5: a metav1.Status.
pub fn status_json(o: &Outcome) -> Vec<u8> {
    let v = match o {
        Outcome::Success => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited { code, message } => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: {message}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Error(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {e}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": e}]},
            "code": 500,
        }),
    };
    serde_json::to_vec(&v).expect("status serialises")
}

/// The error-channel message of protocols v1-v3: nothing on success, else the message.
pub fn status_text(o: &Outcome) -> Option<Vec<u8>> {
    match o {
        Outcome::Success => None,
        Outcome::Exited { message, .. } => {
            Some(format!("command terminated with non-zero exit code: {message}").into_bytes())
        }
        Outcome::Error(e) => Some(format!("Internal error occurred: {e}").into_bytes()),
    }
}

fn status_message(version: u8, o: &Outcome) -> Option<Vec<u8>> {
    if version >= 4 {
        Some(status_json(o))
    } else {
        status_text(o)
    }
}

/// Decodes the resize stream: a sequence of `{"Width":W,"Height":H}` JSON objects, split
/// anywhere across messages.
#[derive(Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

impl ResizeDecoder {
    pub fn feed(&mut self, data: &[u8]) -> Vec<TermSize> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut used = 0;
        {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Wire>();
            loop {
                match it.next() {
                    Some(Ok(w)) => {
                        used = it.byte_offset();
                        out.push(TermSize {
                            width: w.width,
                            height: w.height,
                        });
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(_)) => {
                        // garbage: drop what we have, as upstream drops a bad resize
                        used = self.buf.len();
                        break;
                    }
                    None => {
                        used = self.buf.len();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..used);
        out
    }
}

/// Channels for one session, the transport's ends and the backend's.
struct Pipes {
    io: StdIo,
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    stdout: Option<mpsc::Receiver<Vec<u8>>>,
    stderr: Option<mpsc::Receiver<Vec<u8>>>,
    resize: Option<mpsc::Sender<TermSize>>,
}

fn pipes(o: Options) -> Pipes {
    let mut io = StdIo::default();
    let (mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None);
    if o.stdin {
        let (tx, rx) = mpsc::channel(16);
        stdin = Some(tx);
        io.stdin = Some(rx);
    }
    if o.stdout {
        let (tx, rx) = mpsc::channel(16);
        stdout = Some(rx);
        io.stdout = Some(tx);
    }
    if o.stderr && !o.tty {
        let (tx, rx) = mpsc::channel(16);
        stderr = Some(rx);
        io.stderr = Some(tx);
    }
    if o.tty {
        let (tx, rx) = mpsc::channel(16);
        resize = Some(tx);
        io.resize = Some(rx);
    }
    Pipes {
        io,
        stdin,
        stdout,
        stderr,
        resize,
    }
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Serves exec/attach over a WebSocket channel protocol until the command ends or the client
/// goes away (then `run` is dropped, which ends the command).
pub async fn serve_websocket<S, F>(
    ws: WebSocketStream<S>,
    codec: ChannelCodec,
    opts: Options,
    run: impl FnOnce(StdIo) -> F,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Outcome>,
{
    let (mut sink, mut source) = ws.split();
    let Pipes {
        io,
        mut stdin,
        mut stdout,
        mut stderr,
        resize,
    } = pipes(opts);
    let mut resize_dec = ResizeDecoder::default();
    let backend = run(io);
    tokio::pin!(backend);
    // upstream announces the connection with an empty message on the lowest writable channel
    let first = if stdout.is_some() {
        STDOUT
    } else if stderr.is_some() {
        STDERR
    } else {
        ERROR
    };
    if sink.send(codec.encode(first, &[])).await.is_err() {
        return;
    }
    let mut outcome = None;
    loop {
        if outcome.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            o = &mut backend, if outcome.is_none() => outcome = Some(o),
            d = recv_opt(&mut stdout) => match d {
                Some(d) => if sink.send(codec.encode(STDOUT, &d)).await.is_err() { return },
                None => stdout = None,
            },
            d = recv_opt(&mut stderr) => match d {
                Some(d) => if sink.send(codec.encode(STDERR, &d)).await.is_err() { return },
                None => stderr = None,
            },
            m = source.next() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(m)) => match codec.decode(&m) {
                    Ok(Some(Incoming::Data(STDIN, d))) => {
                        if let Some(tx) = &stdin {
                            if !d.is_empty() && tx.send(d).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Ok(Some(Incoming::Data(RESIZE, d))) => {
                        if let Some(tx) = &resize {
                            for s in resize_dec.feed(&d) {
                                let _ = tx.try_send(s);
                            }
                        }
                    }
                    Ok(Some(Incoming::Close(STDIN))) => stdin = None,
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "bad websocket frame ignored"),
                },
            },
        }
    }
    let outcome = outcome.expect("loop ends with an outcome");
    if let Some(msg) = status_message(codec.version, &outcome) {
        let _ = sink.send(codec.encode(ERROR, &msg)).await;
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.close().await;
}

/// The protocol generation of a negotiated SPDY remotecommand protocol.
pub fn spdy_version(protocol: &str) -> u8 {
    match protocol {
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    }
}

/// Serves exec/attach over SPDY: waits for the client's streams (error, then stdin/stdout/
/// stderr/resize as requested), runs the command, writes the status on the error stream.
pub async fn serve_spdy<R, W, F>(
    r: R,
    w: W,
    version: u8,
    opts: Options,
    run: impl FnOnce(StdIo) -> F,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = Outcome>,
{
    let mut session = Session::start(r, w);
    let mut want: Vec<&str> = vec!["error"];
    if opts.stdin {
        want.push("stdin");
    }
    if opts.stdout {
        want.push("stdout");
    }
    if opts.stderr && !opts.tty {
        want.push("stderr");
    }
    if opts.tty && version >= 3 {
        want.push("resize");
    }
    let mut got: HashMap<String, Stream> = HashMap::new();
    let collected = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        while want.iter().any(|t| !got.contains_key(*t)) {
            let Some(s) = session.streams.recv().await else {
                return false;
            };
            let ty = s.header("streamtype").unwrap_or("").to_string();
            if want.contains(&ty.as_str()) && !got.contains_key(&ty) {
                got.insert(ty, s);
            } else {
                tracing::debug!(stream_type = %ty, "unexpected remotecommand stream reset");
                s.tx.reset().await;
            }
        }
        true
    })
    .await;
    if !matches!(collected, Ok(true)) {
        tracing::debug!("remotecommand client did not open its streams");
        session.close().await;
        return;
    }
    let Pipes {
        io,
        stdin,
        mut stdout,
        mut stderr,
        resize,
    } = pipes(opts);
    let error = got.remove("error").expect("collected");
    let out_w = got.remove("stdout").map(|s| s.tx);
    let err_w = got.remove("stderr").map(|s| s.tx);
    // stdin and resize readers
    let mut feeders = Vec::new();
    if let (Some(mut s), Some(tx)) = (got.remove("stdin"), stdin) {
        feeders.push(tokio::spawn(async move {
            while let Some(d) = s.rx.recv().await {
                if tx.send(d).await.is_err() {
                    break;
                }
            }
        }));
    }
    if let (Some(mut s), Some(tx)) = (got.remove("resize"), resize) {
        feeders.push(tokio::spawn(async move {
            let mut dec = ResizeDecoder::default();
            while let Some(d) = s.rx.recv().await {
                for sz in dec.feed(&d) {
                    let _ = tx.try_send(sz);
                }
            }
        }));
    }
    let backend = run(io);
    tokio::pin!(backend);
    let mut outcome = None;
    let mut streams_gone = session.streams;
    let mut client_open = true;
    loop {
        if outcome.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            o = &mut backend, if outcome.is_none() => outcome = Some(o),
            d = recv_opt(&mut stdout) => match (d, &out_w) {
                (Some(d), Some(w)) => if w.write(&d).await.is_err() { break },
                _ => stdout = None,
            },
            d = recv_opt(&mut stderr) => match (d, &err_w) {
                (Some(d), Some(w)) => if w.write(&d).await.is_err() { break },
                _ => stderr = None,
            },
            s = streams_gone.recv(), if client_open => match s {
                // a late extra stream: not part of the protocol
                Some(s) => s.tx.reset().await,
                // the connection is gone: stop the command
                None => { client_open = false; break }
            },
        }
    }
    for f in feeders {
        f.abort();
    }
    if let Some(outcome) = outcome.filter(|_| client_open) {
        for w in [&out_w, &err_w].into_iter().flatten() {
            w.fin().await;
        }
        if let Some(msg) = status_message(version, &outcome) {
            let _ = error.tx.write(&msg).await;
        }
        error.tx.fin().await;
    }
    session.streams = streams_gone;
    session.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_match_upstream() {
        let ok: serde_json::Value =
            serde_json::from_slice(&status_json(&Outcome::Success)).unwrap();
        assert_eq!(ok, json!({"metadata": {}, "status": "Success"}));
        let exit: serde_json::Value = serde_json::from_slice(&status_json(&Outcome::Exited {
            code: 3,
            message: "command [sh -c exit 3] exited with 3".into(),
        }))
        .unwrap();
        assert_eq!(exit["status"], "Failure");
        assert_eq!(exit["reason"], "NonZeroExitCode");
        assert_eq!(
            exit["details"]["causes"],
            json!([{"reason": "ExitCode", "message": "3"}])
        );
        assert_eq!(
            exit["message"],
            "command terminated with non-zero exit code: command [sh -c exit 3] exited with 3"
        );
        let err: serde_json::Value =
            serde_json::from_slice(&status_json(&Outcome::Error("boom".into()))).unwrap();
        assert_eq!(err["reason"], "InternalError");
        assert_eq!(err["code"], 500);
        assert_eq!(err["message"], "Internal error occurred: boom");
        assert_eq!(status_text(&Outcome::Success), None);
        assert_eq!(
            status_text(&Outcome::Error("boom".into())).unwrap(),
            b"Internal error occurred: boom"
        );
        assert_eq!(status_message(1, &Outcome::Success), None);
        assert!(status_message(5, &Outcome::Success).is_some());
    }

    #[test]
    fn resize_messages_split_anywhere() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.feed(br#"{"Width":80,"#), vec![]);
        assert_eq!(
            d.feed(br#""Height":24}{"Width":100,"Height":40}{"Wi"#),
            vec![
                TermSize {
                    width: 80,
                    height: 24
                },
                TermSize {
                    width: 100,
                    height: 40
                }
            ]
        );
        assert_eq!(
            d.feed(br#"dth":1,"Height":2}"#),
            vec![TermSize {
                width: 1,
                height: 2
            }]
        );
        assert_eq!(d.feed(b"not json"), vec![]);
        assert_eq!(
            d.feed(br#"{"Width":5,"Height":6}"#),
            vec![TermSize {
                width: 5,
                height: 6
            }],
            "garbage is dropped, later messages still decode"
        );
        assert_eq!(spdy_version("v4.channel.k8s.io"), 4);
        assert_eq!(spdy_version("channel.k8s.io"), 1);
    }
}
