//! Running one probe once (upstream `prober.runProbe` and `pkg/probe/{exec,http,tcp,grpc}`):
//! port resolution, request building, and each mechanism's result and message.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::exec::{ContainerExec, ExecError};
use super::http::{self, HttpGet};

/// `kube-probe/<major>.<minor>`, the User-Agent of probes.
pub const PROBE_USER_AGENT: &str = "kube-probe/1.33";
/// Attempts of a probe whose run errors (not fails) before the error is reported.
pub const MAX_PROBE_RETRIES: usize = 3;

/// Result of one probe run, with its output (the event message on failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    /// Success that deserves an event (a redirect to another host was not followed).
    Warning(String),
    Failure(String),
    /// The probe could not be run at all (bad port, runtime error): the result is discarded.
    Error(String),
}

/// Upstream `ResolveContainerPort`: a number, or a named port of the container, or a number
/// spelled as a string.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let n: i64 = match port {
        IntOrString::Int(n) => *n as i64,
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port as i64);
            match named {
                Some(n) => n,
                None => name
                    .parse::<i64>()
                    .map_err(|_| format!("strconv.Atoi: parsing {name:?}: invalid syntax"))?,
            }
        }
    };
    if n > 0 && n < 65536 {
        Ok(n as u16)
    } else {
        Err(format!("invalid port number: {n}"))
    }
}

/// The GET an httpGet action sends (upstream `NewRequestForHTTPGetAction`): scheme lower-cased
/// (default http), host defaulting to the pod IP.
pub fn http_request(
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: &str,
) -> Result<HttpGet, String> {
    let scheme = action
        .scheme
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("http")
        .to_lowercase();
    let host = action
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(pod_ip)
        .to_string();
    let port = resolve_port(&action.port, container)?;
    Ok(HttpGet {
        scheme,
        host,
        port,
        path: action.path.clone().unwrap_or_default(),
        headers: action
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

/// Upstream `ExpandContainerCommandOnlyStatic`: `$(VAR)` in an exec probe's command expands from
/// the container's literal `env` values only.
pub fn expand_command(cmd: &[String], container: &Container) -> Vec<String> {
    let env: BTreeMap<&str, &str> = container
        .env
        .iter()
        .flatten()
        .filter(|e| e.value_from.is_none())
        .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
        .collect();
    cmd.iter()
        .map(|arg| {
            crate::expand::expand_with(arg, |key| match env.get(key) {
                Some(v) => v.to_string(),
                None => format!("$({key})"),
            })
        })
        .collect()
}

/// Go's rendering of a whole-second duration (`1s`, `1m30s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m{sec}s"),
        _ => format!("{h}h{m}m{sec}s"),
    }
}

/// Runs `probe` once against `container` (pod IP `pod_ip`, container id for exec).
pub async fn run(
    probe: &Probe,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    exec: &dyn ContainerExec,
) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(e) = &probe.exec {
        let cmd = expand_command(e.command.as_deref().unwrap_or_default(), container);
        return run_exec(exec, container_id, &cmd, timeout).await;
    }
    if let Some(h) = &probe.http_get {
        return match http_request(h, container, pod_ip) {
            Ok(req) => run_http(&req, timeout).await,
            Err(e) => Outcome::Error(e),
        };
    }
    if let Some(t) = &probe.tcp_socket {
        let host = t
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(pod_ip);
        return match resolve_port(&t.port, container) {
            Ok(port) => run_tcp(host, port, timeout).await,
            Err(e) => Outcome::Error(e),
        };
    }
    if let Some(g) = &probe.grpc {
        let port = g.port;
        if !(1..65536).contains(&port) {
            return Outcome::Error(format!("invalid port number: {port}"));
        }
        return run_grpc(
            pod_ip,
            port as u16,
            g.service.as_deref().unwrap_or(""),
            timeout,
        )
        .await;
    }
    Outcome::Error("missing probe handler".into())
}

/// An exec probe: exit code 0 succeeds, another fails with the output, a timeout fails.
pub async fn run_exec(
    exec: &dyn ContainerExec,
    container_id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Outcome {
    match exec.exec_sync(container_id, cmd, timeout).await {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.output).into_owned();
            text.truncate(http::MAX_BODY);
            if out.exit_code == 0 {
                Outcome::Success(text)
            } else {
                Outcome::Failure(text)
            }
        }
        Err(e @ ExecError::Timeout { .. }) => Outcome::Failure(e.to_string()),
        Err(ExecError::Runtime(e)) => Outcome::Error(e),
    }
}

