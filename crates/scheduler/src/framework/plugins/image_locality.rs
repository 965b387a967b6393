//! ImageLocality score: prefers nodes that already have the pod's images, weighted by how widely
//! each image is spread over the cluster.

use crate::framework::{Cluster, NodeInfo, PodInfo, MAX_NODE_SCORE};

pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
/// Below this sum of image sizes a node scores 0.
pub const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container: at or above this a node scores 100.
pub const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Score of a node for the pod's (normalized) images; `images` comes from [`PodInfo::images`].
pub fn score(cluster: &Cluster, images: &[String], node: &NodeInfo) -> i64 {
    let total_nodes = cluster.num_nodes().max(1) as f64;
    let mut sum: i64 = 0;
    for img in images {
        if let Some(size) = node.images.get(img) {
            let spread = cluster.image_node_count(img) as f64 / total_nodes;
            sum += (*size as f64 * spread) as i64;
        }
    }
    let max_threshold = MAX_CONTAINER_THRESHOLD * images.len() as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max_threshold.max(MIN_THRESHOLD));
    if max_threshold <= MIN_THRESHOLD {
        return 0;
    }
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

/// The images of a pod to score.
pub fn pod_images(pod: &PodInfo) -> Vec<String> {
    pod.images()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::plugins::testutil::*;
    use serde_json::json;

    fn with_images(
        mut n: k8s_openapi::api::core::v1::Node,
        images: serde_json::Value,
    ) -> k8s_openapi::api::core::v1::Node {
        n.status.as_mut().unwrap().images = Some(serde_json::from_value(images).unwrap());
        n
    }

    #[test]
    fn table() {
        let c = cluster(
            vec![
                with_images(
                    node("a", "1", "1Gi", json!({}), json!({})),
                    json!([{"names": ["docker.io/library/big:1"], "sizeBytes": 2000 * MB},
                    {"names": ["small:latest"], "sizeBytes": 10 * MB}]),
                ),
                with_images(
                    node("b", "1", "1Gi", json!({}), json!({})),
                    json!([{"names": ["docker.io/library/big:1"], "sizeBytes": 2000 * MB}]),
                ),
                node("c", "1", "1Gi", json!({}), json!({})),
                node("d", "1", "1Gi", json!({}), json!({})),
            ],
            vec![],
        );
        let big = || json!({"containers": [{"name": "c", "image": "docker.io/library/big:1"}]});
        for (name, spec, node_name, want) in [
            // 2000 MiB spread over 2/4 nodes = 1000 MiB sum -> (1000-23)/(1000-23) = 100
            ("big image on half the nodes", big(), "a", 100),
            ("image absent", big(), "c", 0),
            (
                "small image below threshold",
                json!({"containers": [{"name": "c", "image": "small"}]}),
                "a",
                0,
            ),
            // two containers: max threshold 2000 MiB; sum 1000 MiB -> 100*(977)/(1977)
            (
                "two containers",
                json!({"containers": [{"name": "c", "image": "docker.io/library/big:1"}, {"name": "d", "image": "other"}]}),
                "b",
                100 * (1000 - 23) / (2000 - 23),
            ),
        ] {
            let p = pod("p", spec);
            assert_eq!(
                score(&c, &pod_images(&p), c.node(node_name).unwrap()),
                want,
                "{name}"
            );
        }
    }
}
