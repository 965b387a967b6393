//! The oxkube binary: `server` (API server on the embedded store, scheduler, controller
//! manager and, unless disabled, a node agent), `agent` (container runtime + kubelet joining a
//! cluster through a kubeconfig), `kubeconfig`, `images import`, and the internal
//! per-container `shim`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod kubeclient;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "oxkube", version, about = "Kubernetes in one Rust binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server on the embedded store) and, unless disabled, a node agent.
    Server(Box<ServerArgs>),
    /// Run a node agent: the embedded container runtime (unless an external CRI endpoint is
    /// given) and the kubelet.
    Agent(Box<AgentArgs>),
    /// Print the admin kubeconfig.
    Kubeconfig {
        #[arg(long, default_value = "/var/lib/oxkube")]
        data_dir: PathBuf,
    },
    /// Manage the node's container images.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Remove what the agent set up in the node's network: pod network routes, the VXLAN
    /// device, the masquerade table and the pod bridge (run after stopping the agent and its
    /// pods, when uninstalling).
    UninstallNetwork {
        /// The cluster CIDR the agent ran with.
        #[arg(long, default_value = "10.42.0.0/16")]
        cluster_cidr: String,
        /// The pod bridge the agent ran with.
        #[arg(long, default_value = "oxk0")]
        cni_bridge: String,
        /// The VXLAN network identifier the agent ran with.
        #[arg(long, default_value_t = 1)]
        vxlan_vni: u32,
    },
    /// Remove the service proxy's nftables rules (like `kube-proxy --cleanup`).
    ProxyCleanup {
        /// The proxy's nft table.
        #[arg(long, default_value = proxy::DEFAULT_TABLE)]
        proxy_table: String,
    },
    /// Internal: the per-container shim the runtime starts (single-threaded).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Import OCI image archives, OCI layout directories or docker-save tarballs (also while the
    /// agent runs).
    Import {
        /// The node's data directory.
        #[arg(long, default_value = "/var/lib/oxkube")]
        data_dir: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Where the server keeps its state, PKI and kubeconfig.
    #[arg(long, default_value = "/var/lib/oxkube")]
    data_dir: PathBuf,
    /// The address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// The HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Do not run a node agent inside the server.
    #[arg(long)]
    disable_agent: bool,
    /// Do not run the scheduler inside the server.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controller manager inside the server.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// How long Events are kept.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    event_ttl: Duration,
    /// Use an etcd cluster (comma-separated client URLs) instead of the embedded SQLite store.
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The range Services get cluster IPs from; its first address is the `kubernetes`
    /// Service's (covered by the serving certificate).
    #[arg(long, default_value = "10.43.0.0/16", value_parser = parse_service_cidr)]
    service_cidr: apiserver::services::Ipv4Cidr,
    /// The range NodePort and LoadBalancer Services get node ports from.
    #[arg(long, default_value = "30000-32767", value_parser = parse_node_port_range)]
    service_node_port_range: apiserver::services::PortRange,
    /// The issuer (and API audience) of service account tokens.
    #[arg(long, default_value = apimachinery::satoken::DEFAULT_ISSUER)]
    service_account_issuer: String,
    /// tolerationSeconds of the not-ready:NoExecute toleration added to every pod.
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds of the unreachable:NoExecute toleration added to every pod.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// How often the node lifecycle controller checks node health.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long a node may stop heartbeating before it is marked Unknown (unreachable).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// The grace of a node that never reported its status.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    node_startup_grace_period: Duration,
    /// Terminated pods kept before the pod garbage collector deletes the oldest (0: no limit).
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: usize,
    /// How often the pod garbage collector runs.
    #[arg(long, default_value = "20s", value_parser = parse_duration, hide = true)]
    pod_gc_period: Duration,
    /// How long a node must be gone before the pod garbage collector deletes its pods.
    #[arg(long, default_value = "40s", value_parser = parse_duration, hide = true)]
    pod_gc_quarantine: Duration,
    /// The CIDR node pod CIDRs (a /24 each) are allocated from.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Do not run the cluster DNS server (nor manage Service kube-system/kube-dns).
    #[arg(long)]
    disable_dns: bool,
    /// The port the cluster DNS server listens on (UDP and TCP) at the node's address; the
    /// kube-dns Service maps port 53 of `--cluster-dns` to it.
    #[arg(long, default_value_t = 53)]
    dns_port: u16,
    /// The resolv.conf whose nameservers the cluster DNS forwards other names to (when it lists
    /// only 127.0.0.53, systemd-resolved's real list is used).
    #[arg(long, default_value = "/etc/resolv.conf")]
    dns_resolv_conf: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// Settings of the node agent (kubelet and runtime).
#[derive(clap::Args, Clone)]
struct NodeArgs {
    /// The node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's IP (default: the first non-loopback address of the host).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Use this CRI socket (e.g. unix:///run/containerd/containerd.sock) instead of the embedded
    /// runtime.
    #[arg(long)]
    container_runtime_endpoint: Option<PathBuf>,
    /// Bridge (and CNI network) name of the embedded runtime's pod network.
    #[arg(long, default_value = "oxk0")]
    cni_bridge: String,
    /// Cluster DNS server IPs given to ClusterFirst pods (none: they use the host's resolv.conf).
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<IpAddr>,
    /// Node lease renew interval.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    node_lease_renew_interval: Duration,
    /// CrashLoopBackOff initial delay.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    crash_backoff_initial: Duration,
    /// CrashLoopBackOff maximum delay.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    crash_backoff_max: Duration,
    /// Port of the kubelet HTTPS API (logs, exec, attach, port-forward, stats).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Hard eviction thresholds: `memory.available<100Mi,nodefs.available<10%` (upstream's
    /// defaults); below them the node reports memory or disk pressure.
    #[arg(long, default_value = "memory.available<100Mi,nodefs.available<10%")]
    eviction_hard: kubelet::node::Eviction,
    /// Do not run the service proxy (nftables) on this node.
    #[arg(long)]
    disable_kube_proxy: bool,
    /// The service proxy's nft table (family ip); unique per cluster when several share a host.
    #[arg(long, default_value = proxy::DEFAULT_TABLE)]
    proxy_table: String,
    /// How pods reach pods on other nodes: `host-gw` (a route per node via its IP; nodes share
    /// an L2 segment), `vxlan` (an overlay, as flannel's), `auto` (host-gw to nodes on a
    /// directly connected subnet, vxlan to the others), or `none` (another CNI owns it).
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pod_network_backend: podnet::plan::Backend,
    /// VXLAN network identifier of the vxlan backend (the same on every node).
    #[arg(long, default_value_t = 1)]
    vxlan_vni: u32,
    /// VXLAN UDP port of the vxlan backend (the same on every node).
    #[arg(long, default_value_t = 8472)]
    vxlan_port: u16,
    /// The cluster CIDR (set from the server's, or the agent's --cluster-cidr).
    #[arg(skip)]
    pod_network_cluster_cidr: String,
}

fn parse_backend(s: &str) -> Result<podnet::plan::Backend, String> {
    s.parse()
        .map_err(|e: podnet::plan::PlanError| e.to_string())
}

#[derive(clap::Args)]
struct AgentArgs {
    /// Kubeconfig with the node's credentials (instead of joining with --server and --token).
    #[arg(long, conflicts_with_all = ["server", "token"], required_unless_present = "server")]
    kubeconfig: Option<PathBuf>,
    /// The API server to join (`https://HOST:6443`); needs --token.
    #[arg(long, requires = "token")]
    server: Option<String>,
    /// The join token the server printed (also in `<data-dir>/token` on the server).
    #[arg(
        long,
        env = "OXKUBE_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    token: Option<String>,
    /// Where the agent keeps its state.
    #[arg(long, default_value = "/var/lib/oxkube")]
    data_dir: PathBuf,
    /// The cluster CIDR of the server (traffic from pods leaving it is masqueraded).
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    #[command(flatten)]
    node: NodeArgs,
}

/// Parse `90s`, `5m`, `1h` or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("invalid duration unit in {s:?} (use s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

fn parse_service_cidr(s: &str) -> Result<apiserver::services::Ipv4Cidr, String> {
    apiserver::services::Ipv4Cidr::parse(s).map_err(|e| e.to_string())
}

fn parse_node_port_range(s: &str) -> Result<apiserver::services::PortRange, String> {
    apiserver::services::PortRange::parse(s).map_err(|e| e.to_string())
}

fn host_ips() -> Vec<IpAddr> {
    // the addresses of this host's interfaces, read from the kernel's routing view
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last_ip: Option<IpAddr> = None;
        for line in text.lines() {
            let t = line.trim();
            if let Some(ip) = t.strip_prefix("|-- ").and_then(|s| s.parse().ok()) {
                last_ip = Some(ip);
            } else if t.starts_with("/32 host LOCAL") {
                if let Some(ip) = last_ip {
                    if !ip.is_loopback() && !out.contains(&ip) {
                        out.push(ip);
                    }
                }
            }
        }
    }
    out
}

