//! The oxkube service proxy: watches Services, EndpointSlices and its own Node through kube-rs
//! and programs one nftables table per node, after kube-proxy's nftables mode.
//!
//! - [`model`] reduces API objects to service ports and endpoints (sans-IO);
//! - [`rules`] turns them into a [`rules::Ruleset`] and renders full or incremental nft
//!   transactions (sans-IO);
//! - [`nft`] applies transactions with `nft -f -` and flushes stale UDP conntrack entries;
//! - [`Proxier`] keeps what the kernel has and decides between a full replace and an
//!   incremental update; [`run`] drives it from the API.

pub mod model;
pub mod nft;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use crate::model::ServicePort;
use crate::nft::{Conntrack, Nft};
use crate::rules::{RuleConfig, Ruleset};

/// The default table name (one per node; test clusters sharing a host need their own).
pub const DEFAULT_TABLE: &str = "oxkube-proxy";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Nft(#[from] nft::Error),
    #[error("invalid table name {0:?} (letters, digits, '-' and '_', at most 64)")]
    TableName(String),
    #[error("proxy sync task failed: {0}")]
    Task(String),
}

/// Settings of the proxy.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name: endpoints with this nodeName are local.
    pub node_name: String,
    /// The nft table (family ip).
    pub table: String,
    /// Pod traffic comes from this CIDR (upstream's --cluster-cidr); None: the Node's
    /// spec.podCIDR (upstream's NodeCIDR local detector).
    pub cluster_cidr: Option<String>,
    /// Masquerade all traffic to cluster IPs.
    pub masquerade_all: bool,
    /// Addresses node ports are served on, besides the Node's InternalIP/ExternalIP addresses.
    pub node_ips: Vec<Ipv4Addr>,
    /// Changes arriving within this period are applied in one sync.
    pub min_sync_period: Duration,
    /// How often the whole table is replaced even without errors.
    pub full_sync_period: Duration,
}

impl Config {
    pub fn new(node_name: &str) -> Config {
        Config {
            node_name: node_name.to_string(),
            table: DEFAULT_TABLE.to_string(),
            cluster_cidr: None,
            masquerade_all: false,
            node_ips: vec![],
            min_sync_period: Duration::from_millis(50),
            full_sync_period: Duration::from_secs(3600),
        }
    }
}

/// Checks an nft table name (it is spliced into nft scripts).
pub fn valid_table(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::TableName(name.to_string()))
    }
}

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// The whole table replaced in one transaction.
    Full,
    /// Only changed chains and elements written.
    Partial,
    /// Nothing changed.
    Unchanged,
}

/// The proxy's state: the ruleset the kernel has, and the service ports it came from.
pub struct Proxier {
    table: String,
    nft: Box<dyn Nft>,
    conntrack: Box<dyn Conntrack>,
    applied: Option<Ruleset>,
    applied_ports: Vec<ServicePort>,
    /// The ruleset generation right after the last successful apply.
    generation: Option<u32>,
}

impl Proxier {
    pub fn new(table: &str, nft: Box<dyn Nft>, conntrack: Box<dyn Conntrack>) -> Proxier {
        Proxier {
            table: table.to_string(),
            nft,
            conntrack,
            applied: None,
            applied_ports: vec![],
            generation: None,
        }
    }

    /// Program `ports`: the whole table replaced when the kernel state is unknown (first sync,
    /// after an error); else with `full` every chain, map and set refilled in place (skipped
    /// when neither the ports nor the namespace's nf_tables generation changed since the last
    /// apply), or without it only the difference to the last applied ruleset. Stale UDP
    /// conntrack entries are deleted afterwards.
    pub fn sync(
        &mut self,
        cfg: &RuleConfig,
        ports: Vec<ServicePort>,
        full: bool,
    ) -> Result<SyncKind, Error> {
        // unchanged service ports keep their generated rules
        let desired = Ruleset::build_from(cfg, &ports, self.applied.as_ref());
        // a periodic resync when nothing changed, neither the services nor anything in the
        // namespace's nf_tables since the last apply: the table is as programmed
        if full
            && self.generation.is_some()
            && self.applied.as_ref() == Some(&desired)
            && self.nft.generation() == self.generation
        {
            self.applied_ports = ports;
            return Ok(SyncKind::Unchanged);
        }
        let (script, kind) = match (&self.applied, full) {
            (Some(old), false) => match desired.render_diff(old, &self.table) {
                Some(s) if s.is_empty() => {
                    self.applied_ports = ports;
                    return Ok(SyncKind::Unchanged);
                }
                Some(s) => (s, SyncKind::Partial),
                None => (desired.render_full(&self.table), SyncKind::Full),
            },
            // a periodic resync of a table this proxier programmed: refilled in place, so
            // session affinity survives it
            (Some(old), true) => match desired.render_refresh(old, &self.table) {
                Some(s) => (s, SyncKind::Full),
                None => (desired.render_full(&self.table), SyncKind::Full),
            },
            _ => (desired.render_full(&self.table), SyncKind::Full),
        };
        if let Err(e) = self.nft.apply(&script) {
            // the kernel state is unknown now: the next sync replaces the whole table
            self.applied = None;
            self.generation = None;
            return Err(e.into());
        }
        // read right after the commit: a foreign commit landing in between would go unnoticed
        // by the next periodic resync (any later commit in the namespace makes it run again)
        self.generation = self.nft.generation();
        self.applied = Some(desired);
        let stale = rules::stale_udp_flows(&self.applied_ports, &ports);
        self.applied_ports = ports;
        for f in &stale {
            if let Err(e) = self.conntrack.flush_udp(f) {
                tracing::warn!(error = %e, port = f.port, "deleting stale conntrack entries");
            }
        }
        Ok(kind)
    }

