//! A relay, for peers that cannot listen (a browser), and the carrier
//! through it.
//!
//! A peer that cannot listen connects to a relay and **registers** as a
//! server: the relay gives it a server id (and, the first time, a
//! credential of 128 random bits that lets it register again). Clients
//! connect to the relay naming the server id and get an ordinary Tether
//! connection to the registered peer, carried frame by frame; one
//! registered server serves many clients at once, each on its own
//! **link** of the server's one connection to the relay. PROTOCOL.md, §10,
//! specifies the relay's frames byte by byte.
//!
//! * [`Relay::serve`] runs a relay on TCP and WebSocket listeners.
//! * [`serve_through`] registers a node as a server through a relay; every
//!   client that connects becomes a [`Peer`](crate::Peer) of that node.
//! * [`connect`] connects to a registered server through a relay.
//!
//! ```
//! use tether::Node;
//! use tether::transports::{Config, relay};
//!
//! #[tether::interface]
//! pub trait Hello {
//!     async fn hi(&self) -> String;
//! }
//! struct Greeter;
//! impl Hello for Greeter {
//!     async fn hi(&self) -> String { "hi through the relay".into() }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let relay = relay::Relay::serve("127.0.0.1:0", None, relay::RelayConfig::default()).await?;
//!
//! // A node that cannot listen registers through the relay ...
//! let server = Node::new();
//! let greeter = server.expose(Greeter).with_view("public", HelloInterface::view())?;
//! server.publish("greeter", greeter.view("public")?);
//! let registered = relay::serve_through(&server, relay.tcp_addr(), None, Config::new()).await?;
//!
//! // ... and another reaches it by the relay's address and its server id.
//! let peer = relay::connect(&Node::new(), relay.tcp_addr(), registered.server_id(), Config::new()).await?;
//! let remote: HelloClient = peer.lookup("greeter").await?;
//! assert_eq!(remote.hi().await?, "hi through the relay");
//!
//! // An unknown server id is refused plainly.
//! let wrong = relay::connect(&Node::new(), relay.tcp_addr(), relay::ServerId(1), Config::new()).await;
//! assert!(wrong.unwrap_err().message().contains("no server"));
//! # Ok(()) }
//! ```

mod carrier;
mod server;
mod wire;

pub use carrier::{Registration, connect, serve_through};
pub use server::{Relay, RelayConfig, RelayTables};
pub use wire::{Credential, RelayFrame, ServerId};
