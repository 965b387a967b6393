//! The embedded CRI v1 container runtime of an oxkube node: image store and registry pulls
//! (ImageService) and the RuntimeService, served on a unix socket.
//!
//! Paths under the data dir:
//! - `<data-dir>/run/cri.sock`: the CRI socket;
//! - `<data-dir>/agent/images/`: the image store (see [`images::store`]);
//! - `<data-dir>/images/`: drop dir, `*.tar`/`*.tar.gz` archives here are imported at start;
//! - `<data-dir>/registries.yaml`: registry mirrors and credentials (k3s format);
//! - `<data-dir>/agent/sandboxes/<id>/`: pod sandbox state (`sandbox.json`) and the pod's
//!   `hostname`, `hosts` and `resolv.conf`;
//! - `<data-dir>/run/sandboxes/<id>/{net,ipc,uts}`: the pod's pinned namespaces;
//! - `<data-dir>/agent/containers/<id>/`: container record, OCI bundle, overlay rootfs
//!   (upper/work dirs), `exit.json` from the shim; `<data-dir>/run/c/`: libcontainer state,
//!   shim control sockets (`<first 32 hex of id>.sock`) and attach sockets (`.att`);
//! - the streaming server (exec/attach/port-forward URLs) on 127.0.0.1, a random port unless
//!   [`Config::stream_addr`] says otherwise (see [`stream`]);
//! - `<data-dir>/agent/cni/net.d/`: CNI conf dir (default), `<data-dir>/agent/cni/ipam`: host-local
//!   IPAM state of the default network.

pub mod cni;
pub mod container;
mod fsutil;
pub mod images;
pub mod runtime_service;
pub mod sandbox;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testimage;

use std::future::Future;
use std::path::PathBuf;

/// Runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Defaults to `<data-dir>/run/cri.sock`.
    pub socket: Option<PathBuf>,
    /// Defaults to `<data-dir>/registries.yaml`.
    pub registries_file: Option<PathBuf>,
    /// CNI conf dir; defaults to `<data-dir>/agent/cni/net.d`.
    pub cni_conf_dir: Option<PathBuf>,
    /// Where CNI plugin binaries are looked up.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The node's pod CIDR: when set, the default conflist is written at start (the kubelet can
    /// also set it through UpdateRuntimeConfig).
    pub pod_cidr: Option<String>,
    /// Bridge and network name of the default conflist.
    pub cni_bridge: String,
    pub cni_network: String,
    /// Whether the default conflist's bridge plugin masquerades pod traffic leaving the pod
    /// CIDR (off when the agent's pod network masquerades only traffic leaving the cluster).
    pub cni_ip_masq: bool,
    /// How shims are started; defaults to this executable with the `shim` argument.
    pub shim: Option<container::manager::ShimCommand>,
    /// Address of the streaming server (exec/attach/port-forward URLs); defaults to
    /// 127.0.0.1 on a random port, as containerd's.
    pub stream_addr: Option<std::net::SocketAddr>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            socket: None,
            registries_file: None,
            cni_conf_dir: None,
            cni_bin_dirs: cni::DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            pod_cidr: None,
            cni_bridge: "oxk0".into(),
            cni_network: "oxkube".into(),
            cni_ip_masq: true,
            shim: None,
            stream_addr: None,
        }
    }

    pub fn cni_conf_path(&self) -> PathBuf {
        self.cni_conf_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("agent/cni/net.d"))
    }

    /// host-local IPAM state of the default network.
    pub fn cni_ipam_dir(&self) -> PathBuf {
        self.data_dir.join("agent/cni/ipam")
    }

    /// Writes the default conflist for `pod_cidr` unless the conf dir holds another config.
    pub fn write_default_cni(&self, pod_cidr: &str) -> Result<(), cni::CniError> {
        let dir = self.cni_conf_path();
        let foreign = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten().any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n != cni::DEFAULT_CONFLIST
                        && (n.ends_with(".conflist")
                            || n.ends_with(".conf")
                            || n.ends_with(".json"))
                })
            })
            .unwrap_or(false);
        if foreign {
            tracing::info!(dir = %dir.display(), "cni conf dir has its own config, default not written");
            return Ok(());
        }
        let ipam = self.cni_ipam_dir();
        let mut list =
            cni::default_conflist(&self.cni_network, &self.cni_bridge, pod_cidr, Some(&ipam));
        if !self.cni_ip_masq {
            list["plugins"][0]["ipMasq"] = serde_json::Value::Bool(false);
        }
        cni::write_default_conflist(&dir, &list)?;
        Ok(())
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("run").join("cri.sock"))
    }

    pub fn registries_path(&self) -> PathBuf {
        self.registries_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(images::registry::REGISTRIES_FILE))
    }
}

