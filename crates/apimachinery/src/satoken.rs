//! Service account tokens: ES256 JWT signing and verification with the cluster key, upstream's
//! bound-token claims (TokenRequest) and legacy secret-token claims, and their validation
//! (issuer, time, audience) into the identity the API server authenticates. Sans-IO: the
//! caller supplies the clock and the random token id, and checks the referenced objects.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;

/// The issuer of bound tokens (upstream's `--service-account-issuer` as most clusters set it).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of legacy secret-based tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// Default lifetime of a requested token (TokenRequest `expirationSeconds`).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime a TokenRequest may ask for (2^32 s).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime the kubelet asks for when it projects a token; upstream extends such pod-bound
/// tokens to a year (`--service-account-extend-token-expiration`), with `warnafter` at 1 h.
pub const KUBELET_EXPIRATION_SECONDS: i64 = 3607;
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 3600;
/// Clock skew tolerated on exp/nbf/iat (go-jose's default leeway).
pub const LEEWAY_SECONDS: i64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid signing key: {0}")]
    Key(String),
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token uses an unsupported algorithm {0}")]
    Algorithm(String),
    #[error("token has an unknown issuer")]
    Issuer,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audiences {0:?} are invalid for the target audiences")]
    Audience(Vec<String>),
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("signing failed")]
    Sign,
}

/// The DER SubjectPublicKeyInfo prefix of an uncompressed P-256 point (id-ecPublicKey, prime256v1).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The DER bytes inside the first PEM block of `pem`.
fn pem_der(pem: &str) -> Result<Vec<u8>, TokenError> {
    let mut inside = false;
    let mut b64 = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            inside = true;
        } else if line.starts_with("-----END ") {
            break;
        } else if inside {
            b64.push_str(line);
        }
    }
    STANDARD
        .decode(b64)
        .map_err(|_| TokenError::Key("not a PEM document".into()))
}

/// A public key that verifies tokens, with its key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// Uncompressed P-256 point (65 bytes).
    pub point: Vec<u8>,
}

impl PublicKey {
    fn from_point(point: Vec<u8>) -> PublicKey {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&point);
        // upstream's key id: base64url(sha256(DER public key))
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&spki));
        PublicKey { kid, point }
    }

    /// The key as a JSON Web Key (the `/openid/v1/jwks` entry).
    pub fn jwk(&self) -> Value {
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&self.point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&self.point[33..65]),
        })
    }
}

/// Signs tokens with the cluster's service account key (ECDSA P-256, PKCS#8 PEM).
pub struct Signer {
    key: EcdsaKeyPair,
    public: PublicKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn from_pem(pem: &str) -> Result<Signer, TokenError> {
        let der = pem_der(pem)?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        let public = PublicKey::from_point(key.public_key().as_ref().to_vec());
        Ok(Signer { key, public, rng })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// A compact JWS of the claims.
    pub fn sign(&self, claims: &Value) -> Result<String, TokenError> {
        let header = json!({"alg": "ES256", "kid": self.public.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| TokenError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}

/// Check a compact JWS against the given keys; returns its claims.
pub fn verify(token: &str, keys: &[PublicKey]) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed("bad header"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "ES256" {
        return Err(TokenError::Algorithm(alg.to_string()));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed("bad signature encoding"))?;
    let kid = header.get("kid").and_then(Value::as_str);
    let input = &token[..h.len() + 1 + c.len()];
    let ok = keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| kid == k.kid))
        .any(|k| {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &k.point)
                .verify(input.as_bytes(), &sig)
                .is_ok()
        });
    if !ok {
        return Err(TokenError::BadSignature);
    }
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .ok_or(TokenError::Malformed("bad claims"))
}

/// Whether a bearer token looks like a JWT (three base64url parts), so other authenticators
/// can be tried first for tokens that are not.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A name and uid of an object a token refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// What a bound token says (upstream `serviceaccount.Claims`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundToken {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Issue time, seconds since the epoch.
    pub issued_at: i64,
    pub expiration_seconds: i64,
    /// When set, the token lives a year and clients are warned after this time.
    pub warn_after: Option<i64>,
    pub namespace: String,
    pub service_account: Ref,
    pub pod: Option<Ref>,
    pub secret: Option<Ref>,
    pub node: Option<Ref>,
    /// Unique token id (jti).
    pub id: String,
}

