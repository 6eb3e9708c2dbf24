//! The async driver of a session: one per connection, whatever the carrier.
//!
//! A carrier hands the driver a stream of incoming frames and a sink for
//! outgoing ones; the driver runs two tasks (a reader, which feeds the
//! [`Session`] and acts on its events, and a writer, which drains the
//! session's frames into the sink) and gives the user a [`Peer`]. Every
//! incoming call runs in its own task. Remote references are proxy
//! targets behind ordinary [`Ref`]s.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use tether_abstractions::{FutureCall, Oneway};
use tether_semantics::{
    Abstraction, AbstractionKind, BoxFuture, ChainId, Client, Context, Error, ErrorKind, Interface,
    InterfaceDescriptor, Invoke, Message, MethodDescriptor, MethodView, Node, NodeId, ObjectId,
    Param, Principal, Ref, Selector, Target, TraceId, Transaction, TransactionId, Value, View,
    ViewDescriptor, transaction::Participant,
};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::AbortHandle;

use crate::frame::{Credentials, WireContext, WireView, abstraction_from_code};
use crate::session::{Answer, Event, Incoming, IncomingCall, Outgoing, Session, SessionConfig};
pub use crate::session::{Closed, Tables};

/// Incoming frames, as a carrier delivers them.
pub type FrameStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
/// Outgoing frames, as a carrier takes them.
pub type FrameSink = Pin<Box<dyn Sink<Bytes, Error = io::Error> + Send>>;

/// Checks the credentials a peer sends in its Hello and says who it is.
///
/// `Ok(None)` admits the peer anonymously; `Err` refuses the connection
/// (the peer gets a Goodbye saying why).
pub trait Authenticator: Send + Sync + 'static {
    /// The principal the credentials prove, if any.
    fn authenticate(&self, credentials: Option<&Credentials>) -> Result<Option<Principal>, String>;
}

impl<F> Authenticator for F
where
    F: Fn(Option<&Credentials>) -> Result<Option<Principal>, String> + Send + Sync + 'static,
{
    fn authenticate(&self, credentials: Option<&Credentials>) -> Result<Option<Principal>, String> {
        self(credentials)
    }
}

/// How a connection is set up. The defaults suit most uses.
#[derive(Clone, Default)]
pub struct Config {
    session: SessionConfig,
    authenticator: Option<Arc<dyn Authenticator>>,
    transaction_timeout: Option<Duration>,
}

/// How long a transaction branch may wait for its outcome, unless set.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("session", &self.session)
            .field("authenticator", &self.authenticator.is_some())
            .field("transaction_timeout", &self.tx_timeout())
            .finish()
    }
}

impl Config {
    /// The defaults: 16 MiB frames, 1024 calls in flight, 10 s for the
    /// peer's Hello, 64 MiB of unsent frames, anonymous peers, 30 s for a
    /// transaction's outcome.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sends `credentials` in this side's Hello.
    pub fn credentials(mut self, principal: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.session.credentials = Some(Credentials {
            principal: principal.into(),
            secret: secret.into(),
        });
        self
    }
    /// Checks the peer's credentials with `authenticator`; the principal it
    /// returns is in the context of every call the peer makes.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }
    /// The largest frame this side accepts, in bytes.
    pub fn max_frame(mut self, bytes: u32) -> Self {
        self.session.max_frame = bytes;
        self
    }
    /// How many of the peer's calls run at once; more get `overloaded`.
    pub fn max_in_flight(mut self, calls: u32) -> Self {
        self.session.max_in_flight = calls;
        self
    }
    /// How many bytes of frames may wait for a peer that does not read
    /// before the connection is closed.
    pub fn max_unsent(mut self, bytes: usize) -> Self {
        self.session.max_unsent = bytes;
        self
    }
    /// How long the peer has to send its Hello.
    pub fn hello_timeout(mut self, timeout: Duration) -> Self {
        self.session.hello_timeout = timeout;
        self
    }
    /// How long a transaction that reached this side through the
    /// connection may run before it hears its outcome, and how long this
    /// side waits for the peer's vote when it coordinates. A branch that
    /// hears nothing in time aborts (presumed abort) and releases what it
    /// holds; a peer that does not vote in time counts as a no.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = Some(timeout);
        self
    }
    fn tx_timeout(&self) -> Duration {
        self.transaction_timeout.unwrap_or(TRANSACTION_TIMEOUT)
    }
    pub(crate) fn max_frame_len(&self) -> usize {
        self.session.max_frame as usize
    }
}

/// What the user's side knows of a connection's state.
#[derive(Clone, Debug)]
enum Status {
    Opening,
    Open,
    Closed(Closed),
}

