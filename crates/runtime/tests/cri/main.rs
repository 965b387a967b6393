//! The CRI test suite: every test talks gRPC to a CRI socket and runs against both the oxkube
//! runtime and containerd (Debian's 1.6, started with its own config), so the suite itself is
//! proven against a real runtime. Needs root, busybox-static, containerd and docker-registry
//! (`scripts/deps.sh --test`). A test containerd cannot pass is skipped for containerd only,
//! with the reason printed.

mod agent_kill;
mod bench;
mod containers;
mod harness;
mod images;
mod kubectl;
mod pod_stats;
mod sandboxes;
mod security;
mod streaming;

/// Declares `<name>::oxkube` and `<name>::containerd` running `images::<name>(target)`.
macro_rules! cri_test {
    ($module:ident :: $name:ident) => {
        mod $name {
            use crate::harness::{Kind, Target};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn oxkube() {
                crate::$module::$name(Target::start(Kind::Oxkube).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn containerd() {
                crate::$module::$name(Target::start(Kind::Containerd).await).await
            }
        }
    };
    ($module:ident :: $name:ident, skip_containerd = $reason:literal) => {
        mod $name {
            use crate::harness::{Kind, Target};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn oxkube() {
                crate::$module::$name(Target::start(Kind::Oxkube).await).await
            }
            #[tokio::test]
            async fn containerd() {
                eprintln!("skipped for containerd: {}", $reason);
            }
        }
    };
}

cri_test!(images::version);
cri_test!(images::list_and_status_after_oci_import);
cri_test!(
    images::list_images_filter,
    skip_containerd = "containerd 1.6 ignores ListImagesRequest.filter and lists every image"
);
cri_test!(images::docker_save_import_has_same_image_id);
cri_test!(images::status_of_missing_image_is_empty);
cri_test!(images::remove_image_by_tag_and_id_is_idempotent);
cri_test!(images::image_fs_info_reports_usage);
cri_test!(images::pull_from_plain_http_registry);
cri_test!(images::pull_by_digest);
cri_test!(images::pull_through_mirror);
cri_test!(images::pull_with_credentials);
cri_test!(images::pull_errors_name_the_image_and_change_nothing);
cri_test!(
    images::pull_with_credentials_from_registries_file,
    skip_containerd = "credentials in registries.yaml are oxkube's (k3s) config format"
);
cri_test!(
    images::pull_while_import_runs_from_cli,
    skip_containerd = "imports through oxkube's own store API"
);

cri_test!(sandboxes::lifecycle_status_list_filters);
cri_test!(sandboxes::duplicate_name_is_refused);
cri_test!(sandboxes::namespaces_hostname_and_pod_to_pod_traffic);
cri_test!(sandboxes::host_network_sandbox_has_no_pod_ip);
cri_test!(sandboxes::many_sandboxes_leave_nothing_behind);
cri_test!(sandboxes::bad_cni_config_fails_cleanly);
cri_test!(
    sandboxes::sandboxes_survive_runtime_restart,
    skip_containerd = "restarts oxkube's in-process runtime"
);

cri_test!(containers::runs_to_completion_with_exit_code_and_logs);
cri_test!(containers::env_user_workdir_mounts_and_pod_files);
cri_test!(containers::stop_kills_after_timeout);
cri_test!(containers::bad_command_and_missing_image_fail_cleanly);
cri_test!(
    containers::containers_survive_runtime_restart,
    skip_containerd = "restarts oxkube's in-process runtime"
);
cri_test!(containers::many_pods_with_containers_leave_nothing_behind);

/// Figures, not assertions: `cargo test -p runtime --test cri bench -- --ignored --nocapture`.
mod bench_pod_start {
    use crate::harness::{Kind, Target};
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn oxkube() {
        crate::containers::bench_pod_start(Target::start(Kind::Oxkube).await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn containerd() {
        crate::containers::bench_pod_start(Target::start(Kind::Containerd).await).await;
    }
}
/// Figures: `cargo test -p runtime --test cri bench_more -- --ignored --nocapture`, or all of
/// them side by side with `cargo bench -p runtime --bench runtime`.
mod bench_more {
    use crate::harness::{Kind, Target};
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn exit_event_oxkube() {
        crate::bench::bench_exit_event(Target::start(Kind::Oxkube).await).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn concurrent_pods_oxkube() {
        crate::bench::bench_concurrent_pods(Target::start(Kind::Oxkube).await).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn concurrent_pods_containerd() {
        crate::bench::bench_concurrent_pods(Target::start(Kind::Containerd).await).await
    }
}
cri_test!(
    containers::lifecycle_events_are_streamed,
    skip_containerd = "containerd 1.6 does not implement GetContainerEvents (added in 1.7)"
);
cri_test!(containers::exec_sync_runs_in_the_container);
cri_test!(containers::stats_and_resource_updates);
cri_test!(containers::oom_killed_is_reported);

cri_test!(streaming::exec_over_websocket_v4);
cri_test!(
    streaming::exec_over_websocket_v5,
    skip_containerd =
        "containerd 1.6's streaming server predates v5.channel.k8s.io (Kubernetes 1.29)"
);
cri_test!(streaming::exec_with_tty);
cri_test!(
    streaming::exec_ends_when_the_client_goes_away,
    skip_containerd =
        "containerd 1.6 leaves the exec'd process running after its client disconnects"
);
cri_test!(streaming::exec_over_spdy);
cri_test!(streaming::stream_requests_are_validated);
cri_test!(streaming::attach_streams_stdio);
cri_test!(streaming::attach_to_tty);
cri_test!(streaming::port_forward_over_spdy);
cri_test!(streaming::port_forward_over_websocket);
cri_test!(
    streaming::port_forward_over_tunnelled_spdy,
    skip_containerd = "upstream terminates the SPDY-over-WebSocket tunnel in the API server; containerd only speaks plain SPDY"
);

cri_test!(kubectl::kubectl_exec_websocket_and_spdy);
cri_test!(kubectl::kubectl_port_forward_tunnel_and_spdy);
cri_test!(kubectl::kubectl_attach_stdin_once);
cri_test!(kubectl::kubectl_exec_tty);
cri_test!(
    kubectl::kube_rs_exec_attach_and_portforward,
    skip_containerd = "containerd 1.6 lacks v5.channel.k8s.io, and over v4 kube-rs closes the connection at stdin EOF, losing the rest of the output"
);

/// Figures: `cargo test -p runtime --test cri bench_streaming -- --ignored --nocapture`.
mod bench_streaming {
    use crate::harness::{Kind, Target};
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn oxkube() {
        crate::streaming::bench_streaming(Target::start(Kind::Oxkube).await).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark"]
    async fn containerd() {
        crate::streaming::bench_streaming(Target::start(Kind::Containerd).await).await
    }
}

cri_test!(security::seccomp_profiles);
cri_test!(security::seccomp_applies_to_exec);
cri_test!(security::pid_namespace_modes);
cri_test!(security::devices_are_mapped_and_others_denied);
cri_test!(pod_stats::pod_sandbox_stats);
