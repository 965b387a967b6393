//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into
//! the JSON objects the API server stores.
//!
//! A body is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` message
//! `{1: typeMeta {1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType}`; `raw` is
//! the protobuf encoding of the object's type (e.g. `k8s.io.api.apps.v1.Deployment`).
//!
//! Decoding is generic and driven by the generated table in `table.rs` (see
//! `examples/gen_protobuf_table.rs`): each message lists its fields with their number, JSON name,
//! protobuf type and cardinality. The JSON produced is what upstream's Go JSON encoder writes for
//! the decoded Go struct:
//! - fields absent from the wire are absent from the JSON;
//! - present scalars are emitted, except zero values (`""`, `0`, `false`) of non-pointer
//!   `omitempty` Go fields (Go's protobuf encoder always writes those, its JSON encoder omits
//!   them), so `replicas: 0` survives while `generateName: ""` does not;
//! - embedded Go structs (`Volume.volumeSource`, `Probe.handler`, ...) are inlined;
//! - `Quantity` -> `"100m"`, `IntOrString` -> number or string, `Time` -> RFC 3339 seconds (an empty
//!   `Time` is Go's zero time: `null`), `MicroTime` -> RFC 3339 with microseconds, `Duration` ->
//!   Go duration string, `RawExtension`/`FieldsV1`/`JSON` -> the embedded JSON, bytes -> base64;
//! - unknown fields are skipped.

pub mod schema;
mod table;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use schema::{Card, Message, Special, Ty, ALWAYS, INLINE, NILABLE, OMIT_ZERO};

/// The magic prefix of every Kubernetes protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";
/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Nesting limit (messages within messages) guarding the stack against hostile input.
const MAX_DEPTH: usize = 100;

/// Errors decoding a protobuf body.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the magic k8s\\0")]
    BadMagic,
    #[error("truncated protobuf message")]
    Truncated,
    #[error("malformed protobuf varint")]
    BadVarint,
    #[error("invalid protobuf field number 0")]
    FieldZero,
    #[error("unsupported protobuf wire type {0}")]
    UnsupportedWireType(u8),
    #[error("field {tag} of {message} has wire type {wire}, expected {expected}")]
    WireType {
        message: &'static str,
        tag: u32,
        wire: u8,
        expected: u8,
    },
    #[error("runtime.Unknown has no apiVersion and kind")]
    MissingTypeMeta,
    #[error("unsupported content encoding {0:?}")]
    ContentEncoding(String),
    #[error("no protobuf message for kind {kind} in {api_version}")]
    UnknownKind { api_version: String, kind: String },
    #[error("{message} holds invalid embedded json: {reason}")]
    InvalidJson {
        message: &'static str,
        reason: String,
    },
    #[error("invalid value in {message}: {reason}")]
    InvalidValue {
        message: &'static str,
        reason: String,
    },
    #[error("protobuf messages nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// The type of the object in a protobuf body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMeta {
    pub api_version: String,
    pub kind: String,
}

/// The fields of a `runtime.Unknown` envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown<'a> {
    pub type_meta: TypeMeta,
    /// the object's own protobuf encoding
    pub raw: &'a [u8],
    pub content_encoding: String,
    pub content_type: String,
}

/// Decodes a protobuf request body (magic + `runtime.Unknown`) into the object's JSON, with
/// `kind` and `apiVersion` set from the envelope's typeMeta.
pub fn decode_unknown(body: &[u8]) -> Result<Value, ProtobufError> {
    let unknown = parse_unknown(body)?;
    if !unknown.content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(unknown.content_encoding));
    }
    decode_object(
        &unknown.type_meta.api_version,
        &unknown.type_meta.kind,
        unknown.raw,
    )
}

