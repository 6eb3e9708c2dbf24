//! Wire schemas: what a value looks like on the wire, for peers that have
//! no Rust types.
//!
//! Every parameter, result and callee error of an interface has a schema:
//! the type's [`Schema`], which `#[derive(tether::Schema)]` writes for
//! user types and Tether implements for the standard ones. From it Tether
//! derives the **canonical schema**, a [`WireSchema`]: the postcard
//! encoding of the type, with the names of fields and variants (which
//! other languages use as keys) and without Rust's names for types, so
//! that two types which encode the same have the same canonical schema.
//! `Vec<u8>` and a byte string, `usize` and `u64`, a newtype and what it
//! wraps, `(T,)` and `T`, `()` and a unit struct are each one schema.
//!
//! An interface's **fingerprint** is FNV-1a 64 over its canonical
//! encoding (PROTOCOL.md, "Schemas and fingerprints", specifies both byte
//! by byte, with test vectors), so any language computes it from what a
//! Description carries. The interface macro computes it at compile time
//! with [`interface_fingerprint`]; [`WireSchema::encode`] writes the same
//! bytes at run time.

use std::fmt;

pub use postcard_schema::schema::{
    DataModelType, DataModelVariant, NamedType, NamedValue, NamedVariant,
};

mod impls;

/// A type with a wire schema: how its values are encoded, as
/// postcard-schema's data model describes it.
///
/// Derive it with `#[derive(tether::Schema)]` beside serde's derives.
/// Tether implements it for the standard types serde encodes (integers of
/// every width including `usize`, floats, `bool`, `char`, strings,
/// `Option`, `Result`, tuples, arrays, `Vec`, `VecDeque`, sets and maps,
/// `Box`, `Arc`, `Rc`, `Cow`, `Duration`, `PhantomData`, `bytes::Bytes`),
/// for typed stubs (a reference to their interface) and for [`Ref`](crate::Ref).
///
/// The trait is Tether's rather than postcard-schema's own `Schema`
/// because that one leaves out `usize`, `Arc` and `Bytes`, which
/// interfaces use; the schema *types* are postcard-schema's.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no wire schema",
    label = "a type that crosses the wire needs a wire schema",
    note = "add `tether::Schema` to its derives: `#[derive(Serialize, Deserialize, tether::Schema)]`",
    note = "a peer in another language encodes and decodes it from its schema (PROTOCOL.md, §9)"
)]
pub trait Schema {
    /// The type's schema.
    const SCHEMA: &'static NamedType;
}

/// A reference to an interface travels as a varint index into its frame's
/// reference table; its schema is a `u32` whose name is this prefix, the
/// interface's name and `>`. The interface macro writes it for every
/// typed stub (`CounterClient`), so a stub can be a parameter or result.
pub const REF_PREFIX: &str = "tether::Ref<";

/// The tags of the canonical schema encoding (PROTOCOL.md, §9.1).
mod tag {
    pub(super) const BOOL: u8 = 0;
    pub(super) const U8: u8 = 1;
    pub(super) const U16: u8 = 2;
    pub(super) const U32: u8 = 3;
    pub(super) const U64: u8 = 4;
    pub(super) const U128: u8 = 5;
    pub(super) const I8: u8 = 6;
    pub(super) const I16: u8 = 7;
    pub(super) const I32: u8 = 8;
    pub(super) const I64: u8 = 9;
    pub(super) const I128: u8 = 10;
    pub(super) const F32: u8 = 11;
    pub(super) const F64: u8 = 12;
    pub(super) const CHAR: u8 = 13;
    pub(super) const STRING: u8 = 14;
    pub(super) const BYTES: u8 = 15;
    pub(super) const UNIT: u8 = 16;
    pub(super) const OPTION: u8 = 17;
    pub(super) const SEQ: u8 = 18;
    pub(super) const MAP: u8 = 19;
    pub(super) const TUPLE: u8 = 20;
    pub(super) const STRUCT: u8 = 21;
    pub(super) const ENUM: u8 = 22;
    pub(super) const REF: u8 = 23;

