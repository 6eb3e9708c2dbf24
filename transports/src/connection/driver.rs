//! The driver: owns one connection's session and tables, runs its reader
//! and writer tasks, and turns the session's events into tasks, replies
//! and proxies.
//!
//! # Locks and user code
//!
//! The driver's state sits behind one `std::sync::Mutex`. No user code runs
//! while it is held: not a filter, not a skeleton, not the drop of a user's
//! value or of a proxy (whose drop takes this very lock). The rule is kept
//! by construction:
//!
//! * [`Driver::with`] runs a session operation under the lock and takes the
//!   events it caused and the references the session let go of; it acts on
//!   the events and drops the references *after* unlocking;
//! * each event handler takes the lock only for table bookkeeping;
//! * an incoming call's arguments become a value, its view admits it and
//!   its filters run with no lock held: polled once by the driver, in
//!   arrival order (so calls enter their views in the order they were
//!   sent, PROTOCOL.md §6.7), then, if it is not done, in a task of its
//!   own.

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{AbortHandle, Abortable};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rustc_hash::FxHashMap;
use tether_semantics::{
    AbstractionKind, ActivationId, ChainId, Context, Error, ErrorKind, Node, NodeId, Principal,
    Ref, Selector, TraceId, Transaction, Value, Watcher,
};
use tokio::sync::{Notify, oneshot, watch};

use super::config::{Authenticator, Config};
use super::promise::PromisedAnswer;
use super::proxy::{Proxy, proxy_of};
use super::two_phase::TwoPhase;
use super::{FrameSink, FrameStream, within};
use crate::frame::{MAX_LINEAGE, WireContext};
use crate::session::{
    Answer, Closed, Event, Incoming, IncomingCall, OutgoingRef, Session, error_to_wire,
};

/// What the user's side knows of a connection's state.
#[derive(Clone, Debug)]
pub(crate) enum Status {
    Opening,
    Open,
    Closed(Closed),
}

/// One connection's driver. Everything else (the [`Peer`](super::Peer)
/// handle, proxies, two-phase commit) reaches the session through its
/// methods.
pub(crate) struct Driver {
    core: Mutex<Core>,
    pub(crate) node: Node,
    pub(crate) status: watch::Sender<Status>,
    wake_writer: Notify,
    pub(crate) wake_reader: Notify,
    authenticator: Option<Arc<dyn Authenticator>>,
    /// This connection's part in cross-node transactions.
    pub(crate) two_phase: TwoPhase,
    /// How long one frame may take to be written.
    write_timeout: Duration,
    /// Called once when the connection closes: lets a carrier close what
    /// it holds (a QUIC connection).
    on_close: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// This driver as a watcher of the views it exported.
    me: Weak<Driver>,
}

/// Who awaits the answer to a call this side sent.
pub(crate) enum Awaiting {
    /// A caller, for the reply.
    Reply(oneshot::Sender<Result<Value, Error>>),
    /// A promise, for the reference the answer holds.
    Promise(Arc<PromisedAnswer>),
}

/// The tables the driver keeps beside the session.
pub(crate) struct Core {
    pub(crate) session: Session,
    pub(crate) peer_node: Option<NodeId>,
    pub(crate) principal: Option<Principal>,
    pub(crate) bootstrap: Option<Ref>,
    /// The proxy of each of the peer's exports this side holds, with the
    /// generation of its import.
    pub(crate) proxies: HashMap<u32, (u64, Weak<Proxy>)>,
    /// Calls sent, by question id: where their replies go. The ids are
    /// this side's own, so a fast hash serves.
    pub(crate) pending: FxHashMap<u64, Awaiting>,
    /// Describes sent, by question id: the proxies that asked, in the
    /// order of the keys asked about.
    describing: FxHashMap<u64, Vec<Weak<Proxy>>>,
    /// The peer's calls running here, by call id.
    running: HashMap<u64, AbortHandle>,
    /// The peer's oneway calls running here, by the session's handle.
    running_oneway: HashMap<u64, AbortHandle>,
    /// What must not be dropped while the lock is held (it may hold the
    /// last reference to a proxy or a user's value).
    pub(crate) garbage: Vec<Box<dyn Any + Send>>,
}

