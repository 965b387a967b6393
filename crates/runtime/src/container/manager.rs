//! The node's containers: rootfs (overlayfs over the image snapshots), OCI bundle, one shim per
//! container, and the container records on disk (`<data-dir>/agent/containers/<id>/`), reloaded
//! when the runtime restarts while the shims keep the containers running.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cri::v1 as pb;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::podinit;
use super::seccomp;
use super::shim::{ExitRecord, ShimArgs};
use super::spec::{self, BindMount, Resources, SpecInput};
use crate::images::{ImageError, ImageStore};
use crate::sandbox::{Sandbox, State as SandboxState};

/// Container errors.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container {0} not found")]
    NotFound(String),
    #[error("image {0} not found")]
    ImageNotFound(String),
    #[error("invalid container config: {0}")]
    Invalid(String),
    #[error("container name {name:?} is reserved for {id}")]
    NameReserved { name: String, id: String },
    #[error("pod sandbox {0} is not ready")]
    SandboxNotReady(String),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Seccomp(#[from] super::seccomp::SeccompError),
    #[error(transparent)]
    PodInit(#[from] podinit::PodInitError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Device(#[from] super::devices::DeviceError),
    #[error("shim: {0}")]
    Shim(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let context = context.into();
    move |source| ContainerError::Io { context, source }
}

/// Container state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Created,
    Running,
    Exited,
    Unknown,
}

/// A container as stored on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    /// The image as the kubelet named it, and the image ID.
    pub image: String,
    pub image_ref: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub log_path: Option<PathBuf>,
    pub mounts: Vec<(String, String, bool)>,
    pub state: State,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub stop_signal: String,
    pub shim_pid: i32,
    pub init_pid: i32,
    /// The container's cgroup path (relative to each controller's mount).
    #[serde(default)]
    pub cgroups_path: String,
}

/// How the shim is started: our own binary and the arguments before the shim's own.
#[derive(Debug, Clone)]
pub struct ShimCommand {
    pub exe: PathBuf,
    pub prefix: Vec<String>,
}

/// Where containers live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data-dir>/agent/containers`
    pub state: PathBuf,
    /// `<data-dir>/run/c`: libcontainer state and control sockets (short paths on purpose).
    pub run: PathBuf,
    /// Datagram socket shims report exits to.
    pub events: Option<PathBuf>,
}

/// Manages the node's containers.
pub struct ContainerManager {
    paths: Paths,
    images: ImageStore,
    shim: ShimCommand,
    containers: Mutex<BTreeMap<String, ContainerRecord>>,
    op_locks: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// libcontainer ID and socket name: the first 32 hex characters of the container ID.
fn short(id: &str) -> &str {
    &id[..32.min(id.len())]
}

fn pid_alive(pid: i32, id: &str) -> bool {
    pid > 0
        && fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(short(id)))
            .unwrap_or(false)
}

/// A shim started with `--wait`: told `go` it creates the container; dropped unused, its stdin
/// closes, it exits without doing anything, and a thread reaps it.
struct WaitingShim {
    child: Option<std::process::Child>,
}

impl WaitingShim {
    /// Lets the shim create the container (the bundle is ready) and reads its handshake:
    /// the shim's and the container init's PIDs.
    fn go(mut self, dir: &Path) -> Result<(i32, i32), ContainerError> {
        let mut child = self.child.take().expect("a waiting shim is told go once");
        let shim_pid = child.id() as i32;
        let told = child.stdin.take().expect("piped stdin").write_all(b"go\n");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let read = BufReader::new(stdout).read_line(&mut line);
        let v: Value = serde_json::from_str(line.trim()).unwrap_or(Value::Null);
        if let Some(pid) = v.get("pid").and_then(Value::as_i64) {
            // The shim lives on in its own session; a thread reaps it if it exits while we run.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok((shim_pid, pid as i32));
        }
        let _ = child.wait();
        if let Err(e) = told {
            return Err(ContainerError::Shim(format!("tell shim to create: {e}")));
        }
        read.map_err(|e| ContainerError::Shim(format!("read handshake: {e}")))?;
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                let log = fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                format!("no handshake from shim: {}", log.trim())
            });
        Err(ContainerError::Shim(msg))
    }
}

