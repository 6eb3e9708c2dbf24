//! Frames: what two Tether nodes send each other, and their codec.
//!
//! A frame is one message of the carrier (a WebSocket message, or one
//! length-delimited chunk of a TCP or QUIC stream). It starts with a 32-bit
//! little-endian tag naming what interprets the rest:
//!
//! ```text
//! +----------------+------------------------------------------+
//! | tag: u32 LE    | body (depends on the tag)                |
//! +----------------+------------------------------------------+
//!   4 bytes          frame length - 4 bytes
//! ```
//!
//! Core tags are small numbers; tags from `0x8000_0000` up are for
//! extensions (relay control and the like) and reach the application as
//! [`Frame::Extension`]. Bodies are postcard-encoded structures; [`CallFrame`],
//! [`OnewayFrame`] and a successful [`Return`] end with their arguments or
//! value as the *rest of the frame*, unprefixed, so a caller encodes
//! arguments once, straight into the frame, and a receiver reads them
//! without copying. `PROTOCOL.md` at the repository's root draws every
//! frame byte by byte.
//!
//! The codec is sans-IO: [`Frame::decode`] takes the bytes of one frame,
//! [`Frame::encode`] appends one frame to a buffer. Nothing here does I/O
//! or keeps state.
//!
//! ```
//! use bytes::BytesMut;
//! use tether::transports::frame::{Cancel, Frame, Limits};
//!
//! let mut buf = BytesMut::new();
//! Frame::Cancel(Cancel { id: 7 }).encode(&mut buf).unwrap();
//! assert_eq!(&buf[..], &[0x05, 0, 0, 0, 7]);
//! let back = Frame::decode(buf.freeze(), &Limits::default()).unwrap();
//! assert_eq!(back, Frame::Cancel(Cancel { id: 7 }));
//! ```

mod call;
mod codes;
mod describe;
mod fixed;
mod hello;
mod ping;
mod pipeline;
mod reference;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use call::{
    CallFrame, Cancel, MAX_LINEAGE, OnewayFrame, Outcome, Return, WireContext, WireError, WireRef,
};
pub use codes::{abstraction_code, abstraction_from_code, error_code, error_from_code};
pub use describe::{Describe, Description, Revised, WireMethod, WireTypes, WireView};
pub use hello::{Credentials, Goodbye, Hello, VERSION};
pub use ping::{Ping, Pong};
pub use pipeline::{Finish, PipelineFrame, PipelineOnewayFrame, PipelineTarget};
pub use reference::{Release, Released};

/// A frame's tag: what interprets the rest of the frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    /// [`Hello`].
    pub const HELLO: Tag = Tag(1);
    /// [`Goodbye`].
    pub const GOODBYE: Tag = Tag(2);
    /// [`CallFrame`].
    pub const CALL: Tag = Tag(3);
    /// [`OnewayFrame`].
    pub const ONEWAY: Tag = Tag(4);
    /// [`Cancel`].
    pub const CANCEL: Tag = Tag(5);
    /// [`Return`].
    pub const RETURN: Tag = Tag(6);
    /// [`Release`].
    pub const RELEASE: Tag = Tag(7);
    /// [`Describe`].
    pub const DESCRIBE: Tag = Tag(8);
    /// [`Description`].
    pub const DESCRIPTION: Tag = Tag(9);
    /// [`Revised`].
    pub const REVISED: Tag = Tag(10);
    /// [`Ping`].
    pub const PING: Tag = Tag(11);
    /// [`Pong`].
    pub const PONG: Tag = Tag(12);
    /// [`PipelineFrame`].
    pub const PIPELINE: Tag = Tag(13);
    /// [`PipelineOnewayFrame`].
    pub const PIPELINE_ONEWAY: Tag = Tag(14);
    /// [`Finish`].
    pub const FINISH: Tag = Tag(15);
    /// The first tag of the range reserved for extensions.
    pub const FIRST_EXTENSION: Tag = Tag(0x8000_0000);

    /// Whether the tag belongs to the extension range.
    pub fn is_extension(self) -> bool {
        self >= Self::FIRST_EXTENSION
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:#010x})", self.0)
    }
}

/// One frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// Opens a connection; each side sends one first.
    Hello(Hello),
    /// Closes a connection.
    Goodbye(Goodbye),
    /// A call that wants a reply.
    Call(CallFrame),
    /// A call that wants none.
    Oneway(OnewayFrame),
    /// Asks the callee to stop a call.
    Cancel(Cancel),
    /// The reply to a call.
    Return(Return),
    /// Gives back references to an export.
    Release(Release),
    /// Asks what a view offers.
    Describe(Describe),
    /// What a view offers.
    Description(Description),
    /// A view the receiver described has been replaced.
    Revised(Revised),
    /// Asks for a sign of life.
    Ping(Ping),
    /// Answers a Ping.
    Pong(Pong),
    /// A call to an export or a promised answer, perhaps kept for pipelining.
    Pipeline(PipelineFrame),
    /// A oneway call to an export or a promised answer.
    PipelineOneway(PipelineOnewayFrame),
    /// A promised answer is no longer needed.
    Finish(Finish),
    /// A frame of an extension (tag `0x8000_0000` or above), uninterpreted.
    Extension {
        /// Its tag.
        tag: Tag,
        /// Everything after the tag.
        body: Bytes,
    },
}