impl Driver {
    /// A driver for `node` over a new session; its tasks start with
    /// [`start`](Driver::start).
    pub(crate) fn new(
        node: &Node,
        config: Config,
        on_close: Option<Box<dyn FnOnce() + Send>>,
    ) -> Arc<Driver> {
        let mut session_config = config.session.clone();
        session_config.node = node.id().0;
        let budget = node.extension::<crate::session::NodeBudget>();
        if let Some(max) = config.node_max_unsent {
            budget.set_max(max);
        }
        session_config.node_budget = Some(budget);
        let directory = config
            .directory
            .clone()
            .unwrap_or_else(|| node.directory().clone());
        Arc::new_cyclic(|me: &Weak<Driver>| {
            let registry = super::registry::registry(node, directory, me.clone());
            let session = Session::new(session_config, Some(registry), Instant::now());
            Driver {
                core: Mutex::new(Core {
                    session,
                    peer_node: None,
                    principal: None,
                    bootstrap: None,
                    proxies: HashMap::new(),
                    pending: FxHashMap::default(),
                    describing: FxHashMap::default(),
                    running: HashMap::new(),
                    running_oneway: HashMap::new(),
                    garbage: Vec::new(),
                }),
                node: node.clone(),
                status: watch::Sender::new(Status::Opening),
                wake_writer: Notify::new(),
                wake_reader: Notify::new(),
                two_phase: TwoPhase::new(config.tx_timeout(), config.max_branches()),
                write_timeout: config.write_timeout_or_default(),
                authenticator: config.authenticator,
                on_close: Mutex::new(on_close),
                me: me.clone(),
            }
        })
    }

    /// Spawns the reader and writer tasks on the current runtime.
    pub(crate) fn start(self: &Arc<Self>, stream: FrameStream, sink: FrameSink) {
        tokio::spawn(read_loop(Arc::clone(self), stream));
        tokio::spawn(write_loop(Arc::clone(self), sink));
        self.wake_writer.notify_one();
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the tables and the session under the lock, then, with
    /// the lock released, drops what the session let go of, acts on the
    /// events it caused and wakes the writer.
    pub(crate) fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        let (out, (first, rest), garbage, released, exported, send) = {
            let mut core = self.lock();
            let out = f(&mut core);
            // Most operations cause no event and a frame read causes one:
            // the first is kept apart, so that neither allocates.
            let first = core.session.poll_event();
            let rest: Vec<Event> = match first {
                Some(_) => std::iter::from_fn(|| core.session.poll_event()).collect(),
                None => Vec::new(),
            };
            let events = (first, rest);
            let garbage = std::mem::take(&mut core.garbage);
            let released = core.session.take_released();
            let send = core.session.has_transmit() || core.session.is_closed();
            (
                out,
                events,
                garbage,
                released,
                core.session.take_exported(),
                send,
            )
        };
        drop((garbage, released));
        // Views exported for the first time: hear when they are replaced.
        for r in exported {
            let me: Weak<dyn Watcher> = self.me.clone();
            r.watch(me);
        }
        // Only when there is something to send (or the end to say): the
        // writer itself takes its frames through here.
        if send {
            self.wake_writer.notify_one();
        }
        for event in first.into_iter().chain(rest) {
            self.act(event);
        }
        out
    }

    /// Acts on one event, with the lock released; takes it only for
    /// bookkeeping.
    fn act(self: &Arc<Self>, event: Event) {
        match event {
            Event::Opened(hello) => self.opened(hello),
            Event::Call(call) => self.run_call(call),
            Event::Cancel(id) => {
                let task = self.lock().running.remove(&id);
                if let Some(task) = task {
                    task.abort();
                }
            }
            Event::Answer(id, answer) => self.answered(id, answer),
            Event::Revised { key, version } => {
                let proxy = {
                    let core = self.lock();
                    core.proxies.get(&key).and_then(|(_, weak)| weak.upgrade())
                };
                if let Some(proxy) = proxy.filter(|p| p.version() != version) {
                    proxy.redescribe();
                }
            }
            Event::Extension(tag, body) => {
                tracing::debug!(?tag, len = body.len(), "ignoring an extension frame");
            }
            Event::Closed(closed) => self.closed(closed),
        }
    }

