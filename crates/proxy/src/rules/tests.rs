//! Table-driven tests of ruleset generation, full rendering and incremental transactions.

use super::*;
use crate::model::{Endpoint, Protocol, ServicePort};

fn ep(last: u8, local: bool) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 42, 0, last),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

fn sp(name: &str, eps: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: String::new(),
        protocol: Protocol::Tcp,
        port: 80,
        cluster_ips: vec![Ipv4Addr::new(10, 43, 0, 10)],
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
        table: "t".into(),
        local_cidr: Some("10.42.0.0/16".into()),
        masquerade_all: false,
        node_ips: vec![Ipv4Addr::new(192, 168, 1, 2)],
    }
}

const SVC: &str = "svc-default/web/tcp/80";
const EXT: &str = "ext-default/web/tcp/80";
const LOCAL: &str = "local-default/web/tcp/80";
const KEY: &str = "10.43.0.10 . tcp . 80";

fn ep_chain(last: u8) -> String {
    format!("ep-default/web/tcp/80__10.42.0.{last}/8080")
}

/// Expected facts about one generated ruleset.
struct Case {
    name: &'static str,
    port: ServicePort,
    /// (map, key, verdict) that must be present.
    elements: Vec<(&'static str, String, String)>,
    /// (chain, rule) that must be present.
    rules: Vec<(String, String)>,
    /// chains that must not exist.
    absent: Vec<String>,
}

#[test]
fn generation() {
    let mut np = sp("web", vec![ep(1, true), ep(2, false)]);
    np.node_port = Some(30080);
    np.external_ips = vec![Ipv4Addr::new(192, 0, 2, 1)];
    let mut np_none = np.clone();
    np_none.endpoints.clear();
    let mut local = np.clone();
    local.external_local = true;
    let mut local_none = local.clone();
    local_none.endpoints = vec![ep(2, false)];
    let mut itp = sp("web", vec![ep(1, true), ep(2, false)]);
    itp.internal_local = true;
    let mut itp_none = itp.clone();
    itp_none.endpoints = vec![ep(2, false)];
    let mut aff = sp("web", vec![ep(1, false), ep(2, false)]);
    aff.affinity_timeout = Some(30);
    let mut term = sp("web", vec![ep(1, false), ep(2, false)]);
    term.endpoints[0].ready = false;
    term.endpoints[0].terminating = true;
    let mut udp = sp("web", vec![ep(1, false)]);
    udp.protocol = Protocol::Udp;
    let mut sctp = udp.clone();
    sctp.protocol = Protocol::Sctp;

    let cases = vec![
        Case {
            name: "cluster ip with two endpoints",
            port: sp("web", vec![ep(1, false), ep(2, false)]),
            elements: vec![("service-ips", KEY.into(), format!("goto {SVC}"))],
            rules: vec![
                (SVC.into(), "ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade".into()),
                (SVC.into(), "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.42.0.1:8080".into()),
                (SVC.into(), "meta l4proto tcp dnat to 10.42.0.2:8080".into()),
            ],
            // without affinity no chain per endpoint
            absent: vec![EXT.into(), LOCAL.into(), ep_chain(1), ep_chain(2)],
        },
        Case {
            name: "no endpoints: rejected",
            port: sp("web", vec![]),
            elements: vec![("no-endpoint-services", KEY.into(), "goto reject-chain".into())],
            rules: vec![],
            absent: vec![SVC.into()],
        },
        Case {
            name: "node port and external ip",
            port: np,
            elements: vec![
                ("service-ips", KEY.into(), format!("goto {SVC}")),
                ("service-ips", "192.0.2.1 . tcp . 80".into(), format!("goto {EXT}")),
                ("service-nodeports", "tcp . 30080".into(), format!("goto {EXT}")),
            ],
            rules: vec![
                (EXT.into(), "jump mark-for-masquerade".into()),
                (EXT.into(), format!("goto {SVC}")),
            ],
            absent: vec![LOCAL.into()],
        },
        Case {
            name: "node port without endpoints: rejected",
            port: np_none,
            elements: vec![
                ("no-endpoint-services", KEY.into(), "goto reject-chain".into()),
                ("no-endpoint-services", "192.0.2.1 . tcp . 80".into(), "goto reject-chain".into()),
                ("no-endpoint-nodeports", "tcp . 30080".into(), "goto reject-chain".into()),
            ],
            rules: vec![],
            absent: vec![SVC.into(), EXT.into()],
        },
        Case {
            name: "externalTrafficPolicy Local",
            port: local,
            elements: vec![("service-nodeports", "tcp . 30080".into(), format!("goto {EXT}"))],
            rules: vec![
                (EXT.into(), format!("ip saddr 10.42.0.0/16 goto {SVC}")),
                (EXT.into(), "fib saddr type local jump mark-for-masquerade".into()),
                (EXT.into(), format!("goto {LOCAL}")),
                (LOCAL.into(), "meta l4proto tcp dnat to 10.42.0.1:8080".into()),
            ],
            absent: vec![],
        },
        Case {
            name: "externalTrafficPolicy Local without local endpoints: external traffic dropped",
            port: local_none,
            elements: vec![("service-nodeports", "tcp . 30080".into(), format!("goto {EXT}"))],
            rules: vec![(EXT.into(), "drop".into()), (EXT.into(), format!("fib saddr type local goto {SVC}"))],
            absent: vec![LOCAL.into()],
        },
        Case {
            name: "internalTrafficPolicy Local",
            port: itp,
            elements: vec![("service-ips", KEY.into(), format!("goto {LOCAL}"))],
            rules: vec![(LOCAL.into(), "meta l4proto tcp dnat to 10.42.0.1:8080".into())],
            absent: vec![ep_chain(1)],
        },
        Case {
            name: "internalTrafficPolicy Local without local endpoints: dropped",
            port: itp_none,
            elements: vec![("no-endpoint-services", KEY.into(), "drop".into())],
            rules: vec![],
            absent: vec![LOCAL.into()],
        },
        Case {
            name: "session affinity",
            port: aff,
            elements: vec![],
            rules: vec![
                (SVC.into(), format!("ip saddr @aff-default/web/tcp/80__10.42.0.1/8080 goto {}", ep_chain(1))),
                (SVC.into(), format!("numgen random mod 2 == 0 goto {}", ep_chain(1))),
                (SVC.into(), format!("goto {}", ep_chain(2))),
                (ep_chain(2), "update @aff-default/web/tcp/80__10.42.0.2/8080 { ip saddr }".into()),
                (ep_chain(2), "meta l4proto tcp dnat to 10.42.0.2:8080".into()),
            ],
            absent: vec![],
        },
        Case {
            name: "terminating endpoints skipped while ready ones exist",
            port: term,
            elements: vec![],
            rules: vec![(SVC.into(), "meta l4proto tcp dnat to 10.42.0.2:8080".into())],
            absent: vec![ep_chain(1)],
        },
        Case {
            name: "udp",
            port: udp,
            elements: vec![("service-ips", "10.43.0.10 . udp . 80".into(), "goto svc-default/web/udp/80".into())],
            rules: vec![("svc-default/web/udp/80".into(), "meta l4proto udp dnat to 10.42.0.1:8080".into())],
            absent: vec![],
        },
        Case {
            name: "sctp",
            port: sctp,
            elements: vec![],
            rules: vec![("svc-default/web/sctp/80".into(), "ip daddr 10.43.0.10 sctp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade".into())],
            absent: vec![],
        },
    ];
    for c in cases {
        let rs = Ruleset::build(&cfg(), std::slice::from_ref(&c.port));
        let (maps, chains, sets) = (rs.maps(), rs.chains(), rs.affinity_sets());
        for (m, k, v) in &c.elements {
            assert_eq!(
                maps[m].get(k.as_str()),
                Some(&v.as_str()),
                "{}: {m} {k}\n{rs:#?}",
                c.name
            );
        }
        // every endpoint the rules may DNAT to is in the hairpin set
        for f in rs.fragments() {
            for r in f.chains.values().flatten() {
                for ep in [1, 2, 3] {
                    let ip = Ipv4Addr::new(10, 42, 0, ep);
                    if r.contains(&format!("dnat to {ip}:")) || r.contains(&format!(": {ip} .")) {
                        assert!(rs.endpoint_ips.contains(&ip), "{}: {ip}", c.name);
                    }
                }
            }
        }
        for (chain, rule) in &c.rules {
            let rules = chains
                .get(chain.as_str())
                .unwrap_or_else(|| panic!("{}: no chain {chain}\n{rs:#?}", c.name));
            assert!(
                rules.contains(rule),
                "{}: {chain} lacks {rule:?}: {rules:#?}",
                c.name
            );
        }
        for chain in &c.absent {
            assert!(
                !chains.contains_key(chain.as_str()),
                "{}: unexpected {chain}",
                c.name
            );
        }
        // every chain a verdict or rule names exists, every set a rule names exists
        let text = rs.render_full("t");
        for word in text.split([' ', ',', '}', '{']) {
            if let Some(set) = word.strip_prefix('@') {
                if set.starts_with("aff-") {
                    assert!(sets.contains_key(set), "{}: set {set} missing", c.name);
                }
            }
        }
        for (chain, rules) in &chains {
            for r in rules.iter() {
                for target in r.split("goto ").skip(1) {
                    let target = target.split([' ', ',']).next().unwrap();
                    assert!(
                        chains.contains_key(target) || target == "reject-chain",
                        "{}: {chain} jumps to missing {target}",
                        c.name
                    );
                }
            }
        }
    }
}

#[test]
fn masquerade_modes() {
    let port = sp("web", vec![ep(1, false)]);
    let rule =
        |c: &RuleConfig| Ruleset::build(c, std::slice::from_ref(&port)).chains()[SVC].clone();
    let mut all = cfg();
    all.masquerade_all = true;
    assert_eq!(
        rule(&all)[0],
        "ip daddr 10.43.0.10 tcp dport 80 jump mark-for-masquerade"
    );
    let mut none = cfg();
    none.local_cidr = None;
    // no detector: only the endpoint choice (hairpin is masqueraded in postrouting)
    assert_eq!(rule(&none), vec!["meta l4proto tcp dnat to 10.42.0.1:8080"]);
}

#[test]
fn full_render_replaces_atomically() {
    let rs = Ruleset::build(&cfg(), &[sp("web", vec![ep(1, false)])]);
    let text = rs.render_full("oxkp-a");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "add table ip oxkp-a");
    assert_eq!(lines[1], "delete table ip oxkp-a");
    assert_eq!(lines[2], "table ip oxkp-a {");
    assert!(text.contains("elements = { 10.43.0.10 . tcp . 80 : goto svc-default/web/tcp/80 }"));
    assert!(text.contains("elements = { 192.168.1.2 }"));
    assert!(text.contains("type nat hook output priority -100; policy accept;"));
    assert!(text.contains("masquerade fully-random"));
    // hairpin: the endpoint's own address pair, masqueraded in postrouting
    assert!(text.contains("set hairpin-endpoints {\n    type ipv4_addr . ipv4_addr\n    elements = { 10.42.0.1 . 10.42.0.1 }"));
    assert!(text.contains(
        "ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade"
    ));
}

