//! Table-driven tests of defaulting: input objects and the fully defaulted JSON upstream stores.

use super::*;
use serde_json::json;

fn defaulted(group: &str, version: &str, kind: &str, mut obj: Value) -> Value {
    apply_defaults(group, version, kind, &mut obj);
    // idempotence: defaulting a defaulted object changes nothing
    let mut again = obj.clone();
    apply_defaults(group, version, kind, &mut again);
    assert_eq!(again, obj, "defaulting {kind} is not idempotent");
    obj
}

#[test]
fn table() {
    // (group, version, kind, input, expected)
    let cases: Vec<(&str, &str, &str, Value, Value)> = vec![
        (
            "",
            "v1",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                 "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
                 "livenessProbe": {"httpGet": {"port": 80}},
                 "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5, "timeoutSeconds": 0},
                 "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
                {"name": "d", "image": "busybox:1.36"},
                {"name": "e", "image": "registry.local:5000/app"},
                {"name": "f", "image": "app@sha256:abcd"},
                {"name": "g", "image": "app:latest", "imagePullPolicy": "Never"}
            ], "volumes": [
                {"name": "v1"},
                {"name": "v2", "configMap": {"name": "cm"}},
                {"name": "v3", "secret": {"secretName": "s", "defaultMode": 256}},
                {"name": "v4", "hostPath": {"path": "/tmp"}},
                {"name": "v5", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
            ]}}),
            json!({"metadata": {"name": "p"}, "spec": {
                "containers": [
                    {"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
                     "livenessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                     "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                     "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}}],
                     "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
                    {"name": "d", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}},
                    {"name": "e", "image": "registry.local:5000/app", "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}},
                    {"name": "f", "image": "app@sha256:abcd", "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}},
                    {"name": "g", "image": "app:latest", "imagePullPolicy": "Never", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}
                ],
                "volumes": [
                    {"name": "v1", "emptyDir": {}},
                    {"name": "v2", "configMap": {"name": "cm", "defaultMode": 420}},
                    {"name": "v3", "secret": {"secretName": "s", "defaultMode": 256}},
                    {"name": "v4", "hostPath": {"path": "/tmp", "type": ""}},
                    {"name": "v5", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}], "defaultMode": 420}}
                ],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
                "enableServiceLinks": true, "priority": 0, "preemptionPolicy": "PreemptLowerPriority"
            }}),
        ),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}], "selector": {"app": "a"}}}),
            json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "targetPort": "https", "protocol": "UDP"}],
                "selector": {"app": "a"}, "type": "ClusterIP", "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack"}}),
        ),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": 0}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example.com"}]}}}),
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
                "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                "ipFamilyPolicy": "SingleStack", "allocateLoadBalancerNodePorts": true},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}}}),
        ),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
            json!({"spec": {"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"}}),
        ),
        (
            "",
            "v1",
            "Service",
            json!({"spec": {"clusterIP": "None"}}),
            json!({"spec": {"clusterIP": "None", "type": "ClusterIP", "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "RequireDualStack"}}),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}}),
            json!({"metadata": {"name": "d"}, "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                    "containers": [{"name": "c", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "resources": {}}],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}},
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}}),
        ),
        (
            "apps",
            "v1",
            "Deployment",
            json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}}),
            json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, "template": {"spec": {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
        ),
        (
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}),
            json!({"spec": {
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}],
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "replicas": 1, "revisionHistoryLimit": 10, "template": {"spec": {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
        ),
        (
            "apps",
            "v1",
            "StatefulSet",
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
            json!({"spec": {"updateStrategy": {"type": "OnDelete"}, "podManagementPolicy": "OrderedReady",
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "replicas": 1, "revisionHistoryLimit": 10, "template": {"spec": {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
        ),
        (
            "apps",
            "v1",
            "DaemonSet",
            json!({"spec": {}}),
            json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}, "revisionHistoryLimit": 10, "template": {"spec": {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            json!({"spec": {}}),
            json!({"spec": {"replicas": 1, "template": {"spec": {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
        ),
        (
            "batch",
            "v1",
            "Job",
            json!({"spec": {"template": {"metadata": {"labels": {"x": "y"}}, "spec": {"restartPolicy": "Never", "containers": []}}}}),
            json!({"metadata": {"labels": {"x": "y"}}, "spec": {
                "template": {"metadata": {"labels": {"x": "y"}}, "spec": {"restartPolicy": "Never", "containers": [],
                    "dnsPolicy": "ClusterFirst", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}},
                "completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                "suspend": false, "podReplacementPolicy": "TerminatingOrFailed", "manualSelector": false}}),
        ),
        (
            "batch",
            "v1",
            "Job",
            json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
            json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "backoffLimit": 2147483647,
                "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
                "completionMode": "NonIndexed", "suspend": false, "podReplacementPolicy": "Failed", "manualSelector": false, "template": {"spec": {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
        ),
        (
            "batch",
            "v1",
            "CronJob",
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}}),
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}},
                "concurrencyPolicy": "Allow", "suspend": false, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}}),
        ),
        (
            "",
            "v1",
            "Secret",
            json!({"data": {}}),
            json!({"data": {}, "type": "Opaque"}),
        ),
        (
            "",
            "v1",
            "Namespace",
            json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "forged"}}, "status": {}}),
            json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}}, "status": {"phase": "Active"}}),
        ),
        (
            "",
            "v1",
            "Node",
            json!({"status": {"capacity": {"cpu": "2"}}}),
            json!({"status": {"capacity": {"cpu": "2"}, "allocatable": {"cpu": "2"}}}),
        ),
        (
            "",
            "v1",
            "PersistentVolume",
            json!({"spec": {"capacity": {"storage": "1Gi"}}}),
            json!({"spec": {"capacity": {"storage": "1Gi"}, "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}),
        ),
        (
            "",
            "v1",
            "PersistentVolumeClaim",
            json!({"spec": {}}),
            json!({"spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}),
        ),
        (
            "",
            "v1",
            "ReplicationController",
            json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}}),
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"selector": {"a": "b"}, "replicas": 1,
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {}, "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}}}}),
        ),
        (
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            json!({"spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
            json!({"spec": {"maxReplicas": 5, "minReplicas": 1,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
                "behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}}}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
            json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}], "policyTypes": ["Ingress", "Egress"]}}),
        ),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}}}),
            json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s", "namespace": "n"}]}),
            json!({"roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
                "subjects": [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"}, {"kind": "ServiceAccount", "name": "s", "namespace": "n"}]}),
        ),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            json!({"addressType": "IPv4", "ports": [{"port": 80}]}),
            json!({"addressType": "IPv4", "ports": [{"port": 80, "name": "", "protocol": "TCP"}]}),
        ),
        (
            "storage.k8s.io",
            "v1",
            "StorageClass",
            json!({"provisioner": "x"}),
            json!({"provisioner": "x", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
        ),
        (
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            json!({"value": 100}),
            json!({"value": 100, "preemptionPolicy": "PreemptLowerPriority"}),
        ),
        (
            "",
            "v1",
            "LimitRange",
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}}),
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"},
                "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2", "memory": "64Mi"}}]}}),
        ),
        (
            "",
            "v1",
            "ConfigMap",
            json!({"data": {"a": "b"}}),
            json!({"data": {"a": "b"}}),
        ),
    ];
    for (g, v, k, input, want) in cases {
        let got = defaulted(g, v, k, input.clone());
        assert_eq!(
            got, want,
            "{g}/{v} {k}\ninput: {input}\ngot:   {got}\nwant:  {want}"
        );
    }
}

