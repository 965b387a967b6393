//! Duplicate-key detection in request bodies: `serde_json` (like Go's decoder) keeps only the
//! last of duplicate keys, upstream's strict decoding reports each one as `duplicate field
//! "<path>"`. The body is walked once with a serde visitor that records every key it sees.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{child_path, index_path};

/// The paths of duplicate keys in a JSON body (`metadata.name`, `spec.containers[0].image`),
/// in document order, each reported once. For a body that is not valid JSON the duplicates
/// before the syntax error are returned (the decoder reports the error itself).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Walk {
        path: String::new(),
        out: &mut out,
    }
    .deserialize(&mut de);
    dedup(&mut out);
    out
}

/// The same for a YAML body (its first document), paths in the same format.
pub fn duplicate_fields_yaml(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(text) = std::str::from_utf8(body) else {
        return out;
    };
    if let Some(doc) = serde_yaml::Deserializer::from_str(text).next() {
        let _ = Walk {
            path: String::new(),
            out: &mut out,
        }
        .deserialize(doc);
    }
    dedup(&mut out);
    out
}

fn dedup(out: &mut Vec<String>) {
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
}

struct Walk<'a> {
    path: String,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Walk {
                path: index_path(&self.path, i),
                out: &mut *self.out,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<KeyString>()? {
            let p = child_path(&self.path, &key.0);
            if !seen.insert(key.0) {
                self.out.push(p.clone());
            }
            map.next_value_seed(Walk {
                path: p,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }
}

/// A map key rendered as text (YAML keys may be numbers or booleans).
struct KeyString(String);

impl<'de> serde::Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_str<E>(self, s: &str) -> Result<KeyString, E> {
                Ok(KeyString(s.to_string()))
            }
            fn visit_bool<E>(self, b: bool) -> Result<KeyString, E> {
                Ok(KeyString(b.to_string()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<KeyString, E> {
                Ok(KeyString(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<KeyString, E> {
                Ok(KeyString(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<KeyString, E> {
                Ok(KeyString(n.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyString(String::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyString(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}
