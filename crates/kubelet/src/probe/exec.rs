//! Running a command in a container through CRI `ExecSync`, behind a trait so probe and hook
//! logic can be tested without a runtime.

use std::time::Duration;

use async_trait::async_trait;

/// What a finished command returned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i32,
    /// stdout followed by stderr (upstream concatenates them the same way).
    pub output: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a command did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The timeout passed (upstream `command "..." timed out`).
    #[error("command {command:?} timed out")]
    Timeout { command: String },
    /// The runtime refused or failed the call.
    #[error("{0}")]
    Runtime(String),
}

/// `ExecSync` in a container. `timeout` zero means none.
#[async_trait]
pub trait ContainerExec: Send + Sync {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError>;
}

/// [`ContainerExec`] over a CRI runtime client.
#[derive(Clone)]
pub struct CriExec {
    client: cri::RuntimeServiceClient<tonic::transport::Channel>,
}

impl CriExec {
    pub fn new(client: cri::RuntimeServiceClient<tonic::transport::Channel>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ContainerExec for CriExec {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let command = cmd.join(" ");
        let mut client = self.client.clone();
        let request = cri::v1::ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd: cmd.to_vec(),
            timeout: timeout.as_secs() as i64,
        };
        let call = client.exec_sync(request);
        let response = if timeout.is_zero() {
            call.await
        } else {
            // the runtime enforces the timeout; give the call a little slack on top, as upstream
            match tokio::time::timeout(timeout + Duration::from_secs(2), call).await {
                Ok(r) => r,
                Err(_) => return Err(ExecError::Timeout { command }),
            }
        };
        match response {
            Ok(r) => {
                let r = r.into_inner();
                let mut output = r.stdout;
                output.extend_from_slice(&r.stderr);
                Ok(ExecOutput {
                    exit_code: r.exit_code,
                    output,
                    stderr: r.stderr,
                })
            }
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
                Err(ExecError::Timeout { command })
            }
            Err(status) => Err(ExecError::Runtime(status.message().to_string())),
        }
    }
}
