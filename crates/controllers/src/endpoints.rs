//! The EndpointSlice controller, the legacy Endpoints controller and a ServiceLB-like
//! load-balancer status controller, after upstream's endpointslice-controller,
//! endpoints-controller and k3s's ServiceLB: pure computation of the desired slices and
//! subsets from a Service and its pods (table-tested), and the kube-rs edge reconciling them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, LoadBalancerIngress,
    Node, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::informer::{Change, Informer};
use crate::queue::Queue;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of the manager label.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The label marking objects of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Upstream's cap of addresses in an Endpoints object.
pub const MAX_ENDPOINTS_CAPACITY: usize = 1000;
/// The annotation set on a truncated Endpoints object.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Whether a pod belongs in a Service's endpoints (upstream `ShouldPodBeInEndpoints`): it has
/// an IP, is not terminal, and is not terminating unless `include_terminating`.
pub fn should_include(pod: &Pod, include_terminating: bool) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    if status.pod_ip.as_deref().unwrap_or("").is_empty() {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = status.phase.as_deref().unwrap_or("");
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    match restart {
        "Never" => phase != "Failed" && phase != "Succeeded",
        "OnFailure" => phase != "Succeeded",
        _ => phase != "Failed" && phase != "Succeeded",
    }
}

/// The container port a Service port targets on a pod (upstream `podutil.FindPort`): a
/// number as is, a name looked up among the pod's container ports of the same protocol.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Whether a pod's endpoint carries its hostname (upstream `ShouldSetHostname`).
fn hostname_of(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let h = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then(|| h.to_string())
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

fn pod_ipv4(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    let mut ips: Vec<String> = st.pod_ips.iter().flatten().map(|p| p.ip.clone()).collect();
    if ips.is_empty() {
        ips.extend(st.pod_ip.clone());
    }
    ips.into_iter()
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
}

/// The ports a pod serves for a Service (ports whose named target the pod lacks are left out).
fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.spec
        .as_ref()
        .map(|s| s.ports.iter().flatten())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            find_port(pod, sp).map(|n| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// One endpoint of a pod (upstream `podToEndpoint`).
pub fn pod_endpoint(svc: &Service, pod: &Pod, zone: Option<String>) -> Option<Endpoint> {
    let ip = pod_ipv4(pod)?;
    let serving = crate::podutil::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // "ready" is never true for a terminating pod unless not-ready addresses are published
    let ready = publish_not_ready(svc) || (serving && !terminating);
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname_of(pod, svc),
        node_name: node,
        target_ref: Some(target_ref(pod)),
        zone,
        ..Default::default()
    })
}

/// The ports of a group of endpoints, as a sortable key.
pub type PortSet = Vec<(String, i32, String)>;

fn port_key(ports: &[EndpointPort]) -> PortSet {
    let mut k: PortSet = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    k.sort();
    k
}

/// The desired endpoint slices' contents of a Service: endpoints grouped by the ports they
/// serve, each group sorted by address and cut into slices of at most `max` endpoints. A
/// Service without endpoints gets one empty slice (as upstream's placeholder).
pub fn desired_slices(
    svc: &Service,
    pods: &[Arc<Pod>],
    zone_of: &dyn Fn(&str) -> Option<String>,
    max: usize,
) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<PortSet, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in pods {
        if !should_include(pod, true) {
            continue;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let Some(ep) = pod_endpoint(svc, pod, zone_of(node)) else {
            continue;
        };
        let ports = endpoint_ports(svc, pod);
        let g = groups
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, Vec::new()));
        g.1.push(ep);
    }
    let mut out = Vec::new();
    for (_, (ports, mut eps)) in groups {
        eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        for chunk in eps.chunks(max.max(1)) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    if out.is_empty() {
        out.push((Vec::new(), Vec::new()));
    }
    out
}

