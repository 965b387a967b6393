//! Table-driven tests of the Table printers for each built-in kind, custom resources and the
//! Table envelope. Expected cells follow what upstream's printers produce for the same objects.

use super::*;
use serde_json::{json, Value};

/// The fixed "now" of every test.
fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2024-05-01T12:00:00Z").unwrap()
}

/// An RFC 3339 timestamp `secs` seconds before `now()`.
fn ago(secs: i64) -> String {
    Timestamp::from_unix_seconds(now().unix_seconds() - secs).format_rfc3339()
}

const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

fn meta(name: &str, created_secs_ago: i64) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u-1", "resourceVersion": "42",
           "creationTimestamp": ago(created_secs_ago)})
}

fn with_meta(mut obj: Value, name: &str, created_secs_ago: i64) -> Value {
    obj["metadata"] = meta(name, created_secs_ago);
    obj
}

/// Runs (description, group, resource, object, expected cells) cases.
fn check(cases: Vec<(&str, &str, &str, Value, Value)>) {
    for (what, group, resource, obj, want) in cases {
        let got = Value::Array(row(group, resource, &obj, now()));
        assert_eq!(got, want, "{what}");
        let ncols = column_definitions(group, resource).len();
        assert_eq!(
            want.as_array().unwrap().len(),
            ncols,
            "{what}: one cell per column"
        );
    }
}

fn container_status(name: &str, state: Value, ready: bool, restarts: i64) -> Value {
    json!({"name": name, "state": state, "ready": ready, "restartCount": restarts,
           "image": "img", "imageID": "", "started": ready})
}

fn pod(name: &str, spec: Value, status: Value) -> Value {
    with_meta(
        json!({"apiVersion": "v1", "kind": "Pod", "spec": spec, "status": status}),
        name,
        5 * MIN,
    )
}

fn one_container() -> Value {
    json!({"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"})
}

