//! The per-container shim: a small single-threaded process (our own binary re-executed as
//! `oxkube shim ...`) that creates the container with youki's libcontainer, is the parent of its
//! init process, copies its stdout/stderr into the CRI log file, takes commands (start, kill,
//! reopen-log, delete) on a unix socket, reaps the init process and records its exit status. It
//! runs in its own session, so it outlives agent restarts.
//!
//! Files: the control socket `--ctl` (commands, one line in, one JSON line out), and in the
//! container dir `exit.json` (written once the container exited), `shim.log` (the shim's errors).
//! Handshake: the shim prints one JSON line on stdout, `{"pid":N}` or `{"error":"..."}`.
//! With `--wait` the agent starts the shim before the container's bundle exists (so the exec
//! and start-up of the shim overlap the rootfs mount and spec build) and writes `go` on the
//! shim's stdin once the bundle is ready; EOF instead means the create was abandoned and the
//! shim exits having done nothing.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Exit status recorded by the shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub exit_code: i32,
    /// Unix nanoseconds.
    pub finished_at: i64,
    #[serde(default)]
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container.
    #[serde(default)]
    pub oom_killed: bool,
}

/// The container's cgroup path from its bundle (read once at start, off the exit path).
fn cgroups_path_of(bundle: &Path) -> String {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// OOM kills recorded by the container's memory cgroup (v1 `memory.oom_control`, v2
/// `memory.events`), read before the cgroup is deleted.
fn oom_kills(cgroups_path: &str) -> u64 {
    let rel = cgroups_path.trim_start_matches('/');
    let candidates = [
        Path::new("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control"),
        Path::new("/sys/fs/cgroup/unified")
            .join(rel)
            .join("memory.events"),
        Path::new("/sys/fs/cgroup").join(rel).join("memory.events"),
    ];
    for file in candidates {
        if let Ok(s) = std::fs::read_to_string(&file) {
            if let Some(n) = super::stats::stat_value(&s, "oom_kill") {
                return n;
            }
        }
    }
    0
}

/// Shim command line:
/// `shim --id ID --bundle DIR --state-root DIR --dir DIR --ctl SOCKET [--log FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// The libcontainer container ID.
    pub id: String,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    pub dir: PathBuf,
    /// Control socket (kept short: unix socket paths are limited to 108 bytes).
    pub ctl: PathBuf,
    /// Datagram socket of the runtime, told the libcontainer ID when the container exited.
    pub events: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// Keep the container's stdin open (a pipe the shim holds) for attach.
    pub stdin: bool,
    /// Close the container's stdin when the first attach client closes its stdin.
    pub stdin_once: bool,
    /// Run the container on a terminal (its master held by the shim).
    pub tty: bool,
    /// Attach socket: clients get the container's output and feed its stdin.
    pub attach: Option<PathBuf>,
    /// Wait for `go` on stdin before creating the container (see the module docs).
    pub wait: bool,
}

impl ShimArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--id".into(),
            self.id.clone(),
            "--bundle".into(),
            self.bundle.display().to_string(),
            "--state-root".into(),
            self.state_root.display().to_string(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--ctl".into(),
            self.ctl.display().to_string(),
        ];
        if let Some(l) = &self.log {
            v.push("--log".into());
            v.push(l.display().to_string());
        }
        if let Some(e) = &self.events {
            v.push("--events".into());
            v.push(e.display().to_string());
        }
        if let Some(a) = &self.attach {
            v.push("--attach".into());
            v.push(a.display().to_string());
        }
        for (on, flag) in [
            (self.stdin, "--stdin"),
            (self.stdin_once, "--stdin-once"),
            (self.tty, "--tty"),
            (self.wait, "--wait"),
        ] {
            if on {
                v.push(flag.into());
            }
        }
        v
    }

    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut it = args.iter();
        let (mut id, mut bundle, mut state_root, mut dir, mut ctl, mut log, mut events) =
            (None, None, None, None, None, None, None);
        let (mut stdin, mut stdin_once, mut tty, mut attach) = (false, false, false, None);
        let mut wait = false;
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "shim" => {}
                "--stdin" => stdin = true,
                "--stdin-once" => stdin_once = true,
                "--tty" => tty = true,
                "--wait" => wait = true,
                "--attach" => attach = Some(PathBuf::from(val()?)),
                "--id" => id = Some(val()?),
                "--bundle" => bundle = Some(PathBuf::from(val()?)),
                "--state-root" => state_root = Some(PathBuf::from(val()?)),
                "--dir" => dir = Some(PathBuf::from(val()?)),
                "--ctl" => ctl = Some(PathBuf::from(val()?)),
                "--log" => log = Some(PathBuf::from(val()?)),
                "--events" => events = Some(PathBuf::from(val()?)),
                other => return Err(format!("unknown shim argument {other:?}")),
            }
        }
        Ok(ShimArgs {
            id: id.ok_or("--id is required")?,
            bundle: bundle.ok_or("--bundle is required")?,
            state_root: state_root.ok_or("--state-root is required")?,
            dir: dir.ok_or("--dir is required")?,
            ctl: ctl.ok_or("--ctl is required")?,
            log,
            events,
            stdin,
            stdin_once,
            tty,
            attach,
            wait,
        })
    }
}

