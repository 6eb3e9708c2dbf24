//! Serving and connecting through a relay, over TCP.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, future};
use tether_semantics::{Error, ErrorKind, Node};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

use super::wire::{Credential, RelayFrame, ServerId};
use crate::connection::{FrameSink, FrameStream};
use crate::listener::{Peers, admit};
use crate::{Config, Peer};

/// How long a relay has to answer a Register or a Connect.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames a link may have waiting for its session's reader before the
/// link is closed: the relay's connection is shared, so one slow session
/// must not hold up the others.
const LINK_QUEUE: usize = 1024;

/// A node registered as a server at a relay. Every client that connects
/// through the relay becomes a [`Peer`] of the node. Dropping it (or
/// [`close`](Registration::close)) ends the registration and every
/// client's connection.
pub struct Registration {
    server: ServerId,
    credential: Credential,
    peers: Peers,
    task: JoinHandle<()>,
    closed: tokio::sync::watch::Receiver<Option<String>>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("server", &self.server)
            .field("peers", &self.peers().len())
            .finish()
    }
}

impl Registration {
    /// The id clients connect to.
    pub fn server_id(&self) -> ServerId {
        self.server
    }

    /// The credential that registers again (keep it secret).
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The connections of the clients linked now.
    pub fn peers(&self) -> Vec<Peer> {
        crate::listener::open_peers(&self.peers)
    }

    /// A handle on the clients' connections, as they come and go.
    pub fn peer_set(&self) -> crate::PeerSet {
        crate::PeerSet(Arc::clone(&self.peers))
    }

    /// Waits until the registration ends (the relay went away, or
    /// refused), and says why.
    pub async fn closed(&self) -> String {
        let mut closed = self.closed.clone();
        match closed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the registration ended".to_string(),
        }
    }

    /// Ends the registration and every client's connection.
    pub async fn close(&self) {
        self.task.abort();
        for peer in self.peers() {
            peer.close().await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn refused(action: &str, reason: &str) -> Error {
    let kind = if reason.contains("credential") {
        ErrorKind::AccessDenied
    } else {
        ErrorKind::Disconnected
    };
    Error::new(kind, format!("the relay refused to {action}: {reason}"))
}

async fn dial(
    relay: impl ToSocketAddrs,
    max_frame: usize,
) -> Result<(FrameStream, FrameSink), Error> {
    let stream = TcpStream::connect(relay)
        .await
        .map_err(|e| crate::listener::cannot_connect("the relay", &e))?;
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    // Room for a session's largest frame and the link's wrapping.
    Ok(crate::tcp::framed(read, write, max_frame + 64))
}

/// The relay's answer to the first frame.
async fn answer(frames: &mut FrameStream, action: &str) -> Result<RelayFrame, Error> {
    let frame = tokio::time::timeout(ANSWER_TIMEOUT, frames.next())
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Disconnected,
                format!("the relay did not answer within {ANSWER_TIMEOUT:?}"),
            )
        })?;
    let frame = match frame {
        Some(Ok(frame)) => frame,
        Some(Err(e)) => {
            return Err(Error::new(
                ErrorKind::Disconnected,
                format!("the relay's connection failed: {e}"),
            ));
        }
        None => {
            return Err(Error::new(
                ErrorKind::Disconnected,
                "the relay closed the connection",
            ));
        }
    };
    match RelayFrame::decode(&frame) {
        Ok(Some(RelayFrame::Refused { reason })) => Err(refused(action, &reason)),
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(Error::new(
            ErrorKind::Disconnected,
            "the relay answered with a frame that is not the relay's",
        )),
        Err(e) => Err(Error::new(ErrorKind::Disconnected, e.to_string())),
    }
}

/// Connects to the server `server` registered at the relay at `relay`
/// (TCP), and runs an ordinary connection to it for `node`. An unknown
/// server, or one with as many clients as the relay allows, is refused
/// with a `disconnected` error saying so.
pub async fn connect(
    node: &Node,
    relay: impl ToSocketAddrs,
    server: ServerId,
    config: Config,
) -> Result<Peer, Error> {
    let (mut frames, mut sink) = dial(relay, config.max_frame_len()).await?;
    sink.send(RelayFrame::Connect { server }.encode())
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Disconnected,
                format!("cannot reach the relay: {e}"),
            )
        })?;
    match answer(&mut frames, "connect").await? {
        RelayFrame::Connected => Ok(Peer::spawn(node, config, frames, sink)),
        other => Err(Error::new(
            ErrorKind::Disconnected,
            format!("the relay answered a Connect with {other:?}"),
        )),
    }
}