/// The legacy Endpoints subsets of a Service (upstream endpoints-controller): ready pods in
/// `addresses`, the others in `notReadyAddresses` (all in `addresses` with
/// publishNotReadyAddresses), grouped by port set, capped at `cap` addresses in total.
/// Returns the subsets and whether they were truncated.
pub fn desired_subsets(
    svc: &Service,
    pods: &[Arc<Pod>],
    cap: usize,
) -> (Vec<EndpointSubset>, bool) {
    let tolerate = publish_not_ready(svc);
    type Group = (Vec<CorePort>, Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<PortSet, Group> = BTreeMap::new();
    for pod in pods {
        if !should_include(pod, tolerate) {
            continue;
        }
        let Some(ip) = pod_ipv4(pod) else { continue };
        let eports = endpoint_ports(svc, pod);
        if eports.is_empty() && !is_headless(svc) {
            continue;
        }
        let addr = EndpointAddress {
            ip,
            hostname: hostname_of(pod, svc),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(target_ref(pod)),
        };
        let ports: Vec<CorePort> = eports
            .iter()
            .map(|p| CorePort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: p.port.unwrap_or(0),
                protocol: p.protocol.clone(),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let g = groups
            .entry(port_key(&eports))
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if tolerate || crate::podutil::is_ready(pod) {
            g.1.push(addr);
        } else {
            g.2.push(addr);
        }
    }
    let mut total = 0usize;
    let mut truncated = false;
    let mut out = Vec::new();
    for (_, (mut ports, mut ready, mut not_ready)) in groups {
        ready.sort_by(|a, b| a.ip.cmp(&b.ip));
        not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
        for list in [&mut ready, &mut not_ready] {
            let room = cap.saturating_sub(total);
            if list.len() > room {
                list.truncate(room);
                truncated = true;
            }
            total += list.len();
        }
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        ports.sort_by(|a, b| a.name.cmp(&b.name).then(a.port.cmp(&b.port)));
        out.push(EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        });
    }
    (out, truncated)
}

/// The load-balancer ingress of a LoadBalancer Service: the InternalIPs of the Ready nodes
/// (k3s ServiceLB without per-node pools), sorted.
pub fn lb_ingress(nodes: &[Arc<Node>]) -> Vec<LoadBalancerIngress> {
    let mut ips: BTreeSet<String> = BTreeSet::new();
    for n in nodes {
        let Some(st) = &n.status else { continue };
        let ready = st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let cordoned = n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !ready || cordoned {
            continue;
        }
        for a in st.addresses.iter().flatten() {
            if a.type_ == "InternalIP" {
                ips.insert(a.address.clone());
            }
        }
    }
    ips.into_iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip),
            ip_mode: Some("VIP".into()),
            ..Default::default()
        })
        .collect()
}

fn selector_of(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = selector_of(svc) else {
        return false;
    };
    let labels = pod.metadata.labels.as_ref();
    sel.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// The labels of a Service's managed objects: the Service's own (but the service-name and
/// manager labels), plus the headless marker.
fn managed_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| k.as_str() != SERVICE_NAME_LABEL && k.as_str() != MANAGED_BY_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if is_headless(svc) {
        l.insert(HEADLESS_LABEL.into(), String::new());
    }
    l
}

/// The three controllers over one work queue of Service keys.
pub struct EndpointsController {
    client: Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    slices: Arc<Informer<EndpointSlice>>,
    queue: Queue,
    lb_queue: Queue,
}

