//! The Kubernetes WebSocket channel protocols (`channel.k8s.io` family, upstream's wsstream): each
//! message is one channel byte (an ASCII digit in the base64 variants, whose payload is base64)
//! followed by that channel's data; `v5.channel.k8s.io` adds the close signal (channel 255,
//! payload = the channel being closed). Pure framing plus subprotocol negotiation.

use base64::Engine;
use tokio_tungstenite::tungstenite::Message;

/// remotecommand (exec/attach) subprotocols.
pub const V5_BINARY: &str = "v5.channel.k8s.io";
pub const V4_BINARY: &str = "v4.channel.k8s.io";
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";
pub const V1_BINARY: &str = "channel.k8s.io";
pub const V1_BASE64: &str = "base64.channel.k8s.io";
/// portforward over WebSocket (as a plain channel protocol) and kubectl's SPDY tunnel.
pub const PORT_FORWARD: &str = "portforward.k8s.io";
pub const SPDY_TUNNEL_PORT_FORWARD: &str = "SPDY/3.1+portforward.k8s.io";

/// Channel number of the v5 close signal.
pub const CLOSE_CHANNEL: u8 = 255;

/// Errors decoding channel frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("bad channel {0:?} in a base64 frame")]
    BadChannel(char),
    #[error("bad base64 payload: {0}")]
    Base64(String),
    #[error("close signal needs exactly one channel byte, got {0}")]
    BadClose(usize),
}

/// How a negotiated subprotocol frames messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCodec {
    pub base64: bool,
    /// The v5 close signal is understood.
    pub close_signal: bool,
    /// Protocol generation: 1 (plain text errors), 4 or 5 (Status JSON errors).
    pub version: u8,
}

impl ChannelCodec {
    /// The codec of a negotiated subprotocol ("" = no subprotocol, upstream's binary default).
    pub fn for_protocol(p: &str) -> Option<ChannelCodec> {
        let c = |base64, close_signal, version| ChannelCodec {
            base64,
            close_signal,
            version,
        };
        Some(match p {
            V5_BINARY => c(false, true, 5),
            V4_BINARY | PORT_FORWARD => c(false, false, 4),
            V4_BASE64 => c(true, false, 4),
            V1_BINARY | "" => c(false, false, 1),
            V1_BASE64 => c(true, false, 1),
            _ => return None,
        })
    }

    pub fn encode(&self, channel: u8, data: &[u8]) -> Message {
        if self.base64 {
            let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
            s.push((b'0' + channel) as char);
            base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
            Message::Text(s.into())
        } else {
            let mut v = Vec::with_capacity(1 + data.len());
            v.push(channel);
            v.extend_from_slice(data);
            Message::Binary(v.into())
        }
    }

    /// Decodes a data message; `Ok(None)` for messages without a channel (empty ones, pings).
    pub fn decode(&self, msg: &Message) -> Result<Option<Incoming>, FrameError> {
        let (channel, data) = match msg {
            Message::Binary(b) if !b.is_empty() => (b[0], b[1..].to_vec()),
            Message::Text(t) if !t.is_empty() => {
                let bytes = t.as_bytes();
                let ch = bytes[0];
                if !ch.is_ascii_digit() {
                    return Err(FrameError::BadChannel(ch as char));
                }
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&bytes[1..])
                    .map_err(|e| FrameError::Base64(e.to_string()))?;
                (ch - b'0', data)
            }
            _ => return Ok(None),
        };
        if self.close_signal && channel == CLOSE_CHANNEL {
            if data.len() != 1 {
                return Err(FrameError::BadClose(data.len()));
            }
            return Ok(Some(Incoming::Close(data[0])));
        }
        Ok(Some(Incoming::Data(channel, data)))
    }
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Data(u8, Vec<u8>),
    /// v5: the client closed (half-closed) this channel.
    Close(u8),
}

/// Splits `Sec-WebSocket-Protocol` / `X-Stream-Protocol-Version` header values into a list.
pub fn offered<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The first client-offered protocol the server supports (the client's preference wins, as in
/// upstream's httpstream and wsstream negotiation).
pub fn negotiate<'a>(offered: &[String], supported: &[&'a str]) -> Option<&'a str> {
    offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o.as_str()).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_base64_framing() {
        let bin = ChannelCodec::for_protocol(V4_BINARY).unwrap();
        let m = bin.encode(1, b"hi");
        assert_eq!(m, Message::Binary(vec![1, b'h', b'i'].into()));
        assert_eq!(
            bin.decode(&m).unwrap(),
            Some(Incoming::Data(1, b"hi".to_vec()))
        );
        let b64 = ChannelCodec::for_protocol(V1_BASE64).unwrap();
        let m = b64.encode(2, b"hello");
        assert_eq!(m, Message::Text("2aGVsbG8=".into()));
        assert_eq!(
            b64.decode(&m).unwrap(),
            Some(Incoming::Data(2, b"hello".to_vec()))
        );
        assert_eq!(
            b64.decode(&Message::Text("xaGk=".into())),
            Err(FrameError::BadChannel('x'))
        );
        assert!(b64.decode(&Message::Text("0!!".into())).is_err());
        assert_eq!(bin.decode(&Message::Binary(vec![].into())).unwrap(), None);
        // the initial "channel open" message has a channel and no data
        assert_eq!(
            bin.decode(&bin.encode(3, b"")).unwrap(),
            Some(Incoming::Data(3, vec![]))
        );
    }

    #[test]
    fn close_signal_only_in_v5() {
        let v5 = ChannelCodec::for_protocol(V5_BINARY).unwrap();
        let v4 = ChannelCodec::for_protocol(V4_BINARY).unwrap();
        let close = Message::Binary(vec![255, 0].into());
        assert_eq!(v5.decode(&close).unwrap(), Some(Incoming::Close(0)));
        assert_eq!(
            v4.decode(&close).unwrap(),
            Some(Incoming::Data(255, vec![0]))
        );
        assert_eq!(
            v5.decode(&Message::Binary(vec![255].into())),
            Err(FrameError::BadClose(0))
        );
        assert_eq!(v5.version, 5);
        assert_eq!(ChannelCodec::for_protocol("").unwrap().version, 1);
        assert!(ChannelCodec::for_protocol("v9.channel.k8s.io").is_none());
    }

    #[test]
    fn negotiation_prefers_the_client_order() {
        let supported = [V5_BINARY, V4_BINARY, V1_BINARY];
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["v5.channel.k8s.io, v4.channel.k8s.io"], Some(V5_BINARY)),
            (&["v4.channel.k8s.io", "v5.channel.k8s.io"], Some(V4_BINARY)),
            (&["v3.channel.k8s.io,channel.k8s.io"], Some(V1_BINARY)),
            (&["bogus"], None),
            (&[], None),
        ];
        for (headers, want) in cases {
            let o = offered(headers.iter().copied());
            assert_eq!(negotiate(&o, &supported), *want, "{headers:?}");
        }
    }
}
