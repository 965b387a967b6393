//! The JSONPath subset CRD `additionalPrinterColumns` use (`.status.replicas`,
//! `.spec.items[0].name`, `.metadata.labels['app.kubernetes.io/name']`,
//! `.status.conditions[?(@.type=="Ready")].status`), evaluated with missing keys allowed.

use serde_json::Value;

/// A JSONPath expression outside the supported subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JSONPath {path:?}: {reason}")]
pub struct JsonPathError {
    pub path: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    /// `[?(@.a.b)]` (op None: existence) or `[?(@.a.b == lit)]` / `!=`.
    Filter {
        path: Vec<Segment>,
        op: Option<(bool, Literal)>,
    },
}

/// A parsed JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, reason: &str) -> JsonPathError {
        JsonPathError {
            path: self.src.to_string(),
            reason: reason.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ') {
            self.i += 1;
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'$' || c >= 0x80 {
                self.i += 1;
            } else {
                break;
            }
        }
        self.src[start..self.i].to_string()
    }

    fn quoted(&mut self) -> Result<String, JsonPathError> {
        let quote = self.peek().ok_or_else(|| self.err("expected a quote"))?;
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(c) if c == quote => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') if self.b.get(self.i + 1).is_some() => {
                    let start = self.i + 1;
                    let ch = self.src[start..].chars().next().unwrap_or('\\');
                    out.push(ch);
                    self.i = start + ch.len_utf8();
                }
                Some(_) => {
                    let ch = self.src[self.i..].chars().next().unwrap_or('?');
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, JsonPathError> {
        match self.peek() {
            Some(b'"') | Some(b'\'') => Ok(Literal::Str(self.quoted()?)),
            _ => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c != b')' && c != b' ' && c != b']')
                {
                    self.i += 1;
                }
                let word = &self.src[start..self.i];
                match word {
                    "true" => Ok(Literal::Bool(true)),
                    "false" => Ok(Literal::Bool(false)),
                    _ => word
                        .parse::<f64>()
                        .map(Literal::Num)
                        .map_err(|_| self.err("unsupported filter literal")),
                }
            }
        }
    }

    /// Segments until `stop` returns true for the next byte (or the end).
    fn segments(&mut self, in_filter: bool) -> Result<Vec<Segment>, JsonPathError> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                None => return Ok(segs),
                Some(b'.') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'.') => return Err(self.err("recursive descent is not supported")),
                        Some(b'*') => {
                            self.i += 1;
                            segs.push(Segment::Wildcard);
                        }
                        // A trailing or bare "." selects the current object.
                        None | Some(b'[') => {}
                        _ => {
                            let name = self.ident();
                            if name.is_empty() {
                                if in_filter {
                                    return Ok(segs);
                                }
                                return Err(self.err("expected a field name"));
                            }
                            segs.push(Segment::Field(name));
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.skip_ws();
                    let seg = match self.peek() {
                        Some(b'\'') | Some(b'"') => Segment::Field(self.quoted()?),
                        Some(b'*') => {
                            self.i += 1;
                            Segment::Wildcard
                        }
                        Some(b'?') => {
                            self.i += 1;
                            if self.peek() != Some(b'(') {
                                return Err(self.err("expected ( after ?"));
                            }
                            self.i += 1;
                            self.skip_ws();
                            if self.peek() != Some(b'@') {
                                return Err(self.err("filters must start with @"));
                            }
                            self.i += 1;
                            let path = self.segments(true)?;
                            self.skip_ws();
                            let op = match (self.peek(), self.b.get(self.i + 1)) {
                                (Some(b'='), Some(b'=')) | (Some(b'!'), Some(b'=')) => {
                                    let eq = self.peek() == Some(b'=');
                                    self.i += 2;
                                    self.skip_ws();
                                    Some((eq, self.literal()?))
                                }
                                (Some(b')'), _) => None,
                                _ => return Err(self.err("unsupported filter operator")),
                            };
                            self.skip_ws();
                            if self.peek() != Some(b')') {
                                return Err(self.err("expected ) closing the filter"));
                            }
                            self.i += 1;
                            Segment::Filter { path, op }
                        }
                        _ => {
                            let start = self.i;
                            if self.peek() == Some(b'-') {
                                self.i += 1;
                            }
                            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                                self.i += 1;
                            }
                            let n = self.src[start..self.i]
                                .parse::<i64>()
                                .map_err(|_| self.err("unsupported subscript"))?;
                            Segment::Index(n)
                        }
                    };
                    self.skip_ws();
                    if self.peek() != Some(b']') {
                        return Err(self.err("expected ]"));
                    }
                    self.i += 1;
                    segs.push(seg);
                }
                Some(_) if in_filter => return Ok(segs),
                Some(_) => return Err(self.err("unexpected character")),
            }
        }
    }
}