/// One end of a connection to another node.
///
/// Cheap to clone; clones share the connection. The connection lives
/// until either side closes it or the carrier fails; then every pending
/// call fails with `disconnected`, and so does every later call through
/// its references.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    core: Mutex<Core>,
    node: Node,
    status: watch::Sender<Status>,
    wake_writer: Notify,
    wake_reader: Notify,
    authenticator: Option<Arc<dyn Authenticator>>,
    transaction_timeout: Duration,
    /// Called once when the connection closes: lets a carrier close what
    /// it holds (a QUIC connection).
    on_close: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

struct Core {
    session: Session,
    peer_node: Option<NodeId>,
    principal: Option<Principal>,
    bootstrap: Option<Ref>,
    proxies: HashMap<u32, (u64, Weak<Proxy>)>,
    pending: HashMap<u64, oneshot::Sender<Result<Value, Error>>>,
    describing: HashMap<u64, Weak<Proxy>>,
    running: HashMap<u64, AbortHandle>,
    /// The branches of transactions the peer's calls brought here, by
    /// transaction id: the peer coordinates them.
    branches: HashMap<u64, (Transaction, AbortHandle)>,
    /// The transactions of this side's whose calls reached the peer: the
    /// peer has a branch of each, which the connection stands in for.
    enlisted: HashSet<u64>,
    /// What must not be dropped while the lock is held (it may hold the
    /// last reference to a proxy, whose drop takes the lock).
    garbage: Vec<Box<dyn Any + Send>>,
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
        let mut session_config = config.session.clone();
        session_config.node = node.id().0;
        let shared = Arc::new_cyclic(|weak| {
            let registry = registry(node, weak.clone());
            let session = Session::new(session_config, Some(registry), Instant::now());
            Shared {
                core: Mutex::new(Core {
                    session,
                    peer_node: None,
                    principal: None,
                    bootstrap: None,
                    proxies: HashMap::new(),
                    pending: HashMap::new(),
                    describing: HashMap::new(),
                    running: HashMap::new(),
                    branches: HashMap::new(),
                    enlisted: HashSet::new(),
                    garbage: Vec::new(),
                }),
                node: node.clone(),
                status: watch::Sender::new(Status::Opening),
                wake_writer: Notify::new(),
                wake_reader: Notify::new(),
                transaction_timeout: config.tx_timeout(),
                authenticator: config.authenticator,
                on_close: Mutex::new(on_close),
            }
        });
        tokio::spawn(read_loop(Arc::clone(&shared), stream));
        tokio::spawn(write_loop(Arc::clone(&shared), sink));
        shared.wake_writer.notify_one();
        Peer { shared }
    }

    /// Waits until the peer's Hello has arrived (and was accepted).
    pub async fn opened(&self) -> Result<(), Error> {
        let mut status = self.shared.status.subscribe();
        let status = status
            .wait_for(|s| !matches!(s, Status::Opening))
            .await
            .map_err(|_| disconnected("the connection's driver stopped"))?;
        match &*status {
            Status::Closed(c) => Err(disconnected(&c.reason)),
            _ => Ok(()),
        }
    }

    /// A typed client for the reference the peer publishes under `name`
    /// (with [`Node::publish`]). Fails with `unknown object` if nothing is
    /// published there, and with `incompatible` if it offers another
    /// interface than `C`'s.
    pub async fn lookup<C: Client>(&self, name: &str) -> Result<C, Error> {
        let registry = self.bootstrap().await?;
        let reply = registry
            .call(
                LOOKUP,
                Value::serializable((name.to_string(),)),
                Context::for_call(),
            )
            .await?;
        let AnyRef(reference) = reply.decode::<AnyRef>()?;
        let client = C::from_ref(reference)?;
        if let Some(proxy) = proxy_of(client.reference()) {
            proxy.described().await?;
        }
        Ok(client)
    }

    /// The reference to the peer's registry (its bootstrap object), once
    /// the connection is open.
    pub async fn bootstrap(&self) -> Result<Ref, Error> {
        self.opened().await?;
        self.shared
            .lock()
            .bootstrap
            .clone()
            .ok_or_else(|| Error::new(ErrorKind::UnknownObject, "the peer offers no bootstrap"))
    }

    /// The sizes of the connection's tables.
    pub fn tables(&self) -> Tables {
        self.shared.lock().session.tables()
    }

    /// The peer's node id, once its Hello has arrived.
    pub fn peer_node(&self) -> Option<NodeId> {
        self.shared.lock().peer_node
    }

    /// Who the peer authenticated as on this side (`None`: anonymous).
    pub fn principal(&self) -> Option<Principal> {
        self.shared.lock().principal.clone()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        matches!(*self.shared.status.borrow(), Status::Closed(_))
    }

    /// Waits until the connection closes, and says why.
    pub async fn closed(&self) -> Closed {
        let mut status = self.shared.status.subscribe();
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
        self.shared
            .with(|core| core.session.close("closed by the application".into()));
        self.closed().await;
    }

    /// Drops the connection without a goodbye, as a failing network would.
    /// For tests of what the peer sees.
    pub fn abort(&self) {
        self.shared.with(|core| {
            core.session
                .carrier_lost("aborted by the application".into())
        });
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("node", &self.shared.node.id())
            .field("peer", &self.peer_node())
            .field("tables", &self.tables())
            .field("status", &*self.shared.status.borrow())
            .finish()
    }
}

