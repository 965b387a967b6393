//! Container resource usage and limits from cgroups, on cgroup v1, v2 and hybrid hosts (v1
//! controllers under `<root>/<controller>`, v2 under `<root>/unified` or `<root>` itself).

use std::fs;
use std::path::{Path, PathBuf};

/// Usage of one cgroup; `None` where the cgroup files are not there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_usage_ns: Option<u64>,
    pub memory_usage: Option<u64>,
    pub working_set: Option<u64>,
    pub rss: Option<u64>,
}

/// A key's value in a `memory.stat`/`cpu.stat` style file.
pub fn stat_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key)
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Where the cgroup of `path` is, per controller.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub root: PathBuf,
    pub path: String,
}

impl Cgroup {
    pub fn new(root: impl Into<PathBuf>, path: &str) -> Self {
        Cgroup {
            root: root.into(),
            path: path.trim_start_matches('/').to_string(),
        }
    }

    fn v1(&self, controller: &str) -> Option<PathBuf> {
        let p = self.root.join(controller).join(&self.path);
        p.is_dir().then_some(p)
    }

    fn v2(&self) -> Option<PathBuf> {
        for base in [self.root.join("unified"), self.root.clone()] {
            let p = base.join(&self.path);
            if p.join("cgroup.controllers").exists() || p.join("cpu.stat").exists() {
                return Some(p);
            }
        }
        None
    }

    /// Reads CPU and memory usage. Working set = usage - inactive file pages (as cAdvisor).
    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        if let Some(p) = self.v1("cpuacct") {
            u.cpu_usage_ns = read_u64(&p.join("cpuacct.usage"));
        }
        if let Some(p) = self.v1("memory") {
            u.memory_usage = read_u64(&p.join("memory.usage_in_bytes"));
            let stat = fs::read_to_string(p.join("memory.stat")).unwrap_or_default();
            let inactive = stat_value(&stat, "total_inactive_file").unwrap_or(0);
            u.working_set = u.memory_usage.map(|m| m.saturating_sub(inactive));
            u.rss = stat_value(&stat, "total_rss");
        }
        if let Some(p) = self.v2() {
            if u.cpu_usage_ns.is_none() {
                let stat = fs::read_to_string(p.join("cpu.stat")).unwrap_or_default();
                u.cpu_usage_ns = stat_value(&stat, "usage_usec").map(|us| us * 1000);
            }
            if u.memory_usage.is_none() {
                u.memory_usage = read_u64(&p.join("memory.current"));
                let stat = fs::read_to_string(p.join("memory.stat")).unwrap_or_default();
                let inactive = stat_value(&stat, "inactive_file").unwrap_or(0);
                u.working_set = u.memory_usage.map(|m| m.saturating_sub(inactive));
                u.rss = stat_value(&stat, "anon");
            }
        }
        u
    }

    /// Number of processes in the cgroup (`pids.current`), if the pids controller is there.
    pub fn process_count(&self) -> Option<u64> {
        if let Some(p) = self.v1("pids") {
            return read_u64(&p.join("pids.current"));
        }
        self.v2().and_then(|p| read_u64(&p.join("pids.current")))
    }

    /// Applies new limits (zero = leave as is). Returns the files written.
    pub fn update(&self, r: &super::spec::Resources) -> std::io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        let mut write = |p: PathBuf, v: String| -> std::io::Result<()> {
            fs::write(&p, v)?;
            written.push(p);
            Ok(())
        };
        let v1_cpu = self.v1("cpu");
        let v1_mem = self.v1("memory");
        let v1_cpuset = self.v1("cpuset");
        let v2 = if v1_cpu.is_none() && v1_mem.is_none() {
            self.v2()
        } else {
            None
        };
        if let Some(p) = &v1_cpu {
            if r.cpu_shares > 0 {
                write(p.join("cpu.shares"), r.cpu_shares.to_string())?;
            }
            if r.cpu_period > 0 {
                write(p.join("cpu.cfs_period_us"), r.cpu_period.to_string())?;
            }
            if r.cpu_quota != 0 {
                write(p.join("cpu.cfs_quota_us"), r.cpu_quota.to_string())?;
            }
        }
        if let Some(p) = &v1_mem {
            if r.memory_limit > 0 {
                write(p.join("memory.limit_in_bytes"), r.memory_limit.to_string())?;
            }
        }
        if let Some(p) = &v1_cpuset {
            if !r.cpuset_cpus.is_empty() {
                write(p.join("cpuset.cpus"), r.cpuset_cpus.clone())?;
            }
            if !r.cpuset_mems.is_empty() {
                write(p.join("cpuset.mems"), r.cpuset_mems.clone())?;
            }
        }
        if let Some(p) = &v2 {
            if r.cpu_shares > 0 {
                write(
                    p.join("cpu.weight"),
                    shares_to_weight(r.cpu_shares).to_string(),
                )?;
            }
            if r.cpu_quota != 0 || r.cpu_period > 0 {
                let quota = if r.cpu_quota > 0 {
                    r.cpu_quota.to_string()
                } else {
                    "max".into()
                };
                let period = if r.cpu_period > 0 {
                    r.cpu_period
                } else {
                    100_000
                };
                write(p.join("cpu.max"), format!("{quota} {period}"))?;
            }
            if r.memory_limit > 0 {
                write(p.join("memory.max"), r.memory_limit.to_string())?;
            }
            if !r.cpuset_cpus.is_empty() {
                write(p.join("cpuset.cpus"), r.cpuset_cpus.clone())?;
            }
        }
        Ok(written)
    }
}