#[test]
fn incremental_transactions() {
    let c = cfg();
    let mut two = vec![
        sp("web", vec![ep(1, false), ep(2, false)]),
        sp("other", vec![ep(9, false)]),
    ];
    two[1].cluster_ips = vec![Ipv4Addr::new(10, 43, 0, 11)];
    let mut one = two.clone();
    one[0].endpoints.pop();
    let mut none = two.clone();
    none[0].endpoints.clear();
    let mut aff = two.clone();
    aff[0].affinity_timeout = Some(10);
    let mut aff_longer = aff.clone();
    aff_longer[0].affinity_timeout = Some(20);
    let mut other_cidr = c.clone();
    other_cidr.local_cidr = Some("10.99.0.0/16".into());
    let mut shared = two.clone();
    shared[0].endpoints.push(ep(9, false));
    let mut more_ips = c.clone();
    more_ips.node_ips.push(Ipv4Addr::new(192, 168, 1, 3));
    // (name, old, new, config of new, wanted lines, unwanted substrings)
    type DiffCase<'a> = (
        &'a str,
        &'a [ServicePort],
        &'a [ServicePort],
        &'a RuleConfig,
        Vec<String>,
        Vec<&'a str>,
    );
    let cases: Vec<DiffCase> = vec![
        ("unchanged", &two, &two, &c, vec![], vec!["chain", "element"]),
        (
            "one endpoint gone",
            &two,
            &one,
            &c,
            vec![
                format!("flush chain ip t {SVC}"),
                format!("add rule ip t {SVC} meta l4proto tcp dnat to 10.42.0.1:8080"),
                "delete element ip t hairpin-endpoints { 10.42.0.2 . 10.42.0.2 }".into(),
            ],
            // the other service and the verdict maps are not touched
            vec!["other", "service-ips", "delete chain", "10.42.0.1 . 10.42.0.1"],
        ),
        (
            "endpoint added",
            &one,
            &two,
            &c,
            vec![
                format!("flush chain ip t {SVC}"),
                format!("add rule ip t {SVC} numgen random mod 2 == 0 meta l4proto tcp dnat to 10.42.0.1:8080"),
                format!("add rule ip t {SVC} meta l4proto tcp dnat to 10.42.0.2:8080"),
                "add element ip t hairpin-endpoints { 10.42.0.2 . 10.42.0.2 }".into(),
            ],
            vec!["other", "delete", "add chain"],
        ),
        (
            "all endpoints gone",
            &two,
            &none,
            &c,
            vec![
                format!("delete element ip t service-ips {{ {KEY} }}"),
                format!("add element ip t no-endpoint-services {{ {KEY} : goto reject-chain }}"),
                format!("delete chain ip t {SVC}"),
            ],
            vec!["other"],
        ),
        (
            "affinity on",
            &two,
            &aff,
            &c,
            vec![
                "add set ip t aff-default/web/tcp/80__10.42.0.1/8080 { type ipv4_addr; flags dynamic,timeout; timeout 10s; }".into(),
                format!("add chain ip t {}", ep_chain(1)),
                format!("add rule ip t {} update @aff-default/web/tcp/80__10.42.0.1/8080 {{ ip saddr }}", ep_chain(1)),
            ],
            vec!["other"],
        ),
        (
            "affinity off",
            &aff,
            &two,
            &c,
            vec![
                "delete set ip t aff-default/web/tcp/80__10.42.0.1/8080".into(),
                format!("delete chain ip t {}", ep_chain(2)),
            ],
            vec!["other"],
        ),
        (
            "endpoint shared with another service: its hairpin pair stays",
            &shared,
            &two,
            &c,
            vec![format!("flush chain ip t {SVC}")],
            vec!["hairpin-endpoints", "other"],
        ),
        (
            "node ip added",
            &two,
            &two,
            &more_ips,
            vec!["add element ip t nodeport-ips { 192.168.1.3 }".into()],
            vec!["chain"],
        ),
    ];
    for (name, old, new, ncfg, want, unwanted) in cases {
        let a = Ruleset::build(&c, old);
        let b = Ruleset::build(ncfg, new);
        let diff = b
            .render_diff(&a, "t")
            .unwrap_or_else(|| panic!("{name}: no diff"));
        let lines: Vec<&str> = diff.lines().collect();
        for w in &want {
            assert!(
                lines.contains(&w.as_str()),
                "{name}: missing {w:?} in\n{diff}"
            );
        }
        for u in &unwanted {
            assert!(!diff.contains(u), "{name}: unexpected {u:?} in\n{diff}");
        }
        // removed chains are emptied before any is deleted, sets only after the chains
        let first_delete = lines.iter().position(|l| l.starts_with("delete chain"));
        if let Some(d) = first_delete {
            assert!(
                lines[d..].iter().all(|l| !l.starts_with("add ")),
                "{name}: adds after deletes\n{diff}"
            );
        }
    }
    // a changed affinity timeout or local CIDR needs the whole table replaced
    let a = Ruleset::build(&c, &aff);
    assert!(Ruleset::build(&c, &aff_longer)
        .render_diff(&a, "t")
        .is_none());
    let a = Ruleset::build(&c, &two);
    assert!(Ruleset::build(&other_cidr, &two)
        .render_diff(&a, "t")
        .is_none());
}

