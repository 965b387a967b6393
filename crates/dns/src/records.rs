//! The in-memory record store: Services and EndpointSlices reduced to what DNS needs, and the
//! answers (A/AAAA, SRV, PTR, CNAME, TXT, SOA, NXDOMAIN) the Kubernetes DNS specification
//! gives for a query name and type. Sans-IO: the watchers feed it, the server asks it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::names::{self, ClusterName};

/// The DNS schema version this server implements (`dns-version.<zone>` TXT).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A port as DNS publishes it in SRV records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub name: String,
    /// Lowercase: `tcp`, `udp`, `sctp`.
    pub protocol: String,
    pub port: u16,
}

impl Port {
    /// A port of a Service or EndpointSlice as DNS publishes it: only named ones with a port
    /// number in range; the protocol defaults to TCP.
    fn named(name: Option<&str>, protocol: Option<&str>, port: Option<i32>) -> Option<Port> {
        Some(Port {
            name: name.filter(|n| !n.is_empty())?.to_string(),
            protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
            port: u16::try_from(port?).ok()?,
        })
    }
}

/// What kind of records a Service gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A/AAAA to the cluster IPs (none yet allocated: no address records).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the endpoints' addresses.
    Headless,
    /// CNAME to the external name.
    ExternalName(String),
}

/// A Service reduced to its DNS-relevant fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceKind,
    pub ports: Vec<Port>,
    pub publish_not_ready: bool,
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<String>,
    pub ready: bool,
}

/// An EndpointSlice reduced to its DNS-relevant fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    pub namespace: String,
    pub name: String,
    pub service: String,
    pub endpoints: Vec<EndpointInfo>,
    pub ports: Vec<Port>,
}

/// Reduce a Service; `None` without a name or namespace.
pub fn service_info(svc: &Service) -> Option<ServiceInfo> {
    let name = svc.metadata.name.clone()?;
    let namespace = svc.metadata.namespace.clone()?;
    let spec = svc.spec.clone().unwrap_or_default();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(names::normalize(
            spec.external_name.as_deref().unwrap_or(""),
        ))
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|s| s.parse().ok())
            .collect();
        dedup(&mut ips);
        ServiceKind::ClusterIp(ips)
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Port::named(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
        .collect();
    Some(ServiceInfo {
        namespace,
        name,
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    })
}

/// Reduce an EndpointSlice; `None` without the service-name label, or for FQDN slices.
pub fn slice_info(slice: &EndpointSlice) -> Option<SliceInfo> {
    let name = slice.metadata.name.clone()?;
    let namespace = slice.metadata.namespace.clone()?;
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    if slice.address_type == "FQDN" {
        return None;
    }
    let endpoints = slice
        .endpoints
        .iter()
        .map(|e| EndpointInfo {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone().filter(|h| !h.is_empty()),
            // an unset condition means ready (the EndpointSlice API says so)
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Port::named(p.name.as_deref(), p.protocol.as_deref(), p.port))
        .collect();
    Some(SliceInfo {
        namespace,
        name,
        service,
        endpoints,
        ports,
    })
}

fn dedup<T: Ord + Clone>(v: &mut Vec<T>) {
    let mut seen = BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

/// Record data, names without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Ptr(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Txt(String),
    Ns(String),
    Soa,
}

/// One resource record (the TTL is the store's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub name: String,
    pub data: Data,
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name exists: these answers (none: NODATA, the SOA goes in the authority section).
    /// `chase` is a CNAME target outside the zone whose records the server resolves upstream.
    Records {
        answers: Vec<Rec>,
        additionals: Vec<Rec>,
        chase: Option<String>,
    },
    /// The name does not exist in the cluster domain.
    NxDomain,
    /// Not ours: forward to the upstream resolvers.
    Forward,
}

impl Answer {
    fn records(answers: Vec<Rec>) -> Answer {
        Answer::Records {
            answers,
            additionals: Vec::new(),
            chase: None,
        }
    }
}

/// The zone's settings.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The cluster domain, normalized (`cluster.local`).
    pub zone: String,
    /// The cluster DNS service IP (`ns.dns.<zone>`).
    pub dns_ip: Option<IpAddr>,
}

