//! Builds the OCI runtime spec (`config.json`) of a container from what CRI asks for, the image
//! config and the pod sandbox (sans-IO; the caller reads /etc/passwd and /etc/group for it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::images::ImageConfigSummary;

/// Spec building errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no command specified: the image has no entrypoint or cmd and the container sets no command")]
    NoCommand,
    #[error("user {0:?} not found in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} not found in the image's /etc/group")]
    UnknownGroup(String),
    #[error("invalid mount: {0}")]
    InvalidMount(String),
}

/// The capabilities containers get by default (containerd's / docker's default set).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from unprivileged containers.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in unprivileged containers.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// All capabilities, for privileged containers.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A bind mount asked for by CRI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub readonly: bool,
    /// "rprivate", "rslave" or "rshared"
    pub propagation: &'static str,
}

/// Resource limits (zero = unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub memory_limit: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
}

/// Everything the spec is built from.
#[derive(Debug, Clone, Default)]
pub struct SpecInput {
    pub image: ImageConfigSummary,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub working_dir: String,
    pub envs: Vec<(String, String)>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_username: String,
    pub supplemental_groups: Vec<i64>,
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    pub no_new_privs: bool,
    pub add_caps: Vec<String>,
    pub drop_caps: Vec<String>,
    pub hostname: String,
    /// Namespace files of the sandbox to join (None: the host's).
    pub netns: Option<PathBuf>,
    pub ipcns: Option<PathBuf>,
    pub utsns: Option<PathBuf>,
    /// Share the host's pid namespace (hostPID) instead of getting a new one.
    pub host_pid: bool,
    /// A pid namespace to join (the pod's shared one, or a target container's).
    pub pidns: Option<PathBuf>,
    /// The sandbox's `hosts`, `resolv.conf` and `hostname` files.
    pub etc_files: Vec<(String, PathBuf)>,
    pub mounts: Vec<BindMount>,
    pub cgroups_path: String,
    pub resources: Resources,
    pub oom_score_adj: Option<i64>,
    /// Namespaced sysctls (`linux.sysctl`).
    pub sysctls: BTreeMap<String, String>,
    /// Contents of the image's /etc/passwd and /etc/group (empty if absent).
    pub passwd: String,
    pub group: String,
    /// The runtime's own capability bounding set (bit n = capability n, as in /proc's CapBnd);
    /// privileged containers get every capability in it (None: all of [`ALL_CAPS`]).
    pub host_caps: Option<u64>,
    /// The seccomp filter (None: unconfined).
    pub seccomp: Option<Seccomp>,
    /// Device nodes and their cgroup allow rules (CRI devices; all host devices if privileged).
    pub devices: Vec<super::devices::Device>,
}

/// The seccomp filter a container gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    /// The runtime default profile, built for the container's capabilities.
    RuntimeDefault,
    /// A profile read from the node (OCI `LinuxSeccomp` JSON).
    Custom(Value),
}

/// The process arguments: CRI command replaces the entrypoint, CRI args replace the cmd.
pub fn process_args(
    img: &ImageConfigSummary,
    command: &[String],
    args: &[String],
) -> Result<Vec<String>, SpecError> {
    let out: Vec<String> = if !command.is_empty() {
        command.iter().chain(args.iter()).cloned().collect()
    } else if !args.is_empty() {
        img.entrypoint.iter().chain(args.iter()).cloned().collect()
    } else {
        img.entrypoint
            .iter()
            .chain(img.cmd.iter())
            .cloned()
            .collect()
    };
    if out.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(out)
}

/// Image env overridden by CRI env (by key, order kept), with a default PATH.
pub fn merge_env(image: &[String], cri: &[(String, String)]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut vals: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        if !vals.contains_key(k) {
            order.push(k.to_string());
        }
        vals.insert(k.to_string(), v.to_string());
    };
    for e in image {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        put(k, v);
    }
    for (k, v) in cri {
        put(k, v);
    }
    if !vals.contains_key("PATH") {
        order.insert(0, "PATH".into());
        vals.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    order
        .into_iter()
        .map(|k| format!("{k}={}", vals[&k]))
        .collect()
}

fn lookup_passwd(passwd: &str, f: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|p| p.len() >= 4 && f(p))
}

fn lookup_group(group: &str, name: &str) -> Option<u32> {
    group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|p| p.len() >= 3 && p[0] == name)
        .and_then(|p| p[2].parse().ok())
}

