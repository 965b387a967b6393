//! The sans-IO core of the pod network: from the nodes the API lists, the routes, VXLAN
//! forwarding entries and neighbours this node should have, and the `ip`/`bridge`/`nft`
//! commands that turn what the kernel has into that.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Routing protocol number marking the routes this agent owns (`ip route ... proto 150`), so
/// a sync never touches routes someone else made.
pub const ROUTE_PROTO: u8 = 150;

/// Plan errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("invalid ipv4 cidr {0:?}")]
    BadCidr(String),
    #[error("unknown pod network backend {0:?} (use auto, host-gw, vxlan or none)")]
    BadBackend(String),
}

/// An IPv4 network in CIDR notation, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix as u32)
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether `other` lies entirely inside this network.
    pub fn covers(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }
}

impl FromStr for Ipv4Net {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PlanError::BadCidr(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        if p > 32 {
            return Err(bad());
        }
        let addr = Ipv4Addr::from(u32::from(addr) & Self::mask(p));
        Ok(Ipv4Net { addr, prefix: p })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How pod CIDRs of other nodes are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A route per node: its pod CIDR via its node IP (nodes share an L2 segment).
    HostGw,
    /// A VXLAN device; per node an FDB entry (its VTEP MAC at its node IP), a permanent
    /// neighbour (its VTEP IP at its VTEP MAC) and a route to its pod CIDR via its VTEP IP, as
    /// flannel's vxlan backend does.
    Vxlan,
    /// host-gw to nodes on a subnet this node is directly connected to, vxlan to the others
    /// (flannel's vxlan backend with DirectRouting).
    Auto,
    /// No routes and no masquerading: another network plugin owns the pod network.
    None,
}

impl FromStr for Backend {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "host-gw" => Ok(Backend::HostGw),
            "vxlan" => Ok(Backend::Vxlan),
            "auto" => Ok(Backend::Auto),
            "none" => Ok(Backend::None),
            _ => Err(PlanError::BadBackend(s.to_string())),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::HostGw => "host-gw",
            Backend::Vxlan => "vxlan",
            Backend::Auto => "auto",
            Backend::None => "none",
        })
    }
}

/// What the pod network needs to know of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub node_ip: Option<Ipv4Addr>,
    pub pod_cidr: Option<Ipv4Net>,
}

/// The VTEP address of a node on the VXLAN overlay: its pod CIDR's network address (never
/// handed to a pod; flannel does the same).
pub fn vtep_ip(pod_cidr: &Ipv4Net) -> Ipv4Addr {
    pod_cidr.addr
}

/// The VTEP MAC of a node, derived from its VTEP IP so that peers need no extra API field:
/// locally administered `0a:58:` followed by the four address bytes.
pub fn vtep_mac(pod_cidr: &Ipv4Net) -> String {
    let o = vtep_ip(pod_cidr).octets();
    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// A route to another node's pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
    /// Set for VXLAN routes (`dev <vxlan> onlink`).
    pub dev: Option<String>,
}

/// A peer on the VXLAN overlay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VxlanPeer {
    pub vtep_ip: Ipv4Addr,
    pub vtep_mac: String,
    pub node_ip: Ipv4Addr,
}

/// The state this node should have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub routes: Vec<Route>,
    pub vxlan_peers: Vec<VxlanPeer>,
}

/// The routes and VXLAN peers for every other node with a node IP and a pod CIDR inside the
/// cluster CIDR. `local_nets` (the subnets this node is directly connected to) decide per peer
/// under [`Backend::Auto`].
pub fn desired(
    backend: Backend,
    self_name: &str,
    cluster_cidr: &Ipv4Net,
    vxlan_dev: &str,
    nodes: &[NodeInfo],
    local_nets: &[Ipv4Net],
) -> Desired {
    let mut d = Desired::default();
    for n in nodes {
        if n.name == self_name {
            continue;
        }
        let (Some(ip), Some(cidr)) = (n.node_ip, n.pod_cidr) else {
            continue;
        };
        if !cluster_cidr.covers(&cidr) {
            continue;
        }
        let direct = match backend {
            Backend::None => continue,
            Backend::HostGw => true,
            Backend::Vxlan => false,
            Backend::Auto => local_nets.iter().any(|l| l.contains(ip)),
        };
        if direct {
            d.routes.push(Route {
                dst: cidr,
                via: ip,
                dev: None,
            });
        } else {
            d.routes.push(Route {
                dst: cidr,
                via: vtep_ip(&cidr),
                dev: Some(vxlan_dev.to_string()),
            });
            d.vxlan_peers.push(VxlanPeer {
                vtep_ip: vtep_ip(&cidr),
                vtep_mac: vtep_mac(&cidr),
                node_ip: ip,
            });
        }
    }
    d.routes.sort();
    d.routes.dedup_by(|a, b| a.dst == b.dst);
    d.vxlan_peers.sort();
    d
}

