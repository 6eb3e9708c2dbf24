//! Asking what a view offers.

use serde::{Deserialize, Serialize};
use tether_semantics::schema::{SchemaError, WireSchema};

/// Asks what the exports `keys` offer: one question for many references,
/// so a value that brings hundreds costs one frame.
///
/// ```text
/// body = id: varint u64       answered by the Description with this id
///        keys: varint n, then n × varint u32
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Describe {
    /// Chosen by the sender; the answer carries it.
    pub id: u64,
    /// The exports, in the receiver's table for this connection.
    pub keys: Vec<u32>,
}

/// What views offer: the answer to a [`Describe`], one entry per key, in
/// the Describe's order.
///
/// ```text
/// body = id: varint u64
///        views: varint n, then n × option<WireView>   none: the key names no export
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The [`Describe`] this answers.
    pub id: u64,
    /// Each key's view, or `None` if it names no export.
    pub views: Vec<Option<WireView>>,
}

/// A view as the wire describes it.
///
/// ```text
/// WireView = interface: string
///            fingerprint: u64 (8 bytes, little endian)
///            view: string
///            version: varint u32     changes whenever the owner replaces the view
///            methods: varint length, then that many WireMethod
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireView {
    /// The interface's name.
    pub interface: String,
    /// The interface's fingerprint; a caller with another one must not
    /// call.
    #[serde(with = "super::fixed::u64le")]
    pub fingerprint: u64,
    /// The view's name.
    pub view: String,
    /// The view's version: it changes whenever the owner replaces the
    /// view, and calls carry the version their caller went by.
    pub version: u32,
    /// The methods the view offers.
    pub methods: Vec<WireMethod>,
}

/// One method a view offers.
///
/// ```text
/// WireMethod = selector: u32 (4 bytes, little endian)
///              name: string
///              kind: u8       0 sync, 1 oneway, 2 future
///              types: option<WireTypes>   none: the interface gives no schemas
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMethod {
    /// Its selector id.
    #[serde(with = "super::fixed::u32le")]
    pub selector: u32,
    /// Its name.
    pub name: String,
    /// How the view carries it out (see [`abstraction_code`](super::abstraction_code)).
    pub kind: u8,
    /// The wire schemas of its parameters, result and callee error.
    pub types: Option<WireTypes>,
}

/// A method's types, each as a canonical schema (PROTOCOL.md, §9.1) in a
/// byte string.
///
/// ```text
/// WireTypes = params: varint n, then n × (name: string, schema: bytes)
///             result: bytes                the successful result's schema
///             error: option<bytes>         the callee's error type, for Result<T, E>
/// ```
///
/// The arguments of a call are the parameters in order, each encoded by
/// its schema, one after another (the parameter tuple); a Return's value
/// is the result, and a callee error's value the error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTypes {
    /// Each parameter's name and schema.
    pub params: Vec<(String, Vec<u8>)>,
    /// The result's schema.
    pub result: Vec<u8>,
    /// The callee error's schema, if the method returns `Result<T, E>`.
    pub error: Option<Vec<u8>>,
}

impl WireTypes {
    /// The types of a method the interface macro made, encoded.
    pub fn of(
        params: &[tether_semantics::Param],
        schema: &tether_semantics::schema::MethodSchema,
    ) -> Result<WireTypes, SchemaError> {
        let encode = |t| WireSchema::from_named(t).map(|s| s.to_bytes());
        Ok(WireTypes {
            params: params
                .iter()
                .zip(schema.params)
                .map(|(p, t)| Ok((p.name().to_string(), encode(t)?)))
                .collect::<Result<_, SchemaError>>()?,
            result: encode(schema.result)?,
            error: schema.error.map(encode).transpose()?,
        })
    }

    /// Each parameter's name and schema, decoded.
    pub fn params(&self) -> Result<Vec<(String, WireSchema)>, SchemaError> {
        self.params
            .iter()
            .map(|(name, schema)| Ok((name.clone(), decode_all(schema)?)))
            .collect()
    }

    /// The result's schema, decoded.
    pub fn result(&self) -> Result<WireSchema, SchemaError> {
        decode_all(&self.result)
    }

    /// The callee error's schema, decoded.
    pub fn error(&self) -> Result<Option<WireSchema>, SchemaError> {
        self.error.as_deref().map(decode_all).transpose()
    }
}

/// One schema that fills `bytes` exactly.
fn decode_all(bytes: &[u8]) -> Result<WireSchema, SchemaError> {
    let mut input = bytes;
    let schema = WireSchema::decode(&mut input)?;
    if input.is_empty() {
        Ok(schema)
    } else {
        Err(SchemaError::Malformed("bytes after the schema"))
    }
}

/// Tells the receiver that the view behind one of the sender's exports has
/// been replaced: what it knows of it from a [`Description`] is stale, and
/// it should describe it again before its next call.
///
/// Sent when the owner replaces the view, and in answer to a call that
/// carried an older version.
///
/// ```text
/// body = key: varint u32          the export, in the sender's table
///        version: varint u32      the view's version now
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revised {
    /// The export, in the sender's table for this connection.
    pub key: u32,
    /// The view's version now.
    pub version: u32,
}
