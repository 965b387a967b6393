//! The node's content-addressed image store.
//!
//! Layout under `<data-dir>/agent/images/` (the drop dir `<data-dir>/images/` is separate):
//! - `blobs/sha256/<hex>`: manifests, configs and layer blobs, each stored once (dedup by digest);
//! - `snapshots/<chain-id hex>/fs`: each layer unpacked once, overlayfs-ready (lower dir);
//!   `snapshots/<hex>/usage.json` records its bytes and inodes;
//! - `images.json`: the image records (tags, digests, layers, config summary), replaced atomically;
//! - `tmp/`: staging for ingests and unpacks, renamed into place when complete;
//! - `leases/<name>`: chain IDs (one a line) of snapshots a container uses, kept by garbage
//!   collection even when no image references them any more;
//! - `ingest.lock` (shared while ingesting, exclusive for garbage collection) and `meta.lock`
//!   (exclusive around read-modify-write of `images.json`). Locks are `flock`s, so the CLI
//!   (`oxkube images import`) and a running agent can use the store at the same time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reference::{as_image_id, Reference};
use super::unpack::{self, UnpackError};
use super::ImageError;

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub digest: String,
    pub size: u64,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub diff_id: String,
    pub chain_id: String,
}

/// The parts of the image config the runtime needs to run containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfigSummary {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub stop_signal: String,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
}

/// An image known to the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest, which is the image ID (`sha256:<hex>`).
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub layers: Vec<LayerRecord>,
    /// Bytes of content (manifest, config, layer blobs).
    pub size: u64,
    pub config: ImageConfigSummary,
    #[serde(default)]
    pub pinned: bool,
    /// Unix seconds when the record was first written.
    pub created: i64,
}

impl ImageRecord {
    /// Chain IDs of the layers, bottom first; their snapshots are the overlayfs lower dirs.
    pub fn chain_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.chain_id.clone()).collect()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Metadata {
    images: BTreeMap<String, ImageRecord>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Usage {
    bytes: u64,
    inodes: u64,
}

/// Disk use of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreUsage {
    pub bytes: u64,
    pub inodes: u64,
}

/// What a layer must be unpacked from.
#[derive(Debug, Clone)]
pub struct LayerInput {
    pub blob: BlobRef,
    pub media_type: String,
    pub diff_id: String,
}

/// A shared ingest lease: while held, garbage collection waits, so blobs and snapshots written
/// but not yet referenced by an image record survive.
pub struct IngestLease {
    _lock: Flock<File>,
}

/// Handle on the store directory; cheap to clone, holds no open files.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io {
        context,
        cause: source,
    }
}

/// `sha256:<hex>` -> `<hex>`, refusing anything else.
fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if super::reference::is_sha256_hex(h) => Ok(h),
        _ => Err(ImageError::Unsupported(format!(
            "digest {digest:?} is not a sha256 digest"
        ))),
    }
}