    pub(super) const VARIANT_UNIT: u8 = 0;
    pub(super) const VARIANT_NEWTYPE: u8 = 1;
    pub(super) const VARIANT_TUPLE: u8 = 2;
    pub(super) const VARIANT_STRUCT: u8 = 3;
}

/// The deepest a decoded schema may nest; deeper input is refused, so a
/// peer cannot make the decoder recurse without bound.
pub const MAX_DEPTH: usize = 64;

/// A canonical wire schema: how one value is encoded (postcard), with the
/// names other languages need.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WireSchema {
    /// `false` or `true`: one byte, 0 or 1.
    Bool,
    /// One byte.
    U8,
    /// A varint.
    U16,
    /// A varint.
    U32,
    /// A varint (also `usize`).
    U64,
    /// A varint.
    U128,
    /// One byte, two's complement.
    I8,
    /// A zigzag varint.
    I16,
    /// A zigzag varint.
    I32,
    /// A zigzag varint (also `isize`).
    I64,
    /// A zigzag varint.
    I128,
    /// Four bytes, little endian.
    F32,
    /// Eight bytes, little endian.
    F64,
    /// One Unicode scalar value, as a length-prefixed UTF-8 string.
    Char,
    /// A length-prefixed UTF-8 string.
    String,
    /// A length-prefixed byte string (also `Vec<u8>`).
    Bytes,
    /// Nothing (`()`, a unit struct, an empty tuple or struct).
    Unit,
    /// A byte 0 (none) or 1 followed by the value.
    Option(Box<WireSchema>),
    /// A varint count, then that many elements.
    Seq(Box<WireSchema>),
    /// A varint count, then that many key, value pairs.
    Map(Box<WireSchema>, Box<WireSchema>),
    /// The elements in order (at least two: one is the element itself).
    Tuple(Vec<WireSchema>),
    /// The fields in order, by name (at least one).
    Struct(Vec<(String, WireSchema)>),
    /// A varint variant index, then the variant's fields.
    Enum(Vec<(String, Variant)>),
    /// A reference to an object offering the named interface: a varint
    /// index into the frame's reference table. An empty name means any
    /// interface.
    Ref(String),
}

/// One variant of an enum.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// No fields.
    Unit,
    /// One unnamed field.
    Newtype(WireSchema),
    /// Unnamed fields, in order.
    Tuple(Vec<WireSchema>),
    /// Named fields, in order.
    Struct(Vec<(String, WireSchema)>),
}

