//! Runtime benchmarks, oxkube and containerd + runc side by side in one run (needs root and what
//! the CRI suite needs): pod start (RunPodSandbox + CreateContainer + StartContainer of busybox
//! `sleep`, image present) p50/p90, shim PSS, container exit -> event p50/p99, and 20 pods started
//! at once. `cargo bench -p runtime --bench runtime`; prints `BENCH` lines. Both runtimes get
//! the same bridge + host-local + portmap + loopback conflist, with `ipMasq` off as the oxkube
//! agent writes it. `RUNTIME_BENCH_ONLY=oxkube` (or `containerd`) measures one runtime, and
//! `RUNTIME_BENCH_PARTS=pod-start` only the pod start, for quick before/after runs.
#![allow(dead_code)]

#[path = "../tests/cri/bench.rs"]
mod bench;
#[path = "../tests/cri/containers.rs"]
mod containers;
#[path = "../tests/cri/harness.rs"]
mod harness;

use harness::{Kind, Target};

fn main() {
    // the conflist `oxkube server`/`agent` write (their pod network masquerades)
    harness::IP_MASQ.store(false, std::sync::atomic::Ordering::SeqCst);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let only = std::env::var("RUNTIME_BENCH_ONLY").unwrap_or_default();
        let all_parts = std::env::var("RUNTIME_BENCH_PARTS").unwrap_or_default() != "pod-start";
        let mut p50 = Vec::new();
        for (kind, name) in [(Kind::Oxkube, "oxkube"), (Kind::Containerd, "containerd")] {
            if !only.is_empty() && only != name {
                continue;
            }
            p50.push(containers::bench_pod_start(Target::start(kind).await).await);
            if all_parts {
                bench::bench_exit_event(Target::start(kind).await).await;
                bench::bench_concurrent_pods(Target::start(kind).await).await;
            }
        }
        if p50.len() < 2 {
            return;
        }
        eprintln!(
            "BENCH pod start p50: oxkube {:?}, containerd {:?}: containerd / oxkube = {:.1}x",
            p50[0],
            p50[1],
            p50[1].as_secs_f64() / p50[0].as_secs_f64()
        );
    });
}
