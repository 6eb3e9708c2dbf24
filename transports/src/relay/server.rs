//! The relay itself: registers servers, and carries each client's frames to
//! its server on a link of the server's connection, and back.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::wire::{Credential, RelayFrame, ServerId};
use crate::connection::{FrameSink, FrameStream, within};
use crate::frame::Tag;

/// A relay's limits. The defaults suit a small deployment.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Servers registered at once with one credential (8).
    pub max_servers_per_credential: usize,
    /// Servers registered at once in all (4096).
    pub max_servers: usize,
    /// Clients connected at once to one server (256).
    pub max_clients_per_server: usize,
    /// Bytes of frames waiting to be written, per link and direction
    /// (1 MiB): a side that does not read loses its link, not the relay's
    /// memory.
    pub max_queued_bytes: usize,
    /// The largest frame carried (16 MiB and a little, so that a session's
    /// largest frame fits in a link's wrapping).
    pub max_frame: usize,
    /// A connection silent this long is closed (60 s). Servers are pinged
    /// after a third of it; a client's session pings on its own.
    pub idle_timeout: Duration,
    /// A first frame must arrive within this (10 s).
    pub handshake_timeout: Duration,
    /// A frame that cannot be written within this closes its connection
    /// (30 s).
    pub write_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_servers_per_credential: 8,
            max_servers: 4096,
            max_clients_per_server: 256,
            max_queued_bytes: 1 << 20,
            max_frame: (16 << 20) + 64,
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// What a relay holds, for tests and tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayTables {
    /// Registered servers.
    pub servers: usize,
    /// Client links, over all servers.
    pub clients: usize,
}

/// A running relay. Dropping it (or [`close`](Relay::close)) stops it and
/// closes every connection it carries.
#[derive(Debug)]
pub struct Relay {
    tcp_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    state: Arc<State>,
    accepts: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct State {
    config: RelayConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    servers: HashMap<ServerId, ServerEntry>,
    per_credential: HashMap<[u8; 16], usize>,
    /// Every connection's task, so that closing the relay ends them.
    tasks: Vec<tokio::task::AbortHandle>,
}

#[derive(Debug)]
struct ServerEntry {
    credential: Credential,
    out: Outbox,
    /// What all its links have queued toward it, bounded together.
    inbound: Budget,
    links: HashMap<u32, LinkEnd>,
    next_link: u32,
}

/// A client's end of a link: its outbox, and what the server has queued
/// in it.
#[derive(Clone, Debug)]
struct LinkEnd {
    out: Outbox,
    budget: Budget,
    /// Dropped with the link: the client's task learns at once that the
    /// link is over.
    _gone: Arc<watch::Sender<()>>,
}

/// A connection's queue of frames to write, bounded in bytes per source.
#[derive(Clone, Debug)]
struct Outbox {
    tx: mpsc::UnboundedSender<(Bytes, Charged)>,
}

/// The budgets a queued frame is charged to: its own, and toward a server
/// the server's total.
type Charged = (Arc<AtomicUsize>, Option<Arc<AtomicUsize>>);

/// One source's share of an outbox: what it has queued and not yet written.
#[derive(Clone, Debug)]
struct Budget {
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget {
            queued: Arc::default(),
            limit,
        }
    }
}

