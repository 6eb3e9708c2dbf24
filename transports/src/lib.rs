//! The Tether wire protocol and its carriers.
//!
//! * [`frame`]: the frames two nodes exchange, with a sans-IO codec,
//!   specified byte by byte in `PROTOCOL.md` at the repository's root.
//! * [`session`]: the per-connection state machine (export, import and
//!   question tables), sans-IO: bytes and time in, frames and events out.
//! * [`Peer`]: the async driver of a session, the same for every carrier;
//!   remote references are ordinary [`Ref`](tether_semantics::Ref)s.
//! * Carriers: `memory`, and, each behind the feature of its name, `tcp`,
//!   `ws` (WebSocket) (both on by default) and `quic`.
//!
//! ```
//! use tether::Node;
//! use tether::transports::{Config, memory};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (a, b) = (Node::new(), Node::new());
//! let (to_b, to_a) = memory::pair(&a, &b, Config::new(), Config::new());
//! to_b.opened().await.unwrap();
//! assert_eq!(to_b.peer_node(), Some(b.id()));
//! // Nothing published on b under this name:
//! let missing = to_b.bootstrap().await.unwrap();
//! # let _ = missing;
//! to_b.close().await;
//! assert!(to_a.closed().await.reason.contains("goodbye"));
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connection;
pub mod frame;
pub mod memory;
#[cfg(feature = "quic")]
pub mod quic;
#[cfg(feature = "relay")]
pub mod relay;
pub mod session;
#[cfg(feature = "tcp")]
pub mod tcp;
#[cfg(feature = "ws")]
pub mod ws;

mod listener;

pub use connection::{Authenticator, Config, Peer, Tables};
pub use frame::{Frame, FrameError, Limits, Tag};
pub use listener::{Listener, PeerSet};
