//! Asking what a view offers.

use serde::{Deserialize, Serialize};

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
