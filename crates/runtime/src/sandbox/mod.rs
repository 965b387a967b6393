//! Pod sandboxes: their namespaces (pinned, no pause process), hostname/hosts/resolv.conf files,
//! CNI networking, and their state on disk (`<data-dir>/agent/sandboxes/<id>/sandbox.json`), which
//! is reloaded when the runtime restarts.

pub mod netstats;
pub mod ns;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cni::{self, NetworkList, PluginExec, PortMapping};

/// Sandbox errors.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("pod sandbox {0} not found")]
    NotFound(String),
    #[error("invalid pod sandbox config: {0}")]
    Invalid(String),
    #[error("pod sandbox name {name:?} is reserved for {id}")]
    NameReserved { name: String, id: String },
    #[error(transparent)]
    Namespaces(#[from] ns::NsError),
    #[error("pod network: {0}")]
    Cni(#[from] cni::CniError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Pod identity as the kubelet gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
}

/// DNS settings for resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// What RunPodSandbox asks for (the parts of the CRI config the runtime acts on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub metadata: Metadata,
    pub hostname: String,
    pub log_directory: String,
    pub dns: Option<Dns>,
    pub port_mappings: Vec<PortMapping>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    pub cgroup_parent: String,
    pub runtime_handler: String,
    /// Namespaced sysctls of the pod, applied in every container of it.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// The pod's containers share one pid namespace (CRI pid mode POD).
    #[serde(default)]
    pub share_pid: bool,
    /// The pod may run privileged containers.
    #[serde(default)]
    pub privileged: bool,
}

/// Sandbox state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Ready,
    NotReady,
}

/// A sandbox as stored on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub spec: SandboxSpec,
    pub state: State,
    /// Unix nanoseconds.
    pub created_at: i64,
    pub namespaces: ns::Pinned,
    pub ips: Vec<String>,
    /// The network list ADD ran with, so DEL runs the same plugins even if the conf dir changed.
    pub network: Option<Value>,
    pub cni_result: Option<Value>,
}

impl Sandbox {
    /// The file a container bind-mounts at `/etc/<name>` (`hostname`, `hosts`, `resolv.conf`).
    pub fn etc_file(&self, root: &Path, name: &str) -> PathBuf {
        root.join(&self.id).join(name)
    }
}

/// Where sandbox state and namespaces live, and how networks are set up.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data-dir>/agent/sandboxes`
    pub state: PathBuf,
    /// `<data-dir>/run/sandboxes` (namespace pins)
    pub run: PathBuf,
    /// CNI conf dir.
    pub cni_conf_dir: PathBuf,
}

