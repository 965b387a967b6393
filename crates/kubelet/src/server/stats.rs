//! `/stats/summary`: the node's CPU, memory, network, filesystem and process figures (from
//! /proc and statvfs) and per-pod and per-container figures from CRI ListContainerStats (and
//! ListPodSandboxStats where the runtime has it), in upstream's Summary JSON shape
//! (k8s.io/kubelet/pkg/apis/stats/v1alpha1).

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use cri::v1 as pb;
use serde_json::{json, Map, Value};

use super::pods::Pod;

/// USER_HZ: /proc/stat counts in hundredths of a second on Linux.
const TICK_NS: u64 = 10_000_000;

/// Usage of one filesystem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    pub capacity: u64,
    pub available: u64,
    pub used: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// Counters of one network interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetIf {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// One sample of the node's figures.
#[derive(Clone, Debug, Default)]
pub struct NodeSample {
    pub time: DateTime<Utc>,
    /// Boot time (seconds since the epoch).
    pub boot_time: i64,
    pub cpu_usage_ns: u64,
    pub meminfo: HashMap<String, u64>,
    pub vmstat: HashMap<String, u64>,
    pub net: Vec<NetIf>,
    pub fs: Option<FsStats>,
    pub max_pid: u64,
    pub processes: u64,
}

/// Busy CPU time (ns) and boot time from /proc/stat.
pub fn parse_proc_stat(text: &str) -> (u64, i64) {
    let mut busy = 0;
    let mut btime = 0;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal
                let pick = |i: usize| v.get(i).copied().unwrap_or(0);
                busy = (pick(0) + pick(1) + pick(2) + pick(5) + pick(6) + pick(7)) * TICK_NS;
            }
            Some("btime") => btime = f.next().and_then(|x| x.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    (busy, btime)
}

/// `/proc/meminfo` in bytes by key (`MemTotal`, `Inactive(file)`, ...).
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut f = rest.split_whitespace();
            let n: u64 = f.next()?.parse().ok()?;
            let mult = if f.next() == Some("kB") { 1024 } else { 1 };
            Some((k.trim().to_string(), n * mult))
        })
        .collect()
}

/// `/proc/vmstat` counters by key.
pub fn parse_vmstat(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `/proc/net/dev`, loopback excluded.
pub fn parse_net_dev(text: &str) -> Vec<NetIf> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() < 11 {
                return None;
            }
            Some(NetIf {
                name: name.to_string(),
                rx_bytes: v[0],
                rx_errors: v[2],
                tx_bytes: v[8],
                tx_errors: v[10],
            })
        })
        .collect()
}

/// statvfs of the filesystem holding `path`.
pub fn fs_stats(path: &Path) -> Option<FsStats> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = s.fragment_size() as u64;
    let capacity = s.blocks() as u64 * frsize;
    let free = s.blocks_free() as u64 * frsize;
    Some(FsStats {
        capacity,
        available: s.blocks_available() as u64 * frsize,
        used: capacity.saturating_sub(free),
        inodes: s.files() as u64,
        inodes_free: s.files_free() as u64,
    })
}

/// Reads the node's figures from `/proc` and statvfs of `root_dir`.
pub fn read_node(root_dir: &Path) -> NodeSample {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (cpu_usage_ns, boot_time) = parse_proc_stat(&read("/proc/stat"));
    let processes = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count() as u64
        })
        .unwrap_or(0);
    NodeSample {
        time: Utc::now(),
        boot_time,
        cpu_usage_ns,
        meminfo: parse_meminfo(&read("/proc/meminfo")),
        vmstat: parse_vmstat(&read("/proc/vmstat")),
        net: parse_net_dev(&read("/proc/net/dev")),
        fs: fs_stats(root_dir),
        max_pid: read("/proc/sys/kernel/pid_max").trim().parse().unwrap_or(0),
        processes,
    }
}

/// Usage rates from successive cumulative CPU samples (the runtime reports usage only).
#[derive(Debug, Default)]
pub struct CpuRates {
    prev: HashMap<String, (i64, u64)>,
}