/// Why a schema could not be made canonical, or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// postcard-schema's `Schema` type (a schema as a value) has no
    /// canonical form.
    #[error("a schema inside a schema is not supported on the wire")]
    Unsupported,
    /// The bytes end early, or a tag is unknown.
    #[error("malformed schema: {0}")]
    Malformed(&'static str),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("schema nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl WireSchema {
    /// The canonical schema of `T`.
    pub fn of<T: Schema + ?Sized>() -> Result<WireSchema, SchemaError> {
        WireSchema::from_named(T::SCHEMA)
    }

    /// The canonical form of a postcard-schema type.
    pub fn from_named(ty: &NamedType) -> Result<WireSchema, SchemaError> {
        if let Some(interface) = ref_interface(ty) {
            return Ok(WireSchema::Ref(interface.to_owned()));
        }
        Ok(match ty.ty {
            DataModelType::Bool => WireSchema::Bool,
            DataModelType::U8 => WireSchema::U8,
            DataModelType::U16 => WireSchema::U16,
            DataModelType::U32 => WireSchema::U32,
            DataModelType::U64 | DataModelType::Usize => WireSchema::U64,
            DataModelType::U128 => WireSchema::U128,
            DataModelType::I8 => WireSchema::I8,
            DataModelType::I16 => WireSchema::I16,
            DataModelType::I32 => WireSchema::I32,
            DataModelType::I64 | DataModelType::Isize => WireSchema::I64,
            DataModelType::I128 => WireSchema::I128,
            DataModelType::F32 => WireSchema::F32,
            DataModelType::F64 => WireSchema::F64,
            DataModelType::Char => WireSchema::Char,
            DataModelType::String => WireSchema::String,
            DataModelType::ByteArray => WireSchema::Bytes,
            DataModelType::Unit | DataModelType::UnitStruct => WireSchema::Unit,
            DataModelType::Option(inner) => WireSchema::Option(Box::new(Self::from_named(inner)?)),
            DataModelType::NewtypeStruct(inner) => Self::from_named(inner)?,
            DataModelType::Seq(inner) => match Self::from_named(inner)? {
                WireSchema::U8 => WireSchema::Bytes,
                element => WireSchema::Seq(Box::new(element)),
            },
            DataModelType::Tuple(items) | DataModelType::TupleStruct(items) => {
                Self::from_list(items)?
            }
            DataModelType::Map { key, val } => WireSchema::Map(
                Box::new(Self::from_named(key)?),
                Box::new(Self::from_named(val)?),
            ),
            DataModelType::Struct([]) => WireSchema::Unit,
            DataModelType::Struct(fields) => WireSchema::Struct(from_fields(fields)?),
            DataModelType::Enum(variants) => WireSchema::Enum(
                variants
                    .iter()
                    .map(|v| {
                        let fields = match v.ty {
                            DataModelVariant::UnitVariant => WireSchema::Unit,
                            DataModelVariant::NewtypeVariant(t) => Self::from_named(t)?,
                            DataModelVariant::TupleVariant(items) => Self::from_list(items)?,
                            DataModelVariant::StructVariant([]) => WireSchema::Unit,
                            DataModelVariant::StructVariant(fields) => {
                                WireSchema::Struct(from_fields(fields)?)
                            }
                        };
                        // A variant's fields encode as one value would: no
                        // fields, one, several in a row, or named.
                        let variant = match fields {
                            WireSchema::Unit => Variant::Unit,
                            WireSchema::Tuple(items) => Variant::Tuple(items),
                            WireSchema::Struct(fields) => Variant::Struct(fields),
                            other => Variant::Newtype(other),
                        };
                        Ok((v.name.to_owned(), variant))
                    })
                    .collect::<Result<_, SchemaError>>()?,
            ),
            DataModelType::Schema => return Err(SchemaError::Unsupported),
        })
    }

    /// The canonical schema of a list of values sent one after another (a
    /// method's parameters): nothing is [`Unit`](WireSchema::Unit), one is
    /// that value's schema, more are a [`Tuple`](WireSchema::Tuple).
    pub fn from_list(items: &[&NamedType]) -> Result<WireSchema, SchemaError> {
        let mut items: Vec<WireSchema> = items
            .iter()
            .map(|t| Self::from_named(t))
            .collect::<Result<_, _>>()?;
        Ok(match items.len() {
            0 => WireSchema::Unit,
            1 => items.pop().unwrap_or(WireSchema::Unit),
            _ => WireSchema::Tuple(items),
        })
    }

    /// Appends the canonical encoding (PROTOCOL.md, §9.1).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            WireSchema::Bool => out.push(tag::BOOL),
            WireSchema::U8 => out.push(tag::U8),
            WireSchema::U16 => out.push(tag::U16),
            WireSchema::U32 => out.push(tag::U32),
            WireSchema::U64 => out.push(tag::U64),
            WireSchema::U128 => out.push(tag::U128),
            WireSchema::I8 => out.push(tag::I8),
            WireSchema::I16 => out.push(tag::I16),
            WireSchema::I32 => out.push(tag::I32),
            WireSchema::I64 => out.push(tag::I64),
            WireSchema::I128 => out.push(tag::I128),
            WireSchema::F32 => out.push(tag::F32),
            WireSchema::F64 => out.push(tag::F64),
            WireSchema::Char => out.push(tag::CHAR),
            WireSchema::String => out.push(tag::STRING),
            WireSchema::Bytes => out.push(tag::BYTES),
            WireSchema::Unit => out.push(tag::UNIT),
            WireSchema::Option(inner) => {
                out.push(tag::OPTION);
                inner.encode(out);
            }
            WireSchema::Seq(inner) => {
                out.push(tag::SEQ);
                inner.encode(out);
            }
            WireSchema::Map(key, value) => {
                out.push(tag::MAP);
                key.encode(out);
                value.encode(out);
            }
            WireSchema::Tuple(items) => {
                out.push(tag::TUPLE);
                encode_items(items, out);
            }
            WireSchema::Struct(fields) => {
                out.push(tag::STRUCT);
                encode_fields(fields, out);
            }
            WireSchema::Enum(variants) => {
                out.push(tag::ENUM);
                varint(variants.len() as u64, out);
                for (name, variant) in variants {
                    string(name, out);
                    match variant {
                        Variant::Unit => out.push(tag::VARIANT_UNIT),
                        Variant::Newtype(t) => {
                            out.push(tag::VARIANT_NEWTYPE);
                            t.encode(out);
                        }
                        Variant::Tuple(items) => {
                            out.push(tag::VARIANT_TUPLE);
                            encode_items(items, out);
                        }
                        Variant::Struct(fields) => {
                            out.push(tag::VARIANT_STRUCT);
                            encode_fields(fields, out);
                        }
                    }
                }
            }
            WireSchema::Ref(interface) => {
                out.push(tag::REF);
                string(interface, out);
            }
        }
    }

    /// The canonical encoding, as a vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Reads one canonical schema from the front of `input`, advancing it.
    /// Refuses input nested deeper than [`MAX_DEPTH`].
    pub fn decode(input: &mut &[u8]) -> Result<WireSchema, SchemaError> {
        Reader { input, depth: 0 }.schema()
    }
}

