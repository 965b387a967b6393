//! Shapes of the generated protobuf message table (`table.rs`): messages, fields, wire types and
//! the Kubernetes types whose JSON form is not a plain object.

/// How a message is rendered in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// an ordinary object, field by field
    None,
    /// `resource.Quantity` / `QuantityValue`: `{1: string}` -> `"100m"`
    Quantity,
    /// `intstr.IntOrString`: `{1: type, 2: intVal, 3: strVal}` -> number or string
    IntOrString,
    /// `meta.v1.Time`: `{1: seconds, 2: nanos}` -> RFC 3339 in seconds, empty message -> null
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with microseconds, empty message -> null
    MicroTime,
    /// `meta.v1.Duration`: `{1: nanoseconds}` -> Go duration string (`"1h0m0s"`)
    Duration,
    /// `runtime.RawExtension`, `meta.v1.FieldsV1`, apiextensions `JSON`: `{1: raw JSON bytes}`
    RawJson,
    /// `[]string` newtypes (`meta.v1.Verbs`, `ExtraValue`): `{1: repeated items}` -> array
    StringItems,
    /// apiextensions `JSONSchemaPropsOrArray`: `{1: schema, 2: schemas}` -> object or array
    PropsOrArray,
    /// apiextensions `JSONSchemaPropsOrBool`: `{1: allows, 2: schema}` -> bool or object
    PropsOrBool,
    /// apiextensions `JSONSchemaPropsOrStringArray`: `{1: schema, 2: property}` -> object or array
    PropsOrStringArray,
}

/// The protobuf type of a field (of the value, for maps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    /// a message, by index into `MESSAGES`
    Msg(u16),
}

/// Field cardinality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// singular (proto2 `optional`)
    One,
    /// `repeated`
    Rep,
    /// `map<string, ty>`
    Map,
}

/// Drop the scalar when it holds its zero value (`""`, `0`, `false`): a non-pointer Go field
/// tagged `omitempty`, which Go's protobuf encoder always writes but its JSON encoder omits.
pub const OMIT_ZERO: u8 = 1;
/// The message's JSON fields are inlined into the parent (Go embedded struct, `json:",inline"`).
pub const INLINE: u8 = 2;
/// The Go field has no `omitempty`: Go's JSON encoder writes it even when absent from the wire
/// (as `null` if [`NILABLE`], else as the zero value).
pub const ALWAYS: u8 = 4;
/// The Go field is a pointer, slice or map: absent means nil, JSON `null`.
pub const NILABLE: u8 = 8;

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
    pub flags: u8,
}

/// One message type.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    /// full protobuf name, e.g. `k8s.io.api.apps.v1.Deployment`
    pub name: &'static str,
    pub special: Special,
    /// in Go struct (JSON output) order
    pub fields: &'static [Field],
}

/// Shorthand constructor used by the generated table.
pub const fn f(tag: u32, json: &'static str, ty: Ty, card: Card, flags: u8) -> Field {
    Field {
        tag,
        json,
        ty,
        card,
        flags,
    }
}
