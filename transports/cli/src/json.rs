//! JSON values encoded and decoded by a wire schema, through postcard
//! itself: a schema-driven `Serialize` and `DeserializeSeed`, so the bytes
//! are exactly what the typed Rust side writes and reads.
//!
//! The JSON forms: integers as numbers (u128 and i128 also as strings),
//! bytes as an array of numbers, unit and none as `null`, sequences and
//! tuples as arrays, maps as objects (keys as strings, parsed by the key's
//! schema) or arrays of pairs, structs as objects, enums as `"Variant"` or
//! `{"Variant": fields}`. References cannot be written on a command line;
//! in results they print as `{"$ref": "Interface"}`.

use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq, SerializeTuple};
use serde_json::{Map, Value as Json};
use tether::ext::schema::{Variant, WireSchema};

thread_local! {
    /// Why the last encoding failed: postcard keeps only that it did.
    static WHY: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// Elements the value being decoded may still hold in all.
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Takes one element from the decoding budget; an error once it is spent.
fn spend<E: de::Error>() -> Result<(), E> {
    BUDGET.with(|b| match b.get().checked_sub(1) {
        Some(left) => {
            b.set(left);
            Ok(())
        }
        None => Err(E::custom("more elements than the value has bytes")),
    })
}

/// A serialization error that remembers its message.
fn fail<E: ser::Error>(message: String) -> E {
    let error = E::custom(&message);
    WHY.with(|why| *why.borrow_mut() = Some(message));
    error
}

/// Encodes `value` as `schema` says.
pub(crate) fn encode(schema: &WireSchema, value: &Json) -> Result<Vec<u8>, String> {
    WHY.with(|why| why.borrow_mut().take());
    postcard::to_stdvec(&Typed { schema, value }).map_err(|e| {
        WHY.with(|why| why.borrow_mut().take())
            .unwrap_or_else(|| e.to_string())
    })
}

/// Decodes a value of `schema` that fills `bytes`. Sequences and maps
/// together may hold at most a number of elements bounded by the size of
/// the reply, so that a short reply cannot make this side build a huge
/// value of elements that encode as nothing.
pub(crate) fn decode(schema: &WireSchema, bytes: &[u8]) -> Result<Json, String> {
    BUDGET.with(|b| b.set(bytes.len().saturating_mul(8).saturating_add(65_536)));
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let value = Seed(schema)
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    let rest = deserializer.finalize().map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} bytes after the value", rest.len()))
    }
}

struct Typed<'a> {
    schema: &'a WireSchema,
    value: &'a Json,
}

fn expected<E: ser::Error>(what: &str, value: &Json) -> E {
    fail(format!("expected {what}, got {value}"))
}

