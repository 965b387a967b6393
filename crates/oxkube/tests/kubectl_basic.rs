//! End-to-end: the real kubectl against a real `oxkube server` — discovery, get with every
//! output format, create/apply/patch/label/annotate/scale/delete/wait, explain, auth.

mod common;

use common::{rows, Cluster};

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: busybox:1.36
        env:
        - {name: A, value: "1"}
"#;

#[test]
fn namespaces_and_version() {
    let c = Cluster::start();
    let out = c.kubectl(&["get", "namespaces"]);
    let r = rows(&out);
    assert_eq!(r[0], vec!["NAME", "STATUS", "AGE"]);
    let names: Vec<&str> = r[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert!(r[1..].iter().all(|r| r[1] == "Active"));
    let v = c.kubectl(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "33");
    assert_eq!(
        v["clientVersion"]["minor"], "33",
        "the dispatcher must pick kubectl 1.33"
    );
}

#[test]
fn apply_twice_get_formats_and_selectors() {
    let c = Cluster::start();
    assert_eq!(
        c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY).trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY).trim(),
        "deployment.apps/web unchanged"
    );
    let changed = DEPLOY
        .replace("busybox:1.36", "busybox:1.37")
        .replace("replicas: 2", "replicas: 3");
    assert_eq!(
        c.kubectl_stdin(&["apply", "-f", "-"], &changed).trim(),
        "deployment.apps/web configured"
    );
    let d: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "deploy", "web", "-o", "json"])).unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "1"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(
        d["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults applied"
    );

    // default table and wide
    let r = rows(&c.kubectl(&["get", "deployments"]));
    assert_eq!(
        r[0],
        vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    // no kubelet runs here: nothing becomes ready, however far the controller got
    assert_eq!(&r[1][..2], &["web", "0/3"]);
    assert!(
        r[1][2].parse::<u32>().is_ok() && r[1][3] == "0",
        "{:?}",
        r[1]
    );
    let r = rows(&c.kubectl(&["get", "deployments", "-o", "wide"]));
    assert_eq!(
        r[0],
        vec![
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(&r[1][5..], &["c", "busybox:1.37", "app=web"]);
    // name, jsonpath, custom-columns, yaml
    assert_eq!(
        c.kubectl(&["get", "deploy", "-o", "name"]).trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let cc = c.kubectl(&[
        "get",
        "deploy",
        "-o",
        "custom-columns=N:.metadata.name,R:.spec.replicas",
    ]);
    assert_eq!(rows(&cc), vec![vec!["N", "R"], vec!["web", "3"]]);
    let y: serde_yaml::Value =
        serde_yaml::from_str(&c.kubectl(&["get", "deploy", "web", "-o", "yaml"])).unwrap();
    assert_eq!(y["kind"].as_str(), Some("Deployment"));
    // labels, -A, --show-labels, --sort-by, selectors
    c.kubectl(&["create", "namespace", "other"]);
    c.kubectl_stdin(
        &["apply", "-n", "other", "-f", "-"],
        &DEPLOY.replace("name: web", "name: api"),
    );
    let r = rows(&c.kubectl(&["get", "deploy", "-A", "--show-labels"]));
    assert_eq!(r[0][0], "NAMESPACE");
    assert_eq!(r[0].last().unwrap(), "LABELS");
    assert_eq!(r.len(), 3);
    assert!(r[1..].iter().all(|row| row.last().unwrap() == "tier=front"));
    let sorted = c.kubectl(&[
        "get",
        "deploy",
        "-A",
        "--sort-by=.metadata.name",
        "-o",
        "name",
    ]);
    assert_eq!(sorted, "deployment.apps/api\ndeployment.apps/web\n");
    assert_eq!(
        c.kubectl(&["get", "deploy", "-A", "-l", "tier=front", "-o", "name"])
            .lines()
            .count(),
        2
    );
    assert_eq!(
        c.kubectl(&["get", "deploy", "-A", "-l", "tier!=front", "-o", "name"])
            .trim(),
        ""
    );
    let fs = c.kubectl(&[
        "get",
        "deploy",
        "-A",
        "--field-selector",
        "metadata.namespace=other",
        "-o",
        "name",
    ]);
    assert_eq!(fs.trim(), "deployment.apps/api");
}

#[test]
fn configmap_lifecycle_label_annotate_patch_delete() {
    let c = Cluster::start();
    let file = c.data_dir().join("cfg.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    assert_eq!(
        c.kubectl(&["create", "-f", file.to_str().unwrap()]).trim(),
        "configmap/cfg created"
    );
    let err = c.kubectl_err(&["create", "-f", file.to_str().unwrap()]);
    assert!(err.contains("configmaps \"cfg\" already exists"), "{err}");
    assert!(c
        .kubectl(&["label", "cm", "cfg", "team=x"])
        .contains("configmap/cfg labeled"));
    assert!(c
        .kubectl(&["annotate", "cm", "cfg", "note=hi"])
        .contains("configmap/cfg annotated"));
    c.kubectl(&[
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    c.kubectl(&[
        "patch",
        "cm",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/a","value":"9"}]"#,
    ]);
    c.kubectl(&["patch", "cm", "cfg", "-p", r#"{"data":{"c":"3"}}"#]);
    let cm: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "cm", "cfg", "-o", "json"])).unwrap();
    assert_eq!(
        cm["data"],
        serde_json::json!({"a": "9", "b": "2", "c": "3"})
    );
    assert_eq!(cm["metadata"]["labels"]["team"], "x");
    assert_eq!(cm["metadata"]["annotations"]["note"], "hi");
    assert!(
        cm["metadata"].get("generation").is_none(),
        "configmaps have no generation"
    );
    let r = rows(&c.kubectl(&["get", "cm", "cfg"]));
    assert_eq!(r[0], vec!["NAME", "DATA", "AGE"]);
    assert_eq!(&r[1][..2], &["cfg", "3"]);
    // label removal
    c.kubectl(&["label", "cm", "cfg", "team-"]);
    assert_eq!(
        c.kubectl(&["get", "cm", "cfg", "-o", "jsonpath={.metadata.labels}"]),
        ""
    );
    assert_eq!(
        c.kubectl(&["delete", "cm", "cfg", "--wait"]).trim(),
        "configmap \"cfg\" deleted"
    );
    let err = c.kubectl_err(&["get", "cm", "cfg"]);
    assert!(err.contains("configmaps \"cfg\" not found"), "{err}");
}

#[test]
fn scale_and_wait_and_diff() {
    let c = Cluster::start();
    c.kubectl_stdin(&["apply", "-f", "-"], DEPLOY);
    assert_eq!(
        c.kubectl(&["scale", "deploy", "web", "--replicas=5"])
            .trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(
        c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    let stale = c.kubectl_raw(&[
        "scale",
        "deploy",
        "web",
        "--current-replicas=2",
        "--replicas=1",
    ]);
    assert!(
        !stale.status.success(),
        "scale with a wrong --current-replicas must fail"
    );
    c.kubectl(&[
        "scale",
        "deploy",
        "web",
        "--current-replicas=5",
        "--replicas=1",
    ]);
    assert_eq!(
        c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "1"
    );
    // wait on a jsonpath condition that already holds
    let w = c.kubectl(&[
        "wait",
        "deploy/web",
        "--for=jsonpath={.spec.replicas}=1",
        "--timeout=10s",
    ]);
    assert!(w.contains("condition met"), "{w}");
    // diff: exit code 1 with a change, 0 without
    let changed = DEPLOY.replace("busybox:1.36", "busybox:1.99");
    let mut cmd = std::process::Command::new("kubectl");
    let out = {
        use std::io::Write;
        let mut child = cmd
            .args([
                "--kubeconfig",
                c.kubeconfig().to_str().unwrap(),
                "diff",
                "-f",
                "-",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(changed.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(
        out.status.code(),
        Some(1),
        "diff stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8(out.stdout).unwrap();
    assert!(diff.contains("+        image: busybox:1.99"), "{diff}");
    assert_eq!(
        c.kubectl(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "busybox:1.36",
        "diff must not change anything"
    );
}

#[test]
fn edit_with_editor_script() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "ed"]);
    c.kubectl_stdin(
        &["apply", "-n", "ed", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: e\ndata:\n  k: old\n",
    );
    let script = c.data_dir().join("editor.sh");
    std::fs::write(&script, "#!/bin/sh\nsed -i 's/k: old/k: new/' \"$1\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let out = c.kubectl_env(
        &["edit", "-n", "ed", "cm", "e"],
        &[("KUBE_EDITOR", script.to_str().unwrap())],
    );
    assert!(out.contains("configmap/e edited"), "{out}");
    assert_eq!(
        c.kubectl(&["get", "-n", "ed", "cm", "e", "-o", "jsonpath={.data.k}"]),
        "new"
    );
}

#[test]
fn discovery_explain_and_auth() {
    let c = Cluster::start();
    let ar = c.kubectl(&["api-resources"]);
    let r = rows(&ar);
    assert_eq!(
        r[0],
        vec!["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for want in [
        vec!["deployments", "deploy", "apps/v1", "true", "Deployment"],
        vec!["pods", "po", "v1", "true", "Pod"],
        vec!["namespaces", "ns", "v1", "false", "Namespace"],
        vec![
            "customresourcedefinitions",
            "crd,crds",
            "apiextensions.k8s.io/v1",
            "false",
            "CustomResourceDefinition",
        ],
    ] {
        assert!(
            r.contains(&want.iter().map(|s| s.to_string()).collect()),
            "api-resources lacks {want:?}:\n{ar}"
        );
    }
    let av = c.kubectl(&["api-versions"]);
    for gv in [
        "apps/v1",
        "v1",
        "batch/v1",
        "autoscaling/v2",
        "autoscaling/v1",
        "rbac.authorization.k8s.io/v1",
    ] {
        assert!(
            av.lines().any(|l| l == gv),
            "api-versions lacks {gv}:\n{av}"
        );
    }
    let ex = c.kubectl(&["explain", "deployment.spec.replicas"]);
    assert!(
        ex.contains("KIND:       Deployment") && ex.contains("FIELD: replicas <integer>"),
        "{ex}"
    );
    let who = c.kubectl(&["auth", "whoami", "-o", "json"]);
    let who: serde_json::Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "system:admin");
    assert!(who["status"]["userInfo"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "system:masters"));
    assert_eq!(
        c.kubectl(&["auth", "can-i", "create", "pods"]).trim(),
        "yes"
    );
}

#[test]
fn kubectl_132_works_too() {
    let c = Cluster::start();
    let out = c.kubectl132(&["get", "ns", "default", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "namespace/default"
    );
    let out = c.kubectl132(&["get", "namespaces"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = rows(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(r[0], vec!["NAME", "STATUS", "AGE"]);
    assert_eq!(r.len(), 5);
}

#[test]
fn server_side_apply_owns_fields_and_reports_conflicts() {
    let c = Cluster::start();
    let out = c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], DEPLOY);
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let d: serde_json::Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "json",
        "--show-managed-fields",
    ]))
    .unwrap();
    let mf = d["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        mf.iter()
            .any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply"),
        "{mf:?}"
    );
    // a second apply without the env var removes it (the manager no longer applies it)
    let no_env = DEPLOY.replace("        env:\n        - {name: A, value: \"1\"}\n", "");
    c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &no_env);
    let env = c.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    ]);
    assert_eq!(
        env, "",
        "field dropped from the applied config must be removed"
    );
    // another manager changing an owned field conflicts unless forced
    let other = DEPLOY.replace("replicas: 2", "replicas: 7");
    let mut cmd = std::process::Command::new("kubectl");
    cmd.args([
        "--kubeconfig",
        c.kubeconfig().to_str().unwrap(),
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        "-",
    ]);
    let out = {
        use std::io::Write;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(other.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    c.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &other,
    );
    assert_eq!(
        c.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );
}

#[test]
fn create_commands_with_protobuf_bodies() {
    let c = Cluster::start();
    assert_eq!(
        c.kubectl(&["create", "namespace", "pb"]).trim(),
        "namespace/pb created"
    );
    assert_eq!(
        c.kubectl(&[
            "create",
            "configmap",
            "cm1",
            "-n",
            "pb",
            "--from-literal=k=v"
        ])
        .trim(),
        "configmap/cm1 created"
    );
    assert_eq!(
        c.kubectl(&[
            "create",
            "secret",
            "generic",
            "s1",
            "-n",
            "pb",
            "--from-literal=pw=hunter2"
        ])
        .trim(),
        "secret/s1 created"
    );
    assert_eq!(
        c.kubectl(&[
            "create",
            "deployment",
            "d1",
            "-n",
            "pb",
            "--image=busybox",
            "--replicas=2",
            "--port=80"
        ])
        .trim(),
        "deployment.apps/d1 created"
    );
    assert_eq!(
        c.kubectl(&["create", "serviceaccount", "sa1", "-n", "pb"])
            .trim(),
        "serviceaccount/sa1 created"
    );
    assert_eq!(
        c.kubectl(&[
            "create",
            "service",
            "clusterip",
            "svc1",
            "-n",
            "pb",
            "--tcp=80:8080"
        ])
        .trim(),
        "service/svc1 created"
    );
    assert_eq!(
        c.kubectl(&["get", "cm", "cm1", "-n", "pb", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    assert_eq!(
        c.kubectl(&[
            "get",
            "secret",
            "s1",
            "-n",
            "pb",
            "-o",
            "jsonpath={.data.pw}"
        ]),
        "aHVudGVyMg=="
    );
    let r = rows(&c.kubectl(&["get", "secret", "s1", "-n", "pb"]));
    assert_eq!(&r[1][..3], &["s1", "Opaque", "1"]);
    let d: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "deploy", "d1", "-n", "pb", "-o", "json"]))
            .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "d1");
    let svc: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "svc", "svc1", "-n", "pb", "-o", "json"]))
            .unwrap();
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    // kubectl 1.32 sends the same protobuf bodies
    let out = c.kubectl132(&[
        "create",
        "configmap",
        "cm132",
        "-n",
        "pb",
        "--from-literal=a=b",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.kubectl(&["get", "cm", "cm132", "-n", "pb", "-o", "jsonpath={.data.a}"]),
        "b"
    );
}

#[test]
fn field_validation_strict_warn_ignore() {
    let c = Cluster::start();
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fv\n  bogusMeta: 1\ndata:\n  a: b\nextra: true\n";
    let file = c.data_dir().join("fv.yaml");
    std::fs::write(&file, bad).unwrap();
    let f = file.to_str().unwrap();
    let err = c.kubectl_err(&["create", "-f", f]);
    assert!(
        err.contains("strict decoding error")
            && err.contains("unknown field \"extra\"")
            && err.contains("unknown field \"metadata.bogusMeta\""),
        "{err}"
    );
    assert!(
        c.kubectl_err(&["get", "cm", "fv"]).contains("not found"),
        "a rejected create stores nothing"
    );
    let out = c.kubectl_raw(&["create", "--validate=warn", "-f", f]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: unknown field \"extra\""),
        "{stderr}"
    );
    let cm: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "cm", "fv", "-o", "json"])).unwrap();
    assert!(
        cm.get("extra").is_none() && cm["metadata"].get("bogusMeta").is_none(),
        "unknown fields are dropped: {cm}"
    );
    assert_eq!(cm["data"]["a"], "b");
}