fn from_fields(fields: &[&NamedValue]) -> Result<Vec<(String, WireSchema)>, SchemaError> {
    fields
        .iter()
        .map(|f| Ok((f.name.to_owned(), WireSchema::from_named(f.ty)?)))
        .collect()
}

fn encode_items(items: &[WireSchema], out: &mut Vec<u8>) {
    varint(items.len() as u64, out);
    for item in items {
        item.encode(out);
    }
}

fn encode_fields(fields: &[(String, WireSchema)], out: &mut Vec<u8>) {
    varint(fields.len() as u64, out);
    for (name, ty) in fields {
        string(name, out);
        ty.encode(out);
    }
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn string(text: &str, out: &mut Vec<u8>) {
    varint(text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

/// The interface a reference's schema names, if `ty` is one.
fn ref_interface(ty: &NamedType) -> Option<&'static str> {
    let name = ty.name;
    let inner = name.strip_prefix(REF_PREFIX)?.strip_suffix('>')?;
    matches!(ty.ty, DataModelType::U32).then_some(inner)
}

struct Reader<'a, 'b> {
    input: &'a mut &'b [u8],
    depth: usize,
}

impl Reader<'_, '_> {
    fn byte(&mut self) -> Result<u8, SchemaError> {
        let (&first, rest) = self
            .input
            .split_first()
            .ok_or(SchemaError::Malformed("ends early"))?;
        *self.input = rest;
        Ok(first)
    }

    fn count(&mut self) -> Result<usize, SchemaError> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Every element takes at least one byte: a count larger
                // than what is left is a lie, refused before allocating.
                let count = usize::try_from(value).map_err(|_| SchemaError::Malformed("count"))?;
                if count > self.input.len() {
                    return Err(SchemaError::Malformed("count exceeds the bytes left"));
                }
                return Ok(count);
            }
        }
        Err(SchemaError::Malformed("varint longer than a u32"))
    }

    fn string(&mut self) -> Result<String, SchemaError> {
        let len = self.count()?;
        let (text, rest) = self.input.split_at(len);
        *self.input = rest;
        String::from_utf8(text.to_vec()).map_err(|_| SchemaError::Malformed("name is not UTF-8"))
    }

    fn nested<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, SchemaError>,
    ) -> Result<T, SchemaError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep);
        }
        let value = read(self);
        self.depth -= 1;
        value
    }

    fn schema(&mut self) -> Result<WireSchema, SchemaError> {
        self.nested(|r| {
            Ok(match r.byte()? {
                tag::BOOL => WireSchema::Bool,
                tag::U8 => WireSchema::U8,
                tag::U16 => WireSchema::U16,
                tag::U32 => WireSchema::U32,
                tag::U64 => WireSchema::U64,
                tag::U128 => WireSchema::U128,
                tag::I8 => WireSchema::I8,
                tag::I16 => WireSchema::I16,
                tag::I32 => WireSchema::I32,
                tag::I64 => WireSchema::I64,
                tag::I128 => WireSchema::I128,
                tag::F32 => WireSchema::F32,
                tag::F64 => WireSchema::F64,
                tag::CHAR => WireSchema::Char,
                tag::STRING => WireSchema::String,
                tag::BYTES => WireSchema::Bytes,
                tag::UNIT => WireSchema::Unit,
                tag::OPTION => WireSchema::Option(Box::new(r.schema()?)),
                tag::SEQ => WireSchema::Seq(Box::new(r.schema()?)),
                tag::MAP => WireSchema::Map(Box::new(r.schema()?), Box::new(r.schema()?)),
                tag::TUPLE => WireSchema::Tuple(r.items()?),
                tag::STRUCT => WireSchema::Struct(r.fields()?),
                tag::ENUM => {
                    let n = r.count()?;
                    let mut variants = Vec::with_capacity(n);
                    for _ in 0..n {
                        let name = r.string()?;
                        let variant = match r.byte()? {
                            tag::VARIANT_UNIT => Variant::Unit,
                            tag::VARIANT_NEWTYPE => Variant::Newtype(r.schema()?),
                            tag::VARIANT_TUPLE => Variant::Tuple(r.items()?),
                            tag::VARIANT_STRUCT => Variant::Struct(r.fields()?),
                            _ => return Err(SchemaError::Malformed("unknown variant kind")),
                        };
                        variants.push((name, variant));
                    }
                    WireSchema::Enum(variants)
                }
                tag::REF => WireSchema::Ref(r.string()?),
                _ => return Err(SchemaError::Malformed("unknown tag")),
            })
        })
    }

    fn items(&mut self) -> Result<Vec<WireSchema>, SchemaError> {
        let n = self.count()?;
        (0..n).map(|_| self.schema()).collect()
    }

    fn fields(&mut self) -> Result<Vec<(String, WireSchema)>, SchemaError> {
        let n = self.count()?;
        (0..n)
            .map(|_| Ok((self.string()?, self.schema()?)))
            .collect()
    }
}

