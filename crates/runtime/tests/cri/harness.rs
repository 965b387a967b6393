//! Test harness of the CRI suite: a target runtime (ours in-process, or containerd started with its
//! own config, root, state and socket) reached over its CRI socket, plus a real registry
//! (Debian's docker-registry) on a free 127.0.0.1 port. Every process started is killed by PID.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A runtime under test.
pub struct Target {
    pub kind: Kind,
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
        let (socket, process) = match kind {
            Kind::Oxkube => {
                let data = dir.path().join("data");
                let cfg = runtime::Config::new(&data);
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
        let (rt, img) = cri::clients(&socket).await.expect("dial cri socket");
        Target {
            kind,
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
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
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
