//! End-to-end tests of the kubelet: a real `oxkube server` with its node agent (embedded
//! runtime + kubelet) driven by the real kubectl: node registration, pods running with IPs,
//! env from configMaps/secrets/fieldRefs, CreateContainerConfigError and image pull errors that
//! leave other pods alone, crash loops with CrashLoopBackOff, restartPolicy Never, graceful
//! deletion, and an agent restart that re-adopts running containers. Needs root.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{drop_image, wait_for, Cluster, IMAGE};
use serde_json::Value;

fn start(extra: &[&str]) -> Cluster {
    Cluster::start_with_agent(drop_image, extra)
}

fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl(&a)).unwrap()
}

fn pod(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.kubectl_raw(&["get", "pod", name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn wait_phase(c: &Cluster, name: &str, phase: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = pod(c, name);
        if let Some(p) = p.as_ref().filter(|p| p["status"]["phase"] == phase) {
            return p.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for pod {name} {phase}: status {:#}\nevents {:?}\nserver log tail:\n{}",
                p.map(|p| p["status"].clone()).unwrap_or_default(),
                events_of(c, name),
                common::tail(&c.log(), 40)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_node_ready(c: &Cluster) -> Value {
    let name = c.agent.as_ref().unwrap().node_name.clone();
    wait_for(c, "node Ready", 60, || {
        let out = c.kubectl_raw(&["get", "node", &name, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let n: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ready = n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(n)
    })
}

fn container_status<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["status"]["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()
}

/// The CRI log file of a pod's container (restart `n`).
fn log_path(c: &Cluster, p: &Value, container: &str, n: u32) -> PathBuf {
    let m = &p["metadata"];
    c.data_dir().join(format!(
        "agent/logs/pods/{}_{}_{}/{container}/{n}.log",
        m["namespace"].as_str().unwrap(),
        m["name"].as_str().unwrap(),
        m["uid"].as_str().unwrap()
    ))
}

fn apply(c: &Cluster, manifest: &str) {
    c.kubectl_stdin(&["apply", "-f", "-"], manifest);
}

fn events_of(c: &Cluster, pod: &str) -> Vec<(String, String)> {
    let v = json(
        c,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
        ],
    );
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn node_registers_and_pods_run_with_env_and_errors_are_isolated() {
    let c = start(&[]);
    let node = wait_node_ready(&c);
    let name = node["metadata"]["name"].as_str().unwrap().to_string();
    let labels = &node["metadata"]["labels"];
    assert_eq!(
        labels["kubernetes.io/hostname"].as_str().map(str::is_empty),
        Some(false)
    );
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["node-role.kubernetes.io/control-plane"], "true");
    let st = &node["status"];
    assert_eq!(st["capacity"]["pods"], "110");
    assert!(st["allocatable"]["memory"].is_string());
    assert_eq!(
        st["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        c.agent.as_ref().unwrap().kubelet_port
    );
    assert_eq!(st["nodeInfo"]["kubeletVersion"], "v1.33.0");
    assert!(st["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .unwrap()
        .starts_with("oxkube://"));
    // pressure conditions follow the host (this one may really be short of disk)
    for (t, ok, pressed) in [
        (
            "MemoryPressure",
            "KubeletHasSufficientMemory",
            "KubeletHasInsufficientMemory",
        ),
        (
            "DiskPressure",
            "KubeletHasNoDiskPressure",
            "KubeletHasDiskPressure",
        ),
        (
            "PIDPressure",
            "KubeletHasSufficientPID",
            "KubeletHasInsufficientPID",
        ),
        ("Ready", "KubeletReady", "KubeletNotReady"),
    ] {
        let cond = st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap_or_else(|| panic!("condition {t}"));
        let positive = (cond["status"] == "True") == (t == "Ready");
        assert_eq!(
            cond["reason"],
            if positive { ok } else { pressed },
            "{t}: {cond}"
        );
    }
    let cidr = node["spec"]["podCIDR"].as_str().unwrap().to_string();
    let cluster = c.agent.as_ref().unwrap().cluster_cidr.clone();
    assert_eq!(
        cidr.split('.').take(2).collect::<Vec<_>>(),
        cluster.split('.').take(2).collect::<Vec<_>>()
    );
    assert!(cidr.ends_with("/24"), "{cidr}");
    let lease = json(&c, &["get", "lease", "-n", "kube-node-lease", &name]);
    assert_eq!(lease["spec"]["holderIdentity"], name.as_str());
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");

    // a plain pod runs and gets an IP from the node's pod CIDR
    c.kubectl(&["run", "bb", "--image", IMAGE, "--", "sleep", "3600"]);
    let p = wait_for(&c, "bb ready", 60, || {
        pod(&c, "bb").filter(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"][0]["ready"] == true
        })
    });
    let ip = p["status"]["podIP"].as_str().unwrap();
    let prefix: String = cidr.rsplit_once('.').unwrap().0.to_string();
    assert!(ip.starts_with(&prefix), "pod IP {ip} not in {cidr}");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    let cs = container_status(&p, "bb");
    assert!(cs["containerID"].as_str().unwrap().starts_with("oxkube://"));
    assert_eq!(cs["restartCount"], 0);
    assert_eq!(cs["started"], true);
    assert!(cs["state"]["running"]["startedAt"].is_string());
    let conds: Vec<(String, String)> = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    for t in [
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert!(
            conds.contains(&(t.to_string(), "True".to_string())),
            "{t}: {conds:?}"
        );
    }
    assert!(p["status"]["hostIP"].is_string());
    assert!(p["status"]["startTime"].is_string());
    let reasons: Vec<String> = events_of(&c, "bb").into_iter().map(|e| e.0).collect();
    for r in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(reasons.contains(&r.to_string()), "{r} in {reasons:?}");
    }

    // env from a configMap, a secret, the downward API, service links; $(VAR) expansion
    apply(
        &c,
        "apiVersion: v1\nkind: Service\nmetadata: {name: my-svc}\nspec: {ports: [{name: http, port: 80, targetPort: 8080}]}\n",
    );
    let svc_ip = c
        .kubectl(&["get", "svc", "my-svc", "-o", "jsonpath={.spec.clusterIP}"])
        .trim()
        .to_string();
    c.kubectl(&[
        "create",
        "configmap",
        "cfg",
        "--from-literal=color=blue",
        "--from-literal=size=xl",
    ]);
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=password=s3cr3t",
    ]);
    apply(
        &c,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: envpod, labels: {tier: web}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.36
    command: ["sh", "-c"]
    args: ["echo COLOR=$COLOR PW=$PW NAME=$MY_NAME NS=$MY_NS IP=$MY_IP TIER=$TIER CFG_size=$CFG_size GREETING=$GREETING ARG=$(MY_NAME) ESC='$$(MY_NAME)' SVC=$MY_SVC_SERVICE_HOST:$MY_SVC_SERVICE_PORT_HTTP LINK=$MY_SVC_PORT"]
    env:
    - {name: GREETING, value: "hello-$(MY_NAME)"}
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: cfg, key: color}}}
    - {name: PW, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: MY_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    envFrom:
    - {configMapRef: {name: cfg}, prefix: CFG_}
"#,
    );
    let p = wait_phase(&c, "envpod", "Succeeded");
    let log = std::fs::read_to_string(log_path(&c, &p, "c", 0)).unwrap();
    let pod_ip = p["status"]["podIP"].as_str().unwrap();
    for want in [
        "COLOR=blue".to_string(),
        "PW=s3cr3t".to_string(),
        "NAME=envpod".to_string(),
        "NS=default".to_string(),
        format!("IP={pod_ip}"),
        "TIER=web".to_string(),
        "CFG_size=xl".to_string(),
        // GREETING was defined before MY_NAME: its $(MY_NAME) stays unexpanded
        "GREETING=hello-$(MY_NAME)".to_string(),
        // kubelet-side expansion of args, and its escape
        "ARG=envpod".to_string(),
        "ESC=$(MY_NAME)".to_string(),
        format!("SVC={svc_ip}:80"),
        format!("LINK=tcp://{svc_ip}:80"),
    ] {
        assert!(log.contains(&want), "{want} not in log: {log}");
    }

    // a missing configMap: CreateContainerConfigError, the other pods are unaffected
    apply(
        &c,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: nocfg}
spec:
  containers:
  - name: c
    image: busybox:1.36
    command: ["sleep", "3600"]
    env:
    - {name: X, valueFrom: {configMapKeyRef: {name: nope, key: k}}}
"#,
    );
    let p = wait_for(&c, "CreateContainerConfigError", 60, || {
        pod(&c, "nocfg").filter(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CreateContainerConfigError"
        })
    });
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        "configmap \"nope\" not found"
    );
    assert_eq!(p["status"]["phase"], "Pending");
    let events = events_of(&c, "nocfg");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Failed" && m == "Error: configmap \"nope\" not found"),
        "{events:?}"
    );
    // creating the configMap lets it start
    c.kubectl(&["create", "configmap", "nope", "--from-literal=k=v"]);
    wait_phase(&c, "nocfg", "Running");

    // an image that cannot be pulled: ErrImagePull, then ImagePullBackOff
    c.kubectl(&["run", "noimg", "--image", "127.0.0.1:1/nosuch:1.0"]);
    // ErrImagePull shows only until the next sync (about a second), ImagePullBackOff for the
    // backoff; the ErrImagePull failure is in the events and the back-off message
    let p = wait_for(&c, "ImagePullBackOff", 60, || {
        pod(&c, "noimg").filter(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        })
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.starts_with("Back-off pulling image \"127.0.0.1:1/nosuch:1.0\": ErrImagePull: "),
        "{msg}"
    );
    let events = events_of(&c, "noimg");
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "Failed" && m == "Error: ErrImagePull"),
        "{events:?}"
    );
    let reasons: Vec<String> = events_of(&c, "noimg").into_iter().map(|e| e.0).collect();
    for r in ["Pulling", "Failed", "BackOff"] {
        assert!(reasons.contains(&r.to_string()), "{r} in {reasons:?}");
    }
    // the first pod never noticed
    let p = pod(&c, "bb").unwrap();
    assert_eq!(container_status(&p, "bb")["restartCount"], 0);
    assert_eq!(p["status"]["phase"], "Running");
}

