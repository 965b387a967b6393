//! Decoding of Kubernetes protobuf request bodies (`k8s\0` + runtime.Unknown) into JSON objects.

use apimachinery::registry::ResourceInfo;
use apimachinery::ApiError;
use serde_json::Value;

/// Decode a protobuf body of the resource's kind.
pub fn decode(body: &[u8], ri: &ResourceInfo) -> Result<Value, ApiError> {
    let _ = (body, ri);
    Err(ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf"))
}
