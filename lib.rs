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

pub use tether_stubgen::interface;

// What an application names: about twenty items. The rest of the core, the
// parts for writing abstractions, carriers and skeletons by hand, is in
// `ext`, so that this page stays a map of the everyday API.
pub use tether_semantics::{
    BoxError, BoxFuture, Call, Client, Context, Directory, Error, ErrorKind, Exposed, Message,
    Node, NodeId, Object, ObjectId, Principal, Ref, Selector, Value, View, ViewError,
};

#[doc(inline)]
pub use tether_abstractions as abstractions;

#[doc(inline)]
pub use tether_filters as filters;

#[doc(inline)]
pub use tether_transports as transports;

/// Extension points: what a new invocation abstraction, filter stack,
/// backing, carrier or hand-written skeleton is built from.
///
/// An application does not need this module: [`interface`] generates the
/// interface and skeleton parts, and the shipped
/// [`abstractions`] and [`filters`]
/// cover the usual semantics. Reach for it to write your own.
///
/// | to write | start from |
/// |---|---|
/// | an invocation abstraction | [`Abstraction`](ext::Abstraction), [`Outgoing`](ext::Outgoing), [`Dispatched`](ext::Dispatched) |
/// | a skeleton by hand, or a dynamic interface | [`Interface`](ext::Interface), [`InterfaceDescriptor`](ext::InterfaceDescriptor), [`Serve`](ext::Serve), [`Skeleton`](ext::Skeleton) |
/// | something other than a Rust object behind a view | [`Backing`](ext::Backing), [`ServiceObject`](ext::ServiceObject) |
/// | a carrier (a remote target) | [`Invoke`](ext::Invoke), [`Delivery`](ext::Delivery), [`Served`](ext::Served) |
/// | a transactional resource | [`Participant`](ext::Participant), [`Transaction`](ext::Transaction) |
/// | code generic over a view's filters | [`Filters`](ext::Filters), [`FilterService`](ext::FilterService) |
///
/// ```
/// use tether::ext::{AbstractionKind, ViewDescriptor};
/// use tether::Node;
///
/// #[tether::interface]
/// pub trait Echo {
///     async fn echo(&self, text: String) -> String;
/// }
/// struct Parrot;
/// impl Echo for Parrot {
///     async fn echo(&self, text: String) -> String { text }
/// }
///
/// let node = Node::new();
/// let exposed = node.expose(Parrot).with_view("echo", EchoInterface::view()).unwrap();
/// let described: ViewDescriptor = exposed.view("echo").unwrap().describe().unwrap();
/// assert_eq!(described.view(), "echo");
/// assert_eq!(described.kind_of("echo"), Some(AbstractionKind::Sync));
/// ```
pub mod ext {
    pub use tether_semantics::transaction::{Participant, Transaction, TransactionId};
    pub use tether_semantics::{
        Abstraction, AbstractionKind, ActivationId, Backing, ChainId, Delivery, Detail, Dispatched,
        FilterService, Filters, Interface, InterfaceDescriptor, Invoke, Method, MethodDescriptor,
        MethodPath, MethodView, Outgoing, Param, Scoped, Serve, Served, ServiceObject, Skeleton,
        Target, TraceId, ViewDescriptor, Watcher, boxed, check_fingerprint, selector_id,
    };
}

#[doc(hidden)]
pub use tether_semantics::__private;

/// The README's examples, compiled and run as doc-tests.
#[doc = include_str!("README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
