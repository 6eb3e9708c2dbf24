//! [`Schema`] for the standard types, as serde encodes them.

use std::borrow::{Cow, ToOwned};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{DataModelType, DataModelVariant, NamedType, NamedValue, NamedVariant, Schema};

macro_rules! leaf {
    ($($t:ty => $model:ident),* $(,)?) => {$(
        impl Schema for $t {
            const SCHEMA: &'static NamedType = &NamedType {
                name: stringify!($t),
                ty: &DataModelType::$model,
            };
        }
    )*};
}

leaf! {
    bool => Bool,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128,
    // postcard writes `usize` and `isize` as the varints of `u64`/`i64`.
    usize => Usize, isize => Isize,
    f32 => F32, f64 => F64,
    char => Char,
    String => String, str => String,
    () => Unit,
    bytes::Bytes => ByteArray,
}

macro_rules! tuple {
    ($(($($t:ident),+)),* $(,)?) => {$(
        impl<$($t: Schema),+> Schema for ($($t,)+) {
            const SCHEMA: &'static NamedType = &NamedType {
                name: "tuple",
                ty: &DataModelType::Tuple(&[$($t::SCHEMA),+]),
            };
        }
    )*};
}

tuple! {
    (A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F),
    (A, B, C, D, E, F, G), (A, B, C, D, E, F, G, H), (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J), (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L),
}

macro_rules! seq {
    ($($t:ident),* $(,)?) => {$(
        impl<T: Schema> Schema for $t<T> {
            const SCHEMA: &'static NamedType = &NamedType {
                name: stringify!($t),
                ty: &DataModelType::Seq(T::SCHEMA),
            };
        }
    )*};
}

seq!(Vec, VecDeque, BTreeSet);

impl<T: Schema, S> Schema for HashSet<T, S> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "HashSet",
        ty: &DataModelType::Seq(T::SCHEMA),
    };
}

impl<T: Schema> Schema for [T] {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "slice",
        ty: &DataModelType::Seq(T::SCHEMA),
    };
}

/// serde writes an array as a tuple: its elements, no length.
impl<T: Schema, const N: usize> Schema for [T; N] {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "array",
        ty: &DataModelType::Tuple(&[T::SCHEMA; N]),
    };
}

impl<K: Schema, V: Schema> Schema for BTreeMap<K, V> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "BTreeMap",
        ty: &DataModelType::Map {
            key: K::SCHEMA,
            val: V::SCHEMA,
        },
    };
}

impl<K: Schema, V: Schema, S> Schema for HashMap<K, V, S> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "HashMap",
        ty: &DataModelType::Map {
            key: K::SCHEMA,
            val: V::SCHEMA,
        },
    };
}

impl<T: Schema> Schema for Option<T> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Option",
        ty: &DataModelType::Option(T::SCHEMA),
    };
}

impl<T: Schema, E: Schema> Schema for Result<T, E> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Result",
        ty: &DataModelType::Enum(&[
            &NamedVariant {
                name: "Ok",
                ty: &DataModelVariant::NewtypeVariant(T::SCHEMA),
            },
            &NamedVariant {
                name: "Err",
                ty: &DataModelVariant::NewtypeVariant(E::SCHEMA),
            },
        ]),
    };
}

macro_rules! transparent {
    ($($t:ident),* $(,)?) => {$(
        impl<T: Schema + ?Sized> Schema for $t<T> {
            const SCHEMA: &'static NamedType = T::SCHEMA;
        }
    )*};
}

transparent!(Box, Arc, Rc);

impl<T: Schema + ?Sized> Schema for &T {
    const SCHEMA: &'static NamedType = T::SCHEMA;
}

impl<T: Schema + ToOwned + ?Sized> Schema for Cow<'_, T> {
    const SCHEMA: &'static NamedType = T::SCHEMA;
}

impl<T: ?Sized> Schema for PhantomData<T> {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "PhantomData",
        ty: &DataModelType::UnitStruct,
    };
}

/// serde writes a `Duration` as `{ secs: u64, nanos: u32 }`.
impl Schema for Duration {
    const SCHEMA: &'static NamedType = &NamedType {
        name: "Duration",
        ty: &DataModelType::Struct(&[
            &NamedValue {
                name: "secs",
                ty: u64::SCHEMA,
            },
            &NamedValue {
                name: "nanos",
                ty: u32::SCHEMA,
            },
        ]),
    };
}
