//! The container side of the streaming server: exec (the exec helper with pipes, or on a
//! terminal received over a console socket), attach (the shim's attach socket) and port-forward
//! (a TCP connection made inside the sandbox's network namespace).

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cri::v1 as pb;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::manager::{ContainerManager, State};
use super::shim::{attach_frame, ExecArgs};
use crate::sandbox::SandboxManager;
use crate::stream::{Backend, Outcome, StdIo};

/// Serves the streaming server's requests from this runtime's containers and sandboxes.
pub struct RuntimeBackend {
    pub containers: Arc<ContainerManager>,
    pub sandboxes: Arc<SandboxManager>,
}

/// Kills the exec'd process if the session ends before it does (the client went away).
struct KillOnDrop {
    pid_file: PathBuf,
    error_file: PathBuf,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            if let Some(pid) = std::fs::read_to_string(&self.pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                tracing::debug!(pid, "exec session ended, killing its process");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(&self.error_file);
    }
}

/// Copies a pipe into a channel until EOF (the channel closes when this returns).
async fn pump(mut from: impl AsyncRead + Unpin, to: Option<mpsc::Sender<Vec<u8>>>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(tx) = &to {
                    // a client that stopped reading still lets the command finish
                    let _ = tx.send(buf[..n].to_vec()).await;
                }
            }
        }
    }
}

async fn read_fd(fd: &AsyncFd<File>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        if let Ok(r) = guard.try_io(|inner| inner.get_ref().read(buf)) {
            return r;
        }
    }
}

async fn write_fd(fd: &AsyncFd<File>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        if let Ok(r) = guard.try_io(|inner| inner.get_ref().write(data)) {
            data = &data[r?..];
        }
    }
    Ok(())
}