impl fmt::Display for WireSchema {
    /// A readable form: `u64`, `[u8]` for bytes, `Option<String>`,
    /// `{ x: i32, y: i32 }`, `A | B(u8) | C { x: u8 }`, `Ref<Counter>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireSchema::Bool => f.write_str("bool"),
            WireSchema::U8 => f.write_str("u8"),
            WireSchema::U16 => f.write_str("u16"),
            WireSchema::U32 => f.write_str("u32"),
            WireSchema::U64 => f.write_str("u64"),
            WireSchema::U128 => f.write_str("u128"),
            WireSchema::I8 => f.write_str("i8"),
            WireSchema::I16 => f.write_str("i16"),
            WireSchema::I32 => f.write_str("i32"),
            WireSchema::I64 => f.write_str("i64"),
            WireSchema::I128 => f.write_str("i128"),
            WireSchema::F32 => f.write_str("f32"),
            WireSchema::F64 => f.write_str("f64"),
            WireSchema::Char => f.write_str("char"),
            WireSchema::String => f.write_str("String"),
            WireSchema::Bytes => f.write_str("[u8]"),
            WireSchema::Unit => f.write_str("()"),
            WireSchema::Option(t) => write!(f, "Option<{t}>"),
            WireSchema::Seq(t) => write!(f, "[{t}]"),
            WireSchema::Map(k, v) => write!(f, "{{{k}: {v}}}"),
            WireSchema::Tuple(items) => write_items(f, items),
            WireSchema::Struct(fields) => write_fields(f, fields),
            WireSchema::Enum(variants) => {
                for (i, (name, variant)) in variants.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    f.write_str(name)?;
                    match variant {
                        Variant::Unit => {}
                        Variant::Newtype(t) => write!(f, "({t})")?,
                        Variant::Tuple(items) => write_items(f, items)?,
                        Variant::Struct(fields) => {
                            f.write_str(" ")?;
                            write_fields(f, fields)?;
                        }
                    }
                }
                Ok(())
            }
            WireSchema::Ref(interface) if interface.is_empty() => f.write_str("Ref"),
            WireSchema::Ref(interface) => write!(f, "Ref<{interface}>"),
        }
    }
}

