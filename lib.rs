//! # Tether: composable message semantics
//!
//! Tether exposes Rust objects to callers through **views** that the
//! object's owner defines. A view composes one **invocation abstraction**
//! per method (sync, oneway, future; multicast groups) with a stack of
//! **filters**, written as ordinary `tower` layers, around the reified
//! message (target, selector, arguments, context). One object may carry
//! several views at once; views are per instance and per method, and can
//! be replaced at run time.
//!
//! This crate is the one dependency users need: it re-exports the core
//! ([`tether_semantics`]), the abstractions, the filters and the
//! [`interface`] macro.
//!
//! ```
//! use tether::abstractions::Oneway;
//! use tether::filters::LoggingLayer;
//! use tether::{Client, Node, View};
//!
//! #[tether::interface]
//! pub trait Counter {
//!     /// The current count.
//!     async fn get(&self) -> u64;
//!     /// Adds `n`, returning the new count.
//!     async fn add(&self, n: u64) -> u64;
//!     /// Records a note; nothing to return, so it may be oneway.
//!     async fn note(&self, text: String);
//! }
//!
//! #[derive(Default)]
//! struct Count(std::sync::atomic::AtomicU64);
//!
//! impl Counter for Count {
//!     async fn get(&self) -> u64 {
//!         self.0.load(std::sync::atomic::Ordering::SeqCst)
//!     }
//!     async fn add(&self, n: u64) -> u64 {
//!         self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n
//!     }
//!     async fn note(&self, text: String) {
//!         println!("note: {text}");
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::new();
//! let counter = node
//!     .expose(Count::default())
//!     .with_view("owner", CounterInterface::view()
//!         .method(CounterInterface::NOTE, Oneway)
//!         .layer(LoggingLayer::new()))?
//!     .with_view("public", CounterInterface::view().only([CounterInterface::GET]))?;
//! node.publish("counter", counter.view("public")?);
//!
//! let owner: CounterClient = counter.client("owner")?;
//! assert_eq!(owner.add(5).await?, 5);
//! owner.note("added five".into()).await?; // returns at once: oneway
//!
//! let public: CounterClient = node.lookup("counter")?;
//! assert_eq!(public.get().await?, 5);
//! assert!(public.add(1).await.unwrap_err().is_unknown_method());
//! # Ok(()) }
//! ```
//!
//! # The `interface` macro
//!
//! `#[tether::interface]` on a trait of `async fn(&self, ...)` methods
//! generates, for `trait Account`:
//!
//! * `AccountInterface`, a marker type with the interface descriptor, one
//!   selector constant per method (`AccountInterface::DEPOSIT`), a
//!   `view()` constructor, and the skeleton that serves any `T: Account`;
//! * `AccountClient`, a typed stub whose methods return a [`Call`].
//!
//! Selectors are the FNV-1a hash of the method name: adding a method
//! renumbers no other; two colliding names are a compile error. Arguments
//! and results are any `serde` types, by value; a method returning
//! `Result<T, E>` makes the stub return `Result<T, Error<E>>` with the
//! callee's `E` in [`Error::callee`]. Methods returning `()` may be oneway.
//!
//! The trait's `async fn`s are rewritten to return `Send` futures (so
//! objects can serve calls on a multi-threaded runtime); implement them
//! with `async fn` as usual.
//!
//! A method marked `#[tether(read)]` only reads the object: a
//! readers/writer lock built with `MutexLayer::readers_writer_of` lets it
//! run beside other readers.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use tether_semantics::*;
pub use tether_stubgen::interface;

/// Invocation abstractions: how a call is sent and how the caller waits.
pub mod abstractions {
    pub use tether_abstractions::*;
}

/// Invocation filters, as tower layers.
pub mod filters {
    pub use tether_filters::*;
}

/// The Tether wire protocol and its carriers: memory, and TCP, WebSocket and QUIC behind the
/// features `tcp`, `ws` (both on by default) and `quic`; see PROTOCOL.md.
pub mod transports {
    pub use tether_transports::*;
}

/// The README's examples, compiled and run as doc-tests.
#[doc = include_str!("README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
