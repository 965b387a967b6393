//! NodePorts filter: a pod's host ports must be free on the node.

use crate::framework::{NodeInfo, PodInfo, Status};

pub const NAME: &str = "NodePorts";
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let conflict = pod
        .host_ports
        .iter()
        .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
    conflict.then(|| Status::unschedulable(NAME, REASON))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    fn ports(ps: serde_json::Value) -> serde_json::Value {
        json!({"containers": [{"name": "c", "image": "busybox", "ports": ps}]})
    }

    #[test]
    fn table() {
        for (name, existing, wanted, fits) in [
            ("no ports", json!([]), json!([]), true),
            (
                "different port",
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 80, "hostPort": 8081}]),
                true,
            ),
            (
                "same port",
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 81, "hostPort": 8080}]),
                false,
            ),
            (
                "same port other protocol",
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
                true,
            ),
            (
                "same port distinct host IPs",
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.2"}]),
                true,
            ),
            (
                "wildcard IP conflicts with specific",
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                false,
            ),
            (
                "container port only",
                json!([{"containerPort": 80}]),
                json!([{"containerPort": 80}]),
                true,
            ),
        ] {
            let c = cluster(
                vec![node("n1", "1", "1Gi", json!({}), json!({}))],
                vec![(pod("old", ports(existing)), "n1")],
            );
            let got = filter(&pod("new", ports(wanted)), c.node("n1").unwrap());
            assert_eq!(got.is_none(), fits, "{name}");
        }
    }
}