/// What the agent tells a waiting shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Go {
    /// The bundle is ready: create the container.
    Create,
    /// The create was abandoned (EOF or anything but `go`): exit without doing anything.
    Abandon,
}

/// Reads the agent's word from a waiting shim's stdin.
pub fn read_go(input: impl Read) -> Go {
    let mut line = String::new();
    match BufReader::new(input).read_line(&mut line) {
        Ok(_) if line.trim_end() == "go" => Go::Create,
        _ => Go::Abandon,
    }
}

/// Formats one CRI log record: `<RFC3339Nano> <stream> <F|P> <content>\n`.
pub fn cri_log_line(
    ts: chrono::DateTime<chrono::Utc>,
    stream: &str,
    full: bool,
    content: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "{} {stream} {} ",
        ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        if full { "F" } else { "P" }
    )
    .into_bytes();
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// Longest log line kept whole; longer lines are split into partial (`P`) records.
pub const MAX_LINE: usize = 16 * 1024;

/// Splits a stream into CRI log records.
pub struct LineSplitter {
    stream: &'static str,
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: &'static str) -> Self {
        LineSplitter {
            stream,
            buf: Vec::new(),
        }
    }

    /// Feeds bytes; returns complete records.
    pub fn feed(&mut self, data: &[u8], now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                out.extend(cri_log_line(
                    now,
                    self.stream,
                    true,
                    &line[..line.len() - 1],
                ));
            } else if self.buf.len() >= MAX_LINE {
                let part: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
                out.extend(cri_log_line(now, self.stream, false, &part));
            } else {
                break;
            }
        }
        out
    }

    /// At EOF a trailing unterminated line is written as a full record.
    pub fn finish(&mut self, now: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
        if self.buf.is_empty() {
            return vec![];
        }
        let rest = std::mem::take(&mut self.buf);
        cri_log_line(now, self.stream, true, &rest)
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn open_log(path: &Option<PathBuf>) -> Option<File> {
    let p = path.as_ref()?;
    if let Some(d) = p.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    OpenOptions::new().create(true).append(true).open(p).ok()
}

fn write_json_atomic(path: &Path, v: &impl Serialize) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, &serde_json::to_vec(v).expect("json"))
}

/// Runs the shim (or, with `exec` first, the exec helper); returns the process exit code.
pub fn main(argv: &[String]) -> i32 {
    let argv: Vec<String> = match argv.first().map(String::as_str) {
        Some("shim") => argv[1..].to_vec(),
        _ => argv.to_vec(),
    };
    if argv.first().map(String::as_str) == Some(super::podinit::ARG) {
        return super::podinit::main();
    }
    if argv.first().map(String::as_str) == Some("exec") {
        return exec_main(&argv[1..]);
    }
    let args = match ShimArgs::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("oxkube shim: {e}");
            return 2;
        }
    };
    // Our own session, so the shim outlives the agent and a kill of the agent's process group
    // (done here, not between fork and exec, so the agent can spawn us without a fork). It
    // fails only if we already lead a session or group, which is as good.
    let _ = nix::unistd::setsid();
    if args.wait {
        if read_go(std::io::stdin().lock()) == Go::Abandon {
            return 0;
        }
        // the container's stdin is its own; ours is no longer needed
        if let Ok(null) = File::open("/dev/null") {
            let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
        }
    }
    let mut handshake = std::io::stdout();
    match run(&args, &mut handshake) {
        Ok(()) => 0,
        Err(e) => {
            // Before the handshake this reaches the agent; after it, the shim log.
            let _ = writeln!(handshake, "{}", serde_json::json!({"error": e}));
            let _ = handshake.flush();
            let _ = writeln!(std::io::stderr(), "oxkube shim {}: {e}", args.id);
            1
        }
    }
}

