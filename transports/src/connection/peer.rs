//! The [`Peer`] handle: what a user holds of a connection.

use std::fmt;
use std::sync::Arc;

use tether_semantics::{Client, Context, Error, ErrorKind, Node, NodeId, Principal, Ref, Value};

use super::config::Config;
use super::driver::{Driver, Status, disconnected};
use super::proxy::{AnyRef, proxy_of};
use super::registry::{LOOKUP, NAMES};
use super::{FrameSink, FrameStream};
use crate::frame::WireView;
use crate::session::{Closed, Tables};

/// One end of a connection to another node.
///
/// Cheap to clone; clones share the connection. The connection lives
/// until either side closes it or the carrier fails; then every pending
/// call fails with `disconnected`, and so does every later call through
/// its references.
///
/// ```
/// use tether::Node;
/// use tether::transports::{Config, memory};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (a, b) = (Node::new(), Node::new());
/// let (to_b, to_a) = memory::pair(&a, &b, Config::new(), Config::new());
/// to_b.opened().await.unwrap();
/// assert_eq!(to_b.peer_node(), Some(b.id()));
/// let e = to_b.lookup_ref("nothing/here").await.unwrap_err();
/// assert!(e.is_unknown_object(), "{e}");
/// to_b.close().await;
/// assert!(to_a.closed().await.reason.contains("goodbye"));
/// # }
/// ```
#[derive(Clone)]
pub struct Peer {
    driver: Arc<Driver>,
}

impl Peer {
    /// Runs a connection over `stream` and `sink` for `node`: spawns its
    /// reader and writer tasks on the current tokio runtime.
    pub fn spawn(node: &Node, config: Config, stream: FrameStream, sink: FrameSink) -> Peer {
        Self::spawn_with(node, config, stream, sink, None)
    }

    pub(crate) fn spawn_with(
        node: &Node,
        config: Config,
        stream: FrameStream,
        sink: FrameSink,
        on_close: Option<Box<dyn FnOnce() + Send>>,
    ) -> Peer {
        let driver = Driver::new(node, config, on_close);
        driver.start(stream, sink);
        Peer { driver }
    }

    /// Waits until the peer's Hello has arrived (and was accepted).
    pub async fn opened(&self) -> Result<(), Error> {
        let mut status = self.driver.status.subscribe();
        let status = status
            .wait_for(|s| !matches!(s, Status::Opening))
            .await
            .map_err(|_| disconnected("the connection's driver stopped"))?;
        match &*status {
            Status::Closed(c) => Err(disconnected(&c.reason)),
            _ => Ok(()),
        }
    }

    /// A typed client for the reference the peer publishes under `name` in
    /// the directory this connection reaches (see
    /// [`Config::directory`]). Fails with `unknown object` if nothing is
    /// published there, and with `incompatible` if it offers another
    /// interface than `C`'s.
    pub async fn lookup<C: Client>(&self, name: &str) -> Result<C, Error> {
        C::from_ref(self.lookup_ref(name).await?)
    }

    /// The reference the peer publishes under `name`, untyped, once its
    /// view has been described.
    pub async fn lookup_ref(&self, name: &str) -> Result<Ref, Error> {
        let registry = self.bootstrap().await?;
        let reply = registry
            .call(
                LOOKUP,
                Value::serializable((name.to_string(),)),
                Context::for_call(),
            )
            .await?;
        let AnyRef(reference) = reply.decode::<AnyRef>()?;
        if let Some(proxy) = proxy_of(&reference) {
            proxy.described().await?;
        }
        Ok(reference)
    }

    /// The names the peer publishes in the directory this connection
    /// reaches, sorted.
    pub async fn names(&self) -> Result<Vec<String>, Error> {
        let registry = self.bootstrap().await?;
        let reply = registry
            .call(NAMES, Value::serializable(()), Context::for_call())
            .await?;
        reply.decode::<Vec<String>>()
    }

    /// What the view behind `reference` (a reference from this connection)
    /// offers, as the peer described it: the interface, its fingerprint,
    /// and each method's abstraction and wire schemas (PROTOCOL.md, §5.8).
    /// What a tool without the Rust types (`tether inspect`) reads.
    pub async fn description(&self, reference: &Ref) -> Result<Arc<WireView>, Error> {
        let proxy = proxy_of(reference)
            .filter(|p| p.is_of(&self.driver))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UnknownObject,
                    "not a reference from this connection",
                )
            })?;
        proxy.described().await?;
        proxy
            .wire_view()
            .ok_or_else(|| Error::new(ErrorKind::UnknownObject, "the peer no longer exports it"))
    }

    /// The reference to the peer's registry (its bootstrap object), once
    /// the connection is open.
    pub async fn bootstrap(&self) -> Result<Ref, Error> {
        self.opened().await?;
        let (bootstrap, closed) = {
            let core = self.driver.lock();
            (core.bootstrap.clone(), core.session.is_closed())
        };
        match bootstrap {
            Some(bootstrap) => Ok(bootstrap),
            // It closed since it opened (the peer refused this side's
            // credentials): say why, once the driver has.
            None if closed => {
                let mut status = self.driver.status.subscribe();
                match status.wait_for(|s| matches!(s, Status::Closed(_))).await {
                    Ok(status) => match &*status {
                        Status::Closed(c) => Err(disconnected(&c.reason)),
                        _ => Err(disconnected("the connection closed")),
                    },
                    Err(_) => Err(disconnected("the connection's driver stopped")),
                }
            }
            None => Err(Error::new(
                ErrorKind::UnknownObject,
                "the peer offers no bootstrap",
            )),
        }
    }

    /// The sizes of the connection's tables.
    pub fn tables(&self) -> Tables {
        self.driver.lock().session.tables()
    }

    /// The peer's node id, once its Hello has arrived.
    pub fn peer_node(&self) -> Option<NodeId> {
        self.driver.lock().peer_node
    }

    /// Who the peer authenticated as on this side (`None`: anonymous).
    pub fn principal(&self) -> Option<Principal> {
        self.driver.lock().principal.clone()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        matches!(*self.driver.status.borrow(), Status::Closed(_))
    }

    /// Waits until the connection closes, and says why.
    pub async fn closed(&self) -> Closed {
        let mut status = self.driver.status.subscribe();
        let closed = status
            .wait_for(|s| matches!(s, Status::Closed(_)))
            .await
            .ok()
            .and_then(|s| match &*s {
                Status::Closed(c) => Some(c.clone()),
                _ => None,
            });
        closed.unwrap_or_else(|| Closed {
            reason: "the connection's driver stopped".into(),
            by_us: true,
        })
    }

    /// Closes the connection: says goodbye to the peer, fails every call
    /// still pending on it, and waits until it is closed.
    pub async fn close(&self) {
        self.driver
            .with(|core| core.session.close("closed by the application".into()));
        self.closed().await;
    }

    /// Drops the connection without a goodbye, as a failing network would.
    /// For tests of what the peer sees.
    pub fn abort(&self) {
        self.driver.with(|core| {
            core.session
                .carrier_lost("aborted by the application".into())
        });
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("node", &self.driver.node.id())
            .field("peer", &self.peer_node())
            .field("tables", &self.tables())
            .field("status", &*self.driver.status.borrow())
            .finish()
    }
}
