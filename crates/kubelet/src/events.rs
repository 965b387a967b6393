//! Event recording for the kubelet (source component `kubelet`, host = node name), with
//! upstream's correlation of repeats: the same (object, fieldPath, type, reason, message) bumps
//! `count` and `lastTimestamp` of the existing Event instead of creating a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Client;

/// Most distinct events remembered for correlation.
const CACHE_SIZE: usize = 4096;

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node: String,
    seen: Arc<Mutex<HashMap<String, (String, i32)>>>,
}

impl Recorder {
    pub fn new(client: Client, node: &str) -> Recorder {
        Recorder {
            client,
            node: node.to_string(),
            seen: Arc::default(),
        }
    }

    /// Records an event about a pod, or one of its containers when `field_path` is given.
    pub fn pod(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let m = &pod.metadata;
        let involved = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            field_path,
        };
        self.record(involved, type_, reason, message);
    }

    /// Records an event about the node.
    pub fn node(&self, uid: &str, type_: &str, reason: &str, message: String) {
        let involved = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(self.node.clone()),
            uid: Some(uid.to_string()),
            ..Default::default()
        };
        self.record(involved, type_, reason, message);
    }

    fn record(&self, involved: ObjectReference, type_: &str, reason: &str, message: String) {
        let ns = involved
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = format!(
            "{}/{}/{}/{}/{}/{}",
            involved.uid.as_deref().unwrap_or_default(),
            involved.field_path.as_deref().unwrap_or_default(),
            involved.kind.as_deref().unwrap_or_default(),
            type_,
            reason,
            message
        );
        let now = Timestamp::now();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let repeat = {
            let mut seen = self.seen.lock().unwrap();
            if seen.len() > CACHE_SIZE {
                seen.clear();
            }
            match seen.get_mut(&key) {
                Some((name, count)) => {
                    *count += 1;
                    Some((name.clone(), *count))
                }
                None => {
                    let name = format!(
                        "{}.{:x}",
                        involved.name.as_deref().unwrap_or_default(),
                        now.as_nanosecond() as u64
                    );
                    seen.insert(key.clone(), (name, 1));
                    None
                }
            }
        };
        tracing::debug!(reason, %message, "event");
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
            tokio::spawn(async move {
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::debug!(error = %e, "updating event failed");
                }
            });
            return;
        }
        let name = self.seen.lock().unwrap().get(&key).map(|(n, _)| n.clone());
        let ev = Event {
            metadata: ObjectMeta {
                name,
                namespace: Some(ns),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "recording event failed");
            }
        });
    }
}
