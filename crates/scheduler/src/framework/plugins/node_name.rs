//! NodeName filter: a pod that names its node fits only there.

use crate::framework::{NodeInfo, PodInfo, Status};

pub const NAME: &str = "NodeName";
pub const REASON: &str = "node(s) didn't match the requested node name";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    match pod.node_name() {
        Some(n) if n != node.name => Some(Status::unresolvable(NAME, REASON)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    #[test]
    fn table() {
        let c = cluster(vec![node("n1", "1", "1Gi", json!({}), json!({}))], vec![]);
        let n = c.node("n1").unwrap();
        for (name, spec, fits) in [
            ("no nodeName", json!({}), true),
            ("same node", json!({"nodeName": "n1"}), true),
            ("other node", json!({"nodeName": "n2"}), false),
        ] {
            assert_eq!(filter(&pod("p", spec), n).is_none(), fits, "{name}");
        }
    }
}
