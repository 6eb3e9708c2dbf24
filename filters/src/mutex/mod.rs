//! Mutual exclusion: one object's calls take turns.
//!
//! [`MutexLayer::exclusive`] lets one call at a time into the object;
//! [`MutexLayer::readers_writer`] lets the methods it lists as readers run
//! together, and every other method alone; [`MutexLayer::readers_writer_of`]
//! takes the readers from the trait, where methods are marked
//! `#[tether(read)]`.
//!
//! # What it guarantees
//!
//! * **The lock belongs to the object.** Every view of one object that uses
//!   the filter shares one lock (kept in the object's
//!   [`Target::state`](tether_semantics::Target::state)), whatever the
//!   views' other filters.
//! * **Re-entrant by causal nesting, and only by it.** A call is let in
//!   past a holder when it was made *while that holder runs*: a callback,
//!   directly or through other objects and other nodes, of the call that
//!   holds the lock. Every call carries its ancestry, the
//!   [activations](tether_semantics::Context::is_nested_in) it runs
//!   inside, so the lock sees this wherever the call comes from (on the
//!   wire the 32 innermost travel; see PROTOCOL.md). Such a call also
//!   skips the queue, since the waiters may be waiting for the holder it
//!   serves; without this a callback would deadlock. Nothing else
//!   re-enters: two calls started side by side from one scope, or made at
//!   once by one callee, are two contenders and take turns, even when they
//!   are both nested in the holder.
//! * **Fair.** Waiters enter in arrival order; readers that arrive behind a
//!   waiting writer wait for it, including readers from the same scope as
//!   the reader that holds the lock. Only nested calls go ahead.
//! * **Bounded.** A caller that waits longer than
//!   [`max_wait`](MutexLayer::max_wait) (30 s unless set) gets an
//!   [`Overloaded`](tether_semantics::ErrorKind::Overloaded) error that names
//!   the object and the wait, never a silent hang. A reader that holds the
//!   lock and asks to write while other readers hold it waits like anybody
//!   else; two such readers end that way.
//!
//! # Position in a view
//!
//! The lock is held from the moment this filter admits a call until the
//! reply has passed back through it. Filters inside it run under the lock;
//! filters outside it do not. An access filter belongs outside (refused
//! callers never queue); a logging filter outside measures the wait too.

mod future;
mod layer;
mod lock;
mod service;

pub use future::MutexFuture;
pub use layer::MutexLayer;
pub use service::MutexService;