fn write_items(f: &mut fmt::Formatter<'_>, items: &[WireSchema]) -> fmt::Result {
    f.write_str("(")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    f.write_str(")")
}

fn write_fields(f: &mut fmt::Formatter<'_>, fields: &[(String, WireSchema)]) -> fmt::Result {
    f.write_str("{ ")?;
    for (i, (name, ty)) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{name}: {ty}")?;
    }
    f.write_str(" }")
}

// The same encoding, hashed at compile time. Each function feeds the
// bytes `WireSchema::encode` would write into an FNV-1a 64 state; the
// tests check that the two agree.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`: the hash of fingerprints (PROTOCOL.md, §9.2).
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    feed_bytes(FNV_OFFSET, bytes)
}

const fn feed(h: u64, byte: u8) -> u64 {
    (h ^ byte as u64).wrapping_mul(FNV_PRIME)
}

const fn feed_bytes(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h = feed(h, bytes[i]);
        i += 1;
    }
    h
}

const fn feed_varint(mut h: u64, mut value: u64) -> u64 {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            return feed(h, byte);
        }
        h = feed(h, byte | 0x80);
    }
}

const fn feed_str(h: u64, text: &str) -> u64 {
    feed_bytes(feed_varint(h, text.len() as u64), text.as_bytes())
}

/// The interface name inside a reference's schema name, as a byte range.
const fn const_ref_interface(ty: &NamedType) -> Option<(usize, usize)> {
    let name = ty.name.as_bytes();
    let prefix = REF_PREFIX.as_bytes();
    if !matches!(ty.ty, DataModelType::U32)
        || name.len() < prefix.len() + 1
        || name[name.len() - 1] != b'>'
    {
        return None;
    }
    let mut i = 0;
    while i < prefix.len() {
        if name[i] != prefix[i] {
            return None;
        }
        i += 1;
    }
    Some((prefix.len(), name.len() - 1))
}

/// Whether `ty` is canonically `u8` (through newtypes and 1-tuples).
const fn const_is_u8(ty: &NamedType) -> bool {
    if const_ref_interface(ty).is_some() {
        return false;
    }
    match ty.ty {
        DataModelType::U8 => true,
        DataModelType::NewtypeStruct(inner) => const_is_u8(inner),
        DataModelType::Tuple(items) | DataModelType::TupleStruct(items) => {
            items.len() == 1 && const_is_u8(items[0])
        }
        _ => false,
    }
}

