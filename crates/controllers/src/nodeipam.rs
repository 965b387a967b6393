//! The node IPAM controller (upstream's range allocator): gives every Node a pod CIDR (a /24 by
//! default) out of the cluster CIDR (`--cluster-cidr`, default 10.42.0.0/16) in `spec.podCIDR`
//! and `spec.podCIDRs`, and frees it when the node goes. Allocations already recorded on nodes
//! are read first, so they stay consistent across restarts.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::informer::{Change, Informer};
use crate::queue::Queue;

/// Errors of CIDR parsing and allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("invalid cidr {0:?}")]
    Invalid(String),
    #[error("node cidr mask /{node} must be longer than the cluster cidr mask /{cluster}")]
    Mask { cluster: u8, node: u8 },
    #[error("cidr {0} is not inside the cluster cidr")]
    Outside(String),
    #[error("the cluster cidr is exhausted")]
    Full,
}

/// Parses `a.b.c.d/n` (the address is masked to the network).
pub fn parse_v4(cidr: &str) -> Result<(u32, u8), CidrError> {
    let bad = || CidrError::Invalid(cidr.to_string());
    let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(ip) & mask, len))
}

/// A set of equally sized subnets of a cluster CIDR (upstream `cidrset`).
#[derive(Debug, Clone)]
pub struct CidrSet {
    base: u32,
    cluster_len: u8,
    node_len: u8,
    used: Vec<bool>,
}

impl CidrSet {
    pub fn new(cluster_cidr: &str, node_len: u8) -> Result<CidrSet, CidrError> {
        let (base, cluster_len) = parse_v4(cluster_cidr)?;
        if node_len <= cluster_len || node_len > 32 || node_len - cluster_len > 24 {
            return Err(CidrError::Mask {
                cluster: cluster_len,
                node: node_len,
            });
        }
        Ok(CidrSet {
            base,
            cluster_len,
            node_len,
            used: vec![false; 1usize << (node_len - cluster_len)],
        })
    }

    fn index_of(&self, cidr: &str) -> Result<usize, CidrError> {
        let (net, len) = parse_v4(cidr)?;
        let cluster_mask = if self.cluster_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.cluster_len)
        };
        if len != self.node_len || net & cluster_mask != self.base {
            return Err(CidrError::Outside(cidr.to_string()));
        }
        Ok(((net - self.base) >> (32 - self.node_len)) as usize)
    }

    fn cidr_at(&self, i: usize) -> String {
        let net = self.base + ((i as u32) << (32 - self.node_len));
        format!("{}/{}", Ipv4Addr::from(net), self.node_len)
    }

    /// Marks an existing allocation as used.
    pub fn occupy(&mut self, cidr: &str) -> Result<(), CidrError> {
        let i = self.index_of(cidr)?;
        self.used[i] = true;
        Ok(())
    }

    /// Frees an allocation.
    pub fn release(&mut self, cidr: &str) -> Result<(), CidrError> {
        let i = self.index_of(cidr)?;
        self.used[i] = false;
        Ok(())
    }

    /// Allocates the lowest free subnet.
    pub fn allocate(&mut self) -> Result<String, CidrError> {
        let i = self.used.iter().position(|u| !u).ok_or(CidrError::Full)?;
        self.used[i] = true;
        Ok(self.cidr_at(i))
    }
}

fn pod_cidr(node: &Node) -> Option<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .filter(|c| !c.is_empty())
}

/// Allocates pod CIDRs to nodes.
pub struct NodeIpamController {
    client: Client,
    nodes: Arc<Informer<Node>>,
    set: Mutex<CidrSet>,
    queue: Queue,
}