impl BoundToken {
    pub fn expires_at(&self) -> i64 {
        self.issued_at + self.expiration_seconds
    }

    /// The JWT claims, as upstream writes them.
    pub fn claims(&self) -> Value {
        let mut k8s = json!({
            "namespace": self.namespace,
            "serviceaccount": self.service_account,
        });
        for (field, r) in [
            ("pod", &self.pod),
            ("secret", &self.secret),
            ("node", &self.node),
        ] {
            if let Some(r) = r {
                k8s[field] = json!(r);
            }
        }
        if let Some(w) = self.warn_after {
            k8s["warnafter"] = json!(w);
        }
        json!({
            "aud": self.audiences,
            "exp": self.expires_at(),
            "iat": self.issued_at,
            "iss": self.issuer,
            "jti": self.id,
            "kubernetes.io": k8s,
            "nbf": self.issued_at,
            "sub": username(&self.namespace, &self.service_account.name),
        })
    }
}

/// The claims of a legacy token stored in a `kubernetes.io/service-account-token` Secret.
pub fn legacy_claims(namespace: &str, sa: &Ref, secret_name: &str) -> Value {
    json!({
        "iss": LEGACY_ISSUER,
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": secret_name,
        "kubernetes.io/serviceaccount/service-account.name": sa.name,
        "kubernetes.io/serviceaccount/service-account.uid": sa.uid,
        "sub": username(namespace, &sa.name),
    })
}

/// The identity a verified token claims; the caller still checks that the service account
/// and bound objects exist with these uids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub service_account: Ref,
    pub pod: Option<Ref>,
    pub secret: Option<Ref>,
    pub node: Option<Ref>,
    pub id: Option<String>,
    /// The audiences of the token that matched the wanted ones.
    pub audiences: Vec<String>,
    /// A legacy secret token: `secret` names the Secret that must still hold it.
    pub legacy: bool,
}

impl Identity {
    pub fn username(&self) -> String {
        username(&self.namespace, &self.service_account.name)
    }

    /// The user's groups (without system:authenticated, which authentication adds).
    pub fn groups(&self) -> Vec<String> {
        vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{}", self.namespace),
        ]
    }

    /// The user's extra info, as upstream's authenticator sets it.
    pub fn extra(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(p) = &self.pod {
            out.push((
                "authentication.kubernetes.io/pod-name".into(),
                p.name.clone(),
            ));
            out.push(("authentication.kubernetes.io/pod-uid".into(), p.uid.clone()));
        }
        if let Some(n) = &self.node {
            out.push((
                "authentication.kubernetes.io/node-name".into(),
                n.name.clone(),
            ));
            out.push((
                "authentication.kubernetes.io/node-uid".into(),
                n.uid.clone(),
            ));
        }
        if let Some(id) = &self.id {
            out.push((
                "authentication.kubernetes.io/credential-id".into(),
                format!("JTI={id}"),
            ));
        }
        out
    }
}

pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Split `system:serviceaccount:<ns>:<name>`.
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

fn str_claim<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn ref_claim(v: &Value) -> Option<Ref> {
    serde_json::from_value(v.clone()).ok()
}

