//! The proxy's view of the cluster: Services and EndpointSlices reduced to service ports with
//! their endpoints, as kube-proxy's ServicePort/Endpoint caches (sans-IO).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Services with this label belong to another proxy (upstream skips them too).
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// The default sessionAffinity ClientIP timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// A transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The name nft uses (`tcp`, `udp`, `sctp`).
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One endpoint (address and target port) of a service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this proxy's node.
    pub local: bool,
}

/// One port of one Service with everything needed to program it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name (empty for a single unnamed port).
    pub port_name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// The cluster IPs (IPv4 only; none for headless services).
    pub cluster_ips: Vec<Ipv4Addr>,
    pub node_port: Option<u16>,
    /// spec.externalIPs and status.loadBalancer.ingress IPs.
    pub external_ips: Vec<Ipv4Addr>,
    /// sessionAffinity ClientIP: the timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// internalTrafficPolicy Local.
    pub internal_local: bool,
    /// externalTrafficPolicy Local (only meaningful with external entry points).
    pub external_local: bool,
    /// Endpoints sorted and deduplicated by address and port.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `ns/name/proto/port`: unique per service port, used in chain names.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.nft(),
            self.port
        )
    }

    /// Has NodePort, externalIPs or LoadBalancer ingress IPs.
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }

    /// The endpoints cluster traffic is balanced over: the ready ones, or, when none is ready,
    /// the serving terminating ones (upstream's CategorizeEndpoints).
    pub fn cluster_endpoints(&self) -> Vec<&Endpoint> {
        usable(self.endpoints.iter())
    }

    /// The same choice among this node's endpoints only.
    pub fn local_endpoints(&self) -> Vec<&Endpoint> {
        usable(self.endpoints.iter().filter(|e| e.local))
    }
}

fn usable<'a>(eps: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = eps.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    eps.filter(|e| e.serving && e.terminating).collect()
}

fn ipv4s<'a>(ips: impl Iterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = ips.filter_map(|s| s.parse().ok()).collect();
    out.sort();
    out.dedup();
    out
}

