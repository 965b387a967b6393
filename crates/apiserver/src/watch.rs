//! WATCH: streams ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events from the watch cache as
//! newline-delimited JSON, one flush per event, honouring selectors, timeoutSeconds,
//! allowWatchBookmarks and sendInitialEvents.

use std::sync::Arc;
use std::time::Duration;

use apimachinery::registry::ResourceInfo;
use apimachinery::ApiError;
use bytes::Bytes;
use serde_json::{json, Value};
use store::Revision;
use tokio::sync::{broadcast, mpsc};

use crate::cache::{CacheError, CacheEvent, CachedObject, EventKind, ResourceCache};
use crate::handlers::Filter;
use crate::negotiate::As;
use crate::Api;

/// Interval of BOOKMARK events when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

pub struct WatchParams {
    pub rv: Option<Revision>,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub as_: As,
}

/// Renders one object for a watch event (conversion to Table or metadata); None sends the
/// object's cached JSON bytes as they are.
pub type Render = Option<Arc<dyn Fn(&Value) -> Value + Send + Sync>>;

/// One event line, from the cached bytes when no rendering is needed.
fn event_line(kind: &str, o: &CachedObject, render: &Render) -> Bytes {
    let raw = &o.raw;
    match render {
        Some(f) => line(kind, &f(&o.obj())),
        None => {
            let mut v = Vec::with_capacity(raw.len() + 32);
            v.extend_from_slice(b"{\"type\":\"");
            v.extend_from_slice(kind.as_bytes());
            v.extend_from_slice(b"\",\"object\":");
            v.extend_from_slice(raw);
            v.extend_from_slice(b"}\n");
            Bytes::from(v)
        }
    }
}

