//! A CNI client per the CNI spec (1.0): loads the network list from a conf dir, runs ADD through
//! each plugin in order (each gets the previous result), DEL in reverse order, and writes the
//! node's default bridge + host-local + portmap + loopback conflist. Plugin execution sits behind
//! [`PluginExec`] so the protocol logic is tested without spawning anything.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where CNI plugin binaries are looked up by default (Debian puts them in /usr/lib/cni).
pub const DEFAULT_BIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];
/// File name of the conflist the runtime writes for the node's pod CIDR.
pub const DEFAULT_CONFLIST: &str = "10-oxkube.conflist";

/// CNI errors.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no cni network config found in {0}")]
    NoConfig(PathBuf),
    #[error("bad cni config {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("cni plugin {plugin:?} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    #[error("cni plugin {plugin} {command} failed: {message}")]
    Plugin {
        plugin: String,
        command: String,
        message: String,
    },
    #[error("cannot run cni plugin {plugin}: {source}")]
    Exec {
        plugin: String,
        source: std::io::Error,
    },
    #[error("cannot write cni config {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
    pub path: PathBuf,
}

impl NetworkList {
    /// Parses a `.conflist`, or a single-plugin `.conf`/`.json` file.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, CniError> {
        let bad = |reason: String| CniError::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("missing network name".into()))?
            .to_string();
        let cni_version = v
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.4.0")
            .to_string();
        let plugins = match v.get("plugins") {
            Some(Value::Array(p)) => p.clone(),
            Some(_) => return Err(bad("plugins is not a list".into())),
            None => vec![v.clone()],
        };
        if plugins.is_empty() {
            return Err(bad("no plugins".into()));
        }
        for p in &plugins {
            if p.get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(bad("a plugin has no type".into()));
            }
        }
        Ok(NetworkList {
            name,
            cni_version,
            plugins,
            path: path.to_path_buf(),
        })
    }

    /// Loads the first (lexically) config file of `dir`, as libcni does.
    pub fn load_dir(dir: &Path) -> Result<Self, CniError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|_| CniError::NoConfig(dir.to_path_buf()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect();
        files.sort();
        let first = files
            .first()
            .ok_or_else(|| CniError::NoConfig(dir.to_path_buf()))?;
        let bytes = std::fs::read(first).map_err(|e| CniError::BadConfig {
            path: first.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(first, &bytes)
    }
}

/// A hostPort mapping, passed to plugins with the `portMappings` capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: i32,
    pub container_port: i32,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// What identifies one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    /// `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ... passed in `CNI_ARGS`.
    pub args: Vec<(String, String)>,
    pub port_mappings: Vec<PortMapping>,
}

/// Runs one plugin binary.
pub trait PluginExec {
    /// Runs `plugin` with `env` and `stdin`; returns stdout on success, or the plugin's error.
    fn exec(
        &self,
        plugin: &str,
        env: &[(String, String)],
        stdin: &[u8],
    ) -> Result<Vec<u8>, CniError>;
}

/// Runs real plugin binaries found in `bin_dirs`, except the reference `loopback` plugin, which
/// runs in-process with the same contract (see [`loopback_plugin`]) unless `builtin_loopback`
/// is off: it is one `ioctl` in the pod's netns, not worth a process.
#[derive(Debug, Clone)]
pub struct BinaryExec {
    pub bin_dirs: Vec<PathBuf>,
    pub builtin_loopback: bool,
}

impl Default for BinaryExec {
    fn default() -> Self {
        BinaryExec {
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            builtin_loopback: true,
        }
    }
}

