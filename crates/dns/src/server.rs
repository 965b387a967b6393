//! The DNS wire edge: decodes queries with hickory-proto, answers cluster names from the
//! record store, forwards the rest, encodes replies (truncated over UDP when too large), and
//! the UDP and TCP listeners around it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::forward::Forwarder;
use crate::names;
use crate::records::{Answer, Data, Rec, Records, ZoneConfig};

/// The largest UDP reply this server sends (the EDNS buffer size it advertises).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// How a query arrived (and how its reply and any forwarding travel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do with a query after the local lookup.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes.
    Reply(Vec<u8>),
    /// Forward the query bytes upstream as they are.
    Forward,
    /// Send `msg` after appending the upstream answers for `target`/`qtype` (an ExternalName
    /// CNAME pointing outside the zone).
    Chase {
        msg: Box<Message>,
        target: String,
        qtype: RecordType,
        max_len: usize,
    },
    /// Nothing can be answered (undecodable header).
    Drop,
}

/// Answers queries: the record store, the zone settings and the upstreams.
pub struct Handler {
    pub records: Arc<RwLock<Records>>,
    pub zone: ZoneConfig,
    pub ttl: u32,
    pub forwarder: Forwarder,
    /// False until the watchers listed everything: cluster names get SERVFAIL before.
    pub synced: Arc<AtomicBool>,
    serial: u32,
}

impl Handler {
    pub fn new(
        records: Arc<RwLock<Records>>,
        zone: ZoneConfig,
        ttl: u32,
        forwarder: Forwarder,
        synced: Arc<AtomicBool>,
    ) -> Handler {
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        Handler {
            records,
            zone,
            ttl,
            forwarder,
            synced,
            serial,
        }
    }