#[test]
fn stale_udp_conntrack() {
    let mut old = sp("dns", vec![ep(1, false), ep(2, false)]);
    old.protocol = Protocol::Udp;
    old.node_port = Some(30053);
    let mut new = old.clone();
    new.endpoints.remove(0);
    let got = stale_udp_flows(std::slice::from_ref(&old), std::slice::from_ref(&new));
    assert_eq!(
        got,
        vec![
            ConntrackFlush {
                orig_dst: None,
                port: 30053,
                nat_dst: Some(Ipv4Addr::new(10, 42, 0, 1))
            },
            ConntrackFlush {
                orig_dst: Some(Ipv4Addr::new(10, 43, 0, 10)),
                port: 80,
                nat_dst: Some(Ipv4Addr::new(10, 42, 0, 1))
            },
        ]
    );
    // endpoints appearing for a service that had none: its rejected flows are flushed
    let mut empty = old.clone();
    empty.endpoints.clear();
    let got = stale_udp_flows(std::slice::from_ref(&empty), std::slice::from_ref(&new));
    assert!(got.contains(&ConntrackFlush {
        orig_dst: Some(Ipv4Addr::new(10, 43, 0, 10)),
        port: 80,
        nat_dst: None
    }));
    // TCP needs nothing
    let mut tcp_old = old.clone();
    tcp_old.protocol = Protocol::Tcp;
    let mut tcp_new = new.clone();
    tcp_new.protocol = Protocol::Tcp;
    assert!(stale_udp_flows(&[tcp_old], &[tcp_new]).is_empty());
    // unchanged: nothing
    assert!(stale_udp_flows(std::slice::from_ref(&old), std::slice::from_ref(&old)).is_empty());
}

