//! The TCP carrier: each frame is a 4-byte little-endian length, then the
//! frame (tokio-util's length-delimited codec); `TCP_NODELAY` is set, so
//! a call is sent as soon as it is written.

use std::io;

use futures_util::StreamExt;
use tether_semantics::{Error, Node};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::connection::{FrameSink, FrameStream};
use crate::listener::{Listener, admit, cannot_connect, serve_tcp};
use crate::{Config, Peer};

/// Listens on `addr` and serves every connection for `node`.
///
/// ```
/// use tether::Node;
/// use tether::transports::{Config, tcp};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Node::new();
/// let listener = tcp::serve(&server, "127.0.0.1:0", Config::new()).await?;
/// let peer = tcp::connect(&Node::new(), listener.local_addr(), Config::new()).await?;
/// peer.opened().await.unwrap();
/// assert_eq!(peer.peer_node(), Some(server.id()));
/// peer.close().await;
/// listener.close().await;
/// # Ok(()) }
/// ```
pub async fn serve(node: &Node, addr: impl ToSocketAddrs, config: Config) -> io::Result<Listener> {
    let node = node.clone();
    serve_tcp(addr, "tcp", move |stream, peers| {
        match over(&node, stream, config.clone()) {
            Ok(peer) => admit(peers, peer),
            Err(e) => tracing::warn!(error = %e, "cannot set up a TCP connection"),
        }
    })
    .await
}

/// Connects to the node listening at `addr` (an address or
/// `"host:port"`). A connection that cannot be made fails with
/// `disconnected`.
pub async fn connect(node: &Node, addr: impl ToSocketAddrs, config: Config) -> Result<Peer, Error> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| cannot_connect("TCP", &e))?;
    let to = stream
        .peer_addr()
        .map_or_else(|_| "TCP".to_string(), |a| a.to_string());
    over(node, stream, config).map_err(|e| cannot_connect(&to, &e))
}

/// Runs a connection over a TCP stream already open.
pub fn over(node: &Node, stream: TcpStream, config: Config) -> io::Result<Peer> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let (frames, sink) = framed(read, write, config.max_frame_len());
    Ok(Peer::spawn(node, config, frames, sink))
}

/// Length-delimited frames over a byte stream (TCP, a QUIC stream).
pub(crate) fn framed<R, W>(read: R, write: W, max_frame: usize) -> (FrameStream, FrameSink)
where
    R: AsyncRead + Send + 'static,
    W: AsyncWrite + Send + 'static,
{
    let codec = || {
        LengthDelimitedCodec::builder()
            .little_endian()
            .length_field_length(4)
            .max_frame_length(max_frame)
            .new_codec()
    };
    let frames = FramedRead::new(read, codec()).map(|r| r.map(|b| b.freeze()));
    let sink: FrameSink = Box::pin(FramedWrite::new(write, codec()));
    (Box::pin(frames), sink)
}
