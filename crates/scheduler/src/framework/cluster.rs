//! The scheduler's view of the cluster: nodes with the pods assigned to them (including pods
//! assumed but not yet bound), the aggregate requests and ports, images and namespace labels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use apimachinery::selector::LabelSelector;
use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm, Taint};

use super::resource::{node_allocatable, pod_requests, Resource};

/// A required inter-pod (anti-)affinity term, pre-compiled (upstream `framework.AffinityTerm`).
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    pub namespaces: HashSet<String>,
    pub namespace_selector: LabelSelector,
    pub selector: LabelSelector,
    pub topology_key: String,
}

impl AffinityTerm {
    /// Compiles a term of a pod in namespace `ns`; `None` for an invalid selector.
    pub fn new(ns: &str, t: &PodAffinityTerm) -> Option<AffinityTerm> {
        let selector = LabelSelector::from_api(t.label_selector.as_ref()).ok()?;
        let namespace_selector = LabelSelector::from_api(t.namespace_selector.as_ref()).ok()?;
        let mut namespaces: HashSet<String> = t.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.insert(ns.to_string());
        }
        Some(AffinityTerm { namespaces, namespace_selector, selector, topology_key: t.topology_key.clone() })
    }

    /// Whether the term selects `pod` (whose namespace has labels `ns_labels`).
    pub fn matches(&self, pod: &PodInfo, ns_labels: &BTreeMap<String, String>) -> bool {
        (self.namespaces.contains(&pod.namespace) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(&pod.labels)
    }
}

/// A preferred (weighted) inter-pod (anti-)affinity term.
#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i64,
}

/// A host port a pod uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports conflict (same protocol and port, and an overlapping address).
    pub fn conflicts(&self, o: &HostPort) -> bool {
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

/// A pod with everything the plugins need pre-computed once.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub requests: Resource,
    pub non_zero_requests: Resource,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    pub host_ports: Vec<HostPort>,
    pub priority: i32,
    pub terminating: bool,
}

fn weighted(ns: &str, terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>) -> Vec<WeightedAffinityTerm> {
    terms
        .into_iter()
        .flatten()
        .filter_map(|w| {
            Some(WeightedAffinityTerm { term: AffinityTerm::new(ns, &w.pod_affinity_term)?, weight: w.weight as i64 })
        })
        .collect()
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let meta = &pod.metadata;
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let spec = pod.spec.as_ref();
        let aff = spec.and_then(|s| s.affinity.as_ref());
        let pa = aff.and_then(|a| a.pod_affinity.as_ref());
        let paa = aff.and_then(|a| a.pod_anti_affinity.as_ref());
        let req = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms.into_iter().flatten().filter_map(|t| AffinityTerm::new(&ns, t)).collect()
        };
        let mut host_ports = Vec::new();
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p.host_ip.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port: hp,
                    });
                }
            }
        }
        PodInfo {
            uid: meta.uid.clone().unwrap_or_else(|| format!("{}/{}", ns, meta.name.clone().unwrap_or_default())),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            required_affinity: req(pa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
            required_anti_affinity: req(paa.and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())),
            preferred_affinity: weighted(&ns, pa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())),
            preferred_anti_affinity: weighted(
                &ns,
                paa.and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref()),
            ),
            host_ports,
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            terminating: meta.deletion_timestamp.is_some(),
            namespace: ns,
            pod,
        }
    }

    /// Whether the pod has any inter-pod affinity or anti-affinity term.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    pub fn node_name(&self) -> Option<&str> {
        self.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
    }

    /// Container images (init and app containers), normalized with a default tag.
    pub fn images(&self) -> Vec<String> {
        let Some(spec) = self.pod.spec.as_ref() else { return Vec::new() };
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .filter_map(|c| c.image.as_deref())
            .map(normalized_image_name)
            .collect()
    }
}

