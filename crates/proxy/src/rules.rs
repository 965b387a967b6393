//! Service ports to one nftables table (sans-IO): the desired [`Ruleset`], its full rendering
//! (one atomic replace of the table) and the incremental transaction between two rulesets.
//!
//! The layout follows kube-proxy's nftables mode: verdict maps keyed by
//! `daddr . l4proto . dport` (cluster IPs, external IPs, LoadBalancer IPs) and `l4proto . dport`
//! (node ports on the node's addresses) jump to per-service chains. Fewer kernel objects than
//! upstream: without session affinity a service chain DNATs straight to a random endpoint
//! (a cascade of `numgen random mod k == 0 dnat to addr:port` rules, or one
//! `dnat to numgen random mod N map { i : addr . port }` rule for large services) instead of
//! jumping to a chain per endpoint; only affinity services keep endpoint chains (they record
//! the client in a per-endpoint set). Hairpin traffic is masqueraded by one postrouting rule matching
//! `saddr . daddr` against the endpoint pairs. Services without usable endpoints are rejected
//! in filter chains that run before DNAT. Each service port's rules are a cached [`Fragment`]:
//! a sync regenerates and diffs only the ports that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::model::{Endpoint, ServicePort};

/// The packet mark bit asking for masquerade in postrouting (upstream's 0x4000).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Settings of the generated table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    /// The nft table (family ip). Unique per cluster on a shared host.
    pub table: String,
    /// Traffic from this CIDR is "local" (pods); ClusterIP traffic from elsewhere is
    /// masqueraded (upstream's local-traffic detector). None: only hairpin and external
    /// traffic are masqueraded.
    pub local_cidr: Option<String>,
    /// Masquerade all traffic to cluster IPs (upstream's --masquerade-all).
    pub masquerade_all: bool,
    /// The addresses node ports are served on (upstream's nodePortAddresses default: the
    /// node's IPs).
    pub node_ips: Vec<Ipv4Addr>,
}

/// The four verdict maps of the table.
pub const MAPS: [&str; 4] = [
    "service-ips",
    "service-nodeports",
    "no-endpoint-services",
    "no-endpoint-nodeports",
];

/// The set of `endpoint . endpoint` address pairs: a DNATed packet whose source is the endpoint
/// it was sent to is hairpin traffic and is masqueraded (one rule for every endpoint instead
/// of one rule per endpoint chain).
pub const HAIRPIN_SET: &str = "hairpin-endpoints";

/// What one service port contributes to the table: its chains, affinity sets and map elements,
/// and the endpoint addresses its rules DNAT to. Cached between syncs: a port that did not
/// change keeps its fragment, so a sync only generates and compares what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The port the fragment was generated from.
    port: ServicePort,
    /// Chains: name -> rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets: name -> timeout in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    /// Verdict map elements: (map, key, verdict).
    pub elements: Vec<(&'static str, String, String)>,
    /// The addresses of the endpoints the rules may DNAT to.
    pub endpoint_ips: BTreeSet<Ipv4Addr>,
}

/// The desired content of the table: base chains are fixed; everything else is here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Service port id -> its fragment.
    services: BTreeMap<String, Arc<Fragment>>,
    /// Elements of the `nodeport-ips` set.
    pub nodeport_ips: BTreeSet<Ipv4Addr>,
    /// Every endpoint address (elements of the hairpin set).
    pub endpoint_ips: BTreeSet<Ipv4Addr>,
    /// The local-traffic CIDR and masquerade-all flag baked into the base chains.
    base: (Option<String>, bool),
}

fn svc_chain(sp: &ServicePort) -> String {
    format!("svc-{}", sp.id())
}

fn local_chain(sp: &ServicePort) -> String {
    format!("local-{}", sp.id())
}

fn ext_chain(sp: &ServicePort) -> String {
    format!("ext-{}", sp.id())
}

fn ep_suffix(sp: &ServicePort, ep: &Endpoint) -> String {
    format!("{}__{}/{}", sp.id(), ep.ip, ep.port)
}

