//! Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection: acquire
//! when the lease is free or expired, renew every retry period, give up leadership when the
//! lease could not be renewed within the renew deadline.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Timing of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// Errors of one election round.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease is held by {0}")]
    HeldByOther(String),
    #[error("api: {0}")]
    Api(#[from] kube::Error),
}

/// Whether the lease (as read) may be taken by `identity` at `now`.
pub fn may_acquire(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let dur = spec.lease_duration_seconds.unwrap_or(15) as i64;
    match spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) {
        Some(t) => t.0.as_second() + dur < now.as_second(),
        None => true,
    }
}

/// One attempt to acquire or renew the lease; Ok when `identity` holds it afterwards.
pub async fn try_acquire_or_renew(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), LeaderError> {
    let now = Timestamp::now();
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(cfg.lease_duration.as_secs() as i32),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Some(mut lease) => {
            if !may_acquire(lease.spec.as_ref(), &cfg.identity, now) {
                let holder = lease
                    .spec
                    .and_then(|s| s.holder_identity)
                    .unwrap_or_default();
                return Err(LeaderError::HeldByOther(holder));
            }
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.acquire_time = Some(MicroTime(now));
                spec.holder_identity = Some(cfg.identity.clone());
            }
            spec.lease_duration_seconds = Some(cfg.lease_duration.as_secs() as i32);
            spec.renew_time = Some(MicroTime(now));
            api.replace(&cfg.name, &PostParams::default(), &lease)
                .await?;
            Ok(())
        }
    }
}

/// Wait until this identity holds the lease.
pub async fn acquire(client: &Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    loop {
        match try_acquire_or_renew(&api, cfg).await {
            Ok(()) => {
                tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "lease not acquired"),
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
}

/// Renew the lease every retry period; returns when leadership is lost.
pub async fn hold(client: &Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let mut last_renew = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.retry_period).await;
        match tokio::time::timeout(cfg.renew_deadline, try_acquire_or_renew(&api, cfg)).await {
            Ok(Ok(())) => last_renew = tokio::time::Instant::now(),
            Ok(Err(LeaderError::HeldByOther(h))) => {
                tracing::warn!(holder = %h, "leadership lost");
                return;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "lease renewal failed"),
            Err(_) => tracing::warn!("lease renewal timed out"),
        }
        if last_renew.elapsed() > cfg.renew_deadline {
            tracing::warn!("lease not renewed within the renew deadline; leadership lost");
            return;
        }
    }
}

/// Give the lease up (on orderly shutdown) so another candidate takes over at once.
pub async fn release(client: &Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    if let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await {
        if let Some(spec) = lease.spec.as_mut() {
            if spec.holder_identity.as_deref() == Some(cfg.identity.as_str()) {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
                let _ = api.replace(&cfg.name, &PostParams::default(), &lease).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renew: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renew).unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn acquisition_rules() {
        let now = Timestamp::from_second(1000).unwrap();
        let cases = [
            (None, true),
            (Some(spec("", 999)), true),
            (Some(spec("me", 999)), true),
            (Some(spec("other", 990)), false),
            (Some(spec("other", 984)), true),
        ];
        for (s, want) in cases {
            assert_eq!(may_acquire(s.as_ref(), "me", now), want, "{s:?}");
        }
    }
}