    fn opened(self: &Arc<Self>, hello: crate::frame::Hello) {
        // The authenticator is the user's code: it runs unlocked.
        let principal = match &self.authenticator {
            None => Ok(None),
            Some(a) => a.authenticate(hello.credentials.as_ref()),
        };
        match principal {
            Ok(principal) => {
                let bootstrap = hello.bootstrap.map(|key| Proxy::bootstrap(self, key));
                let old = {
                    let mut core = self.lock();
                    // Closed meanwhile (the authenticator ran unlocked): it
                    // stays closed.
                    if core.session.is_closed() {
                        drop(core);
                        drop(bootstrap);
                        return;
                    }
                    core.principal = principal;
                    core.peer_node = Some(NodeId(hello.node));
                    std::mem::replace(&mut core.bootstrap, bootstrap)
                };
                drop(old);
                super::two_phase::opened(self, NodeId(hello.node));
                self.status.send_replace(Status::Open);
            }
            Err(why) => {
                self.with(|core| core.session.close(format!("authentication failed: {why}")))
            }
        }
    }

    fn answered(self: &Arc<Self>, id: u64, answer: Answer) {
        let (describing, pending) = {
            let mut core = self.lock();
            match core.describing.remove(&id) {
                Some(proxy) => (Some(proxy), None),
                None => (None, core.pending.remove(&id)),
            }
        };
        if let Some(proxies) = describing {
            if let Answer::Description(views) = answer {
                let mut views = views.into_iter();
                for proxy in proxies {
                    let view = views.next().flatten();
                    if let Some(proxy) = proxy.upgrade() {
                        proxy.set_view(view);
                    }
                }
            }
            return;
        }
        let waiting = match pending {
            Some(Awaiting::Reply(tx)) => Some(tx),
            Some(Awaiting::Promise(promise)) => {
                let resolution = match answer {
                    Answer::Value(refs, _) => Ok(self.import_all(refs)),
                    Answer::Error(e) => Err(e),
                    Answer::Description(_) => Err(Error::new(
                        ErrorKind::Internal,
                        "a description answered a call",
                    )),
                };
                promise.settle(resolution);
                return;
            }
            None => None,
        };
        let Some(tx) = waiting else {
            // Its caller stopped waiting after the answer arrived: give
            // back the references it brought, which nobody will import.
            if let Answer::Value(refs, _) = &answer {
                self.with(|core| core.session.give_back(refs));
            }
            return;
        };
        let result = match answer {
            Answer::Value(refs, bytes) => {
                let refs = self.import_all(refs);
                Ok(Value::encoded_with(bytes, refs))
            }
            Answer::Error(e) => Err(e),
            Answer::Description(_) => Err(Error::new(
                ErrorKind::Internal,
                "a description answered a call",
            )),
        };
        // A caller that stopped waiting gets nothing; the value is dropped
        // here, unlocked.
        drop(tx.send(result));
    }

    fn closed(self: &Arc<Self>, closed: Closed) {
        // The session answered every question and cancelled every running
        // call before this event.
        tracing::debug!(node = %self.node.id(), reason = %closed.reason, "connection closed");
        let (bootstrap, peer, oneways) = {
            let mut core = self.lock();
            let oneways = std::mem::take(&mut core.running_oneway);
            (core.bootstrap.take(), core.peer_node, oneways)
        };
        drop(bootstrap);
        // Oneway calls end with their connection, as calls do.
        for task in oneways.into_values() {
            task.abort();
        }
        super::two_phase::closed(self, peer, &closed.reason);
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

    /// Runs one of the peer's calls. Calls are admitted in the order they
    /// arrived: the call enters its view and is polled once here, in the
    /// driver, and only a call that is not done then runs on in a task of
    /// its own (a spawned task may run after one spawned later). A call
    /// that is done at once costs no task and no allocation of its own.
    /// Its arguments, view and filters are the call's: no lock is held.
    pub(crate) fn run_call(self: &Arc<Self>, call: IncomingCall) {
        let (id, oneway, keep) = (call.id, call.oneway, call.keep);
        // A filter that panics as the call enters its view still ends the
        // call, and frees its place.
        let admitted = match catch_unwind(AssertUnwindSafe(|| self.admit(call))) {
            Ok(Some(admitted)) => admitted,
            Ok(None) => return,
            Err(_) => return self.finish(id, oneway, keep, Err(filters_panicked())),
        };
        let Admitted {
            id,
            oneway,
            mut reply,
            method,
        } = admitted;
        match catch_unwind(AssertUnwindSafe(|| reply.as_mut().now_or_never())) {
            Ok(Some(result)) => return self.ended(id, oneway, keep, method, result),
            Ok(None) => {}
            Err(_) => return self.finish(id, oneway, keep, Err(filters_panicked())),
        }
        // Not done: it runs on in a task, registered first, so that a
        // cancel or a close acted on meanwhile (by another thread) reaches
        // it. One that was cancelled or closed already is dropped here.
        let (handle, registration) = AbortHandle::new_pair();
        let registered = {
            let mut core = self.lock();
            match (id, oneway) {
                (Some(id), _) if core.session.is_answering(id) => {
                    core.running.insert(id, handle);
                    true
                }
                (None, Some(handle_id)) if core.session.is_running_oneway(handle_id) => {
                    core.running_oneway.insert(handle_id, handle);
                    true
                }
                _ => false,
            }
        };
        if !registered {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("a call from a peer was dropped: no tokio runtime to run it on");
            return;
        };
        let driver = Arc::clone(self);
        runtime.spawn(Abortable::new(
            async move {
                let result = AssertUnwindSafe(reply)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(filters_panicked()));
                driver.ended(id, oneway, keep, method, result);
            },
            registration,
        ));
    }

