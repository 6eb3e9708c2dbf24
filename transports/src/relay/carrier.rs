//! Serving and connecting through a relay, over TCP.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use crate::connection::{FrameSink, FrameStream, within};
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
    links: Arc<Links>,
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
        lock(&self.links).clear();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
        // Every session's stream ends now, not when it next writes.
        lock(&self.links).clear();
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

/// The largest frame a relay sends (its default `max_frame`): a server's
/// link must be able to carry whatever the relay forwards; each session
/// still refuses frames over its own limit.
fn relay_max_frame() -> usize {
    super::RelayConfig::default().max_frame
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
    // Room for a session's largest frame and the link's wrapping, and for
    // whatever the relay forwards.
    Ok(crate::tcp::framed(
        read,
        write,
        (max_frame + 64).max(relay_max_frame()),
    ))
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
    let links: Arc<Links> = Arc::default();
    let (closed_tx, closed) = tokio::sync::watch::channel(None);
    let task = tokio::spawn(mux(
        node.clone(),
        config,
        frames,
        sink,
        Arc::clone(&peers),
        Arc::clone(&links),
        closed_tx,
    ));
    Ok(Registration {
        server,
        credential,
        peers,
        links,
        task,
        closed,
    })
}

/// Frames from the relay that one link may have waiting for its session,
/// in bytes (a frame larger than this still passes alone): the relay's
/// connection is shared, so a session that does not keep up loses its
/// link rather than holding up the others or the node's memory.
const LINK_BYTES: usize = 4 << 20;

/// The relay pings after a third of its idle timeout; this long with no
/// frame at all means it is gone.
const RELAY_SILENCE: Duration = Duration::from_secs(90);

/// One link's inbound queue: the frames, and their bytes.
pub(crate) struct LinkIn {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
}

pub(crate) type Links = Mutex<HashMap<u32, LinkIn>>;

fn lock(links: &Links) -> std::sync::MutexGuard<'_, HashMap<u32, LinkIn>> {
    links.lock().unwrap_or_else(|p| p.into_inner())
}

/// Carries the sessions of every link over the one connection to the relay.
#[allow(clippy::too_many_arguments)]
async fn mux(
    node: Node,
    config: Config,
    mut frames: FrameStream,
    mut sink: FrameSink,
    peers: Peers,
    links: Arc<Links>,
    closed: tokio::sync::watch::Sender<Option<String>>,
) {
    // Sessions' frames go out through one bounded queue, so that they feel
    // the relay's backpressure as they would a socket's; the mux's own
    // (Close, Pong: small, one per event) through another that never
    // refuses. The writer runs inside this task, so that ending the
    // registration drops the relay's connection at once.
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(LINK_QUEUE);
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<Bytes>();
    let write_timeout = config.write_timeout_or_default();
    let writer = async move {
        'writing: loop {
            let mut frame = tokio::select! {
                biased;
                Some(frame) = control_rx.recv() => frame,
                Some(frame) = out_rx.recv() => frame,
                else => break,
            };
            // What is queued by then goes out with it, in one flush.
            loop {
                if !matches!(within(write_timeout, sink.feed(frame)).await, Some(Ok(()))) {
                    break 'writing;
                }
                match control_rx.try_recv().or_else(|_| out_rx.try_recv()) {
                    Ok(queued) => frame = queued,
                    Err(_) => break,
                }
            }
            if !matches!(within(write_timeout, sink.flush()).await, Some(Ok(()))) {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    };

    let reader = async {
        loop {
            let frame = match within(RELAY_SILENCE, frames.next()).await.ok_or(()) {
                Err(_) => break format!("the relay said nothing for {RELAY_SILENCE:?}"),
                Ok(None) => break "the relay closed the connection".to_string(),
                Ok(Some(Err(e))) => break format!("the relay's connection failed: {e}"),
                Ok(Some(Ok(frame))) => frame,
            };
            match RelayFrame::decode(&frame) {
                Ok(Some(RelayFrame::Open { link })) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let queued = Arc::new(AtomicUsize::new(0));
                    lock(&links).insert(
                        link,
                        LinkIn {
                            tx,
                            queued: Arc::clone(&queued),
                        },
                    );
                    let stream: FrameStream = Box::pin(link_stream(rx, queued));
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
                        let control = control_tx.clone();
                        let links = Arc::clone(&links);
                        Box::new(move || end_link(&links, &control, link, "the session closed"))
                            as Box<dyn FnOnce() + Send>
                    };
                    let peer =
                        Peer::spawn_with(&node, config.clone(), stream, link_sink, Some(on_close));
                    admit(&peers, peer);
                }
                Ok(Some(RelayFrame::Data { link, frame })) => {
                    let map = lock(&links);
                    let Some(entry) = map.get(&link) else {
                        continue; // a link that closed meanwhile
                    };
                    let len = frame.len();
                    let before = entry.queued.fetch_add(len, Ordering::AcqRel);
                    let fits = before == 0 || before + len <= LINK_BYTES;
                    if !fits || entry.tx.send(frame).is_err() {
                        entry.queued.fetch_sub(len, Ordering::AcqRel);
                        drop(map);
                        // The session does not keep up: its link closes,
                        // the others go on.
                        end_link(
                            &links,
                            &control_tx,
                            link,
                            "the session is not reading: queue full",
                        );
                    }
                }
                Ok(Some(RelayFrame::Close { link, .. })) => {
                    // The client is gone: its session's stream ends.
                    let gone = lock(&links).remove(&link);
                    drop(gone);
                }
                Ok(Some(RelayFrame::Refused { reason })) => {
                    break format!("the relay closed: {reason}");
                }
                Ok(None)
                    if frame.get(..4) == Some(&crate::frame::Tag::PING.0.to_le_bytes()[..]) =>
                {
                    let mut pong = frame.to_vec();
                    pong[..4].copy_from_slice(&crate::frame::Tag::PONG.0.to_le_bytes());
                    let _ = control_tx.send(Bytes::from(pong));
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
    lock(&links).clear();
    let _ = closed.send(Some(reason));
}

/// Forgets `link` (its session's stream ends) and tells the relay.
fn end_link(links: &Links, control: &mpsc::UnboundedSender<Bytes>, link: u32, reason: &str) {
    let gone = lock(links).remove(&link);
    drop(gone);
    let close = RelayFrame::Close {
        link,
        reason: reason.into(),
    };
    let _ = control.send(close.encode());
}

/// A link's frames as a stream; each frame taken gives its bytes back to
/// the link's budget.
fn link_stream(
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|frame| {
            frame.map(|frame| {
                queued.fetch_sub(frame.len(), Ordering::AcqRel);
                Ok(frame)
            })
        })
    })
}
