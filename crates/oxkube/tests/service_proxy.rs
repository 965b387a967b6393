//! End-to-end test of the service proxy: a real `oxkube server` with its node agent, three
//! busybox httpd pods behind a Service (allocated clusterIP, explicit nodePort, selector-less
//! EndpointSlice, as upstream allows), driven by the real kubectl: requests from a pod and from
//! the host through the cluster IP and the node port are spread over every backend, a service
//! without endpoints is refused, an unready endpoint stops receiving traffic, the rules keep
//! working while the server is down and after it restarts, and `oxkube proxy-cleanup` removes
//! them. Needs root.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{drop_image, wait_for, Cluster, IMAGE};
use serde_json::Value;

/// GET http://addr/ from the host: the body, or the error.
fn host_get(addr: &str) -> Result<String, String> {
    let out = Command::new("timeout")
        .args([
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{addr}/"),
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn host_backends(addr: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| host_get(addr).unwrap_or_else(|e| panic!("GET {addr} from the host: {e}")))
        .collect()
}

/// The backends answering `n` requests made inside the client pod.
fn pod_backends(c: &Cluster, addr: &str, n: usize) -> BTreeSet<String> {
    let script = format!(
        "for i in $(seq {n}); do timeout 5 wget -q -O - http://{addr}/ || echo FAILED; done"
    );
    c.kubectl(&["exec", "client", "--", "sh", "-c", &script])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn slice_manifest(name: &str, ips: &[(String, bool)], node: &str) -> String {
    let mut eps = String::new();
    for (ip, ready) in ips {
        eps.push_str(&format!(
            "- addresses: [\"{ip}\"]\n  nodeName: {node}\n  conditions: {{ready: {ready}}}\n"
        ));
    }
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n- {{name: http, port: 8080, protocol: TCP}}\nendpoints:\n{eps}"
    )
}

#[test]
fn services_reach_pods_through_the_proxy() {
    let mut c = Cluster::start_with_agent(drop_image, &[]);
    let net = c.agent.clone().unwrap();
    let table = net.proxy_table();
    wait_for(&c, "node Ready", 60, || {
        let out = c.kubectl_raw(&["get", "node", &net.node_name, "-o", "json"]);
        let n: Value = serde_json::from_slice(&out.stdout).ok()?;
        n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(())
    });
    let node_ip = wait_for(&c, "node address", 30, || {
        let n: Value =
            serde_json::from_str(&c.kubectl(&["get", "node", &net.node_name, "-o", "json"]))
                .ok()?;
        n["status"]["addresses"]
            .as_array()?
            .iter()
            .find(|a| a["type"] == "InternalIP")
            .and_then(|a| a["address"].as_str().map(String::from))
    });

    let mut pods = String::new();
    for name in ["web-a", "web-b", "web-c"] {
        pods.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: httpd\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n"
        ));
    }
    pods.push_str(&format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n"
    ));
    c.kubectl_stdin(&["apply", "-f", "-"], &pods);
    let mut ips = Vec::new();
    for name in ["web-a", "web-b", "web-c", "client"] {
        let ip = wait_for(&c, &format!("pod {name} running"), 90, || {
            let p: Value =
                serde_json::from_str(&c.kubectl(&["get", "pod", name, "-o", "json"])).ok()?;
            (p["status"]["phase"] == "Running")
                .then(|| p["status"]["podIP"].as_str().map(String::from))
                .flatten()
        });
        ips.push(ip);
    }

    // cluster IPs come from this test cluster's own service CIDR (unique on this host); the
    // node port is picked so that concurrent test clusters do not ask for the same one
    let pid = std::process::id();
    let node_port = 30000 + (pid % 2700) as u16;
    let services = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: NodePort\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, nodePort: {node_port}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: empty}}\nspec:\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n"
    );
    c.kubectl_stdin(&["apply", "-f", "-"], &services);
    let ip_of = |name: &str| {
        c.kubectl(&["get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"])
            .trim()
            .to_string()
    };
    let (cluster_ip, empty_ip) = (ip_of("web"), ip_of("empty"));
    assert!(
        cluster_ip.starts_with(&net.service_cidr[..net.service_cidr.len() - 6]),
        "{cluster_ip} from {}",
        net.service_cidr
    );
    let node = net.node_name.clone();
    let backends: Vec<(String, bool)> = ips[..3].iter().map(|ip| (ip.clone(), true)).collect();
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &slice_manifest("web", &backends, &node),
    );

    let all: BTreeSet<String> = ["web-a", "web-b", "web-c"].map(String::from).into();
    let svc = format!("{cluster_ip}:80");
    let np = format!("{node_ip}:{node_port}");
    wait_for(&c, "the service answering", 30, || host_get(&svc).ok());
    assert_eq!(
        host_backends(&svc, 40),
        all,
        "from the host through the cluster IP"
    );
    assert_eq!(
        pod_backends(&c, &svc, 40),
        all,
        "from a pod through the cluster IP"
    );
    assert_eq!(
        host_backends(&np, 40),
        all,
        "from the host through the node port"
    );
    assert_eq!(
        pod_backends(&c, &np, 40),
        all,
        "from a pod through the node port"
    );

    // no endpoints: refused at once
    let err = host_get(&format!("{empty_ip}:80")).unwrap_err();
    assert!(err.contains("refused"), "{err}");

    // one backend unready: it stops receiving traffic
    let mut two = backends.clone();
    two[2].1 = false;
    c.kubectl_stdin(&["apply", "-f", "-"], &slice_manifest("web", &two, &node));
    let started = Instant::now();
    wait_for(&c, "web-c out of rotation", 10, || {
        (!host_backends(&svc, 10).contains("web-c")).then_some(())
    });
    eprintln!(
        "unready endpoint out of rotation after {:?}",
        started.elapsed()
    );
    let ab: BTreeSet<String> = ["web-a", "web-b"].map(String::from).into();
    assert_eq!(host_backends(&svc, 30), ab);

    // the rules outlive the proxy: traffic flows while the server is down and after it is back
    c.kill9();
    assert_eq!(host_backends(&svc, 20), ab, "while the server is down");
    c.spawn();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(host_backends(&svc, 20), ab, "after a restart");
    let rules = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        rules.contains(&format!("{cluster_ip} . tcp . 80")),
        "{rules}"
    );

    // uninstall: proxy-cleanup removes the table
    c.kill9();
    let out = Command::new(common::bin())
        .args(["proxy-cleanup", "--proxy-table", &table])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .unwrap();
    assert!(!listed.status.success(), "table {table} still there");
    // (without rules the address may be answered from outside this machine: only our pods'
    // answers count)
    assert!(
        !matches!(host_get(&svc), Ok(b) if all.contains(&b)),
        "the service still answers after cleanup"
    );
    c.spawn();
}
