//! End-to-end tests with several nodes on one host: the server's node on the host, further
//! `oxkube agent`s joined with the token, each in a network namespace of its own on a test
//! bridge. Nodes become Ready, the scheduler places pods on them, pods reach pods on other
//! nodes by pod IP (host-gw and vxlan), the host reaches pods on other nodes, a deleted node's
//! routes go away, and a failed node's pods are replaced on the surviving node. Needs root.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{drop_image, MultiNode, IMAGE};
use serde_json::{json, Value};

fn ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Waits until every node is Ready with a pod CIDR; returns name -> podCIDR.
fn wait_nodes(mn: &MultiNode) -> Vec<(String, String)> {
    let names = mn.node_names();
    mn.wait_for("all nodes Ready with pod CIDRs", 90, || {
        let list = mn.get_json(&["get", "nodes"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for n in &names {
            let node = items.iter().find(|i| i["metadata"]["name"] == *n)?;
            let cidr = node["spec"]["podCIDR"].as_str()?;
            if !ready(node) {
                return None;
            }
            out.push((n.clone(), cidr.to_string()));
        }
        Some(out)
    })
}

/// A web server pod pinned by the scheduler (nodeSelector on the hostname label) to `node`,
/// serving its node's name.
fn web_pod(name: &str, node: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "web", "image": IMAGE,
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                // index.html names the node; cgi-bin/ip echoes the client's address
                "command": ["sh", "-c", "mkdir -p /www/cgi-bin && echo \"$NODE\" > /www/index.html && head -c 300000 /dev/zero > /www/big && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www"]
            }]
        }
    })
    .to_string()
}

/// Waits for a pod to run; returns (node, pod IP).
fn wait_running(mn: &MultiNode, name: &str) -> (String, String) {
    mn.wait_for_ok(&format!("pod {name} Running"), 90, || {
        let p = mn.get_json(&["get", "pod", name]);
        let running = (
            p["status"]["phase"] == "Running",
            p["spec"]["nodeName"].as_str(),
            p["status"]["podIP"].as_str(),
        );
        match running {
            (true, Some(node), Some(ip)) => Ok((node.to_string(), ip.to_string())),
            _ => Err(format!("status: {}", p["status"])),
        }
    })
}

/// `wget` from inside pod `from` to `ip:8080`; the page names the serving node.
fn fetch_from_pod(mn: &MultiNode, from: &str, ip: &str) -> Result<String, String> {
    fetch_url_from_pod(mn, from, &format!("http://{ip}:8080/"))
}

