//! The ServiceAccount controller (a `default` ServiceAccount in every active namespace) and
//! the root CA publisher (the `kube-root-ca.crt` ConfigMap with the cluster CA in every
//! active namespace), as upstream's serviceaccounts-controller and root-ca-cert-publisher.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::informer::{Change, Informer};
use crate::queue::Queue;

pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

pub struct ServiceAccountController {
    client: Client,
    namespaces: Arc<Informer<Namespace>>,
    root_ca_pem: Option<String>,
    queue: Queue,
}

impl ServiceAccountController {
    pub fn new(
        client: Client,
        namespaces: Arc<Informer<Namespace>>,
        root_ca_pem: Option<String>,
    ) -> Arc<Self> {
        let c = Arc::new(ServiceAccountController {
            client,
            namespaces,
            root_ca_pem,
            queue: Queue::new(),
        });
        let q = c.queue.clone();
        c.namespaces.on_change(move |ch| {
            if let Change::Added(ns) | Change::Updated { new: ns, .. } = ch {
                q.add(ns.name_any());
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>) {
        // deletions of the managed objects are noticed by watching them
        let me = self.clone();
        let sa_watch = async move {
            use futures::StreamExt;
            let api: Api<ServiceAccount> = Api::all(me.client.clone());
            let mut s = watcher::watcher(
                api,
                watcher::Config::default().fields("metadata.name=default"),
            )
            .boxed();
            while let Some(ev) = s.next().await {
                if let Ok(watcher::Event::Delete(sa)) = ev {
                    if let Some(ns) = sa.namespace() {
                        me.queue.add(ns);
                    }
                }
            }
        };
        let me = self.clone();
        let cm_watch = async move {
            use futures::StreamExt;
            let api: Api<ConfigMap> = Api::all(me.client.clone());
            let mut s = watcher::watcher(
                api,
                watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIGMAP}")),
            )
            .boxed();
            while let Some(ev) = s.next().await {
                match ev {
                    Ok(watcher::Event::Delete(cm)) | Ok(watcher::Event::Apply(cm)) => {
                        if let Some(ns) = cm.namespace() {
                            me.queue.add(ns);
                        }
                    }
                    _ => {}
                }
            }
        };
        let c = self.clone();
        let work = crate::queue::run_workers("serviceaccount", self.queue.clone(), 2, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        });
        tokio::join!(sa_watch, cm_watch, work);
    }

    async fn sync(&self, ns: &str) -> anyhow::Result<()> {
        let Some(n) = crate::informer::get(&self.namespaces.store, "", ns) else {
            return Ok(());
        };
        if n.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        if sas.get_opt("default").await?.is_none() {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("default".into()),
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            ignore_exists(sas.create(&PostParams::default(), &sa).await)?;
        }
        if let Some(pem) = &self.root_ca_pem {
            let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
            let data: BTreeMap<String, String> = [("ca.crt".to_string(), pem.clone())].into();
            match cms.get_opt(ROOT_CA_CONFIGMAP).await? {
                None => {
                    let mut annotations = BTreeMap::new();
                    annotations.insert("kubernetes.io/description".to_string(), "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string());
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(ROOT_CA_CONFIGMAP.into()),
                            namespace: Some(ns.into()),
                            annotations: Some(annotations),
                            ..Default::default()
                        },
                        data: Some(data),
                        ..Default::default()
                    };
                    ignore_exists(cms.create(&PostParams::default(), &cm).await)?;
                }
                Some(mut cm) if cm.data.as_ref() != Some(&data) => {
                    cm.data = Some(data);
                    cms.replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &cm)
                        .await?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

fn ignore_exists<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        // the namespace went away meanwhile
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => Ok(()),
        Err(e) => Err(e),
    }
}
