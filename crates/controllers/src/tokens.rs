//! The legacy service account token controller (upstream's serviceaccount-token controller):
//! fills every `kubernetes.io/service-account-token` Secret with a non-expiring token signed
//! by the cluster key for the ServiceAccount it names, plus `ca.crt` and `namespace`; deletes
//! such Secrets whose ServiceAccount is gone (or was recreated with another uid).

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::satoken::{self, Ref, Signer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};

use crate::queue::Queue;

pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// What to do with one token Secret (pure decision).
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// The ServiceAccount is gone or is another one now.
    Delete,
    /// Fill in the token, ca.crt, namespace and the uid annotation.
    Fill,
}

/// Decide for a token Secret given the ServiceAccount it names (None when absent).
pub fn decide(secret: &Secret, sa: Option<&ServiceAccount>, ca_pem: Option<&str>) -> Action {
    let ann = secret.annotations();
    let Some(sa) = sa else {
        return Action::Delete;
    };
    let want_uid = ann.get(SA_UID_ANNOTATION).map(String::as_str).unwrap_or("");
    let sa_uid = sa.metadata.uid.as_deref().unwrap_or("");
    if !want_uid.is_empty() && want_uid != sa_uid {
        return Action::Delete;
    }
    let data = secret.data.clone().unwrap_or_default();
    let missing = |k: &str| data.get(k).is_none_or(|v| v.0.is_empty());
    if want_uid.is_empty()
        || missing("token")
        || missing("namespace")
        || (ca_pem.is_some() && missing("ca.crt"))
    {
        Action::Fill
    } else {
        Action::Nothing
    }
}

pub struct TokensController {
    client: Client,
    signer: Signer,
    ca_pem: Option<String>,
    queue: Queue,
}

impl TokensController {
    pub fn new(client: Client, key_pem: &str, ca_pem: Option<String>) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(TokensController {
            client,
            signer: Signer::from_pem(key_pem)?,
            ca_pem,
            queue: Queue::new(),
        }))
    }

    pub async fn run(self: Arc<Self>) {
        let me = self.clone();
        let secrets = async move {
            let api: Api<Secret> = Api::all(me.client.clone());
            let cfg = watcher::Config::default().fields(&format!("type={SECRET_TYPE}"));
            let mut s = watcher::watcher(api, cfg).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                if let Ok(watcher::Event::Apply(sec) | watcher::Event::InitApply(sec)) = ev {
                    me.queue.add(crate::informer::key_of(&sec));
                }
            }
        };
        // a deleted ServiceAccount takes its token Secrets with it
        let me = self.clone();
        let accounts = async move {
            let api: Api<ServiceAccount> = Api::all(me.client.clone());
            let mut s = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = s.next().await {
                if let Ok(watcher::Event::Delete(sa)) = ev {
                    let ns = sa.namespace().unwrap_or_default();
                    let secrets: Api<Secret> = Api::namespaced(me.client.clone(), &ns);
                    let lp =
                        kube::api::ListParams::default().fields(&format!("type={SECRET_TYPE}"));
                    if let Ok(list) = secrets.list(&lp).await {
                        for sec in list.items {
                            if sec.annotations().get(SA_NAME_ANNOTATION) == Some(&sa.name_any()) {
                                me.queue.add(crate::informer::key_of(&sec));
                            }
                        }
                    }
                }
            }
        };
        let c = self.clone();
        let work = crate::queue::run_workers("tokens", self.queue.clone(), 1, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        });
        tokio::join!(secrets, accounts, work);
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = crate::informer::split_key(key);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let Some(mut secret) = secrets.get_opt(name).await? else {
            return Ok(());
        };
        if secret.type_.as_deref() != Some(SECRET_TYPE)
            || secret.metadata.deletion_timestamp.is_some()
        {
            return Ok(());
        }
        let sa_name = secret
            .annotations()
            .get(SA_NAME_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let sa = if sa_name.is_empty() {
            None
        } else {
            sas.get_opt(&sa_name).await?
        };
        match decide(&secret, sa.as_ref(), self.ca_pem.as_deref()) {
            Action::Nothing => Ok(()),
            Action::Delete => {
                let dp = DeleteParams {
                    preconditions: secret.uid().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match secrets.delete(name, &dp).await {
                    Ok(_) => {
                        tracing::info!(secret = %key, "deleted token secret of a missing service account");
                        Ok(())
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Action::Fill => {
                let sa = sa.expect("fill needs the service account");
                let sa_uid = sa.metadata.uid.clone().unwrap_or_default();
                let token = self.signer.sign(&satoken::legacy_claims(
                    ns,
                    &Ref {
                        name: sa_name.clone(),
                        uid: sa_uid.clone(),
                    },
                    name,
                ))?;
                let data = secret.data.get_or_insert_with(BTreeMap::new);
                data.insert("token".into(), ByteString(token.into_bytes()));
                data.insert("namespace".into(), ByteString(ns.as_bytes().to_vec()));
                if let Some(ca) = &self.ca_pem {
                    data.insert("ca.crt".into(), ByteString(ca.as_bytes().to_vec()));
                }
                secret
                    .annotations_mut()
                    .insert(SA_UID_ANNOTATION.into(), sa_uid);
                match secrets.replace(name, &PostParams::default(), &secret).await {
                    Ok(_) => Ok(()),
                    // changed meanwhile: the watch brings it back
                    Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(uid_ann: Option<&str>, data: &[(&str, &str)]) -> Secret {
        let mut ann = BTreeMap::from([(SA_NAME_ANNOTATION.to_string(), "robot".to_string())]);
        if let Some(u) = uid_ann {
            ann.insert(SA_UID_ANNOTATION.into(), u.into());
        }
        Secret {
            metadata: ObjectMeta {
                name: Some("robot-token".into()),
                namespace: Some("ns".into()),
                annotations: Some(ann),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn sa(uid: &str) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("robot".into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let full = [("token", "t"), ("namespace", "ns"), ("ca.crt", "pem")];
        let cases = [
            (secret(None, &[]), Some(sa("u1")), Action::Fill),
            (secret(Some("u1"), &full), Some(sa("u1")), Action::Nothing),
            (
                secret(Some("u1"), &[("token", "t")]),
                Some(sa("u1")),
                Action::Fill,
            ),
            (secret(Some("u1"), &full), Some(sa("u2")), Action::Delete),
            (secret(Some("u1"), &full), None, Action::Delete),
        ];
        for (s, a, want) in cases {
            assert_eq!(decide(&s, a.as_ref(), Some("pem")), want, "{s:?}");
        }
    }
}
