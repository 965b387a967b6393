//! Integration tests (root): the proxy's rules applied with the real nft inside a network
//! namespace playing the node, with "pods" (netns + veth on a bridge, busybox httpd) and an
//! outside client; connectivity, spreading, rejects, hairpin, affinity, node ports, Local
//! policy, incremental updates, replacement without a gap and cleanup.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use proxy::model::{Endpoint, Protocol, ServicePort};
use proxy::rules::RuleConfig;
use proxy::{Proxier, SyncKind};

mod support;

use support::{is_root, must, sh, Namespaces, NsConntrack, NsNft};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A node netns with a bridge (10.200.0.1/24), pods on it and an outside client reaching the
/// node at 192.168.77.1 from 192.168.77.2. Everything is removed on drop.
struct Env {
    prefix: String,
    children: Vec<Child>,
    /// Dropped after the children are killed.
    namespaces: Namespaces,
    dir: std::path::PathBuf,
}

const NODE_IP: &str = "192.168.77.1";

impl Env {
    fn new() -> Env {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("oxp{}x{n}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{prefix}-www"));
        let mut env = Env {
            prefix: prefix.clone(),
            namespaces: Namespaces::default(),
            children: vec![],
            dir,
        };
        let node = env.namespaces.add(&env.ns("node"));
        let x = |args: &str| {
            let mut v = vec!["ip", "netns", "exec", node.as_str()];
            v.extend(args.split(' '));
            must(&v);
        };
        x("ip link set lo up");
        x("ip link add br0 type bridge");
        x("ip addr add 10.200.0.1/24 dev br0");
        x("ip link set br0 up");
        x("sysctl -qw net.ipv4.ip_forward=1");
        // bridged replies of DNATed pod-to-pod flows must pass conntrack to be un-NATed
        x("sysctl -qw net.bridge.bridge-nf-call-iptables=1");
        // the outside client
        let ext = env.namespaces.add(&env.ns("ext"));
        must(&[
            "ip",
            "link",
            "add",
            &format!("{prefix}e"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("{prefix}f"),
        ]);
        must(&[
            "ip",
            "link",
            "set",
            &format!("{prefix}e"),
            "netns",
            &node,
            "name",
            "ext0",
        ]);
        must(&[
            "ip",
            "link",
            "set",
            &format!("{prefix}f"),
            "netns",
            &ext,
            "name",
            "eth0",
        ]);
        x(&format!("ip addr add {NODE_IP}/24 dev ext0"));
        x("ip link set ext0 up");
        // a node has a default route: service IPs are routed there before the DNAT
        x("ip route add default via 192.168.77.2");
        let y = |args: &str| {
            let mut v = vec!["ip", "netns", "exec", ext.as_str()];
            v.extend(args.split(' '));
            must(&v);
        };
        y("ip link set lo up");
        y("ip addr add 192.168.77.2/24 dev eth0");
        y("ip link set eth0 up");
        y(&format!("ip route add default via {NODE_IP}"));
        // the httpd's CGI answers "<pod> <client address>"
        std::fs::create_dir_all(env.dir.join("cgi-bin")).unwrap();
        let cgi = env.dir.join("cgi-bin/id");
        std::fs::write(
            &cgi,
            "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$POD $REMOTE_ADDR\"\n",
        )
        .unwrap();
        must(&["chmod", "755", cgi.to_str().unwrap()]);
        env
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn node(&self) -> String {
        self.ns("node")
    }

    /// A pod netns `name` with address 10.200.0.<last> running httpd on 8080.
    fn pod(&mut self, name: &str, last: u8) {
        let ns = self.namespaces.add(&self.ns(name));
        // interface names have at most 15 bytes
        let host_if = format!("{}a{last}", self.prefix);
        let pod_if = format!("{}b{last}", self.prefix);
        must(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &pod_if,
        ]);
        must(&["ip", "link", "set", &pod_if, "netns", &ns, "name", "eth0"]);
        must(&[
            "ip",
            "link",
            "set",
            &host_if,
            "netns",
            &self.node(),
            "name",
            name,
        ]);
        let node = self.node();
        for args in [
            format!("ip link set {name} master br0"),
            // as the CNI bridge plugin with hairpinMode (the runtime's default): a pod's
            // packet DNATed back to itself leaves through the port it came in
            format!("ip link set {name} type bridge_slave hairpin on"),
            format!("ip link set {name} up"),
        ] {
            let mut v = vec!["ip", "netns", "exec", node.as_str()];
            v.extend(args.split(' '));
            must(&v);
        }
        for args in [
            "ip link set lo up".to_string(),
            format!("ip addr add 10.200.0.{last}/24 dev eth0"),
            "ip link set eth0 up".to_string(),
            "ip route add default via 10.200.0.1".to_string(),
        ] {
            let mut v = vec!["ip", "netns", "exec", ns.as_str()];
            v.extend(args.split(' '));
            must(&v);
        }
        let child = Command::new("ip")
            .args([
                "netns", "exec", &ns, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(&self.dir)
            .env("POD", name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start httpd");
        self.children.push(child);
        // wait until it listens
        for _ in 0..100 {
            if self.get_in(name, &format!("10.200.0.{last}:8080")).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("httpd in {name} did not start");
    }

    /// GET /cgi-bin/id from netns `from` (a pod name, "node" or "ext"): "<pod> <client ip>".
    fn get_in(&self, from: &str, addr: &str) -> Result<String, String> {
        let out = sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns(from),
            "timeout",
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{addr}/cgi-bin/id"),
        ]);
        if out.status.success() {
            // httpd's REMOTE_ADDR comes as [a.b.c.d]
            Ok(String::from_utf8_lossy(&out.stdout)
                .trim()
                .replace(['[', ']'], "")
                .replace("::ffff:", ""))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn get(&self, from: &str, addr: &str) -> String {
        self.get_in(from, addr)
            .unwrap_or_else(|e| panic!("GET {addr} from {from}: {e}"))
    }

    /// The pods answering `n` requests.
    fn backends(&self, from: &str, addr: &str, n: usize) -> std::collections::BTreeSet<String> {
        (0..n)
            .map(|_| self.get(from, addr).split(' ').next().unwrap().to_string())
            .collect()
    }

    fn proxier(&self) -> Proxier {
        Proxier::new(
            "oxkube-proxy",
            Box::new(NsNft(self.node())),
            Box::new(NsConntrack(self.node())),
        )
    }

    /// `nft list <what...>` in the node's netns, for an object of the proxy's table.
    fn nft_in_node(&self, what: &[&str]) -> std::process::Output {
        let node = self.node();
        let mut args = vec!["ip", "netns", "exec", &node, "nft", "list"];
        args.extend_from_slice(what);
        sh(&args)
    }

    /// `nft list set` of the proxy's table.
    fn nft_set(&self, set: &str) -> String {
        let out = self.nft_in_node(&["set", "ip", "oxkube-proxy", set]);
        assert!(out.status.success(), "list set {set}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft_list(&self) -> Option<String> {
        let out = self.nft_in_node(&["table", "ip", "oxkube-proxy"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // then the namespaces go (with their veths and peers)
    }
}

fn ep(last: u8, local: bool) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 200, 0, last),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

fn svc(name: &str, ip_last: u8, eps: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: String::new(),
        protocol: Protocol::Tcp,
        port: 80,
        cluster_ips: vec![Ipv4Addr::new(10, 43, 7, ip_last)],
        node_port: None,
        external_ips: vec![],
        affinity_timeout: None,
        internal_local: false,
        external_local: false,
        endpoints: eps,
    }
}

fn cfg() -> RuleConfig {
    RuleConfig {
        table: "oxkube-proxy".into(),
        local_cidr: Some("10.200.0.0/24".into()),
        masquerade_all: false,
        node_ips: vec![NODE_IP.parse().unwrap()],
    }
}

#[test]
fn services_through_real_nftables() {
    assert!(is_root(), "these tests need root");
    let mut env = Env::new();
    for (name, last) in [("p1", 11), ("p2", 12), ("p3", 13), ("client", 20)] {
        env.pod(name, last);
    }
    let mut web = svc("web", 10, vec![ep(11, true), ep(12, true), ep(13, true)]);
    web.node_port = Some(30080);
    web.external_ips = vec![Ipv4Addr::new(192, 168, 77, 100)];
    let only_p1 = svc("solo", 11, vec![ep(11, true)]);
    let empty = svc("empty", 12, vec![]);
    let mut sticky = svc("sticky", 13, vec![ep(11, true), ep(12, true), ep(13, true)]);
    sticky.affinity_timeout = Some(60);
    // Local policy: p1 is on this node, p2 and p3 are "on another node"
    let mut local = svc(
        "local",
        14,
        vec![ep(11, true), ep(12, false), ep(13, false)],
    );
    local.node_port = Some(30081);
    local.external_local = true;
    let mut ports = vec![web.clone(), only_p1, empty, sticky, local];
    let mut p = env.proxier();
    assert_eq!(
        p.sync(&cfg(), ports.clone(), false).unwrap(),
        SyncKind::Full
    );

    // spread over all ready endpoints, from a pod and from the node; pod source kept
    let all: std::collections::BTreeSet<String> = ["p1", "p2", "p3"].map(String::from).into();
    assert_eq!(env.backends("client", "10.43.7.10:80", 40), all);
    assert_eq!(env.backends("node", "10.43.7.10:80", 40), all);
    let got = env.get("client", "10.43.7.10:80");
    assert!(got.ends_with(" 10.200.0.20"), "{got}");

    // hairpin: p1 reaches itself through its service (masqueraded to the bridge address)
    assert_eq!(env.get("p1", "10.43.7.11:80"), "p1 10.200.0.1");

    // no endpoints: rejected at once (refused, not a timeout)
    for from in ["client", "node"] {
        let err = env.get_in(from, "10.43.7.12:80").unwrap_err();
        assert!(err.contains("refused"), "from {from}: {err}");
    }

    // session affinity: one client, one backend
    assert_eq!(env.backends("client", "10.43.7.13:80", 15).len(), 1);
    assert_eq!(env.backends("node", "10.43.7.13:80", 15).len(), 1);
    // a periodic full resync refills the table in place: the clients stay in the affinity
    // sets and keep their backends
    let sticky_backend = env.backends("client", "10.43.7.13:80", 1);
    // nothing changed, neither the services nor any nf_tables state: skipped
    assert_eq!(
        p.sync(&cfg(), ports.clone(), true).unwrap(),
        SyncKind::Unchanged
    );
    // rules changed behind the proxy's back are put right
    must(&[
        "ip",
        "netns",
        "exec",
        &env.node(),
        "nft",
        "flush",
        "chain",
        "ip",
        "oxkube-proxy",
        "services",
    ]);
    assert_eq!(p.sync(&cfg(), ports.clone(), true).unwrap(), SyncKind::Full);
    assert_eq!(env.backends("client", "10.43.7.10:80", 40), all);
    let remembered = (11..=13)
        .filter(|last| {
            env.nft_set(&format!("aff-default/sticky/tcp/80__10.200.0.{last}/8080"))
                .contains("10.200.0.20")
        })
        .count();
    assert_eq!(
        remembered, 1,
        "the client is in one affinity set after the resync"
    );
    assert_eq!(env.backends("client", "10.43.7.13:80", 15), sticky_backend);

    // node port and external IP from outside: spread, masqueraded
    assert_eq!(env.backends("ext", &format!("{NODE_IP}:30080"), 40), all);
    let got = env.get("ext", &format!("{NODE_IP}:30080"));
    assert!(got.ends_with(" 10.200.0.1"), "{got}");
    must(&[
        "ip",
        "netns",
        "exec",
        &env.ns("ext"),
        "ip",
        "route",
        "add",
        "192.168.77.100",
        "via",
        NODE_IP,
    ]);
    assert_eq!(env.backends("ext", "192.168.77.100:80", 20), all);

    // externalTrafficPolicy Local: only the local endpoint, client address preserved
    for _ in 0..10 {
        assert_eq!(
            env.get("ext", &format!("{NODE_IP}:30081")),
            "p1 192.168.77.2"
        );
    }
    // ... while pods still reach every endpoint through the cluster IP
    assert_eq!(env.backends("client", "10.43.7.14:80", 40), all);

    // incremental: one endpoint of web gone, only web's chains rewritten
    ports[0]
        .endpoints
        .retain(|e| e.ip != Ipv4Addr::new(10, 200, 0, 13));
    assert_eq!(
        p.sync(&cfg(), ports.clone(), false).unwrap(),
        SyncKind::Partial
    );
    let two: std::collections::BTreeSet<String> = ["p1", "p2"].map(String::from).into();
    assert_eq!(env.backends("client", "10.43.7.10:80", 30), two);
    // the only endpoint not ready: rejected
    ports[1].endpoints[0].ready = false;
    assert_eq!(
        p.sync(&cfg(), ports.clone(), false).unwrap(),
        SyncKind::Partial
    );
    assert!(env
        .get_in("client", "10.43.7.11:80")
        .unwrap_err()
        .contains("refused"));
    // terminating but serving: used again when nothing else is there
    ports[1].endpoints[0].terminating = true;
    p.sync(&cfg(), ports.clone(), false).unwrap();
    assert_eq!(env.get("client", "10.43.7.11:80"), "p1 10.200.0.20");

    // a restarted proxy replaces the table in one transaction: no request fails meanwhile
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU32::new(0));
    let requests = Arc::new(AtomicU32::new(0));
    let client_ns = env.ns("client");
    let load = {
        let (stop, failures, requests) = (stop.clone(), failures.clone(), requests.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let out = sh(&[
                    "ip",
                    "netns",
                    "exec",
                    &client_ns,
                    "timeout",
                    "5",
                    "busybox",
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    "http://10.43.7.10:80/cgi-bin/id",
                ]);
                requests.fetch_add(1, Ordering::SeqCst);
                if !out.status.success() {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    for _ in 0..30 {
        let mut fresh = env.proxier();
        assert_eq!(
            fresh.sync(&cfg(), ports.clone(), false).unwrap(),
            SyncKind::Full
        );
    }
    while requests.load(Ordering::SeqCst) < 20 {
        let mut fresh = env.proxier();
        fresh.sync(&cfg(), ports.clone(), false).unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed while the table was replaced"
    );

    // an invalid transaction leaves the old rules in place and forces a full sync next
    let mut broken = ports.clone();
    broken[0].namespace = "bad name with spaces".into();
    assert!(p.sync(&cfg(), broken, false).is_err());
    assert_eq!(env.backends("client", "10.43.7.10:80", 10), two);
    assert_eq!(
        p.sync(&cfg(), ports.clone(), false).unwrap(),
        SyncKind::Full
    );

    // cleanup removes the table (and is fine when it is already gone)
    assert!(env.nft_list().is_some());
    proxy::cleanup(&NsNft(env.node()), "oxkube-proxy").unwrap();
    assert!(env.nft_list().is_none());
    proxy::cleanup(&NsNft(env.node()), "oxkube-proxy").unwrap();
}