impl CpuRates {
    /// Records a sample (`at` in ns) and returns nano-cores since the previous one of `key`.
    pub fn rate(&mut self, key: &str, at: i64, usage_ns: u64) -> Option<u64> {
        let prev = self.prev.insert(key.to_string(), (at, usage_ns));
        let (t0, u0) = prev?;
        let dt = at - t0;
        if dt <= 0 || usage_ns < u0 {
            return None;
        }
        Some(((usage_ns - u0) as u128 * 1_000_000_000 / dt as u128) as u64)
    }

    /// Forgets keys not in `live` (containers that are gone).
    pub fn retain(&mut self, live: &std::collections::HashSet<String>) {
        self.prev.retain(|k, _| live.contains(k));
    }
}

fn ts(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn ts_ns(ns: i64) -> Value {
    let t = DateTime::from_timestamp(ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
        .unwrap_or_default();
    ts(t)
}

fn fs_json(time: &Value, f: &FsStats) -> Value {
    json!({
        "time": time,
        "availableBytes": f.available,
        "capacityBytes": f.capacity,
        "usedBytes": f.used,
        "inodesFree": f.inodes_free,
        "inodes": f.inodes,
        "inodesUsed": f.inodes.saturating_sub(f.inodes_free),
    })
}

fn net_json(time: &Value, ifs: &[NetIf]) -> Value {
    let one = |i: &NetIf| json!({"name": i.name, "rxBytes": i.rx_bytes, "rxErrors": i.rx_errors, "txBytes": i.tx_bytes, "txErrors": i.tx_errors});
    let mut v = match ifs.first() {
        Some(i) => one(i),
        None => json!({}),
    };
    v["time"] = time.clone();
    v["interfaces"] = Value::Array(ifs.iter().map(one).collect());
    v
}

fn insert_u64(m: &mut Map<String, Value>, k: &str, v: Option<&pb::UInt64Value>) {
    if let Some(v) = v {
        m.insert(k.to_string(), json!(v.value));
    }
}

/// CPU JSON of CRI usage, with nano-cores from the runtime or computed from the last sample.
fn cpu_json(key: &str, u: Option<&pb::CpuUsage>, rates: &mut CpuRates) -> Option<Value> {
    let u = u?;
    let mut m = Map::new();
    m.insert("time".into(), ts_ns(u.timestamp));
    let rate = match (&u.usage_nano_cores, &u.usage_core_nano_seconds) {
        (Some(r), _) => Some(r.value),
        (None, Some(total)) => rates.rate(key, u.timestamp, total.value),
        _ => None,
    };
    if let Some(r) = rate {
        m.insert("usageNanoCores".into(), json!(r));
    }
    insert_u64(
        &mut m,
        "usageCoreNanoSeconds",
        u.usage_core_nano_seconds.as_ref(),
    );
    Some(Value::Object(m))
}

fn memory_json(u: Option<&pb::MemoryUsage>) -> Option<Value> {
    let u = u?;
    let mut m = Map::new();
    m.insert("time".into(), ts_ns(u.timestamp));
    insert_u64(&mut m, "availableBytes", u.available_bytes.as_ref());
    insert_u64(&mut m, "usageBytes", u.usage_bytes.as_ref());
    insert_u64(&mut m, "workingSetBytes", u.working_set_bytes.as_ref());
    insert_u64(&mut m, "rssBytes", u.rss_bytes.as_ref());
    insert_u64(&mut m, "pageFaults", u.page_faults.as_ref());
    insert_u64(&mut m, "majorPageFaults", u.major_page_faults.as_ref());
    Some(Value::Object(m))
}

fn usage_fs_json(u: Option<&pb::FilesystemUsage>, cap: Option<&FsStats>) -> Option<Value> {
    let u = u?;
    let time = ts_ns(u.timestamp);
    let mut v = match cap {
        Some(c) => fs_json(&time, c),
        None => json!({"time": time}),
    };
    if let Some(b) = &u.used_bytes {
        v["usedBytes"] = json!(b.value);
    }
    if let Some(i) = &u.inodes_used {
        v["inodesUsed"] = json!(i.value);
    }
    Some(v)
}

/// Adds `src`'s numeric fields into `dst` (pod totals of container figures).
fn add_into(dst: &mut Value, src: &Value) {
    let (Some(d), Some(s)) = (dst.as_object_mut(), src.as_object()) else {
        return;
    };
    for (k, v) in s {
        match (d.get(k).and_then(Value::as_u64), v.as_u64()) {
            (Some(a), Some(b)) => {
                d.insert(k.clone(), json!(a + b));
            }
            (None, Some(_)) | (None, None) => {
                d.entry(k.clone()).or_insert_with(|| v.clone());
            }
            _ => {}
        }
    }
}

/// Everything the summary is built from.
pub struct Inputs<'a> {
    pub node_name: &'a str,
    pub node: &'a NodeSample,
    pub image_fs: Option<Value>,
    pub container_fs: Option<FsStats>,
    pub pods: &'a [Pod],
    pub container_stats: &'a [pb::ContainerStats],
    pub sandbox_stats: &'a [pb::PodSandboxStats],
}

/// The Summary object.
pub fn summary(inp: &Inputs<'_>, rates: &mut CpuRates) -> Value {
    let n = inp.node;
    let time = ts(n.time);
    let at = n.time.timestamp_nanos_opt().unwrap_or(0);
    let mi = |k: &str| n.meminfo.get(k).copied().unwrap_or(0);
    let total = mi("MemTotal");
    let usage = total.saturating_sub(mi("MemFree"));
    let working_set = usage.saturating_sub(mi("Inactive(file)"));
    let mut node_cpu = json!({"time": time, "usageCoreNanoSeconds": n.cpu_usage_ns});
    if let Some(r) = rates.rate("\0node", at, n.cpu_usage_ns) {
        node_cpu["usageNanoCores"] = json!(r);
    }
    let mut node = json!({
        "nodeName": inp.node_name,
        "startTime": ts_ns(n.boot_time * 1_000_000_000),
        "cpu": node_cpu,
        "memory": {
            "time": time,
            "availableBytes": total.saturating_sub(working_set),
            "usageBytes": usage,
            "workingSetBytes": working_set,
            "rssBytes": mi("AnonPages"),
            "pageFaults": n.vmstat.get("pgfault").copied().unwrap_or(0),
            "majorPageFaults": n.vmstat.get("pgmajfault").copied().unwrap_or(0),
        },
        "network": net_json(&time, &n.net),
        "rlimit": {"time": time, "maxpid": n.max_pid, "curproc": n.processes},
    });
    if let Some(fs) = &n.fs {
        node["fs"] = fs_json(&time, fs);
    }
    let mut runtime = Map::new();
    if let Some(i) = &inp.image_fs {
        runtime.insert("imageFs".into(), i.clone());
        runtime.insert("containerFs".into(), i.clone());
    }
    node["runtime"] = Value::Object(runtime);

    let by_id: HashMap<&str, &pb::ContainerStats> = inp
        .container_stats
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s)))
        .collect();
    let sandbox_by_id: HashMap<&str, &pb::PodSandboxStats> = inp
        .sandbox_stats
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s)))
        .collect();
    let mut pods = Vec::new();
    for p in inp.pods {
        let sb = p.sandbox();
        if sb.state != pb::PodSandboxState::SandboxReady as i32 {
            continue;
        }
        let mut containers = Vec::new();
        let mut pod_cpu = json!({});
        let mut pod_mem = json!({});
        let mut pod_eph = json!({});
        for name in p.container_names() {
            // the current container of each name, running ones only (as upstream lists them)
            let Some(c) = p.named(&name).into_iter().next() else {
                continue;
            };
            if c.state != pb::ContainerState::ContainerRunning as i32 {
                continue;
            }
            let mut cj = json!({"name": name, "startTime": ts_ns(c.created_at)});
            if let Some(s) = by_id.get(c.id.as_str()) {
                if let Some(v) = cpu_json(&c.id, s.cpu.as_ref(), rates) {
                    add_into(&mut pod_cpu, &v);
                    cj["cpu"] = v;
                }
                if let Some(v) = memory_json(s.memory.as_ref()) {
                    add_into(&mut pod_mem, &v);
                    cj["memory"] = v;
                }
                if let Some(v) = usage_fs_json(s.writable_layer.as_ref(), inp.container_fs.as_ref())
                {
                    if let Some(u) = v.get("usedBytes") {
                        add_into(&mut pod_eph, &json!({"usedBytes": u}));
                    }
                    cj["rootfs"] = v;
                }
            }
            containers.push(cj);
        }
        let mut pj = json!({
            "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
            "startTime": ts_ns(sb.created_at),
            "containers": containers,
        });
        match sandbox_by_id
            .get(sb.id.as_str())
            .and_then(|s| s.linux.as_ref())
        {
            Some(l) => {
                if let Some(v) = cpu_json(&sb.id, l.cpu.as_ref(), rates) {
                    pj["cpu"] = v;
                }
                if let Some(v) = memory_json(l.memory.as_ref()) {
                    pj["memory"] = v;
                }
                if let Some(ps) = &l.process {
                    if let Some(c) = &ps.process_count {
                        pj["process_stats"] = json!({"process_count": c.value});
                    }
                }
            }
            None => {
                if pod_cpu.as_object().is_some_and(|m| !m.is_empty()) {
                    pod_cpu["time"] = time.clone();
                    pj["cpu"] = pod_cpu;
                }
                if pod_mem.as_object().is_some_and(|m| !m.is_empty()) {
                    pod_mem["time"] = time.clone();
                    pj["memory"] = pod_mem;
                }
            }
        }
        if let Some(u) = pod_eph.get("usedBytes") {
            let mut e = match &inp.container_fs {
                Some(c) => fs_json(&time, c),
                None => json!({"time": time}),
            };
            e["usedBytes"] = u.clone();
            pj["ephemeral-storage"] = e;
        }
        pods.push(pj);
    }
    let live: std::collections::HashSet<String> = inp
        .container_stats
        .iter()
        .filter_map(|s| s.attributes.as_ref().map(|a| a.id.clone()))
        .chain(inp.pods.iter().map(|p| p.sandbox().id.clone()))
        .chain(std::iter::once("\0node".to_string()))
        .collect();
    rates.retain(&live);
    json!({"node": node, "pods": pods})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::pods::{
        group, CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL,
    };

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 5 50 1000 7 1 2 3 0 0\ncpu0 1 1 1 1\nbtime 1700000000\n";
        assert_eq!(
            parse_proc_stat(stat),
            ((100 + 5 + 50 + 1 + 2 + 3) * TICK_NS, 1_700_000_000)
        );
        let mi = parse_meminfo("MemTotal:       2000 kB\nMemFree: 500 kB\nInactive(file): 100 kB\nHugePages_Total: 3\n");
        assert_eq!(mi["MemTotal"], 2000 * 1024);
        assert_eq!(mi["Inactive(file)"], 100 * 1024);
        assert_eq!(mi["HugePages_Total"], 3);
        assert_eq!(parse_vmstat("pgfault 42\npgmajfault 7\n")["pgmajfault"], 7);
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1000 10 2 0 0 0 0 0 2000 20 3 0 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(dev),
            vec![NetIf {
                name: "eth0".into(),
                rx_bytes: 1000,
                rx_errors: 2,
                tx_bytes: 2000,
                tx_errors: 3
            }]
        );
    }

    #[test]
    fn cpu_rates_need_two_samples() {
        let mut r = CpuRates::default();
        assert_eq!(r.rate("c", 1_000_000_000, 500), None);
        // 0.5 s of CPU in 1 s = half a core
        assert_eq!(r.rate("c", 2_000_000_000, 500_000_500), Some(500_000_000));
        // a counter going backwards (restart) gives no rate
        assert_eq!(r.rate("c", 3_000_000_000, 10), None);
    }

    #[test]
    fn summary_shape() {
        let now = Utc::now();
        let node = NodeSample {
            time: now,
            boot_time: 1_700_000_000,
            cpu_usage_ns: 5_000,
            meminfo: parse_meminfo("MemTotal: 1000 kB\nMemFree: 400 kB\nInactive(file): 100 kB\n"),
            fs: Some(FsStats {
                capacity: 100,
                available: 40,
                used: 60,
                inodes: 10,
                inodes_free: 4,
            }),
            ..Default::default()
        };
        let labels = |ns: &str, n: &str, u: &str| {
            HashMap::from([
                (POD_NAMESPACE_LABEL.to_string(), ns.to_string()),
                (POD_NAME_LABEL.to_string(), n.to_string()),
                (POD_UID_LABEL.to_string(), u.to_string()),
            ])
        };
        let sbs = vec![pb::PodSandbox {
            id: "s1".into(),
            labels: labels("default", "web", "u1"),
            state: pb::PodSandboxState::SandboxReady as i32,
            created_at: 1,
            ..Default::default()
        }];
        let cs = vec![pb::Container {
            id: "c1".into(),
            pod_sandbox_id: "s1".into(),
            labels: HashMap::from([(CONTAINER_NAME_LABEL.to_string(), "app".to_string())]),
            state: pb::ContainerState::ContainerRunning as i32,
            created_at: 2,
            ..Default::default()
        }];
        let pods = group(&sbs, &cs);
        let stat = |usage: u64, t: i64| pb::ContainerStats {
            attributes: Some(pb::ContainerAttributes {
                id: "c1".into(),
                ..Default::default()
            }),
            cpu: Some(pb::CpuUsage {
                timestamp: t,
                usage_core_nano_seconds: Some(pb::UInt64Value { value: usage }),
                usage_nano_cores: None,
            }),
            memory: Some(pb::MemoryUsage {
                timestamp: t,
                working_set_bytes: Some(pb::UInt64Value { value: 4096 }),
                ..Default::default()
            }),
            writable_layer: Some(pb::FilesystemUsage {
                timestamp: t,
                used_bytes: Some(pb::UInt64Value { value: 12 }),
                ..Default::default()
            }),
            swap: None,
        };
        let mut rates = CpuRates::default();
        let first = [stat(1_000, 1_000_000_000)];
        let s1 = summary(
            &Inputs {
                node_name: "n1",
                node: &node,
                image_fs: Some(json!({"usedBytes": 7})),
                container_fs: node.fs,
                pods: &pods,
                container_stats: &first,
                sandbox_stats: &[],
            },
            &mut rates,
        );
        assert_eq!(s1["node"]["nodeName"], "n1");
        assert_eq!(s1["node"]["memory"]["usageBytes"], 600 * 1024);
        assert_eq!(s1["node"]["memory"]["workingSetBytes"], 500 * 1024);
        assert_eq!(s1["node"]["memory"]["availableBytes"], 500 * 1024);
        assert_eq!(s1["node"]["fs"]["inodesUsed"], 6);
        assert_eq!(s1["node"]["runtime"]["imageFs"]["usedBytes"], 7);
        let pod = &s1["pods"][0];
        assert_eq!(
            pod["podRef"],
            json!({"name": "web", "namespace": "default", "uid": "u1"})
        );
        let c = &pod["containers"][0];
        assert_eq!(c["name"], "app");
        assert_eq!(c["memory"]["workingSetBytes"], 4096);
        assert_eq!(c["rootfs"]["usedBytes"], 12);
        assert_eq!(c["rootfs"]["capacityBytes"], 100);
        assert!(
            c["cpu"].get("usageNanoCores").is_none(),
            "one sample has no rate"
        );
        assert_eq!(pod["memory"]["workingSetBytes"], 4096);
        assert_eq!(pod["ephemeral-storage"]["usedBytes"], 12);
        let second = [stat(1_000 + 250_000_000, 2_000_000_000)];
        let s2 = summary(
            &Inputs {
                node_name: "n1",
                node: &node,
                image_fs: None,
                container_fs: None,
                pods: &pods,
                container_stats: &second,
                sandbox_stats: &[],
            },
            &mut rates,
        );
        assert_eq!(
            s2["pods"][0]["containers"][0]["cpu"]["usageNanoCores"],
            250_000_000
        );
        assert_eq!(s2["pods"][0]["cpu"]["usageNanoCores"], 250_000_000);
    }
}
