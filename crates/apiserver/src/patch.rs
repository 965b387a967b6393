//! Applying PATCH bodies (JSON patch, merge patch, strategic merge patch, server-side apply)
//! to stored objects, through the engines in apimachinery.

use apimachinery::registry::ResourceInfo;
use apimachinery::ApiError;
use serde_json::Value;

use crate::negotiate::{decode_object, BodyType};

/// A parsed patch body.
pub enum Patch {
    Json(json_patch::Patch),
    Merge(Value),
    Strategic(Value),
    Apply(Value),
}

impl Patch {
    pub fn parse(ty: BodyType, body: &[u8]) -> Result<Patch, ApiError> {
        Ok(match ty {
            BodyType::JsonPatch => {
                let p: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("json: cannot unmarshal JSON patch: {e}")))?;
                Patch::Json(p)
            }
            BodyType::MergePatch => Patch::Merge(decode_object(body, ty)?),
            BodyType::StrategicMergePatch => Patch::Strategic(decode_object(body, ty)?),
            BodyType::ApplyPatch => Patch::Apply(decode_object(body, ty)?),
            other => {
                return Err(ApiError::unsupported_media_type(match other {
                    BodyType::Yaml => "application/yaml",
                    BodyType::Protobuf => "application/vnd.kubernetes.protobuf",
                    _ => "application/json",
                }))
            }
        })
    }

    /// Apply to `old` (Null when creating through apply) and return the patched object.
    pub fn apply(&self, ri: &ResourceInfo, old: &Value, manager: &str, force: bool, subresource: &str) -> Result<Value, ApiError> {
        let _ = (manager, force, subresource);
        match self {
            Patch::Json(p) => {
                let mut doc = old.clone();
                json_patch::patch(&mut doc, p).map_err(|e| {
                    ApiError::invalid(&ri.group, &ri.kind, crate::objects::name(old), vec![apimachinery::FieldError {
                        kind: apimachinery::status::CauseType::Invalid,
                        field: "".into(),
                        value: None,
                        detail: format!("the server rejected our request due to an error in our request: {e}"),
                    }])
                })?;
                Ok(doc)
            }
            Patch::Merge(p) => {
                if !p.is_object() {
                    return Err(ApiError::bad_request("merge patch must be a JSON object"));
                }
                let mut doc = old.clone();
                json_patch::merge(&mut doc, p);
                Ok(doc)
            }
            Patch::Strategic(p) => crate::admission::strategic_merge(ri, old, p),
            Patch::Apply(p) => crate::admission::server_side_apply(ri, old, p, manager, force),
        }
    }
}