impl Budget {
    /// Takes `len` bytes; `false` (taking nothing) if that would exceed the
    /// limit while something is queued already: a frame larger than the
    /// limit still passes alone.
    fn take(&self, len: usize) -> bool {
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before != 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl Outbox {
    /// Queues `frame` against `budget` (and, toward a server, the server's
    /// own `total`); `false` if that would exceed either, or the
    /// connection is gone.
    fn push(&self, frame: Bytes, budget: &Budget) -> bool {
        self.push_within(frame, budget, None)
    }

    fn push_within(&self, frame: Bytes, budget: &Budget, total: Option<&Budget>) -> bool {
        let len = frame.len();
        if !budget.take(len) {
            return false;
        }
        if let Some(total) = total {
            if !total.take(len) {
                budget.queued.fetch_sub(len, Ordering::AcqRel);
                return false;
            }
        }
        let charged = (
            Arc::clone(&budget.queued),
            total.map(|t| Arc::clone(&t.queued)),
        );
        self.tx.send((frame, charged)).is_ok()
    }
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Relay {
    /// Listens for servers and clients on `tcp` (length-prefixed frames, as
    /// the TCP carrier) and, if given, on `ws` (WebSocket binary
    /// messages, for browsers).
    pub async fn serve(
        tcp: impl ToSocketAddrs,
        ws: Option<SocketAddr>,
        config: RelayConfig,
    ) -> io::Result<Relay> {
        let state = Arc::new(State {
            config,
            inner: Mutex::default(),
        });
        let tcp = TcpListener::bind(tcp).await?;
        let tcp_addr = tcp.local_addr()?;
        let mut accepts = vec![tokio::spawn(accept(tcp, Arc::clone(&state), false))];
        let ws_addr = match ws {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let local = listener.local_addr()?;
                accepts.push(tokio::spawn(accept(listener, Arc::clone(&state), true)));
                Some(local)
            }
            None => None,
        };
        Ok(Relay {
            tcp_addr,
            ws_addr,
            state,
            accepts,
        })
    }

    /// Where it listens on TCP.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Where it listens for WebSocket connections, if it does.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// How many servers and client links it carries.
    pub fn tables(&self) -> RelayTables {
        let inner = self.state.lock();
        RelayTables {
            servers: inner.servers.len(),
            clients: inner.servers.values().map(|s| s.links.len()).sum(),
        }
    }

    /// Stops listening and closes every connection.
    pub async fn close(&self) {
        self.stop();
        tokio::task::yield_now().await;
    }

    /// Aborts every task (each connection's writer runs in its task) and
    /// drops every server's entry, with the lock released.
    fn stop(&self) {
        for a in &self.accepts {
            a.abort();
        }
        let (tasks, servers) = {
            let mut inner = self.state.lock();
            (
                std::mem::take(&mut inner.tasks),
                std::mem::take(&mut inner.servers),
            )
        };
        for t in tasks {
            t.abort();
        }
        drop(servers);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn accept(listener: TcpListener, state: Arc<State>, websocket: bool) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "relay: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state2 = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let max = state2.config.max_frame;
            let (frames, sink) = if websocket {
                match crate::ws::accept(stream, max).await {
                    Some(ws) => crate::ws::frames_of(ws),
                    None => return,
                }
            } else {
                let (read, write) = stream.into_split();
                crate::tcp::framed(read, write, max)
            };
            connection(state2, frames, sink).await;
        });
        let mut inner = state.lock();
        inner.tasks.retain(|t| !t.is_finished());
        inner.tasks.push(task.abort_handle());
    }
}

/// Writes what `rx` brings to `sink`, each within the write timeout; ends
/// when every outbox is dropped, or a write fails (then `done` says so).
async fn writer(
    mut sink: FrameSink,
    mut rx: mpsc::UnboundedReceiver<(Bytes, Charged)>,
    timeout: Duration,
    done: watch::Sender<bool>,
) {
    // Every frame queued by the time one is written goes out with it, in
    // one flush: one write to the socket per burst, not one per frame.
    'writing: while let Some(mut next) = rx.recv().await {
        loop {
            let (frame, charged) = next;
            let len = frame.len();
            let fed = within(timeout, sink.feed(frame)).await;
            refund(&charged, len);
            if !matches!(fed, Some(Ok(()))) {
                break 'writing;
            }
            match rx.try_recv() {
                Ok(queued) => next = queued,
                Err(_) => break,
            }
        }
        if !matches!(within(timeout, sink.flush()).await, Some(Ok(()))) {
            break;
        }
    }
    // Frames still queued are dropped with `rx`; their budgets go back.
    rx.close();
    while let Ok((frame, charged)) = rx.try_recv() {
        refund(&charged, frame.len());
    }
    let _ = done.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// Gives `len` bytes back to the budgets a frame was charged to.
fn refund((own, total): &Charged, len: usize) {
    own.fetch_sub(len, Ordering::AcqRel);
    if let Some(total) = total {
        total.fetch_sub(len, Ordering::AcqRel);
    }
}

/// One connection, from its first frame on. Its writer runs inside this
/// task, so that stopping the relay (aborting the task) stops both.
async fn connection(state: Arc<State>, mut frames: FrameStream, sink: FrameSink) {
    let config = state.config.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let out = Outbox { tx };
    let (done_tx, write_failed) = watch::channel(false);
    let write = writer(sink, rx, config.write_timeout, done_tx);
    let own = Budget::new(config.max_queued_bytes);

    let handle = async move {
        let first = tokio::time::timeout(config.handshake_timeout, frames.next()).await;
        let first = match first {
            Ok(Some(Ok(frame))) => RelayFrame::decode(&frame),
            Err(_) => {
                refuse(
                    &out,
                    &own,
                    "no Register or Connect within the handshake timeout",
                );
                return;
            }
            _ => return,
        };
        match first {
            Ok(Some(RelayFrame::Register { credential })) => {
                server(&state, frames, out, credential, write_failed).await;
            }
            Ok(Some(RelayFrame::Connect { server })) => {
                client(&state, frames, out, server, write_failed).await;
            }
            _ => refuse(
                &out,
                &own,
                "the first frame to a relay must be Register or Connect",
            ),
        }
    };
    tokio::join!(write, handle);
}