/// Registers `node` as a server at the relay at `relay` (TCP), with the
/// credential of an earlier registration or none for a new one. Every
/// client that connects through the relay gets an ordinary connection to
/// `node`, configured by `config` (its authenticator, directory, limits).
/// A credential the relay does not know is refused with `access denied`.
pub async fn serve_through(
    node: &Node,
    relay: impl ToSocketAddrs,
    credential: Option<&Credential>,
    config: Config,
) -> Result<Registration, Error> {
    let (mut frames, mut sink) = dial(relay, config.max_frame_len()).await?;
    let register = RelayFrame::Register {
        credential: credential.map(|c| c.0.to_vec()),
    };
    sink.send(register.encode()).await.map_err(|e| {
        Error::new(
            ErrorKind::Disconnected,
            format!("cannot reach the relay: {e}"),
        )
    })?;
    let (server, credential) = match answer(&mut frames, "register").await? {
        RelayFrame::Registered { server, credential } => (server, credential),
        other => {
            return Err(Error::new(
                ErrorKind::Disconnected,
                format!("the relay answered a Register with {other:?}"),
            ));
        }
    };
    let peers: Peers = Arc::new(Mutex::new(Vec::new()));
    let (closed_tx, closed) = tokio::sync::watch::channel(None);
    let task = tokio::spawn(mux(
        node.clone(),
        config,
        frames,
        sink,
        Arc::clone(&peers),
        closed_tx,
    ));
    Ok(Registration {
        server,
        credential,
        peers,
        task,
        closed,
    })
}

/// Carries the sessions of every link over the one connection to the relay.
async fn mux(
    node: Node,
    config: Config,
    mut frames: FrameStream,
    mut sink: FrameSink,
    peers: Peers,
    closed: tokio::sync::watch::Sender<Option<String>>,
) {
    // Every session's frames, and the mux's own, go out through one queue
    // that the writer drains; it is bounded, so sessions feel the
    // relay's backpressure as they would a socket's.
    // The writer runs inside this task (not beside it), so that ending the
    // registration drops the relay's connection at once.
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(LINK_QUEUE);
    let writer = async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    };
    let links: Arc<Links> = Arc::default();

    let reader = async {
        loop {
            let frame = match frames.next().await {
                None => break "the relay closed the connection".to_string(),
                Some(Err(e)) => break format!("the relay's connection failed: {e}"),
                Some(Ok(frame)) => frame,
            };
            match RelayFrame::decode(&frame) {
                Ok(Some(RelayFrame::Open { link })) => {
                    let (tx, rx) = mpsc::channel(LINK_QUEUE);
                    links
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(link, tx);
                    let stream: FrameStream = Box::pin(tokio_stream_of(rx));
                    let to_relay = PollSender::new(out_tx.clone());
                    let link_sink: FrameSink = Box::pin(
                        to_relay
                            .sink_map_err(|_| io::Error::other("the relay's connection is gone"))
                            .with(move |frame: Bytes| {
                                future::ready(Ok::<_, io::Error>(
                                    RelayFrame::Data { link, frame }.encode(),
                                ))
                            }),
                    );
                    let on_close = {
                        let out = out_tx.clone();
                        let links = Arc::clone(&links);
                        Box::new(move || end_link(&links, &out, link, "the session closed"))
                            as Box<dyn FnOnce() + Send>
                    };
                    let peer =
                        Peer::spawn_with(&node, config.clone(), stream, link_sink, Some(on_close));
                    admit(&peers, peer);
                }
                Ok(Some(RelayFrame::Data { link, frame })) => {
                    let tx = links
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&link)
                        .cloned();
                    if let Some(tx) = tx {
                        if tx.try_send(Ok(frame)).is_err() {
                            // The session does not keep up: its link closes,
                            // the others go on.
                            end_link(
                                &links,
                                &out_tx,
                                link,
                                "the session is not reading: queue full",
                            );
                        }
                    }
                }
                Ok(Some(RelayFrame::Close { link, .. })) => {
                    // The client is gone: its session's stream ends.
                    links
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&link);
                }
                Ok(Some(RelayFrame::Refused { reason })) => {
                    break format!("the relay closed: {reason}");
                }
                Ok(None)
                    if frame.get(..4) == Some(&crate::frame::Tag::PING.0.to_le_bytes()[..]) =>
                {
                    let mut pong = frame.to_vec();
                    pong[..4].copy_from_slice(&crate::frame::Tag::PONG.0.to_le_bytes());
                    let _ = out_tx.try_send(Bytes::from(pong));
                }
                Ok(None) => {}
                Ok(Some(other)) => break format!("the relay sent an unexpected {other:?}"),
                Err(e) => break e.to_string(),
            }
        }
    };
    let reason = tokio::select! {
        reason = reader => reason,
        () = writer => "the relay's connection failed".to_string(),
    };
    tracing::debug!(reason, "relay registration ended");
    // Every link's stream ends: each session closes, `disconnected`.
    links.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let _ = closed.send(Some(reason));
}

type Links = Mutex<HashMap<u32, mpsc::Sender<io::Result<Bytes>>>>;

/// Forgets `link` (its session's stream ends) and tells the relay.
fn end_link(links: &Links, out: &mpsc::Sender<Bytes>, link: u32, reason: &str) {
    links
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&link);
    let close = RelayFrame::Close {
        link,
        reason: reason.into(),
    };
    let _ = out.try_send(close.encode());
}

/// A receiver as a stream of frames.
fn tokio_stream_of(
    mut rx: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
