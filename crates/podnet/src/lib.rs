//! The pod network across nodes, run by every agent: watches Nodes and keeps a route to every
//! other node's pod CIDR (host-gw: via the node's IP; vxlan: through a VXLAN device with an FDB
//! entry and a neighbour per peer, like flannel's vxlan backend), and masquerades traffic from
//! this node's pods to destinations outside the cluster CIDR (nft table of its own).
//!
//! The kernel is driven with the `ip`, `bridge` and `nft` tools (iproute2 and nftables are
//! required on nodes anyway): their batch modes apply a whole change in one process, their
//! JSON listings are stable, and no netlink crate (with its own async runtime glue) is needed
//! for a loop that runs on Node changes only. Those calls sit behind [`System`].

pub mod plan;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use plan::{Backend, Ipv4Net, NodeInfo, ROUTE_PROTO};

/// Pod network errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error("cannot run {tool}: {source}")]
    Exec {
        tool: String,
        source: std::io::Error,
    },
    #[error("{tool} failed: {message}")]
    Tool { tool: String, message: String },
    #[error("cannot parse {tool} output: {message}")]
    Parse { tool: String, message: String },
    #[error("no interface has the node ip {0}")]
    NoInterface(Ipv4Addr),
    #[error("cannot write {path}: {source}")]
    Sysctl {
        path: String,
        source: std::io::Error,
    },
}

/// Configuration of the pod network.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    /// This node's IP (the address peers route to, and the VXLAN underlay address).
    pub node_ip: Option<IpAddr>,
    /// The cluster CIDR pod CIDRs are allocated from; only routes inside it are managed.
    pub cluster_cidr: String,
    pub backend: Backend,
    /// VXLAN network identifier (flannel's default is 1).
    pub vxlan_vni: u32,
    /// VXLAN UDP port (flannel's default on Linux is 8472).
    pub vxlan_port: u16,
    /// Name of the nft table holding the masquerade rule.
    pub nft_table: String,
    /// Periodic full re-sync (repairs routes someone else removed).
    pub resync_period: Duration,
}

impl Config {
    pub fn new(node_name: &str, cluster_cidr: &str) -> Config {
        Config {
            node_name: node_name.to_string(),
            node_ip: None,
            cluster_cidr: cluster_cidr.to_string(),
            backend: Backend::HostGw,
            vxlan_vni: 1,
            vxlan_port: 8472,
            nft_table: "oxkube-podnet".into(),
            resync_period: Duration::from_secs(30),
        }
    }

    /// The VXLAN device: `oxkube.<vni>` (as flannel's `flannel.<vni>`).
    pub fn vxlan_dev(&self) -> String {
        format!("oxkube.{}", self.vxlan_vni)
    }
}

/// The OS calls of the pod network.
pub trait System: Send + Sync {
    /// Runs `tool -j args` and parses its JSON output (empty output is an empty list).
    fn json(&self, tool: &str, args: &[&str]) -> Result<serde_json::Value, Error>;
    /// Runs `tool args`.
    fn run(&self, tool: &str, args: &[&str]) -> Result<(), Error>;
    /// Runs `tool -force -batch -` with `lines` (all lines are tried; an error names the
    /// failed ones).
    fn batch(&self, tool: &str, lines: &[String]) -> Result<(), Error>;
    /// Applies an nft script atomically (`nft -f -`).
    fn nft(&self, script: &str) -> Result<(), Error>;
    /// Writes a sysctl under /proc/sys.
    fn sysctl(&self, key: &str, value: &str) -> Result<(), Error>;
}

/// The real tools.
#[derive(Debug, Default, Clone)]
pub struct Tools;