fn hostname() -> String {
    // (the kernel's host name; node names default to it)
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A kube-rs client from a kubeconfig file.
async fn client_from(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    kubeclient::client(cfg)
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Start the scheduler and controller manager once the API server is ready; they reach it
/// through kube-rs with their own identities.
async fn run_components(args: &ServerArgs, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    if !args.disable_scheduler {
        let client = client_from(&apiserver::component_kubeconfig(
            &args.data_dir,
            "scheduler",
        ))
        .await?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            scheduler::run(
                client,
                scheduler::Config {
                    identity: hostname(),
                    ..Default::default()
                },
                stopped(stop),
            )
            .await
        }));
    }
    if !args.disable_controller_manager {
        let client = client_from(&apiserver::component_kubeconfig(
            &args.data_dir,
            "controller-manager",
        ))
        .await?;
        let ca_pem = std::fs::read_to_string(args.data_dir.join("tls/ca.crt")).ok();
        let sa_key = std::fs::read_to_string(args.data_dir.join("tls/service-account.key")).ok();
        let node_lifecycle = controllers::nodelifecycle::Config {
            monitor_period: args.node_monitor_period,
            grace_period: args.node_monitor_grace_period,
            startup_grace_period: args.node_startup_grace_period,
            ..Default::default()
        };
        let pod_gc = controllers::podgc::Config {
            terminated_threshold: args.terminated_pod_gc_threshold,
            check_period: args.pod_gc_period,
            quarantine: args.pod_gc_quarantine,
        };
        let stop = stop.clone();
        let cluster_cidr = Some(args.cluster_cidr.clone());
        tasks.push(tokio::spawn(async move {
            controllers::run(
                client,
                controllers::Config {
                    identity: hostname(),
                    root_ca_pem: ca_pem,
                    service_account_key_pem: sa_key,
                    node_lifecycle,
                    pod_gc,
                    cluster_cidr,
                    ..Default::default()
                },
                stopped(stop),
            )
            .await
        }));
    }
    if !args.disable_agent && !args.node.disable_kube_proxy {
        let client =
            client_from(&apiserver::component_kubeconfig(&args.data_dir, "kubelet")).await?;
        let node = args.node.clone();
        let cluster_cidr = Some(args.cluster_cidr.clone());
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            run_proxy(client, node, cluster_cidr, stop).await
        }));
    }
    if !args.disable_dns {
        // the DNS server reads Services and EndpointSlices and writes kube-system/kube-dns:
        // the controller manager's identity covers both
        let client = client_from(&apiserver::component_kubeconfig(
            &args.data_dir,
            "controller-manager",
        ))
        .await?;
        let config = dns_config(args);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            // a DNS server that cannot bind must not take the control plane down
            if let Err(e) = dns::run(client, config, stopped(stop), |_| {}).await {
                tracing::error!(error = %e, "cluster DNS stopped");
            }
            Ok(())
        }));
    }
    if !args.disable_agent {
        let client =
            client_from(&apiserver::component_kubeconfig(&args.data_dir, "kubelet")).await?;
        let data_dir = args.data_dir.clone();
        let mut node = args.node.clone();
        node.pod_network_cluster_cidr = args.cluster_cidr.clone();
        if node.cluster_dns.is_empty() && !args.disable_dns {
            // pods use the cluster DNS the server runs, as k3s's kubelet does
            node.cluster_dns = vec![dns_service_ip(args)];
        }
        let mut labels = std::collections::BTreeMap::new();
        // the server's node carries the control-plane roles, as k3s marks its server nodes
        labels.insert(
            "node-role.kubernetes.io/control-plane".to_string(),
            "true".to_string(),
        );
        labels.insert(
            "node-role.kubernetes.io/master".to_string(),
            "true".to_string(),
        );
        let tls_dir = args.data_dir.join("tls");
        let node_name = node_name(&args.node);
        let tls = KubeletTls::read(
            &tls_dir.join(format!("kubelet/{node_name}.crt")),
            &tls_dir.join(format!("kubelet/{node_name}.key")),
            &tls_dir.join("ca.crt"),
        )?;
        tasks.push(tokio::spawn(async move {
            run_agent(client, data_dir, node, labels, tls, stop).await
        }));
    }
    for t in tasks {
        t.await
            .context("component task panicked")?
            .context("component failed")?;
    }
    Ok(())
}

