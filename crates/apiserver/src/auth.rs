//! Authentication (client certificates, static bearer tokens) and the pluggable authorization
//! interface. RBAC plugs in as another [`Authorizer`] without touching the handlers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The authenticated identity of a request (upstream `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: HashMap<String, Vec<String>>,
}

impl UserInfo {
    /// Adds the groups every authenticated user has.
    fn authenticated(mut self) -> Self {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".to_string());
        }
        self
    }

    pub fn anonymous() -> Self {
        UserInfo {
            username: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.username == "system:anonymous"
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"username": self.username, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = self.uid.clone().into();
        }
        if !self.extra.is_empty() {
            v["extra"] = serde_json::to_value(&self.extra).unwrap_or_default();
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    BadTokenLine {
        path: String,
        line: usize,
        reason: &'static str,
    },
}

/// The identity in a verified client certificate: CN is the user, each O a group.
pub fn user_from_cert_der(der: &[u8]) -> Option<UserInfo> {
    let f = crate::pki::cert_facts_der(der)?;
    if f.common_name.is_empty() {
        return None;
    }
    Some(
        UserInfo {
            username: f.common_name,
            groups: f.organizations,
            ..Default::default()
        }
        .authenticated(),
    )
}

/// A source of bearer-token identities (static token file, service account JWTs, bootstrap tokens).
pub trait TokenAuthenticator: Send + Sync {
    /// The identity of a token presented to this API server.
    fn authenticate(&self, token: &str) -> Option<UserInfo>;

    /// The identity of a token for the given audiences (TokenReview's `spec.audiences`), with
    /// the audiences it is valid for. Audience-unaware authenticators accept a token only for
    /// requests that include the API server's own audiences (`api_audiences`).
    fn authenticate_audiences(
        &self,
        token: &str,
        audiences: &[String],
        api_audiences: &[String],
    ) -> Option<(UserInfo, Vec<String>)> {
        let matched: Vec<String> = audiences
            .iter()
            .filter(|a| api_audiences.contains(a))
            .cloned()
            .collect();
        if matched.is_empty() {
            return None;
        }
        self.authenticate(token).map(|u| (u, matched))
    }
}

/// Static tokens from a CSV file as upstream's `--token-auth-file`: `token,user,uid,"group1,group2"`.
#[derive(Default)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<TokenFile, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<TokenFile, AuthError> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            let bad = |reason| AuthError::BadTokenLine {
                path: origin.to_string(),
                line: i + 1,
                reason,
            };
            if fields.len() < 3 {
                return Err(bad("expected token,user,uid[,\"groups\"]"));
            }
            if fields[0].is_empty() || fields[1].is_empty() {
                return Err(bad("token and user must not be empty"));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            tokens.insert(
                fields[0].clone(),
                UserInfo {
                    username: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                    ..Default::default()
                }
                .authenticated(),
            );
        }
        Ok(TokenFile { tokens })
    }
}

impl TokenAuthenticator for TokenFile {
    fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned()
    }
}

/// Split one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// Every configured authenticator, tried in order.
#[derive(Clone, Default)]
pub struct Authenticators {
    pub tokens: Vec<Arc<dyn TokenAuthenticator>>,
    /// The audiences of this API server (`--api-audiences`; the service account issuer).
    pub api_audiences: Vec<String>,
}

impl Authenticators {
    /// Authenticate a bearer token for `audiences` (the API server's when empty), as
    /// TokenReview does; returns the user and the audiences the token is valid for.
    pub fn authenticate_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Option<(UserInfo, Vec<String>)> {
        let wanted = if audiences.is_empty() {
            &self.api_audiences
        } else {
            audiences
        };
        self.tokens
            .iter()
            .find_map(|a| a.authenticate_audiences(token, wanted, &self.api_audiences))
    }

    /// Authenticate a request from its verified client certificate and Authorization header.
    pub fn authenticate(
        &self,
        client_cert_der: Option<&[u8]>,
        authorization: Option<&str>,
    ) -> Option<UserInfo> {
        self.authenticate_with(client_cert_der.and_then(user_from_cert_der), authorization)
    }