/// Everything the watchers know, indexed for lookups.
#[derive(Debug, Default)]
pub struct Records {
    services: HashMap<(String, String), ServiceInfo>,
    /// (namespace, slice name) -> slice
    slices: HashMap<(String, String), SliceInfo>,
    /// (namespace, service) -> names of its slices
    slices_by_service: HashMap<(String, String), BTreeSet<String>>,
    /// services per namespace (a namespace name exists while it has services)
    namespaces: HashMap<String, usize>,
    /// IP -> (namespace, service) whose records name it, for PTR
    reverse: HashMap<IpAddr, BTreeSet<(String, String)>>,
    /// (namespace, service) -> IPs it put in `reverse`
    reverse_of: HashMap<(String, String), Vec<IpAddr>>,
}

impl Records {
    pub fn new() -> Records {
        Records::default()
    }

    /// Add or replace a Service.
    pub fn upsert_service(&mut self, info: ServiceInfo) {
        let key = (info.namespace.clone(), info.name.clone());
        if self.services.insert(key.clone(), info).is_none() {
            *self.namespaces.entry(key.0.clone()).or_default() += 1;
        }
        self.reindex(&key);
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        if self.services.remove(&key).is_some() {
            if let Some(n) = self.namespaces.get_mut(namespace) {
                *n -= 1;
                if *n == 0 {
                    self.namespaces.remove(namespace);
                }
            }
        }
        self.reindex(&key);
    }

    /// Add or replace an EndpointSlice.
    pub fn upsert_slice(&mut self, info: SliceInfo) {
        let key = (info.namespace.clone(), info.name.clone());
        let svc_key = (info.namespace.clone(), info.service.clone());
        if let Some(old) = self.slices.remove(&key) {
            if old.service != info.service {
                self.unlink_slice(&old);
            }
        }
        self.slices_by_service
            .entry(svc_key.clone())
            .or_default()
            .insert(info.name.clone());
        self.slices.insert(key, info);
        self.reindex(&svc_key);
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) {
        if let Some(old) = self
            .slices
            .remove(&(namespace.to_string(), name.to_string()))
        {
            self.unlink_slice(&old);
        }
    }

    fn unlink_slice(&mut self, old: &SliceInfo) {
        let svc_key = (old.namespace.clone(), old.service.clone());
        if let Some(set) = self.slices_by_service.get_mut(&svc_key) {
            set.remove(&old.name);
            if set.is_empty() {
                self.slices_by_service.remove(&svc_key);
            }
        }
        self.reindex(&svc_key);
    }

    /// Replace every Service (a watcher's relist).
    pub fn replace_services(&mut self, infos: Vec<ServiceInfo>) {
        let keys: Vec<_> = self.services.keys().cloned().collect();
        for (ns, name) in keys {
            self.remove_service(&ns, &name);
        }
        for i in infos {
            self.upsert_service(i);
        }
    }

