//! The core of Tether: reified messages, views, references and the node.
//!
//! A method call on a typed stub becomes a [`Message`] (target, selector,
//! arguments, [`Context`]). The [`Ref`] it is made through points at one
//! [`View`] of an exposed object; the view, chosen by the object's owner,
//! decides the call's semantics: an [`Abstraction`] per method (how the
//! caller waits) and a stack of filters (`tower` layers around the
//! message). The [`Node`] holds exposed objects and publishes references
//! under names.
//!
//! Most users depend on the `tether` crate, which re-exports this one with
//! the abstractions, the filters and the interface macro.
//!
//! # A call through a view, by hand
//!
//! The interface macro generates what is written out here: an interface
//! marker with its descriptor, and a skeleton that dispatches messages.
//!
//! ```
//! use tether::*;
//! use tether::ext::*;
//!
//! struct Adder;
//!
//! struct AdderInterface;
//! const ADD: Selector = Selector::new("add");
//! impl Interface for AdderInterface {
//!     const DESCRIPTOR: &'static InterfaceDescriptor = &InterfaceDescriptor::new(
//!         "Adder",
//!         &[MethodDescriptor::new(ADD, &[], "u64", None)],
//!         0xadd,
//!     );
//! }
//! impl Serve<Adder> for AdderInterface {
//!     fn dispatch(message: Message) -> BoxFuture<'static, Result<Value, Error>> {
//!         let sum = message.args().args::<(u64, u64)>().map(|(a, b)| a + b);
//!         Box::pin(async move {
//!             sum.map(Value::new)
//!                 .ok_or_else(|| Error::new(ErrorKind::BadArguments, "add takes (u64, u64)"))
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let node = Node::new();
//! let exposed = node.expose(Adder).with_view("calc", View::<AdderInterface>::new()).unwrap();
//! let reference = exposed.view("calc").unwrap();
//! assert_eq!(reference, exposed.view("calc").unwrap(), "same view, equal references");
//!
//! let reply = reference.call(ADD, Value::new((2_u64, 3_u64)), Context::new()).await.unwrap();
//! assert_eq!(reply.downcast_ref::<u64>(), Some(&5));
//!
//! let wrong = reference.call(ADD, Value::new("two and three"), Context::new()).await;
//! assert!(wrong.unwrap_err().is_bad_arguments());
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod abstraction;
mod call;
mod context;
mod error;
mod ids;
mod interface;
mod message;
mod node;
mod promise;
mod reference;
pub mod schema;
mod selector;
pub mod transaction;
mod travel;
pub(crate) mod value;
mod view;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use abstraction::{Abstraction, AbstractionKind, Dispatched, Outgoing};
pub use call::Call;
pub use context::{Context, Principal, Scoped};
pub use error::{Detail, Error, ErrorKind};
pub use ids::{ActivationId, ChainId, NodeId, ObjectId, TraceId};
pub use interface::{Interface, InterfaceDescriptor, Method, MethodDescriptor, MethodPath, Param};
pub use message::{Message, MethodView, Target, ViewDescriptor, Watcher};
pub use node::{Directory, Exposed, Node, Object, Serve, ServiceObject, Skeleton};
pub use promise::{broken_promise, promised_ref, start_in_order};
pub use reference::{Client, Delivery, Invoke, Ref, Served, check_fingerprint};
pub use selector::{Selector, selector_id};
pub use transaction::{Transaction, TransactionId};
pub use value::Value;
pub use view::{Backing, FilterService, Filters, View, ViewError, boxed};

/// A boxed, sendable future: what the erased parts of a call return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The error type of arbitrary tower middleware.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