/// The cluster IP of Service kube-system/kube-dns: the first `--cluster-dns`, else 10.43.0.10.
/// The kube-dns Service IP: `--cluster-dns`, else the tenth address of the service CIDR
/// (10.43.0.10 for the default CIDR), as k3s derives it.
fn dns_service_ip(args: &ServerArgs) -> IpAddr {
    args.node
        .cluster_dns
        .first()
        .copied()
        .unwrap_or_else(|| IpAddr::V4(args.service_cidr.nth(9)))
}

/// The cluster DNS server's settings: it listens on the node's address (`--node-ip`; the host's
/// address when the server runs an agent; else the API server's bind address when specific).
fn dns_config(args: &ServerArgs) -> dns::Config {
    let ip = match args.node.node_ip {
        Some(ip) => Some(ip),
        None if args.disable_agent && !args.bind_address.is_unspecified() => {
            Some(args.bind_address)
        }
        None => agent_node_ips(&args.node).first().copied(),
    }
    .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    dns::Config {
        listen: std::net::SocketAddr::new(ip, args.dns_port),
        cluster_ip: Some(dns_service_ip(args)),
        upstreams: dns::forward::upstreams_from(
            &args.dns_resolv_conf,
            std::path::Path::new(dns::forward::SYSTEMD_RESOLV_CONF),
        ),
        ..Default::default()
    }
}

