//! Tether's invocation filters, as tower layers.
//!
//! A filter is a plain `tower::Layer` over the message service: it sees the
//! whole reified [`Message`](tether_semantics::Message) (target, selector,
//! arguments, context) and the reply. Any tower middleware is a filter too;
//! these are the ones Tether ships.
//!
//! | filter | what it does |
//! |---|---|
//! | [`logging`] | a `tracing` span per call: node, object, view, method, principal, transaction, outcome, latency |
//! | [`mutex`] | mutual exclusion per object, exclusive or readers/writer, re-entrant by causal nesting (callbacks of the holder, on any node), fair, bounded |
//! | [`access`] | which principals (by name or role) may call which methods; refusals have no effect and are logged |
//! | [`transaction`] | transactions over [`TxCell`](transaction::TxCell) state: create / join / … options, isolation, two-phase commit, rollback on error, panic or cancellation |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod access;
pub mod logging;
pub mod mutex;
pub mod transaction;

pub use access::AccessLayer;
pub use logging::LoggingLayer;
pub use mutex::MutexLayer;
pub use transaction::TransactionLayer;
