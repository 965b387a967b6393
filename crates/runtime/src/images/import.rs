//! Import of image archives into the store: OCI image layouts (a directory or a tar of one) and
//! docker-save tarballs (`manifest.json` + config + layer tars), optionally gzip-compressed.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reference::{is_sha256_hex, Reference};
use super::store::{BlobRef, ImageStore, IngestLease};
use super::{
    finish_image, is_index, media, select_platform, unpack, Descriptor, ImageError, ImageRecord,
    Index, Manifest, StagedImage,
};

/// Annotation containerd and docker put on index.json entries with the full image name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI annotation naming an index.json entry (often just a tag).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Top-level files read into memory rather than stored as blobs.
const SMALL_FILES: [&str; 4] = ["index.json", "manifest.json", "oci-layout", "repositories"];
const SMALL_LIMIT: u64 = 16 * 1024 * 1024;

/// Imports every path (archive file or OCI layout directory) into the store of `data_dir`.
pub fn import(data_dir: &Path, paths: &[PathBuf]) -> Result<Vec<ImageRecord>, ImageError> {
    let store = ImageStore::open(data_dir)?;
    let mut out = Vec::new();
    for p in paths {
        out.extend(import_into(&store, p)?);
    }
    Ok(out)
}

/// Imports one archive or layout directory. On failure nothing of it is left in the store.
pub fn import_into(store: &ImageStore, path: &Path) -> Result<Vec<ImageRecord>, ImageError> {
    let result = {
        let lease = store.lease()?;
        import_with_lease(store, &lease, path)
    };
    if result.is_err() {
        // Sweeps blobs and snapshots this import stored that no image references.
        if let Err(e) = store.gc() {
            tracing::warn!(error = %e, "cleanup after failed import");
        }
    }
    result
}

fn import_with_lease(
    store: &ImageStore,
    lease: &IngestLease,
    path: &Path,
) -> Result<Vec<ImageRecord>, ImageError> {
    let name = path.display().to_string();
    let meta = fs::metadata(path).map_err(|source| ImageError::Io {
        context: format!("open {name}"),
        cause: source,
    })?;
    let mut source = if meta.is_dir() {
        Source::Dir {
            root: path.to_path_buf(),
        }
    } else {
        read_archive(store, lease, path)?
    };
    let imported = if let Some(index) = source.small("index.json")? {
        import_oci(store, lease, &mut source, &index, &name)?
    } else if let Some(manifest) = source.small("manifest.json")? {
        import_docker(store, lease, &mut source, &manifest, &name)?
    } else {
        return Err(ImageError::Corrupt {
            source_name: name,
            reason: "neither an OCI image layout (no index.json) nor a docker-save archive (no manifest.json)".into(),
        });
    };
    for img in &imported {
        tracing::info!(source = %name, id = %img.id, tags = ?img.repo_tags, "image imported");
    }
    Ok(imported)
}

/// Where the files of an image source come from.
enum Source {
    /// A tar archive already streamed into the blob store: path -> blob.
    Archive {
        name: String,
        files: HashMap<String, BlobRef>,
        links: HashMap<String, String>,
        small: HashMap<String, Vec<u8>>,
    },
    /// An OCI layout (or extracted docker-save) directory, read on demand.
    Dir { root: PathBuf },
}

