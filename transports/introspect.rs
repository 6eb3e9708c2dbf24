//! What a node holds, for a person to see: `tether dump`.
//!
//! Off unless the node's owner publishes it. [`Introspection`] is an
//! object with one method, `dump`, that reports the node's published
//! names, its connections (whom, and the sizes of their export, import,
//! question and answer tables: the calls running for each peer) and its
//! live transactions. Publish it behind access control; [`Introspection::publish`]
//! does, for one role:
//!
//! ```
//! use tether::Node;
//! use tether::introspect::Introspection;
//! use tether::transports::{Config, tcp};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::new();
//! let listener = tcp::serve(&node, "127.0.0.1:0", Config::new()).await?;
//! let introspection = Introspection::new(&node);
//! introspection.watch("tcp", listener.peer_set());
//! // Under "tether.introspect", callable by role "admin" only.
//! let published = introspection.publish(&node, "admin")?;
//!
//! let dump = published.object().dump_now();
//! assert_eq!(dump.published, ["tether.introspect"]);
//! assert!(dump.connections.is_empty());
//! # Ok(()) }
//! ```

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::filters::AccessLayer;
use crate::transports::PeerSet;
use crate::{Exposed, Node, Object, Schema, ViewError};

/// The name [`Introspection::publish`] publishes under.
pub const NAME: &str = "tether.introspect";

/// A node's state, as `dump` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Schema)]
pub struct Dump {
    /// The node's id.
    pub node: String,
    /// The names published node-wide.
    pub published: Vec<String>,
    /// Each connection open now.
    pub connections: Vec<ConnectionDump>,
    /// Transaction branches live on the node.
    pub live_transactions: u64,
}

/// One connection, as `dump` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Schema)]
pub struct ConnectionDump {
    /// Where it came from: the name given to [`Introspection::watch`].
    pub source: String,
    /// The peer's node id.
    pub peer_node: Option<String>,
    /// The principal the peer proved, if any.
    pub principal: Option<String>,
    /// Entries of this side's export table (objects the peer may call).
    pub exports: u64,
    /// References the peer holds to them.
    pub export_refs: u64,
    /// The peer's objects this side holds references to.
    pub imports: u64,
    /// This side's calls waiting for the peer's answer.
    pub questions: u64,
    /// The peer's calls running here now.
    pub running_calls: u64,
    /// The peer's oneway calls running here now.
    pub running_oneways: u64,
    /// Oneway calls refused for being over the limit.
    pub refused_oneways: u64,
}

/// The interface of the introspection object.
#[crate::interface]
pub trait Introspect {
    /// The node's state now.
    #[tether(read)]
    async fn dump(&self) -> Dump;
}

/// The introspection object of one node: it reports the connections of
/// the peer sets it watches.
pub struct Introspection {
    node: Node,
    sources: Mutex<Vec<(String, PeerSet)>>,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("node", &self.node.id())
            .finish()
    }
}

impl Introspection {
    /// An introspection object for `node`, watching no connections yet.
    pub fn new(node: &Node) -> Introspection {
        Introspection {
            node: node.clone(),
            sources: Mutex::default(),
        }
    }

    /// Reports the connections of `peers` (a listener's or a relay
    /// registration's `peer_set()`) under `source`.
    pub fn watch(&self, source: &str, peers: PeerSet) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((source.to_string(), peers));
    }

    /// Exposes this object and publishes it under [`NAME`], callable only
    /// by principals that hold `role`; returns the exposed object (to watch
    /// more connections through, or to remove its view).
    pub fn publish(
        self,
        node: &Node,
        role: &str,
    ) -> Result<Exposed<Object<Introspection>>, ViewError> {
        let exposed = node.expose(self).with_view(
            "admin",
            IntrospectInterface::view().layer(AccessLayer::allow_role(role)),
        )?;
        if let Ok(reference) = exposed.view("admin") {
            node.publish(NAME, reference);
        }
        Ok(exposed)
    }

    /// What `dump` would answer now.
    pub fn dump_now(&self) -> Dump {
        let sources: Vec<(String, PeerSet)> = self
            .sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let connections = sources
            .iter()
            .flat_map(|(source, peers)| {
                peers.peers().into_iter().map(move |peer| {
                    let t = peer.tables();
                    ConnectionDump {
                        source: source.clone(),
                        peer_node: peer.peer_node().map(|n| n.to_string()),
                        principal: peer.principal().map(|p| p.name().to_string()),
                        exports: t.exports as u64,
                        export_refs: t.export_refs,
                        imports: t.imports as u64,
                        questions: t.questions as u64,
                        running_calls: t.answers as u64,
                        running_oneways: t.oneways as u64,
                        refused_oneways: t.refused_oneways,
                    }
                })
            })
            .collect();
        Dump {
            node: self.node.id().to_string(),
            published: self.node.published(),
            connections,
            live_transactions: tether_semantics::transaction::live_branches() as u64,
        }
    }
}

impl Introspect for Introspection {
    async fn dump(&self) -> Dump {
        self.dump_now()
    }
}
