//! End-to-end: the API server's proxy to the kubelet API. A real `oxkube server
//! --disable-agent`, our CRI runtime and the kubelet HTTPS server in this process, a Node
//! object pointing at that kubelet and Pod objects bound to it whose containers are started
//! through CRI with the kubelet's labels; then the real kubectl: `logs` (-f, --tail,
//! --timestamps, --previous), `get --raw .../nodes/<n>/proxy/...`, `exec` reaching the kubelet,
//! services/proxy to an EndpointSlice endpoint, and the error cases.
//! Needs root and busybox-static.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Cluster;
use cri::v1 as pb;

const IMAGE: &str = "docker.io/library/busybox:kubelet-e2e";
const NODE: &str = "kubelet-e2e-node";

/// The runtime and the kubelet API server, on a tokio runtime of their own.
struct Node {
    rt: tokio::runtime::Runtime,
    cri: cri::RuntimeServiceClient<tonic::transport::Channel>,
    port: u16,
    dir: tempfile::TempDir,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    sandboxes: Vec<String>,
    containers: Vec<String>,
}

struct Sandbox {
    id: String,
    config: pb::PodSandboxConfig,
}

impl Node {
    fn start(data_dir: &Path) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("kubelet-e2e-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let built = runtime::testimage::TestImage::busybox(IMAGE)
            .expect("busybox-static installed")
            .build();
        let archive = dir.path().join("image.tar");
        runtime::testimage::write_oci_archive(&archive, &[&built]).unwrap();
        runtime::images::import(&data, &[archive]).expect("import test image");
        // the kubelet's serving certificate, issued by the cluster CA
        let tls = data_dir.join("tls");
        let ca = apiserver::pki::CertPair {
            cert_pem: std::fs::read_to_string(tls.join("ca.crt")).unwrap(),
            key_pem: std::fs::read_to_string(tls.join("ca.key")).unwrap(),
        };
        let pki = apiserver::pki::Pki {
            dir: tls.clone(),
            ca: ca.clone(),
            serving: ca.clone(),
            admin: ca.clone(),
            service_account_key_pem: String::new(),
        };
        let serving = pki
            .kubelet_serving_cert(NODE, &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = runtime::Config::new(&data);
        cfg.shim = Some(runtime::container::manager::ShimCommand {
            exe: PathBuf::from(common::bin()),
            prefix: vec!["shim".into()],
        });
        let socket = cfg.socket_path();
        let (rtx, rrx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            if let Err(e) = runtime::run(cfg, async {
                let _ = rrx.await;
            })
            .await
            {
                eprintln!("runtime failed: {e}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "cri socket never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (ktx, krx) = tokio::sync::oneshot::channel::<()>();
        let (cri, port) = rt.block_on(async {
            let (cri, _) = cri::clients(&socket).await.unwrap();
            let server = kubelet::server::Server::bind(kubelet::server::Config {
                bind_address: "127.0.0.1:0".parse().unwrap(),
                serving_cert_pem: serving.cert_pem.clone(),
                serving_key_pem: serving.key_pem.clone(),
                client_ca_pem: ca.cert_pem.clone(),
                cri_socket: socket.clone(),
                node_name: NODE.into(),
                root_dir: data.clone(),
            })
            .await
            .expect("kubelet server binds");
            let port = server.local_addr().unwrap().port();
            tokio::spawn(server.serve(async {
                let _ = krx.await;
            }));
            (cri, port)
        });
        Node {
            rt,
            cri,
            port,
            dir,
            stop: vec![ktx, rtx],
            sandboxes: Vec::new(),
            containers: Vec::new(),
        }
    }

    fn sandbox(&mut self, ns: &str, name: &str, uid: &str) -> Sandbox {
        let logs = self.dir.path().join(format!("pods/{ns}_{name}_{uid}"));
        std::fs::create_dir_all(&logs).unwrap();
        let config = pb::PodSandboxConfig {
            metadata: Some(pb::PodSandboxMetadata {
                name: name.into(),
                uid: uid.into(),
                namespace: ns.into(),
                attempt: 0,
            }),
            log_directory: logs.display().to_string(),
            labels: HashMap::from([
                ("io.kubernetes.pod.name".into(), name.into()),
                ("io.kubernetes.pod.namespace".into(), ns.into()),
                ("io.kubernetes.pod.uid".into(), uid.into()),
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
        let mut cri = self.cri.clone();
        let c = config.clone();
        let id = self
            .rt
            .block_on(cri.run_pod_sandbox(pb::RunPodSandboxRequest {
                config: Some(c),
                runtime_handler: String::new(),
            }))
            .expect("RunPodSandbox")
            .into_inner()
            .pod_sandbox_id;
        self.sandboxes.push(id.clone());
        Sandbox { id, config }
    }

    fn run(&mut self, sb: &Sandbox, name: &str, attempt: u32, script: &str) -> String {
        std::fs::create_dir_all(Path::new(&sb.config.log_directory).join(name)).unwrap();
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
        let mut cri = self.cri.clone();
        let (sid, sc) = (sb.id.clone(), sb.config.clone());
        let id = self.rt.block_on(async move {
            let id = cri
                .create_container(pb::CreateContainerRequest {
                    pod_sandbox_id: sid,
                    config: Some(cfg),
                    sandbox_config: Some(sc),
                })
                .await
                .expect("CreateContainer")
                .into_inner()
                .container_id;
            cri.start_container(pb::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .expect("StartContainer");
            id
        });
        self.containers.push(id.clone());
        id
    }

    fn wait_exited(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cri = self.cri.clone();
            let st = self
                .rt
                .block_on(cri.container_status(pb::ContainerStatusRequest {
                    container_id: id.into(),
                    verbose: false,
                }))
                .unwrap()
                .into_inner()
                .status
                .unwrap();
            if st.state == pb::ContainerState::ContainerExited as i32 {
                return;
            }
            assert!(Instant::now() < deadline, "container {id} never exited");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut cri = self.cri.clone();
        let (cs, ss) = (self.containers.clone(), self.sandboxes.clone());
        self.rt.block_on(async move {
            for id in cs {
                let _ = cri
                    .stop_container(pb::StopContainerRequest {
                        container_id: id.clone(),
                        timeout: 0,
                    })
                    .await;
                let _ = cri
                    .remove_container(pb::RemoveContainerRequest { container_id: id })
                    .await;
            }
            for id in ss {
                let _ = cri
                    .stop_pod_sandbox(pb::StopPodSandboxRequest {
                        pod_sandbox_id: id.clone(),
                    })
                    .await;
                let _ = cri
                    .remove_pod_sandbox(pb::RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await;
            }
        });
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
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
            unsafe {
                let c = std::ffi::CString::new(m.as_os_str().to_string_lossy().as_bytes()).unwrap();
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

fn node_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n")
}

fn pod_yaml(name: &str, node: &str, containers: &[&str]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  containers:\n"
    );
    for c in containers {
        y.push_str(&format!("  - name: {c}\n    image: {IMAGE}\n"));
    }
    y
}

fn point_node_at(c: &Cluster, node: &str, port: u16) {
    c.kubectl_stdin(&["apply", "-f", "-"], &node_yaml(node));
    c.kubectl(&[
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status":{{"addresses":[{{"type":"Hostname","address":"{node}"}},{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#
        ),
    ]);
}

#[test]
fn kubectl_logs_and_node_proxy_through_the_kubelet() {
    let c = Cluster::start_with(&["--disable-scheduler", "--disable-controller-manager"]);
    let mut node = Node::start(c.data_dir());
    assert!(
        c.data_dir()
            .join("tls/apiserver-kubelet-client.crt")
            .exists(),
        "the API server's kubelet client certificate is written under the data dir"
    );
    point_node_at(&c, NODE, node.port);
    c.kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("web", NODE, &["app"]));
    let uid = c.kubectl(&["get", "pod", "web", "-o", "jsonpath={.metadata.uid}"]);
    let sb = node.sandbox("default", "web", &uid);
    let first = node.run(
        &sb,
        "app",
        0,
        "echo one; echo two; sleep 0.2; echo three >&2; exit 1",
    );
    node.wait_exited(&first);
    let second = node.run(
        &sb,
        "app",
        1,
        "i=0; while [ $i -lt 5 ]; do echo line$i; i=$((i+1)); sleep 0.3; done",
    );

    // follow: streams as the container writes and ends when it exits
    assert_eq!(
        c.kubectl(&["logs", "-f", "web"]),
        "line0\nline1\nline2\nline3\nline4\n"
    );
    node.wait_exited(&second);
    assert_eq!(
        c.kubectl(&["logs", "web"]),
        "line0\nline1\nline2\nline3\nline4\n"
    );
    assert_eq!(c.kubectl(&["logs", "web", "--tail=2"]), "line3\nline4\n");
    assert_eq!(
        c.kubectl(&["logs", "web", "-c", "app", "--previous"]),
        "one\ntwo\nthree\n"
    );
    assert_eq!(
        c.kubectl(&["logs", "web", "--previous", "--limit-bytes=5"]),
        "one\nt"
    );
    let stamped = c.kubectl(&["logs", "web", "--timestamps", "--tail=1"]);
    let (ts, line) = stamped
        .trim_end()
        .split_once(' ')
        .expect("timestamp prefix");
    assert_eq!(line, "line4");
    assert!(
        ts.ends_with('Z') && ts.contains('T') && ts.len() == 30,
        "{ts}"
    );
    assert_eq!(
        c.kubectl(&["logs", "web", "--since=10m", "--tail=1"]),
        "line4\n"
    );

    // nodes/proxy: any path to the kubelet
    assert_eq!(
        c.kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{NODE}/proxy/healthz")
        ]),
        "ok\n"
    );
    let summary: serde_json::Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/stats/summary"),
    ]))
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], NODE);
    let pods: serde_json::Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/pods"),
    ]))
    .unwrap();
    assert!(
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["metadata"]["uid"] == uid.as_str()),
        "{pods}"
    );
    let nf = c.kubectl_err(&["get", "--raw", &format!("/api/v1/nodes/{NODE}/proxy/nope")]);
    assert!(nf.contains("NotFound") || nf.contains("not found"), "{nf}");

    // exec goes through the API server to the kubelet as an upgrade request (WebSocket, then
    // kubectl's SPDY fallback); the kubelet's refusal comes back to kubectl
    let e = c.kubectl_err(&["exec", "web", "--", "true"]);
    assert!(
        e.contains("container \"app\" in pod \"web\" is not running"),
        "{e}"
    );

    // errors as upstream reports them
    c.kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("multi", NODE, &["a", "b"]));
    // (kubectl itself defaults to the first container, so ask the API directly)
    let e = c.kubectl_err(&["get", "--raw", "/api/v1/namespaces/default/pods/multi/log"]);
    assert!(
        e.contains("a container name must be specified for pod multi, choose one of: [a b]"),
        "{e}"
    );
    let e = c.kubectl_err(&["logs", "web", "-c", "zzz"]);
    assert!(e.contains("container zzz is not valid for pod web"), "{e}");
    let e = c.kubectl_err(&["logs", "nope"]);
    assert!(e.contains("pods \"nope\" not found"), "{e}");
    // the kubelet's own answer comes through: this pod has no sandbox on the node
    let e = c.kubectl_err(&["logs", "multi", "-c", "a"]);
    assert!(e.contains("NotFound") || e.contains("not find"), "{e}");
    // unscheduled pod: no logs yet, exec refused
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("pending", "", &["app"]).replace("  nodeName: \n", ""),
    );
    assert_eq!(c.kubectl(&["logs", "pending"]), "");
    let e = c.kubectl_err(&["exec", "pending", "--", "true"]);
    assert!(
        e.contains("pod pending does not have a host assigned"),
        "{e}"
    );
    // a node whose kubelet does not answer
    point_node_at(&c, "gone", common::free_port());
    c.kubectl_stdin(&["apply", "-f", "-"], &pod_yaml("orphan", "gone", &["app"]));
    let e = c.kubectl_err(&["logs", "orphan"]);
    assert!(
        e.contains("error trying to reach service") && e.contains("refused"),
        "{e}"
    );
    let e = c.kubectl_err(&["get", "--raw", "/api/v1/nodes/gone/proxy/healthz"]);
    assert!(e.contains("error trying to reach service"), "{e}");
    let e = c.kubectl_err(&["get", "--raw", "/api/v1/nodes/missing/proxy/healthz"]);
    assert!(e.contains("nodes \"missing\" not found"), "{e}");
    drop(node);
}

/// An HTTP server answering every request with its request line.
fn request_line_server() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let body = format!("backend saw: {}", first.trim_end());
            let mut w = s;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn services_proxy_reaches_a_ready_endpoint() {
    let c = Cluster::start_with(&["--disable-scheduler", "--disable-controller-manager"]);
    let port = request_line_server();
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  ports:\n  - name: http\n    port: 80\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: echo-1\n  labels:\n    kubernetes.io/service-name: echo\naddressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\nports:\n- name: http\n  port: {port}\n  protocol: TCP\n"
        ),
    );
    let out = c.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/echo:80/proxy/hello/world?x=1",
    ]);
    assert_eq!(out, "backend saw: GET /hello/world?x=1 HTTP/1.1");
    let out = c.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/http:echo:http/proxy/",
    ]);
    assert_eq!(out, "backend saw: GET / HTTP/1.1");
    let e = c.kubectl_err(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/echo:81/proxy/",
    ]);
    assert!(e.contains("no service port 81 found for service"), "{e}");
    let e = c.kubectl_err(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/echo:other/proxy/",
    ]);
    assert!(e.contains("no endpoints available for service"), "{e}");
}
