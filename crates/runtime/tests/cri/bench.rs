//! Benchmarks of the CRI suite (figures, not assertions), run against each runtime in turn by
//! `cargo bench -p runtime --bench runtime`: container exit -> event latency and 20 pods started
//! at once (pod start p50 and shim memory are `containers::bench_pod_start`).

use std::time::{Duration, Instant};

use cri::v1 as pb;

use crate::containers::{container_config, pod, remove_pod, run_pod_sandbox, sandbox_config};
use crate::harness::{Kind, Target};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Container exit -> ContainerStoppedEvent received by a GetContainerEvents client, from the
/// exit time the runtime recorded (the shim's reap) to the event's arrival; n containers.
pub async fn bench_exit_event(mut t: Target) {
    if t.kind == Kind::Containerd {
        eprintln!(
            "BENCH {:?}: exit -> event: n/a (containerd 1.6 lacks GetContainerEvents)",
            t.kind
        );
        return;
    }
    let n = 40;
    let (sb, _logs) = pod(&mut t, "bench-exit").await;
    let mut stream =
        t.rt.get_container_events(pb::GetEventsRequest {})
            .await
            .expect("GetContainerEvents")
            .into_inner();
    let mut lat = Vec::new();
    for i in 0..n {
        let id =
            t.rt.create_container(pb::CreateContainerRequest {
                pod_sandbox_id: sb.id.clone(),
                config: Some(container_config(
                    &format!("x{i}"),
                    &["sh", "-c", "sleep 0.05"],
                )),
                sandbox_config: Some(sb.config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        t.rt.start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("StartContainer");
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), stream.message())
                .await
                .expect("event in time")
                .expect("stream")
                .expect("open");
            let received = chrono::Utc::now().timestamp_nanos_opt().unwrap();
            if ev.container_id == id
                && ev.container_event_type == pb::ContainerEventType::ContainerStoppedEvent as i32
            {
                let st = ev
                    .containers_statuses
                    .iter()
                    .find(|s| s.id == id)
                    .expect("status with the event");
                lat.push(Duration::from_nanos(
                    (received - st.finished_at).max(0) as u64
                ));
                break;
            }
        }
        t.rt.remove_container(pb::RemoveContainerRequest { container_id: id })
            .await
            .expect("RemoveContainer");
    }
    remove_pod(&mut t, &sb.id).await;
    lat.sort();
    eprintln!(
        "BENCH {:?}: container exit -> event over {n}: p50 {:?} p99 {:?} max {:?}",
        t.kind,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().unwrap()
    );
}

/// 20 pods (sandbox + busybox `sleep` container each) started at once, as 20 concurrent kubelet
/// pod workers would: time until every container is running.
pub async fn bench_concurrent_pods(mut t: Target) {
    let n = 20;
    let logs = t.dir.path().join("bench-concurrent-logs");
    std::fs::create_dir_all(&logs).unwrap();
    // warm up (image snapshot and network in place)
    let (warm, _) = pod(&mut t, "benchwarm2").await;
    remove_pod(&mut t, &warm.id).await;
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut rt = t.rt.clone();
        let config = sandbox_config(&format!("conc{i}"), &logs);
        tasks.push(tokio::spawn(async move {
            let sid = run_pod_sandbox(&mut rt, config.clone()).await;
            let cid = rt
                .create_container(pb::CreateContainerRequest {
                    pod_sandbox_id: sid.clone(),
                    config: Some(container_config("main", &["sleep", "1000"])),
                    sandbox_config: Some(config),
                })
                .await
                .expect("CreateContainer")
                .into_inner()
                .container_id;
            rt.start_container(pb::StartContainerRequest {
                container_id: cid.clone(),
            })
            .await
            .expect("StartContainer");
            (sid, cid, begin.elapsed())
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap());
    }
    let all = begin.elapsed();
    for (_, cid, _) in &done {
        let st =
            t.rt.container_status(pb::ContainerStatusRequest {
                container_id: cid.clone(),
                verbose: false,
            })
            .await
            .expect("ContainerStatus")
            .into_inner()
            .status
            .unwrap();
        assert_eq!(st.state, pb::ContainerState::ContainerRunning as i32);
    }
    let mut each: Vec<Duration> = done.iter().map(|d| d.2).collect();
    each.sort();
    for (sid, _, _) in &done {
        remove_pod(&mut t, sid).await;
    }
    eprintln!(
        "BENCH {:?}: {n} pods started concurrently: all running after {all:?} (first {:?}, median {:?})",
        t.kind,
        each[0],
        pct(&each, 0.5)
    );
}
