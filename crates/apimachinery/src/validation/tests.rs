//! Table-driven validation tests: valid defaulted objects pass, and each broken variant yields
//! the expected field paths and upstream-style messages.

use super::*;
use crate::defaults::{apply_defaults, job_generate_selector, prepare_for_create};
use serde_json::json;

fn defaulted(group: &str, version: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(group, version, kind, &mut obj);
    prepare_for_create(group, kind, &mut obj);
    obj
}

fn pod() -> Value {
    defaulted(
        "",
        "v1",
        "Pod",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "ports": [{"name": "http", "containerPort": 80}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                    "readinessProbe": {"httpGet": {"port": "http"}},
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                    "env": [{"name": "A", "value": "1"}]
                }],
                "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
            }
        }),
    )
}

fn template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}})
}

fn deployment() -> Value {
    defaulted(
        "apps",
        "v1",
        "Deployment",
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))}
        }),
    )
}

fn service() -> Value {
    defaulted(
        "",
        "v1",
        "Service",
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "targetPort": "https"}], "clusterIP": "10.96.0.10"}
        }),
    )
}

fn job() -> Value {
    let mut j = defaulted(
        "batch",
        "v1",
        "Job",
        json!({
            "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl:5.34"}]}}}
        }),
    );
    job_generate_selector(&mut j, "u-1");
    j
}

fn set(mut v: Value, pointer: &str, new: Value) -> Value {
    let (parent, k) = pointer.rsplit_once('/').unwrap();
    match v
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"))
    {
        Value::Object(m) => {
            m.insert(k.to_string(), new);
        }
        Value::Array(a) => a[k.parse::<usize>().unwrap()] = new,
        other => panic!("cannot set {pointer} in {other}"),
    }
    v
}

fn remove(mut v: Value, pointer: &str) -> Value {
    let (parent, k) = pointer.rsplit_once('/').unwrap();
    let k = k.replace("~1", "/").replace("~0", "~");
    let removed = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap()
        .remove(&k);
    assert!(removed.is_some(), "no {pointer}");
    v
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::full_message).collect()
}

#[test]
fn valid_objects_pass() {
    let cases: Vec<(&str, &str, Value)> = vec![
        ("", "Pod", pod()),
        ("apps", "Deployment", deployment()),
        ("", "Service", service()),
        ("batch", "Job", job()),
        (
            "apps",
            "ReplicaSet",
            defaulted(
                "apps",
                "v1",
                "ReplicaSet",
                json!({"metadata": {"name": "r", "namespace": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}, "template": template(json!({"app": "a"}))}}),
            ),
        ),
        (
            "apps",
            "StatefulSet",
            defaulted(
                "apps",
                "v1",
                "StatefulSet",
                json!({"metadata": {"name": "db", "namespace": "d"}, "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "db"})),
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
            ),
        ),
        (
            "apps",
            "DaemonSet",
            defaulted(
                "apps",
                "v1",
                "DaemonSet",
                json!({"metadata": {"name": "ds", "namespace": "d"}, "spec": {"selector": {"matchLabels": {"app": "ds"}}, "template": template(json!({"app": "ds"}))}}),
            ),
        ),
        (
            "batch",
            "CronJob",
            defaulted(
                "batch",
                "v1",
                "CronJob",
                json!({"metadata": {"name": "cj", "namespace": "d"}, "spec": {"schedule": "*/5 * * * mon-fri", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
            ),
        ),
        (
            "",
            "ReplicationController",
            defaulted(
                "",
                "v1",
                "ReplicationController",
                json!({"metadata": {"name": "rc", "namespace": "d"}, "spec": {"template": template(json!({"app": "rc"}))}}),
            ),
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "cfg", "namespace": "d"}, "data": {"app.properties": "x=1", "KEY_NAME": "v"}}),
        ),
        (
            "",
            "Secret",
            defaulted(
                "",
                "v1",
                "Secret",
                json!({"metadata": {"name": "s", "namespace": "d"}, "data": {"password": "c2VjcmV0"}}),
            ),
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "tls", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
        ),
        (
            "",
            "Namespace",
            defaulted(
                "",
                "v1",
                "Namespace",
                json!({"metadata": {"name": "team-a"}}),
            ),
        ),
        (
            "",
            "Node",
            defaulted(
                "",
                "v1",
                "Node",
                json!({"metadata": {"name": "node-1.example"}, "spec": {"podCIDRs": ["10.244.0.0/24"], "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
            ),
        ),
        (
            "",
            "PersistentVolume",
            defaulted(
                "",
                "v1",
                "PersistentVolume",
                json!({"metadata": {"name": "pv1"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}}),
            ),
        ),
        (
            "",
            "PersistentVolumeClaim",
            defaulted(
                "",
                "v1",
                "PersistentVolumeClaim",
                json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
            ),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            defaulted(
                "storage.k8s.io",
                "v1",
                "StorageClass",
                json!({"metadata": {"name": "local"}, "provisioner": "rancher.io/local-path"}),
            ),
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            defaulted(
                "scheduling.k8s.io",
                "v1",
                "PriorityClass",
                json!({"metadata": {"name": "high"}, "value": 1000}),
            ),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "system:reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            defaulted(
                "rbac.authorization.k8s.io",
                "v1",
                "RoleBinding",
                json!({"metadata": {"name": "rb", "namespace": "d"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "d"}, {"kind": "User", "name": "alice"}]}),
            ),
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            defaulted(
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                json!({"metadata": {"name": "np", "namespace": "d"}, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"port": 80, "endPort": 90}]}]}}),
            ),
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": {"name": "ing", "namespace": "d"}, "spec": {"rules": [{"host": "*.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": {"name": "pdb", "namespace": "d"}, "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "a"}}}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            defaulted(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                json!({"metadata": {"name": "h", "namespace": "d"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5, "behavior": {}}}),
            ),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            defaulted(
                "discovery.k8s.io",
                "v1",
                "EndpointSlice",
                json!({"metadata": {"name": "web-abc", "namespace": "d"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}], "ports": [{"port": 80}]}),
            ),
        ),
        (
            "",
            "Endpoints",
            defaulted(
                "",
                "v1",
                "Endpoints",
                json!({"metadata": {"name": "web", "namespace": "d"}, "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}),
            ),
        ),
    ];
    for (g, k, obj) in cases {
        let errs = validate_create(g, "v1", k, &obj);
        assert!(
            errs.is_empty(),
            "{g}/{k} should be valid: {:#?}",
            messages(&errs)
        );
    }
}