    /// Takes one of the peer's calls into its view: its arguments become
    /// a value, its context is rebuilt, and the view's filters build its
    /// reply. `None` if the call ended already (answered with an error, or
    /// cancelled while it was turned oneway).
    fn admit(self: &Arc<Self>, call: IncomingCall) -> Option<Admitted> {
        let IncomingCall {
            id,
            oneway,
            keep,
            key,
            target,
            selector,
            version,
            context,
            refs,
            args,
        } = call;
        let refs = self.import_all(refs);
        let args = Value::encoded_with(args, refs);
        let transaction = match context.transaction {
            Some(tx) => match self.two_phase.branch(self, tx) {
                Ok(branch) => Some(branch),
                Err(e) => {
                    drop(args);
                    self.finish(id, oneway, keep, Err(e));
                    return None;
                }
            },
            None => None,
        };
        let principal = self.lock().principal.clone();
        let context = wire_to_context(&context, principal, transaction);
        let Some(method) = target.interface().method(selector) else {
            let e = Error::new(
                ErrorKind::UnknownMethod,
                format!(
                    "{} has no method with selector {selector:08x}",
                    target.interface().name()
                ),
            );
            drop(args);
            self.finish(id, oneway, keep, Err(e));
            return None;
        };
        let served = target.serve(method.selector(), args, context);
        if version != 0 && served.version != 0 && served.version != version {
            // The caller went by an older description: tell it.
            self.with(|core| core.session.revised_key(key, served.version));
        }
        // A call to a method the view makes oneway (the caller went by an
        // older description, or did not know): the caller must not wait,
        // so it hears at once, and the call runs on as a oneway.
        let (id, oneway) = match id {
            Some(id) if served.kind == AbstractionKind::Oneway => (None, Some(self.as_oneway(id)?)),
            _ => (id, oneway),
        };
        Some(Admitted {
            id,
            oneway,
            reply: served.reply,
            method: (target.interface().name(), method.name()),
        })
    }

    /// A call of the peer's has its result: a oneway call's failure is
    /// logged (nobody else hears of it), then the call is finished.
    fn ended(
        self: &Arc<Self>,
        id: Option<u64>,
        oneway: Option<u64>,
        keep: bool,
        (interface, name): (&'static str, &'static str),
        result: Result<Value, Error>,
    ) {
        if let (None, Err(error)) = (id, &result) {
            tracing::warn!(method = %format_args!("{interface}::{name}"), %error, "oneway call from a peer failed");
        }
        self.finish(id, oneway, keep, result);
    }

    /// Answers the peer's call `id` at once and moves it among the oneway
    /// calls; `None` if it was cancelled meanwhile.
    fn as_oneway(self: &Arc<Self>, id: u64) -> Option<u64> {
        self.with(|core| {
            let handle = core.session.answer_as_oneway(id)?;
            if let Some(task) = core.running.remove(&id) {
                core.running_oneway.insert(handle, task);
            }
            Some(handle)
        })
    }