/// Manages all sandboxes of the node.
pub struct SandboxManager {
    paths: Paths,
    exec: Arc<dyn PluginExec + Send + Sync>,
    sandboxes: Mutex<BTreeMap<String, Sandbox>>,
    /// Serialises operations per sandbox ID (run/stop/remove of one sandbox never interleave).
    op_locks: Mutex<BTreeMap<String, Arc<Mutex<()>>>>,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Io { context, source }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A fresh 64-hex ID.
pub fn new_id() -> String {
    let a: [u8; 32] = rand::random();
    hex::encode(a)
}

/// resolv.conf content from the pod's DNS config (None: the host's resolv.conf).
pub fn resolv_conf(dns: &Dns) -> String {
    let mut s = String::new();
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for n in &dns.servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    s
}

/// The /etc/hosts of a pod with its own network namespace.
pub const POD_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

impl SandboxManager {
    /// Loads every sandbox recorded under `paths.state` (rediscovery after a restart).
    pub fn open(
        paths: Paths,
        exec: Arc<dyn PluginExec + Send + Sync>,
    ) -> Result<Self, SandboxError> {
        fs::create_dir_all(&paths.state)
            .map_err(io_err(format!("create {}", paths.state.display())))?;
        fs::create_dir_all(&paths.run)
            .map_err(io_err(format!("create {}", paths.run.display())))?;
        let mut sandboxes = BTreeMap::new();
        for e in fs::read_dir(&paths.state)
            .map_err(io_err(format!("read {}", paths.state.display())))?
            .flatten()
        {
            let f = e.path().join("sandbox.json");
            match fs::read(&f).map(|b| serde_json::from_slice::<Sandbox>(&b)) {
                Ok(Ok(s)) => {
                    sandboxes.insert(s.id.clone(), s);
                }
                Ok(Err(err)) => {
                    tracing::warn!(file = %f.display(), error = %err, "skipping unreadable sandbox state")
                }
                // A directory without state is a RunPodSandbox that died half-way: clean it up.
                Err(_) => {
                    let id = e.file_name().to_string_lossy().into_owned();
                    tracing::warn!(id = %id, "removing incomplete sandbox");
                    let run = paths.run.join(&id);
                    ns::remove(&ns::Pinned {
                        net: Some(run.join("net")),
                        ipc: Some(run.join("ipc")),
                        uts: Some(run.join("uts")),
                    });
                    let _ = fs::remove_dir_all(&run);
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(SandboxManager {
            paths,
            exec,
            sandboxes: Mutex::new(sandboxes),
            op_locks: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    fn op_lock(&self, id: &str) -> Arc<Mutex<()>> {
        self.op_locks
            .lock()
            .expect("op lock map")
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    fn save(&self, s: &Sandbox) -> Result<(), SandboxError> {
        crate::fsutil::write_atomic(
            &self.paths.state.join(&s.id).join("sandbox.json"),
            &serde_json::to_vec_pretty(s).expect("sandbox serialises"),
        )
        .map_err(io_err(format!("write state of sandbox {}", s.id)))?;
        self.sandboxes
            .lock()
            .expect("sandbox map")
            .insert(s.id.clone(), s.clone());
        Ok(())
    }

    /// All sandboxes.
    pub fn list(&self) -> Vec<Sandbox> {
        self.sandboxes
            .lock()
            .expect("sandbox map")
            .values()
            .cloned()
            .collect()
    }

    /// The sandbox with this ID (or unique ID prefix).
    pub fn get(&self, id: &str) -> Result<Sandbox, SandboxError> {
        let map = self.sandboxes.lock().expect("sandbox map");
        if let Some(s) = map.get(id) {
            return Ok(s.clone());
        }
        let mut matches = map
            .values()
            .filter(|s| !id.is_empty() && s.id.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some(s), None) => Ok(s.clone()),
            _ => Err(SandboxError::NotFound(id.to_string())),
        }
    }

    /// Creates and readies a sandbox. On failure everything created is torn down again.
    pub fn run(&self, spec: SandboxSpec) -> Result<Sandbox, SandboxError> {
        let m = &spec.metadata;
        if m.name.is_empty() || m.namespace.is_empty() || m.uid.is_empty() {
            return Err(SandboxError::Invalid(
                "metadata name, namespace and uid are required".into(),
            ));
        }
        let full_name = format!("{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt);
        if let Some(other) = self.list().into_iter().find(|s| s.spec.metadata == *m) {
            return Err(SandboxError::NameReserved {
                name: full_name,
                id: other.id,
            });
        }
        let id = new_id();
        let lock = self.op_lock(&id);
        let _g = lock.lock().expect("op lock");
        let state_dir = self.paths.state.join(&id);
        let run_dir = self.paths.run.join(&id);
        let mut sb = Sandbox {
            id: id.clone(),
            spec,
            state: State::NotReady,
            created_at: now_ns(),
            namespaces: ns::Pinned::default(),
            ips: vec![],
            network: None,
            cni_result: None,
        };
        let result = self.set_up(&mut sb, &state_dir, &run_dir);
        if let Err(e) = result {
            tracing::warn!(id = %id, error = %e, "RunPodSandbox failed, cleaning up");
            ns::remove(&sb.namespaces);
            let _ = fs::remove_dir_all(&run_dir);
            let _ = fs::remove_dir_all(&state_dir);
            self.sandboxes.lock().expect("sandbox map").remove(&id);
            self.op_locks.lock().expect("op lock map").remove(&id);
            return Err(e);
        }
        Ok(sb)
    }

    fn set_up(
        &self,
        sb: &mut Sandbox,
        state_dir: &Path,
        run_dir: &Path,
    ) -> Result<(), SandboxError> {
        fs::create_dir_all(state_dir).map_err(io_err(format!("create {}", state_dir.display())))?;
        let spec = &sb.spec;
        let hostname = if spec.host_network {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else if spec.hostname.is_empty() {
            spec.metadata.name.clone()
        } else {
            spec.hostname.clone()
        };
        let write = |name: &str, content: &[u8]| {
            fs::write(state_dir.join(name), content)
                .map_err(io_err(format!("write sandbox {name}")))
        };
        write("hostname", format!("{hostname}\n").as_bytes())?;
        if spec.host_network {
            write("hosts", &fs::read("/etc/hosts").unwrap_or_default())?;
        } else {
            write("hosts", POD_HOSTS.as_bytes())?;
        }
        match &spec.dns {
            Some(d) if !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()) => {
                write("resolv.conf", resolv_conf(d).as_bytes())?
            }
            _ => write(
                "resolv.conf",
                &fs::read("/etc/resolv.conf").unwrap_or_default(),
            )?,
        }
        let want = ns::Wanted {
            net: !spec.host_network,
            ipc: !spec.host_ipc,
            uts: !spec.host_network,
        };
        sb.namespaces = ns::create(run_dir, want, Some(&hostname))?;
        if let Some(netns) = sb.namespaces.net.clone() {
            let list = NetworkList::load_dir(&self.paths.cni_conf_dir)?;
            let attachment = self.attachment(sb, &netns);
            // Record the list before ADD so a crash mid-ADD still knows what to DEL.
            sb.network = Some(list_json(&list));
            self.save(sb)?;
            let result = cni::add(self.exec.as_ref(), &list, &attachment)?;
            sb.ips = cni::result_ips(&result);
            sb.cni_result = Some(result);
        }
        sb.state = State::Ready;
        self.save(sb)
    }

    fn attachment(&self, sb: &Sandbox, netns: &Path) -> cni::Attachment {
        let m = &sb.spec.metadata;
        cni::Attachment {
            container_id: sb.id.clone(),
            netns: netns.to_path_buf(),
            ifname: "eth0".into(),
            args: cni::k8s_args(&m.namespace, &m.name, &sb.id, &m.uid),
            port_mappings: sb.spec.port_mappings.clone(),
        }
    }

    /// Tears down the network and namespaces; the sandbox stays listed as NotReady. Idempotent.
    pub fn stop(&self, id: &str) -> Result<(), SandboxError> {
        let sb = match self.get(id) {
            Ok(s) => s,
            Err(SandboxError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let lock = self.op_lock(&sb.id);
        let _g = lock.lock().expect("op lock");
        let mut sb = self.get(&sb.id)?;
        self.tear_down(&mut sb)?;
        sb.state = State::NotReady;
        self.save(&sb)
    }

    fn tear_down(&self, sb: &mut Sandbox) -> Result<(), SandboxError> {
        if let (Some(netns), Some(net)) = (sb.namespaces.net.clone(), sb.network.clone()) {
            let list = NetworkList::parse(
                Path::new("<recorded network>"),
                &serde_json::to_vec(&net).expect("json"),
            )?;
            let attachment = self.attachment(sb, &netns);
            cni::del(
                self.exec.as_ref(),
                &list,
                &attachment,
                sb.cni_result.as_ref(),
            )?;
            sb.network = None;
            sb.cni_result = None;
            self.save(sb)?;
        }
        ns::remove(&sb.namespaces);
        let _ = fs::remove_dir_all(self.paths.run.join(&sb.id));
        Ok(())
    }

    /// Stops (if needed) and forgets the sandbox. Idempotent.
    pub fn remove(&self, id: &str) -> Result<(), SandboxError> {
        let sb = match self.get(id) {
            Ok(s) => s,
            Err(SandboxError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let lock = self.op_lock(&sb.id);
        let _g = lock.lock().expect("op lock");
        let mut sb = self.get(&sb.id)?;
        self.tear_down(&mut sb)?;
        fs::remove_dir_all(self.paths.state.join(&sb.id))
            .map_err(io_err(format!("remove sandbox {}", sb.id)))?;
        self.sandboxes.lock().expect("sandbox map").remove(&sb.id);
        self.op_locks.lock().expect("op lock map").remove(&sb.id);
        Ok(())
    }
}

fn list_json(l: &NetworkList) -> Value {
    serde_json::json!({"cniVersion": l.cni_version, "name": l.name, "plugins": l.plugins})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_table() {
        let cases = [
            (Dns::default(), ""),
            (
                Dns {
                    servers: vec!["10.96.0.10".into()],
                    searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into()],
                    options: vec!["ndots:5".into()],
                },
                "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
            ),
            (
                Dns {
                    servers: vec!["1.1.1.1".into(), "8.8.8.8".into()],
                    ..Default::default()
                },
                "nameserver 1.1.1.1\nnameserver 8.8.8.8\n",
            ),
        ];
        for (dns, want) in cases {
            assert_eq!(resolv_conf(&dns), want);
        }
    }

    #[test]
    fn ids_are_64_hex() {
        let a = new_id();
        assert_eq!(a.len(), 64);
        assert!(crate::images::reference::is_sha256_hex(&a));
        assert_ne!(a, new_id());
    }
}
