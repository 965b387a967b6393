//! `KubeVolumeApi` against a tiny HTTP server standing in for the API server: the paths, verbs and
//! bodies it sends (TokenRequest included) and how it reads NotFound and other failures.

use std::sync::{Arc, Mutex};

use kubelet::volumes::token::token_request;
use kubelet::volumes::{KubeVolumeApi, VolumeApi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

fn status(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": reason, "code": code
    })
    .to_string()
}

async fn api_server() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                loop {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                    let mut first = head.split(' ');
                    let method = first.next().unwrap().to_string();
                    // the query (kube-rs sends an empty one on POST) is not part of the route
                    let path = first.next().unwrap().split('?').next().unwrap().to_string();
                    s.lock()
                        .unwrap()
                        .push((method.clone(), path.clone(), body.clone()));
                    let (code, json) = match (method.as_str(), path.as_str()) {
                        ("POST", "/api/v1/namespaces/ns/serviceaccounts/builder/token") => {
                            let mut tr: serde_json::Value = serde_json::from_str(&body).unwrap();
                            tr["status"] = serde_json::json!({
                                "token": "jwt-abc", "expirationTimestamp": "2030-01-01T00:00:00Z"
                            });
                            (201, tr.to_string())
                        }
                        ("GET", "/api/v1/namespaces/ns/configmaps/app") => (
                            200,
                            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "app", "namespace": "ns"}, "data": {"k": "v"}})
                            .to_string(),
                        ),
                        ("GET", "/api/v1/namespaces/ns/secrets/forbidden") => (
                            403,
                            status(403, "Forbidden", "secrets \"forbidden\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\""),
                        ),
                        (_, p) => (404, status(404, "NotFound", &format!("{p} not found"))),
                    };
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                        json.len()
                    );
                    if stream.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn kube_volume_api_requests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (url, seen) = api_server().await;
    let config = kube::Config::new(url.parse().unwrap());
    let api = KubeVolumeApi::new(kube::Client::try_from(config).unwrap());

    let cm = api.config_map("ns", "app").await.unwrap().unwrap();
    assert_eq!(cm.data.unwrap()["k"], "v");
    assert!(api.config_map("ns", "missing").await.unwrap().is_none());
    assert!(api.persistent_volume("pv1").await.unwrap().is_none());
    assert!(api
        .persistent_volume_claim("ns", "c")
        .await
        .unwrap()
        .is_none());
    let err = api.secret("ns", "forbidden").await.unwrap_err();
    assert!(!err.not_found);
    assert!(
        err.message
            .starts_with("secrets \"forbidden\" is forbidden"),
        "{}",
        err.message
    );

    let tr = api
        .create_token(
            "ns",
            "builder",
            &token_request("web", "uid-1", "vault", Some(600)),
        )
        .await
        .unwrap();
    assert_eq!(tr.status.unwrap().token, "jwt-abc");

    let seen = seen.lock().unwrap();
    let paths: Vec<(&str, &str)> = seen
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("GET", "/api/v1/namespaces/ns/configmaps/app"),
            ("GET", "/api/v1/namespaces/ns/configmaps/missing"),
            ("GET", "/api/v1/persistentvolumes/pv1"),
            ("GET", "/api/v1/namespaces/ns/persistentvolumeclaims/c"),
            ("GET", "/api/v1/namespaces/ns/secrets/forbidden"),
            (
                "POST",
                "/api/v1/namespaces/ns/serviceaccounts/builder/token"
            ),
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&seen.last().unwrap().2).unwrap();
    assert_eq!(body["kind"], "TokenRequest");
    assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(body["spec"]["audiences"], serde_json::json!(["vault"]));
    assert_eq!(body["spec"]["expirationSeconds"], 600);
    assert_eq!(
        body["spec"]["boundObjectRef"],
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-1"})
    );
}
