//! CRI ImageService tests, written once and run against every runtime.

use cri::v1 as pb;
use oci_client::secrets::RegistryAuth;
use runtime::testimage::{self, Built, Layer, TestImage};

use crate::harness::{Kind, Registry, Target};

fn busybox(name: &str, marker: &str) -> Built {
    let mut img = TestImage::busybox(name).expect("busybox-static installed");
    img.labels.insert("suite".into(), marker.into());
    img.with_layer(Layer::new().file("etc/marker", marker.as_bytes()))
        .build()
}

async fn import_oci(t: &Target, built: &Built) {
    let p = t.dir.path().join("image.tar");
    testimage::write_oci_archive(&p, &[built]).unwrap();
    t.import(&p).await;
}

pub async fn version(mut t: Target) {
    let v =
        t.rt.version(pb::VersionRequest {
            version: "v1".into(),
        })
        .await
        .expect("Version")
        .into_inner();
    assert_eq!(v.runtime_api_version, "v1");
    let want = match t.kind {
        Kind::Oxkube => "oxkube",
        Kind::Containerd => "containerd",
    };
    assert_eq!(v.runtime_name, want);
    assert!(!v.runtime_version.is_empty());
}

pub async fn list_and_status_after_oci_import(mut t: Target) {
    let built = busybox("docker.io/library/busybox:cri-suite", "list");
    import_oci(&t, &built).await;
    let tag = "docker.io/library/busybox:cri-suite";
    let all = t.list(None).await;
    let img = all
        .iter()
        .find(|i| i.id == built.id())
        .unwrap_or_else(|| panic!("imported image not listed: {all:?}"));
    assert_eq!(img.repo_tags, vec![tag.to_string()]);
    // an import proves no registry digest, so none is reported (containerd's behaviour)
    assert!(img.repo_digests.is_empty(), "{:?}", img.repo_digests);
    assert!(img.size > 0);
    assert_eq!(img.uid.as_ref().map(|u| u.value), None);
    // the same image by short name, full name, ID and bare ID
    for q in [
        "busybox:cri-suite".to_string(),
        tag.to_string(),
        built.id().to_string(),
        built.id()[7..].to_string(),
    ] {
        let s = t.status(&q).await.unwrap_or_else(|| panic!("status {q}"));
        assert_eq!(s.id, built.id(), "{q}");
        assert_eq!(s.repo_tags, vec![tag.to_string()], "{q}");
    }
}

pub async fn list_images_filter(mut t: Target) {
    let a = busybox("docker.io/library/filter-a:1", "fa");
    let b = busybox("docker.io/library/filter-b:1", "fb");
    import_oci(&t, &a).await;
    import_oci(&t, &b).await;
    assert_eq!(t.list(None).await.len(), 2);
    for (filter, want) in [
        ("filter-a:1", vec![a.id()]),
        ("docker.io/library/filter-b:1", vec![b.id()]),
        (b.id(), vec![b.id()]),
        ("filter-a:2", vec![]),
    ] {
        let got: Vec<String> = t
            .list(Some(filter))
            .await
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(got, want, "filter {filter}");
    }
}

pub async fn docker_save_import_has_same_image_id(mut t: Target) {
    let built = busybox("registry.example/team/app:v2", "docker");
    let p = t.dir.path().join("docker.tar");
    testimage::write_docker_archive(&p, &[&built]).unwrap();
    t.import(&p).await;
    let s = t
        .status("registry.example/team/app:v2")
        .await
        .expect("imported");
    assert_eq!(s.id, built.id());
    assert_eq!(
        s.repo_tags,
        vec!["registry.example/team/app:v2".to_string()]
    );
}

pub async fn status_of_missing_image_is_empty(mut t: Target) {
    let r = t
        .img
        .image_status(pb::ImageStatusRequest {
            image: Some(crate::harness::spec("docker.io/library/not-here:1")),
            verbose: true,
        })
        .await
        .expect("ImageStatus of a missing image is not an error")
        .into_inner();
    assert!(r.image.is_none());
}