/// The reference `loopback` plugin, in-process: ADD brings `lo` up in `CNI_NETNS` and passes the
/// previous result through unchanged (or, first in a list, reports `lo` with 127.0.0.1/8 and
/// ::1/128); DEL brings it down if the namespace still exists.
pub fn loopback_plugin(env: &[(String, String)], stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let fail = |command: &str, message: String| CniError::Plugin {
        plugin: "loopback".into(),
        command: command.into(),
        message,
    };
    let command = get("CNI_COMMAND");
    let netns = get("CNI_NETNS");
    let conf: Value =
        serde_json::from_slice(stdin).map_err(|e| fail(command, format!("bad config: {e}")))?;
    match command {
        "ADD" => {
            crate::sandbox::ns::set_loopback(Path::new(netns), true)
                .map_err(|e| fail(command, format!("bring up lo in {netns}: {e}")))?;
            let result = match conf.get("prevResult") {
                Some(prev) if !prev.is_null() => prev.clone(),
                _ => json!({
                    "cniVersion": conf.get("cniVersion").cloned().unwrap_or(json!("1.0.0")),
                    "interfaces": [{"name": get("CNI_IFNAME"), "mac": "00:00:00:00:00:00", "sandbox": netns}],
                    "ips": [
                        {"interface": 0, "address": "127.0.0.1/8"},
                        {"interface": 0, "address": "::1/128"},
                    ],
                }),
            };
            Ok(serde_json::to_vec(&result).expect("json"))
        }
        "DEL" => {
            if !netns.is_empty() && Path::new(netns).exists() {
                // a namespace already torn down has no lo to bring down
                if let Err(e) = crate::sandbox::ns::set_loopback(Path::new(netns), false) {
                    tracing::debug!(netns, error = %e, "bring down lo");
                }
            }
            Ok(Vec::new())
        }
        other => Err(fail(other, format!("unsupported command {other:?}"))),
    }
}

