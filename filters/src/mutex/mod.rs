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
//! * **Re-entrant along one call chain.** A call that holds the lock and
//!   makes a nested call (directly or through other objects) that comes
//!   back into the same object is let in at once: the nested call carries
//!   the holder's [chain id](tether_semantics::Context::chain). Unrelated
//!   callers still wait. Without this, a callback would deadlock.
//! * **Fair.** Waiters enter in arrival order; readers that arrive behind a
//!   waiting writer wait for it.
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

pub use future::ResponseFuture;
pub use layer::MutexLayer;
pub use service::Mutex;