/// Frame types of the attach socket: `[type u8][length u32 BE][payload]`.
pub mod attach_frame {
    /// client -> shim: data for the container's stdin
    pub const STDIN: u8 = 0;
    /// shim -> client: container output
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    /// client -> shim: this client closed stdin (closes the container's stdin if stdin_once)
    pub const CLOSE_STDIN: u8 = 3;
    /// client -> shim: terminal size, width and height as u16 BE
    pub const RESIZE: u8 = 4;

    pub fn encode(ty: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(5 + payload.len());
        v.push(ty);
        v.extend((payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Takes complete frames off the front of `buf`.
    pub fn decode(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while buf.len() >= at + 5 {
            let len =
                u32::from_be_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
            if buf.len() < at + 5 + len {
                break;
            }
            out.push((buf[at], buf[at + 5..at + 5 + len].to_vec()));
            at += 5 + len;
        }
        buf.drain(..at);
        out
    }
}

/// Most output buffered for one slow attach client (it is dropped beyond this).
const MAX_CLIENT_BACKLOG: usize = 4 << 20;

/// Receives one file descriptor (SCM_RIGHTS), as a console socket gets a terminal master.
pub fn recv_fd(sock: &UnixStream) -> Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive terminal: {e}"))?;
    for c in msg.cmsgs().map_err(|e| format!("receive terminal: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(*fd) });
            }
        }
    }
    Err("no terminal received on the console socket".into())
}

/// Accepts the console socket's one connection and takes the terminal master from it.
pub fn accept_terminal(listener: &UnixListener, timeout_ms: u16) -> Result<OwnedFd, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(timeout_ms)) {
        Ok(n) if n > 0 => {}
        Ok(_) => return Err("no terminal from the container".into()),
        Err(e) => return Err(format!("poll console socket: {e}")),
    }
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("accept console socket: {e}"))?;
    let _ = conn.set_nonblocking(false);
    recv_fd(&conn)
}

/// Sets a terminal's size.
pub fn set_winsize(fd: &impl AsRawFd, width: u16, height: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct we own.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

fn set_nonblocking(fd: &impl AsRawFd) -> Result<(), String> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// One attached client.
struct Client {
    conn: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    dead: bool,
}

impl Client {
    fn flush(&mut self) {
        while !self.out.is_empty() && !self.dead {
            match (&self.conn).write(&self.out) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.dead = true,
            }
        }
    }

    fn send(&mut self, ty: u8, data: &[u8]) {
        if self.dead {
            return;
        }
        self.out.extend(attach_frame::encode(ty, data));
        if self.out.len() > MAX_CLIENT_BACKLOG {
            self.dead = true;
        }
        self.flush();
    }
}

/// The container's stdin as the shim holds it: the pipe's write end or the terminal master.
struct Input {
    file: Option<File>,
    pending: Vec<u8>,
    close_when_flushed: bool,
}

impl Input {
    fn flush(&mut self) {
        let Some(f) = self.file.as_mut() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match f.write(&self.pending) {
                Ok(n) if n > 0 => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => {
                    self.file = None;
                    self.pending.clear();
                    return;
                }
            }
        }
        if self.close_when_flushed {
            self.file = None;
        }
    }
}

