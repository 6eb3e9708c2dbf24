//! The async driver of a session: one per connection, whatever the carrier.
//!
//! A carrier hands the driver a stream of incoming frames and a sink for
//! outgoing ones; the driver runs two tasks (a reader, which feeds the
//! [`Session`](crate::session::Session) and acts on its events, and a
//! writer, which drains the session's frames into the sink) and gives the
//! user a [`Peer`]. Every incoming call runs in its own task. Remote
//! references are proxy targets behind ordinary
//! [`Ref`](tether_semantics::Ref)s.
//!
//! The pieces, one concept a file, with the arrows running one way:
//!
//! * `config`: [`Config`] and [`Authenticator`];
//! * `peer`: the [`Peer`] handle;
//! * `driver`: owns the session and the tables beside it, and is the one
//!   place that takes the connection's lock (see its docs for why no user
//!   code ever runs under it);
//! * `proxy`: the target behind a remote reference;
//! * `registry`: the bootstrap object each side offers;
//! * `two_phase`: this connection's part in cross-node transactions, with
//!   its own state.

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Sink, Stream};

mod config;
mod driver;
mod peer;
mod promise;
mod proxy;
mod registry;
mod two_phase;

pub use crate::session::{Closed, Tables};
pub use config::{Authenticator, Config};
pub use peer::Peer;

/// Incoming frames, as a carrier delivers them.
pub type FrameStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
/// Outgoing frames, as a carrier takes them.
pub type FrameSink = Pin<Box<dyn Sink<Bytes, Error = io::Error> + Send>>;

/// `work`'s output, unless it takes longer than `limit`. A timer is set
/// only if `work` has to wait: most writes go straight into the carrier's
/// buffer, and a timer per frame would cost more than the write.
pub(crate) async fn within<F: std::future::Future>(
    limit: std::time::Duration,
    work: F,
) -> Option<F::Output> {
    use futures_util::FutureExt;
    let mut work = std::pin::pin!(work);
    if let Some(done) = work.as_mut().now_or_never() {
        return Some(done);
    }
    tokio::time::timeout(limit, work).await.ok()
}
