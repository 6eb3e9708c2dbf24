//! Promised answers: the peer's calls kept for pipelining, and the calls
//! the peer addressed to their answers (PROTOCOL.md §5.12–5.14, §6.7).
//!
//! A call sent with `keep` gets an entry here when it arrives. Calls
//! addressed to its answer are held, in arrival order, until the driver
//! has the answer: [`Session::drain`] hands them over, and more that
//! arrive meanwhile queue behind them, so none overtakes another. The
//! driver admits them one by one and sends the answer only once the queue
//! is empty, so even a call the caller makes after the answer, straight to
//! the reference it holds, comes after every held one. Failures need no
//! user code and are answered here.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use tether_semantics::{Error, ErrorKind, Ref, broken_promise};

use super::{Event, Incoming, IncomingCall, Session};
use crate::frame::{Finish, PipelineTarget, WireContext};

/// What a kept answer resolved to: the references its value holds, each
/// with the fingerprint of the interface it offers; or the call's error.
pub type Resolution = Result<Vec<(Ref, u64)>, Error>;

/// One kept call of the peer's.
#[derive(Default)]
pub(super) struct Promise {
    /// `None` while the call runs.
    resolution: Option<Resolution>,
    /// The driver is delivering held calls: new ones queue behind them.
    draining: bool,
    held: VecDeque<Held>,
    /// The peer sent Finish: forget the entry once nothing waits on it.
    finished: bool,
}

/// A call addressed to a promised answer, waiting for it.
pub(super) struct Held {
    pub(super) id: Option<u64>,
    pub(super) oneway: Option<u64>,
    pub(super) keep: bool,
    pub(super) index: u32,
    pub(super) fingerprint: u64,
    pub(super) selector: u32,
    pub(super) context: WireContext,
    pub(super) refs: Vec<Incoming>,
    pub(super) args: Bytes,
}

impl Held {
    fn into_call(self, target: Ref) -> IncomingCall {
        IncomingCall {
            id: self.id,
            oneway: self.oneway,
            keep: self.keep,
            key: 0,
            target,
            selector: self.selector,
            version: 0,
            context: self.context,
            refs: self.refs,
            args: self.args,
        }
    }
}

/// The pipelining tables of one session.
#[derive(Default)]
pub(super) struct Promises {
    by_question: HashMap<u64, Promise>,
    /// Which promise each held call (by id) waits on.
    held_in: HashMap<u64, u64>,
}

impl Promises {
    pub(super) fn len(&self) -> usize {
        self.by_question.len()
    }
    pub(super) fn held(&self) -> usize {
        self.by_question.values().map(|p| p.held.len()).sum()
    }
    pub(super) fn contains(&self, question: u64) -> bool {
        self.by_question.contains_key(&question)
    }
    pub(super) fn keep(&mut self, question: u64) {
        self.by_question.insert(question, Promise::default());
    }
    /// Everything the tables hold, for a closing session to let go of.
    pub(super) fn clear(&mut self) -> Vec<Ref> {
        self.held_in.clear();
        let mut refs = Vec::new();
        for (_, promise) in self.by_question.drain() {
            if let Some(Ok(resolved)) = promise.resolution {
                refs.extend(resolved.into_iter().map(|(r, _)| r));
            }
            for held in promise.held {
                refs.extend(held.refs.into_iter().filter_map(|r| match r {
                    Incoming::Local(r) => Some(r),
                    Incoming::Import { .. } => None,
                }));
            }
        }
        refs
    }
}

/// The reference at `index` of a resolution, if it offers `fingerprint`.
fn promised(resolution: &Resolution, index: u32, fingerprint: u64) -> Result<Ref, Error> {
    let refs = resolution.as_ref().map_err(broken_promise)?;
    let Some((target, offers)) = refs.get(index as usize) else {
        return Err(Error::new(
            ErrorKind::BadArguments,
            format!(
                "the promised answer holds {} references; there is none at index {index}",
                refs.len()
            ),
        ));
    };
    if *offers != fingerprint {
        return Err(Error::new(
            ErrorKind::Incompatible,
            format!(
                "the promised reference offers an interface of fingerprint {offers:016x}, the call expects {fingerprint:016x}"
            ),
        ));
    }
    Ok(target.clone())
}

