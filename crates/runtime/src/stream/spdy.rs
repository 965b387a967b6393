//! SPDY/3.1 framing as Kubernetes streaming clients speak it (moby/spdystream, used by kubectl
//! and client-go): control and data frames, zlib-compressed name/value header blocks with the
//! SPDY/3 preset dictionary. Pure: bytes in, frames out, and back. No flow control is enforced,
//! as in spdystream (WINDOW_UPDATE frames are parsed and ignored by callers).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Errors decoding SPDY frames.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error("unsupported spdy version {0}")]
    Version(u16),
    #[error("control frame type {ty} too short ({len} bytes)")]
    Short { ty: u16, len: usize },
    #[error("bad header block: {0}")]
    HeaderBlock(String),
    #[error("zlib: {0}")]
    Zlib(String),
}

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_CANCEL: u32 = 5;

/// The largest frame payload accepted (the 24-bit length field allows 16 MiB).
pub const MAX_FRAME: usize = 1 << 24;

/// Header names are lower-case on the wire; a name may carry several NUL-separated values.
pub type Headers = Vec<(String, String)>;

/// The value of header `name` (case-insensitive), first value only.
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// One SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame type this codec does not know (skipped, as the spec asks).
    Unknown {
        ty: u16,
    },
}

/// SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, section 2.6.10.1).
#[rustfmt::skip]
pub const DICTIONARY: &[u8; 1423] = b"\
\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\
\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\
\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-ranges\x00\
\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-contr\
ol\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\
\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\
\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\x00\x0ccontent-type\x00\x00\
\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\
\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\
\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\x00\x00\
\x00\x0dlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pra\
gma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05rang\
e\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\
\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\
\x0auser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10\
www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\
\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06\
public\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin100101201202\
205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Author\
itative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 For\
bidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Fe\
b Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTch\
unked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/pla\
in,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf\
-,*,enq=0.";

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes one direction of a SPDY connection (the header zlib stream spans the connection).
pub struct Decoder {
    buf: Vec<u8>,
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            buf: Vec::new(),
            inflate: Decompress::new(true),
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let len = (be32(&self.buf[4..8]) & 0x00ff_ffff) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let head: Vec<u8> = self.buf.drain(..8).collect();
        let payload: Vec<u8> = self.buf.drain(..len).collect();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: be32(&head[0..4]) & 0x7fff_ffff,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let ty = u16::from_be_bytes([head[2], head[3]]);
        let need = match ty {
            TYPE_SYN_STREAM => 10,
            TYPE_SYN_REPLY | TYPE_HEADERS | TYPE_PING | TYPE_SETTINGS => 4,
            TYPE_RST_STREAM | TYPE_GOAWAY | TYPE_WINDOW_UPDATE => 8,
            _ => 0,
        };
        if payload.len() < need {
            return Err(SpdyError::Short {
                ty,
                len: payload.len(),
            });
        }
        let sid = || be32(&payload[0..4]) & 0x7fff_ffff;
        Ok(Some(match ty {
            TYPE_SYN_STREAM => Frame::SynStream {
                stream_id: sid(),
                associated_to: be32(&payload[4..8]) & 0x7fff_ffff,
                priority: payload[8] >> 5,
                flags,
                headers: self.header_block(&payload[10..])?,
            },
            TYPE_SYN_REPLY => Frame::SynReply {
                stream_id: sid(),
                flags,
                headers: self.header_block(&payload[4..])?,
            },
            TYPE_HEADERS => Frame::Headers {
                stream_id: sid(),
                flags,
                headers: self.header_block(&payload[4..])?,
            },
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: sid(),
                status: be32(&payload[4..8]),
            },
            TYPE_SETTINGS => {
                let n = be32(&payload[0..4]) as usize;
                let mut entries = Vec::new();
                for i in 0..n {
                    let at = 4 + i * 8;
                    if payload.len() < at + 8 {
                        return Err(SpdyError::Short {
                            ty,
                            len: payload.len(),
                        });
                    }
                    let idf = be32(&payload[at..at + 4]);
                    entries.push((
                        (idf >> 24) as u8,
                        idf & 0x00ff_ffff,
                        be32(&payload[at + 4..]),
                    ));
                }
                Frame::Settings { entries }
            }
            TYPE_PING => Frame::Ping {
                id: be32(&payload[0..4]),
            },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: sid(),
                status: be32(&payload[4..8]),
            },
            TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: sid(),
                delta: be32(&payload[4..8]) & 0x7fff_ffff,
            },
            other => Frame::Unknown { ty: other },
        }))
    }

    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut input = compressed;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096);
            }
            let before = self.inflate.total_in();
            let res = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
            match res {
                Ok(Status::Ok) | Ok(Status::BufError) | Ok(Status::StreamEnd) => {
                    if input.is_empty() && out.capacity() > out.len() {
                        break;
                    }
                    if used == 0 && matches!(res, Ok(Status::BufError)) && input.is_empty() {
                        break;
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| SpdyError::Zlib(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Zlib(e.to_string())),
            }
            if out.len() > MAX_FRAME {
                return Err(SpdyError::HeaderBlock("header block too large".into()));
            }
        }
        parse_header_block(&out)
    }
}

