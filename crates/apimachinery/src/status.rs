//! Classified API errors and their rendering as a `meta.k8s.io/v1` Status, as upstream returns them.

use serde_json::{json, Value};

/// The reason field of a failed Status (upstream `metav1.StatusReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    InternalError,
    Timeout,
    ServiceUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::Timeout => "Timeout",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status code upstream uses for this reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Gone | Reason::Expired => 410,
            Reason::Invalid => 422,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::RequestEntityTooLarge => 413,
            Reason::UnsupportedMediaType => 415,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::Timeout => 504,
            Reason::ServiceUnavailable => 503,
        }
    }
}

/// The type of a field error (upstream `field.ErrorType`), which prefixes cause messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CauseType {
    Required,
    Invalid,
    /// `field.TypeInvalid`: a value of the wrong JSON type (rendered like Invalid)
    TypeInvalid,
    Duplicate,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    NotFound,
    Internal,
}

impl CauseType {
    /// The `reason` of a StatusCause (upstream's `FieldValue...` names).
    pub fn reason(self) -> &'static str {
        match self {
            CauseType::Required => "FieldValueRequired",
            CauseType::Invalid => "FieldValueInvalid",
            CauseType::TypeInvalid => "FieldValueTypeInvalid",
            CauseType::Duplicate => "FieldValueDuplicate",
            CauseType::NotSupported => "FieldValueNotSupported",
            CauseType::Forbidden => "FieldValueForbidden",
            CauseType::TooLong => "FieldValueTooLong",
            CauseType::TooMany => "FieldValueTooMany",
            CauseType::NotFound => "FieldValueNotFound",
            CauseType::Internal => "InternalError",
        }
    }
}

/// One field error of an Invalid status.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: CauseType,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The offending value rendered as upstream does (quoted strings), if any.
    pub value: Option<String>,
    /// Detail, e.g. `must be no more than 63 characters`.
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: CauseType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        FieldError {
            kind: CauseType::Invalid,
            field: field.into(),
            value: Some(render_value(value)),
            detail: detail.into(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind: CauseType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        FieldError {
            kind: CauseType::NotSupported,
            field: field.into(),
            value: Some(render_value(value)),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError {
            kind: CauseType::Duplicate,
            field: field.into(),
            value: Some(render_value(value)),
            detail: String::new(),
        }
    }

    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        FieldError {
            kind: CauseType::TooLong,
            field: field.into(),
            value: None,
            detail: format!("must have at most {max} bytes"),
        }
    }

    /// The cause message, formatted as upstream's `field.Error.ErrorBody`.
    pub fn message(&self) -> String {
        let head = match self.kind {
            CauseType::Required => "Required value".to_string(),
            CauseType::Forbidden => "Forbidden".to_string(),
            CauseType::TooLong => "Too long".to_string(),
            CauseType::TooMany => match &self.value {
                Some(v) => format!("Too many: {v}"),
                None => "Too many".to_string(),
            },
            CauseType::Internal => "Internal error".to_string(),
            CauseType::Invalid | CauseType::TypeInvalid => {
                format!("Invalid value: {}", self.value.as_deref().unwrap_or("null"))
            }
            CauseType::Duplicate => format!(
                "Duplicate value: {}",
                self.value.as_deref().unwrap_or("null")
            ),
            CauseType::NotSupported => {
                format!(
                    "Unsupported value: {}",
                    self.value.as_deref().unwrap_or("null")
                )
            }
            CauseType::NotFound => {
                format!("Not found: {}", self.value.as_deref().unwrap_or("null"))
            }
        };
        if self.detail.is_empty() {
            head
        } else {
            format!("{head}: {}", self.detail)
        }
    }

    /// `field: message`, as it appears in the aggregated Status message.
    pub fn full_message(&self) -> String {
        format!("{}: {}", self.field, self.message())
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// A classified API error; rendered as a Status in one place at the HTTP edge.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub reason: Reason,
    pub message: String,
    /// details.name
    pub name: Option<String>,
    /// details.group
    pub group: Option<String>,
    /// details.kind (the resource for NotFound/AlreadyExists/Conflict, the Kind for Invalid)
    pub kind: Option<String>,
    pub causes: Vec<FieldError>,
    /// details.retryAfterSeconds
    pub retry_after_seconds: Option<u32>,
    /// Extra causes that are not field errors, e.g. (reason, message) pairs such as
    /// ("ExitCode", "3") or ("FieldValueInvalid", ...) for non-field issues.
    pub extra_causes: Vec<(String, String)>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.as_str())
    }
}

