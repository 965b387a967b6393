//! Service account tokens at the API server: the `serviceaccounts/token` subresource
//! (TokenRequest), the bearer-JWT authenticator (bound and legacy tokens, checked against the
//! live ServiceAccount and bound objects), and the issuer discovery documents
//! (`/.well-known/openid-configuration`, `/openid/v1/jwks`).

use std::sync::Arc;

use apimachinery::satoken::{self, BoundToken, Identity, PublicKey, Ref, Signer};
use apimachinery::{ApiError, FieldError};
use serde_json::{json, Value};

use crate::auth::{TokenAuthenticator, UserInfo};
use crate::cache::WatchCache;

/// Tokens older than this after their bound object's deletion started are rejected (upstream
/// tolerates the object's graceful deletion for a minute).
const DELETION_GRACE_SECONDS: i64 = 60;

/// Where the authenticator reads the objects a token refers to (the watch cache in the server,
/// a map in tests).
pub trait ObjectSource: Send + Sync {
    /// The object stored at a registry key.
    fn object(&self, key: &str) -> Option<Arc<Value>>;
}

impl ObjectSource for WatchCache {
    fn object(&self, key: &str) -> Option<Arc<Value>> {
        let prefix = crate::cache::resource_prefix(key)?;
        self.resource(prefix).get(key).map(|c| c.obj())
    }
}

fn sa_key(ns: &str, name: &str) -> String {
    format!("/registry/core/serviceaccounts/{ns}/{name}")
}
fn pod_key(ns: &str, name: &str) -> String {
    format!("/registry/core/pods/{ns}/{name}")
}
fn secret_key(ns: &str, name: &str) -> String {
    format!("/registry/core/secrets/{ns}/{name}")
}
fn node_key(name: &str) -> String {
    format!("/registry/core/nodes/{name}")
}

