//! Test images built at test time from Debian's busybox-static (`/bin/busybox`): an OCI layout
//! directory, an OCI archive or a docker-save tarball, with optional extra layers (files,
//! whiteouts, opaque dirs). Nothing binary is committed; output is deterministic (mtime 0), so
//! building the same image twice gives the same digests. Enabled by the `testing` feature.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

/// Where the busybox binary is taken from.
pub const BUSYBOX: &str = "/bin/busybox";

/// One entry of a test layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir(String, u32),
    File(String, Vec<u8>, u32),
    Symlink(String, String),
    /// `.wh.<name>` deleting `path` from lower layers.
    Whiteout(String),
    /// `.wh..wh..opq` in `dir`, hiding everything lower layers had in it.
    Opaque(String),
}

/// A layer: entries in order.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub entries: Vec<Entry>,
}

impl Layer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn dir(mut self, path: &str) -> Self {
        self.entries.push(Entry::Dir(path.into(), 0o755));
        self
    }
    pub fn file(mut self, path: &str, content: &[u8]) -> Self {
        self.entries
            .push(Entry::File(path.into(), content.to_vec(), 0o644));
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries
            .push(Entry::Symlink(path.into(), target.into()));
        self
    }
    pub fn whiteout(mut self, path: &str) -> Self {
        self.entries.push(Entry::Whiteout(path.into()));
        self
    }
    pub fn opaque(mut self, dir: &str) -> Self {
        self.entries.push(Entry::Opaque(dir.into()));
        self
    }

    /// The busybox root filesystem: bin/busybox, a symlink per applet, etc/passwd and etc/group.
    pub fn busybox_rootfs() -> std::io::Result<Self> {
        let bin = std::fs::read(BUSYBOX).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{BUSYBOX}: {e} (apt-get install -y busybox-static)"),
            )
        })?;
        let out = Command::new(BUSYBOX).arg("--list").output()?;
        let mut applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox")
            .map(str::to_string)
            .collect();
        applets.sort();
        applets.dedup();
        let mut l = Layer::new();
        for d in ["bin", "dev", "etc", "proc", "sys", "root", "var"] {
            l = l.dir(d);
        }
        l.entries.push(Entry::Dir("tmp".into(), 0o1777));
        l.entries
            .push(Entry::File("bin/busybox".into(), bin, 0o755));
        for a in applets {
            l = l.symlink(&format!("bin/{a}"), "busybox");
        }
        l = l
            .file(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            )
            .file("etc/group", b"root:x:0:\nnogroup:x:65534:\n");
        Ok(l)
    }

    /// The layer as an uncompressed tar.
    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            let (path, data): (String, Vec<u8>) = match e {
                Entry::Dir(p, mode) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    (format!("{}/", p.trim_end_matches('/')), vec![])
                }
                Entry::File(p, content, mode) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    (p.clone(), content.clone())
                }
                Entry::Symlink(p, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_link_name(target).expect("link name fits");
                    (p.clone(), vec![])
                }
                Entry::Whiteout(p) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    let path = Path::new(p);
                    let name = path.file_name().expect("whiteout names a file");
                    let parent = path.parent().unwrap_or(Path::new(""));
                    let wh = parent.join(format!(".wh.{}", name.to_string_lossy()));
                    (wh.to_string_lossy().into_owned(), vec![])
                }
                Entry::Opaque(dir) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    (
                        format!("{}/.wh..wh..opq", dir.trim_end_matches('/')),
                        vec![],
                    )
                }
            };
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, &path, &data[..])
                .expect("append to in-memory tar");
        }
        b.into_inner().expect("finish in-memory tar")
    }
}

/// What a test image looks like.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// Full name, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    pub layers: Vec<Layer>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: BTreeMap<String, String>,
}

/// A blob of a built image.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub data: Vec<u8>,
}

fn blob(media_type: &str, data: Vec<u8>) -> Blob {
    Blob {
        media_type: media_type.to_string(),
        digest: format!("sha256:{}", hex::encode(Sha256::digest(&data))),
        data,
    }
}

/// A built image: all blobs plus the digests tests check against.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub manifest: Blob,
    pub config: Blob,
    /// Compressed (OCI) layer blobs.
    pub layers: Vec<Blob>,
    /// Uncompressed layer tars (docker-save layers; their digests are the diff IDs).
    pub layer_tars: Vec<Blob>,
}

impl Built {
    /// The image ID (config digest).
    pub fn id(&self) -> &str {
        &self.config.digest
    }
    pub fn diff_ids(&self) -> Vec<String> {
        self.layer_tars.iter().map(|b| b.digest.clone()).collect()
    }
}

impl TestImage {
    /// busybox with `sh` as command, named `name`.
    pub fn busybox(name: &str) -> std::io::Result<Self> {
        Ok(TestImage {
            name: name.to_string(),
            layers: vec![Layer::busybox_rootfs()?],
            entrypoint: vec![],
            cmd: vec!["sh".into()],
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            working_dir: "/".into(),
            user: String::new(),
            labels: BTreeMap::new(),
        })
    }

    pub fn with_layer(mut self, l: Layer) -> Self {
        self.layers.push(l);
        self
    }