const fn feed_type(h: u64, ty: &NamedType) -> u64 {
    if let Some((start, end)) = const_ref_interface(ty) {
        let (_, rest) = ty.name.as_bytes().split_at(start);
        let (interface, _) = rest.split_at(end - start);
        let h = feed_varint(feed(h, tag::REF), interface.len() as u64);
        return feed_bytes(h, interface);
    }
    match ty.ty {
        DataModelType::Bool => feed(h, tag::BOOL),
        DataModelType::U8 => feed(h, tag::U8),
        DataModelType::U16 => feed(h, tag::U16),
        DataModelType::U32 => feed(h, tag::U32),
        DataModelType::U64 | DataModelType::Usize => feed(h, tag::U64),
        DataModelType::U128 => feed(h, tag::U128),
        DataModelType::I8 => feed(h, tag::I8),
        DataModelType::I16 => feed(h, tag::I16),
        DataModelType::I32 => feed(h, tag::I32),
        DataModelType::I64 | DataModelType::Isize => feed(h, tag::I64),
        DataModelType::I128 => feed(h, tag::I128),
        DataModelType::F32 => feed(h, tag::F32),
        DataModelType::F64 => feed(h, tag::F64),
        DataModelType::Char => feed(h, tag::CHAR),
        DataModelType::String => feed(h, tag::STRING),
        DataModelType::ByteArray => feed(h, tag::BYTES),
        DataModelType::Unit | DataModelType::UnitStruct => feed(h, tag::UNIT),
        DataModelType::Option(inner) => feed_type(feed(h, tag::OPTION), inner),
        DataModelType::NewtypeStruct(inner) => feed_type(h, inner),
        DataModelType::Seq(inner) => {
            if const_is_u8(inner) {
                feed(h, tag::BYTES)
            } else {
                feed_type(feed(h, tag::SEQ), inner)
            }
        }
        DataModelType::Tuple(items) | DataModelType::TupleStruct(items) => feed_list(h, items),
        DataModelType::Map { key, val } => feed_type(feed_type(feed(h, tag::MAP), key), val),
        DataModelType::Struct(fields) => {
            if fields.is_empty() {
                feed(h, tag::UNIT)
            } else {
                feed_fields(feed(h, tag::STRUCT), fields)
            }
        }
        DataModelType::Enum(variants) => {
            let mut h = feed_varint(feed(h, tag::ENUM), variants.len() as u64);
            let mut i = 0;
            while i < variants.len() {
                h = feed_str(h, variants[i].name);
                h = match variants[i].ty {
                    DataModelVariant::UnitVariant => feed(h, tag::VARIANT_UNIT),
                    DataModelVariant::NewtypeVariant(t) => feed_variant_fields(h, t),
                    DataModelVariant::TupleVariant(items) => match items.len() {
                        0 => feed(h, tag::VARIANT_UNIT),
                        1 => feed_variant_fields(h, items[0]),
                        _ => feed_items(feed(h, tag::VARIANT_TUPLE), items),
                    },
                    DataModelVariant::StructVariant(fields) => {
                        if fields.is_empty() {
                            feed(h, tag::VARIANT_UNIT)
                        } else {
                            feed_fields(feed(h, tag::VARIANT_STRUCT), fields)
                        }
                    }
                };
                i += 1;
            }
            h
        }
        DataModelType::Schema => panic!("a schema inside a schema is not supported on the wire"),
    }
}

/// A variant whose fields are one value: classified by what that value
/// is canonically (nothing, several in a row, named fields, or one).
const fn feed_variant_fields(h: u64, ty: &'static NamedType) -> u64 {
    let core = unwrap(ty);
    if const_is_unit(core) {
        return feed(h, tag::VARIANT_UNIT);
    }
    if const_ref_interface(core).is_none() {
        match core.ty {
            DataModelType::Tuple(items) | DataModelType::TupleStruct(items) => {
                return feed_items(feed(h, tag::VARIANT_TUPLE), items);
            }
            DataModelType::Struct(fields) => {
                return feed_fields(feed(h, tag::VARIANT_STRUCT), fields);
            }
            _ => {}
        }
    }
    feed_type(feed(h, tag::VARIANT_NEWTYPE), core)
}

