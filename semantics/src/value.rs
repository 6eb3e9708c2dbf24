//! Values: arguments and results as they travel inside one node.

use std::any::{Any, TypeId, type_name};
use std::cell::{Cell, OnceCell};
use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Ref;

/// An argument tuple or a result, type-erased but not serialized.
///
/// Inside one node a call's arguments travel as the typed Rust values the
/// caller passed, boxed once; the callee takes them out by value and writes
/// its result back into the same box, which then travels back as the reply.
/// Nothing is encoded. Filters may inspect values with [`Value::args`] and
/// [`Value::downcast_ref`] when they know the types.
///
/// Between nodes a value arrives encoded, and is decoded the first time
/// someone reads it as a type: a filter reading a remote call's arguments
/// sees the same as for a local one.
///
/// ```
/// use tether::Value;
///
/// let args = Value::new((2_u64, String::from("two")));
/// assert_eq!(args.args::<(u64, String)>(), Some(&(2, "two".to_string())));
/// assert!(args.args::<(u64,)>().is_none(), "not the type it holds");
/// assert!(args.try_args::<(u64,)>().unwrap_err().is_bad_arguments());
/// ```
pub struct Value(Box<dyn Payload>);

thread_local! {
    /// One call slot's allocation, kept after its result was taken (it
    /// holds nothing then), for the next call this thread makes with the
    /// same argument and result types: a stub's call then allocates one
    /// box fewer.
    static SPARE_SLOT: Cell<Option<Box<dyn Any>>> = const { Cell::new(None) };
}

/// What a [`Value`] can hold: a plain value, or a call slot.
trait Payload: Any + Send {
    fn args_any(&self) -> Option<&dyn Any>;
    fn result_any(&self) -> Option<&dyn Any>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn try_clone(&self) -> Option<Value>;
    fn type_name(&self) -> &'static str;
    fn payload_type_id(&self) -> TypeId;
    /// Appends the value (a call slot: its arguments or its result) in
    /// postcard, as it travels to another node.
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String>;
    /// The bytes and the references they index, for a value that arrived
    /// encoded.
    fn encoded(&self) -> Option<(&Bytes, &[Ref])> {
        None
    }
}

/// Decodes a `T` that must fill `bytes` exactly: postcard is not
/// self-describing, so leftover bytes are the sign of a value of another
/// type that happened to decode.
///
/// A reference that is not of the interface its stub expects fails with
/// [`Incompatible`](crate::ErrorKind::Incompatible); anything else that does
/// not decode with [`BadArguments`](crate::ErrorKind::BadArguments). Type
/// names in messages carry no Rust paths: the message may travel.
fn decode_exact<T: DeserializeOwned>(bytes: &[u8], refs: &[Ref]) -> Result<T, crate::Error> {
    decode_as::<T, T>(bytes, refs)
}

/// Decodes a `W` (a type with the same encoding as `T`: its wire form)
/// that must fill `bytes` exactly; errors name `T`.
pub(crate) fn decode_as<W: DeserializeOwned, T>(
    bytes: &[u8],
    refs: &[Ref],
) -> Result<W, crate::Error> {
    let (decoded, refused) =
        crate::travel::resolving(refs, || postcard::take_from_bytes::<W>(bytes));
    let why = match decoded {
        Ok((value, [])) => return Ok(value),
        _ if refused.is_some() => {
            return Err(
                refused.unwrap_or_else(|| crate::Error::new(crate::ErrorKind::Incompatible, ""))
            );
        }
        Ok((_, rest)) => format!("{} bytes left over", rest.len()),
        Err(e) => e.to_string(),
    };
    Err(crate::Error::new(
        crate::ErrorKind::BadArguments,
        format!("the value is not a {}: {why}", short_type_name::<T>()),
    ))
}

