//! Cluster DNS benchmark: the UDP server with 1,000 services and 1,000 headless endpoints in
//! its store, queried from one client on loopback. Prints the latency distribution of a
//! cluster name (one query at a time) and the sustained rate, one query at a time and with 16
//! in flight. Run: `cargo bench -p dns --bench dns`.

use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use dns::forward::Forwarder;
use dns::records::{EndpointInfo, Port, Records, ServiceInfo, ServiceKind, SliceInfo, ZoneConfig};
use dns::server::{serve_udp, Handler};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

fn store() -> Records {
    let mut r = Records::new();
    for i in 0..1000u32 {
        r.upsert_service(ServiceInfo {
            namespace: format!("ns{}", i % 20),
            name: format!("svc{i}"),
            kind: ServiceKind::ClusterIp(vec![format!("10.43.{}.{}", i / 250, i % 250 + 1)
                .parse()
                .unwrap()]),
            ports: vec![Port {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 80,
            }],
            publish_not_ready: false,
        });
    }
    for s in 0..100u32 {
        r.upsert_service(ServiceInfo {
            namespace: "headless".into(),
            name: format!("h{s}"),
            kind: ServiceKind::Headless,
            ports: vec![],
            publish_not_ready: false,
        });
        r.upsert_slice(SliceInfo {
            namespace: "headless".into(),
            name: format!("h{s}-1"),
            service: format!("h{s}"),
            endpoints: (0..10u32)
                .map(|e| EndpointInfo {
                    addresses: vec![format!("10.42.{s}.{}", e + 1).parse().unwrap()],
                    hostname: Some(format!("pod-{e}")),
                    ready: true,
                })
                .collect(),
            ports: vec![],
        });
    }
    r
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = rt.block_on(async {
        let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = sock.local_addr().unwrap();
        let handler = Arc::new(Handler::new(
            Arc::new(RwLock::new(store())),
            ZoneConfig {
                zone: "cluster.local".into(),
                dns_ip: None,
            },
            5,
            Forwarder::new(vec![]),
            Arc::new(AtomicBool::new(true)),
        ));
        for _ in 0..2 {
            tokio::spawn(serve_udp(handler.clone(), sock.clone(), stop_rx.clone()));
        }
        addr
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let names: Vec<String> = (0..1000)
        .map(|i| format!("svc{i}.ns{}.svc.cluster.local.", i % 20))
        .collect();
    let queries: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| query(i as u16, n))
        .collect();
    let mut buf = [0u8; 4096];
    // warm up
    for q in queries.iter().cycle().take(2000) {
        client.send(q).unwrap();
        client.recv(&mut buf).unwrap();
    }

    // latency: one query at a time
    let n = 50_000;
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let q = &queries[i % queries.len()];
        let t = Instant::now();
        client.send(q).unwrap();
        let got = client.recv(&mut buf).unwrap();
        lat.push(t.elapsed());
        assert!(got > 12 && buf[..2] == q[..2], "reply to the query");
    }
    let serial_qps = n as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "cluster name A, one at a time ({n} queries): p50 {:?} p90 {:?} p99 {:?} p99.9 {:?} max {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat[lat.len() - 1]
    );
    println!("sustained, one at a time: {serial_qps:.0} queries/s");

    // sustained with a window of 16 queries in flight, for 3 seconds
    let window = 16;
    let deadline = Instant::now() + Duration::from_secs(3);
    let started = Instant::now();
    let (mut sent, mut received, mut lost) = (0usize, 0usize, 0usize);
    for _ in 0..window {
        client.send(&queries[sent % queries.len()]).unwrap();
        sent += 1;
    }
    while Instant::now() < deadline {
        match client.recv(&mut buf) {
            Ok(_) => {
                received += 1;
                client.send(&queries[sent % queries.len()]).unwrap();
                sent += 1;
            }
            Err(_) => {
                // a lost datagram: put another in flight
                lost += 1;
                client.send(&queries[sent % queries.len()]).unwrap();
                sent += 1;
            }
        }
    }
    let qps = received as f64 / started.elapsed().as_secs_f64();
    println!("sustained, {window} in flight: {qps:.0} queries/s ({lost} timeouts)");
    let _ = stop_tx.send(true);
}