fn disconnected(reason: &str) -> Error {
    Error::new(
        ErrorKind::Disconnected,
        format!("the connection is closed: {reason}"),
    )
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the session, acts on the events it caused, and wakes
    /// the writer.
    fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        let (out, garbage, closed) = {
            let mut core = self.lock();
            let out = f(&mut core);
            let mut closed = None;
            while let Some(event) = core.session.poll_event() {
                if let Some(c) = self.act(&mut core, event) {
                    closed = Some(c);
                }
            }
            (out, std::mem::take(&mut core.garbage), closed)
        };
        drop(garbage);
        self.wake_writer.notify_one();
        if let Some(closed) = closed {
            if let Some(on_close) = self
                .on_close
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                on_close();
            }
            self.status.send_replace(Status::Closed(closed));
            self.wake_reader.notify_one();
        }
        out
    }

    fn act(self: &Arc<Self>, core: &mut Core, event: Event) -> Option<Closed> {
        match event {
            Event::Opened(hello) => {
                let principal = match &self.authenticator {
                    None => Ok(None),
                    Some(a) => a.authenticate(hello.credentials.as_ref()),
                };
                match principal {
                    Ok(principal) => {
                        core.principal = principal;
                        core.peer_node = Some(NodeId(hello.node));
                        links()
                            .open
                            .entry((self.node.id().0, hello.node))
                            .or_default()
                            .push(Arc::downgrade(self));
                        core.bootstrap = hello.bootstrap.map(|key| {
                            let proxy = Proxy::new(self, key, None, REGISTRY.fingerprint());
                            let _ = proxy.interface.set(REGISTRY);
                            Ref::from_invoke(proxy)
                        });
                        self.status.send_replace(Status::Open);
                    }
                    Err(why) => core.session.close(format!("authentication failed: {why}")),
                }
            }
            Event::Call(call) => self.run_call(core, call),
            Event::Cancel(id) => {
                if let Some(task) = core.running.remove(&id) {
                    task.abort();
                }
            }
            Event::Answer(id, answer) => {
                if let Some(proxy) = core.describing.remove(&id) {
                    if let (Some(proxy), Answer::Description(view)) = (proxy.upgrade(), answer) {
                        proxy.set_view(view);
                        core.garbage.push(Box::new(proxy));
                    }
                } else if let Some(tx) = core.pending.remove(&id) {
                    let result = match answer {
                        Answer::Value(refs, bytes) => {
                            let refs = self.import_all(core, refs);
                            Ok(Value::encoded_with(bytes, refs))
                        }
                        Answer::Error(e) => Err(e),
                        Answer::Description(_) => Err(Error::new(
                            ErrorKind::Internal,
                            "a description answered a call",
                        )),
                    };
                    if let Err(unwanted) = tx.send(result) {
                        core.garbage.push(Box::new(unwanted));
                    }
                }
            }
            Event::Extension(tag, body) => {
                tracing::debug!(?tag, len = body.len(), "ignoring an extension frame");
            }
            Event::Closed(closed) => {
                // The session answered every question and cancelled every
                // running call before this event, so `pending`, `running`
                // and `describing` are empty already.
                tracing::debug!(node = %self.node.id(), reason = %closed.reason, "connection closed");
                let bootstrap = core.bootstrap.take();
                core.garbage.push(Box::new(bootstrap));
                let node = self.node.id().0;
                if let Some(peer) = core.peer_node {
                    let mut links = links();
                    if let Some(open) = links.open.get_mut(&(node, peer.0)) {
                        open.retain(|w| {
                            w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(self))
                        });
                    }
                }
                // The peer coordinated these and can no longer say how
                // they end over this connection. Those still running
                // abort (presumed abort); those prepared wait for the
                // outcome over another connection from the same node.
                for (id, (branch, timer)) in core.branches.drain() {
                    timer.abort();
                    match core.peer_node {
                        Some(peer) if branch.is_prepared() => {
                            self.await_outcome((node, peer.0, id), branch, &closed.reason);
                        }
                        _ => drop(tokio::spawn(async move { branch.abort().await })),
                    }
                }
                core.enlisted.clear();
                return Some(closed);
            }
        }
        None
    }

    fn run_call(self: &Arc<Self>, core: &mut Core, call: IncomingCall) {
        let IncomingCall {
            id,
            target,
            selector,
            context,
            refs,
            args,
        } = call;
        let refs = self.import_all(core, refs);
        let args = Value::encoded_with(args, refs);
        let transaction = context.transaction.map(|id| self.branch(core, id));
        let context = wire_to_context(&context, core.principal.clone(), transaction);
        let reply = match target.interface().method(selector) {
            Some(m) => target.serve(m.selector(), args, context),
            None => {
                let e = Error::new(
                    ErrorKind::UnknownMethod,
                    format!(
                        "{} has no method with selector {selector:08x}",
                        target.interface().name()
                    ),
                );
                core.garbage.push(Box::new(args));
                Box::pin(async move { Err(e) })
            }
        };
        let shared = Arc::clone(self);
        match id {
            Some(id) => {
                let task = tokio::spawn(async move {
                    let result = reply.await;
                    shared.answer(id, result);
                });
                core.running.insert(id, task.abort_handle());
            }
            None => {
                let method = format!("{}#{selector:08x}", target.interface().name());
                tokio::spawn(async move {
                    if let Err(error) = reply.await {
                        tracing::warn!(%method, %error, "oneway call from a peer failed");
                    }
                    drop(shared);
                });
            }
        }
    }

    /// This connection's branch of transaction `id`, begun now if the
    /// peer's call is the first to bring it here. It aborts unless the
    /// peer says how it ends within the transaction timeout.
    fn branch(self: &Arc<Self>, core: &mut Core, id: u64) -> Transaction {
        if let Some((branch, _)) = core.branches.get(&id) {
            return branch.clone();
        }
        let branch = Transaction::subordinate(TransactionId(id));
        let weak = Arc::downgrade(self);
        let timer = abort_after(self.transaction_timeout, move || {
            weak.upgrade()?.take_branch(id)
        });
        core.branches.insert(id, (branch.clone(), timer));
        branch
    }

    /// Keeps a prepared branch whose coordinator's connection closed until
    /// the outcome arrives over another connection from the same node, at
    /// most the transaction timeout; then it aborts (a heuristic outcome,
    /// logged as an error, since the coordinator may have committed).
    fn await_outcome(&self, key: (u64, u64, u64), branch: Transaction, reason: &str) {
        let timeout = self.transaction_timeout;
        tracing::warn!(tx = %branch.id(), %reason, ?timeout,
            "the coordinator's connection closed after this branch prepared; waiting for the outcome");
        let timer = abort_after(timeout, move || {
            links().in_doubt.remove(&key).map(|(branch, _)| branch)
        });
        links().in_doubt.insert(key, (branch, timer));
    }

    /// Removes this connection's branch of `id` (and stops its timer).
    fn take_branch(&self, id: u64) -> Option<Transaction> {
        let (branch, timer) = self.lock().branches.remove(&id)?;
        timer.abort();
        Some(branch)
    }

    /// Makes the peer a participant of `transaction`, which a call to it
    /// carries, the first time.
    fn enlist(self: &Arc<Self>, core: &mut Core, transaction: Option<&Transaction>) {
        let Some(transaction) = transaction else {
            return;
        };
        let id = transaction.id().0;
        if core.enlisted.insert(id) {
            let participant = Arc::new(RemoteBranch {
                shared: Arc::downgrade(self),
                nodes: (self.node.id().0, core.peer_node.map_or(0, |n| n.0)),
                timeout: self.transaction_timeout,
            });
            if !transaction.enlist(participant) {
                core.enlisted.remove(&id);
            }
        }
    }

    /// Asks the peer's bootstrap to `selector` (prepare, commit, abort)
    /// its branch of `tx`.
    async fn control(
        self: &Arc<Self>,
        selector: Selector,
        tx: TransactionId,
    ) -> Result<Value, Error> {
        let bootstrap = self.lock().bootstrap.clone();
        let bootstrap = bootstrap.ok_or_else(|| disconnected("no bootstrap to reach"))?;
        let context = Context::new().with_deadline(Instant::now() + self.transaction_timeout);
        bootstrap
            .call(selector, Value::serializable((tx.0,)), context)
            .await
    }

    fn answer(self: &Arc<Self>, id: u64, result: Result<Value, Error>) {
        let encoded = result.and_then(|value| {
            let mut bytes = Vec::new();
            let refs = value.encode(&mut bytes).map_err(|e| {
                Error::new(
                    ErrorKind::Failed,
                    format!("the result cannot travel: {}", e.message()),
                )
            })?;
            Ok((refs, Bytes::from(bytes)))
        });
        self.with(|core| {
            core.running.remove(&id);
            let encoded = encoded.map(|(refs, bytes)| (self.classify(refs), bytes));
            core.session.answer(id, encoded);
        });
    }

    /// Turns the references a frame carried into `Ref`s: this side's own
    /// objects as they are, the peer's as proxies (one per export, so the
    /// same export arrives as equal references).
    fn import_all(self: &Arc<Self>, core: &mut Core, refs: Vec<Incoming>) -> Vec<Ref> {
        refs.into_iter()
            .map(|r| match r {
                Incoming::Local(r) => r,
                Incoming::Import { key, fingerprint } => {
                    let live = core.proxies.get(&key).and_then(|(_, weak)| weak.upgrade());
                    let generation = core.session.import(key, live.is_some());
                    let proxy = live.unwrap_or_else(|| {
                        let proxy = Proxy::new(self, key, Some(generation), fingerprint);
                        core.proxies
                            .insert(key, (generation, Arc::downgrade(&proxy)));
                        // Learn the view's abstractions before the first call.
                        if let Ok(id) = core.session.describe(key) {
                            core.describing.insert(id, Arc::downgrade(&proxy));
                        }
                        proxy
                    });
                    Ref::from_invoke(proxy)
                }
            })
            .collect()
    }

    /// How each reference in an outgoing value travels: the peer's own
    /// objects go home by key; everything else is exported.
    fn classify(self: &Arc<Self>, refs: Vec<Ref>) -> Vec<Outgoing> {
        refs.into_iter()
            .map(|r| match proxy_of(&r) {
                Some(p) if Arc::ptr_eq(&p.shared, self) => Outgoing::Home(p.key),
                _ => Outgoing::Export(r),
            })
            .collect()
    }
}

