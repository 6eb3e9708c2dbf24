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
//! # Across nodes
//!
//! The transaction is a [`Transaction`](tether_semantics::Transaction)
//! branch in the call context. When a call carries it to another node,
//! that node's transport begins a subordinate branch there, and the
//! calling node enlists the connection as a participant of its own
//! branch. At the end, the root runs two-phase commit down that tree. A
//! node that cannot be reached, or does not answer in time, votes no;
//! a branch whose caller disappears, or that hears nothing for its
//! timeout, aborts (presumed abort), so no participant stays locked. See
//! `tether_transports` and PROTOCOL.md for the wire side.
//!
//! # Position in a view
//!
//! Inside access control (refused callers never start transactions), and
//! usually outside mutual exclusion: the object's lock is then held only
//! while the method runs, and the transaction's cell locks provide
//! isolation until commit.

mod cell;
mod layer;
mod service;

pub use cell::TxCell;
pub use layer::{TransactionLayer, TxOption};
pub use service::{TransactionFuture, TransactionService};

/// How many transaction branches in this process have not ended (for
/// tests and tools: zero when every transaction has committed or aborted
/// on every node in the process).
pub fn active_transactions() -> usize {
    tether_semantics::transaction::live_branches()
}
