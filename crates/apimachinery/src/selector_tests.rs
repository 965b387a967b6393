//! Table-driven tests of label and field selector parsing, matching and string forms.

use super::*;
use serde_json::json;

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

#[test]
fn label_parse_canonical_string() {
    // input -> canonical string form
    let cases = [
        ("", ""),
        ("x=a", "x=a"),
        ("x==a", "x==a"),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("z=c,x=a", "x=a,z=c"),
        ("  x  =  a  ,  y != b ", "x=a,y!=b"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("x in (b,a)", "x in (a,b)"),
        ("x in (a)", "x in (a)"),
        ("x in (a,,b)", "x in (,a,b)"),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,)", "x in (,a)"),
        ("x notin ()", "x notin ()"),
        ("x notin (a,b)", "x notin (a,b)"),
        ("x", "x"),
        ("!x", "!x"),
        ("y,!x", "!x,y"),
        ("x>1", "x>1"),
        ("x<10", "x<10"),
        ("x in (in),y notin (notin)", "x in (in),y notin (notin)"),
        ("notin notin (in)", "notin notin (in)"),
        ("example.com/app=web", "example.com/app=web"),
        ("x\t=\ta\n", "x=a"),
    ];
    for (input, want) in cases {
        let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(sel.to_string(), want, "input {input:?}");
        // the canonical form parses back to the same selector
        let again = LabelSelector::parse(&sel.to_string()).unwrap();
        assert_eq!(again, sel, "round trip of {input:?}");
    }
}

#[test]
fn label_parse_errors() {
    let cases: Vec<(&str, String)> = vec![
        (",x", "found ',', expected: !, identifier, or 'end of string'".into()),
        ("x,", "found '', expected: identifier after ','".into()),
        ("x=a b", "found 'b', expected: ',' or 'end of string'".into()),
        ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt".into()),
        ("x in a", "unable to parse requirement: found 'a' expected: '('".into()),
        ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'".into()),
        ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
        ("x=(", "unable to parse requirement: found '(', expected: identifier".into()),
        ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
        ("!=a", "found '!=', expected: !, identifier, or 'end of string'".into()),
        (
            "x=a||y=b",
            format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {LABEL_VALUE_MSG}"),
        ),
        (
            "x>1.5",
            "unable to parse requirement: values[0]: Invalid value: \"1.5\": for 'Gt', 'Lt' operators, the value must be an integer"
                .into(),
        ),
        ("-x", format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_PART_MSG}")),
        (
            "a/b/c",
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
                .into(),
        ),
        (
            "/x",
            "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be non-empty".into(),
        ),
        (
            "Example.com/x",
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/x\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        ),
        (
            &*Box::leak(format!("x={}", "a".repeat(64)).into_boxed_str()),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"{}\": must be no more than 63 characters",
                "a".repeat(64)
            ),
        ),
    ];
    for (input, want) in cases {
        match LabelSelector::parse(input) {
            Ok(s) => panic!("{input:?} parsed as {s}"),
            Err(e) => assert_eq!(e.to_string(), want, "input {input:?}"),
        }
    }
}

#[test]
fn label_matching() {
    let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front"), ("n", "5")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let cases = [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=db", false),
        ("app!=db", true),
        ("app!=web", false),
        ("missing!=x", true),
        ("missing=", false),
        ("app in (db,web)", true),
        ("app in (db)", false),
        ("app notin (db)", true),
        ("app notin (web)", false),
        ("missing notin (web)", true),
        ("app", true),
        ("missing", false),
        ("!app", false),
        ("!missing", true),
        ("app=web,tier=front", true),
        ("app=web,tier=back", false),
        ("n>4", true),
        ("n>5", false),
        ("n<6", true),
        ("app>1", false),
        ("missing<1", false),
    ];
    for (sel, want) in cases {
        let s = LabelSelector::parse(sel).unwrap();
        assert_eq!(s.matches(&labels), want, "selector {sel:?}");
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front", "n": "5"}}});
        assert_eq!(s.matches_object(&obj), want, "selector {sel:?} on object");
    }
    assert!(!LabelSelector::nothing().matches(&labels));
    assert!(LabelSelector::everything().matches(&labels));
    let s = LabelSelector::parse("app=web,x in (y)").unwrap();
    assert_eq!(s.requires_exact_match("app"), Some("web"));
    assert_eq!(s.requires_exact_match("x"), Some("y"));
    assert_eq!(s.requires_exact_match("tier"), None);
}