fn clean(p: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// The digest a path names, for `blobs/sha256/<hex>` paths and docker's `<hex>.json` configs.
fn digest_from_path(p: &str) -> Option<String> {
    let p = clean(p)?;
    let hex = p
        .strip_prefix("blobs/sha256/")
        .or_else(|| p.strip_suffix(".json"))?;
    is_sha256_hex(hex).then(|| format!("sha256:{hex}"))
}

impl Source {
    fn display(&self) -> String {
        match self {
            Source::Archive { name, .. } => name.clone(),
            Source::Dir { root } => root.display().to_string(),
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Corrupt {
            source_name: self.display(),
            reason: reason.into(),
        }
    }

    fn small(&self, name: &str) -> Result<Option<Vec<u8>>, ImageError> {
        match self {
            Source::Archive { small, .. } => Ok(small.get(name).cloned()),
            Source::Dir { root } => match fs::read(root.join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(ImageError::Io {
                    context: format!("read {}", root.join(name).display()),
                    cause: source,
                }),
            },
        }
    }

    /// The blob at `path`, stored and verified against `expected` when given.
    fn blob(
        &mut self,
        store: &ImageStore,
        lease: &IngestLease,
        path: &str,
        expected: Option<&str>,
    ) -> Result<BlobRef, ImageError> {
        let cleaned = clean(path).ok_or_else(|| self.corrupt(format!("bad path {path:?}")))?;
        let got = match self {
            Source::Archive { files, links, .. } => {
                let mut p = cleaned.clone();
                for _ in 0..16 {
                    match links.get(&p) {
                        Some(t) => p = t.clone(),
                        None => break,
                    }
                }
                files.get(&p).cloned()
            }
            Source::Dir { root } => {
                let full = root.join(&cleaned);
                match File::open(&full) {
                    Ok(f) => Some(match store.ingest(lease, f, expected) {
                        Err(ImageError::DigestMismatch {
                            expected, actual, ..
                        }) => {
                            return Err(ImageError::DigestMismatch {
                                what: full.display().to_string(),
                                expected,
                                actual,
                            })
                        }
                        other => other?,
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(source) => {
                        return Err(ImageError::Io {
                            context: format!("read {}", full.display()),
                            cause: source,
                        })
                    }
                }
            }
        };
        let blob = got.ok_or_else(|| self.corrupt(format!("missing {cleaned}")))?;
        if let Some(want) = expected {
            if blob.digest != want {
                return Err(ImageError::DigestMismatch {
                    what: format!("{} in {}", cleaned, self.display()),
                    expected: want.to_string(),
                    actual: blob.digest,
                });
            }
        }
        Ok(blob)
    }

    /// The blob a descriptor points to, checking digest and size.
    fn described(
        &mut self,
        store: &ImageStore,
        lease: &IngestLease,
        d: &Descriptor,
    ) -> Result<BlobRef, ImageError> {
        let hex = d
            .digest
            .strip_prefix("sha256:")
            .filter(|h| is_sha256_hex(h))
            .ok_or_else(|| {
                ImageError::Unsupported(format!("digest {:?} is not a sha256 digest", d.digest))
            })?;
        let b = self.blob(
            store,
            lease,
            &format!("blobs/sha256/{hex}"),
            Some(&d.digest),
        )?;
        if b.size != d.size {
            return Err(self.corrupt(format!(
                "{} has {} bytes, its descriptor says {}",
                d.digest, b.size, d.size
            )));
        }
        Ok(b)
    }
}

/// Streams a (possibly gzip-compressed) tar into the blob store in one pass.
fn read_archive(
    store: &ImageStore,
    lease: &IngestLease,
    path: &Path,
) -> Result<Source, ImageError> {
    let name = path.display().to_string();
    let corrupt = |reason: String| ImageError::Corrupt {
        source_name: name.clone(),
        reason,
    };
    let mut f = File::open(path).map_err(|source| ImageError::Io {
        context: format!("open {name}"),
        cause: source,
    })?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(|source| ImageError::Io {
        context: format!("read {name}"),
        cause: source,
    })?;
    f.rewind().map_err(|source| ImageError::Io {
        context: format!("read {name}"),
        cause: source,
    })?;
    if n == 0 {
        return Err(corrupt("empty file".into()));
    }
    let reader = unpack::decompressed(f).map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
    let mut archive = tar::Archive::new(reader);
    let mut files = HashMap::new();
    let mut links = HashMap::new();
    let mut small = HashMap::new();
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
    let mut seen = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
        seen += 1;
        let raw = entry
            .path()
            .map_err(|e| corrupt(format!("bad entry path: {e}")))?
            .to_string_lossy()
            .into_owned();
        let Some(p) = clean(&raw) else {
            return Err(corrupt(format!("entry {raw:?} escapes the archive")));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| corrupt(format!("bad link in {raw}: {e}")))?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            let resolved = if kind.is_symlink() {
                let base = Path::new(&p).parent().unwrap_or(Path::new(""));
                clean(&base.join(&target).to_string_lossy())
            } else {
                clean(&target)
            };
            if let Some(t) = resolved {
                links.insert(p, t);
            }
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        if SMALL_FILES.contains(&p.as_str()) {
            let size = entry.header().size().unwrap_or(0);
            if size > SMALL_LIMIT {
                return Err(corrupt(format!("{p} is too large ({size} bytes)")));
            }
            let mut buf = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut buf)
                .map_err(|e| corrupt(format!("cannot read {p}: {e}")))?;
            if buf.len() as u64 != size {
                return Err(corrupt(format!(
                    "truncated: {p} has {} of {size} bytes",
                    buf.len()
                )));
            }
            small.insert(p, buf);
            continue;
        }
        let header_size = entry
            .header()
            .size()
            .map_err(|e| corrupt(format!("bad size of {p}: {e}")))?;
        let blob = match store.ingest(lease, &mut entry, None) {
            Ok(b) => b,
            Err(ImageError::Io { cause: source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::InvalidData
                        | std::io::ErrorKind::InvalidInput
                ) =>
            {
                return Err(corrupt(format!("truncated or damaged entry {p}: {source}")))
            }
            Err(e) => return Err(e),
        };
        if blob.size != header_size {
            return Err(corrupt(format!(
                "truncated: {p} has {} of {header_size} bytes",
                blob.size
            )));
        }
        if let Some(h) = p.strip_prefix("blobs/sha256/").filter(|h| is_sha256_hex(h)) {
            let expected = format!("sha256:{h}");
            if blob.digest != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("{p} in {name}"),
                    expected,
                    actual: blob.digest,
                });
            }
        }
        files.insert(p, blob);
    }
    if seen == 0 {
        return Err(corrupt("not a tar archive (no entries)".into()));
    }
    Ok(Source::Archive {
        name,
        files,
        links,
        small,
    })
}

