//! The controller manager: one module per controller, each talking to the API only through
//! kube-rs, run together behind one leader-election Lease.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client};

pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod history;
pub mod informer;
pub mod job;
pub mod leader;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod serviceaccount;
pub mod statefulset;
pub mod tokens;

/// Configuration of the controller manager.
#[derive(Clone, Debug)]
pub struct Config {
    /// Identity used in the leader-election Lease.
    pub identity: String,
    /// PEM of the cluster CA, published as the `kube-root-ca.crt` ConfigMap in every namespace
    /// (the root CA publisher is off when `None`).
    pub root_ca_pem: Option<String>,
    /// Lease duration (upstream default 15 s).
    pub lease_duration: Duration,
    /// Renew deadline (upstream default 10 s).
    pub renew_deadline: Duration,
    /// Retry period (upstream default 2 s).
    pub retry_period: Duration,
    /// PEM of the key that signs service account tokens; the legacy token controller (filling
    /// `kubernetes.io/service-account-token` Secrets) is off when `None`.
    pub service_account_key_pem: Option<String>,
    /// Node health monitoring and taint-based eviction.
    pub node_lifecycle: nodelifecycle::Config,
    /// Pod garbage collection.
    pub pod_gc: podgc::Config,
    /// The cluster CIDR node pod CIDRs are allocated from (node IPAM is off when `None`).
    pub cluster_cidr: Option<String>,
    /// Prefix length of each node's pod CIDR (upstream `--node-cidr-mask-size`, 24).
    pub node_cidr_mask: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            identity: "oxkube".into(),
            root_ca_pem: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            service_account_key_pem: None,
            node_lifecycle: Default::default(),
            pod_gc: Default::default(),
            cluster_cidr: None,
            node_cidr_mask: 24,
        }
    }
}

/// The Lease the controller manager elects its leader on.
pub const LEASE_NAME: &str = "kube-controller-manager";
pub const LEASE_NAMESPACE: &str = "kube-system";

/// Run every controller until `shutdown` resolves; only the holder of the
/// `kube-system/kube-controller-manager` Lease runs them.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let lease = leader::LeaseConfig {
        namespace: LEASE_NAMESPACE.into(),
        name: LEASE_NAME.into(),
        identity: config.identity.clone(),
        lease_duration: config.lease_duration,
        renew_deadline: config.renew_deadline,
        retry_period: config.retry_period,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = leader::acquire(&client, &lease) => {}
        }
        let mut controllers = tokio::spawn(run_controllers(client.clone(), config.clone()));
        let hold = leader::hold(&client, &lease);
        tokio::pin!(hold);
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    controllers.abort();
                    let _ = (&mut controllers).await;
                    leader::release(&client, &lease).await;
                    return Ok(());
                }
                _ = &mut hold => {
                    controllers.abort();
                    let _ = (&mut controllers).await;
                    break;
                }
                _ = &mut controllers => {
                    // a controller stopped (it panicked): restart them all, still leading
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    controllers = tokio::spawn(run_controllers(client.clone(), config.clone()));
                }
            }
        }
    }
}

