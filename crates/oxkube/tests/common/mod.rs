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
    /// Set when the server runs its node agent.
    pub agent: Option<AgentNet>,
}

/// The pod network of a cluster's agent, unique on this host.
#[derive(Debug, Clone)]
pub struct AgentNet {
    pub node_name: String,
    pub bridge: String,
    pub cluster_cidr: String,
    /// Port of the agent's kubelet HTTPS API.
    pub kubelet_port: u16,
}

static NEXT_AGENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl AgentNet {
    /// A bridge name and a cluster CIDR (10.X.0.0/16) no other network of this host uses.
    pub fn unique() -> AgentNet {
        let n = NEXT_AGENT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let routes = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-4", "route", "show"])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default(),
        )
        .into_owned();
        let mut x = 20 + ((pid as u64 * 31 + n as u64 * 7 + now_nanos()) % 80) as u32;
        for _ in 0..80 {
            if !routes.contains(&format!("10.{x}.")) {
                break;
            }
            x = 20 + (x - 20 + 1) % 80;
        }
        AgentNet {
            node_name: format!("node-{}-{n}", pid % 100_000),
            bridge: format!("oxe{}x{n}", pid % 100_000),
            cluster_cidr: format!("10.{x}.0.0/16"),
            kubelet_port: free_port(),
        }
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The oxkube binary under test (`OXKUBE_BIN` overrides the one cargo built, e.g. a copy taken
/// right after the build when the target dir is shared).
pub fn bin() -> String {
    std::env::var("OXKUBE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxkube").to_string())
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
            agent: None,
        };
        c.spawn();
        c
    }

    /// Start a server with its node agent; `prepare` runs on the data dir first (e.g. to drop
    /// image archives into `<data-dir>/images/`).
    pub fn start_with_agent(prepare: impl FnOnce(&Path), extra: &[&str]) -> Cluster {
        Self::start_with_agent_net(AgentNet::unique(), prepare, extra)
    }

    /// As [`Cluster::start_with_agent`] with given network names.
    pub fn start_with_agent_net(
        net: AgentNet,
        prepare: impl FnOnce(&Path),
        extra: &[&str],
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let mut c = Cluster {
            child: None,
            dir,
            port: free_port(),
            cache: tempfile::tempdir().unwrap(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            agent: Some(net),
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
        let agent_args: Vec<String> = match &self.agent {
            None => vec!["--disable-agent".into()],
            Some(a) => vec![
                "--node-name".into(),
                a.node_name.clone(),
                "--cni-bridge".into(),
                a.bridge.clone(),
                "--cluster-cidr".into(),
                a.cluster_cidr.clone(),
                "--kubelet-port".into(),
                a.kubelet_port.to_string(),
                // test machines run with little free disk; pressure would taint the node
                "--eviction-hard".into(),
                "memory.available<1Mi,nodefs.available<1%".into(),
            ],
        };
        // many test clusters run at once: each cluster DNS gets a port of its own (tests read
        // it from the kube-dns Endpoints)
        let dns_args: Vec<String> = if self.extra_args.iter().any(|a| a == "--dns-port") {
            vec![]
        } else {
            vec!["--dns-port".into(), free_port().to_string()]
        };
        let child = Command::new(bin())
            .args(["server", "--data-dir"])
            .arg(self.dir.path())
            .args([
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &self.port.to_string(),
            ])
            .args(&agent_args)
            .args(&dns_args)
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

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
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
        if self.agent.is_some() {
            self.teardown_agent();
        }
        self.kill9();
    }
}

/// Pids whose command line mentions `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&prefix))
        .map(PathBuf::from)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

fn kill(pid: i64) {
    if pid > 1 {
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
}

impl Cluster {
    /// Container records the embedded runtime keeps.
    pub fn runtime_containers(&self) -> Vec<serde_json::Value> {
        let dir = self.dir.path().join("agent/containers");
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("container.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    fn runtime_sandbox_count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("agent/sandboxes"))
            .map(|r| r.count())
            .unwrap_or(0)
    }

    /// Deletes every pod and waits for the runtime to be empty, then removes whatever is left
    /// (processes, mounts, the bridge, pod cgroups) by force.
    fn teardown_agent(&mut self) {
        if self.child.is_some() {
            let _ = self.kubectl_raw(&[
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && (!self.runtime_containers().is_empty() || self.runtime_sandbox_count() > 0)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.kill9();
        let mut uids = Vec::new();
        for c in self.runtime_containers() {
            kill(c["init_pid"].as_i64().unwrap_or(0));
            kill(c["shim_pid"].as_i64().unwrap_or(0));
            if let Some(u) = c["labels"]["io.kubernetes.pod.uid"].as_str() {
                uids.push(u.to_string());
            }
        }
        for pid in pids_mentioning(&self.dir.path().display().to_string()) {
            kill(pid as i64);
        }
        for m in mounts_under(self.dir.path()) {
            let c = std::ffi::CString::new(m.display().to_string()).unwrap();
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
        if let Some(a) = &self.agent {
            let _ = Command::new("ip")
                .args(["link", "del", &a.bridge])
                .stderr(Stdio::null())
                .status();
        }
        for root in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for qos in ["", "burstable", "besteffort"] {
                for u in &uids {
                    let d = root
                        .path()
                        .join("kubepods")
                        .join(qos)
                        .join(format!("pod{u}"));
                    for c in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                        let _ = std::fs::remove_dir(c.path());
                    }
                    let _ = std::fs::remove_dir(&d);
                }
            }
        }
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
