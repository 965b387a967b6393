//! The real kubectl 1.33 against the runtime's streaming server: a stand-in API server answers
//! discovery and the pod GET, and for pods/exec, pods/attach and pods/portforward does what the
//! kubelet does (calls CRI Exec/Attach/PortForward with the request's options) and forwards the
//! upgrade request and its bytes unchanged to the returned URL. This exercises kubectl's own
//! clients: WebSocket v5 exec, SPDY exec, WebSocket-tunnelled SPDY and plain SPDY port-forward.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri::v1 as pb;
use cri::RuntimeServiceClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;

use crate::containers::{container_config, create, pod, remove_pod, start, wait_exited};
use crate::harness::Target;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// What the stand-in API server knows about its one pod.
#[derive(Clone)]
struct PodInfo {
    name: String,
    sandbox: String,
    /// container name -> CRI container ID
    containers: HashMap<String, String>,
}

/// The upgrade requests seen: (subresource, Upgrade header, offered protocols).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

struct FakeApi {
    addr: std::net::SocketAddr,
    kubeconfig: PathBuf,
    cache: PathBuf,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                out.push(h);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn json_response(status: &str, body: serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl FakeApi {
    async fn start(t: &Target, rt: RuntimeServiceClient<Channel>, pod: PodInfo) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve_conn(conn, rt.clone(), pod.clone(), s.clone()));
            }
        });
        let dir = t.dir.path().join("kubectl");
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("config");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    namespace: default\ncurrent-context: c\nusers: []\n"
            ),
        )
        .unwrap();
        FakeApi {
            addr,
            kubeconfig,
            cache: dir.join("cache"),
            seen,
            task,
        }
    }

    fn kubectl(&self, args: &[&str], envs: &[(&str, &str)]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(KUBECTL);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .envs(envs.iter().copied())
            .kill_on_drop(true);
        c
    }
}

