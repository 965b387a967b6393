//! Strategic merge patch, applying a patch the way upstream's `strategicpatch.StrategicMergePatch`
//! does: lists merged by merge key or as scalar sets per the field's `patchStrategy`, the
//! directives `$patch` (replace / merge / delete), `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>`, and `null` deleting a field.
//!
//! A patch value for a field absent from the original is taken without its nulls and without maps
//! carrying `$patch` (upstream `removeDirectives`); other keys starting with `$` are dropped there
//! as the typed decode of a built-in object would drop them.

use serde_json::{Map, Value};

use super::schema::{PatchSchema, PatchStrategy};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

fn bad_json_doc() -> PatchError {
    PatchError::BadRequest("invalid JSON document".into())
}
fn bad_primitive_list() -> PatchError {
    PatchError::BadRequest("invalid patch format of primitive list".into())
}
fn bad_retain_keys() -> PatchError {
    PatchError::BadRequest("invalid patch format of retainKeys".into())
}
fn bad_set_element_order() -> PatchError {
    PatchError::BadRequest("invalid patch format of setElementOrder list".into())
}
fn no_merge_key(m: &Value, key: &str) -> PatchError {
    PatchError::Internal(format!(
        "map: {m} does not contain declared merge key: {key}"
    ))
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map",
        Value::Array(_) => "slice",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "invalid",
    }
}

fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::Internal(format!(
        "expected a {expected}, but received a {}",
        kind_name(actual)
    ))
}

/// Equality as Go's `==` on decoded JSON (`interface{}` holding float64/string/bool/nil).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Same "type" as Go's `reflect.TypeOf` on decoded JSON values.
fn same_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// Applies a strategic merge patch to `original` (a JSON object) using `schema` for merge keys and
/// strategies. Errors carry upstream's messages and classification (see [`PatchError::reason`]).
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: &dyn PatchSchema,
) -> Result<Value, PatchError> {
    let orig = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(bad_json_doc()),
    };
    let p = match patch {
        Value::Object(m) => m.clone(),
        _ => return Err(bad_json_doc()),
    };
    let mut m = Merger {
        schema,
        path: Vec::new(),
    };
    m.merge_map(orig, p).map(Value::Object)
}

struct Merger<'a> {
    schema: &'a dyn PatchSchema,
    path: Vec<String>,
}