/// The node's IPs: `--node-ip`, else the host's first IPv4 address.
fn agent_node_ips(node: &NodeArgs) -> Vec<IpAddr> {
    match node.node_ip {
        Some(ip) => vec![ip],
        None => host_ips()
            .into_iter()
            .filter(|ip| ip.is_ipv4())
            .take(1)
            .collect(),
    }
}

fn node_name(node: &NodeArgs) -> String {
    node.node_name
        .clone()
        .unwrap_or_else(|| hostname().to_lowercase())
}

/// Runs the node's service proxy until `stop`; `cluster_cidr` tells pod traffic apart (None:
/// the Node's podCIDR).
async fn run_proxy(
    client: kube::Client,
    node: NodeArgs,
    cluster_cidr: Option<String>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut pc = proxy::Config::new(&node_name(&node));
    pc.table = node.proxy_table.clone();
    pc.cluster_cidr = cluster_cidr;
    pc.node_ips = agent_node_ips(&node)
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    proxy::run(client, pc, stopped(stop))
        .await
        .context("service proxy")
}

/// Runs the embedded runtime (unless an external endpoint is configured) and the kubelet.
async fn run_agent(
    client: kube::Client,
    data_dir: PathBuf,
    node: NodeArgs,
    labels: std::collections::BTreeMap<String, String>,
    tls: KubeletTls,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let name = node_name(&node);
    let (socket, runtime_task) = match &node.container_runtime_endpoint {
        Some(ep) => (ep.clone(), None),
        None => {
            check_cgroupfs()?;
            let mut rc = runtime::Config::new(&data_dir);
            rc.cni_bridge = node.cni_bridge.clone();
            // the pod network masquerades only traffic leaving the cluster
            rc.cni_ip_masq = node.pod_network_backend == podnet::plan::Backend::None;
            let socket = rc.socket_path();
            let stop = stop.clone();
            let task = tokio::spawn(async move { runtime::run(rc, stopped(stop)).await });
            (socket, Some(task))
        }
    };
    let mut kc = kubelet::Config::new(client, &name, socket, &data_dir);
    // an explicit node name is also the node's host name label (as k3s passes
    // --hostname-override), so that nodes sharing a machine stay distinct topology domains
    kc.hostname = node
        .node_name
        .as_ref()
        .map(|n| n.to_lowercase())
        .unwrap_or_else(|| hostname().to_lowercase());
    kc.node_ips = agent_node_ips(&node);
    kc.node_labels = labels;
    kc.cluster_dns = node.cluster_dns.clone();
    kc.lease_renew_interval = node.node_lease_renew_interval;
    kc.crash_backoff_initial = node.crash_backoff_initial;
    kc.crash_backoff_max = node.crash_backoff_max;
    kc.kubelet_port = node.kubelet_port;
    kc.eviction = node.eviction_hard;
    let api_config = kubelet::server::Config {
        bind_address: std::net::SocketAddr::new(IpAddr::from([0, 0, 0, 0]), node.kubelet_port),
        serving_cert_pem: tls.cert_pem,
        serving_key_pem: tls.key_pem,
        client_ca_pem: tls.ca_pem,
        cri_socket: kc.cri_socket.clone(),
        node_name: name.clone(),
        root_dir: kc.root_dir.clone(),
    };
    let api_stop = stop.clone();
    let api_task = tokio::spawn(async move {
        // the runtime may still be starting: its socket appears within moments
        let deadline = Instant::now() + Duration::from_secs(60);
        let server = loop {
            match kubelet::server::Server::bind(api_config.clone()).await {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        server.serve(stopped(api_stop)).await;
        Ok(())
    });
    let podnet_task = {
        let mut pc = podnet::Config::new(&name, &node.pod_network_cluster_cidr);
        pc.node_ip = kc.node_ips.first().copied();
        pc.backend = node.pod_network_backend;
        pc.vxlan_vni = node.vxlan_vni;
        pc.vxlan_port = node.vxlan_port;
        pc.nft_table = pod_network_table(&node);
        let client = kc.client.clone();
        let stop = stop.clone();
        tokio::spawn(async move { podnet::run(client, pc, stopped(stop)).await })
    };
    let kubelet = kubelet::run(kc, stopped(stop.clone()));
    let result = kubelet.await.context("kubelet");
    match podnet_task.await {
        Ok(r) => r.context("pod network")?,
        Err(e) => anyhow::bail!("pod network task failed: {e}"),
    }
    match api_task.await {
        Ok(r) => r.context("kubelet API server")?,
        Err(e) => anyhow::bail!("kubelet API server task failed: {e}"),
    }
    if let Some(t) = runtime_task {
        match t.await {
            Ok(r) => r.context("container runtime")?,
            Err(e) => anyhow::bail!("container runtime task failed: {e}"),
        }
    }
    result
}

/// The embedded runtime needs the host's cgroup hierarchy: `ip netns exec` mounts a fresh
/// sysfs over /sys, hiding it (start an agent in a network namespace with `nsenter --net=...`).
fn check_cgroupfs() -> anyhow::Result<()> {
    let empty = std::fs::read_dir("/sys/fs/cgroup")
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if empty {
        anyhow::bail!(
            "no cgroup filesystem under /sys/fs/cgroup (`ip netns exec` remounts /sys: start the agent with `nsenter --net=/run/netns/NAME` instead)"
        );
    }
    Ok(())
}

/// The nft table of the pod network's masquerade rule: one per pod bridge, so that several
/// agents sharing a network namespace keep apart.
fn pod_network_table(node: &NodeArgs) -> String {
    if node.cni_bridge == "oxk0" {
        "oxkube-podnet".to_string()
    } else {
        format!("oxkube-podnet-{}", node.cni_bridge)
    }
}

/// The kubelet API's TLS material: serving certificate and key, and the CA client
/// certificates (the API server's) must chain to.
struct KubeletTls {
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
}

impl KubeletTls {
    fn read(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        };
        Ok(KubeletTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            ca_pem: read(ca)?,
        })
    }
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let (kubeconfig, tls) = match (&args.kubeconfig, &args.server, &args.token) {
        (Some(kc), _, _) => {
            // an explicit kubeconfig: the serving certificate comes from the identity directory
            let dir = args.data_dir.join("agent/identity");
            let tls = KubeletTls::read(&dir.join("serving.crt"), &dir.join("serving.key"), &dir.join("ca.crt"))
                .context("the kubelet API needs serving.crt, serving.key and ca.crt in <data-dir>/agent/identity")?;
            (kc.clone(), tls)
        }
        (None, Some(server), Some(token)) => {
            let ips = agent_node_ips(&args.node);
            let id = oxkube::join::node_identity(
                server,
                token,
                &node_name(&args.node),
                &ips,
                &args.data_dir.join("agent/identity"),
            )
            .await
            .context("joining the cluster")?;
            let tls = KubeletTls::read(&id.serving_cert, &id.serving_key, &id.ca_cert)?;
            (id.kubeconfig, tls)
        }
        _ => anyhow::bail!("give --kubeconfig, or --server with --token"),
    };
    let client = client_from(&kubeconfig).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut node = args.node.clone();
    node.pod_network_cluster_cidr = args.cluster_cidr.clone();
    if node.cluster_dns.is_empty() {
        // the cluster DNS the server runs, wherever its service CIDR put it
        node.cluster_dns = cluster_dns_of(&client).await.into_iter().collect();
    }
    if !args.node.disable_kube_proxy {
        let (client, node, stop) = (client.clone(), args.node.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = run_proxy(client, node, None, stop).await {
                tracing::error!(error = %format!("{e:#}"), "service proxy stopped");
            }
        });
    }
    let agent = run_agent(
        client,
        args.data_dir.clone(),
        node,
        Default::default(),
        tls,
        stop_rx,
    );
    let signal = async {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        // wait for the agent to finish below
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = agent => r,
        _ = signal => Ok(()),
    }
}

