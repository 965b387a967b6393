//! Sets of field paths as server-side apply tracks them, with upstream's `FieldsV1` JSON encoding
//! (`{"f:spec":{"f:replicas":{}}}`, `k:{"name":"x"}` list-map keys, `v:"a"` set values, `i:0`
//! indices, `"."` marking a node that is itself a member) and upstream's path strings
//! (`.spec.containers[name="x"].image`) for conflict messages.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::PatchError;

/// One step of a field path. Ordered as upstream: field names, then keys, values, indices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// An object field or map key: `f:<name>`.
    Field(String),
    /// A list-map item identified by its key fields: the canonical JSON object (keys sorted).
    Key(String),
    /// A set-list item: its JSON value.
    Value(String),
    /// A list item by position (lists with no identity).
    Index(usize),
}

impl PathElement {
    /// A key element from (field, value) pairs (sorted by field name as upstream does).
    pub fn key(fields: &[(String, Value)]) -> Self {
        let mut sorted: Vec<&(String, Value)> = fields.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut m = Map::new();
        for (k, v) in sorted {
            m.insert(k.clone(), v.clone());
        }
        PathElement::Key(Value::Object(m).to_string())
    }

    /// A value element for a set-list item.
    pub fn value(v: &Value) -> Self {
        PathElement::Value(v.to_string())
    }

    /// The `FieldsV1` key: `f:name`, `k:{...}`, `v:...`, `i:N`.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub fn decode(s: &str) -> Result<Self, PatchError> {
        let bad = || PatchError::BadRequest(format!("invalid managed fields key {s:?}"));
        let (prefix, rest) = s.split_once(':').ok_or_else(bad)?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                let Value::Object(m) = v else {
                    return Err(bad());
                };
                let pairs: Vec<(String, Value)> = m.into_iter().collect();
                Ok(PathElement::key(&pairs))
            }
            "v" => {
                let v: Value = serde_json::from_str(rest).map_err(|_| bad())?;
                Ok(PathElement::value(&v))
            }
            "i" => rest.parse().map(PathElement::Index).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    /// The element as upstream prints it in a path: `.name`, `[k=v,...]`, `[=v]`, `[i]`.
    pub fn display(&self) -> String {
        match self {
            PathElement::Field(n) => format!(".{n}"),
            PathElement::Key(k) => {
                let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            PathElement::Value(v) => format!("[={v}]"),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

/// A path from the object root.
pub type FieldPath = Vec<PathElement>;

/// Upstream's string form of a path, e.g. `.spec.containers[name="a"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

/// A set of field paths stored as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// Adds a path (the empty path is ignored: the root is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        if path.is_empty() {
            return;
        }
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }

    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| n.member) && !path.is_empty()
    }

    fn node(&self, path: &[PathElement]) -> Option<&FieldSet> {
        let mut node = self;
        for pe in path {
            node = node.children.get(pe)?;
        }
        Some(node)
    }

    /// True when some member lies strictly below `path`.
    pub fn has_descendants(&self, path: &[PathElement]) -> bool {
        self.node(path)
            .is_some_and(|n| n.children.values().any(|c| !c.is_empty()))
    }

    /// True when the set has no member.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        usize::from(self.member) + self.children.values().map(FieldSet::len).sum::<usize>()
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, v) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(v),
                None => v.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out.pruned()
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => v.difference(o),
                None => v.clone(),
            };
            out.children.insert(k.clone(), d);
        }
        out.pruned()
    }

    /// Members in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            if let Some(o) = other.children.get(k) {
                out.children.insert(k.clone(), v.intersection(o));
            }
        }
        out.pruned()
    }

    fn pruned(mut self) -> FieldSet {
        self.children.retain(|_, c| !c.is_empty());
        self
    }

    /// All member paths, in set order (parents before children).
    pub fn paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        self.collect(&mut cur, &mut out);
        out
    }

    fn collect(&self, cur: &mut FieldPath, out: &mut Vec<FieldPath>) {
        if self.member && !cur.is_empty() {
            out.push(cur.clone());
        }
        for (k, v) in &self.children {
            cur.push(k.clone());
            v.collect(cur, out);
            cur.pop();
        }
    }

    /// The `FieldsV1` JSON form.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, v) in &self.children {
            if !v.is_empty() {
                m.insert(k.encode(), v.to_fields_v1());
            }
        }
        Value::Object(m)
    }

    /// Parses the `FieldsV1` JSON form.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, PatchError> {
        let mut root = Self::decode_node(v)?;
        root.member = false;
        Ok(root)
    }

    fn decode_node(v: &Value) -> Result<FieldSet, PatchError> {
        let Value::Object(m) = v else {
            return Err(PatchError::BadRequest(format!(
                "invalid managed fields: expected an object, got {v}"
            )));
        };
        let mut node = FieldSet {
            member: m.is_empty(),
            children: BTreeMap::new(),
        };
        for (k, child) in m {
            if k == "." {
                node.member = true;
                continue;
            }
            node.children
                .insert(PathElement::decode(k)?, Self::decode_node(child)?);
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(s: &str) -> PathElement {
        PathElement::Field(s.into())
    }

    #[test]
    fn fields_v1_round_trip() {
        let docs = [
            json!({"f:spec": {"f:replicas": {}}}),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}}}}),
            json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}}}}),
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}}}),
            json!({"f:x": {"i:0": {}}}),
        ];
        for d in docs {
            let s = FieldSet::from_fields_v1(&d).unwrap();
            assert_eq!(s.to_fields_v1(), d);
        }
        assert!(FieldSet::from_fields_v1(&json!({"q:x": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:x": 1})).is_err());
    }

    #[test]
    fn set_algebra_and_paths() {
        let mut a = FieldSet::new();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        let mut b = FieldSet::new();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("metadata"), f("labels"), f("x")]);
        assert_eq!(a.union(&b).len(), 3);
        assert_eq!(
            a.intersection(&b).paths(),
            vec![vec![f("spec"), f("replicas")]]
        );
        assert_eq!(a.difference(&b).paths(), vec![vec![f("spec"), f("paused")]]);
        assert!(a.difference(&a).is_empty());
        assert!(a.has_descendants(&[f("spec")]));
        assert!(!a.has_descendants(&[f("spec"), f("replicas")]));
        assert!(a.contains(&[f("spec"), f("replicas")]));
        assert!(!a.contains(&[f("spec")]));
    }

    #[test]
    fn path_strings() {
        let k = PathElement::key(&[
            ("protocol".into(), json!("TCP")),
            ("containerPort".into(), json!(80)),
        ]);
        assert_eq!(k.encode(), "k:{\"containerPort\":80,\"protocol\":\"TCP\"}");
        let p = vec![
            f("spec"),
            f("containers"),
            PathElement::key(&[("name".into(), json!("a"))]),
            f("ports"),
            k,
        ];
        assert_eq!(
            path_string(&p),
            ".spec.containers[name=\"a\"].ports[containerPort=80,protocol=\"TCP\"]"
        );
        assert_eq!(
            path_string(&[
                f("m"),
                PathElement::value(&json!("x")),
                PathElement::Index(2)
            ]),
            ".m[=\"x\"][2]"
        );
    }
}