#[test]
fn pod_rows() {
    let running = json!({"running": {"startedAt": ago(4 * MIN)}});
    let cases = vec![
        (
            "running pod with two ready containers",
            pod(
                "web-1",
                json!({"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"}),
                json!({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [container_status("a", running.clone(), true, 0),
                                             container_status("b", running.clone(), true, 0)]}),
            ),
            json!(["web-1", "2/2", "Running", "0", "5m", "10.0.0.5", "node-1", "<none>", "<none>"]),
        ),
        (
            "crash looping container shows restarts with last restart age",
            pod(
                "crash",
                one_container(),
                json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.6"}],
                       "containerStatuses": [{
                           "name": "app", "ready": false, "restartCount": 5,
                           "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                           "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                        "finishedAt": ago(2 * MIN)}}}]}),
            ),
            json!([
                "crash",
                "0/1",
                "CrashLoopBackOff",
                "5 (2m ago)",
                "5m",
                "10.0.0.6",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "pending pod creating its container",
            pod(
                "new",
                one_container(),
                json!({"phase": "Pending", "containerStatuses": [
                    container_status("app", json!({"waiting": {"reason": "ContainerCreating"}}), false, 0)]}),
            ),
            json!([
                "new",
                "0/1",
                "ContainerCreating",
                "0",
                "5m",
                "<none>",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "unscheduled pod",
            pod(
                "pending",
                json!({"containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "nominatedNodeName": "node-2",
                       "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}),
            ),
            json!(["pending", "0/1", "Pending", "0", "5m", "<none>", "<none>", "node-2", "<none>"]),
        ),
        (
            "scheduling gated pod",
            pod(
                "gated",
                json!({"containers": [{"name": "app"}], "schedulingGates": [{"name": "g"}]}),
                json!({"phase": "Pending",
                       "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ),
            json!([
                "gated",
                "0/1",
                "SchedulingGated",
                "0",
                "5m",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "first of two init containers running",
            pod(
                "init",
                json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}],
                       "nodeName": "node-1"}),
                json!({"phase": "Pending",
                       "conditions": [{"type": "Initialized", "status": "False"}],
                       "initContainerStatuses": [container_status("i1", running.clone(), false, 0),
                                                 container_status("i2", json!({"waiting": {"reason": "PodInitializing"}}), false, 0)],
                       "containerStatuses": [container_status("app", json!({"waiting": {"reason": "PodInitializing"}}), false, 0)]}),
            ),
            json!(["init", "0/1", "Init:0/2", "0", "5m", "<none>", "node-1", "<none>", "<none>"]),
        ),
        (
            "second init container running after the first completed",
            pod(
                "init2",
                json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Pending",
                       "initContainerStatuses": [
                           container_status("i1", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), false, 0),
                           container_status("i2", running.clone(), false, 0)]}),
            ),
            json!(["init2", "0/1", "Init:1/2", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
        ),
        (
            "init container crash looping counts init restarts",
            pod(
                "initcrash",
                json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Pending",
                       "initContainerStatuses": [{
                           "name": "i1", "ready": false, "restartCount": 3,
                           "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                           "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}],
                       "containerStatuses": [container_status("app", json!({"waiting": {"reason": "PodInitializing"}}), false, 0)]}),
            ),
            json!([
                "initcrash",
                "0/1",
                "Init:CrashLoopBackOff",
                "3 (30s ago)",
                "5m",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "failed init container with a reason",
            pod(
                "initerr",
                json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Failed", "initContainerStatuses": [
                    container_status("i1", json!({"terminated": {"exitCode": 1, "reason": "Error"}}), false, 0)]}),
            ),
            json!([
                "initerr",
                "0/1",
                "Init:Error",
                "0",
                "5m",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "failed init container without a reason: exit code",
            pod(
                "initexit",
                json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "initContainerStatuses": [
                    container_status("i1", json!({"terminated": {"exitCode": 2}}), false, 0)]}),
            ),
            json!([
                "initexit",
                "0/1",
                "Init:ExitCode:2",
                "0",
                "5m",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "killed init container without a reason: signal",
            pod(
                "initsig",
                json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "app"}]}),
                json!({"phase": "Pending", "initContainerStatuses": [
                    container_status("i1", json!({"terminated": {"exitCode": 137, "signal": 9}}), false, 0)]}),
            ),
            json!([
                "initsig",
                "0/1",
                "Init:Signal:9",
                "0",
                "5m",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "restartable init container (sidecar) counts as a container",
            pod(
                "sidecar",
                json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                       "containers": [{"name": "app"}], "nodeName": "node-1"}),
                json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.9"}],
                       "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                       "initContainerStatuses": [{
                           "name": "proxy", "ready": true, "started": true, "restartCount": 1,
                           "state": {"running": {"startedAt": ago(3 * MIN)}},
                           "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3 * MIN)}}}],
                       "containerStatuses": [container_status("app", running.clone(), true, 0)]}),
            ),
            json!([
                "sidecar",
                "2/2",
                "Running",
                "1 (3m ago)",
                "5m",
                "10.0.0.9",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "succeeded pod",
            pod(
                "done",
                one_container(),
                json!({"phase": "Succeeded", "containerStatuses": [
                    container_status("app", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), false, 0)]}),
            ),
            json!([
                "done",
                "0/1",
                "Completed",
                "0",
                "5m",
                "<none>",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "completed container next to a running one is Running when the pod is ready",
            pod(
                "mixed",
                json!({"containers": [{"name": "job"}, {"name": "srv"}]}),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [
                           container_status("job", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), false, 0),
                           container_status("srv", running.clone(), true, 0)]}),
            ),
            json!(["mixed", "1/2", "Running", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
        ),
        (
            "completed container next to a running one is NotReady when the pod is not ready",
            pod(
                "mixed2",
                json!({"containers": [{"name": "job"}, {"name": "srv"}]}),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [
                           container_status("job", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), false, 0),
                           container_status("srv", running.clone(), true, 0)]}),
            ),
            json!(["mixed2", "1/2", "NotReady", "0", "5m", "<none>", "<none>", "<none>", "<none>"]),
        ),
        (
            "container killed without a reason shows its exit code",
            pod(
                "oom",
                one_container(),
                json!({"phase": "Running", "containerStatuses": [
                    container_status("app", json!({"terminated": {"exitCode": 137}}), false, 0)]}),
            ),
            json!([
                "oom",
                "0/1",
                "ExitCode:137",
                "0",
                "5m",
                "<none>",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "evicted pod keeps its status reason",
            pod(
                "evicted",
                one_container(),
                json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
            ),
            json!(["evicted", "0/1", "Evicted", "0", "5m", "<none>", "node-1", "<none>", "<none>"]),
        ),
        (
            "readiness gates count true conditions",
            pod(
                "gates",
                json!({"containers": [{"name": "app"}],
                       "readinessGates": [{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]}),
                json!({"phase": "Running", "conditions": [
                    {"type": "example.com/a", "status": "True"}, {"type": "example.com/b", "status": "False"}],
                    "containerStatuses": [container_status("app", running.clone(), true, 0)]}),
            ),
            json!(["gates", "1/1", "Running", "0", "5m", "<none>", "<none>", "<none>", "1/2"]),
        ),
    ];
    check(
        cases
            .into_iter()
            .map(|(w, o, e)| (w, "", "pods", o, e))
            .collect(),
    );
}

#[test]
fn pod_terminating_and_node_lost() {
    let mut terminating = pod(
        "term",
        one_container(),
        json!({"phase": "Running", "containerStatuses": [
            container_status("app", json!({"running": {}}), true, 0)]}),
    );
    terminating["metadata"]["deletionTimestamp"] = json!(ago(10));
    let mut lost = terminating.clone();
    lost["metadata"]["name"] = json!("lost");
    lost["status"]["reason"] = json!("NodeLost");
    let mut finished = pod(
        "fin",
        one_container(),
        json!({"phase": "Succeeded", "containerStatuses": [
            container_status("app", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), false, 0)]}),
    );
    finished["metadata"]["deletionTimestamp"] = json!(ago(10));
    check(vec![
        (
            "deleted running pod",
            "",
            "pods",
            terminating,
            json!([
                "term",
                "1/1",
                "Terminating",
                "0",
                "5m",
                "<none>",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
        (
            "deleted pod on a lost node",
            "",
            "pods",
            lost,
            json!(["lost", "1/1", "Unknown", "0", "5m", "<none>", "node-1", "<none>", "<none>"]),
        ),
        (
            "deleted pod in a terminal phase keeps its status",
            "",
            "pods",
            finished,
            json!([
                "fin",
                "0/1",
                "Completed",
                "0",
                "5m",
                "<none>",
                "node-1",
                "<none>",
                "<none>"
            ]),
        ),
    ]);
}

#[test]
fn workload_rows() {
    let template = json!({"metadata": {"labels": {"app": "nginx"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"},
                                                  {"name": "log", "image": "busybox"}]}});
    let cases = vec![
        (
            "deployment",
            "apps",
            "deployments",
            with_meta(
                json!({"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx", "tier": "web"}},
                                "template": template},
                       "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
                "nginx",
                3 * DAY + 4 * HOUR,
            ),
            json!([
                "nginx",
                "2/3",
                3,
                2,
                "3d4h",
                "nginx,log",
                "nginx:1.25,busybox",
                "app=nginx,tier=web"
            ]),
        ),
        (
            "deployment with defaulted replicas, empty status and expression selector",
            "apps",
            "deployments",
            with_meta(
                json!({"spec": {"selector": {"matchExpressions": [
                            {"key": "tier", "operator": "In", "values": ["web", "api"]},
                            {"key": "app", "operator": "Exists"}]},
                        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
                "new",
                30,
            ),
            json!(["new", "0/1", 0, 0, "30s", "c", "i", "app,tier in (api,web)"]),
        ),
        (
            "replicaset",
            "apps",
            "replicasets",
            with_meta(
                json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}}, "template": template},
                       "status": {"replicas": 2, "readyReplicas": 1}}),
                "nginx-7c5d",
                10 * HOUR,
            ),
            json!([
                "nginx-7c5d",
                2,
                2,
                1,
                "10h",
                "nginx,log",
                "nginx:1.25,busybox",
                "app=nginx"
            ]),
        ),
        (
            "statefulset",
            "apps",
            "statefulsets",
            with_meta(
                json!({"spec": {"replicas": 3, "serviceName": "db", "template": template},
                       "status": {"replicas": 3, "readyReplicas": 3}}),
                "db",
                400 * DAY,
            ),
            json!(["db", "3/3", "400d", "nginx,log", "nginx:1.25,busybox"]),
        ),
        (
            "daemonset",
            "apps",
            "daemonsets",
            with_meta(
                json!({"spec": {"selector": {"matchLabels": {"k8s-app": "proxy"}},
                                "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                                      "containers": [{"name": "proxy", "image": "proxy:1"}]}}},
                       "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                                  "updatedNumberScheduled": 3, "numberAvailable": 2}}),
                "proxy",
                2 * DAY,
            ),
            json!([
                "proxy",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "2d",
                "proxy",
                "proxy:1",
                "k8s-app=proxy"
            ]),
        ),
        (
            "replicationcontroller",
            "",
            "replicationcontrollers",
            with_meta(
                json!({"spec": {"replicas": 2, "selector": {"app": "old"},
                                "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}]}}},
                       "status": {"replicas": 2, "readyReplicas": 2}}),
                "old",
                90 * MIN,
            ),
            json!(["old", 2, 2, 2, "90m", "c", "i:1", "app=old"]),
        ),
        (
            "controllerrevision owned by a statefulset",
            "apps",
            "controllerrevisions",
            {
                let mut o = with_meta(json!({"revision": 2, "data": {}}), "db-5c8", HOUR);
                o["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "name": "db", "uid": "x", "controller": true}]);
                o
            },
            json!(["db-5c8", "statefulset.apps/db", 2, "60m"]),
        ),
        (
            "controllerrevision without controller",
            "apps",
            "controllerrevisions",
            with_meta(json!({"revision": 1}), "orphan", HOUR),
            json!(["orphan", "<none>", 1, "60m"]),
        ),
        (
            "podtemplate",
            "",
            "podtemplates",
            with_meta(json!({"template": template}), "tpl", HOUR),
            json!(["tpl", "nginx,log", "nginx:1.25,busybox", "app=nginx"]),
        ),
    ];
    check(cases);
}

#[test]
fn batch_rows() {
    let tpl = json!({"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}], "restartPolicy": "Never"}});
    let sel = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}});
    let cases = vec![
        (
            "completed job",
            "batch",
            "jobs",
            with_meta(
                json!({"spec": {"completions": 1, "parallelism": 1, "selector": sel, "template": tpl},
                       "status": {"succeeded": 1, "startTime": ago(5 * MIN), "completionTime": ago(5 * MIN - 36),
                                  "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                                 {"type": "Complete", "status": "True"}]}}),
                "pi",
                5 * MIN,
            ),
            json!([
                "pi",
                "Complete",
                "1/1",
                "36s",
                "5m",
                "pi",
                "perl:5.34",
                "batch.kubernetes.io/controller-uid=abc"
            ]),
        ),
        (
            "running work queue job with parallelism",
            "batch",
            "jobs",
            with_meta(
                json!({"spec": {"parallelism": 3, "selector": sel, "template": tpl},
                       "status": {"active": 3, "startTime": ago(4 * MIN + 10)}}),
                "queue",
                5 * MIN,
            ),
            json!([
                "queue",
                "Running",
                "0/1 of 3",
                "4m10s",
                "5m",
                "pi",
                "perl:5.34",
                "batch.kubernetes.io/controller-uid=abc"
            ]),
        ),
        (
            "failed job",
            "batch",
            "jobs",
            with_meta(
                json!({"spec": {"completions": 3, "template": tpl},
                       "status": {"succeeded": 1, "failed": 6, "startTime": ago(HOUR), "completionTime": ago(HOUR - 125),
                                  "conditions": [{"type": "FailureTarget", "status": "True"},
                                                 {"type": "Failed", "status": "True"}]}}),
                "broken",
                HOUR,
            ),
            json!([
                "broken",
                "Failed",
                "1/3",
                "2m5s",
                "60m",
                "pi",
                "perl:5.34",
                "<none>"
            ]),
        ),
        (
            "suspended job not started",
            "batch",
            "jobs",
            with_meta(
                json!({"spec": {"completions": 2, "suspend": true, "template": tpl},
                       "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}),
                "later",
                20,
            ),
            json!([
                "later",
                "Suspended",
                "0/2",
                "",
                "20s",
                "pi",
                "perl:5.34",
                "<none>"
            ]),
        ),
        (
            "cronjob",
            "batch",
            "cronjobs",
            with_meta(
                json!({"spec": {"schedule": "*/1 * * * *", "suspend": false,
                                "jobTemplate": {"spec": {"template": tpl}}},
                       "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(30)}}),
                "hello",
                10 * DAY,
            ),
            json!([
                "hello",
                "*/1 * * * *",
                "<none>",
                "False",
                1,
                "30s",
                "10d",
                "pi",
                "perl:5.34",
                "<none>"
            ]),
        ),
        (
            "cronjob with time zone never scheduled",
            "batch",
            "cronjobs",
            with_meta(
                json!({"spec": {"schedule": "0 3 * * *", "timeZone": "Etc/UTC",
                                "jobTemplate": {"spec": {"template": tpl}}}, "status": {}}),
                "nightly",
                MIN,
            ),
            json!([
                "nightly",
                "0 3 * * *",
                "Etc/UTC",
                "<unset>",
                0,
                "<none>",
                "60s",
                "pi",
                "perl:5.34",
                "<none>"
            ]),
        ),
    ];
    check(cases);
}

#[test]
fn service_rows() {
    let svc = |spec: Value, status: Value| {
        with_meta(json!({"spec": spec, "status": status}), "svc", 2 * HOUR)
    };
    let cases = vec![
        (
            "cluster ip service",
            svc(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
                       "selector": {"k8s-app": "kube-dns"}}),
                json!({}),
            ),
            json!([
                "svc",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "53/UDP,53/TCP",
                "120m",
                "k8s-app=kube-dns"
            ]),
        ),
        (
            "headless service without selector or ports",
            svc(
                json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
                json!({}),
            ),
            json!([
                "svc",
                "ClusterIP",
                "None",
                "<none>",
                "<none>",
                "120m",
                "<none>"
            ]),
        ),
        (
            "node port service with external ips",
            svc(
                json!({"type": "NodePort", "clusterIPs": ["10.96.1.1"], "externalIPs": ["1.2.3.4", "5.6.7.8"],
                       "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
                json!({}),
            ),
            json!([
                "svc",
                "NodePort",
                "10.96.1.1",
                "1.2.3.4,5.6.7.8",
                "80:30080/TCP",
                "120m",
                "<none>"
            ]),
        ),
        (
            "pending load balancer, protocol defaulted",
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.1.2"], "ports": [{"port": 443, "nodePort": 31443}]}),
                json!({"loadBalancer": {}}),
            ),
            json!([
                "svc",
                "LoadBalancer",
                "10.96.1.2",
                "<pending>",
                "443:31443/TCP",
                "120m",
                "<none>"
            ]),
        ),
        (
            "load balancer with ingress points and external ips",
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.1.3"], "externalIPs": ["9.9.9.9"],
                       "ports": [{"port": 80, "nodePort": 30001, "protocol": "TCP"}]}),
                json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}, {"hostname": "lb.example.com"},
                                                    {"ip": "203.0.113.10"}]}}),
            ),
            json!([
                "svc",
                "LoadBalancer",
                "10.96.1.3",
                "203.0.113.10,203.0.113.20,lb.example.com,9.9.9.9",
                "80:30001/TCP",
                "120m",
                "<none>"
            ]),
        ),
        (
            "external name service",
            svc(
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
            ),
            json!([
                "svc",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "120m",
                "<none>"
            ]),
        ),
        (
            "cluster ip only in the singular field",
            svc(
                json!({"type": "ClusterIP", "clusterIP": "10.96.7.7", "ports": [{"port": 8080, "protocol": "SCTP"}]}),
                json!({}),
            ),
            json!([
                "svc",
                "ClusterIP",
                "10.96.7.7",
                "<none>",
                "8080/SCTP",
                "120m",
                "<none>"
            ]),
        ),
    ];
    check(
        cases
            .into_iter()
            .map(|(w, o, e)| (w, "", "services", o, e))
            .collect(),
    );
}

#[test]
fn networking_rows() {
    let cases = vec![
        (
            "ingress with tls and a load balancer",
            "networking.k8s.io",
            "ingresses",
            with_meta(
                json!({"spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}]},
                       "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}),
                "web",
                DAY,
            ),
            json!([
                "web",
                "nginx",
                "a.example.com,b.example.com",
                "192.0.2.1",
                "80, 443",
                "24h"
            ]),
        ),
        (
            "ingress without class or hosts, many rules",
            "networking.k8s.io",
            "ingresses",
            with_meta(
                json!({"spec": {"rules": [{"host": "a"}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {"host": "e"}]}}),
                "many",
                DAY,
            ),
            json!(["many", "<none>", "a,b,c + 2 more...", "", "80", "24h"]),
        ),
        (
            "ingress catching all hosts",
            "networking.k8s.io",
            "ingresses",
            with_meta(
                json!({"spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}}),
                "all",
                DAY,
            ),
            json!(["all", "<none>", "*", "", "80", "24h"]),
        ),
        (
            "ingressclass with parameters",
            "networking.k8s.io",
            "ingressclasses",
            with_meta(
                json!({"spec": {"controller": "k8s.io/ingress-nginx",
                                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}),
                "nginx",
                DAY,
            ),
            json!([
                "nginx",
                "k8s.io/ingress-nginx",
                "IngressParameters.k8s.example.com/p",
                "24h"
            ]),
        ),
        (
            "networkpolicy selecting all pods",
            "networking.k8s.io",
            "networkpolicies",
            with_meta(
                json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
                "deny-all",
                HOUR,
            ),
            json!(["deny-all", "<none>", "60m"]),
        ),
        (
            "networkpolicy with a selector",
            "networking.k8s.io",
            "networkpolicies",
            with_meta(
                json!({"spec": {"podSelector": {"matchLabels": {"role": "db"}}}}),
                "db",
                HOUR,
            ),
            json!(["db", "role=db", "60m"]),
        ),
        (
            "endpoints with more than three addresses and ipv6",
            "",
            "endpoints",
            with_meta(
                json!({"subsets": [
                    {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"name": "http", "port": 80}]},
                    {"addresses": [{"ip": "fd00::1"}, {"ip": "10.0.0.4"}], "ports": [{"port": 8080}]}]}),
                "web",
                MIN,
            ),
            json!([
                "web",
                "10.0.0.1:80,10.0.0.2:80,[fd00::1]:8080 + 1 more...",
                "60s"
            ]),
        ),
        (
            "endpoints of a headless service without ports",
            "",
            "endpoints",
            with_meta(
                json!({"subsets": [{"addresses": [{"ip": "10.0.0.7"}]}]}),
                "headless",
                MIN,
            ),
            json!(["headless", "10.0.0.7", "60s"]),
        ),
        (
            "endpoints without subsets",
            "",
            "endpoints",
            with_meta(json!({}), "empty", MIN),
            json!(["empty", "<none>", "60s"]),
        ),
        (
            "endpointslice",
            "discovery.k8s.io",
            "endpointslices",
            with_meta(
                json!({"addressType": "IPv4",
                       "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "named"}, {}],
                       "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                                     {"addresses": ["10.0.0.4"]}]}),
                "web-abc",
                MIN,
            ),
            json!([
                "web-abc",
                "IPv4",
                "80,named,*",
                "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                "60s"
            ]),
        ),
        (
            "empty endpointslice",
            "discovery.k8s.io",
            "endpointslices",
            with_meta(json!({"addressType": "IPv6", "endpoints": []}), "none", MIN),
            json!(["none", "IPv6", "<unset>", "<unset>", "60s"]),
        ),
        (
            "servicecidr",
            "networking.k8s.io",
            "servicecidrs",
            with_meta(
                json!({"spec": {"cidrs": ["10.96.0.0/12", "fd00:10:96::/112"]}}),
                "kubernetes",
                DAY,
            ),
            json!(["kubernetes", "10.96.0.0/12,fd00:10:96::/112", "24h"]),
        ),
        (
            "ipaddress",
            "networking.k8s.io",
            "ipaddresses",
            with_meta(
                json!({"spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}}),
                "10.96.0.1",
                DAY,
            ),
            json!(["10.96.0.1", "services/default/kubernetes"]),
        ),
    ];
    check(cases);
}

#[test]
fn node_rows() {
    let node = |name: &str, labels: Value, spec: Value, conditions: Value| {
        let mut o = with_meta(
            json!({"spec": spec, "status": {
                "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Ubuntu 24.04 LTS",
                             "kernelVersion": "6.8.0-31-generic", "containerRuntimeVersion": "containerd://1.7.0"}}}),
            name,
            20 * DAY,
        );
        o["metadata"]["labels"] = labels;
        o
    };
    let cases = vec![
        (
            "ready control plane node",
            node(
                "cp-1",
                json!({"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "cp-1"}),
                json!({}),
                json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]),
            ),
            json!([
                "cp-1",
                "Ready",
                "control-plane",
                "20d",
                "v1.33.1",
                "192.168.1.10",
                "<none>",
                "Ubuntu 24.04 LTS",
                "6.8.0-31-generic",
                "containerd://1.7.0"
            ]),
        ),
        (
            "cordoned not ready worker with two roles",
            node(
                "w-1",
                json!({"kubernetes.io/role": "worker", "node-role.kubernetes.io/infra": "true"}),
                json!({"unschedulable": true}),
                json!([{"type": "Ready", "status": "False"}]),
            ),
            json!([
                "w-1",
                "NotReady,SchedulingDisabled",
                "infra,worker",
                "20d",
                "v1.33.1",
                "192.168.1.10",
                "<none>",
                "Ubuntu 24.04 LTS",
                "6.8.0-31-generic",
                "containerd://1.7.0"
            ]),
        ),
        (
            "node without conditions or roles",
            node("w-2", json!({}), json!({}), json!([])),
            json!([
                "w-2",
                "Unknown",
                "<none>",
                "20d",
                "v1.33.1",
                "192.168.1.10",
                "<none>",
                "Ubuntu 24.04 LTS",
                "6.8.0-31-generic",
                "containerd://1.7.0"
            ]),
        ),
        (
            "registering node without status",
            with_meta(json!({"spec": {}}), "bare", 3),
            json!([
                "bare",
                "Unknown",
                "<none>",
                "3s",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        ),
    ];
    check(
        cases
            .into_iter()
            .map(|(w, o, e)| (w, "", "nodes", o, e))
            .collect(),
    );
}

#[test]
fn event_rows() {
    let core_event = with_meta(
        json!({"apiVersion": "v1", "kind": "Event",
               "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "fieldPath": "spec.containers{app}"},
               "reason": "BackOff", "message": "Back-off restarting failed container\n", "type": "Warning",
               "source": {"component": "kubelet", "host": "node-1"},
               "firstTimestamp": ago(10 * MIN), "lastTimestamp": ago(30), "count": 7}),
        "web-1.17a",
        10 * MIN,
    );
    let series_event = with_meta(
        json!({"involvedObject": {"kind": "Node", "name": "node-1"}, "reason": "Rebooted", "message": "m",
               "type": "Normal", "eventTime": "2024-05-01T11:00:00.000000Z", "reportingComponent": "",
               "reportingController": "kubelet", "reportingInstance": "node-1",
               "series": {"count": 4, "lastObservedTime": "2024-05-01T11:58:00.000000Z"}}),
        "node-1.18b",
        HOUR,
    );
    let new_api_event = with_meta(
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
               "regarding": {"kind": "Deployment", "name": "nginx"}, "reason": "ScalingReplicaSet",
               "note": "Scaled up replica set nginx-7c5d to 3", "type": "Normal",
               "eventTime": "2024-05-01T11:59:00.000000Z", "reportingController": "deployment-controller",
               "reportingInstance": "", "action": "Scale"}),
        "nginx.19c",
        MIN,
    );
    let cluster_event = with_meta(
        json!({"involvedObject": {"kind": "Namespace"}, "reason": "R", "message": "  spaced  ", "type": "Normal"}),
        "ns.1",
        MIN,
    );
    check(vec![
        (
            "core event with count",
            "",
            "events",
            core_event,
            json!([
                "30s",
                "Warning",
                "BackOff",
                "pod/web-1",
                "spec.containers{app}",
                "kubelet, node-1",
                "Back-off restarting failed container",
                "10m",
                7,
                "web-1.17a"
            ]),
        ),
        (
            "event series",
            "",
            "events",
            series_event,
            json!([
                "2m",
                "Normal",
                "Rebooted",
                "node/node-1",
                "",
                "kubelet, node-1",
                "m",
                "60m",
                4,
                "node-1.18b"
            ]),
        ),
        (
            "events.k8s.io event",
            "events.k8s.io",
            "events",
            new_api_event,
            json!([
                "60s",
                "Normal",
                "ScalingReplicaSet",
                "deployment/nginx",
                "",
                "deployment-controller",
                "Scaled up replica set nginx-7c5d to 3",
                "60s",
                1,
                "nginx.19c"
            ]),
        ),
        (
            "event without timestamps or object name",
            "",
            "events",
            cluster_event,
            json!([
                "<unknown>",
                "Normal",
                "R",
                "namespace",
                "",
                "",
                "spaced",
                "<unknown>",
                1,
                "ns.1"
            ]),
        ),
    ]);
}

#[test]
fn config_and_storage_rows() {
    let cases = vec![
        (
            "namespace",
            "",
            "namespaces",
            with_meta(
                json!({"status": {"phase": "Active"}}),
                "kube-system",
                30 * DAY,
            ),
            json!(["kube-system", "Active", "30d"]),
        ),
        (
            "terminating namespace",
            "",
            "namespaces",
            with_meta(json!({"status": {"phase": "Terminating"}}), "gone", 10),
            json!(["gone", "Terminating", "10s"]),
        ),
        (
            "secret",
            "",
            "secrets",
            with_meta(
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "YQ==", "tls.key": "Yg=="}}),
                "tls",
                DAY,
            ),
            json!(["tls", "kubernetes.io/tls", 2, "24h"]),
        ),
        (
            "empty opaque secret",
            "",
            "secrets",
            with_meta(json!({"type": "Opaque"}), "empty", DAY),
            json!(["empty", "Opaque", 0, "24h"]),
        ),
        (
            "configmap counts data and binaryData",
            "",
            "configmaps",
            with_meta(
                json!({"data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}}),
                "cfg",
                7 * DAY + 23 * HOUR,
            ),
            json!(["cfg", 3, "7d23h"]),
        ),
        (
            "serviceaccount",
            "",
            "serviceaccounts",
            with_meta(json!({"secrets": [{"name": "tok"}]}), "default", DAY),
            json!(["default", 1, "24h"]),
        ),
        (
            "serviceaccount without secrets",
            "",
            "serviceaccounts",
            with_meta(json!({}), "builder", DAY),
            json!(["builder", 0, "24h"]),
        ),
        (
            "bound persistentvolume",
            "",
            "persistentvolumes",
            with_meta(
                json!({"spec": {"capacity": {"storage": "1024Mi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard",
                                "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
                       "status": {"phase": "Bound"}}),
                "pv-1",
                DAY,
            ),
            json!([
                "pv-1",
                "1Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "default/data",
                "standard",
                "<unset>",
                "",
                "24h",
                "Filesystem"
            ]),
        ),
        (
            "released persistentvolume with beta class annotation and deletion",
            "",
            "persistentvolumes",
            {
                let mut o = with_meta(
                    json!({"spec": {"capacity": {"storage": "1.5Gi"}, "accessModes": ["ReadWriteOncePod"],
                                    "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "ignored",
                                    "volumeAttributesClassName": "fast"},
                           "status": {"phase": "Released", "reason": "gone"}}),
                    "pv-2",
                    DAY,
                );
                o["metadata"]["annotations"] =
                    json!({"volume.beta.kubernetes.io/storage-class": "legacy"});
                o["metadata"]["deletionTimestamp"] = json!(ago(1));
                o
            },
            json!([
                "pv-2",
                "1536Mi",
                "RWOP",
                "Delete",
                "Terminating",
                "",
                "legacy",
                "fast",
                "gone",
                "24h",
                "<unset>"
            ]),
        ),
        (
            "bound persistentvolumeclaim",
            "",
            "persistentvolumeclaims",
            with_meta(
                json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                                "storageClassName": "standard", "volumeName": "pv-1", "volumeMode": "Filesystem"},
                       "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}),
                "data",
                DAY,
            ),
            json!([
                "data",
                "Bound",
                "pv-1",
                "1Gi",
                "RWO",
                "standard",
                "<unset>",
                "24h",
                "Filesystem"
            ]),
        ),
        (
            "pending persistentvolumeclaim",
            "",
            "persistentvolumeclaims",
            with_meta(
                json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
                       "status": {"phase": "Pending"}}),
                "waiting",
                MIN,
            ),
            json!(["waiting", "Pending", "", "", "", "", "<unset>", "60s", "<unset>"]),
        ),
        (
            "default storageclass",
            "storage.k8s.io",
            "storageclasses",
            {
                let mut o = with_meta(
                    json!({"provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
                    "local-path",
                    DAY,
                );
                o["metadata"]["annotations"] =
                    json!({"storageclass.kubernetes.io/is-default-class": "true"});
                o
            },
            json!([
                "local-path (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                false,
                "24h"
            ]),
        ),
        (
            "storageclass with explicit policies",
            "storage.k8s.io",
            "storageclasses",
            with_meta(
                json!({"provisioner": "ebs.csi.aws.com", "reclaimPolicy": "Retain", "allowVolumeExpansion": true}),
                "gp3",
                DAY,
            ),
            json!(["gp3", "ebs.csi.aws.com", "Retain", "Immediate", true, "24h"]),
        ),
        (
            "csidriver defaults",
            "storage.k8s.io",
            "csidrivers",
            with_meta(json!({"spec": {}}), "hostpath.csi.k8s.io", DAY),
            json!([
                "hostpath.csi.k8s.io",
                true,
                false,
                false,
                "<unset>",
                false,
                "<none>",
                "24h"
            ]),
        ),
        (
            "csidriver with everything set",
            "storage.k8s.io",
            "csidrivers",
            with_meta(
                json!({"spec": {"attachRequired": false, "podInfoOnMount": true, "storageCapacity": true,
                                "tokenRequests": [{"audience": "vault"}, {"audience": "gcp"}], "requiresRepublish": true,
                                "volumeLifecycleModes": ["Persistent", "Ephemeral"]}}),
                "secrets.csi",
                DAY,
            ),
            json!([
                "secrets.csi",
                false,
                true,
                true,
                "vault,gcp",
                true,
                "Persistent,Ephemeral",
                "24h"
            ]),
        ),
        (
            "csinode",
            "storage.k8s.io",
            "csinodes",
            with_meta(
                json!({"spec": {"drivers": [{"name": "a", "nodeID": "n"}]}}),
                "node-1",
                DAY,
            ),
            json!(["node-1", 1, "24h"]),
        ),
        (
            "volumeattachment",
            "storage.k8s.io",
            "volumeattachments",
            with_meta(
                json!({"spec": {"attacher": "ebs.csi.aws.com", "nodeName": "node-1",
                                "source": {"persistentVolumeName": "pv-1"}},
                       "status": {"attached": true}}),
                "csi-123",
                DAY,
            ),
            json!(["csi-123", "ebs.csi.aws.com", "pv-1", "node-1", true, "24h"]),
        ),
        (
            "csistoragecapacity",
            "storage.k8s.io",
            "csistoragecapacities",
            with_meta(
                json!({"storageClassName": "fast", "capacity": "2048Mi"}),
                "cap-1",
                DAY,
            ),
            json!(["cap-1", "fast", "2Gi"]),
        ),
        (
            "resourcequota splits requests and limits",
            "",
            "resourcequotas",
            with_meta(
                json!({"spec": {"hard": {}},
                       "status": {"hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi", "limits.cpu": "4",
                                           "requests.memory": "1024Mi"},
                                  "used": {"pods": "3", "requests.cpu": "500m", "limits.memory": "512Mi",
                                           "requests.memory": "0"}}}),
                "quota",
                DAY,
            ),
            json!([
                "quota",
                "pods: 3/10, requests.cpu: 500m/2, requests.memory: 0/1Gi",
                "limits.cpu: 0/4, limits.memory: 512Mi/2Gi",
                "24h"
            ]),
        ),
    ];
    check(cases);
}

#[test]
fn policy_rbac_and_cluster_rows() {
    let cases = vec![
        (
            "pdb with minAvailable",
            "policy",
            "poddisruptionbudgets",
            with_meta(
                json!({"spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}}),
                "zk",
                DAY,
            ),
            json!(["zk", "2", "N/A", 1, "24h"]),
        ),
        (
            "pdb with percentage maxUnavailable",
            "policy",
            "poddisruptionbudgets",
            with_meta(
                json!({"spec": {"maxUnavailable": "25%"}, "status": {}}),
                "web",
                DAY,
            ),
            json!(["web", "N/A", "25%", 0, "24h"]),
        ),
        (
            "rolebinding with all subject kinds",
            "rbac.authorization.k8s.io",
            "rolebindings",
            with_meta(
                json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                       "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                                    {"kind": "Group", "name": "devs"},
                                    {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]}),
                "read",
                DAY,
            ),
            json!([
                "read",
                "Role/reader",
                "24h",
                "alice, bob",
                "devs",
                "build/ci"
            ]),
        ),
        (
            "clusterrolebinding without subjects",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            with_meta(
                json!({"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}),
                "admin",
                DAY,
            ),
            json!(["admin", "ClusterRole/cluster-admin", "24h", "", "", ""]),
        ),
        (
            "lease",
            "coordination.k8s.io",
            "leases",
            with_meta(
                json!({"spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
                "node-1",
                DAY,
            ),
            json!(["node-1", "node-1", "24h"]),
        ),
        (
            "lease without holder",
            "coordination.k8s.io",
            "leases",
            with_meta(json!({"spec": {}}), "free", DAY),
            json!(["free", "", "24h"]),
        ),
        (
            "priorityclass",
            "scheduling.k8s.io",
            "priorityclasses",
            with_meta(
                json!({"value": 2000001000, "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority"}),
                "system-node-critical",
                DAY,
            ),
            json!([
                "system-node-critical",
                2000001000,
                false,
                "24h",
                "PreemptLowerPriority"
            ]),
        ),
        (
            "runtimeclass",
            "node.k8s.io",
            "runtimeclasses",
            with_meta(json!({"handler": "runc"}), "runc", DAY),
            json!(["runc", "runc", "24h"]),
        ),
        (
            "hpa v2 utilization and average value",
            "autoscaling",
            "horizontalpodautoscalers",
            with_meta(
                json!({"apiVersion": "autoscaling/v2",
                       "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                                "minReplicas": 1, "maxReplicas": 10,
                                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                "target": {"type": "Utilization", "averageUtilization": 80}}},
                                            {"type": "Resource", "resource": {"name": "memory",
                                                "target": {"type": "AverageValue", "averageValue": "1024Mi"}}}]},
                       "status": {"currentReplicas": 3, "desiredReplicas": 3,
                                  "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                                                        "current": {"averageUtilization": 45, "averageValue": "450m"}}},
                                                     {"type": "Resource", "resource": {"name": "memory",
                                                        "current": {"averageValue": "512Mi"}}}]}}),
                "web",
                DAY,
            ),
            json!([
                "web",
                "Deployment/web",
                "cpu: 45%/80%, memory: 512Mi/1Gi",
                "1",
                10,
                3,
                "24h"
            ]),
        ),
        (
            "hpa v2 with unknown current values and more than two metrics",
            "autoscaling",
            "horizontalpodautoscalers",
            with_meta(
                json!({"spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "db"}, "maxReplicas": 5,
                                "metrics": [{"type": "Pods", "pods": {"metric": {"name": "qps"},
                                                "target": {"type": "AverageValue", "averageValue": "1k"}}},
                                            {"type": "External", "external": {"metric": {"name": "queue"},
                                                "target": {"type": "Value", "value": "30"}}},
                                            {"type": "Object", "object": {"metric": {"name": "hits"},
                                                "target": {"type": "AverageValue", "averageValue": "2"}}}]},
                       "status": {"currentReplicas": 0}}),
                "db",
                DAY,
            ),
            json!([
                "db",
                "StatefulSet/db",
                "<unknown>/1k, <unknown>/30 + 1 more...",
                "<unset>",
                5,
                0,
                "24h"
            ]),
        ),
        (
            "hpa v2 with a status entry missing its current value",
            "autoscaling",
            "horizontalpodautoscalers",
            with_meta(
                json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "q"}, "maxReplicas": 2,
                                "metrics": [{"type": "External", "external": {"metric": {"name": "m"},
                                                "target": {"type": "Value", "value": "1500m"}}},
                                            {"type": "Resource", "resource": {"name": "memory",
                                                "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]},
                       "status": {"currentReplicas": 1, "currentMetrics": [
                           {"type": "External", "external": {"metric": {"name": "m"}, "current": {}}},
                           {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "52428800"}}}]}}),
                "q",
                DAY,
            ),
            json!([
                "q",
                "Deployment/q",
                "<nil>/1500m, memory: 52428800/100Mi",
                "<unset>",
                2,
                1,
                "24h"
            ]),
        ),
        (
            "hpa v1",
            "autoscaling",
            "horizontalpodautoscalers",
            with_meta(
                json!({"apiVersion": "autoscaling/v1",
                       "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "minReplicas": 2,
                                "maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
                       "status": {"currentReplicas": 2, "currentCPUUtilizationPercentage": 12}}),
                "api",
                DAY,
            ),
            json!(["api", "Deployment/api", "cpu: 12%/60%", "2", 4, 2, "24h"]),
        ),
        (
            "hpa without metrics",
            "autoscaling",
            "horizontalpodautoscalers",
            with_meta(
                json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 3, "metrics": []}}),
                "x",
                DAY,
            ),
            json!(["x", "Deployment/x", "<none>", "<unset>", 3, 0, "24h"]),
        ),
        (
            "approved and issued csr",
            "certificates.k8s.io",
            "certificatesigningrequests",
            with_meta(
                json!({"spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice",
                                "expirationSeconds": 86400, "request": "cmVx"},
                       "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "Y2VydA=="}}),
                "alice",
                MIN,
            ),
            json!([
                "alice",
                "60s",
                "kubernetes.io/kube-apiserver-client",
                "alice",
                "24h",
                "Approved,Issued"
            ]),
        ),
        (
            "pending csr",
            "certificates.k8s.io",
            "certificatesigningrequests",
            with_meta(json!({"spec": {"username": "system:node:n"}}), "csr-1", MIN),
            json!([
                "csr-1",
                "60s",
                "<none>",
                "system:node:n",
                "<none>",
                "Pending"
            ]),
        ),
        (
            "webhook configuration",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            with_meta(
                json!({"webhooks": [{"name": "a"}, {"name": "b"}]}),
                "policy",
                DAY,
            ),
            json!(["policy", 2, "24h"]),
        ),
        (
            "validating admission policy",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            with_meta(
                json!({"spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                                "validations": [{"expression": "true"}]}}),
                "vap",
                DAY,
            ),
            json!(["vap", 1, "v1/ConfigMap", "24h"]),
        ),
        (
            "validating admission policy binding",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
            with_meta(
                json!({"spec": {"policyName": "vap", "paramRef": {"name": "limits"}}}),
                "vapb",
                DAY,
            ),
            json!(["vapb", "vap", "*/limits", "24h"]),
        ),
        (
            "flowschema",
            "flowcontrol.apiserver.k8s.io",
            "flowschemas",
            with_meta(
                json!({"spec": {"priorityLevelConfiguration": {"name": "workload-high"}, "matchingPrecedence": 800,
                                "distinguisherMethod": {"type": "ByUser"}},
                       "status": {"conditions": [{"type": "Dangling", "status": "False"}]}}),
                "service-accounts",
                DAY,
            ),
            json!([
                "service-accounts",
                "workload-high",
                800,
                "ByUser",
                "24h",
                "False"
            ]),
        ),
        (
            "priority level configuration",
            "flowcontrol.apiserver.k8s.io",
            "prioritylevelconfigurations",
            with_meta(
                json!({"spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 30,
                                "limitResponse": {"type": "Queue", "queuing": {"queues": 64, "handSize": 6, "queueLengthLimit": 50}}}}}),
                "global-default",
                DAY,
            ),
            json!(["global-default", "Limited", 30, 64, 6, 50, "24h"]),
        ),
        (
            "exempt priority level",
            "flowcontrol.apiserver.k8s.io",
            "prioritylevelconfigurations",
            with_meta(
                json!({"spec": {"type": "Exempt", "exempt": {}}}),
                "exempt",
                DAY,
            ),
            json!(["exempt", "Exempt", "<none>", "<none>", "<none>", "<none>", "24h"]),
        ),
        (
            "component status",
            "",
            "componentstatuses",
            with_meta(
                json!({"conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]}),
                "etcd-0",
                DAY,
            ),
            json!(["etcd-0", "Healthy", "ok", ""]),
        ),
        (
            "local apiservice",
            "apiregistration.k8s.io",
            "apiservices",
            with_meta(
                json!({"spec": {"group": "apps", "version": "v1", "groupPriorityMinimum": 17800},
                       "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}}),
                "v1.apps",
                DAY,
            ),
            json!(["v1.apps", "Local", "True", "24h"]),
        ),
        (
            "unavailable aggregated apiservice",
            "apiregistration.k8s.io",
            "apiservices",
            with_meta(
                json!({"spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                                "service": {"namespace": "kube-system", "name": "metrics-server"}},
                       "status": {"conditions": [{"type": "Available", "status": "False",
                                                  "reason": "MissingEndpoints"}]}}),
                "v1beta1.metrics.k8s.io",
                DAY,
            ),
            json!([
                "v1beta1.metrics.k8s.io",
                "kube-system/metrics-server",
                "False (MissingEndpoints)",
                "24h"
            ]),
        ),
        (
            "resource claim",
            "resource.k8s.io",
            "resourceclaims",
            with_meta(
                json!({"status": {"allocation": {}, "reservedFor": [{"name": "p"}]}}),
                "gpu",
                DAY,
            ),
            json!(["gpu", "allocated,reserved", "24h"]),
        ),
    ];
    check(cases);
}

#[test]
fn resources_without_printer_use_default_table() {
    let role = with_meta(json!({"rules": []}), "reader", DAY);
    for (group, resource) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("", "limitranges"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ] {
        let cols = column_definitions(group, resource);
        let names: Vec<&str> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Created At"], "{group}/{resource}");
        assert_eq!(cols[1]["type"], "date");
        assert_eq!(
            row(group, resource, &role, now()),
            vec![json!("reader"), json!(ago(DAY))],
            "{group}/{resource}"
        );
    }
    let no_ts = json!({"metadata": {"name": "x"}});
    assert_eq!(
        row("", "limitranges", &no_ts, now()),
        vec![json!("x"), json!("0001-01-01T00:00:00Z")]
    );
}

#[test]
fn every_builtin_kind_has_one_cell_per_column() {
    let empty = json!({"metadata": {"name": "x"}});
    for kind in Kind::ALL {
        let cols = kind.columns();
        let cells = kind.cells(&empty, now());
        assert_eq!(cols.len(), cells.len(), "{kind:?}");
        assert!(
            cols.iter().all(|c| !c.name.is_empty()
                && ["string", "integer", "number", "boolean", "date"].contains(&c.type_.as_str())),
            "{kind:?} columns are well-formed"
        );
    }
}

#[test]
fn column_definitions_match_upstream_names_and_priorities() {
    let visible = |g: &str, r: &str| -> (Vec<String>, Vec<String>) {
        let defs = column_definitions(g, r);
        let name = |c: &Value| c["name"].as_str().unwrap().to_uppercase();
        (
            defs.iter()
                .filter(|c| c["priority"] == 0)
                .map(name)
                .collect(),
            defs.iter()
                .filter(|c| c["priority"] != 0)
                .map(name)
                .collect(),
        )
    };
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "",
            "pods",
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        ),
        (
            "apps",
            "deployments",
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "",
            "services",
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        (
            "",
            "nodes",
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            &[
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
            ],
        ),
        (
            "",
            "events",
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
        ),
        (
            "batch",
            "jobs",
            &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "batch",
            "cronjobs",
            &[
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE",
            ],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "apps",
            "statefulsets",
            &["NAME", "READY", "AGE"],
            &["CONTAINERS", "IMAGES"],
        ),
        (
            "apps",
            "daemonsets",
            &[
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE",
            ],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "apps",
            "replicasets",
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        ("", "configmaps", &["NAME", "DATA", "AGE"], &[]),
        ("", "secrets", &["NAME", "TYPE", "DATA", "AGE"], &[]),
        ("", "namespaces", &["NAME", "STATUS", "AGE"], &[]),
        ("", "serviceaccounts", &["NAME", "SECRETS", "AGE"], &[]),
        (
            "",
            "persistentvolumes",
            &[
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        (
            "",
            "persistentvolumeclaims",
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        ("", "endpoints", &["NAME", "ENDPOINTS", "AGE"], &[]),
        (
            "discovery.k8s.io",
            "endpointslices",
            &["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
            &[],
        ),
        (
            "coordination.k8s.io",
            "leases",
            &["NAME", "HOLDER", "AGE"],
            &[],
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            &["NAME", "ROLE", "AGE"],
            &["USERS", "GROUPS", "SERVICEACCOUNTS"],
        ),
        (
            "storage.k8s.io",
            "storageclasses",
            &[
                "NAME",
                "PROVISIONER",
                "RECLAIMPOLICY",
                "VOLUMEBINDINGMODE",
                "ALLOWVOLUMEEXPANSION",
                "AGE",
            ],
            &[],
        ),
        (
            "networking.k8s.io",
            "ingresses",
            &["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
            &[],
        ),
        (
            "networking.k8s.io",
            "ingressclasses",
            &["NAME", "CONTROLLER", "PARAMETERS", "AGE"],
            &[],
        ),
        (
            "networking.k8s.io",
            "networkpolicies",
            &["NAME", "POD-SELECTOR", "AGE"],
            &[],
        ),
        (
            "policy",
            "poddisruptionbudgets",
            &[
                "NAME",
                "MIN AVAILABLE",
                "MAX UNAVAILABLE",
                "ALLOWED DISRUPTIONS",
                "AGE",
            ],
            &[],
        ),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            &[
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE",
            ],
            &[],
        ),
        (
            "scheduling.k8s.io",
            "priorityclasses",
            &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
            &[],
        ),
        (
            "",
            "resourcequotas",
            &["NAME", "REQUEST", "LIMIT", "AGE"],
            &[],
        ),
        (
            "",
            "podtemplates",
            &["NAME", "CONTAINERS", "IMAGES", "POD LABELS"],
            &[],
        ),
        (
            "",
            "replicationcontrollers",
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "apps",
            "controllerrevisions",
            &["NAME", "CONTROLLER", "REVISION", "AGE"],
            &[],
        ),
        (
            "storage.k8s.io",
            "csidrivers",
            &[
                "NAME",
                "ATTACHREQUIRED",
                "PODINFOONMOUNT",
                "STORAGECAPACITY",
                "TOKENREQUESTS",
                "REQUIRESREPUBLISH",
                "MODES",
                "AGE",
            ],
            &[],
        ),
        (
            "storage.k8s.io",
            "volumeattachments",
            &["NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"],
            &[],
        ),
    ];
    for (g, r, normal, wide) in cases {
        let (n, w) = visible(g, r);
        assert_eq!(n, *normal, "{g}/{r} default columns");
        assert_eq!(w, *wide, "{g}/{r} wide columns");
    }
    let pod_name = &column_definitions("", "pods")[0];
    assert_eq!(pod_name["format"], "name");
    assert!(pod_name["description"]
        .as_str()
        .unwrap()
        .starts_with("Name must be unique within a namespace."));
    assert_eq!(column_definitions("", "pods")[3]["type"], "string");
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"}, "scope": "Namespaced",
            "versions": [
                {"name": "v1", "served": true, "storage": true, "additionalPrinterColumns": [
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Size", "type": "string", "jsonPath": ".spec.size", "description": "How big"},
                    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
                    {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled"},
                    {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
                    {"name": "Seen", "type": "date", "jsonPath": ".status.lastSeen", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]},
                {"name": "v1beta1", "served": true, "storage": false}]}
    })
}

#[test]
fn custom_resource_columns() {
    let conv = TableConvertor::for_crd(&crd(), "v1").unwrap();
    let defs = conv.column_definitions();
    let names: Vec<&str> = defs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Name", "Replicas", "Ready", "Size", "Ratio", "Enabled", "Tags", "Seen", "Age"]
    );
    assert_eq!(defs[1]["type"], "integer");
    assert_eq!(
        defs[1]["description"],
        "Custom resource definition column (in JSONPath format): .spec.replicas"
    );
    assert_eq!(defs[3]["description"], "How big");
    assert_eq!(defs[6]["priority"], 1);
    assert_eq!(defs[0]["format"], "name");

    let cases = vec![
        (
            "all columns present",
            with_meta(
                json!({"spec": {"replicas": 3, "size": 12, "ratio": 0.25, "enabled": true,
                                "tags": {"b": 1, "a": [true]}},
                       "status": {"lastSeen": ago(90), "conditions": [{"type": "Ready", "status": "True"}]}}),
                "w1",
                2 * DAY,
            ),
            json!([
                "w1",
                3,
                "True",
                "12",
                0.25,
                true,
                "{\"a\":[true],\"b\":1}",
                "90s",
                "2d"
            ]),
        ),
        (
            "missing values are null, wrong types are null, bad dates invalid",
            with_meta(
                json!({"spec": {"replicas": "three", "enabled": "yes", "size": 1e6},
                       "status": {"lastSeen": "yesterday"}}),
                "w2",
                MIN,
            ),
            json!([
                "w2",
                null,
                null,
                "1e+06",
                null,
                null,
                null,
                "<invalid>",
                "60s"
            ]),
        ),
        (
            "floats truncate for integer columns, integers widen for number columns",
            with_meta(
                json!({"spec": {"replicas": 2.9, "ratio": 4, "size": "XL"}}),
                "w3",
                MIN,
            ),
            json!(["w3", 2, null, "XL", 4.0, null, null, null, "60s"]),
        ),
    ];
    for (what, obj, want) in cases {
        assert_eq!(Value::Array(conv.cells(&obj, now())), want, "{what}");
    }
}

#[test]
fn custom_resource_default_and_errors() {
    let conv = TableConvertor::for_crd(&crd(), "v1beta1").unwrap();
    let defs = conv.column_definitions();
    let names: Vec<&str> = defs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Name", "Age"]);
    assert_eq!(defs[1]["type"], "date");
    let obj = with_meta(json!({}), "w", 3 * HOUR);
    assert_eq!(conv.cells(&obj, now()), vec![json!("w"), json!("3h")]);

    assert_eq!(
        TableConvertor::for_crd(&crd(), "v2"),
        Err(TableError::UnknownVersion("v2".into()))
    );
    assert!(matches!(
        TableConvertor::from_printer_columns(&[
            json!({"name": "X", "type": "string", "jsonPath": "..x"})
        ]),
        Err(TableError::BadColumn { .. })
    ));
    assert_eq!(
        TableConvertor::from_printer_columns(&[json!({"name": "X"})]),
        Err(TableError::MalformedColumn(0))
    );
}

#[test]
fn table_envelope() {
    let pods = vec![
        pod(
            "a",
            one_container(),
            json!({"phase": "Running", "containerStatuses": [container_status("app", json!({"running": {}}), true, 0)]}),
        ),
        pod(
            "b",
            one_container(),
            json!({"phase": "Succeeded", "containerStatuses": [
                container_status("app", json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), false, 0)]}),
        ),
    ];
    let t = table(
        "",
        "pods",
        &pods,
        "1234",
        Some("tok"),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "1234", "continue": "tok"})
    );
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["cells"][0], "a");
    assert_eq!(
        rows[0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pods[0]["metadata"]})
    );
    assert!(rows[0].get("conditions").is_none());
    assert_eq!(
        rows[1]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
    );

    let full = table(
        "",
        "pods",
        &pods[..1],
        "7",
        None,
        IncludeObject::Object,
        now(),
    );
    assert_eq!(full["rows"][0]["object"], pods[0]);
    assert_eq!(full["metadata"], json!({"resourceVersion": "7"}));

    let none = table("", "pods", &pods[..1], "", None, IncludeObject::None, now());
    assert_eq!(none["rows"][0]["object"], Value::Null);
    assert_eq!(none["metadata"], json!({}));

    let empty = table(
        "apps",
        "deployments",
        &[],
        "9",
        None,
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["columnDefinitions"].as_array().unwrap().len(), 8);

    let opts = TableOptions {
        no_headers: true,
        remaining_item_count: Some(5),
        resource_version: "3".into(),
        ..TableOptions::default()
    };
    let headless = TableConvertor::for_resource("", "pods").table(&pods, &opts, now());
    assert_eq!(headless["columnDefinitions"], Value::Null);
    assert_eq!(
        headless["metadata"],
        json!({"resourceVersion": "3", "remainingItemCount": 5})
    );

    assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
    assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
    assert_eq!(
        IncludeObject::parse("Metadata"),
        Some(IncludeObject::Metadata)
    );
    assert_eq!(IncludeObject::parse("all"), None);
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
}

#[test]
fn flow_schemas_sorted_by_precedence() {
    let fs = |name: &str, prec: i64| {
        with_meta(
            json!({"spec": {"priorityLevelConfiguration": {"name": "p"}, "matchingPrecedence": prec}}),
            name,
            DAY,
        )
    };
    let objs = vec![
        fs("global-default", 9900),
        fs("exempt", 1),
        fs("b", 500),
        fs("a", 500),
    ];
    let t = table(
        "flowcontrol.apiserver.k8s.io",
        "flowschemas",
        &objs,
        "1",
        None,
        IncludeObject::None,
        now(),
    );
    let names: Vec<&str> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"][0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exempt", "a", "b", "global-default"]);
    assert_eq!(t["rows"][0]["cells"][5], "?");
}

#[test]
fn go_float_formatting() {
    let cases: &[(f64, &str)] = &[
        (3.0, "3"),
        (0.5, "0.5"),
        (-2.25, "-2.25"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e21, "1e+21"),
        (0.0, "0"),
    ];
    for (f, want) in cases {
        assert_eq!(go_format_float(*f), *want, "{f}");
    }
}

#[test]
fn ages_come_from_now_parameter() {
    let obj = with_meta(json!({"data": {}}), "cm", 0);
    let later = |secs: i64| Timestamp::from_unix_seconds(now().unix_seconds() + secs);
    let cases: &[(i64, &str)] = &[
        (0, "0s"),
        (5, "5s"),
        (250, "4m10s"),
        (3 * HOUR, "3h"),
        (2 * DAY + 5 * HOUR, "2d5h"),
        (400 * DAY, "400d"),
        (3 * 365 * DAY, "3y"),
    ];
    for (secs, want) in cases {
        assert_eq!(
            row("", "configmaps", &obj, later(*secs))[2],
            json!(want),
            "{secs}s"
        );
    }
}

#[test]
fn malformed_objects_do_not_break_rows() {
    let garbage = [
        json!({}),
        json!({"metadata": {"name": 5, "creationTimestamp": "not a time"}, "spec": [], "status": "x"}),
        json!({"metadata": null, "spec": {"replicas": "3", "containers": "c", "ports": [1, "x", null],
               "selector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}},
               "status": {"conditions": [null, 1], "containerStatuses": [{"state": "running"}],
                          "initContainerStatuses": [{"state": {"terminated": "yes"}}]}}),
        json!([1, 2, 3]),
        json!("pod"),
    ];
    for kind in Kind::ALL {
        for obj in &garbage {
            let cells = kind.cells(obj, now());
            assert_eq!(cells.len(), kind.columns().len(), "{kind:?} on {obj}");
        }
    }
}

#[test]
fn parsers_reject_garbage_without_panicking() {
    for s in [
        "",
        "[",
        "['",
        "[?(",
        "[?(@",
        "[?(@.a==",
        "[?(@.a==\"x",
        ".é",
        ".a['é\\",
        "[-]",
        "[1",
        "{.a",
    ] {
        let _ = JsonPath::parse(s);
    }
    for s in [
        "",
        "-",
        ".",
        "1.",
        ".5",
        "1..2",
        "1ee3",
        "1e",
        "é",
        "99999999999999999999999999999999999Ei",
    ] {
        let _ = canonical_quantity(s);
    }
    for s in [
        "",
        "2024-01-01Té0:00:00Z",
        "2024-01-01T00:00:00+é",
        "2024-01-01T00:00:00.é",
    ] {
        assert!(Timestamp::parse_rfc3339(s).is_err(), "{s:?}");
    }
    assert_eq!(canonical_quantity(".5"), "500m");
    assert_eq!(canonical_quantity("1."), "1");
}

#[test]
fn convert_lists_and_single_objects() {
    let conv = TableConvertor::for_resource("", "configmaps");
    let cm = |n: &str| {
        with_meta(
            json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"k": "v"}}),
            n,
            MIN,
        )
    };
    let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
                      "metadata": {"resourceVersion": "77", "continue": "next", "remainingItemCount": 12},
                      "items": [cm("a"), cm("b")]});
    let t = conv.convert(&list, IncludeObject::Metadata, false, now());
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "77", "continue": "next", "remainingItemCount": 12})
    );
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
    assert_eq!(t["rows"][1]["cells"], json!(["b", 1, "60s"]));

    let single = conv.convert(&cm("solo"), IncludeObject::Object, true, now());
    assert_eq!(single["metadata"], json!({"resourceVersion": "42"}));
    assert_eq!(single["columnDefinitions"], Value::Null);
    assert_eq!(single["rows"][0]["cells"], json!(["solo", 1, "60s"]));
    assert_eq!(single["rows"][0]["object"]["kind"], "ConfigMap");

    // A custom resource with a top-level "items" field is still a single object.
    let cr = with_meta(json!({"kind": "Basket", "items": [1, 2]}), "basket", MIN);
    let t = TableConvertor::Default.convert(&cr, IncludeObject::None, false, now());
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    assert_eq!(t["rows"][0]["cells"][0], "basket");
}