fn run(args: &ShimArgs, handshake: &mut std::io::Stdout) -> Result<(), String> {
    // Become a subreaper so orphans of the container are ours to reap.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;

    let ctl_path = args.ctl.clone();
    let _ = std::fs::remove_file(&ctl_path);
    let listener =
        UnixListener::bind(&ctl_path).map_err(|e| format!("bind {}: {e}", ctl_path.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;

    let builder = libcontainer::container::builder::ContainerBuilder::new(
        args.id.clone(),
        libcontainer::syscall::syscall::SyscallType::Linux,
    )
    .with_root_path(&args.state_root)
    .map_err(|e| format!("state root: {e}"))?;
    let mut pipes: [Option<File>; 2] = [None, None];
    let mut input = Input {
        file: None,
        pending: Vec::new(),
        close_when_flushed: false,
    };
    let mut console: Option<(UnixListener, PathBuf)> = None;
    let builder = if args.tty {
        let path = ctl_path.with_extension("tty");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        let b = builder.with_console_socket(Some(&path));
        console = Some((l, path));
        b
    } else {
        let (out_r, out_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        pipes = [Some(File::from(out_r)), Some(File::from(err_r))];
        let stdin: OwnedFd = if args.stdin {
            let (in_r, in_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| format!("pipe: {e}"))?;
            set_nonblocking(&in_w)?;
            input.file = Some(File::from(in_w));
            in_r
        } else {
            File::open("/dev/null")
                .map_err(|e| format!("open /dev/null: {e}"))?
                .into()
        };
        builder
            .with_stdin(stdin)
            .with_stdout(out_w)
            .with_stderr(err_w)
    };
    let built = builder
        .validate_id()
        .map_err(|e| format!("container id: {e}"))
        .and_then(|b| {
            b.as_init(&args.bundle)
                .with_systemd(false)
                .with_detach(true)
                .build()
                .map_err(|e| format!("create container: {e}"))
        });
    // the terminal master arrived while the container was created
    let mut master_ctl: Option<File> = None;
    if let Some((l, path)) = console.take() {
        let got = built.as_ref().ok().map(|_| accept_terminal(&l, 10_000));
        let _ = std::fs::remove_file(&path);
        if let Some(master) = got {
            let master = File::from(master?);
            set_nonblocking(&master)?;
            let dup = |f: &File| f.try_clone().map_err(|e| format!("dup terminal: {e}"));
            if args.stdin {
                input.file = Some(dup(&master)?);
            }
            master_ctl = Some(dup(&master)?);
            pipes[0] = Some(master);
        }
    }
    let mut container = built?;
    let init_pid = container.pid().ok_or("created container has no pid")?;
    let attach = match &args.attach {
        Some(p) => {
            let _ = std::fs::remove_file(p);
            let l = UnixListener::bind(p).map_err(|e| format!("bind {}: {e}", p.display()))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Some(l)
        }
        None => None,
    };
    let mut clients: Vec<Client> = Vec::new();

    writeln!(
        handshake,
        "{}",
        serde_json::json!({"pid": init_pid.as_raw()})
    )
    .map_err(|e| e.to_string())?;
    handshake.flush().map_err(|e| e.to_string())?;
    // The agent stops reading after the handshake; nothing else goes to this stdout.
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .map_err(|e| e.to_string())?;
    nix::unistd::dup2(null.as_raw_fd(), 1).map_err(|e| e.to_string())?;
    // after the handshake: CreateContainer does not wait for it
    let cgroups_path = cgroups_path_of(&args.bundle);

    let mut log = open_log(&args.log);
    let mut splitters = [LineSplitter::new("stdout"), LineSplitter::new("stderr")];
    for p in pipes.iter().flatten() {
        set_nonblocking(p)?;
    }
    let mut exit: Option<ExitRecord> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Copy whatever the container wrote.
        let mut fds: Vec<PollFd> = vec![
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        for p in pipes.iter().flatten() {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        if let Some(a) = &attach {
            fds.push(PollFd::new(a.as_fd(), PollFlags::POLLIN));
        }
        for c in &clients {
            let mut ev = PollFlags::POLLIN;
            if !c.out.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(c.conn.as_fd(), ev));
        }
        if let (Some(f), false) = (&input.file, input.pending.is_empty()) {
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLOUT));
        }
        let timeout = if exit.is_some() {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        drop(fds);
        for (i, slot) in pipes.iter_mut().enumerate() {
            let Some(p) = slot else { continue };
            loop {
                match p.read(&mut buf) {
                    Ok(0) => {
                        let rest = splitters[i].finish(chrono::Utc::now());
                        if let Some(l) = log.as_mut() {
                            let _ = l.write_all(&rest);
                        }
                        *slot = None;
                        break;
                    }
                    Ok(n) => {
                        let recs = splitters[i].feed(&buf[..n], chrono::Utc::now());
                        if let Some(l) = log.as_mut() {
                            let _ = l.write_all(&recs);
                        }
                        let ty = if i == 0 {
                            attach_frame::STDOUT
                        } else {
                            attach_frame::STDERR
                        };
                        for c in clients.iter_mut() {
                            c.send(ty, &buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // a terminal master reads EIO once the container side is closed
                    Err(_) => {
                        let rest = splitters[i].finish(chrono::Utc::now());
                        if let Some(l) = log.as_mut() {
                            let _ = l.write_all(&rest);
                        }
                        *slot = None;
                        break;
                    }
                }
            }
        }
        // Attach clients: new ones, their input, their backlog.
        if let Some(a) = &attach {
            while let Ok((conn, _)) = a.accept() {
                if conn.set_nonblocking(true).is_ok() {
                    clients.push(Client {
                        conn,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        dead: false,
                    });
                }
            }
        }
        for c in clients.iter_mut() {
            loop {
                match (&c.conn).read(&mut buf) {
                    Ok(0) => {
                        c.dead = true;
                        break;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        c.dead = true;
                        break;
                    }
                }
            }
            for (ty, data) in attach_frame::decode(&mut c.inbuf) {
                match ty {
                    attach_frame::STDIN
                        if input.file.is_some()
                            && input.pending.len() + data.len() <= MAX_CLIENT_BACKLOG =>
                    {
                        input.pending.extend_from_slice(&data);
                    }
                    attach_frame::CLOSE_STDIN if args.stdin_once => {
                        input.close_when_flushed = true;
                    }
                    attach_frame::RESIZE if data.len() == 4 => {
                        if let Some(m) = &master_ctl {
                            let w = u16::from_be_bytes([data[0], data[1]]);
                            let h = u16::from_be_bytes([data[2], data[3]]);
                            set_winsize(m, w, h);
                        }
                    }
                    _ => {}
                }
            }
            c.flush();
        }
        clients.retain(|c| !c.dead);
        input.flush();
        // Reap children; the init process's status is the container's.
        while let Ok(Some(_)) = sigfd.read_signal() {}
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == init_pid => {
                    exit = Some(ExitRecord {
                        exit_code: code,
                        finished_at: now_ns(),
                        signal: None,
                        oom_killed: false,
                    });
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init_pid => {
                    exit = Some(ExitRecord {
                        exit_code: 128 + sig as i32,
                        finished_at: now_ns(),
                        signal: Some(sig as i32),
                        oom_killed: false,
                    });
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(rec) = exit.as_mut() {
            // Pipes drained (or still held by an escaped process): finish up.
            if pipes.iter().all(Option::is_none) || timeout == PollTimeout::ZERO {
                if let Some(l) = log.as_mut() {
                    for s in splitters.iter_mut() {
                        let _ = l.write_all(&s.finish(chrono::Utc::now()));
                    }
                }
                if let Some(p) = &args.attach {
                    let _ = std::fs::remove_file(p);
                }
                rec.oom_killed = oom_kills(&cgroups_path) > 0;
                // The exit is recorded and reported first; deleting the container (its cgroups
                // and state) comes after, off the path of the exit event. RemoveContainer waits
                // for this shim to end, so it never races the delete.
                write_json_atomic(&args.dir.join("exit.json"), rec)
                    .map_err(|e| format!("write exit status: {e}"))?;
                if let Some(ev) = &args.events {
                    // best effort: a runtime that is down learns of the exit when it restarts
                    if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
                        let _ = sock.send_to(args.id.as_bytes(), ev);
                    }
                }
                if let Err(e) = container.delete(true) {
                    eprintln!("oxkube shim {}: delete: {e}", args.id);
                }
                // attached clients get what is left, then EOF (after the exit is recorded, so
                // a session that ended finds the container exited)
                for c in clients.iter_mut() {
                    let _ = c.conn.set_nonblocking(false);
                    let _ = c
                        .conn
                        .set_write_timeout(Some(std::time::Duration::from_secs(1)));
                    let _ = (&c.conn).write_all(&c.out);
                }
                clients.clear();
                let _ = std::fs::remove_file(&ctl_path);
                return Ok(());
            }
            continue;
        }
        // Commands.
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    if handle(conn, &mut container, &mut log, args)? {
                        // deleted before it ever ran
                        let _ = std::fs::remove_file(&ctl_path);
                        if let Some(p) = &args.attach {
                            let _ = std::fs::remove_file(p);
                        }
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("accept: {e}")),
            }
        }
    }
}

/// Exec helper command line: `exec --id ID --state-root DIR --error-file FILE [--timeout SECS]
/// [--stdin] [--console-socket SOCKET] [--pid-file FILE] -- CMD...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArgs {
    pub id: String,
    pub state_root: PathBuf,
    pub error_file: PathBuf,
    pub timeout_secs: u64,
    pub cmd: Vec<String>,
    /// The command reads our stdin (else /dev/null).
    pub stdin: bool,
    /// Run it on a new terminal whose master is sent to this unix socket (runc's
    /// `--console-socket`); stdio then is the terminal.
    pub console_socket: Option<PathBuf>,
    /// Where the command's (host) PID is written once it runs.
    pub pid_file: Option<PathBuf>,
}

impl ExecArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "exec".into(),
            "--id".into(),
            self.id.clone(),
            "--state-root".into(),
            self.state_root.display().to_string(),
            "--error-file".into(),
            self.error_file.display().to_string(),
            "--timeout".into(),
            self.timeout_secs.to_string(),
        ];
        if self.stdin {
            v.push("--stdin".into());
        }
        if let Some(p) = &self.console_socket {
            v.push("--console-socket".into());
            v.push(p.display().to_string());
        }
        if let Some(p) = &self.pid_file {
            v.push("--pid-file".into());
            v.push(p.display().to_string());
        }
        v.push("--".into());
        v.extend(self.cmd.iter().cloned());
        v
    }

    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut it = args.iter();
        let (mut id, mut state_root, mut error_file, mut timeout_secs) = (None, None, None, 0u64);
        let (mut stdin, mut console_socket, mut pid_file) = (false, None, None);
        let mut cmd = Vec::new();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--stdin" => stdin = true,
                "--console-socket" => console_socket = Some(PathBuf::from(val()?)),
                "--pid-file" => pid_file = Some(PathBuf::from(val()?)),
                "--id" => id = Some(val()?),
                "--state-root" => state_root = Some(PathBuf::from(val()?)),
                "--error-file" => error_file = Some(PathBuf::from(val()?)),
                "--timeout" => timeout_secs = val()?.parse().map_err(|_| "bad --timeout")?,
                "--" => {
                    cmd = it.by_ref().cloned().collect();
                }
                other => return Err(format!("unknown exec argument {other:?}")),
            }
        }
        if cmd.is_empty() {
            return Err("no command to exec".into());
        }
        Ok(ExecArgs {
            id: id.ok_or("--id is required")?,
            state_root: state_root.ok_or("--state-root is required")?,
            error_file: error_file.ok_or("--error-file is required")?,
            timeout_secs,
            cmd,
            stdin,
            console_socket,
            pid_file,
        })
    }
}

