//! CRI v1 (`runtime.v1`) protobuf types plus the gRPC glue to serve and dial them over unix sockets.
//!
//! The generated types come from the published `k8s-cri` crate (tonic 0.14 / prost 0.14, generated
//! from the upstream `cri-api` `api.proto`). This crate is the one place the rest of oxkube gets them
//! from, so the kubelet and the runtime always agree on the wire format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI v1 API (`runtime.v1`): messages, clients and server traits.
pub mod v1 {
    pub use k8s_cri::v1::*;
}

pub use v1::image_service_client::ImageServiceClient;
pub use v1::image_service_server::{ImageService, ImageServiceServer};
pub use v1::runtime_service_client::RuntimeServiceClient;
pub use v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};

/// The CRI API version string runtimes report in `VersionResponse.runtime_api_version`.
pub const API_VERSION: &str = "v1";

/// Largest gRPC message accepted or sent (the kubelet uses 16 MiB too).
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Errors of the CRI transport glue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot prepare socket directory {path}: {source}")]
    SocketDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot bind cri socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to cri socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("grpc server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Dials a CRI endpoint on a unix socket (`/run/x.sock` or `unix:///run/x.sock`).
pub async fn connect(socket: impl AsRef<Path>) -> Result<Channel, Error> {
    let path = strip_unix_scheme(socket.as_ref());
    let dial = path.clone();
    // The URI is required by tonic but ignored by the connector.
    Endpoint::from_static("http://cri.sock")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let dial = dial.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(dial).await?)) }
        }))
        .await
        .map_err(|source| Error::Connect { path, source })
}

/// A RuntimeService and an ImageService client sharing one connection.
pub async fn clients(
    socket: impl AsRef<Path>,
) -> Result<(RuntimeServiceClient<Channel>, ImageServiceClient<Channel>), Error> {
    let channel = connect(socket).await?;
    Ok((
        RuntimeServiceClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE),
        ImageServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE),
    ))
}

/// Binds `socket` (replacing a stale socket file, creating the parent directory with mode 0700
/// semantics left to the caller) and returns the listener.
pub fn bind(socket: impl AsRef<Path>) -> Result<UnixListener, Error> {
    let path = strip_unix_scheme(socket.as_ref());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::SocketDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::Bind { path, source }),
    }
    UnixListener::bind(&path).map_err(|source| Error::Bind { path, source })
}

/// Serves a RuntimeService and an ImageService on `listener` until `shutdown` resolves.
pub async fn serve<R, I, F>(
    listener: UnixListener,
    runtime: R,
    images: I,
    shutdown: F,
) -> Result<(), Error>
where
    R: RuntimeService,
    I: ImageService,
    F: std::future::Future<Output = ()> + Send,
{
    tonic::transport::Server::builder()
        .add_service(
            RuntimeServiceServer::new(runtime)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(
            ImageServiceServer::new(images)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

fn strip_unix_scheme(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    match s.strip_prefix("unix://") {
        Some(rest) => PathBuf::from(rest),
        None => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_scheme_is_stripped() {
        let cases = [
            ("/run/x.sock", "/run/x.sock"),
            (
                "unix:///run/containerd/containerd.sock",
                "/run/containerd/containerd.sock",
            ),
            ("rel/cri.sock", "rel/cri.sock"),
        ];
        for (input, want) in cases {
            assert_eq!(
                strip_unix_scheme(Path::new(input)),
                PathBuf::from(want),
                "{input}"
            );
        }
    }
}
