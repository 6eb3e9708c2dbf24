//! Transactions: a call and every call it makes, on every object it
//! touches, take effect together or not at all.
//!
//! Objects keep their transactional state in [`TxCell`]s. A view's
//! [`TransactionLayer`] says how a method relates to transactions (the
//! options Orleans users know: create, join, create-or-join, supported,
//! not allowed, suppress). The transaction travels in the call
//! [`Context`](tether_semantics::Context), so nested calls (to other
//! objects, through their own views) join it.
//!
//! # What it guarantees
//!
//! * **Isolation.** A transaction that touches a cell (reads or writes)
//!   holds it until the transaction ends (strict two-phase locking); other
//!   transactions wait. Readers outside any transaction see the last
//!   committed value.
//! * **All or nothing.** The call that created the transaction ends it.
//!   When the call succeeds, a two-phase commit runs over every cell
//!   touched: all prepare, then all commit. When the call fails, panics
//!   or is dropped (cancelled), every tentative change is rolled back.
//! * **No silent hangs, nothing left locked.** A transaction that waits
//!   for a cell longer than the cell's lock timeout (5 s unless set) gets
//!   an error; when that error makes the call fail, the transaction aborts
//!   and releases what it holds.
//!
//! Across nodes, participants on other nodes take part through the wire
//! protocol (not built yet); the two-phase protocol is written against the
//! (crate-internal) `Participant` trait for that reason.
//!
//! # Position in a view
//!
//! Inside access control (refused callers never start transactions), and
//! usually outside mutual exclusion: the object's lock is then held only
//! while the method runs, and the transaction's cell locks provide
//! isolation until commit.

mod cell;
mod layer;
pub(crate) mod registry;
mod service;

pub use cell::TxCell;
pub use layer::{TransactionLayer, TxOption};
pub use service::{Transaction, TransactionFuture};

/// How many transactions are running in this process (for tests and
/// tools: zero when all have ended).
pub fn active_transactions() -> usize {
    registry::active()
}