fn refuse(out: &Outbox, budget: &Budget, reason: &str) {
    tracing::debug!(reason, "relay: refused");
    out.push(
        RelayFrame::Refused {
            reason: reason.to_string(),
        }
        .encode(),
        budget,
    );
}

/// Registers a server, then serves its connection until it ends.
async fn server(
    state: &Arc<State>,
    mut frames: FrameStream,
    out: Outbox,
    credential: Option<Vec<u8>>,
    mut write_failed: watch::Receiver<bool>,
) {
    let config = &state.config;
    let own = Budget::new(config.max_queued_bytes);
    let registered = register(state, &out, credential);
    let (server, credential) = match registered {
        Ok(r) => r,
        Err(reason) => {
            refuse(&out, &own, &reason);
            return;
        }
    };
    out.push(
        RelayFrame::Registered {
            server,
            credential: credential.clone(),
        }
        .encode(),
        &own,
    );
    tracing::debug!(%server, "relay: server registered");

    let mut nonce = 0_u64;
    let ping_after = config.idle_timeout / 3;
    let mut silent = Duration::ZERO;
    let reason = loop {
        let next = tokio::select! {
            next = within(ping_after, frames.next()) => next.ok_or(()),
            _ = write_failed.wait_for(|failed| *failed) => {
                break "cannot write to the server within the write timeout".to_string();
            }
        };
        let frame = match next {
            Err(_) => {
                silent += ping_after;
                if silent >= config.idle_timeout {
                    break "the server showed no sign of life".to_string();
                }
                nonce += 1;
                let mut ping = Vec::with_capacity(12);
                ping.extend_from_slice(&crate::frame::Tag::PING.0.to_le_bytes());
                ping.extend_from_slice(&nonce.to_le_bytes());
                out.push(Bytes::from(ping), &own);
                continue;
            }
            Ok(None) => break "the server closed its connection".to_string(),
            Ok(Some(Err(e))) => break format!("the server's connection failed: {e}"),
            Ok(Some(Ok(frame))) => frame,
        };
        silent = Duration::ZERO;
        match RelayFrame::decode(&frame) {
            Ok(Some(RelayFrame::Data { link, frame })) => {
                let target = state
                    .lock()
                    .servers
                    .get(&server)
                    .and_then(|s| s.links.get(&link).cloned());
                // A link that closed meanwhile: its frames are dropped.
                if let Some(client) = target {
                    if !client.out.push(frame, &client.budget) {
                        close_link(state, server, link, "the client is not reading: queue full");
                    }
                }
            }
            Ok(Some(RelayFrame::Close { link, reason })) => {
                tracing::debug!(%server, link, reason, "relay: server closed a link");
                let gone = state
                    .lock()
                    .servers
                    .get_mut(&server)
                    .and_then(|s| s.links.remove(&link));
                // The client's writer ends, closing its connection, and its
                // task hears the link is gone.
                drop(gone);
            }
            Ok(None) if tag_of(&frame) == Some(crate::frame::Tag::PING) => {
                let mut pong = frame.to_vec();
                pong[..4].copy_from_slice(&crate::frame::Tag::PONG.0.to_le_bytes());
                out.push(Bytes::from(pong), &own);
            }
            Ok(None) if tag_of(&frame) == Some(crate::frame::Tag::PONG) => {}
            Ok(_) => break "a frame a server may not send to a relay".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    tracing::debug!(%server, reason, "relay: server gone");
    unregister(state, server, &credential);
    refuse(&out, &own, &reason);
}

fn tag_of(frame: &Bytes) -> Option<Tag> {
    let b = frame.get(..4)?;
    Some(Tag(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
}

fn register(
    state: &Arc<State>,
    out: &Outbox,
    credential: Option<Vec<u8>>,
) -> Result<(ServerId, Credential), String> {
    let config = &state.config;
    let mut inner = state.lock();
    if inner.servers.len() >= config.max_servers {
        return Err(format!(
            "the relay carries {} servers, its most",
            config.max_servers
        ));
    }
    let credential = match credential {
        None => Credential::random().map_err(|e| format!("no random source: {e}"))?,
        Some(given) => {
            // The credential must be one this relay issued to a server
            // still registered: compared in constant time against each.
            let known = inner
                .servers
                .values()
                .map(|s| &s.credential)
                .find(|c| c.matches(&given))
                .cloned();
            known.ok_or_else(|| "unknown credential".to_string())?
        }
    };
    let count = inner.per_credential.entry(credential.0).or_insert(0);
    if *count >= config.max_servers_per_credential {
        return Err(format!(
            "{} servers are registered with this credential, its most",
            config.max_servers_per_credential
        ));
    }
    *count += 1;
    let server = loop {
        let mut id = [0_u8; 8];
        getrandom::fill(&mut id).map_err(|e| format!("no random source: {e}"))?;
        let id = ServerId(u64::from_le_bytes(id));
        if id.0 != 0 && !inner.servers.contains_key(&id) {
            break id;
        }
    };
    inner.servers.insert(
        server,
        ServerEntry {
            credential: credential.clone(),
            out: out.clone(),
            inbound: Budget::new(config.max_queued_bytes.saturating_mul(8)),
            links: HashMap::new(),
            next_link: 1,
        },
    );
    Ok((server, credential))
}

fn unregister(state: &Arc<State>, server: ServerId, credential: &Credential) {
    let gone = {
        let mut inner = state.lock();
        if let Some(count) = inner.per_credential.get_mut(&credential.0) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.per_credential.remove(&credential.0);
            }
        }
        inner.servers.remove(&server)
    };
    // Every client's writer ends, closing its connection: the clients
    // learn at once that the server is gone.
    drop(gone);
}

fn close_link(state: &Arc<State>, server: ServerId, link: u32, reason: &str) {
    let (gone, out) = {
        let mut inner = state.lock();
        match inner.servers.get_mut(&server) {
            Some(s) => (s.links.remove(&link), Some(s.out.clone())),
            None => (None, None),
        }
    };
    if gone.is_some() {
        if let Some(out) = out {
            out.push(
                RelayFrame::Close {
                    link,
                    reason: reason.to_string(),
                }
                .encode(),
                &Budget::new(usize::MAX),
            );
        }
    }
    drop(gone);
}

/// Connects a client to its server, then carries its frames until either
/// side ends.
async fn client(
    state: &Arc<State>,
    mut frames: FrameStream,
    out: Outbox,
    server: ServerId,
    mut write_failed: watch::Receiver<bool>,
) {
    let config = &state.config;
    let own = Budget::new(config.max_queued_bytes);
    let (gone_tx, mut gone) = watch::channel(());
    let opened = {
        let mut inner = state.lock();
        match inner.servers.get_mut(&server) {
            None => Err(format!("no server {server} is registered at this relay")),
            Some(s) if s.links.len() >= config.max_clients_per_server => Err(format!(
                "server {server} has {} clients, its most",
                config.max_clients_per_server
            )),
            Some(s) => {
                // A link id in use is never given again, even after the
                // counter wraps: a client must not step into another's link.
                let mut link = s.next_link;
                while s.links.contains_key(&link) {
                    link = link.wrapping_add(1).max(1);
                }
                s.next_link = link.wrapping_add(1).max(1);
                // Connected is queued under the lock, before the link is
                // visible: nothing of the server's can overtake it.
                out.push(RelayFrame::Connected.encode(), &own);
                s.links.insert(
                    link,
                    LinkEnd {
                        out: out.clone(),
                        budget: Budget::new(config.max_queued_bytes),
                        _gone: Arc::new(gone_tx),
                    },
                );
                // The server hears of the link before any of its frames.
                let open = RelayFrame::Open { link }.encode();
                let told = s.out.push_within(open, &Budget::new(usize::MAX), None);
                Ok((link, s.out.clone(), s.inbound.clone(), told))
            }
        }
    };
    let (link, to_server, inbound, told) = match opened {
        Ok(o) => o,
        Err(reason) => {
            refuse(&out, &own, &reason);
            return;
        }
    };
    drop(out); // the server's entry holds the client's outbox now
    if !told {
        close_link(state, server, link, "cannot write to the server");
        return;
    }
    tracing::debug!(%server, link, "relay: client linked");

    let toward_server = Budget::new(config.max_queued_bytes);
    let reason = loop {
        let next = tokio::select! {
            next = within(config.idle_timeout, frames.next()) => next.ok_or(()),
            _ = gone.changed() => break "the link is closed".to_string(),
            _ = write_failed.wait_for(|failed| *failed) => {
                break "cannot write to the client within the write timeout".to_string();
            }
        };
        let frame = match next {
            Err(_) => break "the client showed no sign of life".to_string(),
            Ok(None) => break "the client closed its connection".to_string(),
            Ok(Some(Err(e))) => break format!("the client's connection failed: {e}"),
            Ok(Some(Ok(frame))) => frame,
        };
        let data = RelayFrame::Data { link, frame }.encode();
        if !to_server.push_within(data, &toward_server, Some(&inbound)) {
            break "the server is not reading: queue full".to_string();
        }
    };
    tracing::debug!(%server, link, reason, "relay: client gone");
    close_link(state, server, link, &reason);
}