/// An httpGet probe: 200-399 succeeds (a 3xx that was not followed is a warning).
pub async fn run_http(req: &HttpGet, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, http::get(req, PROBE_USER_AGENT)).await {
        Err(_) => Outcome::Failure(format!(
            "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            req.url()
        )),
        Ok(Err(e)) => Outcome::Failure(e.to_string()),
        Ok(Ok(resp)) => {
            if (200..400).contains(&resp.status) {
                if resp.status >= 300 {
                    Outcome::Warning(format!(
                        "Probe terminated redirects, Response body: {}",
                        resp.body
                    ))
                } else {
                    Outcome::Success(resp.body)
                }
            } else {
                Outcome::Failure(format!(
                    "HTTP probe failed with statuscode: {}",
                    resp.status
                ))
            }
        }
    }
}

/// A tcpSocket probe: the connection opens within the timeout.
pub async fn run_tcp(host: &str, port: u16, timeout: Duration) -> Outcome {
    let addr = http::join_host_port(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_stream)) => Outcome::Success(String::new()),
        Ok(Err(e)) => Outcome::Failure(http::dial_error(&addr, &e)),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// A grpc probe: `grpc.health.v1.Health/Check` for `service` answers SERVING.
pub async fn run_grpc(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let addr = http::join_host_port(host, port);
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(e) => e
            .user_agent(PROBE_USER_AGENT)
            .expect("static user agent is a valid header")
            .connect_timeout(timeout)
            .timeout(timeout),
        Err(e) => {
            return Outcome::Failure(format!("error: failed to connect service at {addr:?}: {e}"))
        }
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let channel = match tokio::time::timeout_at(deadline, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let detail = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            return Outcome::Failure(format!(
                "error: failed to connect service at {addr:?}: {detail}"
            ));
        }
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {addr:?} within {}: context deadline exceeded",
                go_duration(timeout)
            ))
        }
    };
    let mut client = HealthClient::new(channel);
    let call = client.check(HealthCheckRequest {
        service: service.to_string(),
    });
    match tokio::time::timeout_at(deadline, call).await {
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        )),
        Ok(Err(status)) => match status.code() {
            tonic::Code::Unimplemented => Outcome::Failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            )),
            code if code == tonic::Code::DeadlineExceeded
                || (code == tonic::Code::Cancelled && status.message().contains("Timeout")) =>
            {
                Outcome::Failure(format!(
                    "timeout: health rpc did not complete within {}",
                    go_duration(timeout)
                ))
            }
            _ => Outcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            )),
        },
        Ok(Ok(resp)) => {
            let status = resp.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Outcome::Success("service healthy".into())
            } else {
                let name = ServingStatus::try_from(status)
                    .map(|s| s.as_str_name().to_string())
                    .unwrap_or_else(|_| status.to_string());
                Outcome::Failure(format!("service unhealthy (responded with {name:?})"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, EnvVar, EnvVarSource, HTTPHeader};

    fn container() -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            env: Some(vec![
                EnvVar {
                    name: "DIR".into(),
                    value: Some("/srv".into()),
                    value_from: None,
                },
                EnvVar {
                    name: "FROM".into(),
                    value: None,
                    value_from: Some(EnvVarSource::default()),
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn port_resolution_table() {
        let c = container();
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9090".into()), Ok(9090)),
            (
                IntOrString::String("metrics".into()),
                Err("strconv.Atoi: parsing \"metrics\": invalid syntax".to_string()),
            ),
            (IntOrString::Int(0), Err("invalid port number: 0".into())),
            (
                IntOrString::Int(70000),
                Err("invalid port number: 70000".into()),
            ),
        ];
        for (port, want) in cases {
            assert_eq!(resolve_port(&port, &c), want, "{port:?}");
        }
    }

    #[test]
    fn http_request_building() {
        let c = container();
        let action = HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTPS".into()),
            host: None,
            http_headers: Some(vec![HTTPHeader {
                name: "X-Probe".into(),
                value: "1".into(),
            }]),
        };
        let req = http_request(&action, &c, "10.42.0.7").unwrap();
        assert_eq!(req.url(), "https://10.42.0.7:8080/healthz");
        assert_eq!(req.headers, vec![("X-Probe".to_string(), "1".to_string())]);
        let with_host = HTTPGetAction {
            host: Some("127.0.0.1".into()),
            scheme: None,
            port: IntOrString::Int(81),
            ..action
        };
        assert_eq!(
            http_request(&with_host, &c, "10.42.0.7").unwrap().url(),
            "http://127.0.0.1:81/healthz"
        );
    }

    #[test]
    fn exec_command_expands_static_env_only() {
        let cmd: Vec<String> = ["cat", "$(DIR)/ready", "$(FROM)", "$$(DIR)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand_command(&cmd, &container()),
            vec!["cat", "/srv/ready", "$(FROM)", "$(DIR)"]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(3601)), "1h0m1s");
    }
}
