//! The per-connection session: a sans-IO state machine.
//!
//! A [`Session`] holds what one side of one connection knows: its export
//! table (objects it handed to the peer, by key, with how many references
//! the peer holds), its import table (the peer's objects it holds, with the
//! count to give back), its questions (calls and describes it sent and
//! awaits) and its answers (the peer's calls it is running). Bytes go in
//! through [`Session::receive`]; frames to send come out of
//! [`Session::poll_transmit`], and what the driver must act on comes out of
//! [`Session::poll_event`]. Time is passed in; nothing here does I/O,
//! spawns, or reads a clock, so a pair of sessions can be tested by
//! handing bytes across by hand (see `transports/tests/session.rs`).
//!
//! The driver of a carrier (see [`crate::connection`]) owns one session per
//! connection, behind a lock, and turns its events into tasks and replies.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_semantics::{Error, ErrorKind, Ref, ViewDescriptor};

use crate::frame::{
    CallFrame, Cancel, Credentials, Describe, Description, Finish, Frame, FrameError, Goodbye,
    Hello, Limits, OnewayFrame, Outcome, Ping, PipelineFrame, PipelineOnewayFrame, PipelineTarget,
    Pong, Release, Released, Return, Revised, Tag, VERSION, WireContext, WireError, WireMethod,
    WireRef, WireTypes, WireView, abstraction_code, error_code,
};

mod pipeline;

pub use pipeline::Resolution;

/// What a session is configured with.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// This side's node id, sent in the Hello.
    pub node: u64,
    /// Who this side says it is.
    pub credentials: Option<Credentials>,
    /// The largest frame this side accepts.
    pub max_frame: u32,
    /// How many of the peer's calls this side runs at once; more are
    /// answered `overloaded` at once.
    pub max_in_flight: u32,
    /// How long the peer has to send its Hello.
    pub hello_timeout: Duration,
    /// How many bytes of frames may wait to be sent before the peer counts
    /// as not reading and the connection is closed.
    pub max_unsent: usize,
    /// How many of the peer's oneway calls this side runs at once; more are
    /// dropped, logged and counted ([`Tables::refused_oneways`]).
    pub max_oneway_in_flight: u32,
    /// How many of the peer's calls this side keeps the answers of for
    /// pipelining at once (PROTOCOL.md §5.12–5.14, §6.7); a kept call beyond is
    /// answered `overloaded`.
    pub max_promises: u32,
    /// How many references one frame may carry; a call with more is
    /// refused (`bad arguments`), and a result with more fails.
    pub max_refs_per_frame: u32,
    /// The budget of unsent bytes that every connection of this node shares,
    /// if any (see [`NodeBudget`]).
    pub node_budget: Option<Arc<NodeBudget>>,
    /// After this long without a frame from the peer, send it a Ping.
    pub keepalive: Duration,
    /// After this long without a frame from the peer (a Pong included),
    /// close the connection: the peer counts as gone, and every pending
    /// call fails with `disconnected`.
    pub idle_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            node: 0,
            credentials: None,
            max_frame: Limits::default().max_frame as u32,
            max_in_flight: 1024,
            max_oneway_in_flight: 1024,
            max_promises: 1024,
            max_refs_per_frame: 1024,
            node_budget: None,
            hello_timeout: Duration::from_secs(10),
            max_unsent: 64 * 1024 * 1024,
            keepalive: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// The bytes of frames waiting to be sent on all the connections of one
/// node, against a limit.
///
/// When a frame takes the node over its limit, the connection sending it
/// is closed if it holds at least a sixteenth of the limit itself: the
/// peers that do not read pay, the others are let through. (A peer that
/// reads nothing is also cut off by the driver's write timeout.)
#[derive(Debug)]
pub struct NodeBudget {
    used: AtomicUsize,
    max: AtomicUsize,
}

impl NodeBudget {
    /// The default limit: 256 MiB.
    pub const DEFAULT: usize = 256 * 1024 * 1024;

    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        NodeBudget {
            used: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }
    /// The bytes waiting now, on every connection together.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    /// The limit.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
    /// Changes the limit.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }
}

impl Default for NodeBudget {
    fn default() -> Self {
        Self::new(Self::DEFAULT)
    }
}

/// Which method of which of the peer's exports a call is for, and the
/// version of the view's description the caller went by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callee {
    /// The export, in the peer's table.
    pub key: u32,
    /// The method's selector id.
    pub selector: u32,
    /// The version of the view's Description the call goes by; 0 if none.
    pub version: u32,
}

impl Callee {
    /// Method `selector` of the peer's export `key`, with no description.
    pub fn new(key: u32, selector: u32) -> Self {
        Callee {
            key,
            selector,
            version: 0,
        }
    }
}

/// A reference about to be sent, as the driver classified it.
#[derive(Clone, Debug)]
pub enum OutgoingRef {
    /// A local object (or any reference this side serves): exported, and
    /// counted once more for the peer.
    Export(Ref),
    /// One of the peer's own exports (an import of this connection), going
    /// home: the peer resolves it to its original object.
    Home(u32),
}

/// A reference that arrived, resolved as far as the session can.
#[derive(Clone, Debug)]
pub enum Incoming {
    /// One of this side's own exports, come home.
    Local(Ref),
    /// An export of the peer: the driver makes (or reuses) a proxy for it
    /// and calls [`Session::import`].
    Import {
        /// Its key in the peer's table.
        key: u32,
        /// The fingerprint of its interface.
        fingerprint: u64,
    },
}