/// How a method's argument tuple and result are encoded and decoded on
/// the wire. [`SERDE`](Codec::SERDE) uses their serde impls; the interface
/// macro gives methods with `Vec<u8>` parameters or results a codec that
/// writes and reads those as byte strings: the same bytes (postcard writes
/// a `Vec<u8>` as its length and its bytes either way), without serde's
/// one call per element.
#[doc(hidden)]
pub struct Codec<A, R> {
    /// Appends the arguments.
    pub encode_args: Encoder<A>,
    /// Reads arguments that must fill the bytes.
    pub decode_args: Decoder<A>,
    /// Appends the result.
    pub encode_result: Encoder<R>,
    /// Reads a result that must fill the bytes.
    pub decode_result: Decoder<R>,
}

/// Reads a value that must fill the bytes, resolving the references it
/// indexes.
#[doc(hidden)]
pub type Decoder<T> = fn(&[u8], &[Ref]) -> Result<T, crate::Error>;

impl<A, R> fmt::Debug for Codec<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl<A: Serialize + DeserializeOwned, R: Serialize + DeserializeOwned> Codec<A, R> {
    /// By the types' own serde impls.
    pub const SERDE: Codec<A, R> = Codec {
        encode_args: postcard_into::<A>,
        decode_args: decode_exact::<A>,
        encode_result: postcard_into::<R>,
        decode_result: decode_exact::<R>,
    };
}

/// Appends `value` in postcard.
#[doc(hidden)]
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    postcard::to_extend(value, std::mem::take(out))
        .map(|extended| *out = extended)
        .map_err(|e| e.to_string())
}

/// Reads a `W`, the wire form of `T`, that must fill `bytes`.
#[doc(hidden)]
pub fn decode_wire<W: DeserializeOwned, T>(bytes: &[u8], refs: &[Ref]) -> Result<W, crate::Error> {
    decode_as::<W, T>(bytes, refs)
}

/// A `Vec<u8>` written as a byte string: the same bytes as the vector's
/// serde impl writes, in one copy.
#[doc(hidden)]
#[derive(Debug)]
pub struct AsBytes<'a>(pub &'a [u8]);

impl Serialize for AsBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A `Vec<u8>` read as a byte string (see [`AsBytes`]).
#[doc(hidden)]
#[derive(Debug)]
pub struct ByteVec(pub Vec<u8>);

impl<'de> serde::Deserialize<'de> for ByteVec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = ByteVec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteVec, E> {
                Ok(ByteVec(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteVec, E> {
                Ok(ByteVec(v))
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<ByteVec, S::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteVec(out))
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// `type_name::<T>()` without module paths: `(u64, String)`, not
/// `(u64, alloc::string::String)`.
pub(crate) fn short_type_name<T: ?Sized>() -> String {
    let full = type_name::<T>();
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
        } else {
            out.push_str(&word);
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&word);
    out
}

fn postcard_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    encode_into(value, out)
}

/// A plain value: a reply, a callee's error, a hand-made argument tuple.
/// It can travel to another node only if it was given an encoder
/// ([`Value::serializable`]).
struct Plain<T> {
    value: T,
    encode: Option<Encoder<T>>,
}

/// Appends a value in postcard, or says why it cannot.
type Encoder<T> = fn(&T, &mut Vec<u8>) -> Result<(), String>;

impl<T: Any + Send> Payload for Plain<T> {
    fn args_any(&self) -> Option<&dyn Any> {
        Some(&self.value)
    }
    fn result_any(&self) -> Option<&dyn Any> {
        Some(&self.value)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn try_clone(&self) -> Option<Value> {
        None
    }
    fn type_name(&self) -> &'static str {
        type_name::<T>()
    }
    fn payload_type_id(&self) -> TypeId {
        TypeId::of::<Self>()
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        match self.encode {
            Some(encode) => encode(&self.value, out),
            None => Err(format!(
                "a {} made with Value::new cannot travel to another node (use Value::serializable)",
                type_name::<T>()
            )),
        }
    }
}

/// A value as it arrived from another node: postcard bytes, decoded when
/// its type is known (by the skeleton for arguments, by the stub for a
/// result), and the references the bytes index (see [`crate::travel`]).
#[derive(Default)]
struct Encoded {
    bytes: Bytes,
    refs: Vec<Ref>,
    /// The value, once someone asked for it by type: a filter reading the
    /// arguments decodes them here, and the skeleton takes them from here
    /// instead of decoding again.
    decoded: OnceCell<Box<dyn Any + Send>>,
}

impl Encoded {
    /// The value as a `T`, decoded on first use.
    fn get<T: Any + Send + DeserializeOwned>(&self) -> Result<&T, crate::Error> {
        let other = || {
            crate::Error::new(
                crate::ErrorKind::BadArguments,
                format!(
                    "the value was read as another type already, not as a {}",
                    short_type_name::<T>()
                ),
            )
        };
        if let Some(held) = self.decoded.get() {
            return held.downcast_ref::<T>().ok_or_else(other);
        }
        let value = decode_exact::<T>(&self.bytes, &self.refs)?;
        let held = self.decoded.get_or_init(|| Box::new(value));
        held.downcast_ref::<T>().ok_or_else(other)
    }