fn proxy_of(r: &Ref) -> Option<&Proxy> {
    r.custom()?.as_any()?.downcast_ref::<Proxy>()
}

async fn read_loop(shared: Arc<Shared>, mut stream: FrameStream) {
    loop {
        let timeout = {
            let core = shared.lock();
            if core.session.is_closed() {
                break;
            }
            core.session.poll_timeout()
        };
        let sleep = async {
            match timeout {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(bytes)) => shared.with(|core| core.session.receive(bytes)),
                Some(Err(e)) => shared.with(|core| core.session.carrier_lost(format!("the carrier failed: {e}"))),
                None => shared.with(|core| core.session.carrier_lost("the peer closed the connection".into())),
            },
            () = sleep => shared.with(|core| core.session.handle_timeout(Instant::now())),
            () = shared.wake_reader.notified() => {}
        }
    }
}

async fn write_loop(shared: Arc<Shared>, mut sink: FrameSink) {
    let mut status = shared.status.subscribe();
    loop {
        let (batch, closed) = {
            let mut core = shared.lock();
            let batch: Vec<Bytes> = std::iter::from_fn(|| core.session.poll_transmit()).collect();
            (batch, core.session.is_closed())
        };
        let write = async {
            for frame in batch {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        // A peer that stops reading must not keep this task forever: once
        // the connection is closed, a write gets one second to finish.
        let give_up = async {
            let _ = status.wait_for(|s| matches!(s, Status::Closed(_))).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let written = tokio::select! {
            r = write => r,
            () = give_up => Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")),
        };
        if let Err(e) = written {
            shared.with(|core| core.session.carrier_lost(format!("cannot send: {e}")));
            return;
        }
        if closed {
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            return;
        }
        shared.wake_writer.notified().await;
    }
}

fn wire_to_context(
    w: &WireContext,
    principal: Option<Principal>,
    transaction: Option<Transaction>,
) -> Context {
    let mut context = Context::new();
    context.set_chain(ChainId(w.chain));
    context.set_transaction(transaction);
    context.set_deadline(
        w.deadline_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms)),
    );
    context.set_trace(w.trace.map(TraceId));
    context.set_principal(principal);
    context
}

fn context_to_wire(c: &Context) -> WireContext {
    WireContext {
        chain: c.chain().0,
        // A transaction that has stopped running does not travel.
        transaction: c.transaction().filter(|t| t.is_active()).map(|t| t.id().0),
        deadline_ms: c.deadline().map(|d| {
            let left = d.saturating_duration_since(Instant::now()).as_millis();
            u64::try_from(left).unwrap_or(u64::MAX)
        }),
        trace: c.trace().map(|t| t.0),
    }
}

/// A reference to an object of the peer's: the target behind a remote
/// [`Ref`].
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    key: u32,
    /// `None` for the bootstrap reference, which is not counted.
    generation: Option<u64>,
    fingerprint: u64,
    interface: OnceLock<&'static InterfaceDescriptor>,
    target: OnceLock<Target>,
    view: watch::Sender<Option<Result<Arc<WireView>, String>>>,
}