/// Up to this many endpoints a service picks one with a cascade of rules (rule `i` matches
/// with probability 1/(n-i): uniform), above it with one rule and an anonymous numgen map.
/// Rules are much cheaper to create, replace and delete than the kernel set behind every
/// anonymous map (measured: a full load of 1,000 services with 10 endpoints takes about half
/// the kernel time); a new connection to a large service still costs one lookup.
pub const CASCADE_MAX: usize = 32;

/// Rules choosing one of `actions` uniformly at random (each action a statement ending the
/// rule's evaluation: a DNAT or a goto); `map` renders the single-rule form for many.
fn pick_one(actions: &[String], map: impl FnOnce() -> String, out: &mut Vec<String>) {
    let n = actions.len();
    if n > CASCADE_MAX {
        out.push(map());
        return;
    }
    for (i, action) in actions.iter().enumerate() {
        if i + 1 == n {
            out.push(action.clone());
        } else {
            out.push(format!("numgen random mod {} == 0 {action}", n - i));
        }
    }
}

/// A balancing chain's rules. Without affinity the rules DNAT straight to a randomly picked
/// endpoint; with affinity, lookups in the per-endpoint affinity sets come first and a random
/// endpoint chain (which records the client) is picked otherwise.
fn balance(sp: &ServicePort, eps: &[&Endpoint], out: &mut Vec<String>) {
    let proto = sp.protocol.nft();
    if sp.affinity_timeout.is_none() {
        let actions: Vec<String> = eps
            .iter()
            .map(|ep| format!("meta l4proto {proto} dnat to {}:{}", ep.ip, ep.port))
            .collect();
        let map = || {
            let mut r = format!(
                "meta l4proto {proto} dnat to numgen random mod {} map {{ ",
                eps.len()
            );
            for (i, ep) in eps.iter().enumerate() {
                if i > 0 {
                    r.push_str(", ");
                }
                let _ = write!(r, "{i} : {} . {}", ep.ip, ep.port);
            }
            r.push_str(" }");
            r
        };
        pick_one(&actions, map, out);
        return;
    }
    for ep in eps {
        let s = ep_suffix(sp, ep);
        out.push(format!("ip saddr @aff-{s} goto ep-{s}"));
    }
    let actions: Vec<String> = eps
        .iter()
        .map(|ep| format!("goto ep-{}", ep_suffix(sp, ep)))
        .collect();
    let map = || {
        let mut r = format!("numgen random mod {} vmap {{ ", eps.len());
        for (i, a) in actions.iter().enumerate() {
            if i > 0 {
                r.push_str(", ");
            }
            let _ = write!(r, "{i} : {a}");
        }
        r.push_str(" }");
        r
    };
    pick_one(&actions, map, out);
}

