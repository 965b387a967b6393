//! Integration tests of the kubelet HTTPS API against our CRI runtime: real busybox containers
//! in a host-network sandbox, reached through the kubelet server over mutual TLS. Needs root and
//! busybox-static. The test binary doubles as the runtime's container shim (`<exe> shim ...`),
//! so it runs without libtest's harness: `cargo test -p kubelet --test server [filter]`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cri::v1 as pb;
use cri::RuntimeServiceClient;
use http_body_util::{BodyExt, Empty};
use kubelet::server::{Config, Server};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tonic::transport::Channel;

const IMAGE: &str = "docker.io/library/busybox:kubelet-api";

/// PEM certificate and key.
#[derive(Clone)]
struct Pair {
    cert: String,
    key: String,
}

struct Pki {
    ca: Pair,
    serving: Pair,
    apiserver: Pair,
    admin: Pair,
    bob: Pair,
    stranger: Pair,
}

fn ca(cn: &str) -> (Pair, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    (
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        },
        key,
    )
}

fn leaf(ca: &Pair, cn: &str, orgs: &[&str], sans: &[&str], server: bool) -> Pair {
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, KeyPair::from_pem(&ca.key).unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    for o in orgs {
        p.distinguished_name.push(DnType::OrganizationName, *o);
    }
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.to_string().try_into().unwrap()),
        })
        .collect();
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let cert = p.signed_by(&key, &issuer).unwrap();
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn pki() -> Pki {
    let (other, _) = ca("some-other-ca");
    let (ca, _) = ca("test-cluster-ca");
    Pki {
        serving: leaf(
            &ca,
            "system:node:n1",
            &["system:nodes"],
            &["n1", "127.0.0.1"],
            true,
        ),
        apiserver: leaf(
            &ca,
            "kube-apiserver-kubelet-client",
            &["system:masters"],
            &[],
            false,
        ),
        admin: leaf(&ca, "system:admin", &["system:masters"], &[], false),
        bob: leaf(&ca, "bob", &["dev"], &[], false),
        stranger: leaf(
            &other,
            "kube-apiserver-kubelet-client",
            &["system:masters"],
            &[],
            false,
        ),
        ca,
    }
}

