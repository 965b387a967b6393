//! The init process of a pod-wide pid namespace (CRI `NamespaceMode::POD`, the kubelet's
//! `shareProcessNamespace`): with no pause container, the runtime starts this tiny process (our own
//! binary re-executed as `shim pod-init`) as pid 1 of a new pid namespace on the pod's first
//! container; every container of the pod joins it, it reaps orphans, and StopPodSandbox kills it.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, setsid, ForkResult, Pid};

/// Pod init errors.
#[derive(Debug, thiserror::Error)]
pub enum PodInitError {
    #[error("start pod init {exe}: {source}")]
    Spawn { exe: String, source: std::io::Error },
    #[error("pod init handshake: {0}")]
    Handshake(String),
    #[error("record pod init pid in {path}: {source}")]
    Record {
        path: String,
        source: std::io::Error,
    },
}

/// The argument the shim entry point dispatches on.
pub const ARG: &str = "pod-init";

/// File in the sandbox state dir holding the pod init's pid.
const PID_FILE: &str = "pod-init.pid";

/// Entry point of `shim pod-init`: unshares a pid namespace, forks its pid 1, prints that child's
/// pid (as the agent sees it) on stdout and exits; the child reaps until SIGTERM/SIGINT.
pub fn main() -> i32 {
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        println!("error: unshare pid namespace: {e}");
        return 1;
    }
    // SAFETY: the shim binary is single-threaded here.
    match unsafe { fork() } {
        Err(e) => {
            println!("error: fork: {e}");
            1
        }
        Ok(ForkResult::Parent { child }) => {
            println!("{child}");
            let _ = std::io::stdout().flush();
            0
        }
        Ok(ForkResult::Child) => {
            child_loop();
            0
        }
    }
}

fn child_loop() {
    let _ = setsid();
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this single-threaded process.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            Ok(_) => return,
            Err(_) => return,
        }
    }
}

/// Whether `pid` is a live pod init (not a recycled pid).
fn is_pod_init(pid: i32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.split(|b| *b == 0).any(|a| a == ARG.as_bytes()))
        .unwrap_or(false)
        && fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
}

/// The running pod init of the sandbox whose state dir is `dir`, if any.
pub fn running(dir: &Path) -> Option<i32> {
    let pid: i32 = fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_pod_init(pid).then_some(pid)
}

/// The sandbox's pod init, started (by `exe prefix.. pod-init`) if not running yet.
pub fn ensure(dir: &Path, exe: &Path, prefix: &[String]) -> Result<i32, PodInitError> {
    if let Some(pid) = running(dir) {
        return Ok(pid);
    }
    let mut child = Command::new(exe)
        .args(prefix)
        .arg(ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| PodInitError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
    let _ = child.wait();
    read.map_err(|e| PodInitError::Handshake(e.to_string()))?;
    let pid: i32 = line
        .trim()
        .parse()
        .map_err(|_| PodInitError::Handshake(line.trim().to_string()))?;
    fs::write(dir.join(PID_FILE), pid.to_string()).map_err(|source| PodInitError::Record {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(pid)
}

/// Kills the sandbox's pod init (and so every process left in the pod's pid namespace).
pub fn stop(dir: &Path) {
    if let Some(pid) = running(dir) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        // it is our grandchild reparented away; wait until it is gone so the pod leaves nothing
        for _ in 0..500 {
            if !is_pod_init(pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    let _ = fs::remove_file(dir.join(PID_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_stale_pid_file_is_not_running() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(running(d.path()), None);
        // our own pid is alive but not a pod init
        fs::write(d.path().join(PID_FILE), std::process::id().to_string()).unwrap();
        assert_eq!(running(d.path()), None);
        fs::write(d.path().join(PID_FILE), "garbage").unwrap();
        assert_eq!(running(d.path()), None);
        stop(d.path());
        assert!(!d.path().join(PID_FILE).exists());
    }
}