/// The interface of a remote reference no typed stub has claimed yet.
static UNTYPED: &InterfaceDescriptor = &InterfaceDescriptor::new("(remote, untyped)", &[], 0);

impl Proxy {
    fn new(shared: &Arc<Shared>, key: u32, generation: Option<u64>, fingerprint: u64) -> Arc<Self> {
        Arc::new(Proxy {
            shared: Arc::clone(shared),
            key,
            generation,
            fingerprint,
            interface: OnceLock::new(),
            target: OnceLock::new(),
            view: watch::Sender::new(None),
        })
    }

    fn set_view(&self, view: Option<WireView>) {
        let view = match view {
            None => Err(format!("the peer no longer exports {}", self.key)),
            Some(v) if v.fingerprint != self.fingerprint => Err(format!(
                "the peer's export {} offers {} (fingerprint {:016x}), not the {:016x} it was sent as",
                self.key, v.interface, v.fingerprint, self.fingerprint
            )),
            Some(v) => Ok(Arc::new(v)),
        };
        self.view.send_replace(Some(view));
    }

    /// Waits until the view's description, asked for when the reference
    /// was imported, has arrived.
    async fn described(&self) -> Result<(), Error> {
        if self.view.borrow().is_none() {
            let mut rx = self.view.subscribe();
            let mut status = self.shared.status.subscribe();
            let view = async {
                let _ = rx.wait_for(Option::is_some).await;
            };
            let closed = status.wait_for(|s| matches!(s, Status::Closed(_)));
            tokio::select! {
                () = view => {}
                _ = closed => return Err(disconnected("while describing a reference")),
            }
        }
        match &*self.view.borrow() {
            Some(Err(e)) => Err(Error::new(ErrorKind::Incompatible, e.clone())),
            _ => Ok(()),
        }
    }

