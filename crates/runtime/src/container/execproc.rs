//! The process of an exec into a running container (ExecSync, Exec): the container's own process
//! spec (user, groups, capabilities, env, cwd, no_new_privs, rlimits) with the exec'd command,
//! and an executor that applies the container's seccomp filter right before `execve`.
//!
//! libcontainer 0.7's tenant path rebuilds `linux` without `seccomp`, so it would run exec'd
//! processes unconfined. As runc does for `exec`, the filter is loaded before the capabilities
//! are lowered when `no_new_privs` is off (loading a filter then needs CAP_SYS_ADMIN), and after
//! them when it is on: the process spec keeps CAP_SYS_ADMIN (and CAP_SETPCAP, to drop it from the
//! bounding set) in the permitted and bounding sets only; [`ConfinedExec`] raises them, loads the
//! filter, drops them again and execs.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::{LinuxSeccomp, Spec};
use serde_json::{json, Value};

/// Errors building the exec process.
#[derive(Debug, thiserror::Error)]
pub enum ExecProcError {
    #[error("parse container config: {0}")]
    Config(serde_json::Error),
    #[error("container config has no process")]
    NoProcess,
    #[error("container seccomp profile: {0}")]
    Seccomp(serde_json::Error),
}

/// Capabilities the exec'd process holds until its seccomp filter is loaded.
const LOADER_CAPS: [Capability; 2] = [Capability::CAP_SYS_ADMIN, Capability::CAP_SETPCAP];

/// Builds the exec process from the container's OCI config (`config.json`): returns the process
/// spec to hand to libcontainer and the executor that confines it.
pub fn exec_process(
    config: &[u8],
    cmd: &[String],
    terminal: bool,
) -> Result<(Value, ConfinedExec), ExecProcError> {
    let spec: Value = serde_json::from_slice(config).map_err(ExecProcError::Config)?;
    let mut process = spec
        .get("process")
        .filter(|p| p.is_object())
        .cloned()
        .ok_or(ExecProcError::NoProcess)?;
    process["args"] = json!(cmd);
    process["terminal"] = json!(terminal);
    let obj = process.as_object_mut().expect("process is an object");
    // the exec process does not change the container's OOM score
    obj.remove("oomScoreAdj");
    let seccomp = match spec.get("linux").and_then(|l| l.get("seccomp")) {
        Some(s) if !s.is_null() => Some(
            serde_json::from_value::<LinuxSeccomp>(s.clone()).map_err(ExecProcError::Seccomp)?,
        ),
        _ => None,
    };
    let no_new_privs = obj.get("noNewPrivileges").and_then(Value::as_bool) == Some(true);
    let mut exec = ConfinedExec {
        seccomp,
        no_new_privs,
        drop_permitted: vec![],
        drop_bounding: vec![],
    };
    if exec.seccomp.is_some() && !no_new_privs {
        let caps = obj.entry("capabilities").or_insert_with(|| json!({}));
        for (set, dropped) in [
            ("permitted", &mut exec.drop_permitted),
            ("bounding", &mut exec.drop_bounding),
        ] {
            let list = caps
                .as_object_mut()
                .expect("capabilities is an object")
                .entry(set)
                .or_insert_with(|| json!([]));
            let Some(arr) = list.as_array_mut() else {
                continue;
            };
            for cap in LOADER_CAPS {
                let name = cap.to_string();
                if !arr.iter().any(|c| c.as_str() == Some(name.as_str())) {
                    arr.push(json!(name));
                    dropped.push(cap);
                }
            }
        }
    }
    Ok((process, exec))
}

/// libcontainer executor of an exec'd process: loads the container's seccomp filter (see the
/// module docs for the order), then execs like libcontainer's default executor.
#[derive(Clone, Debug)]
pub struct ConfinedExec {
    pub seccomp: Option<LinuxSeccomp>,
    pub no_new_privs: bool,
    /// Capabilities added to the permitted set only for loading the filter.
    pub drop_permitted: Vec<Capability>,
    /// Capabilities added to the bounding set only for loading the filter.
    pub drop_bounding: Vec<Capability>,
}

fn other(what: &str, e: impl std::fmt::Display) -> ExecutorError {
    ExecutorError::Other(format!("{what}: {e}"))
}

impl ConfinedExec {
    fn confine(&self) -> Result<(), ExecutorError> {
        let Some(seccomp) = &self.seccomp else {
            return Ok(());
        };
        if self.no_new_privs {
            // unprivileged filter loading is allowed with no_new_privs, which libcontainer set
            return load(seccomp);
        }
        let effective = caps::read(None, CapSet::Effective).map_err(|e| other("read caps", e))?;
        let permitted = caps::read(None, CapSet::Permitted).map_err(|e| other("read caps", e))?;
        caps::set(None, CapSet::Effective, &permitted).map_err(|e| other("raise caps", e))?;
        load(seccomp)?;
        for cap in &self.drop_bounding {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|e| other("drop bounding cap", e))?;
        }
        let lowered: HashSet<Capability> = permitted
            .iter()
            .filter(|c| !self.drop_permitted.contains(c))
            .copied()
            .collect();
        let effective: HashSet<Capability> = effective.intersection(&lowered).copied().collect();
        caps::set(None, CapSet::Effective, &effective).map_err(|e| other("lower caps", e))?;
        caps::set(None, CapSet::Permitted, &lowered).map_err(|e| other("lower caps", e))?;
        Ok(())
    }
}