fn uint(value: &Json) -> Option<u128> {
    match value {
        Json::Number(n) => n.as_u64().map(u128::from),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn int(value: &Json) -> Option<i128> {
    match value {
        Json::Number(n) => n.as_i64().map(i128::from),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn fits<T: TryFrom<u128>>(value: &Json) -> Option<T> {
    uint(value).and_then(|v| T::try_from(v).ok())
}

fn fits_signed<T: TryFrom<i128>>(value: &Json) -> Option<T> {
    int(value).and_then(|v| T::try_from(v).ok())
}

impl ser::Serialize for Typed<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.value;
        match self.schema {
            WireSchema::Bool => {
                s.serialize_bool(v.as_bool().ok_or_else(|| expected("a boolean", v))?)
            }
            WireSchema::U8 => s.serialize_u8(fits(v).ok_or_else(|| expected("a u8", v))?),
            WireSchema::U16 => s.serialize_u16(fits(v).ok_or_else(|| expected("a u16", v))?),
            WireSchema::U32 => s.serialize_u32(fits(v).ok_or_else(|| expected("a u32", v))?),
            WireSchema::U64 => s.serialize_u64(fits(v).ok_or_else(|| expected("a u64", v))?),
            WireSchema::U128 => s.serialize_u128(uint(v).ok_or_else(|| expected("a u128", v))?),
            WireSchema::I8 => s.serialize_i8(fits_signed(v).ok_or_else(|| expected("an i8", v))?),
            WireSchema::I16 => {
                s.serialize_i16(fits_signed(v).ok_or_else(|| expected("an i16", v))?)
            }
            WireSchema::I32 => {
                s.serialize_i32(fits_signed(v).ok_or_else(|| expected("an i32", v))?)
            }
            WireSchema::I64 => {
                s.serialize_i64(fits_signed(v).ok_or_else(|| expected("an i64", v))?)
            }
            WireSchema::I128 => s.serialize_i128(int(v).ok_or_else(|| expected("an i128", v))?),
            WireSchema::F32 => {
                let f = v.as_f64().ok_or_else(|| expected("a number", v))?;
                s.serialize_f32(f as f32)
            }
            WireSchema::F64 => s.serialize_f64(v.as_f64().ok_or_else(|| expected("a number", v))?),
            WireSchema::Char => {
                let text = v.as_str().ok_or_else(|| expected("one character", v))?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => s.serialize_char(c),
                    _ => Err(expected("one character", v)),
                }
            }
            WireSchema::String => {
                s.serialize_str(v.as_str().ok_or_else(|| expected("a string", v))?)
            }
            WireSchema::Bytes => {
                let items = v
                    .as_array()
                    .ok_or_else(|| expected("an array of bytes", v))?;
                let bytes: Option<Vec<u8>> = items.iter().map(fits::<u8>).collect();
                s.serialize_bytes(&bytes.ok_or_else(|| expected("an array of bytes", v))?)
            }
            WireSchema::Unit if v.is_null() => s.serialize_unit(),
            WireSchema::Unit => Err(expected("null", v)),
            WireSchema::Option(inner) => match v {
                Json::Null => s.serialize_none(),
                _ => s.serialize_some(&Typed {
                    schema: inner,
                    value: v,
                }),
            },
            WireSchema::Seq(inner) => {
                let items = v.as_array().ok_or_else(|| expected("an array", v))?;
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Typed {
                        schema: inner,
                        value: item,
                    })?;
                }
                seq.end()
            }
            WireSchema::Map(key, value) => {
                let pairs = map_pairs(key, v).map_err(fail::<S::Error>)?;
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, item) in &pairs {
                    map.serialize_entry(
                        &Typed {
                            schema: key,
                            value: k,
                        },
                        &Typed {
                            schema: value,
                            value: item,
                        },
                    )?;
                }
                map.end()
            }
            WireSchema::Tuple(items) => {
                let values = v.as_array().filter(|a| a.len() == items.len());
                let values =
                    values.ok_or_else(|| expected(&format!("an array of {}", items.len()), v))?;
                tuple(s, items.iter().zip(values))
            }
            WireSchema::Struct(fields) => {
                let object = v.as_object().ok_or_else(|| expected("an object", v))?;
                let values = field_values(fields, object).map_err(fail::<S::Error>)?;
                tuple(s, fields.iter().map(|(_, t)| t).zip(values))
            }
            WireSchema::Enum(variants) => {
                let (name, fields) = match v {
                    Json::String(name) => (name.as_str(), &Json::Null),
                    Json::Object(o) if o.len() == 1 => {
                        let (name, fields) =
                            o.iter().next().ok_or_else(|| expected("a variant", v))?;
                        (name.as_str(), fields)
                    }
                    _ => return Err(expected("\"Variant\" or {\"Variant\": fields}", v)),
                };
                let index = variants
                    .iter()
                    .position(|(n, _)| n == name)
                    .ok_or_else(|| fail(format!("no variant {name}")))?;
                let index = u32::try_from(index).map_err(|e| fail::<S::Error>(e.to_string()))?;
                match &variants[index as usize].1 {
                    Variant::Unit => s.serialize_unit_variant("", index, ""),
                    Variant::Newtype(t) => s.serialize_newtype_variant(
                        "",
                        index,
                        "",
                        &Typed {
                            schema: t,
                            value: fields,
                        },
                    ),
                    Variant::Tuple(items) => {
                        let values = fields.as_array().filter(|a| a.len() == items.len());
                        let values = values.ok_or_else(|| {
                            expected(&format!("an array of {}", items.len()), fields)
                        })?;
                        s.serialize_newtype_variant(
                            "",
                            index,
                            "",
                            &Tuple(items.iter().zip(values).collect()),
                        )
                    }
                    Variant::Struct(named) => {
                        let object = fields
                            .as_object()
                            .ok_or_else(|| expected("an object", fields))?;
                        let values = field_values(named, object).map_err(fail::<S::Error>)?;
                        let items: Vec<(&WireSchema, &Json)> =
                            named.iter().map(|(_, t)| t).zip(values).collect();
                        s.serialize_newtype_variant("", index, "", &Tuple(items))
                    }
                }
            }
            WireSchema::Ref(interface) => Err(fail(format!(
                "a reference to {interface} cannot be given as JSON"
            ))),
        }
    }
}