/// Chain IDs per the OCI image spec: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ImageStore {
    /// The store of `data_dir` (`<data-dir>/agent/images`), creating its directories.
    pub fn open(data_dir: &Path) -> Result<Self, ImageError> {
        Self::open_at(data_dir.join("agent").join("images"))
    }

    /// A store rooted at `root` directly.
    pub fn open_at(root: PathBuf) -> Result<Self, ImageError> {
        for d in ["blobs/sha256", "snapshots", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(format!("create {}", p.display())))?;
        }
        Ok(ImageStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory holding the unpacked snapshots (the image filesystem mountpoint reported to CRI).
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// The unpacked filesystem of the snapshot with this chain ID (an overlayfs lower dir).
    pub fn snapshot_fs(&self, chain_id: &str) -> Result<PathBuf, ImageError> {
        Ok(self
            .root
            .join("snapshots")
            .join(digest_hex(chain_id)?)
            .join("fs"))
    }

    fn lock(&self, name: &str, arg: FlockArg) -> Result<Flock<File>, ImageError> {
        let path = self.root.join(name);
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("open {}", path.display())))?;
        Flock::lock(f, arg).map_err(|(_, e)| ImageError::Io {
            context: format!("lock {}", path.display()),
            cause: e.into(),
        })
    }

    /// Takes a shared ingest lease (blocks while a garbage collection runs).
    pub fn lease(&self) -> Result<IngestLease, ImageError> {
        Ok(IngestLease {
            _lock: self.lock("ingest.lock", FlockArg::LockShared)?,
        })
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        self.root.join("tmp").join(format!(
            "{what}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ))
    }

    /// A fresh staging file for a blob being written by the caller (e.g. a registry download).
    pub fn staging_file(&self) -> PathBuf {
        self.tmp_path("blob")
    }

    /// Stores the content read from `r`; if `expected` is given the content must hash to it.
    pub fn ingest(
        &self,
        _lease: &IngestLease,
        mut r: impl Read,
        expected: Option<&str>,
    ) -> Result<BlobRef, ImageError> {
        if let Some(d) = expected {
            digest_hex(d)?;
        }
        let tmp = self.tmp_path("blob");
        let result = (|| {
            let mut f = File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
                let n = r.read(&mut buf).map_err(io_err("read blob content"))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n])
                    .map_err(io_err(format!("write {}", tmp.display())))?;
                size += n as u64;
            }
            let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
            if let Some(want) = expected {
                if want != digest {
                    return Err(ImageError::DigestMismatch {
                        what: "blob".into(),
                        expected: want.to_string(),
                        actual: digest,
                    });
                }
            }
            self.commit_staged(&tmp, &digest)?;
            Ok(BlobRef { digest, size })
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Stores `bytes` (small blobs: manifests, configs).
    pub fn ingest_bytes(
        &self,
        lease: &IngestLease,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<BlobRef, ImageError> {
        self.ingest(lease, bytes, expected)
    }

    /// Moves a staged file whose content hashes to `digest` (already verified by the caller)
    /// into the blob store; if the blob exists already the staged copy is dropped.
    pub fn commit_staged(&self, staged: &Path, digest: &str) -> Result<(), ImageError> {
        let dst = self.blob_path(digest)?;
        if dst.exists() {
            let _ = fs::remove_file(staged);
            return Ok(());
        }
        fs::rename(staged, &dst).map_err(io_err(format!("store blob {digest}")))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Size of a stored blob, if present.
    pub fn blob_size(&self, digest: &str) -> Option<u64> {
        fs::metadata(self.blob_path(digest).ok()?)
            .ok()
            .map(|m| m.len())
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ImageError::NotFound(format!("blob {digest}"))
            } else {
                ImageError::Io {
                    context: format!("read {}", p.display()),
                    cause: e,
                }
            }
        })
    }

    /// Unpacks each layer not unpacked yet into its snapshot, verifying each diff_id.
    /// Returns the layer records with their chain IDs.
    pub fn unpack_layers(
        &self,
        _lease: &IngestLease,
        layers: &[LayerInput],
    ) -> Result<Vec<LayerRecord>, ImageError> {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        let mut out = Vec::with_capacity(layers.len());
        for (layer, chain) in layers.iter().zip(chains) {
            let snap = self.root.join("snapshots").join(digest_hex(&chain)?);
            if !snap.join("usage.json").exists() {
                self.unpack_one(layer, &snap)?;
            }
            out.push(LayerRecord {
                digest: layer.blob.digest.clone(),
                media_type: layer.media_type.clone(),
                size: layer.blob.size,
                diff_id: layer.diff_id.clone(),
                chain_id: chain,
            });
        }
        Ok(out)
    }

    fn unpack_one(&self, layer: &LayerInput, snap: &Path) -> Result<(), ImageError> {
        if layer.media_type.contains("zstd") {
            return Err(ImageError::Layer {
                digest: layer.blob.digest.clone(),
                source: UnpackError::Zstd,
            });
        }
        let tmp = self.tmp_path("unpack");
        let result = (|| {
            let fs_dir = tmp.join("fs");
            fs::create_dir_all(&fs_dir).map_err(io_err(format!("create {}", fs_dir.display())))?;
            let blob_path = self.blob_path(&layer.blob.digest)?;
            let blob =
                File::open(&blob_path).map_err(io_err(format!("open {}", blob_path.display())))?;
            let applied =
                unpack::apply_layer(blob, &fs_dir).map_err(|source| ImageError::Layer {
                    digest: layer.blob.digest.clone(),
                    source,
                })?;
            if applied.diff_id != layer.diff_id {
                return Err(ImageError::DigestMismatch {
                    what: format!("uncompressed layer {}", layer.blob.digest),
                    expected: layer.diff_id.clone(),
                    actual: applied.diff_id,
                });
            }
            let usage = Usage {
                bytes: applied.bytes,
                inodes: applied.inodes,
            };
            fs::write(
                tmp.join("usage.json"),
                serde_json::to_vec(&usage).expect("usage serialises"),
            )
            .map_err(io_err("write snapshot usage"))?;
            match fs::rename(&tmp, snap) {
                Ok(()) => Ok(()),
                // Another importer finished the same snapshot first.
                Err(_) if snap.join("usage.json").exists() => Ok(()),
                Err(e) => {
                    // A leftover incomplete snapshot dir (crash mid-rename is impossible, but a
                    // manually damaged store is not): replace it.
                    if snap.exists() {
                        let _ = fs::remove_dir_all(snap);
                        fs::rename(&tmp, snap)
                            .map_err(io_err(format!("store snapshot {}", snap.display())))
                    } else {
                        Err(ImageError::Io {
                            context: format!("store snapshot {}", snap.display()),
                            cause: e,
                        })
                    }
                }
            }
        })();
        if tmp.exists() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn read_meta(&self) -> Result<Metadata, ImageError> {
        let p = self.root.join("images.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Corrupt {
                source_name: p.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Metadata::default()),
            Err(e) => Err(ImageError::Io {
                context: format!("read {}", p.display()),
                cause: e,
            }),
        }
    }

    fn write_meta(&self, meta: &Metadata) -> Result<(), ImageError> {
        let p = self.root.join("images.json");
        let tmp = self.tmp_path("meta");
        let bytes = serde_json::to_vec_pretty(meta).expect("metadata serialises");
        let res = (|| {
            let mut f = File::create(&tmp).map_err(io_err("write image metadata"))?;
            f.write_all(&bytes)
                .map_err(io_err("write image metadata"))?;
            f.sync_all().map_err(io_err("sync image metadata"))?;
            fs::rename(&tmp, &p).map_err(io_err("replace image metadata"))
        })();
        let _ = fs::remove_file(&tmp);
        res
    }

    /// All images, ordered by ID.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        Ok(self.read_meta()?.images.into_values().collect())
    }

    /// Finds the image an ID, `name:tag` or `name@digest` refers to.
    pub fn resolve(&self, image: &str) -> Result<Option<ImageRecord>, ImageError> {
        let meta = self.read_meta()?;
        Ok(resolve_in(&meta.images, image)?.cloned())
    }

    /// Adds or updates an image record: tags and digests are merged into an existing record with
    /// the same ID, and a tag moving here is taken off the image that had it (which is deleted if it
    /// is left without tags or digests).
    pub fn record(
        &self,
        _lease: &IngestLease,
        mut rec: ImageRecord,
    ) -> Result<ImageRecord, ImageError> {
        let _meta_lock = self.lock("meta.lock", FlockArg::LockExclusive)?;
        let mut meta = self.read_meta()?;
        for other in meta.images.values_mut() {
            if other.id != rec.id {
                other.repo_tags.retain(|t| !rec.repo_tags.contains(t));
            }
        }
        meta.images
            .retain(|id, r| *id == rec.id || !r.repo_tags.is_empty() || !r.repo_digests.is_empty());
        if let Some(existing) = meta.images.get(&rec.id) {
            rec.created = existing.created;
            rec.pinned |= existing.pinned;
            let mut tags: BTreeSet<String> = existing.repo_tags.iter().cloned().collect();
            tags.extend(rec.repo_tags.iter().cloned());
            let mut digests: BTreeSet<String> = existing.repo_digests.iter().cloned().collect();
            digests.extend(rec.repo_digests.iter().cloned());
            rec.repo_tags = tags.into_iter().collect();
            rec.repo_digests = digests.into_iter().collect();
        } else {
            rec.created = now_unix();
            rec.repo_tags.sort();
            rec.repo_tags.dedup();
            rec.repo_digests.sort();
            rec.repo_digests.dedup();
        }
        meta.images.insert(rec.id.clone(), rec.clone());
        self.write_meta(&meta)?;
        Ok(rec)
    }

    /// Removes the image `image` refers to (all its tags and digests) and garbage-collects its
    /// content. Returns the removed record, `None` if no image matched.
    pub fn remove(&self, image: &str) -> Result<Option<ImageRecord>, ImageError> {
        let removed = {
            let _meta_lock = self.lock("meta.lock", FlockArg::LockExclusive)?;
            let mut meta = self.read_meta()?;
            let Some(id) = resolve_in(&meta.images, image)?.map(|r| r.id.clone()) else {
                return Ok(None);
            };
            let rec = meta.images.remove(&id);
            self.write_meta(&meta)?;
            rec
        };
        self.gc()?;
        Ok(removed)
    }

    /// Records that `name` (e.g. a container ID) uses the snapshots `chain_ids`, so garbage
    /// collection keeps them until [`ImageStore::release_snapshots`].
    pub fn hold_snapshots(&self, name: &str, chain_ids: &[String]) -> Result<(), ImageError> {
        let dir = self.root.join("leases");
        fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let tmp = self.tmp_path("lease");
        fs::write(&tmp, chain_ids.join("\n")).map_err(io_err("write snapshot lease"))?;
        fs::rename(&tmp, dir.join(name)).map_err(io_err("write snapshot lease"))
    }

    /// Drops the hold taken by [`ImageStore::hold_snapshots`].
    pub fn release_snapshots(&self, name: &str) -> Result<(), ImageError> {
        match fs::remove_file(self.root.join("leases").join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::Io {
                context: "remove snapshot lease".into(),
                cause: e,
            }),
            _ => Ok(()),
        }
    }

    fn held_snapshots(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Ok(rd) = fs::read_dir(self.root.join("leases")) {
            for e in rd.flatten() {
                if let Ok(s) = fs::read_to_string(e.path()) {
                    out.extend(
                        s.lines()
                            .filter_map(|c| digest_hex(c.trim()).ok().map(str::to_string)),
                    );
                }
            }
        }
        out
    }

    /// Deletes every blob and snapshot no image references and no lease holds, and clears the
    /// staging dir. Waits for in-flight ingests to finish.
    pub fn gc(&self) -> Result<(), ImageError> {
        let _gc_lock = self.lock("ingest.lock", FlockArg::LockExclusive)?;
        let meta = self.read_meta()?;
        let mut blobs = BTreeSet::new();
        let mut snaps = self.held_snapshots();
        for r in meta.images.values() {
            for d in [&r.manifest_digest, &r.id] {
                if let Ok(h) = digest_hex(d) {
                    blobs.insert(h.to_string());
                }
            }
            for l in &r.layers {
                if let Ok(h) = digest_hex(&l.digest) {
                    blobs.insert(h.to_string());
                }
                if let Ok(h) = digest_hex(&l.chain_id) {
                    snaps.insert(h.to_string());
                }
            }
        }
        let sweep = |dir: PathBuf, keep: &BTreeSet<String>| -> Result<(), ImageError> {
            let entries = fs::read_dir(&dir).map_err(io_err(format!("read {}", dir.display())))?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let p = e.path();
                let res = if p.is_dir() && !p.is_symlink() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                res.map_err(io_err(format!("remove {}", p.display())))?;
                tracing::debug!(path = %p.display(), "garbage-collected");
            }
            Ok(())
        };
        sweep(self.root.join("blobs/sha256"), &blobs)?;
        sweep(self.root.join("snapshots"), &snaps)?;
        sweep(self.root.join("tmp"), &BTreeSet::new())?;
        Ok(())
    }

    /// Bytes and inodes used by blobs and snapshots.
    pub fn usage(&self) -> Result<StoreUsage, ImageError> {
        let mut u = StoreUsage::default();
        let blobs = self.root.join("blobs/sha256");
        for e in fs::read_dir(&blobs)
            .map_err(io_err(format!("read {}", blobs.display())))?
            .flatten()
        {
            if let Ok(m) = e.metadata() {
                u.bytes += m.len();
                u.inodes += 1;
            }
        }
        let snaps = self.snapshots_dir();
        for e in fs::read_dir(&snaps)
            .map_err(io_err(format!("read {}", snaps.display())))?
            .flatten()
        {
            if let Ok(b) = fs::read(e.path().join("usage.json")) {
                if let Ok(s) = serde_json::from_slice::<Usage>(&b) {
                    u.bytes += s.bytes;
                    u.inodes += s.inodes;
                }
            }
        }
        Ok(u)
    }
}