/// The subnets of `ip -j -4 addr show` output, leaving out loopback, the VXLAN device and
/// anything inside the cluster CIDR (pod bridges).
pub fn parse_local_nets(v: &serde_json::Value, vxlan_dev: &str, cluster: &Ipv4Net) -> Vec<Ipv4Net> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo" && l["ifname"] != vxlan_dev)
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| {
            let ip = a["local"].as_str()?;
            let len = a["prefixlen"].as_u64()?;
            format!("{ip}/{len}").parse::<Ipv4Net>().ok()
        })
        .filter(|n| !cluster.covers(n) && n.prefix < 32)
        .collect()
}

/// `ip route` batch lines that turn `current` (our routes inside the cluster CIDR, as the
/// kernel lists them) into `desired`.
pub fn route_commands(current: &[Route], desired: &[Route]) -> Vec<String> {
    let mut out = Vec::new();
    let want: BTreeSet<&Route> = desired.iter().collect();
    let wanted_dst: BTreeSet<Ipv4Net> = desired.iter().map(|r| r.dst).collect();
    for r in current {
        if !wanted_dst.contains(&r.dst) {
            out.push(format!("route del {} proto {ROUTE_PROTO}", r.dst));
        }
    }
    let have: BTreeSet<&Route> = current.iter().collect();
    for r in want {
        if have.contains(r) {
            continue;
        }
        let mut line = format!("route replace {} via {}", r.dst, r.via);
        if let Some(dev) = &r.dev {
            line.push_str(&format!(" dev {dev} onlink"));
        }
        line.push_str(&format!(" proto {ROUTE_PROTO}"));
        out.push(line);
    }
    out
}

/// A forwarding entry of the VXLAN device (`bridge fdb`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fdb {
    pub mac: String,
    pub dst: Ipv4Addr,
}

/// A permanent neighbour of the VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neigh {
    pub ip: Ipv4Addr,
    pub mac: String,
}

/// `bridge` batch lines and `ip` batch lines that turn the device's FDB and neighbours into
/// the peers' entries.
pub fn vxlan_commands(
    dev: &str,
    fdb: &[Fdb],
    neigh: &[Neigh],
    peers: &[VxlanPeer],
) -> (Vec<String>, Vec<String>) {
    let want_fdb: BTreeSet<Fdb> = peers
        .iter()
        .map(|p| Fdb {
            mac: p.vtep_mac.clone(),
            dst: p.node_ip,
        })
        .collect();
    let want_neigh: BTreeSet<Neigh> = peers
        .iter()
        .map(|p| Neigh {
            ip: p.vtep_ip,
            mac: p.vtep_mac.clone(),
        })
        .collect();
    let have_fdb: BTreeSet<&Fdb> = fdb.iter().collect();
    let have_neigh: BTreeSet<&Neigh> = neigh.iter().collect();
    let mut bridge = Vec::new();
    for f in fdb {
        if !want_fdb.contains(f) {
            bridge.push(format!("fdb del {} dev {dev} dst {} self", f.mac, f.dst));
        }
    }
    for f in &want_fdb {
        if !have_fdb.contains(f) {
            bridge.push(format!(
                "fdb append {} dev {dev} dst {} self permanent",
                f.mac, f.dst
            ));
        }
    }
    let mut ip = Vec::new();
    let wanted_ips: BTreeSet<Ipv4Addr> = want_neigh.iter().map(|n| n.ip).collect();
    for n in neigh {
        if !wanted_ips.contains(&n.ip) {
            ip.push(format!("neigh del {} dev {dev}", n.ip));
        }
    }
    for n in &want_neigh {
        if !have_neigh.contains(n) {
            ip.push(format!(
                "neigh replace {} lladdr {} dev {dev} nud permanent",
                n.ip, n.mac
            ));
        }
    }
    (bridge, ip)
}

