//! Calls and their replies.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::{FrameError, Tag, put, put_then, take_then};

/// The context a call carries on the wire.
///
/// The principal is not here: the receiver knows it from the connection's
/// [`Hello`](super::Hello). The deadline travels as the time left when the
/// frame was sent, since the two nodes' clocks differ.
///
/// The lineage is the caller's activation and the activations it runs
/// inside, innermost first, at most [`MAX_LINEAGE`] of them: what lets a
/// callee's re-entrant lock recognise a callback (see PROTOCOL.md, §5.3).
///
/// ```text
/// WireContext = chain: u64 (8 bytes, little endian)
///               transaction: option<u64 (8 bytes, little endian)>
///               deadline_ms: option<varint u64>   milliseconds left
///               trace: option<u128 (16 bytes, little endian)>
///               lineage: varint n (at most 32), then n × u64 (8 bytes, little endian)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireContext {
    /// The call chain.
    #[serde(with = "super::fixed::u64le")]
    pub chain: u64,
    /// The transaction, if any.
    #[serde(with = "super::fixed::opt_u64le")]
    pub transaction: Option<u64>,
    /// Milliseconds left until the deadline, if any.
    pub deadline_ms: Option<u64>,
    /// The trace, if any.
    #[serde(with = "super::fixed::opt_u128le")]
    pub trace: Option<u128>,
    /// The caller's activation, then its ancestors, innermost first; empty
    /// for a call made outside any call.
    #[serde(with = "super::fixed::lineage")]
    pub lineage: Vec<u64>,
}

/// The most activations a [`WireContext`] carries; a frame with more is
/// malformed.
pub const MAX_LINEAGE: usize = 32;

/// A reference inside a frame's arguments or value: one entry of the
/// frame's reference table. The encoded value holds, where the reference
/// is, its index in this table (a varint).
///
/// ```text
/// WireRef = varint 0, key: varint u32, fingerprint: u64 LE   the sender's export
///         | varint 1, key: varint u32                        the receiver's own export, coming home
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireRef {
    /// An export in the *sender's* table for this connection; the receiver
    /// counts it as one more reference it holds.
    Sender {
        /// The key in the sender's table.
        key: u32,
        /// The fingerprint of the interface the export offers.
        #[serde(with = "super::fixed::u64le")]
        fingerprint: u64,
    },
    /// An export in the *receiver's* table, sent back to it: it arrives as
    /// the receiver's original object.
    Receiver {
        /// The key in the receiver's table.
        key: u32,
    },
}

/// A call that wants a reply.
///
/// ```text
/// body = id: varint u64          chosen by the caller; the Return carries it
///        key: varint u32         the export, in the receiver's table
///        selector: u32 (4 bytes, little endian)
///        version: varint u32     the view's version the caller described; 0: none
///        context: WireContext
///        refs: sequence<WireRef> the references the arguments hold
///        args: the rest of the frame (the argument tuple, postcard)
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFrame {
    /// Chosen by the caller, unique among its calls in flight on this
    /// connection.
    pub id: u64,
    /// The export called, in the receiver's table for this connection.
    pub key: u32,
    /// The method.
    pub selector: u32,
    /// The version of the view's description the caller went by (0 if it
    /// had none): the callee announces a newer one with
    /// [`Revised`](super::Revised).
    pub version: u32,
    /// The call's context.
    pub context: WireContext,
    /// The references the arguments hold.
    pub refs: Vec<WireRef>,
    /// The encoded argument tuple.
    pub args: Bytes,
}

/// Where a call goes: the part [`CallFrame`] and [`OnewayFrame`] share. Borrows
/// the reference table when encoding, owns it when decoded.
#[derive(Serialize, Deserialize)]
struct Address<'a> {
    key: u32,
    #[serde(with = "super::fixed::u32le")]
    selector: u32,
    version: u32,
    context: Cow<'a, WireContext>,
    refs: Cow<'a, [WireRef]>,
}

#[derive(Serialize, Deserialize)]
struct CallHeader<'a> {
    id: u64,
    to: Address<'a>,
}

impl CallFrame {
    pub(super) fn encode(&self, tag: Tag, out: &mut BytesMut) -> Result<(), FrameError> {
        let to = Address {
            key: self.key,
            selector: self.selector,
            version: self.version,
            context: Cow::Borrowed(&self.context),
            refs: Cow::Borrowed(&self.refs),
        };
        put_then(tag, out, &CallHeader { id: self.id, to }, &self.args)
    }

    pub(super) fn decode(tag: Tag, body: Bytes) -> Result<Self, FrameError> {
        let (CallHeader { id, to }, args) = take_then(tag, &body)?;
        check_lineage(tag, &to.context)?;
        Ok(CallFrame {
            id,
            key: to.key,
            selector: to.selector,
            version: to.version,
            context: to.context.into_owned(),
            refs: to.refs.into_owned(),
            args,
        })
    }
}