async fn serve_conn(
    mut conn: TcpStream,
    mut rt: RuntimeServiceClient<Channel>,
    pod: PodInfo,
    seen: Seen,
) {
    let mut buf = Vec::new();
    loop {
        // one request head
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let rest = buf[end..].to_vec();
        buf.clear();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("").to_string();
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let reply = match segs.as_slice() {
            ["api"] => json_response(
                "200 OK",
                serde_json::json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            ),
            ["apis"] => json_response(
                "200 OK",
                serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
            ),
            ["api", "v1"] => {
                let sub = |n: &str, kind: &str| serde_json::json!({"name": n, "singularName": "", "namespaced": true, "kind": kind, "verbs": ["create", "get"]});
                json_response(
                    "200 OK",
                    serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                        {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                         "verbs": ["get", "list"], "shortNames": ["po"]},
                        sub("pods/exec", "PodExecOptions"),
                        sub("pods/attach", "PodAttachOptions"),
                        sub("pods/portforward", "PodPortForwardOptions"),
                    ]}),
                )
            }
            ["api", "v1", "namespaces", ns, "pods", name]
                if *name == pod.name && method == "GET" =>
            {
                let containers: Vec<_> = pod
                    .containers
                    .keys()
                    .map(|c| serde_json::json!({"name": c, "image": "busybox", "stdin": true}))
                    .collect();
                let statuses: Vec<_> = pod
                    .containers
                    .iter()
                    .map(|(c, id)| {
                        serde_json::json!({"name": c, "ready": true, "restartCount": 0,
                        "image": "busybox", "imageID": "", "containerID": format!("cri://{id}"),
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
                    })
                    .collect();
                json_response(
                    "200 OK",
                    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": ns, "uid": "u1"},
                        "spec": {"containers": containers},
                        "status": {"phase": "Running", "containerStatuses": statuses}}),
                )
            }
            ["api", "v1", "namespaces", _, "pods", name, sub] if *name == pod.name => {
                seen.lock().unwrap().push((
                    sub.to_string(),
                    header("Upgrade"),
                    if header("Sec-WebSocket-Protocol").is_empty() {
                        header("X-Stream-Protocol-Version")
                    } else {
                        header("Sec-WebSocket-Protocol")
                    },
                ));
                let q = query_pairs(query);
                let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                let flag = |k: &str| matches!(get(k).as_deref(), Some("true") | Some("1"));
                let container = get("container")
                    .or_else(|| pod.containers.keys().next().cloned())
                    .unwrap_or_default();
                let cid = pod.containers.get(&container).cloned().unwrap_or_default();
                // what the kubelet does: ask the runtime for a streaming URL
                let url = match *sub {
                    "exec" => rt
                        .exec(pb::ExecRequest {
                            container_id: cid,
                            cmd: q
                                .iter()
                                .filter(|(k, _)| k == "command")
                                .map(|(_, v)| v.clone())
                                .collect(),
                            tty: flag("tty"),
                            stdin: flag("stdin"),
                            stdout: flag("stdout"),
                            stderr: flag("stderr"),
                        })
                        .await
                        .map(|r| r.into_inner().url),
                    "attach" => rt
                        .attach(pb::AttachRequest {
                            container_id: cid,
                            tty: flag("tty"),
                            stdin: flag("stdin"),
                            stdout: flag("stdout"),
                            stderr: flag("stderr"),
                        })
                        .await
                        .map(|r| r.into_inner().url),
                    _ => rt
                        .port_forward(pb::PortForwardRequest {
                            pod_sandbox_id: pod.sandbox.clone(),
                            port: q
                                .iter()
                                .filter(|(k, _)| k == "ports" || k == "port")
                                .filter_map(|(_, v)| v.parse().ok())
                                .collect(),
                        })
                        .await
                        .map(|r| r.into_inner().url),
                };
                let url = match url {
                    Ok(u) => u,
                    Err(e) => {
                        let _ = conn
                            .write_all(&json_response(
                                "500 Internal Server Error",
                                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": e.message(), "code": 500}),
                            ))
                            .await;
                        return;
                    }
                };
                // forward the upgrade request unchanged but for its target and Host
                let rest_url = url.strip_prefix("http://").unwrap();
                let (host, upath) = rest_url.split_once('/').unwrap();
                let mut up = TcpStream::connect(host).await.unwrap();
                let mut fwd = format!("{method} /{upath}?{query} HTTP/1.1\r\n");
                for (k, v) in &headers {
                    if k.eq_ignore_ascii_case("host") {
                        fwd.push_str(&format!("Host: {host}\r\n"));
                    } else {
                        fwd.push_str(&format!("{k}: {v}\r\n"));
                    }
                }
                fwd.push_str("\r\n");
                up.write_all(fwd.as_bytes()).await.unwrap();
                up.write_all(&rest).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                return;
            }
            _ => json_response(
                "404 Not Found",
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            ),
        };
        if conn.write_all(&reply).await.is_err() {
            return;
        }
        buf.extend_from_slice(&rest);
    }
}

async fn running_pod(t: &mut Target, name: &str, command: &[&str]) -> PodInfo {
    let (sb, _) = pod(t, name).await;
    let id = create(t, &sb, container_config("c", command))
        .await
        .expect("create");
    start(t, &id).await.expect("start");
    PodInfo {
        name: name.into(),
        sandbox: sb.id,
        containers: HashMap::from([("c".to_string(), id)]),
    }
}

async fn kubectl_exec(api: &FakeApi, pod: &str, envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = api
        .kubectl(
            &[
                "exec",
                "-i",
                pod,
                "-c",
                "c",
                "--",
                "sh",
                "-c",
                "cat; echo to-stderr >&2; exit 4",
            ],
            envs,
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"from kubectl\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kubectl exec finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl exec -i` over WebSocket (v5, the 1.33 default) and over SPDY (websockets off).
pub async fn kubectl_exec_websocket_and_spdy(mut t: Target) {
    let p = running_pod(&mut t, "kexec", &["sleep", "1000"]).await;
    let api = FakeApi::start(&t, t.rt.clone(), p.clone()).await;
    for envs in [
        &[][..],
        &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..],
    ] {
        let (code, stdout, stderr) = kubectl_exec(&api, &p.name, envs).await;
        assert_eq!(stdout, "from kubectl\n", "{envs:?}: stderr {stderr}");
        assert!(stderr.contains("to-stderr"), "{envs:?}: {stderr}");
        assert_eq!(
            code, 4,
            "{envs:?}: kubectl exits with the command's code; {stderr}"
        );
    }
    let seen = api.seen.lock().unwrap().clone();
    let last = seen.last().expect("upgrade requests");
    assert!(
        last.1.to_ascii_lowercase().starts_with("spdy/3.1"),
        "{seen:?}"
    );
    if t.kind == crate::harness::Kind::Oxkube {
        // the first session stayed on WebSocket v5 (no fallback to SPDY)
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].1.to_ascii_lowercase(), "websocket", "{seen:?}");
        assert!(seen[0].2.contains("v5.channel.k8s.io"), "{seen:?}");
    }
    remove_pod(&mut t, &p.sandbox).await;
}

