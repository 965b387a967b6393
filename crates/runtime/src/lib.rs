//! The embedded CRI v1 container runtime of an oxkube node: image store and registry pulls
//! (ImageService) and the RuntimeService, served on a unix socket.
//!
//! Paths under the data dir:
//! - `<data-dir>/run/cri.sock`: the CRI socket;
//! - `<data-dir>/agent/images/`: the image store (see [`images::store`]);
//! - `<data-dir>/images/`: drop dir, `*.tar`/`*.tar.gz` archives here are imported at start;
//! - `<data-dir>/registries.yaml`: registry mirrors and credentials (k3s format).

pub mod cni;
pub mod images;
pub mod runtime_service;
#[cfg(feature = "testing")]
pub mod testimage;

use std::future::Future;
use std::path::PathBuf;

/// Runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Defaults to `<data-dir>/run/cri.sock`.
    pub socket: Option<PathBuf>,
    /// Defaults to `<data-dir>/registries.yaml`.
    pub registries_file: Option<PathBuf>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            socket: None,
            registries_file: None,
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("run").join("cri.sock"))
    }

    pub fn registries_path(&self) -> PathBuf {
        self.registries_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(images::registry::REGISTRIES_FILE))
    }
}

/// Errors starting or running the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Images(#[from] images::ImageError),
    #[error(transparent)]
    Cri(#[from] cri::Error),
    #[error("runtime task failed: {0}")]
    Task(String),
}

/// Runs the runtime: imports the drop dir, then serves CRI on the socket until `shutdown`.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || -> Result<_, images::ImageError> {
        let store = images::ImageStore::open(&data_dir)?;
        let imported = images::import_drop_dir(&data_dir)?;
        if !imported.is_empty() {
            tracing::info!(count = imported.len(), "imported images from the drop dir");
        }
        Ok(store)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    let socket = config.socket_path();
    let listener = cri::bind(&socket)?;
    tracing::info!(socket = %socket.display(), "cri runtime listening");
    let image_service = images::service::ImageService::new(store, config.registries_path());
    let runtime_service = runtime_service::RuntimeService::new(config.clone());
    cri::serve(listener, runtime_service, image_service, shutdown).await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
