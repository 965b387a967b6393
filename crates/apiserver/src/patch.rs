//! Applying PATCH bodies (JSON patch, merge patch, strategic merge patch, server-side apply)
//! to stored objects, through the engines in apimachinery.

use apimachinery::patch;
use apimachinery::registry::ResourceInfo;
use apimachinery::ApiError;
use serde_json::Value;

use crate::negotiate::{decode_object, BodyType};

/// A parsed patch body.
pub enum Patch {
    Json(Value),
    Merge(Value),
    Strategic(Value),
    Apply(Value),
}

impl Patch {
    pub fn parse(ty: BodyType, body: &[u8]) -> Result<Patch, ApiError> {
        Ok(match ty {
            BodyType::JsonPatch => Patch::Json(decode_object(body, ty)?),
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
    pub fn apply(
        &self,
        ri: &ResourceInfo,
        crd: Option<&Value>,
        old: &Value,
        manager: &str,
        force: bool,
        subresource: &str,
    ) -> Result<Value, ApiError> {
        match self {
            Patch::Json(p) => patch::apply_json_patch(old, p).map_err(|e| e.to_api_error()),
            Patch::Merge(p) => patch::apply_merge_patch(old, p).map_err(|e| e.to_api_error()),
            Patch::Strategic(p) => crate::admission::strategic_merge(ri, old, p),
            Patch::Apply(p) => {
                crate::admission::server_side_apply(ri, crd, old, p, manager, force, subresource)
            }
        }
    }
}