/// Runs `kubectl port-forward` to port 8080 and returns it with the local port it chose.
async fn kubectl_port_forward(
    api: &FakeApi,
    pod: &str,
    envs: &[(&str, &str)],
) -> (tokio::process::Child, u16) {
    let mut child = api
        .kubectl(&["port-forward", pod, ":8080"], envs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            // "Forwarding from 127.0.0.1:PORT -> 8080"
            if let Some(rest) = l.strip_prefix("Forwarding from 127.0.0.1:") {
                return rest.split(' ').next().and_then(|p| p.parse::<u16>().ok());
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(port) = port else {
        let _ = child.kill().await;
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
        panic!("kubectl port-forward did not start: {err}");
    };
    // keep draining its stdout ("Handling connection for ...")
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

async fn echo_through(port: u16, msg: &[u8]) -> Vec<u8> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut r, mut w) = s.into_split();
    // write while reading: the echo flows back before all is sent
    let data = msg.to_vec();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&data).await;
        w
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < msg.len() {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    drop(writer.await);
    got
}

/// `kubectl port-forward` over the WebSocket tunnel (1.33 default) and over SPDY.
pub async fn kubectl_port_forward_tunnel_and_spdy(mut t: Target) {
    let p = running_pod(&mut t, "kpf", &["nc", "-ll", "-p", "8080", "-e", "cat"]).await;
    let api = FakeApi::start(&t, t.rt.clone(), p.clone()).await;
    for envs in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        let (mut child, port) = kubectl_port_forward(&api, &p.name, envs).await;
        let mut got = Vec::new();
        // nc starts asynchronously; each try is a new forwarded connection
        for _ in 0..50 {
            got = echo_through(port, b"through kubectl\n").await;
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            "through kubectl\n",
            "{envs:?}"
        );
        // a second connection through the same session, with 1 MiB each way
        let blob: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(
            echo_through(port, &blob).await == blob,
            "{envs:?}: 1 MiB echoed intact"
        );
        let _ = child.kill().await;
    }
    let seen = api.seen.lock().unwrap().clone();
    if t.kind == crate::harness::Kind::Oxkube {
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].1.to_ascii_lowercase(), "websocket", "{seen:?}");
        assert!(
            seen[0].2.contains("SPDY/3.1+portforward.k8s.io"),
            "{seen:?}"
        );
        assert!(
            seen[1].1.to_ascii_lowercase().starts_with("spdy/3.1"),
            "{seen:?}"
        );
    }
    remove_pod(&mut t, &p.sandbox).await;
}

