//! Forwarding of names outside the cluster domain to the node's upstream resolvers (from
//! resolv.conf, systemd-resolved's real list when the stub is configured), over UDP and TCP.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Where systemd-resolved lists the real upstream servers.
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolvers configured")]
    NoUpstreams,
    #[error("upstream {0} did not answer in time")]
    Timeout(SocketAddr),
    #[error("upstream {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {0} answered with a mismatched or malformed message")]
    BadReply(SocketAddr),
}

/// The `nameserver` lines of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let l = l.split(['#', ';']).next()?.trim();
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // a scoped IPv6 address (fe80::1%eth0) cannot be used from here
            words.next()?.parse().ok()
        })
        .collect()
}

/// The upstream servers of a resolv.conf file. When it lists only systemd-resolved's stub
/// (127.0.0.53), the servers in `systemd_path` are used instead, as the kubelet does.
pub fn upstreams_from(path: &Path, systemd_path: &Path) -> Vec<SocketAddr> {
    let read = |p: &Path| parse_resolv_conf(&std::fs::read_to_string(p).unwrap_or_default());
    let mut ips = read(path);
    let stub: IpAddr = [127, 0, 0, 53].into();
    if !ips.is_empty() && ips.iter().all(|ip| *ip == stub) {
        let real = read(systemd_path);
        if !real.is_empty() {
            ips = real;
        }
    }
    ips.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
}

/// The upstream resolvers and how long each may take.
#[derive(Debug, Clone)]
pub struct Forwarder {
    pub upstreams: Vec<SocketAddr>,
    pub timeout: Duration,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        Forwarder {
            upstreams,
            timeout: Duration::from_secs(2),
        }
    }

    /// Send a wire-format query to the upstreams in turn over UDP; the first reply wins. A
    /// truncated reply is returned as is (the client retries over TCP).
    pub async fn udp(&self, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        self.each(|addr| udp_exchange(addr, query, self.timeout))
            .await
    }

    /// As [`Forwarder::udp`] over TCP.
    pub async fn tcp(&self, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        self.each(|addr| tcp_exchange(addr, query, self.timeout))
            .await
    }

    async fn each<F, Fut>(&self, f: F) -> Result<Vec<u8>, ForwardError>
    where
        F: Fn(SocketAddr) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, ForwardError>>,
    {
        let mut last = ForwardError::NoUpstreams;
        for addr in &self.upstreams {
            match f(*addr).await {
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    tracing::debug!(error = %e, "upstream failed");
                    last = e;
                }
            }
        }
        Err(last)
    }
}

fn same_id(query: &[u8], reply: &[u8]) -> bool {
    query.len() >= 2 && reply.len() >= 12 && query[..2] == reply[..2]
}

async fn udp_exchange(
    addr: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ForwardError> {
    let io = |source| ForwardError::Io { addr, source };
    // a socket per query: replies cannot be mixed up between concurrent clients
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(addr).await.map_err(io)?;
    sock.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| ForwardError::Timeout(addr))?
            .map_err(io)?;
        // a stray datagram with another id is not our reply
        if same_id(query, &buf[..n]) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ForwardError> {
    let io = |source| ForwardError::Io { addr, source };
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(io)?;
        let len = u16::try_from(query.len()).map_err(|_| ForwardError::BadReply(addr))?;
        let mut msg = Vec::with_capacity(query.len() + 2);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(query);
        s.write_all(&msg).await.map_err(io)?;
        let mut lenbuf = [0u8; 2];
        s.read_exact(&mut lenbuf).await.map_err(io)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(lenbuf))];
        s.read_exact(&mut reply).await.map_err(io)?;
        if !same_id(query, &reply) {
            return Err(ForwardError::BadReply(addr));
        }
        Ok(reply)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ForwardError::Timeout(addr))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  fd00::53 # v6\n\
                    nameserver fe80::1%eth0\n;nameserver 1.1.1.1\noptions ndots:5\nnameserver bogus\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fd00::53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn systemd_stub_is_replaced_by_the_real_servers() {
        let dir = std::env::temp_dir().join(format!("dns-fwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stub = dir.join("stub.conf");
        let real = dir.join("real.conf");
        let plain = dir.join("plain.conf");
        std::fs::write(&stub, "nameserver 127.0.0.53\noptions edns0\n").unwrap();
        std::fs::write(&real, "nameserver 192.0.2.1\nnameserver 192.0.2.2\n").unwrap();
        std::fs::write(&plain, "nameserver 192.0.2.9\n").unwrap();
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            upstreams_from(&stub, &real),
            vec![sa("192.0.2.1:53"), sa("192.0.2.2:53")]
        );
        assert_eq!(upstreams_from(&plain, &real), vec![sa("192.0.2.9:53")]);
        // no systemd list: keep the stub
        assert_eq!(
            upstreams_from(&stub, &dir.join("missing")),
            vec![sa("127.0.0.53:53")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