fn load(seccomp: &LinuxSeccomp) -> Result<(), ExecutorError> {
    match libcontainer::seccomp::initialize_seccomp(seccomp) {
        Ok(Some(fd)) => {
            // no seccomp agent listens for an exec'd process (containerd's runc does the same)
            let _ = nix::unistd::close(fd);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(other("load seccomp filter", e)),
    }
}

impl Executor for ConfinedExec {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        self.confine()?;
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(process: Value, seccomp: Option<Value>) -> Vec<u8> {
        let mut spec = json!({"ociVersion": "1.0.2", "process": process, "linux": {}});
        if let Some(s) = seccomp {
            spec["linux"]["seccomp"] = s;
        }
        serde_json::to_vec(&spec).unwrap()
    }

    fn filter() -> Value {
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}]})
    }

    /// (process, seccomp, terminal, want permitted, want bounding, dropped from permitted,
    /// dropped from bounding)
    type Case = (
        Value,
        Option<Value>,
        bool,
        Value,
        Value,
        Vec<Capability>,
        Vec<Capability>,
    );

    #[test]
    fn exec_process_table() {
        let base = json!({
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
            "args": ["sleep", "1000"],
            "env": ["PATH=/bin", "A=b"],
            "cwd": "/work",
            "oomScoreAdj": 500,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_SETPCAP"],
                "effective": ["CAP_CHOWN"],
                "permitted": ["CAP_CHOWN", "CAP_SETPCAP"],
            },
        });
        let mut nnp = base.clone();
        nnp["noNewPrivileges"] = json!(true);
        let mut privileged = base.clone();
        privileged["capabilities"]["permitted"] = json!(["CAP_SYS_ADMIN", "CAP_SETPCAP"]);
        privileged["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN", "CAP_SETPCAP"]);
        let sa = Capability::CAP_SYS_ADMIN;
        let cases: Vec<Case> = vec![
            // unconfined: capabilities untouched
            (
                base.clone(),
                None,
                false,
                json!(["CAP_CHOWN", "CAP_SETPCAP"]),
                json!(["CAP_CHOWN", "CAP_SETPCAP"]),
                vec![],
                vec![],
            ),
            // confined without no_new_privs: CAP_SYS_ADMIN held until the filter is loaded
            (
                base.clone(),
                Some(filter()),
                true,
                json!(["CAP_CHOWN", "CAP_SETPCAP", "CAP_SYS_ADMIN"]),
                json!(["CAP_CHOWN", "CAP_SETPCAP", "CAP_SYS_ADMIN"]),
                vec![sa],
                vec![sa],
            ),
            // confined with no_new_privs: loaded unprivileged, nothing added
            (
                nnp,
                Some(filter()),
                false,
                json!(["CAP_CHOWN", "CAP_SETPCAP"]),
                json!(["CAP_CHOWN", "CAP_SETPCAP"]),
                vec![],
                vec![],
            ),
            // a container that has both already: nothing to drop afterwards
            (
                privileged,
                Some(filter()),
                false,
                json!(["CAP_SYS_ADMIN", "CAP_SETPCAP"]),
                json!(["CAP_SYS_ADMIN", "CAP_SETPCAP"]),
                vec![],
                vec![],
            ),
        ];
        let cmd = vec!["sh".to_string(), "-c".to_string(), "id".to_string()];
        for (i, (process, seccomp, terminal, perm, bnd, dp, db)) in cases.into_iter().enumerate() {
            let confined = seccomp.is_some();
            let (p, exec) =
                exec_process(&config(process.clone(), seccomp), &cmd, terminal).unwrap();
            assert_eq!(p["args"], json!(cmd), "case {i}");
            assert_eq!(p["terminal"], json!(terminal), "case {i}");
            assert!(p.get("oomScoreAdj").is_none(), "case {i}");
            for keep in ["user", "env", "cwd"] {
                assert_eq!(p[keep], process[keep], "case {i}: {keep}");
            }
            assert_eq!(p["capabilities"]["permitted"], perm, "case {i}");
            assert_eq!(p["capabilities"]["bounding"], bnd, "case {i}");
            assert_eq!(
                p["capabilities"]["effective"], process["capabilities"]["effective"],
                "case {i}"
            );
            assert_eq!(exec.seccomp.is_some(), confined, "case {i}");
            assert_eq!(exec.drop_permitted, dp, "case {i}");
            assert_eq!(exec.drop_bounding, db, "case {i}");
        }
    }

    #[test]
    fn bad_configs_are_named() {
        let cmd = vec!["true".to_string()];
        let cases: [(&[u8], &str); 3] = [
            (b"{", "parse container config"),
            (br#"{"linux": {}}"#, "container config has no process"),
            (
                br#"{"process": {}, "linux": {"seccomp": {"defaultAction": 7}}}"#,
                "container seccomp profile",
            ),
        ];
        for (input, want) in cases {
            let e = exec_process(input, &cmd, false).unwrap_err();
            assert!(e.to_string().starts_with(want), "{e}");
        }
    }
}
