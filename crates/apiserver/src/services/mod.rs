//! Services at the API server: cluster IP and node port allocation kept in the store (one
//! claim key per value, written in the same transaction as the Service, so concurrent
//! creates and restarts never hand a value out twice, on every store backend), the repair
//! pass at start, and the `kubernetes` Service with its Endpoints and EndpointSlice kept
//! pointing at the live API servers (upstream's lease endpoint reconciler).

pub mod alloc;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apimachinery::status::ApiError;
use apimachinery::Reason;
use rand::Rng as _;
use serde_json::{json, Value};
use store::{Compare, Op, RangeRequest, Txn};

pub use alloc::{Claim, Ipv4Cidr, Plan, PortRange, ServiceRanges};

use crate::handlers::Req;
use crate::{objects, Api};

/// Store keys of the API servers' endpoint leases: `<prefix><ip>`, value
/// `{"port": .., "expires": <unix seconds>}` (like the claims, seen but not cached by the
/// watch cache).
pub const MASTER_LEASE_PREFIX: &str = "/registry/masterleases/";
/// How long an API server's endpoint lease lives without renewal (upstream's
/// `--endpoint-reconciler` lease TTL is 15s).
const MASTER_LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the `kubernetes` Service, its endpoints and the lease are reconciled.
const RECONCILE_PERIOD: Duration = Duration::from_secs(5);

const SERVICES_PREFIX: &str = "/registry/core/services/";