    /// A call of the peer's has ended: answers it (a call) or frees its
    /// place (a oneway call).
    fn finish(
        self: &Arc<Self>,
        id: Option<u64>,
        oneway: Option<u64>,
        keep: bool,
        result: Result<Value, Error>,
    ) {
        match (id, oneway) {
            (Some(id), _) if keep => self.answer_kept(id, result),
            (Some(id), _) => self.answer(id, result),
            (None, Some(handle)) => {
                drop(result);
                self.with(|core| {
                    core.running_oneway.remove(&handle);
                    core.session.oneway_done(handle);
                });
            }
            (None, None) => drop(result),
        }
    }

    /// Sends the reply to the peer's call `id`. Encoding the value and the
    /// error (the user's `Serialize`) and dropping them happen here, with
    /// the lock released.
    fn answer(self: &Arc<Self>, id: u64, result: Result<Value, Error>) {
        let encoded = match &result {
            Ok(value) => encode(value, ErrorKind::Failed, "result").map_err(|e| error_to_wire(&e)),
            Err(e) => Err(error_to_wire(e)),
        };
        drop(result);
        let encoded = encoded.map(|(refs, bytes)| (self.classify(refs), bytes));
        self.with(|core| {
            // Most calls end at their first poll, never registered.
            if !core.running.is_empty() {
                core.running.remove(&id);
            }
            core.session.answer(id, encoded);
        });
    }

    /// Answers the peer's kept call `id`: first delivers, in order, the
    /// calls it addressed to the answer meanwhile (and those that arrive
    /// while they are delivered), then sends the answer, so that nothing
    /// the caller sends after it can overtake them.
    fn answer_kept(self: &Arc<Self>, id: u64, result: Result<Value, Error>) {
        let encoded = match &result {
            Ok(value) => encode(value, ErrorKind::Failed, "result"),
            Err(e) => Err(Error::new(e.kind(), e.message().to_string())),
        };
        let mut resolution = Some(match &encoded {
            Ok((refs, _)) => Ok(refs
                .iter()
                .map(|r| (r.clone(), fingerprint_of(r)))
                .collect()),
            Err(e) => Err(Error::new(e.kind(), e.message().to_string())),
        });
        let mut encoded = Some(match (encoded, &result) {
            (Ok((refs, bytes)), _) => Ok((self.classify(refs), bytes)),
            (Err(_), Err(e)) => Err(error_to_wire(e)),
            (Err(e), Ok(_)) => Err(error_to_wire(&e)),
        });
        drop(result);
        loop {
            let calls = self.with(|core| {
                let calls = core.session.drain(id, resolution.take());
                if calls.is_empty() {
                    core.running.remove(&id);
                    if let Some(encoded) = encoded.take() {
                        core.session.answer(id, encoded);
                    }
                }
                calls
            });
            if calls.is_empty() {
                return;
            }
            for call in calls {
                self.run_call(call);
            }
        }
    }

    /// Turns the references a frame carried into `Ref`s: this side's own
    /// objects as they are, the peer's as proxies (one per export, so the
    /// same export arrives as equal references).
    pub(crate) fn import_all(self: &Arc<Self>, refs: Vec<Incoming>) -> Vec<Ref> {
        if refs.is_empty() {
            return Vec::new();
        }
        self.with(|core| {
            // Views to learn before the first call, asked about in one frame.
            let mut new = Vec::new();
            let refs = refs
                .into_iter()
                .map(|r| match r {
                    Incoming::Local(r) => r,
                    Incoming::Import { key, fingerprint } => {
                        let live = core.proxies.get(&key).and_then(|(_, weak)| weak.upgrade());
                        let generation = core.session.import(key, live.is_some());
                        let proxy = live.unwrap_or_else(|| {
                            let proxy = Proxy::new(self, key, Some(generation), fingerprint);
                            core.proxies
                                .insert(key, (generation, Arc::downgrade(&proxy)));
                            new.push((key, Arc::downgrade(&proxy)));
                            proxy
                        });
                        Ref::from_invoke(proxy)
                    }
                })
                .collect();
            Driver::describe_for(core, new);
            refs
        })
    }

