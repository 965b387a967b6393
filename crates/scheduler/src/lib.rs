//! The scheduler: assigns unscheduled pods to nodes through pods/binding. The filter/score core
//! (`framework`) and the queue are sans-IO; the edge talks to the API only through kube-rs and
//! schedules only while holding the `kube-system/kube-scheduler` Lease.

use std::future::Future;
use std::time::Duration;

pub mod edge;
pub mod framework;
pub mod leader;
pub mod queue;

/// Configuration of the scheduler.
#[derive(Clone, Debug)]
pub struct Config {
    /// The schedulerName this scheduler serves.
    pub scheduler_name: String,
    /// Identity used in its leader-election Lease (a random suffix is appended).
    pub identity: String,
    /// Whether to elect a leader through a Lease before scheduling.
    pub leader_elect: bool,
    pub lease_namespace: String,
    pub lease_name: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// Bindings in flight at once.
    pub bind_concurrency: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Percentage of nodes to score (0: upstream's adaptive default).
    pub percentage_of_nodes_to_score: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scheduler_name: "default-scheduler".into(),
            identity: "oxkube".into(),
            leader_elect: true,
            lease_namespace: "kube-system".into(),
            lease_name: "kube-scheduler".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            bind_concurrency: 64,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            percentage_of_nodes_to_score: 0,
        }
    }
}

/// Run the scheduler until `shutdown` resolves. With leader election it schedules only while
/// holding the lease, and steps down (stops scheduling, tries again) when it loses it.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let identity = format!("{}_{}", config.identity, uuid::Uuid::new_v4());
    let mut config = config;
    config.identity = identity.clone();
    let elector = config.leader_elect.then(|| {
        leader::LeaderElector::new(
            client.clone(),
            leader::LeaseConfig {
                namespace: config.lease_namespace.clone(),
                name: config.lease_name.clone(),
                identity: identity.clone(),
                lease_duration: config.lease_duration,
                renew_deadline: config.renew_deadline,
                retry_period: config.retry_period,
            },
        )
    });
    loop {
        if let Some(el) = &elector {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = el.acquire() => {}
            }
        }
        tracing::info!(identity = %identity, "scheduler started");
        let mut running = edge::Running::start(client.clone(), config.clone());
        let lost = async {
            match &elector {
                Some(el) => el.keep_renewing().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => {
                running.stop().await;
                if let Some(el) = &elector {
                    el.release().await;
                }
                return Ok(());
            }
            _ = lost => {
                tracing::warn!("scheduler lost leadership, stopping");
                running.stop().await;
            }
            _ = running.wait() => {
                anyhow::bail!("scheduler loop ended unexpectedly");
            }
        }
    }
}