#[test]
fn label_selector_object() {
    let ok = [
        (json!({}), Some("")),
        (
            json!({"matchLabels": {"b": "2", "a": "1"}}),
            Some("a=1,b=2"),
        ),
        (
            json!({"matchLabels": {"app": "web"},
                   "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                        {"key": "env", "operator": "NotIn", "values": ["prod"]},
                                        {"key": "x", "operator": "Exists"},
                                        {"key": "y", "operator": "DoesNotExist"}]}),
            Some("app=web,env notin (prod),tier in (a,b),x,!y"),
        ),
    ];
    for (v, want) in ok {
        let s = LabelSelector::from_label_selector(Some(&v)).unwrap();
        assert_eq!(s.to_string(), want.unwrap(), "selector {v}");
        assert!(!s.is_nothing());
    }
    assert!(LabelSelector::from_label_selector(None)
        .unwrap()
        .is_nothing());
    assert!(LabelSelector::from_label_selector(Some(&Value::Null))
        .unwrap()
        .is_nothing());
    assert!(LabelSelector::from_label_selector(Some(&json!({})))
        .unwrap()
        .is_empty());

    let errs = [
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Foo", "values": ["x"]}]}),
            "\"Foo\" is not a valid label selector operator".to_string(),
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into(),
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist".into(),
        ),
        (
            json!({"matchLabels": {"a": "b c"}}),
            format!("values[0][a]: Invalid value: \"b c\": {LABEL_VALUE_MSG}"),
        ),
        (json!({"matchLabels": {"-a": "b"}}), format!("key: Invalid value: \"-a\": {NAME_PART_MSG}")),
        (
            json!({"matchExpressions": [{"key": "-a", "operator": "In", "values": []}]}),
            format!(
                "[key: Invalid value: \"-a\": {NAME_PART_MSG}, values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty]"
            ),
        ),
    ];
    for (v, want) in errs {
        let e = LabelSelector::from_label_selector(Some(&v)).unwrap_err();
        assert_eq!(e.to_string(), want, "selector {v}");
    }
}

#[test]
fn requirement_new_validation() {
    assert!(Requirement::new("a", Operator::In, vec!["x".into()]).is_ok());
    let cases = [
        (Operator::Equals, vec![], "values: Invalid value: []string{}: exact-match compatibility requires one single value"),
        (
            Operator::GreaterThan,
            vec!["1".to_string(), "2".to_string()],
            "values: Invalid value: []string{\"1\", \"2\"}: for 'Gt', 'Lt' operators, exactly one value is required",
        ),
        (Operator::LessThan, vec!["z".to_string()], "values[0]: Invalid value: \"z\": for 'Gt', 'Lt' operators, the value must be an integer"),
    ];
    for (op, vals, want) in cases {
        assert_eq!(
            Requirement::new("a", op, vals).unwrap_err().to_string(),
            want,
            "op {op:?}"
        );
    }
}

#[test]
fn field_parse_and_string() {
    let cases = [
        ("", ""),
        ("metadata.name=foo", "metadata.name=foo"),
        ("metadata.name==foo", "metadata.name=foo"),
        ("spec.nodeName!=", "spec.nodeName!="),
        (
            "status.phase=Running,metadata.namespace=default",
            "metadata.namespace=default,status.phase=Running",
        ),
        ("a=b\\,c", "a=b\\,c"),
        ("a=b\\=c\\\\d", "a=b\\=c\\\\d"),
        ("a=x,", "a=x"),
        ("a= b ", "a= b "),
    ];
    for (input, want) in cases {
        let s = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(s.to_string(), want, "input {input:?}");
        assert_eq!(FieldSelector::parse(&s.to_string()).unwrap(), s);
    }
    let s = FieldSelector::parse("a=b\\,c\\=d").unwrap();
    assert_eq!(s.terms()[0].value, "b,c=d");
}