impl Fragment {
    /// Generates the fragment of one service port.
    pub fn new(cfg: &RuleConfig, sp: &ServicePort) -> Fragment {
        let mut f = Fragment {
            port: sp.clone(),
            chains: BTreeMap::new(),
            affinity_sets: BTreeMap::new(),
            elements: Vec::new(),
            endpoint_ips: BTreeSet::new(),
        };
        let proto = sp.protocol.nft();
        let cluster = sp.cluster_endpoints();
        let local = sp.local_endpoints();
        let key = |ip: &Ipv4Addr, port: u16| format!("{ip} . {proto} . {port}");
        let np_key = |port: u16| format!("{proto} . {port}");

        for ep in cluster.iter().chain(local.iter()) {
            f.endpoint_ips.insert(ep.ip);
        }
        // with affinity: a chain per endpoint that may be chosen, recording the client
        if let Some(timeout) = sp.affinity_timeout {
            let mut used: BTreeMap<String, &Endpoint> = BTreeMap::new();
            for ep in cluster.iter().chain(local.iter()) {
                used.insert(ep_suffix(sp, ep), ep);
            }
            for (suffix, ep) in &used {
                f.affinity_sets.insert(format!("aff-{suffix}"), timeout);
                let rules = vec![
                    format!("update @aff-{suffix} {{ ip saddr }}"),
                    format!("meta l4proto {proto} dnat to {}:{}", ep.ip, ep.port),
                ];
                f.chains.insert(format!("ep-{suffix}"), rules);
            }
        }

        // the chain cluster traffic goes through
        if !cluster.is_empty() {
            let mut rules = Vec::new();
            for ip in &sp.cluster_ips {
                if cfg.masquerade_all {
                    rules.push(format!(
                        "ip daddr {ip} {proto} dport {} jump mark-for-masquerade",
                        sp.port
                    ));
                } else if let Some(cidr) = &cfg.local_cidr {
                    rules.push(format!(
                        "ip daddr {ip} {proto} dport {} ip saddr != {cidr} jump mark-for-masquerade",
                        sp.port
                    ));
                }
            }
            balance(sp, &cluster, &mut rules);
            f.chains.insert(svc_chain(sp), rules);
        }
        let need_local =
            (sp.internal_local || (sp.external_local && sp.has_external())) && !local.is_empty();
        if need_local {
            let mut rules = Vec::new();
            balance(sp, &local, &mut rules);
            f.chains.insert(local_chain(sp), rules);
        }

        // cluster IPs
        let internal_target = if sp.internal_local {
            (!local.is_empty()).then(|| local_chain(sp))
        } else {
            (!cluster.is_empty()).then(|| svc_chain(sp))
        };
        for ip in &sp.cluster_ips {
            match &internal_target {
                Some(chain) => {
                    f.elements
                        .push(("service-ips", key(ip, sp.port), format!("goto {chain}")));
                }
                None => {
                    // no endpoints: reject; endpoints elsewhere only (Local): drop
                    let v = if cluster.is_empty() {
                        "goto reject-chain"
                    } else {
                        "drop"
                    };
                    f.elements
                        .push(("no-endpoint-services", key(ip, sp.port), v.to_string()));
                }
            }
        }

        // external entry points: node port, external IPs, LoadBalancer IPs
        if !sp.has_external() {
            return f;
        }
        if !cluster.is_empty() {
            let mut rules = Vec::new();
            if sp.external_local {
                // pods and the node itself reach the service as cluster traffic (upstream
                // short-circuits them); the client IP of everything else is preserved, and
                // without endpoints on this node it is dropped
                if let Some(cidr) = &cfg.local_cidr {
                    rules.push(format!("ip saddr {cidr} goto {}", svc_chain(sp)));
                }
                rules.push("fib saddr type local jump mark-for-masquerade".to_string());
                rules.push(format!("fib saddr type local goto {}", svc_chain(sp)));
                if local.is_empty() {
                    rules.push("drop".to_string());
                } else {
                    rules.push(format!("goto {}", local_chain(sp)));
                }
            } else {
                rules.push("jump mark-for-masquerade".to_string());
                rules.push(format!("goto {}", svc_chain(sp)));
            }
            f.chains.insert(ext_chain(sp), rules);
            for ip in &sp.external_ips {
                f.elements.push((
                    "service-ips",
                    key(ip, sp.port),
                    format!("goto {}", ext_chain(sp)),
                ));
            }
            if let Some(np) = sp.node_port {
                f.elements.push((
                    "service-nodeports",
                    np_key(np),
                    format!("goto {}", ext_chain(sp)),
                ));
            }
        } else {
            for ip in &sp.external_ips {
                f.elements.push((
                    "no-endpoint-services",
                    key(ip, sp.port),
                    "goto reject-chain".to_string(),
                ));
            }
            if let Some(np) = sp.node_port {
                f.elements.push((
                    "no-endpoint-nodeports",
                    np_key(np),
                    "goto reject-chain".to_string(),
                ));
            }
        }
        f
    }
}

/// Map name -> key -> verdict, borrowed from a ruleset's fragments.
pub type Elements<'a> = BTreeMap<&'static str, BTreeMap<&'a str, &'a str>>;

