//! Decoding of Kubernetes protobuf request bodies (`k8s\0` + runtime.Unknown) into JSON objects,
//! through apimachinery's schema-driven decoder.

use apimachinery::protobuf::{decode_unknown, ProtobufError};
use apimachinery::registry::ResourceInfo;
use apimachinery::ApiError;
use serde_json::Value;

/// Decode a protobuf body sent for a resource.
pub fn decode(body: &[u8], ri: &ResourceInfo) -> Result<Value, ApiError> {
    match decode_unknown(body) {
        Ok(v) => Ok(v),
        Err(ProtobufError::UnknownKind { .. }) if ri.group.contains('.') => Err(
            ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf"),
        ),
        Err(e) => Err(ApiError::bad_request(format!(
            "error decoding protobuf body: {e}"
        ))),
    }
}
