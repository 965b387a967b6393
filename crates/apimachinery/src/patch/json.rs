//! JSON patch (RFC 6902, wrapping the `json-patch` crate) and JSON merge patch (RFC 7386) with the
//! apiserver's error classification.

use serde_json::Value;

use super::PatchError;

/// Upstream's limit on the number of operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10000;

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Applies an RFC 6902 JSON patch (`patch` is the decoded request body) to `doc`.
///
/// Errors: a body that is not a list of valid operations is `BadRequest` (400); more than
/// [`MAX_JSON_PATCH_OPERATIONS`] operations is `TooLarge` (413); an operation that cannot be applied
/// (missing path, failed `test`, ...) is `Unprocessable` (422). The document is left unchanged on
/// error (operations are all-or-nothing).
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = match patch {
        Value::Array(ops) => ops,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                type_name(other)
            )))
        }
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut decoded = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let o: json_patch::PatchOperation = serde_json::from_value(op.clone()).map_err(|e| {
            PatchError::BadRequest(format!("invalid JSON patch operation {i}: {e}"))
        })?;
        decoded.push(o);
    }
    let mut out = doc.clone();
    json_patch::patch(&mut out, &decoded).map_err(|e| PatchError::Unprocessable(e.to_string()))?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a member, any
/// other value (arrays included) replaces. The patch must be a JSON object (as the apiserver
/// requires for object patches); anything else is `BadRequest` `Invalid JSON Patch`.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Patch".into()));
    }
    if !doc.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Document".into()));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_table() {
        let doc =
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [1, 2]}});
        let cases = vec![
            (
                json!([{"op": "add", "path": "/metadata/labels/y", "value": "2"}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"list": [1, 2]}}),
            ),
            (
                json!([{"op": "remove", "path": "/metadata/labels/x"}]),
                json!({"metadata": {"name": "a", "labels": {}}, "spec": {"list": [1, 2]}}),
            ),
            (
                json!([{"op": "replace", "path": "/spec/list/0", "value": 9}, {"op": "add", "path": "/spec/list/-", "value": 3}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [9, 2, 3]}}),
            ),
            (
                json!([{"op": "test", "path": "/metadata/name", "value": "a"}, {"op": "copy", "from": "/metadata/name", "path": "/spec/n"}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [1, 2], "n": "a"}}),
            ),
            (
                json!([{"op": "move", "from": "/spec/list", "path": "/spec/moved"}]),
                json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"moved": [1, 2]}}),
            ),
        ];
        for (patch, want) in cases {
            assert_eq!(
                apply_json_patch(&doc, &patch).unwrap(),
                want,
                "patch {patch}"
            );
        }
    }

    #[test]
    fn json_patch_errors() {
        let doc = json!({"a": {"b": 1}});
        let cases = vec![
            (
                json!({"op": "add"}),
                Some("object"),
                PatchError::BadRequest(String::new()),
            ),
            (
                json!([{"op": "frobnicate", "path": "/a"}]),
                None,
                PatchError::BadRequest(String::new()),
            ),
            (
                json!([{"op": "add"}]),
                None,
                PatchError::BadRequest(String::new()),
            ),
            (
                json!([{"op": "remove", "path": "/nope"}]),
                Some("/nope"),
                PatchError::Unprocessable(String::new()),
            ),
            (
                json!([{"op": "test", "path": "/a/b", "value": 2}]),
                Some("/a/b"),
                PatchError::Unprocessable(String::new()),
            ),
            (
                json!([{"op": "replace", "path": "/x/y", "value": 2}]),
                Some("/x/y"),
                PatchError::Unprocessable(String::new()),
            ),
        ];
        for (patch, needle, kind) in cases {
            let err = apply_json_patch(&doc, &patch).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&kind),
                "patch {patch}: {err}"
            );
            if let Some(n) = needle {
                assert!(err.to_string().contains(n), "patch {patch}: {err}");
            }
        }
        let many: Vec<Value> = (0..10001)
            .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
            .collect();
        let err = apply_json_patch(&doc, &Value::Array(many)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        assert_eq!(err.reason(), crate::Reason::RequestEntityTooLarge);
    }

    #[test]
    fn merge_patch_table() {
        let doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        let cases = vec![
            (
                json!({"a": "z"}),
                json!({"a": "z", "c": {"d": "e", "f": "g"}, "l": [1, 2]}),
            ),
            (
                json!({"a": null}),
                json!({"c": {"d": "e", "f": "g"}, "l": [1, 2]}),
            ),
            (
                json!({"c": {"f": null, "h": 1}}),
                json!({"a": "b", "c": {"d": "e", "h": 1}, "l": [1, 2]}),
            ),
            (
                json!({"l": [3]}),
                json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [3]}),
            ),
            (
                json!({"c": "flat"}),
                json!({"a": "b", "c": "flat", "l": [1, 2]}),
            ),
            (
                json!({"n": {"deep": null, "x": 1}}),
                json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2], "n": {"x": 1}}),
            ),
            (json!({}), doc.clone()),
        ];
        for (patch, want) in cases {
            assert_eq!(
                apply_merge_patch(&doc, &patch).unwrap(),
                want,
                "patch {patch}"
            );
        }
        for bad in [json!(null), json!([1]), json!("x")] {
            let err = apply_merge_patch(&doc, &bad).unwrap_err();
            assert_eq!(err, PatchError::BadRequest("Invalid JSON Patch".into()));
        }
    }
}
