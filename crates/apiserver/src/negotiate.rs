//! Content negotiation: which representation a client accepts (JSON, YAML, Table,
//! PartialObjectMetadata) and decoding of request bodies (JSON, YAML, protobuf).

use apimachinery::ApiError;
use serde_json::Value;

/// The representation of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// What kind of object the client asked to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    /// The object itself.
    Object,
    /// A meta.k8s.io/v1 Table.
    Table,
    /// meta.k8s.io/v1 PartialObjectMetadata(List).
    Metadata,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accept {
    pub format: Format,
    pub as_: As,
}

impl Default for Accept {
    fn default() -> Self {
        Accept {
            format: Format::Json,
            as_: As::Object,
        }
    }
}

/// One media range of an Accept header.
#[derive(Debug, PartialEq, Eq)]
pub struct MediaRange<'a> {
    pub mime: &'a str,
    pub params: Vec<(&'a str, &'a str)>,
}

impl<'a> MediaRange<'a> {
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

pub fn media_ranges(header: &str) -> Vec<MediaRange<'_>> {
    header
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';').map(str::trim);
            let mime = it.next().filter(|m| !m.is_empty())?;
            let params = it
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
                .collect();
            Some(MediaRange { mime, params })
        })
        .collect()
}

/// Choose the response representation from an Accept header. `table_ok` says whether the
/// request may return a Table (GET/LIST/WATCH of resources).
pub fn negotiate(accept: Option<&str>, table_ok: bool) -> Result<Accept, ApiError> {
    let Some(h) = accept.filter(|h| !h.trim().is_empty()) else {
        return Ok(Accept::default());
    };
    let ranges = media_ranges(h);
    for r in &ranges {
        let format = match r.mime {
            "application/json" | "application/*" | "*/*" | "application/json-patch+json" => {
                Format::Json
            }
            "application/yaml" | "application/vnd.kubernetes.yaml" => Format::Yaml,
            _ => continue,
        };
        match (r.param("as"), r.param("g"), r.param("v")) {
            (None, _, _) => {
                return Ok(Accept {
                    format,
                    as_: As::Object,
                })
            }
            (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) if table_ok => {
                return Ok(Accept {
                    format,
                    as_: As::Table,
                })
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) if table_ok => {
                return Ok(Accept {
                    format,
                    as_: As::Metadata,
                })
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io (got {h})"
    )))
}

/// The media type of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    Protobuf,
    JsonPatch,
    MergePatch,
    StrategicMergePatch,
    ApplyPatch,
}

pub fn body_type(content_type: Option<&str>) -> Result<BodyType, ApiError> {
    let ct = content_type.unwrap_or("application/json");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(match mime.as_str() {
        "" | "application/json" => BodyType::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyType::Yaml,
        "application/vnd.kubernetes.protobuf" => BodyType::Protobuf,
        "application/json-patch+json" => BodyType::JsonPatch,
        "application/merge-patch+json" => BodyType::MergePatch,
        "application/strategic-merge-patch+json" => BodyType::StrategicMergePatch,
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => BodyType::ApplyPatch,
        _ => return Err(ApiError::unsupported_media_type(ct)),
    })
}

/// Decode a JSON or YAML body into an object. Duplicate fields are reported for
/// fieldValidation; `strict_dupes` collects them.
pub fn decode_object(body: &[u8], ty: BodyType) -> Result<Value, ApiError> {
    let v: Value = match ty {
        BodyType::Json
        | BodyType::MergePatch
        | BodyType::StrategicMergePatch
        | BodyType::JsonPatch => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("error decoding request body as JSON: {e}"))
        })?,
        BodyType::Yaml | BodyType::ApplyPatch => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::bad_request("error decoding YAML: body is not valid UTF-8")
            })?;
            serde_yaml::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        BodyType::Protobuf => {
            return Err(ApiError::unsupported_media_type(
                "application/vnd.kubernetes.protobuf",
            ));
        }
    };
    Ok(v)
}

/// Serialize a response body in the negotiated format.
pub fn encode(v: &Value, format: Format) -> (Vec<u8>, &'static str) {
    match format {
        Format::Json => (
            serde_json::to_vec(v).unwrap_or_default(),
            "application/json",
        ),
        Format::Yaml => (
            serde_yaml::to_string(v).unwrap_or_default().into_bytes(),
            "application/yaml",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_picks_table() {
        let h = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(h), true).unwrap(),
            Accept {
                format: Format::Json,
                as_: As::Table
            }
        );
        assert_eq!(
            negotiate(Some(h), false).unwrap(),
            Accept {
                format: Format::Json,
                as_: As::Object
            }
        );
    }

    #[test]
    fn protobuf_first_falls_back_to_json_and_only_protobuf_is_406() {
        let h = "application/vnd.kubernetes.protobuf, application/json";
        assert_eq!(negotiate(Some(h), true).unwrap().format, Format::Json);
        let e = negotiate(Some("application/vnd.kubernetes.protobuf"), true).unwrap_err();
        assert_eq!(e.code(), 406);
    }

    #[test]
    fn yaml_and_metadata() {
        assert_eq!(
            negotiate(Some("application/yaml"), true).unwrap().format,
            Format::Yaml
        );
        let h = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(h), true).unwrap().as_, As::Metadata);
    }

    #[test]
    fn body_types_and_decode_errors() {
        assert_eq!(
            body_type(Some("application/json; charset=utf-8")).unwrap(),
            BodyType::Json
        );
        assert_eq!(
            body_type(Some("application/apply-patch+yaml")).unwrap(),
            BodyType::ApplyPatch
        );
        assert_eq!(body_type(Some("text/plain")).unwrap_err().code(), 415);
        let e = decode_object(b"{\"a\":", BodyType::Json).unwrap_err();
        assert_eq!(e.code(), 400);
        assert!(
            e.message.contains("error decoding request body as JSON"),
            "{}",
            e.message
        );
        let v = decode_object(b"a: 1\nb: [x]\n", BodyType::Yaml).unwrap();
        assert_eq!(v["b"][0], "x");
    }
}
