//! Promise pipelining: calls to a reference that an earlier call's answer
//! is to hold, sent before the answer arrives (PROTOCOL.md §5.12–5.14, §6.7).

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::call::check_lineage;
use super::{FrameError, Tag, WireContext, WireRef, put_then, take_then};

/// What a pipelined call is addressed to.
///
/// ```text
/// PipelineTarget = varint 0, key: varint u32          an export, as a Call names it
///                | varint 1, question: varint u64,    the answer to the sender's call `question`:
///                            index: varint u32,       the reference at `index` of its reference table,
///                            fingerprint: u64 LE      which must offer this interface
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PipelineTarget {
    /// An export in the receiver's table, as a [`CallFrame`](super::CallFrame) names it.
    Export {
        /// The key in the receiver's table.
        key: u32,
    },
    /// A reference the answer to one of the sender's earlier calls holds
    /// (or will hold): a promised answer.
    Answer {
        /// The id of the sender's call, sent with `keep` set.
        question: u64,
        /// The reference's index in the answer's reference table.
        index: u32,
        /// The fingerprint of the interface the sender expects there.
        #[serde(with = "super::fixed::u64le")]
        fingerprint: u64,
    },
}

/// A call that wants a reply, to an export or to a promised answer.
///
/// ```text
/// body = id: varint u64
///        keep: u8                 1: hold this call's answer for pipelining, until Finish
///        target: PipelineTarget
///        selector: u32 (4 bytes, little endian)
///        version: varint u32
///        context: WireContext
///        refs: sequence<WireRef>
///        args: the rest of the frame
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineFrame {
    /// Chosen by the caller, from the same ids as its Calls.
    pub id: u64,
    /// Whether the callee holds the answer's references for further
    /// pipelined calls, until the caller sends [`Finish`].
    pub keep: bool,
    /// What the call is addressed to.
    pub target: PipelineTarget,
    /// The method.
    pub selector: u32,
    /// The version of the view's description the caller went by; 0 if
    /// none (always 0 for a promised answer, whose view is not known yet).
    pub version: u32,
    /// The call's context.
    pub context: WireContext,
    /// The references the arguments hold.
    pub refs: Vec<WireRef>,
    /// The encoded argument tuple.
    pub args: Bytes,
}

/// A call that wants no reply, to an export or to a promised answer.
///
/// ```text
/// body = target: PipelineTarget
///        selector: u32 (4 bytes, little endian)
///        version: varint u32
///        context: WireContext
///        refs: sequence<WireRef>
///        args: the rest of the frame
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineOnewayFrame {
    /// What the call is addressed to.
    pub target: PipelineTarget,
    /// The method.
    pub selector: u32,
    /// The version of the view's description the caller went by (0: none).
    pub version: u32,
    /// The call's context.
    pub context: WireContext,
    /// The references the arguments hold.
    pub refs: Vec<WireRef>,
    /// The encoded argument tuple.
    pub args: Bytes,
}

/// The sender will address no more pipelined calls to the answer of its
/// call `question`: the receiver may forget it (and, if the call still
/// runs and no pipelined call waits for it, stop it).
///
/// ```text
/// body = question: varint u64
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finish {
    /// The call whose answer is no longer needed.
    pub question: u64,
}

#[derive(Serialize, Deserialize)]
struct To<'a> {
    target: PipelineTarget,
    #[serde(with = "super::fixed::u32le")]
    selector: u32,
    version: u32,
    context: Cow<'a, WireContext>,
    refs: Cow<'a, [WireRef]>,
}

impl<'a> To<'a> {
    /// The header of a frame to encode, borrowing its context and table.
    fn of(
        target: PipelineTarget,
        selector: u32,
        version: u32,
        context: &'a WireContext,
        refs: &'a [WireRef],
    ) -> Self {
        To {
            target,
            selector,
            version,
            context: Cow::Borrowed(context),
            refs: Cow::Borrowed(refs),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PipelineHeader<'a> {
    id: u64,
    keep: bool,
    to: To<'a>,
}

impl PipelineFrame {
    pub(super) fn encode(&self, tag: Tag, out: &mut BytesMut) -> Result<(), FrameError> {
        let to = To::of(
            self.target,
            self.selector,
            self.version,
            &self.context,
            &self.refs,
        );
        let header = PipelineHeader {
            id: self.id,
            keep: self.keep,
            to,
        };
        put_then(tag, out, &header, &self.args)
    }

    pub(super) fn decode(tag: Tag, body: Bytes) -> Result<Self, FrameError> {
        let (PipelineHeader { id, keep, to }, args) = take_then(tag, &body)?;
        check_lineage(tag, &to.context)?;
        Ok(PipelineFrame {
            id,
            keep,
            target: to.target,
            selector: to.selector,
            version: to.version,
            context: to.context.into_owned(),
            refs: to.refs.into_owned(),
            args,
        })
    }
}

impl PipelineOnewayFrame {
    pub(super) fn encode(&self, tag: Tag, out: &mut BytesMut) -> Result<(), FrameError> {
        let to = To::of(
            self.target,
            self.selector,
            self.version,
            &self.context,
            &self.refs,
        );
        put_then(tag, out, &to, &self.args)
    }

    pub(super) fn decode(tag: Tag, body: Bytes) -> Result<Self, FrameError> {
        let (to, args): (To<'_>, _) = take_then(tag, &body)?;
        check_lineage(tag, &to.context)?;
        Ok(PipelineOnewayFrame {
            target: to.target,
            selector: to.selector,
            version: to.version,
            context: to.context.into_owned(),
            refs: to.refs.into_owned(),
            args,
        })
    }
}
