//! Server-side Table printing: builds the `meta.k8s.io/v1` Table that kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, with upstream's columns and cells for
//! built-in kinds, CRD `additionalPrinterColumns` for custom resources, and the default
//! NAME / CREATED AT table otherwise. Pure: JSON in, JSON out, `now` passed in.

mod descriptions;
mod jsonpath;
mod printers;
mod quantity;
mod time;

use serde_json::{json, Map, Value};

pub use jsonpath::{JsonPath, JsonPathError};
pub use printers::{Column, Kind};
pub use quantity::canonical as canonical_quantity;
pub use time::{human_duration, translate_since, Timestamp, TimestampError};

use descriptions::{D_CREATED, D_NAME};

/// Errors building a table convertor for a custom resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("custom resource definition has no version {0:?}")]
    UnknownVersion(String),
    #[error("unrecognized column definition {path:?}: {source}")]
    BadColumn {
        path: String,
        #[source]
        source: JsonPathError,
    },
    #[error("printer column {0} is not an object with name, type and jsonPath")]
    MalformedColumn(usize),
}

/// What each row's `object` carries (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// `object` is null.
    None,
    /// `object` is a `meta.k8s.io/v1` PartialObjectMetadata (what kubectl asks for by default).
    #[default]
    Metadata,
    /// `object` is the full object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter value (`None`, `Metadata`, `Object`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// Table-level options (upstream `metav1.TableOptions` plus list metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    pub include_object: IncludeObject,
    /// Omit `columnDefinitions` (upstream `TableOptions.NoHeaders`).
    pub no_headers: bool,
    /// `metadata.resourceVersion` of the table (the list's, or the single object's).
    pub resource_version: String,
    /// `metadata.continue` of a paginated list.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount` of a paginated list.
    pub remaining_item_count: Option<i64>,
}

/// One additional printer column of a custom resource.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomColumn {
    pub column: Column,
    pub path: JsonPath,
}

/// How objects of one resource become table rows.
#[derive(Clone, Debug, PartialEq)]
pub enum TableConvertor {
    /// A built-in kind with its upstream printer.
    Builtin(Kind),
    /// Upstream's default: NAME and CREATED AT (RFC 3339).
    Default,
    /// A custom resource: NAME, then the CRD's additionalPrinterColumns.
    Custom(Vec<CustomColumn>),
}

impl TableConvertor {
    /// The convertor upstream uses for a built-in group and plural resource; resources without
    /// a printer (roles, clusterroles, limitranges, customresourcedefinitions, ...) get the
    /// default NAME / CREATED AT table.
    pub fn for_resource(group: &str, resource: &str) -> Self {
        match Kind::for_resource(group, resource) {
            Some(k) => TableConvertor::Builtin(k),
            None => TableConvertor::Default,
        }
    }