    /// The ruleset last applied (None before the first sync or after a failed one).
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }
}

/// Removes the proxy's table (upstream's `kube-proxy --cleanup`); no error when it is missing.
pub fn cleanup(nft: &dyn Nft, table: &str) -> Result<(), Error> {
    valid_table(table)?;
    nft.apply(&format!("add table ip {table}\ndelete table ip {table}\n"))?;
    Ok(())
}

/// The API objects the proxy watches, indexed.
#[derive(Default)]
pub struct Cache {
    services: BTreeMap<(String, String), Service>,
    /// (namespace, slice name) -> slice.
    slices: BTreeMap<(String, String), EndpointSlice>,
    node: Option<Node>,
    /// Services whose ports must be recomputed.
    dirty: BTreeSet<(String, String)>,
    ports: BTreeMap<(String, String), Vec<ServicePort>>,
}

fn key_of(meta: &kube::api::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn slice_service(s: &EndpointSlice) -> Option<(String, String)> {
    let svc = s.metadata.labels.as_ref()?.get(model::SERVICE_NAME_LABEL)?;
    Some((
        s.metadata.namespace.clone().unwrap_or_default(),
        svc.clone(),
    ))
}

impl Cache {
    pub fn apply_service(&mut self, s: Service) {
        let k = key_of(&s.metadata);
        self.dirty.insert(k.clone());
        self.services.insert(k, s);
    }

    pub fn delete_service(&mut self, s: &Service) {
        let k = key_of(&s.metadata);
        self.services.remove(&k);
        self.dirty.insert(k);
    }

    pub fn apply_slice(&mut self, s: EndpointSlice) {
        let k = key_of(&s.metadata);
        if let Some(old) = self.slices.get(&k).and_then(slice_service) {
            self.dirty.insert(old);
        }
        if let Some(svc) = slice_service(&s) {
            self.dirty.insert(svc);
        }
        self.slices.insert(k, s);
    }

    pub fn delete_slice(&mut self, s: &EndpointSlice) {
        let k = key_of(&s.metadata);
        if let Some(old) = self.slices.remove(&k).as_ref().and_then(slice_service) {
            self.dirty.insert(old);
        }
    }

    fn replace_services(&mut self, all: Vec<Service>) {
        let old: Vec<_> = self.services.keys().cloned().collect();
        self.dirty.extend(old);
        self.services.clear();
        for s in all {
            self.apply_service(s);
        }
    }

    fn replace_slices(&mut self, all: Vec<EndpointSlice>) {
        let old: Vec<_> = self.slices.values().filter_map(slice_service).collect();
        self.dirty.extend(old);
        self.slices.clear();
        for s in all {
            self.apply_slice(s);
        }
    }

    pub fn set_node(&mut self, n: Option<Node>) {
        // local endpoints do not depend on the Node object, only on its name
        self.node = n;
    }

    /// The node's InternalIP and ExternalIP addresses (IPv4).
    pub fn node_ips(&self) -> Vec<Ipv4Addr> {
        self.node
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.addresses.as_ref())
            .map(|a| {
                a.iter()
                    .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                    .filter_map(|a| a.address.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The node's pod CIDR (IPv4).
    pub fn node_pod_cidr(&self) -> Option<String> {
        let spec = self.node.as_ref()?.spec.as_ref()?;
        let mut cidrs: Vec<&String> = spec.pod_cidrs.iter().flatten().collect();
        cidrs.extend(spec.pod_cidr.as_ref());
        cidrs.into_iter().find(|c| !c.contains(':')).cloned()
    }

    /// All service ports, recomputing only the services that changed since the last call.
    pub fn service_ports(&mut self, node: &str) -> Vec<ServicePort> {
        if !self.dirty.is_empty() {
            let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
            for s in self.slices.values() {
                if let Some(k) = slice_service(s) {
                    if self.dirty.contains(&k) {
                        by_service.entry(k).or_default().push(s);
                    }
                }
            }
            for k in std::mem::take(&mut self.dirty) {
                match self.services.get(&k) {
                    Some(svc) => {
                        let slices = by_service.get(&k).map(Vec::as_slice).unwrap_or(&[]);
                        self.ports
                            .insert(k, model::service_ports(svc, slices, node));
                    }
                    None => {
                        self.ports.remove(&k);
                    }
                }
            }
        }
        self.ports.values().flatten().cloned().collect()
    }
}

enum Update {
    Services(Box<watcher::Event<Service>>),
    Slices(Box<watcher::Event<EndpointSlice>>),
    Node(Box<watcher::Event<Node>>),
}

/// Buffers a watcher's initial list so a relist replaces the cache at once.
struct Relist<K>(Option<Vec<K>>);

impl<K> Relist<K> {
    /// Some(list) when the initial list is complete.
    fn feed(&mut self, ev: watcher::Event<K>, apply: &mut dyn FnMut(K, bool)) -> Option<Vec<K>> {
        match ev {
            watcher::Event::Init => self.0 = Some(Vec::new()),
            watcher::Event::InitApply(k) => self.0.get_or_insert_with(Vec::new).push(k),
            watcher::Event::InitDone => return Some(self.0.take().unwrap_or_default()),
            watcher::Event::Apply(k) => apply(k, true),
            watcher::Event::Delete(k) => apply(k, false),
        }
        None
    }
}

/// Runs the proxy until `shutdown` resolves. The rules stay in place when it returns (a
/// restarted proxy replaces them atomically); [`cleanup`] removes them.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    valid_table(&config.table)?;
    nft::ensure_sysctls();
    let proxier = Arc::new(Mutex::new(Proxier::new(
        &config.table,
        Box::new(nft::NftCommand::default()),
        Box::new(nft::ConntrackCommand::default()),
    )));
    let services = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.map(|s| Update::Services(Box::new(s))));
    let slices = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|e| e.map(|s| Update::Slices(Box::new(s))));
    let node = watcher(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", config.node_name)),
    )
    .default_backoff()
    .map(|e| e.map(|n| Update::Node(Box::new(n))));
    let updates = futures::stream::select(futures::stream::select(services, slices), node);
    drive(updates, proxier, config, shutdown).await
}

async fn drive(
    updates: impl Stream<Item = Result<Update, watcher::Error>>,
    proxier: Arc<Mutex<Proxier>>,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(updates, shutdown);
    let mut cache = Cache::default();
    let (mut svc_list, mut slice_list, mut node_list) = (Relist(None), Relist(None), Relist(None));
    // (services, slices, node) listed at least once: before that a sync would program a
    // partial view over the rules a previous run left
    let mut listed = [false; 3];
    let mut dirty = false;
    let mut next_full = Instant::now();
    let mut retry: Option<Instant> = None;
    loop {
        let sync_at = if listed.iter().all(|l| *l) && (dirty || Instant::now() >= next_full) {
            Some(retry.unwrap_or_else(Instant::now))
        } else {
            None
        };
        let sleep = async {
            match sync_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            u = updates.next() => {
                let Some(u) = u else { return Ok(()) };
                let u = match u {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::warn!(error = %e, "proxy watch failed; retrying");
                        continue;
                    }
                };
                dirty = true;
                match u {
                    Update::Services(ev) => {
                        if let Some(all) = svc_list.feed(*ev, &mut |s, apply| {
                            if apply { cache.apply_service(s) } else { cache.delete_service(&s) }
                        }) {
                            cache.replace_services(all);
                            listed[0] = true;
                        }
                    }
                    Update::Slices(ev) => {
                        if let Some(all) = slice_list.feed(*ev, &mut |s, apply| {
                            if apply { cache.apply_slice(s) } else { cache.delete_slice(&s) }
                        }) {
                            cache.replace_slices(all);
                            listed[1] = true;
                        }
                    }
                    Update::Node(ev) => {
                        if let Some(all) = node_list.feed(*ev, &mut |n, apply| {
                            cache.set_node(apply.then_some(n))
                        }) {
                            cache.set_node(all.into_iter().next());
                            listed[2] = true;
                        }
                    }
                }
            }
            _ = sleep => {
                let full = Instant::now() >= next_full;
                let mut node_ips = config.node_ips.clone();
                node_ips.extend(cache.node_ips());
                let rc = RuleConfig {
                    table: config.table.clone(),
                    local_cidr: config.cluster_cidr.clone().or_else(|| cache.node_pod_cidr()),
                    masquerade_all: config.masquerade_all,
                    node_ips,
                };
                let ports = cache.service_ports(&config.node_name);
                let p = proxier.clone();
                let started = Instant::now();
                let result = tokio::task::spawn_blocking(move || {
                    p.lock().expect("proxier lock").sync(&rc, ports, full)
                })
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
                dirty = false;
                match result {
                    Ok(kind) => {
                        retry = None;
                        if full || kind == SyncKind::Full {
                            next_full = Instant::now() + config.full_sync_period;
                        }
                        if kind != SyncKind::Unchanged {
                            tracing::debug!(?kind, elapsed_us = started.elapsed().as_micros() as u64, "proxy rules synced");
                        }
                        // the next change waits out the minimum sync period
                        tokio::time::sleep(config.min_sync_period).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "proxy sync failed; replacing the table next");
                        dirty = true;
                        retry = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        }
    }
}
