//! Virtual review resources answered per request and never stored: TokenReview,
//! SelfSubjectReview, SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
//! LocalSubjectAccessReview.

use apimachinery::registry::ResourceInfo;
use apimachinery::{ApiError, FieldError};
use serde_json::{json, Value};

use crate::auth::{Attributes, Decision, UserInfo};
use crate::Api;

fn attributes_from_spec(
    spec: &Value,
    user: UserInfo,
    namespace_override: Option<&str>,
) -> Attributes {
    if let Some(ra) = spec.get("resourceAttributes") {
        let s = |k: &str| ra.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Attributes {
            user,
            verb: s("verb"),
            namespace: namespace_override
                .map(String::from)
                .unwrap_or_else(|| s("namespace")),
            group: s("group"),
            version: s("version"),
            resource: s("resource"),
            subresource: s("subresource"),
            name: s("name"),
            path: String::new(),
            resource_request: true,
        }
    } else {
        let na = spec
            .get("nonResourceAttributes")
            .cloned()
            .unwrap_or_default();
        Attributes {
            user,
            verb: na
                .get("verb")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            path: na
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            resource_request: false,
            ..Default::default()
        }
    }
}

fn access_status(d: Decision) -> Value {
    match d {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) => json!({"allowed": false, "denied": true, "reason": reason}),
        Decision::NoOpinion => json!({"allowed": false}),
    }
}

fn user_from_spec(spec: &Value) -> UserInfo {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    UserInfo {
        username: spec
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups: strings(spec.get("groups")),
        extra: spec
            .get("extra")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), strings(Some(v))))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn require_attrs(ri: &ResourceInfo, spec: &Value) -> Result<(), ApiError> {
    if spec.get("resourceAttributes").is_none() && spec.get("nonResourceAttributes").is_none() {
        return Err(ApiError::invalid(
            &ri.group,
            &ri.kind,
            "",
            vec![FieldError::required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        ));
    }
    Ok(())
}

/// Answer a review; returns the object with its status filled in.
pub fn create(
    api: &Api,
    ri: &ResourceInfo,
    namespace: &str,
    user: &UserInfo,
    mut obj: Value,
) -> Result<Value, ApiError> {
    obj["kind"] = json!(ri.kind);
    obj["apiVersion"] = json!(ri.api_version());
    if obj.get("metadata").is_none() {
        obj["metadata"] = json!({});
    }
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = match ri.plural.as_str() {
        "selfsubjectreviews" => json!({"userInfo": user.to_json()}),
        "tokenreviews" => {
            let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
            if token.is_empty() {
                return Err(ApiError::invalid(
                    &ri.group,
                    &ri.kind,
                    "",
                    vec![FieldError::required("spec.token", "")],
                ));
            }
            let audiences: Vec<String> = spec
                .get("audiences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            match api.authn.authenticate_token(token, &audiences) {
                Some((u, auds)) => {
                    json!({"authenticated": true, "user": u.to_json(), "audiences": auds})
                }
                None => {
                    json!({"authenticated": false, "user": {}, "error": "invalid bearer token"})
                }
            }
        }
        "selfsubjectaccessreviews" => {
            require_attrs(ri, &spec)?;
            access_status(
                api.authz
                    .authorize(&attributes_from_spec(&spec, user.clone(), None)),
            )
        }
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            require_attrs(ri, &spec)?;
            let subject = user_from_spec(&spec);
            if subject.username.is_empty() && subject.groups.is_empty() {
                return Err(ApiError::invalid(
                    &ri.group,
                    &ri.kind,
                    "",
                    vec![FieldError::required(
                        "spec.user",
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            let ns = (ri.plural == "localsubjectaccessreviews").then_some(namespace);
            access_status(
                api.authz
                    .authorize(&attributes_from_spec(&spec, subject, ns)),
            )
        }
        "selfsubjectrulesreviews" => {
            let ns = spec
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace);
            let rules = api.authz.rules_for(user, ns);
            json!({"resourceRules": rules.resource_rules, "nonResourceRules": rules.non_resource_rules, "incomplete": rules.incomplete})
        }
        other => return Err(ApiError::internal(format!("no review handler for {other}"))),
    };
    obj["status"] = status;
    Ok(obj)
}
