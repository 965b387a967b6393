//! End-to-end test harness: starts a real `oxkube server` on a free port with its own data
//! directory and drives it with the real kubectl (fresh --cache-dir per cluster).

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    cache: tempfile::TempDir,
    extra_args: Vec<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_oxkube")
}

impl Cluster {
    /// Start a server and wait until it serves /readyz.
    pub fn start() -> Cluster {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            child: None,
            dir,
            port: free_port(),
            cache: tempfile::tempdir().unwrap(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        c.spawn();
        c
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// (Re)start the server process on the same data dir and port.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(bin())
            .args(["server", "--data-dir"])
            .arg(self.dir.path())
            .args([
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &self.port.to_string(),
                "--disable-agent",
            ])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oxkube server");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.kubeconfig().exists() {
                let out = self.kubectl_raw(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("server did not become ready; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL the server.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the server and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(self.kubeconfig());
        cmd.arg("--cache-dir").arg(self.cache.path());
        cmd.args(args);
        cmd
    }

    pub fn kubectl_raw(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    /// Run kubectl 1.32 directly (the dispatcher picks 1.33 for our server).
    pub fn kubectl132(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.32");
        cmd.arg("--kubeconfig").arg(self.kubeconfig());
        cmd.arg("--cache-dir").arg(self.cache.path().join("132"));
        cmd.args(args);
        cmd.output().expect("run kubectl 1.32")
    }

    /// Run kubectl, panic on failure, return stdout.
    #[track_caller]
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_raw(args);
        if !out.status.success() {
            panic!(
                "kubectl {:?} failed: {}\nstdout: {}\nserver log tail:\n{}",
                args,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout),
                tail(&self.log(), 30)
            );
        }
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run kubectl expecting failure; returns stderr.
    #[track_caller]
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl_raw(args);
        assert!(
            !out.status.success(),
            "kubectl {:?} unexpectedly succeeded: {}",
            args,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Run kubectl with stdin.
    #[track_caller]
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            panic!(
                "kubectl {:?} failed: {}",
                args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run kubectl with extra environment variables.
    #[track_caller]
    pub fn kubectl_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut cmd = self.kubectl_cmd(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        if !out.status.success() {
            panic!(
                "kubectl {:?} failed: {}",
                args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stdout).unwrap()
    }

    /// The kubeconfig's admin client credentials as (cert pem, key pem, ca pem).
    pub fn admin_pems(&self) -> (String, String, String) {
        let dir = self.dir.path().join("tls");
        (
            std::fs::read_to_string(dir.join("admin.crt")).unwrap(),
            std::fs::read_to_string(dir.join("admin.key")).unwrap(),
            std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Split kubectl table output into rows of whitespace-separated cells.
pub fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}
