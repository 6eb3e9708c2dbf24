//! Tether's invocation abstractions: how a call is sent and how the caller
//! waits.
//!
//! A view gives each method one of these (the receiver decides, not the
//! caller):
//!
//! | abstraction | the caller | dropping the handle |
//! |---|---|---|
//! | [`SyncCall`] (the default) | awaits the reply; the call runs when awaited | cancels the call |
//! | [`Oneway`] | returns at once with `Ok(())`; failures are logged | nothing (already sent) |
//! | [`FutureCall`] | gets a handle; the call starts at once, in its own task | does not cancel |
//!
//! [`Multicast`] sends one call to a group of references and combines the
//! replies by a [`Policy`]. A caller forms a group from references it
//! holds; a receiver exposes a replicated object as one object whose
//! views fan out to every replica. Each member's own view still decides
//! how that member is called, so a group of oneway members is a oneway
//! broadcast.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod multicast;
mod wait;

pub use multicast::{Multicast, Policy};
pub use wait::{FutureCall, Oneway, SyncCall};