/// `ty` without the newtypes and one-element tuples around it.
const fn unwrap(mut ty: &'static NamedType) -> &'static NamedType {
    loop {
        if const_ref_interface(ty).is_some() {
            return ty;
        }
        match ty.ty {
            DataModelType::NewtypeStruct(inner) => ty = inner,
            DataModelType::Tuple([only]) | DataModelType::TupleStruct([only]) => ty = only,
            _ => return ty,
        }
    }
}

/// Whether `ty` is canonically unit: it encodes as nothing.
const fn const_is_unit(ty: &NamedType) -> bool {
    if const_ref_interface(ty).is_some() {
        return false;
    }
    match ty.ty {
        DataModelType::Unit | DataModelType::UnitStruct => true,
        DataModelType::NewtypeStruct(inner) => const_is_unit(inner),
        DataModelType::Tuple(items) | DataModelType::TupleStruct(items) => {
            items.is_empty() || (items.len() == 1 && const_is_unit(items[0]))
        }
        DataModelType::Struct(fields) => fields.is_empty(),
        _ => false,
    }
}

/// Values sent one after another: nothing is unit, one is itself, more a
/// tuple.
const fn feed_list(h: u64, items: &[&NamedType]) -> u64 {
    match items.len() {
        0 => feed(h, tag::UNIT),
        1 => feed_type(h, items[0]),
        _ => feed_items(feed(h, tag::TUPLE), items),
    }
}

const fn feed_items(mut h: u64, items: &[&NamedType]) -> u64 {
    h = feed_varint(h, items.len() as u64);
    let mut i = 0;
    while i < items.len() {
        h = feed_type(h, items[i]);
        i += 1;
    }
    h
}

const fn feed_fields(mut h: u64, fields: &[&NamedValue]) -> u64 {
    h = feed_varint(h, fields.len() as u64);
    let mut i = 0;
    while i < fields.len() {
        h = feed_type(feed_str(h, fields[i].name), fields[i].ty);
        i += 1;
    }
    h
}

/// One method, as the fingerprint sees it: its name, its parameters'
/// types in order, its result type and, for `Result<T, E>`, `E`.
#[derive(Debug, Clone, Copy)]
pub struct MethodSchema {
    /// The method's name.
    pub name: &'static str,
    /// The parameters' types, in order.
    pub params: &'static [&'static NamedType],
    /// The successful result's type.
    pub result: &'static NamedType,
    /// The callee's error type, if the method returns `Result<T, E>`.
    pub error: Option<&'static NamedType>,
}

/// The fingerprint of an interface: FNV-1a 64 over its canonical encoding
/// (PROTOCOL.md, §9.2), `methods` sorted by name (the interface macro
/// sorts them). Evaluated at compile time by the macro.
pub const fn interface_fingerprint(name: &str, methods: &[MethodSchema]) -> u64 {
    let mut h = feed_str(FNV_OFFSET, name);
    h = feed_varint(h, methods.len() as u64);
    let mut i = 0;
    while i < methods.len() {
        let m = &methods[i];
        h = feed_str(h, m.name);
        h = feed_list(h, m.params);
        h = feed_type(h, m.result);
        h = match m.error {
            None => feed(h, 0),
            Some(e) => feed_type(feed(h, 1), e),
        };
        i += 1;
    }
    h
}

/// The canonical encoding of an interface (PROTOCOL.md, §9.2), the bytes
/// [`interface_fingerprint`] hashes; `methods` sorted by name.
pub fn encode_interface(name: &str, methods: &[MethodSchema]) -> Result<Vec<u8>, SchemaError> {
    let mut out = Vec::new();
    string(name, &mut out);
    varint(methods.len() as u64, &mut out);
    for m in methods {
        string(m.name, &mut out);
        WireSchema::from_list(m.params)?.encode(&mut out);
        WireSchema::from_named(m.result)?.encode(&mut out);
        match m.error {
            None => out.push(0),
            Some(e) => {
                out.push(1);
                WireSchema::from_named(e)?.encode(&mut out);
            }
        }
    }
    Ok(out)
}

/// An untyped reference travels like a typed stub, as an index into the
/// frame's reference table; its schema names no interface.
impl Schema for crate::Ref {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "tether::Ref<>",
        ty: &DataModelType::U32,
    };
}
