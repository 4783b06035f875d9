//! A borrowed JSON tree for hot parsing paths. Strings without escapes borrow from the input,
//! objects are vectors of pairs (entity objects have a dozen keys: a linear scan beats hashing),
//! and numbers keep their value without allocating. Parsing Sentinel `Entities` into this is
//! several times faster than into `serde_json::Value`, which hashes keys and owns every string.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(f64),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses `text`; nesting deeper than serde_json's recursion limit (128) is an error.
    pub fn parse(text: &'a str) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value of `key` in an object (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Json<'a>)]> {
        match self {
            Json::Object(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// A non-negative integer that fits in u64.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "checked to be a non-negative integer in range")]
            Json::Number(n) if *n >= 0.0 && n.fract() == 0.0 && *n < 1.8e19 => Some(*n as u64),
            _ => None,
        }
    }

    /// Text of a string, number or boolean.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Json::String(text) => Some(text.to_string()),
            Json::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(format!("{n:.0}")),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// The same value as a `serde_json::Value` (for the few places that store attributes).
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Json::Null => serde_json::Value::Null,
            Json::Bool(flag) => serde_json::Value::Bool(*flag),
            Json::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    #[expect(clippy::cast_possible_truncation, reason = "integral and within i64 range")]
                    let integer = *n as i64;
                    serde_json::Value::from(integer)
                } else {
                    serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
            }
            Json::String(text) => serde_json::Value::String(text.to_string()),
            Json::Array(items) => serde_json::Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(pairs) => serde_json::Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        #[expect(clippy::cast_precision_loss, reason = "entity numbers (pids, ASNs) are far below 2^53")]
        Ok(Json::Number(value as f64))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        #[expect(clippy::cast_precision_loss, reason = "entity numbers (pids, ASNs) are far below 2^53")]
        Ok(Json::Number(value as f64))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Json::Number(value))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            pairs.push((key.0, map.next_value()?));
        }
        Ok(Json::Object(pairs))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(value)))
            }
            fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(value.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_borrows_unescaped_strings() {
        let text = r#"{"a": "plain", "b": "C:\\Windows", "c": [1, 2.5, true, null], "d": {"$ref": "2"}}"#;
        let json = Json::parse(text).expect("valid");
        assert!(matches!(json.get("a"), Some(Json::String(Cow::Borrowed("plain")))));
        assert!(matches!(json.get("b"), Some(Json::String(Cow::Owned(s))) if s == "C:\\Windows"));
        assert_eq!(json.get("c").and_then(Json::as_array).map(<[Json]>::len), Some(4));
        assert_eq!(json.get("d").and_then(|d| d.get("$ref")).and_then(Json::as_str), Some("2"));
        let value = json.to_value();
        assert_eq!(value, serde_json::from_str::<serde_json::Value>(text).expect("valid"));
    }

    #[test]
    fn rejects_invalid_and_too_deep_input_without_panicking() {
        assert!(Json::parse("[{").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(Json::parse(&deep).is_err());
    }
}