#[test]
fn pod_host_network_ports() {
    let got = defaulted(
        "",
        "v1",
        "Pod",
        json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 8080}]}]}}),
    );
    assert_eq!(
        got["spec"]["containers"][0]["ports"][0],
        json!({"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"})
    );
}

#[test]
fn pod_with_priority_class_keeps_priority_unset() {
    let got = defaulted(
        "",
        "v1",
        "Pod",
        json!({"spec": {"priorityClassName": "high", "containers": []}}),
    );
    assert!(got["spec"].get("priority").is_none());
    assert!(got["spec"].get("preemptionPolicy").is_none());
}

#[test]
fn prepare_for_create_namespace_and_pod() {
    let mut ns = json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["example.com/x"]}});
    prepare_for_create("", "Namespace", &mut ns);
    assert_eq!(
        ns["spec"]["finalizers"],
        json!(["example.com/x", "kubernetes"])
    );
    assert_eq!(ns["status"]["phase"], "Active");
    let mut ns = json!({"metadata": {"name": "a"}});
    prepare_for_create("", "Namespace", &mut ns);
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));

    // (containers, expected QoS)
    let cases = vec![
        (json!([{"name": "a"}]), "BestEffort"),
        (
            json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}]),
            "Guaranteed",
        ),
        (
            json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]),
            "Burstable",
        ),
        (
            json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"name": "b"}]),
            "Burstable",
        ),
    ];
    for (containers, want) in cases {
        let mut pod = json!({"spec": {"containers": containers}, "status": {"phase": "Running"}});
        apply_defaults("", "v1", "Pod", &mut pod);
        prepare_for_create("", "Pod", &mut pod);
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": want}),
            "{containers}"
        );
    }
}

