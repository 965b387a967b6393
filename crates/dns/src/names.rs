//! Parsing of query names against the cluster domain and the reverse zones, after the
//! Kubernetes DNS specification (`svc`, `pod`, SRV and PTR name schemas).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a name inside the cluster domain refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterName<'a> {
    /// The cluster domain itself (`cluster.local`).
    Apex,
    /// `dns-version.<zone>`: the schema version TXT record.
    DnsVersion,
    /// `ns.dns.<zone>`: the name server of the zone.
    NameServer,
    /// `svc.<zone>` or `pod.<zone>`: exist, hold no records.
    Subzone,
    /// `<ns>.svc.<zone>`.
    ServiceNamespace { namespace: &'a str },
    /// `<ns>.pod.<zone>`.
    PodNamespace { namespace: &'a str },
    /// `<service>.<ns>.svc.<zone>`.
    Service {
        service: &'a str,
        namespace: &'a str,
    },
    /// `<hostname>.<service>.<ns>.svc.<zone>`: one endpoint of a headless service.
    Endpoint {
        endpoint: &'a str,
        service: &'a str,
        namespace: &'a str,
    },
    /// `_<port>._<proto>.<service>.<ns>.svc.<zone>`.
    Srv {
        port: &'a str,
        protocol: &'a str,
        service: &'a str,
        namespace: &'a str,
    },
    /// `a-b-c-d.<ns>.pod.<zone>` (IPv6 with `-` for `:`).
    Pod { ip: IpAddr, namespace: &'a str },
    /// Inside the zone but matching no schema: NXDOMAIN.
    Unknown,
}

/// Lowercase `name` and strip its trailing dot: the form every lookup works on.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Classify a normalized name; `None` when it is outside `zone` (also normalized).
pub fn classify<'a>(name: &'a str, zone: &str) -> Option<ClusterName<'a>> {
    let rest = if name == zone {
        return Some(ClusterName::Apex);
    } else {
        name.strip_suffix(zone)?.strip_suffix('.')?
    };
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Some(ClusterName::Unknown);
    }
    // labels read from the zone outwards
    let parsed = match labels.as_slice() {
        ["dns-version"] => ClusterName::DnsVersion,
        ["ns", "dns"] => ClusterName::NameServer,
        ["svc"] | ["pod"] => ClusterName::Subzone,
        [ns, "svc"] => ClusterName::ServiceNamespace { namespace: ns },
        [ns, "pod"] => ClusterName::PodNamespace { namespace: ns },
        [svc, ns, "svc"] => ClusterName::Service {
            service: svc,
            namespace: ns,
        },
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            ClusterName::Srv {
                port: &port[1..],
                protocol: &proto[1..],
                service: svc,
                namespace: ns,
            }
        }
        [ep, svc, ns, "svc"] if !ep.starts_with('_') => ClusterName::Endpoint {
            endpoint: ep,
            service: svc,
            namespace: ns,
        },
        [pod, ns, "pod"] => match pod_ip(pod) {
            Some(ip) => ClusterName::Pod { ip, namespace: ns },
            None => ClusterName::Unknown,
        },
        _ => ClusterName::Unknown,
    };
    Some(parsed)
}

/// The IP a pod label (`10-1-2-3`, `fd00--1`) spells.
pub fn pod_ip(label: &str) -> Option<IpAddr> {
    let v4 = label.replace('-', ".");
    if let Ok(ip) = v4.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(ip));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The label an IP gets where a name is needed (`10-1-2-3`, `fd00--1`), as CoreDNS spells
