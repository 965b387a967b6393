//! Container logs as the kubelet serves them: the CRI log file format
//! (`<RFC3339Nano> <stdout|stderr> <F|P> <msg>`), the log options (follow, tailLines, sinceSeconds,
//! sinceTime, timestamps, limitBytes, stream) and the reader that streams a log file with them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

/// Errors of log options and log reading.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    #[error("invalid value {value:?} for {param}: {reason}")]
    BadParam {
        param: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("at most one of sinceTime or sinceSeconds may be specified")]
    BothSince,
    #[error("malformed log line: {0}")]
    BadLine(String),
    #[error("failed to read log file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// Which output streams to return (`stream` query parameter, PodLogsQuerySplitStreams).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StreamFilter {
    #[default]
    All,
    Stdout,
    Stderr,
}

/// The stream a log line was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The options of one log request.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// Raw log-file lines from the end to start at (`None`: the whole file).
    pub tail_lines: Option<u64>,
    /// Lines stamped before this are skipped.
    pub since: Option<DateTime<Utc>>,
    pub timestamps: bool,
    pub previous: bool,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
    pub stream: StreamFilter,
}

fn truthy(v: &str) -> bool {
    matches!(v, "true" | "1" | "True" | "TRUE" | "t" | "T")
}

fn int_param(param: &'static str, v: &str) -> Result<i64, LogError> {
    v.parse::<i64>().map_err(|_| LogError::BadParam {
        param,
        value: v.to_string(),
        reason: "not an integer",
    })
}

impl LogOptions {
    /// Parses the query parameters of `/containerLogs` (or `pods/log`), `now` anchoring
    /// `sinceSeconds`.
    pub fn from_query(query: &[(String, String)], now: DateTime<Utc>) -> Result<Self, LogError> {
        let mut o = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (k, v) in query {
            match k.as_str() {
                "follow" => o.follow = truthy(v),
                "previous" => o.previous = truthy(v),
                "timestamps" => o.timestamps = truthy(v),
                "tailLines" => {
                    let n = int_param("tailLines", v)?;
                    if n < 0 {
                        return Err(LogError::BadParam {
                            param: "tailLines",
                            value: v.clone(),
                            reason: "must be greater than or equal to 0",
                        });
                    }
                    o.tail_lines = Some(n as u64);
                }
                "limitBytes" => {
                    let n = int_param("limitBytes", v)?;
                    if n < 1 {
                        return Err(LogError::BadParam {
                            param: "limitBytes",
                            value: v.clone(),
                            reason: "must be greater than 0",
                        });
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = int_param("sinceSeconds", v)?;
                    if n < 1 {
                        return Err(LogError::BadParam {
                            param: "sinceSeconds",
                            value: v.clone(),
                            reason: "must be greater than 0",
                        });
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(v).map_err(|_| LogError::BadParam {
                        param: "sinceTime",
                        value: v.clone(),
                        reason: "not an RFC 3339 time",
                    })?;
                    since_time = Some(t.with_timezone(&Utc));
                }
                "stream" => {
                    o.stream = match v.as_str() {
                        "" | "All" => StreamFilter::All,
                        "Stdout" => StreamFilter::Stdout,
                        "Stderr" => StreamFilter::Stderr,
                        _ => {
                            return Err(LogError::BadParam {
                                param: "stream",
                                value: v.clone(),
                                reason: "must be one of All, Stdout, Stderr",
                            })
                        }
                    }
                }
                _ => {}
            }
        }
        o.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => return Err(LogError::BothSince),
            (Some(s), None) => Some(now - chrono::Duration::seconds(s)),
            (None, t) => t,
        };
        Ok(o)
    }
}

/// One parsed line of a CRI log file.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp: DateTime<FixedOffset>,
    pub stream: Stream,
    /// `P`: the message continues on the next line.
    pub partial: bool,
    /// The message; a full (`F`) line's message ends with `\n`.
    pub message: Vec<u8>,
}

