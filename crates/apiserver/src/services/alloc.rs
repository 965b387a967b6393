//! Service ClusterIP and NodePort assignment, sans-IO: the service and node-port ranges, what
//! a stored Service holds, and the plan (values written into the Service, claims to take and
//! to release) for a create or an update, after upstream's REST allocators.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use apimachinery::meta;
use apimachinery::status::FieldError;
use serde_json::{json, Value};

/// Store keys of cluster IP claims: `<prefix><ip>`, value the owning Service's identity. Under
/// `/registry/` (so the watch cache sees every revision) but with one path segment only (so
/// it caches none of them).
pub const CLUSTER_IP_PREFIX: &str = "/registry/ranges/serviceip-";
/// Store keys of node port claims: `<prefix><port>`.
pub const NODE_PORT_PREFIX: &str = "/registry/ranges/servicenodeport-";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("invalid service CIDR {0:?}: {1}")]
    Cidr(String, &'static str),
    #[error("invalid node port range {0:?}: {1}")]
    Ports(String, &'static str),
}

/// An IPv4 service CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    base: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Parse `a.b.c.d/n` (host bits are masked off, as Go's ParseCIDR does).
    pub fn parse(s: &str) -> Result<Ipv4Cidr, RangeError> {
        let err = |m| RangeError::Cidr(s.to_string(), m);
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| err("missing prefix length"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| err("only IPv4 service CIDRs are supported"))?;
        let prefix: u8 = len.parse().map_err(|_| err("bad prefix length"))?;
        if prefix > 30 {
            return Err(err(
                "the range must hold at least two addresses (at most /30)",
            ));
        }
        if prefix < 8 {
            return Err(err("the range is too large (at least /8)"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Ipv4Cidr {
            base: u32::from(ip) & mask,
            prefix,
        })
    }

    fn first_u32(&self) -> u32 {
        self.base + 1
    }

    /// How many addresses can be assigned (network and broadcast addresses excluded).
    pub fn count(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The first assignable address: the `kubernetes` Service's IP.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first_u32())
    }

    /// The assignable address at `offset` (0 = first).
    pub fn nth(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first_u32() + offset)
    }

    /// Whether `ip` is an assignable address of the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v >= self.first_u32() && v - self.first_u32() < self.count()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// A node port range, inclusive (`30000-32767`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// Parse `first-last`, `first+count` or a single port (upstream's `net.ParsePortRange`).
    pub fn parse(s: &str) -> Result<PortRange, RangeError> {
        let err = |m| RangeError::Ports(s.to_string(), m);
        let num = |v: &str| {
            v.trim()
                .parse::<u16>()
                .map_err(|_| err("not a port number"))
        };
        let (first, last) = if let Some((a, b)) = s.split_once('-') {
            (num(a)?, num(b)?)
        } else if let Some((a, n)) = s.split_once('+') {
            let a = num(a)?;
            (a, a.checked_add(num(n)?).ok_or_else(|| err("too large"))?)
        } else {
            let a = num(s)?;
            (a, a)
        };
        if first == 0 || last < first {
            return Err(err("the end must not be below the start, ports start at 1"));
        }
        Ok(PortRange { first, last })
    }

    pub fn count(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    pub fn contains(&self, p: i64) -> bool {
        p >= i64::from(self.first) && p <= i64::from(self.last)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// The ranges Services get addresses and node ports from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cidr: Ipv4Cidr,
    pub node_ports: PortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cidr: Ipv4Cidr::parse("10.43.0.0/16").expect("valid default"),
            node_ports: PortRange {
                first: 30000,
                last: 32767,
            },
        }
    }
}

/// One allocated value, kept in the store under its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    ClusterIp(Ipv4Addr),
    NodePort(u16),
}