#[test]
fn field_parse_errors() {
    let cases = [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (
            "a=b\\x",
            "invalid field selector: invalid escape sequence: \\x",
        ),
        (
            "a=b\\",
            "invalid field selector: invalid escape sequence: \\",
        ),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            FieldSelector::parse(input).unwrap_err().to_string(),
            want,
            "input {input:?}"
        );
    }
}

#[test]
fn field_matching() {
    let fields: &[(&str, &str)] = &[
        ("metadata.name", "p1"),
        ("spec.nodeName", ""),
        ("status.phase", "Running"),
    ];
    let cases = [
        ("", true),
        ("metadata.name=p1", true),
        ("metadata.name=p2", false),
        ("metadata.name!=p2", true),
        ("spec.nodeName=", true),
        ("spec.nodeName!=", false),
        ("status.phase=Running,metadata.name=p1", true),
        ("status.phase=Running,metadata.name!=p1", false),
        ("involvedObject.uid=", true),
    ];
    for (sel, want) in cases {
        assert_eq!(
            FieldSelector::parse(sel).unwrap().matches(fields),
            want,
            "selector {sel:?}"
        );
    }
    let s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").unwrap();
    assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
    assert_eq!(s.requires_exact_match("status.phase"), None);
    assert!(s
        .check_supported(&["spec.nodeName", "status.phase"])
        .is_ok());
    assert_eq!(
        s.check_supported(&["spec.nodeName"])
            .unwrap_err()
            .to_string(),
        "field label not supported: status.phase"
    );
}

#[test]
fn validation_helpers() {
    assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
    assert!(is_qualified_name("A_b.c-D").is_empty());
    assert!(!is_qualified_name(&"a".repeat(64)).is_empty());
    assert!(is_valid_label_value("").is_empty());
    assert!(!is_valid_label_value("-a").is_empty());
    assert!(is_dns1123_subdomain("a.b-c.d").is_empty());
    assert!(!is_dns1123_subdomain("a..b").is_empty());
}

#[test]
fn label_selector_from_typed_api_object() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
    let typed = metav1::LabelSelector {
        match_labels: Some(
            [("app".to_string(), "web".to_string())]
                .into_iter()
                .collect(),
        ),
        match_expressions: Some(vec![metav1::LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: Some(vec!["db".into()]),
        }]),
    };
    let s = LabelSelector::from_api(Some(&typed)).unwrap();
    assert_eq!(s.to_string(), "app=web,tier notin (db)");
    assert!(LabelSelector::from_api(None).unwrap().is_nothing());
    assert!(
        LabelSelector::from_api(Some(&metav1::LabelSelector::default()))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn meta_fields_and_error_status() {
    let obj = json!({"metadata": {"name": "p", "namespace": "ns"}});
    let f = object_meta_fields(&obj, true);
    assert!(
        FieldSelector::parse("metadata.name=p,metadata.namespace=ns")
            .unwrap()
            .matches(&f)
    );
    assert!(!FieldSelector::parse("metadata.namespace=other")
        .unwrap()
        .matches(&f));
    assert!(!object_meta_fields(&obj, false).contains_key("metadata.namespace"));
    let e = LabelSelector::parse("x y").unwrap_err().to_api_error();
    assert_eq!(e.code(), 400);
    assert!(e.message.contains("unable to parse requirement"));
}

#[test]
fn custom_resource_field_selector_message() {
    let s = FieldSelector::parse("spec.x=1").unwrap();
    assert_eq!(
        s.check_supported_quoted(&["metadata.name", "metadata.namespace"])
            .unwrap_err()
            .to_string(),
        "\"spec.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    assert!(FieldSelector::parse("metadata.name=a")
        .unwrap()
        .check_supported_quoted(&["metadata.name"])
        .is_ok());
}