    /// Takes the value out as a `T`: the one decoded already, or decoded now.
    fn take<T: Any + DeserializeOwned>(&mut self) -> Result<T, crate::Error> {
        self.take_with(decode_exact::<T>)
    }

    /// Takes the value out as a `T`: the one decoded already, or decoded
    /// now by `decode`.
    fn take_with<T: Any>(&mut self, decode: Decoder<T>) -> Result<T, crate::Error> {
        if self.decoded.get().is_some_and(|held| held.is::<T>()) {
            if let Some(Ok(value)) = self.decoded.take().map(|held| held.downcast::<T>()) {
                return Ok(*value);
            }
        }
        decode(&self.bytes, &self.refs)
    }
}

impl Payload for Encoded {
    fn args_any(&self) -> Option<&dyn Any> {
        None
    }
    fn result_any(&self) -> Option<&dyn Any> {
        None
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn try_clone(&self) -> Option<Value> {
        Some(Value::encoded_with(self.bytes.clone(), self.refs.clone()))
    }
    fn type_name(&self) -> &'static str {
        "encoded bytes"
    }
    fn payload_type_id(&self) -> TypeId {
        TypeId::of::<Self>()
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(&self.bytes);
        Ok(())
    }
    fn encoded(&self) -> Option<(&Bytes, &[Ref])> {
        Some((&self.bytes, &self.refs))
    }
}

/// One call's box: first the arguments `A`, then the result `R`.
struct Slot<A: 'static, R: 'static> {
    state: State<A, R>,
    cloner: Option<fn(&A) -> Option<A>>,
    codec: &'static Codec<A, R>,
}

enum State<A, R> {
    Args(A),
    Result(R),
    Taken,
}

impl<A: Any + Send, R: Any + Send> Payload for Slot<A, R> {
    fn args_any(&self) -> Option<&dyn Any> {
        match &self.state {
            State::Args(a) => Some(a),
            _ => None,
        }
    }
    fn result_any(&self) -> Option<&dyn Any> {
        match &self.state {
            State::Result(r) => Some(r),
            _ => None,
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn try_clone(&self) -> Option<Value> {
        let (State::Args(args), Some(cloner)) = (&self.state, self.cloner) else {
            return None;
        };
        let args = cloner(args)?;
        Some(Value(Box::new(Slot::<A, R> {
            state: State::Args(args),
            cloner: self.cloner,
            codec: self.codec,
        })))
    }
    fn type_name(&self) -> &'static str {
        match self.state {
            State::Args(_) => type_name::<A>(),
            State::Result(_) => type_name::<R>(),
            State::Taken => "<taken>",
        }
    }
    fn payload_type_id(&self) -> TypeId {
        TypeId::of::<Self>()
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), String> {
        match &self.state {
            State::Args(a) => (self.codec.encode_args)(a, out),
            State::Result(r) => (self.codec.encode_result)(r, out),
            State::Taken => Err("the call's arguments were already taken".into()),
        }
    }
}

impl Value {
    /// Wraps a plain value: a reply, a callee's error, or an argument tuple
    /// for a call made by hand with [`Ref::call`](crate::Ref::call).
    ///
    /// Such a value stays in this node: [`encode`](Value::encode) refuses
    /// it. Use [`serializable`](Value::serializable) for one that may
    /// travel.
    ///
    /// ```
    /// use tether::Value;
    /// let v = Value::new(7_u64);
    /// assert_eq!(v.downcast_ref::<u64>(), Some(&7));
    /// assert_eq!(v.downcast::<u64>().ok(), Some(7));
    /// ```
    pub fn new<T: Any + Send>(value: T) -> Self {
        Value(Box::new(Plain {
            value,
            encode: None,
        }))
    }

