//! Real httpGet (HTTP and HTTPS), tcpSocket and grpc probes, and lifecycle hooks, against test
//! servers on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Lifecycle,
    LifecycleHandler, Pod, Probe, SleepAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubelet::probe::{lifecycle, prober, ContainerExec, ExecError, ExecOutput, Outcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Seen = Arc<Mutex<Vec<String>>>;

/// Answers by path: /ok 200, /fail 500, /redir -> /ok, /away -> another host, /loop -> /loop,
/// /slow never answers. Records each request head.
async fn serve_http<S>(mut stream: S, seen: Seen, port: u16)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if !buf[0].is_ascii_uppercase() {
            // not HTTP (a TLS hello): answer like a plain HTTP server does
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    seen.lock().unwrap().push(head.clone());
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let (status, location, body) = match path.as_str() {
        "/ok" => ("200 OK", None, "all good".to_string()),
        "/fail" => ("500 Internal Server Error", None, "broken".to_string()),
        "/redir" => ("302 Found", Some("/ok".to_string()), String::new()),
        "/away" => (
            "302 Found",
            Some("http://elsewhere.invalid/x".to_string()),
            "moved".to_string(),
        ),
        "/loop" => (
            "302 Found",
            Some(format!("http://127.0.0.1:{port}/loop")),
            String::new(),
        ),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        _ => ("404 Not Found", None, String::new()),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(l) = location {
        resp.push_str(&format!("Location: {l}\r\n"));
    }
    resp.push_str("\r\n");
    resp.push_str(&body);
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn http_server() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_http(stream, s.clone(), port));
        }
    });
    (port, seen)
}

async fn https_server() -> (u16, Seen) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let pk = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], pk)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let s = s.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_http(tls, s, port).await;
                }
            });
        }
    });
    (port, seen)
}

