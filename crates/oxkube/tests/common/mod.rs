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
    /// The service CIDR (10.X+100.0.0/16, unique like the cluster CIDR: every test cluster's
    /// service proxy programs the host's network namespace).
    pub service_cidr: String,
    /// Port of the agent's kubelet HTTPS API.
    pub kubelet_port: u16,
    /// Holds the cluster CIDR for this cluster among every test process of this host.
    pub lease: Option<Lease>,
}

/// A host-wide reservation (of an address range or a name) among concurrently running test
/// processes: an exclusive `flock` on a file named after it, held while any clone lives. A
/// check of the host's routes alone leaves a window (from the pick until the cluster's first
/// route appears, seconds later) in which two clusters pick the same range and then fight over
/// the same routes.
#[derive(Debug, Clone)]
pub struct Lease(std::sync::Arc<std::fs::File>);

impl Lease {
    /// Reserves `name`, or None when another cluster (of any process) holds it.
    pub fn try_take(name: &str) -> Option<Lease> {
        let dir = std::env::temp_dir().join("oxkube-e2e-leases");
        std::fs::create_dir_all(&dir).ok()?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(name))
            .ok()?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; released when the file closes
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (r == 0).then(|| Lease(std::sync::Arc::new(f)))
    }
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
        let mut lease = None;
        for _ in 0..80 {
            if !routes.contains(&format!("10.{x}.")) {
                lease = Lease::try_take(&format!("cidr-10.{x}"));
                if lease.is_some() {
                    break;
                }
            }
            x = 20 + (x - 20 + 1) % 80;
        }
        assert!(lease.is_some(), "no free 10.X.0.0/16 for a test cluster");
        AgentNet {
            node_name: format!("node-{}-{n}", pid % 100_000),
            bridge: format!("oxe{}x{n}", pid % 100_000),
            cluster_cidr: format!("10.{x}.0.0/16"),
            service_cidr: format!("10.{}.0.0/16", x + 100),
            kubelet_port: free_port(),
            lease,
        }
    }
}

impl AgentNet {
    /// The nft table of this agent's service proxy (host-wide, so unique per cluster).
    pub fn proxy_table(&self) -> String {
        format!("oxkp-{}", self.bridge)
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

    /// A kube-rs client of the cluster (its admin kubeconfig).
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
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
                "--proxy-table".into(),
                a.proxy_table(),
                "--service-cidr".into(),
                a.service_cidr.clone(),
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
        // the pods' uids, read before they go: a pod's cgroup is removed by its worker after
        // its sandbox, so it can outlive what the runtime still lists when the server is killed
        let mut uids: Vec<String> = Vec::new();
        if self.child.is_some() {
            let out = self.kubectl_raw(&[
                "get",
                "pods",
                "-A",
                "-o",
                "jsonpath={.items[*].metadata.uid}",
            ]);
            uids.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_string),
            );
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
            // the pod network's masquerade table (named after the bridge)
            sh_quiet(
                "nft",
                &[
                    "delete",
                    "table",
                    "ip",
                    &format!("oxkube-podnet-{}", a.bridge),
                ],
            );
        }
        if let Some(a) = &self.agent {
            // the service proxy's rules stay after it stops (as kube-proxy's): remove them
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &a.proxy_table()])
                .stderr(Stdio::null())
                .status();
        }
        remove_pod_cgroups(&uids);
    }
}