#[test]
fn unchanged_ports_keep_their_fragments() {
    let c = cfg();
    let mut ports = vec![sp("a", vec![ep(1, false)]), sp("b", vec![ep(2, false)])];
    ports[1].cluster_ips = vec![Ipv4Addr::new(10, 43, 0, 11)];
    let first = Ruleset::build(&c, &ports);
    ports[1].endpoints.push(ep(3, false));
    let second = Ruleset::build_from(&c, &ports, Some(&first));
    // the same result as generating everything again
    assert_eq!(second, Ruleset::build(&c, &ports));
    let a = "default/a/tcp/80";
    let b = "default/b/tcp/80";
    assert!(Arc::ptr_eq(&first.services[a], &second.services[a]));
    assert!(!Arc::ptr_eq(&first.services[b], &second.services[b]));
    // another local CIDR changes every service chain: nothing is reused
    let mut other = c.clone();
    other.local_cidr = Some("10.99.0.0/16".into());
    let third = Ruleset::build_from(&other, &ports, Some(&second));
    assert!(!Arc::ptr_eq(&second.services[a], &third.services[a]));
    assert_eq!(third, Ruleset::build(&other, &ports));
    // a removed port is gone
    let fourth = Ruleset::build_from(&c, &ports[..1], Some(&second));
    assert!(!fourth.services.contains_key(b));
    assert!(!fourth.endpoint_ips.contains(&Ipv4Addr::new(10, 42, 0, 3)));
}

