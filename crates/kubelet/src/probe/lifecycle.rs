//! Lifecycle hooks (postStart, preStop) with upstream's handler runner semantics: exec through
//! CRI (no timeout of its own), httpGet (any response counts; an HTTPS hook answered in plain HTTP
//! is retried over HTTP), sleep; failures carry upstream's event reason and message.
//!
//! The pod worker: after StartContainer, `post_start(...)`; on `Err(f)` record a Warning event
//! `f.reason` (FailedPostStartHook, message "PostStartHook failed": as upstream, the hook's
//! output stays out of events), kill the container with reason "FailedPostStartHook" and treat
//! the start as failed (waiting reason PostStartHookError, message `f.message`). Before
//! StopContainer, `pre_stop(..., grace)`; on `Err(f)` record FailedPreStopHook ("PreStopHook
//! failed") and go on stopping; subtract the elapsed time from the grace period.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use super::exec::{ContainerExec, ExecError};
use super::http;
use super::prober;

/// `kube-lifecycle/<major>.<minor>`, the User-Agent of httpGet hooks.
pub const LIFECYCLE_USER_AGENT: &str = "kube-lifecycle/1.33";

/// A failed hook: the event reason (FailedPostStartHook / FailedPreStopHook) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HookFailure {
    pub reason: &'static str,
    pub message: String,
}

/// Upstream `format.Pod`: `name_namespace(uid)`.
pub fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// Runs a handler; `Err` is upstream's message for the event.
pub async fn run_handler(
    exec: &dyn ContainerExec,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    handler: &LifecycleHandler,
) -> Result<(), String> {
    let pod_name = format_pod(pod);
    if let Some(e) = &handler.exec {
        let cmd: Vec<String> = e.command.clone().unwrap_or_default();
        let shown = format!("[{}]", cmd.join(" "));
        let result = exec.exec_sync(container_id, &cmd, Duration::ZERO).await;
        let (err, output) = match result {
            Ok(out) if out.exit_code == 0 => return Ok(()),
            Ok(out) => (
                format!(
                    "command '{}' exited with {}: {}",
                    cmd.join(" "),
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr)
                ),
                String::from_utf8_lossy(&out.output).into_owned(),
            ),
            Err(e @ ExecError::Timeout { .. }) => (e.to_string(), String::new()),
            Err(ExecError::Runtime(e)) => (e, String::new()),
        };
        return Err(format!(
            "Exec lifecycle hook ({shown}) for Container {:?} in Pod {pod_name:?} failed - error: {err}, message: {output:?}",
            container.name
        ));
    }
    if let Some(h) = &handler.http_get {
        let path = h.path.clone().unwrap_or_default();
        let fail = |err: String| {
            format!(
                "HTTP lifecycle hook ({path}) for Container {:?} in Pod {pod_name:?} failed - error: {err}",
                container.name
            )
        };
        let req = prober::http_request(h, container, pod_ip).map_err(fail)?;
        return match http::get(&req, LIFECYCLE_USER_AGENT).await {
            Ok(_) => Ok(()),
            Err(http::HttpError::HttpToHttps { .. }) => {
                tracing::info!(host = %req.host, "HTTPS lifecycle hook got an HTTP response, retrying with HTTP");
                let mut plain = req.clone();
                plain.scheme = "http".into();
                plain
                    .headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                http::get(&plain, LIFECYCLE_USER_AGENT)
                    .await
                    .map(drop)
                    .map_err(|e| fail(e.to_string()))
            }
            Err(e) => Err(fail(e.to_string())),
        };
    }
    if let Some(s) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        return Ok(());
    }
    if handler.tcp_socket.is_some() {
        // deprecated and never run by upstream's handler runner
        return Err(format!(
            "cannot run handler: tcpSocket lifecycle hooks are not supported (Container {:?} in Pod {pod_name:?})",
            container.name
        ));
    }
    Err(format!(
        "cannot run handler for Container {:?} in Pod {pod_name:?}: no handler",
        container.name
    ))
}

/// Runs the container's postStart hook, if any.
pub async fn post_start(
    exec: &dyn ContainerExec,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
) -> Result<(), HookFailure> {
    let Some(handler) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
    else {
        return Ok(());
    };
    run_handler(exec, pod, container, container_id, pod_ip, handler)
        .await
        .map_err(|message| HookFailure {
            reason: "FailedPostStartHook",
            message,
        })
}

/// Runs the container's preStop hook, if any, waiting at most `grace` (a hook still running then
/// is only logged, as upstream).
pub async fn pre_stop(
    exec: &dyn ContainerExec,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    grace: Duration,
) -> Result<(), HookFailure> {
    let Some(handler) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    else {
        return Ok(());
    };
    let fail = |message: String| HookFailure {
        reason: "FailedPreStopHook",
        message,
    };
    match tokio::time::timeout(
        grace,
        run_handler(exec, pod, container, container_id, pod_ip, handler),
    )
    .await
    {
        Ok(r) => r.map_err(fail),
        Err(_) => {
            // upstream only logs a hook that outlives the grace period, then stops the container
            tracing::info!(container = %container.name, pod = %format_pod(pod), "preStop hook not completed in grace period");
            Ok(())
        }
    }
}