/// A call of the peer's that this side must run.
#[derive(Debug)]
pub struct IncomingCall {
    /// The call's id; `None` for a oneway call, which gets no reply.
    pub id: Option<u64>,
    /// For a oneway call, this side's handle on it: pass it to
    /// [`Session::oneway_done`] when the call has finished.
    pub oneway: Option<u64>,
    /// Whether the caller asked to keep the answer for pipelining: the
    /// driver answers it through [`Session::drain`].
    pub keep: bool,
    /// The export's key in this side's table (0 for a call addressed to a
    /// promised answer).
    pub key: u32,
    /// The export called.
    pub target: Ref,
    /// The method.
    pub selector: u32,
    /// The version of the view's description the caller went by (0: none).
    pub version: u32,
    /// The call's context.
    pub context: WireContext,
    /// The references the arguments hold, in table order.
    pub refs: Vec<Incoming>,
    /// The encoded argument tuple.
    pub args: Bytes,
}

/// A reply to one of this side's questions.
#[derive(Debug)]
pub enum Answer {
    /// The call's result: the references it holds and its bytes.
    Value(Vec<Incoming>, Bytes),
    /// The call failed.
    Error(Error),
    /// Descriptions, one per key asked about, in order: `None` if the key
    /// names no export.
    Description(Vec<Option<WireView>>),
}

/// Why a session closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// What happened, for errors and logs.
    pub reason: String,
    /// Whether this side closed it (rather than the peer or the carrier).
    pub by_us: bool,
}

/// What the driver must act on.
#[derive(Debug)]
pub enum Event {
    /// The peer's Hello arrived; the connection is open.
    Opened(Hello),
    /// Run a call of the peer's.
    Call(IncomingCall),
    /// Stop running the peer's call `id` (it was cancelled, or the
    /// connection closed).
    Cancel(u64),
    /// One of this side's questions is answered.
    Answer(u64, Answer),
    /// The peer replaced the view behind its export `key`: describe it
    /// again (see [`Revised`]).
    Revised {
        /// The export, in the peer's table.
        key: u32,
        /// The view's version now.
        version: u32,
    },
    /// An extension frame arrived.
    Extension(Tag, Bytes),
    /// The connection closed. Every question has been answered with a
    /// `disconnected` error, and every running call cancelled, before this.
    Closed(Closed),
}

/// The sizes of a session's tables, for tests and tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// Objects exported to the peer (the bootstrap object included).
    pub exports: usize,
    /// References the peer holds, summed over exports (bootstrap excluded).
    pub export_refs: u64,
    /// The peer's objects imported.
    pub imports: usize,
    /// Calls and describes sent and not yet answered.
    pub questions: usize,
    /// The peer's calls running here.
    pub answers: usize,
    /// The peer's oneway calls running here.
    pub oneways: usize,
    /// The peer's oneway calls dropped because too many ran already.
    pub refused_oneways: u64,
    /// The peer's calls whose answers are kept for pipelining.
    pub promises: usize,
    /// The peer's pipelined calls waiting for a promised answer.
    pub held: usize,
}

struct Export {
    target: Ref,
    /// References the peer holds (sent and not released).
    count: u64,
    /// Never released: the bootstrap object.
    pinned: bool,
    /// The newest view version the peer was told of with a Revised frame.
    announced: u32,
}

struct Import {
    /// References received and not yet given back.
    count: u32,
    /// Which proxy holds them; see [`Session::import`].
    generation: u64,
}

#[derive(Clone, Copy)]
struct Question {
    deadline: Option<Instant>,
}

/// The questions this side awaits answers to, by id, with a count of
/// those that have a deadline: finding the next deadline then costs
/// nothing while none has one, the usual case, however many are in
/// flight.
///
/// The ids are this side's own, handed out in sequence (a peer's ids
/// never key it), so a fast hash serves.
#[derive(Default)]
struct Questions {
    by_id: rustc_hash::FxHashMap<u64, Question>,
    with_deadline: usize,
}

impl Questions {
    fn insert(&mut self, id: u64, question: Question) {
        if question.deadline.is_some() {
            self.with_deadline += 1;
        }
        if let Some(old) = self.by_id.insert(id, question) {
            self.forget(old);
        }
    }

    fn remove(&mut self, id: &u64) -> Option<Question> {
        let question = self.by_id.remove(id)?;
        self.forget(question);
        Some(question)
    }

    fn forget(&mut self, question: Question) {
        if question.deadline.is_some() {
            self.with_deadline -= 1;
        }
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.with_deadline == 0 {
            return None;
        }
        self.by_id.values().filter_map(|q| q.deadline).min()
    }

    /// The questions whose deadline has passed at `now`, oldest first.
    fn expired(&self, now: Instant) -> Vec<u64> {
        if self.with_deadline == 0 {
            return Vec::new();
        }
        let mut expired: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, q)| q.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        expired.sort_unstable();
        expired
    }

    /// Every question's id, oldest first; none is left.
    fn drain(&mut self) -> Vec<u64> {
        self.with_deadline = 0;
        let mut ids: Vec<u64> = self.by_id.drain().map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    }
}

enum State {
    AwaitingHello { since: Instant },
    Open,
    Closed,
}