/// The nft script (one atomic transaction) of the masquerade table: traffic from this node's
/// pods to anything outside the cluster CIDR leaves with the node's address.
pub fn masquerade_script(table: &str, pod_cidr: &Ipv4Net, cluster_cidr: &Ipv4Net) -> String {
    format!(
        "table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {pod_cidr} ip daddr != {{ {cluster_cidr}, 224.0.0.0/4 }} masquerade fully-random\n\
         \t}}\n\
         }}\n"
    )
}

/// Parses `ip -j route show` output into routes (entries without a gateway are skipped).
pub fn parse_routes(v: &serde_json::Value) -> Vec<Route> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let dst: Ipv4Net = r.get("dst")?.as_str()?.parse().ok()?;
            let via: Ipv4Addr = r.get("gateway")?.as_str()?.parse().ok()?;
            let onlink = r
                .get("flags")
                .and_then(|f| f.as_array())
                .is_some_and(|f| f.iter().any(|x| x == "onlink"));
            let dev = if onlink {
                r.get("dev").and_then(|d| d.as_str()).map(String::from)
            } else {
                None
            };
            Some(Route { dst, via, dev })
        })
        .collect()
}

/// Parses `bridge -j fdb show dev X` output (entries with a remote destination).
pub fn parse_fdb(v: &serde_json::Value) -> Vec<Fdb> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Fdb {
                mac: e.get("mac")?.as_str()?.to_lowercase(),
                dst: e.get("dst")?.as_str()?.parse().ok()?,
            })
        })
        .collect()
}