impl Claim {
    pub fn key(&self) -> String {
        match self {
            Claim::ClusterIp(ip) => format!("{CLUSTER_IP_PREFIX}{ip}"),
            Claim::NodePort(p) => format!("{NODE_PORT_PREFIX}{p}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Claim> {
        if let Some(ip) = key.strip_prefix(CLUSTER_IP_PREFIX) {
            return ip.parse().ok().map(Claim::ClusterIp);
        }
        key.strip_prefix(NODE_PORT_PREFIX)
            .and_then(|p| p.parse().ok())
            .map(Claim::NodePort)
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether the service type is given node ports for every port (upstream
/// `shouldAllocateNodePorts`).
fn allocates_node_ports(spec: &Value) -> bool {
    match s(spec, "type") {
        "NodePort" => true,
        "LoadBalancer" => {
            spec.get("allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

fn needs_health_check_port(spec: &Value) -> bool {
    s(spec, "type") == "LoadBalancer" && s(spec, "externalTrafficPolicy") == "Local"
}

/// The values a stored Service holds.
pub fn held(svc: &Value) -> BTreeSet<Claim> {
    let null = Value::Null;
    let spec = svc.get("spec").unwrap_or(&null);
    let mut out = BTreeSet::new();
    let ty = s(spec, "type");
    if ty != "ExternalName" {
        let ips: Vec<&str> = match spec.get("clusterIPs").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![s(spec, "clusterIP")],
        };
        for ip in ips {
            if let Ok(ip) = ip.parse::<Ipv4Addr>() {
                out.insert(Claim::ClusterIp(ip));
            }
        }
    }
    if matches!(ty, "NodePort" | "LoadBalancer") {
        for p in spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Ok(np) = u16::try_from(int(p, "nodePort")) {
                if np != 0 {
                    out.insert(Claim::NodePort(np));
                }
            }
        }
        if needs_health_check_port(spec) {
            if let Ok(np) = u16::try_from(int(spec, "healthCheckNodePort")) {
                if np != 0 {
                    out.insert(Claim::NodePort(np));
                }
            }
        }
    }
    out
}

/// What a write of a Service takes and gives back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Values the service holds now and did not before (their keys must be free).
    pub claims: BTreeSet<Claim>,
    /// Values the service held before and no longer does.
    pub releases: BTreeSet<Claim>,
}

#[derive(Debug, PartialEq)]
pub enum AssignError {
    /// The request asks for something it cannot have (422).
    Invalid(Vec<FieldError>),
    /// No free value is left (500, upstream's "range is full").
    Full(String),
}

/// A source of randomness: a number below the bound.
pub type Rng<'a> = &'a mut dyn FnMut(u32) -> u32;

/// Pick a free offset in `0..count`, preferring the upper band (upstream's allocators leave
/// the lowest `min(max(16, count/16), 256)` values to static requests), starting at a random
/// place and scanning forward. `skip` offsets are never handed out.
fn pick(count: u32, skip: u32, rng: Rng<'_>, free: &dyn Fn(u32) -> bool) -> Option<u32> {
    let band = (count / 16).clamp(16, 256).min(count.saturating_sub(skip));
    let lower = skip..(skip + band).min(count);
    let upper = lower.end..count;
    for r in [upper, lower] {
        let n = r.end.saturating_sub(r.start);
        if n == 0 {
            continue;
        }
        let start = rng(n);
        for i in 0..n {
            let off = r.start + (start + i) % n;
            if free(off) {
                return Some(off);
            }
        }
    }
    None
}

/// Assign the cluster IP(s), IP families, node ports and health-check node port of a Service
/// being created (`old` None) or updated, after validation. Values the old object held are
/// kept; requested values must be in range and not `taken` by another Service.
pub fn assign(
    svc: &mut Value,
    old: Option<&Value>,
    ranges: &ServiceRanges,
    taken: &dyn Fn(&Claim) -> bool,
    rng: Rng<'_>,
) -> Result<Plan, AssignError> {
    let old_held = old.map(held).unwrap_or_default();
    let unavailable = |c: &Claim| taken(c) && !old_held.contains(c);
    let Some(spec) = svc.get_mut("spec").filter(|v| v.is_object()) else {
        return Ok(Plan::default());
    };
    let ty = s(spec, "type").to_string();
    let mut errs = Vec::new();
    let mut claimed: BTreeSet<Claim> = BTreeSet::new();
    // cluster IPs and families
    if ty != "ExternalName" {
        let ip = s(spec, "clusterIP").to_string();
        let headless = ip == "None";
        let families: Vec<String> = spec
            .get("ipFamilies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        for (i, f) in families.iter().enumerate() {
            if f != "IPv4" {
                errs.push(FieldError::invalid(
                    format!("spec.ipFamilies[{i}]"),
                    &json!(f),
                    format!("{f} is not configured on this cluster"),
                ));
            }
        }
        let selectorless = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        if s(spec, "ipFamilyPolicy") == "RequireDualStack" && !(headless && selectorless) {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                &json!("RequireDualStack"),
                "this cluster is not configured for dual-stack services",
            ));
        }
        if families.is_empty() {
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        if headless {
            spec["clusterIPs"] = json!(["None"]);
        } else if ip.is_empty() {
            let first = ranges.cidr.first();
            let free = |off: u32| {
                let c = Claim::ClusterIp(ranges.cidr.nth(off));
                !unavailable(&c)
            };
            // the first address is the `kubernetes` Service's: only given on request
            match pick(ranges.cidr.count(), 1, rng, &free) {
                Some(off) => {
                    let a = ranges.cidr.nth(off);
                    debug_assert_ne!(a, first);
                    spec["clusterIP"] = json!(a.to_string());
                    spec["clusterIPs"] = json!([a.to_string()]);
                    claimed.insert(Claim::ClusterIp(a));
                }
                None => {
                    return Err(AssignError::Full(
                        "failed to allocate a serviceIP: range is full".into(),
                    ))
                }
            }
        } else {
            let ips: Vec<Value> = spec
                .get("clusterIPs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![json!(ip)]);
            let fail = |detail: String| {
                meta::invalid_go(
                    "spec.clusterIPs",
                    &json!(ips),
                    format!("failed to allocate IP {ip}: {detail}"),
                )
            };
            let not_in_range = || {
                format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    ranges.cidr
                )
            };
            match ip.parse::<Ipv4Addr>() {
                Ok(a) if !ranges.cidr.contains(a) && !old_held.contains(&Claim::ClusterIp(a)) => {
                    errs.push(fail(not_in_range()))
                }
                Ok(a) if unavailable(&Claim::ClusterIp(a)) => {
                    errs.push(fail("provided IP is already allocated".into()))
                }
                Ok(a) => {
                    claimed.insert(Claim::ClusterIp(a));
                }
                Err(_) => errs.push(fail(not_in_range())),
            }
            if ips.len() > 1 {
                errs.push(meta::invalid_go(
                    "spec.clusterIPs",
                    &json!(ips),
                    "this cluster is not configured for dual-stack services",
                ));
            }
            spec["clusterIPs"] = json!([ip]);
        }
    }
    // node ports
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        let all = allocates_node_ports(spec);
        let range = ranges.node_ports;
        let mut by_port: BTreeMap<i64, u16> = BTreeMap::new();
        let ports = spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        // requested values first, so that a dynamic port of the same number shares them
        let mut ports = ports;
        for (i, p) in ports.iter().enumerate() {
            let np = int(p, "nodePort");
            if np == 0 {
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            let c = u16::try_from(np).ok().map(Claim::NodePort);
            let err = match c {
                Some(c) if claimed.contains(&c) || old_held.contains(&c) => None,
                Some(c) if range.contains(np) && !unavailable(&c) => None,
                Some(_) if range.contains(np) => {
                    Some("provided port is already allocated".to_string())
                }
                _ => Some(format!(
                    "provided port is not in the valid range. The range of valid ports is {range}"
                )),
            };
            match (err, c) {
                (Some(e), _) => errs.push(FieldError::invalid(field, &json!(np), e)),
                (None, Some(c)) => {
                    claimed.insert(c);
                    by_port.entry(int(p, "port")).or_insert(np as u16);
                }
                (None, None) => {}
            }
        }
        if all {
            for p in ports.iter_mut() {
                if int(p, "nodePort") != 0 {
                    continue;
                }
                let port = int(p, "port");
                let np = match by_port.get(&port) {
                    Some(np) => *np,
                    None => {
                        let free = |off: u32| {
                            let c = Claim::NodePort(range.first + off as u16);
                            !unavailable(&c) && !claimed.contains(&c)
                        };
                        match pick(range.count(), 0, rng, &free) {
                            Some(off) => range.first + off as u16,
                            None => {
                                return Err(AssignError::Full(
                                    "failed to allocate a nodePort: range is full".into(),
                                ))
                            }
                        }
                    }
                };
                p["nodePort"] = json!(np);
                claimed.insert(Claim::NodePort(np));
                by_port.insert(port, np);
            }
        }
        spec["ports"] = Value::Array(ports);
        if needs_health_check_port(spec) {
            let hc = int(spec, "healthCheckNodePort");
            if hc != 0 {
                let c = u16::try_from(hc).ok().map(Claim::NodePort);
                let err = match c {
                    Some(c) if old_held.contains(&c) => None,
                    Some(c) if claimed.contains(&c) || unavailable(&c) => {
                        Some("provided port is already allocated".to_string())
                    }
                    Some(_) if range.contains(hc) => None,
                    _ => Some(format!(
                        "provided port is not in the valid range. The range of valid ports is {range}"
                    )),
                };
                match (err, c) {
                    (Some(e), _) => errs.push(FieldError::invalid(
                        "spec.healthCheckNodePort",
                        &json!(hc),
                        format!("failed to allocate requested HealthCheck NodePort {hc}: {e}"),
                    )),
                    (None, Some(c)) => {
                        claimed.insert(c);
                    }
                    (None, None) => {}
                }
            } else {
                let free = |off: u32| {
                    let c = Claim::NodePort(range.first + off as u16);
                    !unavailable(&c) && !claimed.contains(&c)
                };
                match pick(range.count(), 0, rng, &free) {
                    Some(off) => {
                        let np = range.first + off as u16;
                        spec["healthCheckNodePort"] = json!(np);
                        claimed.insert(Claim::NodePort(np));
                    }
                    None => {
                        return Err(AssignError::Full(
                            "failed to allocate a nodePort: range is full".into(),
                        ))
                    }
                }
            }
        }
    }
    if !errs.is_empty() {
        return Err(AssignError::Invalid(errs));
    }
    let now = held(svc);
    Ok(Plan {
        claims: now.difference(&old_held).copied().collect(),
        releases: old_held.difference(&now).copied().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(cidr: &str, ports: &str) -> ServiceRanges {
        ServiceRanges {
            cidr: Ipv4Cidr::parse(cidr).unwrap(),
            node_ports: PortRange::parse(ports).unwrap(),
        }
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s", "namespace": "default"}, "spec": spec})
    }

    fn seq() -> impl FnMut(u32) -> u32 {
        let mut n = 0u32;
        move |bound| {
            n = n.wrapping_mul(1103515245).wrapping_add(12345);
            (n >> 8) % bound
        }
    }

    #[test]
    fn ranges_parse() {
        let c = Ipv4Cidr::parse("10.43.7.9/16").unwrap();
        assert_eq!(c.to_string(), "10.43.0.0/16");
        assert_eq!(c.first(), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(c.count(), 65534);
        assert!(c.contains("10.43.255.254".parse().unwrap()));
        assert!(!c.contains("10.43.255.255".parse().unwrap()));
        assert!(!c.contains("10.43.0.0".parse().unwrap()));
        assert!(!c.contains("10.44.0.1".parse().unwrap()));
        for bad in [
            "10.43.0.0",
            "10.43.0.0/31",
            "fd00::/112",
            "x/16",
            "10.0.0.0/4",
        ] {
            assert!(Ipv4Cidr::parse(bad).is_err(), "{bad}");
        }
        let p = PortRange::parse("30000-32767").unwrap();
        assert_eq!((p.first, p.last, p.count()), (30000, 32767, 2768));
        assert_eq!(PortRange::parse("100+9").unwrap().to_string(), "100-109");
        assert_eq!(PortRange::parse("80").unwrap().count(), 1);
        for bad in ["0-10", "10-5", "a-b", "70000"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Claim::from_key(&Claim::ClusterIp(c.first()).key()),
            Some(Claim::ClusterIp(c.first()))
        );
        assert_eq!(
            Claim::from_key(&Claim::NodePort(30001).key()),
            Some(Claim::NodePort(30001))
        );
        assert_eq!(Claim::from_key("/registry/ranges/other-1"), None);
        // the watch cache sees the claims' revisions but caches none of them
        for c in [Claim::ClusterIp(c.first()), Claim::NodePort(30000)] {
            assert!(c.key().starts_with(crate::cache::REGISTRY_PREFIX));
            assert_eq!(crate::cache::resource_prefix(&c.key()), None);
        }
        assert_eq!(
            crate::cache::resource_prefix(&format!(
                "{}10.0.0.1",
                super::super::MASTER_LEASE_PREFIX
            )),
            None
        );
    }

    #[test]
    fn pick_prefers_upper_band_and_skips() {
        let mut r = seq();
        for _ in 0..50 {
            let off = pick(1000, 1, &mut r, &|_| true).unwrap();
            assert!(off > 62, "{off}");
        }
        // only the lower band left
        let off = pick(1000, 1, &mut r, &|o| o < 10).unwrap();
        assert!((1..10).contains(&off));
        assert_eq!(pick(1000, 1, &mut r, &|o| o == 0), None);
        assert_eq!(pick(4, 0, &mut r, &|o| o == 3), Some(3));
    }

    #[test]
    fn assign_table() {
        let r = ranges("10.43.0.0/16", "30000-30009");
        let taken_ip: Ipv4Addr = "10.43.0.50".parse().unwrap();
        let taken = move |c: &Claim| {
            matches!(c, Claim::ClusterIp(ip) if *ip == taken_ip) || *c == Claim::NodePort(30005)
        };
        struct Case {
            name: &'static str,
            spec: Value,
            old: Option<Value>,
            // (pointer, expected) pairs checked on the result; "*" = any non-empty
            expect: Vec<(&'static str, Value)>,
            claims: usize,
            releases: usize,
            err: Option<&'static str>,
        }
        let cases = vec![
            Case {
                name: "dynamic cluster IP",
                spec: json!({"type": "ClusterIP", "ports": [{"port": 80}]}),
                old: None,
                expect: vec![("/spec/ipFamilies", json!(["IPv4"]))],
                claims: 1,
                releases: 0,
                err: None,
            },
            Case {
                name: "requested cluster IP",
                spec: json!({"type": "ClusterIP", "clusterIP": "10.43.0.1", "clusterIPs": ["10.43.0.1"]}),
                old: None,
                expect: vec![("/spec/clusterIPs", json!(["10.43.0.1"]))],
                claims: 1,
                releases: 0,
                err: None,
            },
            Case {
                name: "outside the range",
                spec: json!({"type": "ClusterIP", "clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"]}),
                old: None,
                expect: vec![],
                claims: 0,
                releases: 0,
                err: Some("spec.clusterIPs: Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"),
            },
            Case {
                name: "already allocated",
                spec: json!({"type": "ClusterIP", "clusterIP": "10.43.0.50", "clusterIPs": ["10.43.0.50"]}),
                old: None,
                expect: vec![],
                claims: 0,
                releases: 0,
                err: Some("spec.clusterIPs: Invalid value: []string{\"10.43.0.50\"}: failed to allocate IP 10.43.0.50: provided IP is already allocated"),
            },
            Case {
                name: "kept on update",
                spec: json!({"type": "ClusterIP", "clusterIP": "10.43.0.50", "clusterIPs": ["10.43.0.50"]}),
                old: Some(svc(json!({"type": "ClusterIP", "clusterIP": "10.43.0.50", "clusterIPs": ["10.43.0.50"]}))),
                expect: vec![],
                claims: 0,
                releases: 0,
                err: None,
            },
            Case {
                name: "headless",
                spec: json!({"type": "ClusterIP", "clusterIP": "None", "selector": {"a": "b"}}),
                old: None,
                expect: vec![("/spec/clusterIPs", json!(["None"])), ("/spec/ipFamilies", json!(["IPv4"]))],
                claims: 0,
                releases: 0,
                err: None,
            },
            Case {
                name: "IPv6 family",
                spec: json!({"type": "ClusterIP", "ipFamilies": ["IPv6"]}),
                old: None,
                expect: vec![],
                claims: 0,
                releases: 0,
                err: Some("spec.ipFamilies[0]: Invalid value: \"IPv6\": IPv6 is not configured on this cluster"),
            },
            Case {
                name: "dual stack required",
                spec: json!({"type": "ClusterIP", "ipFamilyPolicy": "RequireDualStack", "selector": {"a": "b"}}),
                old: None,
                expect: vec![],
                claims: 0,
                releases: 0,
                err: Some("spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"),
            },
            Case {
                name: "external name gets nothing",
                spec: json!({"type": "ExternalName", "externalName": "example.com"}),
                old: None,
                expect: vec![("/spec/clusterIP", Value::Null)],
                claims: 0,
                releases: 0,
                err: None,
            },
            Case {
                name: "to external name releases",
                spec: json!({"type": "ExternalName", "externalName": "example.com"}),
                old: Some(svc(json!({"type": "NodePort", "clusterIP": "10.43.0.9", "ports": [{"port": 80, "nodePort": 30001}]}))),
                expect: vec![],
                claims: 0,
                releases: 2,
                err: None,
            },
            Case {
                name: "node ports shared by port number",
                spec: json!({"type": "NodePort", "ports": [{"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}, {"port": 80, "nodePort": 30002}]}),
                old: None,
                expect: vec![("/spec/ports/2/nodePort", json!(30002))],
                claims: 3,
                releases: 0,
                err: None,
            },
            Case {
                name: "node port out of range",
                spec: json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
                old: None,
                expect: vec![],
                claims: 0,
                releases: 0,
                err: Some("spec.ports[0].nodePort: Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30000-30009"),
            },
            Case {
                name: "node port taken",
                spec: json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30005}]}),
                old: None,
                expect: vec![],
                claims: 0,
                releases: 0,
                err: Some("spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated"),
            },
            Case {
                name: "load balancer without node ports keeps requested ones",
                spec: json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "externalTrafficPolicy": "Cluster", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30003}]}),
                old: None,
                expect: vec![("/spec/ports/0/nodePort", Value::Null), ("/spec/ports/1/nodePort", json!(30003))],
                claims: 2,
                releases: 0,
                err: None,
            },
            Case {
                name: "health check node port",
                spec: json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": true, "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
                old: None,
                expect: vec![],
                claims: 3,
                releases: 0,
                err: None,
            },
            Case {
                name: "health check node port taken",
                spec: json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "externalTrafficPolicy": "Local", "healthCheckNodePort": 30005, "ports": [{"port": 80}]}),
                old: None,
                expect: vec![],
                claims: 0,
                releases: 0,
                err: Some("spec.healthCheckNodePort: Invalid value: 30005: failed to allocate requested HealthCheck NodePort 30005: provided port is already allocated"),
            },
            Case {
                name: "node port to cluster IP releases the ports",
                spec: json!({"type": "ClusterIP", "clusterIP": "10.43.0.9", "ports": [{"port": 80}]}),
                old: Some(svc(json!({"type": "NodePort", "clusterIP": "10.43.0.9", "ports": [{"port": 80, "nodePort": 30001}]}))),
                expect: vec![],
                claims: 0,
                releases: 1,
                err: None,
            },
        ];
        for c in cases {
            let mut obj = svc(c.spec);
            let mut rng = seq();
            let got = assign(&mut obj, c.old.as_ref(), &r, &taken, &mut rng);
            match (got, c.err) {
                (Ok(plan), None) => {
                    for (ptr, want) in &c.expect {
                        assert_eq!(
                            obj.pointer(ptr).unwrap_or(&Value::Null),
                            want,
                            "{}: {ptr}",
                            c.name
                        );
                    }
                    assert_eq!(plan.claims.len(), c.claims, "{}: {plan:?}", c.name);
                    assert_eq!(plan.releases.len(), c.releases, "{}: {plan:?}", c.name);
                    // every claim is held by the result and none is taken by others
                    for cl in &plan.claims {
                        assert!(held(&obj).contains(cl), "{}", c.name);
                        assert!(!taken(cl), "{}: {cl:?}", c.name);
                    }
                    if let Some(ip) = obj.pointer("/spec/clusterIP").and_then(Value::as_str) {
                        if ip != "None" {
                            assert!(r.cidr.contains(ip.parse().unwrap()), "{}", c.name);
                            assert_eq!(
                                obj.pointer("/spec/clusterIPs/0").and_then(Value::as_str),
                                Some(ip)
                            );
                        }
                    }
                    for p in obj
                        .pointer("/spec/ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
                            assert!(r.node_ports.contains(np), "{}", c.name);
                        }
                    }
                }
                (Err(AssignError::Invalid(errs)), Some(want)) => {
                    let msgs: Vec<String> = errs.iter().map(FieldError::full_message).collect();
                    assert!(msgs.iter().any(|m| m == want), "{}: {msgs:?}", c.name);
                }
                (other, want) => panic!("{}: got {other:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn dynamic_values_are_distinct_until_full() {
        let r = ranges("10.0.0.0/29", "30000-30003");
        let mut taken: BTreeSet<Claim> = BTreeSet::new();
        let mut rng = seq();
        // 6 assignable addresses, the first reserved for the kubernetes service
        for _ in 0..5 {
            let mut obj = svc(json!({"type": "ClusterIP"}));
            let t = taken.clone();
            let plan = assign(&mut obj, None, &r, &|c| t.contains(c), &mut rng).unwrap();
            assert_eq!(plan.claims.len(), 1);
            assert!(!plan.claims.contains(&Claim::ClusterIp(r.cidr.first())));
            taken.extend(plan.claims);
        }
        let mut obj = svc(json!({"type": "ClusterIP"}));
        let t = taken.clone();
        assert!(matches!(
            assign(&mut obj, None, &r, &|c| t.contains(c), &mut rng),
            Err(AssignError::Full(_))
        ));
        // node ports: 4 values, 3 services of one port fit, then a two-port service does not
        let mut taken: BTreeSet<Claim> = BTreeSet::new();
        for _ in 0..3 {
            let mut obj =
                svc(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}));
            let t = taken.clone();
            let plan = assign(&mut obj, None, &r, &|c| t.contains(c), &mut rng).unwrap();
            taken.extend(plan.claims);
        }
        assert_eq!(taken.len(), 3);
        let mut obj = svc(
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}, {"port": 81}]}),
        );
        let t = taken.clone();
        assert!(matches!(
            assign(&mut obj, None, &r, &|c| t.contains(c), &mut rng),
            Err(AssignError::Full(_))
        ));
    }
}
