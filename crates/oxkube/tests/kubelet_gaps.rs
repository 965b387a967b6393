//! End-to-end tests of the kubelet's lifecycle hooks, probe events, volume updates, subPathExpr,
//! activeDeadlineSeconds and pod cgroups, and of `kubectl exec -it` (a real pty), `kubectl
//! attach` and `kubectl cp`: a real `oxkube server` with its node agent driven by the real
//! kubectl. Needs root.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{drop_image, wait_for, Cluster, IMAGE};
use serde_json::{json, Value};

fn start() -> Cluster {
    Cluster::start_with_agent(drop_image, &[])
}

fn pod(c: &Cluster, name: &str) -> Option<Value> {
    let out = c.kubectl_raw(&["get", "pod", name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

#[track_caller]
fn wait_running(c: &Cluster, name: &str) -> Value {
    wait_for(c, &format!("pod {name} Running"), 60, || {
        pod(c, name).filter(|p| p["status"]["phase"] == "Running")
    })
}

fn apply(c: &Cluster, manifest: &Value) {
    c.kubectl_stdin(&["apply", "-f", "-"], &manifest.to_string());
}

/// (type, reason, message) of the events about a pod.
fn events_of(c: &Cluster, pod: &str) -> Vec<(String, String, String)> {
    let out = c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("type"), s("reason"), s("message"))
        })
        .collect()
}

#[track_caller]
fn wait_event(c: &Cluster, pod: &str, reason: &str, message_part: &str) -> (String, String) {
    wait_for(
        c,
        &format!("event {reason} {message_part:?} on {pod}"),
        90,
        || {
            events_of(c, pod)
                .into_iter()
                .find(|(_, r, m)| r == reason && m.contains(message_part))
                .map(|(t, _, m)| (t, m))
        },
    )
}

fn busybox(name: &str, script: &str) -> Value {
    json!({"name": name, "image": IMAGE, "imagePullPolicy": "Never",
           "command": ["sh", "-c", script]})
}

/// postStart runs after the start (its file is there), preStop runs on deletion before the
/// container is stopped (it writes to a hostPath the test reads); httpGet hooks reach a handler
/// pod; a failing postStart kills the container (FailedPostStartHook, restarted); failing probes
/// record Unhealthy events, the liveness kill says why (in `kubectl describe` too) and runs the
/// preStop hook.
#[test]
fn lifecycle_hooks_and_probe_events() {
    let c = start();
    let host = c.data_dir().join("hook-out");
    std::fs::create_dir_all(&host).unwrap();
    let mut app = busybox("app", "exec sleep 3600");
    app["lifecycle"] = json!({
        "postStart": {"exec": {"command": ["sh", "-c", "echo started-by-hook > /tmp/poststart"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo stopping-by-hook > /host/prestop"]}}
    });
    app["volumeMounts"] = json!([{"name": "host", "mountPath": "/host"}]);
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hooked"},
        "spec": {"terminationGracePeriodSeconds": 5, "containers": [app],
                 "volumes": [{"name": "host", "hostPath": {"path": host.display().to_string()}}]}}),
    );
    wait_running(&c, "hooked");
    assert_eq!(
        c.kubectl(&["exec", "hooked", "--", "cat", "/tmp/poststart"]),
        "started-by-hook\n"
    );
    assert!(
        !host.join("prestop").exists(),
        "preStop ran before deletion"
    );
    c.kubectl(&["delete", "pod", "hooked", "--wait=true", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(host.join("prestop")).unwrap(),
        "stopping-by-hook\n"
    );

    // httpGet hooks: postStart and preStop call a handler pod (any response counts)
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "handler"},
                "spec": {"terminationGracePeriodSeconds": 2,
                         "containers": [busybox("srv", "exec httpd -f -vv -p 8080 -h /tmp")]}}),
    );
    let handler_ip = wait_running(&c, "handler")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let mut web = busybox("app", "exec sleep 3600");
    web["lifecycle"] = json!({
        "postStart": {"httpGet": {"host": handler_ip, "port": 8080, "path": "/poststart"}},
        "preStop": {"httpGet": {"host": handler_ip, "port": 8080, "path": "/prestop"}}
    });
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "httphooked"},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [web]}}),
    );
    wait_running(&c, "httphooked");
    assert!(c.kubectl(&["logs", "handler"]).contains("url:/poststart"));
    c.kubectl(&[
        "delete",
        "pod",
        "httphooked",
        "--wait=true",
        "--timeout=60s",
    ]);
    let logs = c.kubectl(&["logs", "handler"]);
    assert!(logs.contains("url:/prestop"), "{logs}");

    // a failing postStart: the container is killed and restarted per policy
    let mut bad = busybox("app", "exec sleep 3600");
    bad["lifecycle"] = json!({"postStart": {"exec": {"command": ["sh", "-c", "exit 7"]}}});
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "badhook"},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [bad]}}),
    );
    let (t, m) = wait_event(&c, "badhook", "FailedPostStartHook", "");
    assert_eq!(
        (t.as_str(), m.as_str()),
        ("Warning", "PostStartHook failed")
    );
    wait_event(&c, "badhook", "Killing", "FailedPostStartHook");
    wait_for(&c, "a restart after the failed postStart hook", 60, || {
        let p = pod(&c, "badhook")?;
        (p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)).then_some(())
    });

    // probes: readiness and liveness fail; events as upstream records them
    let mut probed = busybox("app", "exec sleep 3600");
    probed["readinessProbe"] = json!({"exec": {"command": ["cat", "/tmp/ready"]},
                                      "periodSeconds": 1, "failureThreshold": 1});
    probed["livenessProbe"] = json!({"exec": {"command": ["cat", "/tmp/alive"]},
                                     "periodSeconds": 1, "failureThreshold": 2});
    // preStop runs for the liveness kill too
    probed["lifecycle"] = json!({"preStop": {"exec": {"command":
        ["sh", "-c", "echo liveness-kill >> /host/liveness-prestop"]}}});
    probed["volumeMounts"] = json!([{"name": "host", "mountPath": "/host"}]);
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unhealthy"},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [probed],
                         "volumes": [{"name": "host", "hostPath": {"path": host.display().to_string()}}]}}),
    );
    let (t, m) = wait_event(&c, "unhealthy", "Unhealthy", "Readiness probe failed:");
    assert_eq!(t, "Warning");
    assert!(m.contains("/tmp/ready"), "{m}");
    let (t, _) = wait_event(&c, "unhealthy", "Unhealthy", "Liveness probe failed:");
    assert_eq!(t, "Warning");
    let (t, _) = wait_event(
        &c,
        "unhealthy",
        "Killing",
        "Container app failed liveness probe, will be restarted",
    );
    assert_eq!(t, "Normal");
    wait_for(&c, "the preStop hook of the liveness kill", 60, || {
        std::fs::read_to_string(host.join("liveness-prestop"))
            .ok()
            .filter(|s| s.starts_with("liveness-kill\n"))
    });
    let describe = c.kubectl(&["describe", "pod", "unhealthy"]);
    assert!(
        describe.contains("Liveness probe failed:") && describe.contains("Unhealthy"),
        "{describe}"
    );
}