fn line(kind: &str, obj: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(ri: &ResourceInfo, rv: Revision, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": ri.kind, "apiVersion": ri.api_version(), "metadata": meta})
}

/// The ERROR event a watch gets for a resourceVersion older than the cache history.
pub fn expired_event(e: &CacheError) -> Bytes {
    let err = ApiError::expired(e.to_string());
    line("ERROR", &err.to_status())
}

impl Api {
    /// Start a watch; returns the channel the response body is read from.
    pub fn start_watch(
        self: &Arc<Self>,
        ri: ResourceInfo,
        namespace: String,
        filter: Filter,
        params: WatchParams,
        render: Render,
    ) -> Result<mpsc::Receiver<Bytes>, ApiError> {
        let rc = self.cache.resource(&ri.key_prefix());
        let prefix = if ri.namespaced && !namespace.is_empty() {
            format!("{}{namespace}/", ri.key_prefix())
        } else {
            ri.key_prefix()
        };
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let api = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::sleep(params.timeout);
            tokio::pin!(deadline);
            tokio::select! {
                _ = &mut deadline => {}
                _ = run_watch(api, ri, rc, prefix, filter, params, render, tx.clone()) => {}
                _ = tx.closed() => {}
            }
        });
        Ok(rx)
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    api: Arc<Api>,
    ri: ResourceInfo,
    rc: Arc<ResourceCache>,
    prefix: String,
    filter: Filter,
    params: WatchParams,
    render: Render,
    tx: mpsc::Sender<Bytes>,
) {
    // initial state
    let initial = match params.rv {
        None | Some(0) => true,
        Some(_) => params.send_initial_events,
    };
    let mut sub = if initial {
        if params.rv.is_none() {
            if api.cache.sync().await.is_err() {
                return;
            }
        } else if let Some(rv) = params.rv.filter(|r| *r > 0) {
            if api
                .cache
                .wait_for(rv, Duration::from_secs(3))
                .await
                .is_err()
            {
                return;
            }
        }
        let (items, sub) = rc.subscribe_with_state(&prefix, &api.cache.revision_rx());
        for o in items.iter().filter(|o| filter.matches(&o.attrs)) {
            if tx.send(event_line("ADDED", o, &render)).await.is_err() {
                return;
            }
        }
        if params.send_initial_events && params.bookmarks {
            if tx
                .send(line("BOOKMARK", &bookmark(&ri, sub.replayed_to, true)))
                .await
                .is_err()
            {
                return;
            }
        }
        sub
    } else {
        let rv = params.rv.unwrap_or(0);
        if api
            .cache
            .wait_for(rv, Duration::from_secs(3))
            .await
            .is_err()
        {
            let err = ApiError::timeout(format!(
                "Too large resource version: {rv}, current resource version: {}",
                api.cache.revision()
            ));
            let _ = tx.send(line("ERROR", &err.to_status())).await;
            return;
        }
        match rc.subscribe(rv) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(expired_event(&e)).await;
                return;
            }
        }
    };
    let mut last_sent = sub.replayed_to;
    for ev in std::mem::take(&mut sub.replay) {
        if let Some(b) = transform(&ev, &prefix, &filter, &render) {
            if tx.send(b).await.is_err() {
                return;
            }
        }
    }
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            ev = sub.live.recv() => match ev {
                Ok(ev) => {
                    if ev.rv <= last_sent {
                        continue;
                    }
                    last_sent = ev.rv;
                    if let Some(b) = transform(&ev, &prefix, &filter, &render) {
                        if tx.send(b).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // too slow: end the watch; the client resumes from its last resourceVersion
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if params.bookmarks => {
                let rv = api.cache.revision().max(last_sent);
                if tx.send(line("BOOKMARK", &bookmark(&ri, rv, false))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The event a watcher sees for a cache event, after namespace and selector filtering:
/// an object entering the selection is ADDED, one leaving it is DELETED.
fn transform(ev: &CacheEvent, prefix: &str, filter: &Filter, render: &Render) -> Option<Bytes> {
    if !ev.key.starts_with(prefix) {
        return None;
    }
    let now = filter.matches(&ev.object.attrs);
    let before = ev.prev_attrs.as_ref().is_some_and(|p| filter.matches(p));
    let kind = match ev.kind {
        EventKind::Added if now => "ADDED",
        EventKind::Modified if now && before => "MODIFIED",
        EventKind::Modified if now => "ADDED",
        EventKind::Modified if before => "DELETED",
        EventKind::Deleted if before || now => "DELETED",
        _ => return None,
    };
    Some(event_line(kind, &ev.object, render))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::selector::LabelSelector;

    fn ev(kind: EventKind, obj: Value, prev: Option<Value>) -> CacheEvent {
        CacheEvent::new(
            kind,
            5,
            "/registry/core/pods/a/x".into(),
            Arc::new(obj),
            prev.map(Arc::new),
        )
    }

    #[test]
    fn selector_transitions() {
        let filter = Filter {
            labels: Some(LabelSelector::parse("app=web").unwrap()),
            fields: None,
            group: String::new(),
            resource: "pods".into(),
        };
        let render: Render = None;
        let web = json!({"metadata": {"labels": {"app": "web"}}});
        let db = json!({"metadata": {"labels": {"app": "db"}}});
        let kind = |b: Option<Bytes>| {
            b.map(|b| {
                serde_json::from_slice::<Value>(&b).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        };
        let p = "/registry/core/pods/a/";
        assert_eq!(
            kind(transform(
                &ev(EventKind::Modified, web.clone(), Some(db.clone())),
                p,
                &filter,
                &render
            ))
            .as_deref(),
            Some("ADDED")
        );
        assert_eq!(
            kind(transform(
                &ev(EventKind::Modified, db.clone(), Some(web.clone())),
                p,
                &filter,
                &render
            ))
            .as_deref(),
            Some("DELETED")
        );
        assert_eq!(
            kind(transform(
                &ev(EventKind::Modified, web.clone(), Some(web.clone())),
                p,
                &filter,
                &render
            ))
            .as_deref(),
            Some("MODIFIED")
        );
        assert_eq!(
            kind(transform(
                &ev(EventKind::Added, db.clone(), None),
                p,
                &filter,
                &render
            )),
            None
        );
        assert_eq!(
            kind(transform(
                &ev(EventKind::Added, web.clone(), None),
                "/registry/core/pods/b/",
                &filter,
                &render
            )),
            None
        );
        let b = transform(
            &ev(EventKind::Added, web.clone(), None),
            p,
            &filter,
            &render,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v, json!({"type": "ADDED", "object": web}));
        assert!(b.ends_with(b"\n"));
    }
}