    fn kind_of(&self, selector: Selector) -> AbstractionKind {
        match &*self.view.borrow() {
            Some(Ok(view)) => view
                .methods
                .iter()
                .find(|m| m.selector == selector.id())
                .map_or(AbstractionKind::Sync, |m| abstraction_from_code(m.kind)),
            _ => AbstractionKind::Sync,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let Some(generation) = self.generation else {
            return;
        };
        let key = self.key;
        self.shared.with(|core| {
            core.session.drop_import(key, generation);
            if core
                .proxies
                .get(&key)
                .is_some_and(|(g, _)| *g == generation)
            {
                core.proxies.remove(&key);
            }
        });
    }
}

impl Invoke for Proxy {
    fn interface(&self) -> &'static InterfaceDescriptor {
        self.interface.get().copied().unwrap_or(UNTYPED)
    }

    fn target(&self) -> Target {
        self.target
            .get_or_init(|| {
                let node = self.shared.lock().peer_node.unwrap_or(NodeId(0));
                let view = match &*self.view.borrow() {
                    Some(Ok(v)) => v.view.clone(),
                    _ => String::new(),
                };
                Target::remote(node, ObjectId(u64::from(self.key)), &view, self.interface())
            })
            .clone()
    }

    fn resolve(&self, selector: Selector) -> Result<Option<Arc<dyn Abstraction>>, Error> {
        if let Some(Err(e)) = &*self.view.borrow() {
            return Err(Error::new(ErrorKind::Incompatible, e.clone()));
        }
        Ok(match self.kind_of(selector) {
            AbstractionKind::Oneway => Some(Arc::new(Oneway)),
            AbstractionKind::Future => Some(Arc::new(FutureCall)),
            _ => None,
        })
    }

    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        let shared = Arc::clone(&self.shared);
        let key = self.key;
        let oneway = self.kind_of(message.selector()) == AbstractionKind::Oneway;
        Box::pin(async move {
            let (_, selector, args, context) = message.into_parts();
            let mut bytes = Vec::new();
            let refs = args.encode(&mut bytes).map_err(|e| {
                Error::new(
                    ErrorKind::BadArguments,
                    format!("the arguments cannot travel: {}", e.message()),
                )
            })?;
            let wire = context_to_wire(&context);
            let bytes = Bytes::from(bytes);
            let transaction = context.transaction().filter(|_| wire.transaction.is_some());
            if oneway {
                shared.with(|core| {
                    shared.enlist(core, transaction);
                    let refs = shared.classify(refs);
                    core.session.oneway(key, selector.id(), wire, refs, bytes)
                })?;
                return Ok(Value::unit());
            }
            let (tx, rx) = oneshot::channel();
            let id = shared.with(|core| {
                shared.enlist(core, transaction);
                let refs = shared.classify(refs);
                let id =
                    core.session
                        .call(key, selector.id(), wire, refs, bytes, context.deadline())?;
                core.pending.insert(id, tx);
                Ok::<_, Error>(id)
            })?;
            if context.deadline().is_some() {
                shared.wake_reader.notify_one();
            }
            let mut guard = CancelOnDrop {
                shared: Some(shared),
                id,
            };
            let reply = rx
                .await
                .unwrap_or_else(|_| Err(disconnected("the call was dropped")));
            guard.shared = None;
            reply
        })
    }

    fn describe(&self) -> Result<ViewDescriptor, Error> {
        let interface = self.interface();
        match &*self.view.borrow() {
            Some(Ok(view)) => Ok(ViewDescriptor::new(
                interface,
                view.view.clone(),
                view.methods
                    .iter()
                    .filter_map(|m| {
                        Some(MethodView {
                            method: interface.method(m.selector)?,
                            kind: abstraction_from_code(m.kind),
                        })
                    })
                    .collect(),
            )),
            Some(Err(e)) => Err(Error::new(ErrorKind::Incompatible, e.clone())),
            None => Err(Error::new(
                ErrorKind::Internal,
                "the remote view has not been described yet",
            )),
        }
    }

    fn conform(&self, want: &'static InterfaceDescriptor) -> Result<(), Error> {
        tether_semantics::check_fingerprint(self.interface().name(), self.fingerprint, want)?;
        let _ = self.interface.set(want);
        Ok(())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

/// Sends Cancel for a call whose caller stopped waiting.
struct CancelOnDrop {
    shared: Option<Arc<Shared>>,
    id: u64,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let id = self.id;
            shared.with(|core| {
                core.session.cancel(id);
                if let Some(tx) = core.pending.remove(&id) {
                    core.garbage.push(Box::new(tx));
                }
            });
        }
    }
}