fn resolve_in<'a>(
    images: &'a BTreeMap<String, ImageRecord>,
    image: &str,
) -> Result<Option<&'a ImageRecord>, ImageError> {
    if let Some(id) = as_image_id(image) {
        if let Some(r) = images.get(&id) {
            return Ok(Some(r));
        }
    }
    let r = match Reference::parse(image) {
        Ok(r) => r,
        // An unparsable name cannot match anything (an ID was tried above).
        Err(_) if as_image_id(image).is_some() => return Ok(None),
        Err(e) => return Err(ImageError::InvalidReference(e)),
    };
    if let Some(d) = r.digested() {
        return Ok(images.values().find(|i| i.repo_digests.contains(&d)));
    }
    let tagged = r.tagged().unwrap_or_default();
    Ok(images.values().find(|i| i.repo_tags.contains(&tagged)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let got = chain_ids(&[a.clone(), b.clone()]);
        let want1 = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()))
        );
        assert_eq!(got, vec![a, want1]);
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn ingest_dedups_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open_at(dir.path().to_path_buf()).unwrap();
        let lease = s.lease().unwrap();
        let a = s.ingest_bytes(&lease, b"hello", None).unwrap();
        let b = s.ingest_bytes(&lease, b"hello", Some(&a.digest)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.size, 5);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );
        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = s.ingest_bytes(&lease, b"other", Some(&wrong)).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    fn rec(id_char: char, tags: &[&str]) -> ImageRecord {
        ImageRecord {
            id: format!("sha256:{}", id_char.to_string().repeat(64)),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: vec![],
            manifest_digest: format!("sha256:{}", "f".repeat(64)),
            layers: vec![],
            size: 1,
            config: ImageConfigSummary::default(),
            pinned: false,
            created: 0,
        }
    }

    #[test]
    fn moving_a_tag_drops_the_untagged_image_and_resolve_finds_by_id_tag_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = ImageStore::open_at(dir.path().to_path_buf()).unwrap();
        let lease = s.lease().unwrap();
        s.record(&lease, rec('a', &["docker.io/library/busybox:latest"]))
            .unwrap();
        let mut b = rec('b', &["docker.io/library/busybox:latest"]);
        b.repo_digests = vec![format!(
            "docker.io/library/busybox@sha256:{}",
            "c".repeat(64)
        )];
        s.record(&lease, b.clone()).unwrap();
        let all = s.list().unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].id, b.id);
        for q in [
            "busybox".to_string(),
            "docker.io/library/busybox:latest".to_string(),
            b.id.clone(),
            b.id[7..].to_string(),
            format!("busybox@sha256:{}", "c".repeat(64)),
        ] {
            assert_eq!(
                s.resolve(&q).unwrap().map(|r| r.id),
                Some(b.id.clone()),
                "{q}"
            );
        }
        assert_eq!(s.resolve("busybox:1.0").unwrap(), None);
        assert!(matches!(
            s.resolve("Not/Valid"),
            Err(ImageError::InvalidReference(_))
        ));
        // merging: the same ID under another tag keeps both tags
        s.record(&lease, rec('b', &["docker.io/library/other:1"]))
            .unwrap();
        let got = s.resolve("other:1").unwrap().unwrap();
        assert_eq!(
            got.repo_tags,
            vec![
                "docker.io/library/busybox:latest".to_string(),
                "docker.io/library/other:1".to_string()
            ]
        );
        drop(lease);
        assert!(s.remove("other:1").unwrap().is_some());
        assert!(s.list().unwrap().is_empty());
        assert!(s.remove("other:1").unwrap().is_none());
    }
}