/// `kubectl attach -i` to containers with stdin and stdin_once: the input reaches the
/// container, kubectl's stdin EOF closes the container's stdin, the container ends and so does
/// the session (over WebSocket v5, then over SPDY).
pub async fn kubectl_attach_stdin_once(mut t: Target) {
    let (sb, _) = pod(&mut t, "kattach").await;
    let mut containers = HashMap::new();
    for name in ["a", "b"] {
        let mut cfg = container_config(
            name,
            &[
                "sh",
                "-c",
                "while read l; do echo got:$l; done; echo stdin-closed",
            ],
        );
        cfg.stdin = true;
        cfg.stdin_once = true;
        let id = create(&mut t, &sb, cfg).await.expect("create");
        start(&mut t, &id).await.expect("start");
        containers.insert(name.to_string(), id);
    }
    let p = PodInfo {
        name: "kattach".into(),
        sandbox: sb.id.clone(),
        containers: containers.clone(),
    };
    let api = FakeApi::start(&t, t.rt.clone(), p.clone()).await;
    for (name, envs) in [
        ("a", &[][..]),
        ("b", &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..]),
    ] {
        let mut child = api
            .kubectl(&["attach", "-i", "kattach", "-c", name], envs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        // attach shows only what is written after it connected: feed lines until one echoes
        let first = tokio::time::timeout(Duration::from_secs(30), async {
            let mut n = 0;
            loop {
                n += 1;
                stdin.write_all(format!("x{n}\n").as_bytes()).await.unwrap();
                let next =
                    tokio::time::timeout(Duration::from_millis(500), stdout.next_line()).await;
                if let Ok(Ok(Some(l))) = next {
                    return l;
                }
            }
        })
        .await
        .expect("attach echoes input");
        assert!(first.starts_with("got:x"), "{name}: {first}");
        drop(stdin);
        let rest = tokio::time::timeout(Duration::from_secs(60), async {
            let mut v = Vec::new();
            while let Ok(Some(l)) = stdout.next_line().await {
                v.push(l);
            }
            v
        })
        .await
        .expect("kubectl attach ends once the container exits");
        assert_eq!(
            rest.last().map(String::as_str),
            Some("stdin-closed"),
            "{name}: {rest:?}"
        );
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("kubectl exits")
            .unwrap();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
        assert!(status.success(), "{name}: {status:?} {err}");
    }
    // both containers ended on their own (stdin_once): wait before tearing the pod down
    for id in containers.values() {
        assert_eq!(wait_exited(&mut t, id).await.exit_code, 0);
    }
    remove_pod(&mut t, &sb.id).await;
}

/// `kubectl exec -it` on a terminal (util-linux `script` provides kubectl's pty of 33x77),
/// over WebSocket v5 and SPDY: a tty in the container, and kubectl's size reaches it.
pub async fn kubectl_exec_tty(mut t: Target) {
    let p = running_pod(&mut t, "ktty", &["sleep", "1000"]).await;
    let api = FakeApi::start(&t, t.rt.clone(), p.clone()).await;
    // the size kubectl sends arrives shortly after the command starts: poll for it (until it
    // is set, busybox's `stty size` fails, printing a stale errno, and prints nothing)
    let remote = r#"test -t 0 && echo TTY-OK; tty; for i in $(seq 50); do s=$(stty size 2>/dev/null); case "$s" in ""|"0 0") sleep 0.1;; *) break;; esac; done; echo size:$s"#;
    for websockets in ["true", "false"] {
        let cmdline = format!(
            "stty rows 33 cols 77; KUBECTL_REMOTE_COMMAND_WEBSOCKETS={websockets} {KUBECTL} --kubeconfig {} --cache-dir {} exec -it ktty -c c -- sh -c '{remote}'",
            api.kubeconfig.display(),
            api.cache.display()
        );
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("script")
                .args(["-qec", &cmdline, "/dev/null"])
                .stdin(Stdio::piped())
                .output(),
        )
        .await
        .expect("kubectl exec -it finishes")
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ctx = format!(
            "websockets={websockets}: {stdout:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("TTY-OK"), "{ctx}");
        assert!(stdout.contains("/dev/pts/"), "{ctx}");
        // containerd 1.6 + runc: the size did not reach the terminal there (`stty size` kept
        // reporting it unset)
        if t.kind == crate::harness::Kind::Oxkube {
            assert!(
                stdout.contains("size:33 77"),
                "resize reached the terminal: {ctx}"
            );
        }
        assert!(out.status.success(), "{:?} {ctx}", out.status);
    }
    let seen = api.seen.lock().unwrap().clone();
    if t.kind == crate::harness::Kind::Oxkube {
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].1.to_ascii_lowercase(), "websocket", "{seen:?}");
        assert!(
            seen[1].1.to_ascii_lowercase().starts_with("spdy/3.1"),
            "{seen:?}"
        );
    }
    remove_pod(&mut t, &p.sandbox).await;
}