impl BinaryExec {
    fn cni_path(&self) -> String {
        self.bin_dirs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl PluginExec for BinaryExec {
    fn exec(
        &self,
        plugin: &str,
        env: &[(String, String)],
        stdin: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        if plugin == "loopback" && self.builtin_loopback {
            return loopback_plugin(env, stdin);
        }
        let bin = self
            .bin_dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::PluginNotFound {
                plugin: plugin.to_string(),
                dirs: self.cni_path(),
            })?;
        let command = env
            .iter()
            .find(|(k, _)| k == "CNI_COMMAND")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let mut child = Command::new(&bin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_PATH", self.cni_path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| CniError::Exec {
                plugin: plugin.to_string(),
                source,
            })?;
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin);
        }
        let out = child.wait_with_output().map_err(|source| CniError::Exec {
            plugin: plugin.to_string(),
            source,
        })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        // CNI errors are a JSON object {code, msg, details} on stdout.
        let message = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                let msg = v.get("msg")?.as_str()?.to_string();
                Some(match v.get("details").and_then(Value::as_str) {
                    Some(d) if !d.is_empty() => format!("{msg}: {d}"),
                    _ => msg,
                })
            })
            .unwrap_or_else(|| {
                format!(
                    "{} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            });
        Err(CniError::Plugin {
            plugin: plugin.to_string(),
            command,
            message,
        })
    }
}

fn env_for(command: &str, a: &Attachment) -> Vec<(String, String)> {
    let mut args = vec!["IgnoreUnknown=1".to_string()];
    args.extend(a.args.iter().map(|(k, v)| format!("{k}={v}")));
    vec![
        ("CNI_COMMAND".into(), command.into()),
        ("CNI_CONTAINERID".into(), a.container_id.clone()),
        ("CNI_NETNS".into(), a.netns.display().to_string()),
        ("CNI_IFNAME".into(), a.ifname.clone()),
        ("CNI_ARGS".into(), args.join(";")),
    ]
}

/// The stdin config of one plugin invocation: the plugin's own config plus the list's name and
/// version, the previous result, and runtime config for the capabilities it declares.
pub fn plugin_stdin(
    list: &NetworkList,
    plugin: &Value,
    prev: Option<&Value>,
    a: &Attachment,
) -> Value {
    let mut conf = plugin.clone();
    let obj = conf.as_object_mut().expect("plugin configs are objects");
    obj.insert("name".into(), json!(list.name));
    obj.insert("cniVersion".into(), json!(list.cni_version));
    if let Some(p) = prev {
        obj.insert("prevResult".into(), p.clone());
    }
    let caps = plugin.get("capabilities").cloned().unwrap_or(Value::Null);
    if caps.get("portMappings").and_then(Value::as_bool) == Some(true)
        && !a.port_mappings.is_empty()
    {
        obj.insert(
            "runtimeConfig".into(),
            json!({"portMappings": a.port_mappings}),
        );
    }
    obj.remove("capabilities");
    conf
}

/// Runs ADD through the list. If a plugin fails, DEL is run for the whole list (as the spec asks)
/// so nothing half-configured is left, and the first error is returned.
pub fn add(exec: &dyn PluginExec, list: &NetworkList, a: &Attachment) -> Result<Value, CniError> {
    let mut prev: Option<Value> = None;
    for plugin in &list.plugins {
        let ty = plugin["type"].as_str().unwrap_or_default();
        let stdin = plugin_stdin(list, plugin, prev.as_ref(), a);
        let res = exec.exec(
            ty,
            &env_for("ADD", a),
            &serde_json::to_vec(&stdin).expect("json"),
        );
        match res.and_then(|out| {
            serde_json::from_slice::<Value>(&out).map_err(|e| CniError::Plugin {
                plugin: ty.to_string(),
                command: "ADD".into(),
                message: format!("bad result: {e}"),
            })
        }) {
            Ok(v) => prev = Some(v),
            Err(e) => {
                if let Err(del_err) = del(exec, list, a, prev.as_ref()) {
                    tracing::warn!(error = %del_err, "cni cleanup after failed ADD");
                }
                return Err(e);
            }
        }
    }
    Ok(prev.unwrap_or(Value::Null))
}

/// Runs DEL through the list in reverse order. All plugins are called; the first error is returned.
pub fn del(
    exec: &dyn PluginExec,
    list: &NetworkList,
    a: &Attachment,
    prev: Option<&Value>,
) -> Result<(), CniError> {
    let mut first_err = None;
    for plugin in list.plugins.iter().rev() {
        let ty = plugin["type"].as_str().unwrap_or_default();
        let stdin = plugin_stdin(list, plugin, prev, a);
        if let Err(e) = exec.exec(
            ty,
            &env_for("DEL", a),
            &serde_json::to_vec(&stdin).expect("json"),
        ) {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The IP addresses (without prefix length) of a CNI result, IPv4 first.
pub fn result_ips(result: &Value) -> Vec<String> {
    let mut ips: Vec<String> = result
        .get("ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|ip| ip.get("address")?.as_str())
                .map(|s| s.split('/').next().unwrap_or(s).to_string())
                .collect()
        })
        .unwrap_or_default();
    ips.sort_by_key(|ip| ip.contains(':'));
    ips
}

/// The default conflist for a pod CIDR: bridge (with host-local IPAM), portmap, and loopback.
pub fn default_conflist(
    network: &str,
    bridge: &str,
    pod_cidr: &str,
    ipam_data_dir: Option<&Path>,
) -> Value {
    let mut ipam = json!({
        "type": "host-local",
        "ranges": [[{"subnet": pod_cidr}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    });
    if let Some(d) = ipam_data_dir {
        ipam["dataDir"] = json!(d.display().to_string());
    }
    json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": ipam,
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "loopback"},
        ],
    })
}

/// Writes the default conflist into `conf_dir` (atomically).
pub fn write_default_conflist(conf_dir: &Path, conflist: &Value) -> Result<PathBuf, CniError> {
    let path = conf_dir.join(DEFAULT_CONFLIST);
    let werr = |source| CniError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(conf_dir).map_err(werr)?;
    let tmp = conf_dir.join(format!(".{DEFAULT_CONFLIST}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(conflist).expect("json")).map_err(werr)?;
    std::fs::rename(&tmp, &path).map_err(werr)?;
    Ok(path)
}

/// `CNI_ARGS` pairs the kubelet's runtimes pass for a pod.
pub fn k8s_args(namespace: &str, name: &str, sandbox_id: &str, uid: &str) -> Vec<(String, String)> {
    let mut m = BTreeMap::new();
    m.insert("K8S_POD_NAMESPACE", namespace);
    m.insert("K8S_POD_NAME", name);
    m.insert("K8S_POD_INFRA_CONTAINER_ID", sandbox_id);
    m.insert("K8S_POD_UID", uid);
    m.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records calls; fails the plugin named in `fail`.
    struct Fake {
        calls: RefCell<Vec<(String, String, Value)>>,
        fail: Option<&'static str>,
    }

    impl PluginExec for Fake {
        fn exec(
            &self,
            plugin: &str,
            env: &[(String, String)],
            stdin: &[u8],
        ) -> Result<Vec<u8>, CniError> {
            let cmd = env
                .iter()
                .find(|(k, _)| k == "CNI_COMMAND")
                .unwrap()
                .1
                .clone();
            let conf: Value = serde_json::from_slice(stdin).unwrap();
            self.calls
                .borrow_mut()
                .push((plugin.to_string(), cmd.clone(), conf));
            if self.fail == Some(plugin) && cmd == "ADD" {
                return Err(CniError::Plugin {
                    plugin: plugin.into(),
                    command: cmd,
                    message: "boom".into(),
                });
            }
            Ok(serde_json::to_vec(&json!({"cniVersion": "1.0.0", "ips": [{"address": format!("10.0.0.{}/24", self.calls.borrow().len())}]})).unwrap())
        }
    }

    fn list() -> NetworkList {
        let v = default_conflist("net", "br0", "10.0.0.0/24", None);
        NetworkList::parse(Path::new("x.conflist"), &serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn attachment() -> Attachment {
        Attachment {
            container_id: "abc".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: k8s_args("ns", "pod", "abc", "uid-1"),
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
        }
    }

    #[test]
    fn add_chains_results_and_passes_port_mappings() {
        let f = Fake {
            calls: RefCell::new(vec![]),
            fail: None,
        };
        let res = add(&f, &list(), &attachment()).unwrap();
        let calls = f.calls.borrow();
        let order: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(order, ["bridge", "portmap", "loopback"]);
        assert!(calls[0].2.get("prevResult").is_none());
        assert_eq!(calls[1].2["prevResult"]["ips"][0]["address"], "10.0.0.1/24");
        assert_eq!(
            calls[1].2["runtimeConfig"]["portMappings"][0]["hostPort"],
            8080
        );
        assert!(calls[1].2.get("capabilities").is_none());
        assert!(calls[0].2.get("runtimeConfig").is_none());
        for c in calls.iter() {
            assert_eq!(c.2["name"], "net");
            assert_eq!(c.2["cniVersion"], "1.0.0");
        }
        assert_eq!(result_ips(&res), vec!["10.0.0.3".to_string()]);
    }

    #[test]
    fn failed_add_deletes_everything_in_reverse() {
        let f = Fake {
            calls: RefCell::new(vec![]),
            fail: Some("portmap"),
        };
        let e = add(&f, &list(), &attachment()).unwrap_err();
        assert!(e.to_string().contains("portmap"), "{e}");
        let calls: Vec<(String, String)> = f
            .calls
            .borrow()
            .iter()
            .map(|c| (c.0.clone(), c.1.clone()))
            .collect();
        let want: Vec<(String, String)> = [
            ("bridge", "ADD"),
            ("portmap", "ADD"),
            ("loopback", "DEL"),
            ("portmap", "DEL"),
            ("bridge", "DEL"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(calls, want);
    }

    #[test]
    fn env_carries_cni_args() {
        let env = env_for("ADD", &attachment());
        let get = |k: &str| env.iter().find(|(x, _)| x == k).unwrap().1.clone();
        assert_eq!(get("CNI_COMMAND"), "ADD");
        assert_eq!(get("CNI_IFNAME"), "eth0");
        assert_eq!(
            get("CNI_ARGS"),
            "IgnoreUnknown=1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_NAME=pod;K8S_POD_NAMESPACE=ns;K8S_POD_UID=uid-1"
        );
    }

    #[test]
    fn config_parsing_table() {
        let p = Path::new("t.conf");
        let cases: [(&str, Result<usize, &str>); 5] = [
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#,
                Ok(1),
            ),
            (r#"{"name":"n","type":"bridge"}"#, Ok(1)),
            (
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#,
                Err("missing network name"),
            ),
            (r#"{"name":"n","plugins":[{"bridge":"x"}]}"#, Err("no type")),
            ("not json", Err("expected")),
        ];
        for (input, want) in cases {
            match (NetworkList::parse(p, input.as_bytes()), want) {
                (Ok(l), Ok(n)) => assert_eq!(l.plugins.len(), n, "{input}"),
                (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{input}: {e}"),
                (got, _) => panic!("{input}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn missing_plugin_binary_is_named() {
        let exec = BinaryExec {
            bin_dirs: vec![PathBuf::from("/nonexistent-cni")],
            builtin_loopback: true,
        };
        let e = exec.exec("bridge", &[], b"{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cni plugin \"bridge\" not found in /nonexistent-cni"
        );
    }

    #[test]
    fn result_ips_strip_prefix_and_order_v4_first() {
        let r = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.1.2.3/24"}]});
        assert_eq!(
            result_ips(&r),
            vec!["10.1.2.3".to_string(), "fd00::5".to_string()]
        );
        assert!(result_ips(&json!({})).is_empty());
    }

    /// The in-process loopback plugin against a real network namespace (needs root): ADD brings
    /// `lo` up and passes the previous result through, or reports `lo` when first; DEL brings it
    /// down, and is a no-op once the namespace is gone.
    #[test]
    fn builtin_loopback_plugin_in_a_netns() {
        use crate::sandbox::ns;
        let dir = tempfile::tempdir().unwrap();
        let pinned = ns::create(
            dir.path(),
            ns::Wanted {
                net: true,
                ipc: false,
                uts: false,
            },
            None,
        )
        .unwrap();
        let netns = pinned.net.clone().unwrap();
        let exec = BinaryExec {
            bin_dirs: vec![PathBuf::from("/nonexistent-cni")],
            builtin_loopback: true,
        };
        let env = |cmd: &str| {
            env_for(
                cmd,
                &Attachment {
                    container_id: "c1".into(),
                    netns: netns.clone(),
                    ifname: "eth0".into(),
                    args: vec![],
                    port_mappings: vec![],
                },
            )
        };
        let del = exec.exec(
            "loopback",
            &env("DEL"),
            br#"{"cniVersion":"1.0.0","name":"n","type":"loopback"}"#,
        );
        assert_eq!(del.unwrap(), b"");
        assert!(!ns::loopback_is_up(&netns).unwrap(), "DEL brings lo down");

        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.9.0.7/24"}]});
        let conf =
            json!({"cniVersion": "1.0.0", "name": "n", "type": "loopback", "prevResult": prev});
        let out = exec
            .exec("loopback", &env("ADD"), &serde_json::to_vec(&conf).unwrap())
            .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), prev);
        assert!(ns::loopback_is_up(&netns).unwrap(), "ADD brings lo up");

        let first = json!({"cniVersion": "1.0.0", "name": "n", "type": "loopback"});
        let out: Value = serde_json::from_slice(
            &exec
                .exec(
                    "loopback",
                    &env("ADD"),
                    &serde_json::to_vec(&first).unwrap(),
                )
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            out["interfaces"][0]["sandbox"],
            json!(netns.display().to_string())
        );
        assert_eq!(
            result_ips(&out),
            vec!["127.0.0.1".to_string(), "::1".to_string()]
        );

        ns::remove(&pinned);
        let gone = exec.exec(
            "loopback",
            &env("DEL"),
            &serde_json::to_vec(&first).unwrap(),
        );
        assert!(gone.is_ok(), "{gone:?}");
        let bad = exec.exec(
            "loopback",
            &env("ADD"),
            &serde_json::to_vec(&first).unwrap(),
        );
        assert!(bad.unwrap_err().to_string().contains("bring up lo"));
    }
}
