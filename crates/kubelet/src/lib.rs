//! The kubelet: the node agent that registers the node, runs the pods bound to it through CRI
//! (and nothing else), heals them, and serves the kubelet HTTPS API.
//!
//! [`run`] connects to the CRI socket, registers the Node, keeps its Lease and status fresh,
//! hands the node's podCIDR to the runtime, and runs one worker per pod bound to the node
//! ([`pods`], [`worker`]). The decisions are pure functions: [`plan`] (what to start/kill),
//! [`status`] (pod status), [`env`] and [`expand`] (environment), [`qos`] (QoS and CRI
//! resources), [`podcgroup`] (pod-level cgroup and limits), [`criconfig`] (CRI configs),
//! [`backoff`] (CrashLoopBackOff), [`node`] (Node object). Volumes and probes plug in through [`hooks`].
//!
//! Paths: `<root-dir>/pods/<uid>/containers/<name>/<id>` termination message files;
//! `<pod-logs-dir>/<ns>_<name>_<uid>/<container>/<restart>.log` container logs (written by the
//! runtime).

pub mod backoff;
pub mod criconfig;
pub mod env;
pub mod events;
pub mod expand;
pub mod hooks;
pub mod labels;
pub mod node;
pub mod objwatch;
pub mod plan;
pub mod podcgroup;
pub mod pods;
pub mod podstate;
pub mod probe;
pub mod pullsecrets;
pub mod qos;
pub mod server;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cri::{ImageServiceClient, RuntimeServiceClient};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector;
use tonic::transport::Channel;

use crate::backoff::Backoff;
use crate::criconfig::{NodeFacts, ResolvConf};

/// Where the cgroup filesystem is mounted.
pub const CGROUPFS: &str = "/sys/fs/cgroup";
/// The node cgroup all pods live under (upstream's `kubepods` under cgroup root `/`).
pub const QOS_NODE_CGROUP: &str = "/kubepods";

/// Kubelet configuration.
#[derive(Clone)]
pub struct Config {
    /// The API client, authenticated as `system:node:<node-name>`.
    pub client: kube::Client,
    pub node_name: String,
    /// The host name (label `kubernetes.io/hostname`, address `Hostname`).
    pub hostname: String,
    /// The node's IPs (InternalIP addresses, hostIP(s), hostNetwork pod IPs).
    pub node_ips: Vec<IpAddr>,
    /// CRI endpoint (unix socket path, `unix://` accepted).
    pub cri_socket: PathBuf,
    /// Kubelet state (`/var/lib/kubelet` upstream).
    pub root_dir: PathBuf,
    /// Pod log directories (`/var/log/pods` upstream).
    pub pod_logs_dir: PathBuf,
    /// Labels added to the node's (e.g. `node-role.kubernetes.io/control-plane`).
    pub node_labels: BTreeMap<String, String>,
    /// Cluster DNS servers; empty means ClusterFirst pods use the host's resolv.conf.
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub resolv_conf: PathBuf,
    pub max_pods: i64,
    /// Port of the kubelet HTTPS API, published in the node's daemonEndpoints.
    pub kubelet_port: u16,
    /// Hard eviction thresholds (memory and disk pressure, allocatable).
    pub eviction: node::Eviction,
    /// Node lease duration (upstream 40 s).
    pub node_lease_duration: Duration,
    /// How often the lease is renewed (upstream 10 s).
    pub lease_renew_interval: Duration,
    /// How often node status is computed (upstream 10 s).
    pub node_status_update_frequency: Duration,
    /// Status is posted at least this often even unchanged (upstream 5 min).
    pub node_status_report_frequency: Duration,
    /// CrashLoopBackOff initial and maximum delay (upstream 10 s and 300 s).
    pub crash_backoff_initial: Duration,
    pub crash_backoff_max: Duration,
    /// Image pull backoff initial and maximum delay (upstream 10 s and 300 s).
    pub image_backoff_initial: Duration,
    pub image_backoff_max: Duration,
    /// Relist period of the generic PLEG (upstream 1 s); ten times that while the runtime
    /// streams container events.
    pub relist_period: Duration,
    /// Periodic re-sync of every pod (upstream 1 min).
    pub resync_period: Duration,
    /// How often the contents of a running pod's configMap, secret, downwardAPI and projected
    /// volumes are refreshed from the API (upstream: with each ~1 min resync).
    pub volume_refresh_period: Duration,
    pub volumes: Arc<dyn hooks::Volumes>,
    pub prober: Arc<dyn hooks::Prober>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("node_name", &self.node_name)
            .field("cri_socket", &self.cri_socket)
            .field("root_dir", &self.root_dir)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults as upstream's, state under `<data-dir>/agent/kubelet` and logs under
    /// `<data-dir>/agent/logs/pods`.
    pub fn new(
        client: kube::Client,
        node_name: &str,
        cri_socket: PathBuf,
        data_dir: &std::path::Path,
    ) -> Config {
        Config {
            client: client.clone(),
            node_name: node_name.to_string(),
            hostname: node_name.to_string(),
            node_ips: Vec::new(),
            cri_socket,
            root_dir: data_dir.join("agent/kubelet"),
            pod_logs_dir: data_dir.join("agent/logs/pods"),
            node_labels: BTreeMap::new(),
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: "/etc/resolv.conf".into(),
            max_pods: 110,
            kubelet_port: node::KUBELET_PORT,
            eviction: Default::default(),
            node_lease_duration: Duration::from_secs(40),
            lease_renew_interval: Duration::from_secs(10),
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            crash_backoff_initial: Duration::from_secs(10),
            crash_backoff_max: Duration::from_secs(300),
            image_backoff_initial: Duration::from_secs(10),
            image_backoff_max: Duration::from_secs(300),
            relist_period: Duration::from_secs(1),
            resync_period: Duration::from_secs(60),
            volume_refresh_period: Duration::from_secs(10),
            volumes: Arc::new(hooks::ManagedVolumes::new(
                client.clone(),
                data_dir.join("agent/kubelet"),
            )),
            prober: Arc::new(hooks::NoProbes),
        }
    }
}