impl Merger<'_> {
    fn lookup(&self, key: &str) -> super::schema::FieldInfo {
        let mut p: Vec<&str> = self.path.iter().map(String::as_str).collect();
        p.push(key);
        self.schema.lookup(&p)
    }

    fn merge_map(
        &mut self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(d) = patch.get(DIRECTIVE) {
            return match d.as_str() {
                Some("replace") => {
                    patch.remove(DIRECTIVE);
                    match clean(Value::Object(patch)) {
                        Some(Value::Object(m)) => Ok(m),
                        _ => Ok(Map::new()),
                    }
                }
                Some("delete") => Ok(Map::new()),
                _ => Err(PatchError::Internal(format!(
                    "unknown patch type: {} in map: {}",
                    d.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| d.to_string()),
                    Value::Object(patch.clone())
                ))),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_set_element_order(&mut original, &mut patch)?;

        for (k, pv) in patch {
            let (key, is_delete_list) =
                if let Some(rest) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                    match rest.strip_prefix('/') {
                        Some(field) => (field.to_string(), true),
                        None => return Err(bad_primitive_list()),
                    }
                } else if k.starts_with('$') {
                    // not a directive this engine knows: the typed decode would drop it
                    continue;
                } else {
                    (k, false)
                };
            if pv.is_null() {
                original.remove(&key);
                continue;
            }
            let info = self.lookup(&key);
            let absent_or_other_type = original.get(&key).is_none_or(|ov| !same_type(ov, &pv));
            if absent_or_other_type {
                // upstream takes the patch value minus nulls and directive-carrying maps
                if !is_delete_list {
                    match clean(pv) {
                        Some(v) => original.insert(key, v),
                        None => original.remove(&key),
                    };
                }
                continue;
            }
            let ov = original.remove(&key).unwrap_or(Value::Null);
            self.path.push(key.clone());
            let merged = match (ov, pv) {
                (Value::Object(o), Value::Object(p)) => {
                    if info.strategy == PatchStrategy::Replace {
                        Ok(clean(Value::Object(p)).unwrap_or_default())
                    } else {
                        self.merge_map(o, p).map(Value::Object)
                    }
                }
                (Value::Array(o), Value::Array(p)) => {
                    // delete lists apply whatever the field's strategy
                    if info.strategy == PatchStrategy::Merge || is_delete_list {
                        self.merge_slice(o, p, info.merge_key.as_deref(), is_delete_list)
                            .map(Value::Array)
                    } else {
                        Ok(Value::Array(p))
                    }
                }
                (_, p) => Ok(p),
            };
            self.path.pop();
            original.insert(key, merged?);
        }
        Ok(original)
    }

    /// `$setElementOrder/<field>`: merges the list it names (if patched) and orders the result by
    /// the directive, the patch and the live list, in that precedence.
    fn merge_set_element_order(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
    ) -> Result<(), PatchError> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for key in keys {
            let order_v = patch.remove(&key).unwrap_or(Value::Null);
            let Value::Array(order) = order_v else {
                return Err(bad_arg_type("slice", &order_v));
            };
            let field = match key[SET_ELEMENT_ORDER.len()..].strip_prefix('/') {
                Some(f) => f.to_string(),
                None => return Err(bad_set_element_order()),
            };
            let orig_list = match original.get(&field) {
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(bad_arg_type("slice", other)),
                None => None,
            };
            let patch_list = match patch.get(&field) {
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(bad_arg_type("slice", other)),
                None => None,
            };
            let info = self.lookup(&field);
            let merge_key = info.merge_key.clone();
            validate_patch_with_set_order(
                patch_list.as_deref().unwrap_or(&[]),
                &order,
                merge_key.as_deref(),
            )?;
            let merged = match (&orig_list, &patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => match clean(Value::Array(p.clone())) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                },
                (Some(o), Some(p)) => {
                    self.path.push(field.clone());
                    let r = if info.strategy == PatchStrategy::Merge {
                        self.merge_slice(o.clone(), p.clone(), merge_key.as_deref(), false)
                    } else {
                        Ok(p.clone())
                    };
                    self.path.pop();
                    r?
                }
                (None, None) => continue,
            };
            let (patch_items, server_only) = partition(&merged, &order, merge_key.as_deref())?;
            let o = orig_list.unwrap_or_default();
            let p = patch_list.unwrap_or_default();
            let is_map = element_kind(&o, &p)?.is_object();
            let key_for_order = if is_map { merge_key.as_deref() } else { None };
            // upstream orders server-only items by the live list as its in-place deletions and
            // appends left it (Go slices share their backing array); reproduce that view
            let server_order = match (
                key_for_order,
                info.strategy == PatchStrategy::Merge && !p.is_empty(),
            ) {
                (Some(k), true) => aliased_server_order(&o, &p, k),
                _ => o.clone(),
            };
            let both = normalize_element_order(
                patch_items,
                server_only,
                &order,
                &server_order,
                key_for_order,
            )?;
            original.insert(field.clone(), Value::Array(both));
            patch.remove(&field);
        }
        Ok(())
    }

    fn merge_slice(
        &mut self,
        original: Vec<Value>,
        patch: Vec<Value>,
        merge_key: Option<&str>,
        is_delete_list: bool,
    ) -> Result<Vec<Value>, PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = element_kind(&original, &patch)?;
        if !kind.is_object() {
            if is_delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.iter().any(|d| json_eq(v, d)))
                    .collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(patch.iter()) {
                if !merged.iter().any(|m| json_eq(m, v)) {
                    merged.push(v.clone());
                }
            }
            let (patch_items, server_only) = partition(&merged, &patch, None)?;
            return normalize_element_order(patch_items, server_only, &patch, &original, None);
        }
        let Some(key) = merge_key else {
            return Err(PatchError::Internal(
                "cannot merge lists without merge key for type struct".into(),
            ));
        };
        let (original, patch) = merge_slice_with_special_elements(original, patch, key)?;
        let mut merged = original.clone();
        for v in &patch {
            let Some(mv) = v.get(key) else {
                return Err(no_merge_key(v, key));
            };
            match find_by_key(&merged, key, mv)? {
                Some(i) => {
                    let (Value::Object(o), Value::Object(p)) = (merged[i].clone(), v.clone())
                    else {
                        return Err(bad_arg_type("map", v));
                    };
                    merged[i] = Value::Object(self.merge_map(o, p)?);
                }
                None => {
                    let Value::Object(p) = v.clone() else {
                        return Err(bad_arg_type("map", v));
                    };
                    if let Some(c) = clean(Value::Object(p)) {
                        merged.push(c);
                    }
                }
            }
        }
        let (patch_items, server_only) = partition(&merged, &patch, Some(key))?;
        normalize_element_order(patch_items, server_only, &patch, &original, Some(key))
    }
}