fn fetch_url_from_pod(mn: &MultiNode, from: &str, url: &str) -> Result<String, String> {
    let out = mn.server.kubectl_raw(&[
        "exec", from, "--", "timeout", "5", "wget", "-q", "-O", "-", url,
    ]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        // `timeout` exits 124 when wget hung (no answer); kubectl's own failures say so on stderr
        Err(format!(
            "kubectl exec {from} -- wget {url}: {}; stdout: {:?}; stderr: {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A plain HTTP GET from the test process (on the host).
fn fetch_from_host(ip: &str) -> Result<String, String> {
    let addr = format!("{ip}:8080").parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// `ip route show <cidr>` (and, for vxlan, the FDB) in node `i`'s namespace.
fn routes_to(mn: &MultiNode, i: usize, cidr: &str) -> String {
    let out = mn.in_node(i, "ip", &["-4", "route", "show", cidr]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One web pod per node, placed by the scheduler; returns (pod, node, pod IP) per node.
fn web_pods(mn: &MultiNode, nodes: &[(String, String)]) -> Vec<(String, String, String)> {
    for (i, (node, _)) in nodes.iter().enumerate() {
        mn.server
            .kubectl_stdin(&["apply", "-f", "-"], &web_pod(&format!("web-{i}"), node));
    }
    let mut pods = Vec::new();
    for (i, (node, cidr)) in nodes.iter().enumerate() {
        let (on, ip) = wait_running(mn, &format!("web-{i}"));
        assert_eq!(&on, node, "web-{i} runs where its nodeSelector says");
        let net: podnet::plan::Ipv4Net = cidr.parse().unwrap();
        assert!(
            net.contains(ip.parse().unwrap()),
            "pod IP {ip} is in its node's pod CIDR {cidr}"
        );
        pods.push((format!("web-{i}"), node.clone(), ip));
    }
    pods
}

/// Every pod reaches every pod on another node by pod IP, both ways.
fn all_pairs_reach(mn: &MultiNode, pods: &[(String, String, String)]) {
    for (from, from_node, _) in pods {
        for (_, to_node, ip) in pods {
            if from_node == to_node {
                continue;
            }
            let got = mn.wait_for_ok(&format!("{from} -> {ip}"), 20, || {
                fetch_from_pod(mn, from, ip)
            });
            assert_eq!(&got, to_node, "{from} ({from_node}) fetched {ip}");
        }
    }
}

fn cross_node(backend: &str) {
    let mut mn = MultiNode::start(backend, 2, drop_image, &[]);
    let nodes = wait_nodes(&mn);
    assert_eq!(nodes.len(), 3);
    let mut cidrs: Vec<&String> = nodes.iter().map(|(_, c)| c).collect();
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), 3, "every node has its own pod CIDR: {nodes:?}");

    let pods = web_pods(&mn, &nodes);
    // joined agents give ClusterFirst pods the cluster DNS the server runs
    let dns_ip = mn.server.kubectl(&[
        "get",
        "svc",
        "-n",
        "kube-system",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    for (pod, _, _) in &pods {
        let conf = mn
            .server
            .kubectl(&["exec", pod, "--", "cat", "/etc/resolv.conf"]);
        assert!(
            conf.contains(&format!("nameserver {}", dns_ip.trim())),
            "{pod}: {conf}"
        );
    }
    all_pairs_reach(&mn, &pods);
    // bulk transfers (full-size segments) cross too: node 1's pod fetches 300 kB from node 2's
    let url = format!("http://{}:8080/big", pods[2].2);
    let out = mn.server.kubectl_raw(&[
        "exec",
        &pods[1].0,
        "--",
        "sh",
        "-c",
        &format!("timeout 10 wget -q -O - {url} | wc -c"),
    ]);
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if got != "300000" {
        panic!(
            "bulk fetch across nodes got {got:?} bytes, want 300000: {}; stderr: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            mn.network_dump()
        );
    }
    // pod-to-pod traffic keeps the source pod IP (not masqueraded)
    for (from, to) in [(1, 2), (2, 0), (0, 1)] {
        let url = format!("http://{}:8080/cgi-bin/ip", pods[to].2);
        let got = mn.wait_for_ok(
            &format!("client address seen by {}", pods[to].0),
            20,
            || fetch_url_from_pod(&mn, &pods[from].0, &url),
        );
        // busybox httpd listens on IPv6 and shows IPv4 clients as [::ffff:a.b.c.d]
        let got = got
            .trim_matches(|c| c == '[' || c == ']')
            .trim_start_matches("::ffff:");
        assert_eq!(
            got, pods[from].2,
            "{} -> {} keeps its source",
            pods[from].0, pods[to].0
        );
    }
    // traffic from a pod to outside the cluster CIDR leaves with its node's address
    let listener = std::net::TcpListener::bind((mn.net.host_ip().as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf);
        let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        peer.ip().to_string()
    });
    let url = format!("http://{}:{port}/", mn.net.host_ip());
    assert_eq!(
        fetch_url_from_pod(&mn, &pods[1].0, &url).as_deref(),
        Ok("ok")
    );
    assert_eq!(
        seen.join().unwrap(),
        mn.agents[0].ip,
        "egress from a pod on node 2 is masqueraded to node 2's address"
    );

    // the host (the first node) reaches pods on the other nodes
    for (_, node, ip) in &pods[1..] {
        let got = mn.wait_for_ok(&format!("host -> {ip}"), 20, || fetch_from_host(ip));
        assert_eq!(&got, node);
    }

    // the pod network as the kernel sees it
    let (last_node, last_cidr) = nodes[2].clone();
    let host_route = routes_to(&mn, 0, &last_cidr);
    match backend {
        "host-gw" => assert!(
            host_route.contains(&format!("via {}", mn.agents[1].ip)),
            "host-gw route on the host: {host_route:?}"
        ),
        _ => {
            assert!(
                host_route.contains(&format!("dev oxkube.{}", mn.vni)),
                "vxlan route on the host: {host_route:?}"
            );
            let fdb = mn.in_node(
                1,
                "bridge",
                &["fdb", "show", "dev", &format!("oxkube.{}", mn.vni)],
            );
            let fdb = String::from_utf8_lossy(&fdb.stdout).into_owned();
            assert!(
                fdb.contains(&format!("dst {}", mn.agents[1].ip)),
                "fdb of node 1 points at node 2: {fdb}"
            );
        }
    }
    assert!(!routes_to(&mn, 1, &last_cidr).is_empty());

    // a node deleted from the API loses its routes on the others (its agent is gone first:
    // a running kubelet would register it again)
    mn.agents[1].fail();
    let deleted_at = Instant::now();
    mn.server
        .kubectl(&["delete", "node", &last_node, "--wait=false"]);
    mn.wait_for_ok("routes to the deleted node's pod CIDR removed", 30, || {
        let (host, n1) = (routes_to(&mn, 0, &last_cidr), routes_to(&mn, 1, &last_cidr));
        if host.is_empty() && n1.is_empty() {
            Ok(())
        } else {
            Err(format!("left on the host: {host:?}, on node 2: {n1:?}"))
        }
    });
    println!(
        "{backend}: routes to a deleted node gone on the others {} ms after the delete",
        deleted_at.elapsed().as_millis()
    );
    // the other routes stay
    let (_, middle_cidr) = &nodes[1];
    assert!(!routes_to(&mn, 0, middle_cidr).is_empty());
    let got = fetch_from_host(&pods[1].2).expect("node 2 still reachable");
    assert_eq!(got, pods[1].1);

    // uninstalling node 2's agent removes its pod network: routes, vxlan device, nft table,
    // pod bridge
    assert!(!routes_to(&mn, 1, &nodes[0].1).is_empty());
    assert!(mn
        .in_node(1, "nft", &["list", "table", "ip", "oxkube-podnet"])
        .status
        .success());
    mn.agents[0].kill9();
    let cidr = mn.server.agent.as_ref().unwrap().cluster_cidr.clone();
    let out = mn.in_node(
        1,
        &common::bin(),
        &[
            "uninstall-network",
            "--cluster-cidr",
            &cidr,
            "--vxlan-vni",
            &mn.vni.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(routes_to(&mn, 1, &nodes[0].1), "");
    let vx = format!("oxkube.{}", mn.vni);
    for (what, cmd, args) in [
        (
            "vxlan device",
            "ip",
            vec!["link", "show", "dev", vx.as_str()],
        ),
        ("pod bridge", "ip", vec!["link", "show", "dev", "oxk0"]),
        (
            "masquerade table",
            "nft",
            vec!["list", "table", "ip", "oxkube-podnet"],
        ),
    ] {
        assert!(
            !mn.in_node(1, cmd, &args).status.success(),
            "{what} left after uninstall-network"
        );
    }
}

#[test]
fn pods_reach_pods_on_other_nodes_host_gw() {
    cross_node("host-gw");
}

#[test]
fn pods_reach_pods_on_other_nodes_vxlan() {
    cross_node("vxlan");
}

/// The default `auto` backend: nodes on one subnet route directly, a node behind a router
/// (the host, between two test bridges) is reached through VXLAN.
#[test]
fn auto_backend_routes_directly_or_through_vxlan() {
    let mut mn = MultiNode::start("auto", 1, drop_image, &[]);
    mn.add_routed_agent();
    let nodes = wait_nodes(&mn);
    let pods = web_pods(&mn, &nodes);
    all_pairs_reach(&mn, &pods);
    for (_, node, ip) in &pods[1..] {
        let got = mn.wait_for_ok(&format!("host -> {ip}"), 20, || fetch_from_host(ip));
        assert_eq!(&got, node);
    }
    let vx = format!("oxkube.{}", mn.vni);
    // the host is on both subnets: direct routes to both agents
    let r = routes_to(&mn, 0, &nodes[2].1);
    assert!(r.contains(&format!("via {}", mn.agents[1].ip)), "{r:?}");
    let r = routes_to(&mn, 0, &nodes[1].1);
    assert!(r.contains(&format!("via {}", mn.agents[0].ip)), "{r:?}");
    // the agents share no subnet: the overlay between them, direct to the host
    let r = routes_to(&mn, 1, &nodes[2].1);
    assert!(r.contains(&format!("dev {vx}")), "{r:?}");
    let r = routes_to(&mn, 2, &nodes[1].1);
    assert!(r.contains(&format!("dev {vx}")), "{r:?}");
    let r = routes_to(&mn, 1, &nodes[0].1);
    assert!(r.contains(&format!("via {}", mn.net.host_ip())), "{r:?}");
}

/// Issue 5's node failure: a Deployment spread over two nodes; the second node dies (agent,
/// shims and containers killed, its link down); with a 5 s grace period and 5 s default
/// tolerations its pods are replaced on the surviving node.
#[test]
fn pods_of_a_failed_node_are_replaced_on_the_surviving_node() {
    let mut mn = MultiNode::start(
        "host-gw",
        1,
        drop_image,
        &[
            "--node-monitor-period",
            "1s",
            "--node-monitor-grace-period",
            "5s",
            "--default-not-ready-toleration-seconds",
            "5",
            "--default-unreachable-toleration-seconds",
            "5",
        ],
    );
    let nodes = wait_nodes(&mn);
    let (survivor, dead) = (nodes[0].0.clone(), nodes[1].0.clone());
    // the node lifecycle controller lifts the not-ready taint a moment after Ready: until then
    // the spread constraint (nodeTaintsPolicy Honor) does not count that node
    mn.wait_for("no node.kubernetes.io taints", 30, || {
        let list = mn.get_json(&["get", "nodes"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .all(|n| {
                n["spec"]["taints"].as_array().is_none_or(|t| {
                    !t.iter().any(|t| {
                        t["key"]
                            .as_str()
                            .is_some_and(|k| k.starts_with("node.kubernetes.io/"))
                    })
                })
            })
            .then_some(())
    });
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "spread"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "spread"}},
            "template": {
                "metadata": {"labels": {"app": "spread"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "DoNotSchedule", "nodeTaintsPolicy": "Honor",
                        "labelSelector": {"matchLabels": {"app": "spread"}}
                    }],
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]
                }
            }
        }
    });
    mn.server
        .kubectl_stdin(&["apply", "-f", "-"], &deploy.to_string());
    let running_on = |mn: &MultiNode| -> Vec<String> {
        let list = mn.get_json(&["get", "pods", "-l", "app=spread"]);
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(String::from))
            .collect()
    };
    mn.wait_for("4 pods running, 2 per node", 90, || {
        let on = running_on(&mn);
        (on.len() == 4 && on.iter().filter(|n| **n == dead).count() == 2).then_some(())
    });
    // pods get the default NoExecute tolerations with the configured seconds
    let pods = mn.get_json(&["get", "pods", "-l", "app=spread"]);
    let tol = &pods["items"][0]["spec"]["tolerations"];
    assert!(
        tol.as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["tolerationSeconds"] == 5),
        "{tol}"
    );

    let failed_at = Instant::now();
    mn.agents[0].fail();
    mn.wait_for("4 pods running on the surviving node", 90, || {
        let on = running_on(&mn);
        (on.len() == 4 && on.iter().all(|n| *n == survivor)).then_some(())
    });
    let took = failed_at.elapsed();
    println!(
        "node failure: pods replaced on the surviving node {:.1} s after the node died",
        took.as_secs_f64()
    );
    let node = mn.get_json(&["get", "node", &dead]);
    let taints = node["spec"]["taints"].to_string();
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "dead node is tainted unreachable: {taints}"
    );
}

/// Test clusters created at the same moment (other tests of this binary, other test processes)
/// never share a cluster CIDR, a test subnet or a VNI: each is reserved host-wide as it is
/// picked, before any route of it exists (two clusters with one CIDR replace each other's
/// routes and both bridges route the same pod CIDR).
#[test]
fn concurrent_test_clusters_get_distinct_networks() {
    let nets: Vec<common::AgentNet> = (0..20).map(|_| common::AgentNet::unique()).collect();
    let mut cidrs: Vec<&str> = nets.iter().map(|n| n.cluster_cidr.as_str()).collect();
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), nets.len(), "{cidrs:?}");
    // a range is free again once its cluster is gone
    let x = nets[0].cluster_cidr.clone();
    let name = format!("cidr-{}", x.trim_end_matches(".0.0/16"));
    assert!(common::Lease::try_take(&name).is_none());
    drop(nets);
    assert!(common::Lease::try_take(&name).is_some());
}