    /// The convertor for a custom resource served at `version` of the given
    /// CustomResourceDefinition (JSON): its `additionalPrinterColumns`, or a single AGE column
    /// when it declares none.
    pub fn for_crd(crd: &Value, version: &str) -> Result<Self, TableError> {
        let versions = crd
            .get("spec")
            .and_then(|s| s.get("versions"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let v = versions
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
            .ok_or_else(|| TableError::UnknownVersion(version.to_string()))?;
        let cols = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Self::from_printer_columns(cols)
    }

    /// The convertor for a list of `CustomResourceColumnDefinition`s (JSON). An empty list
    /// serves upstream's default AGE column (`.metadata.creationTimestamp`, type date).
    pub fn from_printer_columns(cols: &[Value]) -> Result<Self, TableError> {
        if cols.is_empty() {
            let age = json!({
                "name": "Age", "type": "date", "description": D_CREATED,
                "jsonPath": ".metadata.creationTimestamp",
            });
            return Self::from_printer_columns(&[age]);
        }
        let mut out = Vec::with_capacity(cols.len());
        for (idx, c) in cols.iter().enumerate() {
            let field = |k: &str| c.get(k).and_then(Value::as_str);
            let (Some(name), Some(type_), Some(json_path)) =
                (field("name"), field("type"), field("jsonPath"))
            else {
                return Err(TableError::MalformedColumn(idx));
            };
            let path = JsonPath::parse(json_path).map_err(|source| TableError::BadColumn {
                path: json_path.to_string(),
                source,
            })?;
            let description = match field("description") {
                Some(d) if !d.is_empty() => d.to_string(),
                _ => format!("Custom resource definition column (in JSONPath format): {json_path}"),
            };
            let priority = c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32;
            out.push(CustomColumn {
                column: Column {
                    name: name.to_string(),
                    type_: type_.to_string(),
                    format: field("format").unwrap_or("").to_string(),
                    description,
                    priority,
                },
                path,
            });
        }
        Ok(TableConvertor::Custom(out))
    }

    /// The column definitions in cell order.
    pub fn columns(&self) -> Vec<Column> {
        let name = Column {
            name: "Name".to_string(),
            type_: "string".to_string(),
            format: "name".to_string(),
            description: D_NAME.to_string(),
            priority: 0,
        };
        match self {
            TableConvertor::Builtin(k) => k.columns(),
            TableConvertor::Default => vec![
                name,
                Column {
                    name: "Created At".to_string(),
                    type_: "date".to_string(),
                    format: String::new(),
                    description: D_CREATED.to_string(),
                    priority: 0,
                },
            ],
            TableConvertor::Custom(cols) => std::iter::once(name)
                .chain(cols.iter().map(|c| c.column.clone()))
                .collect(),
        }
    }

    /// The column definitions as `TableColumnDefinition` JSON objects.
    pub fn column_definitions(&self) -> Vec<Value> {
        self.columns().iter().map(Column::to_value).collect()
    }

    /// The cells of one object's row, at instant `now`.
    pub fn cells(&self, obj: &Value, now: Timestamp) -> Vec<Value> {
        let name = json!(printers::s(obj, &["metadata", "name"]));
        match self {
            TableConvertor::Builtin(k) => k.cells(obj, now),
            TableConvertor::Default => {
                let created = time::parse_opt(
                    printers::get(obj, &["metadata", "creationTimestamp"]).and_then(Value::as_str),
                );
                vec![name, json!(created.format_rfc3339())]
            }
            TableConvertor::Custom(cols) => std::iter::once(name)
                .chain(cols.iter().map(|c| custom_cell(c, obj, now)))
                .collect(),
        }
    }

    /// One `TableRow`: cells, row conditions where upstream sets them, and the object.
    pub fn row(&self, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
        let mut row = Map::new();
        row.insert("cells".to_string(), Value::Array(self.cells(obj, now)));
        if let TableConvertor::Builtin(k) = self {
            if let Some(conds) = k.row_conditions(obj) {
                row.insert("conditions".to_string(), conds);
            }
        }
        row.insert("object".to_string(), row_object(obj, include));
        Value::Object(row)
    }

    /// The full `meta.k8s.io/v1` Table for `objs` (a list, or one object for a single GET).
    pub fn table(&self, objs: &[Value], opts: &TableOptions, now: Timestamp) -> Value {
        let mut ordered: Vec<&Value> = objs.iter().collect();
        if self == &TableConvertor::Builtin(Kind::FlowSchema) {
            ordered.sort_by(|a, b| printers::flow_schema_order(a, b));
        }
        let rows: Vec<Value> = ordered
            .into_iter()
            .map(|o| self.row(o, opts.include_object, now))
            .collect();
        let mut metadata = Map::new();
        if !opts.resource_version.is_empty() {
            metadata.insert("resourceVersion".into(), json!(opts.resource_version));
        }
        if let Some(c) = opts.continue_token.as_deref().filter(|c| !c.is_empty()) {
            metadata.insert("continue".into(), json!(c));
        }
        if let Some(n) = opts.remaining_item_count {
            metadata.insert("remainingItemCount".into(), json!(n));
        }
        let columns = if opts.no_headers {
            Value::Null
        } else {
            Value::Array(self.column_definitions())
        };
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "columnDefinitions": columns,
            "rows": rows,
        })
    }
}