    /// Replace every EndpointSlice (a watcher's relist).
    pub fn replace_slices(&mut self, infos: Vec<SliceInfo>) {
        let keys: Vec<_> = self.slices.keys().cloned().collect();
        for (ns, name) in keys {
            self.remove_slice(&ns, &name);
        }
        for i in infos {
            self.upsert_slice(i);
        }
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Recompute the PTR index entries of one service.
    fn reindex(&mut self, key: &(String, String)) {
        if let Some(old) = self.reverse_of.remove(key) {
            for ip in old {
                if let Some(set) = self.reverse.get_mut(&ip) {
                    set.remove(key);
                    if set.is_empty() {
                        self.reverse.remove(&ip);
                    }
                }
            }
        }
        let Some(svc) = self.services.get(key) else {
            return;
        };
        let ips: Vec<IpAddr> = match &svc.kind {
            ServiceKind::ClusterIp(ips) => ips.clone(),
            ServiceKind::Headless => self
                .endpoints(svc)
                .into_iter()
                .flat_map(|(_, addrs)| addrs)
                .collect(),
            ServiceKind::ExternalName(_) => Vec::new(),
        };
        for ip in &ips {
            self.reverse.entry(*ip).or_default().insert(key.clone());
        }
        self.reverse_of.insert(key.clone(), ips);
    }

    /// The published endpoints of a service as (hostname label, addresses), merged over its
    /// slices, deduplicated, in a stable order.
    fn endpoints(&self, svc: &ServiceInfo) -> Vec<(String, Vec<IpAddr>)> {
        let key = (svc.namespace.clone(), svc.name.clone());
        let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for slice_name in self.slices_by_service.get(&key).into_iter().flatten() {
            let Some(slice) = self
                .slices
                .get(&(svc.namespace.clone(), slice_name.clone()))
            else {
                continue;
            };
            for ep in &slice.endpoints {
                if !(ep.ready || svc.publish_not_ready) {
                    continue;
                }
                for ip in &ep.addresses {
                    if !seen.insert(*ip) {
                        continue;
                    }
                    let label = ep.hostname.clone().unwrap_or_else(|| names::ip_label(*ip));
                    out.entry(label).or_default().push(*ip);
                }
            }
        }
        out.into_iter().collect()
    }

    /// The SRV ports of a headless service: its slices' ports (the target ports).
    fn slice_ports(&self, svc: &ServiceInfo) -> Vec<Port> {
        let key = (svc.namespace.clone(), svc.name.clone());
        let mut ports: Vec<Port> = self
            .slices_by_service
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|n| self.slices.get(&(svc.namespace.clone(), n.clone())))
            .flat_map(|s| s.ports.iter().cloned())
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// Answer a query for a normalized `name`.
    pub fn lookup(&self, zone: &ZoneConfig, name: &str, qtype: RecordType) -> Answer {
        let Some(cn) = names::classify(name, &zone.zone) else {
            return self.lookup_reverse(zone, name, qtype);
        };
        let z = &zone.zone;
        match cn {
            ClusterName::Apex => Answer::records(match qtype {
                RecordType::SOA => vec![rec(z, Data::Soa)],
                RecordType::NS => vec![rec(z, Data::Ns(format!("ns.dns.{z}")))],
                _ => vec![],
            }),
            ClusterName::DnsVersion => Answer::records(match qtype {
                RecordType::TXT => vec![rec(name, Data::Txt(SCHEMA_VERSION.into()))],
                _ => vec![],
            }),
            ClusterName::NameServer => {
                Answer::records(address_records(name, zone.dns_ip.iter().copied(), qtype))
            }
            ClusterName::Subzone => Answer::records(vec![]),
            ClusterName::ServiceNamespace { namespace } => {
                if self.namespaces.contains_key(namespace) {
                    Answer::records(vec![])
                } else {
                    Answer::NxDomain
                }
            }
            // pod records are answered without checking the pod exists, as CoreDNS's
            // `pods insecure` (k3s's setting) does
            ClusterName::PodNamespace { .. } => Answer::records(vec![]),
            ClusterName::Pod { ip, .. } => {
                Answer::records(address_records(name, std::iter::once(ip), qtype))
            }
            ClusterName::Service { service, namespace } => {
                self.lookup_service(zone, name, namespace, service, qtype)
            }
            ClusterName::Endpoint {
                endpoint,
                service,
                namespace,
            } => {
                let Some(svc) = self.service(namespace, service) else {
                    return Answer::NxDomain;
                };
                if svc.kind != ServiceKind::Headless {
                    return Answer::NxDomain;
                }
                match self.endpoints(svc).into_iter().find(|(l, _)| l == endpoint) {
                    Some((_, ips)) => Answer::records(address_records(name, ips, qtype)),
                    None => Answer::NxDomain,
                }
            }
            ClusterName::Srv {
                port,
                protocol,
                service,
                namespace,
            } => {
                let Some(svc) = self.service(namespace, service) else {
                    return Answer::NxDomain;
                };
                let (answers, additionals) = self.srv(zone, svc, Some((port, protocol)));
                if answers.is_empty() {
                    return Answer::NxDomain;
                }
                if qtype != RecordType::SRV && qtype != RecordType::ANY {
                    return Answer::records(vec![]);
                }
                Answer::Records {
                    answers,
                    additionals,
                    chase: None,
                }
            }
            ClusterName::Unknown => Answer::NxDomain,
        }
    }

    fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
    }

