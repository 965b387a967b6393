//! End-to-end: pod semantics of the API (binding, status subresource, graceful deletion,
//! field selectors, describe with events) and Event expiry.

mod common;

use std::time::{Duration, Instant};

use common::{rows, Cluster};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: p1
  labels: {app: demo}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: c
    image: busybox:1.36
    command: ["sleep", "3600"]
"#;

#[test]
fn binding_status_graceful_delete_and_field_selectors() {
    let c = Cluster::start();
    c.kubectl_stdin(&["apply", "-f", "-"], POD);
    let pod: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "pod", "p1", "-o", "json"])).unwrap();
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    let r = rows(&c.kubectl(&["get", "pods"]));
    assert_eq!(r[0], vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(&r[1][..4], &["p1", "0/1", "Pending", "0"]);
    // bind through pods/binding, as the scheduler does
    let binding = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p1"},"target":{"apiVersion":"v1","kind":"Node","name":"node-a"}}"#;
    let f = c.data_dir().join("binding.json");
    std::fs::write(&f, binding).unwrap();
    c.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/p1/binding",
        "-f",
        f.to_str().unwrap(),
    ]);
    assert_eq!(
        c.kubectl(&["get", "pod", "p1", "-o", "jsonpath={.spec.nodeName}"]),
        "node-a"
    );
    let again = c.kubectl_raw(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/p1/binding",
        "-f",
        f.to_str().unwrap(),
    ]);
    assert!(!again.status.success(), "a bound pod cannot be bound again");
    // field selectors on spec.nodeName
    assert_eq!(
        c.kubectl(&[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=node-a",
            "-o",
            "name"
        ])
        .trim(),
        "pod/p1"
    );
    assert_eq!(
        c.kubectl(&[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=node-b",
            "-o",
            "name"
        ])
        .trim(),
        ""
    );
    let bad = c.kubectl_err(&["get", "pods", "--field-selector", "spec.bogus=x"]);
    assert!(
        bad.contains("field label not supported: spec.bogus"),
        "{bad}"
    );
    // the status subresource, as the kubelet writes it
    c.kubectl(&[
        "patch",
        "pod",
        "p1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);
    assert_eq!(
        c.kubectl(&["get", "pod", "p1", "-o", "jsonpath={.status.phase}"]),
        "Running"
    );
    assert_eq!(
        c.kubectl(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name"
        ])
        .trim(),
        "pod/p1"
    );
    // graceful deletion: a bound pod gets deletionTimestamp and stays until grace 0
    let out = c.kubectl(&["delete", "pod", "p1", "--wait=false"]);
    assert_eq!(out.trim(), "pod \"p1\" deleted");
    let pod: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "pod", "p1", "-o", "json"])).unwrap();
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 20);
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    let r = rows(&c.kubectl(&["get", "pods"]));
    assert_eq!(r[1][2], "Terminating");
    // the kubelet's final delete
    c.kubectl(&["delete", "pod", "p1", "--grace-period=0", "--force"]);
    assert!(c.kubectl_err(&["get", "pod", "p1"]).contains("not found"));
    // an unbound pod is deleted at once
    c.kubectl_stdin(&["apply", "-f", "-"], &POD.replace("name: p1", "name: p2"));
    c.kubectl(&["delete", "pod", "p2", "--wait=false"]);
    assert!(c.kubectl_err(&["get", "pod", "p2"]).contains("not found"));
}

#[test]
fn describe_shows_events_and_events_expire() {
    let c = Cluster::start_with(&["--event-ttl", "3s"]);
    c.kubectl_stdin(&["apply", "-f", "-"], POD);
    let uid = c.kubectl(&["get", "pod", "p1", "-o", "jsonpath={.metadata.uid}"]);
    let ev = format!(
        r#"{{"apiVersion":"v1","kind":"Event","metadata":{{"name":"p1.1"}},"involvedObject":{{"kind":"Pod","name":"p1","namespace":"default","uid":"{uid}","apiVersion":"v1"}},"reason":"Scheduled","message":"Successfully assigned default/p1 to node-a","type":"Normal","source":{{"component":"default-scheduler"}},"count":1,"firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2026-01-01T00:00:00Z"}}"#
    );
    c.kubectl_stdin(&["create", "-f", "-"], &ev);
    let d = c.kubectl(&["describe", "pod", "p1"]);
    assert!(d.contains("Name:") && d.contains("p1"), "{d}");
    assert!(
        d.contains("Successfully assigned default/p1 to node-a"),
        "describe must list the pod's events:\n{d}"
    );
    let r = rows(&c.kubectl(&["get", "events"]));
    assert_eq!(
        r[0],
        vec!["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    // with a 3 s TTL the event disappears on its own
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if c.kubectl(&["get", "events", "-o", "name"])
            .trim()
            .is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "event did not expire");
        std::thread::sleep(Duration::from_millis(300));
    }
    // the pod itself is untouched
    assert_eq!(
        c.kubectl(&["get", "pod", "p1", "-o", "name"]).trim(),
        "pod/p1"
    );
}

