//! Seccomp for containers: picks the profile CRI asks for (RuntimeDefault, Unconfined, Localhost,
//! or the deprecated `seccomp_profile_path` strings) and builds the OCI `linux.seccomp` section,
//! including the runtime default profile containerd and Docker apply (sans-IO except for reading a
//! Localhost profile file).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Seccomp errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompError {
    #[error("unsupported seccomp profile {0:?}")]
    Unsupported(String),
    #[error("seccomp localhost profile path {0:?} must be absolute")]
    RelativePath(String),
    #[error("read seccomp profile {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid seccomp profile {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// The seccomp profile a container runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    Unconfined,
    RuntimeDefault,
    /// An OCI `LinuxSeccomp` JSON file on the node.
    Localhost(PathBuf),
}

/// CRI `SecurityProfile.ProfileType` values.
const TYPE_RUNTIME_DEFAULT: i32 = 0;
const TYPE_UNCONFINED: i32 = 1;
const TYPE_LOCALHOST: i32 = 2;

/// Picks the profile from the CRI fields: `seccomp` (type, localhost_ref) wins over the deprecated
/// `seccomp_profile_path`; neither set means unconfined (what containerd does; the kubelet sends
/// Unconfined or RuntimeDefault explicitly). Privileged containers are always unconfined.
pub fn select(
    privileged: bool,
    profile: Option<(i32, &str)>,
    deprecated_path: &str,
) -> Result<Profile, SeccompError> {
    if privileged {
        return Ok(Profile::Unconfined);
    }
    let localhost = |p: &str| {
        if Path::new(p).is_absolute() {
            Ok(Profile::Localhost(PathBuf::from(p)))
        } else {
            Err(SeccompError::RelativePath(p.to_string()))
        }
    };
    if let Some((ty, localhost_ref)) = profile {
        return match ty {
            TYPE_RUNTIME_DEFAULT => Ok(Profile::RuntimeDefault),
            TYPE_UNCONFINED => Ok(Profile::Unconfined),
            TYPE_LOCALHOST => localhost(localhost_ref),
            other => Err(SeccompError::Unsupported(format!("profile type {other}"))),
        };
    }
    match deprecated_path {
        "" | "unconfined" => Ok(Profile::Unconfined),
        "runtime/default" | "docker/default" => Ok(Profile::RuntimeDefault),
        p => match p.strip_prefix("localhost/") {
            Some(rest) => localhost(rest),
            None => Err(SeccompError::Unsupported(p.to_string())),
        },
    }
}

/// Reads and validates a Localhost profile (the OCI `LinuxSeccomp` JSON format).
pub fn load_localhost(path: &Path) -> Result<Value, SeccompError> {
    let text = std::fs::read(path).map_err(|e| SeccompError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_localhost(path, &text)
}

/// Validates profile bytes against the OCI `LinuxSeccomp` schema.
pub fn parse_localhost(path: &Path, text: &[u8]) -> Result<Value, SeccompError> {
    let invalid = |reason: String| SeccompError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let parsed: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_slice(text).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_value(&parsed).map_err(|e| invalid(e.to_string()))
}

/// The OCI seccomp section for `profile` (None: unconfined).
pub fn section(profile: &Profile, caps: &[String]) -> Result<Option<Value>, SeccompError> {
    match profile {
        Profile::Unconfined => Ok(None),
        Profile::RuntimeDefault => Ok(Some(runtime_default(caps, std::env::consts::ARCH))),
        Profile::Localhost(p) => load_localhost(p).map(Some),
    }
}

/// Syscalls every container may make.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // kernels >= 4.8 check ptrace against seccomp, so it is safe to allow
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
];