impl Ruleset {
    /// The ruleset for `ports` (every service port the proxy handles).
    pub fn build(cfg: &RuleConfig, ports: &[ServicePort]) -> Ruleset {
        Ruleset::build_from(cfg, ports, None)
    }

    /// The ruleset for `ports`, reusing the fragments of `prev` for ports that did not change
    /// (a sync after one endpoint change generates one service's rules, not all of them).
    pub fn build_from(cfg: &RuleConfig, ports: &[ServicePort], prev: Option<&Ruleset>) -> Ruleset {
        let base = (cfg.local_cidr.clone(), cfg.masquerade_all);
        // fragments depend on the base settings: reuse them only while those are the same
        let prev = prev.filter(|p| p.base == base);
        let mut services = BTreeMap::new();
        for sp in ports {
            let id = sp.id();
            let frag = match prev.and_then(|p| p.services.get(&id)) {
                Some(f) if f.port == *sp => f.clone(),
                _ => Arc::new(Fragment::new(cfg, sp)),
            };
            services.insert(id, frag);
        }
        let endpoint_ips = services
            .values()
            .flat_map(|f| f.endpoint_ips.iter().copied())
            .collect();
        Ruleset {
            services,
            nodeport_ips: cfg.node_ips.iter().copied().collect(),
            endpoint_ips,
            base,
        }
    }

    /// The fragments, by service port id.
    pub fn fragments(&self) -> impl Iterator<Item = &Fragment> {
        self.services.values().map(|f| f.as_ref())
    }

    /// Every per-service and per-endpoint chain: name -> rules.
    pub fn chains(&self) -> BTreeMap<&str, &Vec<String>> {
        self.fragments()
            .flat_map(|f| f.chains.iter().map(|(n, r)| (n.as_str(), r)))
            .collect()
    }

    /// Every affinity set: name -> timeout in seconds.
    pub fn affinity_sets(&self) -> BTreeMap<&str, u32> {
        self.fragments()
            .flat_map(|f| f.affinity_sets.iter().map(|(n, t)| (n.as_str(), *t)))
            .collect()
    }