/// Values written one after another (postcard writes tuples, structs and
/// a variant's fields alike).
struct Tuple<'a>(Vec<(&'a WireSchema, &'a Json)>);

impl ser::Serialize for Tuple<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        tuple(s, self.0.iter().copied())
    }
}

fn tuple<'a, S: ser::Serializer>(
    s: S,
    items: impl ExactSizeIterator<Item = (&'a WireSchema, &'a Json)>,
) -> Result<S::Ok, S::Error> {
    let mut t = s.serialize_tuple(items.len())?;
    for (schema, value) in items {
        t.serialize_element(&Typed { schema, value })?;
    }
    t.end()
}

fn field_values<'a>(
    fields: &[(String, WireSchema)],
    object: &'a Map<String, Json>,
) -> Result<Vec<&'a Json>, String> {
    if let Some(unknown) = object
        .keys()
        .find(|k| !fields.iter().any(|(name, _)| name == *k))
    {
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        return Err(format!(
            "no field {unknown}; the fields are {}",
            names.join(", ")
        ));
    }
    fields
        .iter()
        .map(|(name, schema)| match object.get(name) {
            Some(v) => Ok(v),
            None if matches!(schema, WireSchema::Option(_) | WireSchema::Unit) => Ok(&Json::Null),
            None => Err(format!("missing field {name}")),
        })
        .collect()
}

/// A map's pairs: an object (keys parsed by the key's schema unless it is
/// a string) or an array of `[key, value]` pairs.
fn map_pairs(key: &WireSchema, v: &Json) -> Result<Vec<(Json, Json)>, String> {
    match v {
        Json::Object(o) => o
            .iter()
            .map(|(k, item)| {
                let k = match key {
                    WireSchema::String | WireSchema::Char => Json::String(k.clone()),
                    _ => serde_json::from_str(k).map_err(|e| format!("map key {k}: {e}"))?,
                };
                Ok((k, item.clone()))
            })
            .collect(),
        Json::Array(pairs) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([k, item]) => Ok((k.clone(), item.clone())),
                _ => Err(format!("expected a [key, value] pair, got {pair}")),
            })
            .collect(),
        _ => Err(format!("expected an object or an array of pairs, got {v}")),
    }
}

struct Seed<'a>(&'a WireSchema);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        let schema = self.0;
        match schema {
            WireSchema::Bool => d.deserialize_bool(Plain),
            WireSchema::U8 => d.deserialize_u8(Plain),
            WireSchema::U16 => d.deserialize_u16(Plain),
            WireSchema::U32 => d.deserialize_u32(Plain),
            WireSchema::U64 => d.deserialize_u64(Plain),
            WireSchema::U128 => d.deserialize_u128(Plain),
            WireSchema::I8 => d.deserialize_i8(Plain),
            WireSchema::I16 => d.deserialize_i16(Plain),
            WireSchema::I32 => d.deserialize_i32(Plain),
            WireSchema::I64 => d.deserialize_i64(Plain),
            WireSchema::I128 => d.deserialize_i128(Plain),
            WireSchema::F32 => d.deserialize_f32(Plain),
            WireSchema::F64 => d.deserialize_f64(Plain),
            // A char must be exactly one scalar value (postcard would keep
            // the first of several).
            WireSchema::Char => {
                let text = d.deserialize_string(Plain)?;
                match text.as_str().map(|t| t.chars().count()) {
                    Some(1) => Ok(text),
                    _ => Err(de::Error::custom("a char that is not one character")),
                }
            }
            WireSchema::String => d.deserialize_string(Plain),
            WireSchema::Bytes => d.deserialize_byte_buf(Plain),
            WireSchema::Unit => d.deserialize_unit(Plain),
            WireSchema::Option(inner) => d.deserialize_option(Composite(schema, inner)),
            WireSchema::Seq(_) => d.deserialize_seq(Composite(schema, schema)),
            WireSchema::Map(..) => d.deserialize_map(Composite(schema, schema)),
            WireSchema::Tuple(items) => d.deserialize_tuple(items.len(), Composite(schema, schema)),
            WireSchema::Struct(fields) => {
                d.deserialize_tuple(fields.len(), Composite(schema, schema))
            }
            WireSchema::Enum(_) => d.deserialize_enum("", &[], Composite(schema, schema)),
            WireSchema::Ref(interface) => {
                let index = d.deserialize_u32(Plain)?;
                let mut o = Map::new();
                o.insert("$ref".into(), Json::String(interface.clone()));
                o.insert("index".into(), index);
                Ok(Json::Object(o))
            }
        }
    }
}

