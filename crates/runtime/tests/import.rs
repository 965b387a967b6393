//! Integration tests of image import into the store: each archive format, dedup, whiteouts
//! through a real overlayfs mount, name normalisation, the drop dir, and bad input leaving nothing
//! behind. Needs root (overlay mount, device nodes) and busybox-static.

use std::fs;
use std::path::Path;

use runtime::images::{self, ImageError, ImageStore};
use runtime::testimage::{self, Built, Layer, TestImage};

fn busybox(name: &str) -> Built {
    TestImage::busybox(name)
        .expect("busybox-static installed")
        .build()
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn store_counts(data: &Path) -> (usize, usize, usize) {
    let root = data.join("agent/images");
    (
        count(&root.join("blobs/sha256")),
        count(&root.join("snapshots")),
        count(&root.join("tmp")),
    )
}

fn assert_busybox_record(rec: &images::ImageRecord, built: &Built, tag: &str) {
    assert_eq!(rec.id, built.id());
    assert_eq!(rec.repo_tags, vec![tag.to_string()]);
    assert_eq!(rec.layers.len(), built.layers.len());
    let diff: Vec<String> = rec.layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(diff, built.diff_ids());
    assert_eq!(rec.config.cmd, vec!["sh".to_string()]);
    assert!(rec.config.env.iter().any(|e| e.starts_with("PATH=")));
    assert_eq!(rec.config.working_dir, "/");
}

fn assert_rootfs(store: &ImageStore, rec: &images::ImageRecord) {
    let fs0 = store.snapshot_fs(&rec.layers[0].chain_id).unwrap();
    let bb = fs0.join("bin/busybox");
    assert_eq!(fs::read(&bb).unwrap(), fs::read("/bin/busybox").unwrap());
    assert_eq!(
        fs::read_link(fs0.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(fs::read_to_string(fs0.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0"));
}

#[test]
fn imports_oci_archive_oci_dir_docker_save_and_gzip() {
    let work = tempfile::tempdir().unwrap();
    let built = busybox("busybox");
    let oci = testimage::write_oci_archive(&work.path().join("oci.tar"), &[&built]).unwrap();
    let dir = work.path().join("layout");
    testimage::write_dir(&dir, &testimage::oci_layout_files(&[&built])).unwrap();
    let docker = testimage::write_docker_archive(&work.path().join("d.tar"), &[&built]).unwrap();
    let gz = work.path().join("oci.tar.gz");
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(
            fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&fs::read(&oci).unwrap()).unwrap();
        enc.finish().unwrap();
    }
    let tag = "docker.io/library/busybox:latest";
    for (what, path) in [
        ("oci archive", oci.clone()),
        ("oci layout dir", dir.clone()),
        ("docker-save", docker.clone()),
        ("gzip oci archive", gz.clone()),
    ] {
        let data = tempfile::tempdir().unwrap();
        let recs = images::import(data.path(), std::slice::from_ref(&path))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(recs.len(), 1, "{what}");
        assert_busybox_record(&recs[0], &built, tag);
        // as in containerd, imports record no repo digests
        assert!(recs[0].repo_digests.is_empty(), "{what}");
        let store = ImageStore::open(data.path()).unwrap();
        assert_rootfs(&store, &recs[0]);
        assert_eq!(store.list().unwrap(), recs, "{what}");
        assert_eq!(store.resolve("busybox").unwrap().unwrap().id, built.id());
        let (_, snaps, tmp) = store_counts(data.path());
        assert_eq!((snaps, tmp), (1, 0), "{what}");
    }
}

#[test]
fn identical_content_is_stored_once() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let a = busybox("a.example/app:1");
    let b = TestImage::busybox("a.example/app:2")
        .unwrap()
        .with_layer(Layer::new().file("hello.txt", b"hi"))
        .build();
    assert_eq!(
        a.layers[0].digest, b.layers[0].digest,
        "deterministic builds"
    );
    let pa = testimage::write_oci_archive(&work.path().join("a.tar"), &[&a]).unwrap();
    let pb = testimage::write_oci_archive(&work.path().join("b.tar"), &[&b]).unwrap();
    images::import(data.path(), &[pa.clone(), pb, pa]).unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
    // blobs: base layer once, extra layer, 2 configs, 2 manifests
    let (blobs, snaps, tmp) = store_counts(data.path());
    assert_eq!((blobs, snaps, tmp), (6, 2, 0));
    // both images share the base snapshot
    let ra = store.resolve("a.example/app:1").unwrap().unwrap();
    let rb = store.resolve("a.example/app:2").unwrap().unwrap();
    assert_eq!(ra.layers[0].chain_id, rb.layers[0].chain_id);
    // removing one keeps the shared content, removing both empties the store
    store.remove("a.example/app:2").unwrap().unwrap();
    assert_eq!(store_counts(data.path()), (3, 1, 0));
    store.remove(&ra.id).unwrap().unwrap();
    assert_eq!(store_counts(data.path()), (0, 0, 0));
}

/// Mounts overlayfs over the image's snapshots and checks whiteouts and opaque dirs take effect.
#[test]
fn whiteouts_and_opaque_dirs_apply_through_overlayfs() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let img = TestImage::busybox("layers:1")
        .unwrap()
        .with_layer(
            Layer::new()
                .dir("data")
                .file("data/keep", b"1")
                .file("data/old", b"2")
                .dir("opq")
                .file("opq/gone", b"3"),
        )
        .with_layer(
            Layer::new()
                .whiteout("data/old")
                .whiteout("etc/group")
                .opaque("opq")
                .file("opq/new", b"4"),
        )
        .build();
    let p = testimage::write_oci_archive(&work.path().join("l.tar"), &[&img]).unwrap();
    let rec = images::import(data.path(), &[p]).unwrap().remove(0);
    let store = ImageStore::open(data.path()).unwrap();
    let lower: Vec<String> = rec
        .layers
        .iter()
        .rev()
        .map(|l| {
            store
                .snapshot_fs(&l.chain_id)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    let target = work.path().join("merged");
    fs::create_dir(&target).unwrap();
    let opts = format!("lowerdir={}", lower.join(":"));
    nix::mount::mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .expect("overlay mount");
    let check = || -> Result<(), String> {
        let exists = |p: &str| target.join(p).exists();
        let expect = [
            ("data/keep", true),
            ("data/old", false),
            ("etc/group", false),
            ("etc/passwd", true),
            ("opq/gone", false),
            ("opq/new", true),
            ("bin/busybox", true),
        ];
        for (p, want) in expect {
            if exists(p) != want {
                return Err(format!("{p}: exists={} want {want}", exists(p)));
            }
        }
        Ok(())
    };
    let res = check();
    nix::mount::umount(&target).expect("umount overlay");
    res.unwrap();
}

#[test]
fn names_are_normalised_from_docker_repo_tags() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cases = [
        ("busybox", "docker.io/library/busybox:latest"),
        ("myorg/tool:2", "docker.io/myorg/tool:2"),
        ("localhost:5000/x:y", "localhost:5000/x:y"),
    ];
    for (i, (given, want)) in cases.iter().enumerate() {
        let mut img = TestImage::busybox(given).unwrap();
        img.labels.insert("n".into(), i.to_string()); // distinct IDs
        let b = img.build();
        let p =
            testimage::write_docker_archive(&work.path().join(format!("{i}.tar")), &[&b]).unwrap();
        let rec = images::import(data.path(), &[p]).unwrap().remove(0);
        assert_eq!(rec.repo_tags, vec![want.to_string()], "{given}");
        assert_eq!(rec.config.labels.get("n"), Some(&i.to_string()));
    }
}

fn assert_untouched(data: &Path, before: &(usize, usize, usize), images_json: &Option<Vec<u8>>) {
    assert_eq!(&store_counts(data), before);
    assert_eq!(
        &fs::read(data.join("agent/images/images.json")).ok(),
        images_json
    );
}

#[test]
fn bad_input_is_named_and_leaves_nothing_behind() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    // a valid image already present must stay intact through all failures
    let good = busybox("good:1");
    let gp = testimage::write_oci_archive(&work.path().join("good.tar"), &[&good]).unwrap();
    images::import(data.path(), &[gp]).unwrap();
    let before = store_counts(data.path());
    let json = fs::read(data.path().join("agent/images/images.json")).ok();

    let other = TestImage::busybox("bad:1")
        .unwrap()
        .with_layer(Layer::new().file("x", b"payload"))
        .build();

    // 1. not a tar at all
    let junk = work.path().join("junk.tar");
    fs::write(
        &junk,
        b"this is not an archive, just some text that is long enough",
    )
    .unwrap();
    let e = images::import(data.path(), std::slice::from_ref(&junk)).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("junk.tar"), "{e}");
    assert_untouched(data.path(), &before, &json);

    // 2. truncated archive
    let full = testimage::write_oci_archive(&work.path().join("full.tar"), &[&other]).unwrap();
    let bytes = fs::read(&full).unwrap();
    let trunc = work.path().join("trunc.tar");
    fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let e = images::import(data.path(), std::slice::from_ref(&trunc)).unwrap_err();
    assert!(matches!(e, ImageError::Corrupt { .. }), "{e}");
    assert_untouched(data.path(), &before, &json);

    // 3. a blob whose content does not match its digest
    let mut files = testimage::oci_layout_files(&[&other]);
    let layer_path = format!("blobs/sha256/{}", &other.layers[1].digest[7..]);
    for (p, d) in files.iter_mut() {
        if *p == layer_path {
            d[20] ^= 0xff;
        }
    }
    let tampered = work.path().join("tampered.tar");
    testimage::write_tar(&tampered, &files).unwrap();
    let e = images::import(data.path(), std::slice::from_ref(&tampered)).unwrap_err();
    match &e {
        ImageError::DigestMismatch { what, expected, .. } => {
            assert!(what.contains(&layer_path), "{e}");
            assert_eq!(expected, &other.layers[1].digest);
        }
        _ => panic!("want digest mismatch, got {e}"),
    }
    assert_untouched(data.path(), &before, &json);

    // 4. the same in a layout directory
    let dir = work.path().join("tampered-dir");
    testimage::write_dir(&dir, &files).unwrap();
    let e = images::import(data.path(), std::slice::from_ref(&dir)).unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert_untouched(data.path(), &before, &json);

    // 5. a missing layer blob
    let files: Vec<_> = testimage::oci_layout_files(&[&other])
        .into_iter()
        .filter(|(p, _)| *p != layer_path)
        .collect();
    let missing = work.path().join("missing.tar");
    testimage::write_tar(&missing, &files).unwrap();
    let e = images::import(data.path(), std::slice::from_ref(&missing)).unwrap_err();
    assert!(e.to_string().contains(&layer_path), "{e}");
    assert_untouched(data.path(), &before, &json);

    // 6. a diff_id that does not match the uncompressed layer (config lies)
    let mut lying = other.clone();
    let mut cfg: serde_json::Value = serde_json::from_slice(&lying.config.data).unwrap();
    cfg["rootfs"]["diff_ids"][1] = serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    lying.config.data = serde_json::to_vec(&cfg).unwrap();
    {
        use sha2::Digest;
        lying.config.digest = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&lying.config.data))
        );
    }
    let docker = work.path().join("lying.tar");
    testimage::write_docker_archive(&docker, &[&lying]).unwrap();
    let e = images::import(data.path(), std::slice::from_ref(&docker)).unwrap_err();
    assert!(matches!(e, ImageError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("uncompressed layer"), "{e}");
    assert_untouched(data.path(), &before, &json);

    // 7. a path that does not exist
    let e = images::import(data.path(), &[work.path().join("nope.tar")]).unwrap_err();
    assert!(e.to_string().contains("nope.tar"), "{e}");
    assert_untouched(data.path(), &before, &json);
}

#[test]
fn drop_dir_archives_are_imported_once() {
    let data = tempfile::tempdir().unwrap();
    let drop = images::drop_dir(data.path());
    fs::create_dir_all(&drop).unwrap();
    let a = busybox("dropped:1");
    testimage::write_oci_archive(&drop.join("a.tar"), &[&a]).unwrap();
    fs::write(drop.join("broken.tar"), b"garbage garbage garbage").unwrap();
    fs::write(drop.join("README"), b"not an archive name").unwrap();
    let first = images::import_drop_dir(data.path()).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].repo_tags,
        vec!["docker.io/library/dropped:1".to_string()]
    );
    // unchanged files are not imported again; the broken one is retried (and fails again)
    assert!(images::import_drop_dir(data.path()).unwrap().is_empty());
    let store = ImageStore::open(data.path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
}
