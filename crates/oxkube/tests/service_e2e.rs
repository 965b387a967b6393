//! Issue 6's integrated end-to-end test of service networking on three nodes (the server's node
//! on the host, two `oxkube agent`s in network namespaces of their own): a Deployment of three
//! web pods spread over the nodes behind a ClusterIP Service and a NodePort Service, requests
//! from a client pod on every node, from the host and from inside every agent's namespace
//! through the cluster IP, the DNS names and the node port of every node spread over all
//! backends; an unready backend leaving the rotation (timed), scaling, session affinity,
//! headless / ExternalName / other-namespace names, pod to pod across nodes, and the proxy's
//! rules surviving an agent restart with traffic flowing throughout. Also: traffic through an
//! ExternalName naming a cluster service, pod hostname/subdomain A records and SRV records of
//! named ports, UDP through a cluster IP across nodes, type LoadBalancer (the nodes' addresses
//! in status, answering on each, spread) and externalTrafficPolicy Local (client address kept,
//! only the endpoint's node answers) vs Cluster (masqueraded) seen by an external client on a
//! LAN of its own. Needs root.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MultiNode, IMAGE};
use serde_json::{json, Value};

const NS: &str = "e2e";

fn condition(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

fn set<S: AsRef<str>>(v: impl IntoIterator<Item = S>) -> BTreeSet<String> {
    v.into_iter().map(|s| s.as_ref().to_string()).collect()
}

/// Waits until every node is Ready without a node.kubernetes.io taint (the spread constraint
/// does not count tainted nodes); returns the node names, the server's first.
fn wait_nodes(mn: &MultiNode) -> Vec<String> {
    let names = mn.node_names();
    mn.wait_for("all nodes Ready and untainted", 90, || {
        let list = mn.get_json(&["get", "nodes"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        names
            .iter()
            .all(|n| {
                items.iter().any(|i| {
                    i["metadata"]["name"] == *n
                        && condition(i, "Ready")
                        && i["spec"]["taints"].as_array().is_none_or(|t| {
                            !t.iter().any(|t| {
                                t["key"]
                                    .as_str()
                                    .is_some_and(|k| k.starts_with("node.kubernetes.io/"))
                            })
                        })
                })
            })
            .then_some(())
    });
    names
}

/// A ready web pod: (name, node, pod IP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Backend {
    name: String,
    node: String,
    ip: String,
}

/// The Deployment's pods that are Ready and not being deleted.
fn ready_backends(mn: &MultiNode) -> Vec<Backend> {
    let list = mn.get_json(&["get", "pods", "-n", NS, "-l", "app=web"]);
    let mut v: Vec<Backend> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && condition(p, "Ready"))
        .filter_map(|p| {
            Some(Backend {
                name: p["metadata"]["name"].as_str()?.to_string(),
                node: p["spec"]["nodeName"].as_str()?.to_string(),
                ip: p["status"]["podIP"].as_str()?.to_string(),
            })
        })
        .collect();
    v.sort();
    v
}

/// The addresses of service `svc`'s EndpointSlices whose endpoint is ready.
fn ready_slice_addresses(mn: &MultiNode, ns: &str, svc: &str) -> BTreeSet<String> {
    let label = format!("kubernetes.io/service-name={svc}");
    let list = mn.get_json(&["get", "endpointslices", "-n", ns, "-l", &label]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

/// Waits for `n` ready backends that are exactly the ready addresses of Service web's slices.
fn wait_backends(mn: &MultiNode, n: usize) -> Vec<Backend> {
    mn.wait_for(&format!("{n} ready web pods in the slices"), 120, || {
        let b = ready_backends(mn);
        (b.len() == n && ready_slice_addresses(mn, NS, "web") == set(b.iter().map(|b| &b.ip)))
            .then_some(b)
    })
}

fn pod_manifest(name: &str, ns: &str, node: &str, command: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", command]}]
        }
    })
}

fn wait_running(mn: &MultiNode, ns: &str, name: &str) {
    mn.wait_for(&format!("pod {ns}/{name} Running"), 90, || {
        let p = mn.get_json(&["get", "pod", "-n", ns, name]);
        (p["status"]["phase"] == "Running").then_some(())
    });
}

/// A shell loop of `n` GETs of `url` with busybox wget; a failed request prints FAILED.
fn wget_loop(wget: &str, url: &str, n: usize) -> String {
    format!("for i in $(seq {n}); do timeout 5 {wget} -q -O - {url} || echo FAILED; done")
}

