//! Cluster DNS end to end: a real `oxkube server` runs the DNS server; the test writes
//! Services and EndpointSlices with kubectl and queries every record kind with a hickory-proto
//! client over UDP and TCP, and names outside the cluster through an upstream DNS server it runs
//! itself on a 127.53.x.y address.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Cluster;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// A query over UDP (or TCP) to `addr`.
fn ask(addr: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let q = m.to_vec().unwrap();
    let reply = if tcp {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = (q.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&q);
        s.write_all(&out).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).unwrap();
        buf
    } else {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&q, addr).unwrap();
        let mut buf = vec![0u8; 65535];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let r = Message::from_vec(&reply).unwrap();
    assert_eq!(r.metadata.id, m.metadata.id);
    r
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 65536) as u16
}

fn ips(m: &Message) -> BTreeSet<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

/// (port, target) of the SRV answers.
fn srvs(m: &Message) -> BTreeSet<(u16, String)> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect()
}

fn ptrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect()
}

/// Poll `f` until it holds (watch events arrive asynchronously).
#[track_caller]
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small authoritative upstream: `upstream.test` A 192.0.2.1, `ext.example` A 192.0.2.99,
/// `big.test` with 40 A records (truncated over UDP). Counts the queries it gets over TCP.
struct Upstream {
    addr: IpAddr,
    tcp_queries: Arc<AtomicUsize>,
}

fn upstream_answer(q: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(q).ok()?;
    let query = req.queries.first()?.clone();
    let mut resp = Message::response(req.metadata.id, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.add_query(query.clone());
    let name = query.name().to_ascii().to_ascii_lowercase();
    let a = |ip: [u8; 4]| Record::from_rdata(query.name().clone(), 60, RData::A(A(ip.into())));
    match (name.as_str(), query.query_type()) {
        ("upstream.test.", RecordType::A) => {
            resp.add_answer(a([192, 0, 2, 1]));
        }
        ("ext.example.", RecordType::A) => {
            resp.add_answer(a([192, 0, 2, 99]));
        }
        ("big.test.", RecordType::A) => {
            for i in 1..=40 {
                resp.add_answer(a([192, 0, 2, i]));
            }
        }
        ("alias.test.", RecordType::A) => {
            resp.add_answer(Record::from_rdata(
                query.name().clone(),
                60,
                RData::CNAME(CNAME(Name::from_ascii("upstream.test.").unwrap())),
            ));
        }
        _ => resp.metadata.response_code = ResponseCode::NXDomain,
    }
    resp.to_vec().ok()
}

impl Upstream {
    fn start() -> Upstream {
        let pid = std::process::id();
        for i in 0..50u32 {
            let ip: IpAddr = [
                127,
                53,
                (pid % 250 + 1) as u8,
                ((pid / 250 + i * 7) % 250 + 2) as u8,
            ]
            .into();
            let Ok(udp) = UdpSocket::bind((ip, 53)) else {
                continue;
            };
            let Ok(tcp) = TcpListener::bind((ip, 53)) else {
                continue;
            };
            let tcp_queries = Arc::new(AtomicUsize::new(0));
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                    if let Some(mut reply) = upstream_answer(&buf[..n]) {
                        if reply.len() > 512 {
                            let m = Message::from_vec(&reply).unwrap();
                            reply = m.truncate().to_vec().unwrap();
                        }
                        let _ = udp.send_to(&reply, peer);
                    }
                }
            });
            let counter = tcp_queries.clone();
            std::thread::spawn(move || {
                for mut s in tcp.incoming().flatten() {
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).is_err() {
                        continue;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if let Some(reply) = upstream_answer(&q) {
                        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&reply);
                        let _ = s.write_all(&out);
                    }
                }
            });
            return Upstream {
                addr: ip,
                tcp_queries,
            };
        }
        panic!("no free 127.53.x.y:53 for the upstream DNS server");
    }
}

