//! Patch engines of the API server: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
//! strategic merge patch (upstream `strategicpatch`) and server-side apply with managed fields
//! (upstream structured-merge-diff as wired by the apiserver's field manager).
//!
//! Everything works on `serde_json::Value` and is pure. Which engine applies is chosen by the
//! request's content type:
//!
//! | content type                              | function                                   |
//! |-------------------------------------------|--------------------------------------------|
//! | `application/json-patch+json`             | [`json::apply_json_patch`]                 |
//! | `application/merge-patch+json`            | [`json::apply_merge_patch`]                |
//! | `application/strategic-merge-patch+json`  | [`strategic::strategic_merge_patch`]       |
//! | `application/apply-patch+yaml`            | [`apply::parse_apply_patch`] + [`apply::apply`] |
//!
//! Strategic merge patch needs per-field knowledge (merge keys, strategies): see
//! [`schema::PatchSchema`], implemented by the static [`schema::BuiltinSchema`] and by
//! [`openapi::OpenApiSchema`] (OpenAPI v3 / CRD structural schemas). Custom resources have no strategic schema: upstream answers a
//! strategic merge patch on a custom resource with 415 Unsupported Media Type, which
//! [`schema::BuiltinSchema::for_kind`] signals by returning `None`; JSON and merge patch work on
//! every kind.
//!
//! Every write also records ownership: after computing the new object of a create, update or
//! non-apply patch, call [`apply::update_managed_fields`] with the request's field manager; an
//! apply request goes through [`apply::apply`], which does both the merge and the bookkeeping.
//! Errors carry upstream's status classification: [`PatchError::to_api_error`].

pub mod apply;
pub mod fieldset;
pub mod json;
pub mod openapi;
pub mod schema;
pub mod strategic;

pub use apply::{
    apply, conflict_message, decode_managed_fields, encode_managed_fields, parse_apply_patch,
    update_managed_fields, ApplyOptions, Conflict, ManagedFieldsEntry, Operation, UpdateOptions,
    ANCIENT_CHANGES, BEFORE_FIRST_APPLY, MAX_UPDATE_MANAGERS,
};
pub use fieldset::{path_string, FieldPath, FieldSet, PathElement};

pub use json::{apply_json_patch, apply_merge_patch, MAX_JSON_PATCH_OPERATIONS};
pub use openapi::OpenApiSchema;
pub use schema::{BuiltinSchema, FieldInfo, ListType, NoSchema, PatchSchema, PatchStrategy};
pub use strategic::strategic_merge_patch;

use crate::status::{ApiError, Reason};

/// The patch type of a PATCH request, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml`
    Apply,
}

impl PatchType {
    pub const ALL: [PatchType; 4] = [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ];

    /// Parses a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        PatchType::ALL
            .into_iter()
            .find(|t| t.content_type() == media)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Errors of the patch engines. [`PatchError::reason`] gives the Status reason upstream uses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot be applied to this object (422 Unprocessable Entity).
    #[error("{0}")]
    Unprocessable(String),
    /// A JSON patch with too many operations (413).
    #[error("{0}")]
    TooLarge(String),
    /// A failure upstream reports as an internal error (500), e.g. a strategic merge patch list
    /// element without its merge key.
    #[error("{0}")]
    Internal(String),
    /// Server-side apply conflicts with other field managers (409).
    #[error("{}", apply::conflict_message(.0))]
    Conflicts(Vec<Conflict>),
}

impl PatchError {
    /// The Status reason (and so HTTP code) upstream answers with.
    pub fn reason(&self) -> Reason {
        match self {
            PatchError::BadRequest(_) => Reason::BadRequest,
            PatchError::Unprocessable(_) => Reason::Invalid,
            PatchError::TooLarge(_) => Reason::RequestEntityTooLarge,
            PatchError::Internal(_) => Reason::InternalError,
            PatchError::Conflicts(_) => Reason::Conflict,
        }
    }

    /// The classified API error (Status) for this failure. Apply conflicts carry one
    /// `FieldManagerConflict` cause per conflict (message `conflict with "<manager>"`); the field
    /// path of each is in [`Conflict::path`].
    pub fn to_api_error(&self) -> ApiError {
        match self {
            PatchError::TooLarge(m) => ApiError::new(
                Reason::RequestEntityTooLarge,
                format!("Request entity too large: {m}"),
            ),
            PatchError::Conflicts(cs) => {
                let mut e = ApiError::new(Reason::Conflict, self.to_string());
                e.extra_causes = cs
                    .iter()
                    .map(|c| {
                        (
                            "FieldManagerConflict".to_string(),
                            format!("conflict with {}", c.manager),
                        )
                    })
                    .collect();
                e
            }
            // upstream NewGenericServerResponse(422, ...): generic message, detail as a cause
            PatchError::Unprocessable(m) => {
                let mut e = ApiError::new(
                    Reason::Invalid,
                    "the server rejected our request due to an error in our request",
                );
                e.extra_causes = vec![("UnexpectedServerResponse".to_string(), m.clone())];
                e
            }
            other => ApiError::new(other.reason(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_types_from_content_type() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            (
                "application/merge-patch+json; charset=utf-8",
                Some(PatchType::Merge),
            ),
            (
                "Application/Strategic-Merge-Patch+JSON",
                Some(PatchType::StrategicMerge),
            ),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            ("application/json", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        }
    }

    #[test]
    fn api_errors() {
        let e = PatchError::Unprocessable("boom".into()).to_api_error();
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.message,
            "the server rejected our request due to an error in our request"
        );
        assert_eq!(
            e.extra_causes,
            vec![("UnexpectedServerResponse".to_string(), "boom".to_string())]
        );
        let e = PatchError::TooLarge("x".into()).to_api_error();
        assert_eq!(
            (e.code(), e.message.as_str()),
            (413, "Request entity too large: x")
        );
        assert_eq!(
            PatchError::BadRequest("y".into()).to_api_error().code(),
            400
        );
        assert_eq!(PatchError::Internal("z".into()).to_api_error().code(), 500);
    }
}
