//! Wire schemas: the canonical form, its encoding, the fingerprint over it,
//! and the test vectors PROTOCOL.md (§9) gives for other implementations.

#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tether::ext::Interface;
use tether::ext::schema::{
    MAX_DEPTH, MethodSchema, SchemaError, Variant, WireSchema, encode_interface, fnv1a64,
    interface_fingerprint,
};
use tether::{Ref, Schema};

fn canon<T: Schema + ?Sized>() -> WireSchema {
    WireSchema::of::<T>().expect("a canonical schema")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Serialize, Deserialize, Schema)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, Schema)]
struct Meters(u64);

#[derive(Serialize, Deserialize, Schema)]
struct Nothing;

#[derive(Serialize, Deserialize, Schema)]
struct Empty {}

#[derive(Serialize, Deserialize, Schema)]
#[serde(transparent)]
struct Wrapped {
    inner: Vec<u8>,
}

#[derive(Serialize, Deserialize, Schema)]
enum Shape {
    Empty,
    Circle(u32),
    Rect { w: u32, h: u32 },
}

#[derive(Serialize, Deserialize, Schema)]
enum Pairs {
    Two(u8, u8),
    Nested((u8, u8)),
    Unitish(()),
}

#[derive(Serialize, Deserialize, Schema)]
struct Renamed {
    #[serde(rename = "type")]
    kind: u8,
    r#loop: bool,
}

#[derive(Serialize, Deserialize, Schema)]
struct Tree<T> {
    value: T,
    children: Vec<u32>,
}

#[test]
fn types_that_encode_the_same_have_one_schema() {
    assert_eq!(canon::<Vec<u8>>(), WireSchema::Bytes);
    assert_eq!(canon::<bytes::Bytes>(), WireSchema::Bytes);
    assert_eq!(canon::<[u8]>(), WireSchema::Bytes);
    assert_eq!(canon::<Wrapped>(), WireSchema::Bytes, "transparent");
    assert_eq!(
        canon::<Vec<Meters>>(),
        WireSchema::Seq(Box::new(WireSchema::U64))
    );
    assert_eq!(canon::<usize>(), canon::<u64>());
    assert_eq!(canon::<isize>(), canon::<i64>());
    assert_eq!(
        canon::<Meters>(),
        WireSchema::U64,
        "a newtype is what it wraps"
    );
    assert_eq!(
        canon::<(u64,)>(),
        WireSchema::U64,
        "so is a one-element tuple"
    );
    assert_eq!(canon::<Arc<String>>(), WireSchema::String);
    assert_eq!(canon::<Box<str>>(), WireSchema::String);
    for unit in [canon::<()>(), canon::<Nothing>(), canon::<Empty>()] {
        assert_eq!(unit, WireSchema::Unit);
    }
    assert_eq!(
        canon::<[u16; 3]>(),
        WireSchema::Tuple(vec![WireSchema::U16; 3]),
        "serde writes an array as a tuple"
    );
    let Ok(WireSchema::Enum(variants)) = WireSchema::of::<Pairs>() else {
        panic!("an enum")
    };
    assert_eq!(
        variants[0].1, variants[1].1,
        "V(a, b) and V((a, b)) encode alike"
    );
    assert_eq!(variants[2].1, Variant::Unit, "V(()) encodes as V");
}

#[test]
fn what_changes_the_encoding_or_the_names_changes_the_schema() {
    assert_ne!(canon::<u32>(), canon::<u64>());
    assert_ne!(canon::<i64>(), canon::<u64>());
    assert_ne!(canon::<Vec<u16>>(), canon::<Vec<u8>>());
    assert_ne!(canon::<Option<u8>>(), canon::<u8>());
    assert_ne!(
        canon::<Point>(),
        canon::<(i32, i32)>(),
        "field names are part of it"
    );
    assert_eq!(
        canon::<Renamed>(),
        WireSchema::Struct(vec![
            ("type".into(), WireSchema::U8),
            ("loop".into(), WireSchema::Bool)
        ]),
        "serde's names, raw identifiers unescaped"
    );
    assert_eq!(
        canon::<Tree<String>>().to_string(),
        "{ value: String, children: [u32] }"
    );
    assert_eq!(canon::<Ref>(), WireSchema::Ref(String::new()));
}