/// "A lineage carries at most 32 activations" (PROTOCOL.md §5.3): a longer
/// one is a malformed frame.
pub(super) fn check_lineage(tag: Tag, context: &WireContext) -> Result<(), FrameError> {
    if context.lineage.len() > MAX_LINEAGE {
        return Err(FrameError::Malformed {
            tag,
            reason: format!("a lineage of more than {MAX_LINEAGE} activations"),
        });
    }
    Ok(())
}

/// A call that wants no reply: like [`CallFrame`] without an id.
///
/// ```text
/// body = key: varint u32
///        selector: u32 (4 bytes, little endian)
///        version: varint u32
///        context: WireContext
///        refs: sequence<WireRef>
///        args: the rest of the frame
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnewayFrame {
    /// The export called.
    pub key: u32,
    /// The method.
    pub selector: u32,
    /// The version of the view's description the caller went by (0 if it
    /// had none): the callee announces a newer one with
    /// [`Revised`](super::Revised).
    pub version: u32,
    /// The call's context.
    pub context: WireContext,
    /// The references the arguments hold.
    pub refs: Vec<WireRef>,
    /// The encoded argument tuple.
    pub args: Bytes,
}

impl OnewayFrame {
    pub(super) fn encode(&self, tag: Tag, out: &mut BytesMut) -> Result<(), FrameError> {
        let to = Address {
            key: self.key,
            selector: self.selector,
            version: self.version,
            context: Cow::Borrowed(&self.context),
            refs: Cow::Borrowed(&self.refs),
        };
        put_then(tag, out, &to, &self.args)
    }

    pub(super) fn decode(tag: Tag, body: Bytes) -> Result<Self, FrameError> {
        let (to, args): (Address<'_>, _) = take_then(tag, &body)?;
        check_lineage(tag, &to.context)?;
        Ok(OnewayFrame {
            key: to.key,
            selector: to.selector,
            version: to.version,
            context: to.context.into_owned(),
            refs: to.refs.into_owned(),
            args,
        })
    }
}

/// Asks the callee to stop the call `id`; its handler is dropped, and the
/// caller gets no [`Return`] for it.
///
/// ```text
/// body = id: varint u64
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The call to stop.
    pub id: u64,
}

/// The reply to the call `id`.
///
/// ```text
/// body = id: varint u64
///        outcome: varint 0 = ok, then refs: sequence<WireRef>,
///                            then the value: the rest of the frame
///               | varint 1 = error, then WireError (nothing may follow)
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Return {
    /// The call answered.
    pub id: u64,
    /// Its outcome.
    pub outcome: Outcome,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The references the result holds, and the encoded result.
    Ok(Vec<WireRef>, Bytes),
    /// The error.
    Err(WireError),
}

/// An error on the wire.
///
/// ```text
/// WireError = kind: u8                  see error_code
///             message: string
///             callee: option<bytes>     the callee's own error, postcard
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// What kind of error (see [`error_code`](super::error_code)).
    pub kind: u8,
    /// What happened.
    pub message: String,
    /// The callee's own error value, encoded, when the method returned
    /// `Err`.
    pub callee: Option<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
enum ReturnStatus<'a> {
    Ok(Cow<'a, [WireRef]>),
    Err(Cow<'a, WireError>),
}

#[derive(Serialize, Deserialize)]
struct ReturnHeader<'a> {
    id: u64,
    status: ReturnStatus<'a>,
}

impl Return {
    pub(super) fn encode(&self, tag: Tag, out: &mut BytesMut) -> Result<(), FrameError> {
        let id = self.id;
        match &self.outcome {
            Outcome::Ok(refs, value) => {
                let status = ReturnStatus::Ok(Cow::Borrowed(refs));
                put_then(tag, out, &ReturnHeader { id, status }, value)
            }
            Outcome::Err(error) => {
                let status = ReturnStatus::Err(Cow::Borrowed(error));
                put(tag, out, &ReturnHeader { id, status })
            }
        }
    }

    pub(super) fn decode(tag: Tag, body: Bytes) -> Result<Self, FrameError> {
        let (h, rest): (ReturnHeader<'_>, Bytes) = take_then(tag, &body)?;
        let outcome = match h.status {
            ReturnStatus::Ok(refs) => Outcome::Ok(refs.into_owned(), rest),
            ReturnStatus::Err(e) if rest.is_empty() => Outcome::Err(e.into_owned()),
            ReturnStatus::Err(_) => {
                return Err(FrameError::Malformed {
                    tag,
                    reason: format!("{} bytes after an error outcome", rest.len()),
                });
            }
        };
        Ok(Return { id: h.id, outcome })
    }
}