    fn lookup_service(
        &self,
        zone: &ZoneConfig,
        name: &str,
        namespace: &str,
        service: &str,
        qtype: RecordType,
    ) -> Answer {
        let Some(svc) = self.service(namespace, service) else {
            return Answer::NxDomain;
        };
        if qtype == RecordType::SRV {
            let (answers, additionals) = self.srv(zone, svc, None);
            return Answer::Records {
                answers,
                additionals,
                chase: None,
            };
        }
        match &svc.kind {
            ServiceKind::ExternalName(target) => {
                let mut answers = vec![rec(name, Data::Cname(target.clone()))];
                if qtype == RecordType::CNAME {
                    return Answer::records(answers);
                }
                // a target inside the zone resolves here, one level deep; others upstream
                match names::classify(target, &zone.zone) {
                    Some(_) => {
                        if let Answer::Records { answers: more, .. } =
                            self.lookup_no_chase(zone, target, qtype)
                        {
                            answers.extend(more);
                        }
                        Answer::records(answers)
                    }
                    None => Answer::Records {
                        answers,
                        additionals: vec![],
                        chase: Some(target.clone()),
                    },
                }
            }
            ServiceKind::ClusterIp(ips) => {
                Answer::records(address_records(name, ips.iter().copied(), qtype))
            }
            ServiceKind::Headless => Answer::records(address_records(
                name,
                self.endpoints(svc).into_iter().flat_map(|(_, ips)| ips),
                qtype,
            )),
        }
    }

    fn lookup_no_chase(&self, zone: &ZoneConfig, name: &str, qtype: RecordType) -> Answer {
        match names::classify(name, &zone.zone) {
            Some(ClusterName::Service { service, namespace }) => {
                match self.service(namespace, service).map(|s| &s.kind) {
                    Some(ServiceKind::ExternalName(_)) => Answer::records(vec![]),
                    _ => self.lookup(zone, name, qtype),
                }
            }
            _ => self.lookup(zone, name, qtype),
        }
    }

    /// SRV records of a service (for one named port, or all), with the targets' addresses as
    /// additional records.
    fn srv(
        &self,
        zone: &ZoneConfig,
        svc: &ServiceInfo,
        want: Option<(&str, &str)>,
    ) -> (Vec<Rec>, Vec<Rec>) {
        let svc_name = format!("{}.{}.svc.{}", svc.name, svc.namespace, zone.zone);
        let matches = |p: &Port| want.is_none_or(|(n, proto)| p.name == n && p.protocol == proto);
        let owner = |p: &Port| match want {
            Some(_) => format!("_{}._{}.{svc_name}", p.name, p.protocol),
            None => svc_name.clone(),
        };
        // Every matching port of the service's own ports points at one target.
        let single_target = |target: &str| -> Vec<Rec> {
            let ports: Vec<&Port> = svc.ports.iter().filter(|p| matches(p)).collect();
            let weight = weight(ports.len());
            ports
                .into_iter()
                .map(|p| srv_rec(&owner(p), weight, p.port, target.to_string()))
                .collect()
        };
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        match &svc.kind {
            ServiceKind::ClusterIp(ips) => {
                answers = single_target(&svc_name);
                if !answers.is_empty() {
                    additionals = address_records(&svc_name, ips.iter().copied(), RecordType::ANY);
                }
            }
            ServiceKind::Headless => {
                let ports: Vec<Port> = self
                    .slice_ports(svc)
                    .into_iter()
                    .filter(|p| matches(p))
                    .collect();
                let eps = self.endpoints(svc);
                let weight = weight(ports.len() * eps.len());
                for p in &ports {
                    for (label, _) in &eps {
                        answers.push(srv_rec(
                            &owner(p),
                            weight,
                            p.port,
                            format!("{label}.{svc_name}"),
                        ));
                    }
                }
                if !ports.is_empty() {
                    for (label, ips) in &eps {
                        additionals.extend(address_records(
                            &format!("{label}.{svc_name}"),
                            ips.iter().copied(),
                            RecordType::ANY,
                        ));
                    }
                }
            }
            ServiceKind::ExternalName(target) => answers = single_target(target),
        }
        (answers, additionals)
    }