#[test]
fn test_vectors_of_protocol_md() {
    // PROTOCOL.md, §9.3: a schema, its canonical bytes.
    let vectors: [(WireSchema, &str); 8] = [
        (canon::<u64>(), "04"),
        (canon::<Vec<u8>>(), "0f"),
        (canon::<Option<String>>(), "110e"),
        (canon::<BTreeMap<String, i64>>(), "130e09"),
        (canon::<(bool, f64)>(), "1402000c"),
        (canon::<Point>(), "1502017808017908"),
        (
            canon::<Shape>(),
            "160305456d7074790006436972636c65010304526563740302017703016803",
        ),
        (WireSchema::Ref("Counter".into()), "1707436f756e746572"),
    ];
    for (schema, bytes) in vectors {
        assert_eq!(hex(&schema.to_bytes()), bytes, "{schema}");
        let encoded = schema.to_bytes();
        let mut input = &encoded[..];
        assert_eq!(WireSchema::decode(&mut input), Ok(schema));
        assert!(input.is_empty());
    }
    // FNV-1a 64 of the empty input and of "a" (the published values).
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[tether::interface]
pub trait Counter {
    async fn get(&self) -> u64;
    async fn add(&self, n: u64) -> u64;
    async fn reset(&self, to: u64, note: String) -> Result<(), String>;
}

#[test]
fn the_interface_test_vector_and_its_fingerprint() {
    // PROTOCOL.md, §9.3: `Counter`, its methods sorted by name.
    let methods = [
        MethodSchema {
            name: "add",
            params: &[u64::SCHEMA],
            result: u64::SCHEMA,
            error: None,
        },
        MethodSchema {
            name: "get",
            params: &[],
            result: u64::SCHEMA,
            error: None,
        },
        MethodSchema {
            name: "reset",
            params: &[u64::SCHEMA, String::SCHEMA],
            result: <()>::SCHEMA,
            error: Some(String::SCHEMA),
        },
    ];
    let bytes = encode_interface("Counter", &methods).unwrap();
    assert_eq!(
        hex(&bytes),
        "07436f756e7465720303616464040400036765741004000572657365741402040e10010e"
    );
    let fingerprint = interface_fingerprint("Counter", &methods);
    assert_eq!(
        fingerprint,
        fnv1a64(&bytes),
        "compile time and run time agree"
    );
    assert_eq!(fingerprint, 0x11fb_ddac_91d8_9dcf);
    assert_eq!(
        CounterInterface::DESCRIPTOR.fingerprint(),
        fingerprint,
        "what the macro computes"
    );
}

/// The compile-time hash follows the same canonical form as the run-time
/// encoder for every kind of type, so the macro's fingerprint is what
/// another language computes from the Description.
#[test]
fn compile_time_and_run_time_agree_on_every_kind() {
    let kinds: &[&'static tether::ext::schema::NamedType] = &[
        <bool>::SCHEMA,
        <u128>::SCHEMA,
        <i8>::SCHEMA,
        <char>::SCHEMA,
        <f32>::SCHEMA,
        <Vec<u8>>::SCHEMA,
        <Vec<Meters>>::SCHEMA,
        <Option<Point>>::SCHEMA,
        <BTreeMap<u8, Vec<String>>>::SCHEMA,
        <(u8, (u16, u32))>::SCHEMA,
        <[u8; 4]>::SCHEMA,
        <Shape>::SCHEMA,
        <Pairs>::SCHEMA,
        <Result<Meters, String>>::SCHEMA,
        <Nothing>::SCHEMA,
        <Empty>::SCHEMA,
        <Wrapped>::SCHEMA,
        <Renamed>::SCHEMA,
        <CounterClient>::SCHEMA,
        <Ref>::SCHEMA,
        <std::time::Duration>::SCHEMA,
    ];
    for (i, ty) in kinds.iter().enumerate() {
        for methods in [
            [MethodSchema {
                name: "m",
                params: std::slice::from_ref(ty),
                result: ty,
                error: None,
            }],
            [MethodSchema {
                name: "m",
                params: &[],
                result: <()>::SCHEMA,
                error: Some(ty),
            }],
        ] {
            let bytes = encode_interface("I", &methods).unwrap();
            assert_eq!(
                interface_fingerprint("I", &methods),
                fnv1a64(&bytes),
                "kind {i}: {}",
                WireSchema::from_named(ty).unwrap()
            );
        }
    }
    assert_eq!(canon::<CounterClient>(), WireSchema::Ref("Counter".into()));
}

mod same {
    /// `Counter` written another way: other parameter names, methods in
    /// another order, a `usize` for the `u64`, an alias.
    type Count = u64;
    #[tether::interface]
    pub trait Counter {
        async fn reset(&self, value: Count, why: String) -> Result<(), String>;
        async fn add(&self, amount: usize) -> Count;
        async fn get(&self) -> u64;
    }
}

mod changed {
    #[tether::interface]
    pub trait Counter {
        async fn get(&self) -> u64;
        async fn add(&self, n: u32) -> u64;
        async fn reset(&self, to: u64, note: String) -> Result<(), String>;
    }
}

#[test]
fn the_fingerprint_follows_the_encoding_not_the_spelling() {
    let base = CounterInterface::DESCRIPTOR.fingerprint();
    assert_eq!(same::CounterInterface::DESCRIPTOR.fingerprint(), base);
    assert_ne!(changed::CounterInterface::DESCRIPTOR.fingerprint(), base);
    let add = &CounterInterface::DESCRIPTOR.methods()[1];
    let schema = add.schema().expect("macro-made descriptors carry schemas");
    assert_eq!(WireSchema::from_list(schema.params), Ok(WireSchema::U64));
}

#[test]
fn decoding_is_bounded_and_refuses_bad_input() {
    let deep = [0x11; MAX_DEPTH + 1]; // Option<Option<…>>, too deep
    assert_eq!(
        WireSchema::decode(&mut &deep[..]),
        Err(SchemaError::TooDeep)
    );
    let mut fine = vec![0x11; MAX_DEPTH - 1];
    fine.push(0x04);
    assert!(WireSchema::decode(&mut &fine[..]).is_ok());

    for (bytes, what) in [
        (&[][..], "empty"),
        (&[0x18][..], "an unknown tag"),
        (
            &[0x14, 0xff, 0xff, 0xff, 0xff, 0x0f][..],
            "a count larger than the input",
        ),
        (
            &[0x14, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01][..],
            "a varint too long",
        ),
        (
            &[0x15, 0x01, 0x02, 0xff, 0xfe, 0x04][..],
            "a field name that is not UTF-8",
        ),
        (
            &[0x16, 0x01, 0x01, 0x41, 0x09][..],
            "an unknown variant kind",
        ),
        (&[0x13, 0x0e][..], "a map without its value"),
    ] {
        assert!(
            matches!(
                WireSchema::decode(&mut &bytes[..]),
                Err(SchemaError::Malformed(_))
            ),
            "{what}"
        );
    }
}