    /// The unit value, the reply of a method that returns `()`.
    pub fn unit() -> Self {
        Self::serializable(())
    }

    /// Wraps a plain value that can also travel to another node.
    pub fn serializable<T: Any + Send + Serialize>(value: T) -> Self {
        Value(Box::new(Plain {
            value,
            encode: Some(postcard_into::<T>),
        }))
    }

    /// A value that arrived from another node as postcard bytes; it is
    /// decoded when its type is known.
    pub fn encoded(bytes: Bytes) -> Self {
        Self::encoded_with(bytes, Vec::new())
    }

    /// A value that arrived from another node as postcard bytes, with the
    /// references those bytes index (see [`Value::encode`]).
    pub fn encoded_with(bytes: Bytes, refs: Vec<Ref>) -> Self {
        Value(Box::new(Encoded {
            bytes,
            refs,
            decoded: OnceCell::new(),
        }))
    }

    /// The bytes, if this value arrived encoded.
    pub fn as_encoded(&self) -> Option<&Bytes> {
        self.0.encoded().map(|(bytes, _)| bytes)
    }

    /// Appends this value in postcard, as it travels to another node: a
    /// call's arguments before the call, its result after it. This is the
    /// one encoding a remote call makes of its arguments.
    ///
    /// References inside the value (typed stubs passed as arguments or
    /// returned) are not bytes: each is written as its index in the list
    /// this returns, and travels beside the bytes as the transport sees
    /// fit. The list is empty for values without references.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<Vec<Ref>, crate::Error> {
        let internal = |e| crate::Error::new(crate::ErrorKind::Internal, e);
        if let Some((_, refs)) = self.0.encoded() {
            self.0.encode(out).map_err(internal)?;
            return Ok(refs.to_vec());
        }
        let (encoded, refs) = crate::travel::collecting(|| self.0.encode(out));
        encoded.map_err(internal)?;
        Ok(refs)
    }

    /// Takes out the value as a `T`: a plain value of that type, or one
    /// that arrived encoded and decodes as one. For hand-written services.
    pub fn decode<T: Any + DeserializeOwned>(mut self) -> Result<T, crate::Error> {
        if let Some(encoded) = self.as_encoded_payload_mut() {
            return encoded.take::<T>();
        }
        let held = self.type_name();
        self.downcast::<T>().map_err(|_| {
            crate::Error::new(
                crate::ErrorKind::BadArguments,
                format!("expected a {}, got {held}", type_name::<T>()),
            )
        })
    }

    /// The name of the type held, for logs and errors.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }

