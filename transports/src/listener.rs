//! What every carrier's `serve` returns.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::Peer;

/// A carrier listening for connections; each connection accepted becomes
/// a [`Peer`]. Dropping the listener stops accepting; connections already
/// made stay open until [`close`](Listener::close) or either side closes
/// them.
///
/// ```
/// use tether::Node;
/// use tether::transports::{Config, tcp, ws};
///
/// #[tether::interface]
/// pub trait Clock {
///     async fn now(&self) -> u64;
/// }
/// struct Fixed;
/// impl Clock for Fixed {
///     async fn now(&self) -> u64 { 1_700_000_000 }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Node::new();
/// let clock = server.expose(Fixed).with_view("public", ClockInterface::view())?;
/// server.publish("clock", clock.view("public")?);
///
/// // One node, two carriers; port 0 lets the OS choose.
/// let over_tcp = tcp::serve(&server, "127.0.0.1:0", Config::new()).await?;
/// let over_ws = ws::serve(&server, "127.0.0.1:0", Config::new()).await?;
///
/// let client = Node::new();
/// let peer = ws::connect(&client, over_ws.local_addr(), Config::new()).await?;
/// let remote: ClockClient = peer.lookup("clock").await?;
/// assert_eq!(remote.now().await?, 1_700_000_000);
/// assert_eq!(over_ws.peers().len(), 1);
/// assert!(over_tcp.peers().is_empty());
///
/// over_ws.close().await; // closes its connections too
/// assert!(remote.now().await.unwrap_err().is_disconnected());
/// over_tcp.close().await;
/// # Ok(()) }
/// ```
pub struct Listener {
    local_addr: SocketAddr,
    peers: Peers,
    accept: JoinHandle<()>,
}

/// The connections a listener accepted.
pub(crate) type Peers = Arc<Mutex<Vec<Peer>>>;

/// The connections of a listener or a relay registration, as they come
/// and go. Cheap to clone.
#[derive(Clone)]
pub struct PeerSet(pub(crate) Peers);

impl PeerSet {
    /// The connections open now.
    pub fn peers(&self) -> Vec<Peer> {
        open_peers(&self.0)
    }
}

impl fmt::Debug for PeerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PeerSet").field(&self.peers().len()).finish()
    }
}

/// The peers still open, forgetting the closed ones.
pub(crate) fn open_peers(peers: &Peers) -> Vec<Peer> {
    let mut peers = peers.lock().unwrap_or_else(|p| p.into_inner());
    peers.retain(|p| !p.is_closed());
    peers.clone()
}

impl Listener {
    #[cfg(feature = "tcp")]
    pub(crate) fn new(local_addr: SocketAddr, peers: Peers, accept: JoinHandle<()>) -> Self {
        Listener {
            local_addr,
            peers,
            accept,
        }
    }

    /// The address it listens on (with the port the OS chose).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connections accepted and still open.
    pub fn peers(&self) -> Vec<Peer> {
        open_peers(&self.peers)
    }

    /// A handle on the listener's connections that outlives a borrow of it
    /// (for [`Introspection`](../introspect/struct.Introspection.html)).
    pub fn peer_set(&self) -> PeerSet {
        PeerSet(Arc::clone(&self.peers))
    }

    /// Stops accepting and closes every connection accepted.
    pub async fn close(&self) {
        self.accept.abort();
        let peers = std::mem::take(&mut *self.peers.lock().unwrap_or_else(|p| p.into_inner()));
        for peer in peers {
            peer.close().await;
        }
    }
}

/// Listens on `addr` and hands every TCP connection accepted, with the
/// listener's list of peers, to `on_stream`: what TCP and WebSocket share.
#[cfg(feature = "tcp")]
pub(crate) async fn serve_tcp<F>(
    addr: impl tokio::net::ToSocketAddrs,
    carrier: &'static str,
    on_stream: F,
) -> std::io::Result<Listener>
where
    F: Fn(tokio::net::TcpStream, &Peers) + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let peers: Peers = Arc::new(Mutex::new(Vec::new()));
    let accepted = Arc::clone(&peers);
    let accept = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => on_stream(stream, &accepted),
                Err(e) => {
                    // Out of descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, carrier, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(Listener::new(local_addr, peers, accept))
}

/// Records a new connection, forgetting closed ones.
#[cfg(feature = "tcp")]
pub(crate) fn admit(peers: &Peers, peer: Peer) {
    let mut peers = peers.lock().unwrap_or_else(|p| p.into_inner());
    peers.retain(|p| !p.is_closed());
    peers.push(peer);
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .field("peers", &self.peers().len())
            .finish()
    }
}

/// The error of a connection that could not be made: `disconnected`,
/// naming where and why.
#[cfg(feature = "tcp")]
pub(crate) fn cannot_connect(to: &str, e: &std::io::Error) -> tether_semantics::Error {
    tether_semantics::Error::new(
        tether_semantics::ErrorKind::Disconnected,
        format!("cannot connect to {to}: {e}"),
    )
}