/// Start the shared informers and every controller; runs until aborted, or returns when one
/// controller task ends (which only a panic does); dropping the task set aborts the others.
pub async fn run_controllers(client: Client, config: Config) {
    let mut set = tokio::task::JoinSet::new();
    let pods = informer::Informer::new(Api::<Pod>::all(client.clone()));
    let rss = informer::Informer::new(Api::<ReplicaSet>::all(client.clone()));
    let deploys = informer::Informer::new(Api::<Deployment>::all(client.clone()));
    let namespaces = informer::Informer::new(Api::<Namespace>::all(client.clone()));
    let nodes = informer::Informer::new(Api::<Node>::all(client.clone()));
    let leases = informer::Informer::new(Api::<Lease>::namespaced(
        client.clone(),
        nodelifecycle::LEASE_NAMESPACE,
    ));

    let rcs = informer::Informer::new(Api::<ReplicationController>::all(client.clone()));
    let jobs = informer::Informer::new(Api::<Job>::all(client.clone()));
    let cronjobs = informer::Informer::new(Api::<CronJob>::all(client.clone()));
    let statefulsets = informer::Informer::new(Api::<StatefulSet>::all(client.clone()));
    let daemonsets = informer::Informer::new(Api::<DaemonSet>::all(client.clone()));
    let revisions = informer::Informer::new(Api::<ControllerRevision>::all(client.clone()));
    let claims = informer::Informer::new(Api::<PersistentVolumeClaim>::all(client.clone()));
    let services = informer::Informer::new(Api::<Service>::all(client.clone()));
    let slices = informer::Informer::new(Api::<EndpointSlice>::all(client.clone()));
    let epc = endpoints::EndpointsController::new(
        client.clone(),
        services.clone(),
        pods.clone(),
        nodes.clone(),
        slices.clone(),
    );
    let rsc = replicaset::ReplicaSetController::new(
        client.clone(),
        pods.clone(),
        replicaset::Source::ReplicaSets(rss.clone()),
        &config.identity,
    );
    let rcc = replicaset::ReplicaSetController::new(
        client.clone(),
        pods.clone(),
        replicaset::Source::ReplicationControllers(rcs.clone()),
        &config.identity,
    );
    let dc = deployment::DeploymentController::new(
        client.clone(),
        pods.clone(),
        rss.clone(),
        deploys.clone(),
        &config.identity,
    );
    let jc = job::JobController::new(client.clone(), pods.clone(), jobs.clone(), &config.identity);
    let cjc = cronjob::CronJobController::new(
        client.clone(),
        jobs.clone(),
        cronjobs.clone(),
        &config.identity,
    );
    let ssc = statefulset::StatefulSetController::new(
        client.clone(),
        pods.clone(),
        statefulsets.clone(),
        revisions.clone(),
        claims.clone(),
        &config.identity,
    );
    let dsc = daemonset::DaemonSetController::new(
        client.clone(),
        pods.clone(),
        nodes.clone(),
        daemonsets.clone(),
        revisions.clone(),
        &config.identity,
    );
    let nsc = namespace::NamespaceController::new(client.clone(), namespaces.clone());
    let sac = serviceaccount::ServiceAccountController::new(
        client.clone(),
        namespaces.clone(),
        config.root_ca_pem.clone(),
    );

    set.spawn(pods.clone().run());
    set.spawn(rss.clone().run());
    set.spawn(deploys.clone().run());
    set.spawn(namespaces.clone().run());
    set.spawn(rcs.clone().run());
    set.spawn(jobs.clone().run());
    set.spawn(cronjobs.clone().run());
    set.spawn(statefulsets.clone().run());
    set.spawn(daemonsets.clone().run());
    set.spawn(revisions.clone().run());
    set.spawn(nodes.clone().run());
    set.spawn(claims.clone().run());
    set.spawn(leases.clone().run());
    set.spawn(services.clone().run());
    set.spawn(slices.clone().run());
    let ready = {
        let (p, r, d, n, c) = (
            pods.store.clone(),
            rss.store.clone(),
            deploys.store.clone(),
            namespaces.store.clone(),
            rcs.store.clone(),
        );
        let (j, cj) = (jobs.store.clone(), cronjobs.store.clone());
        let (ss, ds, cr, no) = (
            statefulsets.store.clone(),
            daemonsets.store.clone(),
            revisions.store.clone(),
            nodes.store.clone(),
        );
        let pvc = claims.store.clone();
        async move {
            let _ = p.wait_until_ready().await;
            let _ = r.wait_until_ready().await;
            let _ = d.wait_until_ready().await;
            let _ = n.wait_until_ready().await;
            let _ = c.wait_until_ready().await;
            let _ = j.wait_until_ready().await;
            let _ = cj.wait_until_ready().await;
            let _ = ss.wait_until_ready().await;
            let _ = ds.wait_until_ready().await;
            let _ = cr.wait_until_ready().await;
            let _ = no.wait_until_ready().await;
            let _ = pvc.wait_until_ready().await;
        }
    };
    let (n, l) = (nodes.store.clone(), leases.store.clone());
    let ready = async move {
        ready.await;
        let _ = n.wait_until_ready().await;
        let _ = l.wait_until_ready().await;
    };
    let (sv, sl) = (services.store.clone(), slices.store.clone());
    let ready = async move {
        ready.await;
        let _ = sv.wait_until_ready().await;
        let _ = sl.wait_until_ready().await;
    };
    ready.await;
    tracing::info!("controller informers synced; starting controllers");
    set.spawn(rsc.run(4));
    set.spawn(rcc.run(2));
    set.spawn(dc.run(4));
    set.spawn(nsc.run(2));
    set.spawn(jc.run(4));
    set.spawn(cjc.run(2));
    set.spawn(ssc.run(2));
    set.spawn(dsc.run(2));
    set.spawn(sac.run());
    set.spawn(epc.run(4));
    set.spawn(gc::GarbageCollector::new(client.clone()).run());
    set.spawn(
        nodelifecycle::NodeLifecycleController::new(
            client.clone(),
            config.node_lifecycle.clone(),
            nodes.clone(),
            pods.clone(),
            leases.clone(),
            &config.identity,
        )
        .run(),
    );
    set.spawn(
        podgc::PodGc::new(
            client.clone(),
            config.pod_gc.clone(),
            pods.clone(),
            nodes.clone(),
        )
        .run(),
    );
    if let Some(key) = &config.service_account_key_pem {
        match tokens::TokensController::new(client.clone(), key, config.root_ca_pem.clone()) {
            Ok(c) => {
                set.spawn(c.run());
            }
            Err(e) => tracing::error!(error = %e, "legacy token controller not started"),
        }
    }
    if let Some(cidr) = &config.cluster_cidr {
        // the shared node informer is synced already (`ready` above)
        match nodeipam::NodeIpamController::new(
            client.clone(),
            nodes.clone(),
            cidr,
            config.node_cidr_mask,
        ) {
            Ok(c) => {
                set.spawn(c.run());
            }
            Err(e) => tracing::error!(error = %e, "node ipam controller not started"),
        }
    }
    if let Some(res) = set.join_next().await {
        match res {
            Err(e) if e.is_panic() => tracing::error!(error = %e, "controller task panicked"),
            _ => tracing::error!("controller task exited"),
        }
    }
}