    /// The call's argument tuple, if this value holds arguments of type `A`.
    ///
    /// Arguments are a tuple in declaration order: `(a, b)` for two, `(a,)`
    /// for one, `()` for none. This is how a filter reads typed arguments,
    /// and it gives the same answer for a local call (the caller's values,
    /// not copied) and a remote one (whose bytes are decoded on the first
    /// request, once: the skeleton then takes the decoded tuple). Use
    /// [`try_args`](Value::try_args) to learn why arguments do not read as
    /// an `A`.
    ///
    /// ```
    /// use tether::Value;
    /// let local = Value::new((2_u64, 3_u64));
    /// assert_eq!(local.args::<(u64, u64)>(), Some(&(2, 3)));
    /// // The same arguments as they arrive from another node:
    /// let remote = Value::encoded(bytes::Bytes::from_static(&[2, 3]));
    /// assert_eq!(remote.args::<(u64, u64)>(), Some(&(2, 3)));
    /// ```
    pub fn args<A: Any + Send + DeserializeOwned>(&self) -> Option<&A> {
        self.try_args().ok()
    }

    /// The call's argument tuple as an `A`, or a
    /// [`BadArguments`](crate::ErrorKind::BadArguments) error that says why
    /// not; see [`args`](Value::args).
    pub fn try_args<A: Any + Send + DeserializeOwned>(&self) -> Result<&A, crate::Error> {
        if let Some(encoded) = self.as_encoded_payload() {
            return encoded.get::<A>();
        }
        self.0
            .args_any()
            .and_then(|a| a.downcast_ref())
            .ok_or_else(|| {
                crate::Error::new(
                    crate::ErrorKind::BadArguments,
                    format!(
                        "the arguments are not a {}: they are a {}",
                        short_type_name::<A>(),
                        self.type_name()
                    ),
                )
            })
    }

    /// The result or plain value held, if it is of type `T`; for a reply
    /// that arrived from another node, decoded on the first request, once
    /// (the stub then takes the decoded value). Caller-side filters read
    /// typed results this way.
    pub fn result<T: Any + Send + DeserializeOwned>(&self) -> Option<&T> {
        match self.as_encoded_payload() {
            Some(encoded) => encoded.get::<T>().ok(),
            None => self.downcast_ref(),
        }
    }

    /// The result or plain value held, if it is of type `T`, without
    /// decoding: `None` for a value that arrived encoded and was not read
    /// yet (use [`result`](Value::result) for those).
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        if let Some(encoded) = self.as_encoded_payload() {
            return encoded.decoded.get()?.downcast_ref();
        }
        self.0.result_any()?.downcast_ref()
    }

    fn as_encoded_payload(&self) -> Option<&Encoded> {
        let any: &dyn Any = self.0.as_ref().as_any();
        any.downcast_ref::<Encoded>()
    }

    fn as_encoded_payload_mut(&mut self) -> Option<&mut Encoded> {
        self.0.as_any_mut().downcast_mut::<Encoded>()
    }

    /// Takes the plain value out, if it is of type `T`.
    pub fn downcast<T: Any>(self) -> Result<T, Self> {
        if self.0.payload_type_id() == TypeId::of::<Plain<T>>() {
            if let Ok(plain) = self.0.into_any().downcast::<Plain<T>>() {
                return Ok(plain.value);
            }
            unreachable!("type id checked above")
        }
        Err(self)
    }

    /// A copy of a call's arguments, for sending one message to many
    /// targets. `None` if this value is not an argument tuple, or if the
    /// arguments could not be copied.
    pub fn try_clone(&self) -> Option<Value> {
        self.0.try_clone()
    }

    /// A call slot holding `args`; the stub's side of a call.
    #[cfg(test)]
    pub(crate) fn call<
        A: Any + Send + Serialize + DeserializeOwned,
        R: Any + Send + Serialize + DeserializeOwned,
    >(
        args: A,
        cloner: Option<fn(&A) -> Option<A>>,
    ) -> Self {
        Self::call_with::<A, R>(args, cloner, &Codec::SERDE)
    }