/// How large a frame may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame, tag included, in bytes. 16 MiB unless set.
    pub max_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 16 * 1024 * 1024,
        }
    }
}

/// Why bytes are not a frame, or a frame could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer than the four bytes of a tag.
    #[error("a frame of {len} bytes is too short to hold a tag")]
    TooShort {
        /// The frame's length.
        len: usize,
    },
    /// Larger than the limit.
    #[error("a frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A tag of the core range that this version does not know.
    #[error("unknown frame tag {0:?}")]
    UnknownTag(Tag),
    /// The body does not decode as the tag says.
    #[error("malformed {tag:?} frame: {reason}")]
    Malformed {
        /// The frame's tag.
        tag: Tag,
        /// What is wrong.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode a {tag:?} frame: {reason}")]
    Encode {
        /// The frame's tag.
        tag: Tag,
        /// What went wrong.
        reason: String,
    },
}

impl Frame {
    /// The frame's tag.
    pub fn tag(&self) -> Tag {
        match self {
            Frame::Hello(_) => Tag::HELLO,
            Frame::Goodbye(_) => Tag::GOODBYE,
            Frame::Call(_) => Tag::CALL,
            Frame::Oneway(_) => Tag::ONEWAY,
            Frame::Cancel(_) => Tag::CANCEL,
            Frame::Return(_) => Tag::RETURN,
            Frame::Release(_) => Tag::RELEASE,
            Frame::Describe(_) => Tag::DESCRIBE,
            Frame::Description(_) => Tag::DESCRIPTION,
            Frame::Revised(_) => Tag::REVISED,
            Frame::Ping(_) => Tag::PING,
            Frame::Pong(_) => Tag::PONG,
            Frame::Pipeline(_) => Tag::PIPELINE,
            Frame::PipelineOneway(_) => Tag::PIPELINE_ONEWAY,
            Frame::Finish(_) => Tag::FINISH,
            Frame::Extension { tag, .. } => *tag,
        }
    }