#[test]
fn job_selector_generation() {
    let mut job =
        json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {"containers": []}}}});
    apply_defaults("batch", "v1", "Job", &mut job);
    job_generate_selector(&mut job, "uid-1");
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-1"}})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"batch.kubernetes.io/controller-uid": "uid-1", "batch.kubernetes.io/job-name": "pi", "controller-uid": "uid-1", "job-name": "pi"})
    );
    // a user selector without manualSelector gets the controller-uid requirement added
    let mut user =
        json!({"metadata": {"name": "u"}, "spec": {"selector": {"matchLabels": {"a": "b"}}}});
    job_generate_selector(&mut user, "uid-3");
    assert_eq!(
        user["spec"]["selector"],
        json!({"matchLabels": {"a": "b", "batch.kubernetes.io/controller-uid": "uid-3"}})
    );
    let mut manual = json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
    let before = manual.clone();
    job_generate_selector(&mut manual, "uid-2");
    assert_eq!(manual, before);
}

#[test]
fn service_rest_normalization() {
    let mut svc =
        json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"port": 80}]}});
    service_prepare_for_create(&mut svc);
    assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.10"]));

    let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}]}});
    // (new spec sent by the client, expected spec after preparation)
    let cases = vec![
        (
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 8080}, {"name": "https", "port": 443, "nodePort": 30080}]}),
            json!({"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"name": "http", "port": 8080}, {"name": "https", "port": 443, "nodePort": 30080}]}),
        ),
        (
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
            json!({"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        ),
        (
            json!({"type": "ExternalName", "externalName": "example.com", "clusterIPs": ["10.96.0.10"]}),
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
        (
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.10"]}),
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"]}),
        ),
    ];
    for (spec, want) in cases {
        let mut new = json!({ "spec": spec });
        service_prepare_for_update(&mut new, &old);
        assert_eq!(new["spec"], want, "{spec}");
    }

    // switching a LoadBalancer to ClusterIP drops what only the old type used (as carried over
    // by kubectl apply's patch), and the load-balancer status
    let lb = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
        "allocateLoadBalancerNodePorts": true, "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
    let mut new = lb.clone();
    new["spec"]["type"] = json!("ClusterIP");
    service_prepare_for_update(&mut new, &lb);
    assert_eq!(
        new,
        json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "internalTrafficPolicy": "Cluster", "ports": [{"name": "http", "port": 80}]},
            "status": {"loadBalancer": {}}})
    );
    // a changed value is the user's and stays (validation then reports it)
    let mut new = lb.clone();
    new["spec"]["type"] = json!("ClusterIP");
    new["spec"]["externalTrafficPolicy"] = json!("Local");
    service_prepare_for_update(&mut new, &lb);
    assert_eq!(new["spec"]["externalTrafficPolicy"], "Local");
}

#[test]
fn quantities_are_canonicalized() {
    let got = defaulted(
        "apps",
        "v1",
        "Deployment",
        json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "x:1", "resources": {"limits": {"cpu": 0.5, "memory": "1024Mi"}, "requests": {"cpu": "0.0001", "memory": "1000"}}}
    ], "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "2048Mi"}}]}}}}),
    );
    let c = &got["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        c,
        &json!({"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "1m", "memory": "1k"}})
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
        "2Gi"
    );
    let pvc = defaulted(
        "",
        "v1",
        "PersistentVolumeClaim",
        json!({"spec": {"resources": {"requests": {"storage": "1.5Gi"}}}}),
    );
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1536Mi");
    let rq = defaulted(
        "",
        "v1",
        "ResourceQuota",
        json!({"spec": {"hard": {"pods": 10, "requests.memory": "2048Mi", "bad": "x"}}}),
    );
    assert_eq!(
        rq["spec"]["hard"],
        json!({"pods": "10", "requests.memory": "2Gi", "bad": "x"})
    );
}