    /// The verdict map elements (when two services claim one key, as two services listing one
    /// external IP and port, the one whose id sorts last wins).
    pub fn maps(&self) -> Elements<'_> {
        let mut maps: Elements = MAPS.iter().map(|m| (*m, BTreeMap::new())).collect();
        for f in self.fragments() {
            for (m, k, v) in &f.elements {
                maps.entry(m).or_default().insert(k.as_str(), v.as_str());
            }
        }
        maps
    }

    /// A transaction that atomically replaces the whole table with this ruleset (creating it
    /// when missing): `add` + `delete` + the full table in one `nft -f` batch, so packets never
    /// see a missing or half-built table.
    pub fn render_full(&self, table: &str) -> String {
        let chains = self.chains();
        let mut s = String::with_capacity(4096 + chains.len() * 200 + self.endpoint_ips.len() * 32);
        let _ = writeln!(s, "add table ip {table}");
        let _ = writeln!(s, "delete table ip {table}");
        let _ = writeln!(s, "table ip {table} {{");
        let _ = writeln!(
            s,
            "  comment \"rules for Kubernetes services (oxkube proxy)\""
        );
        let maps = self.maps();
        for (m, key_type) in MAP_TYPES {
            let _ = writeln!(s, "  map {m} {{");
            let _ = writeln!(s, "    type {key_type} : verdict");
            if let Some(elems) = maps.get(m).filter(|e| !e.is_empty()) {
                s.push_str("    elements = { ");
                for (i, (k, v)) in elems.iter().enumerate() {
                    if i > 0 {
                        s.push_str(",\n      ");
                    }
                    let _ = write!(s, "{k} : {v}");
                }
                s.push_str(" }\n");
            }
            s.push_str("  }\n");
        }
        s.push_str("  set nodeport-ips {\n    type ipv4_addr\n");
        if !self.nodeport_ips.is_empty() {
            let ips: Vec<String> = self.nodeport_ips.iter().map(|i| i.to_string()).collect();
            let _ = writeln!(s, "    elements = {{ {} }}", ips.join(", "));
        }
        s.push_str("  }\n");
        let _ = writeln!(s, "  set {HAIRPIN_SET} {{\n    type ipv4_addr . ipv4_addr");
        if !self.endpoint_ips.is_empty() {
            s.push_str("    elements = { ");
            for (i, ip) in self.endpoint_ips.iter().enumerate() {
                if i > 0 {
                    s.push_str(",\n      ");
                }
                let _ = write!(s, "{ip} . {ip}");
            }
            s.push_str(" }\n");
        }
        s.push_str("  }\n");
        for (name, timeout) in self.affinity_sets() {
            let _ = writeln!(s, "  set {name} {{ {} }}", affinity_set_body(timeout));
        }
        for (name, rules) in base_chains(MASQUERADE_MARK) {
            let _ = writeln!(s, "  chain {name} {{");
            for r in rules {
                let _ = writeln!(s, "    {r}");
            }
            s.push_str("  }\n");
        }
        for (name, rules) in chains {
            let _ = writeln!(s, "  chain {name} {{");
            for r in rules {
                let _ = writeln!(s, "    {r}");
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }

    /// The transaction turning the table from `old` (what the kernel has) into `self`: only the
    /// chains of changed service ports are flushed and refilled, only changed map and set
    /// elements deleted and added. None when the change needs a full replace (the base chains
    /// changed, or an affinity set's timeout).
    pub fn render_diff(&self, old: &Ruleset, table: &str) -> Option<String> {
        if self.base != old.base {
            return None;
        }
        // (old, new) fragments of the service ports that changed
        let mut changed: Vec<(Option<&Fragment>, Option<&Fragment>)> = Vec::new();
        for (id, new) in &self.services {
            match old.services.get(id) {
                Some(o) if Arc::ptr_eq(o, new) || o == new => {}
                o => changed.push((o.map(|o| o.as_ref()), Some(new.as_ref()))),
            }
        }
        for (id, o) in &old.services {
            if !self.services.contains_key(id) {
                changed.push((Some(o.as_ref()), None));
            }
        }
        let (empty_chains, empty_sets) = (BTreeMap::new(), BTreeMap::new());
        fn pick<'a, T>(f: &Option<&'a Fragment>, get: fn(&Fragment) -> &T, empty: &'a T) -> &'a T {
            match f {
                Some(f) => get(f),
                None => empty,
            }
        }
        let chains_of = |f| pick(f, |f| &f.chains, &empty_chains);
        let sets_of = |f| pick(f, |f| &f.affinity_sets, &empty_sets);

        let mut s = String::new();
        // new sets (an existing set with another timeout needs a replace: they are referenced)
        for (o, n) in &changed {
            let old_sets = sets_of(o);
            for (name, timeout) in sets_of(n) {
                match old_sets.get(name) {
                    None => {
                        let _ = writeln!(
                            s,
                            "add set ip {table} {name} {{ {} }}",
                            affinity_set_body(*timeout)
                        );
                    }
                    Some(t) if t != timeout => return None,
                    Some(_) => {}
                }
            }
        }
        for (o, n) in &changed {
            let old_chains = chains_of(o);
            for name in chains_of(n).keys() {
                if !old_chains.contains_key(name) {
                    let _ = writeln!(s, "add chain ip {table} {name}");
                }
            }
        }
        for (o, n) in &changed {
            let old_chains = chains_of(o);
            for (name, rules) in chains_of(n) {
                match old_chains.get(name) {
                    Some(old_rules) if old_rules == rules => continue,
                    Some(_) => {
                        let _ = writeln!(s, "flush chain ip {table} {name}");
                    }
                    None => {}
                }
                for r in rules {
                    let _ = writeln!(s, "add rule ip {table} {name} {r}");
                }
            }
        }
        if !changed.is_empty() {
            let (new_maps, old_maps) = (self.maps(), old.maps());
            for m in MAPS {
                let empty = BTreeMap::new();
                let new = new_maps.get(m).unwrap_or(&empty);
                let old = old_maps.get(m).unwrap_or(&empty);
                let gone: Vec<&str> = old
                    .iter()
                    .filter(|(k, v)| new.get(*k) != Some(*v))
                    .map(|(k, _)| *k)
                    .collect();
                if !gone.is_empty() {
                    let _ = writeln!(s, "delete element ip {table} {m} {{ {} }}", gone.join(", "));
                }
                let added: Vec<String> = new
                    .iter()
                    .filter(|(k, v)| old.get(*k) != Some(*v))
                    .map(|(k, v)| format!("{k} : {v}"))
                    .collect();
                if !added.is_empty() {
                    let _ = writeln!(s, "add element ip {table} {m} {{ {} }}", added.join(", "));
                }
            }
        }
        let pairs = |ips: Vec<&Ipv4Addr>| -> Vec<String> {
            ips.iter().map(|ip| format!("{ip} . {ip}")).collect()
        };
        for (set, new, old, render) in [
            (
                "nodeport-ips",
                &self.nodeport_ips,
                &old.nodeport_ips,
                &(|ips: Vec<&Ipv4Addr>| ips.iter().map(|i| i.to_string()).collect())
                    as &dyn Fn(Vec<&Ipv4Addr>) -> Vec<String>,
            ),
            (HAIRPIN_SET, &self.endpoint_ips, &old.endpoint_ips, &pairs),
        ] {
            let gone = render(old.difference(new).collect());
            if !gone.is_empty() {
                let _ = writeln!(
                    s,
                    "delete element ip {table} {set} {{ {} }}",
                    gone.join(", ")
                );
            }
            let added = render(new.difference(old).collect());
            if !added.is_empty() {
                let _ = writeln!(s, "add element ip {table} {set} {{ {} }}", added.join(", "));
            }
        }
        // removed chains: empty them all first (they may reference each other), then delete
        let mut removed: Vec<&String> = Vec::new();
        for (o, n) in &changed {
            let new_chains = chains_of(n);
            removed.extend(chains_of(o).keys().filter(|c| !new_chains.contains_key(*c)));
        }
        for name in &removed {
            let _ = writeln!(s, "flush chain ip {table} {name}");
        }
        for name in &removed {
            let _ = writeln!(s, "delete chain ip {table} {name}");
        }
        for (o, n) in &changed {
            let new_sets = sets_of(n);
            for name in sets_of(o).keys() {
                if !new_sets.contains_key(name) {
                    let _ = writeln!(s, "delete set ip {table} {name}");
                }
            }
        }
        Some(s)
    }
}

impl Ruleset {
    /// The periodic full resync of a table this proxy programmed (`old` is what it applied):
    /// every chain is flushed and refilled and every map and set refilled in one transaction,
    /// without deleting the table. Unlike [`Ruleset::render_full`] the affinity sets keep their
    /// clients, and rules changed behind the proxy's back are put right. Chains and sets of
    /// `old` that are no longer wanted are deleted. None when an affinity set's timeout changed
    /// (the set must be recreated: a replace).
    pub fn render_refresh(&self, old: &Ruleset, table: &str) -> Option<String> {
        let old_sets = old.affinity_sets();
        let new_sets = self.affinity_sets();
        for (name, timeout) in &new_sets {
            if old_sets.get(name).is_some_and(|t| t != timeout) {
                return None;
            }
        }
        let chains = self.chains();
        let mut s = String::with_capacity(4096 + chains.len() * 300 + self.endpoint_ips.len() * 32);
        let _ = writeln!(s, "add table ip {table}");
        for (m, key_type) in MAP_TYPES {
            let _ = writeln!(s, "add map ip {table} {m} {{ type {key_type} : verdict; }}");
        }
        let _ = writeln!(s, "add set ip {table} nodeport-ips {{ type ipv4_addr; }}");
        let _ = writeln!(
            s,
            "add set ip {table} {HAIRPIN_SET} {{ type ipv4_addr . ipv4_addr; }}"
        );
        for (name, timeout) in &new_sets {
            let _ = writeln!(
                s,
                "add set ip {table} {name} {{ {} }}",
                affinity_set_body(*timeout)
            );
        }
        let base = base_chains(MASQUERADE_MARK);
        for (name, rules) in &base {
            match rules.first().filter(|r| r.starts_with("type ")) {
                Some(hook) => {
                    let _ = writeln!(s, "add chain ip {table} {name} {{ {hook} }}");
                }
                None => {
                    let _ = writeln!(s, "add chain ip {table} {name}");
                }
            }
        }
        for name in chains.keys() {
            let _ = writeln!(s, "add chain ip {table} {name}");
        }
        // maps and sets first: their old elements may name chains deleted below
        let maps = self.maps();
        for (m, _) in MAP_TYPES {
            let _ = writeln!(s, "flush map ip {table} {m}");
            if let Some(elems) = maps.get(m).filter(|e| !e.is_empty()) {
                let _ = write!(s, "add element ip {table} {m} {{ ");
                for (i, (k, v)) in elems.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    let _ = write!(s, "{k} : {v}");
                }
                s.push_str(" }\n");
            }
        }
        for (set, elems) in [
            (
                "nodeport-ips",
                self.nodeport_ips
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>(),
            ),
            (
                HAIRPIN_SET,
                self.endpoint_ips
                    .iter()
                    .map(|i| format!("{i} . {i}"))
                    .collect(),
            ),
        ] {
            let _ = writeln!(s, "flush set ip {table} {set}");
            if !elems.is_empty() {
                let _ = writeln!(s, "add element ip {table} {set} {{ {} }}", elems.join(", "));
            }
        }
        let base_rules = base.iter().map(|(n, r)| (*n, r));
        let service_rules = chains.iter().map(|(n, r)| (*n, *r));
        for (name, rules) in base_rules.chain(service_rules) {
            let _ = writeln!(s, "flush chain ip {table} {name}");
            for r in rules.iter().filter(|r| !r.starts_with("type ")) {
                let _ = writeln!(s, "add rule ip {table} {name} {r}");
            }
        }
        let old_chains = old.chains();
        let removed: Vec<&&str> = old_chains
            .keys()
            .filter(|c| !chains.contains_key(**c))
            .collect();
        for name in &removed {
            let _ = writeln!(s, "flush chain ip {table} {name}");
        }
        for name in &removed {
            let _ = writeln!(s, "delete chain ip {table} {name}");
        }
        for name in old_sets.keys() {
            if !new_sets.contains_key(name) {
                let _ = writeln!(s, "delete set ip {table} {name}");
            }
        }
        Some(s)
    }
}