/// Check the claims of a signature-verified token: its issuer (bound tokens from `issuers`,
/// or a legacy token), exp/nbf against `now` with leeway, and that its audiences intersect
/// `wanted` (legacy tokens carry none and count for every wanted audience).
pub fn validate(
    claims: &Value,
    issuers: &[String],
    now: i64,
    wanted: &[String],
) -> Result<Identity, TokenError> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss == LEGACY_ISSUER {
        let s = |k: &'static str| {
            str_claim(claims, &format!("/kubernetes.io~1serviceaccount~1{k}"))
                .map(String::from)
                .ok_or(TokenError::MissingClaim(k))
        };
        return Ok(Identity {
            namespace: s("namespace")?,
            service_account: Ref {
                name: s("service-account.name")?,
                uid: s("service-account.uid")?,
            },
            secret: Some(Ref {
                name: s("secret.name")?,
                uid: String::new(),
            }),
            audiences: wanted.to_vec(),
            legacy: true,
            ..Default::default()
        });
    }
    if !issuers.iter().any(|i| i == iss) {
        return Err(TokenError::Issuer);
    }
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    let exp = num("exp").ok_or(TokenError::MissingClaim("exp"))?;
    if now > exp + LEEWAY_SECONDS {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = num("nbf") {
        if now + LEEWAY_SECONDS < nbf {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(iat) = num("iat") {
        if now + LEEWAY_SECONDS < iat {
            return Err(TokenError::NotYetValid);
        }
    }
    let auds: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    let matched: Vec<String> = wanted
        .iter()
        .filter(|w| auds.contains(w))
        .cloned()
        .collect();
    if matched.is_empty() {
        return Err(TokenError::Audience(auds));
    }
    let k8s = claims
        .get("kubernetes.io")
        .ok_or(TokenError::MissingClaim("kubernetes.io"))?;
    let namespace = str_claim(k8s, "/namespace")
        .ok_or(TokenError::MissingClaim("namespace"))?
        .to_string();
    let service_account = k8s
        .get("serviceaccount")
        .and_then(ref_claim)
        .filter(|r| !r.name.is_empty() && !r.uid.is_empty())
        .ok_or(TokenError::MissingClaim("serviceaccount"))?;
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if sub != username(&namespace, &service_account.name) {
        return Err(TokenError::MissingClaim("sub"));
    }
    Ok(Identity {
        namespace,
        service_account,
        pod: k8s.get("pod").and_then(ref_claim),
        secret: k8s.get("secret").and_then(ref_claim),
        node: k8s.get("node").and_then(ref_claim),
        id: claims.get("jti").and_then(Value::as_str).map(String::from),
        audiences: matched,
        legacy: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh P-256 key as PKCS#8 PEM.
    fn key_pem() -> String {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let b64 = STANDARD.encode(doc.as_ref());
        let body: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            body.join("\n")
        )
    }

    fn token(now: i64) -> BoundToken {
        BoundToken {
            issuer: DEFAULT_ISSUER.into(),
            audiences: vec![DEFAULT_ISSUER.into()],
            issued_at: now,
            expiration_seconds: 3600,
            warn_after: None,
            namespace: "ns1".into(),
            service_account: Ref {
                name: "robot".into(),
                uid: "sa-uid".into(),
            },
            pod: Some(Ref {
                name: "p".into(),
                uid: "pod-uid".into(),
            }),
            secret: None,
            node: Some(Ref {
                name: "n1".into(),
                uid: "node-uid".into(),
            }),
            id: "jti-1".into(),
        }
    }

    #[test]
    fn claims_have_upstream_shape() {
        let c = token(1000).claims();
        assert_eq!(c["sub"], "system:serviceaccount:ns1:robot");
        assert_eq!(c["iss"], DEFAULT_ISSUER);
        assert_eq!(c["aud"], json!([DEFAULT_ISSUER]));
        assert_eq!(c["iat"], 1000);
        assert_eq!(c["nbf"], 1000);
        assert_eq!(c["exp"], 4600);
        assert_eq!(c["jti"], "jti-1");
        assert_eq!(c["kubernetes.io"]["namespace"], "ns1");
        assert_eq!(
            c["kubernetes.io"]["serviceaccount"],
            json!({"name": "robot", "uid": "sa-uid"})
        );
        assert_eq!(
            c["kubernetes.io"]["pod"],
            json!({"name": "p", "uid": "pod-uid"})
        );
        assert_eq!(c["kubernetes.io"]["node"]["name"], "n1");
        assert!(c["kubernetes.io"].get("secret").is_none());
        assert!(c["kubernetes.io"].get("warnafter").is_none());
    }

    #[test]
    fn signed_token_verifies_and_validates() {
        let s = Signer::from_pem(&key_pem()).unwrap();
        let jwt = s.sign(&token(1000).claims()).unwrap();
        assert!(looks_like_jwt(&jwt));
        let claims = verify(&jwt, std::slice::from_ref(s.public_key())).unwrap();
        let id = validate(
            &claims,
            &[DEFAULT_ISSUER.into()],
            1010,
            &[DEFAULT_ISSUER.into()],
        )
        .unwrap();
        assert_eq!(id.username(), "system:serviceaccount:ns1:robot");
        assert_eq!(
            id.groups(),
            vec!["system:serviceaccounts", "system:serviceaccounts:ns1"]
        );
        assert_eq!(id.service_account.uid, "sa-uid");
        assert_eq!(id.pod.as_ref().unwrap().uid, "pod-uid");
        assert_eq!(id.node.as_ref().unwrap().name, "n1");
        assert_eq!(id.id.as_deref(), Some("jti-1"));
        assert!(!id.legacy);
        let extra = id.extra();
        assert!(extra.contains(&(
            "authentication.kubernetes.io/credential-id".into(),
            "JTI=jti-1".into()
        )));
        assert!(extra.contains(&("authentication.kubernetes.io/pod-name".into(), "p".into())));
    }

    #[test]
    fn forged_and_tampered_tokens_fail() {
        let real = Signer::from_pem(&key_pem()).unwrap();
        let forger = Signer::from_pem(&key_pem()).unwrap();
        let keys = [real.public_key().clone()];
        // signed by another key (kid differs, and with the kid removed the signature fails)
        let forged = forger.sign(&token(1000).claims()).unwrap();
        assert_eq!(verify(&forged, &keys), Err(TokenError::BadSignature));
        // claims swapped after signing
        let good = real.sign(&token(1000).claims()).unwrap();
        let mut other = token(1000);
        other.service_account.name = "admin".into();
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(other.claims().to_string()),
            parts[2]
        );
        assert_eq!(verify(&tampered, &keys), Err(TokenError::BadSignature));
        // alg none
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(verify(&none, &keys).is_err());
        assert!(matches!(
            verify("a.b", &keys),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn time_and_audience_rules() {
        let iss = [DEFAULT_ISSUER.to_string()];
        let claims = token(1000).claims();
        let api = [DEFAULT_ISSUER.to_string()];
        // (now, wanted audiences, expected)
        let cases: Vec<(i64, Vec<String>, Result<(), TokenError>)> = vec![
            (1000, api.to_vec(), Ok(())),
            (4600 + LEEWAY_SECONDS, api.to_vec(), Ok(())),
            (
                4601 + LEEWAY_SECONDS,
                api.to_vec(),
                Err(TokenError::Expired),
            ),
            (1000 - LEEWAY_SECONDS, api.to_vec(), Ok(())),
            (
                999 - LEEWAY_SECONDS,
                api.to_vec(),
                Err(TokenError::NotYetValid),
            ),
            (
                1000,
                vec!["vault".to_string()],
                Err(TokenError::Audience(api.to_vec())),
            ),
            (1000, vec!["vault".to_string(), api[0].clone()], Ok(())),
        ];
        for (now, wanted, want) in cases {
            let got = validate(&claims, &iss, now, &wanted).map(|_| ());
            assert_eq!(got, want, "now={now} wanted={wanted:?}");
        }
        let mut other = claims.clone();
        other["iss"] = json!("https://elsewhere");
        assert_eq!(validate(&other, &iss, 1000, &api), Err(TokenError::Issuer));
        let mut nosa = claims.clone();
        nosa["kubernetes.io"]
            .as_object_mut()
            .unwrap()
            .remove("serviceaccount");
        assert_eq!(
            validate(&nosa, &iss, 1000, &api),
            Err(TokenError::MissingClaim("serviceaccount"))
        );
        let matched = validate(&claims, &iss, 1000, &["x".into(), api[0].clone()]).unwrap();
        assert_eq!(matched.audiences, api.to_vec());
    }

    #[test]
    fn legacy_tokens_validate_without_expiry() {
        let sa = Ref {
            name: "builder".into(),
            uid: "u1".into(),
        };
        let c = legacy_claims("ci", &sa, "builder-token");
        assert_eq!(c["sub"], "system:serviceaccount:ci:builder");
        let id = validate(&c, &[DEFAULT_ISSUER.into()], i64::MAX / 2, &["api".into()]).unwrap();
        assert!(id.legacy);
        assert_eq!(id.service_account, sa);
        assert_eq!(id.secret.unwrap().name, "builder-token");
        assert_eq!(id.audiences, vec!["api"]);
    }

    #[test]
    fn jwk_and_kid_are_stable() {
        let pem = key_pem();
        let a = Signer::from_pem(&pem).unwrap();
        let b = Signer::from_pem(&pem).unwrap();
        assert_eq!(a.public_key().kid, b.public_key().kid);
        let jwk = a.public_key().jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert!(Signer::from_pem("garbage").is_err());
    }

    #[test]
    fn usernames_split() {
        assert_eq!(
            split_username("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
        assert_eq!(split_username("system:serviceaccount:ns"), None);
        assert_eq!(split_username("alice"), None);
    }
}
