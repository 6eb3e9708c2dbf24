//! Logs every call with `tracing`.
//!
//! Each call gets a span named `tether.call` with the fields `node`,
//! `object`, `view`, `method`, `chain`, and `principal` and `tx` when the
//! context has them; when the call completes, an event inside that span
//! records `outcome` (`ok`, or the error) and `latency_us`. Failed calls
//! are logged at `WARN`, others at the layer's level (`INFO` unless set).
//!
//! When no subscriber listens at all, the filter costs two branches per
//! call: no span, no clock read, no formatting, and no allocation (its
//! response future is boxed, and the inner future passes through as it is;
//! see [`tether_semantics::boxed`]). When a subscriber listens at `WARN`
//! but not at the layer's level, only failed calls are logged (with node,
//! object and method).
//!
//! # Position in a view
//!
//! Outermost (added first), it logs every call, including those that other
//! filters refuse, and its latency includes the time spent waiting in them
//! (for a lock, say). Innermost (added last), it logs only the calls that
//! reach the object, and their time in the object alone.

mod future;
mod layer;
mod service;

pub use future::LoggingFuture;
pub use layer::LoggingLayer;
pub use service::LoggingService;