fn exec_outcome(code: i32, cmd: &[String]) -> Outcome {
    if code == 0 {
        Outcome::Success
    } else {
        Outcome::Exited {
            code,
            // containerd's wording, which kubectl shows after "command terminated ..."
            message: format!(
                "error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
        }
    }
}

impl RuntimeBackend {
    async fn running(&self, id: &str) -> Result<super::manager::ContainerRecord, String> {
        let c = self.containers.clone();
        let id = id.to_string();
        let rec = tokio::task::spawn_blocking(move || c.get(&id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if rec.state != State::Running {
            return Err(format!("container {} is not running", rec.id));
        }
        Ok(rec)
    }

    async fn exec_inner(&self, req: pb::ExecRequest, io: StdIo) -> Result<Outcome, String> {
        let rec = self.running(&req.container_id).await?;
        if req.cmd.is_empty() {
            return Err("no command to exec".into());
        }
        let (lc_id, state_root) = self.containers.exec_target(&rec.id);
        let tag = &crate::sandbox::new_id()[..16];
        let dir = self.containers.container_dir(&rec.id);
        let mut guard = KillOnDrop {
            pid_file: dir.join(format!("exec-{tag}.pid")),
            error_file: dir.join(format!("exec-{tag}.err")),
            armed: true,
        };
        let console_path = state_root.join(format!("{}-{tag}.tty", &lc_id[..8.min(lc_id.len())]));
        let console = if req.tty {
            let _ = std::fs::remove_file(&console_path);
            Some(
                tokio::net::UnixListener::bind(&console_path)
                    .map_err(|e| format!("bind console socket: {e}"))?,
            )
        } else {
            None
        };
        let args = ExecArgs {
            id: lc_id,
            state_root,
            error_file: guard.error_file.clone(),
            timeout_secs: 0,
            cmd: req.cmd.clone(),
            stdin: req.stdin && !req.tty,
            console_socket: req.tty.then(|| console_path.clone()),
            pid_file: Some(guard.pid_file.clone()),
        };
        let shim = self.containers.shim_command();
        let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let spawned = tokio::process::Command::new(&shim.exe)
            .args(&shim.prefix)
            .args(args.to_args())
            .stdin(piped(args.stdin))
            .stdout(piped(!req.tty))
            .stderr(piped(!req.tty))
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&console_path);
                return Err(format!("start exec helper: {e}"));
            }
        };
        let StdIo {
            stdin,
            stdout,
            stderr,
            resize,
        } = io;
        let status = if let Some(listener) = console {
            // the terminal master comes over the console socket, unless the helper fails first
            let accepted = tokio::select! {
                a = listener.accept() => Some(a),
                _ = child.wait() => None,
            };
            let _ = std::fs::remove_file(&console_path);
            let master = match accepted {
                Some(Ok((conn, _))) => {
                    let std_conn = conn.into_std().map_err(|e| e.to_string())?;
                    std_conn.set_nonblocking(false).map_err(|e| e.to_string())?;
                    tokio::task::spawn_blocking(move || super::shim::recv_fd(&std_conn))
                        .await
                        .map_err(|e| e.to_string())??
                }
                Some(Err(e)) => return Err(format!("accept console socket: {e}")),
                None => {
                    guard.armed = false;
                    let msg = std::fs::read_to_string(&guard.error_file)
                        .unwrap_or_else(|_| "exec helper exited without a terminal".into());
                    return Err(msg);
                }
            };
            let master = File::from(master);
            nix::fcntl::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&master),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .map_err(|e| e.to_string())?;
            // SAFETY: the File owns the master descriptor; nothing else closes or replaces it
            // while the AsyncFd holds it.
            let master = Arc::new(
                unsafe { AsyncFd::register(master) }
                    .map_err(|e| format!("register terminal: {e}"))?,
            );
            let m = master.clone();
            let feeder = tokio::spawn(async move {
                let (mut stdin, mut resize) = (stdin, resize);
                loop {
                    // resizes first: a size sent before a line applies before the line
                    tokio::select! {
                        biased;
                        s = async { match resize.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => match s {
                            Some(s) => super::shim::set_winsize(m.get_ref(), s.width, s.height),
                            None => resize = None,
                        },
                        d = async { match stdin.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => match d {
                            Some(d) => { if write_fd(&m, &d).await.is_err() { break } }
                            None => stdin = None,
                        },
                    }
                }
            });
            let m = master.clone();
            let output = async move {
                let mut buf = vec![0u8; 32 * 1024];
                // EIO once the terminal's last user is gone
                while let Ok(n) = read_fd(&m, &mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Some(tx) = &stdout {
                        let _ = tx.send(buf[..n].to_vec()).await;
                    }
                }
            };
            let (status, ()) = tokio::join!(child.wait(), output);
            feeder.abort();
            drop(stderr);
            status
        } else {
            let feeder = match (stdin, child.stdin.take()) {
                (Some(mut rx), Some(mut w)) => Some(tokio::spawn(async move {
                    while let Some(d) = rx.recv().await {
                        if w.write_all(&d).await.is_err() {
                            return;
                        }
                    }
                    // the client closed stdin: so does the command's
                    drop(w);
                })),
                _ => None,
            };
            let out = child.stdout.take().expect("piped");
            let err = child.stderr.take().expect("piped");
            let (status, (), ()) = tokio::join!(child.wait(), pump(out, stdout), pump(err, stderr));
            if let Some(f) = feeder {
                f.abort();
            }
            status
        };
        guard.armed = false;
        let status = status.map_err(|e| format!("wait for exec helper: {e}"))?;
        if let Ok(msg) = std::fs::read_to_string(&guard.error_file) {
            return Err(msg);
        }
        let code = status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(9)
        });
        Ok(exec_outcome(code, &req.cmd))
    }

    async fn attach_inner(&self, req: pb::AttachRequest, io: StdIo) -> Result<Outcome, String> {
        let rec = self.running(&req.container_id).await?;
        let path = self.containers.attach_path(&rec.id);
        let conn = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|e| format!("attach to container {}: {e}", rec.id))?;
        let (mut rd, mut wr) = conn.into_split();
        let StdIo {
            stdin,
            stdout,
            stderr,
            resize,
        } = io;
        let writer = tokio::spawn(async move {
            let (mut stdin, mut resize) = (stdin, resize);
            loop {
                let frame = tokio::select! {
                    biased;
                    s = async { match resize.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => match s {
                        Some(s) => {
                            let mut p = s.width.to_be_bytes().to_vec();
                            p.extend(s.height.to_be_bytes());
                            attach_frame::encode(attach_frame::RESIZE, &p)
                        }
                        None => { resize = None; continue }
                    },
                    d = async { match stdin.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => match d {
                        Some(d) => attach_frame::encode(attach_frame::STDIN, &d),
                        None => {
                            stdin = None;
                            attach_frame::encode(attach_frame::CLOSE_STDIN, &[])
                        }
                    },
                };
                if wr.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        let mut buf = vec![0u8; 32 * 1024];
        let mut inbuf = Vec::new();
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => inbuf.extend_from_slice(&buf[..n]),
            }
            for (ty, data) in attach_frame::decode(&mut inbuf) {
                let to = match ty {
                    attach_frame::STDOUT => &stdout,
                    attach_frame::STDERR => &stderr,
                    _ => continue,
                };
                if let Some(tx) = to {
                    let _ = tx.send(data).await;
                }
            }
        }
        writer.abort();
        Ok(Outcome::Success)
    }
}

/// Connects to `port` on the loopback of the network namespace at `netns` (the host's if None):
/// IPv4 first, then IPv6.
pub fn dial_in_netns(netns: Option<PathBuf>, port: u16) -> Result<std::net::TcpStream, String> {
    let connect = move || -> Result<std::net::TcpStream, String> {
        if let Some(ns) = &netns {
            let f = File::open(ns).map_err(|e| format!("open network namespace: {e}"))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("enter network namespace: {e}"))?;
        }
        let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        match std::net::TcpStream::connect_timeout(&v4, Duration::from_secs(10)) {
            Ok(s) => Ok(s),
            Err(e4) => {
                let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
                std::net::TcpStream::connect_timeout(&v6, Duration::from_secs(10))
                    .map_err(|_| format!("dial tcp4 127.0.0.1:{port}: {e4}"))
            }
        }
    };
    // setns changes only the calling thread: a thread of its own that ends right after
    std::thread::spawn(connect)
        .join()
        .map_err(|_| "port-forward dial thread failed".to_string())?
}

