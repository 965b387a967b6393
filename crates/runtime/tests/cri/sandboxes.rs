//! CRI pod sandbox tests, written once and run against every runtime.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use cri::v1 as pb;

use crate::harness::{mounts_under, Kind, Target};

fn config(name: &str, uid: &str) -> pb::PodSandboxConfig {
    pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "cri-suite".into(),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: String::new(),
        dns_config: Some(pb::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["cri-suite.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        labels: HashMap::from([
            ("app".to_string(), name.to_string()),
            ("suite".to_string(), "cri".to_string()),
        ]),
        annotations: HashMap::from([("note".to_string(), "x".to_string())]),
        linux: Some(pb::LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            security_context: Some(pb::LinuxSandboxSecurityContext {
                namespace_options: Some(pb::NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run(t: &mut Target, c: pb::PodSandboxConfig) -> Result<String, tonic::Status> {
    t.rt.run_pod_sandbox(pb::RunPodSandboxRequest {
        config: Some(c),
        runtime_handler: String::new(),
    })
    .await
    .map(|r| r.into_inner().pod_sandbox_id)
}

async fn status(t: &mut Target, id: &str) -> Result<pb::PodSandboxStatus, tonic::Status> {
    t.rt.pod_sandbox_status(pb::PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose: false,
    })
    .await
    .map(|r| r.into_inner().status.expect("status"))
}

async fn list(t: &mut Target, filter: Option<pb::PodSandboxFilter>) -> Vec<String> {
    let mut ids: Vec<String> =
        t.rt.list_pod_sandbox(pb::ListPodSandboxRequest { filter })
            .await
            .expect("ListPodSandbox")
            .into_inner()
            .items
            .into_iter()
            .map(|i| i.id)
            .collect();
    ids.sort();
    ids
}

async fn stop(t: &mut Target, id: &str) -> Result<(), tonic::Status> {
    t.rt.stop_pod_sandbox(pb::StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map(|_| ())
}

async fn remove(t: &mut Target, id: &str) -> Result<(), tonic::Status> {
    t.rt.remove_pod_sandbox(pb::RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    })
    .await
    .map(|_| ())
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let prefix = cidr.rsplit_once('.').unwrap().0;
    ip.starts_with(&format!("{prefix}."))
}

/// Runs `args` inside the namespace file `ns` (`--net=` or `--uts=` as `flag`).
fn nsenter(flag: &str, ns: &Path, args: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("{flag}={}", ns.display()))
        .arg("--")
        .args(args)
        .output()
        .expect("nsenter")
}

fn ping(args_prefix: Option<(&str, &Path)>, ip: &str) -> bool {
    let cmd = [
        "timeout",
        "5",
        "/bin/busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        ip,
    ];
    let out = match args_prefix {
        Some((flag, ns)) => nsenter(flag, ns, &cmd),
        None => Command::new(cmd[0]).args(&cmd[1..]).output().unwrap(),
    };
    out.status.success()
}

pub async fn lifecycle_status_list_filters(mut t: Target) {
    t.setup_network().await;
    let id = run(&mut t, config("life", "uid-life"))
        .await
        .expect("RunPodSandbox");
    let other = run(&mut t, config("other", "uid-other"))
        .await
        .expect("second sandbox");
    let s = status(&mut t, &id).await.expect("status");
    assert_eq!(s.id, id);
    assert_eq!(s.state, pb::PodSandboxState::SandboxReady as i32);
    assert_eq!(s.metadata.as_ref().unwrap().name, "life");
    assert_eq!(s.labels.get("app").map(String::as_str), Some("life"));
    assert_eq!(s.annotations.get("note").map(String::as_str), Some("x"));
    assert!(s.created_at > 0);
    let ip = s.network.as_ref().expect("network status").ip.clone();
    assert!(in_cidr(&ip, &t.pod_cidr), "{ip} not in {}", t.pod_cidr);
    let ns = s.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(ns.network, pb::NamespaceMode::Pod as i32);

    let mut both = vec![id.clone(), other.clone()];
    both.sort();
    assert_eq!(list(&mut t, None).await, both);
    let by_label = pb::PodSandboxFilter {
        label_selector: HashMap::from([("app".to_string(), "life".to_string())]),
        ..Default::default()
    };
    assert_eq!(list(&mut t, Some(by_label)).await, vec![id.clone()]);
    let by_id = pb::PodSandboxFilter {
        id: other.clone(),
        ..Default::default()
    };
    assert_eq!(list(&mut t, Some(by_id)).await, vec![other.clone()]);

    stop(&mut t, &id).await.expect("StopPodSandbox");
    let s = status(&mut t, &id).await.expect("status after stop");
    assert_eq!(s.state, pb::PodSandboxState::SandboxNotready as i32);
    let not_ready = pb::PodSandboxFilter {
        state: Some(pb::PodSandboxStateValue {
            state: pb::PodSandboxState::SandboxNotready as i32,
        }),
        ..Default::default()
    };
    assert_eq!(list(&mut t, Some(not_ready)).await, vec![id.clone()]);
    stop(&mut t, &id).await.expect("stopping twice is fine");
    remove(&mut t, &id).await.expect("RemovePodSandbox");
    let e = status(&mut t, &id).await.expect_err("removed sandbox");
    assert_eq!(e.code(), tonic::Code::NotFound);
    remove(&mut t, &id).await.expect("removing twice is fine");
    assert_eq!(list(&mut t, None).await, vec![other.clone()]);
    stop(&mut t, &other).await.unwrap();
    remove(&mut t, &other).await.unwrap();
}

pub async fn duplicate_name_is_refused(mut t: Target) {
    t.setup_network().await;
    let id = run(&mut t, config("dup", "uid-dup")).await.expect("first");
    let e = run(&mut t, config("dup", "uid-dup"))
        .await
        .expect_err("same name and attempt");
    assert!(
        e.message().contains(&id) || e.message().contains("reserved"),
        "{e}"
    );
    assert_eq!(list(&mut t, None).await, vec![id.clone()]);
    stop(&mut t, &id).await.unwrap();
    remove(&mut t, &id).await.unwrap();
}

pub async fn namespaces_hostname_and_pod_to_pod_traffic(mut t: Target) {
    t.setup_network().await;
    let a = run(&mut t, config("pinga", "uid-a")).await.expect("a");
    let b = run(&mut t, config("pingb", "uid-b")).await.expect("b");
    let ip_a = status(&mut t, &a).await.unwrap().network.unwrap().ip;
    let ip_b = status(&mut t, &b).await.unwrap().network.unwrap().ip;
    assert_ne!(ip_a, ip_b);
    let net_a = t.ns_path(&a, "net").await;
    let uts_a = t.ns_path(&a, "uts").await;
    let out = nsenter("--uts", &uts_a, &["hostname"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pinga-host");
    let out = nsenter("--net", &net_a, &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{ip_a}/")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = nsenter("--net", &net_a, &["ip", "-o", "link", "show", "lo"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("UP"),
        "lo is up"
    );
    assert!(ping(None, &ip_a), "host -> pod a");
    assert!(ping(Some(("--net", &net_a)), &ip_b), "pod a -> pod b");
    assert!(ping(Some(("--net", &net_a)), "127.0.0.1"), "pod a loopback");
    for id in [a, b] {
        stop(&mut t, &id).await.unwrap();
        remove(&mut t, &id).await.unwrap();
    }
}

pub async fn host_network_sandbox_has_no_pod_ip(mut t: Target) {
    t.setup_network().await;
    let mut c = config("hostnet", "uid-hostnet");
    // the kubelet sets no hostname for hostNetwork pods (they share the node's UTS namespace)
    c.hostname = String::new();
    c.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options = Some(pb::NamespaceOption {
        network: pb::NamespaceMode::Node as i32,
        ..Default::default()
    });
    let id = run(&mut t, c).await.expect("hostNetwork sandbox");
    let s = status(&mut t, &id).await.unwrap();
    assert_eq!(s.network.map(|n| n.ip).unwrap_or_default(), "");
    let ns = s.linux.unwrap().namespaces.unwrap().options.unwrap();
    assert_eq!(ns.network, pb::NamespaceMode::Node as i32);
    stop(&mut t, &id).await.unwrap();
    remove(&mut t, &id).await.unwrap();
}

fn veths_on(bridge: &str) -> usize {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Allocated IPs in a host-local IPAM dir (one file per IP, plus lock/last_reserved files).
fn ipam_allocations(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for net in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = f.file_name().to_string_lossy().into_owned();
            if n != "lock" && !n.starts_with("last_reserved_ip") {
                out.push(n);
            }
        }
    }
    out
}

pub async fn many_sandboxes_leave_nothing_behind(mut t: Target) {
    t.setup_network().await;
    let n = match t.kind {
        Kind::Oxkube => 100,
        Kind::Containerd => 20,
    };
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            run(
                &mut t,
                config(&format!("leak{i}"), &format!("uid-leak-{i}")),
            )
            .await
            .expect("run"),
        );
    }
    assert_eq!(veths_on(&t.bridge), n);
    for id in &ids {
        stop(&mut t, id).await.expect("stop");
        remove(&mut t, id).await.expect("remove");
    }
    assert!(list(&mut t, None).await.is_empty());
    assert_eq!(veths_on(&t.bridge), 0, "veths left on {}", t.bridge);
    let ipam = match t.kind {
        Kind::Oxkube => t.dir.path().join("data/agent/cni/ipam"),
        Kind::Containerd => t.dir.path().join("ipam"),
    };
    assert_eq!(
        ipam_allocations(&ipam),
        Vec::<String>::new(),
        "IPs left allocated"
    );
    if t.kind == Kind::Oxkube {
        let data = t.dir.path().join("data");
        assert_eq!(mounts_under(&data), Vec::<std::path::PathBuf>::new());
        assert_eq!(
            std::fs::read_dir(data.join("run/sandboxes"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(data.join("agent/sandboxes"))
                .unwrap()
                .count(),
            0
        );
    }
}

pub async fn bad_cni_config_fails_cleanly(mut t: Target) {
    t.setup_network().await;
    let conf_dir = match t.kind {
        Kind::Oxkube => t.dir.path().join("data/agent/cni/net.d"),
        Kind::Containerd => t.dir.path().join("cni"),
    };
    // sorts before the good config, so it is the one used
    std::fs::write(
        conf_dir.join("00-broken.conflist"),
        br#"{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"no-such-cni-plugin"}]}"#,
    )
    .unwrap();
    if t.kind == Kind::Containerd {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let e = run(&mut t, config("badcni", "uid-badcni"))
        .await
        .expect_err("missing plugin");
    assert!(e.message().contains("no-such-cni-plugin"), "{e}");
    // containerd 1.6 keeps a NotReady sandbox for the kubelet to remove; ours keeps nothing
    let left =
        t.rt.list_pod_sandbox(pb::ListPodSandboxRequest { filter: None })
            .await
            .unwrap()
            .into_inner()
            .items;
    if !left.is_empty() {
        // containerd tears the network down again on removal, which needs a working config
        std::fs::remove_file(conf_dir.join("00-broken.conflist")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    for s in &left {
        assert_eq!(s.state, pb::PodSandboxState::SandboxNotready as i32);
        remove(&mut t, &s.id).await.unwrap();
    }
    if t.kind == Kind::Oxkube {
        assert!(left.is_empty(), "{left:?}");
        let data = t.dir.path().join("data");
        assert_eq!(mounts_under(&data), Vec::<std::path::PathBuf>::new());
        assert_eq!(
            std::fs::read_dir(data.join("run/sandboxes"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(data.join("agent/sandboxes"))
                .unwrap()
                .count(),
            0
        );
        // an unparsable config is named too
        std::fs::write(conf_dir.join("00-broken.conflist"), b"{not json").unwrap();
        let e = run(&mut t, config("badcni2", "uid-badcni2"))
            .await
            .expect_err("bad json");
        assert!(e.message().contains("00-broken.conflist"), "{e}");
    }
}

pub async fn sandboxes_survive_runtime_restart(mut t: Target) {
    t.setup_network().await;
    let id = run(&mut t, config("survivor", "uid-survivor"))
        .await
        .unwrap();
    let before = status(&mut t, &id).await.unwrap();
    t.restart_oxkube().await;
    let after = status(&mut t, &id).await.expect("rediscovered");
    assert_eq!(after.state, pb::PodSandboxState::SandboxReady as i32);
    assert_eq!(after.network, before.network);
    assert_eq!(after.created_at, before.created_at);
    let ip = after.network.unwrap().ip;
    assert!(ping(None, &ip), "pod network still up after restart");
    stop(&mut t, &id).await.unwrap();
    remove(&mut t, &id).await.unwrap();
    assert_eq!(veths_on(&t.bridge), 0);
}
