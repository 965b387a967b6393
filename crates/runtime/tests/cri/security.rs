//! CRI security tests, run against every runtime: seccomp profiles (RuntimeDefault, Unconfined,
//! Localhost, the deprecated profile path strings, privileged), seccomp of exec'd processes, pod
//! pid namespace sharing and devices.

use cri::v1 as pb;

use crate::containers::{
    container_config, create, log_lines, pod, privileged_sandbox_config, remove_pod, run_sandbox,
    sandbox_config, start, start_container, wait_exited, Pod,
};
use crate::harness::Target;

/// Reports the container's seccomp mode and whether `unshare -U` (a syscall the runtime default
/// profile blocks without CAP_SYS_ADMIN) and `mkdir` work.
const PROBE: &str = "grep '^Seccomp:' /proc/self/status; \
    if unshare -U true 2>/dev/null; then echo unshare=ok; else echo unshare=denied; fi; \
    if mkdir /tmp/probe-dir 2>/dev/null; then echo mkdir=ok; else echo mkdir=denied; fi";

fn with_seccomp(
    name: &str,
    profile: Option<pb::SecurityProfile>,
    deprecated_path: &str,
    privileged: bool,
) -> pb::ContainerConfig {
    let mut cfg = container_config(name, &["sh", "-c", PROBE]);
    let sc = cfg
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    sc.seccomp = profile;
    #[allow(deprecated)]
    {
        sc.seccomp_profile_path = deprecated_path.into();
    }
    sc.privileged = privileged;
    cfg
}

fn profile(
    ty: pb::security_profile::ProfileType,
    localhost_ref: &str,
) -> Option<pb::SecurityProfile> {
    Some(pb::SecurityProfile {
        profile_type: ty as i32,
        localhost_ref: localhost_ref.into(),
    })
}

/// Runs the probe to completion and returns its stdout lines.
async fn probe(
    t: &mut Target,
    sb: &Pod,
    logs: &std::path::Path,
    cfg: pb::ContainerConfig,
) -> Vec<String> {
    let name = cfg.metadata.as_ref().unwrap().name.clone();
    let id = create(t, sb, cfg).await.expect("CreateContainer");
    start(t, &id).await.expect("StartContainer");
    let s = wait_exited(t, &id).await;
    assert_eq!(s.exit_code, 0, "{name}: {s:?}");
    log_lines(&logs.join(format!("{name}.log")), "stdout")
        .into_iter()
        .map(|l| l.replace('\t', " "))
        .collect()
}

