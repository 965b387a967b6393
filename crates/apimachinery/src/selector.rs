//! Label and field selectors: parsing exactly as upstream `k8s.io/apimachinery/pkg/labels` and
//! `pkg/fields` do (same grammar, same error messages), `LabelSelector` objects, matching and the
//! canonical string forms.
//!
//! Label selector grammar (upstream `labels.Parse`):
//!
//! ```text
//! <selector>    ::= <requirement> | <requirement> "," <selector>
//! <requirement> ::= [!] KEY [ <set-based> | <exact> | ">" INT | "<" INT ]
//! <set-based>   ::= ("in" | "notin") "(" VALUE { "," VALUE } ")"
//! <exact>       ::= ("=" | "==" | "!=") VALUE
//! ```
//!
//! Field selectors are `field=value`, `field==value` or `field!=value` terms joined by `,`; in values
//! `\`, `,` and `=` must be escaped with a backslash.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

/// Errors of selector parsing and construction; the Display text is upstream's message (the API
/// server returns it in a 400 BadRequest Status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// An invalid label selector string or requirement.
    #[error("{0}")]
    Label(String),
    /// An invalid field selector string.
    #[error("{0}")]
    Field(String),
}

// ---------------------------------------------------------------------------------------------
// validation helpers (upstream k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------------

// name and value rules are the object-meta ones
pub use crate::meta::{is_dns1123_subdomain, is_qualified_name, is_valid_label_value};

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// `<path>: Invalid value: <value>: <detail>` as upstream's `field.Invalid(...).Error()`.
fn invalid(path: &str, rendered_value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {rendered_value}: {detail}")
}

/// Upstream's `errors.NewAggregate(list).Error()`.
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

