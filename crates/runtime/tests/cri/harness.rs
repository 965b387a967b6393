//! Test harness of the CRI suite: a target runtime (ours in-process, or containerd started with its
//! own config, root, state and socket) reached over its CRI socket, plus a real registry
//! (Debian's docker-registry) on a free 127.0.0.1 port. Every process started is killed by PID.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cri::v1 as pb;
use cri::{ImageServiceClient, RuntimeServiceClient};
use tonic::transport::Channel;

/// Which runtime a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Oxkube,
    Containerd,
}

enum Process {
    Oxkube {
        shutdown: Option<tokio::sync::oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<()>>,
    },
    Containerd(Child),
}

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

/// Whether the targets' default conflist masquerades pod traffic (the runtime's standalone
/// default). The benchmark turns it off for both runtimes, as `oxkube server`/`agent` run it
/// (their pod network masquerades only traffic leaving the cluster, in its own nft table).
pub static IP_MASQ: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// A runtime under test.
pub struct Target {
    pub kind: Kind,
    /// Bridge (and CNI network) name of this target's pod network.
    pub bridge: String,
    /// Pod CIDR of this target, a /24 of its own.
    pub pod_cidr: String,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
    process: Process,
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Target {
    pub async fn start(kind: Kind) -> Target {
        let dir = tempfile::Builder::new()
            .prefix("cri-suite-")
            .tempdir()
            .unwrap();
        let n = NEXT_NET.fetch_add(1, Ordering::SeqCst) % 100;
        let bridge = format!("oxkt{}x{n}", std::process::id() % 1000);
        let pod_cidr = format!("10.{}.{}.0/24", 150 + n, std::process::id() % 250);
        let (socket, process) = match kind {
            Kind::Oxkube => {
                let (socket, process) = start_oxkube(dir.path(), &bridge);
                (socket, process)
            }
            Kind::Containerd => {
                assert!(
                    Path::new("/usr/bin/containerd").exists(),
                    "containerd is not installed: run scripts/deps.sh --test"
                );
                let d = dir.path();
                let socket = d.join("containerd.sock");
                let config = format!(
                    r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  # these machines lack CAP_SYS_RESOURCE: oom_score_adj cannot go below the parent's
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
"#,
                    root = d.join("root").display(),
                    state = d.join("state").display(),
                    sock = socket.display(),
                    opt = d.join("opt").display(),
                    cni = d.join("cni").display(),
                    certs = d.join("certs.d").display(),
                );
                std::fs::create_dir_all(d.join("certs.d")).unwrap();
                std::fs::write(d.join("config.toml"), config).unwrap();
                let log = std::fs::File::create(d.join("containerd.log")).unwrap();
                let child = Command::new("/usr/bin/containerd")
                    .arg("--config")
                    .arg(d.join("config.toml"))
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start containerd");
                (socket, Process::Containerd(child))
            }
        };
        let s = socket.clone();
        wait_for("cri socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&s).is_ok()
        });
        let (mut rt, img) = cri::clients(&socket).await.expect("dial cri socket");
        // containerd listens before its CRI plugin is initialized ("server is not initialized
        // yet" until then): wait for an answer
        let start = Instant::now();
        while let Err(e) = rt.version(pb::VersionRequest::default()).await {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "cri server not ready: {e}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Target {
            kind,
            bridge,
            pod_cidr,
            dir,
            socket,
            rt,
            img,
            process,
        }
    }