pub async fn remove_image_by_tag_and_id_is_idempotent(mut t: Target) {
    let a = busybox("docker.io/library/rm-a:1", "rm-a");
    let b = busybox("docker.io/library/rm-b:1", "rm-b");
    import_oci(&t, &a).await;
    import_oci(&t, &b).await;
    t.remove("rm-a:1").await.expect("remove by tag");
    assert!(t.status("rm-a:1").await.is_none());
    assert!(t.status(a.id()).await.is_none());
    t.remove("rm-a:1")
        .await
        .expect("removing a missing image succeeds");
    t.remove(b.id()).await.expect("remove by id");
    assert!(t.status("rm-b:1").await.is_none());
    let left = t.list(None).await;
    assert!(
        left.iter().all(|i| i.id != a.id() && i.id != b.id()),
        "{left:?}"
    );
}

pub async fn image_fs_info_reports_usage(mut t: Target) {
    let built = busybox("docker.io/library/fsinfo:1", "fs");
    import_oci(&t, &built).await;
    let r = t
        .img
        .image_fs_info(pb::ImageFsInfoRequest {})
        .await
        .expect("ImageFsInfo")
        .into_inner();
    let fs = r.image_filesystems.first().expect("an image filesystem");
    assert!(!fs.fs_id.as_ref().unwrap().mountpoint.is_empty());
    assert!(fs.timestamp > 0);
    assert!(fs.used_bytes.is_some());
    if t.kind == Kind::Oxkube {
        // containerd refreshes its usage every 10s, so only ours is checked right after import
        let busybox_size = std::fs::metadata("/bin/busybox").unwrap().len();
        assert!(fs.used_bytes.as_ref().unwrap().value > busybox_size);
        assert!(fs.inodes_used.as_ref().unwrap().value > 100);
    }
}

async fn push(reg: &Registry, repo: &str, tag: &str, built: &Built, auth: &RegistryAuth) {
    let host = reg.host.clone();
    testimage::push(&host, repo, tag, built, true, auth)
        .await
        .expect("push to test registry");
}

pub async fn pull_from_plain_http_registry(mut t: Target) {
    let reg = Registry::start(None);
    let built = busybox("unused", "pull");
    push(&reg, "cri/pulltest", "v1", &built, &RegistryAuth::Anonymous).await;
    t.trust_loopback_registry(&reg.host);
    let name = format!("{}/cri/pulltest:v1", reg.host);
    let id = t.pull(&name, None).await.expect("PullImage");
    assert_eq!(id, built.id());
    let s = t.status(&name).await.expect("pulled image has a status");
    assert_eq!(s.repo_tags, vec![name.clone()]);
    assert_eq!(
        s.repo_digests,
        vec![format!(
            "{}/cri/pulltest@{}",
            reg.host, built.manifest.digest
        )]
    );
    // pulling again is a no-op that returns the same image
    assert_eq!(t.pull(&name, None).await.expect("second pull"), built.id());
}

pub async fn pull_by_digest(mut t: Target) {
    let reg = Registry::start(None);
    let built = busybox("unused", "digest");
    push(&reg, "cri/bydigest", "v1", &built, &RegistryAuth::Anonymous).await;
    t.trust_loopback_registry(&reg.host);
    let name = format!("{}/cri/bydigest@{}", reg.host, built.manifest.digest);
    assert_eq!(
        t.pull(&name, None).await.expect("pull by digest"),
        built.id()
    );
    let s = t.status(&name).await.expect("status by digest");
    assert!(s.repo_tags.is_empty(), "{:?}", s.repo_tags);
    assert_eq!(s.repo_digests, vec![name]);
}

pub async fn pull_through_mirror(mut t: Target) {
    let reg = Registry::start(None);
    let built = busybox("unused", "mirror");
    push(
        &reg,
        "library/mirrored",
        "1.0",
        &built,
        &RegistryAuth::Anonymous,
    )
    .await;
    // docker.io itself is unreachable here; only the mirror can serve this pull
    t.add_mirror("docker.io", &reg.host);
    let id = t.pull("mirrored:1.0", None).await.expect("pull via mirror");
    assert_eq!(id, built.id());
    let s = t.status("docker.io/library/mirrored:1.0").await.unwrap();
    assert_eq!(
        s.repo_tags,
        vec!["docker.io/library/mirrored:1.0".to_string()]
    );
}

