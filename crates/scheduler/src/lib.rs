//! The scheduler: assigns unscheduled pods to nodes through pods/binding. The filter/score core
//! is sans-IO; the edge talks to the API only through kube-rs.

use std::future::Future;

pub mod framework;
pub mod queue;

/// Configuration of the scheduler.
#[derive(Clone, Debug)]
pub struct Config {
    /// The schedulerName this scheduler serves.
    pub scheduler_name: String,
    /// Identity used in its leader-election Lease.
    pub identity: String,
}

impl Default for Config {
    fn default() -> Self {
        Config { scheduler_name: "default-scheduler".into(), identity: "oxkube".into() }
    }
}

/// Run the scheduler until `shutdown` resolves.
pub async fn run(client: kube::Client, config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let _ = (client, config);
    shutdown.await;
    Ok(())
}