/// Syscalls allowed only when the container holds a capability.
const BY_CAP: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Architecture-specific syscalls, keyed by Rust's `std::env::consts::ARCH`.
const BY_ARCH: &[(&str, &[&str])] = &[
    ("x86_64", &["arch_prctl", "modify_ldt"]),
    ("x86", &["modify_ldt"]),
    (
        "aarch64",
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (
        "arm",
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    ("powerpc64", &["sync_file_range2", "swapcontext"]),
    (
        "s390x",
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    ("riscv64", &["riscv_flush_icache"]),
];

/// Seccomp architectures a filter covers on each native architecture (the native one first).
fn architectures(arch: &str) -> Vec<&'static str> {
    match arch {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "x86" => vec!["SCMP_ARCH_X86"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "arm" => vec!["SCMP_ARCH_ARM"],
        "s390x" => vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "riscv64" => vec!["SCMP_ARCH_RISCV64"],
        "powerpc64" => vec!["SCMP_ARCH_PPC64LE"],
        _ => vec![],
    }
}

/// Namespace-creating clone flags a container without CAP_SYS_ADMIN may not pass:
/// CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
/// CLONE_NEWCGROUP.
pub const CLONE_NS_FLAGS: u64 =
    0x0002_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x0200_0000;

/// The runtime default profile for a container holding `caps` on `arch`: everything not allowed
/// fails with EPERM; syscalls that need a capability are allowed only with it; without
/// CAP_SYS_ADMIN, clone may not create namespaces and clone3 fails with ENOSYS (so libc falls
/// back to the filtered clone).
pub fn runtime_default(caps: &[String], arch: &str) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut allowed: Vec<&str> = ALLOWED.to_vec();
    for (cap, names) in BY_CAP {
        if has(cap) {
            allowed.extend_from_slice(names);
        }
    }
    for (a, names) in BY_ARCH {
        if *a == arch {
            allowed.extend_from_slice(names);
        }
    }
    allowed.sort_unstable();
    allowed.dedup();
    let mut syscalls = vec![json!({"names": allowed, "action": "SCMP_ACT_ALLOW"})];
    // socket: every family but AF_VSOCK (40)
    syscalls.push(json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}));
    // personality: only PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32 and the query
    for p in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]}));
    }
    if !has("CAP_SYS_ADMIN") {
        // s390 passes the flags as the second argument
        let index = if arch == "s390x" { 1 } else { 0 };
        syscalls.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": index, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}));
        syscalls.push(
            json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
        );
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": architectures(arch),
        "syscalls": syscalls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_with(profile: &Value, action: &str) -> Vec<String> {
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap().iter())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    /// (privileged, seccomp field, deprecated path, expected)
    type Case<'a> = (
        bool,
        Option<(i32, &'a str)>,
        &'a str,
        Result<Profile, SeccompError>,
    );

    #[test]
    fn select_table() {
        let abs = Profile::Localhost("/p.json".into());
        let cases: Vec<Case> = vec![
            (false, None, "", Ok(Profile::Unconfined)),
            (false, None, "unconfined", Ok(Profile::Unconfined)),
            (false, None, "runtime/default", Ok(Profile::RuntimeDefault)),
            (false, None, "docker/default", Ok(Profile::RuntimeDefault)),
            (false, None, "localhost//p.json", Ok(abs.clone())),
            (
                false,
                None,
                "localhost/p.json",
                Err(SeccompError::RelativePath("p.json".into())),
            ),
            (
                false,
                None,
                "bogus",
                Err(SeccompError::Unsupported("bogus".into())),
            ),
            (
                false,
                Some((0, "")),
                "unconfined",
                Ok(Profile::RuntimeDefault),
            ),
            (
                false,
                Some((1, "")),
                "runtime/default",
                Ok(Profile::Unconfined),
            ),
            (false, Some((2, "/p.json")), "", Ok(abs)),
            (
                false,
                Some((2, "")),
                "",
                Err(SeccompError::RelativePath("".into())),
            ),
            (
                false,
                Some((7, "")),
                "",
                Err(SeccompError::Unsupported("profile type 7".into())),
            ),
            (true, Some((0, "")), "", Ok(Profile::Unconfined)),
            (true, None, "runtime/default", Ok(Profile::Unconfined)),
        ];
        for (privileged, p, path, want) in cases {
            assert_eq!(
                select(privileged, p, path),
                want,
                "{privileged} {p:?} {path:?}"
            );
        }
    }

    #[test]
    fn default_profile_denies_with_eperm_and_gates_on_caps() {
        let default_caps: Vec<String> = crate::container::spec::DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = runtime_default(&default_caps, "x86_64");
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(p["defaultErrnoRet"], libc::EPERM);
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let allowed = names_with(&p, "SCMP_ACT_ALLOW");
        for s in ["read", "execve", "arch_prctl", "chroot", "ptrace"] {
            assert!(allowed.contains(&s.to_string()), "{s} should be allowed");
        }
        for s in [
            "unshare",
            "mount",
            "setns",
            "reboot",
            "kexec_load",
            "clone",
            "bpf",
            "modify_ldt2",
        ] {
            assert!(
                !allowed.contains(&s.to_string()),
                "{s} should not be allowed unconditionally"
            );
        }
        // clone without namespace flags only; clone3 says ENOSYS
        let rules = p["syscalls"].as_array().unwrap();
        let clone = rules
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], 0x7E02_0000u64);
        let clone3 = rules
            .iter()
            .find(|r| r["names"] == json!(["clone3"]))
            .unwrap();
        assert_eq!(clone3["errnoRet"], libc::ENOSYS);
        // the profile is valid OCI
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p.clone()).unwrap();

        let mut admin = default_caps.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let p = runtime_default(&admin, "x86_64");
        let allowed = names_with(&p, "SCMP_ACT_ALLOW");
        for s in ["unshare", "mount", "setns", "clone", "clone3"] {
            assert!(allowed.contains(&s.to_string()), "{s} with CAP_SYS_ADMIN");
        }
        assert!(!p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"] == json!(["clone3"])));
        // names are listed once
        let mut sorted = allowed.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), allowed.len());
    }

    #[test]
    fn arch_specific_rules() {
        let p = runtime_default(&[], "aarch64");
        let allowed = names_with(&p, "SCMP_ACT_ALLOW");
        assert!(allowed.contains(&"set_tls".to_string()));
        assert!(!allowed.contains(&"arch_prctl".to_string()));
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        let p = runtime_default(&[], "s390x");
        let clone = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap()
            .clone();
        assert_eq!(clone["args"][0]["index"], 1);
    }

    #[test]
    fn localhost_profiles_are_validated() {
        let ok = br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}"#;
        let v = parse_localhost(Path::new("/p.json"), ok).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(v["syscalls"][0]["names"], json!(["unshare"]));
        for bad in [
            &b"not json"[..],
            br#"{"defaultAction":"SCMP_ACT_BOGUS"}"#,
            br#"{"syscalls":[]}"#,
        ] {
            let e = parse_localhost(Path::new("/p.json"), bad).unwrap_err();
            assert!(
                matches!(e, SeccompError::Invalid { ref path, .. } if path == "/p.json"),
                "{e}"
            );
        }
        let e = load_localhost(Path::new("/nonexistent/oxkube-profile.json")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("read seccomp profile /nonexistent/oxkube-profile.json"),
            "{e}"
        );
    }
}