/// A kubelet API client: HTTP/1.1 over TLS, optionally with a client certificate.
struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    fn new(addr: SocketAddr, ca: &Pair, cert: Option<&Pair>) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca.cert.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let cfg = match cert {
            Some(p) => b
                .with_client_auth_cert(
                    rustls_pemfile::certs(&mut p.cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap(),
                    rustls_pemfile::private_key(&mut p.key.as_bytes())
                        .unwrap()
                        .unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        Client {
            addr,
            tls: Arc::new(cfg),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect("127.0.0.1".try_into().unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .unwrap();
        tx.send_request(req).await.map_err(|e| e.to_string())
    }

    /// Status and whole body.
    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.send("GET", path).await.expect("request");
        let code = resp.status().as_u16();
        let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
            .await
            .expect("body within a minute")
            .expect("body")
            .to_bytes();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get(path).await;
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

/// The runtime, a host-network pod sandbox, and the kubelet API server over it.
struct Env {
    dir: tempfile::TempDir,
    rt: RuntimeServiceClient<Channel>,
    sandbox: String,
    sandbox_config: pb::PodSandboxConfig,
    addr: SocketAddr,
    pki: Pki,
    runtime_stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime_task: Option<tokio::task::JoinHandle<()>>,
    kubelet_stop: Option<tokio::sync::oneshot::Sender<()>>,
    containers: Vec<String>,
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("kubelet-api-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let built = runtime::testimage::TestImage::busybox(IMAGE)
            .expect("busybox-static installed")
            .build();
        let archive = dir.path().join("image.tar");
        runtime::testimage::write_oci_archive(&archive, &[&built]).unwrap();
        runtime::images::import(&data, &[archive]).expect("import test image");
        let mut cfg = runtime::Config::new(&data);
        cfg.shim = Some(runtime::container::manager::ShimCommand {
            exe: std::env::current_exe().unwrap(),
            prefix: vec!["shim".into()],
        });
        let socket = cfg.socket_path();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime_task = tokio::spawn(async move {
            if let Err(e) = runtime::run(cfg, async {
                let _ = rx.await;
            })
            .await
            {
                panic!("runtime failed: {e}");
            }
        });
        let s = socket.clone();
        wait_for("cri socket", || {
            std::os::unix::net::UnixStream::connect(&s).is_ok()
        });
        let (mut rt, _) = cri::clients(&socket).await.unwrap();
        let logs = dir.path().join("pods/default_web_uid-web");
        std::fs::create_dir_all(&logs).unwrap();
        let sandbox_config = pb::PodSandboxConfig {
            metadata: Some(pb::PodSandboxMetadata {
                name: "web".into(),
                uid: "uid-web".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: logs.display().to_string(),
            labels: HashMap::from([
                ("io.kubernetes.pod.name".into(), "web".into()),
                ("io.kubernetes.pod.namespace".into(), "default".into()),
                ("io.kubernetes.pod.uid".into(), "uid-web".into()),
                ("app".into(), "web".into()),
            ]),
            linux: Some(pb::LinuxPodSandboxConfig {
                security_context: Some(pb::LinuxSandboxSecurityContext {
                    namespace_options: Some(pb::NamespaceOption {
                        network: pb::NamespaceMode::Node as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sandbox = rt
            .run_pod_sandbox(pb::RunPodSandboxRequest {
                config: Some(sandbox_config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        let pki = pki();
        let server = Server::bind(Config {
            bind_address: "127.0.0.1:0".parse().unwrap(),
            serving_cert_pem: pki.serving.cert.clone(),
            serving_key_pem: pki.serving.key.clone(),
            client_ca_pem: pki.ca.cert.clone(),
            cri_socket: socket,
            node_name: "n1".into(),
            root_dir: dir.path().to_path_buf(),
        })
        .await
        .expect("kubelet server binds");
        let addr = server.local_addr().unwrap();
        let (ktx, krx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async {
            let _ = krx.await;
        }));
        Env {
            dir,
            rt,
            sandbox,
            sandbox_config,
            addr,
            pki,
            runtime_stop: Some(tx),
            runtime_task: Some(runtime_task),
            kubelet_stop: Some(ktx),
            containers: Vec::new(),
        }
    }

    fn client(&self, who: Option<&Pair>) -> Client {
        Client::new(self.addr, &self.pki.ca, who)
    }

    fn apiserver(&self) -> Client {
        self.client(Some(&self.pki.apiserver))
    }

    /// Creates and starts container `name` (attempt `attempt`) running `sh -c script`.
    async fn run(&mut self, name: &str, attempt: u32, script: &str) -> String {
        let cfg = pb::ContainerConfig {
            metadata: Some(pb::ContainerMetadata {
                name: name.into(),
                attempt,
            }),
            image: Some(pb::ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}/{attempt}.log"),
            labels: HashMap::from([("io.kubernetes.container.name".into(), name.into())]),
            ..Default::default()
        };
        std::fs::create_dir_all(Path::new(&self.sandbox_config.log_directory).join(name)).unwrap();
        let id = self
            .rt
            .create_container(pb::CreateContainerRequest {
                pod_sandbox_id: self.sandbox.clone(),
                config: Some(cfg),
                sandbox_config: Some(self.sandbox_config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        self.rt
            .start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .expect("StartContainer");
        self.containers.push(id.clone());
        id
    }

    async fn state(&mut self, id: &str) -> i32 {
        self.rt
            .container_status(pb::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
            .state
    }

    async fn wait_exited(&mut self, id: &str) {
        let start = Instant::now();
        while self.state(id).await != pb::ContainerState::ContainerExited as i32 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "container {id} never exited"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        for id in std::mem::take(&mut self.containers) {
            let _ = self
                .rt
                .stop_container(pb::StopContainerRequest {
                    container_id: id.clone(),
                    timeout: 0,
                })
                .await;
            let _ = self
                .rt
                .remove_container(pb::RemoveContainerRequest { container_id: id })
                .await;
        }
        let _ = self
            .rt
            .stop_pod_sandbox(pb::StopPodSandboxRequest {
                pod_sandbox_id: self.sandbox.clone(),
            })
            .await;
        let _ = self
            .rt
            .remove_pod_sandbox(pb::RemovePodSandboxRequest {
                pod_sandbox_id: self.sandbox.clone(),
            })
            .await;
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(tx) = self.kubelet_stop.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.runtime_stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.runtime_task.take() {
            t.abort();
        }
        // whatever the runtime left mounted under the test dir
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.path().display().to_string();
        let mut mounts: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(PathBuf::from)
            .collect();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

// ---------------------------------------------------------------------------------------------

async fn auth_and_health(env: &mut Env) {
    let (code, body) = env.apiserver().get("/healthz").await;
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, _) = env.client(Some(&env.pki.admin)).get("/healthz").await;
    assert_eq!(code, 200, "system:masters may use the API");
    let (code, body) = env.client(None).get("/pods").await;
    assert_eq!((code, body.trim()), (401, "Unauthorized"));
    let (code, body) = env.client(Some(&env.pki.bob)).get("/stats/summary").await;
    assert_eq!(code, 403);
    assert_eq!(
        body.trim(),
        "Forbidden (user=bob, verb=get, resource=nodes, subresource=stats)"
    );
    // a certificate from another CA is refused by TLS
    let r = env
        .client(Some(&env.pki.stranger))
        .send("GET", "/healthz")
        .await;
    assert!(r.is_err(), "foreign client certificate accepted");
    let (code, body) = env.apiserver().get("/nope").await;
    assert_eq!((code, body.trim()), (404, "404 page not found"));
    let (code, _) = env
        .apiserver()
        .send("DELETE", "/pods")
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(code, 405);
}

async fn pods_logs_and_stats(env: &mut Env) {
    // attempt 0 exits with three lines; attempt 1 prints slowly, then exits
    let first = env
        .run(
            "app",
            0,
            "echo one; echo two; sleep 0.2; echo three >&2; exit 3",
        )
        .await;
    env.wait_exited(&first).await;
    let second = env
        .run(
            "app",
            1,
            "i=0; while [ $i -lt 6 ]; do echo line$i; i=$((i+1)); sleep 0.3; done",
        )
        .await;
    let api = env.apiserver();
    // follow streams until the container exits and its file is drained
    let (code, body) = api.get("/containerLogs/default/web/app?follow=true").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "line0\nline1\nline2\nline3\nline4\nline5\n");
    env.wait_exited(&second).await;
    let (_, body) = api.get("/containerLogs/default/web/app?tailLines=2").await;
    assert_eq!(body, "line4\nline5\n");
    let (_, body) = api
        .get("/containerLogs/default/web/app?previous=true")
        .await;
    assert_eq!(body, "one\ntwo\nthree\n");
    let (_, body) = api
        .get("/containerLogs/default/web/app?previous=true&limitBytes=6")
        .await;
    assert_eq!(body, "one\ntw");
    let (_, body) = api
        .get("/containerLogs/default/web/app?timestamps=true&tailLines=1")
        .await;
    let (ts, line) = body.trim_end().split_once(' ').expect("timestamp prefix");
    assert_eq!(line, "line5");
    let t = chrono::DateTime::parse_from_rfc3339(ts).expect("RFC 3339 timestamp");
    assert_eq!(ts.len(), "2026-11-27T11:00:00.000000000Z".len(), "{ts}");
    assert!((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds() < 600);
    let (_, body) = api
        .get("/containerLogs/default/web/app?sinceTime=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(body, "");
    let (_, body) = api
        .get("/containerLogs/default/web/app?sinceSeconds=600&tailLines=1")
        .await;
    assert_eq!(body, "line5\n");
    // errors, worded as upstream's kubelet words them
    let (code, body) = api.get("/containerLogs/default/nope/app").await;
    assert_eq!((code, body.trim()), (404, "pod \"nope\" does not exist"));
    let (code, body) = api.get("/containerLogs/default/web/zzz").await;
    assert_eq!(
        (code, body.trim()),
        (404, "container \"zzz\" not found in pod \"web\"")
    );
    let (code, _) = api.get("/containerLogs/default/web/app?tailLines=-3").await;
    assert_eq!(code, 400);

    // a running container for /pods, /runningpods and the stats summary
    let sleeper = env.run("sleeper", 0, "echo up; exec sleep 1000").await;
    let start = Instant::now();
    while env.state(&sleeper).await != pb::ContainerState::ContainerRunning as i32 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sleeper never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pods = api.json("/pods").await;
    assert_eq!(pods["kind"], "PodList");
    let web = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == "web")
        .unwrap_or_else(|| panic!("web in /pods: {pods}"));
    assert_eq!(web["metadata"]["namespace"], "default");
    assert_eq!(web["metadata"]["uid"], "uid-web");
    assert_eq!(web["metadata"]["labels"]["app"], "web");
    assert_eq!(web["status"]["phase"], "Running");
    let statuses = web["status"]["containerStatuses"].as_array().unwrap();
    let app = statuses.iter().find(|c| c["name"] == "app").unwrap();
    assert_eq!(app["restartCount"], 1);
    assert_eq!(app["state"]["terminated"]["exitCode"], 0);
    assert_eq!(app["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(app["containerID"], format!("oxkube://{second}"));
    let sl = statuses.iter().find(|c| c["name"] == "sleeper").unwrap();
    assert!(sl["state"]["running"].is_object(), "{sl}");

    let running = api.json("/runningpods/").await;
    let items = running["items"].as_array().unwrap();
    let web = items
        .iter()
        .find(|p| p["metadata"]["uid"] == "uid-web")
        .expect("web runs");
    let names: Vec<&str> = web["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["sleeper"]);

    let s = api.json("/stats/summary").await;
    let node = &s["node"];
    assert_eq!(node["nodeName"], "n1");
    assert!(
        node["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0,
        "{node}"
    );
    assert!(node["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
    assert!(node["memory"]["availableBytes"].as_u64().unwrap() > 0);
    assert!(node["fs"]["capacityBytes"].as_u64().unwrap() > 0);
    assert!(node["rlimit"]["curproc"].as_u64().unwrap() > 1);
    assert!(
        node["runtime"]["imageFs"]["usedBytes"].as_u64().unwrap() > 0,
        "{node}"
    );
    let pod = s["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["uid"] == "uid-web")
        .unwrap_or_else(|| panic!("web in summary: {s}"));
    assert_eq!(pod["podRef"]["name"], "web");
    let c = &pod["containers"][0];
    assert_eq!(c["name"], "sleeper");
    assert!(c["memory"]["workingSetBytes"].as_u64().is_some(), "{c}");
    assert!(c["cpu"]["usageCoreNanoSeconds"].as_u64().is_some(), "{c}");
    assert!(c["rootfs"]["usedBytes"].as_u64().is_some(), "{c}");
    // the second summary has CPU rates computed from the first
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s2 = api.json("/stats/summary").await;
    assert!(
        s2["node"]["cpu"]["usageNanoCores"].as_u64().is_some(),
        "{}",
        s2["node"]
    );

    // exec needs an upgrade request
    let (code, body) = api
        .get("/exec/default/web/sleeper?command=ls&stdout=1")
        .await;
    assert_eq!((code, body.trim()), (400, "Upgrade request required"));
    let (code, body) = api.get("/exec/default/web/sleeper?command=ls").await;
    assert_eq!(
        (code, body.trim()),
        (400, "you must specify at least 1 of stdin, stdout, stderr")
    );
}

type TestFn = for<'a> fn(&'a mut Env) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

fn t_auth(e: &mut Env) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(auth_and_health(e))
}

fn t_pods(e: &mut Env) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(pods_logs_and_stats(e))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(runtime::container::shim::main(&args[2..]));
    }
    let filter: Option<&String> = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let tests: Vec<(&str, TestFn)> =
        vec![("auth_and_health", t_auth), ("pods_logs_and_stats", t_pods)];
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, f) in tests {
        if filter.is_some_and(|p| !name.contains(p.as_str())) {
            continue;
        }
        ran += 1;
        let ok = rt.block_on(async {
            let mut env = Env::start().await;
            let r = tokio::task::unconstrained(async {
                futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(f(&mut env))).await
            })
            .await;
            env.stop().await;
            r.is_ok()
        });
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