fn cancelled() -> Error {
    Error::new(
        ErrorKind::Disconnected,
        "the promised call was cancelled before it answered",
    )
}

impl Session {
    /// Routes an admitted call addressed to the promised answer
    /// `question`: held while the answer is pending or its held calls are
    /// being delivered, delivered at once after, failed if the answer
    /// failed or holds no fitting reference.
    pub(super) fn address_promise(&mut self, question: u64, held: Held) {
        let Some(promise) = self.promises.by_question.get_mut(&question) else {
            return self.fail_calls(vec![(
                held,
                Error::new(ErrorKind::UnknownObject, "the promised answer is gone"),
            )]);
        };
        match &promise.resolution {
            Some(resolution) if !promise.draining => {
                match promised(resolution, held.index, held.fingerprint) {
                    Ok(target) => self.events.push_back(Event::Call(held.into_call(target))),
                    Err(e) => self.fail_calls(vec![(held, e)]),
                }
            }
            _ => {
                if let Some(id) = held.id {
                    self.promises.held_in.insert(id, question);
                }
                promise.held.push_back(held);
            }
        }
    }

    /// The driver has the answer to the peer's kept call `question`
    /// (`resolution` the first time, `None` after): hands over, in order,
    /// the calls held for it, which the driver admits before calling this
    /// again. When none is left, the promise is resolved and the driver
    /// sends the answer, under the same lock.
    pub fn drain(&mut self, question: u64, resolution: Option<Resolution>) -> Vec<IncomingCall> {
        let Some(promise) = self.promises.by_question.get_mut(&question) else {
            // Finished and forgotten meanwhile.
            if let Some(Ok(refs)) = resolution {
                self.released.extend(refs.into_iter().map(|(r, _)| r));
            }
            return Vec::new();
        };
        if let Some(resolution) = resolution {
            promise.resolution = Some(resolution);
        }
        let held: Vec<Held> = promise.held.drain(..).collect();
        let mut calls = Vec::new();
        let mut failed = Vec::new();
        if let Some(resolution) = &promise.resolution {
            for call in held {
                match promised(resolution, call.index, call.fingerprint) {
                    Ok(target) => calls.push(call.into_call(target)),
                    Err(e) => failed.push((call, e)),
                }
            }
        }
        promise.draining = !calls.is_empty();
        let forget = !promise.draining && promise.finished;
        for call in calls.iter().filter_map(|c| c.id) {
            self.promises.held_in.remove(&call);
        }
        self.fail_calls(failed);
        if forget {
            self.forget(question);
        }
        calls
    }

    /// The peer's Finish: it addresses no more calls to `question`'s
    /// answer. A call that still runs with nothing held for it is stopped,
    /// as no one awaits its answer.
    pub(super) fn on_finish(&mut self, Finish { question }: Finish) {
        let Some(promise) = self.promises.by_question.get_mut(&question) else {
            return;
        };
        promise.finished = true;
        match (
            &promise.resolution,
            promise.draining,
            promise.held.is_empty(),
        ) {
            (Some(_), false, _) => self.forget(question),
            (None, _, true) => {
                self.forget(question);
                self.cancel_answer(question);
            }
            _ => {}
        }
    }

    /// The peer's call `id` stops (its Cancel, or a Finish of a kept call
    /// nothing waits on): a held call leaves its queue; a kept call's
    /// promise fails the calls held for it.
    pub(super) fn cancel_answer(&mut self, id: u64) {
        let mut work = vec![id];
        while let Some(id) = work.pop() {
            if !self.answers.remove(&id) {
                continue;
            }
            let Some(question) = self.promises.held_in.remove(&id) else {
                // Running: the driver stops it.
                self.events.push_back(Event::Cancel(id));
                self.fail_promise(id, cancelled());
                continue;
            };
            let Some(parent) = self.promises.by_question.get_mut(&question) else {
                continue;
            };
            let Some(at) = parent.held.iter().position(|h| h.id == Some(id)) else {
                continue;
            };
            let stop_parent =
                parent.finished && parent.resolution.is_none() && parent.held.len() == 1;
            if let Some(held) = parent.held.remove(at) {
                self.let_go_incoming(held.refs);
            }
            // A held call was never started: its own held calls fail.
            self.fail_promise(id, cancelled());
            if stop_parent {
                self.forget(question);
                work.push(question);
            }
        }
    }