    /// Imports an image archive the way an operator would on this runtime.
    pub async fn import(&self, archive: &Path) {
        match self.kind {
            Kind::Oxkube => {
                let data = self.dir.path().join("data");
                let p = archive.to_path_buf();
                tokio::task::spawn_blocking(move || runtime::images::import(&data, &[p]))
                    .await
                    .unwrap()
                    .expect("import");
            }
            Kind::Containerd => {
                let out = tokio::process::Command::new("ctr")
                    .arg("--address")
                    .arg(&self.socket)
                    .args(["-n", "k8s.io", "images", "import"])
                    .arg(archive)
                    .output()
                    .await
                    .expect("run ctr");
                assert!(
                    out.status.success(),
                    "ctr import: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// Makes `registry` pulls go to the plain-HTTP `endpoint` (`127.0.0.1:port`) first.
    pub fn add_mirror(&self, registry: &str, endpoint: &str) {
        match self.kind {
            Kind::Oxkube => {
                let p = self.dir.path().join("data/registries.yaml");
                let mut doc = std::fs::read_to_string(&p).unwrap_or_else(|_| "mirrors:\n".into());
                doc.push_str(&format!(
                    "  \"{registry}\":\n    endpoint: [\"http://{endpoint}\"]\n"
                ));
                std::fs::write(&p, doc).unwrap();
            }
            Kind::Containerd => {
                let d = self.dir.path().join("certs.d").join(registry);
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(
                    d.join("hosts.toml"),
                    format!(
                        "server = \"https://{registry}\"\n[host.\"http://{endpoint}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
                    ),
                )
                .unwrap();
            }
        }
    }

    /// Plain-HTTP access to a loopback registry: our runtime needs nothing (docker's rule: loopback
    /// registries are insecure); containerd needs a hosts.toml.
    pub fn trust_loopback_registry(&self, host: &str) {
        if self.kind == Kind::Containerd {
            self.add_mirror(host, host);
        }
    }

    /// Restarts our runtime on the same data dir (the old server is shut down first).
    pub async fn restart_oxkube(&mut self) {
        assert_eq!(self.kind, Kind::Oxkube);
        if let Process::Oxkube { shutdown, task } = &mut self.process {
            if let Some(tx) = shutdown.take() {
                let _ = tx.send(());
            }
            if let Some(t) = task.take() {
                let _ = t.await;
            }
        }
        let (socket, process) = start_oxkube(self.dir.path(), &self.bridge);
        self.process = process;
        let s = socket.clone();
        wait_for("cri socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&s).is_ok()
        });
        let (rt, img) = cri::clients(&socket).await.expect("dial cri socket");
        self.rt = rt;
        self.img = img;
    }

    /// Gives the runtime a pod network: ours through UpdateRuntimeConfig (as the kubelet does),
    /// containerd through a conflist in its conf dir plus a pause image built from busybox.
    pub async fn setup_network(&mut self) {
        match self.kind {
            Kind::Oxkube => {
                self.rt
                    .update_runtime_config(pb::UpdateRuntimeConfigRequest {
                        runtime_config: Some(pb::RuntimeConfig {
                            network_config: Some(pb::NetworkConfig {
                                pod_cidr: self.pod_cidr.clone(),
                            }),
                        }),
                    })
                    .await
                    .expect("UpdateRuntimeConfig");
            }
            Kind::Containerd => {
                let mut list = runtime::cni::default_conflist(
                    &self.bridge,
                    &self.bridge,
                    &self.pod_cidr,
                    Some(&self.dir.path().join("ipam")),
                );
                list["plugins"][0]["ipMasq"] = IP_MASQ.load(Ordering::SeqCst).into();
                runtime::cni::write_default_conflist(&self.dir.path().join("cni"), &list).unwrap();
                let mut pause =
                    runtime::testimage::TestImage::busybox("registry.k8s.io/pause:3.6").unwrap();
                pause.cmd = vec!["sleep".into(), "2147483647".into()];
                let built = pause.build();
                let p = self.dir.path().join("pause.tar");
                runtime::testimage::write_oci_archive(&p, &[&built]).unwrap();
                self.import(&p).await;
                // containerd reloads its CNI config asynchronously
                let start = Instant::now();
                loop {
                    let st = self
                        .rt
                        .status(pb::StatusRequest { verbose: false })
                        .await
                        .unwrap()
                        .into_inner();
                    let ready = st
                        .status
                        .unwrap()
                        .conditions
                        .iter()
                        .any(|c| c.r#type == "NetworkReady" && c.status);
                    if ready {
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "containerd network not ready"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The file of a sandbox's namespace `kind` (`net`, `uts`, `ipc`), from verbose status.
    pub async fn ns_path(&mut self, sandbox: &str, kind: &str) -> PathBuf {
        let st = self
            .rt
            .pod_sandbox_status(pb::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.into(),
                verbose: true,
            })
            .await
            .expect("PodSandboxStatus")
            .into_inner();
        let info: serde_json::Value = serde_json::from_str(&st.info["info"]).unwrap();
        match self.kind {
            Kind::Oxkube => PathBuf::from(info["namespaces"][kind].as_str().expect("pinned ns")),
            Kind::Containerd => {
                let pid = info["pid"].as_u64().expect("pause pid");
                PathBuf::from(format!("/proc/{pid}/ns/{kind}"))
            }
        }
    }

    pub async fn status(&mut self, image: &str) -> Option<pb::Image> {
        self.img
            .image_status(pb::ImageStatusRequest {
                image: Some(spec(image)),
                verbose: false,
            })
            .await
            .expect("ImageStatus")
            .into_inner()
            .image
    }

    pub async fn list(&mut self, filter: Option<&str>) -> Vec<pb::Image> {
        self.img
            .list_images(pb::ListImagesRequest {
                filter: filter.map(|f| pb::ImageFilter {
                    image: Some(spec(f)),
                }),
            })
            .await
            .expect("ListImages")
            .into_inner()
            .images
    }

    pub async fn pull(
        &mut self,
        image: &str,
        auth: Option<pb::AuthConfig>,
    ) -> Result<String, tonic::Status> {
        self.img
            .pull_image(pb::PullImageRequest {
                image: Some(spec(image)),
                auth,
                sandbox_config: None,
            })
            .await
            .map(|r| r.into_inner().image_ref)
    }

    pub async fn remove(&mut self, image: &str) -> Result<(), tonic::Status> {
        self.img
            .remove_image(pb::RemoveImageRequest {
                image: Some(spec(image)),
            })
            .await
            .map(|_| ())
    }
}

fn start_oxkube(dir: &Path, bridge: &str) -> (PathBuf, Process) {
    let data = dir.join("data");
    let mut cfg = runtime::Config::new(&data);
    cfg.cni_bridge = bridge.to_string();
    cfg.cni_network = bridge.to_string();
    cfg.cni_ip_masq = IP_MASQ.load(Ordering::SeqCst);
    cfg.shim = Some(runtime::container::manager::ShimCommand {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_oxkube-shim")),
        prefix: vec![],
    });
    let socket = cfg.socket_path();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = runtime::run(cfg, async {
            let _ = rx.await;
        })
        .await
        {
            panic!("runtime::run failed: {e}");
        }
    });
    (
        socket,
        Process::Oxkube {
            shutdown: Some(tx),
            task: Some(task),
        },
    )
}

/// PIDs of processes whose command line mentions `needle` (containerd shims of one target).
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

pub fn spec(image: &str) -> pb::ImageSpec {
    pb::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        match &mut self.process {
            Process::Oxkube { shutdown, task } => {
                if let Some(tx) = shutdown.take() {
                    let _ = tx.send(());
                }
                if let Some(t) = task.take() {
                    t.abort();
                }
            }
            Process::Containerd(child) => {
                if std::thread::panicking() {
                    let log = std::fs::read_to_string(self.dir.path().join("containerd.log"))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    eprintln!("containerd log tail:");
                    for l in tail.iter().rev() {
                        eprintln!("  {l}");
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
                // shims of this containerd only, and the containers under them (a container's
                // init outlives a killed shim: it is killed first, also when a test failed
                // before removing its pods)
                let sigkill = |pid: i32| {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                };
                for shim in pids_mentioning(&self.socket.display().to_string()) {
                    children_of(shim).into_iter().for_each(sigkill);
                    sigkill(shim);
                }
            }
        }
        for m in mounts_under(self.dir.path()) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            // stat: "pid (comm) state ppid ...": comm may contain spaces, so split after ')'
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| {
                    let rest = &st[st.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A docker-registry (distribution 2.8) process on 127.0.0.1, optionally with htpasswd auth.
pub struct Registry {
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(basic_auth: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new("/usr/bin/docker-registry").exists(),
            "docker-registry is not installed: run scripts/deps.sh --test"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = basic_auth {
            let hash = Command::new("python3")
                .args([
                    "-W",
                    "ignore",
                    "-c",
                    "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                    password,
                ])
                .output()
                .expect("python3 for bcrypt");
            let hash = String::from_utf8(hash.stdout).unwrap().trim().to_string();
            assert!(hash.starts_with("$2"), "bcrypt hash: {hash:?}");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let h = host.clone();
        wait_for("registry", Duration::from_secs(10), || {
            std::net::TcpStream::connect(&h).is_ok()
        });
        Registry {
            host,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