fn output(tool: &str, args: &[&str], stdin: Option<&str>) -> Result<Vec<u8>, Error> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Exec {
            tool: tool.to_string(),
            source,
        })?;
    if let (Some(text), Some(mut i)) = (stdin, child.stdin.take()) {
        let _ = i.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| Error::Exec {
        tool: tool.to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Tool {
            tool: format!("{tool} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

impl System for Tools {
    fn json(&self, tool: &str, args: &[&str]) -> Result<serde_json::Value, Error> {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let out = output(tool, &a, None)?;
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Array(vec![]));
        }
        serde_json::from_slice(&out).map_err(|e| Error::Parse {
            tool: tool.to_string(),
            message: e.to_string(),
        })
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), Error> {
        output(tool, args, None).map(|_| ())
    }

    fn batch(&self, tool: &str, lines: &[String]) -> Result<(), Error> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = lines.join("\n");
        text.push('\n');
        output(tool, &["-force", "-batch", "-"], Some(&text)).map(|_| ())
    }

    fn nft(&self, script: &str) -> Result<(), Error> {
        output("nft", &["-f", "-"], Some(script)).map(|_| ())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<(), Error> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|source| Error::Sysctl { path, source })
    }
}

/// The pod network of this node, synced from a list of nodes.
pub struct PodNetwork {
    config: Config,
    cluster: Ipv4Net,
    sys: Arc<dyn System>,
    /// The masquerade script last applied (re-applied only when it changes).
    applied_masq: Option<String>,
    vxlan_ready: bool,
}

/// What a sync changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub route_changes: usize,
    pub vxlan_changes: usize,
    pub routes: usize,
}

impl PodNetwork {
    pub fn new(config: Config, sys: Arc<dyn System>) -> Result<Self, Error> {
        let cluster: Ipv4Net = config.cluster_cidr.parse()?;
        Ok(PodNetwork {
            config,
            cluster,
            sys,
            applied_masq: None,
            vxlan_ready: false,
        })
    }

    fn node_ip(&self) -> Option<Ipv4Addr> {
        match self.config.node_ip {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        }
    }

    /// Brings routes, VXLAN entries and the masquerade rule in line with `nodes`.
    pub fn sync(&mut self, nodes: &[NodeInfo]) -> Result<SyncReport, Error> {
        let mut report = SyncReport::default();
        if self.config.backend == Backend::None {
            return Ok(report);
        }
        // pods' packets to other nodes are routed by this node
        self.sys.sysctl("net.ipv4.ip_forward", "1")?;
        let me = nodes.iter().find(|n| n.name == self.config.node_name);
        let my_cidr = me.and_then(|n| n.pod_cidr);
        let dev = self.config.vxlan_dev();
        let local_nets = if self.config.backend == Backend::Auto {
            let v = self.sys.json("ip", &["-4", "addr", "show"])?;
            plan::parse_local_nets(&v, &dev, &self.cluster)
        } else {
            Vec::new()
        };
        let mut want = plan::desired(
            self.config.backend,
            &self.config.node_name,
            &self.cluster,
            &dev,
            nodes,
            &local_nets,
        );
        // under auto the device exists as soon as there are peers, even without overlay
        // peers of our own: a peer that is not on our subnet reaches us through it although
        // we reach it directly (we may be on several subnets); a single node has none
        let overlay = match self.config.backend {
            Backend::Vxlan => true,
            Backend::Auto => !want.routes.is_empty() || self.vxlan_ready,
            _ => false,
        };
        if overlay {
            match my_cidr {
                Some(c) => self.ensure_vxlan(&c)?,
                // the VTEP address is the pod CIDR's: wait for the node IPAM controller
                None if self.config.backend == Backend::Vxlan => return Ok(report),
                None => {
                    want.routes.retain(|r| r.dev.is_none());
                    want.vxlan_peers.clear();
                }
            }
        }
        let current = self.our_routes()?;
        if self.vxlan_ready {
            let fdb = plan::parse_fdb(&self.sys.json("bridge", &["fdb", "show", "dev", &dev])?);
            let neigh = plan::parse_neigh(&self.sys.json("ip", &["neigh", "show", "dev", &dev])?);
            let (b, i) = plan::vxlan_commands(&dev, &fdb, &neigh, &want.vxlan_peers);
            report.vxlan_changes = b.len() + i.len();
            self.sys.batch("bridge", &b)?;
            self.sys.batch("ip", &i)?;
        }
        let cmds = plan::route_commands(&current, &want.routes);
        report.route_changes = cmds.len();
        report.routes = want.routes.len();
        if !cmds.is_empty() {
            tracing::info!(changes = cmds.len(), routes = want.routes.len(), backend = %self.config.backend, "syncing pod network routes");
        }
        self.sys.batch("ip", &cmds)?;
        if let Some(c) = my_cidr {
            let script = plan::masquerade_script(&self.config.nft_table, &c, &self.cluster);
            if self.applied_masq.as_deref() != Some(script.as_str()) {
                self.sys.nft(&script)?;
                self.applied_masq = Some(script);
            }
        }
        Ok(report)
    }