/// Both CRI clients over one connection.
#[derive(Clone)]
pub struct Cri {
    pub rt: RuntimeServiceClient<Channel>,
    pub img: ImageServiceClient<Channel>,
}

/// State shared by the kubelet's tasks.
pub struct Shared {
    pub config: Config,
    pub client: kube::Client,
    pub cri: Cri,
    pub recorder: events::Recorder,
    /// CRI runtime name (`containerd`, `oxkube`): the scheme of container IDs.
    pub runtime_name: String,
    /// `<runtime name>://<runtime version>` for nodeInfo.
    pub runtime_version: String,
    pub node_ips: Vec<String>,
    pub facts: RwLock<NodeFacts>,
    pub last_status_report: Mutex<Option<Instant>>,
    /// Whether the runtime (and its network) is ready.
    pub network_ready: tokio::sync::watch::Sender<bool>,
    /// Wakes the node status loop.
    pub status_now: tokio::sync::Notify,
    pub crash_backoff: Mutex<Backoff>,
    pub image_backoff: Mutex<Backoff>,
    /// Every Service, for service environment variables.
    pub services: reflector::Store<Service>,
    /// The node's `kubepods` cgroup and its QoS-class children.
    pub qos_cgroups: podcgroup::QosCgroups,
}

/// Errors starting the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the container runtime at {path}: {message}")]
    Runtime { path: String, message: String },
    #[error("cannot register node {node}: {source}")]
    Register { node: String, source: kube::Error },
}