/// Image names from an index.json entry's annotations.
fn names_of(d: &Descriptor) -> Vec<Reference> {
    let full = d.annotations.get(ANNOTATION_IMAGE_NAME);
    let refname = d.annotations.get(ANNOTATION_REF_NAME);
    let candidate = match (full, refname) {
        (Some(n), _) => Some(n.as_str()),
        // A ref.name with a '/', ':' or '@' is a full reference; a bare word is only a tag,
        // which names no repository, so the image stays untagged (reachable by ID).
        (None, Some(n)) if n.contains(['/', ':', '@']) => Some(n.as_str()),
        _ => None,
    };
    match candidate.map(Reference::parse) {
        Some(Ok(r)) => vec![r],
        Some(Err(e)) => {
            tracing::warn!(error = %e, "ignoring unparsable image name annotation");
            vec![]
        }
        None => vec![],
    }
}

fn import_oci(
    store: &ImageStore,
    lease: &IngestLease,
    src: &mut Source,
    index_json: &[u8],
    name: &str,
) -> Result<Vec<ImageRecord>, ImageError> {
    let index: Index =
        serde_json::from_slice(index_json).map_err(|e| src.corrupt(format!("index.json: {e}")))?;
    if index.manifests.is_empty() {
        return Err(src.corrupt("index.json lists no manifests"));
    }
    let mut out = Vec::new();
    for top in &index.manifests {
        let names = names_of(top);
        // Follow nested indexes to this platform's manifest.
        let mut desc = top.clone();
        let mut depth = 0;
        let (manifest_blob, manifest_bytes) = loop {
            let blob = src.described(store, lease, &desc)?;
            let bytes = store.read_blob(&blob.digest)?;
            if !is_index(&desc.media_type, &bytes) {
                break (blob, bytes);
            }
            depth += 1;
            if depth > 4 {
                return Err(src.corrupt("image indexes nested too deeply"));
            }
            let nested: Index = serde_json::from_slice(&bytes)
                .map_err(|e| src.corrupt(format!("index {}: {e}", desc.digest)))?;
            desc = select_platform(&nested)
                .ok_or_else(|| {
                    ImageError::NotFound(format!(
                        "image for platform linux/{} in {name}",
                        super::host_arch()
                    ))
                })?
                .clone();
        };
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| src.corrupt(format!("manifest {}: {e}", manifest_blob.digest)))?;
        let config_blob = src.described(store, lease, &manifest.config)?;
        let config_bytes = store.read_blob(&config_blob.digest)?;
        let mut layer_blobs = Vec::new();
        for l in &manifest.layers {
            layer_blobs.push(src.described(store, lease, l)?);
        }
        // Like containerd, an import records names but no repo digests: nothing proves a
        // registry serves this manifest under that name. A name given with a digest is kept.
        let repo_tags = names.iter().filter_map(Reference::tagged).collect();
        let repo_digests = names.iter().filter_map(Reference::digested).collect();
        out.push(finish_image(
            store,
            lease,
            StagedImage {
                manifest: &manifest,
                manifest_blob,
                config_bytes: &config_bytes,
                layer_blobs,
                repo_tags,
                repo_digests,
                source_name: name.to_string(),
            },
        )?);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Serialize)]