/// Splits a protobuf body into its `runtime.Unknown` fields, without decoding the object.
pub fn parse_unknown(body: &[u8]) -> Result<Unknown<'_>, ProtobufError> {
    let rest = body.strip_prefix(&MAGIC).ok_or(ProtobufError::BadMagic)?;
    let mut r = Reader::new(rest);
    let mut type_meta = None;
    let mut raw: &[u8] = &[];
    let mut content_encoding = String::new();
    let mut content_type = String::new();
    const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1..=4 => {
                expect_wire(UNKNOWN, tag, wire, 2)?;
                let b = r.bytes()?;
                match tag {
                    1 => type_meta = Some(parse_type_meta(b)?),
                    2 => raw = b,
                    3 => content_encoding = lossy(b),
                    _ => content_type = lossy(b),
                }
            }
            _ => r.skip(wire)?,
        }
    }
    let type_meta = type_meta.ok_or(ProtobufError::MissingTypeMeta)?;
    if type_meta.api_version.is_empty() || type_meta.kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    Ok(Unknown {
        type_meta,
        raw,
        content_encoding,
        content_type,
    })
}

fn parse_type_meta(b: &[u8]) -> Result<TypeMeta, ProtobufError> {
    let mut r = Reader::new(b);
    let mut tm = TypeMeta {
        api_version: String::new(),
        kind: String::new(),
    };
    while !r.done() {
        let (tag, wire) = r.key()?;
        match tag {
            1 | 2 => {
                expect_wire("k8s.io.apimachinery.pkg.runtime.TypeMeta", tag, wire, 2)?;
                let s = lossy(r.bytes()?);
                if tag == 1 {
                    tm.api_version = s;
                } else {
                    tm.kind = s;
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(tm)
}

/// The full protobuf message name for an apiVersion and kind, if the table knows it.
pub fn message_name(api_version: &str, kind: &str) -> Option<&'static str> {
    message_index(api_version, kind).map(|i| table::MESSAGES[i].name)
}

fn message_index(api_version: &str, kind: &str) -> Option<usize> {
    if let Ok(i) = table::KINDS.binary_search_by(|(v, k, _)| (*v, *k).cmp(&(api_version, kind))) {
        return Some(usize::from(table::KINDS[i].2));
    }
    let i = table::PACKAGES
        .binary_search_by(|(v, _)| (*v).cmp(api_version))
        .ok()?;
    let name = format!("{}.{kind}", table::PACKAGES[i].1);
    index_by_name(&name)
}

fn index_by_name(name: &str) -> Option<usize> {
    table::MESSAGES.binary_search_by(|m| m.name.cmp(name)).ok()
}

/// Decodes the protobuf encoding of an object of the given apiVersion and kind into its JSON,
/// with `kind` and `apiVersion` first.
pub fn decode_object(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
    let idx = message_index(api_version, kind).ok_or_else(|| ProtobufError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })?;
    let body = decode_message(idx, raw, 0)?;
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind.to_string()));
    out.insert("apiVersion".into(), Value::String(api_version.to_string()));
    if let Value::Object(fields) = body {
        for (k, v) in fields {
            if k != "kind" && k != "apiVersion" {
                out.insert(k, v);
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes one message (by table index) into its JSON form.
fn decode_message(idx: usize, b: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    let m = &table::MESSAGES[idx];
    match m.special {
        Special::None => decode_fields(m, b, depth),
        Special::Quantity => {
            let s = last_string(m, b, 1)?;
            Ok(Value::String(s.unwrap_or_else(|| "0".into())))
        }
        Special::IntOrString => {
            let mut r = Reader::new(b);
            let (mut ty, mut int_val, mut str_val) = (0i64, 0i32, String::new());
            while !r.done() {
                let (tag, wire) = r.key()?;
                match tag {
                    1 => {
                        expect_wire(m.name, tag, wire, 0)?;
                        ty = r.varint()? as i64;
                    }
                    2 => {
                        expect_wire(m.name, tag, wire, 0)?;
                        int_val = r.varint()? as i32;
                    }
                    3 => {
                        expect_wire(m.name, tag, wire, 2)?;
                        str_val = lossy(r.bytes()?);
                    }
                    _ => r.skip(wire)?,
                }
            }
            Ok(if ty == 1 {
                Value::String(str_val)
            } else {
                Value::from(int_val)
            })
        }
        Special::Time | Special::MicroTime => {
            if b.is_empty() {
                return Ok(Value::Null);
            }
            let mut r = Reader::new(b);
            let (mut secs, mut nanos) = (0i64, 0i32);
            while !r.done() {
                let (tag, wire) = r.key()?;
                match tag {
                    1 => {
                        expect_wire(m.name, tag, wire, 0)?;
                        secs = r.varint()? as i64;
                    }
                    2 => {
                        expect_wire(m.name, tag, wire, 0)?;
                        nanos = r.varint()? as i32;
                    }
                    _ => r.skip(wire)?,
                }
            }
            let micros = (m.special == Special::MicroTime).then_some(nanos);
            rfc3339(secs, micros)
                .map(Value::String)
                .ok_or_else(|| ProtobufError::InvalidValue {
                    message: m.name,
                    reason: format!("time {secs}s outside of years 0 to 9999"),
                })
        }
        Special::Duration => {
            let mut r = Reader::new(b);
            let mut nanos = 0i64;
            while !r.done() {
                let (tag, wire) = r.key()?;
                if tag == 1 {
                    expect_wire(m.name, tag, wire, 0)?;
                    nanos = r.varint()? as i64;
                } else {
                    r.skip(wire)?;
                }
            }
            Ok(Value::String(go_duration(nanos)))
        }
        Special::RawJson => {
            let mut r = Reader::new(b);
            let mut raw: &[u8] = &[];
            while !r.done() {
                let (tag, wire) = r.key()?;
                if tag == 1 {
                    expect_wire(m.name, tag, wire, 2)?;
                    raw = r.bytes()?;
                } else {
                    r.skip(wire)?;
                }
            }
            if raw.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(raw).map_err(|e| ProtobufError::InvalidJson {
                message: m.name,
                reason: e.to_string(),
            })
        }
        Special::StringItems => {
            let mut r = Reader::new(b);
            let mut items = Vec::new();
            while !r.done() {
                let (tag, wire) = r.key()?;
                if tag == 1 {
                    expect_wire(m.name, tag, wire, 2)?;
                    items.push(Value::String(lossy(r.bytes()?)));
                } else {
                    r.skip(wire)?;
                }
            }
            Ok(Value::Array(items))
        }
        Special::PropsOrArray | Special::PropsOrBool | Special::PropsOrStringArray => {
            decode_props_union(m, b, depth)
        }
    }
}

/// apiextensions `JSONSchemaPropsOr{Array,Bool,StringArray}`, as their Go MarshalJSON writes them.
fn decode_props_union(m: &'static Message, b: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let mut r = Reader::new(b);
    let mut schema: Option<Value> = None;
    let mut list: Vec<Value> = Vec::new();
    let mut allows = false;
    while !r.done() {
        let (tag, wire) = r.key()?;
        let Some(f) = m.fields.iter().find(|f| f.tag == tag) else {
            r.skip(wire)?;
            continue;
        };
        let v = read_value(m, f.tag, f.ty, wire, &mut r, depth)?;
        match (m.special, tag) {
            (Special::PropsOrBool, 1) => allows = v.as_bool().unwrap_or(false),
            (Special::PropsOrBool, 2)
            | (Special::PropsOrArray, 1)
            | (Special::PropsOrStringArray, 1) => schema = Some(v),
            _ => list.push(v),
        }
    }
    Ok(match m.special {
        Special::PropsOrBool => schema.unwrap_or(Value::Bool(allows)),
        _ if !list.is_empty() => Value::Array(list),
        _ => schema.unwrap_or(Value::Null),
    })
}

/// The last occurrence of string field `tag`.
fn last_string(m: &'static Message, b: &[u8], want: u32) -> Result<Option<String>, ProtobufError> {
    let mut r = Reader::new(b);
    let mut out = None;
    while !r.done() {
        let (tag, wire) = r.key()?;
        if tag == want {
            expect_wire(m.name, tag, wire, 2)?;
            out = Some(lossy(r.bytes()?));
        } else {
            r.skip(wire)?;
        }
    }
    Ok(out)
}

/// An ordinary message: field by field, in table (Go struct) order.
fn decode_fields(m: &'static Message, b: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let mut slots: Vec<Option<Value>> = vec![None; m.fields.len()];
    let mut r = Reader::new(b);
    while !r.done() {
        let (tag, wire) = r.key()?;
        let Some(fi) = m.fields.iter().position(|f| f.tag == tag) else {
            r.skip(wire)?;
            continue;
        };
        let f = &m.fields[fi];
        match f.card {
            Card::One => {
                let v = read_value(m, tag, f.ty, wire, &mut r, depth)?;
                match (&mut slots[fi], v) {
                    // a message sent twice is merged, as protobuf parsers do
                    (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
                    (slot, v) => *slot = Some(v),
                }
            }
            Card::Rep => {
                let slot = slots[fi].get_or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(items) = slot else {
                    unreachable!("repeated slots hold arrays")
                };
                if wire == 2 && packable(f.ty) {
                    let packed = r.bytes()?;
                    let mut pr = Reader::new(packed);
                    while !pr.done() {
                        items.push(read_value(m, tag, f.ty, wire_of(f.ty), &mut pr, depth)?);
                    }
                } else {
                    items.push(read_value(m, tag, f.ty, wire, &mut r, depth)?);
                }
            }
            Card::Map => {
                expect_wire(m.name, tag, wire, 2)?;
                let entry = r.bytes()?;
                let (k, v) = read_map_entry(m, f.tag, f.ty, entry, depth)?;
                let slot = slots[fi].get_or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = slot {
                    map.insert(k, v);
                }
            }
        }
    }
    let mut out = Map::new();
    for (f, slot) in m.fields.iter().zip(slots) {
        let v = match slot {
            Some(v) => v,
            // what Go's JSON encoder writes for a field the wire did not carry
            None if f.flags & ALWAYS == 0 => continue,
            None if f.flags & NILABLE != 0 => Value::Null,
            None if f.card == Card::One => zero_value(f.ty, depth)?,
            None => continue,
        };
        if f.flags & INLINE != 0 {
            if let Value::Object(inner) = v {
                out.extend(inner);
            }
            continue;
        }
        let empty_collection = f.flags & ALWAYS == 0
            && match &v {
                Value::Array(a) => f.card == Card::Rep && a.is_empty(),
                Value::Object(o) => f.card == Card::Map && o.is_empty(),
                _ => false,
            };
        if empty_collection || (f.flags & OMIT_ZERO != 0 && is_zero(&v)) {
            continue;
        }
        out.insert(f.json.to_string(), v);
    }
    Ok(Value::Object(out))
}

/// Protobuf merge of a repeated singular message: nested messages merge, repeated fields
/// concatenate, everything else is replaced.
fn merge(old: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        match (old.get_mut(&k), v) {
            (Some(Value::Object(o)), Value::Object(n)) => merge(o, n),
            (Some(Value::Array(o)), Value::Array(n)) => o.extend(n),
            (_, v) => {
                old.insert(k, v);
            }
        }
    }
}

fn read_map_entry(
    m: &'static Message,
    tag: u32,
    ty: Ty,
    entry: &[u8],
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let mut r = Reader::new(entry);
    let mut key = String::new();
    let mut val = None;
    while !r.done() {
        let (t, wire) = r.key()?;
        match t {
            1 => {
                expect_wire(m.name, tag, wire, 2)?;
                key = lossy(r.bytes()?);
            }
            2 => val = Some(read_value(m, tag, ty, wire, &mut r, depth)?),
            _ => r.skip(wire)?,
        }
    }
    let val = match val {
        Some(v) => v,
        None => zero_value(ty, depth)?,
    };
    Ok((key, val))
}

fn zero_value(ty: Ty, depth: usize) -> Result<Value, ProtobufError> {
    Ok(match ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::I32 | Ty::I64 => Value::from(0),
        Ty::F64 => Value::from(0.0),
        Ty::Msg(i) => decode_message(usize::from(i), &[], depth + 1)?,
    })
}

fn read_value(
    m: &'static Message,
    tag: u32,
    ty: Ty,
    wire: u8,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Value, ProtobufError> {
    expect_wire(m.name, tag, wire, wire_of(ty))?;
    Ok(match ty {
        Ty::Str => Value::String(lossy(r.bytes()?)),
        Ty::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(r.bytes()?)),
        Ty::Bool => Value::Bool(r.varint()? != 0),
        Ty::I32 => Value::from(r.varint()? as i32),
        Ty::I64 => Value::from(r.varint()? as i64),
        Ty::F64 => {
            let v = f64::from_le_bytes(r.fixed64()?);
            Value::Number(
                Number::from_f64(v).ok_or_else(|| ProtobufError::InvalidValue {
                    message: m.name,
                    reason: format!("field {tag} is not a finite number"),
                })?,
            )
        }
        Ty::Msg(i) => decode_message(usize::from(i), r.bytes()?, depth + 1)?,
    })
}

fn wire_of(ty: Ty) -> u8 {
    match ty {
        Ty::Bool | Ty::I32 | Ty::I64 => 0,
        Ty::F64 => 1,
        Ty::Str | Ty::Bytes | Ty::Msg(_) => 2,
    }
}

fn packable(ty: Ty) -> bool {
    matches!(ty, Ty::Bool | Ty::I32 | Ty::I64 | Ty::F64)
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn expect_wire(
    message: &'static str,
    tag: u32,
    wire: u8,
    expected: u8,
) -> Result<(), ProtobufError> {
    if wire == expected {
        Ok(())
    } else {
        Err(ProtobufError::WireType {
            message,
            tag,
            wire,
            expected,
        })
    }
}

/// Go's JSON encoder replaces invalid UTF-8 with U+FFFD; so do we.
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `2006-01-02T15:04:05Z` (or with `.000000` microseconds) in UTC; `None` outside years 0..=9999
/// (Go's time marshalling fails there too).
pub(crate) fn rfc3339(secs: i64, micros_from_nanos: Option<i32>) -> Option<String> {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    Some(match micros_from_nanos {
        None => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        Some(n) => {
            let micros = n.clamp(0, 999_999_999) / 1000;
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
        }
    })
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's `time.Duration.String()`: `"1h2m3.5s"`, `"1.5ms"`, `"0s"`.
pub(crate) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        out.push_str(&with_fraction(u, prec));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let frac = u % 1_000_000_000;
        let s = format!("{}{}s", secs % 60, fraction_digits(frac, 9));
        let mins = secs / 60;
        if mins > 0 {
            let hours = mins / 60;
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            out.push_str(&format!("{}m", mins % 60));
        }
        out.push_str(&s);
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `v / 10^prec` with the fraction (trailing zeros removed).
fn with_fraction(v: u64, prec: u32) -> String {
    let p = 10u64.pow(prec);
    format!("{}{}", v / p, fraction_digits(v % p, prec))
}

/// `.5` for (500, 3); empty when zero.
fn fraction_digits(frac: u64, prec: u32) -> String {
    if frac == 0 {
        return String::new();
    }
    let s = format!("{frac:0width$}", width = prec as usize);
    format!(".{}", s.trim_end_matches('0'))
}

/// A cursor over protobuf wire data.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(ProtobufError::Truncated)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(ProtobufError::BadVarint);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtobufError::BadVarint)
    }

    fn key(&mut self) -> Result<(u32, u8), ProtobufError> {
        let k = self.varint()?;
        let tag = u32::try_from(k >> 3).map_err(|_| ProtobufError::BadVarint)?;
        if tag == 0 {
            return Err(ProtobufError::FieldZero);
        }
        Ok((tag, (k & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self.pos.checked_add(n).ok_or(ProtobufError::Truncated)?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(ProtobufError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtobufError> {
        let n = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Truncated)?;
        self.take(n)
    }

    fn fixed64(&mut self) -> Result<[u8; 8], ProtobufError> {
        let s = self.take(8)?;
        Ok(s.try_into().expect("8 bytes"))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtobufError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            w => Err(ProtobufError::UnsupportedWireType(w)),
        }
    }
}