/// A configMap update reaches the mounted file (not the subPath mount, as upstream);
/// subPathExpr expands the container's env; activeDeadlineSeconds fails the pod with
/// DeadlineExceeded; the pod's cgroup carries the pod's limits.
#[test]
fn volume_updates_sub_path_expr_deadline_and_pod_cgroup() {
    let c = start();
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"},
                "data": {"greeting": "hello-v1"}}),
    );
    let mut app = busybox("app", "exec sleep 3600");
    app["env"] =
        json!([{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
    app["resources"] = json!({"requests": {"cpu": "100m", "memory": "32Mi"},
                              "limits": {"cpu": "500m", "memory": "64Mi"}});
    app["volumeMounts"] = json!([
        {"name": "conf", "mountPath": "/conf"},
        {"name": "conf", "mountPath": "/pinned/greeting", "subPath": "greeting"},
        {"name": "scratch", "mountPath": "/mine", "subPathExpr": "per-pod/$(POD_NAME)"},
        {"name": "scratch", "mountPath": "/all"}
    ]);
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols"},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [app],
                 "volumes": [{"name": "conf", "configMap": {"name": "conf"}},
                             {"name": "scratch", "emptyDir": {}}]}}),
    );
    let p = wait_running(&c, "vols");
    let cat = |path: &str| c.kubectl(&["exec", "vols", "--", "cat", path]);
    assert_eq!(cat("/conf/greeting"), "hello-v1");
    assert_eq!(cat("/pinned/greeting"), "hello-v1");
    // subPathExpr: /mine is <scratch>/per-pod/vols
    c.kubectl(&["exec", "vols", "--", "sh", "-c", "echo mine > /mine/f"]);
    assert_eq!(cat("/all/per-pod/vols/f"), "mine\n");

    // a subPathExpr naming an empty variable keeps the container from being created until the
    // pod is fixed (here: the annotation its env comes from)
    let mut fixme = busybox("app", "exec sleep 3600");
    fixme["env"] = json!([{"name": "SUBDIR",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['subdir']"}}}]);
    fixme["volumeMounts"] =
        json!([{"name": "scratch", "mountPath": "/d", "subPathExpr": "$(SUBDIR)"}]);
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fixme"},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [fixme],
                         "volumes": [{"name": "scratch", "emptyDir": {}}]}}),
    );
    let waiting = wait_for(
        &c,
        "CreateContainerConfigError for the subPathExpr",
        60,
        || {
            let p = pod(&c, "fixme")?;
            let w = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
            (w["reason"] == "CreateContainerConfigError").then_some(w)
        },
    );
    assert_eq!(waiting["message"], "missing value for SUBDIR");
    c.kubectl(&["annotate", "pod", "fixme", "subdir=fixed"]);
    wait_running(&c, "fixme");
    c.kubectl(&["exec", "fixme", "--", "sh", "-c", "echo ok > /d/f"]);

    // the pod cgroup (burstable, every limit set: the limits are the pod's)
    let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
    let mem = Path::new("/sys/fs/cgroup/memory/kubepods/burstable")
        .join(format!("pod{uid}"))
        .join("memory.limit_in_bytes");
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(
            std::fs::read_to_string(&mem).unwrap().trim(),
            (64 * 1024 * 1024).to_string()
        );
        let quota = Path::new("/sys/fs/cgroup/cpu/kubepods/burstable")
            .join(format!("pod{uid}"))
            .join("cpu.cfs_quota_us");
        assert_eq!(std::fs::read_to_string(&quota).unwrap().trim(), "50000");
    }

    // the update is swapped in atomically; the subPath mount keeps the old content (the
    // kubelet watches the configMap: the update arrives well before the 10 s periodic refresh)
    let patched = std::time::Instant::now();
    c.kubectl(&[
        "patch",
        "configmap",
        "conf",
        "--type=merge",
        "-p",
        r#"{"data":{"greeting":"hello-v2"}}"#,
    ]);
    wait_for(&c, "the configMap update in the mounted file", 90, || {
        (cat("/conf/greeting") == "hello-v2").then_some(())
    });
    println!(
        "configMap update in the mounted file after {} ms",
        patched.elapsed().as_millis()
    );
    assert_eq!(cat("/pinned/greeting"), "hello-v1");
    let data = c.kubectl(&["exec", "vols", "--", "readlink", "/conf/..data"]);
    assert!(data.starts_with("..20"), "{data}");

    // activeDeadlineSeconds
    let slow = busybox("app", "exec sleep 3600");
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "deadline"},
                "spec": {"activeDeadlineSeconds": 4, "terminationGracePeriodSeconds": 2,
                         "restartPolicy": "Never", "containers": [slow]}}),
    );
    wait_running(&c, "deadline");
    let failed = wait_for(&c, "the pod to fail at its deadline", 60, || {
        pod(&c, "deadline").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(failed["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        failed["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    wait_event(
        &c,
        "deadline",
        "DeadlineExceeded",
        "longer than the specified deadline",
    );
    wait_for(&c, "the deadline pod's container to stop", 60, || {
        let p = pod(&c, "deadline")?;
        p["status"]["containerStatuses"][0]["state"]["terminated"]
            .is_object()
            .then_some(())
    });
}

/// Ends a child process however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kubectl exec -it` through a real pty (script), `kubectl attach -i` to a container reading
/// its stdin, `kubectl cp` both ways.
#[test]
fn exec_tty_attach_and_cp() {
    let c = start();
    let mut reader = busybox(
        "app",
        "echo attach-ready; while read line; do echo got:$line; done",
    );
    reader["stdin"] = json!(true);
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "io"},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [reader]}}),
    );
    wait_running(&c, "io");

    // exec -it: kubectl's stdin is a terminal (script's pty), the remote process gets a tty
    let cache = c.data_dir().join("tty-kubectl-cache");
    let cmdline = format!(
        "kubectl --kubeconfig {} --cache-dir {} exec -it io -- sh -c '[ -t 0 ] && [ -t 1 ] && echo remote-tty-$((40+2)); stty size'",
        c.kubeconfig().display(),
        cache.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    // the remote tty turns \n into \r\n
    assert!(text.contains("remote-tty-42\r\n"), "{text:?}");

    // attach -i: lines written to kubectl's stdin reach the container's, its output comes back
    let mut child = KillOnDrop(
        c.kubectl_cmd(&["attach", "-i", "io", "-c", "app"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.0.stdin.take().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("got:over-attach") {
        assert!(
            Instant::now() < deadline,
            "no echo through kubectl attach: {:?}\nserver log tail:\n{}",
            String::from_utf8_lossy(&seen),
            common::tail(&c.log(), 40)
        );
        // the stream may not be wired yet when the first line is written: repeat it
        let _ = stdin.write_all(b"over-attach\n");
        let _ = stdin.flush();
        if let Ok(b) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.extend(b);
        }
    }
    drop(stdin);
    drop(child);

    // cp into the pod and back out
    let local = c.data_dir().join("cp-in.txt");
    std::fs::write(&local, "copied-in\nsecond line\n").unwrap();
    c.kubectl(&[
        "cp",
        &local.display().to_string(),
        "io:/tmp/cp-in.txt",
        "-c",
        "app",
    ]);
    assert_eq!(
        c.kubectl(&["exec", "io", "--", "cat", "/tmp/cp-in.txt"]),
        "copied-in\nsecond line\n"
    );
    c.kubectl(&[
        "exec",
        "io",
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/outdir/sub && echo from-pod > /tmp/outdir/sub/f",
    ]);
    let back = c.data_dir().join("cp-out");
    c.kubectl(&[
        "cp",
        "io:/tmp/outdir",
        &back.display().to_string(),
        "-c",
        "app",
    ]);
    assert_eq!(
        std::fs::read_to_string(back.join("sub/f")).unwrap(),
        "from-pod\n"
    );
}
