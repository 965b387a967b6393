//! CRI pod sandbox stats tests, run against every runtime: PodSandboxStats and
//! ListPodSandboxStats report the pod's CPU, memory, processes, network interfaces and containers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cri::v1 as pb;

use crate::containers::{container_config, create, pod_with, remove_pod, start};
use crate::harness::Target;

pub async fn pod_sandbox_stats(mut t: Target) {
    // the kubelet always gives a pod cgroup (containerd 1.6 needs one for sandbox stats)
    let parent = format!("/cri-suite-podstats-{}-{:?}", std::process::id(), t.kind).to_lowercase();
    let p = parent.clone();
    let (sb, _logs) = pod_with(&mut t, "podstats", move |c| {
        c.linux.as_mut().unwrap().cgroup_parent = p;
    })
    .await;
    let gateway = format!(
        "{}.1",
        t.pod_cidr.rsplit_once('.').expect("ipv4 pod cidr").0
    );
    let script = format!(
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; ping -c 3 -W 1 {gateway} >/dev/null 2>&1; echo ready; sleep 1000"
    );
    let id = create(
        &mut t,
        &sb,
        container_config("busy", &["sh", "-c", &script]),
    )
    .await
    .expect("create");
    start(&mut t, &id).await.expect("start");
    // wait until the pings went out
    let begin = Instant::now();
    let stats = loop {
        let st =
            t.rt.pod_sandbox_stats(pb::PodSandboxStatsRequest {
                pod_sandbox_id: sb.id.clone(),
            })
            .await
            .expect("PodSandboxStats")
            .into_inner()
            .stats
            .expect("stats");
        let tx = st
            .linux
            .as_ref()
            .and_then(|l| l.network.as_ref())
            .and_then(|n| n.default_interface.as_ref())
            .and_then(|i| i.tx_bytes.as_ref())
            .map_or(0, |v| v.value);
        if tx > 3 * 84 {
            break st;
        }
        assert!(
            begin.elapsed() < Duration::from_secs(20),
            "no network traffic reported: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let attrs = stats.attributes.as_ref().expect("attributes");
    assert_eq!(attrs.id, sb.id);
    assert_eq!(attrs.metadata.as_ref().unwrap().name, "podstats");
    let linux = stats.linux.as_ref().expect("linux stats");
    let cpu = linux.cpu.as_ref().expect("cpu");
    assert!(
        cpu.usage_core_nano_seconds
            .as_ref()
            .expect("cpu usage")
            .value
            > 0
    );
    let mem = linux.memory.as_ref().expect("memory");
    assert!(mem.working_set_bytes.as_ref().expect("working set").value > 0);
    let net = linux.network.as_ref().expect("network");
    let eth0 = net.default_interface.as_ref().expect("default interface");
    assert_eq!(eth0.name, "eth0");
    assert!(eth0.rx_bytes.as_ref().unwrap().value > 0, "{eth0:?}");
    // containerd 1.6 fills in only the default interface
    assert!(net.interfaces.is_empty() || net.interfaces.iter().any(|i| i.name == "eth0"));
    assert!(!net.interfaces.iter().any(|i| i.name == "lo"), "{net:?}");
    let ctrs: Vec<&str> = linux
        .containers
        .iter()
        .map(|c| c.attributes.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ctrs, [id.as_str()]);
    let c = &linux.containers[0];
    assert!(
        c.cpu
            .as_ref()
            .unwrap()
            .usage_core_nano_seconds
            .as_ref()
            .unwrap()
            .value
            > 0
    );

    // the list call, filtered by id and by labels
    let list = |id: &str, labels: &[(&str, &str)]| pb::ListPodSandboxStatsRequest {
        filter: Some(pb::PodSandboxStatsFilter {
            id: id.into(),
            label_selector: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        }),
    };
    let got =
        t.rt.list_pod_sandbox_stats(list(&sb.id, &[]))
            .await
            .expect("ListPodSandboxStats")
            .into_inner()
            .stats;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes.as_ref().unwrap().id, sb.id);
    assert_eq!(got[0].linux.as_ref().unwrap().containers.len(), 1);
    let got =
        t.rt.list_pod_sandbox_stats(list("", &[]))
            .await
            .expect("ListPodSandboxStats")
            .into_inner()
            .stats;
    assert!(got
        .iter()
        .any(|s| s.attributes.as_ref().unwrap().id == sb.id));
    let got =
        t.rt.list_pod_sandbox_stats(list(&sb.id, &[("no-such", "label")]))
            .await
            .expect("ListPodSandboxStats")
            .into_inner()
            .stats;
    assert!(got.is_empty(), "{got:?}");
    // an unknown sandbox is NotFound
    let e =
        t.rt.pod_sandbox_stats(pb::PodSandboxStatsRequest {
            pod_sandbox_id: "f".repeat(64),
        })
        .await
        .expect_err("unknown sandbox");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e}");
    remove_pod(&mut t, &sb.id).await;
    // the pod cgroup is the kubelet's to remove
    for dir in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let base = dir.path();
        for p in [
            base.join(parent.trim_start_matches('/')),
            base.join("unified").join(parent.trim_start_matches('/')),
        ] {
            if p.is_dir() {
                std::fs::remove_dir(&p).unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
            }
        }
    }
}