    /// PTR records for service and endpoint IPs; other reverse names (and everything outside
    /// the zone) go upstream.
    fn lookup_reverse(&self, zone: &ZoneConfig, name: &str, qtype: RecordType) -> Answer {
        let Some(ip) = names::parse_reverse(name) else {
            return Answer::Forward;
        };
        let Some(owners) = self.reverse.get(&ip) else {
            return Answer::Forward;
        };
        if qtype != RecordType::PTR && qtype != RecordType::ANY {
            return Answer::records(vec![]);
        }
        let mut answers = Vec::new();
        for (ns, svc_name) in owners {
            let Some(svc) = self.service(ns, svc_name) else {
                continue;
            };
            let base = format!("{svc_name}.{ns}.svc.{}", zone.zone);
            match &svc.kind {
                ServiceKind::Headless => {
                    for (label, ips) in self.endpoints(svc) {
                        if ips.contains(&ip) {
                            answers.push(rec(name, Data::Ptr(format!("{label}.{base}"))));
                        }
                    }
                }
                _ => answers.push(rec(name, Data::Ptr(base))),
            }
        }
        Answer::records(answers)
    }
}

fn weight(n: usize) -> u16 {
    if n == 0 {
        return 0;
    }
    (100 / n).max(1) as u16
}

fn srv_rec(owner: &str, weight: u16, port: u16, target: String) -> Rec {
    rec(
        owner,
        Data::Srv {
            priority: 0,
            weight,
            port,
            target,
        },
    )
}

fn rec(name: &str, data: Data) -> Rec {
    Rec {
        name: name.to_string(),
        data,
    }
}