/// The verdict maps and their key types.
const MAP_TYPES: [(&str, &str); 4] = [
    ("service-ips", "ipv4_addr . inet_proto . inet_service"),
    ("service-nodeports", "inet_proto . inet_service"),
    (
        "no-endpoint-services",
        "ipv4_addr . inet_proto . inet_service",
    ),
    ("no-endpoint-nodeports", "inet_proto . inet_service"),
];

fn affinity_set_body(timeout: u32) -> String {
    format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;")
}

/// The fixed chains: hooks, the masquerade mark, the lookups into the maps and the rejects.
fn base_chains(mark: u32) -> Vec<(&'static str, Vec<String>)> {
    let v = |rules: &[&str]| rules.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        // filter chains run before DNAT (-100): they only see traffic to services that have
        // no usable endpoints
        (
            "filter-input",
            v(&[
                "type filter hook input priority -110; policy accept;",
                "ct state new jump nodeport-endpoints-check",
                "ct state new jump service-endpoints-check",
            ]),
        ),
        (
            "filter-forward",
            v(&[
                "type filter hook forward priority -110; policy accept;",
                "ct state new jump service-endpoints-check",
            ]),
        ),
        (
            "filter-output",
            v(&[
                "type filter hook output priority -110; policy accept;",
                "ct state new jump service-endpoints-check",
                "ct state new jump nodeport-endpoints-check",
            ]),
        ),
        (
            "nat-prerouting",
            v(&[
                "type nat hook prerouting priority -100; policy accept;",
                "jump services",
            ]),
        ),
        (
            "nat-output",
            v(&[
                "type nat hook output priority -100; policy accept;",
                "jump services",
            ]),
        ),
        (
            "nat-postrouting",
            v(&[
                "type nat hook postrouting priority 100; policy accept;",
                "jump masquerading",
            ]),
        ),
        (
            "service-endpoints-check",
            v(&["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]),
        ),
        (
            "nodeport-endpoints-check",
            v(&["ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"]),
        ),
        (
            "services",
            v(&[
                "ip daddr . meta l4proto . th dport vmap @service-ips",
                "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
            ]),
        ),
        (
            "mark-for-masquerade",
            vec![format!("meta mark set meta mark | {mark:#x}")],
        ),
        (
            "masquerading",
            vec![
                format!(
                    "ct status dnat ip saddr . ip daddr @{HAIRPIN_SET} jump mark-for-masquerade"
                ),
                format!("meta mark & {mark:#x} == 0 return"),
                format!("meta mark set meta mark ^ {mark:#x}"),
                "masquerade fully-random".to_string(),
            ],
        ),
        ("reject-chain", v(&["reject"])),
    ]
}

/// A conntrack deletion the proxy asks for: UDP flows to `orig_dst:port` (or to any address on a
/// node port when `orig_dst` is None) DNATed to `nat_dst` (any when None).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConntrackFlush {
    pub orig_dst: Option<Ipv4Addr>,
    pub port: u16,
    pub nat_dst: Option<Ipv4Addr>,
}