/// Resolves uid/gid: CRI run_as_user/run_as_username, else the image's `user[:group]`; names
/// are looked up in the image's /etc/passwd and /etc/group; a uid without a group gets the
/// passwd entry's gid (or 0).
pub fn resolve_user(input: &SpecInput) -> Result<(u32, u32), SpecError> {
    let (user, group): (String, Option<String>) = if let Some(u) = input.run_as_user {
        (u.to_string(), None)
    } else if !input.run_as_username.is_empty() {
        (input.run_as_username.clone(), None)
    } else {
        match input.image.user.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (input.image.user.clone(), None),
        }
    };
    let (uid, passwd_gid) = if user.is_empty() {
        (0, Some(0))
    } else if let Ok(uid) = user.parse::<u32>() {
        let gid = lookup_passwd(&input.passwd, |p| p[2] == user).and_then(|p| p[3].parse().ok());
        (uid, gid)
    } else {
        let p = lookup_passwd(&input.passwd, |p| p[0] == user)
            .ok_or_else(|| SpecError::UnknownUser(user.clone()))?;
        (
            p[2].parse()
                .map_err(|_| SpecError::UnknownUser(user.clone()))?,
            p[3].parse().ok(),
        )
    };
    let gid = if let Some(g) = input.run_as_group {
        g as u32
    } else if let Some(g) = group.filter(|g| !g.is_empty()) {
        match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup_group(&input.group, &g).ok_or(SpecError::UnknownGroup(g))?,
        }
    } else {
        passwd_gid.unwrap_or(0)
    };
    Ok((uid, gid))
}

/// The container's capability set (bounding = effective = permitted).
pub fn caps(input: &SpecInput) -> Vec<String> {
    if input.privileged {
        // ALL_CAPS is in capability number order
        return ALL_CAPS
            .iter()
            .enumerate()
            .filter(|(n, _)| input.host_caps.is_none_or(|m| m & (1u64 << n) != 0))
            .map(|(_, s)| s.to_string())
            .collect();
    }
    let norm = |c: &str| {
        let c = c.to_ascii_uppercase();
        if c.starts_with("CAP_") {
            c
        } else {
            format!("CAP_{c}")
        }
    };
    let mut set: Vec<String> = if input.add_caps.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    for c in &input.add_caps {
        let c = norm(c);
        if c != "CAP_ALL" && !set.contains(&c) {
            set.push(c);
        }
    }
    if input
        .drop_caps
        .iter()
        .any(|c| c.eq_ignore_ascii_case("ALL"))
    {
        set.clear();
    }
    let drops: Vec<String> = input.drop_caps.iter().map(|c| norm(c)).collect();
    set.retain(|c| !drops.contains(c));
    set
}

