//! A SPDY/3.1 server session over any byte stream (an upgraded HTTP connection, or the
//! WebSocket tunnel kubectl 1.31+ uses for port-forward): accepts the client's streams (each
//! answered with SYN_REPLY, as spdystream does), routes their data, answers pings, and writes
//! the server's data frames. No flow control, like spdystream.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::spdy::{self, Frame, Headers};

/// Largest data frame written.
const CHUNK: usize = 32 * 1024;

enum Out {
    Frame(Frame),
    Close,
}

/// The session is gone (connection closed).
#[derive(Debug, thiserror::Error)]
#[error("spdy connection closed")]
pub struct Closed;

/// Writes one stream's data.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

impl StreamWriter {
    pub async fn write(&self, data: &[u8]) -> Result<(), Closed> {
        for chunk in data.chunks(CHUNK) {
            self.out
                .send(Out::Frame(Frame::Data {
                    stream_id: self.id,
                    fin: false,
                    data: chunk.to_vec(),
                }))
                .await
                .map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// Half-closes the stream (an empty data frame with FIN).
    pub async fn fin(&self) {
        let _ = self
            .out
            .send(Out::Frame(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: vec![],
            }))
            .await;
    }

    pub async fn reset(&self) {
        let _ = self
            .out
            .send(Out::Frame(Frame::RstStream {
                stream_id: self.id,
                status: spdy::RST_CANCEL,
            }))
            .await;
    }
}

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// The client's data; closed when it half-closes (FIN), resets, or the connection ends.
    pub rx: mpsc::Receiver<Vec<u8>>,
    pub tx: StreamWriter,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        spdy::header(&self.headers, name)
    }
}

/// A running server session.
pub struct Session {
    /// Streams as the client opens them; closed when the connection ends.
    pub streams: mpsc::UnboundedReceiver<Stream>,
    out: mpsc::Sender<Out>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Session {
    pub fn start<R, W>(mut r: R, mut w: W) -> Session
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, mut out_rx) = mpsc::channel::<Out>(64);
        let (streams_tx, streams) = mpsc::unbounded_channel();
        let writer = tokio::spawn(async move {
            let mut enc = spdy::Encoder::new();
            while let Some(o) = out_rx.recv().await {
                match o {
                    Out::Frame(f) => {
                        if w.write_all(&enc.encode(&f)).await.is_err() || w.flush().await.is_err() {
                            break;
                        }
                    }
                    Out::Close => {
                        let _ = w
                            .write_all(&enc.encode(&Frame::GoAway {
                                last_good_stream_id: 0,
                                status: 0,
                            }))
                            .await;
                        let _ = w.flush().await;
                        break;
                    }
                }
            }
            let _ = w.shutdown().await;
        });
        let reply = out.clone();
        let reader = tokio::spawn(async move {
            let mut dec = spdy::Decoder::new();
            let mut open: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
            let mut buf = vec![0u8; 64 * 1024];
            'conn: loop {
                let n = match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                dec.feed(&buf[..n]);
                loop {
                    let f = match dec.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "bad spdy frame, closing the connection");
                            break 'conn;
                        }
                    };
                    match f {
                        Frame::SynStream {
                            stream_id,
                            flags,
                            headers,
                            ..
                        } => {
                            let (tx, rx) = mpsc::channel(64);
                            if flags & spdy::FLAG_FIN == 0 {
                                open.insert(stream_id, tx);
                            }
                            let _ = reply
                                .send(Out::Frame(Frame::SynReply {
                                    stream_id,
                                    flags: 0,
                                    headers: vec![],
                                }))
                                .await;
                            let _ = streams_tx.send(Stream {
                                id: stream_id,
                                headers,
                                rx,
                                tx: StreamWriter {
                                    id: stream_id,
                                    out: reply.clone(),
                                },
                            });
                        }
                        Frame::Data {
                            stream_id,
                            fin,
                            data,
                        } => {
                            if let Some(tx) = open.get(&stream_id) {
                                if !data.is_empty() && tx.send(data).await.is_err() {
                                    open.remove(&stream_id);
                                }
                            }
                            if fin {
                                open.remove(&stream_id);
                            }
                        }
                        Frame::RstStream { stream_id, .. } => {
                            open.remove(&stream_id);
                        }
                        Frame::Ping { id } => {
                            let _ = reply.send(Out::Frame(Frame::Ping { id })).await;
                        }
                        Frame::Headers {
                            stream_id, flags, ..
                        } if flags & spdy::FLAG_FIN != 0 => {
                            open.remove(&stream_id);
                        }
                        _ => {}
                    }
                }
            }
        });
        Session {
            streams,
            out,
            reader,
            writer,
        }
    }

    /// Says GOAWAY after everything queued, and closes the connection.
    pub async fn close(self) {
        let _ = self.out.send(Out::Close).await;
        drop(self.out);
        let _ = self.writer.await;
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client on the other end of a duplex pipe.
    struct Client {
        enc: spdy::Encoder,
        dec: spdy::Decoder,
        io: tokio::io::DuplexStream,
    }

    impl Client {
        async fn send(&mut self, f: Frame) {
            let b = self.enc.encode(&f);
            self.io.write_all(&b).await.unwrap();
        }
        async fn recv(&mut self) -> Option<Frame> {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(f) = self.dec.next_frame().unwrap() {
                    return Some(f);
                }
                let n = self.io.read(&mut buf).await.unwrap();
                if n == 0 {
                    return None;
                }
                self.dec.feed(&buf[..n]);
            }
        }
    }

    #[tokio::test]
    async fn streams_are_replied_routed_and_closed() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(b);
        let mut s = Session::start(r, w);
        let mut c = Client {
            enc: spdy::Encoder::new(),
            dec: spdy::Decoder::new(),
            io: a,
        };
        c.send(Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".into(), "stdin".into())],
        })
        .await;
        let mut st = s.streams.recv().await.unwrap();
        assert_eq!(st.header("StreamType"), Some("stdin"));
        assert_eq!(
            c.recv().await,
            Some(Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![]
            })
        );
        c.send(Frame::Data {
            stream_id: 1,
            fin: false,
            data: b"abc".to_vec(),
        })
        .await;
        c.send(Frame::Ping { id: 9 }).await;
        c.send(Frame::Data {
            stream_id: 1,
            fin: true,
            data: vec![],
        })
        .await;
        assert_eq!(st.rx.recv().await, Some(b"abc".to_vec()));
        assert_eq!(st.rx.recv().await, None, "FIN closes the receiver");
        assert_eq!(c.recv().await, Some(Frame::Ping { id: 9 }));
        st.tx.write(b"out").await.unwrap();
        st.tx.fin().await;
        assert_eq!(
            c.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: false,
                data: b"out".to_vec()
            })
        );
        assert_eq!(
            c.recv().await,
            Some(Frame::Data {
                stream_id: 1,
                fin: true,
                data: vec![]
            })
        );
        s.close().await;
        assert_eq!(
            c.recv().await,
            Some(Frame::GoAway {
                last_good_stream_id: 0,
                status: 0
            })
        );
        assert_eq!(c.recv().await, None, "connection shut down");
    }
}