    /// Creates (or recreates, when its settings differ) the VXLAN device with this node's VTEP
    /// MAC and address.
    fn ensure_vxlan(&mut self, my_cidr: &Ipv4Net) -> Result<(), Error> {
        let dev = self.config.vxlan_dev();
        let Some(local) = self.node_ip() else {
            return Err(Error::Tool {
                tool: "vxlan".into(),
                message: "the vxlan backend needs an ipv4 node ip".into(),
            });
        };
        let mac = plan::vtep_mac(my_cidr);
        let vtep = plan::vtep_ip(my_cidr);
        let existing = self
            .sys
            .json("ip", &["-d", "link", "show", "dev", &dev])
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()));
        let create = match &existing {
            Some(link) => {
                let data = &link["linkinfo"]["info_data"];
                let same = data["id"].as_u64() == Some(self.config.vxlan_vni as u64)
                    && data["port"].as_u64() == Some(self.config.vxlan_port as u64)
                    && data["local"].as_str() == Some(local.to_string().as_str());
                if same && self.vxlan_ready && link["address"].as_str() == Some(mac.as_str()) {
                    return Ok(());
                }
                if !same {
                    tracing::info!(%dev, "vxlan device settings changed, recreating it");
                    self.sys.run("ip", &["link", "del", "dev", &dev])?;
                }
                !same
            }
            None => true,
        };
        if create {
            let underlay = self.underlay_dev(local)?;
            let vni = self.config.vxlan_vni.to_string();
            let port = self.config.vxlan_port.to_string();
            let local_s = local.to_string();
            self.sys.run(
                "ip",
                &[
                    "link",
                    "add",
                    &dev,
                    "type",
                    "vxlan",
                    "id",
                    &vni,
                    "local",
                    &local_s,
                    "dev",
                    &underlay,
                    "dstport",
                    &port,
                    "nolearning",
                ],
            )?;
            tracing::info!(%dev, vni = self.config.vxlan_vni, %local, "vxlan device created");
        }
        self.sys
            .run("ip", &["link", "set", "dev", &dev, "address", &mac])?;
        self.sys.run(
            "ip",
            &["addr", "replace", &format!("{vtep}/32"), "dev", &dev],
        )?;
        self.sys.run("ip", &["link", "set", "dev", &dev, "up"])?;
        self.vxlan_ready = true;
        Ok(())
    }

    /// The interface holding `ip`.
    fn underlay_dev(&self, ip: Ipv4Addr) -> Result<String, Error> {
        let v = self.sys.json("ip", &["-4", "addr", "show"])?;
        v.as_array()
            .into_iter()
            .flatten()
            .find(|l| {
                l["addr_info"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a["local"].as_str() == Some(ip.to_string().as_str()))
            })
            .and_then(|l| l["ifname"].as_str().map(String::from))
            .ok_or(Error::NoInterface(ip))
    }

    /// The routes of our protocol inside the cluster CIDR, as the kernel has them now.
    fn our_routes(&self) -> Result<Vec<plan::Route>, Error> {
        let listed = self.sys.json(
            "ip",
            &["-4", "route", "show", "proto", &ROUTE_PROTO.to_string()],
        )?;
        Ok(plan::parse_routes(&listed)
            .into_iter()
            .filter(|r| self.cluster.covers(&r.dst))
            .collect())
    }

    /// Removes everything the pod network set up: our routes inside the cluster CIDR, the
    /// VXLAN device, the masquerade table.
    pub fn teardown(&mut self) -> Result<(), Error> {
        let dev = self.config.vxlan_dev();
        let exists = self
            .sys
            .json("ip", &["link", "show", "dev", &dev])
            .ok()
            .and_then(|v| v.as_array().map(|a| !a.is_empty()))
            .unwrap_or(false);
        if exists {
            self.sys.run("ip", &["link", "del", "dev", &dev])?;
        }
        let current = self.our_routes()?;
        let cmds = plan::route_commands(&current, &[]);
        self.sys.batch("ip", &cmds)?;
        let table = &self.config.nft_table;
        self.sys
            .nft(&format!("table ip {table}\ndelete table ip {table}\n"))?;
        self.applied_masq = None;
        self.vxlan_ready = false;
        Ok(())
    }
}

