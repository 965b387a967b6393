//! CRI security tests, run against every runtime: seccomp profiles (RuntimeDefault, Unconfined,
//! Localhost, the deprecated profile path strings, privileged) and pod pid namespace sharing.

use cri::v1 as pb;

use crate::containers::{
    container_config, create, log_lines, pod, remove_pod, sandbox_config, start, wait_exited, Pod,
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
    let mut config = sandbox_config("seccomp-privileged", &logs);
    config.linux.as_mut().unwrap().security_context = Some(pb::LinuxSandboxSecurityContext {
        privileged: true,
        ..Default::default()
    });
    let id =
        t.rt.run_pod_sandbox(pb::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let sb = Pod { id, config };
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