/// The cluster IP of Service kube-system/kube-dns, if the cluster runs one (a joining agent's
/// default `--cluster-dns`). A server creates it right after it starts: a missing Service is
/// asked for again for a few seconds.
async fn cluster_dns_of(client: &kube::Client) -> Option<IpAddr> {
    let api: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(client.clone(), "kube-system");
    for _ in 0..10 {
        match api.get_opt("kube-dns").await {
            Ok(Some(svc)) => return svc.spec?.cluster_ip?.parse().ok(),
            Ok(None) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => {
                tracing::warn!(error = %e, "could not read kube-system/kube-dns");
                break;
            }
        }
    }
    tracing::info!("no cluster DNS service: ClusterFirst pods get the host's resolv.conf");
    None
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let store: Arc<dyn store::Store> = if args.etcd_servers.is_empty() {
        let db_dir = args.data_dir.join("db");
        std::fs::create_dir_all(&db_dir)
            .with_context(|| format!("creating {}", db_dir.display()))?;
        let path = db_dir.join("state.db");
        let s = tokio::task::spawn_blocking(move || {
            store::sqlite::SqliteStore::open(path, Default::default())
        })
        .await?
        .context("opening the embedded store")?;
        Arc::new(s)
    } else {
        let cfg = store::etcd::EtcdConfig {
            endpoints: args.etcd_servers.clone(),
            ..Default::default()
        };
        Arc::new(
            store::etcd::EtcdStore::connect(&cfg)
                .await
                .context("connecting to etcd")?,
        )
    };
    let config = apiserver::Config {
        data_dir: args.data_dir.clone(),
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        token_auth_file: args.token_auth_file.clone(),
        event_ttl: args.event_ttl,
        serving_names: apiserver::pki::ServingNames {
            hostname: hostname(),
            ips: host_ips(),
            service_ip: Some(IpAddr::V4(args.service_cidr.first())),
            extra_dns: vec![],
        },
        service_account_issuer: args.service_account_issuer.clone(),
        default_tolerations: apiserver::admission::DefaultTolerations {
            not_ready_seconds: args.default_not_ready_toleration_seconds,
            unreachable_seconds: args.default_unreachable_toleration_seconds,
        },
        node_name: (!args.disable_agent).then(|| node_name(&args.node)),
        service_ranges: apiserver::services::ServiceRanges {
            cidr: args.service_cidr,
            node_ports: args.service_node_port_range,
        },
        advertise_address: if args.bind_address.is_unspecified() || args.bind_address.is_loopback()
        {
            agent_node_ips(&args.node).into_iter().next()
        } else {
            Some(args.bind_address)
        },
    };
    let kubeconfig = args.data_dir.join("kubeconfig.yaml");
    let token_file = args.data_dir.join("token");
    let join_host = if args.bind_address.is_unspecified() {
        host_ips()
            .into_iter()
            .find(IpAddr::is_ipv4)
            .map(|ip| ip.to_string())
            .unwrap_or_else(hostname)
    } else {
        args.bind_address.to_string()
    };
    let join_url = if join_host.contains(':') {
        format!("https://[{join_host}]:{}", args.secure_port)
    } else {
        format!("https://{join_host}:{}", args.secure_port)
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let api = apiserver::run(config, store, stopped(stop_rx.clone()), move |url| {
        tracing::info!(%url, elapsed_ms = started.elapsed().as_millis() as u64, "API server ready");
        println!("oxkube API server ready at {url}");
        println!("export KUBECONFIG={}", kubeconfig.display());
        if let Ok(token) = std::fs::read_to_string(&token_file) {
            println!(
                "join another node with: oxkube agent --server {join_url} --token {}",
                token.trim()
            );
        }
        let _ = ready_tx.send(());
    });
    let components = async {
        if ready_rx.await.is_err() {
            return Ok(());
        }
        run_components(&args, stop_rx.clone()).await
    };
    let signal = async {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    tokio::pin!(api, components, signal);
    let (mut components_done, mut signalled) = (false, false);
    loop {
        tokio::select! {
            r = &mut api => return r.context("API server"),
            r = &mut components, if !components_done => {
                components_done = true;
                if let Err(e) = r {
                    tracing::error!(error = %format!("{e:#}"), "built-in components stopped");
                    let _ = stop_tx.send(true);
                }
            }
            // a completed future must not be polled again
            _ = &mut signal, if !signalled => signalled = true,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // the shim must stay single-threaded: it runs before anything else starts
    let command = match cli.command {
        Command::Shim { args } => std::process::exit(runtime::container::shim::main(&args)),
        other => other,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OXKUBE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match command {
        Command::Server(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(server(*args))
        }
        Command::Agent(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(agent(*args))
        }
        Command::Kubeconfig { data_dir } => {
            let path = data_dir.join("kubeconfig.yaml");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (has `oxkube server` run with this --data-dir?)",
                    path.display()
                )
            })?;
            print!("{text}");
            Ok(())
        }
        Command::Images {
            command: ImagesCommand::Import { data_dir, files },
        } => {
            for img in runtime::images::import(&data_dir, &files).context("import images")? {
                println!("imported {} {}", img.id, img.repo_tags.join(","));
            }
            Ok(())
        }
        Command::UninstallNetwork {
            cluster_cidr,
            cni_bridge,
            vxlan_vni,
        } => {
            let mut pc = podnet::Config::new("", &cluster_cidr);
            pc.vxlan_vni = vxlan_vni;
            pc.nft_table = if cni_bridge == "oxk0" {
                "oxkube-podnet".to_string()
            } else {
                format!("oxkube-podnet-{cni_bridge}")
            };
            podnet::PodNetwork::new(pc, Arc::new(podnet::Tools))?
                .teardown()
                .context("removing the pod network")?;
            let _ = std::process::Command::new("ip")
                .args(["link", "del", "dev", &cni_bridge])
                .stderr(std::process::Stdio::null())
                .status();
            Ok(())
        }
        Command::ProxyCleanup { proxy_table } => {
            proxy::cleanup(&proxy::nft::NftCommand::default(), &proxy_table)
                .context("removing the service proxy's rules")?;
            println!("removed nft table ip {proxy_table}");
            Ok(())
        }
        Command::Shim { args } => std::process::exit(runtime::container::shim::main(&args)),
    }
}