#[test]
fn invalid_objects_table() {
    // (group, kind, object, expected full messages, in order)
    let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
        (
            "", "Pod",
            set(pod(), "/metadata/name", json!("Bad_Name")),
            vec!["metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"],
        ),
        ("", "Pod", set(pod(), "/spec/containers", json!([])), vec!["spec.containers: Required value"]),
        ("", "Pod", set(pod(), "/spec/containers/0/image", json!("")), vec!["spec.containers[0].image: Required value"]),
        (
            "", "Pod",
            set(pod(), "/spec/containers/0/name", json!("Nginx")),
            vec!["spec.containers[0].name: Invalid value: \"Nginx\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"],
        ),
        (
            "", "Pod",
            {
                let mut p = pod();
                let c = p["spec"]["containers"][0].clone();
                p["spec"]["containers"].as_array_mut().unwrap().push(c);
                p
            },
            vec!["spec.containers[1].name: Duplicate value: \"nginx\""],
        ),
        ("", "Pod", set(pod(), "/spec/containers/0/ports/0/containerPort", json!(70000)), vec!["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
        ("", "Pod", set(pod(), "/spec/containers/0/ports/0/protocol", json!("HTTP")), vec!["spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
        ("", "Pod", set(pod(), "/spec/restartPolicy", json!("Sometimes")), vec!["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""]),
        ("", "Pod", set(pod(), "/spec/containers/0/resources/requests/cpu", json!("1")), vec!["spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"]),
        ("", "Pod", set(pod(), "/spec/containers/0/resources/limits/memory", json!("lots")), vec!["spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]),
        ("", "Pod", set(pod(), "/spec/containers/0/resources/limits", json!({"gpu": "1"})), vec!["spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers"]),
        ("", "Pod", set(pod(), "/spec/containers/0/volumeMounts/0/name", json!("missing")), vec!["spec.containers[0].volumeMounts[0].name: Not found: \"missing\""]),
        ("", "Pod", set(pod(), "/spec/volumes/0", json!({"name": "cfg"})), vec!["spec.volumes[0]: Required value: must specify a volume type"]),
        ("", "Pod", set(pod(), "/spec/volumes/0/configMap/defaultMode", json!(1000)), vec!["spec.volumes[0].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive"]),
        ("", "Pod", set(pod(), "/spec/containers/0/livenessProbe", json!({"periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 2, "failureThreshold": 3, "exec": {"command": ["true"]}})), vec!["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
        ("", "Pod", set(pod(), "/spec/containers/0/readinessProbe", json!({"periodSeconds": 10})), vec!["spec.containers[0].readinessProbe: Required value: must specify a handler type"]),
        ("", "Pod", set(pod(), "/spec/containers/0/env/0/name", json!("A=B")), vec!["spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"]),
        ("", "Pod", set(pod(), "/spec/tolerations/0/value", json!("v")), vec!["spec.tolerations[0].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'"]),
        ("", "Pod", set(pod(), "/metadata/labels", json!({"app": "-web"})), vec!["metadata.labels: Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
        ("", "Pod", remove(pod(), "/metadata/namespace"), vec!["metadata.namespace: Required value"]),
        ("", "Pod", set(pod(), "/spec/dnsPolicy", json!("None")), vec!["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]),
        ("", "Pod", set(set(pod(), "/spec/dnsPolicy", json!("None")), "/spec/dnsConfig", json!({"searches": ["svc.cluster.local"]})), vec!["spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"]),
        ("", "Pod", set(pod(), "/spec/dnsConfig", json!({"nameservers": ["1.1.1.1", "x"], "searches": ["Bad_Domain"]})), vec![
            "spec.dnsConfig.nameservers[1]: Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "spec.dnsConfig.searches[0]: Invalid value: \"Bad_Domain\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ]),
        ("", "Pod", set(pod(), "/spec/containers/0/terminationMessagePolicy", json!("")), vec!["spec.containers[0].terminationMessagePolicy: Required value: must be 'File' or 'FallbackToLogsOnError'"]),
        ("", "Pod", {
            let mut p = set(pod(), "/spec/containers/0/ports/0/hostPort", json!(8080));
            let mut c = p["spec"]["containers"][0].clone();
            c["name"] = json!("second");
            c["ports"][0]["name"] = json!("http2");
            c["ports"][0]["containerPort"] = json!(81);
            p["spec"]["containers"].as_array_mut().unwrap().push(c);
            p
        }, vec!["spec.containers[1].ports[0].hostPort: Duplicate value: \"TCP//8080\""]),
        ("", "Pod", set(pod(), "/spec/affinity", json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]}}, "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}}}]}})), vec![
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Unsupported value: \"Near\": supported values: \"DoesNotExist\", \"Exists\", \"Gt\", \"In\", \"Lt\", \"NotIn\"",
            "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100",
            "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey: Required value: can not be empty",
        ]),
        ("", "Pod", set(pod(), "/spec/topologySpreadConstraints", json!([{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}])), vec![
            "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
            "spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: \"Maybe\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\"",
        ]),
        ("", "Pod", set(pod(), "/spec/securityContext", json!({"runAsUser": -1, "seccompProfile": {"type": "Localhost"}})), vec![
            "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccompProfile type is Localhost",
        ]),
        ("", "Pod", set(pod(), "/spec/containers/0/envFrom", json!([{"prefix": "A=", "configMapRef": {"name": "x"}}, {}])), vec![
            "spec.containers[0].envFrom[0].prefix: Invalid value: \"A=\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[0].envFrom[1]: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
        ]),
        ("", "Pod", set(set(pod(), "/spec/hostAliases", json!([{"ip": "127.0.0.1", "hostnames": ["foo.local"]}, {"ip": "x"}])), "/spec/os", json!({"name": "plan9"})), vec![
            "spec.hostAliases[1].ip: Invalid value: \"x\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "spec.os.name: Unsupported value: \"plan9\": supported values: \"linux\", \"windows\"",
        ]),
        ("", "Pod", set(pod(), "/spec/hostNetwork", json!(true)), vec!["spec.containers[0].ports[0].hostPort: Invalid value: 0: must match `containerPort` when `hostNetwork` is true"]),
        ("", "Pod", defaulted("", "v1", "Pod", set(pod(), "/spec/hostNetwork", json!(true))), vec![]),
        ("", "Pod", set(pod(), "/spec/ephemeralContainers", json!([{"name": "debug", "image": "busybox", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}])), vec!["spec.ephemeralContainers: Forbidden: cannot be set on create"]),
        ("apps", "Deployment", set(set(deployment(), "/spec/template/spec/hostNetwork", json!(true)), "/spec/template/spec/containers/0/ports", json!([{"containerPort": 80, "protocol": "TCP"}])), vec![]),
        ("apps", "Deployment", set(set(deployment(), "/spec/template/spec/hostNetwork", json!(true)), "/spec/template/spec/containers/0/ports", json!([{"containerPort": 80, "hostPort": 81, "protocol": "TCP"}])), vec!["spec.template.spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is true"]),
        ("apps", "ReplicaSet", defaulted("apps", "v1", "ReplicaSet", json!({"metadata": {"name": "r", "namespace": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": set(template(json!({"a": "b"})), "/spec/activeDeadlineSeconds", json!(5))}})), vec!["spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"]),
        (
            "apps", "Deployment",
            set(deployment(), "/spec/template/metadata/labels", json!({"app": "other"})),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"],
        ),
        ("apps", "Deployment", remove(deployment(), "/spec/selector"), vec!["spec.selector: Required value", "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"]),
        ("apps", "Deployment", set(deployment(), "/spec/replicas", json!(-1)), vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
        ("apps", "Deployment", set(deployment(), "/spec/template/spec/restartPolicy", json!("Never")), vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]),
        ("apps", "Deployment", set(deployment(), "/spec/strategy/rollingUpdate", json!({"maxUnavailable": 0, "maxSurge": "0%"})), vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]),
        ("apps", "Deployment", set(deployment(), "/spec/strategy/rollingUpdate/maxSurge", json!("abc")), vec!["spec.strategy.rollingUpdate.maxSurge: Invalid value: \"abc\": must be an integer or percentage (e.g '5%')"]),
        ("apps", "Deployment", set(deployment(), "/spec/strategy", json!({"type": "Recreate", "rollingUpdate": {}})), vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]),
        ("apps", "Deployment", set(deployment(), "/spec/selector", json!({})), vec!["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]),
        ("apps", "Deployment", set(deployment(), "/spec/selector", json!({"matchExpressions": [{"key": "app", "operator": "In"}]})), vec![
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector: Invalid value: {\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\"}]}: invalid label selector",
        ]),
        ("apps", "Deployment", set(deployment(), "/spec/progressDeadlineSeconds", json!(5)), vec![]),
        ("apps", "Deployment", set(set(deployment(), "/spec/progressDeadlineSeconds", json!(5)), "/spec/minReadySeconds", json!(10)), vec!["spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"]),
        ("", "Service", set(service(), "/metadata/name", json!("1web")), vec!["metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]),
        ("", "Service", set(service(), "/spec/ports", json!([])), vec!["spec.ports: Required value"]),
        ("", "Service", set(service(), "/spec/ports/1/name", json!("")), vec!["spec.ports[1].name: Required value"]),
        ("", "Service", set(service(), "/spec/ports/1/port", json!(80)), vec!["spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"]),
        ("", "Service", set(service(), "/spec/ports/0/nodePort", json!(30080)), vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
        ("", "Service", remove(set(service(), "/spec/clusterIPs", json!(["10.96.0.10"])), "/spec/clusterIP"), vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: must be empty when `clusterIP` is not specified"]),
        ("", "Service", set(service(), "/spec/clusterIPs", json!(["10.96.0.11"])), vec!["spec.clusterIPs: Invalid value: []string{\"10.96.0.11\"}: first value must match `clusterIP`"]),
        ("", "Service", set(service(), "/spec/type", json!("Magic")), vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]),
        ("", "Service", set(service(), "/spec/clusterIP", json!("10.96.0.300")), vec!["spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]),
        ("", "Service", set(service(), "/spec/ports/1/targetPort", json!("Https_")), vec![
            "spec.ports[1].targetPort: Invalid value: \"Https_\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ]),
        ("batch", "Job", set(job(), "/spec/template/spec/restartPolicy", json!("Always")), vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
        ("batch", "Job", set(job(), "/spec/selector", json!({"matchLabels": {"a": "b"}})), vec![
            "spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: `selector` not auto-generated",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"pi\"}: `selector` does not match template `labels`",
        ]),
        ("batch", "Job", set(job(), "/spec/completionMode", json!("Indexed")), vec![]),
        ("batch", "Job", remove(set(job(), "/spec/completionMode", json!("Indexed")), "/spec/completions"), vec!["spec.completions: Required value: when completion mode is Indexed"]),
        ("batch", "Job", set(job(), "/spec/template/metadata/labels/job-name", json!("other")), vec![
            "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"other\"}: must be 'pi'",
        ]),
        ("batch", "Job", remove(job(), "/spec/template/metadata/labels/batch.kubernetes.io~1controller-uid"), vec![
            "spec.template.metadata.labels[batch.kubernetes.io/controller-uid]: Required value: must be 'u-1'",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"pi\"}: `selector` does not match template `labels`",
        ]),
        ("batch", "Job", set(set(job(), "/spec/manualSelector", json!(true)), "/spec/selector", json!({"matchLabels": {"job-name": "pi"}})), vec![]),
        ("batch", "Job", set(job(), "/spec/backoffLimit", json!(-1)), vec!["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"]),
    ];
    for (g, k, obj, want) in cases {
        let got = messages(&validate_create(g, "v1", k, &obj));
        assert_eq!(got, want, "{g}/{k}");
    }
}

#[test]
fn more_invalid_kinds_table() {
    let cron = |schedule: &str| {
        defaulted(
            "batch",
            "v1",
            "CronJob",
            json!({"metadata": {"name": "cj", "namespace": "d"}, "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        )
    };
    // (group, kind, object, expected field paths, expected first message or "")
    let cases: Vec<(&str, &str, Value, Vec<&str>, &str)> = vec![
        ("batch", "CronJob", cron("* * * *"), vec!["spec.schedule"], "spec.schedule: Invalid value: \"* * * *\": expected exactly 5 fields, found 4: [* * * *]"),
        ("batch", "CronJob", cron("60 * * * *"), vec!["spec.schedule"], "spec.schedule: Invalid value: \"60 * * * *\": end of range (60) above maximum (59): 60"),
        ("batch", "CronJob", cron("TZ=UTC 0 * * * *"), vec!["spec.schedule"], "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        ("batch", "CronJob", cron("@hourly"), vec![], ""),
        ("batch", "CronJob", set(cron("0 3 * * *"), "/spec/timeZone", json!("Europe/Berlin")), vec![], ""),
        ("batch", "CronJob", set(cron("0 3 * * *"), "/spec/timeZone", json!("Local")), vec!["spec.timeZone"], "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"),
        ("batch", "CronJob", cron("TZ=UTC 0 * *"), vec!["spec.schedule", "spec.schedule"], "spec.schedule: Invalid value: \"TZ=UTC 0 * *\": expected exactly 5 fields, found 3: [0 * *]"),
        ("batch", "Job", {
            let mut j = defaulted("batch", "v1", "Job", json!({
                "metadata": {"name": "a".repeat(62), "namespace": "d", "uid": "u-2"},
                "spec": {"completionMode": "Indexed", "completions": 10, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
            }));
            job_generate_selector(&mut j, "u-2");
            j
        }, vec!["metadata.name"], "metadata.name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": will not able to create pod with invalid DNS label: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-9"),
        ("batch", "CronJob", set(cron("@daily"), "/metadata/name", json!("a".repeat(53))), vec!["metadata.name"], "metadata.name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": must be no more than 52 characters"),
        ("batch", "CronJob", set(cron("@daily"), "/spec/concurrencyPolicy", json!("Sometimes")), vec!["spec.concurrencyPolicy"], "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""),
        ("", "ConfigMap", json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a/b": "x"}}), vec!["data[a/b]"], "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
        ("", "ConfigMap", json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"k": "x"}, "binaryData": {"k": "eA=="}}), vec!["data[k]", "binaryData[k]"], "data[k]: Invalid value: \"k\": duplicate of key present in binaryData"),
        ("", "Secret", json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}}), vec!["data[tls.key]"], "data[tls.key]: Required value"),
        ("", "Namespace", json!({"metadata": {"name": "Team"}}), vec!["metadata.name"], ""),
        ("", "Namespace", json!({"metadata": {"name": "a", "namespace": "b"}}), vec!["metadata.namespace"], "metadata.namespace: Forbidden: not allowed on this type"),
        ("", "Namespace", json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["custom"]}}), vec!["spec.finalizers"], "spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"),
        ("", "PersistentVolumeClaim", defaulted("", "v1", "PersistentVolumeClaim", json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {}})), vec!["spec.accessModes", "spec.resources[storage]"], "spec.accessModes: Required value: at least 1 access mode is required"),
        ("", "PersistentVolume", defaulted("", "v1", "PersistentVolume", json!({"metadata": {"name": "p"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}})), vec!["spec"], "spec: Required value: must specify a volume type"),
        ("storage.k8s.io", "StorageClass", json!({"metadata": {"name": "s"}, "provisioner": "x", "reclaimPolicy": "Recycle", "volumeBindingMode": "Immediate"}), vec!["reclaimPolicy"], "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\""),
        ("scheduling.k8s.io", "PriorityClass", json!({"metadata": {"name": "p"}, "value": 2000000000}), vec!["value"], "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"),
        ("rbac.authorization.k8s.io", "Role", json!({"metadata": {"name": "r", "namespace": "d"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}), vec!["rules[0].verbs"], "rules[0].verbs: Required value: verbs must contain at least one value"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding", json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}), vec!["roleRef.kind", "subjects[0].namespace"], "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""),
        ("networking.k8s.io", "NetworkPolicy", json!({"metadata": {"name": "n", "namespace": "d"}, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}], "ports": [{"port": 90, "endPort": 80, "protocol": "TCP"}]}]}}), vec!["spec.ingress[0].ports[0].endPort", "spec.ingress[0].from[0].ipBlock.cidr"], "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"),
        ("networking.k8s.io", "NetworkPolicy", json!({"metadata": {"name": "n", "namespace": "d"}, "spec": {"podSelector": {}, "egress": [{"to": [
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8", "11.0.0.0/16", "10.1.0.0/16"]}},
            {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
            {}
        ]}]}}), vec!["spec.egress[0].to[0].ipBlock.except[0]", "spec.egress[0].to[0].ipBlock.except[1]", "spec.egress[0].to[1]", "spec.egress[0].to[2]"],
            "spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`"),
        ("networking.k8s.io", "Ingress", json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"host": "a.com", "http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "x", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}},
            {"path": "/a//b", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}}
        ]}}, {"host": "*.Bad.com"}]}}),
            vec!["spec.rules[0].http.paths[0].pathType", "spec.rules[0].http.paths[1].path", "spec.rules[0].http.paths[1].backend", "spec.rules[0].http.paths[2].path", "spec.rules[0].http.paths[2].backend", "spec.rules[1].host"],
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"),
        ("networking.k8s.io", "Ingress", json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"host": "*.Bad.com"}]}}), vec!["spec.rules[0].host"],
            "spec.rules[0].host: Invalid value: \"*.Bad.com\": a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        ("networking.k8s.io", "Ingress", json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {}}}}]}}]}}), vec!["spec.rules[0].http.paths[0].backend"],
            "spec.rules[0].http.paths[0].backend: Required value: port name or number is required"),
        ("policy", "PodDisruptionBudget", json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": 1, "maxUnavailable": "120%"}}), vec!["spec", "spec.maxUnavailable"], "spec: Invalid value: {\"minAvailable\":1,\"maxUnavailable\":\"120%\"}: minAvailable and maxUnavailable cannot be both set"),
        ("autoscaling", "HorizontalPodAutoscaler", json!({"metadata": {"name": "h", "namespace": "d"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "minReplicas": 3, "maxReplicas": 2}}), vec!["spec.maxReplicas"], "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"),
        ("discovery.k8s.io", "EndpointSlice", json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPv4", "endpoints": [{"addresses": ["::1"]}], "ports": [{"port": 80, "protocol": "TCP", "name": ""}]}), vec!["endpoints[0].addresses[0]"], "endpoints[0].addresses[0]: Invalid value: \"::1\": must be a valid IPv4 address"),
        ("", "ResourceQuota", json!({"metadata": {"name": "q", "namespace": "d"}, "spec": {"hard": {"pods": "1.5", "requests.cpu": "-1", "limits.memory": "lots"}}}), vec!["spec.hard[pods]", "spec.hard[requests.cpu]", "spec.hard[limits.memory]"], "spec.hard[pods]: Invalid value: \"1.5\": must be an integer"),
        ("", "LimitRange", defaulted("", "v1", "LimitRange", json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}})), vec!["spec.limits[0].min[cpu]", "spec.limits[0].defaultRequest[cpu]", "spec.limits[0].default[cpu]"], "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"),
        ("networking.k8s.io", "IngressClass", json!({"metadata": {"name": "nginx"}, "spec": {}}), vec!["spec.controller"], "spec.controller: Required value"),
        ("networking.k8s.io", "IngressClass", json!({"metadata": {"name": "nginx"}, "spec": {"controller": "nginx"}}), vec!["spec.controller"], "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"),
        ("", "Binding", json!({"metadata": {"name": "p", "namespace": "d"}, "target": {"kind": "Pod"}}), vec!["target.kind", "target.name"], "target.kind: Unsupported value: \"Pod\": supported values: \"Node\", \"<empty>\""),
        ("", "PodTemplate", defaulted("", "v1", "PodTemplate", json!({"metadata": {"name": "t", "namespace": "d"}})), vec!["template.spec.containers"], "template.spec.containers: Required value"),
        ("apps", "StatefulSet", defaulted("apps", "v1", "StatefulSet", json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"podManagementPolicy": "Random", "selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"}))}})), vec!["spec.podManagementPolicy"], "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"),
        ("apps", "DaemonSet", defaulted("apps", "v1", "DaemonSet", json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"})), "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}}})), vec!["spec.updateStrategy.rollingUpdate.maxUnavailable"], "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"),
        ("", "ReplicationController", json!({"metadata": {"name": "r", "namespace": "d"}, "spec": {"replicas": 1}}), vec!["spec.selector", "spec.template"], "spec.selector: Required value"),
        ("apps", "DaemonSet", defaulted("apps", "v1", "DaemonSet", json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"})), "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}}}})), vec!["spec.updateStrategy.rollingUpdate.maxSurge"], "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: \"10%\": may not be set when maxUnavailable is non-zero"),
        ("apps", "DaemonSet", defaulted("apps", "v1", "DaemonSet", json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"template": template(json!({"a": "b"}))}})), vec!["spec.template.metadata.labels"], "spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"b\"}: `selector` does not match template `labels`"),
        // upstream validates only the labels and annotations of a StatefulSet's pod template
        ("apps", "StatefulSet", defaulted("apps", "v1", "StatefulSet", json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}}})), vec![], ""),
        ("apps", "StatefulSet", defaulted("apps", "v1", "StatefulSet", json!({"metadata": {"name": "s.x", "namespace": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": set(template(json!({"a": "b"})), "/spec/activeDeadlineSeconds", json!(5))}})), vec!["metadata.name", "spec.template.spec.activeDeadlineSeconds"], ""),
    ];
    for (g, k, obj, fields, first) in cases {
        let errs = validate_create(g, "v1", k, &obj);
        let got: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, fields, "{g}/{k}: {:#?}", messages(&errs));
        if !first.is_empty() {
            assert_eq!(errs[0].full_message(), first, "{g}/{k}");
        }
    }
}

type UpdateCase<'a> = (&'a str, &'a str, Value, Value, Vec<&'a str>, &'a str);

fn with_rv(mut v: Value) -> Value {
    v["metadata"]["resourceVersion"] = json!("7");
    v
}

#[test]
fn updates_table() {
    let p = with_rv(pod());
    let d = with_rv(deployment());
    let svc = with_rv(service());
    let j = with_rv(job());
    let pvc = with_rv(defaulted(
        "",
        "v1",
        "PersistentVolumeClaim",
        json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    ));
    let sc = with_rv(defaulted(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        json!({"metadata": {"name": "s"}, "provisioner": "x", "parameters": {"a": "1"}}),
    ));
    let cm = with_rv(
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}}),
    );
    let sts = with_rv(defaulted(
        "apps",
        "v1",
        "StatefulSet",
        json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}}, "template": template(json!({"a": "b"}))}}),
    ));
    let rb = with_rv(
        json!({"metadata": {"name": "rb", "namespace": "d"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a"}}),
    );
    // (group, kind, new, old, expected field paths, expected first message or "")
    let cases: Vec<UpdateCase> = vec![
        (
            "",
            "Pod",
            set(p.clone(), "/spec/containers", json!([])),
            p.clone(),
            vec!["spec.containers", "spec.containers"],
            "spec.containers: Required value",
        ),
        (
            "",
            "Pod",
            {
                let mut n = p.clone();
                let mut c = n["spec"]["containers"][0].clone();
                c["name"] = json!("sidecar");
                c["ports"] = json!([]);
                n["spec"]["containers"].as_array_mut().unwrap().push(c);
                n
            },
            p.clone(),
            vec!["spec.containers"],
            "spec.containers: Forbidden: pod updates may not add or remove containers",
        ),
        ("", "Pod", set(p.clone(), "/spec/containers/0/image", json!("nginx:1.26")), p.clone(), vec![], ""),
        ("", "Pod", set(p.clone(), "/spec/activeDeadlineSeconds", json!(30)), p.clone(), vec![], ""),
        ("", "Pod", set(p.clone(), "/spec/tolerations", json!([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}, {"key": "x", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}])), p.clone(), vec![], ""),
        ("", "Pod", set(p.clone(), "/spec/tolerations", json!([])), p.clone(), vec!["spec.tolerations"], "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"),
        ("", "Pod", set(p.clone(), "/spec/containers/0/ports/0/containerPort", json!(81)), p.clone(), vec!["spec"], ""),
        ("", "Pod", set(p.clone(), "/metadata/name", json!("other")), p.clone(), vec!["metadata.name"], "metadata.name: Invalid value: \"other\": field is immutable"),
        ("", "Pod", set(p.clone(), "/metadata/labels/app", json!("v2")), p.clone(), vec![], ""),
        ("apps", "Deployment", set(d.clone(), "/spec/replicas", json!(3)), d.clone(), vec![], ""),
        ("apps", "Deployment", set(set(d.clone(), "/spec/selector/matchLabels/app", json!("x")), "/spec/template/metadata/labels/app", json!("x")), d.clone(), vec!["spec.selector"], "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"x\"}}: field is immutable"),
        ("", "Service", set(svc.clone(), "/spec/clusterIP", json!("10.96.0.11")), svc.clone(), vec!["spec.clusterIPs[0]"], "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"),
        ("", "Service", set(svc.clone(), "/spec/ports/0/port", json!(8080)), svc.clone(), vec![], ""),
        ("batch", "Job", set(j.clone(), "/spec/template/spec/containers/0/image", json!("perl:5.36")), j.clone(), vec!["spec.template"], ""),
        ("batch", "Job", set(j.clone(), "/spec/completions", json!(2)), j.clone(), vec!["spec.completions"], "spec.completions: Invalid value: 2: field is immutable"),
        ("batch", "Job", set(j.clone(), "/spec/suspend", json!(true)), j.clone(), vec![], ""),
        ("", "PersistentVolumeClaim", set(pvc.clone(), "/spec/resources/requests/storage", json!("2Gi")), pvc.clone(), vec![], ""),
        ("", "PersistentVolumeClaim", set(pvc.clone(), "/spec/resources/requests/storage", json!("512Mi")), pvc.clone(), vec!["spec.resources.requests.storage"], "spec.resources.requests.storage: Forbidden: field can not be less than previous value"),
        ("", "PersistentVolumeClaim", set(pvc.clone(), "/spec/accessModes", json!(["ReadWriteMany"])), pvc.clone(), vec!["spec"], "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        ("storage.k8s.io", "StorageClass", set(sc.clone(), "/parameters/a", json!("2")), sc.clone(), vec!["parameters"], "parameters: Forbidden: updates to parameters are forbidden."),
        ("", "ConfigMap", set(cm.clone(), "/data/a", json!("2")), cm.clone(), vec!["data"], "data: Forbidden: field is immutable when `immutable` is set"),
        ("apps", "StatefulSet", set(sts.clone(), "/spec/serviceName", json!("other")), sts.clone(), vec!["spec"], "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
        ("apps", "StatefulSet", set(sts.clone(), "/spec/replicas", json!(3)), sts.clone(), vec![], ""),
        ("rbac.authorization.k8s.io", "RoleBinding", set(rb.clone(), "/roleRef/name", json!("b")), rb.clone(), vec!["roleRef"], ""),
    ];
    for (g, k, new, old, fields, first) in cases {
        let errs = validate_update(g, "v1", k, &new, &old);
        let got: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, fields, "{g}/{k}: {:#?}", messages(&errs));
        if !first.is_empty() {
            assert_eq!(errs[0].full_message(), first, "{g}/{k}");
        }
    }
}

#[test]
fn status_updates_table() {
    let p = with_rv(pod());
    let d = with_rv(deployment());
    let cases: Vec<(&str, &str, Value, Value, Vec<&str>)> = vec![
        (
            "",
            "Pod",
            set(
                p.clone(),
                "/status",
                json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}], "conditions": [{"type": "Ready", "status": "True"}]}),
            ),
            p.clone(),
            vec![],
        ),
        (
            "",
            "Pod",
            set(p.clone(), "/status", json!({"phase": "Exploded"})),
            p.clone(),
            vec!["status.phase"],
        ),
        (
            "",
            "Pod",
            set(p.clone(), "/status", json!({"phase": "Running"})),
            set(p.clone(), "/status", json!({"phase": "Succeeded"})),
            vec!["status.phase"],
        ),
        (
            "",
            "Pod",
            set(
                p.clone(),
                "/status",
                json!({"phase": "Running", "podIPs": [{"ip": "nope"}], "conditions": [{"type": "Ready", "status": "Maybe"}]}),
            ),
            p.clone(),
            vec!["status.conditions[0].status", "status.podIPs[0].ip"],
        ),
        (
            "apps",
            "Deployment",
            set(
                d.clone(),
                "/status",
                json!({"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}),
            ),
            d.clone(),
            vec![],
        ),
        (
            "apps",
            "Deployment",
            set(
                d.clone(),
                "/status",
                json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": -1}),
            ),
            d.clone(),
            vec!["status.availableReplicas", "status.readyReplicas"],
        ),
        (
            "",
            "Pod",
            set(
                p.clone(),
                "/status",
                json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "state": {"running": {}}}]}),
            ),
            set(
                p.clone(),
                "/status",
                json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "state": {"terminated": {"exitCode": 0}}}]}),
            ),
            vec![],
        ),
        (
            "",
            "Pod",
            set(
                set(
                    p.clone(),
                    "/status",
                    json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "state": {"running": {}}}]}),
                ),
                "/spec/restartPolicy",
                json!("Never"),
            ),
            set(
                set(
                    p.clone(),
                    "/status",
                    json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "state": {"terminated": {"exitCode": 1}}}]}),
                ),
                "/spec/restartPolicy",
                json!("Never"),
            ),
            vec!["status.containerStatuses[0].state"],
        ),
        (
            "",
            "Pod",
            set(
                set(
                    p.clone(),
                    "/status",
                    json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "state": {"running": {}}}]}),
                ),
                "/spec/restartPolicy",
                json!("OnFailure"),
            ),
            set(
                set(
                    p.clone(),
                    "/status",
                    json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "state": {"terminated": {"exitCode": 1}}}]}),
                ),
                "/spec/restartPolicy",
                json!("OnFailure"),
            ),
            vec![],
        ),
    ];
    for (g, k, new, old, fields) in cases {
        let errs = validate_status_update(g, "v1", k, &new, &old);
        let got: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, fields, "{g}/{k}: {:#?}", messages(&errs));
    }
}

