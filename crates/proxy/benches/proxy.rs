//! Proxy benchmarks (root; not run by tests): full resync and incremental sync of 1,000
//! services / 10,000 endpoints against the real nft in a scratch network namespace, and the
//! latency a request through a cluster IP adds over going straight to the pod IP.
//!
//! Run: `cargo bench -p proxy --bench proxy`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use proxy::model::{Endpoint, Protocol, ServicePort};
use proxy::rules::{RuleConfig, Ruleset};
use proxy::{Proxier, SyncKind};

#[path = "../tests/support/mod.rs"]
mod support;

use proxy::nft::Nft;
use support::{enter, must as run, must_in, Namespaces, NoConntrack, NsNft};

fn ports(services: usize, per_service: usize) -> Vec<ServicePort> {
    (0..services)
        .map(|i| ServicePort {
            namespace: format!("ns{}", i % 20),
            name: format!("svc{i}"),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ips: vec![Ipv4Addr::new(10, 43, (i / 250) as u8, (i % 250) as u8 + 1)],
            node_port: (i % 10 == 0).then_some(30000 + i as u16),
            external_ips: vec![],
            affinity_timeout: (i % 7 == 0).then_some(300),
            internal_local: false,
            external_local: false,
            endpoints: (0..per_service)
                .map(|j| {
                    let n = i * per_service + j;
                    Endpoint {
                        ip: Ipv4Addr::new(10, 42, (n / 250) as u8, (n % 250) as u8 + 1),
                        port: 8080,
                        ready: true,
                        serving: true,
                        terminating: false,
                        local: j % 3 == 0,
                    }
                })
                .collect(),
        })
        .collect()
}

/// CPU time (user + system) of this thread and of the waited-for children (nft) so far: the
/// figure that does not depend on how loaded the machine is.
fn cpu_now() -> Duration {
    // SAFETY: plain syscalls filling caller-owned structs
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32) + tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn sync_bench(prefix: &str) {
    let mut guard = Namespaces::default();
    let ns = guard.add(&format!("{prefix}-sync"));
    let cfg = RuleConfig {
        table: "bench".into(),
        local_cidr: Some("10.42.0.0/16".into()),
        masquerade_all: false,
        node_ips: vec![Ipv4Addr::new(192, 168, 1, 2)],
    };
    let mut all = ports(1000, 10);
    let t = Instant::now();
    let rs = Ruleset::build(&cfg, &all);
    let build = t.elapsed();
    let t = Instant::now();
    let text = rs.render_full("bench");
    let render = t.elapsed();
    println!(
        "ruleset for 1000 services / 10000 endpoints: build {}, render {} ({} chains, {} KiB)",
        ms(build),
        ms(render),
        rs.chains().len() + 12,
        text.len() / 1024
    );
    let (mut full, mut full_cpu) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        // a new proxier knows nothing of the kernel: it replaces the whole table
        let mut p = Proxier::new("bench", Box::new(NsNft(ns.clone())), Box::new(NoConntrack));
        let (t, c) = (Instant::now(), cpu_now());
        assert_eq!(p.sync(&cfg, all.clone(), true).unwrap(), SyncKind::Full);
        full.push(t.elapsed());
        full_cpu.push(cpu_now() - c);
    }
    println!(
        "full resync, table replaced (first sync, restart; build + render + nft -f): wall median {}, max {}; cpu median {}",
        ms(pct(&mut full.clone(), 0.5)),
        ms(pct(&mut full, 1.0)),
        ms(pct(&mut full_cpu, 0.5))
    );
    let mut p = Proxier::new("bench", Box::new(NsNft(ns.clone())), Box::new(NoConntrack));
    p.sync(&cfg, all.clone(), true).unwrap();
    for (label, bump) in [
        ("nothing changed", false),
        ("after another program's nft commit in the namespace", true),
    ] {
        let (mut periodic, mut periodic_cpu, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            if bump {
                NsNft(ns.clone())
                    .apply("add table ip other\ndelete table ip other\n")
                    .unwrap();
            }
            // the periodic resync of the table this proxier programmed
            let (t, c) = (Instant::now(), cpu_now());
            kinds.push(p.sync(&cfg, all.clone(), true).unwrap());
            periodic.push(t.elapsed());
            periodic_cpu.push(cpu_now() - c);
        }
        println!(
            "periodic full resync, {label}: wall median {}, max {}; cpu median {} ({:?})",
            ms(pct(&mut periodic.clone(), 0.5)),
            ms(pct(&mut periodic, 1.0)),
            ms(pct(&mut periodic_cpu, 0.5)),
            kinds[0]
        );
    }
    // the proxier's own part of an incremental sync: the new ruleset (unchanged services
    // reuse their rules) and the transaction text
    let mut gen = Vec::new();
    let mut prev = Ruleset::build(&cfg, &all);
    let mut ports = all.clone();
    for round in 0..200 {
        let i = (round * 37) % ports.len();
        ports[i].endpoints[round % 10].ready = !ports[i].endpoints[round % 10].ready;
        let t = Instant::now();
        let next = Ruleset::build_from(&cfg, &ports, Some(&prev));
        let diff = next.render_diff(&prev, "bench").unwrap();
        gen.push(t.elapsed());
        assert!(!diff.is_empty());
        prev = next;
    }
    println!(
        "incremental ruleset + transaction text alone (200 rounds): median {}, p99 {}",
        ms(pct(&mut gen.clone(), 0.5)),
        ms(pct(&mut gen, 0.99))
    );
    let (mut inc, mut inc_cpu) = (Vec::new(), Vec::new());
    for round in 0..200 {
        let i = (round * 37) % all.len();
        let j = round % 10;
        all[i].endpoints[j].ready = !all[i].endpoints[j].ready;
        let (t, c) = (Instant::now(), cpu_now());
        assert_eq!(p.sync(&cfg, all.clone(), false).unwrap(), SyncKind::Partial);
        inc.push(t.elapsed());
        inc_cpu.push(cpu_now() - c);
    }
    println!(
        "incremental sync after one endpoint change (200 rounds): wall median {}, p99 {}, max {}; cpu median {}, p99 {}",
        ms(pct(&mut inc.clone(), 0.5)),
        ms(pct(&mut inc.clone(), 0.99)),
        ms(pct(&mut inc, 1.0)),
        ms(pct(&mut inc_cpu.clone(), 0.5)),
        ms(pct(&mut inc_cpu, 0.99))
    );
}