/// Parses `ip -j neigh show dev X` output.
pub fn parse_neigh(v: &serde_json::Value) -> Vec<Neigh> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Neigh {
                ip: e.get("dst")?.as_str()?.parse().ok()?,
                mac: e
                    .get("lladdr")
                    .and_then(|m| m.as_str())
                    .unwrap_or_default()
                    .to_lowercase(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn route(dst: &str, via: &str, dev: Option<&str>) -> Route {
        Route {
            dst: net(dst),
            via: via.parse().unwrap(),
            dev: dev.map(String::from),
        }
    }

    fn node(name: &str, ip: Option<&str>, cidr: Option<&str>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            node_ip: ip.map(|i| i.parse().unwrap()),
            pod_cidr: cidr.map(net),
        }
    }

    #[test]
    fn cidrs_parse_normalise_and_contain() {
        let cases = [
            ("10.42.3.7/24", "10.42.3.0/24", true),
            ("10.42.0.0/16", "10.42.0.0/16", true),
            ("10.43.0.0/16", "10.43.0.0/16", false),
            ("0.0.0.0/0", "0.0.0.0/0", false),
        ];
        let cluster = net("10.42.0.0/16");
        for (input, shown, inside) in cases {
            let n = net(input);
            assert_eq!(n.to_string(), shown, "{input}");
            assert_eq!(cluster.covers(&n), inside, "{input}");
        }
        assert!(net("0.0.0.0/0").covers(&cluster));
        assert!("10.1.2.3/33".parse::<Ipv4Net>().is_err());
        assert!("fd00::/64".parse::<Ipv4Net>().is_err());
        assert!("x".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn backends_parse() {
        for (s, b) in [
            ("host-gw", Backend::HostGw),
            ("vxlan", Backend::Vxlan),
            ("auto", Backend::Auto),
            ("none", Backend::None),
        ] {
            assert_eq!(s.parse::<Backend>().unwrap(), b);
            assert_eq!(b.to_string(), s);
        }
        assert_eq!(
            "udp".parse::<Backend>(),
            Err(PlanError::BadBackend("udp".into()))
        );
    }

    #[test]
    fn vtep_address_and_mac_derive_from_the_pod_cidr() {
        let c = net("10.42.17.0/24");
        assert_eq!(vtep_ip(&c), "10.42.17.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!(vtep_mac(&c), "0a:58:0a:2a:11:00");
    }

    #[test]
    fn desired_state_per_backend() {
        let nodes = vec![
            node("a", Some("192.168.1.1"), Some("10.42.0.0/24")),
            node("b", Some("192.168.1.2"), Some("10.42.1.0/24")),
            node("c", Some("192.168.1.3"), Some("10.42.2.0/24")),
            node("no-cidr", Some("192.168.1.4"), None),
            node("no-ip", None, Some("10.42.4.0/24")),
            node("elsewhere", Some("192.168.1.5"), Some("10.99.0.0/24")),
        ];
        let cluster = net("10.42.0.0/16");
        let hg = desired(Backend::HostGw, "a", &cluster, "vx", &nodes, &[]);
        assert_eq!(
            hg.routes,
            vec![
                route("10.42.1.0/24", "192.168.1.2", None),
                route("10.42.2.0/24", "192.168.1.3", None),
            ]
        );
        assert!(hg.vxlan_peers.is_empty());

        let vx = desired(Backend::Vxlan, "b", &cluster, "vx", &nodes, &[]);
        assert_eq!(
            vx.routes.iter().map(|r| r.to_owned()).collect::<Vec<_>>(),
            vec![
                route("10.42.0.0/24", "10.42.0.0", Some("vx")),
                route("10.42.2.0/24", "10.42.2.0", Some("vx")),
            ]
        );
        assert_eq!(
            vx.vxlan_peers[1],
            VxlanPeer {
                vtep_ip: "10.42.2.0".parse().unwrap(),
                vtep_mac: "0a:58:0a:2a:02:00".into(),
                node_ip: "192.168.1.3".parse().unwrap(),
            }
        );
        assert_eq!(
            desired(Backend::None, "a", &cluster, "vx", &nodes, &[]),
            Desired::default()
        );
        // auto: host-gw to the peer on a connected subnet, vxlan to the one behind a router
        let mut routed = nodes.clone();
        routed[2].node_ip = Some("172.16.0.3".parse().unwrap());
        let auto = desired(
            Backend::Auto,
            "a",
            &cluster,
            "vx",
            &routed,
            &[net("192.168.1.0/24")],
        );
        assert_eq!(
            auto.routes,
            vec![
                route("10.42.1.0/24", "192.168.1.2", None),
                route("10.42.2.0/24", "10.42.2.0", Some("vx")),
            ]
        );
        assert_eq!(auto.vxlan_peers.len(), 1);
        assert_eq!(
            auto.vxlan_peers[0].node_ip,
            "172.16.0.3".parse::<Ipv4Addr>().unwrap()
        );
        // all on one subnet: no overlay at all
        let flat = desired(
            Backend::Auto,
            "a",
            &cluster,
            "vx",
            &nodes,
            &[net("192.168.1.0/24")],
        );
        assert!(flat.vxlan_peers.is_empty());
        assert_eq!(flat.routes, hg.routes);
    }

    #[test]
    fn route_commands_add_change_and_remove() {
        type Case = (Vec<Route>, Vec<Route>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (
                vec![],
                vec![route("10.42.1.0/24", "192.168.1.2", None)],
                vec!["route replace 10.42.1.0/24 via 192.168.1.2 proto 150"],
            ),
            (
                vec![route("10.42.1.0/24", "192.168.1.2", None)],
                vec![route("10.42.1.0/24", "192.168.1.2", None)],
                vec![],
            ),
            (
                vec![
                    route("10.42.1.0/24", "192.168.1.2", None),
                    route("10.42.2.0/24", "192.168.1.3", None),
                ],
                vec![route("10.42.1.0/24", "192.168.1.9", None)],
                vec![
                    "route del 10.42.2.0/24 proto 150",
                    "route replace 10.42.1.0/24 via 192.168.1.9 proto 150",
                ],
            ),
            (
                vec![route("10.42.1.0/24", "192.168.1.2", None)],
                vec![route("10.42.1.0/24", "10.42.1.0", Some("vx"))],
                vec!["route replace 10.42.1.0/24 via 10.42.1.0 dev vx onlink proto 150"],
            ),
        ];
        for (current, want, expect) in cases {
            assert_eq!(route_commands(&current, &want), expect, "{current:?}");
        }
    }

    #[test]
    fn vxlan_commands_follow_peers() {
        let peers = vec![VxlanPeer {
            vtep_ip: "10.42.1.0".parse().unwrap(),
            vtep_mac: "0a:58:0a:2a:01:00".into(),
            node_ip: "192.168.1.2".parse().unwrap(),
        }];
        let (b, i) = vxlan_commands("vx", &[], &[], &peers);
        assert_eq!(
            b,
            vec!["fdb append 0a:58:0a:2a:01:00 dev vx dst 192.168.1.2 self permanent"]
        );
        assert_eq!(
            i,
            vec!["neigh replace 10.42.1.0 lladdr 0a:58:0a:2a:01:00 dev vx nud permanent"]
        );
        let fdb = vec![
            Fdb {
                mac: "0a:58:0a:2a:01:00".into(),
                dst: "192.168.1.2".parse().unwrap(),
            },
            Fdb {
                mac: "0a:58:0a:2a:02:00".into(),
                dst: "192.168.1.3".parse().unwrap(),
            },
        ];
        let neigh = vec![
            Neigh {
                ip: "10.42.1.0".parse().unwrap(),
                mac: "0a:58:0a:2a:01:00".into(),
            },
            Neigh {
                ip: "10.42.2.0".parse().unwrap(),
                mac: "0a:58:0a:2a:02:00".into(),
            },
        ];
        let (b, i) = vxlan_commands("vx", &fdb, &neigh, &peers);
        assert_eq!(
            b,
            vec!["fdb del 0a:58:0a:2a:02:00 dev vx dst 192.168.1.3 self"]
        );
        assert_eq!(i, vec!["neigh del 10.42.2.0 dev vx"]);
    }

    #[test]
    fn masquerade_script_spares_cluster_traffic() {
        let s = masquerade_script("t", &net("10.42.1.0/24"), &net("10.42.0.0/16"));
        assert!(s.starts_with("table ip t\ndelete table ip t\n"), "{s}");
        assert!(
            s.contains("type nat hook postrouting priority srcnat"),
            "{s}"
        );
        assert!(
            s.contains(
                "ip saddr 10.42.1.0/24 ip daddr != { 10.42.0.0/16, 224.0.0.0/4 } masquerade"
            ),
            "{s}"
        );
    }

    #[test]
    fn local_nets_leave_out_loopback_overlay_and_pod_bridges() {
        let v = json!([
            {"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]},
            {"ifname":"eth0","addr_info":[{"local":"192.168.1.7","prefixlen":24}]},
            {"ifname":"cni0","addr_info":[{"local":"10.42.0.1","prefixlen":24}]},
            {"ifname":"vx","addr_info":[{"local":"10.42.0.0","prefixlen":32}]},
            {"ifname":"eth1","addr_info":[{"local":"172.16.5.2","prefixlen":16}]}
        ]);
        assert_eq!(
            parse_local_nets(&v, "vx", &net("10.42.0.0/16")),
            vec![net("192.168.1.0/24"), net("172.16.0.0/16")]
        );
    }

    #[test]
    fn kernel_listings_parse() {
        let routes = json!([
            {"dst":"10.42.1.0/24","gateway":"192.168.1.2","dev":"eth0","protocol":"150","flags":[]},
            {"dst":"10.42.2.0/24","gateway":"10.42.2.0","dev":"vx","protocol":"150","flags":["onlink"]},
            {"dst":"10.42.3.0/24","dev":"cni0","protocol":"kernel","flags":[]}
        ]);
        assert_eq!(
            parse_routes(&routes),
            vec![
                route("10.42.1.0/24", "192.168.1.2", None),
                route("10.42.2.0/24", "10.42.2.0", Some("vx")),
            ]
        );
        let fdb = json!([
            {"mac":"0A:58:0a:2a:01:00","dst":"192.168.1.2","flags":["self"],"state":"permanent"},
            {"mac":"6e:11:22:33:44:55","ifname":"vx","flags":["self"],"state":"permanent"}
        ]);
        assert_eq!(
            parse_fdb(&fdb),
            vec![Fdb {
                mac: "0a:58:0a:2a:01:00".into(),
                dst: "192.168.1.2".parse().unwrap()
            }]
        );
        let neigh = json!([{"dst":"10.42.1.0","lladdr":"0a:58:0a:2a:01:00","state":["PERMANENT"]}]);
        assert_eq!(
            parse_neigh(&neigh),
            vec![Neigh {
                ip: "10.42.1.0".parse().unwrap(),
                mac: "0a:58:0a:2a:01:00".into()
            }]
        );
    }
}