fn store_err(e: store::StoreError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Whether a resource is the core Service.
pub(crate) fn is_service(ri: &apimachinery::registry::ResourceInfo) -> bool {
    ri.group.is_empty() && ri.plural == "services"
}

/// The value of a claim key: who holds it.
fn owner_value(svc: &Value) -> bytes::Bytes {
    let v = json!({
        "namespace": objects::namespace(svc),
        "name": objects::name(svc),
        "uid": objects::uid(svc),
    });
    bytes::Bytes::from(serde_json::to_vec(&v).expect("json"))
}

/// The compares and writes that take a plan's claims (each key must be free) and release the
/// values the Service gave up.
pub(crate) fn claim_txn(plan: &Plan, svc: &Value) -> (Vec<Compare>, Vec<Op>) {
    let mut compares = Vec::new();
    let mut ops = Vec::new();
    for c in &plan.claims {
        compares.push(Compare::ModRevision(c.key(), 0));
        ops.push(Op::Put {
            key: c.key(),
            value: owner_value(svc),
            lease: 0,
        });
    }
    for c in &plan.releases {
        ops.push(Op::Delete { key: c.key() });
    }
    (compares, ops)
}

/// The writes releasing every value a removed Service held.
pub(crate) fn release_all(svc: &Value) -> Vec<Op> {
    alloc::held(svc)
        .into_iter()
        .map(|c| Op::Delete { key: c.key() })
        .collect()
}

/// What the repair pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Claims written for values Services held without one.
    pub restored: usize,
    /// Claims of values no Service holds, removed.
    pub released: usize,
    /// Values held by more than one Service (left as they are, logged).
    pub conflicts: usize,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Api {
    fn core(&self, plural: &str) -> apimachinery::registry::ResourceInfo {
        self.lookup("", "v1", plural)
            .expect("core resources are built in")
            .0
    }

    /// Every claimed value.
    async fn claimed(&self) -> Result<BTreeSet<Claim>, ApiError> {
        let mut out = BTreeSet::new();
        for prefix in [alloc::CLUSTER_IP_PREFIX, alloc::NODE_PORT_PREFIX] {
            let resp = self
                .store
                .range(RangeRequest {
                    prefix: prefix.into(),
                    ..Default::default()
                })
                .await
                .map_err(store_err)?;
            out.extend(resp.kvs.iter().filter_map(|kv| Claim::from_key(&kv.key)));
        }
        Ok(out)
    }

    /// Assign a Service's cluster IPs and node ports (see [`alloc::assign`]) against the
    /// values currently claimed. The caller writes the plan's claims with the Service.
    pub(crate) async fn plan_service(
        &self,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<Plan, ApiError> {
        let taken = self.claimed().await?;
        let mut rng = rand::rng();
        let mut r = |n: u32| rng.random_range(0..n);
        match alloc::assign(
            svc,
            old,
            &self.service_ranges,
            &|c| taken.contains(c),
            &mut r,
        ) {
            Ok(p) => Ok(p),
            Err(alloc::AssignError::Invalid(errs)) => {
                Err(ApiError::invalid("", "Service", objects::name(svc), errs))
            }
            Err(alloc::AssignError::Full(m)) => Err(ApiError::internal(m)),
        }
    }

    /// Rebuild the claims from the stored Services (upstream's repair controllers): values a
    /// Service holds without a claim get one, claims no Service holds are removed. Every write
    /// is conditional on the Services read being unchanged, so it is safe next to other API
    /// servers serving writes.
    pub async fn repair_service_allocations(&self) -> Result<RepairReport, ApiError> {
        let services = self
            .store
            .range(RangeRequest {
                prefix: SERVICES_PREFIX.into(),
                ..Default::default()
            })
            .await
            .map_err(store_err)?;
        let rev = services.revision;
        let mut claims = Vec::new();
        for prefix in [alloc::CLUSTER_IP_PREFIX, alloc::NODE_PORT_PREFIX] {
            let resp = self
                .store
                .range(RangeRequest {
                    prefix: prefix.into(),
                    revision: rev,
                    ..Default::default()
                })
                .await
                .map_err(store_err)?;
            claims.extend(resp.kvs);
        }
        let mut report = RepairReport::default();
        // who holds what
        let mut holders: BTreeMap<Claim, (String, i64, Value)> = BTreeMap::new();
        for kv in &services.kvs {
            let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            for c in alloc::held(&svc) {
                if let Some((other, _, _)) = holders.get(&c) {
                    tracing::warn!(value = ?c, service = %kv.key, other = %other, "service value allocated twice");
                    report.conflicts += 1;
                    continue;
                }
                holders.insert(c, (kv.key.clone(), kv.mod_revision, svc.clone()));
            }
        }
        let existing: BTreeMap<Claim, &store::KeyValue> = claims
            .iter()
            .filter_map(|kv| Claim::from_key(&kv.key).map(|c| (c, kv)))
            .collect();
        for (c, kv) in &existing {
            let owner: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            let owner_key = format!(
                "{SERVICES_PREFIX}{}/{}",
                owner["namespace"].as_str().unwrap_or(""),
                owner["name"].as_str().unwrap_or("")
            );
            match holders.get(c) {
                Some((key, svc_rev, svc)) => {
                    if *key != owner_key || owner["uid"].as_str() != Some(objects::uid(svc)) {
                        // held by another (or recreated) Service: record the real holder
                        let txn = Txn {
                            compares: vec![
                                Compare::ModRevision(kv.key.clone(), kv.mod_revision),
                                Compare::ModRevision(key.clone(), *svc_rev),
                            ],
                            success: vec![Op::Put {
                                key: kv.key.clone(),
                                value: owner_value(svc),
                                lease: 0,
                            }],
                            failure: vec![],
                        };
                        self.store.txn(txn).await.map_err(store_err)?;
                    }
                }
                None => {
                    let owner_rev = services
                        .kvs
                        .iter()
                        .find(|s| s.key == owner_key)
                        .map(|s| s.mod_revision)
                        .unwrap_or(0);
                    let txn = Txn {
                        compares: vec![
                            Compare::ModRevision(kv.key.clone(), kv.mod_revision),
                            Compare::ModRevision(owner_key.clone(), owner_rev),
                        ],
                        success: vec![Op::Delete {
                            key: kv.key.clone(),
                        }],
                        failure: vec![],
                    };
                    if self.store.txn(txn).await.map_err(store_err)?.succeeded {
                        tracing::info!(value = ?c, "released a value no service holds");
                        report.released += 1;
                    }
                }
            }
        }
        for (c, (key, svc_rev, svc)) in &holders {
            if existing.contains_key(c) {
                continue;
            }
            let txn = Txn {
                compares: vec![
                    Compare::ModRevision(c.key(), 0),
                    Compare::ModRevision(key.clone(), *svc_rev),
                ],
                success: vec![Op::Put {
                    key: c.key(),
                    value: owner_value(svc),
                    lease: 0,
                }],
                failure: vec![],
            };
            if self.store.txn(txn).await.map_err(store_err)?.succeeded {
                report.restored += 1;
            }
        }
        if report != RepairReport::default() {
            tracing::info!(?report, "repaired service allocations");
        }
        Ok(report)
    }

    fn core_or_discovery(&self, plural: &str) -> apimachinery::registry::ResourceInfo {
        if plural == "endpointslices" {
            self.lookup("discovery.k8s.io", "v1", plural)
                .expect("endpointslices are built in")
                .0
        } else {
            self.core(plural)
        }
    }

    /// Create an object, or replace its spec-like fields when they differ.
    async fn system_put(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        want: Value,
        differs: impl Fn(&Value) -> bool,
        merge: impl Fn(&Value) -> Value,
    ) -> Result<(), ApiError> {
        let ri = self.core_or_discovery(plural);
        let q = Default::default();
        let r = system_req(&ri, ns, name, &q);
        match self.get_object(&r).await {
            Ok(cur) if !differs(&cur) => Ok(()),
            Ok(cur) => {
                let new = merge(&cur);
                self.update(&r, new).await.map(|_| ())
            }
            Err(e) if e.reason == Reason::NotFound => match self.create(&r, want).await {
                Ok(_) => Ok(()),
                Err(e) if e.reason == Reason::AlreadyExists => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The `kubernetes` Service in `default`: the first address of the service range, port
    /// 443 (`https`) to the API server's secure port.
    pub async fn ensure_kubernetes_service(&self, secure_port: u16) -> Result<(), ApiError> {
        let ip = self.service_ranges.cidr.first().to_string();
        let ports =
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": secure_port}]);
        let want = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ports": ports,
                     "sessionAffinity": "None"},
        });
        let p2 = ports.clone();
        self.system_put(
            "services",
            "default",
            "kubernetes",
            want,
            |cur| {
                let cur_ip = cur.pointer("/spec/clusterIP").and_then(Value::as_str);
                if cur_ip != Some(ip.as_str()) {
                    tracing::warn!(current = ?cur_ip, want = %ip, "the kubernetes service's cluster IP is not the first address of the service range; delete the service to have it recreated");
                }
                cur.pointer("/spec/ports") != Some(&p2)
                    || cur.pointer("/spec/type").and_then(Value::as_str) != Some("ClusterIP")
            },
            |cur| {
                let mut new = cur.clone();
                new["spec"]["ports"] = ports.clone();
                new["spec"]["type"] = json!("ClusterIP");
                new
            },
        )
        .await
    }

    /// Renew this API server's endpoint lease and point the `kubernetes` Endpoints and
    /// EndpointSlice at every API server with a live lease.
    pub async fn reconcile_master_endpoints(
        &self,
        ip: IpAddr,
        secure_port: u16,
    ) -> Result<(), ApiError> {
        let now = now_secs();
        let lease = json!({"port": secure_port, "expires": now + MASTER_LEASE_TTL.as_secs()});
        self.store
            .txn(Txn {
                compares: vec![],
                success: vec![Op::Put {
                    key: format!("{MASTER_LEASE_PREFIX}{ip}"),
                    value: bytes::Bytes::from(serde_json::to_vec(&lease).expect("json")),
                    lease: 0,
                }],
                failure: vec![],
            })
            .await
            .map_err(store_err)?;
        let leases = self
            .store
            .range(RangeRequest {
                prefix: MASTER_LEASE_PREFIX.into(),
                ..Default::default()
            })
            .await
            .map_err(store_err)?;
        let mut live: BTreeSet<String> = BTreeSet::new();
        for kv in &leases.kvs {
            let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            let addr = kv.key.trim_start_matches(MASTER_LEASE_PREFIX).to_string();
            if v["expires"].as_u64().unwrap_or(0) >= now {
                live.insert(addr);
            } else {
                // expired: remove unless renewed meanwhile
                let _ = self
                    .store
                    .txn(Txn {
                        compares: vec![Compare::ModRevision(kv.key.clone(), kv.mod_revision)],
                        success: vec![Op::Delete {
                            key: kv.key.clone(),
                        }],
                        failure: vec![],
                    })
                    .await;
            }
        }
        let addrs: Vec<String> = live.into_iter().collect();
        let subsets = json!([{
            "addresses": addrs.iter().map(|a| json!({"ip": a})).collect::<Vec<_>>(),
            "ports": [{"name": "https", "port": secure_port, "protocol": "TCP"}],
        }]);
        let ep = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": subsets,
        });
        let s2 = subsets.clone();
        self.system_put(
            "endpoints",
            "default",
            "kubernetes",
            ep,
            |cur| cur.get("subsets") != Some(&s2),
            |cur| {
                let mut new = cur.clone();
                new["subsets"] = subsets.clone();
                new
            },
        )
        .await?;
        let family = if addrs.iter().all(|a| !a.contains(':')) {
            "IPv4"
        } else {
            "IPv6"
        };
        let endpoints: Vec<Value> = addrs
            .iter()
            .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
            .collect();
        let endpoints = json!(endpoints);
        let ports = json!([{"name": "https", "port": secure_port, "protocol": "TCP"}]);
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": family,
            "endpoints": endpoints,
            "ports": ports,
        });
        let (e2, p2) = (endpoints.clone(), ports.clone());
        self.system_put(
            "endpointslices",
            "default",
            "kubernetes",
            slice,
            |cur| {
                normalized_endpoints(cur.get("endpoints")) != normalized_endpoints(Some(&e2))
                    || cur.get("ports") != Some(&p2)
            },
            |cur| {
                let mut new = cur.clone();
                new["endpoints"] = endpoints.clone();
                new["ports"] = ports.clone();
                new["addressType"] = json!(family);
                new
            },
        )
        .await
    }

    /// Start-up work for Services: repair the allocations, create the `kubernetes` Service.
    pub async fn bootstrap_services(&self, secure_port: u16) -> Result<(), ApiError> {
        self.repair_service_allocations().await?;
        self.ensure_kubernetes_service(secure_port).await
    }

    /// Keep the `kubernetes` Service and its endpoints reconciled until `shutdown`; the lease
    /// of this server is removed on the way out.
    pub async fn run_master_reconciler(
        self: Arc<Self>,
        ip: IpAddr,
        secure_port: u16,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut repair_at = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            if let Err(e) = self.reconcile_master_endpoints(ip, secure_port).await {
                tracing::warn!(error = %e, "reconciling the kubernetes endpoints");
            }
            if let Err(e) = self.ensure_kubernetes_service(secure_port).await {
                tracing::warn!(error = %e, "reconciling the kubernetes service");
            }
            // upstream re-runs its repair every 3 minutes
            if tokio::time::Instant::now() >= repair_at {
                repair_at += Duration::from_secs(180);
                if let Err(e) = self.repair_service_allocations().await {
                    tracing::warn!(error = %e, "repairing service allocations");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RECONCILE_PERIOD) => {}
                _ = shutdown.changed() => break,
            }
        }
        let _ = self
            .store
            .txn(Txn {
                compares: vec![],
                success: vec![Op::Delete {
                    key: format!("{MASTER_LEASE_PREFIX}{ip}"),
                }],
                failure: vec![],
            })
            .await;
    }
}

/// Endpoints of a slice without the fields defaulting adds, for comparison.
fn normalized_endpoints(v: Option<&Value>) -> Vec<(Value, Value)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e.get("addresses").cloned().unwrap_or(Value::Null),
                e.pointer("/conditions/ready")
                    .cloned()
                    .unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn system_req<'a>(
    ri: &'a apimachinery::registry::ResourceInfo,
    ns: &'a str,
    name: &'a str,
    q: &'a std::collections::HashMap<String, String>,
) -> Req<'a> {
    Req {
        ri,
        namespace: ns,
        name,
        subresource: "",
        query: q,
        username: "system:apiserver",
        manager: "kube-apiserver",
        apply: false,
        view: None,
    }
}