fn container(port: u16) -> Container {
    Container {
        name: "app".into(),
        ports: Some(vec![ContainerPort {
            name: Some("web".into()),
            container_port: port as i32,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

struct NoExec;

#[async_trait]
impl ContainerExec for NoExec {
    async fn exec_sync(&self, _: &str, _: &[String], _: Duration) -> Result<ExecOutput, ExecError> {
        Err(ExecError::Runtime("no runtime in this test".into()))
    }
}

fn http_probe(path: &str, port: IntOrString, scheme: Option<&str>) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port,
            scheme: scheme.map(String::from),
            host: None,
            http_headers: Some(vec![HTTPHeader {
                name: "X-Check".into(),
                value: "yes".into(),
            }]),
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn http_probe_outcomes() {
    let (port, seen) = http_server().await;
    let c = container(port);
    let named = IntOrString::String("web".into());
    let run = |path: &'static str| {
        let c = c.clone();
        let named = named.clone();
        async move { prober::run(&http_probe(path, named, None), &c, "", "127.0.0.1", &NoExec).await }
    };
    assert_eq!(run("/ok").await, Outcome::Success("all good".into()));
    assert_eq!(
        run("/fail").await,
        Outcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    assert_eq!(run("/redir").await, Outcome::Success("all good".into()));
    assert_eq!(
        run("/away").await,
        Outcome::Warning("Probe terminated redirects, Response body: moved".into())
    );
    assert_eq!(
        run("/loop").await,
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"
        ))
    );
    assert_eq!(
        run("/slow").await,
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
    let head = seen.lock().unwrap()[0].to_lowercase();
    assert!(head.starts_with("get /ok http/1.1\r\n"), "{head}");
    assert!(head.contains("user-agent: kube-probe/1.33\r\n"), "{head}");
    assert!(head.contains("x-check: yes\r\n"), "{head}");
    assert!(head.contains("accept: */*\r\n"), "{head}");
    assert!(
        head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    // /loop: 10 requests, then the client gives up
    let loops = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.starts_with("GET /loop "))
        .count();
    assert_eq!(loops, 10);

    // nothing listening
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    assert_eq!(
        prober::run(&http_probe("/ok", IntOrString::Int(dead as i32), None), &c, "", "127.0.0.1", &NoExec).await,
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{dead}/ok\": dial tcp 127.0.0.1:{dead}: connect: connection refused"
        ))
    );
    // an unknown named port cannot run at all
    assert!(matches!(
        prober::run(
            &http_probe("/ok", IntOrString::String("nope".into()), None),
            &c,
            "",
            "127.0.0.1",
            &NoExec
        )
        .await,
        Outcome::Error(_)
    ));
}

#[tokio::test]
async fn https_probe_skips_verification() {
    let (port, seen) = https_server().await;
    let c = container(port);
    let probe = http_probe("/ok", IntOrString::Int(port as i32), Some("HTTPS"));
    assert_eq!(
        prober::run(&probe, &c, "", "127.0.0.1", &NoExec).await,
        Outcome::Success("all good".into())
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn tcp_probe() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = |p: u16| Probe {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::Int(p as i32),
        }),
        ..Default::default()
    };
    let c = container(port);
    assert_eq!(
        prober::run(&probe(port), &c, "", "127.0.0.1", &NoExec).await,
        Outcome::Success(String::new())
    );
    drop(listener);
    assert_eq!(
        prober::run(&probe(port), &c, "", "127.0.0.1", &NoExec).await,
        Outcome::Failure(format!(
            "dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn grpc_probe() {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("db", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // a gRPC server without the health service
    let bare = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_port = bare.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(bare)),
    );
    let probe = |p: u16, service: Option<&str>| Probe {
        grpc: Some(GRPCAction {
            port: p as i32,
            service: service.map(String::from),
        }),
        timeout_seconds: Some(2),
        ..Default::default()
    };
    let c = container(port);
    let run = |p: Probe| {
        let c = c.clone();
        async move { prober::run(&p, &c, "", "127.0.0.1", &NoExec).await }
    };
    assert_eq!(
        run(probe(port, None)).await,
        Outcome::Success("service healthy".into())
    );
    assert_eq!(
        run(probe(port, Some("db"))).await,
        Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    match run(probe(port, Some("unknown"))).await {
        Outcome::Failure(m) => assert!(m.starts_with("error: health rpc probe failed: "), "{m}"),
        other => panic!("unexpected {other:?}"),
    }
    match run(probe(bare_port, None)).await {
        Outcome::Failure(m) => assert!(
            m.starts_with("error: this server does not implement the grpc health protocol (grpc.health.v1.Health)"),
            "{m}"
        ),
        other => panic!("unexpected {other:?}"),
    }
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    match run(probe(dead, None)).await {
        Outcome::Failure(m) => assert!(
            m.starts_with(&format!(
                "error: failed to connect service at \"127.0.0.1:{dead}\""
            )),
            "{m}"
        ),
        other => panic!("unexpected {other:?}"),
    }
}

/// Exit code per first argument; records commands.
#[derive(Default)]
struct HookExec(Mutex<Vec<Vec<String>>>);

#[async_trait]
impl ContainerExec for HookExec {
    async fn exec_sync(
        &self,
        _id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        assert_eq!(timeout, Duration::ZERO, "hooks run without an exec timeout");
        self.0.lock().unwrap().push(cmd.to_vec());
        let code = if cmd[0] == "fail" { 3 } else { 0 };
        Ok(ExecOutput {
            exit_code: code,
            output: b"out err".to_vec(),
            stderr: b"err".to_vec(),
        })
    }
}

fn hook_pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn lifecycle_hooks() {
    let (port, seen) = http_server().await;
    let exec = HookExec::default();
    let pod = hook_pod();
    let with = |post: LifecycleHandler, pre: LifecycleHandler| Container {
        name: "app".into(),
        lifecycle: Some(Lifecycle {
            post_start: Some(post),
            pre_stop: Some(pre),
            stop_signal: None,
        }),
        ..container(port)
    };
    let exec_h = |cmd: &str| LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(vec![cmd.into(), "x".into()]),
        }),
        ..Default::default()
    };
    let http_h = |path: &str, p: u16| LifecycleHandler {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(p as i32),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sleep_h = |s: i64| LifecycleHandler {
        sleep: Some(SleepAction { seconds: s }),
        ..Default::default()
    };

    let c = with(exec_h("ok"), exec_h("fail"));
    lifecycle::post_start(&exec, &pod, &c, "cid", "127.0.0.1")
        .await
        .unwrap();
    let err = lifecycle::pre_stop(&exec, &pod, &c, "cid", "127.0.0.1", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "FailedPreStopHook");
    assert_eq!(
        err.message,
        "Exec lifecycle hook ([fail x]) for Container \"app\" in Pod \"web_ns(u1)\" failed - error: command 'fail x' exited with 3: err, message: \"out err\""
    );
    assert_eq!(exec.0.lock().unwrap().len(), 2);

    // httpGet: any answer is fine (even 500); no answer fails
    let c = with(http_h("/fail", port), sleep_h(0));
    lifecycle::post_start(&exec, &pod, &c, "cid", "127.0.0.1")
        .await
        .unwrap();
    assert!(seen.lock().unwrap()[0].contains("User-Agent: kube-lifecycle/1.33"));
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let c = with(http_h("/start", dead), sleep_h(0));
    let err = lifecycle::post_start(&exec, &pod, &c, "cid", "127.0.0.1")
        .await
        .unwrap_err();
    assert_eq!(err.reason, "FailedPostStartHook");
    assert_eq!(
        err.message,
        format!("HTTP lifecycle hook (/start) for Container \"app\" in Pod \"web_ns(u1)\" failed - error: Get \"http://127.0.0.1:{dead}/start\": dial tcp 127.0.0.1:{dead}: connect: connection refused")
    );

    // HTTPS hook answered in plain HTTP falls back to HTTP
    let mut https_h = http_h("/ok", port);
    https_h.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    let c = with(https_h, sleep_h(0));
    lifecycle::post_start(&exec, &pod, &c, "cid", "127.0.0.1")
        .await
        .unwrap();
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|h| h.starts_with("GET /ok ")));

    // a preStop outliving the grace period is cut short without an error, as upstream
    let c = with(sleep_h(0), sleep_h(30));
    let started = std::time::Instant::now();
    lifecycle::pre_stop(
        &exec,
        &pod,
        &c,
        "cid",
        "127.0.0.1",
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn manager_runs_http_readiness_against_the_pod_ip() {
    use kubelet::probe::{ContainerState, ProbeEvent, ProbeManager, ProbeResult, ProbeType};
    let (port, seen) = http_server().await;
    let (manager, mut events) = ProbeManager::new(Arc::new(NoExec));
    let mut c = container(port);
    c.readiness_probe = Some(Probe {
        period_seconds: Some(1),
        ..http_probe("/ok", IntOrString::String("web".into()), None)
    });
    c.liveness_probe = Some(Probe {
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..http_probe("/fail", IntOrString::String("web".into()), None)
    });
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::core::v1::PodSpec {
            containers: vec![c],
            ..Default::default()
        }),
        ..Default::default()
    };
    manager.add_pod(&pod);
    manager.set_pod_ip("u1", "127.0.0.1");
    manager.set_container_state(
        "u1",
        "app",
        ContainerState {
            container_id: "cid".into(),
            running_since: Some(std::time::SystemTime::now()),
            terminated: false,
        },
    );
    let mut results = Vec::new();
    let mut unhealthy = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while results.len() < 4 {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("probe results within 10s")
            .unwrap();
        match ev {
            ProbeEvent::Result { probe, result, .. } => results.push((probe, result)),
            ProbeEvent::Event {
                reason, message, ..
            } => unhealthy.push((reason, message)),
        }
    }
    results.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        results,
        vec![
            (ProbeType::Liveness, ProbeResult::Failure),
            (ProbeType::Liveness, ProbeResult::Success),
            (ProbeType::Readiness, ProbeResult::Failure),
            (ProbeType::Readiness, ProbeResult::Success),
        ]
    );
    assert!(unhealthy.contains(&(
        "Unhealthy",
        "Liveness probe failed: HTTP probe failed with statuscode: 500".to_string()
    )));
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|h| h.starts_with("GET /ok ")));
    manager.remove_pod("u1");
}