#[test]
fn get_watch_streams_table_rows() {
    let c = Cluster::start();
    let child = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            c.kubeconfig().to_str().unwrap(),
            "get",
            "configmaps",
            "-w",
            "--request-timeout=20s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    c.kubectl(&["create", "configmap", "watched", "--from-literal=a=b"]);
    c.kubectl(&["label", "configmap", "watched", "x=y"]);
    std::thread::sleep(Duration::from_millis(800));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<String>> = rows(&text).into_iter().filter(|r| !r.is_empty()).collect();
    assert_eq!(lines[0], vec!["NAME", "DATA", "AGE"], "{text}");
    let watched: Vec<&Vec<String>> = lines.iter().filter(|r| r[0] == "watched").collect();
    assert!(
        watched.len() >= 2,
        "expected the add and the label change:\n{text}"
    );
    assert_eq!(watched[0][1], "1");
}

#[test]
fn eviction_honours_disruption_budgets() {
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    c.kubectl_stdin(&["apply", "-f", "-"], POD);
    c.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: pdb\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: demo}\n");
    // the disruption controller's verdict: no disruption allowed
    c.kubectl(&["patch", "pdb", "pdb", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"observedGeneration":1,"disruptionsAllowed":0,"currentHealthy":1,"desiredHealthy":1,"expectedPods":1}}"#]);
    let ev = c.data_dir().join("eviction.json");
    std::fs::write(&ev, r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p1","namespace":"default"}}"#).unwrap();
    let path = "/api/v1/namespaces/default/pods/p1/eviction";
    let err = c.kubectl_err(&["create", "--raw", path, "-f", ev.to_str().unwrap()]);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget")
            || err.contains("TooManyRequests")
            || err.contains("429"),
        "{err}"
    );
    assert_eq!(
        c.kubectl(&["get", "pod", "p1", "-o", "name"]).trim(),
        "pod/p1"
    );
    c.kubectl(&[
        "patch",
        "pdb",
        "pdb",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"disruptionsAllowed":1}}"#,
    ]);
    c.kubectl(&["create", "--raw", path, "-f", ev.to_str().unwrap()]);
    assert!(
        c.kubectl_err(&["get", "pod", "p1"]).contains("not found"),
        "an unbound pod is deleted at once"
    );
    assert_eq!(
        c.kubectl(&[
            "get",
            "pdb",
            "pdb",
            "-o",
            "jsonpath={.status.disruptionsAllowed}"
        ]),
        "0"
    );
}

#[test]
fn priority_classes_resolve_into_pod_priority() {
    let c = Cluster::start();
    let pcs = c.kubectl(&["get", "priorityclasses", "-o", "name"]);
    assert!(
        pcs.contains("system-node-critical") && pcs.contains("system-cluster-critical"),
        "{pcs}"
    );
    let pod = POD.replace(
        "  terminationGracePeriodSeconds: 20\n",
        "  priorityClassName: system-cluster-critical\n",
    );
    c.kubectl_stdin(&["apply", "-f", "-"], &pod);
    assert_eq!(
        c.kubectl(&["get", "pod", "p1", "-o", "jsonpath={.spec.priority}"]),
        "2000000000"
    );
    assert_eq!(
        c.kubectl(&[
            "get",
            "pod",
            "p1",
            "-o",
            "jsonpath={.spec.preemptionPolicy}"
        ]),
        "PreemptLowerPriority"
    );
    let file = c.data_dir().join("p.yaml");
    std::fs::write(
        &file,
        POD.replace("name: p1", "name: p2").replace(
            "  terminationGracePeriodSeconds: 20\n",
            "  priorityClassName: nope\n",
        ),
    )
    .unwrap();
    let err = c.kubectl_err(&["create", "-f", file.to_str().unwrap()]);
    assert!(
        err.contains("no PriorityClass with name nope was found"),
        "{err}"
    );
    // a global default class applies to pods that name none
    c.kubectl_stdin(&["apply", "-f", "-"], "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: everyday\nvalue: 1000\nglobalDefault: true\n");
    c.kubectl_stdin(&["apply", "-f", "-"], &POD.replace("name: p1", "name: p3"));
    assert_eq!(
        c.kubectl(&[
            "get",
            "pod",
            "p3",
            "-o",
            "jsonpath={.spec.priorityClassName}/{.spec.priority}"
        ]),
        "everyday/1000"
    );
}