#[async_trait::async_trait]
impl Backend for RuntimeBackend {
    async fn exec(&self, req: pb::ExecRequest, io: StdIo) -> Outcome {
        match self.exec_inner(req, io).await {
            Ok(o) => o,
            Err(e) => Outcome::Error(e),
        }
    }

    async fn attach(&self, req: pb::AttachRequest, io: StdIo) -> Outcome {
        match self.attach_inner(req, io).await {
            Ok(o) => o,
            Err(e) => Outcome::Error(e),
        }
    }

    async fn dial(&self, sandbox_id: &str, port: u16) -> Result<TcpStream, String> {
        let s = self.sandboxes.clone();
        let id = sandbox_id.to_string();
        let stream = tokio::task::spawn_blocking(move || {
            let sb = s.get(&id).map_err(|e| e.to_string())?;
            if sb.state != crate::sandbox::State::Ready {
                return Err(format!("pod sandbox {id} is not ready"));
            }
            dial_in_netns(sb.namespaces.net.clone(), port).map_err(|e| {
                format!(
                    "failed to connect to localhost:{port} inside namespace of sandbox {id}: {e}"
                )
            })
        })
        .await
        .map_err(|e| e.to_string())??;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        TcpStream::from_std(stream).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_outcomes() {
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        assert_eq!(exec_outcome(0, &cmd), Outcome::Success);
        assert_eq!(
            exec_outcome(3, &cmd),
            Outcome::Exited {
                code: 3,
                message: "error executing command [sh -c exit 3], exit code 3".into()
            }
        );
    }

    #[test]
    fn dial_on_the_host_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut s = dial_in_netns(None, port).unwrap();
        let (mut a, _) = l.accept().unwrap();
        s.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        drop(l);
        let err = dial_in_netns(None, port).unwrap_err();
        assert!(err.contains("127.0.0.1"), "{err}");
    }
}