#[test]
fn refresh_refills_in_place() {
    let c = cfg();
    let mut two = vec![
        sp("web", vec![ep(1, false), ep(2, false)]),
        sp("other", vec![ep(9, false)]),
    ];
    two[1].cluster_ips = vec![Ipv4Addr::new(10, 43, 0, 11)];
    two[0].affinity_timeout = Some(10);
    let mut one = two.clone();
    one[0].endpoints.pop();
    let old = Ruleset::build(&c, &two);
    let new = Ruleset::build(&c, &one);
    let text = new.render_refresh(&old, "t").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // the table (and the clients in the affinity sets) stays
    assert_eq!(lines[0], "add table ip t");
    assert!(!text.contains("delete table"), "{text}");
    for want in [
        "add set ip t aff-default/web/tcp/80__10.42.0.1/8080 { type ipv4_addr; flags dynamic,timeout; timeout 10s; }",
        "add chain ip t nat-prerouting { type nat hook prerouting priority -100; policy accept; }",
        "flush chain ip t nat-prerouting",
        "add rule ip t nat-prerouting jump services",
        "flush map ip t service-ips",
        "add element ip t service-ips { 10.43.0.10 . tcp . 80 : goto svc-default/web/tcp/80, 10.43.0.11 . tcp . 80 : goto svc-default/other/tcp/80 }",
        "flush set ip t hairpin-endpoints",
        "add element ip t hairpin-endpoints { 10.42.0.1 . 10.42.0.1, 10.42.0.9 . 10.42.0.9 }",
        "flush chain ip t svc-default/other/tcp/80",
        "add rule ip t svc-default/other/tcp/80 meta l4proto tcp dnat to 10.42.0.9:8080",
        "delete chain ip t ep-default/web/tcp/80__10.42.0.2/8080",
        "delete set ip t aff-default/web/tcp/80__10.42.0.2/8080",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{text}");
    }
    // every wanted chain is refilled: as many rules as the full rendering has
    let rules = lines.iter().filter(|l| l.starts_with("add rule")).count();
    let full = new.render_full("t");
    let in_chains = full
        .lines()
        .filter(|l| l.starts_with("    ") && !l.trim_start().starts_with("type "))
        .filter(|l| {
            !l.contains("elements") && !l.trim_start().starts_with(|c: char| c.is_ascii_digit())
        })
        .count();
    assert_eq!(rules, in_chains, "{text}\n---\n{full}");
    // elements of the old map and sets are dropped before chains are deleted
    let flush = lines
        .iter()
        .position(|l| *l == "flush map ip t service-ips")
        .unwrap();
    let delete = lines
        .iter()
        .position(|l| l.starts_with("delete chain"))
        .unwrap();
    assert!(flush < delete);
    // another affinity timeout: the set must be recreated, a replace
    let mut longer = two.clone();
    longer[0].affinity_timeout = Some(20);
    assert!(Ruleset::build(&c, &longer)
        .render_refresh(&old, "t")
        .is_none());
}