struct SynthManifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

fn import_docker(
    store: &ImageStore,
    lease: &IngestLease,
    src: &mut Source,
    manifest_json: &[u8],
    name: &str,
) -> Result<Vec<ImageRecord>, ImageError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(manifest_json)
        .map_err(|e| src.corrupt(format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(src.corrupt("manifest.json lists no images"));
    }
    let mut out = Vec::new();
    for e in entries {
        let expected = digest_from_path(&e.config);
        let config_blob = src.blob(store, lease, &e.config, expected.as_deref())?;
        let config_bytes = store.read_blob(&config_blob.digest)?;
        let mut layer_blobs = Vec::new();
        let mut layer_descs = Vec::new();
        for l in &e.layers {
            let expected = clean(l)
                .and_then(|p| p.strip_prefix("blobs/sha256/").map(str::to_string))
                .filter(|h| is_sha256_hex(h))
                .map(|h| format!("sha256:{h}"));
            let b = src.blob(store, lease, l, expected.as_deref())?;
            let mut head = [0u8; 4];
            let n = File::open(store.blob_path(&b.digest)?)
                .and_then(|mut f| f.read(&mut head))
                .map_err(|source| ImageError::Io {
                    context: format!("read layer {}", b.digest),
                    cause: source,
                })?;
            let media_type = match unpack::sniff(&head[..n]) {
                unpack::Compression::Gzip => media::DOCKER_LAYER_GZIP,
                unpack::Compression::None => media::DOCKER_LAYER,
                unpack::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            layer_descs.push(Descriptor {
                media_type: media_type.to_string(),
                digest: b.digest.clone(),
                size: b.size,
                annotations: BTreeMap::new(),
                platform: None,
            });
            layer_blobs.push(b);
        }
        let config_desc = Descriptor {
            media_type: media::DOCKER_CONFIG.to_string(),
            digest: config_blob.digest.clone(),
            size: config_blob.size,
            annotations: BTreeMap::new(),
            platform: None,
        };
        let synth = SynthManifest {
            schema_version: 2,
            media_type: media::DOCKER_MANIFEST,
            config: config_desc.clone(),
            layers: layer_descs.clone(),
        };
        let bytes = serde_json::to_vec(&synth).expect("manifest serialises");
        let manifest_blob = store.ingest_bytes(lease, &bytes, None)?;
        let manifest = Manifest {
            media_type: media::DOCKER_MANIFEST.to_string(),
            config: config_desc,
            layers: layer_descs,
        };
        let mut repo_tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            repo_tags.extend(Reference::parse(&t)?.tagged());
        }
        out.push(finish_image(
            store,
            lease,
            StagedImage {
                manifest: &manifest,
                manifest_blob,
                config_bytes: &config_bytes,
                layer_blobs,
                repo_tags,
                repo_digests: vec![],
                source_name: name.to_string(),
            },
        )?);
    }
    Ok(out)
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct DropState {
    /// file name -> (size, mtime in ns) when it was imported
    imported: BTreeMap<String, (u64, i128)>,
}

/// Imports every archive in `<data-dir>/images/` not imported before (by name, size and mtime).
/// Failures are logged and skipped so one bad file does not stop the agent.
pub fn import_drop_dir(data_dir: &Path) -> Result<Vec<ImageRecord>, ImageError> {
    let dir = super::drop_dir(data_dir);
    let store = ImageStore::open(data_dir)?;
    let state_path = store.root().join("drop-dir-imports.json");
    let mut state: DropState = fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(ImageError::Io {
                context: format!("read {}", dir.display()),
                cause: source,
            })
        }
    };
    let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let fname = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(fname.ends_with(".tar") || fname.ends_with(".tar.gz") || fname.ends_with(".tgz")) {
            continue;
        }
        let Ok(m) = fs::metadata(&p) else { continue };
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let key = (m.len(), mtime);
        if state.imported.get(&fname) == Some(&key) {
            continue;
        }
        match import_into(&store, &p) {
            Ok(imgs) => {
                out.extend(imgs);
                state.imported.insert(fname, key);
            }
            Err(e) => tracing::warn!(path = %p.display(), error = %e, "drop-dir import failed"),
        }
    }
    let bytes = serde_json::to_vec_pretty(&state).expect("state serialises");
    let tmp = store.staging_file();
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, &state_path))
        .map_err(|source| ImageError::Io {
            context: format!("write {}", state_path.display()),
            cause: source,
        })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_digests() {
        let h = "a".repeat(64);
        let cases = [
            (format!("blobs/sha256/{h}"), Some(format!("sha256:{h}"))),
            (format!("./blobs/sha256/{h}"), Some(format!("sha256:{h}"))),
            (format!("{h}.json"), Some(format!("sha256:{h}"))),
            (format!("{h}/layer.tar"), None),
            ("manifest.json".to_string(), None),
        ];
        for (p, want) in cases {
            assert_eq!(digest_from_path(&p), want, "{p}");
        }
        assert_eq!(clean("a/../b").as_deref(), Some("b"));
        assert_eq!(clean("../b"), None);
        assert_eq!(clean("./x//y/").as_deref(), Some("x/y"));
    }

    #[test]
    fn names_from_annotations() {
        let d = |pairs: &[(&str, &str)]| Descriptor {
            media_type: String::new(),
            digest: String::new(),
            size: 0,
            annotations: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            platform: None,
        };
        let cases: [(Descriptor, Vec<&str>); 5] = [
            (
                d(&[
                    (ANNOTATION_IMAGE_NAME, "docker.io/library/busybox:1.36"),
                    (ANNOTATION_REF_NAME, "1.36"),
                ]),
                vec!["docker.io/library/busybox:1.36"],
            ),
            (
                d(&[(ANNOTATION_REF_NAME, "busybox:latest")]),
                vec!["docker.io/library/busybox:latest"],
            ),
            (d(&[(ANNOTATION_REF_NAME, "latest")]), vec![]),
            (d(&[(ANNOTATION_REF_NAME, "Bad/Name:x")]), vec![]),
            (d(&[]), vec![]),
        ];
        for (desc, want) in cases {
            let got: Vec<String> = names_of(&desc).iter().map(|r| r.to_string()).collect();
            assert_eq!(got, want, "{:?}", desc.annotations);
        }
    }
}