    /// Builds the blobs: gzip layers, OCI config and manifest.
    pub fn build(&self) -> Built {
        let layer_tars: Vec<Blob> = self
            .layers
            .iter()
            .map(|l| blob("application/vnd.oci.image.layer.v1.tar", l.tar()))
            .collect();
        let layers: Vec<Blob> = layer_tars
            .iter()
            .map(|t| {
                let mut gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .write(Vec::new(), flate2::Compression::fast());
                gz.write_all(&t.data).expect("gzip in memory");
                blob(
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    gz.finish().expect("gzip in memory"),
                )
            })
            .collect();
        let config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": crate::images::host_arch(),
            "os": "linux",
            "config": {
                "Entrypoint": if self.entrypoint.is_empty() { serde_json::Value::Null } else { json!(self.entrypoint) },
                "Cmd": self.cmd,
                "Env": self.env,
                "WorkingDir": self.working_dir,
                "User": self.user,
                "Labels": self.labels,
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layer_tars.iter().map(|b| b.digest.clone()).collect::<Vec<_>>(),
            },
            "history": [],
        });
        let config = blob(
            "application/vnd.oci.image.config.v1+json",
            serde_json::to_vec(&config).expect("config serialises"),
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.data.len()},
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.data.len()})).collect::<Vec<_>>(),
        });
        let manifest = blob(
            "application/vnd.oci.image.manifest.v1+json",
            serde_json::to_vec(&manifest).expect("manifest serialises"),
        );
        Built {
            name: self.name.clone(),
            manifest,
            config,
            layers,
            layer_tars,
        }
    }
}

/// Archive entries `(path, bytes)` of an OCI image layout holding `images`.
pub fn oci_layout_files(images: &[&Built]) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    let mut seen = std::collections::BTreeSet::new();
    let mut manifests = Vec::new();
    for b in images {
        for bl in std::iter::once(&b.manifest)
            .chain(std::iter::once(&b.config))
            .chain(b.layers.iter())
        {
            if seen.insert(bl.digest.clone()) {
                files.push((format!("blobs/sha256/{}", &bl.digest[7..]), bl.data.clone()));
            }
        }
        let tag = b.name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        manifests.push(json!({
            "mediaType": b.manifest.media_type,
            "digest": b.manifest.digest,
            "size": b.manifest.data.len(),
            "annotations": {
                "io.containerd.image.name": b.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    files.push((
        "index.json".to_string(),
        serde_json::to_vec(&index).expect("index serialises"),
    ));
    files
}

/// Archive entries of a docker-save tarball (`manifest.json`, `<id>.json`, `<n>/layer.tar`).
pub fn docker_save_files(images: &[&Built]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut manifest = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for b in images {
        let cfg = format!("{}.json", &b.config.digest[7..]);
        if seen.insert(cfg.clone()) {
            files.push((cfg.clone(), b.config.data.clone()));
        }
        let mut layers = Vec::new();
        for t in &b.layer_tars {
            let p = format!("{}/layer.tar", &t.digest[7..]);
            if seen.insert(p.clone()) {
                files.push((format!("{}/VERSION", &t.digest[7..]), b"1.0".to_vec()));
                files.push((p.clone(), t.data.clone()));
            }
            layers.push(p);
        }
        manifest.push(json!({"Config": cfg, "RepoTags": [b.name], "Layers": layers}));
    }
    files.push((
        "manifest.json".to_string(),
        serde_json::to_vec(&manifest).expect("manifest serialises"),
    ));
    files
}

/// Writes `files` as a tar at `path`.
pub fn write_tar(path: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let f = std::fs::File::create(path)?;
    let mut b = tar::Builder::new(f);
    for (p, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, p, &data[..])?;
    }
    b.into_inner()?.sync_all()
}

/// Writes `files` into directory `dir`.
pub fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    for (p, data) in files {
        let full = dir.join(p);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(full, data)?;
    }
    Ok(())
}

/// An OCI archive (tar of an OCI layout) of `images` at `path`.
pub fn write_oci_archive(path: &Path, images: &[&Built]) -> std::io::Result<PathBuf> {
    write_tar(path, &oci_layout_files(images))?;
    Ok(path.to_path_buf())
}

/// A docker-save tarball of `images` at `path`.
pub fn write_docker_archive(path: &Path, images: &[&Built]) -> std::io::Result<PathBuf> {
    write_tar(path, &docker_save_files(images))?;
    Ok(path.to_path_buf())
}

/// Pushes a built image (its exact manifest bytes, so digests match [`Built`]) to a registry with
/// oci-client; plain HTTP when `plain_http`. Returns the manifest digest.
pub async fn push(
    registry: &str,
    repository: &str,
    tag: &str,
    built: &Built,
    plain_http: bool,
    auth: &oci_client::secrets::RegistryAuth,
) -> Result<String, oci_client::errors::OciDistributionError> {
    use oci_client::client::{ClientConfig, ClientProtocol};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::new(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    });
    let reference = oci_client::Reference::with_tag(registry.into(), repository.into(), tag.into());
    client
        .auth(&reference, auth, oci_client::RegistryOperation::Push)
        .await?;
    for b in built.layers.iter().chain(std::iter::once(&built.config)) {
        client
            .push_blob(&reference, b.data.clone(), &b.digest)
            .await?;
    }
    client
        .push_manifest_raw(
            &reference,
            built.manifest.data.clone(),
            http::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
        )
        .await?;
    Ok(built.manifest.digest.clone())
}