/// UDP conntrack entries made stale between two states (upstream's conntrack cleanup): flows
/// to endpoints that are no longer used, and flows of services that had no endpoints (their
/// packets were rejected, and the entries would keep them from being DNATed now).
pub fn stale_udp_flows(old: &[ServicePort], new: &[ServicePort]) -> Vec<ConntrackFlush> {
    // only UDP ports matter: index those alone (a sync passes every port of the cluster)
    let udp = crate::model::Protocol::Udp;
    let key = |sp: &'_ ServicePort| (sp.namespace.clone(), sp.name.clone(), sp.port);
    let old_by: BTreeMap<_, &ServicePort> = old
        .iter()
        .filter(|sp| sp.protocol == udp)
        .map(|sp| (key(sp), sp))
        .collect();
    let mut out = BTreeSet::new();
    let entry_points = |sp: &ServicePort| -> Vec<(Option<Ipv4Addr>, u16)> {
        let mut v: Vec<(Option<Ipv4Addr>, u16)> = sp
            .cluster_ips
            .iter()
            .chain(sp.external_ips.iter())
            .map(|ip| (Some(*ip), sp.port))
            .collect();
        if let Some(np) = sp.node_port {
            v.push((None, np));
        }
        v
    };
    let new_by: BTreeMap<_, &ServicePort> = new
        .iter()
        .filter(|sp| sp.protocol == udp)
        .map(|sp| (key(sp), sp))
        .collect();
    for (k, o) in &old_by {
        let old_eps: BTreeSet<Ipv4Addr> = o.cluster_endpoints().iter().map(|e| e.ip).collect();
        let new_eps: BTreeSet<Ipv4Addr> = new_by
            .get(k)
            .map(|n| n.cluster_endpoints().iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        for ip in old_eps.difference(&new_eps) {
            for (dst, port) in entry_points(o) {
                out.insert(ConntrackFlush {
                    orig_dst: dst,
                    port,
                    nat_dst: Some(*ip),
                });
            }
        }
    }
    for (k, n) in &new_by {
        if n.cluster_endpoints().is_empty() {
            continue;
        }
        let had = old_by
            .get(k)
            .is_some_and(|o| !o.cluster_endpoints().is_empty());
        if !had {
            for (dst, port) in entry_points(n) {
                out.insert(ConntrackFlush {
                    orig_dst: dst,
                    port,
                    nat_dst: None,
                });
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests;
