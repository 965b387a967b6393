//! Event recording as upstream's event broadcaster does for the controller manager: core/v1
//! Events naming the involved object, posted in the background.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource};

/// Records events for one controller (its name is the event source component).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
    instance: String,
}

impl Recorder {
    pub fn new(client: Client, component: &'static str, instance: &str) -> Recorder {
        Recorder {
            client,
            component,
            instance: instance.to_string(),
        }
    }

    /// Record a Normal event.
    pub fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.record(obj, "Normal", reason, message)
    }

    /// Record a Warning event.
    pub fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, message: String) {
        self.record(obj, "Warning", reason, message)
    }

    fn record<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        self.record_for(
            &K::api_version(&()),
            &K::kind(&()),
            obj.meta(),
            type_,
            reason,
            message,
        )
    }

    /// Record an event for an object given its apiVersion, kind and metadata.
    pub fn record_for(
        &self,
        api_version: &str,
        kind: &str,
        meta: &ObjectMeta,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let name = meta.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let involved = ObjectReference {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
            name: Some(name.clone()),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            field_path: None,
        };
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", name, now.as_nanosecond() as u64)),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &ev).await {
                tracing::debug!(error = %e, "recording event failed");
            }
        });
    }
}