/// The DNS server's address, read from the kube-dns Endpoints the server maintains.
fn dns_addr(c: &Cluster) -> SocketAddr {
    let mut out = String::new();
    eventually("the kube-dns endpoints", || {
        let o = c.kubectl_raw(&[
            "get",
            "endpoints",
            "-n",
            "kube-system",
            "kube-dns",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ]);
        out = String::from_utf8_lossy(&o.stdout).to_string();
        o.status.success() && out.parse::<SocketAddr>().is_ok()
    });
    out.parse().unwrap()
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.43.7.50
  selector: {app: web}
  ports:
  - {name: http, port: 80, protocol: TCP}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports:
  - {name: pg, port: 5432}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: default
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports:
- {name: pg, port: 15432, protocol: TCP}
endpoints:
- {addresses: [10.42.0.5], hostname: db-0, conditions: {ready: true}}
- {addresses: [10.42.0.6], conditions: {ready: true}}
- {addresses: [10.42.0.7], hostname: db-2, conditions: {ready: false}}
---
apiVersion: v1
kind: Service
metadata: {name: nr, namespace: other}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  ports:
  - {name: p, port: 7}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: nr-1
  namespace: other
  labels: {kubernetes.io/service-name: nr}
addressType: IPv4
endpoints:
- {addresses: [10.42.1.9], conditions: {ready: false}}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: ext.example
"#;

fn big_slice() -> String {
    let mut s = String::from(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: big-1\n  namespace: default\n  labels: {kubernetes.io/service-name: big}\naddressType: IPv4\nendpoints:\n",
    );
    for i in 1..=60 {
        s.push_str(&format!("- {{addresses: [10.42.2.{i}]}}\n"));
    }
    s.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: default}\nspec:\n  clusterIP: None\n  ports:\n  - {name: p, port: 1}\n");
    s
}

