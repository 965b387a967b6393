//! End-to-end tests of Services with the real kubectl: cluster IP and node port allocation
//! (each type, requested values, conflicts and bad requests, type changes, dry-run, release on
//! delete, concurrency, survival of a restart), the `kubernetes` Service and its endpoints,
//! and EndpointSlices / Endpoints / load-balancer status following real pods of the agent.

mod common;

use std::collections::BTreeSet;

use common::{drop_image, start_etcd, wait_for, Cluster, IMAGE};
use serde_json::Value;

fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl(&a)).unwrap()
}

fn cluster_ip(c: &Cluster, name: &str) -> String {
    json(c, &["get", "svc", name])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string()
}

fn node_port(c: &Cluster, name: &str) -> i64 {
    json(c, &["get", "svc", name])["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .unwrap()
}

fn in_service_cidr(ip: &str) -> bool {
    let a: std::net::Ipv4Addr = ip.parse().unwrap();
    let o = a.octets();
    o[0] == 10 && o[1] == 43 && a != std::net::Ipv4Addr::new(10, 43, 0, 0)
}

/// `kubectl create service <args> --tcp=80` fails with an error containing the given text,
/// for every (args, text) row.
#[track_caller]
fn assert_create_rejected(c: &Cluster, rows: &[(String, String)]) {
    for (args, want) in rows {
        let mut a = vec!["create", "service"];
        a.extend(args.split(' '));
        a.push("--tcp=80");
        let err = c.kubectl_err(&a);
        assert!(err.contains(want.as_str()), "create service {args}: {err}");
    }
}

#[test]
fn services_get_addresses_and_ports_with_upstream_errors() {
    let mut c = Cluster::start();
    // the kubernetes Service, its Endpoints and EndpointSlice
    let k = json(&c, &["get", "svc", "kubernetes", "-n", "default"]);
    assert_eq!(k["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(k["spec"]["ports"][0]["name"], "https");
    assert_eq!(k["spec"]["ports"][0]["port"], 443);
    assert_eq!(k["spec"]["ports"][0]["targetPort"], c.port);
    let ep = wait_for(&c, "kubernetes endpoints", 30, || {
        let out = c.kubectl_raw(&["get", "ep", "kubernetes", "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], c.port);
    let api_ip = ep["subsets"][0]["addresses"][0]["ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(api_ip.parse::<std::net::IpAddr>().is_ok());
    let slice = json(&c, &["get", "endpointslice", "kubernetes"]);
    assert_eq!(slice["endpoints"][0]["addresses"][0], api_ip.as_str());
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );

    // each type
    c.kubectl(&["create", "service", "clusterip", "a", "--tcp=80:8080"]);
    let a = json(&c, &["get", "svc", "a"]);
    let a_ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(in_service_cidr(&a_ip) && a_ip != "10.43.0.1", "{a_ip}");
    assert_eq!(a["spec"]["clusterIPs"], serde_json::json!([a_ip]));
    assert_eq!(a["spec"]["ipFamilies"], serde_json::json!(["IPv4"]));
    assert_eq!(a["spec"]["ipFamilyPolicy"], "SingleStack");
    c.kubectl(&["create", "service", "nodeport", "b", "--tcp=80:8080"]);
    let b_port = node_port(&c, "b");
    assert!((30000..=32767).contains(&b_port), "{b_port}");
    assert!(in_service_cidr(&cluster_ip(&c, "b")));
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: lb}
  ports: [{name: a, port: 80}, {name: b, port: 81}]
---
apiVersion: v1
kind: Service
metadata: {name: lbnp}
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  selector: {app: lb}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.com}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, selector: {app: x}, ports: [{port: 80}]}
"#,
    );
    let lb = json(&c, &["get", "svc", "lb"]);
    let lb_ports: BTreeSet<i64> = lb["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap())
        .chain([lb["spec"]["healthCheckNodePort"].as_i64().unwrap()])
        .collect();
    assert_eq!(lb_ports.len(), 3, "{lb_ports:?}");
    assert!(!lb_ports.contains(&b_port));
    let lbnp = json(&c, &["get", "svc", "lbnp"]);
    assert!(lbnp["spec"]["ports"][0].get("nodePort").is_none(), "{lbnp}");
    let ext = json(&c, &["get", "svc", "ext"]);
    assert!(ext["spec"].get("clusterIP").is_none(), "{ext}");
    assert_eq!(cluster_ip(&c, "headless"), "None");

    // requested values: bad and conflicting ones are 422 with upstream's messages
    let rejected = [
        (
            "clusterip out --clusterip=10.0.0.5".to_string(),
            r#"Service "out" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.5"}: failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"#.to_string(),
        ),
        (
            format!("clusterip dup --clusterip={a_ip}"),
            format!("failed to allocate IP {a_ip}: provided IP is already allocated"),
        ),
        (
            format!("nodeport np1 --node-port={b_port}"),
            format!("spec.ports[0].nodePort: Invalid value: {b_port}: provided port is already allocated"),
        ),
        (
            "nodeport np2 --node-port=8080".to_string(),
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767".to_string(),
        ),
    ];
    assert_create_rejected(&c, &rejected);
    // none of the rejected requests was stored
    assert!(!c.kubectl_raw(&["get", "svc", "dup"]).status.success());
    // the cluster IP is immutable
    let err = c.kubectl_err(&[
        "patch",
        "svc",
        "a",
        "-p",
        r#"{"spec":{"clusterIP":"10.43.200.200","clusterIPs":["10.43.200.200"]}}"#,
    ]);
    assert!(err.contains("may not change once set"), "{err}");

    // dry-run allocates nothing
    let dry = c.kubectl(&[
        "create",
        "service",
        "clusterip",
        "dry",
        "--clusterip=10.43.77.77",
        "--tcp=80",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    assert!(dry.contains("10.43.77.77"));
    c.kubectl(&[
        "create",
        "service",
        "clusterip",
        "wet",
        "--clusterip=10.43.77.77",
        "--tcp=80",
    ]);

    // type changes allocate and release
    c.kubectl(&["patch", "svc", "a", "-p", r#"{"spec":{"type":"NodePort"}}"#]);
    let a_port = node_port(&c, "a");
    assert!((30000..=32767).contains(&a_port) && a_port != b_port);
    assert_eq!(cluster_ip(&c, "a"), a_ip);
    c.kubectl(&["patch", "svc", "a", "-p", r#"{"spec":{"type":"ClusterIP","ports":[{"port":80,"targetPort":8080,"name":"80-8080","protocol":"TCP","nodePort":null}]}}"#]);
    assert!(json(&c, &["get", "svc", "a"])["spec"]["ports"][0]
        .get("nodePort")
        .is_none());
    c.kubectl(&[
        "create",
        "service",
        "nodeport",
        "reuse-port",
        &format!("--node-port={a_port}"),
        "--tcp=80",
    ]);
    c.kubectl(&["patch", "svc", "a", "-p", r#"{"spec":{"type":"ExternalName","externalName":"example.org","clusterIP":"","clusterIPs":null}}"#]);
    c.kubectl(&[
        "create",
        "service",
        "clusterip",
        "reuse-ip",
        &format!("--clusterip={a_ip}"),
        "--tcp=80",
    ]);
    c.kubectl(&[
        "patch",
        "svc",
        "ext",
        "-p",
        r#"{"spec":{"type":"ClusterIP","externalName":null,"ports":[{"port":80}]}}"#,
    ]);
    assert!(in_service_cidr(&cluster_ip(&c, "ext")));
    // delete releases
    c.kubectl(&["delete", "svc", "wet"]);
    c.kubectl(&[
        "create",
        "service",
        "clusterip",
        "wet2",
        "--clusterip=10.43.77.77",
        "--tcp=80",
    ]);

    // concurrent creates: one wins a requested IP, dynamic ones are all distinct
    let kc = (c.kubeconfig(), c.data_dir().join("kcache"));
    let run = |args: Vec<String>| {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kc.0)
            .arg("--cache-dir")
            .arg(&kc.1)
            .args(args)
            .output()
            .unwrap()
    };
    let wins = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let run = &run;
                s.spawn(move || {
                    run(vec![
                        "create".into(),
                        "service".into(),
                        "clusterip".into(),
                        format!("race{i}"),
                        "--clusterip=10.43.99.99".into(),
                        "--tcp=80".into(),
                    ])
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|o| o.status.success())
            .count()
    });
    assert_eq!(wins, 1);
    std::thread::scope(|s| {
        for i in 0..12 {
            let run = &run;
            s.spawn(move || {
                let o = run(vec![
                    "create".into(),
                    "service".into(),
                    "nodeport".into(),
                    format!("dyn{i}"),
                    "--tcp=80".into(),
                ]);
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            });
        }
    });
    let all = json(&c, &["get", "svc", "-A"]);
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut held = 0;
    for s in all["items"].as_array().unwrap() {
        if let Some(ip) = s["spec"]["clusterIP"].as_str().filter(|ip| *ip != "None") {
            assert!(ips.insert(ip.to_string()), "{ip} twice");
        }
        for p in s["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(np) = p["nodePort"].as_i64() {
                held += 1;
                ports.insert(np);
            }
        }
        if let Some(hc) = s["spec"]["healthCheckNodePort"].as_i64() {
            held += 1;
            ports.insert(hc);
        }
    }
    assert_eq!(held, ports.len(), "a node port is used twice");

    // a restart keeps every allocation: requested values stay taken, new ones stay distinct
    c.stop();
    c.spawn();
    let b_ip = cluster_ip(&c, "b");
    assert_create_rejected(
        &c,
        &[
            (
                format!("clusterip after --clusterip={b_ip}"),
                "provided IP is already allocated".to_string(),
            ),
            (
                format!("nodeport after --node-port={b_port}"),
                "provided port is already allocated".to_string(),
            ),
        ],
    );
    for i in 0..5 {
        c.kubectl(&[
            "create",
            "service",
            "clusterip",
            &format!("post{i}"),
            "--tcp=80",
        ]);
        let ip = cluster_ip(&c, &format!("post{i}"));
        assert!(ips.insert(ip.clone()), "{ip} handed out twice");
    }
    assert_eq!(cluster_ip(&c, "kubernetes"), "10.43.0.1");
}

#[test]
fn service_cidr_and_node_port_range_flags() {
    let c = Cluster::start_with(&[
        "--service-cidr",
        "10.96.0.0/24",
        "--service-node-port-range",
        "31000-31010",
    ]);
    assert_eq!(cluster_ip(&c, "kubernetes"), "10.96.0.1");
    c.kubectl(&["create", "service", "nodeport", "n", "--tcp=80"]);
    assert!(cluster_ip(&c, "n").starts_with("10.96.0."));
    assert!((31000..=31010).contains(&node_port(&c, "n")));
    let err = c.kubectl_err(&[
        "create",
        "service",
        "clusterip",
        "x",
        "--clusterip=10.43.0.9",
        "--tcp=80",
    ]);
    assert!(
        err.contains("The range of valid IPs is 10.96.0.0/24"),
        "{err}"
    );
    let err = c.kubectl_err(&[
        "create",
        "service",
        "nodeport",
        "y",
        "--node-port=30000",
        "--tcp=80",
    ]);
    assert!(
        err.contains("The range of valid ports is 31000-31010"),
        "{err}"
    );
}

fn pod_manifest(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: {IMAGE}
    command: ["sh", "-c", "trap 'sleep 2; exit 0' TERM; while true; do sleep 1; done"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      exec: {{command: ["cat", "/tmp/ready"]}}
      periodSeconds: 1
      failureThreshold: 1
"#
    )
}

/// The endpoints of the controller-managed slices of a Service: (ip, ready, serving, terminating).
fn slice_endpoints(c: &Cluster, svc: &str) -> Vec<(String, bool, bool, bool)> {
    let l = json(
        c,
        &[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={svc}"),
        ],
    );
    let mut out = Vec::new();
    for s in l["items"].as_array().unwrap() {
        assert_eq!(
            s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Service");
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let cond = |k: &str| e["conditions"][k].as_bool().unwrap_or(false);
            out.push((
                e["addresses"][0].as_str().unwrap().to_string(),
                cond("ready"),
                cond("serving"),
                cond("terminating"),
            ));
            if !cond("terminating") {
                assert_eq!(e["targetRef"]["kind"], "Pod");
                assert!(e["nodeName"].is_string());
            }
        }
        if !s["endpoints"].as_array().is_none_or(|a| a.is_empty()) {
            assert_eq!(
                s["ports"][0]["port"], 8080,
                "the named target port resolved"
            );
        }
    }
    out.sort();
    out
}

fn pod_ip(c: &Cluster, name: &str) -> String {
    wait_for(c, "pod IP", 90, || {
        json(c, &["get", "pod", name])["status"]["podIP"]
            .as_str()
            .map(String::from)
    })
}

#[test]
fn endpoints_follow_pod_readiness_and_deletion() {
    let c = Cluster::start_with_agent(drop_image, &[]);
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: weblb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: manual}
spec:
  ports: [{port: 80}]
"#,
    );
    // a selector-less Service is left alone; an empty one gets a placeholder slice
    wait_for(&c, "placeholder slice", 30, || {
        let l = json(
            &c,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        (l["items"].as_array().unwrap().len() == 1).then_some(())
    });
    c.kubectl_stdin(&["apply", "-f", "-"], &pod_manifest("p1"));
    c.kubectl_stdin(&["apply", "-f", "-"], &pod_manifest("p2"));
    let (ip1, ip2) = (pod_ip(&c, "p1"), pod_ip(&c, "p2"));
    // not ready yet: in the slice as not ready, in notReadyAddresses
    wait_for(&c, "two unready endpoints", 60, || {
        let e = slice_endpoints(&c, "web");
        (e.len() == 2 && e.iter().all(|e| !e.1 && !e.2)).then_some(())
    });
    let ep = json(&c, &["get", "ep", "web"]);
    assert_eq!(
        ep["subsets"][0]["notReadyAddresses"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{ep}"
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
    // p1 becomes ready
    c.kubectl(&["exec", "p1", "--", "touch", "/tmp/ready"]);
    wait_for(&c, "p1 ready in the slice", 60, || {
        let e = slice_endpoints(&c, "web");
        e.iter().any(|e| e.0 == ip1 && e.1 && e.2).then_some(())
    });
    wait_for(&c, "p1 in kubectl get ep", 30, || {
        let out = c.kubectl(&["get", "ep", "web"]);
        out.contains(&format!("{ip1}:8080")).then_some(())
    });
    let ep = json(&c, &["get", "ep", "web"]);
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], ip1.as_str());
    assert_eq!(ep["subsets"][0]["notReadyAddresses"][0]["ip"], ip2.as_str());
    let out = c.kubectl(&["get", "endpointslices"]);
    assert!(out.contains("IPv4") && out.contains(&ip1), "{out}");
    // and unready again
    c.kubectl(&["exec", "p1", "--", "rm", "/tmp/ready"]);
    wait_for(&c, "p1 unready", 60, || {
        let e = slice_endpoints(&c, "web");
        e.iter().any(|e| e.0 == ip1 && !e.1 && !e.2).then_some(())
    });
    c.kubectl(&["exec", "p1", "--", "touch", "/tmp/ready"]);
    wait_for(&c, "p1 ready again", 60, || {
        slice_endpoints(&c, "web")
            .iter()
            .any(|e| e.0 == ip1 && e.1)
            .then_some(())
    });
    // deletion: terminating (not ready, still serving), then gone
    c.kubectl(&["delete", "pod", "p1", "--wait=false"]);
    wait_for(&c, "p1 terminating or gone", 30, || {
        let e = slice_endpoints(&c, "web");
        e.iter().all(|e| e.0 != ip1 || (!e.1 && e.3)).then_some(())
    });
    wait_for(&c, "p1 gone", 60, || {
        let e = slice_endpoints(&c, "web");
        (e.len() == 1 && e[0].0 == ip2).then_some(())
    });
    let ep = json(&c, &["get", "ep", "web"]);
    assert!(ep["subsets"][0].get("addresses").is_none(), "{ep}");
    // the LoadBalancer Service gets the node's InternalIP
    let node = json(&c, &["get", "node", &c.agent.as_ref().unwrap().node_name]);
    let internal = node["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap()["address"]
        .clone();
    wait_for(&c, "load balancer ingress", 30, || {
        let s = json(&c, &["get", "svc", "weblb"]);
        (s["status"]["loadBalancer"]["ingress"][0]["ip"] == internal).then_some(())
    });
    // the selector-less Service got neither slices nor Endpoints
    let l = json(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=manual",
        ],
    );
    assert!(l["items"].as_array().unwrap().is_empty());
    assert!(!c.kubectl_raw(&["get", "ep", "manual"]).status.success());
    // deleting the Service removes its Endpoints and (garbage collector) slices
    c.kubectl(&["delete", "svc", "web"]);
    wait_for(&c, "endpoints and slices gone", 60, || {
        let l = json(
            &c,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
        );
        (l["items"].as_array().unwrap().is_empty()
            && !c.kubectl_raw(&["get", "ep", "web"]).status.success())
        .then_some(())
    });
}

#[test]
fn allocations_hold_on_etcd_across_restarts() {
    let etcd = start_etcd();
    let mut c = Cluster::start_with(&["--etcd-servers", &etcd.url]);
    assert_eq!(cluster_ip(&c, "kubernetes"), "10.43.0.1");
    c.kubectl(&["create", "service", "nodeport", "a", "--tcp=80"]);
    let (a_ip, a_port) = (cluster_ip(&c, "a"), node_port(&c, "a"));
    // concurrent requests for one address: exactly one wins
    let kc = (c.kubeconfig(), c.data_dir().join("kcache"));
    let wins = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let kc = &kc;
                s.spawn(move || {
                    std::process::Command::new("kubectl")
                        .arg("--kubeconfig")
                        .arg(&kc.0)
                        .arg("--cache-dir")
                        .arg(&kc.1)
                        .args(["create", "service", "clusterip", &format!("r{i}")])
                        .args(["--clusterip=10.43.50.50", "--tcp=80"])
                        .output()
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|o| o.status.success())
            .count()
    });
    assert_eq!(wins, 1);
    c.stop();
    c.spawn();
    let err = c.kubectl_err(&[
        "create",
        "service",
        "clusterip",
        "b",
        &format!("--clusterip={a_ip}"),
        "--tcp=80",
    ]);
    assert!(err.contains("provided IP is already allocated"), "{err}");
    let err = c.kubectl_err(&[
        "create",
        "service",
        "nodeport",
        "b",
        &format!("--node-port={a_port}"),
        "--tcp=80",
    ]);
    assert!(err.contains("provided port is already allocated"), "{err}");
    c.kubectl(&["delete", "svc", "a"]);
    c.kubectl(&[
        "create",
        "service",
        "nodeport",
        "b",
        &format!("--node-port={a_port}"),
        "--tcp=80",
    ]);
    c.kubectl(&[
        "create",
        "service",
        "clusterip",
        "c",
        &format!("--clusterip={a_ip}"),
        "--tcp=80",
    ]);
    c.stop();
}
