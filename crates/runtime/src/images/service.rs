//! The CRI v1 ImageService over the node's image store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use cri::v1 as pb;
use tonic::{Request, Response, Status};

use super::registry::{self, Credentials, RegistriesConfig};
use super::{ImageError, ImageRecord, ImageStore};

/// Serves the CRI ImageService from an [`ImageStore`].
#[derive(Debug, Clone)]
pub struct ImageService {
    store: ImageStore,
    registries_file: PathBuf,
}

impl ImageService {
    /// `registries_file` is re-read on every pull, so edits apply without a restart.
    pub fn new(store: ImageStore, registries_file: PathBuf) -> Self {
        ImageService {
            store,
            registries_file,
        }
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(ImageStore) -> Result<T, ImageError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| Status::internal(format!("image store task failed: {e}")))?
            .map_err(to_status)
    }
}

/// Maps image errors to the gRPC codes CRI clients expect.
pub fn to_status(e: ImageError) -> Status {
    let msg = e.to_string();
    match e {
        ImageError::NotFound(_) => Status::not_found(msg),
        ImageError::InvalidReference(_) | ImageError::Unsupported(_) => {
            Status::invalid_argument(msg)
        }
        ImageError::Io { .. } => Status::internal(msg),
        _ => Status::unknown(msg),
    }
}

/// The user an image runs as: a numeric uid or a user name (the part before any `:group`).
pub fn image_user(user: &str) -> (Option<i64>, String) {
    let name = user.split(':').next().unwrap_or("");
    if name.is_empty() {
        return (None, String::new());
    }
    match name.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, name.to_string()),
    }
}

/// The CRI view of an image record.
pub fn to_cri_image(r: &ImageRecord) -> pb::Image {
    let (uid, username) = image_user(&r.config.user);
    pb::Image {
        id: r.id.clone(),
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
        uid: uid.map(|value| pb::Int64Value { value }),
        username,
        spec: Some(pb::ImageSpec {
            image: r.id.clone(),
            ..Default::default()
        }),
        pinned: r.pinned,
    }
}

fn image_name(spec: Option<&pb::ImageSpec>) -> Result<String, Status> {
    match spec.map(|s| s.image.trim()) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(Status::invalid_argument(
            "image spec with an image name is required",
        )),
    }
}

#[tonic::async_trait]
impl cri::ImageService for ImageService {
    async fn list_images(
        &self,
        req: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        let filter = req
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.is_empty());
        let images = self
            .blocking(move |store| match filter {
                Some(f) => match store.resolve(&f) {
                    Ok(found) => Ok(found.into_iter().collect()),
                    // An invalid filter matches nothing, as in containerd.
                    Err(ImageError::InvalidReference(_)) => Ok(vec![]),
                    Err(e) => Err(e),
                },
                None => store.list(),
            })
            .await?;
        Ok(Response::new(pb::ListImagesResponse {
            images: images.iter().map(to_cri_image).collect(),
        }))
    }

    async fn image_status(
        &self,
        req: Request<pb::ImageStatusRequest>,
    ) -> Result<Response<pb::ImageStatusResponse>, Status> {
        let req = req.into_inner();
        let name = image_name(req.image.as_ref())?;
        let found = self.blocking(move |store| store.resolve(&name)).await?;
        let Some(rec) = found else {
            // CRI: a missing image is not an error, the image field is just empty.
            return Ok(Response::new(pb::ImageStatusResponse::default()));
        };
        let mut info = HashMap::new();
        if req.verbose {
            let v = serde_json::json!({
                "chainID": rec.layers.last().map(|l| l.chain_id.clone()).unwrap_or_default(),
                "manifestDigest": rec.manifest_digest,
                "config": rec.config,
                "layers": rec.layers,
            });
            info.insert("info".to_string(), v.to_string());
        }
        Ok(Response::new(pb::ImageStatusResponse {
            image: Some(to_cri_image(&rec)),
            info,
        }))
    }

    async fn pull_image(
        &self,
        req: Request<pb::PullImageRequest>,
    ) -> Result<Response<pb::PullImageResponse>, Status> {
        let req = req.into_inner();
        let name = image_name(req.image.as_ref())?;
        let creds = req.auth.map(|a| Credentials {
            username: a.username,
            password: a.password,
            auth: a.auth,
            identity_token: a.identity_token,
            registry_token: a.registry_token,
        });
        let path = self.registries_file.clone();
        let registries = tokio::task::spawn_blocking(move || RegistriesConfig::load(&path))
            .await
            .map_err(|e| Status::internal(format!("registries config task failed: {e}")))?
            .map_err(to_status)?;
        tracing::info!(image = %name, "pulling image");
        let rec = registry::pull(&self.store, &registries, &name, creds.as_ref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PullImageResponse { image_ref: rec.id }))
    }

    async fn remove_image(
        &self,
        req: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let name = image_name(req.into_inner().image.as_ref())?;
        let removed = self
            .blocking(move |store| match store.remove(&name) {
                Err(ImageError::InvalidReference(_)) => Ok(None),
                other => other,
            })
            .await?;
        if let Some(r) = removed {
            tracing::info!(id = %r.id, tags = ?r.repo_tags, "image removed");
        }
        Ok(Response::new(pb::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _req: Request<pb::ImageFsInfoRequest>,
    ) -> Result<Response<pb::ImageFsInfoResponse>, Status> {
        let usage = self.blocking(|store| store.usage()).await?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let fs = pb::FilesystemUsage {
            timestamp,
            fs_id: Some(pb::FilesystemIdentifier {
                mountpoint: self.store.snapshots_dir().display().to_string(),
            }),
            used_bytes: Some(pb::UInt64Value { value: usage.bytes }),
            inodes_used: Some(pb::UInt64Value {
                value: usage.inodes,
            }),
        };
        Ok(Response::new(pb::ImageFsInfoResponse {
            image_filesystems: vec![fs.clone()],
            container_filesystems: vec![fs],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_user_table() {
        let cases = [
            ("", (None, "")),
            ("1000", (Some(1000), "")),
            ("1000:1000", (Some(1000), "")),
            ("nobody", (None, "nobody")),
            ("www-data:www-data", (None, "www-data")),
            ("0", (Some(0), "")),
        ];
        for (input, (uid, name)) in cases {
            assert_eq!(image_user(input), (uid, name.to_string()), "{input}");
        }
    }

    #[test]
    fn errors_map_to_grpc_codes() {
        use tonic::Code;
        let cases = [
            (ImageError::NotFound("x".into()), Code::NotFound),
            (
                ImageError::InvalidReference(super::super::ReferenceError::Empty),
                Code::InvalidArgument,
            ),
            (
                ImageError::DigestMismatch {
                    what: "a".into(),
                    expected: "b".into(),
                    actual: "c".into(),
                },
                Code::Unknown,
            ),
        ];
        for (e, code) in cases {
            let msg = e.to_string();
            let s = to_status(e);
            assert_eq!(s.code(), code);
            assert_eq!(s.message(), msg);
        }
    }
}