impl JsonPath {
    /// Parses a path such as `.status.phase`; surrounding `{}` and a leading `$` are accepted.
    pub fn parse(path: &str) -> Result<Self, JsonPathError> {
        let mut p = path.trim();
        if let Some(inner) = p.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            p = inner.trim();
        }
        let p = p.strip_prefix('$').unwrap_or(p);
        let mut parser = Parser {
            src: p,
            b: p.as_bytes(),
            i: 0,
        };
        let segments = parser.segments(false)?;
        Ok(JsonPath { segments })
    }

    /// All values the path selects, in document order; missing keys select nothing.
    pub fn find<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        eval(&self.segments, vec![root])
    }

    /// The first value the path selects.
    pub fn first<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.find(root).into_iter().next()
    }
}

fn eval<'v>(segments: &[Segment], mut cur: Vec<&'v Value>) -> Vec<&'v Value> {
    for seg in segments {
        let mut next = Vec::new();
        for v in cur {
            match seg {
                Segment::Field(name) => {
                    if let Some(x) = v.get(name.as_str()) {
                        next.push(x);
                    }
                }
                Segment::Index(n) => {
                    if let Some(arr) = v.as_array() {
                        let idx = if *n < 0 { arr.len() as i64 + n } else { *n };
                        if idx >= 0 {
                            if let Some(x) = arr.get(idx as usize) {
                                next.push(x);
                            }
                        }
                    }
                }
                Segment::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(o) => next.extend(o.values()),
                    _ => {}
                },
                Segment::Filter { path, op } => {
                    if let Some(arr) = v.as_array() {
                        for item in arr {
                            let found = eval(path, vec![item]);
                            let keep = match op {
                                None => !found.is_empty(),
                                Some((eq, lit)) => {
                                    let matched = found.first().is_some_and(|x| matches(x, lit));
                                    matched == *eq && !found.is_empty()
                                }
                            };
                            if keep {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn matches(v: &Value, lit: &Literal) -> bool {
    match (v, lit) {
        (Value::String(s), Literal::Str(l)) => s == l,
        (Value::Number(n), Literal::Num(l)) => n.as_f64() == Some(*l),
        (Value::Number(n), Literal::Str(l)) => n.to_string() == *l,
        (Value::Bool(b), Literal::Bool(l)) => b == l,
        (Value::Bool(b), Literal::Str(l)) => b.to_string() == *l,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "metadata": {"name": "db", "labels": {"app.kubernetes.io/name": "pg"}},
            "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}], "ready": true},
            "status": {"conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True", "age": 2}
            ]}
        })
    }

    #[test]
    fn find_first_table() {
        let d = doc();
        let cases: &[(&str, Option<Value>)] = &[
            (".metadata.name", Some(json!("db"))),
            ("{.metadata.name}", Some(json!("db"))),
            ("$.spec.replicas", Some(json!(3))),
            (".spec.items[0].name", Some(json!("a"))),
            (".spec.items[1].name", Some(json!("b"))),
            (".spec.items[-1].name", Some(json!("b"))),
            (".spec.items[2].name", None),
            (".spec.items[*].name", Some(json!("a"))),
            (".spec.missing.deeper", None),
            (
                ".metadata.labels['app.kubernetes.io/name']",
                Some(json!("pg")),
            ),
            (
                ".metadata.labels[\"app.kubernetes.io/name\"]",
                Some(json!("pg")),
            ),
            (
                ".status.conditions[?(@.type==\"Ready\")].status",
                Some(json!("True")),
            ),
            (
                ".status.conditions[?(@.type == 'Synced')].status",
                Some(json!("False")),
            ),
            (
                ".status.conditions[?(@.type!=\"Synced\")].type",
                Some(json!("Ready")),
            ),
            (".status.conditions[?(@.age)].type", Some(json!("Ready"))),
            (".status.conditions[?(@.age==2)].type", Some(json!("Ready"))),
            (".status.conditions[?(@.type==\"Gone\")].status", None),
            (".spec.ready", Some(json!(true))),
        ];
        for (path, want) in cases {
            let p = JsonPath::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(p.first(&d).cloned(), *want, "path {path}");
        }
    }

    #[test]
    fn wildcard_returns_all() {
        let d = doc();
        let p = JsonPath::parse(".spec.items[*].name").unwrap();
        assert_eq!(p.find(&d), vec![&json!("a"), &json!("b")]);
    }

    #[test]
    fn rejects_unsupported() {
        for path in [
            "..name",
            ".spec[",
            ".spec.items[?(@.a < 2)]",
            ".spec.items[x]",
            "spec",
        ] {
            assert!(JsonPath::parse(path).is_err(), "{path} must be rejected");
        }
    }
}