/// An untyped reference, read from a value.
struct AnyRef(Ref);

impl<'de> Deserialize<'de> for AnyRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tether_semantics::__private::deserialize_ref(d).map(AnyRef)
    }
}

/// Aborts the branch `take` yields once `timeout` has passed (presumed
/// abort), unless the returned handle stops it first.
fn abort_after(
    timeout: Duration,
    take: impl FnOnce() -> Option<Transaction> + Send + 'static,
) -> AbortHandle {
    let timer = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let Some(branch) = take() else {
            return;
        };
        if branch.is_prepared() {
            tracing::error!(tx = %branch.id(), ?timeout,
                "a prepared branch heard no outcome in time; aborting it (heuristic: the coordinator may have committed)");
        } else {
            tracing::warn!(tx = %branch.id(), ?timeout,
                "a transaction branch heard nothing from its coordinator in time; presumed abort");
        }
        branch.abort().await;
    });
    timer.abort_handle()
}

/// What outlives one connection, by node: the open connections between
/// two nodes (so a transaction's outcome can reach a node over a new
/// connection when the one its calls took has closed), and the prepared
/// branches waiting for their outcome that way.
#[derive(Default)]
struct Links {
    /// By (this node, peer node).
    open: HashMap<(u64, u64), Vec<Weak<Shared>>>,
    /// By (this node, coordinating node, transaction).
    in_doubt: HashMap<(u64, u64, u64), (Transaction, AbortHandle)>,
}

/// Taken after a connection's lock, never before.
fn links() -> std::sync::MutexGuard<'static, Links> {
    static LINKS: OnceLock<Mutex<Links>> = OnceLock::new();
    LINKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The peer's branch of one of this side's transactions, as a participant
/// of this side's branch: the votes and outcomes travel as calls to the
/// peer's bootstrap.
struct RemoteBranch {
    shared: Weak<Shared>,
    /// This node and the peer's, to find another connection between them
    /// when this one has closed.
    nodes: (u64, u64),
    timeout: Duration,
}

impl RemoteBranch {
    fn forget(shared: &Shared, tx: TransactionId) {
        shared.lock().enlisted.remove(&tx.0);
    }

    /// Tells the peer the outcome (commit or abort): over this connection,
    /// or, if it has closed, over any other connection to the same node
    /// that opens within the transaction timeout (in the background, so
    /// the caller is not held up).
    fn deliver(&self, outcome: Selector, tx: TransactionId) -> BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        let (nodes, timeout) = (self.nodes, self.timeout);
        Box::pin(async move {
            // A branch may end while a connection's lock is held (when its
            // last handle drops there); the first poll must not take it.
            tokio::task::yield_now().await;
            if let Some(shared) = shared.upgrade() {
                let told = shared.tell(outcome, tx).await;
                Self::forget(&shared, tx);
                if told {
                    return;
                }
            }
            drop(tokio::spawn(redeliver(nodes, outcome, tx, timeout)));
        })
    }
}

impl Shared {
    /// Tells the peer a transaction's outcome; false only if the connection
    /// was lost on the way (another connection may do better). Any other
    /// failure is final, and logged.
    async fn tell(self: &Arc<Self>, outcome: Selector, tx: TransactionId) -> bool {
        match self.control(outcome, tx).await {
            Ok(_) => true,
            Err(e) if e.is_disconnected() => false,
            Err(error) => {
                tracing::error!(%tx, %error, "the peer could not take the outcome");
                true
            }
        }
    }
}