    /// Authenticate with the connection's certificate identity already parsed (once per
    /// connection, not per request).
    pub fn authenticate_with(
        &self,
        cert_user: Option<UserInfo>,
        authorization: Option<&str>,
    ) -> Option<UserInfo> {
        if let Some(token) = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        {
            if !token.is_empty() {
                // a presented but unknown token is a failure even with a client cert, as upstream
                return self.tokens.iter().find_map(|a| a.authenticate(token));
            }
        }
        cert_user
    }
}

/// An authorization request (upstream `authorizer.Attributes`).
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub namespace: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// For non-resource requests, the path.
    pub path: String,
    pub resource_request: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
    /// No opinion; the next authorizer decides.
    NoOpinion,
}

/// A rule a user may act on, for SelfSubjectRulesReview.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub resource_rules: Vec<serde_json::Value>,
    pub non_resource_rules: Vec<serde_json::Value>,
    pub incomplete: bool,
}

/// Pluggable authorization; RBAC will be another implementation.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, attrs: &Attributes) -> Decision;
    /// The rules a user has in a namespace (SelfSubjectRulesReview).
    fn rules_for(&self, user: &UserInfo, namespace: &str) -> Rules;
}

/// Allows every authenticated request; the interim authorizer until RBAC lands.
pub struct AllowAuthenticated;

impl Authorizer for AllowAuthenticated {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.user.is_anonymous() {
            Decision::NoOpinion
        } else {
            Decision::Allow
        }
    }

    fn rules_for(&self, user: &UserInfo, _namespace: &str) -> Rules {
        if user.is_anonymous() {
            return Rules::default();
        }
        Rules {
            resource_rules: vec![
                serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
            ],
            non_resource_rules: vec![serde_json::json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
            incomplete: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_parses_groups_and_authenticates() {
        let tf =
            TokenFile::parse("# comment\nabc,alice,1001,\"dev,ops\"\nxyz,bob,1002\n", "t").unwrap();
        let a = tf.authenticate("abc").unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.uid, "1001");
        assert_eq!(a.groups, vec!["dev", "ops", "system:authenticated"]);
        assert_eq!(
            tf.authenticate("xyz").unwrap().groups,
            vec!["system:authenticated"]
        );
        assert!(tf.authenticate("nope").is_none());
    }

    #[test]
    fn token_file_rejects_short_lines() {
        let err = TokenFile::parse("onlytoken,user\n", "tokens.csv")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "tokens.csv:1: expected token,user,uid[,\"groups\"]"
        );
    }

    #[test]
    fn unknown_bearer_token_fails_even_with_cert_absent() {
        let tf = TokenFile::parse("abc,alice,1\n", "t").unwrap();
        let auth = Authenticators {
            tokens: vec![Arc::new(tf)],
            api_audiences: vec!["api".into()],
        };
        assert!(auth.authenticate_token("abc", &[]).is_some());
        assert!(auth.authenticate_token("abc", &["vault".into()]).is_none());
        assert_eq!(
            auth.authenticate_token("abc", &["vault".into(), "api".into()])
                .unwrap()
                .1,
            vec!["api"]
        );
        assert!(auth.authenticate(None, Some("Bearer wrong")).is_none());
        assert_eq!(
            auth.authenticate(None, Some("Bearer abc"))
                .unwrap()
                .username,
            "alice"
        );
        assert!(auth.authenticate(None, None).is_none());
    }

    #[test]
    fn allow_authenticated_denies_anonymous() {
        let z = AllowAuthenticated;
        let anon = Attributes {
            user: UserInfo::anonymous(),
            ..Default::default()
        };
        assert_eq!(z.authorize(&anon), Decision::NoOpinion);
        let u = Attributes {
            user: UserInfo {
                username: "u".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(z.authorize(&u), Decision::Allow);
    }
}