/// The element value of a list, checking all elements of both lists share one type that is not
/// a list (upstream `sliceElementType`).
fn element_kind(a: &[Value], b: &[Value]) -> Result<Value, PatchError> {
    let mut prev: Option<&Value> = None;
    for v in a.iter().chain(b.iter()) {
        match prev {
            None => {
                if v.is_array() {
                    return Err(PatchError::Unprocessable(
                        "lists of lists are not supported".into(),
                    ));
                }
                prev = Some(v);
            }
            Some(p) if !same_type(p, v) => {
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: {} {}",
                    Value::Array(a.to_vec()),
                    Value::Array(b.to_vec())
                )))
            }
            _ => {}
        }
    }
    prev.cloned()
        .ok_or_else(|| PatchError::Internal("no elements in any of the given slices".into()))
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, PatchError> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(PatchError::Internal(format!(
                "value for key {i} is not a map."
            )));
        };
        if m.get(key).is_some_and(|x| json_eq(x, value)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Handles list elements carrying `$patch` (delete / replace); returns the updated original and
/// the patch without those elements.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type("map", &v));
        };
        match m.get(DIRECTIVE) {
            None => plain.push(v),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let Some(mv) = m.get(key) else {
                        return Err(no_merge_key(&v, key));
                    };
                    while let Some(i) = find_by_key(&original, key, mv)? {
                        original.remove(i);
                    }
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(PatchError::Internal(
                        "merging lists cannot yet be specified in the patch".into(),
                    ))
                }
                _ => {
                    return Err(PatchError::Internal(format!(
                        "unknown patch type: {} in map: {v}",
                        d.as_str().unwrap_or_default()
                    )))
                }
            },
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    Ok((original, plain))
}

/// Splits `list` into the items present in `by` and the others (by merge key for maps).
fn partition(
    list: &[Value],
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut inp = Vec::new();
    let mut out = Vec::new();
    for v in list {
        let present = match key {
            None => by.iter().any(|b| json_eq(b, v)),
            Some(k) => {
                if !v.is_object() {
                    return Err(bad_arg_type("map", v));
                }
                let Some(mv) = v.get(k) else {
                    return Err(no_merge_key(v, k));
                };
                find_by_key(by, k, mv)?.is_some()
            }
        };
        if present {
            inp.push(v.clone());
        } else {
            out.push(v.clone());
        }
    }
    Ok((inp, out))
}

fn index_in(list: &[Value], v: &Value, key: Option<&str>) -> Option<usize> {
    match key {
        Some(k) => {
            let want = v.get(k).unwrap_or(&Value::Null);
            list.iter()
                .position(|x| json_eq(x.get(k).unwrap_or(&Value::Null), want))
        }
        None => list.iter().position(|x| json_eq(x, v)),
    }
}

