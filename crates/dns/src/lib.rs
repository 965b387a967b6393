//! Cluster DNS: answers the Kubernetes DNS schema (services, headless endpoints, SRV, PTR,
//! ExternalName, pods) for the cluster domain from Services and EndpointSlices it watches,
//! forwards every other name to the node's upstream resolvers, and keeps the
//! `kube-system/kube-dns` Service pointing at itself.

pub mod forward;
pub mod kubedns;
pub mod names;
pub mod records;
pub mod server;
pub mod watch;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::forward::Forwarder;
use crate::records::{Records, ZoneConfig};
use crate::server::Handler;

/// The default cluster domain.
pub const DEFAULT_ZONE: &str = "cluster.local";
/// The default cluster DNS service IP (k3s's).
pub const DEFAULT_CLUSTER_DNS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 43, 0, 10));

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the DNS server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How the cluster DNS server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it listens (UDP and TCP); port 0 picks a free port.
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub zone: String,
    /// The cluster IP of Service kube-system/kube-dns; `None`: the Service is not managed.
    pub cluster_ip: Option<IpAddr>,
    /// Upstream resolvers for names outside the cluster domain.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of the records it serves.
    pub ttl: u32,
    /// How often the kube-dns Service and its endpoints are checked.
    pub resync: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 53),
            zone: DEFAULT_ZONE.into(),
            cluster_ip: Some(DEFAULT_CLUSTER_DNS),
            upstreams: forward::upstreams_from(
                std::path::Path::new("/etc/resolv.conf"),
                std::path::Path::new(forward::SYSTEMD_RESOLV_CONF),
            ),
            ttl: 5,
            resync: Duration::from_secs(30),
        }
    }
}

/// Run the DNS server until `shutdown` resolves. `bound` is called with the address it
/// listens on once the sockets are bound.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    bound: impl FnOnce(SocketAddr),
) -> Result<(), DnsError> {
    let (udp, tcp) = server::bind(config.listen)
        .await
        .map_err(|source| DnsError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| DnsError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(%addr, upstreams = ?config.upstreams, "cluster DNS listening");
    bound(addr);
    let records = Arc::new(RwLock::new(Records::new()));
    let synced = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(Handler::new(
        records.clone(),
        ZoneConfig {
            zone: names::normalize(&config.zone),
            dns_ip: config.cluster_ip,
        },
        config.ttl,
        Forwarder::new(config.upstreams.clone()),
        synced.clone(),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let udp = Arc::new(udp);
    let mut tasks = Vec::new();
    // two receivers on one socket: one waiting on the lock of the store does not stall all
    for _ in 0..2 {
        tasks.push(tokio::spawn(server::serve_udp(
            handler.clone(),
            udp.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(server::serve_tcp(
        handler,
        tcp,
        stop_rx.clone(),
    )));
    let watchers = tokio::spawn(watch::run(client.clone(), records, synced));
    let kube_dns = config.cluster_ip.map(|ip| {
        let client = client.clone();
        let resync = config.resync;
        tokio::spawn(async move {
            loop {
                let wait = match kubedns::reconcile(&client, ip, addr).await {
                    Ok(()) => resync,
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciling kube-dns");
                        Duration::from_secs(1)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        })
    });
    shutdown.await;
    let _ = stop_tx.send(true);
    watchers.abort();
    if let Some(t) = kube_dns {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}