#[test]
fn endpoint_choice() {
    let many = |n: u8, aff: bool| {
        let mut p = sp("web", (1..=n).map(|i| ep(i, false)).collect());
        p.affinity_timeout = aff.then_some(30);
        let rs = Ruleset::build(&cfg(), &[p]);
        let rules = rs.chains()[SVC].clone();
        // without the masquerade rule and the affinity lookups
        rules
            .into_iter()
            .filter(|r| !r.contains("mark-for-masquerade") && !r.starts_with("ip saddr @"))
            .collect::<Vec<String>>()
    };
    // a cascade: rule i matches with probability 1/(n-i), the last one takes the rest
    let three = many(3, false);
    assert_eq!(
        three,
        vec![
            "numgen random mod 3 == 0 meta l4proto tcp dnat to 10.42.0.1:8080",
            "numgen random mod 2 == 0 meta l4proto tcp dnat to 10.42.0.2:8080",
            "meta l4proto tcp dnat to 10.42.0.3:8080",
        ]
    );
    let n = CASCADE_MAX as u8;
    let cascade = many(n, false);
    assert_eq!(cascade.len(), CASCADE_MAX);
    for (i, r) in cascade.iter().enumerate().take(CASCADE_MAX - 1) {
        assert!(
            r.starts_with(&format!("numgen random mod {} == 0 ", CASCADE_MAX - i)),
            "{r}"
        );
        assert!(
            r.ends_with(&format!("dnat to 10.42.0.{}:8080", i + 1)),
            "{r}"
        );
    }
    // above it: one rule with a numgen map over every endpoint
    let big = many(n + 1, false);
    assert_eq!(big.len(), 1);
    assert!(big[0].starts_with(&format!("meta l4proto tcp dnat to numgen random mod {} map {{ 0 : 10.42.0.1 . 8080, 1 : 10.42.0.2 . 8080, ", n + 1)), "{}", big[0]);
    assert!(big[0].ends_with(&format!("{n} : 10.42.0.{} . 8080 }}", n + 1)));
    // with affinity the choice is among endpoint chains
    let aff = many(2, true);
    assert_eq!(
        aff,
        vec![
            format!("numgen random mod 2 == 0 goto {}", ep_chain(1)),
            format!("goto {}", ep_chain(2))
        ]
    );
    let aff_big = many(n + 1, true);
    assert_eq!(aff_big.len(), 1);
    assert!(aff_big[0].starts_with(&format!(
        "numgen random mod {} vmap {{ 0 : goto {}, ",
        n + 1,
        ep_chain(1)
    )));
}