    /// [`call`](Value::call), with the method's codec.
    pub(crate) fn call_with<A: Any + Send, R: Any + Send>(
        args: A,
        cloner: Option<fn(&A) -> Option<A>>,
        codec: &'static Codec<A, R>,
    ) -> Self {
        let fresh = Slot::<A, R> {
            state: State::Args(args),
            cloner,
            codec,
        };
        let spare = SPARE_SLOT.try_with(Cell::take).ok().flatten();
        let slot = match spare.map(|spare| spare.downcast::<Slot<A, R>>()) {
            Some(Ok(mut slot)) => {
                *slot = fresh;
                slot
            }
            other => {
                // Another method's: it stays for its own next call.
                if let Some(Err(spare)) = other {
                    let _ = SPARE_SLOT.try_with(|kept| kept.set(Some(spare)));
                }
                Box::new(fresh)
            }
        };
        Value(slot)
    }

    /// Takes the arguments out of a call slot (or a plain tuple); the
    /// skeleton's side.
    #[cfg(test)]
    pub(crate) fn take_args<A: Any + Send + DeserializeOwned, R: Any + Send>(
        &mut self,
    ) -> Result<A, crate::Error> {
        self.take_args_with::<A, R>(decode_exact::<A>)
    }

    /// [`take_args`](Value::take_args), decoding with `decode`.
    pub(crate) fn take_args_with<A: Any + Send, R: Any + Send>(
        &mut self,
        decode: Decoder<A>,
    ) -> Result<A, crate::Error> {
        let expected = |held: &str| {
            crate::Error::new(
                crate::ErrorKind::BadArguments,
                format!("expected arguments {}, got {held}", short_type_name::<A>()),
            )
        };
        if let Some(slot) = self.0.as_any_mut().downcast_mut::<Slot<A, R>>() {
            return match std::mem::replace(&mut slot.state, State::Taken) {
                State::Args(a) => Ok(a),
                other => {
                    slot.state = other;
                    Err(expected("arguments taken already"))
                }
            };
        }
        if let Some(encoded) = self.as_encoded_payload_mut() {
            let args = encoded.take_with::<A>(decode)?;
            // What the arguments arrived in is let go of now; the box stays
            // (the reply replaces it), so taking them allocates nothing.
            *encoded = Encoded::default();
            return Ok(args);
        }
        if self.0.payload_type_id() == TypeId::of::<Plain<A>>() {
            if let Ok(args) = std::mem::replace(self, Value::unit()).downcast::<A>() {
                return Ok(args);
            }
        }
        Err(expected(self.type_name()))
    }

    /// Stores the result in the call slot the arguments came in, or wraps it
    /// plainly if this value is not such a slot.
    #[cfg(test)]
    pub(crate) fn put_result<
        A: Any + Send + Serialize + DeserializeOwned,
        R: Any + Send + Serialize + DeserializeOwned,
    >(
        self,
        result: R,
    ) -> Self {
        self.put_result_with::<A, R>(result, &Codec::SERDE)
    }

    /// [`put_result`](Value::put_result), with the method's codec.
    pub(crate) fn put_result_with<A: Any + Send, R: Any + Send>(
        self,
        result: R,
        codec: &'static Codec<A, R>,
    ) -> Self {
        let mut this = self;
        if let Some(slot) = this.0.as_any_mut().downcast_mut::<Slot<A, R>>() {
            slot.state = State::Result(result);
            this
        } else {
            Value(Box::new(Plain {
                value: result,
                encode: Some(codec.encode_result),
            }))
        }
    }

    /// Takes the result of type `R` out, from a call slot or a plain value.
    #[cfg(test)]
    pub(crate) fn into_result<A, R>(self) -> Result<R, Self>
    where
        A: Any + Send + Serialize + DeserializeOwned,
        R: Any + Send + Serialize + DeserializeOwned,
    {
        self.into_result_with::<A, R>(&Codec::SERDE)
    }