#[test]
fn invalid_renders_as_upstream_status() {
    let errs = validate_create(
        "",
        "v1",
        "ConfigMap",
        &json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}),
    );
    let e = crate::ApiError::invalid("", "ConfigMap", "Bad_Name", errs);
    assert_eq!(
        e.message,
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
}

#[test]
fn selector_matching() {
    let labels = json!({"app": "web", "tier": "fe"});
    let l = labels.as_object();
    let cases = vec![
        (json!({"matchLabels": {"app": "web"}}), true),
        (json!({"matchLabels": {"app": "db"}}), false),
        (
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]}),
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]}),
            false,
        ),
        (json!({}), true),
    ];
    for (sel, want) in cases {
        assert_eq!(selector_matches(&sel, l), want, "{sel}");
    }
}

#[test]
fn ephemeral_containers_subresource() {
    let old = with_rv(pod());
    let debug = json!({"name": "debug", "image": "busybox", "imagePullPolicy": "IfNotPresent",
        "terminationMessagePolicy": "File", "terminationMessagePath": "/dev/termination-log", "resources": {}});
    let added = set(
        old.clone(),
        "/spec/ephemeralContainers",
        json!([debug.clone()]),
    );
    assert!(validate_ephemeral_containers_update(&added, &old).is_empty());
    // the normal update path may not touch them
    let errs = validate_update("", "v1", "Pod", &added, &old);
    assert_eq!(
        errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
        vec!["spec"]
    );
    // (new ephemeral containers, expected messages)
    let cases = vec![
        (json!([]), vec!["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debug\" may not be removed\n"]),
        (json!([set(debug.clone(), "/image", json!("alpine"))]), vec!["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debug\" may not be changed\n"]),
        (json!([debug.clone(), set(set(debug.clone(), "/name", json!("d2")), "/ports", json!([{"containerPort": 80, "protocol": "TCP"}]))]),
            vec!["spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container"]),
        (json!([debug.clone(), set(debug.clone(), "/name", json!("nginx"))]), vec!["spec.ephemeralContainers[1].name: Duplicate value: \"nginx\""]),
    ];
    for (ecs, want) in cases {
        let new = set(added.clone(), "/spec/ephemeralContainers", ecs.clone());
        assert_eq!(
            messages(&validate_ephemeral_containers_update(&new, &added)),
            want,
            "{ecs}"
        );
    }
}