fn uid(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2026-01-02T03:04:05Z`).
fn parse_rfc3339(s: &str) -> Option<i64> {
    apimachinery::table::Timestamp::parse_rfc3339(s)
        .ok()
        .map(|t| t.unix_seconds())
}

fn rfc3339(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Whether an object's deletion started more than the grace before `now`.
fn deleted_long_ago(obj: &Value, now: i64) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .is_some_and(|t| t + DELETION_GRACE_SECONDS < now)
}

/// Issues and verifies service account tokens with the cluster key.
pub struct Tokens {
    signer: Signer,
    keys: Vec<PublicKey>,
    /// The issuer written into bound tokens (and accepted by the authenticator).
    pub issuer: String,
    /// The audiences tokens are valid for at this API server (`--api-audiences`).
    pub api_audiences: Vec<String>,
    objects: Arc<dyn ObjectSource>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(
        key_pem: &str,
        issuer: &str,
        api_audiences: Vec<String>,
        objects: Arc<dyn ObjectSource>,
    ) -> Result<Tokens, satoken::TokenError> {
        let signer = Signer::from_pem(key_pem)?;
        let keys = vec![signer.public_key().clone()];
        Ok(Tokens {
            signer,
            keys,
            issuer: issuer.to_string(),
            api_audiences,
            objects,
        })
    }

    /// Sign arbitrary claims (legacy tokens, tests).
    pub fn sign(&self, claims: &Value) -> Result<String, satoken::TokenError> {
        self.signer.sign(claims)
    }

    /// Authenticate a token for `audiences`; returns the user and the audiences it matched.
    pub fn authenticate_token(
        &self,
        token: &str,
        audiences: &[String],
        now: i64,
    ) -> Result<(UserInfo, Vec<String>), String> {
        let claims = satoken::verify(token, &self.keys).map_err(|e| e.to_string())?;
        let id = satoken::validate(&claims, std::slice::from_ref(&self.issuer), now, audiences)
            .map_err(|e| e.to_string())?;
        self.check_objects(&id, token, now)?;
        let mut user = UserInfo {
            username: id.username(),
            uid: id.service_account.uid.clone(),
            groups: id.groups(),
            ..Default::default()
        };
        user.groups.push("system:authenticated".into());
        for (k, v) in id.extra() {
            user.extra.entry(k).or_default().push(v);
        }
        Ok((user, id.audiences))
    }

    /// The service account and the bound objects must still exist with the token's uids.
    fn check_objects(&self, id: &Identity, token: &str, now: i64) -> Result<(), String> {
        let ns = &id.namespace;
        let sa = self
            .objects
            .object(&sa_key(ns, &id.service_account.name))
            .ok_or_else(|| format!("serviceaccounts \"{}\" not found", id.service_account.name))?;
        if uid(&sa) != id.service_account.uid {
            return Err(format!(
                "service account UID ({}) does not match claim ({})",
                uid(&sa),
                id.service_account.uid
            ));
        }
        if deleted_long_ago(&sa, now) {
            return Err("service account has been deleted".into());
        }
        if id.legacy {
            let name = &id
                .secret
                .as_ref()
                .expect("legacy tokens name a secret")
                .name;
            let secret = self
                .objects
                .object(&secret_key(ns, name))
                .ok_or_else(|| format!("secrets \"{name}\" not found"))?;
            let stored = secret
                .pointer("/data/token")
                .and_then(Value::as_str)
                .and_then(|b| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                });
            if stored.as_deref() != Some(token.as_bytes()) {
                return Err("token does not match the one stored in its secret".into());
            }
            if deleted_long_ago(&secret, now) {
                return Err("token secret has been deleted".into());
            }
            return Ok(());
        }
        let check = |what: &str, key: String, r: &Ref| -> Result<(), String> {
            let obj = self
                .objects
                .object(&key)
                .ok_or_else(|| format!("{what} \"{}\" not found", r.name))?;
            if uid(&obj) != r.uid {
                return Err(format!(
                    "{what} UID ({}) does not match claim ({})",
                    uid(&obj),
                    r.uid
                ));
            }
            if deleted_long_ago(&obj, now) {
                return Err(format!("{what} \"{}\" has been deleted", r.name));
            }
            Ok(())
        };
        if let Some(p) = &id.pod {
            check("pods", pod_key(ns, &p.name), p)?;
        }
        if let Some(s) = &id.secret {
            check("secrets", secret_key(ns, &s.name), s)?;
        }
        // a pod-bound token names its node for information only; a node-bound one needs it
        if id.pod.is_none() {
            if let Some(n) = &id.node {
                check("nodes", node_key(&n.name), n)?;
            }
        }
        Ok(())
    }

    /// The OpenID discovery document of the issuer; its keys are served by the API server at
    /// `server_address` (host:port), as upstream's default jwks_uri.
    pub fn openid_configuration(&self, server_address: &str) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("https://{server_address}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    /// The public keys that verify tokens, as a JWK set.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(PublicKey::jwk).collect::<Vec<_>>()})
    }

    /// Answer a TokenRequest for service account `ns/name` (already read from the store by
    /// the caller as `sa`); `lookup(kind, name)` reads the bound Pod, Secret or Node.
    pub fn request(
        &self,
        sa: &Value,
        mut req: Value,
        lookup: impl Fn(&str, &str) -> Option<Value>,
        jti: &str,
        now: i64,
    ) -> Result<Value, ApiError> {
        let ns = sa
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let sa_name = sa
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let invalid = |errs: Vec<FieldError>| {
            ApiError::invalid("authentication.k8s.io", "TokenRequest", &sa_name, errs)
        };
        let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
        let exp = match spec.get("expirationSeconds") {
            None | Some(Value::Null) => satoken::DEFAULT_EXPIRATION_SECONDS,
            Some(v) => v.as_i64().ok_or_else(|| {
                invalid(vec![FieldError::invalid(
                    "spec.expirationSeconds",
                    v,
                    "must be an integer",
                )])
            })?,
        };
        if exp < satoken::MIN_EXPIRATION_SECONDS {
            return Err(invalid(vec![FieldError::invalid(
                "spec.expirationSeconds",
                &json!(exp),
                "may not specify a duration less than 10 minutes",
            )]));
        }
        if exp > satoken::MAX_EXPIRATION_SECONDS {
            return Err(invalid(vec![FieldError::invalid(
                "spec.expirationSeconds",
                &json!(exp),
                "may not specify a duration larger than 2^32 seconds",
            )]));
        }
        let mut audiences: Vec<String> = spec
            .get("audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if audiences.is_empty() {
            audiences = self.api_audiences.clone();
        }
        let mut pod = None;
        let mut secret = None;
        let mut node = None;
        if let Some(r) = spec.get("boundObjectRef").filter(|r| !r.is_null()) {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (kind, api_version, name, want_uid) =
                (s("kind"), s("apiVersion"), s("name"), s("uid"));
            let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            if name.is_empty() {
                return Err(invalid(vec![FieldError::required(
                    "spec.boundObjectRef.name",
                    "",
                )]));
            }
            let (resource, obj) = match (group, kind.as_str()) {
                ("", "Pod") => ("pods", lookup("Pod", &name)),
                ("", "Secret") => ("secrets", lookup("Secret", &name)),
                ("", "Node") => ("nodes", lookup("Node", &name)),
                _ => {
                    let gvk = if group.is_empty() {
                        format!("/{}, Kind={kind}", api_version)
                    } else {
                        format!(
                            "{group}/{}, Kind={kind}",
                            api_version.rsplit('/').next().unwrap_or("")
                        )
                    };
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token to object of type {gvk}"
                    )));
                }
            };
            let obj = obj.ok_or_else(|| ApiError::not_found("", resource, &name))?;
            let actual = uid(&obj).to_string();
            if !want_uid.is_empty() && want_uid != actual {
                return Err(ApiError::conflict(
                    "",
                    &kind,
                    &name,
                    &format!("the UID in the bound object reference ({want_uid}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"),
                ));
            }
            let r = Ref {
                name: name.clone(),
                uid: actual,
            };
            match kind.as_str() {
                "Pod" => {
                    let pod_sa = obj
                        .pointer("/spec/serviceAccountName")
                        .and_then(Value::as_str)
                        .unwrap_or("default");
                    if pod_sa != sa_name {
                        return Err(ApiError::bad_request(format!(
                            "cannot bind token for serviceaccount \"{sa_name}\" to pod running with serviceaccount \"{pod_sa}\""
                        )));
                    }
                    // the pod's node is embedded too (ServiceAccountTokenPodNodeInfo)
                    if let Some(n) = obj
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty())
                    {
                        if let Some(nobj) = lookup("Node", n) {
                            node = Some(Ref {
                                name: n.to_string(),
                                uid: uid(&nobj).to_string(),
                            });
                        }
                    }
                    pod = Some(r);
                }
                "Secret" => secret = Some(r),
                _ => node = Some(r),
            }
        }
        // the kubelet's projected tokens live a year, with a warning after the asked hour
        let (lifetime, warn_after) = if pod.is_some() && exp == satoken::KUBELET_EXPIRATION_SECONDS
        {
            (satoken::EXTENDED_EXPIRATION_SECONDS, Some(now + exp))
        } else {
            (exp, None)
        };
        let bound = BoundToken {
            issuer: self.issuer.clone(),
            audiences: audiences.clone(),
            issued_at: now,
            expiration_seconds: lifetime,
            warn_after,
            namespace: ns.clone(),
            service_account: Ref {
                name: sa_name.clone(),
                uid: uid(sa).to_string(),
            },
            pod,
            secret,
            node,
            id: jti.to_string(),
        };
        let token = self
            .signer
            .sign(&bound.claims())
            .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
        req["apiVersion"] = json!("authentication.k8s.io/v1");
        req["kind"] = json!("TokenRequest");
        let meta = req
            .get("metadata")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        req["metadata"] = meta;
        req["metadata"]["name"] = json!(sa_name);
        req["metadata"]["namespace"] = json!(ns);
        req["metadata"]["creationTimestamp"] = Value::Null;
        req["spec"]["audiences"] = json!(audiences);
        req["spec"]["expirationSeconds"] = json!(exp);
        if req["spec"].get("boundObjectRef").is_none() {
            req["spec"]["boundObjectRef"] = Value::Null;
        }
        req["status"] = json!({
            "token": token,
            "expirationTimestamp": rfc3339(bound.expires_at()),
        });
        Ok(req)
    }
}

/// Where the service account token volume is mounted in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The lifetime the kubelet asks for when it projects the token (upstream's 3607 s).
const PROJECTED_TOKEN_SECONDS: i64 = satoken::KUBELET_EXPIRATION_SECONDS;

/// The service account of a new pod: `spec.serviceAccountName`, else the deprecated
/// `spec.serviceAccount`, else `default`; both fields are set to it (as upstream's v1 form).
pub fn pod_service_account(pod: &mut Value) -> String {
    let get = |k: &str| {
        pod.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let name = get("serviceAccountName")
        .or_else(|| get("serviceAccount"))
        .unwrap_or_else(|| "default".to_string());
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("serviceAccountName".into(), json!(name));
        spec.insert("serviceAccount".into(), json!(name));
    }
    name
}

/// Upstream's ServiceAccount admission of a new pod, given its service account object:
/// copies the account's imagePullSecrets when the pod has none, and unless automounting is
/// off (pod, else account) adds the `kube-api-access-<suffix>` projected volume (token,
/// kube-root-ca.crt, namespace) mounted read-only at [`TOKEN_MOUNT_PATH`] in every container
/// and init container that does not mount something there already. Mirror pods are left alone.
pub fn admit_pod(pod: &mut Value, sa: &Value, volume_suffix: &str) {
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let no_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_pull_secrets {
        if let Some(ps) = sa
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
        {
            spec.insert("imagePullSecrets".into(), Value::Array(ps.clone()));
        }
    }
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if !automount {
        return;
    }
    let mounts_path = |c: &Value| {
        c.get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH))
    };
    let wants: Vec<(&str, usize)> = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| {
            spec.get(*list)
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .enumerate()
                        .filter(|(_, c)| !mounts_path(c))
                        .map(|(i, _)| (*list, i))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    if wants.is_empty() {
        return;
    }
    let volume = format!("kube-api-access-{volume_suffix}");
    for (list, i) in wants {
        let c = &mut spec.get_mut(list).expect("listed above")[i];
        let mounts = c
            .as_object_mut()
            .expect("containers are objects")
            .entry("volumeMounts")
            .or_insert_with(|| json!([]));
        if let Some(ms) = mounts.as_array_mut() {
            ms.push(json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
        }
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if !volumes.is_array() {
        *volumes = json!([]);
    }
    volumes.as_array_mut().expect("set above").push(json!({
        "name": volume,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }));
}

/// The bearer authenticator of service account JWTs at this API server's audiences.
pub struct ServiceAccountAuthenticator(pub Arc<Tokens>);

impl TokenAuthenticator for ServiceAccountAuthenticator {
    fn authenticate(&self, token: &str) -> Option<UserInfo> {
        let auds = &self.0.api_audiences;
        self.authenticate_audiences(token, auds, auds)
            .map(|(u, _)| u)
    }

    fn authenticate_audiences(
        &self,
        token: &str,
        audiences: &[String],
        _api_audiences: &[String],
    ) -> Option<(UserInfo, Vec<String>)> {
        if !satoken::looks_like_jwt(token) {
            return None;
        }
        match self.0.authenticate_token(token, audiences, now_unix()) {
            Ok(r) => Some(r),
            Err(reason) => {
                tracing::debug!(%reason, "service account token rejected");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Objects(Mutex<HashMap<String, Arc<Value>>>);

    impl ObjectSource for Objects {
        fn object(&self, key: &str) -> Option<Arc<Value>> {
            self.0.lock().unwrap().get(key).cloned()
        }
    }

    impl Objects {
        fn put(&self, key: String, v: Value) {
            self.0.lock().unwrap().insert(key, Arc::new(v));
        }
        fn remove(&self, key: &str) {
            self.0.lock().unwrap().remove(key);
        }
    }

    fn t_auds() -> Vec<String> {
        vec![satoken::DEFAULT_ISSUER.to_string()]
    }

    fn obj(ns: &str, name: &str, uid: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "uid": uid}})
    }

    fn setup() -> (Arc<Objects>, Tokens) {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_create(dir.path(), &crate::pki::ServingNames::default())
            .unwrap();
        let objects = Arc::new(Objects::default());
        objects.put(sa_key("ns", "robot"), obj("ns", "robot", "sa-1"));
        let tokens = Tokens::new(
            &pki.service_account_key_pem,
            satoken::DEFAULT_ISSUER,
            vec![satoken::DEFAULT_ISSUER.into()],
            objects.clone(),
        )
        .unwrap();
        (objects, tokens)
    }

    fn issue(t: &Tokens, spec: Value, lookup: &Objects, now: i64) -> Result<Value, ApiError> {
        let sa = lookup.object(&sa_key("ns", "robot")).unwrap();
        t.request(
            &sa,
            json!({"spec": spec}),
            |kind, name| {
                let key = match kind {
                    "Pod" => pod_key("ns", name),
                    "Secret" => secret_key("ns", name),
                    _ => node_key(name),
                };
                lookup.object(&key).map(|v| (*v).clone())
            },
            "jti-x",
            now,
        )
    }

    #[test]
    fn requested_token_authenticates_as_the_service_account() {
        let (objects, t) = setup();
        let now = now_unix();
        let out = issue(&t, json!({}), &objects, now).unwrap();
        assert_eq!(out["spec"]["expirationSeconds"], 3600);
        assert_eq!(out["spec"]["audiences"], json!([satoken::DEFAULT_ISSUER]));
        assert_eq!(out["status"]["expirationTimestamp"], rfc3339(now + 3600));
        let token = out["status"]["token"].as_str().unwrap();
        let a = ServiceAccountAuthenticator(Arc::new(t));
        let u = a.authenticate(token).unwrap();
        assert_eq!(u.username, "system:serviceaccount:ns:robot");
        assert_eq!(u.uid, "sa-1");
        assert_eq!(
            u.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
        assert_eq!(
            u.extra["authentication.kubernetes.io/credential-id"],
            vec!["JTI=jti-x"]
        );
        // another audience than the API's is not accepted by the API
        assert!(a
            .authenticate_audiences(token, &["vault".to_string()], &t_auds())
            .is_none());
    }

    #[test]
    fn deleted_or_recreated_service_account_invalidates_tokens() {
        let (objects, t) = setup();
        let out = issue(&t, json!({}), &objects, now_unix()).unwrap();
        let token = out["status"]["token"].as_str().unwrap().to_string();
        let t = Arc::new(t);
        let a = ServiceAccountAuthenticator(t.clone());
        assert!(a.authenticate(&token).is_some());
        objects.put(sa_key("ns", "robot"), obj("ns", "robot", "sa-2"));
        assert!(t
            .authenticate_token(&token, &t.api_audiences, now_unix())
            .unwrap_err()
            .contains("does not match"));
        objects.remove(&sa_key("ns", "robot"));
        assert!(a.authenticate(&token).is_none());
    }

    #[test]
    fn pod_bound_tokens_follow_the_pod() {
        let (objects, t) = setup();
        let mut pod = obj("ns", "web", "pod-1");
        pod["spec"] = json!({"serviceAccountName": "robot", "nodeName": "n1"});
        objects.put(pod_key("ns", "web"), pod);
        objects.put(node_key("n1"), obj("", "n1", "node-1"));
        let now = now_unix();
        let spec = json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web"}, "expirationSeconds": 3607});
        let out = issue(&t, spec, &objects, now).unwrap();
        // the kubelet's 3607 s is extended to a year
        assert_eq!(
            out["status"]["expirationTimestamp"],
            rfc3339(now + satoken::EXTENDED_EXPIRATION_SECONDS)
        );
        let token = out["status"]["token"].as_str().unwrap().to_string();
        let t = Arc::new(t);
        let (u, _) = t.authenticate_token(&token, &t.api_audiences, now).unwrap();
        assert_eq!(
            u.extra["authentication.kubernetes.io/pod-uid"],
            vec!["pod-1"]
        );
        assert_eq!(
            u.extra["authentication.kubernetes.io/node-name"],
            vec!["n1"]
        );
        // the pod recreated under the same name: the old token is dead
        objects.put(pod_key("ns", "web"), obj("ns", "web", "pod-2"));
        assert!(t.authenticate_token(&token, &t.api_audiences, now).is_err());
    }

    #[test]
    fn token_request_validation() {
        let (objects, t) = setup();
        let mut other = obj("ns", "other-sa-pod", "p9");
        other["spec"] = json!({"serviceAccountName": "builder"});
        objects.put(pod_key("ns", "other-sa-pod"), other);
        objects.put(secret_key("ns", "s"), obj("ns", "s", "sec-1"));
        let now = now_unix();
        // (spec, expected HTTP code, message fragment)
        let cases = [
            (
                json!({"expirationSeconds": 599}),
                422,
                "less than 10 minutes",
            ),
            (
                json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "missing"}}),
                404,
                "pods \"missing\" not found",
            ),
            (
                json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "other-sa-pod"}}),
                400,
                "to pod running with serviceaccount \"builder\"",
            ),
            (
                json!({"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s", "uid": "wrong"}}),
                409,
                "does not match the UID in record (sec-1)",
            ),
            (
                json!({"boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "d"}}),
                400,
                "cannot bind token to object of type apps/v1, Kind=Deployment",
            ),
        ];
        for (spec, code, msg) in cases {
            let e = issue(&t, spec.clone(), &objects, now).unwrap_err();
            assert_eq!(e.code(), code, "{spec}: {e}");
            assert!(e.to_string().contains(msg), "{spec}: {e}");
        }
        let ok = issue(
            &t,
            json!({"expirationSeconds": 600, "audiences": ["vault"], "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s", "uid": "sec-1"}}),
            &objects,
            now,
        )
        .unwrap();
        assert_eq!(ok["status"]["expirationTimestamp"], rfc3339(now + 600));
        let token = ok["status"]["token"].as_str().unwrap();
        // a token for another audience does not authenticate to the API, but does for its own
        assert!(t.authenticate_token(token, &t.api_audiences, now).is_err());
        let (_, auds) = t.authenticate_token(token, &["vault".into()], now).unwrap();
        assert_eq!(auds, vec!["vault"]);
    }

    #[test]
    fn legacy_secret_tokens_need_their_secret() {
        let (objects, t) = setup();
        let sa = Ref {
            name: "robot".into(),
            uid: "sa-1".into(),
        };
        let token = t
            .sign(&satoken::legacy_claims("ns", &sa, "robot-token"))
            .unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&token);
        let mut s = obj("ns", "robot-token", "sec");
        s["data"] = json!({"token": b64});
        objects.put(secret_key("ns", "robot-token"), s);
        let now = now_unix();
        let (u, _) = t.authenticate_token(&token, &t.api_audiences, now).unwrap();
        assert_eq!(u.username, "system:serviceaccount:ns:robot");
        objects.remove(&secret_key("ns", "robot-token"));
        assert!(t.authenticate_token(&token, &t.api_audiences, now).is_err());
    }

    #[test]
    fn pods_get_the_token_volume_unless_opted_out() {
        let pod = || {
            json!({"metadata": {"name": "p"}, "spec": {
                "initContainers": [{"name": "i", "image": "x"}],
                "containers": [
                    {"name": "a", "image": "x"},
                    {"name": "b", "image": "x", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
                ],
            }})
        };
        let sa =
            json!({"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "regcred"}]});
        let mut p = pod();
        assert_eq!(pod_service_account(&mut p), "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        admit_pod(&mut p, &sa, "abcde");
        let vol = &p["spec"]["volumes"][0];
        assert_eq!(vol["name"], "kube-api-access-abcde");
        let sources = vol["projected"]["sources"].as_array().unwrap();
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(
            p["spec"]["initContainers"][0]["volumeMounts"],
            json!([mount])
        );
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        // a container mounting its own volume there keeps it alone
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));

        // opting out on the pod, or on the account (unless the pod opts in)
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(false);
        admit_pod(&mut p, &sa, "x");
        assert!(p["spec"].get("volumes").is_none());
        let off = json!({"metadata": {"name": "default"}, "automountServiceAccountToken": false});
        let mut p = pod();
        admit_pod(&mut p, &off, "x");
        assert!(p["spec"].get("volumes").is_none());
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(true);
        admit_pod(&mut p, &off, "x");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);

        // the deprecated field names the account when the new one is empty; mirror pods skip
        let mut p = json!({"spec": {"serviceAccount": "builder", "containers": []}});
        assert_eq!(pod_service_account(&mut p), "builder");
        let mut m = pod();
        m["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
        admit_pod(&mut m, &sa, "x");
        assert!(m["spec"].get("volumes").is_none());
    }

    #[test]
    fn discovery_documents() {
        let (_, t) = setup();
        let c = t.openid_configuration("10.0.0.1:6443");
        assert_eq!(c["jwks_uri"], "https://10.0.0.1:6443/openid/v1/jwks");
        assert_eq!(c["issuer"], satoken::DEFAULT_ISSUER);
        let jwks = t.jwks();
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
        assert_eq!(jwks["keys"][0]["kid"], t.keys[0].kid);
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-27T11:00:00Z"), Some(1795777200));
        assert_eq!(rfc3339(1795777200), "2026-11-27T11:00:00Z");
    }
}
