//! JSON parsing that rejects duplicate member names at any depth.
//!
//! `serde_json` keeps the last of two equal names, which lets a token say
//! `"exp": 1, "exp": 9999999999` and have different parsers disagree. We
//! reject such documents instead.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

use crate::Error;

/// Parses UTF-8 JSON that must be an object with unique member names.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Error> {
    parse_object_text(std::str::from_utf8(bytes).map_err(|_| Error::Malformed)?)
}

/// Like [`parse_object`], for text already known to be UTF-8.
pub(crate) fn parse_object_text(text: &str) -> Result<Map<String, Value>, Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = StrictValue
        .deserialize(&mut deserializer)
        .map_err(|e| if e.to_string().starts_with(DUPLICATE) { Error::DuplicateMember } else { Error::Malformed })?;
    deserializer.end().map_err(|_| Error::Malformed)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::Malformed),
    }
}

const DUPLICATE: &str = "duplicate member";

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictValue)?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn duplicate_names_are_rejected_at_any_depth() {
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#), Err(Error::DuplicateMember));
        assert_eq!(parse_object(br#"{"a":{"b":1,"b":1}}"#), Err(Error::DuplicateMember));
        assert_eq!(parse_object(br#"{"a":[{"b":1,"b":1}]}"#), Err(Error::DuplicateMember));
    }

    #[test]
    fn only_objects_of_valid_utf8_json_are_accepted() {
        assert!(parse_object(br#"{"a":1,"b":{"c":[1,2]}}"#).is_ok());
        assert_eq!(parse_object(b"[1]"), Err(Error::Malformed));
        assert_eq!(parse_object(b"{\"a\":\"\xff\"}"), Err(Error::Malformed));
        assert_eq!(parse_object(br#"{"a":1} x"#), Err(Error::Malformed));
        assert_eq!(parse_object(br#"{"a":1"#), Err(Error::Malformed));
    }

    #[test]
    fn a_member_named_like_the_duplicate_marker_is_still_fine() {
        assert!(parse_object(br#"{"duplicate member":1}"#).is_ok());
    }
}