impl Drop for WaitingShim {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

fn signal_number(name: &str) -> i32 {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    if let Ok(num) = n.parse::<i32>() {
        return num;
    }
    match format!("SIG{n}").parse::<nix::sys::signal::Signal>() {
        Ok(s) => s as i32,
        Err(_) => libc::SIGTERM,
    }
}

impl ContainerManager {
    pub fn open(
        paths: Paths,
        images: ImageStore,
        shim: ShimCommand,
    ) -> Result<Self, ContainerError> {
        for d in [&paths.state, &paths.run] {
            fs::create_dir_all(d).map_err(io_err(format!("create {}", d.display())))?;
        }
        let mut containers = BTreeMap::new();
        for e in fs::read_dir(&paths.state)
            .map_err(io_err(format!("read {}", paths.state.display())))?
            .flatten()
        {
            match fs::read(e.path().join("container.json"))
                .map(|b| serde_json::from_slice::<ContainerRecord>(&b))
            {
                Ok(Ok(r)) => {
                    containers.insert(r.id.clone(), r);
                }
                _ => {
                    tracing::warn!(dir = %e.path().display(), "skipping container dir without a readable record")
                }
            }
        }
        Ok(ContainerManager {
            paths,
            images,
            shim,
            containers: Mutex::new(containers),
            op_locks: Mutex::new(BTreeMap::new()),
        })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.paths.state.join(id)
    }

    fn ctl_path(&self, id: &str) -> PathBuf {
        self.paths.run.join(format!("{}.sock", short(id)))
    }

    /// The shim's attach socket of a container.
    pub fn attach_path(&self, id: &str) -> PathBuf {
        self.paths.run.join(format!("{}.att", short(id)))
    }

    /// How to start the exec helper: our executable and its leading arguments.
    pub fn shim_command(&self) -> &ShimCommand {
        &self.shim
    }

    /// The container's libcontainer ID and state root (for the exec helper).
    pub fn exec_target(&self, id: &str) -> (String, PathBuf) {
        (short(id).to_string(), self.paths.run.clone())
    }

    /// The container's own directory.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    fn op_lock(&self, id: &str) -> Arc<Mutex<()>> {
        self.op_locks
            .lock()
            .expect("op locks")
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    fn save(&self, r: &ContainerRecord) -> Result<(), ContainerError> {
        crate::fsutil::write_atomic(
            &self.dir(&r.id).join("container.json"),
            &serde_json::to_vec_pretty(r).expect("record serialises"),
        )
        .map_err(io_err(format!("write state of container {}", r.id)))?;
        self.containers
            .lock()
            .expect("containers")
            .insert(r.id.clone(), r.clone());
        Ok(())
    }

    /// Brings a record up to date with its shim's exit file.
    fn refresh(&self, mut r: ContainerRecord) -> ContainerRecord {
        if r.state == State::Exited {
            return r;
        }
        let exit_file = self.dir(&r.id).join("exit.json");
        if let Ok(e) = fs::read(&exit_file).map(|b| serde_json::from_slice::<ExitRecord>(&b)) {
            if let Ok(e) = e {
                r.state = State::Exited;
                r.exit_code = e.exit_code;
                r.finished_at = e.finished_at;
                r.reason = if e.oom_killed {
                    "OOMKilled".into()
                } else if e.exit_code == 0 {
                    "Completed".into()
                } else {
                    "Error".into()
                };
                let _ = self.save(&r);
            }
        } else if !pid_alive(r.shim_pid, &r.id) {
            r.state = State::Unknown;
            r.reason = "Unknown".into();
            r.message = "the container's shim is gone".into();
        }
        r
    }

