//! End-to-end: CustomResourceDefinitions and their custom resources driven by kubectl:
//! established status, discovery, printer columns, status and scale subresources.

mod common;

use common::{rows, Cluster};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.ready}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
          status:
            type: object
            properties:
              ready: {type: integer}
"#;

#[test]
fn crd_lifecycle_with_custom_resources() {
    let c = Cluster::start();
    assert_eq!(
        c.kubectl_stdin(&["apply", "-f", "-"], CRD).trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    );
    let w = c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    assert!(w.contains("condition met"), "{w}");
    let cr = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n  color: blue\n";
    assert_eq!(
        c.kubectl_stdin(&["apply", "-f", "-"], cr).trim(),
        "widget.example.com/w1 created"
    );
    let r = rows(&c.kubectl(&["get", "widgets"]));
    assert_eq!(
        r[0],
        vec!["NAME", "SIZE", "COLOR"],
        "declared printer columns only, as upstream"
    );
    assert_eq!(&r[1][..3], &["w1", "3", "blue"]);
    assert_eq!(
        c.kubectl(&["get", "wd", "-o", "name"]).trim(),
        "widget.example.com/w1"
    );
    // the status subresource: a main-resource update cannot change status, /status can
    c.kubectl(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":9}}"#,
    ]);
    assert_eq!(
        c.kubectl(&["get", "widget", "w1", "-o", "jsonpath={.status.ready}"]),
        ""
    );
    c.kubectl(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":2}}"#,
    ]);
    assert_eq!(
        c.kubectl(&["get", "widget", "w1", "-o", "jsonpath={.status.ready}"]),
        "2"
    );
    // the scale subresource maps to .spec.size
    assert_eq!(
        c.kubectl(&["scale", "widget", "w1", "--replicas=5"]).trim(),
        "widget.example.com/w1 scaled"
    );
    assert_eq!(
        c.kubectl(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "5"
    );
    let gen = c.kubectl(&[
        "get",
        "widget",
        "w1",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    assert_eq!(
        gen, "2",
        "a spec change bumps the generation of a custom resource"
    );
    // explain works from the CRD's schema
    let ex = c.kubectl(&["explain", "widgets.spec.size"]);
    assert!(ex.contains("FIELD: size <integer>"), "{ex}");
    // deleting the CRD stops serving it and removes its objects
    c.kubectl_stdin(&["apply", "-f", "-"], &cr.replace("w1", "w2"));
    c.kubectl(&["delete", "crd", "widgets.example.com"]);
    let err = c.kubectl_err(&["get", "widgets"]);
    assert!(
        err.contains("the server doesn't have a resource type \"widgets\"")
            || err.contains("the server could not find the requested resource"),
        "{err}"
    );
    // recreating the CRD does not bring back the deleted CRD's objects
    c.kubectl_stdin(&["apply", "-f", "-"], CRD);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    assert_eq!(
        c.kubectl(&["get", "widgets", "-A", "-o", "name"]).trim(),
        ""
    );
}

#[test]
fn custom_resources_are_validated_pruned_and_defaulted() {
    let c = Cluster::start();
    let crd = CRD.replace("              color: {type: string}", "              color: {type: string, enum: [blue, red], default: red}\n              mode: {type: string}\n            required: [size]");
    c.kubectl_stdin(&["apply", "-f", "-"], &crd);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    let file = c.data_dir().join("w.yaml");
    std::fs::write(&file, "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  size: big\n  color: green\n").unwrap();
    let err = c.kubectl_err(&["create", "-f", file.to_str().unwrap()]);
    assert!(
        err.contains(
            "spec.size: Invalid value: \"string\": spec.size in body must be of type integer"
        ),
        "{err}"
    );
    assert!(
        err.contains("spec.color: Unsupported value: \"green\""),
        "{err}"
    );
    std::fs::write(
        &file,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: nosize\nspec: {}\n",
    )
    .unwrap();
    let err = c.kubectl_err(&["create", "-f", file.to_str().unwrap()]);
    assert!(err.contains("spec.size: Required value"), "{err}");
    std::fs::write(&file, "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: good\nspec:\n  size: 1\n  junk: x\n").unwrap();
    c.kubectl(&["create", "--validate=false", "-f", file.to_str().unwrap()]);
    let w: serde_json::Value =
        serde_json::from_str(&c.kubectl(&["get", "widget", "good", "-o", "json"])).unwrap();
    assert_eq!(w["spec"]["color"], "red", "schema default applied");
    assert!(w["spec"].get("junk").is_none(), "unknown field pruned: {w}");
    // an invalid CRD is refused
    let bad_crd = CRD.replace("name: widgets.example.com", "name: wrong.example.com");
    std::fs::write(&file, bad_crd).unwrap();
    let err = c.kubectl_err(&["create", "-f", file.to_str().unwrap()]);
    assert!(
        err.contains("metadata.name: Invalid value: \"wrong.example.com\""),
        "{err}"
    );
}