    /// The local part of answering `bytes`: everything but the network.
    pub fn step(&self, bytes: &[u8], transport: Transport) -> Step {
        let req = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(_) if bytes.len() >= 12 => {
                let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                return self.encode(
                    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr),
                    512,
                );
            }
            Err(_) => return Step::Drop,
        };
        if req.metadata.message_type != MessageType::Query {
            return Step::Drop;
        }
        let max_len = match transport {
            Transport::Tcp => usize::from(u16::MAX),
            Transport::Udp => usize::from(
                req.edns
                    .as_ref()
                    .map(|e| e.max_payload().clamp(512, MAX_UDP_PAYLOAD))
                    .unwrap_or(512),
            ),
        };
        let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
        resp.metadata = Metadata::response_from_request(&req.metadata);
        resp.metadata.recursion_available = true;
        if req.edns.is_some() {
            let mut e = Edns::new();
            e.set_max_payload(MAX_UDP_PAYLOAD);
            resp.set_edns(e);
        }
        resp.add_queries(req.queries.iter().cloned());
        if req.metadata.op_code != OpCode::Query {
            resp.metadata.response_code = ResponseCode::NotImp;
            return self.encode(resp, max_len);
        }
        let [query] = req.queries.as_slice() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return self.encode(resp, max_len);
        };
        let name = names::normalize(&query.name().to_ascii());
        let qtype = query.query_type();
        let answer = {
            let records = self.records.read().unwrap_or_else(|e| e.into_inner());
            records.lookup(&self.zone, &name, qtype)
        };
        if !matches!(answer, Answer::Forward) && !self.synced.load(Ordering::Acquire) {
            resp.metadata.response_code = ResponseCode::ServFail;
            return self.encode(resp, max_len);
        }
        match answer {
            Answer::Forward => Step::Forward,
            Answer::NxDomain => {
                resp.metadata.authoritative = true;
                resp.metadata.response_code = ResponseCode::NXDomain;
                resp.add_authority(self.soa_record());
                self.encode(resp, max_len)
            }
            Answer::Records {
                answers,
                additionals,
                chase,
            } => {
                resp.metadata.authoritative = true;
                if answers.is_empty() {
                    resp.add_authority(self.soa_record());
                }
                for r in &answers {
                    if let Some(r) = self.record(r) {
                        resp.add_answer(r);
                    }
                }
                for r in &additionals {
                    if let Some(r) = self.record(r) {
                        resp.add_additional(r);
                    }
                }
                match chase {
                    Some(target) => Step::Chase {
                        msg: Box::new(resp),
                        target,
                        qtype,
                        max_len,
                    },
                    None => self.encode(resp, max_len),
                }
            }
        }
    }

    /// Encode a reply; one larger than `max_len` goes out truncated (TC set, no records).
    fn encode(&self, msg: Message, max_len: usize) -> Step {
        match msg.to_vec() {
            Ok(b) if b.len() <= max_len => Step::Reply(b),
            Ok(_) => match msg.truncate().to_vec() {
                Ok(b) => Step::Reply(b),
                Err(_) => Step::Drop,
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a DNS reply");
                let id = msg.metadata.id;
                Message::error_msg(id, msg.metadata.op_code, ResponseCode::ServFail)
                    .to_vec()
                    .map(Step::Reply)
                    .unwrap_or(Step::Drop)
            }
        }
    }

    fn soa_record(&self) -> Record {
        Record::from_rdata(fqdn(&self.zone.zone), self.ttl, RData::SOA(self.soa()))
    }

    fn soa(&self) -> SOA {
        let z = &self.zone.zone;
        SOA::new(
            fqdn(&format!("ns.dns.{z}")),
            fqdn(&format!("hostmaster.{z}")),
            self.serial,
            7200,
            1800,
            86400,
            self.ttl,
        )
    }

    fn record(&self, r: &Rec) -> Option<Record> {
        let data = match &r.data {
            Data::A(ip) => RData::A(A(*ip)),
            Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Data::Cname(t) => RData::CNAME(CNAME(try_fqdn(t)?)),
            Data::Ptr(t) => RData::PTR(PTR(try_fqdn(t)?)),
            Data::Ns(t) => RData::NS(NS(try_fqdn(t)?)),
            Data::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(*priority, *weight, *port, try_fqdn(target)?)),
            Data::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
            Data::Soa => RData::SOA(self.soa()),
        };
        Some(Record::from_rdata(try_fqdn(&r.name)?, self.ttl, data))
    }

    /// Answer `bytes` completely, forwarding upstream where needed.
    pub async fn handle(&self, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
        match self.step(bytes, transport) {
            Step::Reply(b) => Some(b),
            Step::Drop => None,
            Step::Forward => {
                let reply = match transport {
                    Transport::Udp => self.forwarder.udp(bytes).await,
                    Transport::Tcp => self.forwarder.tcp(bytes).await,
                };
                match reply {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::debug!(error = %e, "forwarding failed");
                        self.servfail(bytes)
                    }
                }
            }
            Step::Chase {
                mut msg,
                target,
                qtype,
                max_len,
            } => {
                let name = try_fqdn(&target)?;
                let mut q = Message::new(rand::random(), MessageType::Query, OpCode::Query);
                q.metadata.recursion_desired = true;
                q.add_query(Query::query(name, qtype));
                let q = q.to_vec().ok()?;
                let reply = match transport {
                    Transport::Udp => self.forwarder.udp(&q).await,
                    Transport::Tcp => self.forwarder.tcp(&q).await,
                };
                if let Some(up) = reply.ok().and_then(|b| Message::from_vec(&b).ok()) {
                    msg.add_answers(up.answers);
                    if up.metadata.truncation {
                        msg.metadata.truncation = true;
                    }
                }
                match self.encode(*msg, max_len) {
                    Step::Reply(b) => Some(b),
                    _ => None,
                }
            }
        }
    }

    fn servfail(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let req = Message::from_vec(bytes).ok()?;
        let mut resp = Message::error_msg(
            req.metadata.id,
            req.metadata.op_code,
            ResponseCode::ServFail,
        );
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.add_queries(req.queries);
        resp.to_vec().ok()
    }
}

/// Resolves once `rx` turns true (the watch guard is not held across an await).
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn fqdn(name: &str) -> Name {
    try_fqdn(name).unwrap_or_else(Name::root)
}

fn try_fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
}

/// Serve UDP queries on `sock` until `shutdown` turns true.
pub async fn serve_udp(
    handler: Arc<Handler>,
    sock: Arc<UdpSocket>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors of earlier replies surface here on some systems
                    tracing::debug!(error = %e, "udp receive");
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let bytes = &buf[..n];
        match handler.step(bytes, Transport::Udp) {
            Step::Reply(b) => {
                let _ = sock.send_to(&b, peer).await;
            }
            Step::Drop => {}
            // upstream round trips must not hold up the cluster answers behind them
            _ => {
                let handler = handler.clone();
                let sock = sock.clone();
                let bytes = bytes.to_vec();
                tokio::spawn(async move {
                    if let Some(b) = handler.handle(&bytes, Transport::Udp).await {
                        let _ = sock.send_to(&b, peer).await;
                    }
                });
            }
        }
    }
}

/// Serve TCP connections on `listener` until `shutdown` turns true.
pub async fn serve_tcp(
    handler: Arc<Handler>,
    listener: TcpListener,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let handler = handler.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move { serve_conn(handler, stream, stop).await });
    }
}

/// How long an idle TCP connection stays open.
const TCP_IDLE: Duration = Duration::from_secs(10);