    /// How each reference in an outgoing value travels: the peer's own
    /// objects go home by key; everything else is exported.
    pub(crate) fn classify(self: &Arc<Self>, refs: Vec<Ref>) -> Vec<OutgoingRef> {
        refs.into_iter()
            .map(|r| match proxy_of(&r) {
                Some(p) if p.is_of(self) => OutgoingRef::Home(p.key()),
                _ => OutgoingRef::Export(r),
            })
            .collect()
    }

    /// Asks the peer, in one frame, what the exports of `proxies` offer.
    pub(crate) fn describe_for(core: &mut Core, proxies: Vec<(u32, Weak<Proxy>)>) {
        let (keys, proxies): (Vec<u32>, Vec<Weak<Proxy>>) = proxies.into_iter().unzip();
        if keys.is_empty() {
            return;
        }
        if let Ok(id) = core.session.describe(keys) {
            core.describing.insert(id, proxies);
        }
    }
}

impl Watcher for Driver {
    fn revised(&self, reference: &Ref, version: u32) {
        if let Some(me) = self.me.upgrade() {
            me.with(|core| core.session.revised(reference, version));
        }
    }
}

/// One of the peer's calls, admitted into its view, not yet polled.
struct Admitted {
    /// The call's id, `None` for a oneway call (also one the view turned
    /// oneway).
    id: Option<u64>,
    /// The session's handle of a oneway call.
    oneway: Option<u64>,
    reply: tether_semantics::BoxFuture<'static, Result<Value, Error>>,
    /// `Interface`, `method`: named in a log line only when one is written.
    method: (&'static str, &'static str),
}

fn filters_panicked() -> Error {
    Error::new(ErrorKind::Internal, "the call's filters panicked")
}

/// The fingerprint of the interface `r` offers, as the peer is told it.
pub(crate) fn fingerprint_of(r: &Ref) -> u64 {
    match proxy_of(r) {
        Some(p) => p.fingerprint(),
        None => r.interface().fingerprint(),
    }
}

/// Encodes a value that is to travel (a call's `what`: its arguments or its
/// result), failing with `kind` if it cannot.
pub(crate) fn encode(
    value: &Value,
    kind: ErrorKind,
    what: &str,
) -> Result<(Vec<Ref>, Bytes), Error> {
    use std::cell::Cell;
    /// A value encoded in up to this many bytes is copied out of the
    /// buffer this thread keeps, into one allocation of its exact size.
    const SMALL: usize = 16 * 1024;
    thread_local! {
        static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
        /// The size of the last large value this thread encoded: the next
        /// is encoded in a buffer that size, so that it does not grow by
        /// copies, and is handed on as it is, without one.
        static LARGE: Cell<usize> = const { Cell::new(0) };
    }
    // After a large value, the next goes to a buffer of its own that size;
    // the kept one stays for small values.
    let mut bytes = match LARGE.try_with(Cell::get).unwrap_or(0) {
        0 => SCRATCH.try_with(Cell::take).unwrap_or_default(),
        large => Vec::with_capacity(large),
    };
    bytes.clear();
    let refs = value
        .encode(&mut bytes)
        .map_err(|e| Error::new(kind, format!("the {what} cannot travel: {}", e.message())));
    let out = if bytes.len() <= SMALL {
        let out = Bytes::copy_from_slice(&bytes);
        let _ = LARGE.try_with(|large| large.set(0));
        if bytes.capacity() <= SMALL {
            let _ = SCRATCH.try_with(|scratch| scratch.set(bytes));
        }
        out
    } else {
        let _ = LARGE.try_with(|large| large.set(bytes.len()));
        Bytes::from(bytes)
    };
    Ok((refs?, out))
}

pub(crate) fn disconnected(reason: &str) -> Error {
    Error::new(
        ErrorKind::Disconnected,
        format!("the connection is closed: {reason}"),
    )
}