/// Retries an outcome over the connections open between `nodes`, with
/// backoff, for at most `timeout`.
async fn redeliver(nodes: (u64, u64), outcome: Selector, tx: TransactionId, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        let open: Vec<Arc<Shared>> = links()
            .open
            .get(&nodes)
            .map(|v| v.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default();
        for connection in open {
            if connection.tell(outcome, tx).await {
                return;
            }
        }
        if tokio::time::Instant::now() + pause > deadline {
            tracing::error!(%tx, ?timeout, peer = %NodeId(nodes.1),
                "no connection to a participant's node opened in time to tell it the outcome; it decides on its own");
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

impl Participant for RemoteBranch {
    fn prepare(&self, tx: TransactionId) -> BoxFuture<'static, bool> {
        let shared = self.shared.upgrade();
        Box::pin(async move {
            let Some(shared) = shared else {
                return false;
            };
            let vote = shared
                .control(PREPARE, tx)
                .await
                .and_then(|v| v.decode::<bool>());
            match vote {
                Ok(true) => true,
                Ok(false) => {
                    tracing::debug!(%tx, "the peer voted no");
                    false
                }
                Err(error) => {
                    tracing::warn!(%tx, %error, "the peer could not vote; the transaction aborts");
                    false
                }
            }
        })
    }

    fn commit(&self, tx: TransactionId) -> BoxFuture<'static, ()> {
        self.deliver(COMMIT, tx)
    }

    fn abort(&self, tx: TransactionId) -> BoxFuture<'static, ()> {
        self.deliver(ABORT, tx)
    }
}

const LOOKUP: Selector = Selector::new("lookup");
const PREPARE: Selector = Selector::new("prepare");
const COMMIT: Selector = Selector::new("commit");
const ABORT: Selector = Selector::new("abort");

/// The interface of every node's bootstrap object, which each side of a
/// connection offers: it finds what the node publishes, and the peer
/// coordinates through it the branches of its transactions that its calls
/// brought to this side.
struct RegistryInterface;

static REGISTRY: &InterfaceDescriptor = &InterfaceDescriptor::new(
    "tether.Registry",
    &[
        MethodDescriptor::new(LOOKUP, &[Param::new("name", "String")], "Ref", None),
        MethodDescriptor::new(PREPARE, &[Param::new("tx", "u64")], "bool", None),
        MethodDescriptor::new(COMMIT, &[Param::new("tx", "u64")], "()", None),
        MethodDescriptor::new(ABORT, &[Param::new("tx", "u64")], "()", None),
    ],
    0x7e7e_7265_6769_7374,
);

impl Interface for RegistryInterface {
    const DESCRIPTOR: &'static InterfaceDescriptor = REGISTRY;
}

/// The bootstrap object for `node`, exposed for one connection (whose
/// transaction branches it ends).
fn registry(node: &Node, connection: Weak<Shared>) -> Ref {
    let names = node.clone();
    let service = tower::service_fn(move |message: Message| {
        let names = names.clone();
        let connection = connection.clone();
        async move {
            let (_, selector, args, _) = message.into_parts();
            if selector == LOOKUP {
                let (name,): (String,) = args.decode()?;
                let reference = names.lookup_ref(&name)?;
                return Ok::<_, Error>(Value::serializable(reference));
            }
            let (tx,): (u64,) = args.decode()?;
            let connection = connection
                .upgrade()
                .ok_or_else(|| disconnected("while ending a transaction"))?;
            end_branch(&connection, selector, tx).await
        }
    });
    let exposed = node.expose_service(service);
    match exposed.set_view("registry", View::<RegistryInterface>::new()) {
        Ok(reference) => reference,
        Err(e) => unreachable!("the registry's view has no oneway methods: {e}"),
    }
}

/// Runs the peer's prepare, commit or abort on this connection's branch
/// of `tx`. A branch the connection does not have (it never began, or it
/// aborted on its own) votes no and ends as it is: presumed abort.
async fn end_branch(connection: &Shared, selector: Selector, tx: u64) -> Result<Value, Error> {
    if selector == PREPARE {
        let branch = connection.lock().branches.get(&tx).map(|(b, _)| b.clone());
        let Some(branch) = branch else {
            return Ok(Value::serializable(false));
        };
        let yes = branch.prepare().await;
        if !yes || branch.has_ended() {
            // Voted no, or had nothing to commit (read-only).
            if let Some(branch) = connection.take_branch(tx) {
                branch.abort().await;
            }
        }
        return Ok(Value::serializable(yes));
    }
    let in_doubt = || {
        let peer = connection.lock().peer_node?;
        let key = (connection.node.id().0, peer.0, tx);
        let (branch, timer) = links().in_doubt.remove(&key)?;
        timer.abort();
        tracing::info!(tx = %TransactionId(tx), "an in-doubt branch heard its outcome over a new connection");
        Some(branch)
    };
    let Some(branch) = connection.take_branch(tx).or_else(in_doubt) else {
        return Ok(Value::unit());
    };
    if selector == COMMIT {
        if !branch.commit().await {
            return Err(Error::new(
                ErrorKind::Failed,
                format!("{} aborted here before it could commit", TransactionId(tx)),
            ));
        }
    } else {
        branch.abort().await;
    }
    Ok(Value::unit())
}
