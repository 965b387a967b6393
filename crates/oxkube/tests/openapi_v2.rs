//! End-to-end: the OpenAPI v2 document at /openapi/v2 as kubectl 1.33 and 1.32 use it: client-side
//! validation of a `kind: List` (which kubectl checks against the v2 document, in protobuf form),
//! custom resources in a List, the document following CRD changes, ETag revalidation, and
//! `kubectl explain` still answered from OpenAPI v3.

mod common;

use std::process::Output;

use apimachinery::openapi::v2::pb;
use common::Cluster;
use prost::Message;

const MIXED_LIST: &str = r#"{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"k": "v"}},
 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc1"},
  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}},
 {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
   "template": {"metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "busybox",
      "resources": {"limits": {"cpu": 1, "memory": "10Mi"}},
      "ports": [{"name": "http", "containerPort": 8080}]}]}}}}
]}"#;

const BAD_LIST: &str = r#"{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad1"}, "data": {"k": "v"}, "bogus": 1},
 {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad2", "labelz": {}}, "stringData": {"k": "v"}}
]}"#;

const BAD_LIST_ERROR: &str = r#"error validating data: [ValidationError(ConfigMap): unknown field "bogus" in io.k8s.api.core.v1.ConfigMap, ValidationError(Secret.metadata): unknown field "labelz" in io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta]; if you choose to ignore these errors, turn validation off with --validate=false"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
"#;

const CR_LIST: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: example.com/v1
  kind: Gadget
  metadata: {name: g1}
  spec: {size: 2, color: red}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: with-gadget}
"#;

fn write(c: &Cluster, name: &str, text: &str) -> String {
    let p = c.data_dir().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn lists_of_mixed_kinds_are_validated_client_side_like_upstream() {
    let c = Cluster::start();
    let list = write(&c, "list.json", MIXED_LIST);
    assert_eq!(
        c.kubectl(&["create", "-f", &list]).trim(),
        "configmap/cm1 created\nservice/svc1 created\ndeployment.apps/web created"
    );
    // applied twice with a change: configured, then unchanged
    let changed = write(
        &c,
        "list2.json",
        &MIXED_LIST.replace("\"k\": \"v\"", "\"k\": \"w\""),
    );
    let out = c.kubectl(&["apply", "-f", &changed]);
    assert!(out.contains("configmap/cm1 configured"), "{out}");
    let out = c.kubectl(&["apply", "-f", &changed]);
    assert!(out.contains("configmap/cm1 unchanged"), "{out}");
    // (not the Deployment: its config says `cpu: 1`, the live object `"1"`, so kubectl's
    // three-way patch is never empty, with upstream too)
    assert!(out.contains("service/svc1 unchanged"), "{out}");
    assert_eq!(
        c.kubectl(&["get", "cm", "cm1", "-o", "jsonpath={.data.k}"]),
        "w"
    );

    // an unknown field in a List item: refused before anything is sent, as upstream
    let bad = write(&c, "bad.json", BAD_LIST);
    for verb in ["create", "apply"] {
        let err = c.kubectl_err(&[verb, "-f", &bad]);
        assert_eq!(
            err.trim(),
            format!("error: error validating \"{bad}\": {BAD_LIST_ERROR}"),
            "kubectl {verb}"
        );
    }
    let o = c.kubectl132(&["create", "-f", &bad]);
    assert!(!o.status.success());
    assert_eq!(
        stderr(&o).trim(),
        format!("error: error validating \"{bad}\": {BAD_LIST_ERROR}")
    );
    let missing = c.kubectl_raw(&["get", "cm", "bad1"]);
    assert!(
        !missing.status.success(),
        "nothing of the bad list was created"
    );
    // --validate=false sends it, and the server drops the unknown fields
    let out = c.kubectl(&["create", "-f", &bad, "--validate=false"]);
    assert!(out.contains("configmap/bad1 created"), "{out}");

    // kubectl 1.32: the same List flow
    let list132 = write(
        &c,
        "list132.json",
        &MIXED_LIST
            .replace("cm1", "cm132")
            .replace("svc1", "svc132")
            .replace("\"name\": \"web\"", "\"name\": \"web132\""),
    );
    let o = c.kubectl132(&["create", "-f", &list132]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "configmap/cm132 created\nservice/svc132 created\ndeployment.apps/web132 created"
    );
    let o = c.kubectl132(&["apply", "-f", &list132]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("configmap/cm132 configured"),
        "{}",
        stdout(&o)
    );

    // explain (OpenAPI v3) still works
    let ex = c.kubectl(&["explain", "pods.spec.containers.ports"]);
    assert!(ex.contains("containerPort\t<integer> -required-"), "{ex}");
    // and kubectl's v2 explain reads the same fields from /openapi/v2
    let ex = c.kubectl(&[
        "explain",
        "pods.spec.containers.ports",
        "--output=plaintext-openapiv2",
    ]);
    assert!(ex.contains("RESOURCE: ports <[]Object>"), "{ex}");
    assert!(ex.contains("containerPort\t<integer> -required-"), "{ex}");
    // a List that matches the live objects: diff finds nothing, replace replaces
    assert_eq!(
        c.kubectl_raw(&["diff", "-f", &changed]).status.code(),
        Some(0)
    );
    let out = c.kubectl(&["replace", "-f", &changed]);
    assert!(out.contains("configmap/cm1 replaced"), "{out}");
}

#[test]
fn custom_resources_in_a_list_follow_crd_changes() {
    let c = Cluster::start();
    c.kubectl_stdin(&["apply", "-f", "-"], CRD);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/gadgets.example.com",
        "--timeout=10s",
    ]);
    let list = write(&c, "crlist.yaml", CR_LIST);
    let without_color = write(&c, "crlist0.yaml", &CR_LIST.replace(", color: red", ""));
    assert_eq!(
        c.kubectl(&["create", "-f", &without_color]).trim(),
        "gadget.example.com/g1 created\nconfigmap/with-gadget created"
    );
    // color is not in the schema: kubectl's v2 validation refuses it
    let err = c.kubectl_err(&["apply", "-f", &list]);
    assert_eq!(
        err.trim(),
        format!(
            "error: error validating \"{list}\": error validating data: ValidationError(Gadget.spec): unknown field \"color\" in com.example.v1.Gadget.spec; if you choose to ignore these errors, turn validation off with --validate=false"
        )
    );
    let o = c.kubectl132(&["apply", "-f", &list]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown field \"color\" in com.example.v1.Gadget.spec"),
        "{}",
        stderr(&o)
    );
    // the CRD gains the field: the v2 document follows (kubectl revalidates its cached copy)
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        &CRD.replace(
            "size: {type: integer}",
            "size: {type: integer}\n              color: {type: string}",
        ),
    );
    let out = c.kubectl(&["apply", "-f", &list]);
    assert!(out.contains("gadget.example.com/g1 configured"), "{out}");
    assert_eq!(
        c.kubectl(&["get", "gadget", "g1", "-o", "jsonpath={.spec.color}"]),
        "red"
    );
    let out = c.kubectl(&["apply", "-f", &list]);
    assert!(out.contains("gadget.example.com/g1 unchanged"), "{out}");
    let o = c.kubectl132(&["apply", "-f", &list]);
    assert!(o.status.success(), "{}", stderr(&o));
    // explain of the custom resource
    let ex = c.kubectl(&["explain", "gadgets.spec"]);
    assert!(ex.contains("color\t<string>"), "{ex}");
    let ex = c.kubectl(&["explain", "gadgets.spec", "--output=plaintext-openapiv2"]);
    assert!(ex.contains("VERSION:  example.com/v1"), "{ex}");
    assert!(ex.contains("color\t<string>"), "{ex}");

    // the JSON form over the wire
    let raw: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert_eq!(raw["swagger"], "2.0");
    assert_eq!(
        raw["definitions"]["com.example.v1.Gadget"]["properties"]["spec"]["properties"]["color"]
            ["type"],
        "string"
    );
    assert!(raw["paths"]
        .get("/apis/example.com/v1/namespaces/{namespace}/gadgets/{name}")
        .is_some());
    // the CRD is deleted: its definitions go
    c.kubectl(&[
        "delete",
        "crd",
        "gadgets.example.com",
        "--wait=true",
        "--timeout=20s",
    ]);
    let raw: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/openapi/v2"])).unwrap();
    assert!(raw["definitions"].get("com.example.v1.Gadget").is_none());
}

