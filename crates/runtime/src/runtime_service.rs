//! The CRI v1 RuntimeService. Version and Status are served; pod sandboxes and containers are not
//! built yet and answer `Unimplemented` with a message saying so (no call pretends to succeed).

use cri::v1 as pb;
use tonic::{Request, Response, Status};

use crate::Config;

/// Name reported in `VersionResponse.runtime_name`.
pub const RUNTIME_NAME: &str = "oxkube";

/// Serves the CRI RuntimeService.
#[derive(Debug, Clone)]
pub struct RuntimeService {
    #[allow(dead_code)]
    config: Config,
}

impl RuntimeService {
    pub fn new(config: Config) -> Self {
        RuntimeService { config }
    }
}

fn not_yet(call: &str) -> Status {
    Status::unimplemented(format!(
        "{call} is not implemented by the oxkube runtime yet"
    ))
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl cri::RuntimeService for RuntimeService {
    async fn version(&self, _req: Request<pb::VersionRequest>) -> Res<pb::VersionResponse> {
        Ok(Response::new(pb::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: cri::API_VERSION.into(),
        }))
    }

    async fn status(&self, _req: Request<pb::StatusRequest>) -> Res<pb::StatusResponse> {
        // Containers and networking are not implemented yet, so neither condition is true.
        let conditions = vec![
            pb::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: false,
                reason: "ContainersNotImplemented".into(),
                message: "the oxkube runtime serves images only so far".into(),
            },
            pb::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: "pod networking is not implemented yet".into(),
            },
        ];
        Ok(Response::new(pb::StatusResponse {
            status: Some(pb::RuntimeStatus { conditions }),
            ..Default::default()
        }))
    }

    async fn run_pod_sandbox(
        &self,
        _r: Request<pb::RunPodSandboxRequest>,
    ) -> Res<pb::RunPodSandboxResponse> {
        Err(not_yet("RunPodSandbox"))
    }
    async fn stop_pod_sandbox(
        &self,
        _r: Request<pb::StopPodSandboxRequest>,
    ) -> Res<pb::StopPodSandboxResponse> {
        Err(not_yet("StopPodSandbox"))
    }
    async fn remove_pod_sandbox(
        &self,
        _r: Request<pb::RemovePodSandboxRequest>,
    ) -> Res<pb::RemovePodSandboxResponse> {
        Err(not_yet("RemovePodSandbox"))
    }
    async fn pod_sandbox_status(
        &self,
        _r: Request<pb::PodSandboxStatusRequest>,
    ) -> Res<pb::PodSandboxStatusResponse> {
        Err(not_yet("PodSandboxStatus"))
    }
    async fn list_pod_sandbox(
        &self,
        _r: Request<pb::ListPodSandboxRequest>,
    ) -> Res<pb::ListPodSandboxResponse> {
        Err(not_yet("ListPodSandbox"))
    }
    async fn create_container(
        &self,
        _r: Request<pb::CreateContainerRequest>,
    ) -> Res<pb::CreateContainerResponse> {
        Err(not_yet("CreateContainer"))
    }
    async fn start_container(
        &self,
        _r: Request<pb::StartContainerRequest>,
    ) -> Res<pb::StartContainerResponse> {
        Err(not_yet("StartContainer"))
    }
    async fn stop_container(
        &self,
        _r: Request<pb::StopContainerRequest>,
    ) -> Res<pb::StopContainerResponse> {
        Err(not_yet("StopContainer"))
    }
    async fn remove_container(
        &self,
        _r: Request<pb::RemoveContainerRequest>,
    ) -> Res<pb::RemoveContainerResponse> {
        Err(not_yet("RemoveContainer"))
    }
    async fn list_containers(
        &self,
        _r: Request<pb::ListContainersRequest>,
    ) -> Res<pb::ListContainersResponse> {
        Err(not_yet("ListContainers"))
    }
    async fn container_status(
        &self,
        _r: Request<pb::ContainerStatusRequest>,
    ) -> Res<pb::ContainerStatusResponse> {
        Err(not_yet("ContainerStatus"))
    }
    async fn update_container_resources(
        &self,
        _r: Request<pb::UpdateContainerResourcesRequest>,
    ) -> Res<pb::UpdateContainerResourcesResponse> {
        Err(not_yet("UpdateContainerResources"))
    }
    async fn reopen_container_log(
        &self,
        _r: Request<pb::ReopenContainerLogRequest>,
    ) -> Res<pb::ReopenContainerLogResponse> {
        Err(not_yet("ReopenContainerLog"))
    }
    async fn exec_sync(&self, _r: Request<pb::ExecSyncRequest>) -> Res<pb::ExecSyncResponse> {
        Err(not_yet("ExecSync"))
    }
    async fn exec(&self, _r: Request<pb::ExecRequest>) -> Res<pb::ExecResponse> {
        Err(not_yet("Exec"))
    }
    async fn attach(&self, _r: Request<pb::AttachRequest>) -> Res<pb::AttachResponse> {
        Err(not_yet("Attach"))
    }
    async fn port_forward(
        &self,
        _r: Request<pb::PortForwardRequest>,
    ) -> Res<pb::PortForwardResponse> {
        Err(not_yet("PortForward"))
    }
    async fn container_stats(
        &self,
        _r: Request<pb::ContainerStatsRequest>,
    ) -> Res<pb::ContainerStatsResponse> {
        Err(not_yet("ContainerStats"))
    }
    async fn list_container_stats(
        &self,
        _r: Request<pb::ListContainerStatsRequest>,
    ) -> Res<pb::ListContainerStatsResponse> {
        Err(not_yet("ListContainerStats"))
    }
    async fn pod_sandbox_stats(
        &self,
        _r: Request<pb::PodSandboxStatsRequest>,
    ) -> Res<pb::PodSandboxStatsResponse> {
        Err(not_yet("PodSandboxStats"))
    }
    async fn list_pod_sandbox_stats(
        &self,
        _r: Request<pb::ListPodSandboxStatsRequest>,
    ) -> Res<pb::ListPodSandboxStatsResponse> {
        Err(not_yet("ListPodSandboxStats"))
    }
    async fn update_runtime_config(
        &self,
        _r: Request<pb::UpdateRuntimeConfigRequest>,
    ) -> Res<pb::UpdateRuntimeConfigResponse> {
        Err(not_yet("UpdateRuntimeConfig"))
    }
    async fn checkpoint_container(
        &self,
        _r: Request<pb::CheckpointContainerRequest>,
    ) -> Res<pb::CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "checkpointing containers is not supported",
        ))
    }
    type GetContainerEventsStream = std::pin::Pin<
        Box<
            dyn futures::Stream<Item = Result<pb::ContainerEventResponse, Status>> + Send + 'static,
        >,
    >;
    async fn get_container_events(
        &self,
        _r: Request<pb::GetEventsRequest>,
    ) -> Res<Self::GetContainerEventsStream> {
        Err(not_yet("GetContainerEvents"))
    }
    async fn list_metric_descriptors(
        &self,
        _r: Request<pb::ListMetricDescriptorsRequest>,
    ) -> Res<pb::ListMetricDescriptorsResponse> {
        Err(not_yet("ListMetricDescriptors"))
    }
    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<pb::ListPodSandboxMetricsRequest>,
    ) -> Res<pb::ListPodSandboxMetricsResponse> {
        Err(not_yet("ListPodSandboxMetrics"))
    }
    async fn runtime_config(
        &self,
        _r: Request<pb::RuntimeConfigRequest>,
    ) -> Res<pb::RuntimeConfigResponse> {
        Err(not_yet("RuntimeConfig"))
    }
}
