//! The node's images: content-addressed store, OCI/docker archive import, registry pulls and the
//! CRI ImageService.

pub mod import;
pub mod reference;
pub mod registry;
pub mod service;
pub mod store;
pub mod unpack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use import::{import, import_drop_dir, import_into};
pub use reference::{Reference, ReferenceError};
pub use store::{ImageConfigSummary, ImageRecord, ImageStore, LayerRecord};

/// Errors of the image side of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {cause}")]
    Io {
        context: String,
        cause: std::io::Error,
    },
    #[error("corrupt image source {source_name}: {reason}")]
    Corrupt { source_name: String, reason: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("layer {digest}: {source}")]
    Layer {
        digest: String,
        source: unpack::UnpackError,
    },
    #[error("pull {reference}: {reason}")]
    Pull { reference: String, reason: String },
    #[error("registries config {path}: {reason}")]
    RegistriesConfig { path: PathBuf, reason: String },
}

/// OCI / docker media types the store understands.
pub mod media {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// An OCI content descriptor (the subset the store uses).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A descriptor's platform.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI or docker schema 2).
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<ContainerConfig>,
    rootfs: Option<RootFs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    stop_signal: Option<String>,
    #[serde(default)]
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The OCI architecture name of this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Picks the manifest for linux/<host arch> from an index.
pub fn select_platform(index: &Index) -> Option<&Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
    })
}

/// True if a media type (or, without one, the JSON itself) is an index / manifest list.
pub fn is_index(media_type: &str, json: &[u8]) -> bool {
    if media_type == media::OCI_INDEX || media_type == media::DOCKER_LIST {
        return true;
    }
    if media_type.is_empty() {
        #[derive(Deserialize)]
        struct Probe {
            manifests: Option<serde_json::Value>,
        }
        return serde_json::from_slice::<Probe>(json)
            .map(|p| p.manifests.is_some())
            .unwrap_or(false);
    }
    false
}

/// What is known about an image once its manifest, config and layer blobs are in the store.
pub(crate) struct StagedImage<'a> {
    pub manifest: &'a Manifest,
    pub manifest_blob: store::BlobRef,
    pub config_bytes: &'a [u8],
    pub layer_blobs: Vec<store::BlobRef>,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub source_name: String,
}

/// Parses the config, unpacks the layers and records the image.
pub(crate) fn finish_image(
    store: &ImageStore,
    lease: &store::IngestLease,
    img: StagedImage<'_>,
) -> Result<ImageRecord, ImageError> {
    let config: ConfigFile =
        serde_json::from_slice(img.config_bytes).map_err(|e| ImageError::Corrupt {
            source_name: img.source_name.clone(),
            reason: format!("image config {}: {e}", img.manifest.config.digest),
        })?;
    let diff_ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if diff_ids.len() != img.manifest.layers.len() {
        return Err(ImageError::Corrupt {
            source_name: img.source_name,
            reason: format!(
                "manifest has {} layers but the config lists {} diff_ids",
                img.manifest.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let inputs: Vec<store::LayerInput> = img
        .manifest
        .layers
        .iter()
        .zip(img.layer_blobs.iter())
        .zip(diff_ids)
        .map(|((d, b), diff_id)| store::LayerInput {
            blob: b.clone(),
            media_type: d.media_type.clone(),
            diff_id,
        })
        .collect();
    let layers = store.unpack_layers(lease, &inputs)?;
    let c = config.config.unwrap_or_default();
    let summary = ImageConfigSummary {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        stop_signal: c.stop_signal.unwrap_or_default(),
        volumes: c.volumes.unwrap_or_default().into_keys().collect(),
        labels: c.labels.unwrap_or_default(),
        os: config.os,
        architecture: config.architecture,
    };
    let size = img.manifest_blob.size
        + img.manifest.config.size
        + layers.iter().map(|l| l.size).sum::<u64>();
    store.record(
        lease,
        ImageRecord {
            id: img.manifest.config.digest.clone(),
            repo_tags: img.repo_tags,
            repo_digests: img.repo_digests,
            manifest_digest: img.manifest_blob.digest,
            layers,
            size,
            config: summary,
            pinned: false,
            created: 0,
        },
    )
}

/// `<data-dir>/images`, the drop dir scanned for archives when the agent starts.
pub fn drop_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("images")
}