/// Visits scalars.
struct Plain;

impl<'de> Visitor<'de> for Plain {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Json, E> {
        Ok(u64::try_from(v).map_or_else(|_| Json::String(v.to_string()), Json::from))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Json, E> {
        Ok(i64::try_from(v).map_or_else(|_| Json::String(v.to_string()), Json::from))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_char<E>(self, v: char) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Json, E> {
        Ok(Json::Array(v.iter().map(|b| Json::from(*b)).collect()))
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
}

/// Visits what holds other values: `.0` is the whole schema, `.1` the
/// option's element.
struct Composite<'a>(&'a WireSchema, &'a WireSchema);

impl<'de> Visitor<'de> for Composite<'_> {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value of {}", self.0)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Seed(self.1).deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let next = |seq: &mut A, t: &WireSchema| {
            seq.next_element_seed(Seed(t))?
                .ok_or_else(|| de::Error::custom("ends early"))
        };
        match self.0 {
            WireSchema::Seq(inner) => {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element_seed(Seed(inner))? {
                    spend::<A::Error>()?;
                    out.push(v);
                }
                Ok(Json::Array(out))
            }
            WireSchema::Tuple(items) => items
                .iter()
                .map(|t| next(&mut seq, t))
                .collect::<Result<_, _>>()
                .map(Json::Array),
            WireSchema::Struct(fields) => {
                let mut o = Map::new();
                for (name, t) in fields {
                    o.insert(name.clone(), next(&mut seq, t)?);
                }
                Ok(Json::Object(o))
            }
            other => Err(de::Error::custom(format!("not a sequence: {other}"))),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let WireSchema::Map(key, value) = self.0 else {
            return Err(de::Error::custom("not a map"));
        };
        let mut pairs = Vec::new();
        while let Some(k) = map.next_key_seed(Seed(key))? {
            spend::<A::Error>()?;
            pairs.push((k, map.next_value_seed(Seed(value))?));
        }
        // String keys make an object; others an array of pairs.
        if pairs.iter().all(|(k, _)| k.is_string()) {
            Ok(Json::Object(
                pairs
                    .into_iter()
                    .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), v)))
                    .collect(),
            ))
        } else {
            Ok(Json::Array(
                pairs
                    .into_iter()
                    .map(|(k, v)| Json::Array(vec![k, v]))
                    .collect(),
            ))
        }
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Json, A::Error> {
        let WireSchema::Enum(variants) = self.0 else {
            return Err(de::Error::custom("not an enum"));
        };
        let (index, access) = data.variant::<u32>()?;
        let (name, variant) = variants.get(index as usize).ok_or_else(|| {
            de::Error::custom(format!("variant index {index} of {}", variants.len()))
        })?;
        let fields = match variant {
            Variant::Unit => {
                access.unit_variant()?;
                return Ok(Json::String(name.clone()));
            }
            Variant::Newtype(t) => access.newtype_variant_seed(Seed(t))?,
            Variant::Tuple(items) => {
                let schema = WireSchema::Tuple(items.clone());
                access.newtype_variant_seed(Seed(&schema))?
            }
            Variant::Struct(fields) => {
                let schema = WireSchema::Struct(fields.clone());
                access.newtype_variant_seed(Seed(&schema))?
            }
        };
        let mut o = Map::new();
        o.insert(name.clone(), fields);
        Ok(Json::Object(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(schema: &WireSchema, json: &str, hex: &str) {
        let value: Json = serde_json::from_str(json).unwrap();
        let bytes = encode(schema, &value).unwrap();
        let got: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, hex, "{schema} {json}");
        assert_eq!(decode(schema, &bytes).unwrap(), value, "{schema}");
    }

    #[test]
    fn json_values_encode_as_the_typed_side_does() {
        use WireSchema as S;
        round_trip(&S::U64, "300", "ac02");
        round_trip(&S::I32, "-2", "03");
        round_trip(&S::Bytes, "[1,2]", "020102");
        round_trip(&S::Option(Box::new(S::String)), "null", "00");
        round_trip(&S::Option(Box::new(S::String)), "\"hi\"", "01026869");
        round_trip(&S::Tuple(vec![S::U8, S::Bool]), "[1,false]", "0100");
        round_trip(
            &S::Struct(vec![("x".into(), S::I32), ("y".into(), S::I32)]),
            r#"{"x":1,"y":-1}"#,
            "0201",
        );
        let shape = S::Enum(vec![
            ("Empty".into(), Variant::Unit),
            ("Circle".into(), Variant::Newtype(S::U32)),
            (
                "Rect".into(),
                Variant::Struct(vec![("w".into(), S::U32), ("h".into(), S::U32)]),
            ),
        ]);
        round_trip(&shape, "\"Empty\"", "00");
        round_trip(&shape, r#"{"Circle":3}"#, "0103");
        round_trip(&shape, r#"{"Rect":{"w":2,"h":4}}"#, "020204");
        round_trip(
            &S::Map(Box::new(S::String), Box::new(S::I64)),
            r#"{"k":-1}"#,
            "01016b01",
        );
        round_trip(
            &S::Map(Box::new(S::U8), Box::new(S::Bool)),
            "[[7,true]]",
            "010701",
        );
        round_trip(
            &S::U128,
            "\"340282366920938463463374607431768211455\"",
            "ffffffffffffffffffffffffffffffffffff03",
        );
    }

    #[test]
    fn json_that_does_not_fit_is_refused_clearly() {
        use WireSchema as S;
        for (schema, json, message) in [
            (S::U8, "256", "expected a u8"),
            (S::U64, "-1", "expected a u64"),
            (S::String, "5", "expected a string"),
            (
                S::Struct(vec![("x".into(), S::I32)]),
                "{}",
                "missing field x",
            ),
            (S::Ref("Counter".into()), "1", "cannot be given as JSON"),
            (
                S::Enum(vec![("A".into(), Variant::Unit)]),
                "\"B\"",
                "no variant B",
            ),
        ] {
            let value: Json = serde_json::from_str(json).unwrap();
            let e = encode(&schema, &value).unwrap_err();
            assert!(e.contains(message), "{schema} {json}: {e}");
        }
        assert!(decode(&S::U16, &[0xff, 0xff, 0x07]).is_err());
        // A count of elements that encode as nothing, larger than the reply.
        let nothing = S::Seq(Box::new(S::Unit));
        let e = decode(&nothing, &[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
        assert!(!e.is_empty());
        assert_eq!(
            decode(&nothing, &[2]).unwrap(),
            serde_json::json!([null, null])
        );
        assert!(
            decode(&S::Char, &[2, b'a', b'b']).is_err(),
            "two characters are not a char"
        );
        let point = S::Struct(vec![("x".into(), S::I32)]);
        let typo: Json = serde_json::from_str(r#"{"x": 1, "z": 2}"#).unwrap();
        assert!(
            encode(&point, &typo)
                .unwrap_err()
                .contains("no field z; the fields are x")
        );
        assert!(
            encode(&S::Unit, &Json::from(5))
                .unwrap_err()
                .contains("expected null")
        );
        assert!(
            decode(&S::U8, &[1, 2])
                .unwrap_err()
                .contains("1 bytes after")
        );
    }
}