    /// [`into_result`](Value::into_result), decoding with the method's
    /// codec.
    pub(crate) fn into_result_with<A: Any + Send, R: Any + Send>(
        self,
        codec: &'static Codec<A, R>,
    ) -> Result<R, Self> {
        if self.0.payload_type_id() == TypeId::of::<Slot<A, R>>() {
            let any = self.0.into_any();
            let Ok(mut slot) = any.downcast::<Slot<A, R>>() else {
                unreachable!("type id checked above")
            };
            return match std::mem::replace(&mut slot.state, State::Taken) {
                State::Result(r) => {
                    // Emptied, its allocation serves this thread's next call.
                    let _ = SPARE_SLOT.try_with(|spare| spare.set(Some(slot)));
                    Ok(r)
                }
                state => {
                    slot.state = state;
                    Err(Value(slot))
                }
            };
        }
        let mut this = self;
        if let Some(encoded) = this.as_encoded_payload_mut() {
            return encoded
                .take_with::<R>(codec.decode_result)
                .map_err(|_| this);
        }
        this.downcast::<R>()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value<{}>", self.type_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_round_trip_reuses_the_box() {
        let mut v = Value::call::<(u64, u64), u64>((2, 3), None);
        assert_eq!(v.args::<(u64, u64)>(), Some(&(2, 3)));
        assert_eq!(v.take_args::<(u64, u64), u64>().ok(), Some((2, 3)));
        // Taken twice: nothing left.
        assert_eq!(v.take_args::<(u64, u64), u64>().ok(), None);
        let v = v.put_result::<(u64, u64), u64>(5);
        assert_eq!(v.downcast_ref::<u64>(), Some(&5));
        assert_eq!(v.into_result::<(u64, u64), u64>().ok(), Some(5));
    }

    fn address(v: &Value) -> *const () {
        let payload: &dyn Payload = v.0.as_ref();
        (payload as *const dyn Payload).cast()
    }

    #[test]
    fn a_call_slot_whose_result_was_taken_serves_the_next_call_of_its_types() {
        // Each test runs on a thread of its own: the spare slot is this
        // test's.
        let first = Value::call::<(u64, u64), u64>((1, 2), None);
        let at = address(&first);
        let first = first.put_result::<(u64, u64), u64>(3);
        assert_eq!(first.into_result::<(u64, u64), u64>().ok(), Some(3));

        // The same types: the same allocation, holding the new arguments.
        let mut second = Value::call::<(u64, u64), u64>((4, 5), None);
        assert_eq!(address(&second), at);
        assert_eq!(second.take_args::<(u64, u64), u64>().ok(), Some((4, 5)));

        // Other types leave it for the next call of its own.
        let other = Value::call::<(String,), String>(("x".into(),), None);
        assert_ne!(address(&other), at);
        let second = second.put_result::<(u64, u64), u64>(9);
        assert_eq!(second.into_result::<(u64, u64), u64>().ok(), Some(9));
        let third = Value::call::<(u64, u64), u64>((6, 7), None);
        assert_eq!(address(&third), at);
        assert_eq!(third.args::<(u64, u64)>(), Some(&(6, 7)));
        drop(other);
    }

    #[test]
    fn wrong_types_are_refused_not_misread() {
        let mut v = Value::call::<(u64,), u64>((1,), None);
        assert_eq!(v.take_args::<(String,), u64>().ok(), None);
        assert!(v.args::<(u32,)>().is_none());
        assert!(v.into_result::<(u64,), u64>().is_err(), "no result yet");
        assert!(Value::new(1_u8).downcast::<u64>().is_err());
    }

    #[test]
    fn clone_needs_a_cloner_and_arguments() {
        let v = Value::call::<(String,), ()>(("x".into(),), Some(|a| Some(a.clone())));
        let c = v.try_clone().expect("cloneable");
        assert_eq!(c.args::<(String,)>(), Some(&("x".to_string(),)));
        assert!(Value::call::<(u8,), ()>((1,), None).try_clone().is_none());
        assert!(Value::new(1_u8).try_clone().is_none());
    }