impl EndpointsController {
    pub fn new(
        client: Client,
        services: Arc<Informer<Service>>,
        pods: Arc<Informer<Pod>>,
        nodes: Arc<Informer<Node>>,
        slices: Arc<Informer<EndpointSlice>>,
    ) -> Arc<Self> {
        let c = Arc::new(EndpointsController {
            client,
            services,
            pods,
            nodes,
            slices,
            queue: Queue::new(),
            lb_queue: Queue::new(),
        });
        let (q, lq) = (c.queue.clone(), c.lb_queue.clone());
        c.services.on_change(move |ch| {
            let s = match ch {
                Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s) => s,
            };
            let key = crate::informer::key_of(s);
            q.add(key.clone());
            lq.add(key);
        });
        let (q, svcs) = (c.queue.clone(), c.services.clone());
        c.pods.on_change(move |ch| {
            let pods: Vec<&Pod> = match ch {
                Change::Added(p) | Change::Deleted(p) => vec![p],
                Change::Updated { old, new } => vec![old, new],
            };
            let ns = pods[0].namespace().unwrap_or_default();
            for svc in svcs.store.state() {
                if svc.namespace().as_deref() == Some(ns.as_str())
                    && pods.iter().any(|p| selects(&svc, p))
                {
                    q.add(crate::informer::key_of(svc.as_ref()));
                }
            }
        });
        let q = c.queue.clone();
        c.slices.on_change(move |ch| {
            let s = match ch {
                Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s) => s,
            };
            if let (Some(ns), Some(name)) = (s.namespace(), s.labels().get(SERVICE_NAME_LABEL)) {
                if s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY) {
                    q.add(format!("{ns}/{name}"));
                }
            }
        });
        let (q, lq, svcs) = (c.queue.clone(), c.lb_queue.clone(), c.services.clone());
        c.nodes.on_change(move |ch| {
            let relevant = match ch {
                Change::Updated { old, new } => {
                    lb_ingress(&[Arc::new(old.clone())]) != lb_ingress(&[Arc::new(new.clone())])
                        || old.labels().get(ZONE_LABEL) != new.labels().get(ZONE_LABEL)
                }
                _ => true,
            };
            if !relevant {
                return;
            }
            for svc in svcs.store.state() {
                let key = crate::informer::key_of(svc.as_ref());
                if service_type(&svc) == "LoadBalancer" {
                    lq.add(key.clone());
                }
                if selector_of(&svc).is_some() {
                    q.add(key);
                }
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let c = self.clone();
        let eps = crate::queue::run_workers("endpoints", self.queue.clone(), workers, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        });
        let c = self.clone();
        let lb = crate::queue::run_workers("servicelb", self.lb_queue.clone(), 1, move |key| {
            let c = c.clone();
            async move { c.sync_lb(&key).await }
        });
        tokio::join!(eps, lb);
    }

    fn zone_of(&self, node: &str) -> Option<String> {
        if node.is_empty() {
            return None;
        }
        crate::informer::get(&self.nodes.store, "", node)
            .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = crate::informer::split_key(key);
        let svc = crate::informer::get(&self.services.store, ns, name);
        let ep_api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = svc.filter(|s| s.metadata.deletion_timestamp.is_none()) else {
            // slices go with their owner (garbage collector); the Endpoints object is ours
            if ep_api.get_opt(name).await?.is_some() {
                let _ = ep_api.delete(name, &DeleteParams::default()).await;
            }
            return Ok(());
        };
        // services without a selector are managed by their users
        if selector_of(&svc).is_none() || service_type(&svc) == "ExternalName" {
            return Ok(());
        }
        let pods: Vec<Arc<Pod>> = self
            .pods
            .store
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns) && selects(&svc, p))
            .collect();
        self.sync_slices(&svc, &pods).await?;
        self.sync_endpoints(&svc, &pods, &ep_api).await
    }

    async fn sync_slices(&self, svc: &Service, pods: &[Arc<Pod>]) -> anyhow::Result<()> {
        let ns = svc.namespace().unwrap_or_default();
        let name = svc.name_any();
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &ns);
        let desired = desired_slices(svc, pods, &|n| self.zone_of(n), MAX_ENDPOINTS_PER_SLICE);
        let mut existing: Vec<Arc<EndpointSlice>> = self
            .slices
            .store
            .state()
            .into_iter()
            .filter(|s| {
                s.namespace().as_deref() == Some(ns.as_str())
                    && s.labels().get(SERVICE_NAME_LABEL) == Some(&name)
                    && s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
                    && s.metadata.deletion_timestamp.is_none()
            })
            .collect();
        existing.sort_by_key(|s| s.name_any());
        let mut labels = managed_labels(svc);
        labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: name.clone(),
            uid: svc.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        // reuse the existing slices with the same ports first, in name order
        let mut unused: Vec<Arc<EndpointSlice>> = existing;
        for (ports, endpoints) in desired {
            let want_ports = (!ports.is_empty()).then_some(ports);
            let pos = unused
                .iter()
                .position(|s| s.ports == want_ports)
                .or_else(|| (!unused.is_empty()).then_some(0));
            match pos {
                Some(i) => {
                    let cur = unused.remove(i);
                    let same = cur.endpoints == endpoints
                        && cur.ports == want_ports
                        && cur.labels() == &labels
                        && cur.address_type == "IPv4";
                    if !same {
                        let mut s = (*cur).clone();
                        s.endpoints = endpoints;
                        s.ports = want_ports;
                        s.metadata.labels = Some(labels.clone());
                        s.metadata.owner_references = Some(vec![owner.clone()]);
                        s.metadata.managed_fields = None;
                        api.replace(&s.name_any(), &PostParams::default(), &s)
                            .await?;
                    }
                }
                None => {
                    let s = EndpointSlice {
                        metadata: ObjectMeta {
                            generate_name: Some(format!("{name}-")),
                            namespace: Some(ns.clone()),
                            labels: Some(labels.clone()),
                            owner_references: Some(vec![owner.clone()]),
                            ..Default::default()
                        },
                        address_type: "IPv4".into(),
                        endpoints,
                        ports: want_ports,
                    };
                    api.create(&PostParams::default(), &s).await?;
                }
            }
        }
        for s in unused {
            match api.delete(&s.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn sync_endpoints(
        &self,
        svc: &Service,
        pods: &[Arc<Pod>],
        api: &Api<Endpoints>,
    ) -> anyhow::Result<()> {
        let name = svc.name_any();
        let (subsets, truncated) = desired_subsets(svc, pods, MAX_ENDPOINTS_CAPACITY);
        let subsets = (!subsets.is_empty()).then_some(subsets);
        let labels = managed_labels(svc);
        let cur = api.get_opt(&name).await?;
        let mut annotations = cur
            .as_ref()
            .and_then(|c| c.metadata.annotations.clone())
            .unwrap_or_default();
        annotations.remove("endpoints.kubernetes.io/last-change-trigger-time");
        if truncated {
            annotations.insert(OVER_CAPACITY_ANNOTATION.into(), "truncated".into());
        } else {
            annotations.remove(OVER_CAPACITY_ANNOTATION);
        }
        match cur {
            Some(cur) => {
                let cur_ann = cur.metadata.annotations.clone().unwrap_or_default();
                let cur_labels = cur.metadata.labels.clone().unwrap_or_default();
                if cur.subsets == subsets && cur_ann == annotations && cur_labels == labels {
                    return Ok(());
                }
                let mut e = cur.clone();
                e.subsets = subsets;
                e.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
                e.metadata.labels = (!labels.is_empty()).then_some(labels);
                e.metadata.managed_fields = None;
                api.replace(&name, &PostParams::default(), &e).await?;
            }
            None => {
                let e = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: svc.namespace(),
                        labels: (!labels.is_empty()).then_some(labels),
                        annotations: (!annotations.is_empty()).then_some(annotations),
                        ..Default::default()
                    },
                    subsets,
                };
                match api.create(&PostParams::default(), &e).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// ServiceLB: a LoadBalancer Service (without a loadBalancerClass) gets the Ready nodes'
    /// InternalIPs as its ingress.
    async fn sync_lb(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = crate::informer::split_key(key);
        let Some(svc) = crate::informer::get(&self.services.store, ns, name) else {
            return Ok(());
        };
        let class = svc
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_class.as_deref());
        if service_type(&svc) != "LoadBalancer" || class.is_some() {
            return Ok(());
        }
        let want = lb_ingress(&self.nodes.store.state());
        let cur = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.clone())
            .unwrap_or_default();
        if cur == want {
            return Ok(());
        }
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": want}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