/// Parses an uncompressed SPDY/3 name/value block (32-bit counts and lengths).
pub fn parse_header_block(b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |m: &str| SpdyError::HeaderBlock(m.to_string());
    if b.len() < 4 {
        return Err(bad("missing pair count"));
    }
    let n = be32(b) as usize;
    let mut at = 4;
    let take = |at: &mut usize| -> Result<String, SpdyError> {
        if b.len() < *at + 4 {
            return Err(bad("truncated length"));
        }
        let l = be32(&b[*at..]) as usize;
        *at += 4;
        if b.len() < *at + l {
            return Err(bad("truncated string"));
        }
        let s = String::from_utf8_lossy(&b[*at..*at + l]).into_owned();
        *at += l;
        Ok(s)
    };
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let name = take(&mut at)?;
        let value = take(&mut at)?;
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// Builds an uncompressed name/value block (names lower-cased, as SPDY requires).
pub fn build_header_block(h: &Headers) -> Vec<u8> {
    let mut out = (h.len() as u32).to_be_bytes().to_vec();
    for (k, v) in h {
        out.extend((k.len() as u32).to_be_bytes());
        out.extend(k.to_ascii_lowercase().as_bytes());
        out.extend((v.len() as u32).to_be_bytes());
        out.extend(v.as_bytes());
    }
    out
}

/// Encodes one direction of a SPDY connection.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("zlib accepts the spdy dictionary");
        Encoder { deflate }
    }

    fn compress(&mut self, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(block.len() + 64);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate into a growing buffer");
            let used = (self.deflate.total_in() - before) as usize;
            input = &input[used..];
            // done once all input is consumed and the flush fit in the buffer
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
        }
        out
    }

    /// The wire bytes of `f`.
    pub fn encode(&mut self, f: &Frame) -> Vec<u8> {
        let control = |ty: u16, flags: u8, payload: Vec<u8>| {
            let mut out = Vec::with_capacity(8 + payload.len());
            out.extend((0x8000u16 | VERSION).to_be_bytes());
            out.extend(ty.to_be_bytes());
            out.push(flags);
            out.extend(&(payload.len() as u32).to_be_bytes()[1..]);
            out.extend(payload);
            out
        };
        match f {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend((stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(if *fin { FLAG_FIN } else { 0 });
                out.extend(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend(data);
                out
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(associated_to.to_be_bytes());
                p.push(priority << 5);
                p.push(0);
                p.extend(self.compress(&build_header_block(headers)));
                control(TYPE_SYN_STREAM, *flags, p)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(self.compress(&build_header_block(headers)));
                control(TYPE_SYN_REPLY, *flags, p)
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(self.compress(&build_header_block(headers)));
                control(TYPE_HEADERS, *flags, p)
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(status.to_be_bytes());
                control(TYPE_RST_STREAM, 0, p)
            }
            Frame::Settings { entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for (flags, id, value) in entries {
                    p.extend(((*flags as u32) << 24 | (id & 0x00ff_ffff)).to_be_bytes());
                    p.extend(value.to_be_bytes());
                }
                control(TYPE_SETTINGS, 0, p)
            }
            Frame::Ping { id } => control(TYPE_PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut p = last_good_stream_id.to_be_bytes().to_vec();
                p.extend(status.to_be_bytes());
                control(TYPE_GOAWAY, 0, p)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(delta.to_be_bytes());
                control(TYPE_WINDOW_UPDATE, 0, p)
            }
            Frame::Unknown { ty } => control(*ty, 0, vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn frames_round_trip_through_one_connection_direction() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: hdrs(&[("streamtype", "error")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 7,
                flags: FLAG_FIN,
                headers: hdrs(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 3,
                flags: 0,
                headers: vec![],
            },
            Frame::Data {
                stream_id: 3,
                fin: false,
                data: b"hello".to_vec(),
            },
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: vec![],
            },
            Frame::RstStream {
                stream_id: 5,
                status: RST_CANCEL,
            },
            Frame::Settings {
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
            Frame::Headers {
                stream_id: 1,
                flags: 0,
                headers: hdrs(&[("x", "a\0b")]),
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1000,
            },
        ];
        let mut enc = Encoder::new();
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(enc.encode(f));
        }
        // fed in awkward pieces, frames come out whole and in order
        let mut dec = Decoder::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(5) {
            dec.feed(chunk);
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn control_frame_layout() {
        let mut enc = Encoder::new();
        assert_eq!(
            enc.encode(&Frame::Ping { id: 7 }),
            vec![0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 7]
        );
        assert_eq!(
            enc.encode(&Frame::Data {
                stream_id: 5,
                fin: true,
                data: b"ab".to_vec()
            }),
            vec![0, 0, 0, 5, FLAG_FIN, 0, 0, 2, b'a', b'b']
        );
        assert_eq!(
            enc.encode(&Frame::RstStream {
                stream_id: 1,
                status: RST_CANCEL
            }),
            vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 5]
        );
    }

    #[test]
    fn header_blocks_use_the_spdy_dictionary() {
        // The zlib stream announces the preset dictionary (FDICT) with its Adler-32.
        let mut enc = Encoder::new();
        let bytes = enc.encode(&Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: hdrs(&[("streamtype", "stdout")]),
        });
        let z = &bytes[12..];
        assert_eq!(z[0], 0x78);
        assert!(z[1] & 0x20 != 0, "FDICT set");
        assert_eq!(
            be32(&z[2..6]),
            0xe3c6_a7c2,
            "adler32 of the spdy/3 dictionary"
        );
        assert_eq!(DICTIONARY.len(), 1423);
    }

    #[test]
    fn bad_input() {
        let mut d = Decoder::new();
        d.feed(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(SpdyError::Version(2)));
        let mut d = Decoder::new();
        d.feed(&[0x80, 0x03, 0, 3, 0, 0, 0, 2, 0, 0]);
        assert!(matches!(
            d.next_frame(),
            Err(SpdyError::Short { ty: 3, .. })
        ));
        assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert_eq!(
            header(&hdrs(&[("StreamType", "stdin")]), "streamtype"),
            Some("stdin")
        );
        let mut d = Decoder::new();
        d.feed(&[0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(d.next_frame(), Ok(None), "incomplete frame waits");
    }
}
