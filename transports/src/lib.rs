//! The Tether wire protocol.
//!
//! So far: the [`frame`]s two Tether nodes exchange, with a sans-IO codec
//! (no tokio, no sockets: bytes in, frames out, and back), specified byte by
//! byte in `PROTOCOL.md` at the repository's root. The session (tables of
//! exports, imports and questions) and the carriers (in-memory, TCP,
//! WebSocket, QUIC) build on it.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod frame;

pub use frame::{Frame, FrameError, Limits, Tag};
