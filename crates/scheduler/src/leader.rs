//! Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection: acquire
//! when the lease is free or expired, renew every retry period, give up leadership when a
//! renewal has not succeeded within the renew deadline.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// Errors of the leader elector.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease request failed: {0}")]
    Api(#[from] kube::Error),
}

/// Lease timing and identity.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// Leader elector for one lease.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl LeaderElector {
    pub fn new(client: kube::Client, cfg: LeaseConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
        }
    }

    /// One attempt to acquire or renew; true when we hold the lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let secs = self.cfg.lease_duration.as_secs() as i32;
        let existing = self.api.get_opt(&self.cfg.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.cfg.identity;
        if !ours && !holder.is_empty() {
            let duration = spec.lease_duration_seconds.unwrap_or(secs) as i64;
            let renewed = spec
                .renew_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let expires = renewed.as_second() + duration;
            if Timestamp::now().as_second() < expires {
                return Ok(false);
            }
        }
        if !ours {
            spec.holder_identity = Some(self.cfg.identity.clone());
            spec.acquire_time = Some(now());
            spec.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0) + i32::from(!holder.is_empty()));
        }
        spec.lease_duration_seconds = Some(secs);
        spec.renew_time = Some(now());
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until this instance holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "acquired lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "acquiring lease"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Renews the lease every retry period; returns when leadership is lost (no successful
    /// renewal within the renew deadline, or another holder took it).
    pub async fn keep_renewing(&self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            match tokio::time::timeout(self.cfg.renew_deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_ok = Instant::now(),
                Ok(Ok(false)) => {
                    tracing::warn!(lease = %self.cfg.name, "lease taken by another holder");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing lease"),
                Err(_) => tracing::warn!("renewing lease timed out"),
            }
            if last_ok.elapsed() >= self.cfg.renew_deadline {
                tracing::warn!(lease = %self.cfg.name, "failed to renew lease within the deadline");
                return;
            }
        }
    }

    /// Gives the lease up (clears the holder) so another instance can take over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        if let Err(e) = self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            tracing::debug!(error = %e, "releasing lease");
        }
    }
}
