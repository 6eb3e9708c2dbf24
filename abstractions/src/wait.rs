//! The three ways a caller waits: sync, oneway, future.

use tether_semantics::{Abstraction, AbstractionKind, Dispatched, Outgoing, Value};

/// The caller waits for the reply. The call runs in the caller's task when
/// the caller awaits it; dropping the call cancels it.
///
/// This is what a view uses for a method it gives no abstraction.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCall;

impl Abstraction for SyncCall {
    fn kind(&self) -> AbstractionKind {
        AbstractionKind::Sync
    }

    fn dispatch(&self, outgoing: Outgoing) -> Dispatched {
        Dispatched::pending(outgoing.reply())
    }
}

/// The message is sent and the caller returns at once with `Ok(())`.
///
/// Only methods that return `()` may be oneway; a view that makes another
/// method oneway is refused when it is attached. The call runs in its own
/// task; if it fails, the failure is logged at `WARN`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Oneway;

impl Abstraction for Oneway {
    fn kind(&self) -> AbstractionKind {
        AbstractionKind::Oneway
    }

    fn dispatch(&self, outgoing: Outgoing) -> Dispatched {
        Dispatched::ready(outgoing.send().map(|()| Value::unit()))
    }
}

/// The call starts at once, in its own task, and the caller gets a handle
/// to await later. Dropping the handle does not cancel the call.
#[derive(Clone, Copy, Debug, Default)]
pub struct FutureCall;

impl Abstraction for FutureCall {
    fn kind(&self) -> AbstractionKind {
        AbstractionKind::Future
    }

    fn dispatch(&self, outgoing: Outgoing) -> Dispatched {
        Dispatched::spawn(outgoing.reply())
    }
}