/// Errors starting or running the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Images(#[from] images::ImageError),
    #[error(transparent)]
    Cri(#[from] cri::Error),
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    #[error(transparent)]
    Container(#[from] container::manager::ContainerError),
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    #[error("runtime task failed: {0}")]
    Task(String),
}

/// Runs the runtime: imports the drop dir, then serves CRI on the socket until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || -> Result<_, images::ImageError> {
        let store = images::ImageStore::open(&data_dir)?;
        let imported = images::import_drop_dir(&data_dir)?;
        if !imported.is_empty() {
            tracing::info!(count = imported.len(), "imported images from the drop dir");
        }
        Ok(store)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    if let Some(cidr) = &config.pod_cidr {
        config.write_default_cni(cidr)?;
    }
    let sandboxes = sandbox::SandboxManager::open(
        sandbox::Paths {
            state: config.data_dir.join("agent/sandboxes"),
            run: config.data_dir.join("run/sandboxes"),
            cni_conf_dir: config.cni_conf_path(),
        },
        std::sync::Arc::new(cni::BinaryExec {
            bin_dirs: config.cni_bin_dirs.clone(),
            builtin_loopback: true,
        }),
    )?;
    let socket = config.socket_path();
    let listener = cri::bind(&socket)?;
    tracing::info!(socket = %socket.display(), "cri runtime listening");
    let shim = match config.shim.clone() {
        Some(s) => s,
        None => container::manager::ShimCommand {
            exe: std::env::current_exe()
                .map_err(|e| Error::Task(format!("own executable: {e}")))?,
            prefix: vec!["shim".into()],
        },
    };
    let containers = container::manager::ContainerManager::open(
        container::manager::Paths {
            state: config.data_dir.join("agent/containers"),
            run: config.data_dir.join("run/c"),
            events: Some(config.data_dir.join("run/events.sock")),
        },
        store.clone(),
        shim,
    )?;
    let image_service = images::service::ImageService::new(store, config.registries_path());
    let sandboxes = std::sync::Arc::new(sandboxes);
    let containers = std::sync::Arc::new(containers);
    let backend = std::sync::Arc::new(container::streaming::RuntimeBackend {
        containers: containers.clone(),
        sandboxes: sandboxes.clone(),
    });
    let stream_addr = config
        .stream_addr
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let (streaming, stream_listener) = stream::StreamServer::bind(stream_addr, backend).await?;
    tracing::info!(addr = %streaming.addr(), "streaming server listening");
    let stream_task = tokio::spawn(
        streaming
            .clone()
            .serve(stream_listener, std::future::pending()),
    );
    let runtime_service =
        runtime_service::RuntimeService::new(config.clone(), sandboxes, containers)
            .with_streaming(streaming);
    let events_path = config.data_dir.join("run/events.sock");
    let _ = std::fs::remove_file(&events_path);
    let exits = tokio::net::UnixDatagram::bind(&events_path)
        .map_err(|e| Error::Task(format!("bind {}: {e}", events_path.display())))?;
    let rs = runtime_service.clone();
    let exit_task = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n) = exits.recv(&mut buf).await {
            let id = String::from_utf8_lossy(&buf[..n]).into_owned();
            rs.container_exited(&id).await;
        }
    });
    let served = cri::serve(listener, runtime_service, image_service, shutdown).await;
    exit_task.abort();
    stream_task.abort();
    let _ = std::fs::remove_file(&events_path);
    served?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