/// One side of one connection. See the [module docs](self).
pub struct Session {
    config: SessionConfig,
    state: State,
    bootstrap: Option<u32>,
    peer_max_frame: usize,
    /// By key. The keys are this side's own, handed out in sequence (a
    /// peer only names them), so a fast hash serves.
    exports: rustc_hash::FxHashMap<u32, Export>,
    keys: HashMap<Ref, u32>,
    next_key: u32,
    imports: HashMap<u32, Import>,
    next_generation: u64,
    questions: Questions,
    next_question: u64,
    answers: HashSet<u64>,
    /// The peer's oneway calls running here, by a handle of this side's.
    oneways: HashSet<u64>,
    next_oneway: u64,
    refused_oneways: u64,
    promises: pipeline::Promises,
    transmit: VecDeque<Bytes>,
    unsent: usize,
    /// When the peer was last heard from, and whether it was pinged since.
    last_heard: Instant,
    pinged: bool,
    next_nonce: u64,
    events: VecDeque<Event>,
    /// References the session no longer holds. The session never drops a
    /// `Ref` itself: the last one may be the last handle on a user's object
    /// or a proxy, whose drop is not the session's to run (the driver holds
    /// its lock). The driver takes them with [`take_released`](Session::take_released).
    released: Vec<Ref>,
    /// Releases of imports gathered for the next frame to go out.
    releasing: Vec<Released>,
    /// References that got a key in the export table since the last
    /// [`take_exported`](Session::take_exported).
    exported: Vec<Ref>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("node", &self.config.node)
            .field("tables", &self.tables())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that offers `bootstrap` (if any) to the peer and has
    /// queued its Hello.
    pub fn new(config: SessionConfig, bootstrap: Option<Ref>, now: Instant) -> Self {
        let mut session = Session {
            state: State::AwaitingHello { since: now },
            bootstrap: None,
            peer_max_frame: Limits::default().max_frame,
            exports: rustc_hash::FxHashMap::default(),
            keys: HashMap::new(),
            next_key: 1,
            imports: HashMap::new(),
            next_generation: 1,
            questions: Questions::default(),
            next_question: 1,
            answers: HashSet::new(),
            oneways: HashSet::new(),
            next_oneway: 1,
            refused_oneways: 0,
            promises: pipeline::Promises::default(),
            transmit: VecDeque::new(),
            unsent: 0,
            last_heard: now,
            pinged: false,
            next_nonce: 1,
            events: VecDeque::new(),
            released: Vec::new(),
            exported: Vec::new(),
            releasing: Vec::new(),
            config,
        };
        if let Some(target) = bootstrap {
            let key = session.peek_key(&target);
            if let Some(export) = session.exports.get_mut(&key) {
                export.pinned = true;
            }
            session.bootstrap = Some(key);
        }
        let hello = Hello {
            version: VERSION,
            node: session.config.node,
            bootstrap: session.bootstrap,
            credentials: session.config.credentials.clone(),
            max_frame: session.config.max_frame,
            max_in_flight: session.config.max_in_flight,
        };
        session.send(&Frame::Hello(hello));
        session
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the peer's Hello has arrived (and the session is not closed).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// The sizes of the tables.
    pub fn tables(&self) -> Tables {
        Tables {
            exports: self.exports.len(),
            export_refs: self.exports.values().map(|e| e.count).sum(),
            imports: self.imports.len(),
            questions: self.questions.len(),
            answers: self.answers.len(),
            oneways: self.oneways.len(),
            refused_oneways: self.refused_oneways,
            promises: self.promises.len(),
            held: self.promises.held(),
        }
    }

    /// The next frame to send, encoded.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if !self.releasing.is_empty() && !self.is_closed() {
            let entries = std::mem::take(&mut self.releasing);
            self.send_releases(entries);
        }
        let frame = self.transmit.pop_front()?;
        self.unsent -= frame.len();
        if let Some(budget) = &self.config.node_budget {
            budget.used.fetch_sub(frame.len(), Ordering::Relaxed);
        }
        Some(frame)
    }

    /// Whether [`poll_transmit`](Session::poll_transmit) has a frame to
    /// give.
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty() || (!self.releasing.is_empty() && !self.is_closed())
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The references the session let go of since the last call (released
    /// by the peer, or dropped when the session closed), for the driver to
    /// drop where no lock of its is held.
    pub fn take_released(&mut self) -> Vec<Ref> {
        std::mem::take(&mut self.released)
    }

    /// The references that got a key in the export table since the last
    /// call: the driver watches their views, to tell the peer when one is
    /// replaced (see [`revised`](Session::revised)).
    pub fn take_exported(&mut self) -> Vec<Ref> {
        std::mem::take(&mut self.exported)
    }

    /// The peer's oneway call with handle `handle` has finished (or was
    /// dropped): it no longer counts against the limit.
    pub fn oneway_done(&mut self, handle: u64) {
        self.oneways.remove(&handle);
    }

    /// Whether the peer's oneway call with handle `handle` still runs here
    /// (not ended by the close).
    pub fn is_running_oneway(&self, handle: u64) -> bool {
        self.oneways.contains(&handle)
    }

    /// Whether the peer's call `id` is still running here (not answered,
    /// cancelled or ended by the close).
    pub fn is_answering(&self, id: u64) -> bool {
        self.answers.contains(&id)
    }

    /// When [`handle_timeout`](Session::handle_timeout) must be called
    /// next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hello = match self.state {
            State::AwaitingHello { since } => Some(since + self.config.hello_timeout),
            _ => None,
        };
        let liveness = match self.state {
            State::Open if self.pinged => Some(self.last_heard + self.config.idle_timeout),
            State::Open => {
                Some(self.last_heard + self.config.keepalive.min(self.config.idle_timeout))
            }
            _ => None,
        };
        self.questions
            .next_deadline()
            .into_iter()
            .chain(hello)
            .chain(liveness)
            .min()
    }

    /// Acts on the passing of time: questions past their deadline fail
    /// with `deadline exceeded` (and are cancelled at the peer); a peer
    /// that has not said Hello in time is disconnected; a peer not heard
    /// from for the keepalive interval is pinged, and one not heard from
    /// for the idle timeout is disconnected.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_open() {
            let silent = now.saturating_duration_since(self.last_heard);
            if silent >= self.config.idle_timeout {
                self.close(format!(
                    "the peer showed no sign of life for {:?} (idle timeout)",
                    self.config.idle_timeout
                ));
                return;
            }
            if !self.pinged && silent >= self.config.keepalive {
                self.pinged = true;
                let nonce = self.next_nonce;
                self.next_nonce += 1;
                self.send(&Frame::Ping(Ping { nonce }));
            }
        }
        if let State::AwaitingHello { since } = self.state {
            if now >= since + self.config.hello_timeout {
                self.close(format!(
                    "the peer sent no Hello within {:?}",
                    self.config.hello_timeout
                ));
                return;
            }
        }
        let expired = self.questions.expired(now);
        for id in expired {
            self.questions.remove(&id);
            self.send(&Frame::Cancel(Cancel { id }));
            let e = Error::new(
                ErrorKind::DeadlineExceeded,
                "the call's deadline passed before the peer answered",
            );
            self.events.push_back(Event::Answer(id, Answer::Error(e)));
        }
    }

    /// Takes in one frame from the carrier, received at `now`.
    pub fn receive(&mut self, frame: Bytes, now: Instant) {
        if self.is_closed() {
            return;
        }
        // Any frame is a sign of life.
        self.last_heard = now;
        self.pinged = false;
        let limits = Limits {
            max_frame: self.config.max_frame as usize,
        };
        let frame = match Frame::decode(frame, &limits) {
            Ok(frame) => frame,
            Err(e) => return self.close(format!("bad frame: {e}")),
        };
        if let State::AwaitingHello { .. } = self.state {
            return match frame {
                Frame::Hello(hello) if hello.version == VERSION => {
                    self.peer_max_frame = hello.max_frame as usize;
                    self.state = State::Open;
                    self.events.push_back(Event::Opened(hello));
                }
                Frame::Hello(hello) => self.close(format!(
                    "the peer speaks protocol version {}, this node speaks {VERSION}",
                    hello.version
                )),
                other => self.close(format!("the first frame was {:?}, not Hello", other.tag())),
            };
        }
        match frame {
            Frame::Hello(_) => self.close("a second Hello".into()),
            Frame::Goodbye(g) => self.shut(format!("the peer said goodbye: {}", g.reason), false),
            Frame::Call(call) => self.on_call(
                (Some(call.id), false),
                (
                    PipelineTarget::Export { key: call.key },
                    call.selector,
                    call.version,
                ),
                call.context,
                call.refs,
                call.args,
            ),
            Frame::Oneway(call) => self.on_call(
                (None, false),
                (
                    PipelineTarget::Export { key: call.key },
                    call.selector,
                    call.version,
                ),
                call.context,
                call.refs,
                call.args,
            ),
            Frame::Pipeline(call) => self.on_call(
                (Some(call.id), call.keep),
                (call.target, call.selector, call.version),
                call.context,
                call.refs,
                call.args,
            ),
            Frame::PipelineOneway(call) => self.on_call(
                (None, false),
                (call.target, call.selector, call.version),
                call.context,
                call.refs,
                call.args,
            ),
            Frame::Finish(finish) => self.on_finish(finish),
            Frame::Cancel(Cancel { id }) => self.cancel_answer(id),
            Frame::Return(ret) => self.on_return(ret),
            Frame::Release(Release { entries }) => {
                for Released { key, count } in entries {
                    self.on_release(key, count);
                }
            }
            Frame::Describe(Describe { id, keys }) => {
                // At most one frame's worth of references; the rest are
                // answered as unknown.
                let max = self.config.max_refs_per_frame as usize;
                let views = keys
                    .iter()
                    .enumerate()
                    .map(|(i, key)| {
                        self.exports
                            .get(key)
                            .filter(|_| i < max)
                            .and_then(|e| e.target.describe().ok())
                            .map(|d| wire_view(&d))
                    })
                    .collect();
                self.send(&Frame::Description(Description { id, views }));
            }
            Frame::Description(Description { id, views }) => {
                if self.questions.remove(&id).is_some() {
                    self.events
                        .push_back(Event::Answer(id, Answer::Description(views)));
                }
            }
            Frame::Revised(Revised { key, version }) => {
                if self.imports.contains_key(&key) {
                    self.events.push_back(Event::Revised { key, version });
                }
            }
            Frame::Ping(Ping { nonce }) => self.send(&Frame::Pong(Pong { nonce })),
            Frame::Pong(_) => {}
            Frame::Extension { tag, body } => self.events.push_back(Event::Extension(tag, body)),
        }
    }

    fn on_call(
        &mut self,
        (id, keep): (Option<u64>, bool),
        (to, selector, version): (PipelineTarget, u32, u32),
        context: WireContext,
        wire_refs: Vec<WireRef>,
        args: Bytes,
    ) {
        let refuse = |this: &mut Self, kind: ErrorKind, message: String| {
            // References the refused call carried were counted by the peer
            // when it sent them: give them back.
            this.release_unused(&wire_refs);
            if let Some(id) = id {
                this.send_error(id, Error::new(kind, message));
            }
        };
        if let Some(id) = id.filter(|id| self.answers.contains(id)) {
            return self.close(format!("call id {id} reused while in flight"));
        }
        let target = match self.addressable(to) {
            Ok(target) => target,
            Err(e) => return refuse(self, e.kind(), e.message().to_string()),
        };
        let key = match to {
            PipelineTarget::Export { key } => key,
            PipelineTarget::Answer { .. } => 0,
        };
        if wire_refs.len() > self.config.max_refs_per_frame as usize {
            return refuse(
                self,
                ErrorKind::BadArguments,
                format!(
                    "the call carries {} references; this side takes at most {} in one frame",
                    wire_refs.len(),
                    self.config.max_refs_per_frame
                ),
            );
        }
        let refs = match self.resolve_refs(&wire_refs) {
            Ok(refs) => refs,
            Err(key) => {
                return refuse(
                    self,
                    ErrorKind::UnknownObject,
                    format!("the arguments name export {key}, which this connection does not hold"),
                );
            }
        };
        let mut oneway = None;
        match id {
            Some(id) => {
                if self.answers.len() >= self.config.max_in_flight as usize {
                    return refuse(
                        self,
                        ErrorKind::Overloaded,
                        format!(
                            "{} calls are running on this connection already",
                            self.config.max_in_flight
                        ),
                    );
                }
                if keep && self.promises.len() >= self.config.max_promises as usize {
                    return refuse(
                        self,
                        ErrorKind::Overloaded,
                        format!(
                            "{} answers are kept for pipelining on this connection already",
                            self.config.max_promises
                        ),
                    );
                }
                self.answers.insert(id);
                if keep {
                    self.promises.keep(id);
                }
            }
            None => {
                if self.oneways.len() >= self.config.max_oneway_in_flight as usize {
                    self.refused_oneways += 1;
                    tracing::warn!(
                        node = self.config.node,
                        key,
                        selector = format_args!("{selector:08x}"),
                        running = self.oneways.len(),
                        refused = self.refused_oneways,
                        "dropped a oneway call: too many run on this connection already"
                    );
                    return refuse(self, ErrorKind::Overloaded, String::new());
                }
                let handle = self.next_oneway;
                self.next_oneway += 1;
                self.oneways.insert(handle);
                oneway = Some(handle);
            }
        }
        let (target, question, index, fingerprint) = match (target, to) {
            (Some(target), _) => (Some(target), 0, 0, 0),
            (
                None,
                PipelineTarget::Answer {
                    question,
                    index,
                    fingerprint,
                },
            ) => (None, question, index, fingerprint),
            (None, PipelineTarget::Export { .. }) => return,
        };
        match target {
            Some(target) => self.events.push_back(Event::Call(IncomingCall {
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
            })),
            None => self.address_promise(
                question,
                pipeline::Held {
                    id,
                    oneway,
                    keep,
                    index,
                    fingerprint,
                    selector,
                    context,
                    refs,
                    args,
                },
            ),
        }
    }

    fn resolve_refs(&self, wire: &[WireRef]) -> Result<Vec<Incoming>, u32> {
        wire.iter()
            .map(|r| match *r {
                WireRef::Sender { key, fingerprint } => Ok(Incoming::Import { key, fingerprint }),
                WireRef::Receiver { key } => self
                    .exports
                    .get(&key)
                    .map(|e| Incoming::Local(e.target.clone()))
                    .ok_or(key),
            })
            .collect()
    }

    /// Gives back the peer's exports named in a frame whose value will
    /// never be read.
    fn release_unused(&mut self, wire: &[WireRef]) {
        // One entry per key, in the order first met, in as few frames as
        // the peer's frame limit allows.
        let mut entries: Vec<Released> = Vec::new();
        let mut index: HashMap<u32, usize> = HashMap::new();
        for r in wire {
            if let WireRef::Sender { key, .. } = *r {
                match index.get(&key) {
                    Some(&i) => entries[i].count = entries[i].count.saturating_add(1),
                    None => {
                        index.insert(key, entries.len());
                        entries.push(Released { key, count: 1 });
                    }
                }
            }
        }
        self.send_releases(entries);
    }

    /// Sends `entries` in as few Release frames as the peer's frame limit
    /// allows.
    fn send_releases(&mut self, entries: Vec<Released>) {
        // An entry takes at most 10 bytes; leave room for the tag and count.
        let per_frame = (self.peer_max_frame.saturating_sub(16) / 10).max(1);
        for chunk in entries.chunks(per_frame) {
            self.send(&Frame::Release(Release {
                entries: chunk.to_vec(),
            }));
        }
    }

    fn on_return(&mut self, ret: Return) {
        if self.questions.remove(&ret.id).is_none() {
            // Cancelled, or timed out: nobody wants it.
            if let Outcome::Ok(refs, _) = &ret.outcome {
                self.release_unused(refs);
            }
            return;
        }
        let answer = match ret.outcome {
            Outcome::Ok(wire_refs, _)
                if wire_refs.len() > self.config.max_refs_per_frame as usize =>
            {
                self.release_unused(&wire_refs);
                Answer::Error(Error::new(
                    ErrorKind::BadArguments,
                    format!(
                        "the result carries {} references; this side takes at most {} in one frame",
                        wire_refs.len(),
                        self.config.max_refs_per_frame
                    ),
                ))
            }
            Outcome::Ok(wire_refs, value) => match self.resolve_refs(&wire_refs) {
                Ok(refs) => Answer::Value(refs, value),
                Err(key) => {
                    self.release_unused(&wire_refs);
                    Answer::Error(Error::new(
                        ErrorKind::UnknownObject,
                        format!(
                            "the result names export {key}, which this connection does not hold"
                        ),
                    ))
                }
            },
            Outcome::Err(e) => Answer::Error(wire_to_error(e)),
        };
        self.events.push_back(Event::Answer(ret.id, answer));
    }

    fn on_release(&mut self, key: u32, count: u32) {
        let Some(export) = self.exports.get_mut(&key) else {
            return;
        };
        if export.pinned {
            return;
        }
        export.count = export.count.saturating_sub(u64::from(count));
        if export.count == 0 {
            if let Some(export) = self.exports.remove(&key) {
                if let Some((r, _)) = self.keys.remove_entry(&export.target) {
                    self.released.push(r);
                }
                self.released.push(export.target);
            }
        }
    }

    /// Counts one more reference to the peer's export `key`, received in a
    /// frame; returns the generation of the proxy that holds it.
    ///
    /// `alive` says whether the driver still has a live proxy for the key.
    /// If it has none but the table still counts references (the last
    /// proxy is being dropped as this reference arrives), those are given
    /// back now and a new generation starts, so the old proxy's
    /// [`drop_import`](Session::drop_import) will not give back the new
    /// one's.
    pub fn import(&mut self, key: u32, alive: bool) -> u64 {
        if let Some(entry) = self.imports.get_mut(&key) {
            if alive {
                entry.count = entry.count.saturating_add(1);
                return entry.generation;
            }
            let count = entry.count;
            self.imports.remove(&key);
            self.send(&Frame::Release(Release::one(key, count)));
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.imports.insert(
            key,
            Import {
                count: 1,
                generation,
            },
        );
        generation
    }

    /// The last proxy of generation `generation` for the peer's export
    /// `key` is gone: give back every reference it held.
    pub fn drop_import(&mut self, key: u32, generation: u64) {
        match self.imports.get(&key) {
            Some(entry) if entry.generation == generation => {
                let count = entry.count;
                self.imports.remove(&key);
                if !self.is_closed() {
                    // Gathered, and sent in one frame with every other
                    // release before the next frame goes out.
                    self.releasing.push(Released { key, count });
                }
            }
            _ => {}
        }
    }

    /// Tells the peer that the view behind `target`, if this connection
    /// exports it, has version `version` now (a [`Revised`] frame), unless
    /// the peer was told already.
    pub fn revised(&mut self, target: &Ref, version: u32) {
        let Some(&key) = self.keys.get(target) else {
            return;
        };
        self.revised_key(key, version);
    }

    /// The same, by key: for a call that went by an older description.
    pub fn revised_key(&mut self, key: u32, version: u32) {
        if self.is_closed() {
            return;
        }
        let Some(export) = self.exports.get_mut(&key) else {
            return;
        };
        if export.announced >= version {
            return;
        }
        export.announced = version;
        self.send(&Frame::Revised(Revised { key, version }));
    }

    /// Sends a call to the peer's export `callee.key`; returns its id.
    ///
    /// `args` is the encoded argument tuple, `refs` the references it
    /// indexes. A `deadline` makes the call fail with `deadline exceeded`
    /// when it passes (see [`handle_timeout`](Session::handle_timeout)).
    pub fn call(
        &mut self,
        Callee {
            key,
            selector,
            version,
        }: Callee,
        context: WireContext,
        refs: Vec<OutgoingRef>,
        args: Bytes,
        deadline: Option<Instant>,
    ) -> Result<u64, Error> {
        self.ask(refs, deadline, |id| {
            Frame::Call(CallFrame {
                id,
                key,
                selector,
                version,
                context,
                refs: Vec::new(),
                args,
            })
        })
    }

    /// Sends the frame `frame(id)` makes for the next question id, and
    /// awaits its answer until `deadline`.
    fn ask(
        &mut self,
        refs: Vec<OutgoingRef>,
        deadline: Option<Instant>,
        frame: impl FnOnce(u64) -> Frame,
    ) -> Result<u64, Error> {
        if let Err(e) = self.check_open() {
            self.let_go(refs);
            return Err(e);
        }
        let id = self.next_question;
        self.send_out(frame(id), refs)?;
        self.next_question += 1;
        self.questions.insert(id, Question { deadline });
        Ok(id)
    }

    /// Sends a frame that wants no answer.
    fn tell(&mut self, refs: Vec<OutgoingRef>, frame: Frame) -> Result<(), Error> {
        if let Err(e) = self.check_open() {
            self.let_go(refs);
            return Err(e);
        }
        self.send_out(frame, refs)
    }

    /// Sends a oneway call to the peer's export `callee.key`.
    pub fn oneway(
        &mut self,
        Callee {
            key,
            selector,
            version,
        }: Callee,
        context: WireContext,
        refs: Vec<OutgoingRef>,
        args: Bytes,
    ) -> Result<(), Error> {
        let frame = Frame::Oneway(OnewayFrame {
            key,
            selector,
            version,
            context,
            refs: Vec::new(),
            args,
        });
        self.tell(refs, frame)
    }

    /// Asks what the peer's exports `keys` offer, in one frame; returns the
    /// question's id. The answer lists one view per key, in order.
    pub fn describe(&mut self, keys: Vec<u32>) -> Result<u64, Error> {
        self.check_open()?;
        let id = self.next_question;
        self.next_question += 1;
        self.send(&Frame::Describe(Describe { id, keys }));
        self.questions.insert(id, Question { deadline: None });
        Ok(id)
    }

    /// Sends a call to `target` (an export of the peer's, or a reference
    /// its answer to one of this side's calls holds); returns its id.
    /// With `keep`, the peer holds the answer for calls addressed to it,
    /// until [`finish`](Session::finish). See [`call`](Session::call) for
    /// the rest.
    #[allow(clippy::too_many_arguments)]
    pub fn pipeline(
        &mut self,
        target: PipelineTarget,
        keep: bool,
        (selector, version): (u32, u32),
        context: WireContext,
        refs: Vec<OutgoingRef>,
        args: Bytes,
        deadline: Option<Instant>,
    ) -> Result<u64, Error> {
        self.ask(refs, deadline, |id| {
            Frame::Pipeline(PipelineFrame {
                id,
                keep,
                target,
                selector,
                version,
                context,
                refs: Vec::new(),
                args,
            })
        })
    }

    /// Sends a oneway call to `target`; see [`pipeline`](Session::pipeline).
    pub fn pipeline_oneway(
        &mut self,
        target: PipelineTarget,
        (selector, version): (u32, u32),
        context: WireContext,
        refs: Vec<OutgoingRef>,
        args: Bytes,
    ) -> Result<(), Error> {
        let frame = Frame::PipelineOneway(PipelineOnewayFrame {
            target,
            selector,
            version,
            context,
            refs: Vec::new(),
            args,
        });
        self.tell(refs, frame)
    }

    /// This side addresses no more calls to the answer of its kept call
    /// `question`, and no longer awaits it: a Finish frame. An answer that
    /// arrives later gives back what it holds.
    pub fn finish(&mut self, question: u64) {
        self.questions.remove(&question);
        if !self.is_closed() {
            self.send(&Frame::Finish(Finish { question }));
        }
    }

    /// The caller no longer wants the answer to `id`.
    pub fn cancel(&mut self, id: u64) {
        if self.questions.remove(&id).is_some() && !self.is_closed() {
            self.send(&Frame::Cancel(Cancel { id }));
        }
    }

    /// Answers the peer's call `id` with a value (its references and its
    /// bytes) or an error. Ignored if the call was cancelled meanwhile.
    ///
    /// The error is already in its wire form ([`error_to_wire`]): making it
    /// may run the user's `Serialize` of the callee's error value, which
    /// the driver does before it takes its lock.
    pub fn answer(&mut self, id: u64, result: Result<(Vec<OutgoingRef>, Bytes), WireError>) {
        if !self.answers.remove(&id) || self.is_closed() {
            // Nobody wants it: the references it would have carried are let
            // go, but not dropped here.
            if let Ok((refs, _)) = result {
                self.let_go(refs);
            }
            return;
        }
        match result {
            Ok((refs, value)) => {
                let frame = Frame::Return(Return {
                    id,
                    outcome: Outcome::Ok(Vec::new(), value),
                });
                if let Err(e) = self.send_out(frame, refs) {
                    self.send_error(id, e);
                }
            }
            Err(e) => self.send_wire_error(id, e),
        }
    }

    /// Hands references that will not be sent to the driver, to drop where
    /// no lock of its is held.
    fn let_go(&mut self, refs: Vec<OutgoingRef>) {
        self.released
            .extend(refs.into_iter().filter_map(|r| match r {
                OutgoingRef::Export(r) => Some(r),
                OutgoingRef::Home(_) => None,
            }));
    }

    /// Gives back the peer's exports among `refs`, which arrived in a value
    /// nobody will read (a reply to a call its caller no longer awaits).
    pub fn give_back(&mut self, refs: &[Incoming]) {
        let wire: Vec<WireRef> = refs
            .iter()
            .filter_map(|r| match r {
                Incoming::Import { key, fingerprint } => Some(WireRef::Sender {
                    key: *key,
                    fingerprint: *fingerprint,
                }),
                Incoming::Local(_) => None,
            })
            .collect();
        if !self.is_closed() {
            self.release_unused(&wire);
        }
    }

    /// Answers the peer's call `id` at once with `()`, and goes on running
    /// it as a oneway call: for a Call to a method the view makes oneway
    /// (PROTOCOL.md §6.4). Returns its oneway handle (see
    /// [`oneway_done`](Session::oneway_done)), or `None` if the call was
    /// cancelled meanwhile. The call keeps counting against the limits.
    pub fn answer_as_oneway(&mut self, id: u64) -> Option<u64> {
        if !self.answers.contains(&id) || self.is_closed() {
            return None;
        }
        // Its answer is `()`, which holds no reference to pipeline on.
        self.fail_promise(
            id,
            Error::new(
                ErrorKind::BadArguments,
                "the promised call is oneway: its answer holds no reference",
            ),
        );
        self.answer(id, Ok((Vec::new(), Bytes::new())));
        let handle = self.next_oneway;
        self.next_oneway += 1;
        self.oneways.insert(handle);
        Some(handle)
    }

    /// Closes the session from this side: Goodbye to the peer, every
    /// question answered `disconnected`, every running call cancelled.
    pub fn close(&mut self, reason: String) {
        if self.is_closed() {
            return;
        }
        let mut said = reason.clone();
        cut_to(&mut said, self.peer_max_frame.saturating_sub(16));
        self.send(&Frame::Goodbye(Goodbye { reason: said }));
        self.shut(reason, true);
    }

    /// The carrier is gone (closed, reset, failed): like
    /// [`close`](Session::close) without a Goodbye.
    pub fn carrier_lost(&mut self, reason: String) {
        // Nothing more can be sent: what waited is let go at once.
        self.discard_unsent();
        self.shut(reason, false);
    }

    fn shut(&mut self, reason: String, by_us: bool) {
        if self.is_closed() {
            return;
        }
        self.state = State::Closed;
        for id in self.questions.drain() {
            let e = Error::new(
                ErrorKind::Disconnected,
                format!("the connection closed before the answer: {reason}"),
            );
            self.events.push_back(Event::Answer(id, Answer::Error(e)));
        }
        let mut answers: Vec<u64> = self.answers.drain().collect();
        answers.sort_unstable();
        self.events.extend(answers.into_iter().map(Event::Cancel));
        self.oneways.clear();
        let kept = self.promises.clear();
        self.released.extend(kept);
        self.released
            .extend(self.exports.drain().map(|(_, export)| export.target));
        self.released.extend(self.keys.drain().map(|(r, _)| r));
        self.imports.clear();
        self.events
            .push_back(Event::Closed(Closed { reason, by_us }));
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.state {
            State::Closed => Err(Error::new(
                ErrorKind::Disconnected,
                "the connection is closed",
            )),
            _ => Ok(()),
        }
    }

    fn take_key(&mut self) -> u32 {
        loop {
            let key = self.next_key;
            self.next_key = self.next_key.wrapping_add(1).max(1);
            if !self.exports.contains_key(&key) {
                return key;
            }
        }
    }

    /// Fills in the frame's reference table (exporting as needed) and
    /// sends it, unless it is too large for the peer.
    fn send_out(&mut self, mut frame: Frame, refs: Vec<OutgoingRef>) -> Result<(), Error> {
        let wire: Vec<WireRef> = refs
            .into_iter()
            .map(|r| match r {
                OutgoingRef::Home(key) => WireRef::Receiver { key },
                OutgoingRef::Export(target) => WireRef::Sender {
                    key: self.peek_key(&target),
                    fingerprint: target.interface().fingerprint(),
                },
            })
            .collect();
        // Counted once the frame is sure to be sent (no allocation when
        // the value holds no references).
        let exported: Vec<u32> = wire
            .iter()
            .filter_map(|r| match *r {
                WireRef::Sender { key, .. } => Some(key),
                WireRef::Receiver { .. } => None,
            })
            .collect();
        let table = match &mut frame {
            Frame::Call(c) => &mut c.refs,
            Frame::Oneway(c) => &mut c.refs,
            Frame::Pipeline(c) => &mut c.refs,
            Frame::PipelineOneway(c) => &mut c.refs,
            Frame::Return(Return {
                outcome: Outcome::Ok(r, _),
                ..
            }) => r,
            _ => unreachable!("only calls and returns carry values"),
        };
        *table = wire;
        let bytes = encode(&frame).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        if bytes.len() > self.peer_max_frame {
            // Nothing was exported: the keys peeked are released again.
            self.drop_unsent_keys();
            let (kind, what) = match frame {
                Frame::Return(_) => (ErrorKind::Failed, "result"),
                _ => (ErrorKind::BadArguments, "arguments"),
            };
            return Err(Error::new(
                kind,
                format!(
                    "a frame of {} bytes with these {what} exceeds the peer's limit of {} bytes",
                    bytes.len(),
                    self.peer_max_frame
                ),
            ));
        }
        for key in exported {
            if let Some(e) = self.exports.get_mut(&key) {
                e.count += 1;
            }
        }
        self.push(bytes);
        Ok(())
    }

    /// The key `target` has (or gets) in the export table. A new entry
    /// starts with no references counted; [`send_out`] counts them once
    /// the frame is sure to be sent.
    fn peek_key(&mut self, target: &Ref) -> u32 {
        if let Some(key) = self.keys.get(target) {
            return *key;
        }
        let key = self.take_key();
        self.keys.insert(target.clone(), key);
        self.exported.push(target.clone());
        self.exports.insert(
            key,
            Export {
                target: target.clone(),
                count: 0,
                pinned: false,
                announced: 0,
            },
        );
        key
    }

    fn drop_unsent_keys(&mut self) {
        let unused: Vec<u32> = self
            .exports
            .iter()
            .filter(|(_, e)| e.count == 0 && !e.pinned)
            .map(|(k, _)| *k)
            .collect();
        for key in unused {
            if let Some(e) = self.exports.remove(&key) {
                if let Some((r, _)) = self.keys.remove_entry(&e.target) {
                    self.released.push(r);
                }
                self.released.push(e.target);
            }
        }
    }

    fn send_error(&mut self, id: u64, e: Error) {
        self.send_wire_error(id, error_to_wire(&e));
    }

    fn send_wire_error(&mut self, id: u64, mut error: WireError) {
        // The peer's frame limit holds for errors too: a callee's error
        // value that does not fit is left out (the message says so), and
        // a message is cut to at most 4 KiB.
        const NOTE: &str = " (the callee's error value was too large to send)";
        let room = self.peer_max_frame.saturating_sub(64);
        let long = error.callee.as_ref().map_or(0, Vec::len) + error.message.len().min(4096);
        if long > room {
            error.callee = None;
        }
        cut_to(
            &mut error.message,
            4096.min(room).saturating_sub(NOTE.len()),
        );
        if long > room {
            error.message.push_str(NOTE);
        }
        self.send(&Frame::Return(Return {
            id,
            outcome: Outcome::Err(error),
        }));
    }

    fn send(&mut self, frame: &Frame) {
        match encode(frame) {
            Ok(bytes) => self.push(bytes),
            // Only a frame with an unserializable field fails; ours have
            // none. Nothing is sent, and the session says why.
            Err(e) => self.close(format!("cannot encode a {:?} frame: {e}", frame.tag())),
        }
    }

    fn push(&mut self, bytes: Bytes) {
        let len = bytes.len();
        self.unsent += len;
        self.transmit.push_back(bytes);
        let node = self.config.node_budget.as_ref().map(|budget| {
            let used = budget.used.fetch_add(len, Ordering::Relaxed) + len;
            (used, budget.max())
        });
        if self.is_closed() {
            return;
        }
        let unsent = self.unsent;
        if unsent > self.config.max_unsent {
            self.discard_unsent();
            self.shut(
                format!("the peer stopped reading: {unsent} bytes wait to be sent"),
                true,
            );
        } else if let Some((used, max)) =
            node.filter(|&(used, max)| used > max && unsent >= max / 16)
        {
            self.discard_unsent();
            self.shut(
                format!(
                    "the peer reads too slowly: {unsent} bytes wait for it, and the node's budget of {max} bytes is spent ({used} wait in all)"
                ),
                true,
            );
        }
    }
}

