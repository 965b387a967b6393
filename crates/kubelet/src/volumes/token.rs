//! Service account tokens for projected volumes: TokenRequests bound to the pod, cached and
//! refreshed once 80% of their lifetime has passed (or after 24 h), as upstream's token manager.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};

use super::api::{ApiError, VolumeApi};

/// Tokens older than this are refreshed whatever their lifetime.
const MAX_TTL_SECONDS: i64 = 24 * 3600;
/// Upper bound of the random jitter subtracted from refresh deadlines.
const MAX_JITTER_SECONDS: f64 = 10.0;
/// `expirationSeconds` when the projection sets none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    service_account: String,
    audiences: Vec<String>,
    expiration_seconds: i64,
    pod_uid: String,
}

/// Builds the TokenRequest a projected `serviceAccountToken` source asks for.
pub fn token_request(
    pod_name: &str,
    pod_uid: &str,
    audience: &str,
    expiration_seconds: Option<i64>,
) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: if audience.is_empty() {
                Vec::new()
            } else {
                vec![audience.to_string()]
            },
            expiration_seconds: Some(expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name.into()),
                uid: Some(pod_uid.into()),
            }),
        },
        ..Default::default()
    }
}

/// Seconds since the epoch of the token's expiry and its requested lifetime.
fn expiry(tr: &TokenRequest) -> Option<(i64, i64)> {
    let exp = tr.status.as_ref()?.expiration_timestamp.0.as_second();
    let ttl = tr
        .spec
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    Some((exp, ttl))
}

/// Whether a cached token must be requested again at `now` (epoch seconds): past 80% of its
/// lifetime, or older than 24 h, each less `jitter_seconds`.
pub fn requires_refresh(tr: &TokenRequest, now: i64, jitter_seconds: i64) -> bool {
    let Some((exp, ttl)) = expiry(tr) else {
        return true;
    };
    let issued = exp - ttl;
    now > issued + MAX_TTL_SECONDS - jitter_seconds || now > exp - ttl * 20 / 100 - jitter_seconds
}

/// When (epoch seconds) a token becomes due for refresh, ignoring jitter.
pub fn refresh_at(tr: &TokenRequest) -> Option<i64> {
    let (exp, ttl) = expiry(tr)?;
    Some((exp - ttl * 20 / 100).min(exp - ttl + MAX_TTL_SECONDS))
}

/// Cache of tokens per (service account, audiences, lifetime, pod).
pub struct TokenManager {
    api: Arc<dyn VolumeApi>,
    cache: Mutex<HashMap<Key, TokenRequest>>,
}

impl TokenManager {
    pub fn new(api: Arc<dyn VolumeApi>) -> Self {
        Self {
            api,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A valid token for `request`, from the cache unless due for refresh. When a refresh fails
    /// and the cached token has not expired yet, the cached one is kept (as upstream).
    pub async fn get(
        &self,
        namespace: &str,
        service_account: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        let key = Key {
            namespace: namespace.into(),
            service_account: service_account.into(),
            audiences: request.spec.audiences.clone(),
            expiration_seconds: request
                .spec
                .expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
            pod_uid: request
                .spec
                .bound_object_ref
                .as_ref()
                .and_then(|r| r.uid.clone())
                .unwrap_or_default(),
        };
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let jitter = (rand::random::<f64>() * MAX_JITTER_SECONDS) as i64;
        let cached = self
            .cache
            .lock()
            .expect("token cache lock")
            .get(&key)
            .cloned();
        if let Some(tr) = &cached {
            if !requires_refresh(tr, now, jitter) {
                return Ok(tr.clone());
            }
        }
        match self
            .api
            .create_token(namespace, service_account, request)
            .await
        {
            Ok(tr) => {
                if tr.status.as_ref().is_none_or(|s| s.token.is_empty()) {
                    return Err(ApiError::other("tokenrequest returned no token"));
                }
                self.cache
                    .lock()
                    .expect("token cache lock")
                    .insert(key, tr.clone());
                Ok(tr)
            }
            Err(e) => match cached {
                Some(tr) if expiry(&tr).is_some_and(|(exp, _)| exp > now) => {
                    tracing::warn!(namespace, service_account, error = %e, "token refresh failed, keeping the cached token");
                    Ok(tr)
                }
                _ => Err(e),
            },
        }
    }

    /// The earliest refresh deadline (epoch seconds) of the tokens bound to a pod.
    pub fn next_refresh(&self, pod_uid: &str) -> Option<i64> {
        self.cache
            .lock()
            .expect("token cache lock")
            .iter()
            .filter(|(k, _)| k.pod_uid == pod_uid)
            .filter_map(|(_, tr)| refresh_at(tr))
            .min()
    }

    /// Forgets the tokens bound to a pod.
    pub fn forget_pod(&self, pod_uid: &str) {
        self.cache
            .lock()
            .expect("token cache lock")
            .retain(|k, _| k.pod_uid != pod_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::TokenRequestStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn issued(exp: i64, ttl: i64) -> TokenRequest {
        let mut tr = token_request("p", "u", "", Some(ttl));
        tr.status = Some(TokenRequestStatus {
            token: "t".into(),
            expiration_timestamp: Time(k8s_openapi::jiff::Timestamp::from_second(exp).unwrap()),
        });
        tr
    }

    #[test]
    fn refresh_at_eighty_percent() {
        // issued at 1000, lifetime 3600: due after 1000 + 2880
        let tr = issued(4600, 3600);
        let cases = [
            (1000, 0, false),
            (3880, 0, false),
            (3881, 0, true),
            (3875, 10, true),
            (4700, 0, true),
        ];
        for (now, jitter, want) in cases {
            assert_eq!(
                requires_refresh(&tr, now, jitter),
                want,
                "now {now} jitter {jitter}"
            );
        }
        assert_eq!(refresh_at(&tr), Some(3880));
        // a 48 h token is refreshed after 24 h
        let long = issued(48 * 3600, 48 * 3600);
        assert!(!requires_refresh(&long, 24 * 3600 - 1, 0));
        assert!(requires_refresh(&long, 24 * 3600 + 1, 0));
        assert!(requires_refresh(&token_request("p", "u", "", None), 0, 0));
    }

    #[test]
    fn request_shape() {
        let tr = token_request("web", "uid-1", "vault", Some(600));
        assert_eq!(tr.spec.audiences, vec!["vault".to_string()]);
        assert_eq!(tr.spec.expiration_seconds, Some(600));
        let b = tr.spec.bound_object_ref.unwrap();
        assert_eq!(
            (b.kind.as_deref(), b.name.as_deref(), b.uid.as_deref()),
            (Some("Pod"), Some("web"), Some("uid-1"))
        );
        assert!(token_request("web", "u", "", None)
            .spec
            .audiences
            .is_empty());
        assert_eq!(
            token_request("web", "u", "", None).spec.expiration_seconds,
            Some(3600)
        );
    }
}
