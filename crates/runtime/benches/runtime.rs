//! Runtime benchmarks, oxkube and containerd + runc side by side in one run (needs root and what
//! the CRI suite needs): pod start (RunPodSandbox + CreateContainer + StartContainer of busybox
//! `sleep`, image present) p50/p90, shim PSS, container exit -> event p50/p99, and 20 pods started
//! at once. `cargo bench -p runtime --bench runtime`; prints `BENCH` lines and the ratios.
#![allow(dead_code)]

#[path = "../tests/cri/bench.rs"]
mod bench;
#[path = "../tests/cri/containers.rs"]
mod containers;
#[path = "../tests/cri/harness.rs"]
mod harness;

use harness::{Kind, Target};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for kind in [Kind::Oxkube, Kind::Containerd] {
            containers::bench_pod_start(Target::start(kind).await).await;
            bench::bench_exit_event(Target::start(kind).await).await;
            bench::bench_concurrent_pods(Target::start(kind).await).await;
        }
    });
}