fn is_delete_item(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let mut to_delete = Vec::new();
    let mut keep = to_sort;
    if let Some(k) = key {
        for v in keep.iter().chain(order.iter()) {
            if !v.is_object() {
                return Err(bad_arg_type("map", v));
            }
            if v.get(k).is_none() {
                return Err(no_merge_key(v, k));
            }
        }
        let (d, n): (Vec<Value>, Vec<Value>) = keep.into_iter().partition(is_delete_item);
        to_delete = d;
        keep = n;
    }
    keep.sort_by_key(|v| index_in(order, v, key).unwrap_or(usize::MAX));
    keep.extend(to_delete);
    Ok(keep)
}

/// Orders patch items by `patch_order`, server-only items by `server_order`, then interleaves
/// them keeping server-only items before patch items they precede in the live list.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let right = normalize_slice_order(patch, patch_order, key)?;
    let left = normalize_slice_order(server_only, server_order, key)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = index_in(server_order, &left[i], key);
            let ri = index_in(server_order, &right[j], key);
            match (li, ri) {
                (Some(a), Some(b)) if a < b => {
                    out.push(left[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(right[j].clone());
                    j += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Checks the patch list's relative order agrees with the `$setElementOrder` list.
fn validate_patch_with_set_order(
    patch: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = match key {
        Some(_) => {
            for v in patch {
                if !v.is_object() {
                    return Err(bad_arg_type("map", v));
                }
            }
            patch.iter().filter(|v| !is_delete_item(v)).collect()
        }
        None => patch.iter().collect(),
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let equal = match key {
            None => json_eq(non_delete[pi], &order[oi]),
            Some(k) => {
                let a = non_delete[pi]
                    .get(k)
                    .ok_or_else(|| no_merge_key(non_delete[pi], k))?;
                if !order[oi].is_object() {
                    return Err(bad_arg_type("map", &order[oi]));
                }
                let b = order[oi]
                    .get(k)
                    .ok_or_else(|| no_merge_key(&order[oi], k))?;
                json_eq(a, b)
            }
        };
        if equal {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchError::Internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            Value::Array(patch.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

/// The live list as upstream sees it after merging a patch list into it in place: elements
/// deleted by `$patch: delete` shift the rest left (the tail keeps stale copies) and appended
/// new elements overwrite positions within the original length.
fn aliased_server_order(original: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let has = |list: &[Value], mv: &Value| {
        list.iter()
            .position(|x| x.get(key).is_some_and(|y| json_eq(y, mv)))
    };
    let mut view = original.to_vec();
    let mut len = view.len();
    let mut replace = false;
    for v in patch {
        match v.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => {
                let Some(mv) = v.get(key) else { continue };
                while let Some(i) = has(&view[..len], mv) {
                    // append(s[:i], s[i+1:]...): shift left, the old last slot keeps its value
                    for j in i..len - 1 {
                        view[j] = view[j + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some("replace") => replace = true,
            _ => {}
        }
    }
    if replace {
        return view;
    }
    let mut logical: Vec<Value> = view[..len].to_vec();
    for v in patch.iter().filter(|v| v.get(DIRECTIVE).is_none()) {
        let Some(mv) = v.get(key) else { continue };
        if has(&logical, mv).is_some() {
            continue;
        }
        if logical.len() < view.len() {
            view[logical.len()] = v.clone();
        }
        logical.push(v.clone());
    }
    view
}

/// A patch value taken as is (the field is absent from the original or of another type), as
/// upstream's `discardNullValuesFromPatch` + `removeDirectives`: nulls in maps go, maps carrying
/// `$patch` go (`None` when the value itself is one), other `$` keys go as the typed decode would
/// drop them.
fn clean(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in m {
                if v.is_null() || k.starts_with('$') {
                    continue;
                }
                if let Some(c) = clean(v) {
                    out.insert(k, c);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(a.into_iter().filter_map(clean).collect())),
        other => Some(other),
    }
}

/// `$retainKeys`: drops original keys not listed; every non-null patched key must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(rk) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(list) = rk else {
        return Err(bad_retain_keys());
    };
    let keep = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep(k) {
            return Err(bad_retain_keys());
        }
    }
    original.retain(|k, _| keep(k));
    Ok(())
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