#[test]
fn cluster_dns_records_updates_and_forwarding() {
    let upstream = Upstream::start();
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(conf.path(), format!("nameserver {}\n", upstream.addr)).unwrap();
    let c = Cluster::start_with(&["--dns-resolv-conf", conf.path().to_str().unwrap()]);
    let dns = dns_addr(&c);

    // the kube-dns Service the server keeps
    let svc = c.kubectl(&[
        "get",
        "service",
        "-n",
        "kube-system",
        "kube-dns",
        "-o",
        "json",
    ]);
    let svc: serde_json::Value = serde_json::from_str(&svc).unwrap();
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.10");
    assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");
    let ports: Vec<(String, String, i64, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["protocol"].as_str().unwrap().to_string(),
                p["port"].as_i64().unwrap(),
                p["targetPort"].as_i64().unwrap(),
            )
        })
        .collect();
    let real = i64::from(dns.port());
    assert_eq!(
        ports,
        vec![
            ("dns".into(), "UDP".into(), 53, real),
            ("dns-tcp".into(), "TCP".into(), 53, real)
        ]
    );
    let slice = c.kubectl(&[
        "get",
        "endpointslices",
        "-n",
        "kube-system",
        "-l",
        "kubernetes.io/service-name=kube-dns",
        "-o",
        "jsonpath={.items[0].endpoints[0].addresses[0]}:{.items[0].ports[0].port}",
    ]);
    assert_eq!(slice, dns.to_string());

    // the DNS server answers for its own service
    eventually("kube-dns A record", || {
        ips(&ask(
            dns,
            "kube-dns.kube-system.svc.cluster.local.",
            RecordType::A,
            false,
        )) == set(&["10.43.0.10"])
    });

    c.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], OBJECTS);
    c.kubectl_stdin(&["apply", "-f", "-"], &big_slice());

    // ClusterIP service: A, SRV (with the address as additional), PTR
    eventually("web A", || {
        ips(&ask(
            dns,
            "web.default.svc.cluster.local.",
            RecordType::A,
            false,
        )) == set(&["10.43.7.50"])
    });
    let m = ask(dns, "web.default.svc.cluster.local.", RecordType::A, false);
    assert!(m.metadata.authoritative);
    let m = ask(
        dns,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        false,
    );
    assert_eq!(
        srvs(&m),
        [(80, "web.default.svc.cluster.local.".to_string())].into()
    );
    assert!(m
        .additionals
        .iter()
        .any(|r| r.data == RData::A(A::new(10, 43, 7, 50))));
    let m = ask(
        dns,
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
        false,
    );
    assert_eq!(
        srvs(&m),
        [(53, "web.default.svc.cluster.local.".to_string())].into()
    );
    let m = ask(dns, "50.7.43.10.in-addr.arpa.", RecordType::PTR, false);
    assert_eq!(ptrs(&m), vec!["web.default.svc.cluster.local."]);
    // a v4-only service has no AAAA: NOERROR with the SOA
    let m = ask(
        dns,
        "web.default.svc.cluster.local.",
        RecordType::AAAA,
        false,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

    // headless: ready endpoints, hostnames, SRV per endpoint, PTR
    eventually("db A", || {
        ips(&ask(
            dns,
            "db.default.svc.cluster.local.",
            RecordType::A,
            false,
        )) == set(&["10.42.0.5", "10.42.0.6"])
    });
    let m = ask(
        dns,
        "db-0.db.default.svc.cluster.local.",
        RecordType::A,
        false,
    );
    assert_eq!(ips(&m), set(&["10.42.0.5"]));
    let m = ask(
        dns,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
        false,
    );
    assert_eq!(
        srvs(&m),
        [
            (15432, "db-0.db.default.svc.cluster.local.".to_string()),
            (15432, "10-42-0-6.db.default.svc.cluster.local.".to_string())
        ]
        .into()
    );
    let m = ask(dns, "5.0.42.10.in-addr.arpa.", RecordType::PTR, false);
    assert_eq!(ptrs(&m), vec!["db-0.db.default.svc.cluster.local."]);
    let m = ask(
        dns,
        "db-2.db.default.svc.cluster.local.",
        RecordType::A,
        false,
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // publishNotReadyAddresses
    eventually("nr A", || {
        ips(&ask(
            dns,
            "nr.other.svc.cluster.local.",
            RecordType::A,
            false,
        )) == set(&["10.42.1.9"])
    });

    // ExternalName: the CNAME, and the target's address from upstream
    let m = ask(dns, "ext.default.svc.cluster.local.", RecordType::A, false);
    assert!(
        m.answers
            .iter()
            .any(|r| r.data == RData::CNAME(CNAME(Name::from_ascii("ext.example.").unwrap()))),
        "{m:?}"
    );
    assert_eq!(ips(&m), set(&["192.0.2.99"]));

    // pods
    let m = ask(
        dns,
        "10-42-0-9.default.pod.cluster.local.",
        RecordType::A,
        false,
    );
    assert_eq!(ips(&m), set(&["10.42.0.9"]));

    // unknown cluster names: NXDOMAIN with the zone's SOA
    let m = ask(dns, "nope.default.svc.cluster.local.", RecordType::A, false);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_ascii(), "cluster.local.");

    // too large for UDP: truncated, complete over TCP
    eventually("big over TCP", || {
        ips(&ask(
            dns,
            "big.default.svc.cluster.local.",
            RecordType::A,
            true,
        ))
        .len()
            == 60
    });
    let m = ask(dns, "big.default.svc.cluster.local.", RecordType::A, false);
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());

    // names outside the cluster go upstream, over UDP and TCP
    let m = ask(dns, "upstream.test.", RecordType::A, false);
    assert_eq!(ips(&m), set(&["192.0.2.1"]));
    let m = ask(dns, "alias.test.", RecordType::A, false);
    assert!(matches!(m.answers[0].data, RData::CNAME(_)));
    let m = ask(dns, "missing.test.", RecordType::A, false);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(dns, "big.test.", RecordType::A, false);
    assert!(m.metadata.truncation, "upstream truncation is passed on");
    let before = upstream.tcp_queries.load(Ordering::SeqCst);
    let m = ask(dns, "big.test.", RecordType::A, true);
    assert_eq!(ips(&m).len(), 40);
    assert!(
        upstream.tcp_queries.load(Ordering::SeqCst) > before,
        "forwarded over TCP"
    );
    // reverse names of IPs that are not the cluster's go upstream too
    let m = ask(dns, "1.2.0.192.in-addr.arpa.", RecordType::PTR, false);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authoritative);

    // updates: an endpoint turns ready, a service goes away, a cluster IP moves
    c.kubectl(&[
        "patch",
        "endpointslice",
        "db-1",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/endpoints/2/conditions/ready","value":true}]"#,
    ]);
    eventually("db-2 ready", || {
        ips(&ask(
            dns,
            "db.default.svc.cluster.local.",
            RecordType::A,
            false,
        )) == set(&["10.42.0.5", "10.42.0.6", "10.42.0.7"])
    });
    let m = ask(
        dns,
        "db-2.db.default.svc.cluster.local.",
        RecordType::A,
        true,
    );
    assert_eq!(ips(&m), set(&["10.42.0.7"]));
    c.kubectl(&["delete", "endpointslice", "db-1"]);
    eventually("db without endpoints", || {
        ips(&ask(
            dns,
            "db.default.svc.cluster.local.",
            RecordType::A,
            false,
        ))
        .is_empty()
    });
    c.kubectl(&["delete", "service", "web"]);
    eventually("web gone", || {
        ask(dns, "web.default.svc.cluster.local.", RecordType::A, false)
            .metadata
            .response_code
            == ResponseCode::NXDomain
    });
    let m = ask(dns, "50.7.43.10.in-addr.arpa.", RecordType::PTR, false);
    assert!(ptrs(&m).is_empty(), "{m:?}");
}

#[test]
fn dns_can_be_disabled() {
    let c = Cluster::start_with(&["--disable-dns"]);
    // the built-in components are up (the service account controller made `default`), and
    // they start the DNS server first when it is enabled: no kube-dns appears
    eventually("the default service account", || {
        c.kubectl_raw(&["get", "serviceaccount", "default"])
            .status
            .success()
    });
    std::thread::sleep(Duration::from_secs(1));
    let out = c.kubectl_raw(&["get", "service", "-n", "kube-system", "kube-dns"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}
