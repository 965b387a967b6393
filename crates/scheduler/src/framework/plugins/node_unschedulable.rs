//! NodeUnschedulable filter: cordoned nodes (`spec.unschedulable`) accept only pods tolerating
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use super::taint_toleration::tolerates;
use crate::framework::{NodeInfo, PodInfo, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const REASON: &str = "node(s) were unschedulable";
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if !node.unschedulable {
        return None;
    }
    let taint = Taint {
        key: TAINT_KEY.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    let tolerations = pod.pod.spec.as_ref().and_then(|s| s.tolerations.as_ref());
    if tolerations
        .into_iter()
        .flatten()
        .any(|t| tolerates(t, &taint))
    {
        return None;
    }
    Some(Status::unresolvable(NAME, REASON))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    #[test]
    fn table() {
        for (name, node_spec, pod_spec, fits) in [
            ("schedulable node", json!({}), json!({}), true),
            (
                "cordoned node",
                json!({"unschedulable": true}),
                json!({}),
                false,
            ),
            (
                "cordoned node, tolerated",
                json!({"unschedulable": true}),
                json!({"tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}),
                true,
            ),
            (
                "cordoned node, toleration of all",
                json!({"unschedulable": true}),
                json!({"tolerations": [{"operator": "Exists"}]}),
                true,
            ),
        ] {
            let c = cluster(vec![node("n1", "1", "1Gi", json!({}), node_spec)], vec![]);
            assert_eq!(
                filter(&pod("p", pod_spec), c.node("n1").unwrap()).is_none(),
                fits,
                "{name}"
            );
        }
    }
}