async fn read_loop(driver: Arc<Driver>, mut stream: FrameStream) {
    // One timer, set again only when the session must wake earlier than
    // it is set for: the liveness deadline moves with every frame read,
    // and moving a timer costs. One that fires early finds nothing due,
    // and is set for the session's next deadline.
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    // Likewise one wait for a wake-up, made anew only once it has fired.
    let mut woken = Box::pin(driver.wake_reader.notified());
    loop {
        let timeout = {
            let core = driver.lock();
            if core.session.is_closed() {
                break;
            }
            core.session.poll_timeout()
        };
        if let Some(at) = timeout.filter(|&at| armed.is_none_or(|armed| at < armed)) {
            sleep.as_mut().reset(at.into());
            armed = Some(at);
        }
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(bytes)) => driver.with(|core| core.session.receive(bytes, Instant::now())),
                // Bytes that are not frames (too large, a WebSocket text
                // message): say so in a Goodbye before closing.
                Some(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    driver.with(|core| core.session.close(format!("bad input: {e}")));
                }
                Some(Err(e)) => driver.with(|core| core.session.carrier_lost(format!("the carrier failed: {e}"))),
                None => driver.with(|core| core.session.carrier_lost("the peer closed the connection".into())),
            },
            () = &mut sleep, if armed.is_some() => {
                armed = None;
                driver.with(|core| core.session.handle_timeout(Instant::now()));
            }
            () = &mut woken => woken.set(driver.wake_reader.notified()),
        }
        // Frames already buffered are read without touching the socket,
        // and each call now starts here (in order): without this, a peer
        // that sends frames faster than they are handled would keep this
        // task from ever yielding, and starve the other connections' tasks
        // on its worker (their pings unanswered until they time out).
        tokio::task::coop::consume_budget().await;
    }
}

async fn write_loop(driver: Arc<Driver>, mut sink: FrameSink) {
    let mut status = driver.status.subscribe();
    loop {
        // Through `with`: taking frames may close the session (a gathered
        // Release over the node's budget), whose events must be acted on.
        let (batch, closed) = driver.with(|core| {
            let batch: Vec<Bytes> = std::iter::from_fn(|| core.session.poll_transmit()).collect();
            (batch, core.session.is_closed())
        });
        // A peer that reads nothing is cut off: each frame must be taken
        // within the write timeout, however much waits behind it.
        let limit = driver.write_timeout;
        let stalled = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {limit:?}"),
            )
        };
        let write = async {
            for frame in batch {
                within(limit, sink.feed(frame))
                    .await
                    .ok_or_else(stalled)??;
            }
            within(limit, sink.flush()).await.ok_or_else(stalled)?
        };
        // Once the connection is closed, a write gets one second to finish.
        let give_up = async {
            let _ = status.wait_for(|s| matches!(s, Status::Closed(_))).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let written = tokio::select! {
            r = write => r,
            () = give_up => Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")),
        };
        if let Err(e) = written {
            driver.with(|core| core.session.carrier_lost(format!("cannot send: {e}")));
            return;
        }
        if closed {
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            return;
        }
        driver.wake_writer.notified().await;
    }
}

fn wire_to_context(
    w: &WireContext,
    principal: Option<Principal>,
    transaction: Option<Transaction>,
) -> Context {
    let mut context = Context::new();
    context.set_chain(ChainId(w.chain));
    let lineage: Vec<ActivationId> = w.lineage.iter().map(|&a| ActivationId(a)).collect();
    context.set_lineage(&lineage);
    context.set_transaction(transaction);
    context.set_deadline(
        w.deadline_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms)),
    );
    context.set_trace(w.trace.map(TraceId));
    context.set_principal(principal);
    context
}

pub(crate) fn context_to_wire(c: &Context) -> WireContext {
    WireContext {
        chain: c.chain().0,
        // A transaction that has stopped running does not travel.
        transaction: c.transaction().filter(|t| t.is_active()).map(|t| t.id().0),
        deadline_ms: c.deadline().map(|d| {
            let left = d.saturating_duration_since(Instant::now()).as_millis();
            u64::try_from(left).unwrap_or(u64::MAX)
        }),
        trace: c.trace().map(|t| t.0),
        lineage: c.lineage(MAX_LINEAGE).into_iter().map(|a| a.0).collect(),
    }
}

/// The selectors of the registry's methods, shared by the registry and the
/// two-phase code that calls the peer's.
pub(crate) const PREPARE: Selector = Selector::new("prepare");
/// See [`PREPARE`].
pub(crate) const COMMIT: Selector = Selector::new("commit");
/// See [`PREPARE`].
pub(crate) const ABORT: Selector = Selector::new("abort");