/// kube-rs's own clients: `Api::exec` (WebSocket v5), `Api::attach` and `Api::portforward`
/// (WebSocket v4 channels).
pub async fn kube_rs_exec_attach_and_portforward(mut t: Target) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};

    let (sb, _) = pod(&mut t, "kubers").await;
    let mut containers = HashMap::new();
    let echo = create(
        &mut t,
        &sb,
        container_config("echo", &["nc", "-ll", "-p", "8080", "-e", "cat"]),
    )
    .await
    .expect("create");
    start(&mut t, &echo).await.expect("start");
    containers.insert("echo".to_string(), echo);
    let mut cfg = container_config(
        "reader",
        &["sh", "-c", "while read l; do echo got:$l; done"],
    );
    cfg.stdin = true;
    let reader = create(&mut t, &sb, cfg).await.expect("create");
    start(&mut t, &reader).await.expect("start");
    containers.insert("reader".to_string(), reader);
    let p = PodInfo {
        name: "kubers".into(),
        sandbox: sb.id.clone(),
        containers,
    };
    let api = FakeApi::start(&t, t.rt.clone(), p).await;
    let mut config = kube::Config::new(format!("http://{}", api.addr).parse().unwrap());
    config.default_namespace = "default".into();
    let client = kube::Client::try_from(config).expect("kube client");
    let pods: Api<Pod> = Api::default_namespaced(client);

    // exec: stdin in, stdout and stderr out, the exit status as a Status
    let mut proc = pods
        .exec(
            "kubers",
            ["sh", "-c", "cat; echo err >&2; exit 6"],
            &AttachParams::default()
                .container("echo")
                .stdin(true)
                .stderr(true),
        )
        .await
        .expect("kube-rs exec");
    let mut stdin = proc.stdin().unwrap();
    let mut stdout = proc.stdout().unwrap();
    let mut stderr = proc.stderr().unwrap();
    let status = proc.take_status().unwrap();
    stdin.write_all(b"kube-rs\n").await.unwrap();
    // EOF on stdin (kube-rs sends the v5 close signal; over v4 it closes the connection)
    stdin.shutdown().await.unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let (_, _, st) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err),
            status
        )
    })
    .await
    .expect("exec finishes");
    assert_eq!(out, "kube-rs\n");
    assert_eq!(err, "err\n");
    let st = st.expect("status");
    assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"), "{st:?}");
    let code = st
        .details
        .and_then(|d| d.causes)
        .and_then(|c| {
            c.into_iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message);
    assert_eq!(code.as_deref(), Some("6"));
    let _ = proc.join().await;

    // attach to the reader container
    let mut proc = pods
        .attach(
            "kubers",
            &AttachParams::default()
                .container("reader")
                .stdin(true)
                .stderr(false),
        )
        .await
        .expect("kube-rs attach");
    let mut stdin = proc.stdin().unwrap();
    let mut stdout = proc.stdout().unwrap();
    stdin.write_all(b"via attach\n").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&got).contains("got:via attach") {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "attach ended early");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("attach echoes");
    proc.abort();

    // port-forward, retried until nc listens
    let mut echoed = Vec::new();
    for _ in 0..50 {
        let mut pf = pods
            .portforward("kubers", &[8080])
            .await
            .expect("kube-rs portforward");
        let mut s = pf.take_stream(8080).unwrap();
        s.write_all(b"pf via kube-rs\n").await.unwrap();
        let mut buf = [0u8; 64];
        echoed = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) => buf[..n].to_vec(),
            _ => vec![],
        };
        drop(s);
        pf.abort();
        if !echoed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(String::from_utf8_lossy(&echoed), "pf via kube-rs\n");
    let seen = api.seen.lock().unwrap().clone();
    if t.kind == crate::harness::Kind::Oxkube {
        assert!(
            seen.iter().all(|s| s.1.eq_ignore_ascii_case("websocket")),
            "{seen:?}"
        );
    }
    remove_pod(&mut t, &sb.id).await;
}