/// Connects to the CRI endpoint, retrying for up to `wait`.
async fn connect_cri(path: &std::path::Path, wait: Duration) -> Result<Cri, Error> {
    let start = Instant::now();
    loop {
        match cri::clients(path).await {
            Ok((rt, img)) => return Ok(Cri { rt, img }),
            Err(e) if start.elapsed() >= wait => {
                return Err(Error::Runtime {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Runs the kubelet until `shutdown` resolves. Running containers are left running on
/// shutdown: a restarted kubelet re-adopts them.
pub async fn run(mut config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let cri = connect_cri(&config.cri_socket, Duration::from_secs(60)).await?;
    if config.prober.is_noop() {
        // probes exec through the same CRI connection
        config.prober = Arc::new(hooks::ManagedProbes::new(Arc::new(probe::CriExec::new(
            cri.rt.clone(),
        ))));
    }
    let version = {
        let mut rt = cri.rt.clone();
        let start = Instant::now();
        loop {
            match rt.version(cri::v1::VersionRequest::default()).await {
                Ok(v) => break v.into_inner(),
                Err(e) if start.elapsed() > Duration::from_secs(60) => {
                    return Err(Error::Runtime {
                        path: config.cri_socket.display().to_string(),
                        message: e.message().to_string(),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    };
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, "connected to the container runtime");
    let node_ips: Vec<String> = config.node_ips.iter().map(|i| i.to_string()).collect();
    let host_dns =
        ResolvConf::parse(&std::fs::read_to_string(&config.resolv_conf).unwrap_or_default());
    let facts = NodeFacts {
        node_name: config.node_name.clone(),
        host_ips: node_ips.clone(),
        cluster_dns: config.cluster_dns.iter().map(|i| i.to_string()).collect(),
        cluster_domain: config.cluster_domain.clone(),
        host_dns,
        memory_capacity: 0,
        allocatable: (0, 0, 0),
        pod_logs_dir: config.pod_logs_dir.display().to_string(),
    };
    let _ = std::fs::create_dir_all(&config.root_dir);
    let _ = std::fs::create_dir_all(&config.pod_logs_dir);
    let (services_store, services_writer) = reflector::store::<Service>();
    let client = config.client.clone();
    let shared = Arc::new(Shared {
        recorder: events::Recorder::new(client.clone(), &config.node_name),
        runtime_name: version.runtime_name.clone(),
        runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
        node_ips,
        facts: RwLock::new(facts),
        last_status_report: Mutex::new(None),
        network_ready: tokio::sync::watch::channel(false).0,
        status_now: tokio::sync::Notify::new(),
        crash_backoff: Mutex::new(Backoff::new(
            config.crash_backoff_initial,
            config.crash_backoff_max,
        )),
        image_backoff: Mutex::new(Backoff::new(
            config.image_backoff_initial,
            config.image_backoff_max,
        )),
        services: services_store,
        qos_cgroups: podcgroup::QosCgroups::new(
            podcgroup::CgroupFs::new(CGROUPFS),
            QOS_NODE_CGROUP,
        ),
        cri,
        client,
        config,
    });
    let node = loop {
        match node::register(&shared).await {
            Ok(n) => break n,
            Err(e) => {
                tracing::warn!(error = %e, "node registration failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let node_uid = node.metadata.uid.clone().unwrap_or_default();
    // the first status (capacity, facts) before pods are synced
    match node::update_status(&shared, true).await {
        Ok(problem) => {
            let _ = shared.network_ready.send(problem.is_none());
        }
        Err(e) => tracing::warn!(error = %e, "first node status update failed"),
    }
    shared
        .recorder
        .node(&node_uid, "Normal", "Starting", "Starting kubelet.".into());
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(node::run_lease(shared.clone(), node_uid));
    tasks.spawn(node::run_status(shared.clone()));
    tasks.spawn(node::run_pod_cidr(shared.clone()));
    {
        use futures::StreamExt;
        let api: kube::Api<Service> = kube::Api::all(shared.client.clone());
        let stream = reflector::reflector(
            services_writer,
            kube::runtime::WatchStreamExt::default_backoff(kube::runtime::watcher(
                api,
                Default::default(),
            )),
        );
        tasks.spawn(async move {
            stream.for_each(|_| async {}).await;
        });
    }
    tasks.spawn(pods::run(shared.clone()));
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {}
        r = tasks.join_next() => {
            tracing::error!(result = ?r.map(|r| r.is_ok()), "a kubelet task ended");
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    tracing::info!("kubelet stopped");
    Ok(())
}