/// The OCI runtime spec as JSON.
pub fn build(input: &SpecInput) -> Result<Value, SpecError> {
    let args = process_args(&input.image, &input.command, &input.args)?;
    let (uid, gid) = resolve_user(input)?;
    let cwd = if !input.working_dir.is_empty() {
        input.working_dir.clone()
    } else if !input.image.working_dir.is_empty() {
        input.image.working_dir.clone()
    } else {
        "/".into()
    };
    let caps = caps(input);
    let mut process = json!({
        "terminal": false,
        "user": {"uid": uid, "gid": gid, "additionalGids": input.supplemental_groups.iter().map(|g| *g as u32).collect::<Vec<_>>()},
        "args": args,
        "env": merge_env(&input.image.env, &input.envs),
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    });
    if input.no_new_privs {
        // Only set when true: libcontainer loads seccomp after dropping capabilities whenever the
        // field is present, which without no_new_privs fails with EPERM.
        process["noNewPrivileges"] = json!(true);
    }
    if let Some(adj) = input.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }
    let sys_opts = if input.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
    ];
    let user_paths: Vec<&str> = input
        .mounts
        .iter()
        .map(|m| m.container_path.as_str())
        .collect();
    for (name, path) in &input.etc_files {
        let dest = format!("/etc/{name}");
        if user_paths.contains(&dest.as_str()) {
            continue; // the kubelet mounts its own /etc/hosts for most pods
        }
        mounts.push(json!({"destination": dest, "type": "bind", "source": path, "options": ["rbind", "rprivate", "rw"]}));
    }
    for m in &input.mounts {
        if !m.container_path.starts_with('/') {
            return Err(SpecError::InvalidMount(format!(
                "container path {:?} is not absolute",
                m.container_path
            )));
        }
        let mut opts = vec!["rbind".to_string(), m.propagation.to_string()];
        opts.push(if m.readonly { "ro" } else { "rw" }.to_string());
        mounts.push(json!({"destination": m.container_path, "type": "bind", "source": m.host_path, "options": opts}));
    }
    let mut namespaces = vec![json!({"type": "mount"})];
    if !input.host_pid {
        let pid = match &input.pidns {
            Some(p) => json!({"type": "pid", "path": p}),
            None => json!({"type": "pid"}),
        };
        namespaces.insert(0, pid);
    }
    for (ty, path) in [
        ("network", &input.netns),
        ("ipc", &input.ipcns),
        ("uts", &input.utsns),
    ] {
        if let Some(p) = path {
            namespaces.push(json!({"type": ty, "path": p}));
        }
    }
    let r = &input.resources;
    let mut cpu = serde_json::Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if r.cpu_quota > 0 {
        cpu.insert("quota".into(), json!(r.cpu_quota));
    }
    if r.cpu_period > 0 {
        cpu.insert("period".into(), json!(r.cpu_period));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if input.privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else {
        let rules = resources["devices"].as_array_mut().expect("device rules");
        for d in &input.devices {
            rules.push(json!({"allow": true, "type": d.kind.to_string(), "major": d.major, "minor": d.minor, "access": d.access}));
        }
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if r.memory_limit > 0 {
        resources["memory"] = json!({"limit": r.memory_limit});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": input.cgroups_path,
        "resources": resources,
    });
    if !input.sysctls.is_empty() {
        linux["sysctl"] = json!(input.sysctls);
    }
    if !input.devices.is_empty() {
        linux["devices"] = input
            .devices
            .iter()
            .map(|d| json!({"path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor, "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid}))
            .collect();
    }
    match &input.seccomp {
        Some(Seccomp::RuntimeDefault) => {
            linux["seccomp"] = super::seccomp::runtime_default(&caps, std::env::consts::ARCH)
        }
        Some(Seccomp::Custom(v)) => linux["seccomp"] = v.clone(),
        None => {}
    }
    if !input.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": input.rootfs, "readonly": input.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    });
    if input.utsns.is_none() && !input.hostname.is_empty() {
        // only settable with a private UTS namespace; a joined one already has the pod hostname
        spec["hostname"] = json!(input.hostname);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(entrypoint: &[&str], cmd: &[&str]) -> ImageConfigSummary {
        ImageConfigSummary {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn process_args_table() {
        type Case = (
            ImageConfigSummary,
            Vec<String>,
            Vec<String>,
            Result<Vec<String>, SpecError>,
        );
        let cases: Vec<Case> = vec![
            (
                img(&["/ep"], &["c1"]),
                v(&[]),
                v(&[]),
                Ok(v(&["/ep", "c1"])),
            ),
            (
                img(&["/ep"], &["c1"]),
                v(&["/cmd"]),
                v(&[]),
                Ok(v(&["/cmd"])),
            ),
            (
                img(&["/ep"], &["c1"]),
                v(&["/cmd"]),
                v(&["a"]),
                Ok(v(&["/cmd", "a"])),
            ),
            (
                img(&["/ep"], &["c1"]),
                v(&[]),
                v(&["a", "b"]),
                Ok(v(&["/ep", "a", "b"])),
            ),
            (img(&[], &["sh"]), v(&[]), v(&[]), Ok(v(&["sh"]))),
            (img(&[], &[]), v(&[]), v(&[]), Err(SpecError::NoCommand)),
        ];
        for (i, c, a, want) in cases {
            assert_eq!(process_args(&i, &c, &a), want, "{c:?} {a:?}");
        }
    }

    #[test]
    fn env_merge_overrides_by_key_and_defaults_path() {
        let got = merge_env(
            &v(&["A=1", "B=2"]),
            &[("B".into(), "3".into()), ("C".into(), "4".into())],
        );
        assert_eq!(
            got,
            v(&[
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "A=1",
                "B=3",
                "C=4"
            ])
        );
        assert_eq!(merge_env(&v(&["PATH=/x"]), &[]), v(&["PATH=/x"]));
    }

    #[test]
    fn user_resolution_table() {
        let passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:2000::/:/bin/sh\n";
        let group = "root:x:0:\nstaff:x:50:\n";
        let base = SpecInput {
            passwd: passwd.into(),
            group: group.into(),
            ..Default::default()
        };
        let with = |f: &dyn Fn(&mut SpecInput)| {
            let mut i = base.clone();
            f(&mut i);
            resolve_user(&i)
        };
        assert_eq!(with(&|_| {}), Ok((0, 0)));
        assert_eq!(with(&|i| i.image.user = "app".into()), Ok((1000, 2000)));
        assert_eq!(with(&|i| i.image.user = "1000".into()), Ok((1000, 2000)));
        assert_eq!(with(&|i| i.image.user = "1234".into()), Ok((1234, 0)));
        assert_eq!(with(&|i| i.image.user = "app:staff".into()), Ok((1000, 50)));
        assert_eq!(with(&|i| i.image.user = "nobody:7".into()), Ok((65534, 7)));
        assert_eq!(with(&|i| i.run_as_user = Some(65534)), Ok((65534, 65534)));
        assert_eq!(
            with(&|i| {
                i.run_as_user = Some(5);
                i.run_as_group = Some(6)
            }),
            Ok((5, 6))
        );
        assert_eq!(
            with(&|i| i.run_as_username = "nobody".into()),
            Ok((65534, 65534))
        );
        assert_eq!(
            with(&|i| i.image.user = "ghost".into()),
            Err(SpecError::UnknownUser("ghost".into()))
        );
        assert_eq!(
            with(&|i| i.image.user = "app:nogroup".into()),
            Err(SpecError::UnknownGroup("nogroup".into()))
        );
    }

    #[test]
    fn capabilities_add_drop_privileged() {
        let mut i = SpecInput::default();
        assert_eq!(caps(&i).len(), DEFAULT_CAPS.len());
        i.add_caps = v(&["NET_ADMIN"]);
        i.drop_caps = v(&["CAP_KILL", "net_raw"]);
        let c = caps(&i);
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_KILL".to_string()));
        assert!(!c.contains(&"CAP_NET_RAW".to_string()));
        i.drop_caps = v(&["ALL"]);
        assert!(caps(&i).is_empty());
        i.privileged = true;
        assert_eq!(caps(&i).len(), ALL_CAPS.len());
        // privileged gets what the runtime itself holds: here all but CAP_SYS_RESOURCE (24)
        i.host_caps = Some(((1u64 << 41) - 1) & !(1 << 24));
        let c = caps(&i);
        assert_eq!(c.len(), ALL_CAPS.len() - 1);
        assert!(!c.contains(&"CAP_SYS_RESOURCE".to_string()));
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(c.contains(&"CAP_CHECKPOINT_RESTORE".to_string()));
    }

    #[test]
    fn spec_joins_sandbox_namespaces_and_masks_paths() {
        let i = SpecInput {
            image: img(&[], &["sh"]),
            rootfs: "/r".into(),
            netns: Some("/ns/net".into()),
            ipcns: Some("/ns/ipc".into()),
            utsns: Some("/ns/uts".into()),
            hostname: "h".into(),
            etc_files: vec![("hosts".into(), "/sb/hosts".into())],
            mounts: vec![BindMount {
                container_path: "/data".into(),
                host_path: "/host/data".into(),
                readonly: true,
                propagation: "rslave",
            }],
            resources: Resources {
                memory_limit: 64 << 20,
                cpu_shares: 512,
                ..Default::default()
            },
            cgroups_path: "/oxkube/x".into(),
            ..Default::default()
        };
        let s = build(&i).unwrap();
        let ns: Vec<(String, Option<String>)> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["type"].as_str().unwrap().to_string(),
                    n["path"].as_str().map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            ns,
            vec![
                ("pid".to_string(), None),
                ("mount".to_string(), None),
                ("network".to_string(), Some("/ns/net".to_string())),
                ("ipc".to_string(), Some("/ns/ipc".to_string())),
                ("uts".to_string(), Some("/ns/uts".to_string())),
            ]
        );
        assert!(
            s.get("hostname").is_none(),
            "hostname comes from the joined uts ns"
        );
        assert_eq!(
            s["linux"]["maskedPaths"].as_array().unwrap().len(),
            MASKED_PATHS.len()
        );
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["shares"], 512);
        let mounts = s["mounts"].as_array().unwrap();
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], json!(["rbind", "rslave", "ro"]));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/etc/hosts" && m["source"] == "/sb/hosts"));
        assert_eq!(s["process"]["args"], json!(["sh"]));
        assert_eq!(s["process"]["cwd"], "/");
    }

    #[test]
    fn relative_mount_path_is_refused() {
        let i = SpecInput {
            image: img(&[], &["sh"]),
            mounts: vec![BindMount {
                container_path: "data".into(),
                host_path: "/x".into(),
                readonly: false,
                propagation: "rprivate",
            }],
            ..Default::default()
        };
        assert!(matches!(build(&i), Err(SpecError::InvalidMount(_))));
    }
}
