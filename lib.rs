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
//! # Where things are
//!
//! | you want to | use |
//! |---|---|
//! | make a trait callable | [`#[tether::interface]`](interface): a typed stub (`CounterClient`) and skeleton from the trait |
//! | serve an object | [`Node::expose`], then [`Exposed::with_view`] for each view |
//! | decide how each method is carried out | [`View`], with [`abstractions`] per method and [`filters`] (any tower layer) around them |
//! | hand out and find objects | [`Node::publish`] and [`Node::lookup`]; per listener, a [`Directory`] |
//! | call across nodes | [`transports`]: `tcp`, `ws`, `quic` and `memory`, all giving a [`Peer`](transports::Peer) |
//! | set who calls, deadlines, traces | [`Context`], in scope around the calls |
//! | tell failures apart | [`Error`] and its [`ErrorKind`]; the callee's own error in [`Error::callee`] |
//! | write your own abstraction, backing or carrier | [`ext`] |
//!
//! A remote call can always fail: the peer may be gone, slow or refuse.
//! Give calls that must not wait long a deadline
//! (`Context::new().with_deadline(…).scope(call)`); without one, a call to
//! a peer that stops answering fails when the connection's keepalive gives
//! up (about 30 s by default, see [`Config`](transports::Config)).

#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(no_inline)]
pub use tether_semantics::schema::Schema;
pub use tether_stubgen::{Schema, interface};

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
/// | a carrier (a remote target) | [`Invoke`](ext::Invoke), [`Delivery`](ext::Delivery), [`Served`](ext::Served); for promise pipelining [`Invoke::pipeline`](ext::Invoke::pipeline), [`start_in_order`](ext::start_in_order), [`broken_promise`](ext::broken_promise) |
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
    pub use tether_semantics::schema::{self, WireSchema};
    pub use tether_semantics::transaction::{Participant, Transaction, TransactionId};
    pub use tether_semantics::{
        Abstraction, AbstractionKind, ActivationId, Backing, ChainId, Delivery, Detail, Dispatched,
        FilterService, Filters, Interface, InterfaceDescriptor, Invoke, Method, MethodDescriptor,
        MethodPath, MethodView, Outgoing, Param, Scoped, Serve, Served, ServiceObject, Skeleton,
        Target, TraceId, ViewDescriptor, Watcher, boxed, broken_promise, check_fingerprint,
        promised_ref, selector_id, start_in_order,
    };
}

#[doc(hidden)]
pub use tether_semantics::__private;

// The macro's generated code names `::tether`; inside this crate too.
extern crate self as tether;

// The file sits with the transports because that is what it reports on;
// it is compiled here because it uses the interface macro and the filters.
#[path = "transports/introspect.rs"]
pub mod introspect;

/// The README's examples, compiled and run as doc-tests.
#[doc = include_str!("README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