#[test]
fn custom_resources_use_generic_meta_rules() {
    let cr = json!({"metadata": {"name": "w1", "finalizers": ["cleanup"]}});
    // unqualified finalizers are fine for custom resources, not for built-in kinds
    assert!(validate_custom_resource_create(false, &cr).is_empty());
    assert_eq!(
        messages(&validate_create("", "v1", "Namespace", &cr)),
        vec!["metadata.finalizers[0]: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"]
    );
    let errs = validate_custom_resource_create(true, &cr);
    assert_eq!(messages(&errs), vec!["metadata.namespace: Required value"]);
    let old = set(
        set(cr.clone(), "/metadata/namespace", json!("d")),
        "/metadata/resourceVersion",
        json!("3"),
    );
    let new = set(old.clone(), "/metadata/namespace", json!("e"));
    assert_eq!(
        messages(&validate_custom_resource_update(&new, &old)),
        vec!["metadata.namespace: Invalid value: \"e\": field is immutable"]
    );
}

#[test]
fn decode_checks() {
    // (kind, object, expected 400 message or "" when decodable)
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("", "Pod", pod(), ""),
        ("", "Pod", set(pod(), "/spec/containers/0/resources/limits/cpu", json!("abc")),
            "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        ("apps", "Deployment", set(deployment(), "/spec/template/spec/containers/0/resources", json!({"requests": {"memory": "1 Gi"}})),
            "Deployment in version \"v1\" cannot be handled as a Deployment: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        ("", "Secret", json!({"data": {"a": "c2VjcmV0", "b": "aGVs\nbG8="}}), ""),
        ("", "Secret", json!({"data": {"a": "not base64!"}}), "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3"),
        ("", "Secret", json!({"data": {"a": "c2VjcmV0YQ"}}), "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 8"),
        ("", "ConfigMap", json!({"data": {"a": "not base64!"}, "binaryData": {"b": "AAE="}}), ""),
    ];
    for (g, k, obj, want) in cases {
        match check_decodable(g, "v1", k, &obj) {
            Ok(()) => assert_eq!(want, "", "{k} should not decode"),
            Err(e) => {
                assert_eq!(e.code(), 400);
                assert_eq!(e.message, want);
            }
        }
    }
}

#[test]
fn reviews_have_no_metadata_rules() {
    let ssar = json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}});
    assert!(validate_create(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        &ssar
    )
    .is_empty());
    // a stored kind without a name is rejected
    assert_eq!(
        messages(&validate_create(
            "",
            "v1",
            "ConfigMap",
            &json!({"metadata": {"namespace": "d"}})
        )),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
}