#[test]
fn crash_loops_back_off_and_restart_policies_hold() {
    let c = start(&["--crash-backoff-initial", "2s", "--crash-backoff-max", "8s"]);
    wait_node_ready(&c);
    c.kubectl(&[
        "run",
        "crash",
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "echo started; exit 3",
    ]);
    let mut saw_backoff = false;
    let p = wait_for(&c, "restartCount >= 3", 90, || {
        let p = pod(&c, "crash")?;
        let cs = &p["status"]["containerStatuses"][0];
        if cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            saw_backoff = true;
            assert!(cs["state"]["waiting"]["message"]
                .as_str()
                .unwrap()
                .starts_with("back-off "));
        }
        (cs["restartCount"].as_i64()? >= 3 && saw_backoff).then_some(p)
    });
    let cs = &p["status"]["containerStatuses"][0];
    let last = &cs["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 3);
    assert_eq!(last["reason"], "Error");
    assert_eq!(p["status"]["phase"], "Running");
    let events = events_of(&c, "crash");
    assert!(
        events.iter().any(|(r, m)| r == "BackOff"
            && m.starts_with("Back-off restarting failed container crash in pod crash_default(")),
        "{events:?}"
    );

    // restartPolicy Never: success and failure are final, with exit codes
    c.kubectl(&[
        "run",
        "ok",
        "--restart=Never",
        "--image",
        IMAGE,
        "--",
        "true",
    ]);
    c.kubectl(&[
        "run",
        "bad",
        "--restart=Never",
        "--image",
        IMAGE,
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    let ok = wait_phase(&c, "ok", "Succeeded");
    let t = &ok["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (t["exitCode"].as_i64(), t["reason"].as_str()),
        (Some(0), Some("Completed")),
        "status {:#}\nevents {:?}",
        ok["status"],
        events_of(&c, "ok")
    );
    let bad = wait_phase(&c, "bad", "Failed");
    let t = &bad["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (t["exitCode"].as_i64(), t["reason"].as_str()),
        (Some(7), Some("Error")),
        "status {:#}\nevents {:?}",
        bad["status"],
        events_of(&c, "bad")
    );
    assert_eq!(bad["status"]["containerStatuses"][0]["restartCount"], 0);
    let ready = bad["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "False");

    // restartPolicy OnFailure with init containers in order
    apply(
        &c,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  restartPolicy: OnFailure
  initContainers:
  - {name: i1, image: "busybox:1.36", command: ["sh", "-c", "echo one"]}
  - {name: i2, image: "busybox:1.36", command: ["sh", "-c", "echo two"]}
  containers:
  - {name: main, image: "busybox:1.36", command: ["sh", "-c", "echo main"]}
"#,
    );
    let p = wait_phase(&c, "inits", "Succeeded");
    let init = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert_eq!(init.len(), 2);
    for s in init {
        assert_eq!(s["state"]["terminated"]["reason"], "Completed");
    }
    let f = |n: usize| {
        init[n]["state"]["terminated"]["finishedAt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let main_started = p["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        f(0) <= f(1) && f(1) <= main_started,
        "{} {} {main_started}",
        f(0),
        f(1)
    );
}

#[test]
fn graceful_delete_and_agent_restart_readopts() {
    let mut c = start(&[]);
    wait_node_ready(&c);
    c.kubectl(&["run", "keep", "--image", IMAGE, "--", "sleep", "3600"]);
    apply(
        &c,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: busybox:1.36
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
"#,
    );
    let keep = wait_phase(&c, "keep", "Running");
    wait_phase(&c, "stubborn", "Running");
    let id_before = container_status(&keep, "keep")["containerID"]
        .as_str()
        .unwrap()
        .to_string();

    // delete with grace: the pod stays (terminating) while its container ignores SIGTERM,
    // then the kubelet kills it and finalises the deletion
    c.kubectl(&["delete", "pod", "stubborn", "--wait=false"]);
    let p = pod(&c, "stubborn").expect("pod still there while terminating");
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    wait_for(&c, "stubborn gone", 60, || {
        pod(&c, "stubborn").is_none().then_some(())
    });
    let events = json(&c, &["get", "events"]);
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == "Killing" && e["involvedObject"]["name"] == "stubborn"),
        "no Killing event"
    );
    wait_for(&c, "stubborn's container removed", 30, || {
        c.runtime_containers()
            .iter()
            .all(|r| r["labels"]["io.kubernetes.pod.name"] != "stubborn")
            .then_some(())
    });

    // restart the server (and its agent): the running pod is re-adopted, not restarted
    let pid_before: Vec<i64> = c
        .runtime_containers()
        .iter()
        .filter(|r| r["labels"]["io.kubernetes.pod.name"] == "keep")
        .map(|r| r["init_pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pid_before.len(), 1);
    c.stop();
    c.spawn();
    wait_node_ready(&c);
    // give the new kubelet time to sync the pod; it must keep the same container
    std::thread::sleep(Duration::from_secs(3));
    let keep = wait_phase(&c, "keep", "Running");
    let cs = container_status(&keep, "keep");
    assert_eq!(cs["containerID"].as_str().unwrap(), id_before);
    assert_eq!(cs["restartCount"], 0);
    assert_eq!(cs["ready"], true);
    let pid_after: Vec<i64> = c
        .runtime_containers()
        .iter()
        .filter(|r| r["labels"]["io.kubernetes.pod.name"] == "keep")
        .map(|r| r["init_pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pid_after, pid_before);
    assert!(Path::new(&format!("/proc/{}", pid_after[0])).exists());
}

/// containerd with its own config, state, socket and CNI conf dir, started for one test.
struct Containerd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    bridge: String,
}

impl Containerd {
    fn start(bridge: &str, pod_cidr: &str) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("kubelet-ctrd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            opt = d.join("opt").display(),
            cni = d.join("cni").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let list = runtime::cni::default_conflist(bridge, bridge, pod_cidr, Some(&d.join("ipam")));
        runtime::cni::write_default_conflist(&d.join("cni"), &list).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = std::process::Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let c = Containerd {
            child,
            dir,
            socket,
            bridge: bridge.to_string(),
        };
        // the pause image (a busybox sleeping) and the test image, in the k8s.io namespace
        use runtime::testimage::{self, TestImage};
        let mut pause = TestImage::busybox("registry.k8s.io/pause:3.6").unwrap();
        pause.cmd = vec!["sleep".into(), "2147483647".into()];
        // containerd keeps images under their normalised names
        let busybox = TestImage::busybox(&format!("docker.io/library/{IMAGE}")).unwrap();
        let images = [pause.build(), busybox.build()];
        for (i, built) in images.iter().enumerate() {
            let p = c.dir.path().join(format!("img{i}.tar"));
            testimage::write_oci_archive(&p, &[built]).unwrap();
            let out = std::process::Command::new("ctr")
                .arg("--address")
                .arg(&c.socket)
                .args(["-n", "k8s.io", "images", "import"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ctr import: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in common::pids_mentioning(&self.socket.display().to_string()) {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        for m in common::mounts_under(self.dir.path()) {
            let c = std::ffi::CString::new(m.display().to_string()).unwrap();
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn kubelet_runs_pods_on_containerd() {
    if !Path::new("/usr/bin/containerd").exists() {
        panic!("containerd is not installed: run scripts/deps.sh --test");
    }
    let net = common::AgentNet::unique();
    // nodeipam gives the first node the first /24 of the cluster CIDR
    let pod_cidr = net.cluster_cidr.replace(".0.0/16", ".0.0/24");
    let ctrd = Containerd::start(&net.bridge, &pod_cidr);
    let endpoint = format!("unix://{}", ctrd.socket.display());
    let c = Cluster::start_with_agent_net(
        net.clone(),
        |_| {},
        &["--container-runtime-endpoint", &endpoint],
    );
    let node = wait_node_ready(&c);
    assert!(node["status"]["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .unwrap()
        .starts_with("containerd://"));
    c.kubectl(&["run", "bb", "--image", IMAGE, "--", "sleep", "3600"]);
    let p = wait_phase(&c, "bb", "Running");
    let cs = container_status(&p, "bb");
    assert!(cs["containerID"]
        .as_str()
        .unwrap()
        .starts_with("containerd://"));
    let ip = p["status"]["podIP"].as_str().unwrap();
    assert!(
        ip.starts_with(pod_cidr.rsplit_once(".0/").unwrap().0),
        "{ip} not in {pod_cidr}"
    );
    // restarts work the same (containerd 1.6 has no container events: relist)
    c.kubectl(&["run", "crash", "--image", IMAGE, "--", "sh", "-c", "exit 2"]);
    wait_for(&c, "a restart on containerd", 60, || {
        pod(&c, "crash")
            .filter(|p| p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1))
    });
    c.kubectl(&["delete", "pod", "crash", "--grace-period=1"]);
    assert!(pod(&c, "crash").is_none());
    // the kubelet removes what it ran from containerd too
    c.kubectl(&["delete", "pod", "bb", "--grace-period=1"]);
    wait_for(&c, "containerd empty", 30, || {
        let out = std::process::Command::new("ctr")
            .arg("--address")
            .arg(&ctrd.socket)
            .args(["-n", "k8s.io", "containers", "ls", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .is_empty()
            .then_some(())
    });
    // the cluster goes first, then containerd and the bridge
    drop(c);
    drop(ctrd);
}

/// The whole path of the streaming subresources, with nothing stood in: kubectl -> API server
/// (pods/log, pods/exec) -> the agent's kubelet API -> the runtime's streaming server -> the
/// container.
#[test]
fn logs_and_exec_through_the_whole_stack() {
    let c = start(&[]);
    c.kubectl(&[
        "run",
        "talk",
        "--image",
        IMAGE,
        "--image-pull-policy=Never",
        "--",
        "sh",
        "-c",
        "echo hello-from-talk; sleep 3600",
    ]);
    wait_phase(&c, "talk", "Running");
    let logs = wait_for(&c, "the container's output in kubectl logs", 30, || {
        let out = c.kubectl_raw(&["logs", "talk"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("hello-from-talk").then_some(text)
    });
    assert_eq!(logs, "hello-from-talk\n");
    // exec over WebSocket (kubectl 1.33's default), stdout and the exit code
    assert_eq!(
        c.kubectl(&["exec", "talk", "--", "sh", "-c", "echo out-$((6*7))"]),
        "out-42\n"
    );
    let failed = c.kubectl_raw(&["exec", "talk", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    // stdin reaches the process
    assert_eq!(
        c.kubectl_stdin(&["exec", "-i", "talk", "--", "cat"], "piped\n"),
        "piped\n"
    );

    // port-forward (kubectl 1.33 tunnels SPDY over WebSocket) to a web server in a pod
    c.kubectl(&[
        "run",
        "web",
        "--image",
        IMAGE,
        "--image-pull-policy=Never",
        "--",
        "sh",
        "-c",
        "echo hi-web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
    ]);
    wait_phase(&c, "web", "Running");
    let port = common::free_port();
    /// Ends `kubectl port-forward` however the test ends.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _pf = KillOnDrop(
        c.kubectl_cmd(&["port-forward", "pod/web", &format!("{port}:8080")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let body = wait_for(&c, "a response through kubectl port-forward", 30, || {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{port}/index.html"))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("hi-web").then_some(text)
    });
    assert_eq!(body, "hi-web\n");
}

/// The kubelet runs probes: an exec readiness probe gates the container's (and the pod's)
/// readiness; a failing liveness probe restarts the container.
#[test]
fn readiness_gates_ready_and_liveness_restarts() {
    let c = start(&[]);
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probed"},
        "spec": {"containers": [{
            "name": "app", "image": IMAGE, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "touch /tmp/alive; exec sleep 3600"],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                               "periodSeconds": 1, "failureThreshold": 1},
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]},
                              "periodSeconds": 1, "failureThreshold": 1}
        }]}
    });
    c.kubectl_stdin(&["apply", "-f", "-"], &pod.to_string());
    wait_phase(&c, "probed", "Running");
    let ready =
        |c: &Cluster| pod_of(c, "probed")["status"]["containerStatuses"][0]["ready"] == true;
    // the probe fails while /tmp/ready is missing: running, not ready
    std::thread::sleep(Duration::from_secs(3));
    assert!(!ready(&c), "ready before the readiness probe passed");
    c.kubectl(&["exec", "probed", "--", "touch", "/tmp/ready"]);
    wait_for(
        &c,
        "the readiness probe to make the container ready",
        30,
        || ready(&c).then_some(()),
    );
    let cond = pod_of(&c, "probed")["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == "Ready")
        .cloned()
        .unwrap();
    assert_eq!(cond["status"], "True", "{cond}");
    // liveness fails once /tmp/alive is gone: the container is restarted
    c.kubectl(&["exec", "probed", "--", "rm", "/tmp/alive"]);
    wait_for(&c, "a restart after the liveness probe failed", 60, || {
        let p = pod_of(&c, "probed");
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)).then_some(())
    });
}

fn pod_of(c: &Cluster, name: &str) -> Value {
    pod(c, name).unwrap_or_else(|| panic!("pod {name} is gone"))
}