fn latency_bench(prefix: &str) {
    let mut guard = Namespaces::default();
    let node = guard.add(&format!("{prefix}-node"));
    let pod = guard.add(&format!("{prefix}-pod"));
    run(&[
        "ip",
        "link",
        "add",
        &format!("{prefix}v"),
        "type",
        "veth",
        "peer",
        "name",
        &format!("{prefix}w"),
    ]);
    run(&[
        "ip",
        "link",
        "set",
        &format!("{prefix}v"),
        "netns",
        &node,
        "name",
        "veth0",
    ]);
    run(&[
        "ip",
        "link",
        "set",
        &format!("{prefix}w"),
        "netns",
        &pod,
        "name",
        "eth0",
    ]);
    for c in [
        "ip link set lo up",
        "ip addr add 10.201.0.1/24 dev veth0",
        "ip link set veth0 up",
        // service IPs need a route before the DNAT picks the pod
        "ip route add default via 10.201.0.2",
    ] {
        must_in(&node, c);
    }
    for c in [
        "ip link set lo up",
        "ip addr add 10.201.0.2/24 dev eth0",
        "ip link set eth0 up",
        "ip route add default via 10.201.0.1",
    ] {
        must_in(&pod, c);
    }
    let cfg = RuleConfig {
        table: "bench".into(),
        local_cidr: Some("10.201.0.0/24".into()),
        masquerade_all: false,
        node_ips: vec![],
    };
    // the target among 1,000 other services, as in a busy cluster
    let mut all = ports(999, 10);
    all.push(ServicePort {
        namespace: "default".into(),
        name: "echo".into(),
        port_name: String::new(),
        protocol: Protocol::Tcp,
        port: 80,
        cluster_ips: vec![Ipv4Addr::new(10, 43, 250, 1)],
        node_port: None,
        external_ips: vec![],
        affinity_timeout: None,
        internal_local: false,
        external_local: false,
        endpoints: vec![Endpoint {
            ip: Ipv4Addr::new(10, 201, 0, 2),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            local: true,
        }],
    });
    let mut p = Proxier::new(
        "bench",
        Box::new(NsNft(node.clone())),
        Box::new(NoConntrack),
    );
    p.sync(&cfg, all, true).unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let pod2 = pod.clone();
    std::thread::spawn(move || {
        enter(&pod2);
        let l = TcpListener::bind("0.0.0.0:8080").unwrap();
        tx.send(()).unwrap();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut b = [0u8; 64];
            while let Ok(n) = s.read(&mut b) {
                if n == 0 || s.write_all(&b[..n]).is_err() {
                    break;
                }
            }
        }
    });
    rx.recv().unwrap();
    let node2 = node.clone();
    let result = std::thread::spawn(move || {
        enter(&node2);
        let measure = |addr: SocketAddr, n: usize| -> (Duration, Duration) {
            let mut conn = Vec::with_capacity(n);
            let mut rtt = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let mut s =
                    TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
                s.set_nodelay(true).unwrap();
                let mut b = [0u8; 1];
                s.write_all(b"x").unwrap();
                s.read_exact(&mut b).unwrap();
                conn.push(t.elapsed());
                // an established flow: conntrack only
                let t = Instant::now();
                s.write_all(b"y").unwrap();
                s.read_exact(&mut b).unwrap();
                rtt.push(t.elapsed());
            }
            (pct(&mut conn, 0.5), pct(&mut rtt, 0.5))
        };
        let pod_addr: SocketAddr = "10.201.0.2:8080".parse().unwrap();
        let svc_addr: SocketAddr = "10.43.250.1:80".parse().unwrap();
        // warm up, then interleave rounds so drift hits both alike
        measure(pod_addr, 200);
        measure(svc_addr, 200);
        let (mut pc, mut pr, mut sc, mut sr) = (vec![], vec![], vec![], vec![]);
        for _ in 0..5 {
            let (c, r) = measure(pod_addr, 400);
            pc.push(c);
            pr.push(r);
            let (c, r) = measure(svc_addr, 400);
            sc.push(c);
            sr.push(r);
        }
        (
            pct(&mut pc, 0.5),
            pct(&mut pr, 0.5),
            pct(&mut sc, 0.5),
            pct(&mut sr, 0.5),
        )
    })
    .join()
    .unwrap();
    let (pc, pr, sc, sr) = result;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "new connection + 1-byte echo, median: pod IP {:.1} us, cluster IP {:.1} us, added {:.1} us",
        us(pc),
        us(sc),
        us(sc) - us(pc)
    );
    println!(
        "echo on an established connection, median: pod IP {:.1} us, cluster IP {:.1} us, added {:.1} us",
        us(pr),
        us(sr),
        us(sr) - us(pr)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let prefix = format!("oxkpb{}", std::process::id() % 100_000);
    // OXKUBE_PROXY_BENCH=sync|latency runs one part
    let only = std::env::var("OXKUBE_PROXY_BENCH").unwrap_or_default();
    if only != "latency" {
        sync_bench(&prefix);
    }
    if only != "sync" {
        latency_bench(&prefix);
    }
}