async fn serve_conn(
    handler: Arc<Handler>,
    mut stream: TcpStream,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    loop {
        let read = async {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut msg).await?;
            Ok::<_, std::io::Error>(msg)
        };
        let msg = tokio::select! {
            r = tokio::time::timeout(TCP_IDLE, read) => match r {
                Ok(Ok(m)) => m,
                _ => return,
            },
            _ = stopped(&mut shutdown) => return,
        };
        let Some(reply) = handler.handle(&msg, Transport::Tcp).await else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&reply);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Bind the UDP socket and TCP listener of `addr` (port 0: one free port for both).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        let tcp = TcpListener::bind(addr).await?;
        let udp = UdpSocket::bind(addr).await?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..20 {
        let tcp = TcpListener::bind(addr).await?;
        let port = tcp.local_addr()?.port();
        match UdpSocket::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Port, ServiceInfo, ServiceKind};

    fn handler(synced: bool) -> Handler {
        let mut r = Records::new();
        r.upsert_service(ServiceInfo {
            namespace: "default".into(),
            name: "web".into(),
            kind: ServiceKind::ClusterIp(vec!["10.43.0.20".parse().unwrap()]),
            ports: vec![Port {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 80,
            }],
            publish_not_ready: false,
        });
        // a headless service with enough endpoints to overflow 512 bytes
        r.upsert_service(ServiceInfo {
            namespace: "default".into(),
            name: "big".into(),
            kind: ServiceKind::Headless,
            ports: vec![],
            publish_not_ready: false,
        });
        r.upsert_slice(crate::records::SliceInfo {
            namespace: "default".into(),
            name: "big-1".into(),
            service: "big".into(),
            endpoints: (1..=60)
                .map(|i| crate::records::EndpointInfo {
                    addresses: vec![format!("10.42.0.{i}").parse().unwrap()],
                    hostname: None,
                    ready: true,
                })
                .collect(),
            ports: vec![],
        });
        Handler::new(
            Arc::new(RwLock::new(r)),
            ZoneConfig {
                zone: "cluster.local".into(),
                dns_ip: None,
            },
            5,
            Forwarder::new(vec![]),
            Arc::new(AtomicBool::new(synced)),
        )
    }

    fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn reply(step: Step) -> Message {
        match step {
            Step::Reply(b) => Message::from_vec(&b).unwrap(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn wire_answers() {
        let h = handler(true);
        let m = reply(h.step(
            &query("WEB.default.svc.cluster.local.", RecordType::A, None),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative && m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].ttl, 5);
        assert_eq!(
            m.answers[0].data,
            RData::A(A("10.43.0.20".parse().unwrap()))
        );

        let m = reply(h.step(
            &query("nope.default.svc.cluster.local.", RecordType::A, None),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

        // NODATA: NOERROR, no answers, the SOA
        let m = reply(h.step(
            &query("web.default.svc.cluster.local.", RecordType::AAAA, None),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

        assert!(matches!(
            h.step(&query("example.com.", RecordType::A, None), Transport::Udp),
            Step::Forward
        ));
    }

    #[test]
    fn large_udp_replies_are_truncated() {
        let h = handler(true);
        let q = query("big.default.svc.cluster.local.", RecordType::A, None);
        let m = reply(h.step(&q, Transport::Udp));
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        let m = reply(h.step(&q, Transport::Tcp));
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 60);
        // a large enough EDNS buffer takes it whole over UDP
        let m = reply(h.step(
            &query("big.default.svc.cluster.local.", RecordType::A, Some(4096)),
            Transport::Udp,
        ));
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 60);
        assert_eq!(
            m.edns.as_ref().map(|e| e.max_payload()),
            Some(MAX_UDP_PAYLOAD)
        );
    }

    #[test]
    fn not_synced_cluster_names_fail_and_others_forward() {
        let h = handler(false);
        let m = reply(h.step(
            &query("web.default.svc.cluster.local.", RecordType::A, None),
            Transport::Udp,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(matches!(
            h.step(&query("example.com.", RecordType::A, None), Transport::Udp),
            Step::Forward
        ));
    }

    #[test]
    fn malformed_and_unsupported() {
        let h = handler(true);
        assert!(matches!(h.step(&[1, 2, 3], Transport::Udp), Step::Drop));
        let mut garbage = vec![0x12, 0x34];
        garbage.extend_from_slice(&[0xff; 14]);
        let m = reply(h.step(&garbage, Transport::Udp));
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        let mut notify = Message::new(7, MessageType::Query, OpCode::Notify);
        notify.add_query(Query::query(
            Name::from_ascii("cluster.local.").unwrap(),
            RecordType::SOA,
        ));
        let m = reply(h.step(&notify.to_vec().unwrap(), Transport::Udp));
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    }
}
