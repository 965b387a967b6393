//! Table-driven tests of the endpoint slice, Endpoints subset and load-balancer computations.

use super::*;
use serde_json::json;

fn svc(spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
        "spec": spec,
    }))
    .unwrap()
}

/// A pod: name, IP, ready, terminating, node.
fn pod(name: &str, ip: &str, ready: bool, terminating: bool) -> Arc<Pod> {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i",
                 "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
    });
    if terminating {
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    Arc::new(serde_json::from_value(p).unwrap())
}

#[test]
fn inclusion_table() {
    let cases: Vec<(&str, Arc<Pod>, bool, bool)> = vec![
        ("running", pod("a", "10.42.0.2", true, false), false, true),
        ("no ip", pod("a", "", true, false), false, false),
        (
            "terminating excluded",
            pod("a", "10.42.0.2", true, true),
            false,
            false,
        ),
        (
            "terminating included",
            pod("a", "10.42.0.2", true, true),
            true,
            true,
        ),
        (
            "succeeded",
            {
                let mut p = (*pod("a", "10.42.0.2", false, false)).clone();
                p.status.as_mut().unwrap().phase = Some("Succeeded".into());
                Arc::new(p)
            },
            true,
            false,
        ),
    ];
    for (name, p, term, want) in cases {
        assert_eq!(should_include(&p, term), want, "{name}");
    }
}

#[test]
fn conditions_table() {
    // (ready, terminating, publishNotReady) -> (ready, serving, terminating)
    let cases = [
        ((true, false, false), (true, true, false)),
        ((false, false, false), (false, false, false)),
        ((true, true, false), (false, true, true)),
        ((false, false, true), (true, false, false)),
        ((true, true, true), (true, true, true)),
    ];
    for ((r, t, pub_), want) in cases {
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": pub_, "ports": [{"port": 80}]}),
        );
        let ep = pod_endpoint(&s, &pod("a", "10.42.0.2", r, t), Some("z1".into())).unwrap();
        let c = ep.conditions.unwrap();
        assert_eq!(
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap()),
            want,
            "{r} {t} {pub_}"
        );
        assert_eq!(ep.zone.as_deref(), Some("z1"));
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
        assert_eq!(ep.target_ref.unwrap().name.as_deref(), Some("a"));
    }
}

#[test]
fn named_ports_resolve_per_pod() {
    let s = svc(json!({"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
        {"name": "num", "port": 81, "targetPort": 9000, "protocol": "TCP"}]}));
    let a = pod("a", "10.42.0.2", true, false);
    // b names its port differently: it serves only the numeric port and dns
    let mut b = (*pod("b", "10.42.0.3", true, false)).clone();
    b.spec.as_mut().unwrap().containers[0]
        .ports
        .as_mut()
        .unwrap()[0]
        .name = Some("web".into());
    let slices = desired_slices(&s, &[a, Arc::new(b)], &|_| None, 100);
    assert_eq!(slices.len(), 2);
    let mut port_counts: Vec<(usize, Vec<i32>)> = slices
        .iter()
        .map(|(p, e)| (e.len(), p.iter().map(|p| p.port.unwrap()).collect()))
        .collect();
    port_counts.sort();
    for (_, ports) in &mut port_counts {
        ports.sort();
    }
    assert_eq!(
        port_counts,
        vec![(1, vec![5353, 9000]), (1, vec![5353, 8080, 9000])]
    );
    // the dns port keeps its protocol
    assert!(slices[0]
        .0
        .iter()
        .any(|p| p.protocol.as_deref() == Some("UDP")));
}