pub async fn seccomp_profiles(mut t: Target) {
    use pb::security_profile::ProfileType;
    let (sb, logs) = pod(&mut t, "seccomp").await;

    let out = probe(
        &mut t,
        &sb,
        &logs,
        with_seccomp(
            "default",
            profile(ProfileType::RuntimeDefault, ""),
            "",
            false,
        ),
    )
    .await;
    assert_eq!(
        out,
        ["Seccomp: 2", "unshare=denied", "mkdir=ok"],
        "RuntimeDefault"
    );

    let out = probe(
        &mut t,
        &sb,
        &logs,
        with_seccomp(
            "unconfined",
            profile(ProfileType::Unconfined, ""),
            "",
            false,
        ),
    )
    .await;
    assert_eq!(out, ["Seccomp: 0", "unshare=ok", "mkdir=ok"], "Unconfined");

    // the deprecated string field, used when `seccomp` is unset
    let out = probe(
        &mut t,
        &sb,
        &logs,
        with_seccomp("docker-default", None, "docker/default", false),
    )
    .await;
    assert_eq!(
        out,
        ["Seccomp: 2", "unshare=denied", "mkdir=ok"],
        "docker/default"
    );
    let out = probe(
        &mut t,
        &sb,
        &logs,
        with_seccomp("path-unconfined", None, "unconfined", false),
    )
    .await;
    assert_eq!(out, ["Seccomp: 0", "unshare=ok", "mkdir=ok"], "unconfined");

    // Localhost: an OCI profile from the node that allows everything but mkdir/mkdirat
    let path = t.dir.path().join("no-mkdir.json");
    std::fs::write(
        &path,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let p = path.display().to_string();
    let out = probe(
        &mut t,
        &sb,
        &logs,
        with_seccomp("localhost", profile(ProfileType::Localhost, &p), "", false),
    )
    .await;
    assert_eq!(
        out,
        ["Seccomp: 2", "unshare=ok", "mkdir=denied"],
        "Localhost"
    );
    let out = probe(
        &mut t,
        &sb,
        &logs,
        with_seccomp("localhost-path", None, &format!("localhost/{p}"), false),
    )
    .await;
    assert_eq!(
        out,
        ["Seccomp: 2", "unshare=ok", "mkdir=denied"],
        "localhost/<path>"
    );

    // a missing or invalid Localhost profile fails CreateContainer, naming the file
    let missing = t.dir.path().join("missing.json").display().to_string();
    let e = create(
        &mut t,
        &sb,
        with_seccomp(
            "missing",
            profile(ProfileType::Localhost, &missing),
            "",
            false,
        ),
    )
    .await
    .expect_err("missing profile");
    assert!(e.message().contains(&missing), "{e}");
    let invalid = t.dir.path().join("invalid.json");
    std::fs::write(&invalid, "{ not json").unwrap();
    let invalid = invalid.display().to_string();
    let e = create(
        &mut t,
        &sb,
        with_seccomp(
            "invalid",
            profile(ProfileType::Localhost, &invalid),
            "",
            false,
        ),
    )
    .await
    .expect_err("invalid profile");
    assert!(e.message().contains(&invalid), "{e}");
    // a privileged container needs a privileged sandbox, and runs unconfined whatever the profile
    let e = create(
        &mut t,
        &sb,
        with_seccomp(
            "privileged",
            profile(ProfileType::RuntimeDefault, ""),
            "",
            true,
        ),
    )
    .await
    .expect_err("privileged container in an unprivileged sandbox");
    assert!(e.message().contains("privileged"), "{e}");
    remove_pod(&mut t, &sb.id).await;
    let sb = run_sandbox(
        &mut t,
        privileged_sandbox_config("seccomp-privileged", &logs),
    )
    .await;
    let out = probe(
        &mut t,
        &sb,
        &logs,
        with_seccomp(
            "privileged",
            profile(ProfileType::RuntimeDefault, ""),
            "",
            true,
        ),
    )
    .await;
    assert_eq!(out, ["Seccomp: 0", "unshare=ok", "mkdir=ok"], "privileged");
    remove_pod(&mut t, &sb.id).await;
}

fn with_pid_mode(
    name: &str,
    command: &[&str],
    mode: pb::NamespaceMode,
    target: &str,
) -> pb::ContainerConfig {
    let mut cfg = container_config(name, command);
    let sc = cfg
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    sc.namespace_options = Some(pb::NamespaceOption {
        pid: mode as i32,
        target_id: target.into(),
        ..Default::default()
    });
    cfg
}

/// The command lines of the processes a container sees (its /proc).
async fn visible_commands(t: &mut Target, id: &str) -> String {
    let r =
        t.rt.exec_sync(pb::ExecSyncRequest {
            container_id: id.into(),
            cmd: ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    assert_eq!(r.exit_code, 0, "{}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8_lossy(&r.stdout).to_string()
}

pub async fn pid_namespace_modes(mut t: Target) {
    use pb::NamespaceMode::{Container, Node, Pod as PodMode, Target as TargetMode};
    // sleep durations unique to this run, to recognise its processes
    let base = 100_000 + (std::process::id() % 100_000) * 10;
    let sleep = |n: u32| (base + n).to_string();
    let (s1, s2, s3, s4, s5) = (sleep(1), sleep(2), sleep(3), sleep(4), sleep(5));
    let (sb, logs) = pod(&mut t, "pidns").await;
    // POD: containers of the pod see each other's processes, even after the first one exits
    let first = create(&mut t, &sb, with_pid_mode("init", &["true"], PodMode, ""))
        .await
        .expect("create init");
    start(&mut t, &first).await.expect("start init");
    wait_exited(&mut t, &first).await;
    let a = start_container(
        &mut t,
        &sb,
        with_pid_mode("a", &["sleep", &s1], PodMode, ""),
    )
    .await;
    start_container(
        &mut t,
        &sb,
        with_pid_mode("b", &["sleep", &s2], PodMode, ""),
    )
    .await;
    let seen = visible_commands(&mut t, &a).await;
    assert!(
        seen.contains(&format!("sleep {s1}")) && seen.contains(&format!("sleep {s2}")),
        "POD: {seen}"
    );
    // CONTAINER: only its own processes
    let c = start_container(
        &mut t,
        &sb,
        with_pid_mode("c", &["sleep", &s3], Container, ""),
    )
    .await;
    let seen = visible_commands(&mut t, &c).await;
    assert!(seen.contains(&format!("sleep {s3}")), "CONTAINER: {seen}");
    assert!(
        !seen.contains(&format!("sleep {s1}")),
        "CONTAINER sees the pod: {seen}"
    );
    let seen = visible_commands(&mut t, &a).await;
    assert!(
        !seen.contains(&format!("sleep {s3}")),
        "POD sees a CONTAINER-mode one: {seen}"
    );
    // TARGET (ephemeral containers): the target container's namespace
    let d = start_container(
        &mut t,
        &sb,
        with_pid_mode("debug", &["sleep", &s4], TargetMode, &c),
    )
    .await;
    let seen = visible_commands(&mut t, &d).await;
    assert!(
        seen.contains(&format!("sleep {s3}")) && seen.contains(&format!("sleep {s4}")),
        "TARGET: {seen}"
    );
    assert!(!seen.contains(&format!("sleep {s1}")), "TARGET: {seen}");
    remove_pod(&mut t, &sb.id).await;
    // NODE (a hostPID pod): the host's processes, e.g. this test itself
    let mut config = sandbox_config("pidns-node", &logs);
    config.linux.as_mut().unwrap().security_context = Some(pb::LinuxSandboxSecurityContext {
        namespace_options: Some(pb::NamespaceOption {
            pid: Node as i32,
            ..Default::default()
        }),
        ..Default::default()
    });
    let node_pod = run_sandbox(&mut t, config).await;
    let n = start_container(
        &mut t,
        &node_pod,
        with_pid_mode("node", &["sleep", &s5], Node, ""),
    )
    .await;
    let seen = visible_commands(&mut t, &n).await;
    let me = String::from_utf8_lossy(&std::fs::read("/proc/self/cmdline").unwrap())
        .split('\0')
        .next()
        .unwrap()
        .to_string();
    assert!(seen.contains(&me), "NODE does not see {me}: {seen}");
    remove_pod(&mut t, &node_pod.id).await;
    // nothing of the pods is left running
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| {
            [&s1, &s2, &s3, &s4, &s5]
                .iter()
                .any(|s| c.trim() == format!("sleep {s}"))
        })
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// Processes exec'd into a confined container are confined too.
pub async fn seccomp_applies_to_exec(mut t: Target) {
    use pb::security_profile::ProfileType;
    let (sb, _logs) = pod(&mut t, "seccomp-exec").await;
    let id = create(&mut t, &sb, {
        let mut c = with_seccomp(
            "default-exec",
            profile(ProfileType::RuntimeDefault, ""),
            "",
            false,
        );
        c.command = vec!["sleep".into(), "1000".into()];
        c
    })
    .await
    .expect("CreateContainer");
    start(&mut t, &id).await.expect("StartContainer");
    let r =
        t.rt.exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sh".into(), "-c".into(), PROBE.into()],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    let out: Vec<String> = String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(|l| l.replace('\t', " "))
        .collect();
    assert_eq!(out, ["Seccomp: 2", "unshare=denied", "mkdir=ok"], "exec");
    // the exec'd process has exactly the container's capabilities (none kept from loading the
    // filter) and runs as the container's user
    let r =
        t.rt.exec_sync(pb::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "for p in self 1; do grep -E '^(Cap(Prm|Eff|Bnd|Inh)|Uid|Gid):' /proc/$p/status | tr -s '\\t ' ' '; done".into(),
            ],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12, "{out}");
    assert_eq!(
        lines[..6],
        lines[6..],
        "exec'd process vs the container's init:\n{out}"
    );

    remove_pod(&mut t, &sb.id).await;
}

async fn exec_lines(t: &mut Target, id: &str, script: &str) -> Vec<String> {
    let r =
        t.rt.exec_sync(pb::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// CRI devices: /dev/null mapped as /dev/mynull (rwm) reads and writes; /dev/loop-control mapped
/// with `r` only opens for reading, not for writing; a node of a device that is not allowed (made with
/// mknod in the container) cannot be opened; a bad host path fails CreateContainer; a privileged
/// container sees the host's devices (/dev/loop-control and /dev/kmsg here).
pub async fn devices_are_mapped_and_others_denied(mut t: Target) {
    let (sb, logs) = pod(&mut t, "devices").await;
    let dev = |host: &str, container: &str, permissions: &str| pb::Device {
        container_path: container.into(),
        host_path: host.into(),
        permissions: permissions.into(),
    };
    let mut cfg = container_config("dev", &["sleep", "1000"]);
    cfg.devices = vec![
        dev("/dev/null", "/dev/mynull", "rwm"),
        dev("/dev/zero", "/dev/myzero", "rwm"),
        dev("/dev/loop-control", "/dev/myloopctl", "r"),
    ];
    let id = start_container(&mut t, &sb, cfg).await;
    let out = exec_lines(
        &mut t,
        &id,
        "stat -c 'mynull=%F %t:%T' /dev/mynull; \
         echo hi > /dev/mynull && echo null-write=ok; \
         head -c 3 /dev/mynull > /dev/null && echo null-read=ok; \
         [ \"$(head -c 2 /dev/myzero | wc -c)\" -eq 2 ] && echo zero-read=ok; \
         : < /dev/myloopctl && echo loopctl-read=ok; \
         if (: > /dev/myloopctl) 2>/dev/null; then echo loopctl-write=ok; else echo loopctl-write=denied; fi; \
         mknod /dev/mymem c 1 1 && if head -c 1 /dev/mymem > /dev/null 2>&1; then echo mem=ok; else echo mem=denied; fi",
    )
    .await;
    assert_eq!(
        out,
        [
            "mynull=character special file 1:3",
            "null-write=ok",
            "null-read=ok",
            "zero-read=ok",
            "loopctl-read=ok",
            "loopctl-write=denied",
            "mem=denied"
        ],
        "devices"
    );
    let mut bad = container_config("bad", &["true"]);
    bad.devices = vec![dev("/dev/no-such-device", "/dev/x", "rwm")];
    let e = create(&mut t, &sb, bad)
        .await
        .expect_err("a missing host device fails CreateContainer");
    assert!(e.message().contains("/dev/no-such-device"), "{e}");
    remove_pod(&mut t, &sb.id).await;

    let sb = run_sandbox(
        &mut t,
        privileged_sandbox_config("devices-privileged", &logs),
    )
    .await;
    let mut cfg = container_config("priv", &["sleep", "1000"]);
    cfg.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .privileged = true;
    let id = start_container(&mut t, &sb, cfg).await;
    let mut want = Vec::new();
    for d in ["loop-control", "kmsg"] {
        if std::path::Path::new("/dev").join(d).exists() {
            want.push(format!("{d}=ok"));
        }
    }
    assert!(!want.is_empty(), "the host has neither device");
    let out = exec_lines(
        &mut t,
        &id,
        "for d in loop-control kmsg; do [ -c /dev/$d ] && echo $d=ok; done",
    )
    .await;
    assert_eq!(out, want, "host devices in a privileged container");
    remove_pod(&mut t, &sb.id).await;
}
