//! Kill -9 of the runtime process while containers run: after a restart every container is still
//! running and is managed (oxkube only: it needs our runtime as its own process).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cri::v1 as pb;
use runtime::testimage::{self, TestImage};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &Path, bridge: &str, cidr: &str) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_oxkube-cri"))
        .arg("--data-dir")
        .arg(data)
        .args(["--bridge", bridge, "--pod-cidr", cidr])
        .arg("--shim")
        .arg(env!("CARGO_BIN_EXE_oxkube-shim"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start oxkube-cri");
    let sock = data.join("run/cri.sock");
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "cri socket never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child)
}

fn shim_alive(id: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("oxkube-shim") && c.contains(&id[..32])
            })
            .unwrap_or(false)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_survive_kill_9_of_the_runtime() {
    let dir = tempfile::Builder::new()
        .prefix("cri-kill-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    let bridge = format!("oxkk{}", std::process::id() % 10000);
    let cidr = format!("10.249.{}.0/24", std::process::id() % 250);
    let built = TestImage::busybox("docker.io/library/busybox:kill")
        .unwrap()
        .build();
    let archive = dir.path().join("img.tar");
    testimage::write_oci_archive(&archive, &[&built]).unwrap();
    runtime::images::import(&data, &[archive]).unwrap();

    let mut server = start_server(&data, &bridge, &cidr);
    let (mut rt, _img) = cri::clients(data.join("run/cri.sock")).await.unwrap();
    let sandbox_config = pb::PodSandboxConfig {
        metadata: Some(pb::PodSandboxMetadata {
            name: "survivor".into(),
            uid: "uid-survivor".into(),
            namespace: "cri-suite".into(),
            attempt: 0,
        }),
        log_directory: dir.path().join("logs").display().to_string(),
        linux: Some(Default::default()),
        ..Default::default()
    };
    let sb = crate::containers::run_pod_sandbox(&mut rt, sandbox_config.clone()).await;
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let id = rt
            .create_container(pb::CreateContainerRequest {
                pod_sandbox_id: sb.clone(),
                config: Some(pb::ContainerConfig {
                    metadata: Some(pb::ContainerMetadata {
                        name: name.into(),
                        attempt: 0,
                    }),
                    image: Some(pb::ImageSpec {
                        image: "busybox:kill".into(),
                        ..Default::default()
                    }),
                    command: vec!["sleep".into(), "1000".into()],
                    log_path: format!("{name}.log"),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
            .expect("CreateContainer")
            .into_inner()
            .container_id;
        rt.start_container(pb::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("StartContainer");
        ids.push(id);
    }

    // SIGKILL the runtime: the shims live in their own sessions and keep the containers.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    drop(rt);
    for id in &ids {
        assert!(shim_alive(id), "shim of {id} died with the runtime");
    }
    let _server = {
        drop(server);
        start_server(&data, &bridge, &cidr)
    };
    let (mut rt, _img) = cri::clients(data.join("run/cri.sock")).await.unwrap();
    for id in &ids {
        let s = rt
            .container_status(pb::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await
            .expect("rediscovered container")
            .into_inner()
            .status
            .unwrap();
        assert_eq!(s.state, pb::ContainerState::ContainerRunning as i32);
    }
    // still managed: stop one, remove the pod
    rt.stop_container(pb::StopContainerRequest {
        container_id: ids[0].clone(),
        timeout: 0,
    })
    .await
    .expect("StopContainer after restart");
    let s = rt
        .container_status(pb::ContainerStatusRequest {
            container_id: ids[0].clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(s.state, pb::ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 137);
    rt.stop_pod_sandbox(pb::StopPodSandboxRequest {
        pod_sandbox_id: sb.clone(),
    })
    .await
    .unwrap();
    rt.remove_pod_sandbox(pb::RemovePodSandboxRequest {
        pod_sandbox_id: sb.clone(),
    })
    .await
    .unwrap();
    for id in &ids {
        assert!(!shim_alive(id), "shim of {id} left behind");
    }
    assert!(crate::harness::mounts_under(&data).is_empty());
    let _ = Command::new("ip").args(["link", "del", &bridge]).status();
}
