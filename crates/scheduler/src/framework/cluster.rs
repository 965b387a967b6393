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
    /// Identity of the term (identical terms of different pods share it).
    pub key: String,
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
        let mut sorted: Vec<&String> = namespaces.iter().collect();
        sorted.sort();
        let key = format!(
            "{sorted:?}|{namespace_selector:?}|{selector:?}|{}",
            t.topology_key
        );
        Some(AffinityTerm {
            key,
            namespaces,
            namespace_selector,
            selector,
            topology_key: t.topology_key.clone(),
        })
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

fn weighted(
    ns: &str,
    terms: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>,
) -> Vec<WeightedAffinityTerm> {
    terms
        .into_iter()
        .flatten()
        .filter_map(|w| {
            Some(WeightedAffinityTerm {
                term: AffinityTerm::new(ns, &w.pod_affinity_term)?,
                weight: w.weight as i64,
            })
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
            terms
                .into_iter()
                .flatten()
                .filter_map(|t| AffinityTerm::new(&ns, t))
                .collect()
        };
        let mut host_ports = Vec::new();
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port: hp,
                    });
                }
            }
        }
        PodInfo {
            uid: meta
                .uid
                .clone()
                .unwrap_or_else(|| format!("{}/{}", ns, meta.name.clone().unwrap_or_default())),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            required_affinity: req(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: req(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: weighted(
                &ns,
                pa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
            ),
            preferred_anti_affinity: weighted(
                &ns,
                paa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
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
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    /// Container images (init and app containers), normalized with a default tag.
    pub fn images(&self) -> Vec<String> {
        let Some(spec) = self.pod.spec.as_ref() else {
            return Vec::new();
        };
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

/// Identical inter-pod terms of existing pods, with the number of such pods per topology value
/// of the term's key (lets a scheduling cycle evaluate each distinct term once).
#[derive(Clone, Debug)]
pub struct TermGroup {
    pub term: AffinityTerm,
    pub weight: i64,
    pub counts: HashMap<String, i64>,
}

#[derive(Clone, Debug, Default)]
pub struct TermIndex {
    groups: HashMap<String, TermGroup>,
}

impl TermIndex {
    fn update(
        &mut self,
        term: &AffinityTerm,
        weight: i64,
        labels: &BTreeMap<String, String>,
        delta: i64,
    ) {
        let Some(v) = labels.get(&term.topology_key) else {
            return;
        };
        let key = format!("{weight}|{}", term.key);
        let g = self.groups.entry(key.clone()).or_insert_with(|| TermGroup {
            term: term.clone(),
            weight,
            counts: HashMap::new(),
        });
        let c = g.counts.entry(v.clone()).or_insert(0);
        *c += delta;
        if *c == 0 {
            g.counts.remove(v);
            if g.counts.is_empty() {
                self.groups.remove(&key);
            }
        }
    }

    pub fn groups(&self) -> impl Iterator<Item = &TermGroup> {
        self.groups.values()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Adds (delta 1) or removes (delta -1) a pod's terms on a node with `labels` to the indexes.
fn index_terms(
    anti: &mut TermIndex,
    score: &mut TermIndex,
    p: &PodInfo,
    labels: &BTreeMap<String, String>,
    delta: i64,
) {
    for t in &p.required_anti_affinity {
        anti.update(t, 0, labels, delta);
    }
    for t in &p.required_affinity {
        score.update(
            t,
            crate::framework::plugins::inter_pod_affinity::HARD_POD_AFFINITY_WEIGHT,
            labels,
            delta,
        );
    }
    for w in &p.preferred_affinity {
        score.update(&w.term, w.weight, labels, delta);
    }
    for w in &p.preferred_anti_affinity {
        score.update(&w.term, -w.weight, labels, delta);
    }
}

/// The pod selector of a workload controller.
#[derive(Clone, Debug)]
pub enum ControllerSelector {
    /// A ReplicationController's equality selector.
    Set(BTreeMap<String, String>),
    /// A ReplicaSet's or StatefulSet's label selector.
    Selector(LabelSelector),
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
        for img in node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
        {
            for n in img.names.iter().flatten() {
                self.images
                    .insert(normalized_image_name(n), img.size_bytes.unwrap_or(0));
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
    /// Required anti-affinity terms of pods on known nodes.
    anti_terms: TermIndex,
    /// Terms of pods on known nodes that score other pods (required affinity, preferred terms).
    score_terms: TermIndex,
    /// Service selectors by namespace and name (for default spreading).
    services: HashMap<String, HashMap<String, BTreeMap<String, String>>>,
    /// Selectors of ReplicationControllers, ReplicaSets and StatefulSets by (kind, namespace, name).
    controllers: HashMap<(String, String, String), ControllerSelector>,
    /// Pending pods nominated to a node (by preemption), by node name.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Nominated pod uid -> node name.
    nominated_of: HashMap<String, String>,
    /// label key -> value -> pod uid -> pod, for every accounted pod.
    label_index: HashMap<String, HashMap<String, HashMap<String, Arc<PodInfo>>>>,
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
            let old_labels = self.nodes[i].labels.clone();
            self.nodes[i].set_node(node);
            self.count_images(i, 1);
            let n = &self.nodes[i];
            if n.labels != old_labels {
                for p in &n.pods {
                    index_terms(
                        &mut self.anti_terms,
                        &mut self.score_terms,
                        p,
                        &old_labels,
                        -1,
                    );
                    index_terms(&mut self.anti_terms, &mut self.score_terms, p, &n.labels, 1);
                }
            }
            return;
        }
        let mut info = NodeInfo::new(node);
        for p in self.orphans.remove(&name).unwrap_or_default() {
            index_terms(
                &mut self.anti_terms,
                &mut self.score_terms,
                &p,
                &info.labels,
                1,
            );
            info.add_pod(p);
        }
        self.nodes.push(info);
        let i = self.nodes.len() - 1;
        self.index.insert(name, i);
        self.count_images(i, 1);
    }

    /// Removes a node; its pods are kept aside until they are removed or the node comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        self.count_images(i, -1);
        let info = self.nodes.swap_remove(i);
        for p in &info.pods {
            index_terms(
                &mut self.anti_terms,
                &mut self.score_terms,
                p,
                &info.labels,
                -1,
            );
        }
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
        for (k, v) in &pod.labels {
            self.label_index
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(pod.uid.clone(), pod.clone());
        }
        match self.index.get(node) {
            Some(&i) => {
                index_terms(
                    &mut self.anti_terms,
                    &mut self.score_terms,
                    &pod,
                    &self.nodes[i].labels,
                    1,
                );
                self.nodes[i].add_pod(pod)
            }
            None => self.orphans.entry(node.to_string()).or_default().push(pod),
        }
    }

    /// Removes a pod from its node.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let node = self.pod_node.remove(uid)?;
        let p = self.remove_from_node(&node, uid)?;
        for (k, v) in &p.labels {
            if let Some(vals) = self.label_index.get_mut(k) {
                if let Some(pods) = vals.get_mut(v) {
                    pods.remove(uid);
                    if pods.is_empty() {
                        vals.remove(v);
                    }
                }
                if vals.is_empty() {
                    self.label_index.remove(k);
                }
            }
        }
        Some(p)
    }

    fn remove_from_node(&mut self, node: &str, uid: &str) -> Option<Arc<PodInfo>> {
        match self.index.get(node) {
            Some(&i) => {
                let p = self.nodes[i].remove_pod(uid)?;
                index_terms(
                    &mut self.anti_terms,
                    &mut self.score_terms,
                    &p,
                    &self.nodes[i].labels,
                    -1,
                );
                Some(p)
            }
            None => {
                let list = self.orphans.get_mut(node)?;
                let j = list.iter().position(|p| p.uid == uid)?;
                let p = list.swap_remove(j);
                if list.is_empty() {
                    self.orphans.remove(node);
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

    /// Records (or clears, with `None`) the node a pending pod is nominated to.
    pub fn set_nominated(&mut self, pod: &Arc<PodInfo>, node: Option<&str>) {
        self.clear_nominated(&pod.uid);
        if let Some(n) = node {
            self.nominated_of.insert(pod.uid.clone(), n.to_string());
            self.nominated
                .entry(n.to_string())
                .or_default()
                .push(pod.clone());
        }
    }

    /// Records a Service's selector (`None`: the service selects nothing).
    pub fn set_service(
        &mut self,
        ns: &str,
        name: &str,
        selector: Option<BTreeMap<String, String>>,
    ) {
        let m = self.services.entry(ns.to_string()).or_default();
        match selector {
            Some(sel) => {
                m.insert(name.to_string(), sel);
            }
            None => {
                m.remove(name);
            }
        }
    }

    /// Records (or with `None` forgets) a controller's selector; kind is `ReplicationController`,
    /// `ReplicaSet` or `StatefulSet`.
    pub fn set_controller(
        &mut self,
        kind: &str,
        ns: &str,
        name: &str,
        selector: Option<ControllerSelector>,
    ) {
        let key = (kind.to_string(), ns.to_string(), name.to_string());
        match selector {
            Some(s) => {
                self.controllers.insert(key, s);
            }
            None => {
                self.controllers.remove(&key);
            }
        }
    }

    /// Upstream `helper.DefaultSelector`: the merged selectors of the Services selecting the pod
    /// and of its controlling ReplicationController, ReplicaSet or StatefulSet.
    pub fn default_selector(&self, pod: &PodInfo) -> LabelSelector {
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        for sel in self
            .services
            .get(&pod.namespace)
            .into_iter()
            .flat_map(|m| m.values())
        {
            if sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let owner = pod
            .pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let mut extra = Vec::new();
        if let Some(o) = owner {
            let kind = match (o.api_version.as_str(), o.kind.as_str()) {
                ("v1", "ReplicationController")
                | ("apps/v1", "ReplicaSet")
                | ("apps/v1", "StatefulSet") => Some(&o.kind),
                _ => None,
            };
            let key = kind.map(|k| (k.clone(), pod.namespace.clone(), o.name.clone()));
            match key.and_then(|k| self.controllers.get(&k)) {
                Some(ControllerSelector::Set(m)) => {
                    set.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())))
                }
                Some(ControllerSelector::Selector(sel)) => {
                    extra.extend(sel.requirements().iter().cloned())
                }
                None => {}
            }
        }
        let mut sel = LabelSelector::from_set(set.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for r in extra {
            sel.add(r);
        }
        sel
    }

    /// Forgets the nomination of a pod.
    pub fn clear_nominated(&mut self, uid: &str) {
        if let Some(old) = self.nominated_of.remove(uid) {
            if let Some(list) = self.nominated.get_mut(&old) {
                list.retain(|p| p.uid != uid);
                if list.is_empty() {
                    self.nominated.remove(&old);
                }
            }
        }
    }

    /// Pending pods nominated to a node.
    pub fn nominated_on(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated
            .get(node)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Grouped required anti-affinity terms of the pods on known nodes.
    pub fn anti_affinity_terms(&self) -> &TermIndex {
        &self.anti_terms
    }

    /// Grouped scoring terms of the pods on known nodes (weight: hard affinity weight for
    /// required affinity, +w preferred affinity, -w preferred anti-affinity).
    pub fn scoring_terms(&self) -> &TermIndex {
        &self.score_terms
    }

    /// Pods on known nodes that may match `sel` (narrowed by one of its exact-match labels), with
    /// their node.
    pub fn candidates<'a>(
        &'a self,
        sel: &'a LabelSelector,
    ) -> Box<dyn Iterator<Item = (&'a Arc<PodInfo>, &'a NodeInfo)> + 'a> {
        if sel.is_nothing() {
            return Box::new(std::iter::empty());
        }
        let exact = sel
            .requirements()
            .iter()
            .find_map(|r| sel.requires_exact_match(r.key()).map(|v| (r.key(), v)));
        match exact {
            Some((k, v)) => {
                let pods = self.label_index.get(k).and_then(|m| m.get(v));
                Box::new(
                    pods.into_iter()
                        .flat_map(|m| m.values())
                        .filter_map(move |p| {
                            let n = self.pod_node.get(&p.uid)?;
                            let i = self.index.get(n)?;
                            Some((p, &self.nodes[*i]))
                        }),
                )
            }
            None => Box::new(
                self.nodes
                    .iter()
                    .flat_map(|n| n.pods.iter().map(move |p| (p, n))),
            ),
        }
    }

    /// Whether any pod in the cluster has inter-pod affinity terms.
    pub fn any_pod_with_affinity(&self) -> bool {
        self.nodes.iter().any(|n| n.pods_with_affinity > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    fn anti_counts(c: &Cluster) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = c
            .anti_affinity_terms()
            .groups()
            .flat_map(|g| g.counts.iter().map(|(k, n)| (k.clone(), *n)))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn term_and_label_indexes_follow_pods_and_nodes() {
        let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}});
        let mut c = cluster(
            vec![
                node("n1", "1", "1Gi", json!({"zone": "a"}), json!({})),
                node("n2", "1", "1Gi", json!({"zone": "a"}), json!({})),
            ],
            vec![],
        );
        // Identical terms of two pods share one group.
        c.add_pod(
            Arc::new(pod_with("p1", json!({"app": "web"}), anti.clone())),
            "n1",
        );
        c.add_pod(
            Arc::new(pod_with("p2", json!({"app": "web"}), anti.clone())),
            "n2",
        );
        assert_eq!(c.anti_affinity_terms().groups().count(), 1);
        assert_eq!(anti_counts(&c), vec![("a".to_string(), 2)]);
        // A node relabelled moves its pods' terms to the new domain.
        c.upsert_node(Arc::new(node(
            "n2",
            "1",
            "1Gi",
            json!({"zone": "b"}),
            json!({}),
        )));
        assert_eq!(
            anti_counts(&c),
            vec![("a".to_string(), 1), ("b".to_string(), 1)]
        );
        // Removed pods leave the indexes.
        c.remove_pod("uid-p1");
        assert_eq!(anti_counts(&c), vec![("b".to_string(), 1)]);
        let sel = LabelSelector::from_set([("app", "web")]);
        assert_eq!(
            c.candidates(&sel)
                .map(|(p, n)| (p.name.clone(), n.name.clone()))
                .collect::<Vec<_>>(),
            vec![("p2".to_string(), "n2".to_string())]
        );
        // Pods of a removed node leave the term index and come back with it.
        c.remove_node("n2");
        assert!(c.anti_affinity_terms().is_empty());
        assert_eq!(c.candidates(&sel).count(), 0);
        c.upsert_node(Arc::new(node(
            "n2",
            "1",
            "1Gi",
            json!({"zone": "c"}),
            json!({}),
        )));
        assert_eq!(anti_counts(&c), vec![("c".to_string(), 1)]);
        assert_eq!(c.candidates(&sel).count(), 1);
        assert_eq!(c.candidates(&LabelSelector::everything()).count(), 1);
        assert_eq!(c.candidates(&LabelSelector::nothing()).count(), 0);
    }
}
