//! The few API reads and writes the volume manager does (configMaps, secrets, PVCs, PVs and
//! TokenRequests), behind a trait; [`KubeVolumeApi`] is the kube-rs implementation.

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret, ServiceAccount,
};
use kube::api::{Api, PostParams};

/// An API call failed; `not_found` tells a missing object apart from other failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The object does not exist (HTTP 404).
    pub not_found: bool,
    /// The message, as the API server's Status (or the transport) gave it.
    pub message: String,
}

impl ApiError {
    /// A failure that is not a NotFound.
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            not_found: false,
            message: message.into(),
        }
    }
}

impl From<kube::Error> for ApiError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => Self {
                not_found: status.code == 404,
                message: status.message.clone(),
            },
            other => Self::other(other.to_string()),
        }
    }
}

/// What the volume manager reads from (and, for tokens, writes to) the API server. `Ok(None)`
/// means the object does not exist.
#[async_trait]
pub trait VolumeApi: Send + Sync {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, ApiError>;
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, ApiError>;
    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, ApiError>;
    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, ApiError>;
    /// POST `serviceaccounts/<name>/token` (the TokenRequest API); returns the filled-in request.
    async fn create_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError>;
}

/// [`VolumeApi`] over a kube-rs client (plain GETs; the kubelet's identity must be allowed to read
/// the objects its pods reference, as the node authorizer allows upstream).
#[derive(Clone)]
pub struct KubeVolumeApi {
    client: kube::Client,
}

impl KubeVolumeApi {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

fn found<T>(r: Result<T, kube::Error>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl VolumeApi for KubeVolumeApi {
    async fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, ApiError> {
        found(
            Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                .get(name)
                .await,
        )
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, ApiError> {
        found(
            Api::<Secret>::namespaced(self.client.clone(), namespace)
                .get(name)
                .await,
        )
    }

    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, ApiError> {
        found(
            Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), namespace)
                .get(name)
                .await,
        )
    }

    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, ApiError> {
        found(
            Api::<PersistentVolume>::all(self.client.clone())
                .get(name)
                .await,
        )
    }

    async fn create_token(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
            .create_subresource::<TokenRequest, TokenRequest>(
                "token",
                service_account,
                &PostParams::default(),
                request,
            )
            .await
            .map_err(ApiError::from)
    }
}