/// endpoints without a hostname.
pub fn ip_label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The IP a normalized reverse name (`4.3.2.1.in-addr.arpa`, 32 nibbles `.ip6.arpa`) stands
/// for; `None` for anything else, partial reverse names included.
pub fn parse_reverse(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 4 {
            return None;
        }
        for (i, p) in parts.iter().rev().enumerate() {
            if p.is_empty() || (p.len() > 1 && p.starts_with('0')) {
                return None;
            }
            octets[i] = p.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 32 {
            return None;
        }
        let mut v: u128 = 0;
        for p in parts.iter().rev() {
            if p.len() != 1 {
                return None;
            }
            v = (v << 4) | u128::from(u8::from_str_radix(p, 16).ok()?);
        }
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// The reverse name (without trailing dot) of an IP.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
                s.push('.');
                s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
                s.push('.');
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let z = "cluster.local";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: Vec<(&str, Option<ClusterName>)> = vec![
            ("example.com", None),
            ("local", None),
            ("xcluster.local", None),
            ("cluster.local", Some(ClusterName::Apex)),
            ("dns-version.cluster.local", Some(ClusterName::DnsVersion)),
            ("ns.dns.cluster.local", Some(ClusterName::NameServer)),
            ("svc.cluster.local", Some(ClusterName::Subzone)),
            ("pod.cluster.local", Some(ClusterName::Subzone)),
            (
                "default.svc.cluster.local",
                Some(ClusterName::ServiceNamespace {
                    namespace: "default",
                }),
            ),
            (
                "kube-system.pod.cluster.local",
                Some(ClusterName::PodNamespace {
                    namespace: "kube-system",
                }),
            ),
            (
                "web.default.svc.cluster.local",
                Some(ClusterName::Service {
                    service: "web",
                    namespace: "default",
                }),
            ),
            (
                "web-0.web.default.svc.cluster.local",
                Some(ClusterName::Endpoint {
                    endpoint: "web-0",
                    service: "web",
                    namespace: "default",
                }),
            ),
            (
                "_http._tcp.web.default.svc.cluster.local",
                Some(ClusterName::Srv {
                    port: "http",
                    protocol: "tcp",
                    service: "web",
                    namespace: "default",
                }),
            ),
            // one underscore label alone is no SRV name and no endpoint
            (
                "_tcp.web.default.svc.cluster.local",
                Some(ClusterName::Unknown),
            ),
            (
                "10-1-2-3.default.pod.cluster.local",
                Some(ClusterName::Pod {
                    ip: ip("10.1.2.3"),
                    namespace: "default",
                }),
            ),
            (
                "fd00--1.default.pod.cluster.local",
                Some(ClusterName::Pod {
                    ip: ip("fd00::1"),
                    namespace: "default",
                }),
            ),
            ("nope.default.pod.cluster.local", Some(ClusterName::Unknown)),
            (
                "a.b.c.d.default.svc.cluster.local",
                Some(ClusterName::Unknown),
            ),
            ("foo.cluster.local", Some(ClusterName::Unknown)),
            ("web..svc.cluster.local", Some(ClusterName::Unknown)),
        ];
        for (name, want) in cases {
            assert_eq!(classify(name, z), want, "{name}");
        }
    }

    #[test]
    fn normalize_lowercases_and_strips_the_root() {
        assert_eq!(
            normalize("Web.Default.SVC.cluster.local."),
            "web.default.svc.cluster.local"
        );
        assert_eq!(normalize("."), "");
    }

    #[test]
    fn reverse_names_round_trip() {
        for (ip, name) in [
            ("10.43.0.10", "10.0.43.10.in-addr.arpa"),
            ("192.168.1.2", "2.1.168.192.in-addr.arpa"),
            (
                "fd00::1",
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
            ),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(reverse_name(ip), name);
            assert_eq!(parse_reverse(name), Some(ip), "{name}");
        }
    }

    #[test]
    fn partial_or_malformed_reverse_names_are_not_ips() {
        for name in [
            "0.43.10.in-addr.arpa",
            "in-addr.arpa",
            "1.2.3.256.in-addr.arpa",
            "1.2.3.04.in-addr.arpa",
            "a.0.43.10.in-addr.arpa",
            "1.0.d.f.ip6.arpa",
            "example.com",
        ] {
            assert_eq!(parse_reverse(name), None, "{name}");
        }
    }

    #[test]
    fn ip_labels() {
        assert_eq!(ip_label("10.1.2.3".parse().unwrap()), "10-1-2-3");
        assert_eq!(ip_label("fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(pod_ip("fd00--1"), Some("fd00::1".parse().unwrap()));
        assert_eq!(pod_ip("10-1-2"), None);
    }
}