fn answers(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The bodies of `n` GETs of `url` made inside pod `ns/pod`.
fn from_pod(mn: &MultiNode, ns: &str, pod: &str, url: &str, n: usize) -> Vec<String> {
    let out = mn.server.kubectl_raw(&[
        "exec",
        "-n",
        ns,
        pod,
        "--",
        "sh",
        "-c",
        &wget_loop("wget", url, n),
    ]);
    answers(&out.stdout)
}

/// The bodies of `n` GETs of `url` made in node `i`'s network namespace (0: the host).
fn from_node(mn: &MultiNode, i: usize, url: &str, n: usize) -> Vec<String> {
    let out = mn.in_node(i, "sh", &["-c", &wget_loop("busybox wget", url, n)]);
    answers(&out.stdout)
}

/// One GET of `http://addr/` from the test process (on the host).
fn host_get(addr: &str) -> Result<String, String> {
    let sa = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    let body = body.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
    Ok(body.to_string())
}

/// Asserts that every answer is a backend's name and that together they are exactly `want`.
#[track_caller]
fn assert_spread(what: &str, got: &[String], want: &BTreeSet<String>) {
    assert!(
        got.len() >= 10 && got.iter().all(|g| want.contains(g)),
        "{what}: every request answered by a backend of {want:?}: {got:?}"
    );
    assert_eq!(&set(got), want, "{what}: spread over every backend");
}

/// A/CNAME answers of busybox nslookup run in pod `client`: (addresses, canonical names).
fn nslookup(mn: &MultiNode, client: &str, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = mn
        .server
        .kubectl_raw(&["exec", "-n", NS, client, "--", "nslookup", name]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // the server's own address is printed as `Address: ip:53` and does not parse
    let ips = text
        .lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .map(|a| a.to_string())
        .collect();
    let cnames = text
        .lines()
        .filter_map(|l| l.split_once("canonical name = "))
        .map(|(_, c)| c.trim().trim_end_matches('.').to_string())
        .collect();
    (ips, cnames)
}

/// When each probe request ended and what answered it.
type ProbeLog = Vec<(Instant, Result<String, String>)>;

/// GETs the service from the host in a loop until stopped; records when each backend answered.
struct Prober {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<ProbeLog>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(get: impl Fn() -> Result<String, String> + Send + 'static) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let r = get();
                l.lock().unwrap().push((Instant::now(), r));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Prober {
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<(Instant, Result<String, String>)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Signed milliseconds from `a` to `b`.
fn ms(a: Instant, b: Instant) -> i128 {
    if b >= a {
        (b - a).as_millis() as i128
    } else {
        -((a - b).as_millis() as i128)
    }
}

/// The test image plus perl (the host's binary and the libraries it links: busybox has no UDP
/// server), for a UDP echo server and client made of perl's builtin socket calls only.
fn drop_image_with_perl(dir: &Path) {
    use runtime::testimage::{self, Entry, Layer, TestImage};
    let mut layer = Layer::new();
    let mut files = vec!["/usr/bin/perl".to_string()];
    let ldd = Command::new("ldd").arg("/usr/bin/perl").output().unwrap();
    for l in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux... (0x...)`
        let path = l.split("=>").last().unwrap().split_whitespace().next();
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            files.push(path.to_string());
        }
    }
    let mut dirs = BTreeSet::new();
    for f in &files {
        let mut d = Path::new(f).parent();
        while let Some(p) = d.filter(|p| *p != Path::new("/")) {
            dirs.insert(p.to_string_lossy().trim_start_matches('/').to_string());
            d = p.parent();
        }
    }
    for d in &dirs {
        // (`bin` is the busybox layer's)
        if d != "bin" {
            layer = layer.dir(d);
        }
    }
    for f in &files {
        // the real file behind the symlinks
        let content = std::fs::read(std::fs::canonicalize(f).unwrap()).unwrap();
        layer.entries.push(Entry::File(
            f.trim_start_matches('/').to_string(),
            content,
            0o755,
        ));
    }
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let built = TestImage::busybox(IMAGE).unwrap().with_layer(layer).build();
    testimage::write_oci_archive(&images.join("busybox.tar"), &[&built]).unwrap();
}

/// Serves `/cgi-bin/ip` (`$POD $REMOTE_ADDR`) and `/index.html` (`$POD`) from /www.
const WWW: &str = r#"mkdir -p /www/cgi-bin && echo "$POD" > /www/index.html && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$POD $REMOTE_ADDR"\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip"#;

/// A UDP echo server on port 5353 answering `$POD <datagram>`.
const UDP_ECHO: &str = r#"socket(S, 2, 2, 17) or die "socket: $!"; bind(S, pack("Sna4x8", 2, 5353, "\0\0\0\0")) or die "bind: $!"; while (my $from = recv(S, my $m, 1500, 0)) { send(S, "$ENV{POD} $m", 0, $from) }"#;

/// A UDP client: `$ARGV[1]` datagrams to `$ARGV[0]`:5353, each from a new socket, printing
/// each answer or TIMEOUT.
const UDP_CLIENT: &str = r#"for my $i (1 .. $ARGV[1]) { socket(S, 2, 2, 17) or die "socket: $!"; my $to = pack("Sna4x8", 2, 5353, pack("C4", split(/\./, $ARGV[0]))); send(S, "ping $i\n", 0, $to); my $r = ""; vec($r, fileno(S), 1) = 1; if (select($r, undef, undef, 3)) { recv(S, my $m, 1500, 0); print $m } else { print "TIMEOUT\n" } close(S) }"#;

/// An external client: a network namespace that is no node, on a LAN of its own (a bridge in
/// a namespace of its own, without netfilter rules) with a leg into every node, the host
/// included. Not on the test bridge: that bridge is in the host's namespace with br_netfilter
/// on, so the host's proxy (node 0) would DNAT a LoadBalancer address of another node on the
/// way, as no real switch does.
struct ClientNs {
    netns: String,
    lan: String,
    ip: String,
}

impl ClientNs {
    fn create(mn: &MultiNode) -> ClientNs {
        let tag = &mn.net.tag;
        // 192.168.Z.0/24 is unique to this test cluster on this host; 172.31.Z.0/24 follows
        let z = mn.net.prefix.rsplit('.').next().unwrap();
        let lan_net = format!("172.31.{z}");
        let c = ClientNs {
            netns: format!("oxc{tag}"),
            lan: format!("oxl{tag}"),
            ip: format!("{lan_net}.250"),
        };
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["netns", "add", &c.lan]);
        run(&["netns", "add", &c.netns]);
        run(&["-n", &c.lan, "link", "add", "br0", "type", "bridge"]);
        run(&["-n", &c.lan, "link", "set", "br0", "up"]);
        // (the client, then node i = 0 (the host), 1, 2 ...)
        let mut legs = vec![(c.netns.clone(), c.ip.clone())];
        legs.push((String::new(), format!("{lan_net}.1")));
        for (i, a) in mn.agents.iter().enumerate() {
            legs.push((a.netns.clone(), format!("{lan_net}.{}", i + 2)));
        }
        for (i, (ns, addr)) in legs.iter().enumerate() {
            let port = format!("p{i}");
            let leg = if ns.is_empty() {
                format!("ol{tag}")
            } else {
                "lan0".to_string()
            };
            run(&[
                "-n", &c.lan, "link", "add", &port, "type", "veth", "peer", "name", &leg,
            ]);
            run(&["-n", &c.lan, "link", "set", &port, "master", "br0", "up"]);
            if ns.is_empty() {
                run(&["-n", &c.lan, "link", "set", &leg, "netns", "1"]);
                run(&["addr", "add", &format!("{addr}/24"), "dev", &leg]);
                run(&["link", "set", &leg, "up"]);
            } else {
                run(&["-n", &c.lan, "link", "set", &leg, "netns", ns]);
                run(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", &leg]);
                run(&["-n", ns, "link", "set", &leg, "up"]);
            }
        }
        run(&["-n", &c.netns, "link", "set", "lo", "up"]);
        // the nodes' own addresses are reached over the LAN (each node answers ARP for it)
        run(&[
            "-n",
            &c.netns,
            "route",
            "add",
            &format!("{}.0/24", mn.net.prefix),
            "dev",
            "lan0",
        ]);
        c
    }

    /// The bodies of `n` GETs of `url` (each given `secs`); a failed one is FAILED.
    fn get(&self, url: &str, n: usize, secs: u64) -> Vec<String> {
        let script = format!(
            "for i in $(seq {n}); do timeout {secs} busybox wget -q -O - {url} || echo FAILED; done"
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "sh", "-c", &script])
            .output()
            .unwrap();
        answers(&out.stdout)
    }
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        // (deleting the namespaces deletes the veth pairs, the nodes' legs with them)
        for ns in [&self.netns, &self.lan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `(pod, remote address)` of `/cgi-bin/ip` answers; busybox httpd prints v4-mapped addresses.
fn pod_and_source(answers: &[String]) -> Vec<(String, String)> {
    answers
        .iter()
        .map(|a| {
            let (pod, addr) = a.split_once(' ').unwrap_or((a, ""));
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            (
                pod.to_string(),
                addr.trim_start_matches("::ffff:").to_string(),
            )
        })
        .collect()
}

#[test]
fn services_spread_resolve_and_follow_endpoints_across_nodes() {
    let started = Instant::now();
    let mut mn = MultiNode::start("host-gw", 2, drop_image_with_perl, &[]);
    let nodes = wait_nodes(&mn);
    assert_eq!(nodes.len(), 3);
    let node_ips: Vec<String> = std::iter::once(mn.net.host_ip())
        .chain(mn.agents.iter().map(|a| a.ip.clone()))
        .collect();
    mn.server.kubectl(&["create", "namespace", NS]);
    mn.server.kubectl(&["create", "namespace", "other"]);

    // the web Deployment: one pod per node, each serving its own name; ready while
    // /tmp/ready exists
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
                        "labelSelector": {"matchLabels": {"app": "web"}}
                    }],
                    "containers": [{
                        "name": "web", "image": IMAGE,
                        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "command": ["sh", "-c", format!("touch /tmp/ready && {WWW} && exec httpd -f -p 8080 -h /www")],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {
                            "exec": {"command": ["cat", "/tmp/ready"]},
                            "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1
                        }
                    }]
                }
            }
        }
    });
    // node ports: picked per test process so that concurrent test clusters (whose server
    // nodes share the host's namespace) do not ask for the same one
    let np = 30000 + ((std::process::id() * 7 + 1311) % 2700) as u16;
    let np_local = 30000 + ((std::process::id() * 7 + 1312) % 2700) as u16;
    let services = [
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-np", "namespace": NS},
            "spec": {"type": "NodePort", "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080, "nodePort": np}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "sticky", "namespace": NS},
            "spec": {"selector": {"app": "web"}, "sessionAffinity": "ClientIP",
                "ports": [{"port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "headless", "namespace": NS},
            "spec": {"clusterIP": "None", "selector": {"app": "web"},
                "ports": [{"port": 8080}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ext", "namespace": NS},
            "spec": {"type": "ExternalName", "externalName": "web.other.svc.cluster.local"}}),
        // LoadBalancer (ServiceLB-like: the Ready nodes' addresses), Cluster policy
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-lb", "namespace": NS},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                "allocateLoadBalancerNodePorts": false,
                "ports": [{"port": 80, "targetPort": 8080}]}}),
        // LoadBalancer + node port with externalTrafficPolicy Local: one backend, on node 1
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "echo-local", "namespace": NS},
            "spec": {"type": "LoadBalancer", "selector": {"app": "echo"},
                "externalTrafficPolicy": "Local",
                "ports": [{"port": 81, "targetPort": 8080, "nodePort": np_local}]}}),
        // the echo pod's subdomain, with named TCP and UDP ports
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "sub", "namespace": NS},
            "spec": {"clusterIP": "None", "selector": {"app": "echo"},
                "ports": [{"name": "http", "port": 8080},
                          {"name": "echo", "port": 5353, "protocol": "UDP"}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "udp", "namespace": NS},
            "spec": {"selector": {"app": "echo"},
                "ports": [{"port": 5353, "protocol": "UDP", "targetPort": "echo"}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "other"},
            "spec": {"selector": {"app": "web-other"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    ];
    let mut all = vec![deploy];
    all.extend(services);
    // a client pod on every node, and the other namespace's web server
    for (i, node) in nodes.iter().enumerate() {
        all.push(pod_manifest(
            &format!("client-{i}"),
            NS,
            node,
            "exec sleep 3600",
        ));
    }
    all.push(pod_manifest(
        "web-other",
        "other",
        &nodes[2],
        "mkdir -p /www && echo other > /www/index.html && exec httpd -f -p 8080 -h /www",
    ));
    // the echo pod on node 1: hostname h1 in subdomain sub, HTTP (cgi) and UDP echo
    let mut echo = pod_manifest(
        "echo",
        NS,
        &nodes[1],
        &format!("{WWW}; perl -e '{UDP_ECHO}' & exec httpd -f -p 8080 -h /www"),
    );
    echo["spec"]["hostname"] = json!("h1");
    echo["spec"]["subdomain"] = json!("sub");
    echo["spec"]["containers"][0]["env"] = json!([{"name": "POD", "value": "echo"}]);
    echo["spec"]["containers"][0]["ports"] = json!([
        {"name": "http", "containerPort": 8080},
        {"name": "echo", "containerPort": 5353, "protocol": "UDP"}
    ]);
    all.push(echo);
    let list = json!({"apiVersion": "v1", "kind": "List", "items": all});
    mn.server
        .kubectl_stdin(&["apply", "-f", "-"], &list.to_string());
    let clients: Vec<String> = (0..nodes.len()).map(|i| format!("client-{i}")).collect();
    for c in &clients {
        wait_running(&mn, NS, c);
    }
    wait_running(&mn, "other", "web-other");

    let backends = wait_backends(&mn, 3);
    assert_eq!(
        set(backends.iter().map(|b| &b.node)),
        set(&nodes),
        "one web pod per node: {backends:?}"
    );
    let names = set(backends.iter().map(|b| &b.name));
    let cluster_ip = mn.server.kubectl(&[
        "get",
        "svc",
        "-n",
        NS,
        "web",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let svc = format!("{}:80", cluster_ip.trim());
    let svc_url = format!("http://{svc}/");

    // pod to pod across nodes by pod IP
    for (i, c) in clients.iter().enumerate() {
        for b in backends.iter().filter(|b| b.node != nodes[i]) {
            // (the first request may race the routes to a node that just joined)
            let url = format!("http://{}:8080/", b.ip);
            mn.wait_for(&format!("{c} -> {url}"), 20, || {
                (from_pod(&mn, NS, c, &url, 1) == [b.name.clone()]).then_some(())
            });
            let got = from_pod(&mn, NS, c, &url, 3);
            assert_eq!(got, vec![b.name.clone(); 3], "{c} on {} -> {b:?}", nodes[i]);
        }
    }

    // every node's proxy has the service before requests are counted
    mn.wait_for("the service answering on every node", 30, || {
        (0..nodes.len())
            .all(|i| {
                from_node(&mn, i, &svc_url, 1)
                    .iter()
                    .all(|a| names.contains(a))
            })
            .then_some(())
    });

    // from a pod on every node: the cluster IP, the three DNS names, every node's node port
    let mut urls = vec![
        svc_url.clone(),
        "http://web/".to_string(),
        format!("http://web.{NS}/"),
        format!("http://web.{NS}.svc.cluster.local/"),
    ];
    urls.extend(node_ips.iter().map(|ip| format!("http://{ip}:{np}/")));
    let mut bad = Vec::new();
    for c in &clients {
        for url in &urls {
            let got = from_pod(&mn, NS, c, url, 30);
            if got.len() != 30 || set(&got) != names {
                bad.push(format!("{c} -> {url}: {got:?}"));
            }
        }
    }
    // from every node's own namespace (the host is node 0): cluster IP and node ports
    let mut node_urls = vec![svc_url.clone()];
    node_urls.extend(node_ips.iter().map(|ip| format!("http://{ip}:{np}/")));
    for i in 0..nodes.len() {
        for url in &node_urls {
            let got = from_node(&mn, i, url, 30);
            if got.len() != 30 || set(&got) != names {
                bad.push(format!("node {i} -> {url}: {got:?}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "not spread over {backends:?}:\n{}",
        bad.join("\n")
    );
    // from the test process on the host
    let got: Vec<String> = (0..30)
        .map(|_| host_get(&svc).unwrap_or_default())
        .collect();
    assert_spread("host process -> cluster IP", &got, &names);

    // another namespace's service by `svc.ns`; the pod's own namespace first for a bare name
    for c in &clients {
        assert_eq!(
            from_pod(&mn, NS, c, "http://web.other/", 3),
            vec!["other"; 3],
            "{c} -> web.other"
        );
    }
    // ExternalName: a CNAME to the target name
    let cnames = mn.wait_for("an answer for the ExternalName service", 20, || {
        let (_, cnames) = nslookup(&mn, &clients[1], &format!("ext.{NS}.svc.cluster.local"));
        (!cnames.is_empty()).then_some(cnames)
    });
    assert_eq!(cnames, set(["web.other.svc.cluster.local"]), "ExternalName");
    // headless: one A record per ready pod
    let (ips, _) = nslookup(
        &mn,
        &clients[2],
        &format!("headless.{NS}.svc.cluster.local"),
    );
    assert_eq!(
        ips,
        set(backends.iter().map(|b| &b.ip)),
        "headless A records"
    );
    let basics = started.elapsed();

    // ExternalName naming a cluster service: traffic through its name reaches that service
    for c in &clients {
        assert_eq!(
            from_pod(&mn, NS, c, "http://ext/", 3),
            vec!["other"; 3],
            "{c} -> ext (ExternalName of web.other)"
        );
    }

    // pod hostname/subdomain records and SRV records of the headless service's named ports
    wait_running(&mn, NS, "echo");
    let echo_ip = mn.wait_for("the echo pod's IP", 30, || {
        let p = mn.get_json(&["get", "pod", "-n", NS, "echo"]);
        p["status"]["podIP"].as_str().map(String::from)
    });
    let fqdn = format!("h1.sub.{NS}.svc.cluster.local");
    let ips = mn.wait_for(&format!("an A record for {fqdn}"), 20, || {
        let (ips, _) = nslookup(&mn, &clients[0], &fqdn);
        (!ips.is_empty()).then_some(ips)
    });
    assert_eq!(ips, set([&echo_ip]), "{fqdn}");
    // (and of a ClusterIP service's named port: its own name as target)
    let web_fqdn = format!("web.{NS}.svc.cluster.local");
    for (port, proto, svc, want, target) in [
        ("http", "tcp", "sub", 8080, &fqdn),
        ("echo", "udp", "sub", 5353, &fqdn),
        ("http", "tcp", "web", 80, &web_fqdn),
    ] {
        let name = format!("_{port}._{proto}.{svc}.{NS}.svc.cluster.local");
        let out = mn.server.kubectl_raw(&[
            "exec",
            "-n",
            NS,
            &clients[2],
            "--",
            "nslookup",
            "-type=srv",
            &name,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        // `<name>\tservice = 0 100 8080 h1.sub.e2e.svc.cluster.local`
        let srv: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once("service = "))
            .map(|(_, r)| r.trim().trim_end_matches('.'))
            .collect();
        assert_eq!(srv.len(), 1, "one SRV record for {name}: {text}");
        let f: Vec<&str> = srv[0].split_whitespace().collect();
        assert_eq!(f.len(), 4, "{srv:?}");
        assert_eq!(
            (f[2], f[3]),
            (want.to_string().as_str(), target.as_str()),
            "{name}"
        );
    }
    println!("hostname/subdomain: {fqdn} -> {echo_ip}; SRV for its named TCP and UDP ports");

    // UDP through a cluster IP, from pods on the nodes without the backend
    let udp_ip = mn.server.kubectl(&[
        "get",
        "svc",
        "-n",
        NS,
        "udp",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let udp_ip = udp_ip.trim().to_string();
    for c in [&clients[0], &clients[2]] {
        let udp = |n: &str| {
            let out = mn.server.kubectl_raw(&[
                "exec", "-n", NS, c, "--", "perl", "-e", UDP_CLIENT, &udp_ip, n,
            ]);
            answers(&out.stdout)
        };
        // (the first datagram may race the proxy's rules for the new endpoint)
        mn.wait_for(&format!("{c} -> udp {udp_ip}:5353"), 20, || {
            (udp("1") == ["echo ping 1"]).then_some(())
        });
        let got = udp("10");
        let want: Vec<String> = (1..=10).map(|i| format!("echo ping {i}")).collect();
        assert_eq!(got, want, "{c} -> UDP cluster IP {udp_ip}:5353");
    }

    // type LoadBalancer: the Ready nodes' addresses in status, answering on each of them
    let ingress = |svc: &str| {
        let s = mn.get_json(&["get", "svc", "-n", NS, svc]);
        set(s["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["ip"].as_str()))
    };
    let want_ingress = set(&node_ips);
    for svc in ["web-lb", "echo-local"] {
        mn.wait_for(
            &format!("{svc}'s ingress = the nodes' addresses"),
            30,
            || (ingress(svc) == want_ingress).then_some(()),
        );
    }
    let client = ClientNs::create(&mn);
    mn.wait_for("web-lb answering the external client", 20, || {
        node_ips
            .iter()
            .all(|ip| {
                client
                    .get(&format!("http://{ip}:80/"), 1, 5)
                    .iter()
                    .all(|a| names.contains(a))
            })
            .then_some(())
    });
    let mut bad = Vec::new();
    for ip in &node_ips {
        let url = format!("http://{ip}:80/");
        let got = client.get(&url, 30, 5);
        if set(&got) != names {
            bad.push(format!("external client -> {url}: {got:?}"));
        }
        for i in 0..nodes.len() {
            let got = from_node(&mn, i, &url, 30);
            if set(&got) != names {
                bad.push(format!("node {i} -> {url}: {got:?}"));
            }
        }
        let got: Vec<String> = (0..30)
            .map(|_| host_get(&format!("{ip}:80")).unwrap_or_default())
            .collect();
        if set(&got) != names {
            bad.push(format!("host process -> {url}: {got:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "LoadBalancer not spread:\n{}",
        bad.join("\n")
    );

    // externalTrafficPolicy Cluster: an external client's source is masqueraded
    let mut sources = BTreeSet::new();
    for ip in &node_ips {
        for port in [80, np] {
            let url = format!("http://{ip}:{port}/cgi-bin/ip");
            let got = pod_and_source(&client.get(&url, 20, 5));
            assert_eq!(got.len(), 20, "{url}: {got:?}");
            assert_eq!(
                set(got.iter().map(|(p, _)| p)),
                names,
                "{url} spread: {got:?}"
            );
            assert!(
                got.iter()
                    .all(|(_, src)| *src != client.ip && !src.is_empty()),
                "Cluster policy: {url} masquerades {}: {got:?}",
                client.ip
            );
            sources.extend(got.into_iter().map(|(_, src)| src));
        }
    }
    // masqueraded to the entry node's address, or its pod bridge's for a backend there
    let gateways = mn.get_json(&["get", "nodes"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["spec"]["podCIDR"].as_str())
        .map(|c| {
            let net: Ipv4Addr = c.split('/').next().unwrap().parse().unwrap();
            Ipv4Addr::from(u32::from(net) + 1).to_string()
        })
        .collect::<BTreeSet<_>>();
    let expected = &set(&node_ips) | &gateways;
    assert!(
        sources.is_subset(&expected),
        "sources seen under Cluster policy {sources:?}, not all of {expected:?}"
    );
    println!(
        "Cluster policy: the backends saw {sources:?} for the external client {}",
        client.ip
    );
    // externalTrafficPolicy Local: the client's own address, only where the endpoint is
    for port in [81, np_local] {
        let url = format!("http://{}:{port}/cgi-bin/ip", node_ips[1]);
        let got = pod_and_source(&client.get(&url, 10, 5));
        let want = vec![("echo".to_string(), client.ip.clone()); 10];
        assert_eq!(got, want, "Local policy: {url} sees the client's address");
        for ip in [&node_ips[0], &node_ips[2]] {
            let url = format!("http://{ip}:{port}/cgi-bin/ip");
            let got = client.get(&url, 1, 2);
            assert_eq!(got, ["FAILED"], "Local policy: {url} has no local endpoint");
        }
    }
    // node 2 (an agent netns) is a client from outside for node 1's node port
    let url = format!("http://{}:{np_local}/cgi-bin/ip", node_ips[1]);
    let got = pod_and_source(&from_node(&mn, 2, &url, 5));
    assert_eq!(
        got,
        vec![("echo".to_string(), node_ips[2].clone()); 5],
        "Local policy: node 2 -> {url}"
    );
    drop(client);
    println!(
        "cluster up with 3 ready backends after {} ms; LoadBalancer/Local/UDP/DNS additions took \
         {} ms",
        basics.as_millis(),
        (started.elapsed() - basics).as_millis()
    );

    // session affinity: every client (pods on each node, the host) stays on one backend
    let sticky_ip = mn.server.kubectl(&[
        "get",
        "svc",
        "-n",
        NS,
        "sticky",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let sticky_url = format!("http://{}:80/", sticky_ip.trim());
    for c in &clients {
        let got = from_pod(&mn, NS, c, &sticky_url, 20);
        assert_eq!(got.len(), 20, "{c} -> sticky: {got:?}");
        assert_eq!(set(&got).len(), 1, "{c} stays on one backend: {got:?}");
        assert!(names.contains(&got[0]), "{got:?}");
    }
    let got = from_node(&mn, 0, &sticky_url, 20);
    assert_eq!(set(&got).len(), 1, "the host stays on one backend: {got:?}");

    // a backend made unready leaves the rotation: time it from the probe's file removed
    let victim = backends[1].clone();
    let watch_args = [
        "get",
        "endpointslices",
        "-n",
        NS,
        "-l",
        "kubernetes.io/service-name=web",
        "-w",
        "-o",
        "json",
    ];
    let mut watch = mn
        .server
        .kubectl_cmd(&watch_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let victim_ip = victim.ip.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        for v in serde_json::Deserializer::from_reader(stdout).into_iter::<Value>() {
            let Ok(v) = v else { break };
            let out = v["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["addresses"][0] == victim_ip.as_str())
                .filter(|e| e["conditions"]["ready"] == false)
                .map(|e| e["conditions"].clone());
            if let Some(c) = out {
                let _ = tx.send((Instant::now(), c));
                break;
            }
        }
    });
    let host_svc = svc.clone();
    let prober = Prober::start(move || host_get(&host_svc));
    std::thread::sleep(Duration::from_millis(300));
    mn.server
        .kubectl(&["exec", "-n", NS, &victim.name, "--", "rm", "/tmp/ready"]);
    let removed = Instant::now();
    let (updated, conds) = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{}'s endpoint never unready\n{}", victim.name, mn.logs()));
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = watcher.join();
    assert_eq!(
        conds["serving"], false,
        "unready and not terminating: {conds}"
    );
    assert_eq!(conds["terminating"], false, "{conds}");
    // requests keep flowing for 3 s after the slice update
    std::thread::sleep(Duration::from_secs(3));
    let log = prober.finish();
    let failed: Vec<_> = log.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(failed.is_empty(), "requests failed meanwhile: {failed:?}");
    let last = log
        .iter()
        .filter(|(_, r)| r.as_deref() == Ok(victim.name.as_str()))
        .map(|(t, _)| *t)
        .max()
        .expect("the victim answered before it was made unready");
    let after: Vec<&String> = log
        .iter()
        .filter(|(t, _)| *t > updated + Duration::from_secs(1))
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    assert!(
        after.len() >= 10 && !after.contains(&&victim.name),
        "{} out of rotation a second after its slice update: {after:?}",
        victim.name
    );
    println!(
        "unready backend: EndpointSlice updated {} ms after the probe file was removed (probe \
         period 1 s); last request it served {} ms after the removal, {} ms after the slice \
         update ({} requests from the host)",
        ms(removed, updated),
        ms(removed, last),
        ms(updated, last),
        log.len()
    );
    // it is out for every node's proxy and for the cluster DNS too
    let rest: BTreeSet<String> = names
        .iter()
        .filter(|n| **n != victim.name)
        .cloned()
        .collect();
    for i in 0..nodes.len() {
        let got = from_node(&mn, i, &svc_url, 20);
        assert_spread(
            &format!("node {i} without the unready backend"),
            &got,
            &rest,
        );
    }
    let rest_ips = set(backends.iter().filter(|b| *b != &victim).map(|b| &b.ip));
    mn.wait_for("headless without the unready pod", 20, || {
        let (ips, _) = nslookup(
            &mn,
            &clients[0],
            &format!("headless.{NS}.svc.cluster.local"),
        );
        (ips == rest_ips).then_some(())
    });
    // ready again: back in
    mn.server
        .kubectl(&["exec", "-n", NS, &victim.name, "--", "touch", "/tmp/ready"]);
    wait_backends(&mn, 3);
    mn.wait_for("the backend back in rotation", 20, || {
        let got: Vec<String> = (0..30)
            .map(|_| host_get(&svc).unwrap_or_default())
            .collect();
        (set(&got) == names).then_some(())
    });

    // scaling changes the set of backends that answer
    mn.server
        .kubectl(&["scale", "deployment", "web", "-n", NS, "--replicas=5"]);
    let five = wait_backends(&mn, 5);
    let five_names = set(five.iter().map(|b| &b.name));
    assert!(five_names.is_superset(&names), "{five_names:?}");
    let mut got: Vec<String> = Vec::new();
    mn.wait_for("five backends answering", 20, || {
        got = from_pod(&mn, NS, &clients[1], "http://web/", 60);
        (set(&got) == five_names).then_some(())
    });
    assert_spread("client-1 -> web, 5 replicas", &got, &five_names);
    mn.server
        .kubectl(&["scale", "deployment", "web", "-n", NS, "--replicas=2"]);
    let two = wait_backends(&mn, 2);
    let two_names = set(two.iter().map(|b| &b.name));
    for i in 0..nodes.len() {
        let got = mn.wait_for(&format!("node {i}: two backends answering"), 20, || {
            let got = from_node(&mn, i, &svc_url, 30);
            (set(&got) == two_names).then_some(got)
        });
        assert_spread(&format!("node {i} -> web, 2 replicas"), &got, &two_names);
    }

    // an agent restart: the proxy's rules stay in its namespace while it is down, traffic
    // through them never stops, and the restarted proxy picks up what changed meanwhile
    let ns1 = mn.agents[0].netns.clone();
    let table = proxy::DEFAULT_TABLE;
    let nft_list = |mn: &MultiNode| {
        let out = mn.in_node(1, "nft", &["list", "table", "ip", table]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        nft_list(&mn).contains(&format!("{} . tcp . 80", cluster_ip.trim())),
        "{ns1}: {}",
        nft_list(&mn)
    );
    let url = svc_url.clone();
    let prober = Prober::start(move || {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns1, "timeout", "5", "busybox", "wget"])
            .args(["-q", "-O", "-", &url])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    });
    mn.agents[0].kill9();
    std::thread::sleep(Duration::from_secs(1));
    let rules = nft_list(&mn);
    assert!(
        rules.contains(&format!("{} . tcp . 80", cluster_ip.trim())),
        "rules stay while the agent is down: {rules}"
    );
    // a service created while the agent is down
    mn.server.kubectl_stdin(
        &["apply", "-f", "-"],
        &json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "late", "namespace": NS},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 81, "targetPort": 8080}]}})
        .to_string(),
    );
    let late_ip = mn.server.kubectl(&[
        "get",
        "svc",
        "-n",
        NS,
        "late",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let late = format!("{} . tcp . 81", late_ip.trim());
    std::thread::sleep(Duration::from_secs(1));
    let restarted = Instant::now();
    mn.agents[0].spawn();
    mn.wait_for(
        "the restarted proxy's rules for the new service",
        30,
        || nft_list(&mn).contains(&late).then_some(()),
    );
    let took = restarted.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let log = prober.finish();
    let failed: Vec<_> = log.iter().filter(|(_, r)| r.is_err()).collect();
    println!(
        "agent restart: the new service's rules in place {} ms after the agent started; {} \
         requests from node 1 through the cluster IP meanwhile, {} failed",
        took.as_millis(),
        log.len(),
        failed.len()
    );
    assert!(
        log.len() >= 10 && failed.is_empty(),
        "requests from node 1 failed during the agent restart ({} of {}): {failed:?}",
        failed.len(),
        log.len()
    );
    let rules = nft_list(&mn);
    assert!(
        rules.contains(&format!("{} . tcp . 80", cluster_ip.trim())),
        "{rules}"
    );
    let got = from_pod(&mn, NS, &clients[1], &format!("http://late.{NS}:81/"), 30);
    assert_spread("client-1 -> late after the restart", &got, &two_names);
    let got = from_node(&mn, 1, &svc_url, 30);
    assert_spread("node 1 -> web after the restart", &got, &two_names);
}