    pub fn get(&self, id: &str) -> Result<ContainerRecord, ContainerError> {
        let found = {
            let map = self.containers.lock().expect("containers");
            map.get(id).cloned().or_else(|| {
                let mut m = map
                    .values()
                    .filter(|r| !id.is_empty() && r.id.starts_with(id));
                match (m.next(), m.next()) {
                    (Some(r), None) => Some(r.clone()),
                    _ => None,
                }
            })
        };
        found
            .map(|r| self.refresh(r))
            .ok_or_else(|| ContainerError::NotFound(id.to_string()))
    }

    pub fn list(&self) -> Vec<ContainerRecord> {
        let all: Vec<ContainerRecord> = self
            .containers
            .lock()
            .expect("containers")
            .values()
            .cloned()
            .collect();
        all.into_iter().map(|r| self.refresh(r)).collect()
    }

    /// Creates a container in `sandbox`: rootfs, bundle and a shim holding the created (not yet
    /// started) container. On failure everything created is removed again.
    pub fn create(
        &self,
        sandbox: &Sandbox,
        sandbox_state_dir: &Path,
        cfg: pb::ContainerConfig,
    ) -> Result<ContainerRecord, ContainerError> {
        if sandbox.state != SandboxState::Ready {
            return Err(ContainerError::SandboxNotReady(sandbox.id.clone()));
        }
        let meta = cfg.metadata.clone().unwrap_or_default();
        if meta.name.is_empty() {
            return Err(ContainerError::Invalid("metadata name is required".into()));
        }
        let image_name = cfg
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        if image_name.is_empty() {
            return Err(ContainerError::Invalid("image is required".into()));
        }
        // A name stays reserved while its record exists, whatever the container's state: the
        // records are scanned as they are, without refreshing every container's state.
        let reserved = self
            .containers
            .lock()
            .expect("containers")
            .values()
            .find(|r| {
                r.sandbox_id == sandbox.id && r.name == meta.name && r.attempt == meta.attempt
            })
            .map(|r| r.id.clone());
        if let Some(other) = reserved {
            return Err(ContainerError::NameReserved {
                name: format!(
                    "{}_{}_{}",
                    meta.name, sandbox.spec.metadata.name, meta.attempt
                ),
                id: other,
            });
        }
        let image = self
            .images
            .resolve(&image_name)?
            .ok_or_else(|| ContainerError::ImageNotFound(image_name.clone()))?;
        let id = crate::sandbox::new_id();
        let lock = self.op_lock(&id);
        let _g = lock.lock().expect("op lock");
        let dir = self.dir(&id);
        let result = self.set_up(
            &id,
            &dir,
            sandbox,
            sandbox_state_dir,
            &cfg,
            &image_name,
            &image,
        );
        match result {
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "CreateContainer failed, cleaning up");
                self.clean_up(&id);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set_up(
        &self,
        id: &str,
        dir: &Path,
        sandbox: &Sandbox,
        sandbox_state_dir: &Path,
        cfg: &pb::ContainerConfig,
        image_name: &str,
        image: &crate::images::ImageRecord,
    ) -> Result<ContainerRecord, ContainerError> {
        let rootfs = dir.join("rootfs");
        for d in ["rootfs", "upper", "work", "bundle"] {
            fs::create_dir_all(dir.join(d)).map_err(io_err(format!("create container dir {d}")))?;
        }
        let log_path = if cfg.log_path.is_empty() {
            None
        } else {
            Some(Path::new(&sandbox.spec.log_directory).join(&cfg.log_path))
        };
        // The shim starts now and waits for the bundle: its exec and start-up overlap the
        // rootfs mount and the spec build below.
        let shim = self.spawn_shim(
            &ShimArgs {
                id: short(id).to_string(),
                bundle: dir.join("bundle"),
                state_root: self.paths.run.clone(),
                dir: dir.to_path_buf(),
                ctl: self.ctl_path(id),
                log: log_path.clone(),
                events: self.paths.events.clone(),
                stdin: cfg.stdin,
                stdin_once: cfg.stdin_once,
                tty: cfg.tty,
                attach: Some(self.attach_path(id)),
                wait: true,
            },
            dir,
        )?;
        let chain_ids = image.chain_ids();
        self.images.hold_snapshots(id, &chain_ids)?;
        let mut lower = Vec::new();
        for c in chain_ids.iter().rev() {
            lower.push(self.images.snapshot_fs(c)?.display().to_string());
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|e| ContainerError::Io {
            context: "mount container rootfs".into(),
            source: e.into(),
        })?;
        let meta = cfg.metadata.clone().unwrap_or_default();
        let linux = cfg.linux.clone().unwrap_or_default();
        let sc = linux.security_context.clone().unwrap_or_default();
        let res = linux.resources.clone().unwrap_or_default();
        let caps = sc.capabilities.clone().unwrap_or_default();
        let ns_opts = sc.namespace_options.clone().unwrap_or_default();
        let pid_mode = ns_opts.pid;
        let pidns = if pid_mode == pb::NamespaceMode::Pod as i32 {
            let pid = podinit::ensure(sandbox_state_dir, &self.shim.exe, &self.shim.prefix)?;
            Some(PathBuf::from(format!("/proc/{pid}/ns/pid")))
        } else if pid_mode == pb::NamespaceMode::Target as i32 {
            let target = self.get(&ns_opts.target_id).map_err(|_| {
                ContainerError::Invalid(format!(
                    "pid namespace target container {:?} not found",
                    ns_opts.target_id
                ))
            })?;
            if target.sandbox_id != sandbox.id {
                return Err(ContainerError::Invalid(format!(
                    "pid namespace target container {} is not in pod sandbox {}",
                    target.id, sandbox.id
                )));
            }
            if target.state != State::Running {
                return Err(ContainerError::Invalid(format!(
                    "pid namespace target container {} is not running",
                    target.id
                )));
            }
            Some(PathBuf::from(format!("/proc/{}/ns/pid", target.init_pid)))
        } else {
            None
        };
        let mut mounts = Vec::new();
        for m in &cfg.mounts {
            let propagation = match pb::MountPropagation::try_from(m.propagation) {
                Ok(pb::MountPropagation::PropagationHostToContainer) => "rslave",
                Ok(pb::MountPropagation::PropagationBidirectional) => "rshared",
                _ => "rprivate",
            };
            if !Path::new(&m.host_path).exists() {
                return Err(ContainerError::Invalid(format!(
                    "mount source {} does not exist",
                    m.host_path
                )));
            }
            mounts.push(BindMount {
                container_path: m.container_path.clone(),
                host_path: PathBuf::from(&m.host_path),
                readonly: m.readonly,
                propagation,
            });
        }
        let cgroup_parent = if sandbox.spec.cgroup_parent.is_empty() {
            "/oxkube".to_string()
        } else {
            sandbox.spec.cgroup_parent.trim_end_matches('/').to_string()
        };
        let cgroups_path = format!("{cgroup_parent}/{}", short(id));
        if sc.privileged && !sandbox.spec.privileged {
            return Err(ContainerError::Invalid(
                "no privileged container allowed in sandbox".into(),
            ));
        }
        let seccomp = match seccomp::select(
            sc.privileged,
            sc.seccomp
                .as_ref()
                .map(|p| (p.profile_type, p.localhost_ref.as_str())),
            #[allow(deprecated)]
            &sc.seccomp_profile_path,
        )? {
            seccomp::Profile::Unconfined => None,
            seccomp::Profile::RuntimeDefault => Some(spec::Seccomp::RuntimeDefault),
            seccomp::Profile::Localhost(p) => {
                Some(spec::Seccomp::Custom(seccomp::load_localhost(&p)?))
            }
        };
        let mut devices = Vec::new();
        if sc.privileged {
            devices.push(super::devices::host_devices(Path::new("/dev")));
        }
        for d in &cfg.devices {
            devices.push(super::devices::resolve(
                &d.host_path,
                &d.container_path,
                &d.permissions,
            )?);
        }
        let input = SpecInput {
            image: image.config.clone(),
            command: cfg.command.clone(),
            args: cfg.args.clone(),
            working_dir: cfg.working_dir.clone(),
            envs: cfg
                .envs
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect(),
            run_as_user: sc.run_as_user.map(|v| v.value),
            run_as_group: sc.run_as_group.map(|v| v.value),
            run_as_username: sc.run_as_username.clone(),
            supplemental_groups: sc.supplemental_groups.clone(),
            rootfs: rootfs.clone(),
            readonly_rootfs: sc.readonly_rootfs,
            privileged: sc.privileged,
            no_new_privs: sc.no_new_privs,
            add_caps: caps.add_capabilities.clone(),
            drop_caps: caps.drop_capabilities.clone(),
            hostname: String::new(),
            netns: sandbox.namespaces.net.clone(),
            ipcns: sandbox.namespaces.ipc.clone(),
            utsns: sandbox.namespaces.uts.clone(),
            host_pid: pid_mode == pb::NamespaceMode::Node as i32,
            pidns,
            etc_files: ["hosts", "resolv.conf", "hostname"]
                .iter()
                .map(|n| (n.to_string(), sandbox_state_dir.join(n)))
                .collect(),
            mounts,
            cgroups_path: cgroups_path.clone(),
            resources: Resources {
                cpu_shares: res.cpu_shares,
                cpu_quota: res.cpu_quota,
                cpu_period: res.cpu_period,
                memory_limit: res.memory_limit_in_bytes,
                cpuset_cpus: res.cpuset_cpus.clone(),
                cpuset_mems: res.cpuset_mems.clone(),
            },
            // Lowering oom_score_adj needs CAP_SYS_RESOURCE, which is not given everywhere: only
            // values at or above our own are passed on.
            oom_score_adj: Some(res.oom_score_adj.max(own_oom_score_adj())),
            sysctls: sandbox.spec.sysctls.clone(),
            passwd: fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default(),
            group: fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default(),
            host_caps: own_bounding_caps(),
            seccomp,
            devices: super::devices::merge(devices),
        };
        let mut oci = spec::build(&input)?;
        if cfg.tty {
            oci["process"]["terminal"] = serde_json::json!(true);
        }
        fs::write(
            dir.join("bundle/config.json"),
            serde_json::to_vec_pretty(&oci).expect("json"),
        )
        .map_err(io_err("write bundle config"))?;
        let (shim_pid, init_pid) = shim.go(dir)?;
        let rec = ContainerRecord {
            id: id.to_string(),
            sandbox_id: sandbox.id.clone(),
            name: meta.name.clone(),
            attempt: meta.attempt,
            image: image_name.to_string(),
            image_ref: image.id.clone(),
            labels: cfg.labels.clone().into_iter().collect(),
            annotations: cfg.annotations.clone().into_iter().collect(),
            log_path,
            mounts: cfg
                .mounts
                .iter()
                .map(|m| (m.container_path.clone(), m.host_path.clone(), m.readonly))
                .collect(),
            state: State::Created,
            created_at: now_ns(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            stop_signal: image.config.stop_signal.clone(),
            shim_pid,
            init_pid,
            cgroups_path,
        };
        self.save(&rec)?;
        Ok(rec)
    }

    /// Starts a shim that waits for the bundle (`--wait`); [`WaitingShim::go`] lets it create
    /// the container.
    fn spawn_shim(&self, args: &ShimArgs, dir: &Path) -> Result<WaitingShim, ContainerError> {
        let shim_log = fs::File::create(dir.join("shim.log")).map_err(io_err("create shim log"))?;
        // No pre-exec hook (the shim makes its own session), so this is a posix_spawn (vfork)
        // rather than a fork of the whole agent.
        let child = Command::new(&self.shim.exe)
            .args(&self.shim.prefix)
            .args(args.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .spawn()
            .map_err(|e| ContainerError::Shim(format!("start {}: {e}", self.shim.exe.display())))?;
        Ok(WaitingShim { child: Some(child) })
    }

    fn ctl(&self, id: &str, command: &str) -> Result<Value, ContainerError> {
        let path = self.ctl_path(id);
        let mut s = UnixStream::connect(&path)
            .map_err(|e| ContainerError::Shim(format!("connect {}: {e}", path.display())))?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        writeln!(s, "{command}").map_err(|e| ContainerError::Shim(e.to_string()))?;
        let mut line = String::new();
        BufReader::new(&s)
            .read_line(&mut line)
            .map_err(|e| ContainerError::Shim(e.to_string()))?;
        let v: Value = serde_json::from_str(line.trim())
            .map_err(|e| ContainerError::Shim(format!("bad reply {line:?}: {e}")))?;
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            return Err(ContainerError::Shim(err.to_string()));
        }
        Ok(v)
    }

    /// Stops the pod-wide pid namespace of the sandbox whose state dir is `sandbox_state_dir`
    /// (if it has one), killing whatever is left in it. Idempotent.
    pub fn stop_pod_init(&self, sandbox_state_dir: &Path) {
        podinit::stop(sandbox_state_dir);
    }

    pub fn start(&self, id: &str) -> Result<(), ContainerError> {
        let rec = self.get(id)?;
        let lock = self.op_lock(&rec.id);
        let _g = lock.lock().expect("op lock");
        let mut rec = self.get(&rec.id)?;
        if rec.state != State::Created {
            return Err(ContainerError::Invalid(format!(
                "container {} is {:?}, not created",
                rec.id, rec.state
            )));
        }
        let reply = self.ctl(&rec.id, "start")?;
        rec.state = State::Running;
        rec.started_at = reply
            .get("started_at")
            .and_then(Value::as_i64)
            .unwrap_or_else(now_ns);
        self.save(&rec)
    }

    fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.dir(id).join("exit.json").exists() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends the stop signal, then SIGKILL after `timeout`. Idempotent.
    pub fn stop(&self, id: &str, timeout: Duration) -> Result<(), ContainerError> {
        let rec = self.get(id)?;
        let lock = self.op_lock(&rec.id);
        let _g = lock.lock().expect("op lock");
        let rec = self.get(&rec.id)?;
        if rec.state != State::Running {
            return Ok(());
        }
        let sig = if rec.stop_signal.is_empty() {
            libc::SIGTERM
        } else {
            signal_number(&rec.stop_signal)
        };
        if timeout > Duration::ZERO {
            let _ = self.ctl(&rec.id, &format!("kill {sig}"));
            if self.wait_exit(&rec.id, timeout) {
                self.get(&rec.id)?;
                return Ok(());
            }
        }
        if let Err(e) = self.ctl(&rec.id, &format!("kill {}", libc::SIGKILL)) {
            // the container may have exited on its own meanwhile (its shim is then gone)
            if self.wait_exit(&rec.id, Duration::from_secs(2)) {
                self.get(&rec.id)?;
                return Ok(());
            }
            return Err(e);
        }
        if !self.wait_exit(&rec.id, Duration::from_secs(10)) {
            return Err(ContainerError::Shim(format!(
                "container {} did not exit after SIGKILL",
                rec.id
            )));
        }
        self.get(&rec.id)?;
        Ok(())
    }

    /// Kills (if needed) and deletes the container. Idempotent.
    pub fn remove(&self, id: &str) -> Result<(), ContainerError> {
        let rec = match self.get(id) {
            Ok(r) => r,
            Err(ContainerError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if rec.state == State::Running {
            self.stop(&rec.id, Duration::ZERO)?;
        }
        let lock = self.op_lock(&rec.id);
        let _g = lock.lock().expect("op lock");
        let rec = self.get(&rec.id)?;
        if rec.state == State::Created {
            let _ = self.ctl(&rec.id, "delete");
        }
        // wait for the shim to finish (it deletes the libcontainer state on its way out)
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_alive(rec.shim_pid, &rec.id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if pid_alive(rec.shim_pid, &rec.id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(rec.shim_pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.clean_up(&rec.id);
        self.containers.lock().expect("containers").remove(&rec.id);
        self.op_locks.lock().expect("op locks").remove(&rec.id);
        Ok(())
    }

    fn clean_up(&self, id: &str) {
        let dir = self.dir(id);
        let rootfs = dir.join("rootfs");
        match umount2(&rootfs, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
            Err(e) => tracing::warn!(path = %rootfs.display(), error = %e, "unmount rootfs"),
        }
        let _ = fs::remove_file(self.ctl_path(id));
        let _ = fs::remove_file(self.attach_path(id));
        let _ = fs::remove_dir_all(self.paths.run.join(short(id)));
        if let Err(e) = fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "remove container dir");
            }
        }
        if let Err(e) = self.images.release_snapshots(id) {
            tracing::warn!(error = %e, "release snapshots");
        }
    }

    /// Runs `cmd` in the running container; returns (stdout, stderr, exit code).
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>, i32), ContainerError> {
        let rec = self.get(id)?;
        if rec.state != State::Running {
            return Err(ContainerError::Invalid(format!(
                "container {} is not running",
                rec.id
            )));
        }
        if cmd.is_empty() {
            return Err(ContainerError::Invalid("no command to exec".into()));
        }
        let error_file = self
            .dir(&rec.id)
            .join(format!("exec-{}.err", crate::sandbox::new_id()));
        let args = super::shim::ExecArgs {
            id: short(&rec.id).to_string(),
            state_root: self.paths.run.clone(),
            error_file: error_file.clone(),
            timeout_secs: timeout.as_secs(),
            cmd,
            stdin: false,
            console_socket: None,
            pid_file: None,
        };
        let out = Command::new(&self.shim.exe)
            .args(&self.shim.prefix)
            .args(args.to_args())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ContainerError::Shim(format!("start exec helper: {e}")))?;
        if let Ok(msg) = fs::read_to_string(&error_file) {
            let _ = fs::remove_file(&error_file);
            return Err(ContainerError::Shim(msg));
        }
        let code = out.status.code().unwrap_or(255);
        Ok((out.stdout, out.stderr, code))
    }

    /// CPU/memory usage of the container's cgroup and its writable layer (bytes, inodes).
    pub fn stats(
        &self,
        id: &str,
    ) -> Result<(ContainerRecord, super::stats::Usage, (u64, u64)), ContainerError> {
        let rec = self.get(id)?;
        let usage = if rec.state == State::Running {
            super::stats::Cgroup::new("/sys/fs/cgroup", &rec.cgroups_path).usage()
        } else {
            super::stats::Usage::default()
        };
        let layer = super::stats::disk_usage(&self.dir(&rec.id).join("upper"));
        Ok((rec, usage, layer))
    }

    /// Applies new resource limits to a running container's cgroup.
    pub fn update_resources(&self, id: &str, r: &Resources) -> Result<(), ContainerError> {
        let rec = self.get(id)?;
        if rec.state != State::Running && rec.state != State::Created {
            return Err(ContainerError::Invalid(format!(
                "container {} is not running",
                rec.id
            )));
        }
        super::stats::Cgroup::new("/sys/fs/cgroup", &rec.cgroups_path)
            .update(r)
            .map_err(io_err(format!("update cgroup {}", rec.cgroups_path)))?;
        Ok(())
    }

    /// Asks the shim to reopen the log file (after the kubelet rotated it).
    pub fn reopen_log(&self, id: &str) -> Result<(), ContainerError> {
        let rec = self.get(id)?;
        if rec.state != State::Running {
            return Err(ContainerError::Invalid(format!(
                "container {} is not running",
                rec.id
            )));
        }
        self.ctl(&rec.id, "reopen").map(|_| ())
    }
}

/// This process's capability bounding set (CapBnd of /proc/self/status).
fn own_bounding_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn own_oom_score_adj() -> i64 {
    fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        let cases = [
            ("SIGTERM", 15),
            ("TERM", 15),
            ("sigkill", 9),
            ("SIGQUIT", 3),
            ("10", 10),
            ("bogus", 15),
        ];
        for (name, want) in cases {
            assert_eq!(signal_number(name), want, "{name}");
        }
    }
}