/// A records (qtype A), AAAA records (AAAA) or both (ANY) for `ips`.
fn address_records(
    name: &str,
    ips: impl IntoIterator<Item = IpAddr>,
    qtype: RecordType,
) -> Vec<Rec> {
    ips.into_iter()
        .filter_map(|ip| match (ip, qtype) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(rec(name, Data::A(v4))),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => Some(rec(name, Data::Aaaa(v6))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, protocol: &str, port: u16) -> Port {
        Port {
            name: name.into(),
            protocol: protocol.into(),
            port,
        }
    }

    fn svc(ns: &str, name: &str, kind: ServiceKind, ports: Vec<Port>) -> ServiceInfo {
        ServiceInfo {
            namespace: ns.into(),
            name: name.into(),
            kind,
            ports,
            publish_not_ready: false,
        }
    }

    fn ep(ip: &str, hostname: Option<&str>, ready: bool) -> EndpointInfo {
        EndpointInfo {
            addresses: vec![ip.parse().unwrap()],
            hostname: hostname.map(String::from),
            ready,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn zone() -> ZoneConfig {
        ZoneConfig {
            zone: "cluster.local".into(),
            dns_ip: Some(ip("10.43.0.10")),
        }
    }

    fn fixture() -> Records {
        let mut r = Records::new();
        r.upsert_service(svc(
            "default",
            "web",
            ServiceKind::ClusterIp(vec![ip("10.43.0.20"), ip("fd00:43::20")]),
            vec![port("http", "tcp", 80), port("dns", "udp", 53)],
        ));
        r.upsert_service(svc(
            "default",
            "db",
            ServiceKind::Headless,
            vec![port("pg", "tcp", 5432)],
        ));
        r.upsert_slice(SliceInfo {
            namespace: "default".into(),
            name: "db-abc".into(),
            service: "db".into(),
            endpoints: vec![
                ep("10.42.0.5", Some("db-0"), true),
                ep("10.42.0.6", None, true),
                ep("10.42.0.7", Some("db-2"), false),
            ],
            ports: vec![port("pg", "tcp", 15432)],
        });
        let mut nr = svc("other", "nr", ServiceKind::Headless, vec![]);
        nr.publish_not_ready = true;
        r.upsert_service(nr);
        r.upsert_slice(SliceInfo {
            namespace: "other".into(),
            name: "nr-1".into(),
            service: "nr".into(),
            endpoints: vec![ep("10.42.1.9", None, false)],
            ports: vec![],
        });
        r.upsert_service(svc(
            "default",
            "ext",
            ServiceKind::ExternalName("example.com".into()),
            vec![],
        ));
        r.upsert_service(svc(
            "default",
            "alias",
            ServiceKind::ExternalName("web.default.svc.cluster.local".into()),
            vec![],
        ));
        r
    }

    fn a(name: &str, v4: &str) -> Rec {
        rec(name, Data::A(v4.parse().unwrap()))
    }

    fn srv(name: &str, weight: u16, port: u16, target: &str) -> Rec {
        rec(
            name,
            Data::Srv {
                priority: 0,
                weight,
                port,
                target: target.into(),
            },
        )
    }

    fn answers(v: Vec<Rec>) -> Answer {
        Answer::records(v)
    }

    #[test]
    fn lookup_table() {
        let r = fixture();
        let z = zone();
        let web = "web.default.svc.cluster.local";
        let db = "db.default.svc.cluster.local";
        let cases: Vec<(&str, RecordType, Answer)> = vec![
            (web, RecordType::A, answers(vec![a(web, "10.43.0.20")])),
            (
                web,
                RecordType::AAAA,
                answers(vec![rec(web, Data::Aaaa("fd00:43::20".parse().unwrap()))]),
            ),
            (web, RecordType::TXT, answers(vec![])),
            (
                "nope.default.svc.cluster.local",
                RecordType::A,
                Answer::NxDomain,
            ),
            (
                "web.nope.svc.cluster.local",
                RecordType::A,
                Answer::NxDomain,
            ),
            // ready endpoints only; a hostname-less endpoint is named by its IP
            (
                db,
                RecordType::A,
                answers(vec![a(db, "10.42.0.6"), a(db, "10.42.0.5")]),
            ),
            (
                "db-0.db.default.svc.cluster.local",
                RecordType::A,
                answers(vec![a("db-0.db.default.svc.cluster.local", "10.42.0.5")]),
            ),
            (
                "10-42-0-6.db.default.svc.cluster.local",
                RecordType::A,
                answers(vec![a(
                    "10-42-0-6.db.default.svc.cluster.local",
                    "10.42.0.6",
                )]),
            ),
            // not ready: no record
            (
                "db-2.db.default.svc.cluster.local",
                RecordType::A,
                Answer::NxDomain,
            ),
            // endpoint names exist only for headless services
            (
                "x.web.default.svc.cluster.local",
                RecordType::A,
                Answer::NxDomain,
            ),
            // publishNotReadyAddresses publishes unready endpoints
            (
                "nr.other.svc.cluster.local",
                RecordType::A,
                answers(vec![a("nr.other.svc.cluster.local", "10.42.1.9")]),
            ),
            (
                "_http._tcp.web.default.svc.cluster.local",
                RecordType::SRV,
                Answer::Records {
                    answers: vec![srv(
                        "_http._tcp.web.default.svc.cluster.local",
                        100,
                        80,
                        web,
                    )],
                    additionals: vec![
                        a(web, "10.43.0.20"),
                        rec(web, Data::Aaaa("fd00:43::20".parse().unwrap())),
                    ],
                    chase: None,
                },
            ),
            (
                "_http._udp.web.default.svc.cluster.local",
                RecordType::SRV,
                Answer::NxDomain,
            ),
            (
                "_pg._tcp.db.default.svc.cluster.local",
                RecordType::SRV,
                Answer::Records {
                    answers: vec![
                        srv(
                            "_pg._tcp.db.default.svc.cluster.local",
                            50,
                            15432,
                            "10-42-0-6.db.default.svc.cluster.local",
                        ),
                        srv(
                            "_pg._tcp.db.default.svc.cluster.local",
                            50,
                            15432,
                            "db-0.db.default.svc.cluster.local",
                        ),
                    ],
                    additionals: vec![
                        a("10-42-0-6.db.default.svc.cluster.local", "10.42.0.6"),
                        a("db-0.db.default.svc.cluster.local", "10.42.0.5"),
                    ],
                    chase: None,
                },
            ),
            (
                "ext.default.svc.cluster.local",
                RecordType::A,
                Answer::Records {
                    answers: vec![rec(
                        "ext.default.svc.cluster.local",
                        Data::Cname("example.com".into()),
                    )],
                    additionals: vec![],
                    chase: Some("example.com".into()),
                },
            ),
            (
                "ext.default.svc.cluster.local",
                RecordType::CNAME,
                answers(vec![rec(
                    "ext.default.svc.cluster.local",
                    Data::Cname("example.com".into()),
                )]),
            ),
            // a CNAME into the zone is followed here
            (
                "alias.default.svc.cluster.local",
                RecordType::A,
                answers(vec![
                    rec("alias.default.svc.cluster.local", Data::Cname(web.into())),
                    a(web, "10.43.0.20"),
                ]),
            ),
            (
                "10-42-3-4.any.pod.cluster.local",
                RecordType::A,
                answers(vec![a("10-42-3-4.any.pod.cluster.local", "10.42.3.4")]),
            ),
            (
                "10-42-3-4.any.pod.cluster.local",
                RecordType::AAAA,
                answers(vec![]),
            ),
            ("x.any.pod.cluster.local", RecordType::A, Answer::NxDomain),
            (
                "20.0.43.10.in-addr.arpa",
                RecordType::PTR,
                answers(vec![rec("20.0.43.10.in-addr.arpa", Data::Ptr(web.into()))]),
            ),
            (
                "5.0.42.10.in-addr.arpa",
                RecordType::PTR,
                answers(vec![rec(
                    "5.0.42.10.in-addr.arpa",
                    Data::Ptr("db-0.db.default.svc.cluster.local".into()),
                )]),
            ),
            (
                "6.0.42.10.in-addr.arpa",
                RecordType::PTR,
                answers(vec![rec(
                    "6.0.42.10.in-addr.arpa",
                    Data::Ptr("10-42-0-6.db.default.svc.cluster.local".into()),
                )]),
            ),
            // unready endpoint, unknown IP: not ours
            ("7.0.42.10.in-addr.arpa", RecordType::PTR, Answer::Forward),
            ("8.8.8.8.in-addr.arpa", RecordType::PTR, Answer::Forward),
            ("example.com", RecordType::A, Answer::Forward),
            (
                "cluster.local",
                RecordType::SOA,
                answers(vec![rec("cluster.local", Data::Soa)]),
            ),
            (
                "dns-version.cluster.local",
                RecordType::TXT,
                answers(vec![rec(
                    "dns-version.cluster.local",
                    Data::Txt("1.1.0".into()),
                )]),
            ),
            (
                "ns.dns.cluster.local",
                RecordType::A,
                answers(vec![a("ns.dns.cluster.local", "10.43.0.10")]),
            ),
            ("default.svc.cluster.local", RecordType::A, answers(vec![])),
            ("empty.svc.cluster.local", RecordType::A, Answer::NxDomain),
            ("svc.cluster.local", RecordType::A, answers(vec![])),
            ("bogus.cluster.local", RecordType::A, Answer::NxDomain),
        ];
        for (name, qtype, want) in cases {
            assert_eq!(r.lookup(&z, name, qtype), want, "{name} {qtype}");
        }
    }

    #[test]
    fn srv_of_external_name_and_multi_port_services() {
        let mut r = fixture();
        let z = zone();
        r.upsert_service(svc(
            "default",
            "extp",
            ServiceKind::ExternalName("example.com".into()),
            vec![port("https", "tcp", 443), port("dns", "udp", 53)],
        ));
        let extp = "extp.default.svc.cluster.local";
        let cases: Vec<(&str, Answer)> = vec![
            // every port, weight split between them, no address records for a foreign target
            (
                extp,
                answers(vec![
                    srv(extp, 50, 443, "example.com"),
                    srv(extp, 50, 53, "example.com"),
                ]),
            ),
            (
                "_dns._udp.extp.default.svc.cluster.local",
                answers(vec![srv(
                    "_dns._udp.extp.default.svc.cluster.local",
                    100,
                    53,
                    "example.com",
                )]),
            ),
            ("_dns._tcp.extp.default.svc.cluster.local", Answer::NxDomain),
        ];
        for (name, want) in cases {
            assert_eq!(r.lookup(&z, name, RecordType::SRV), want, "{name}");
        }
    }

    #[test]
    fn updates_and_deletes_change_answers() {
        let mut r = fixture();
        let z = zone();
        let db = "db.default.svc.cluster.local";
        // the unready endpoint turns ready, the hostname-less one goes away
        r.upsert_slice(SliceInfo {
            namespace: "default".into(),
            name: "db-abc".into(),
            service: "db".into(),
            endpoints: vec![
                ep("10.42.0.5", Some("db-0"), true),
                ep("10.42.0.7", Some("db-2"), true),
            ],
            ports: vec![],
        });
        assert_eq!(
            r.lookup(&z, db, RecordType::A),
            answers(vec![a(db, "10.42.0.5"), a(db, "10.42.0.7")])
        );
        assert_eq!(
            r.lookup(&z, "6.0.42.10.in-addr.arpa", RecordType::PTR),
            Answer::Forward
        );
        // a second slice of the same service adds to it
        r.upsert_slice(SliceInfo {
            namespace: "default".into(),
            name: "db-def".into(),
            service: "db".into(),
            endpoints: vec![ep("10.42.0.8", None, true)],
            ports: vec![],
        });
        assert_eq!(
            r.lookup(&z, db, RecordType::A),
            answers(vec![
                a(db, "10.42.0.8"),
                a(db, "10.42.0.5"),
                a(db, "10.42.0.7")
            ])
        );
        r.remove_slice("default", "db-abc");
        assert_eq!(
            r.lookup(&z, db, RecordType::A),
            answers(vec![a(db, "10.42.0.8")])
        );
        r.remove_service("default", "db");
        assert_eq!(r.lookup(&z, db, RecordType::A), Answer::NxDomain);
        assert_eq!(
            r.lookup(&z, "8.0.42.10.in-addr.arpa", RecordType::PTR),
            Answer::Forward
        );
        // a cluster IP change moves the PTR
        r.upsert_service(svc(
            "default",
            "web",
            ServiceKind::ClusterIp(vec![ip("10.43.0.21")]),
            vec![],
        ));
        assert_eq!(
            r.lookup(&z, "20.0.43.10.in-addr.arpa", RecordType::PTR),
            Answer::Forward
        );
        assert!(matches!(
            r.lookup(&z, "21.0.43.10.in-addr.arpa", RecordType::PTR),
            Answer::Records { ref answers, .. } if answers.len() == 1
        ));
        // the last service of a namespace takes the namespace name with it
        r.replace_services(vec![]);
        assert_eq!(
            r.lookup(&z, "default.svc.cluster.local", RecordType::A),
            Answer::NxDomain
        );
        assert_eq!(r.service_count(), 0);
    }

    #[test]
    fn service_info_from_objects() {
        let s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5", "fd00::5"],
                     "publishNotReadyAddresses": true,
                     "ports": [{"name": "http", "port": 80}, {"port": 81},
                               {"name": "q", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let i = service_info(&s).unwrap();
        assert_eq!(
            i.kind,
            ServiceKind::ClusterIp(vec![ip("10.43.0.5"), ip("fd00::5")])
        );
        assert_eq!(i.ports, vec![port("http", "tcp", 80), port("q", "udp", 53)]);
        assert!(i.publish_not_ready);
        let h: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h", "namespace": "ns"}, "spec": {"clusterIP": "None"}
        }))
        .unwrap();
        assert_eq!(service_info(&h).unwrap().kind, ServiceKind::Headless);
        let e: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e", "namespace": "ns"},
            "spec": {"type": "ExternalName", "externalName": "Example.COM."}
        }))
        .unwrap();
        assert_eq!(
            service_info(&e).unwrap().kind,
            ServiceKind::ExternalName("example.com".into())
        );
        let pending: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns"}, "spec": {}
        }))
        .unwrap();
        assert_eq!(
            service_info(&pending).unwrap().kind,
            ServiceKind::ClusterIp(vec![])
        );
    }

    #[test]
    fn slice_info_from_objects() {
        let s: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-x", "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.42.0.1"], "conditions": {"ready": true}, "hostname": "a"},
                {"addresses": ["10.42.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.42.0.3"]}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 9}]
        }))
        .unwrap();
        let i = slice_info(&s).unwrap();
        assert_eq!(i.service, "web");
        assert_eq!(
            i.endpoints,
            vec![
                ep("10.42.0.1", Some("a"), true),
                ep("10.42.0.2", None, false),
                ep("10.42.0.3", None, true)
            ]
        );
        assert_eq!(i.ports, vec![port("http", "tcp", 8080)]);
        let unlabeled: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "ns"}, "addressType": "IPv4", "endpoints": []
        }))
        .unwrap();
        assert_eq!(slice_info(&unlabeled), None);
    }
}