/// A throwaway single-member etcd on loopback (Debian's etcd-server), killed on drop.
pub struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGKILL: etcd without quorum hangs on SIGTERM
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an [`Etcd`] (`ETCD_BIN` overrides /usr/bin/etcd) and waits until it accepts clients.
pub fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let child = Command::new(std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into()))
        .args(["--name", "e2e", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("e2e={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd (apt-get install etcd-server)");
    let e = Etcd {
        child,
        _dir: dir,
        url,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    e
}

/// Removes the pod-level cgroups (`kubepods[/burstable|/besteffort]/pod<uid>` and the container
/// directories in them) of `uids` in every hierarchy.
fn remove_pod_cgroups(uids: &[String]) {
    for root in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        for qos in ["", "burstable", "besteffort"] {
            for u in uids {
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

/// The busybox image the end-to-end tests run (built from busybox-static by the runtime's
/// test image builder).
pub const IMAGE: &str = "busybox:1.36";

/// Drops a busybox image archive into `<data-dir>/images/` (imported when the runtime starts).
pub fn drop_image(dir: &Path) {
    use runtime::testimage::{self, TestImage};
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let built = TestImage::busybox(IMAGE).unwrap().build();
    testimage::write_oci_archive(&images.join("busybox.tar"), &[&built]).unwrap();
}

/// Polls `f` every 100 ms until it returns Some, panicking with `what` and the tail of the
/// server log after `secs`.
#[track_caller]
pub fn wait_for<T>(c: &Cluster, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\nserver log tail:\n{}",
                tail(&c.log(), 60)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
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

// ---------------------------------------------------------------------------------------------
// Multi-node clusters: the server (and its embedded agent) on the host, further agents each in
// a network namespace of their own, all on a test bridge with a private subnet of their own.

/// Runs a command, panicking with its stderr when it fails.
#[track_caller]
pub fn sh(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command, ignoring failure (teardown).
pub fn sh_quiet(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The test bridge of a multi-node cluster: `<prefix>.1/24` on the host, nodes from `.10`.
#[derive(Debug, Clone)]
pub struct TestNet {
    pub bridge: String,
    /// First three octets of the subnet, e.g. `192.168.77`.
    pub prefix: String,
    /// A tag unique on this host, part of every name this cluster creates.
    pub tag: String,
    /// Holds the subnet among every test process of this host.
    pub lease: Option<Lease>,
}

impl TestNet {
    pub fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// Creates a bridge with a /24 no other interface or route of this host uses.
    pub fn create() -> TestNet {
        let n = NEXT_AGENT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id() % 100_000;
        let tag = format!("{pid}x{n}");
        let bridge = format!("oxt{tag}");
        let mut z = ((pid as u64 * 13 + n as u64 * 29 + now_nanos()) % 200) as u32 + 20;
        for _ in 0..200 {
            let routes = String::from_utf8_lossy(
                &Command::new("ip")
                    .args(["-4", "route", "show"])
                    .output()
                    .map(|o| o.stdout)
                    .unwrap_or_default(),
            )
            .into_owned();
            let prefix = format!("192.168.{z}");
            let lease = if routes.contains(&format!("{prefix}.")) {
                None
            } else {
                Lease::try_take(&format!("net-{prefix}"))
            };
            if lease.is_some() {
                sh("ip", &["link", "add", &bridge, "type", "bridge"]);
                sh(
                    "ip",
                    &["addr", "add", &format!("{prefix}.1/24"), "dev", &bridge],
                );
                sh("ip", &["link", "set", &bridge, "up"]);
                return TestNet {
                    bridge,
                    prefix,
                    tag,
                    lease,
                };
            }
            z = 20 + (z - 20 + 1) % 200;
        }
        panic!("no free 192.168.x.0/24 for a test bridge");
    }
}

/// An `oxkube agent` in a network namespace of its own, joined with the server's token.
pub struct NetnsAgent {
    pub node_name: String,
    pub netns: String,
    /// The host end of its veth (on the test bridge).
    pub veth: String,
    pub ip: String,
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    args: Vec<String>,
}

impl NetnsAgent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// (Re)starts the agent process.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg(bin())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oxkube agent");
        self.child = Some(child);
    }

    /// SIGKILL the agent process only (its containers keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node dies: the agent, every process in its network namespace (shims, containers)
    /// are killed and its link to the test bridge goes down.
    pub fn fail(&mut self) {
        self.kill9();
        self.kill_netns_processes();
        sh_quiet("ip", &["link", "set", &self.veth, "down"]);
        // containers live in pod namespaces of their own
        cleanup_agent_dir(self.dir.path());
    }

    fn kill_netns_processes(&self) {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in out.split_whitespace().filter_map(|p| p.parse::<i64>().ok()) {
            kill(pid);
        }
    }

    /// Removes everything of this agent: processes, mounts, pod cgroups, the netns and veth.
    fn teardown(&mut self) {
        self.kill9();
        self.kill_netns_processes();
        cleanup_agent_dir(self.dir.path());
        sh_quiet("ip", &["netns", "del", &self.netns]);
        sh_quiet("ip", &["link", "del", &self.veth]);
    }
}

/// Kills whatever the runtime under `dir` left (shims, containers, processes naming the dir),
/// unmounts what is mounted under it and removes its pods' cgroups.
pub fn cleanup_agent_dir(dir: &Path) {
    let records: Vec<serde_json::Value> = std::fs::read_dir(dir.join("agent/containers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("container.json")).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    let mut uids = Vec::new();
    for c in &records {
        kill(c["init_pid"].as_i64().unwrap_or(0));
        kill(c["shim_pid"].as_i64().unwrap_or(0));
        if let Some(u) = c["labels"]["io.kubernetes.pod.uid"].as_str() {
            uids.push(u.to_string());
        }
    }
    for pid in pids_mentioning(&dir.display().to_string()) {
        kill(pid as i64);
    }
    std::thread::sleep(Duration::from_millis(100));
    for m in mounts_under(dir) {
        let c = std::ffi::CString::new(m.display().to_string()).unwrap();
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
    remove_pod_cgroups(&uids);
}

/// An [`AgentNet`] whose cluster CIDR no NAT rule of this host mentions: pods killed without
/// a CNI DEL leave the bridge plugin's per-pod masquerade chains behind (`ip saddr 10.X.0.2
/// jump CNI-...`), which would masquerade a new pod with that address even towards other nodes.
pub fn agent_net_without_stale_nat() -> AgentNet {
    let nat = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "table", "ip", "nat"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .into_owned();
    let mut net = AgentNet::unique();
    for _ in 0..40 {
        let x = net
            .cluster_cidr
            .split('.')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        if !nat.contains(&format!("10.{x}.")) {
            break;
        }
        net = AgentNet::unique();
    }
    net
}

/// A cluster of several nodes on one host. Dropping it removes every process, namespace,
/// link, route, nft table, mount and cgroup it created, also when the test failed.
pub struct MultiNode {
    /// The server with its embedded agent (the first node, in the host's namespace).
    pub server: Cluster,
    pub net: TestNet,
    pub agents: Vec<NetnsAgent>,
    pub backend: String,
    pub vni: u32,
    prepare: fn(&Path),
    /// Further test bridges (nodes on other subnets).
    pub other_nets: Vec<TestNet>,
    /// Holds `vni` among every test process of this host.
    pub vni_lease: Lease,
}

impl MultiNode {
    /// Starts the server (API on all addresses, its node on the test bridge) with `extra`
    /// server flags, then `agents` agents in their own network namespaces; `prepare` runs on
    /// every node's data dir first. `backend` is the pod network backend of every node.
    pub fn start(backend: &str, agents: usize, prepare: fn(&Path), extra: &[&str]) -> MultiNode {
        let net = TestNet::create();
        let node_net = agent_net_without_stale_nat();
        // a VNI per test cluster: several clusters' VXLAN devices share the host namespace
        let mut vni = 100
            + NEXT_AGENT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + (std::process::id() % 1000) * 1000;
        // another test process may have the same pid % 1000
        let vni_lease = loop {
            if let Some(l) = Lease::try_take(&format!("vni-{vni}")) {
                break l;
            }
            vni += 1;
        };
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let server = Cluster {
            child: None,
            dir,
            port: free_port(),
            cache: tempfile::tempdir().unwrap(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            agent: Some(node_net),
        };
        let mut mn = MultiNode {
            server,
            net,
            agents: Vec::new(),
            backend: backend.to_string(),
            vni,
            prepare,
            other_nets: Vec::new(),
            vni_lease,
        };
        mn.spawn_server();
        for _ in 0..agents {
            mn.add_agent();
        }
        mn
    }

    fn node_flags(&self, cluster_cidr: &str) -> Vec<String> {
        vec![
            "--pod-network-backend".into(),
            self.backend.clone(),
            "--vxlan-vni".into(),
            self.vni.to_string(),
            "--eviction-hard".into(),
            "memory.available<1Mi,nodefs.available<1%".into(),
            "--cluster-cidr".into(),
            cluster_cidr.to_string(),
            // heartbeats often enough for short node-monitor grace periods
            "--node-lease-renew-interval".into(),
            "1s".into(),
        ]
    }

    fn spawn_server(&mut self) {
        let a = self.server.agent.clone().unwrap();
        let flags = self.node_flags(&a.cluster_cidr);
        let host_ip = self.net.host_ip();
        let c = &mut self.server;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(bin())
            .args(["server", "--data-dir"])
            .arg(c.dir.path())
            .args(["--bind-address", "0.0.0.0", "--secure-port"])
            .arg(c.port.to_string())
            .args(["--node-name", &a.node_name, "--cni-bridge", &a.bridge])
            .args(["--kubelet-port", &a.kubelet_port.to_string()])
            .args(["--node-ip", &host_ip])
            // the server's proxy programs the host's netns: its table and service CIDR are
            // unique to this cluster (removed by the teardown)
            .args(["--proxy-table", &a.proxy_table()])
            .args(["--service-cidr", &a.service_cidr])
            .args(flags)
            .args(&c.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn oxkube server");
        c.child = Some(child);
        c.wait_ready();
    }

    /// Adds a node: a network namespace with a veth on the test bridge and an agent joining
    /// with the server's token.
    pub fn add_agent(&mut self) -> usize {
        self.add_agent_on(self.net.clone())
    }

    /// Adds a node on a subnet of its own (a second test bridge): the host routes between
    /// it and the first subnet, so this node shares no L2 segment with the other agents.
    pub fn add_routed_agent(&mut self) -> usize {
        let net = TestNet::create();
        self.other_nets.push(net.clone());
        self.add_agent_on(net)
    }

    fn add_agent_on(&mut self, net: TestNet) -> usize {
        let i = self.agents.len();
        let netns = format!("oxkube-{}-{i}", self.net.tag);
        let veth = format!("ov{}a{i}", self.net.tag);
        let ip = format!("{}.{}", net.prefix, 10 + i);
        sh("ip", &["netns", "add", &netns]);
        let agent = NetnsAgent {
            node_name: format!(
                "{}-n{}",
                self.server.agent.as_ref().unwrap().node_name,
                i + 1
            ),
            netns: netns.clone(),
            veth: veth.clone(),
            ip: ip.clone(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            args: vec![],
        };
        // registered first so that a failure below still cleans it up
        self.agents.push(agent);
        let agent_ref = &self.agents[i];
        sh(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
        );
        sh("ip", &["link", "set", &veth, "master", &net.bridge, "up"]);
        // the host's node address is on this bridge and br_netfilter is on: a node port or
        // service DNATed on the host to a pod of the node the packet came from is bridged
        // back out of the port it came in by, which a bridge only does with hairpin on (a
        // switch port towards a real host would not need it)
        sh("bridge", &["link", "set", "dev", &veth, "hairpin", "on"]);
        sh("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        sh(
            "ip",
            &[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ],
        );
        sh("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
        sh(
            "ip",
            &[
                "-n",
                &netns,
                "route",
                "add",
                "default",
                "via",
                &net.host_ip(),
            ],
        );
        (self.prepare)(agent_ref.dir.path());
        let token = std::fs::read_to_string(self.server.data_dir().join("token"))
            .unwrap()
            .trim()
            .to_string();
        let cidr = self.server.agent.as_ref().unwrap().cluster_cidr.clone();
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--server".into(),
            format!("https://{}:{}", self.net.host_ip(), self.server.port),
            "--token".into(),
            token,
            "--data-dir".into(),
            agent_ref.dir.path().display().to_string(),
            "--node-name".into(),
            agent_ref.node_name.clone(),
            "--node-ip".into(),
            ip,
        ];
        args.extend(self.node_flags(&cidr));
        let agent = self.agents.last_mut().unwrap();
        agent.args = args;
        agent.spawn();
        i
    }

    /// Names of all nodes: the server's first.
    pub fn node_names(&self) -> Vec<String> {
        let mut v = vec![self.server.agent.as_ref().unwrap().node_name.clone()];
        v.extend(self.agents.iter().map(|a| a.node_name.clone()));
        v
    }

    /// Server log and every agent's log tail, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = format!("server log tail:\n{}\n", tail(&self.server.log(), 40));
        for a in &self.agents {
            s.push_str(&format!(
                "agent {} log tail:\n{}\n",
                a.node_name,
                tail(&a.log(), 30)
            ));
        }
        s
    }

    /// Runs a command inside node `i`'s network namespace (0 is the host).
    pub fn in_node(&self, i: usize, cmd: &str, args: &[&str]) -> Output {
        if i == 0 {
            Command::new(cmd).args(args).output().unwrap()
        } else {
            Command::new("ip")
                .args(["netns", "exec", &self.agents[i - 1].netns, cmd])
                .args(args)
                .output()
                .unwrap()
        }
    }
}

impl Drop for MultiNode {
    fn drop(&mut self) {
        // pods first, while the agents still run, so that they stop them cleanly
        if self.server.child.is_some() {
            let _ = self.server.kubectl_raw(&[
                "delete",
                "pods",
                "--all",
                "-A",
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]);
            std::thread::sleep(Duration::from_millis(500));
        }
        for a in &mut self.agents {
            a.teardown();
        }
        // the server's own node (runs its teardown via Cluster's drop), then what its pod
        // network put in the host's namespace
        if let Some(a) = self.server.agent.clone() {
            self.server.teardown_agent();
            self.server.agent = None;
            let _ = Command::new(bin())
                .args(["uninstall-network", "--cluster-cidr", &a.cluster_cidr])
                .args([
                    "--cni-bridge",
                    &a.bridge,
                    "--vxlan-vni",
                    &self.vni.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        sh_quiet("ip", &["link", "del", &self.net.bridge]);
        for n in &self.other_nets {
            sh_quiet("ip", &["link", "del", &n.bridge]);
        }
    }
}

impl MultiNode {
    /// `kubectl <args> -o json` against the server, parsed.
    #[track_caller]
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.server.kubectl(&a)).unwrap()
    }

    /// Polls `f` every 200 ms until it returns Some, panicking with `what` and every node's
    /// log tail after `secs`.
    #[track_caller]
    pub fn wait_for<T>(&self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// stdout and stderr of a finished command, trimmed (a failed command shows its error).
fn out_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        s.push_str(&format!("\n[stderr] {}", err.trim_end()));
    }
    if !out.status.success() {
        s.push_str(&format!("\n[{}]", out.status));
    }
    s
}

impl MultiNode {
    /// Polls `f` every 200 ms until it returns Ok; after `secs` panics with `what`, the last
    /// error `f` returned, the pod network of every node ([`MultiNode::network_dump`]) and every
    /// node's log tail.
    #[track_caller]
    pub fn wait_for_ok<T>(
        &self,
        what: &str,
        secs: u64,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match f() {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what} ({attempts} attempts); last error: {}\n{}\n{}",
                    err.trim(),
                    self.network_dump(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The cluster CIDR's first two octets with a dot (`10.X.`): every pod address, pod CIDR
    /// and route of this cluster starts with it.
    fn cluster_prefix(&self) -> String {
        let cidr = &self.server.agent.as_ref().unwrap().cluster_cidr;
        let mut it = cidr.split('.');
        format!("{}.{}.", it.next().unwrap_or(""), it.next().unwrap_or(""))
    }

    /// What explains a pod network failure, as the kernel sees it now: per node (the host only
    /// for what belongs to this cluster) addresses, links, routes, neighbours, the VXLAN FDB,
    /// rp_filter/forwarding sysctls, this cluster's nft rules and conntrack entries; per pod
    /// (`kubectl exec`) its addresses, routes and neighbours.
    pub fn network_dump(&self) -> String {
        let a = self.server.agent.clone().unwrap();
        let prefix = self.cluster_prefix();
        let vx = format!("oxkube.{}", self.vni);
        let mut nets = vec![self.net.clone()];
        nets.extend(self.other_nets.iter().cloned());
        let mut s = String::from("==== pod network dump ====\n");
        let mut section = |title: &str, body: String| {
            s.push_str(&format!("--- {title}\n{body}\n"));
        };
        // the host: only this cluster's interfaces, routes, neighbours, rules
        let mut host_devs: Vec<String> = nets.iter().map(|n| n.bridge.clone()).collect();
        host_devs.push(a.bridge.clone());
        host_devs.push(vx.clone());
        let ours = |l: &str| {
            l.contains(&prefix)
                || nets.iter().any(|n| l.contains(&format!("{}.", n.prefix)))
                || host_devs.iter().any(|d| l.contains(d.as_str()))
        };
        let host = |cmd: &str, args: &[&str]| out_text(&self.in_node(0, cmd, args));
        let filtered = |text: String| {
            text.lines()
                .filter(|l| ours(l))
                .collect::<Vec<_>>()
                .join("\n")
        };
        section(
            "host: this cluster's routes",
            filtered(host("ip", &["-4", "route", "show"])),
        );
        let mut links = String::new();
        for d in &host_devs {
            // details (-d) for the vxlan device only: a bridge's are a page of defaults
            let args: &[&str] = if *d == vx {
                &["-d", "-4", "addr", "show", "dev", d]
            } else {
                &["-4", "addr", "show", "dev", d]
            };
            links.push_str(&host("ip", args));
            links.push('\n');
            links.push_str(&host("ip", &["-s", "-br", "link", "show", "master", d]));
            links.push('\n');
            links.push_str(&host("ip", &["neigh", "show", "dev", d]));
            links.push('\n');
        }
        for a in &self.agents {
            links.push_str(&host("bridge", &["-d", "link", "show", "dev", &a.veth]));
            links.push('\n');
        }
        section("host: links, addresses, bridge ports, neighbours", links);
        section(
            "host: vxlan fdb",
            host("bridge", &["fdb", "show", "dev", &vx]),
        );
        let mut sysctls = String::new();
        let mut keys = vec![
            "net/ipv4/ip_forward".to_string(),
            "net/ipv4/conf/all/rp_filter".into(),
            "net/bridge/bridge-nf-call-iptables".into(),
        ];
        keys.extend(host_devs.iter().flat_map(|d| {
            [
                format!("net/ipv4/conf/{d}/rp_filter"),
                format!("net/ipv4/conf/{d}/forwarding"),
            ]
        }));
        for k in &keys {
            let v = std::fs::read_to_string(format!("/proc/sys/{k}"))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|e| e.to_string());
            sysctls.push_str(&format!("{k}={v}\n"));
        }
        section("host: sysctls", sysctls);
        section("host: nft tables", host("nft", &["list", "tables"]));
        section(
            "host: this cluster's pod network table",
            host(
                "nft",
                &[
                    "list",
                    "table",
                    "ip",
                    &format!("oxkube-podnet-{}", a.bridge),
                ],
            ),
        );
        section(
            "host: nat rules naming this cluster's addresses",
            filtered(host("nft", &["list", "table", "ip", "nat"])),
        );
        section(
            "host: conntrack entries of this cluster",
            filtered(host("conntrack", &["-L"])),
        );
        // the agents: their whole namespace is theirs
        for (i, ag) in self.agents.iter().enumerate() {
            let node = |cmd: &str, args: &[&str]| out_text(&self.in_node(i + 1, cmd, args));
            let mut body = String::new();
            for (cmd, args) in [
                ("ip", vec!["-4", "addr", "show"]),
                ("ip", vec!["-d", "link", "show", "dev", vx.as_str()]),
                ("ip", vec!["-s", "-br", "link"]),
                ("ip", vec!["-4", "route", "show"]),
                ("ip", vec!["neigh", "show"]),
                ("bridge", vec!["-d", "link", "show"]),
                ("bridge", vec!["fdb", "show", "dev", vx.as_str()]),
                (
                    "sysctl",
                    vec!["net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter"],
                ),
                ("nft", vec!["list", "ruleset"]),
                ("conntrack", vec!["-L"]),
            ] {
                body.push_str(&format!(
                    "$ {cmd} {}\n{}\n",
                    args.join(" "),
                    node(cmd, &args)
                ));
            }
            section(&format!("node {} (netns {})", ag.node_name, ag.netns), body);
        }
        // the pods, as seen from inside (this also shows whether kubectl exec works at all)
        let pods = self
            .server
            .kubectl_raw(&["get", "pods", "-o", "wide", "--no-headers"]);
        section("pods", out_text(&pods));
        for pod in String::from_utf8_lossy(&pods.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
        {
            let out = self.server.kubectl_raw(&[
                "exec",
                pod,
                "--",
                "sh",
                "-c",
                "ip addr; ip route; ip neigh; cat /proc/net/snmp | grep -A1 Tcp:",
            ]);
            section(&format!("pod {pod}"), out_text(&out));
        }
        s
    }
}
