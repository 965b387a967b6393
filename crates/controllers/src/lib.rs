//! The controller manager: one module per controller, each talking to the API only through
//! kube-rs, run together behind one leader-election Lease.

use std::future::Future;

/// Configuration of the controller manager.
#[derive(Clone, Debug)]
pub struct Config {
    /// Identity used in the leader-election Lease.
    pub identity: String,
}

impl Default for Config {
    fn default() -> Self {
        Config { identity: "oxkube".into() }
    }
}

/// Run every controller until `shutdown` resolves.
pub async fn run(client: kube::Client, config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let _ = (client, config);
    shutdown.await;
    Ok(())
}