/// GET /openapi/v2 with the kube-rs client: (status, content type, etag, body).
async fn get_v2(
    client: &kube::Client,
    accept: &str,
    if_none_match: Option<&str>,
) -> (u16, String, String, Vec<u8>) {
    let mut req = http::Request::get("/openapi/v2").header("Accept", accept);
    if let Some(e) = if_none_match {
        req = req.header("If-None-Match", e);
    }
    let resp = client
        .send(req.body(kube::client::Body::empty()).unwrap())
        .await
        .unwrap();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (status, ct, etag) = (resp.status().as_u16(), h("content-type"), h("etag"));
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, etag, body)
}

#[test]
fn protobuf_form_etag_and_not_modified() {
    let c = Cluster::start();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let pb_type = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        let (status, ct, etag, body) = get_v2(&client, pb_type, None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            ct,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        );
        assert!(etag.starts_with('"') && etag.len() == 130, "{etag}");
        let doc = pb::Document::decode(body.as_slice()).expect("gnostic Document");
        assert_eq!(doc.swagger, "2.0");
        let defs = &doc.definitions.unwrap().additional_properties;
        assert!(defs
            .iter()
            .any(|d| d.name == "io.k8s.api.apps.v1.Deployment"));
        // the JSON form shares the etag (Vary: Accept)
        let (status, ct, json_etag, body) = get_v2(&client, "application/json", None).await;
        assert_eq!((status, ct.as_str()), (200, "application/json"));
        assert_eq!(json_etag, etag);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["swagger"], "2.0");
        // revalidation
        let (status, _, again, body) = get_v2(&client, pb_type, Some(&etag)).await;
        assert_eq!(
            (status, again.as_str(), body.len()),
            (304, etag.as_str(), 0)
        );
        let (status, ..) = get_v2(&client, "text/html", None).await;
        assert_eq!(status, 406);
        // a new CRD: a new document
        c.kubectl_stdin(&["apply", "-f", "-"], CRD);
        let (status, _, changed, body) = get_v2(&client, pb_type, Some(&etag)).await;
        assert_eq!(status, 200);
        assert_ne!(changed, etag);
        let doc = pb::Document::decode(body.as_slice()).unwrap();
        assert!(doc
            .definitions
            .unwrap()
            .additional_properties
            .iter()
            .any(|d| d.name == "com.example.v1.Gadget"));
    });
}