    /// Appends this frame, tag first, to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), FrameError> {
        let tag = self.tag();
        out.put_u32_le(tag.0);
        match self {
            Frame::Hello(f) => put(tag, out, f),
            Frame::Goodbye(f) => put(tag, out, f),
            Frame::Call(f) => f.encode(tag, out),
            Frame::Oneway(f) => f.encode(tag, out),
            Frame::Cancel(f) => put(tag, out, f),
            Frame::Return(f) => f.encode(tag, out),
            Frame::Release(f) => put(tag, out, f),
            Frame::Describe(f) => put(tag, out, f),
            Frame::Description(f) => put(tag, out, f),
            Frame::Revised(f) => put(tag, out, f),
            Frame::Ping(f) => put(tag, out, f),
            Frame::Pong(f) => put(tag, out, f),
            Frame::Pipeline(f) => f.encode(tag, out),
            Frame::PipelineOneway(f) => f.encode(tag, out),
            Frame::Finish(f) => put(tag, out, f),
            Frame::Extension { body, .. } => {
                if !tag.is_extension() {
                    return Err(FrameError::Encode {
                        tag,
                        reason: "an extension frame needs a tag of the extension range".into(),
                    });
                }
                out.extend_from_slice(body);
                Ok(())
            }
        }
    }

    /// The frame, encoded, in a buffer of its own that fits it exactly
    /// (what [`encode`](Frame::encode) appends).
    ///
    /// A frame of up to 16 KiB is encoded in a buffer this thread keeps
    /// and copied out once, so that it costs one allocation; a larger one
    /// is encoded in place, in a buffer of the size its payload says.
    pub fn to_bytes(&self) -> Result<Bytes, FrameError> {
        /// Larger frames are not copied; a buffer kept grows to no more.
        const KEPT: usize = 16 * 1024;
        /// Room for everything but the payload, in most frames.
        const HEADER: usize = 64;
        thread_local! {
            static SCRATCH: std::cell::Cell<Option<BytesMut>> = const { std::cell::Cell::new(None) };
        }
        let hint = HEADER + self.payload_len();
        if hint > KEPT {
            let mut out = BytesMut::with_capacity(hint);
            self.encode(&mut out)?;
            return Ok(out.freeze());
        }
        let mut out = SCRATCH
            .try_with(std::cell::Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(|| BytesMut::with_capacity(KEPT));
        out.clear();
        let encoded = self.encode(&mut out).map(|()| Bytes::copy_from_slice(&out));
        if out.capacity() <= KEPT {
            let _ = SCRATCH.try_with(|scratch| scratch.set(Some(out)));
        }
        encoded
    }

    /// The length of what the frame carries as it is (a call's arguments,
    /// a result): most of its encoding, known before it is encoded.
    fn payload_len(&self) -> usize {
        match self {
            Frame::Call(f) => f.args.len(),
            Frame::Oneway(f) => f.args.len(),
            Frame::Pipeline(f) => f.args.len(),
            Frame::PipelineOneway(f) => f.args.len(),
            Frame::Return(Return {
                outcome: Outcome::Ok(_, value),
                ..
            }) => value.len(),
            Frame::Extension { body, .. } => body.len(),
            _ => 0,
        }
    }

    /// Reads one whole frame. Never panics, whatever the bytes.
    pub fn decode(frame: Bytes, limits: &Limits) -> Result<Frame, FrameError> {
        if frame.len() > limits.max_frame {
            return Err(FrameError::TooLarge {
                len: frame.len(),
                max: limits.max_frame,
            });
        }
        let Some(tag) = frame
            .first_chunk::<4>()
            .map(|t| Tag(u32::from_le_bytes(*t)))
        else {
            return Err(FrameError::TooShort { len: frame.len() });
        };
        let body = frame.slice(4..);
        Ok(match tag {
            Tag::HELLO => Frame::Hello(whole(tag, &body)?),
            Tag::GOODBYE => Frame::Goodbye(whole(tag, &body)?),
            Tag::CALL => Frame::Call(CallFrame::decode(tag, body)?),
            Tag::ONEWAY => Frame::Oneway(OnewayFrame::decode(tag, body)?),
            Tag::CANCEL => Frame::Cancel(whole(tag, &body)?),
            Tag::RETURN => Frame::Return(Return::decode(tag, body)?),
            Tag::RELEASE => Frame::Release(whole(tag, &body)?),
            Tag::DESCRIBE => Frame::Describe(whole(tag, &body)?),
            Tag::DESCRIPTION => Frame::Description(whole(tag, &body)?),
            Tag::REVISED => Frame::Revised(whole(tag, &body)?),
            Tag::PING => Frame::Ping(whole(tag, &body)?),
            Tag::PONG => Frame::Pong(whole(tag, &body)?),
            Tag::PIPELINE => Frame::Pipeline(PipelineFrame::decode(tag, body)?),
            Tag::PIPELINE_ONEWAY => Frame::PipelineOneway(PipelineOnewayFrame::decode(tag, body)?),
            Tag::FINISH => Frame::Finish(whole(tag, &body)?),
            tag if tag.is_extension() => Frame::Extension { tag, body },
            tag => return Err(FrameError::UnknownTag(tag)),
        })
    }
}

/// Appends `value`, postcard-encoded.
fn put<T: Serialize>(tag: Tag, out: &mut BytesMut, value: &T) -> Result<(), FrameError> {
    let failed = |e: postcard::Error| FrameError::Encode {
        tag,
        reason: e.to_string(),
    };
    // Most headers fit on the stack, where postcard writes a byte with a
    // bounds check and no more; a larger one (a long lineage, many
    // references) goes straight onto `out`.
    let mut stack = [0_u8; 256];
    match postcard::to_slice(value, &mut stack) {
        Ok(header) => {
            out.extend_from_slice(header);
            Ok(())
        }
        Err(postcard::Error::SerializeBufferFull) => {
            postcard::serialize_with_flavor(value, Appending(out)).map_err(failed)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Where postcard writes a frame: straight onto its end.
struct Appending<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for Appending<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.put_u8(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Reads a postcard value from the front of `body`; returns the rest.
fn take<T: DeserializeOwned>(tag: Tag, body: &[u8]) -> Result<(T, &[u8]), FrameError> {
    postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed {
        tag,
        reason: e.to_string(),
    })
}

/// Appends `header`, postcard-encoded, then `rest` as it is: the layout of
/// frames that end in rest-of-frame data.
fn put_then<H: Serialize>(
    tag: Tag,
    out: &mut BytesMut,
    header: &H,
    rest: &[u8],
) -> Result<(), FrameError> {
    put(tag, out, header)?;
    out.extend_from_slice(rest);
    Ok(())
}

/// Reads a postcard header from the front of `body`, and the rest of the
/// frame after it without copying.
fn take_then<H: DeserializeOwned>(tag: Tag, body: &Bytes) -> Result<(H, Bytes), FrameError> {
    let (header, rest) = take(tag, body)?;
    Ok((header, body.slice_ref(rest)))
}

/// Reads a postcard value that must fill `body` exactly.
fn whole<T: DeserializeOwned>(tag: Tag, body: &[u8]) -> Result<T, FrameError> {
    match take(tag, body)? {
        (value, []) => Ok(value),
        (_, rest) => Err(FrameError::Malformed {
            tag,
            reason: format!("{} bytes left over after the body", rest.len()),
        }),
    }
}
