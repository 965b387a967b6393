//! End-to-end: service account tokens with the real kubectl — `kubectl create token` (plain,
//! pod-bound, other audience) authenticates with `kubectl auth whoami`; expired, forged,
//! deleted-account and deleted-pod tokens get 401; TokenReview; legacy token Secrets filled by
//! the controller manager; issuer discovery; the default tolerations added to pods.

mod common;

use std::time::{Duration, Instant};

use apimachinery::satoken::{self, BoundToken, Ref, Signer};
use common::Cluster;
use serde_json::{json, Value};

/// A kubeconfig that authenticates with a bearer token only.
fn token_kubeconfig(c: &Cluster, token: &str) -> std::path::PathBuf {
    let path = c
        .data_dir()
        .join(format!("token-{}.kubeconfig", &token[token.len() - 12..]));
    let ca = c.data_dir().join("tls/ca.crt");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: {}\n    server: {}\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n",
        ca.display(),
        c.url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `kubectl auth whoami -o json` as the token's user: Ok(userInfo) or Err(stderr).
fn whoami(c: &Cluster, token: &str) -> Result<Value, String> {
    let kc = token_kubeconfig(c, token);
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["auth", "whoami", "-o", "json"])
        .output()
        .unwrap();
    if out.status.success() {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Ok(v["status"]["userInfo"].clone())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[track_caller]
fn assert_unauthorized(r: Result<Value, String>) {
    match r {
        Ok(u) => panic!("token unexpectedly authenticated as {u}"),
        Err(e) => assert!(
            e.contains("Unauthorized") || e.contains("must be logged in"),
            "expected 401, got: {e}"
        ),
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn service_account_tokens_authenticate_until_revoked() {
    let c = Cluster::start();
    c.kubectl(&["create", "serviceaccount", "robot"]);
    let token = c.kubectl(&["create", "token", "robot"]).trim().to_string();
    let u = whoami(&c, &token).expect("token authenticates");
    assert_eq!(u["username"], "system:serviceaccount:default:robot");
    let groups: Vec<&str> = u["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    let sa_uid = c.kubectl(&["get", "sa", "robot", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(u["uid"], sa_uid.as_str());
    // `kubectl --token` on top of the admin kubeconfig: the token is who the request is
    let flag = format!("--token={token}");
    let who: Value =
        serde_json::from_str(&c.kubectl(&[&flag, "auth", "whoami", "-o", "json"])).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:default:robot"
    );
    assert!(u["extra"]["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .unwrap()
        .starts_with("JTI="));

    // kubectl 1.32 sends the TokenRequest as protobuf
    let out = c.kubectl132(&["create", "token", "robot", "--duration", "15m"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t132 = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        whoami(&c, &t132).expect("1.32 token authenticates")["username"],
        "system:serviceaccount:default:robot"
    );
    let claims: Value = {
        use base64::Engine;
        let part = t132.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );

    // the TokenRequest itself: defaults echoed, 10 minute minimum enforced
    let out = c.kubectl(&[
        "create",
        "token",
        "robot",
        "--duration",
        "20m",
        "-o",
        "json",
    ]);
    let tr: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["spec"]["expirationSeconds"], 1200);
    assert_eq!(tr["spec"]["audiences"], json!([satoken::DEFAULT_ISSUER]));
    let err = c.kubectl_err(&["create", "token", "robot", "--duration", "5m"]);
    assert!(err.contains("less than 10 minutes"), "{err}");
    let err = c.kubectl_err(&["create", "token", "nobody"]);
    assert!(err.contains("not found"), "{err}");

    // a token for another audience is not accepted by the API server; TokenReview with that
    // audience accepts it
    let vault = c
        .kubectl(&["create", "token", "robot", "--audience", "vault"])
        .trim()
        .to_string();
    assert_unauthorized(whoami(&c, &vault));
    let review = |token: &str, auds: Value| -> Value {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token, "audiences": auds}});
        let out = c.kubectl_stdin(
            &[
                "create",
                "--raw",
                "/apis/authentication.k8s.io/v1/tokenreviews",
                "-f",
                "-",
            ],
            &body.to_string(),
        );
        serde_json::from_str(&out).unwrap()
    };
    let r = review(&vault, json!(["vault"]));
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(r["status"]["audiences"], json!(["vault"]));
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:default:robot"
    );
    let r = review(&token, json!([]));
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    let r = review(&vault, json!([]));
    assert_eq!(r["status"]["authenticated"], false, "{r}");

    // expired and forged tokens
    let key = std::fs::read_to_string(c.data_dir().join("tls/service-account.key")).unwrap();
    let real = Signer::from_pem(&key).unwrap();
    let claims = |issued_at: i64, secs: i64| {
        BoundToken {
            issuer: satoken::DEFAULT_ISSUER.into(),
            audiences: vec![satoken::DEFAULT_ISSUER.into()],
            issued_at,
            expiration_seconds: secs,
            namespace: "default".into(),
            service_account: Ref {
                name: "robot".into(),
                uid: sa_uid.clone(),
            },
            id: "test".into(),
            ..Default::default()
        }
        .claims()
    };
    // control: the same claims, freshly signed with the cluster key, do authenticate
    let fresh = real.sign(&claims(now(), 600)).unwrap();
    assert!(whoami(&c, &fresh).is_ok());
    let expired = real.sign(&claims(now() - 7200, 3600)).unwrap();
    assert_unauthorized(whoami(&c, &expired));
    let forged_key = {
        let dir = tempfile::tempdir().unwrap();
        apiserver::pki::Pki::load_or_create(dir.path(), &Default::default())
            .unwrap()
            .service_account_key_pem
    };
    let forged = Signer::from_pem(&forged_key)
        .unwrap()
        .sign(&claims(now(), 600))
        .unwrap();
    assert_unauthorized(whoami(&c, &forged));

    // a pod-bound token dies with its pod
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"serviceAccountName":"robot","containers":[{"name":"c","image":"busybox"}]}}"#,
    );
    // the ServiceAccount admission mounted the projected token volume
    let web: Value =
        serde_json::from_str(&c.kubectl(&["get", "pod", "web", "-o", "json"])).unwrap();
    let vol = &web["spec"]["volumes"][0];
    assert!(
        vol["name"]
            .as_str()
            .unwrap()
            .starts_with("kube-api-access-"),
        "{vol}"
    );
    assert_eq!(
        vol["projected"]["sources"][0]["serviceAccountToken"]["path"],
        "token"
    );
    assert_eq!(
        web["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    let bound = c
        .kubectl(&[
            "create",
            "token",
            "robot",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "web",
        ])
        .trim()
        .to_string();
    let u = whoami(&c, &bound).expect("pod-bound token authenticates");
    assert_eq!(
        u["extra"]["authentication.kubernetes.io/pod-name"][0],
        "web"
    );
    let err = c.kubectl_err(&[
        "create",
        "token",
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "web",
    ]);
    assert!(
        err.contains("to pod running with serviceaccount \"robot\""),
        "{err}"
    );
    c.kubectl(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    wait_for("the pod-bound token to stop working", || {
        whoami(&c, &bound).is_err().then_some(())
    });
    assert_unauthorized(whoami(&c, &bound));

    // deleting the service account revokes its tokens
    c.kubectl(&["delete", "serviceaccount", "robot"]);
    wait_for("the token to stop working", || {
        whoami(&c, &token).is_err().then_some(())
    });
    assert_unauthorized(whoami(&c, &token));
    // a new account of the same name does not revive them (another uid)
    c.kubectl(&["create", "serviceaccount", "robot"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_unauthorized(whoami(&c, &token));
}

#[test]
fn legacy_token_secrets_discovery_and_default_tolerations() {
    let c = Cluster::start_with(&[
        "--default-not-ready-toleration-seconds",
        "17",
        "--default-unreachable-toleration-seconds",
        "23",
    ]);
    c.kubectl(&["create", "serviceaccount", "builder"]);
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"builder-token","annotations":{"kubernetes.io/service-account.name":"builder"}},"type":"kubernetes.io/service-account-token"}"#,
    );
    let secret: Value = wait_for("the token controller to fill the secret", || {
        let v: Value =
            serde_json::from_str(&c.kubectl(&["get", "secret", "builder-token", "-o", "json"]))
                .unwrap();
        v["data"]["token"].is_string().then_some(v)
    });
    use base64::Engine;
    let b64 = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(secret["data"][k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(b64("namespace"), "default");
    assert_eq!(
        b64("ca.crt"),
        std::fs::read_to_string(c.data_dir().join("tls/ca.crt")).unwrap()
    );
    let sa_uid = c.kubectl(&["get", "sa", "builder", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        sa_uid.as_str()
    );
    let legacy = b64("token");
    let u = whoami(&c, &legacy).expect("legacy token authenticates");
    assert_eq!(u["username"], "system:serviceaccount:default:builder");
    // the service account goes: the controller deletes the secret, the token stops working
    c.kubectl(&["delete", "serviceaccount", "builder"]);
    wait_for("the token secret to be deleted", || {
        let out = c.kubectl_raw(&["get", "secret", "builder-token"]);
        (!out.status.success()).then_some(())
    });
    assert_unauthorized(whoami(&c, &legacy));

    // discovery lists the subresource; the issuer documents are served
    let v1: Value = serde_json::from_str(&c.kubectl(&["get", "--raw", "/api/v1"])).unwrap();
    let token_res = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .expect("serviceaccounts/token in discovery");
    assert_eq!(token_res["kind"], "TokenRequest");
    assert_eq!(token_res["group"], "authentication.k8s.io");
    let oidc: Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/.well-known/openid-configuration"]))
            .unwrap();
    assert_eq!(oidc["issuer"], satoken::DEFAULT_ISSUER);
    assert_eq!(
        oidc["jwks_uri"],
        format!("https://127.0.0.1:{}/openid/v1/jwks", c.port)
    );
    let jwks: Value =
        serde_json::from_str(&c.kubectl(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    let key = std::fs::read_to_string(c.data_dir().join("tls/service-account.key")).unwrap();
    assert_eq!(
        jwks["keys"][0]["kid"],
        Signer::from_pem(&key).unwrap().public_key().kid.as_str()
    );

    // pods get the default NoExecute tolerations with the configured seconds
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#,
    );
    let tols: Value = serde_json::from_str(&c.kubectl(&[
        "get",
        "pod",
        "p",
        "-o",
        "jsonpath={.spec.tolerations}",
    ]))
    .unwrap();
    assert_eq!(
        tols,
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 17},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 23},
        ])
    );
}
