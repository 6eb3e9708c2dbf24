//! The WebSocket carrier: each frame is one binary message. A browser's
//! `WebSocket` (with `binaryType = "arraybuffer"`) can connect to
//! [`serve`]'s listener and speak the protocol.
//!
//! A listener accepts any path. A client may offer the subprotocol
//! [`SUBPROTOCOL`] (`"tether"`); the listener then selects it, as a
//! browser requires of a subprotocol it offered. [`connect`] offers it.

use std::io;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt, future};
use tether_semantics::{Error, Node};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The WebSocket subprotocol of Tether connections (PROTOCOL.md, §1).
pub const SUBPROTOCOL: &str = "tether";

const PROTOCOL_HEADER: &str = "sec-websocket-protocol";

/// Selects [`SUBPROTOCOL`] if the client offered it; a client that offers
/// none is served too.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
fn select_subprotocol(
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if offered {
        response
            .headers_mut()
            .insert(PROTOCOL_HEADER, HeaderValue::from_static(SUBPROTOCOL));
    }
    Ok(response)
}

use crate::connection::{FrameSink, FrameStream};
use crate::listener::{Listener, admit, cannot_connect, serve_tcp};
use crate::{Config, Peer};

/// What one read from the socket takes at most: the stream is read
/// through a buffer of this size, so that a burst of frames or a large one
/// costs few reads.
const SOCKET_READ: usize = 128 * 1024;

/// What tungstenite reads from that buffer at a time. tungstenite zeroes
/// the room it reads into on every read, so a read of a few bytes into
/// its default of 128 KiB costs a 128 KiB `memset`: most of a small
/// call's time. Reading through [`SOCKET_READ`]'s buffer keeps both.
const MESSAGE_READ: usize = 8 * 1024;

/// A connection's stream as tungstenite reads it.
pub(crate) type Buffered = BufReader<TcpStream>;

fn ws_config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(MESSAGE_READ)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

/// Listens on `addr` for WebSocket connections (any path) and serves each
/// for `node`.
pub async fn serve(node: &Node, addr: impl ToSocketAddrs, config: Config) -> io::Result<Listener> {
    let node = node.clone();
    serve_tcp(addr, "websocket", move |stream, peers| {
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let config = config.clone();
        let peers = Arc::clone(peers);
        // The handshake runs in its own task: a slow client must not hold
        // up the others.
        tokio::spawn(async move {
            if let Some(ws) = accept(stream, config.max_frame_len()).await {
                admit(&peers, over(&node, ws, config));
            }
        });
    })
    .await
}

/// Where a WebSocket connection goes: a `ws://` URL, or, as for the other
/// carriers, an address (`"127.0.0.1:7001"`, a `SocketAddr`), which means
/// `ws://ADDR/`. A `wss://` URL is kept as it is and refused by
/// [`connect`]: this carrier has no TLS (put a TLS-terminating proxy in
/// front, or use QUIC).
pub trait Endpoint {
    /// The URL to connect to.
    fn url(self) -> String;
}

impl Endpoint for &str {
    fn url(self) -> String {
        if self.starts_with("ws://") || self.starts_with("wss://") {
            self.to_string()
        } else {
            format!("ws://{self}/")
        }
    }
}

impl Endpoint for &String {
    fn url(self) -> String {
        self.as_str().url()
    }
}

impl Endpoint for String {
    fn url(self) -> String {
        self.as_str().url()
    }
}

impl Endpoint for std::net::SocketAddr {
    fn url(self) -> String {
        format!("ws://{self}/")
    }
}

/// Connects to the node serving WebSocket connections at `to`: a URL
/// (`ws://127.0.0.1:7001/`) or an address (`listener.local_addr()`). A
/// connection that cannot be made fails with `disconnected`.
pub async fn connect(node: &Node, to: impl Endpoint, config: Config) -> Result<Peer, Error> {
    let url = to.url();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| cannot_connect(&url, &to_io(e)))?;
    request
        .headers_mut()
        .insert(PROTOCOL_HEADER, HeaderValue::from_static(SUBPROTOCOL));
    let stream = connect_tcp(&request)
        .await
        .map_err(|e| cannot_connect(&url, &e))?;
    let (ws, response) = tokio_tungstenite::client_async_with_config(
        request,
        stream,
        Some(ws_config(config.max_frame_len())),
    )
    .await
    .map_err(|e| cannot_connect(&url, &to_io(e)))?;
    let selected = response.headers().get(PROTOCOL_HEADER);
    tracing::debug!(?selected, "WebSocket connected");
    Ok(over(node, ws, config))
}

/// The TCP connection a `ws://` request goes over, Nagle off, read
/// through a buffer of [`SOCKET_READ`]. A `wss://` URL is refused: this
/// build has no TLS for WebSocket (use a TLS-terminating proxy, or QUIC).
async fn connect_tcp(
    request: &tokio_tungstenite::tungstenite::handshake::client::Request,
) -> io::Result<Buffered> {
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("only ws:// URLs are supported, not {uri}"),
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL names no host"))?;
    // An IPv6 literal comes bracketed in a URL.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host, uri.port_u16().unwrap_or(80))).await?;
    stream.set_nodelay(true)?;
    Ok(BufReader::with_capacity(SOCKET_READ, stream))
}

/// Accepts a WebSocket on `stream` (selecting the subprotocol when
/// offered), within 10 s; `None` if the handshake fails.
pub(crate) async fn accept(
    stream: TcpStream,
    max_frame: usize,
) -> Option<WebSocketStream<Buffered>> {
    let stream = BufReader::with_capacity(SOCKET_READ, stream);
    let config = ws_config(max_frame);
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, select_subprotocol, Some(config));
    match tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await {
        Ok(Ok(ws)) => Some(ws),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "WebSocket handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("WebSocket handshake timed out");
            None
        }
    }
}

/// Runs a connection over a WebSocket already open.
pub fn over<S>(node: &Node, ws: WebSocketStream<S>, config: Config) -> Peer
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (frames, sink) = frames_of(ws);
    Peer::spawn(node, config, frames, sink)
}

/// A WebSocket's binary messages as frames.
pub(crate) fn frames_of<S>(ws: WebSocketStream<S>) -> (FrameStream, FrameSink)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let frames = stream
        .take_while(|m| future::ready(!matches!(m, Ok(Message::Close(_)))))
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Binary(frame)) => Some(Ok(frame)),
                Ok(Message::Text(_)) => Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a text message: Tether frames are binary messages",
                ))),
                Ok(_) => None,
                Err(e) => Some(Err(to_io(e))),
            })
        });
    let sink = sink
        .with(|frame| future::ready(Ok::<_, WsError>(Message::Binary(frame))))
        .sink_map_err(to_io);
    let frames: FrameStream = Box::pin(frames);
    let sink: FrameSink = Box::pin(sink);
    (frames, sink)
}

fn to_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        // A message over the limit, or not WebSocket: bad input.
        e @ (WsError::Capacity(_) | WsError::Protocol(_) | WsError::Utf8(_)) => {
            io::Error::new(io::ErrorKind::InvalidData, e)
        }
        e => io::Error::other(e),
    }
}