pub async fn pull_with_credentials(mut t: Target) {
    let reg = Registry::start(Some(("alice", "s3cret-pw")));
    let built = busybox("unused", "auth");
    let auth = RegistryAuth::Basic("alice".into(), "s3cret-pw".into());
    push(&reg, "private/app", "1", &built, &auth).await;
    t.trust_loopback_registry(&reg.host);
    let name = format!("{}/private/app:1", reg.host);
    let e = t
        .pull(&name, None)
        .await
        .expect_err("anonymous pull must fail");
    assert!(t.status(&name).await.is_none(), "{e}");
    let bad = pb::AuthConfig {
        username: "alice".into(),
        password: "wrong".into(),
        ..Default::default()
    };
    t.pull(&name, Some(bad))
        .await
        .expect_err("wrong password must fail");
    let good = pb::AuthConfig {
        username: "alice".into(),
        password: "s3cret-pw".into(),
        ..Default::default()
    };
    assert_eq!(
        t.pull(&name, Some(good)).await.expect("pull with auth"),
        built.id()
    );
}

pub async fn pull_with_credentials_from_registries_file(mut t: Target) {
    let reg = Registry::start(Some(("bob", "pw-from-file")));
    let built = busybox("unused", "authfile");
    let auth = RegistryAuth::Basic("bob".into(), "pw-from-file".into());
    push(&reg, "private/file", "1", &built, &auth).await;
    let cfg = format!(
        "configs:\n  \"{h}\":\n    auth:\n      username: bob\n      password: pw-from-file\n",
        h = reg.host
    );
    std::fs::write(t.dir.path().join("data/registries.yaml"), cfg).unwrap();
    let name = format!("{}/private/file:1", reg.host);
    assert_eq!(t.pull(&name, None).await.expect("pull"), built.id());
}

pub async fn pull_errors_name_the_image_and_change_nothing(mut t: Target) {
    let reg = Registry::start(None);
    t.trust_loopback_registry(&reg.host);
    let before = t.list(None).await;
    let name = format!("{}/cri/nope:v1", reg.host);
    let e = t.pull(&name, None).await.expect_err("missing image");
    assert!(e.message().contains("cri/nope"), "{e}");
    let e = t.pull("Not A/Valid:Ref", None).await.expect_err("bad ref");
    assert_ne!(e.code(), tonic::Code::Ok);
    // a registry that is not listening
    let port = crate::harness::free_port();
    let dead = format!("127.0.0.1:{port}");
    t.trust_loopback_registry(&dead);
    let e = t
        .pull(&format!("{dead}/x/y:1"), None)
        .await
        .expect_err("dead registry");
    assert!(e.message().contains("x/y"), "{e}");
    assert_eq!(t.list(None).await, before);
    if t.kind == Kind::Oxkube {
        let root = t.dir.path().join("data/agent/images");
        for d in ["blobs/sha256", "snapshots", "tmp"] {
            assert_eq!(
                std::fs::read_dir(root.join(d)).unwrap().count(),
                0,
                "{d} left behind"
            );
        }
    }
}

pub async fn pull_while_import_runs_from_cli(mut t: Target) {
    let reg = Registry::start(None);
    let pulled = busybox("unused", "concurrent-pull");
    push(&reg, "cri/conc", "1", &pulled, &RegistryAuth::Anonymous).await;
    let imported = busybox("docker.io/library/conc-import:1", "concurrent-import");
    let archive = t.dir.path().join("conc.tar");
    testimage::write_oci_archive(&archive, &[&imported]).unwrap();
    let name = format!("{}/cri/conc:1", reg.host);
    let mut img = t.img.clone();
    let pull = img.pull_image(pb::PullImageRequest {
        image: Some(crate::harness::spec(&name)),
        auth: None,
        sandbox_config: None,
    });
    let (pull, ()) = tokio::join!(pull, t.import(&archive));
    assert_eq!(pull.expect("pull").into_inner().image_ref, pulled.id());
    assert_eq!(t.status("conc-import:1").await.unwrap().id, imported.id());
    assert_eq!(t.status(&name).await.unwrap().id, pulled.id());
}
