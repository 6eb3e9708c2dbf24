//! Access control: which principals may call which methods of a view.
//!
//! A caller's principal comes from the call's
//! [`Context`](tether_semantics::Context): set by the node for callers on
//! other nodes (from the credentials they presented), or by in-process code
//! with [`Context::scope`](tether_semantics::Context::scope). No principal
//! means anonymous.
//!
//! An [`AccessLayer`] starts by refusing everything; each rule allows some
//! callers (anyone, any authenticated principal, a role, or a named
//! principal) some methods (or all). A refused call:
//!
//! * fails with [`AccessDenied`](tether_semantics::ErrorKind::AccessDenied),
//!   naming the principal, the method and the view;
//! * never reaches the filters inside this one, nor the object: no side
//!   effect;
//! * is logged at `WARN`.
//!
//! # Position in a view
//!
//! Put it outermost, or at least outside anything a refused caller should
//! not touch: outside a mutual-exclusion filter, refused callers never
//! queue for the lock; outside a transaction filter, they never join a
//! transaction.

mod layer;
mod service;

pub use layer::{AccessLayer, Who};
pub use service::AccessService;