impl TableConvertor {
    /// Converts what a GET or LIST handler would return (a single object, or a `...List` with
    /// `items` and list metadata) into a Table, taking `resourceVersion`, `continue` and
    /// `remainingItemCount` from it as upstream's `ConvertToTable` does.
    pub fn convert(
        &self,
        obj_or_list: &Value,
        include_object: IncludeObject,
        no_headers: bool,
        now: Timestamp,
    ) -> Value {
        let meta = obj_or_list.get("metadata");
        let meta_str = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mut opts = TableOptions {
            include_object,
            no_headers,
            resource_version: meta_str("resourceVersion"),
            ..TableOptions::default()
        };
        match list_items(obj_or_list) {
            Some(items) => {
                let c = meta_str("continue");
                opts.continue_token = (!c.is_empty()).then_some(c);
                opts.remaining_item_count = meta
                    .and_then(|m| m.get("remainingItemCount"))
                    .and_then(Value::as_i64);
                self.table(items, &opts, now)
            }
            None => self.table(std::slice::from_ref(obj_or_list), &opts, now),
        }
    }
}

/// The items of a list object (`kind: ...List`, or kindless with an `items` array).
fn list_items(v: &Value) -> Option<&[Value]> {
    let items = v.get("items")?.as_array()?;
    match v.get("kind").and_then(Value::as_str) {
        Some(kind) if !kind.ends_with("List") => None,
        _ => Some(items.as_slice()),
    }
}

/// The `TableColumnDefinition`s upstream serves for a built-in group and plural resource.
pub fn column_definitions(group: &str, resource: &str) -> Vec<Value> {
    TableConvertor::for_resource(group, resource).column_definitions()
}

/// The cells of one object of a built-in group and plural resource, at instant `now`.
pub fn row(group: &str, resource: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    TableConvertor::for_resource(group, resource).cells(obj, now)
}

/// The full Table for objects of a built-in group and plural resource.
pub fn table(
    group: &str,
    resource: &str,
    objs: &[Value],
    list_resource_version: &str,
    continue_token: Option<&str>,
    include_object: IncludeObject,
    now: Timestamp,
) -> Value {
    let opts = TableOptions {
        include_object,
        resource_version: list_resource_version.to_string(),
        continue_token: continue_token.map(str::to_string),
        ..TableOptions::default()
    };
    TableConvertor::for_resource(group, resource).table(objs, &opts, now)
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// One custom-resource cell, as upstream's CRD table convertor computes it.
fn custom_cell(col: &CustomColumn, obj: &Value, now: Timestamp) -> Value {
    let Some(value) = col.path.first(obj) else {
        return Value::Null;
    };
    if value.is_null() {
        return Value::Null;
    }
    match col.column.type_.as_str() {
        "string" => json!(go_print(value)),
        "integer" => match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map(Value::from)
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => match value {
            Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(b) => json!(b),
            _ => Value::Null,
        },
        "date" => match value {
            Value::String(s) if s.is_empty() || s == "null" => json!("<unknown>"),
            Value::String(s) => match Timestamp::parse_rfc3339(s) {
                Ok(t) => json!(translate_since(t, now)),
                Err(_) => json!("<invalid>"),
            },
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// How upstream's JSONPath printer renders a value: strings raw, maps and lists as JSON
/// (keys sorted), numbers and booleans as Go's `fmt.Print` does.
fn go_print(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => go_format_float(f),
            _ => n.to_string(),
        },
        Value::Null => String::new(),
        Value::Array(_) | Value::Object(_) => sorted_json(v).to_string(),
    }
}

fn sorted_json(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted_json(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_json).collect()),
        other => other.clone(),
    }
}

/// Go's `%v` for a float64 (strconv 'g' with the shortest precision): `3`, `0.5`, `1e+06`,
/// `1.234567e+06`, `1e-05`.
fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.234567e6".
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let rest = &digits[1..];
        let m = if rest.is_empty() {
            digits[..1].to_string()
        } else {
            format!("{}.{}", &digits[..1], rest)
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{m}e{esign}{:02}", exp.abs());
    }
    // Plain decimal notation.
    let dp = exp + 1; // digits before the decimal point
    let body = if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), digits)
    } else if (dp as usize) >= digits.len() {
        format!("{}{}", digits, "0".repeat(dp as usize - digits.len()))
    } else {
        format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests;