/// The ports of `svc` with their endpoints from `slices` (the slices of this service; others are
/// ignored). `node` is the proxy's node name. Services the proxy does not handle (ExternalName,
/// headless, another proxy's) give no ports.
pub fn service_ports(svc: &Service, slices: &[&EndpointSlice], node: &str) -> Vec<ServicePort> {
    let meta = &svc.metadata;
    let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return vec![];
    };
    if meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL))
    {
        return vec![];
    }
    let Some(spec) = &svc.spec else {
        return vec![];
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return vec![];
    }
    let mut cluster_ips: Vec<String> = spec.cluster_ips.clone().unwrap_or_default();
    if let Some(ip) = &spec.cluster_ip {
        cluster_ips.push(ip.clone());
    }
    let cluster_ips = ipv4s(cluster_ips.iter());
    if cluster_ips.is_empty() {
        // headless (clusterIP None) or not yet allocated
        return vec![];
    }
    let mut external: Vec<String> = spec.external_ips.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        if let Some(ingress) = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
        {
            // ipMode Proxy means an external load balancer must see the traffic first
            external.extend(
                ingress
                    .iter()
                    .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                    .filter_map(|i| i.ip.clone()),
            );
        }
    }
    let external_ips = ipv4s(external.iter());
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .map(|t| t.clamp(1, 86400) as u32)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let is_node_port = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else {
            continue;
        };
        let Ok(port) = u16::try_from(p.port) else {
            continue;
        };
        let port_name = p.name.clone().unwrap_or_default();
        let node_port = if is_node_port {
            p.node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
        } else {
            None
        };
        let mut eps: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
        for slice in slices {
            if slice.address_type != "IPv4" {
                continue;
            }
            let Some(target) = slice.ports.iter().flatten().find(|sp| {
                sp.name.as_deref().unwrap_or("") == port_name
                    && Protocol::parse(sp.protocol.as_deref()) == Some(protocol)
            }) else {
                continue;
            };
            let Some(target_port) = target.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            for ep in &slice.endpoints {
                let cond = ep.conditions.as_ref();
                // nil ready means ready; nil serving means as ready; nil terminating means not
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                let local = ep.node_name.as_deref() == Some(node);
                for addr in &ep.addresses {
                    let Ok(ip) = addr.parse::<Ipv4Addr>() else {
                        continue;
                    };
                    eps.entry((ip, target_port)).or_insert(Endpoint {
                        ip,
                        port: target_port,
                        ready,
                        serving,
                        terminating,
                        local,
                    });
                }
            }
        }
        out.push(ServicePort {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port_name,
            protocol,
            port,
            cluster_ips: cluster_ips.clone(),
            node_port,
            external_ips: external_ips.clone(),
            affinity_timeout,
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
            endpoints: eps.into_values().collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    fn slice(json: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json).unwrap()
    }

    fn web() -> Service {
        svc(serde_json::json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.43.0.10", "type": "NodePort",
                "ports": [
                    {"name": "http", "port": 80, "nodePort": 30080},
                    {"name": "dns", "port": 53, "protocol": "UDP"}
                ]}
        }))
    }

    fn web_slice() -> EndpointSlice {
        slice(serde_json::json!({
            "metadata": {"namespace": "default", "name": "web-1",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "nodeName": "n1"},
                {"addresses": ["10.42.0.6"], "nodeName": "n2", "conditions": {"ready": false}},
                {"addresses": ["10.42.0.7"], "nodeName": "n1",
                    "conditions": {"ready": false, "serving": true, "terminating": true}}
            ]
        }))
    }

    #[test]
    fn ports_and_endpoints() {
        let s = web_slice();
        let ports = service_ports(&web(), &[&s], "n1");
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.id(), "default/web/tcp/80");
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.cluster_ips, vec![Ipv4Addr::new(10, 43, 0, 10)]);
        assert_eq!(http.endpoints.len(), 3);
        assert!(http.endpoints.iter().all(|e| e.port == 8080));
        let cluster: Vec<_> = http.cluster_endpoints().iter().map(|e| e.ip).collect();
        assert_eq!(cluster, vec![Ipv4Addr::new(10, 42, 0, 5)]);
        let dns = &ports[1];
        assert_eq!(dns.protocol, Protocol::Udp);
        assert!(dns.node_port.is_none());
        assert!(dns.endpoints.iter().all(|e| e.port == 5353));
    }

    #[test]
    fn endpoint_categories() {
        let ep = |last: u8, ready, serving, terminating, local| Endpoint {
            ip: Ipv4Addr::new(10, 0, 0, last),
            port: 80,
            ready,
            serving,
            terminating,
            local,
        };
        // (endpoints, cluster choice, local choice)
        let cases: Vec<(Vec<Endpoint>, Vec<u8>, Vec<u8>)> = vec![
            (
                vec![
                    ep(1, true, true, false, true),
                    ep(2, true, true, false, false),
                ],
                vec![1, 2],
                vec![1],
            ),
            // terminating ones only when no ready one exists
            (
                vec![
                    ep(1, true, true, false, false),
                    ep(2, false, true, true, true),
                ],
                vec![1],
                vec![2],
            ),
            (
                vec![
                    ep(1, false, true, true, false),
                    ep(2, false, false, true, true),
                ],
                vec![1],
                vec![],
            ),
            // not ready and not terminating: never used
            (vec![ep(1, false, false, false, true)], vec![], vec![]),
        ];
        for (eps, cluster, local) in cases {
            let sp = ServicePort {
                namespace: "ns".into(),
                name: "s".into(),
                port_name: String::new(),
                protocol: Protocol::Tcp,
                port: 80,
                cluster_ips: vec![Ipv4Addr::new(10, 43, 0, 1)],
                node_port: None,
                external_ips: vec![],
                affinity_timeout: None,
                internal_local: false,
                external_local: false,
                endpoints: eps.clone(),
            };
            let got: Vec<u8> = sp
                .cluster_endpoints()
                .iter()
                .map(|e| e.ip.octets()[3])
                .collect();
            assert_eq!(got, cluster, "{eps:?}");
            let got: Vec<u8> = sp
                .local_endpoints()
                .iter()
                .map(|e| e.ip.octets()[3])
                .collect();
            assert_eq!(got, local, "{eps:?}");
        }
    }

    #[test]
    fn skipped_services() {
        let cases = [
            serde_json::json!({"metadata": {"namespace": "d", "name": "x"},
                "spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}}),
            serde_json::json!({"metadata": {"namespace": "d", "name": "x"},
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
            serde_json::json!({"metadata": {"namespace": "d", "name": "x",
                "labels": {"service.kubernetes.io/service-proxy-name": "other"}},
                "spec": {"clusterIP": "10.43.0.3", "ports": [{"port": 80}]}}),
        ];
        for c in cases {
            assert!(service_ports(&svc(c.clone()), &[], "n").is_empty(), "{c}");
        }
    }

    #[test]
    fn external_affinity_and_policies() {
        let s = svc(serde_json::json!({
            "metadata": {"namespace": "d", "name": "lb"},
            "spec": {"clusterIP": "10.43.0.20", "type": "LoadBalancer",
                "externalIPs": ["192.0.2.9"],
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}},
                "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
                "ports": [{"port": 443, "nodePort": 31443, "protocol": "SCTP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "192.0.2.2", "ipMode": "Proxy"}]}}
        }));
        let ports = service_ports(&s, &[], "n");
        assert_eq!(ports.len(), 1);
        let p = &ports[0];
        assert_eq!(p.protocol, Protocol::Sctp);
        assert_eq!(p.affinity_timeout, Some(30));
        assert!(p.external_local && p.internal_local);
        assert_eq!(
            p.external_ips,
            vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 9)]
        );
        assert_eq!(p.node_port, Some(31443));
        assert!(p.endpoints.is_empty());
        let mut s2 = s.clone();
        s2.spec.as_mut().unwrap().session_affinity_config = None;
        assert_eq!(
            service_ports(&s2, &[], "n")[0].affinity_timeout,
            Some(DEFAULT_AFFINITY_TIMEOUT)
        );
    }
}