/// Parses one CRI log line (with or without its trailing `\n`).
pub fn parse_line(line: &[u8]) -> Result<LogLine, LogError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let bad = || LogError::BadLine(String::from_utf8_lossy(line).chars().take(80).collect());
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = parts.next().ok_or_else(bad)?;
    let stream = parts.next().ok_or_else(bad)?;
    let tag = parts.next().ok_or_else(bad)?;
    let msg = parts.next().unwrap_or(b"");
    let timestamp = std::str::from_utf8(ts)
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .ok_or_else(bad)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(bad()),
    };
    // tags are `:`-separated; the first one is F or P
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(bad()),
    };
    let mut message = msg.to_vec();
    if !partial {
        message.push(b'\n');
    }
    Ok(LogLine {
        timestamp,
        stream,
        partial,
        message,
    })
}

/// The timestamp format of `timestamps=true` output (RFC 3339 with 9 fixed fraction digits).
pub fn format_timestamp(t: &DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Turns parsed lines into output bytes: the since and stream filters, timestamp prefixes on
/// the first chunk of each logical line, and the byte limit.
#[derive(Debug)]
pub struct LogWriter {
    opts: LogOptions,
    remaining: Option<u64>,
    at_line_start: bool,
}

impl LogWriter {
    pub fn new(opts: &LogOptions) -> Self {
        LogWriter {
            opts: opts.clone(),
            remaining: opts.limit_bytes,
            at_line_start: true,
        }
    }

    /// Whether the byte limit has been reached (nothing more will be written).
    pub fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Appends the output of `line` to `out`.
    pub fn write(&mut self, line: &LogLine, out: &mut Vec<u8>) {
        let wanted = match self.opts.stream {
            StreamFilter::All => true,
            StreamFilter::Stdout => line.stream == Stream::Stdout,
            StreamFilter::Stderr => line.stream == Stream::Stderr,
        };
        let before_since = self
            .opts
            .since
            .is_some_and(|s| line.timestamp.with_timezone(&Utc) < s);
        let new_line = self.at_line_start;
        self.at_line_start = line.message.last().is_none_or(|b| *b == b'\n');
        if !wanted || before_since || self.done() {
            return;
        }
        let mut chunk = Vec::with_capacity(line.message.len() + 36);
        if self.opts.timestamps && new_line {
            chunk.extend_from_slice(format_timestamp(&line.timestamp).as_bytes());
            chunk.push(b' ');
        }
        chunk.extend_from_slice(&line.message);
        if let Some(rem) = self.remaining.as_mut() {
            let n = (*rem).min(chunk.len() as u64) as usize;
            chunk.truncate(n);
            *rem -= n as u64;
        }
        out.extend_from_slice(&chunk);
    }
}

/// The offset in `data` where the last `n` lines start (a trailing newline ends the last line).
pub fn tail_offset(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut end = data.len();
    if data.last() == Some(&b'\n') {
        end -= 1;
    }
    let mut seen = 0u64;
    for i in (0..end).rev() {
        if data[i] == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Reads the file from `offset` to its end.
async fn read_from(file: &mut tokio::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let before = buf.len();
    file.read_to_end(buf).await?;
    Ok(buf.len() - before)
}

/// Finds where the last `n` lines of the file start, reading backwards in blocks.
async fn tail_file_offset(file: &mut tokio::fs::File, n: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let len = file.metadata().await?.len();
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        file.seek(std::io::SeekFrom::Start(from)).await?;
        file.read_exact(&mut block).await?;
        block.extend_from_slice(&buf);
        buf = block;
        start = from;
        let off = tail_offset(&buf, n);
        if off > 0 || start == 0 {
            return Ok(start + off as u64);
        }
    }
}

/// Whether the container still writes its log, asked when the reader reaches the end of the file.
pub trait Liveness: Send {
    fn running(&mut self) -> impl std::future::Future<Output = bool> + Send;
}

/// Streams the log file at `path` to `tx` per `opts`; with `follow`, keeps reading until `alive`
/// reports the container stopped and the file is drained, or the receiver goes away.
pub async fn stream_log(
    path: &Path,
    opts: &LogOptions,
    mut alive: impl Liveness,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), LogError> {
    let rd = |e: std::io::Error| LogError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = tokio::fs::File::open(path).await.map_err(rd)?;
    let start = match opts.tail_lines {
        Some(n) => tail_file_offset(&mut file, n).await.map_err(rd)?,
        None => 0,
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(rd)?;
    let mut writer = LogWriter::new(opts);
    // without follow, a tail covers exactly the lines present when the request came in
    let mut line_budget = if opts.follow { None } else { opts.tail_lines };
    let mut pending: Vec<u8> = Vec::new();
    let mut idle = Duration::from_millis(20);
    loop {
        let n = read_from(&mut file, &mut pending).await.map_err(rd)?;
        let mut out = Vec::new();
        let mut consumed = 0;
        while let Some(nl) = pending[consumed..].iter().position(|b| *b == b'\n') {
            if line_budget == Some(0) || writer.done() {
                break;
            }
            let raw = &pending[consumed..consumed + nl + 1];
            consumed += nl + 1;
            match parse_line(raw) {
                Ok(line) => writer.write(&line, &mut out),
                Err(e) => tracing::debug!(path = %path.display(), error = %e, "skipping log line"),
            }
            if let Some(b) = line_budget.as_mut() {
                *b -= 1;
            }
        }
        pending.drain(..consumed);
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return Ok(());
        }
        if line_budget == Some(0) || writer.done() {
            return Ok(());
        }
        if n > 0 {
            idle = Duration::from_millis(20);
            continue;
        }
        if !opts.follow {
            break;
        }
        if !alive.running().await {
            // drain what was written before the exit, then stop
            let more = read_from(&mut file, &mut pending).await.map_err(rd)?;
            if more > 0 {
                continue;
            }
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = tx.closed() => return Ok(()),
        }
        idle = (idle * 2).min(Duration::from_millis(250));
    }
    // an incomplete last line is still returned
    if !pending.is_empty() && line_budget != Some(0) {
        let mut out = Vec::new();
        if let Ok(line) = parse_line(&pending) {
            writer.write(&line, &mut out);
        }
        if !out.is_empty() {
            let _ = tx.send(Bytes::from(out)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_cri_lines() {
        type Want = Result<(Stream, bool, &'static [u8]), ()>;
        let cases: &[(&[u8], Want)] = &[
            (
                b"2026-11-27T11:00:00.123456789Z stdout F hello world\n",
                Ok((Stream::Stdout, false, b"hello world\n")),
            ),
            (
                b"2026-11-27T11:00:00.1Z stderr P part",
                Ok((Stream::Stderr, true, b"part")),
            ),
            (
                b"2026-11-27T11:00:00+01:00 stdout F \n",
                Ok((Stream::Stdout, false, b"\n")),
            ),
            (
                b"2026-11-27T11:00:00Z stdout F:x a b  c\n",
                Ok((Stream::Stdout, false, b"a b  c\n")),
            ),
            (b"2026-11-27T11:00:00Z stdin F x\n", Err(())),
            (b"yesterday stdout F x\n", Err(())),
            (b"2026-11-27T11:00:00Z stdout X x\n", Err(())),
            (b"2026-11-27T11:00:00Z\n", Err(())),
        ];
        for (raw, want) in cases {
            let got = parse_line(raw)
                .map(|l| (l.stream, l.partial, l.message.clone()))
                .map_err(|_| ());
            let want = want.map(|(s, p, m)| (s, p, m.to_vec()));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn options_from_query() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let o = LogOptions::from_query(
            &q(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("sinceSeconds", "60"),
                ("timestamps", "1"),
                ("limitBytes", "100"),
                ("stream", "Stderr"),
            ]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(100));
        assert_eq!(o.stream, StreamFilter::Stderr);
        assert_eq!(o.since.unwrap().to_rfc3339(), "2026-11-27T11:59:00+00:00");
        let o = LogOptions::from_query(&q(&[("sinceTime", "2026-11-27T10:00:00Z")]), now).unwrap();
        assert_eq!(o.since.unwrap().to_rfc3339(), "2026-11-27T10:00:00+00:00");
        for bad in [
            q(&[("tailLines", "-1")]),
            q(&[("tailLines", "x")]),
            q(&[("limitBytes", "0")]),
            q(&[("sinceSeconds", "0")]),
            q(&[("sinceTime", "noon")]),
            q(&[("stream", "stdin")]),
            q(&[("sinceSeconds", "5"), ("sinceTime", "2026-11-27T10:00:00Z")]),
        ] {
            assert!(LogOptions::from_query(&bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tail_offsets() {
        let data = b"a\nb\nc\n";
        let cases: &[(u64, &[u8])] = &[
            (0, b""),
            (1, b"c\n"),
            (2, b"b\nc\n"),
            (3, b"a\nb\nc\n"),
            (9, b"a\nb\nc\n"),
        ];
        for (n, want) in cases {
            assert_eq!(&data[tail_offset(data, *n)..], *want, "tail {n}");
        }
        // an unterminated last line counts as a line
        assert_eq!(&b"a\nb"[tail_offset(b"a\nb", 1)..], b"b");
    }

    fn render(opts: &LogOptions, lines: &[&[u8]]) -> String {
        let mut w = LogWriter::new(opts);
        let mut out = Vec::new();
        for l in lines {
            w.write(&parse_line(l).unwrap(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writer_joins_partials_stamps_filters_and_limits() {
        let lines: &[&[u8]] = &[
            b"2026-11-27T11:00:00.5Z stdout P hel\n",
            b"2026-11-27T11:00:01Z stdout F lo\n",
            b"2026-11-27T11:00:02.000000001Z stderr F oops\n",
            b"2026-11-27T11:00:03Z stdout F bye\n",
        ];
        let all = LogOptions::default();
        assert_eq!(render(&all, lines), "hello\noops\nbye\n");
        let ts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(&ts, lines),
            "2026-11-27T11:00:00.500000000Z hello\n2026-11-27T11:00:02.000000001Z oops\n2026-11-27T11:00:03.000000000Z bye\n"
        );
        let since = LogOptions {
            since: Some("2026-11-27T11:00:02Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(render(&since, lines), "oops\nbye\n");
        let stdout = LogOptions {
            stream: StreamFilter::Stdout,
            ..Default::default()
        };
        assert_eq!(render(&stdout, lines), "hello\nbye\n");
        let limit = LogOptions {
            limit_bytes: Some(8),
            ..Default::default()
        };
        assert_eq!(render(&limit, lines), "hello\noo");
    }

    struct Exited;
    impl Liveness for Exited {
        async fn running(&mut self) -> bool {
            false
        }
    }

    async fn collect(path: &Path, opts: &LogOptions) -> String {
        let (tx, mut rx) = mpsc::channel(16);
        let task = {
            let path = path.to_path_buf();
            let opts = opts.clone();
            tokio::spawn(async move { stream_log(&path, &opts, Exited, tx).await })
        };
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        task.await.unwrap().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn streams_files_with_tail_and_follow_of_an_exited_container() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("2026-11-27T11:00:00.{i:09}Z stdout F line {i}\n"));
        }
        text.push_str("2026-11-27T11:00:01Z stdout P no newline yet");
        std::fs::write(&p, &text).unwrap();
        let tail = LogOptions {
            tail_lines: Some(3),
            ..Default::default()
        };
        assert_eq!(
            collect(&p, &tail).await,
            "line 4998\nline 4999\nno newline yet"
        );
        let follow = LogOptions {
            follow: true,
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(collect(&p, &follow).await, "line 4999\nno newline yet");
        let all = collect(&p, &LogOptions::default()).await;
        assert_eq!(all.lines().count(), 5001);
        assert!(all.starts_with("line 0\nline 1\n"));
        let missing = stream_log(
            &dir.path().join("nope"),
            &LogOptions::default(),
            Exited,
            mpsc::channel(1).0,
        )
        .await;
        assert!(matches!(missing, Err(LogError::Read { .. })));
    }
}