#[test]
fn slices_are_capped_and_empty_service_gets_placeholder() {
    let s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}));
    let pods: Vec<Arc<Pod>> = (0..250)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.42.{}.{}", i / 200, i % 200 + 2),
                true,
                false,
            )
        })
        .collect();
    let slices = desired_slices(&s, &pods, &|_| None, MAX_ENDPOINTS_PER_SLICE);
    let sizes: Vec<usize> = slices.iter().map(|(_, e)| e.len()).collect();
    assert_eq!(sizes, vec![100, 100, 50]);
    let all: BTreeSet<&String> = slices
        .iter()
        .flat_map(|(_, e)| e.iter().flat_map(|e| &e.addresses))
        .collect();
    assert_eq!(all.len(), 250);
    let empty = desired_slices(&s, &[], &|_| None, 100);
    assert_eq!(empty.len(), 1);
    assert!(empty[0].0.is_empty() && empty[0].1.is_empty());
}

#[test]
fn hostname_only_for_matching_subdomain() {
    let s = svc(json!({"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}));
    let mut p = (*pod("a", "10.42.0.2", true, false)).clone();
    p.spec.as_mut().unwrap().hostname = Some("h0".into());
    p.spec.as_mut().unwrap().subdomain = Some("web".into());
    assert_eq!(
        pod_endpoint(&s, &p, None).unwrap().hostname.as_deref(),
        Some("h0")
    );
    p.spec.as_mut().unwrap().subdomain = Some("other".into());
    assert_eq!(pod_endpoint(&s, &p, None).unwrap().hostname, None);
    assert_eq!(
        managed_labels(&s).get(HEADLESS_LABEL).map(String::as_str),
        Some("")
    );
}

#[test]
fn legacy_subsets_table() {
    let ready = pod("a", "10.42.0.3", true, false);
    let unready = pod("b", "10.42.0.2", false, false);
    let terminating = pod("c", "10.42.0.4", true, true);
    let pods = vec![ready, unready, terminating];
    // (publishNotReadyAddresses, addresses, notReadyAddresses)
    let cases = [
        (false, vec!["10.42.0.3"], vec!["10.42.0.2"]),
        (true, vec!["10.42.0.2", "10.42.0.3", "10.42.0.4"], vec![]),
    ];
    for (pub_, want_ready, want_not) in cases {
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": pub_,
                           "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}),
        );
        let (subsets, truncated) = desired_subsets(&s, &pods, MAX_ENDPOINTS_CAPACITY);
        assert!(!truncated);
        assert_eq!(subsets.len(), 1);
        let ips = |l: &Option<Vec<EndpointAddress>>| -> Vec<String> {
            l.iter().flatten().map(|a| a.ip.clone()).collect()
        };
        assert_eq!(ips(&subsets[0].addresses), want_ready, "{pub_}");
        assert_eq!(ips(&subsets[0].not_ready_addresses), want_not, "{pub_}");
        let ports = subsets[0].ports.as_ref().unwrap();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("http"), 8080)
        );
    }
}

#[test]
fn legacy_subsets_truncate_over_capacity() {
    let s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
    let pods: Vec<Arc<Pod>> = (0..12)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.42.0.{}", i + 2),
                i % 2 == 0,
                false,
            )
        })
        .collect();
    let (subsets, truncated) = desired_subsets(&s, &pods, 10);
    assert!(truncated);
    let n: usize = subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(n, 10);
    let (_, truncated) = desired_subsets(&s, &pods, 12);
    assert!(!truncated);
}

#[test]
fn lb_ingress_uses_ready_nodes() {
    let node = |name: &str, ip: &str, ready: bool, cordoned: bool| -> Arc<Node> {
        Arc::new(serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"unschedulable": cordoned},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        })).unwrap())
    };
    let nodes = vec![
        node("b", "192.168.1.3", true, false),
        node("a", "192.168.1.2", true, false),
        node("c", "192.168.1.4", false, false),
        node("d", "192.168.1.5", true, true),
    ];
    let ips: Vec<String> = lb_ingress(&nodes)
        .into_iter()
        .map(|i| i.ip.unwrap())
        .collect();
    assert_eq!(ips, vec!["192.168.1.2", "192.168.1.3"]);
    assert!(lb_ingress(&[]).is_empty());
}
