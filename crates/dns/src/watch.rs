//! kube-rs watchers on Services and EndpointSlices feeding the record store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::Api;

use crate::records::{self, Records};

/// Watch both kinds until the streams end (never, normally); `synced` turns true once both
/// have listed everything.
pub async fn run(client: kube::Client, store: Arc<RwLock<Records>>, synced: Arc<AtomicBool>) {
    let svc_synced = Arc::new(AtomicBool::new(false));
    let slice_synced = Arc::new(AtomicBool::new(false));
    let mark = {
        let (a, b, all) = (svc_synced.clone(), slice_synced.clone(), synced.clone());
        move || {
            if a.load(Ordering::Acquire) && b.load(Ordering::Acquire) {
                all.store(true, Ordering::Release);
            }
        }
    };
    let services = watch_kind(
        Api::<Service>::all(client.clone()),
        store.clone(),
        svc_synced,
        mark.clone(),
        |r: &mut Records, s: &Service| {
            if let Some(i) = records::service_info(s) {
                r.upsert_service(i);
            }
        },
        |r: &mut Records, s: &Service| {
            if let (Some(ns), Some(n)) = (&s.metadata.namespace, &s.metadata.name) {
                r.remove_service(ns, n);
            }
        },
        |r: &mut Records, all: &[Service]| {
            r.replace_services(all.iter().filter_map(records::service_info).collect())
        },
    );
    let slices = watch_kind(
        Api::<EndpointSlice>::all(client),
        store,
        slice_synced,
        mark,
        |r: &mut Records, s: &EndpointSlice| match records::slice_info(s) {
            Some(i) => r.upsert_slice(i),
            // a slice that lost its service label no longer counts
            None => {
                if let (Some(ns), Some(n)) = (&s.metadata.namespace, &s.metadata.name) {
                    r.remove_slice(ns, n);
                }
            }
        },
        |r: &mut Records, s: &EndpointSlice| {
            if let (Some(ns), Some(n)) = (&s.metadata.namespace, &s.metadata.name) {
                r.remove_slice(ns, n);
            }
        },
        |r: &mut Records, all: &[EndpointSlice]| {
            r.replace_slices(all.iter().filter_map(records::slice_info).collect())
        },
    );
    futures::join!(services, slices);
}

#[allow(clippy::too_many_arguments)]
async fn watch_kind<K>(
    api: Api<K>,
    store: Arc<RwLock<Records>>,
    synced: Arc<AtomicBool>,
    mark: impl Fn(),
    apply: impl Fn(&mut Records, &K),
    delete: impl Fn(&mut Records, &K),
    replace: impl Fn(&mut Records, &[K]),
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let stream = watcher::watcher(api, watcher::Config::default());
    futures::pin_mut!(stream);
    let mut buffer: Vec<K> = Vec::new();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                // the watcher retries by itself; keep serving what we have
                tracing::warn!(error = %e, kind = std::any::type_name::<K>(), "dns watch failed");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut r = store.write().unwrap_or_else(|e| e.into_inner());
        match ev {
            Event::Apply(o) => apply(&mut r, &o),
            Event::Delete(o) => delete(&mut r, &o),
            Event::Init => buffer.clear(),
            Event::InitApply(o) => buffer.push(o),
            Event::InitDone => {
                replace(&mut r, &buffer);
                buffer = Vec::new();
                synced.store(true, Ordering::Release);
                mark();
            }
        }
    }
}