/// Adds the default `latest` tag to an image reference without tag or digest.
pub fn normalized_image_name(name: &str) -> String {
    let slash = name.rfind('/').map(|i| i as isize).unwrap_or(-1);
    let colon = name.rfind(':').map(|i| i as isize).unwrap_or(-1);
    if colon <= slash && !name.contains('@') {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// A node and the pods assigned to it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resource,
    pub pods: Vec<Arc<PodInfo>>,
    /// Number of pods with any inter-pod affinity term.
    pub pods_with_affinity: usize,
    /// Number of pods with a required anti-affinity term.
    pub pods_with_required_anti_affinity: usize,
    pub requested: Resource,
    pub non_zero_requested: Resource,
    pub used_ports: Vec<HostPort>,
    /// Normalized image name -> size in bytes.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let mut n = NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            unschedulable: false,
            allocatable: Resource::default(),
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            used_ports: Vec::new(),
            images: HashMap::new(),
            node: node.clone(),
        };
        n.set_node(node);
        n
    }

    fn set_node(&mut self, node: Arc<Node>) {
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.allocatable = node_allocatable(&node);
        self.images.clear();
        for img in node.status.as_ref().and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for n in img.names.iter().flatten() {
                self.images.insert(normalized_image_name(n), img.size_bytes.unwrap_or(0));
            }
        }
        self.node = node;
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.non_zero_requested.milli_cpu += p.non_zero_requests.milli_cpu;
        self.non_zero_requested.memory += p.non_zero_requests.memory;
        self.used_ports.extend(p.host_ports.iter().cloned());
        if p.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(p);
    }

    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.non_zero_requested.milli_cpu -= p.non_zero_requests.milli_cpu;
        self.non_zero_requested.memory -= p.non_zero_requests.memory;
        for hp in &p.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if p.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !p.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        Some(p)
    }
}

/// The cluster as the scheduler sees it. Pods may reference nodes not (yet) known; they are kept
/// aside and attached when the node appears.
#[derive(Debug, Default)]
pub struct Cluster {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pods on nodes without a Node object, by node name.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Pod uid -> node name.
    pod_node: HashMap<String, String>,
    ns_labels: HashMap<String, BTreeMap<String, String>>,
    /// Normalized image name -> number of nodes that have it.
    image_nodes: HashMap<String, usize>,
    empty_labels: BTreeMap<String, String>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::default()
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Labels of a namespace (empty when unknown).
    pub fn namespace_labels(&self, ns: &str) -> &BTreeMap<String, String> {
        self.ns_labels.get(ns).unwrap_or(&self.empty_labels)
    }

    pub fn set_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.ns_labels.insert(name.to_string(), labels);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.ns_labels.remove(name);
    }

    /// Number of nodes that have an image (normalized name).
    pub fn image_node_count(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    fn count_images(&mut self, i: usize, delta: isize) {
        for img in self.nodes[i].images.keys() {
            let e = self.image_nodes.entry(img.clone()).or_default();
            *e = (*e as isize + delta).max(0) as usize;
        }
    }

    /// Adds or updates a node.
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            self.count_images(i, -1);
            self.nodes[i].set_node(node);
            self.count_images(i, 1);
            return;
        }
        let mut info = NodeInfo::new(node);
        for p in self.orphans.remove(&name).unwrap_or_default() {
            info.add_pod(p);
        }
        self.nodes.push(info);
        let i = self.nodes.len() - 1;
        self.index.insert(name, i);
        self.count_images(i, 1);
    }

    /// Removes a node; its pods are kept aside until they are removed or the node comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else { return };
        self.count_images(i, -1);
        let info = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.index.insert(self.nodes[i].name.clone(), i);
        }
        if !info.pods.is_empty() {
            self.orphans.insert(name.to_string(), info.pods);
        }
    }

    /// The node a pod is accounted on.
    pub fn pod_node(&self, uid: &str) -> Option<&str> {
        self.pod_node.get(uid).map(String::as_str)
    }

    /// Accounts a pod on `node` (replacing an earlier version of it).
    pub fn add_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.uid);
        self.pod_node.insert(pod.uid.clone(), node.to_string());
        match self.index.get(node) {
            Some(&i) => self.nodes[i].add_pod(pod),
            None => self.orphans.entry(node.to_string()).or_default().push(pod),
        }
    }

    /// Removes a pod from its node.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let node = self.pod_node.remove(uid)?;
        match self.index.get(&node) {
            Some(&i) => self.nodes[i].remove_pod(uid),
            None => {
                let list = self.orphans.get_mut(&node)?;
                let j = list.iter().position(|p| p.uid == uid)?;
                let p = list.swap_remove(j);
                if list.is_empty() {
                    self.orphans.remove(&node);
                }
                Some(p)
            }
        }
    }

    /// Uids of all accounted pods.
    pub fn pod_uids(&self) -> Vec<String> {
        self.pod_node.keys().cloned().collect()
    }

    /// Names of all nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Number of pods accounted (on known and unknown nodes).
    pub fn num_pods(&self) -> usize {
        self.pod_node.len()
    }

    /// Whether any pod in the cluster has inter-pod affinity terms.
    pub fn any_pod_with_affinity(&self) -> bool {
        self.nodes.iter().any(|n| n.pods_with_affinity > 0)
    }
}