impl std::error::Error for ApiError {}

/// A group/resource pair, rendered as upstream does (`deployments.apps`, or `pods` for core).
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
            extra_causes: Vec::new(),
        }
    }

    pub fn code(&self) -> u16 {
        self.reason.code()
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = Some(group.to_string()).filter(|g| !g.is_empty());
        self.kind = Some(kind.to_string()).filter(|k| !k.is_empty());
        self.name = Some(name.to_string()).filter(|n| !n.is_empty());
        self
    }

    /// `pods "x" not found`
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qr = qualified_resource(group, resource);
        ApiError::new(Reason::NotFound, format!("{qr} \"{name}\" not found"))
            .with_details(group, resource, name)
    }

    /// `pods "x" already exists`
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qr = qualified_resource(group, resource);
        ApiError::new(
            Reason::AlreadyExists,
            format!("{qr} \"{name}\" already exists"),
        )
        .with_details(group, resource, name)
    }

    /// `Operation cannot be fulfilled on pods "x": <detail>`
    pub fn conflict(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        let qr = qualified_resource(group, resource);
        ApiError::new(
            Reason::Conflict,
            format!("Operation cannot be fulfilled on {qr} \"{name}\": {detail}"),
        )
        .with_details(group, resource, name)
    }

    /// The conflict upstream returns for a stale resourceVersion.
    pub fn stale_resource_version(group: &str, resource: &str, name: &str) -> Self {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// `Deployment.apps "x" is invalid: [spec.replicas: Invalid value: -1: ..., ...]`
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldError>) -> Self {
        let qk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let msgs: Vec<String> = causes.iter().map(FieldError::full_message).collect();
        let joined = if msgs.len() == 1 {
            msgs[0].clone()
        } else {
            format!("[{}]", msgs.join(", "))
        };
        let mut e = ApiError::new(
            Reason::Invalid,
            format!("{qk} \"{name}\" is invalid: {joined}"),
        )
        .with_details(group, kind, name);
        e.causes = causes;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(Reason::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(Reason::Unauthorized, "Unauthorized")
    }

    pub fn forbidden_msg(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Forbidden, message)
    }

    /// `pods "x" is forbidden: <detail>`
    pub fn forbidden(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        let qr = qualified_resource(group, resource);
        let subject = if name.is_empty() {
            qr
        } else {
            format!("{qr} \"{name}\"")
        };
        ApiError::new(
            Reason::Forbidden,
            format!("{subject} is forbidden: {detail}"),
        )
        .with_details(group, resource, name)
    }

    pub fn method_not_allowed(verb: &str, group: &str, resource: &str) -> Self {
        let qr = qualified_resource(group, resource);
        ApiError::new(
            Reason::MethodNotAllowed,
            format!(
                "the server does not allow this method on the requested resource ({verb} {qr})"
            ),
        )
        .with_details(group, resource, "")
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(Reason::NotAcceptable, message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            Reason::UnsupportedMediaType,
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            Reason::RequestEntityTooLarge,
            format!("the server has received a request that is too large: limit is {limit} bytes"),
        )
    }

    /// The 410 a watch or list gets for a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Expired, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Gone, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            Reason::InternalError,
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Timeout, message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(Reason::ServiceUnavailable, message)
    }

    /// The `meta.k8s.io/v1` Status object.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        let mut causes: Vec<Value> = self
            .causes
            .iter()
            .map(|c| json!({"reason": c.kind.reason(), "message": c.message(), "field": c.field}))
            .collect();
        causes.extend(
            self.extra_causes
                .iter()
                .map(|(r, m)| json!({"reason": r, "message": m})),
        );
        if !causes.is_empty() {
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(s) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(s));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code(),
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// The Status a successful delete of a resource without finalizers returns for some kinds.
pub fn success_status(group: &str, kind: &str, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": kind, "uid": uid});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_renders_like_upstream() {
        let s = ApiError::not_found("apps", "deployments", "web").to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["name"], "web");
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "",
            "ConfigMap",
            "Bad_Name",
            vec![FieldError::invalid(
                "metadata.name",
                &json!("Bad_Name"),
                "a lowercase RFC 1123 subdomain",
            )],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(
            s["message"],
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        );
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(s["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn several_causes_are_bracketed() {
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![
                FieldError::required("spec.selector", ""),
                FieldError::required("spec.template", ""),
            ],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: [spec.selector: Required value, spec.template: Required value]"
        );
    }
}