impl SelectorError {
    /// The 400 BadRequest the API server answers with for an unparsable selector.
    pub fn to_api_error(&self) -> crate::status::ApiError {
        crate::status::ApiError::bad_request(self.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// label sets
// ---------------------------------------------------------------------------------------------

/// A read-only view of a label set.
pub trait Labels {
    fn get_label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A JSON object of string values (e.g. `metadata.labels`); non-string values count as absent.
impl Labels for serde_json::Map<String, Value> {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
}

impl Labels for [(&str, &str)] {
    fn get_label(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// The labels of an object (`metadata.labels`), or an empty set when it has none.
pub fn object_labels(obj: &Value) -> serde_json::Map<String, Value> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// label selector requirements
// ---------------------------------------------------------------------------------------------

/// A requirement operator (upstream `selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// Upstream's string for the operator (`in`, `notin`, `=`, `==`, `!=`, `exists`, `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One requirement of a label selector: key, operator and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

/// A value list as Kubernetes 1.33 renders it in field errors (Go's `%#v`):
/// `[]string{"a", "b"}`, `[]string{}`, or `[]string(nil)` for a nil slice.
fn render_values(vals: &[String], nil: bool) -> String {
    if nil && vals.is_empty() {
        return "[]string(nil)".to_string();
    }
    let items: Vec<String> = vals.iter().map(|v| quote(v)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

impl Requirement {
    /// Upstream `labels.NewRequirement` without a field path: validates key, operator arity and
    /// values.
    pub fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        Self::new_at(key, op, values, "", false)
    }

    /// `path` prefixes the field names in errors (empty: none); `nil_values` renders an empty
    /// value list as `null` as Go does for a nil slice.
    fn new_at(
        key: &str,
        op: Operator,
        values: Vec<String>,
        path: &str,
        nil_values: bool,
    ) -> Result<Self, SelectorError> {
        let child = |c: &str| {
            if path.is_empty() {
                c.to_string()
            } else {
                format!("{path}.{c}")
            }
        };
        let mut errs = Vec::new();
        let kerrs = is_qualified_name(key);
        if !kerrs.is_empty() {
            errs.push(invalid(&child("key"), &quote(key), &kerrs.join("; ")));
        }
        let vpath = child("values");
        match op {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid(
                        &vpath,
                        &render_values(&values, nil_values),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid(
                        &vpath,
                        &render_values(&values, nil_values),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid(
                        &vpath,
                        &render_values(&values, nil_values),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid(
                        &vpath,
                        &render_values(&values, nil_values),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("{vpath}[{i}]"),
                            &quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let verrs = is_valid_label_value(v);
            if !verrs.is_empty() {
                errs.push(invalid(
                    &format!("{vpath}[{i}][{key}]"),
                    &quote(v),
                    &verrs.join("; "),
                ));
            }
        }
        match aggregate(errs) {
            Some(msg) => Err(SelectorError::Label(msg)),
            None => Ok(Requirement {
                key: key.to_string(),
                op,
                values,
            }),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.op
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether the label set satisfies this requirement (upstream `Requirement.Matches`).
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let got = labels.get_label(&self.key);
        match self.op {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                got.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => got.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(have)) = got.map(str::parse::<i64>) else {
                    return false;
                };
                if self.values.len() != 1 {
                    return false;
                }
                let Ok(want) = self.values[0].parse::<i64>() else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let sep = match self.op {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(sep)?;
        let set = matches!(self.op, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut vals = self.values.clone();
        vals.sort();
        f.write_str(&vals.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// label selector
// ---------------------------------------------------------------------------------------------

/// A label selector: the AND of its requirements, or "nothing" (matches no object, as upstream's
/// `labels.Nothing()` for a nil `LabelSelector`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every label set.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches nothing.
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses a selector string as upstream `labels.Parse` does (requirements sorted by key).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            items: lex(s),
            pos: 0,
        };
        let mut reqs = p.parse().map_err(SelectorError::Label)?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// An equality selector for a label set (upstream `SelectorFromValidatedSet`), no validation.
    pub fn from_set<'a>(set: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut reqs: Vec<Requirement> = set
            .into_iter()
            .map(|(k, v)| Requirement {
                key: k.to_string(),
                op: Operator::Equals,
                values: vec![v.to_string()],
            })
            .collect();
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements: reqs,
            nothing: false,
        }
    }

    /// Upstream `metav1.LabelSelectorAsSelector` on the JSON form of a `LabelSelector`
    /// (`{"matchLabels":{...},"matchExpressions":[{"key","operator","values"}]}`): `None` or JSON
    /// null gives [`LabelSelector::nothing`], an empty object gives [`LabelSelector::everything`].
    pub fn from_label_selector(sel: Option<&Value>) -> Result<Self, SelectorError> {
        let sel = match sel {
            None | Some(Value::Null) => return Ok(Self::nothing()),
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(SelectorError::Label(format!(
                    "invalid label selector: {other}"
                )))
            }
        };
        let empty = serde_json::Map::new();
        let match_labels = match sel.get("matchLabels") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(SelectorError::Label(
                    "matchLabels must be a map of strings".into(),
                ))
            }
        };
        let no_exprs = Vec::new();
        let exprs = match sel.get("matchExpressions") {
            None | Some(Value::Null) => &no_exprs,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(SelectorError::Label(
                    "matchExpressions must be a list".into(),
                ))
            }
        };
        if match_labels.is_empty() && exprs.is_empty() {
            return Ok(Self::everything());
        }
        let mut reqs = Vec::new();
        for (k, v) in match_labels {
            let v = v.as_str().ok_or_else(|| {
                SelectorError::Label(format!(
                    "matchLabels value of {} must be a string",
                    quote(k)
                ))
            })?;
            reqs.push(Requirement::new(k, Operator::Equals, vec![v.to_string()])?);
        }
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let op_s = e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let op = match op_s {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::Label(format!(
                        "{} is not a valid label selector operator",
                        quote(other)
                    )))
                }
            };
            let (vals, nil) = match e.get("values") {
                None | Some(Value::Null) => (Vec::new(), true),
                Some(Value::Array(a)) => (
                    a.iter()
                        .map(|v| {
                            v.as_str().map(str::to_string).ok_or_else(|| {
                                SelectorError::Label(
                                    "matchExpressions values must be strings".into(),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    a.is_empty(),
                ),
                Some(_) => {
                    return Err(SelectorError::Label(
                        "matchExpressions values must be a list".into(),
                    ))
                }
            };
            reqs.push(Requirement::new_at(key, op, vals, "", nil)?);
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// [`LabelSelector::from_label_selector`] for the typed `meta/v1` `LabelSelector`.
    pub fn from_api(
        sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    ) -> Result<Self, SelectorError> {
        match sel {
            None => Ok(Self::nothing()),
            Some(s) => {
                let v = serde_json::to_value(s).map_err(|e| SelectorError::Label(e.to_string()))?;
                Self::from_label_selector(Some(&v))
            }
        }
    }

    /// Adds a requirement (kept sorted by key).
    pub fn add(&mut self, r: Requirement) {
        self.requirements.push(r);
        self.requirements.sort_by(|a, b| a.key.cmp(&b.key));
    }

    /// True when the selector does not restrict anything (not true for "nothing").
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the selector that matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether all requirements match the label set.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches against an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&object_labels(obj))
    }

    /// Upstream `RequiresExactMatch`: the single value the selector requires for `label`.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match r.op {
            Operator::Equals | Operator::DoubleEquals | Operator::In if r.values.len() == 1 => {
                Some(&r.values[0])
            }
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

// lexer ----------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Tokenises the whole input (ending with `End`); a NUL byte ends the input as upstream's reader.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let at = |i: usize| if i < b.len() { b[i] } else { 0 };
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while at(pos) != 0 && is_ws(at(pos)) {
            pos += 1;
        }
        let c = at(pos);
        if c == 0 {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(c) {
            let start = pos;
            let mut last: Option<(Tok, usize)> = None;
            while at(pos) != 0 && is_special(at(pos)) {
                let buf = &s[start..=pos];
                if let Some(t) = keyword(buf) {
                    last = Some((t, pos + 1));
                } else if last.is_some() {
                    break;
                }
                pos += 1;
            }
            match last {
                Some((t, end)) => {
                    out.push((t, s[start..end].to_string()));
                    pos = end;
                }
                None => out.push((
                    Tok::Error,
                    format!("error expected: keyword found '{}'", &s[start..pos]),
                )),
            }
        } else {
            let start = pos;
            while at(pos) != 0 && !is_special(at(pos)) && !is_ws(at(pos)) {
                pos += 1;
            }
            let lit = &s[start..pos];
            out.push((keyword(lit).unwrap_or(Tok::Identifier), lit.to_string()));
        }
    }
}

// parser ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn adjust(t: Tok, ctx: Ctx) -> Tok {
        if ctx == Ctx::Values && matches!(t, Tok::In | Tok::NotIn) {
            Tok::Identifier
        } else {
            t
        }
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        let (t, l) = &self.items[self.pos.min(self.items.len() - 1)];
        (Self::adjust(*t, ctx), l.clone())
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let r = self.lookahead(ctx);
        if self.pos < self.items.len() - 1 {
            self.pos += 1;
        }
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (t, lit) = self.lookahead(Ctx::Values);
            match t {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op) = op {
            return Requirement::new_at(&key, op, Vec::new(), "", false).map_err(|e| e.to_string());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new_at(&key, op, values, "", false).map_err(|e| e.to_string())
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut t, mut lit) = self.consume(Ctx::Values);
        if t == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (t, lit) = self.consume(Ctx::Values);
        }
        if t != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let kerrs = is_qualified_name(&lit);
        if !kerrs.is_empty() {
            return Err(invalid("<nil>", &quote(&lit), &kerrs.join("; ")));
        }
        let (next, _) = self.lookahead(Ctx::Values);
        if (next == Tok::End || next == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (t, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match t {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.consume(Ctx::Values);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.lookahead(Ctx::Values);
        match t {
            Tok::Identifier | Tok::Comma => {
                let s = self.parse_identifiers_list()?;
                let (t, _) = self.consume(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A sorted set of values, as upstream's `sets.String.List()`.
    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set = std::collections::BTreeSet::new();
        loop {
            let (t, lit) = self.consume(Ctx::Values);
            match t {
                Tok::Identifier => {
                    set.insert(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set.into_iter().collect()),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        set.insert(String::new());
                        return Ok(set.into_iter().collect());
                    }
                    if t2 == Tok::Comma {
                        // Kubernetes 1.33 consumes the second comma here, so `(a,,)` is an
                        // error (later releases accept it)
                        self.consume(Ctx::Values);
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.lookahead(Ctx::Values);
        if t == Tok::End || t == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.consume(Ctx::Values);
        if t == Tok::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

// ---------------------------------------------------------------------------------------------
// field selectors
// ---------------------------------------------------------------------------------------------

/// A read-only view of the selectable fields of an object (computed by the API server per kind,
/// e.g. `metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase`). A missing field
/// reads as the empty string, as upstream's `fields.Set.Get`.
pub trait Fields {
    fn get_field(&self, field: &str) -> Option<&str>;
}

impl Fields for BTreeMap<String, String> {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.get(field).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Fields for HashMap<String, String, S> {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.get(field).map(String::as_str)
    }
}

impl Fields for [(&str, &str)] {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == field).map(|(_, v)| *v)
    }
}

/// The field set every kind supports (upstream `DefaultClusterScopedAttr` /
/// `DefaultNamespaceScopedAttr`): `metadata.name`, plus `metadata.namespace` when namespaced.
/// Kinds add their own (e.g. pods: `spec.nodeName`, `status.phase`).
pub fn object_meta_fields(obj: &Value, namespaced: bool) -> BTreeMap<String, String> {
    let meta = |k: &str| {
        obj.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut out = BTreeMap::new();
    out.insert("metadata.name".to_string(), meta("name"));
    if namespaced {
        out.insert("metadata.namespace".to_string(), meta("namespace"));
    }
    out
}

/// The operator of a field selector term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One `field=value` / `field!=value` term (value unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub op: FieldOperator,
    pub value: String,
}

impl FieldTerm {
    pub fn matches<F: Fields + ?Sized>(&self, fields: &F) -> bool {
        let got = fields.get_field(&self.field).unwrap_or("");
        match self.op {
            FieldOperator::Equals => got == self.value,
            FieldOperator::NotEquals => got != self.value,
        }
    }
}

impl fmt::Display for FieldTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{}{}", self.field, op, escape_field_value(&self.value))
    }
}

/// A field selector: the AND of its terms (empty: everything).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Upstream `fields.EscapeValue`: escapes `\`, `,` and `=`.
pub fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Upstream `fields.UnescapeValue`.
pub fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(SelectorError::Field(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // upstream formats the rune with %v, i.e. as its code point number
            ',' | '=' => {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )))
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::Field(
            "invalid field selector: invalid escape sequence: \\".into(),
        ));
    }
    Ok(out)
}

fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, o) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if rest.starts_with(op) {
                return Some((&term[..i], o, &term[i + op.len()..]));
            }
        }
    }
    None
}

impl FieldSelector {
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses a field selector as upstream `fields.ParseSelector` does (terms sorted).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let (lhs, op, rhs) = split_term(part).ok_or_else(|| {
                SelectorError::Field(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ))
            })?;
            let value = unescape_field_value(rhs)?;
            terms.push(FieldTerm {
                field: lhs.to_string(),
                op,
                value,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// A selector requiring each field to equal its value (upstream `fields.SelectorFromSet`).
    pub fn from_set<'a>(set: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut terms: Vec<FieldTerm> = set
            .into_iter()
            .map(|(k, v)| FieldTerm {
                field: k.to_string(),
                op: FieldOperator::Equals,
                value: v.to_string(),
            })
            .collect();
        terms.sort_by(|a, b| a.field.cmp(&b.field));
        FieldSelector { terms }
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    pub fn matches<F: Fields + ?Sized>(&self, fields: &F) -> bool {
        self.terms.iter().all(|t| t.matches(fields))
    }

    /// The value an `=` term requires for `field`, if any (upstream `RequiresExactMatch`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }

    /// Checks every term's field is one the kind supports; the error is upstream's
    /// `field label not supported: <field>` (400 BadRequest).
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), SelectorError> {
        for t in &self.terms {
            if !supported.contains(&t.field.as_str()) {
                return Err(SelectorError::Field(format!(
                    "field label not supported: {}",
                    t.field
                )));
            }
        }
        Ok(())
    }
}

impl FieldSelector {
    /// Like [`FieldSelector::check_supported`] with the message custom resources answer with:
    /// `"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"`.
    pub fn check_supported_quoted(&self, supported: &[&str]) -> Result<(), SelectorError> {
        for t in &self.terms {
            if !supported.contains(&t.field.as_str()) {
                let only: Vec<String> = supported.iter().map(|f| quote(f)).collect();
                return Err(SelectorError::Field(format!(
                    "{} is not a known field selector: only {}",
                    quote(&t.field),
                    only.join(", ")
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