    #[test]
    fn plain_tuple_is_accepted_as_arguments() {
        let mut v = Value::new((4_u64, 5_u64));
        assert_eq!(v.args::<(u64, u64)>(), Some(&(4, 5)));
        assert_eq!(v.take_args::<(u64, u64), u64>().ok(), Some((4, 5)));
        let v = v.put_result::<(u64, u64), u64>(9);
        assert_eq!(v.into_result::<(u64, u64), u64>().ok(), Some(9));
    }

    #[test]
    fn a_remote_call_encodes_its_arguments_once_and_decodes_on_arrival() {
        // Caller: the stub's slot encodes its arguments for the frame.
        let outgoing = Value::call::<(u64, String), u64>((7, "x".into()), None);
        let mut wire = Vec::new();
        outgoing.encode(&mut wire).unwrap();
        // Callee: the arguments arrive as bytes; the skeleton decodes them.
        let mut incoming = Value::encoded(Bytes::from(wire));
        assert_eq!(incoming.as_encoded().map(Bytes::len), Some(3));
        assert_eq!(
            incoming.take_args::<(u64, String), u64>().ok(),
            Some((7, "x".to_string()))
        );
        let reply = incoming.put_result::<(u64, String), u64>(99);
        let mut wire = Vec::new();
        reply.encode(&mut wire).unwrap();
        // Caller again: the reply arrives as bytes; the stub decodes it.
        let back = Value::encoded(Bytes::from(wire));
        assert_eq!(back.into_result::<(u64, String), u64>().ok(), Some(99));
    }

    #[test]
    fn bytes_of_the_wrong_shape_are_refused_not_misread() {
        let mut bad = Value::encoded(Bytes::from_static(&[0xff, 0xff]));
        assert_eq!(bad.take_args::<(u64, u64), u64>().ok(), None);
        let bad = Value::encoded(Bytes::from_static(b""));
        assert!(bad.into_result::<(u64, u64), u64>().is_err());
        let e = Value::new(1_u8).encode(&mut Vec::new()).unwrap_err();
        assert!(e.message().contains("Value::serializable"), "{e}");
    }

    #[test]
    fn encoded_arguments_decode_once_on_demand() {
        let wire = {
            let mut wire = Vec::new();
            Value::call::<(u64, String), u64>((7, "x".into()), None)
                .encode(&mut wire)
                .unwrap();
            Bytes::from(wire)
        };
        let mut incoming = Value::encoded(wire);
        // A filter reads them...
        assert_eq!(
            incoming.args::<(u64, String)>(),
            Some(&(7, "x".to_string()))
        );
        assert!(
            incoming.downcast_ref::<(u64, String)>().is_some(),
            "kept decoded"
        );
        // ... a filter that expects other types gets a clear error ...
        let e = incoming.try_args::<(u8,)>().unwrap_err();
        assert!(e.is_bad_arguments(), "{e}");
        // ... and the skeleton takes the decoded tuple, not the bytes again.
        assert_eq!(
            incoming.take_args::<(u64, String), u64>().ok(),
            Some((7, "x".to_string()))
        );
        let bad = Value::encoded(Bytes::from_static(&[0xff]));
        let e = bad.try_args::<(u64, u64)>().unwrap_err();
        assert!(e.message().contains("(u64, u64)"), "{e}");
    }

    #[test]
    fn encoded_values_copy_cheaply_for_multicast() {
        let v = Value::encoded(Bytes::from_static(&[1, 2]));
        let copy = v.try_clone().expect("bytes copy");
        assert_eq!(copy.as_encoded(), v.as_encoded());
    }

    #[test]
    fn plain_value_is_accepted_as_a_result() {
        let v = Value::new(9_u64);
        assert_eq!(v.into_result::<(u64, u64), u64>().ok(), Some(9));
    }
}