impl NodeIpamController {
    pub fn new(
        client: Client,
        nodes: Arc<Informer<Node>>,
        cluster_cidr: &str,
        node_mask: u8,
    ) -> Result<Arc<Self>, CidrError> {
        let c = Arc::new(NodeIpamController {
            client,
            nodes,
            set: Mutex::new(CidrSet::new(cluster_cidr, node_mask)?),
            queue: Queue::new(),
        });
        let weak = Arc::downgrade(&c);
        c.nodes.on_change(move |ch| {
            let Some(c) = weak.upgrade() else { return };
            match ch {
                Change::Added(n) | Change::Updated { new: n, .. } => {
                    if pod_cidr(n).is_none() {
                        c.queue.add(n.name_any());
                    }
                }
                Change::Deleted(n) => {
                    if let Some(cidr) = pod_cidr(n) {
                        let _ = c.set.lock().unwrap().release(&cidr);
                    }
                }
            }
        });
        Ok(c)
    }

    /// Runs the controller; call after the node informer synced.
    pub async fn run(self: Arc<Self>) {
        // existing allocations first, so restarts never hand out a CIDR twice
        {
            let mut set = self.set.lock().unwrap();
            for n in self.nodes.store.state() {
                if let Some(cidr) = pod_cidr(&n) {
                    if let Err(e) = set.occupy(&cidr) {
                        tracing::warn!(node = %n.name_any(), error = %e, "node pod cidr not from the cluster cidr");
                    }
                }
            }
        }
        for n in self.nodes.store.state() {
            if pod_cidr(&n).is_none() {
                self.queue.add(n.name_any());
            }
        }
        let me = self.clone();
        crate::queue::run_workers("nodeipam", self.queue.clone(), 1, move |name| {
            let me = me.clone();
            async move { me.sync(&name).await }
        })
        .await;
    }

    async fn sync(&self, name: &str) -> anyhow::Result<()> {
        let Some(node) = crate::informer::get(&self.nodes.store, "", name) else {
            return Ok(());
        };
        if pod_cidr(&node).is_some() {
            return Ok(());
        }
        let cidr = self.set.lock().unwrap().allocate()?;
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = name, pod_cidr = %cidr, "pod cidr allocated");
                Ok(())
            }
            Err(e) => {
                let _ = self.set.lock().unwrap().release(&cidr);
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        assert_eq!(
            parse_v4("10.42.0.0/16").unwrap(),
            (u32::from(Ipv4Addr::new(10, 42, 0, 0)), 16)
        );
        assert_eq!(
            parse_v4("10.42.7.9/16").unwrap().0,
            u32::from(Ipv4Addr::new(10, 42, 0, 0))
        );
        for bad in ["10.42.0.0", "10.42.0.0/33", "x/16", "fd00::/64"] {
            assert!(parse_v4(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allocates_in_order_skipping_occupied() {
        let mut s = CidrSet::new("10.42.0.0/16", 24).unwrap();
        s.occupy("10.42.0.0/24").unwrap();
        s.occupy("10.42.2.0/24").unwrap();
        assert_eq!(s.allocate().unwrap(), "10.42.1.0/24");
        assert_eq!(s.allocate().unwrap(), "10.42.3.0/24");
        s.release("10.42.0.0/24").unwrap();
        assert_eq!(s.allocate().unwrap(), "10.42.0.0/24");
    }

    #[test]
    fn exhaustion_and_foreign_cidrs() {
        let mut s = CidrSet::new("10.0.0.0/23", 24).unwrap();
        assert_eq!(s.allocate().unwrap(), "10.0.0.0/24");
        assert_eq!(s.allocate().unwrap(), "10.0.1.0/24");
        assert_eq!(s.allocate(), Err(CidrError::Full));
        assert!(matches!(
            s.occupy("10.9.0.0/24"),
            Err(CidrError::Outside(_))
        ));
        assert!(matches!(
            s.occupy("10.0.0.0/25"),
            Err(CidrError::Outside(_))
        ));
        assert!(matches!(
            CidrSet::new("10.0.0.0/24", 24),
            Err(CidrError::Mask { .. })
        ));
    }
}