    /// Settles the promise of the peer's kept call `question` as failed,
    /// and fails what it holds.
    pub(super) fn fail_promise(&mut self, question: u64, e: Error) {
        let held = self.settle_failed(question, e);
        self.fail_calls(held);
    }

    /// Settles the promise of `question` (if it is pending) with `e`;
    /// returns the calls it held, each with its error.
    fn settle_failed(&mut self, question: u64, e: Error) -> Vec<(Held, Error)> {
        let Some(promise) = self.promises.by_question.get_mut(&question) else {
            return Vec::new();
        };
        let mut held = Vec::new();
        if promise.resolution.is_none() {
            held = promise
                .held
                .drain(..)
                .map(|h| (h, broken_promise(&e)))
                .collect();
            promise.resolution = Some(Err(e));
        }
        if promise.finished && !promise.draining {
            self.forget(question);
        }
        held
    }

    /// Answers calls that cannot be delivered with their errors, and fails
    /// the calls held on those among them that were kept.
    pub(super) fn fail_calls(&mut self, calls: Vec<(Held, Error)>) {
        let mut work: VecDeque<(Held, Error)> = calls.into();
        while let Some((held, e)) = work.pop_front() {
            if let Some(handle) = held.oneway {
                self.oneways.remove(&handle);
                tracing::warn!(node = self.config.node, error = %e, "a pipelined oneway call failed");
            }
            self.let_go_incoming(held.refs);
            let Some(id) = held.id else { continue };
            self.promises.held_in.remove(&id);
            let derived = broken_promise(&e);
            if self.answers.remove(&id) {
                self.send_error(id, e);
            }
            if held.keep {
                work.extend(self.settle_failed(id, derived));
            }
        }
    }

    /// Removes the promise of `question`, letting go of what it holds.
    fn forget(&mut self, question: u64) {
        if let Some(promise) = self.promises.by_question.remove(&question) {
            if let Some(Ok(refs)) = promise.resolution {
                self.released.extend(refs.into_iter().map(|(r, _)| r));
            }
            for held in promise.held {
                if let Some(id) = held.id {
                    self.promises.held_in.remove(&id);
                }
                self.let_go_incoming(held.refs);
            }
        }
    }

    /// References of a call that will not run: the peer's are given back,
    /// this side's handed to the driver to drop.
    pub(super) fn let_go_incoming(&mut self, refs: Vec<Incoming>) {
        if refs.is_empty() {
            return;
        }
        self.give_back(&refs);
        self.released
            .extend(refs.into_iter().filter_map(|r| match r {
                Incoming::Local(r) => Some(r),
                Incoming::Import { .. } => None,
            }));
    }

    /// Whether `target` can be called now, for [`Session::on_call`]:
    /// an export this side holds, or a promised answer it keeps.
    pub(super) fn addressable(&self, target: PipelineTarget) -> Result<Option<Ref>, Error> {
        match target {
            PipelineTarget::Export { key } => self
                .exports
                .get(&key)
                .map(|e| Some(e.target.clone()))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::UnknownObject,
                        format!("this connection holds no export {key}"),
                    )
                }),
            PipelineTarget::Answer { question, .. } if self.promises.contains(question) => Ok(None),
            PipelineTarget::Answer { question, .. } => Err(Error::new(
                ErrorKind::UnknownObject,
                format!(
                    "this connection keeps no answer to call {question} (it was not sent with keep, or is finished)"
                ),
            )),
        }
    }
}