/// cgroup v1 cpu.shares [2, 262144] to v2 cpu.weight [1, 10000] (the runc/kubelet formula).
pub fn shares_to_weight(shares: i64) -> u64 {
    let s = shares.clamp(2, 262_144) as u64;
    1 + ((s - 2) * 9999) / 262_142
}

/// Bytes and inodes under `dir` (not following symlinks, not crossing into other filesystems).
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = fs::symlink_metadata(dir) else {
        return (0, 0);
    };
    let dev = top.dev();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() && m.dev() == dev {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_values() {
        let s = "cache 10\ntotal_inactive_file 4096\ntotal_rss 8192\n";
        assert_eq!(stat_value(s, "total_inactive_file"), Some(4096));
        assert_eq!(stat_value(s, "total_rss"), Some(8192));
        assert_eq!(stat_value(s, "missing"), None);
        assert_eq!(
            stat_value("usage_usec 12\nuser_usec 3", "usage_usec"),
            Some(12)
        );
    }

    #[test]
    fn shares_to_weight_table() {
        for (shares, weight) in [
            (2, 1),
            (1024, 39),
            (262_144, 10_000),
            (0, 1),
            (1_000_000, 10_000),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "{shares}");
        }
    }

    fn fake_v1(root: &Path, path: &str) {
        let cpu = root.join("cpuacct").join(path);
        fs::create_dir_all(&cpu).unwrap();
        fs::write(cpu.join("cpuacct.usage"), "123456\n").unwrap();
        let mem = root.join("memory").join(path);
        fs::create_dir_all(&mem).unwrap();
        fs::write(mem.join("memory.usage_in_bytes"), "10000\n").unwrap();
        fs::write(
            mem.join("memory.stat"),
            "total_inactive_file 3000\ntotal_rss 5000\n",
        )
        .unwrap();
        fs::create_dir_all(root.join("cpu").join(path)).unwrap();
    }

    #[test]
    fn v1_usage_and_update() {
        let root = tempfile::tempdir().unwrap();
        fake_v1(root.path(), "oxkube/abc");
        let cg = Cgroup::new(root.path(), "/oxkube/abc");
        assert_eq!(
            cg.usage(),
            Usage {
                cpu_usage_ns: Some(123456),
                memory_usage: Some(10000),
                working_set: Some(7000),
                rss: Some(5000),
            }
        );
        let written = cg
            .update(&super::super::spec::Resources {
                cpu_shares: 512,
                memory_limit: 1 << 20,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(
            fs::read_to_string(root.path().join("memory/oxkube/abc/memory.limit_in_bytes"))
                .unwrap(),
            "1048576"
        );
        assert_eq!(
            fs::read_to_string(root.path().join("cpu/oxkube/abc/cpu.shares")).unwrap(),
            "512"
        );
    }

    #[test]
    fn v2_usage_and_update() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("unified/oxkube/abc");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("cgroup.controllers"), "cpu memory").unwrap();
        fs::write(p.join("cpu.stat"), "usage_usec 7\n").unwrap();
        fs::write(p.join("memory.current"), "900\n").unwrap();
        fs::write(p.join("memory.stat"), "anon 500\ninactive_file 100\n").unwrap();
        let cg = Cgroup::new(root.path(), "oxkube/abc");
        let u = cg.usage();
        assert_eq!(u.cpu_usage_ns, Some(7000));
        assert_eq!(u.working_set, Some(800));
        assert_eq!(u.rss, Some(500));
        cg.update(&super::super::spec::Resources {
            cpu_quota: 50_000,
            memory_limit: 4096,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            fs::read_to_string(p.join("cpu.max")).unwrap(),
            "50000 100000"
        );
        assert_eq!(fs::read_to_string(p.join("memory.max")).unwrap(), "4096");
    }

    #[test]
    fn missing_cgroup_reads_as_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Cgroup::new(root.path(), "nope").usage(), Usage::default());
    }
}