impl Session {
    /// Forgets every frame still waiting: for a peer that does not read,
    /// which will never get them.
    fn discard_unsent(&mut self) {
        if let Some(budget) = &self.config.node_budget {
            budget.used.fetch_sub(self.unsent, Ordering::Relaxed);
        }
        self.transmit.clear();
        self.unsent = 0;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // What was never sent no longer counts against the node.
        if let Some(budget) = &self.config.node_budget {
            budget.used.fetch_sub(self.unsent, Ordering::Relaxed);
        }
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn cut_to(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

fn encode(frame: &Frame) -> Result<Bytes, FrameError> {
    frame.to_bytes()
}

/// A view's descriptor as the wire describes it.
pub fn wire_view(d: &ViewDescriptor) -> WireView {
    WireView {
        interface: d.interface().name().to_string(),
        fingerprint: d.interface().fingerprint(),
        view: d.view().to_string(),
        version: d.version(),
        methods: d
            .methods()
            .iter()
            .map(|m| WireMethod {
                selector: m.method.selector().id(),
                name: m.method.name().to_string(),
                kind: abstraction_code(m.kind),
                // Only a hand-written `Schema` holding postcard-schema's
                // `Schema` type has no canonical form; such a method is
                // described without types.
                types: m
                    .method
                    .schema()
                    .and_then(|schema| WireTypes::of(m.method.params(), schema).ok()),
            })
            .collect(),
    }
}

/// An error as it travels.
pub fn error_to_wire(e: &Error) -> WireError {
    let callee = e.callee().and_then(|detail| {
        detail.with(|value| {
            let mut bytes = Vec::new();
            // A callee error holding references cannot travel; its message
            // still does.
            match value.encode(&mut bytes) {
                Ok(refs) if refs.is_empty() => Some(bytes),
                _ => None,
            }
        })
    });
    WireError {
        kind: error_code(e.kind()),
        message: e.message().to_string(),
        callee,
    }
}

/// An error as it arrived.
pub fn wire_to_error(e: WireError) -> Error {
    let kind = crate::frame::error_from_code(e.kind);
    match e.callee {
        Some(bytes) if kind == ErrorKind::Failed => Error::callee_failed(
            tether_semantics::Value::encoded(Bytes::from(bytes)),
            e.message,
        ),
        _ => Error::new(kind, e.message),
    }
}