/// What the pod network reads of a Node: its InternalIP (IPv4) and spec.podCIDR.
pub fn node_info(node: &Node) -> NodeInfo {
    let node_ip = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok());
    let spec = node.spec.as_ref();
    let pod_cidr = spec
        .and_then(|s| s.pod_cidrs.as_ref())
        .into_iter()
        .flatten()
        .chain(spec.and_then(|s| s.pod_cidr.as_ref()))
        .find_map(|c| c.parse::<Ipv4Net>().ok());
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        node_ip,
        pod_cidr,
    }
}

/// Watches Nodes and keeps the pod network in sync until `shutdown` resolves. Routes stay in
/// place when the agent stops (pods keep running); [`PodNetwork::teardown`] removes them.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    use futures::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};
    if config.backend == Backend::None {
        shutdown.await;
        return Ok(());
    }
    let resync = config.resync_period;
    let net = Arc::new(std::sync::Mutex::new(PodNetwork::new(
        config,
        Arc::new(Tools),
    )?));
    let api: kube::Api<Node> = kube::Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut nodes: BTreeMap<String, NodeInfo> = BTreeMap::new();
    let mut init: BTreeMap<String, NodeInfo> = BTreeMap::new();
    let mut listed = false;
    let mut dirty = false;
    let mut tick = tokio::time::interval(resync);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            ev = stream.next() => {
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    Ok(watcher::Event::Init) => init.clear(),
                    Ok(watcher::Event::InitApply(n)) => {
                        let i = node_info(&n);
                        init.insert(i.name.clone(), i);
                    }
                    Ok(watcher::Event::InitDone) => {
                        nodes = std::mem::take(&mut init);
                        listed = true;
                        dirty = true;
                    }
                    Ok(watcher::Event::Apply(n)) => {
                        let i = node_info(&n);
                        if nodes.get(&i.name) != Some(&i) {
                            nodes.insert(i.name.clone(), i);
                            dirty = true;
                        }
                    }
                    Ok(watcher::Event::Delete(n)) => {
                        let name = n.metadata.name.clone().unwrap_or_default();
                        dirty |= nodes.remove(&name).is_some();
                    }
                    Err(e) => tracing::debug!(error = %e, "node watch error"),
                }
            }
            _ = tick.tick() => dirty = listed,
        }
        if dirty && listed {
            dirty = false;
            let list: Vec<NodeInfo> = nodes.values().cloned().collect();
            let net = net.clone();
            let r = tokio::task::spawn_blocking(move || {
                net.lock().unwrap_or_else(|e| e.into_inner()).sync(&list)
            })
            .await;
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "pod network sync failed, retrying");
                    tick.reset_at(tokio::time::Instant::now() + Duration::from_secs(1));
                }
                Err(e) => tracing::warn!(error = %e, "pod network sync panicked"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records every call; answers listings from canned JSON.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<String>>,
        listings: Mutex<BTreeMap<String, serde_json::Value>>,
    }

    impl System for Fake {
        fn json(&self, tool: &str, args: &[&str]) -> Result<serde_json::Value, Error> {
            let key = format!("{tool} {}", args.join(" "));
            self.listings
                .lock()
                .unwrap()
                .get(&key)
                .cloned()
                .ok_or(Error::Tool {
                    tool: key,
                    message: "does not exist".into(),
                })
        }
        fn run(&self, tool: &str, args: &[&str]) -> Result<(), Error> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("{tool} {}", args.join(" ")));
            Ok(())
        }
        fn batch(&self, tool: &str, lines: &[String]) -> Result<(), Error> {
            for l in lines {
                self.calls.lock().unwrap().push(format!("{tool} batch {l}"));
            }
            Ok(())
        }
        fn nft(&self, script: &str) -> Result<(), Error> {
            self.calls.lock().unwrap().push(format!("nft {script}"));
            Ok(())
        }
        fn sysctl(&self, key: &str, value: &str) -> Result<(), Error> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("sysctl {key}={value}"));
            Ok(())
        }
    }

    fn nodes() -> Vec<NodeInfo> {
        vec![
            NodeInfo {
                name: "a".into(),
                node_ip: Some("192.168.7.1".parse().unwrap()),
                pod_cidr: Some("10.42.0.0/24".parse().unwrap()),
            },
            NodeInfo {
                name: "b".into(),
                node_ip: Some("192.168.7.2".parse().unwrap()),
                pod_cidr: Some("10.42.1.0/24".parse().unwrap()),
            },
        ]
    }

    /// A host with no routes, FDB or neighbour entries of ours yet, and these addresses.
    fn overlay_fake(addrs: serde_json::Value) -> Arc<Fake> {
        let fake = Arc::new(Fake::default());
        {
            let mut l = fake.listings.lock().unwrap();
            l.insert("ip -4 route show proto 150".into(), json!([]));
            l.insert("bridge fdb show dev oxkube.1".into(), json!([]));
            l.insert("ip neigh show dev oxkube.1".into(), json!([]));
            l.insert("ip -4 addr show".into(), addrs);
        }
        fake
    }

    fn config(backend: Backend) -> Config {
        let mut c = Config::new("a", "10.42.0.0/16");
        c.backend = backend;
        c.node_ip = Some("192.168.7.1".parse().unwrap());
        c.nft_table = "t".into();
        c
    }

    #[test]
    fn host_gw_sync_routes_and_masquerades_once() {
        let fake = Arc::new(Fake::default());
        fake.listings.lock().unwrap().insert(
            "ip -4 route show proto 150".into(),
            json!([{"dst":"10.42.9.0/24","gateway":"192.168.7.9","flags":[]},
                   {"dst":"10.50.0.0/24","gateway":"192.168.7.9","flags":[]}]),
        );
        let mut net = PodNetwork::new(config(Backend::HostGw), fake.clone()).unwrap();
        let r = net.sync(&nodes()).unwrap();
        assert_eq!(r.routes, 1);
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(calls[0], "sysctl net.ipv4.ip_forward=1");
        // the stale route inside the cluster CIDR goes, the one outside it is not ours to touch
        assert_eq!(calls[1], "ip batch route del 10.42.9.0/24 proto 150");
        assert_eq!(
            calls[2],
            "ip batch route replace 10.42.1.0/24 via 192.168.7.2 proto 150"
        );
        assert!(calls[3].starts_with("nft table ip t\n"), "{calls:?}");
        assert!(calls[3].contains("ip saddr 10.42.0.0/24"), "{calls:?}");
        assert_eq!(calls.len(), 4);
        net.sync(&nodes()).unwrap();
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("nft")).count(),
            1,
            "unchanged masquerade rule is not re-applied: {calls:?}"
        );
    }

    #[test]
    fn vxlan_sync_creates_the_device_then_peers() {
        let fake = overlay_fake(json!([{"ifname":"lo","addr_info":[{"local":"127.0.0.1"}]},
                   {"ifname":"eth9","addr_info":[{"local":"192.168.7.1"}]}]));
        let mut net = PodNetwork::new(config(Backend::Vxlan), fake.clone()).unwrap();
        net.sync(&nodes()).unwrap();
        let calls = fake.calls.lock().unwrap().clone();
        let expect = [
            "sysctl net.ipv4.ip_forward=1",
            "ip link add oxkube.1 type vxlan id 1 local 192.168.7.1 dev eth9 dstport 8472 nolearning",
            "ip link set dev oxkube.1 address 0a:58:0a:2a:00:00",
            "ip addr replace 10.42.0.0/32 dev oxkube.1",
            "ip link set dev oxkube.1 up",
            "bridge batch fdb append 0a:58:0a:2a:01:00 dev oxkube.1 dst 192.168.7.2 self permanent",
            "ip batch neigh replace 10.42.1.0 lladdr 0a:58:0a:2a:01:00 dev oxkube.1 nud permanent",
            "ip batch route replace 10.42.1.0/24 via 10.42.1.0 dev oxkube.1 onlink proto 150",
        ];
        assert_eq!(&calls[..expect.len()], &expect, "{calls:?}");
    }

    #[test]
    fn auto_uses_host_gw_on_one_subnet_without_an_overlay() {
        let fake = overlay_fake(
            json!([{"ifname":"eth9","addr_info":[{"local":"192.168.7.1","prefixlen":24}]}]),
        );
        let mut net = PodNetwork::new(config(Backend::Auto), fake.clone()).unwrap();
        net.sync(&nodes()).unwrap();
        let calls = fake.calls.lock().unwrap().clone();
        assert!(
            calls.contains(
                &"ip batch route replace 10.42.1.0/24 via 192.168.7.2 proto 150".to_string()
            ),
            "{calls:?}"
        );
        assert!(
            calls[1].starts_with("ip link add oxkube.1 type vxlan"),
            "{calls:?}"
        );
        assert!(
            !calls
                .iter()
                .any(|c| c.contains("fdb") || c.contains("neigh")),
            "no overlay peers: {calls:?}"
        );
    }

    #[test]
    fn auto_on_a_single_node_makes_no_overlay() {
        let fake = Arc::new(Fake::default());
        fake.listings
            .lock()
            .unwrap()
            .insert("ip -4 route show proto 150".into(), json!([]));
        fake.listings.lock().unwrap().insert(
            "ip -4 addr show".into(),
            json!([{"ifname":"eth9","addr_info":[{"local":"192.168.7.1","prefixlen":24}]}]),
        );
        let mut net = PodNetwork::new(config(Backend::Auto), fake.clone()).unwrap();
        net.sync(&nodes()[..1]).unwrap();
        let calls = fake.calls.lock().unwrap().clone();
        assert!(!calls.iter().any(|c| c.contains("link add")), "{calls:?}");
        assert!(calls.iter().any(|c| c.starts_with("nft ")), "{calls:?}");
    }

    #[test]
    fn vxlan_waits_for_its_pod_cidr_and_none_does_nothing() {
        let fake = Arc::new(Fake::default());
        let mut n = nodes();
        n[0].pod_cidr = None;
        let mut net = PodNetwork::new(config(Backend::Vxlan), fake.clone()).unwrap();
        net.sync(&n).unwrap();
        assert_eq!(
            fake.calls.lock().unwrap().clone(),
            vec!["sysctl net.ipv4.ip_forward=1"]
        );
        let fake = Arc::new(Fake::default());
        let mut net = PodNetwork::new(config(Backend::None), fake.clone()).unwrap();
        net.sync(&nodes()).unwrap();
        assert!(fake.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn node_info_reads_internal_ip_and_pod_cidr() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.42.3.0/24", "podCIDRs": ["10.42.3.0/24"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "fd00::1"},
                {"type": "InternalIP", "address": "192.168.7.3"}
            ]}
        }))
        .unwrap();
        assert_eq!(
            node_info(&node),
            NodeInfo {
                name: "n1".into(),
                node_ip: Some("192.168.7.3".parse().unwrap()),
                pod_cidr: Some("10.42.3.0/24".parse().unwrap()),
            }
        );
    }
}