/// The exec process (the container's own process spec running `cmd`, see [`super::execproc`])
/// written next to `near`, and the executor that applies the container's seccomp filter.
fn exec_process_file(
    args: &ExecArgs,
    near: &Path,
) -> Result<(PathBuf, super::execproc::ConfinedExec), String> {
    let container = libcontainer::container::Container::load(args.state_root.join(&args.id))
        .map_err(|e| format!("load container state: {e}"))?;
    let config = std::fs::read(container.bundle().join("config.json"))
        .map_err(|e| format!("read container config: {e}"))?;
    let (process, exec) =
        super::execproc::exec_process(&config, &args.cmd, args.console_socket.is_some())
            .map_err(|e| e.to_string())?;
    let path = near.with_extension("process.json");
    std::fs::write(&path, serde_json::to_vec(&process).expect("json"))
        .map_err(|e| format!("write process spec: {e}"))?;
    Ok((path, exec))
}

/// Runs a command in a running container with its stdout/stderr on ours; exits with its status.
/// Failures to run it (and timeouts) are written to the error file, so they are not confused
/// with the command's own output.
pub fn exec_main(argv: &[String]) -> i32 {
    let args = match ExecArgs::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("oxkube exec: {e}");
            return 2;
        }
    };
    let fail = |msg: String| {
        let _ = std::fs::write(&args.error_file, msg);
        255
    };
    let dup = |fd: i32| -> Result<OwnedFd, String> {
        let d = nix::unistd::dup(fd).map_err(|e| format!("dup: {e}"))?;
        // SAFETY: `d` is a fresh descriptor we own.
        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(d) })
    };
    let (process, executor) = match exec_process_file(&args, &args.error_file) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let base = match libcontainer::container::builder::ContainerBuilder::new(
        args.id.clone(),
        libcontainer::syscall::syscall::SyscallType::Linux,
    )
    .with_root_path(&args.state_root)
    {
        Ok(b) => b.with_executor(executor),
        Err(e) => {
            let _ = std::fs::remove_file(&process);
            return fail(format!("exec in container: {e}"));
        }
    };
    let built = if let Some(console) = &args.console_socket {
        base.with_console_socket(Some(console))
            .as_tenant()
            .with_process(Some(&process))
            .with_detach(true)
            .build()
    } else {
        let stdio = dup(1).and_then(|o| Ok((o, dup(2)?))).and_then(|(o, e)| {
            let input = if args.stdin {
                dup(0)?
            } else {
                File::open("/dev/null")
                    .map(OwnedFd::from)
                    .map_err(|e| format!("open /dev/null: {e}"))?
            };
            Ok((input, o, e))
        });
        match stdio {
            Ok((input, out, err)) => base
                .with_stdin(input)
                .with_stdout(out)
                .with_stderr(err)
                .as_tenant()
                .with_process(Some(&process))
                .with_detach(true)
                .build(),
            Err(e) => {
                let _ = std::fs::remove_file(&process);
                return fail(e);
            }
        }
    };
    let _ = std::fs::remove_file(&process);
    let pid = match built {
        Ok(pid) => pid,
        Err(e) => return fail(format!("exec in container: {e}")),
    };
    if args.stdin {
        // the command has its copy; ours must not keep the pipe open
        let _ = nix::unistd::close(0);
    }
    if let Some(p) = &args.pid_file {
        let _ = std::fs::write(p, pid.as_raw().to_string());
    }
    let deadline = (args.timeout_secs > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_secs(args.timeout_secs));
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return fail(format!("wait for exec process: {e}")),
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return fail(format!("command timed out after {}s", args.timeout_secs));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Handles one command; returns true when the shim should exit (container deleted).
fn handle(
    conn: UnixStream,
    container: &mut libcontainer::container::Container,
    log: &mut Option<File>,
    args: &ShimArgs,
) -> Result<bool, String> {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut line = String::new();
    let mut reader = BufReader::new(&conn);
    if reader.read_line(&mut line).is_err() {
        return Ok(false);
    }
    let mut parts = line.split_whitespace();
    let cmd = parts.next().unwrap_or("");
    let mut exit_after = false;
    let reply = match cmd {
        "start" => match container.start() {
            Ok(()) => serde_json::json!({"ok": true, "started_at": now_ns()}),
            Err(e) => serde_json::json!({"error": format!("start container: {e}")}),
        },
        "kill" => {
            let sig = parts
                .next()
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(15);
            match libcontainer::signal::Signal::try_from(sig) {
                Ok(s) => match container.kill(s, true) {
                    Ok(()) => serde_json::json!({"ok": true}),
                    Err(e) => serde_json::json!({"error": format!("kill container: {e}")}),
                },
                Err(e) => serde_json::json!({"error": format!("bad signal {sig}: {e}")}),
            }
        }
        "reopen" => {
            *log = open_log(&args.log);
            serde_json::json!({"ok": log.is_some() || args.log.is_none()})
        }
        "delete" => match container.delete(true) {
            Ok(()) => {
                exit_after = true;
                serde_json::json!({"ok": true})
            }
            Err(e) => serde_json::json!({"error": format!("delete container: {e}")}),
        },
        other => serde_json::json!({"error": format!("unknown command {other:?}")}),
    };
    let mut w = &conn;
    let _ = writeln!(w, "{reply}");
    Ok(exit_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            id: "abc".into(),
            bundle: "/b".into(),
            state_root: "/s".into(),
            dir: "/d".into(),
            ctl: "/c.sock".into(),
            log: Some("/l/0.log".into()),
            events: Some("/e.sock".into()),
            stdin: true,
            stdin_once: false,
            tty: true,
            attach: Some("/a.sock".into()),
            wait: true,
        };
        let mut argv = vec!["shim".to_string()];
        argv.extend(a.to_args());
        assert_eq!(ShimArgs::parse(&argv), Ok(a));
        assert!(ShimArgs::parse(&["--id".into()]).is_err());
        assert!(ShimArgs::parse(&["--bogus".into(), "x".into()]).is_err());
    }

    #[test]
    fn go_word() {
        for (input, want) in [
            (&b"go\n"[..], Go::Create),
            (b"go", Go::Create),
            (b"", Go::Abandon),
            (b"stop\n", Go::Abandon),
            (b"gone\n", Go::Abandon),
        ] {
            assert_eq!(read_go(input), want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn exec_args_round_trip() {
        let a = ExecArgs {
            id: "abc".into(),
            state_root: "/s".into(),
            error_file: "/e".into(),
            timeout_secs: 3,
            cmd: vec!["sh".into(), "-c".into(), "echo --id".into()],
            stdin: true,
            console_socket: Some("/t.sock".into()),
            pid_file: Some("/p".into()),
        };
        let argv = a.to_args();
        assert_eq!(argv[0], "exec");
        assert_eq!(ExecArgs::parse(&argv[1..]), Ok(a));
        assert!(ExecArgs::parse(&["--id".into(), "x".into()]).is_err());
    }

    #[test]
    fn attach_frames() {
        let mut wire = attach_frame::encode(attach_frame::STDIN, b"hi");
        wire.extend(attach_frame::encode(attach_frame::RESIZE, &[0, 80, 0, 24]));
        wire.extend(attach_frame::encode(attach_frame::CLOSE_STDIN, b""));
        let mut part = wire[..9].to_vec();
        assert_eq!(
            attach_frame::decode(&mut part),
            vec![(attach_frame::STDIN, b"hi".to_vec())]
        );
        part.extend_from_slice(&wire[9..]);
        assert_eq!(
            attach_frame::decode(&mut part),
            vec![
                (attach_frame::RESIZE, vec![0, 80, 0, 24]),
                (attach_frame::CLOSE_STDIN, vec![])
            ]
        );
        assert!(part.is_empty());
    }

    #[test]
    fn cri_log_records() {
        let ts = chrono::Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .unwrap();
        let mut s = LineSplitter::new("stdout");
        let out = s.feed(b"hello\nwor", ts);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2023-11-14T22:13:20.123456789Z stdout F hello\n"
        );
        let out = s.feed(b"ld\n", ts);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2023-11-14T22:13:20.123456789Z stdout F world\n"
        );
        let mut e = LineSplitter::new("stderr");
        let long = vec![b'x'; MAX_LINE + 3];
        let out = String::from_utf8(e.feed(&long, ts)).unwrap();
        assert_eq!(out.lines().count(), 1);
        assert!(out.starts_with("2023-11-14T22:13:20.123456789Z stderr P xxx"));
        let rest = String::from_utf8(e.finish(ts)).unwrap();
        assert_eq!(rest, "2023-11-14T22:13:20.123456789Z stderr F xxx\n");
        assert!(e.finish(ts).is_empty());
    }
}
