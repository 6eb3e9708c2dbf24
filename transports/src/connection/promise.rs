//! The promise proxy: the target behind a [`Ref`] to what the answer to a
//! call sent on this connection will hold (PROTOCOL.md §5.12–5.14, §6.7).
//!
//! Calls through it are addressed to the question, not to a key, and
//! travel at once: the callee holds them until the answer is known. They
//! keep going to the question after the answer has arrived, also when it
//! resolved to an object of this node, so that calls through one promise
//! are delivered in the order they were made with no embargo (see
//! ARCHITECTURE.md, "Promise pipelining").

use std::sync::{Arc, OnceLock, Weak};

use tether_semantics::{
    Abstraction, AbstractionKind, BoxFuture, Error, ErrorKind, InterfaceDescriptor, Invoke,
    Message, NodeId, ObjectId, Ref, Selector, Target, Value, ViewDescriptor, broken_promise,
    check_fingerprint,
};
use tokio::sync::watch;

use super::driver::{Awaiting, Driver, Status, disconnected};
use super::proxy::{Prepared, abstraction_of, proxy_of, reply};
use crate::frame::PipelineTarget;

/// Where the answer to a promise's question goes: shared by the promise
/// and the driver's table of questions awaiting answers. The table holds
/// it, not the promise, so that an answer read (on another thread) while
/// the promise is still being made is not taken for one nobody awaits.
pub(crate) struct PromisedAnswer {
    /// `None` until the answer arrives.
    resolution: watch::Sender<Option<Result<Ref, Error>>>,
    index: u32,
    want: &'static InterfaceDescriptor,
}

impl PromisedAnswer {
    fn new(
        resolution: Option<Result<Ref, Error>>,
        index: u32,
        want: &'static InterfaceDescriptor,
    ) -> Arc<Self> {
        Arc::new(PromisedAnswer {
            resolution: watch::Sender::new(resolution),
            index,
            want,
        })
    }

    /// The answer arrived, its references imported: keeps the one at
    /// `index`. Called with no lock held (the others are dropped here).
    pub(crate) fn settle(&self, answer: Result<Vec<Ref>, Error>) {
        let resolution = answer.and_then(|refs| {
            let count = refs.len();
            let r = refs.into_iter().nth(self.index as usize).ok_or_else(|| {
                Error::new(
                    ErrorKind::BadArguments,
                    format!(
                        "the promised answer holds {count} references; there is none at index {}",
                        self.index
                    ),
                )
            })?;
            r.conform(self.want)?;
            Ok(r)
        });
        self.resolution.send_replace(Some(resolution));
    }
}

/// A reference to the reference at `index` of the answer to `question`.
pub(crate) struct PromiseProxy {
    driver: Arc<Driver>,
    /// `None` if the call could not be sent (then `answer` says why).
    question: Option<u64>,
    /// Where the answer goes (`None` in it until the answer arrives), and
    /// which reference of it the promise is for.
    answer: Arc<PromisedAnswer>,
    target: OnceLock<Target>,
    /// This promise, for a call to hold until its frame is sent (its
    /// Finish must not overtake a oneway call sent from a task of its own).
    me: Weak<PromiseProxy>,
}

impl PromiseProxy {
    /// Sends `message` to `to`, asking the peer to keep its answer, and
    /// returns the promise of the reference at `index` of that answer.
    pub(crate) fn send(
        driver: &Arc<Driver>,
        to: PipelineTarget,
        version: u32,
        message: Message,
        index: u32,
        want: &'static InterfaceDescriptor,
    ) -> Ref {
        let selector = message.selector().id();
        let prepared = Prepared::new(driver, message);
        let answer = PromisedAnswer::new(None, index, want);
        let promise = Arc::new_cyclic(|me: &Weak<PromiseProxy>| {
            let sent = prepared.and_then(|out| {
                let deadline = out.deadline;
                let id = driver.with(|core| {
                    let id = core.session.pipeline(
                        to,
                        true,
                        (selector, version),
                        out.wire,
                        out.refs,
                        out.bytes,
                        deadline,
                    )?;
                    core.pending
                        .insert(id, Awaiting::Promise(Arc::clone(&answer)));
                    Ok::<_, Error>(id)
                })?;
                if deadline.is_some() {
                    driver.wake_reader.notify_one();
                }
                Ok(id)
            });
            let question = match sent {
                Ok(id) => Some(id),
                Err(e) => {
                    answer.resolution.send_replace(Some(Err(e)));
                    None
                }
            };
            PromiseProxy {
                driver: Arc::clone(driver),
                question,
                answer,
                target: OnceLock::new(),
                me: me.clone(),
            }
        });
        Ref::from_invoke(promise)
    }

    /// A promise that failed before it was sent.
    fn failed(driver: &Arc<Driver>, e: Error, want: &'static InterfaceDescriptor) -> Ref {
        Ref::from_invoke(Arc::new_cyclic(|me| PromiseProxy {
            driver: Arc::clone(driver),
            question: None,
            answer: PromisedAnswer::new(Some(Err(e)), 0, want),
            target: OnceLock::new(),
            me: me.clone(),
        }))
    }

    /// What the promise is known to have resolved to: `Some(Err)` if it
    /// failed (the error to give calls through it).
    fn known(&self) -> Option<Result<Ref, Error>> {
        match &*self.answer.resolution.borrow() {
            Some(Ok(r)) => Some(Ok(r.clone())),
            Some(Err(e)) => Some(Err(broken_promise(e))),
            None => None,
        }
    }

    /// How the view the promise resolved to makes `selector`, if known.
    fn kind(&self, selector: Selector) -> AbstractionKind {
        match self.known() {
            Some(Ok(r)) => proxy_of(&r)
                .filter(|p| p.is_of(&self.driver))
                .map_or(AbstractionKind::Sync, |p| p.kind(selector)),
            _ => AbstractionKind::Sync,
        }
    }

    /// Where calls through the promise are addressed.
    fn address(&self, question: u64) -> PipelineTarget {
        PipelineTarget::Answer {
            question,
            index: self.answer.index,
            fingerprint: self.answer.want.fingerprint(),
        }
    }
}

impl Drop for PromiseProxy {
    fn drop(&mut self) {
        if let Some(question) = self.question {
            self.driver.with(|core| {
                if let Some(awaiting) = core.pending.remove(&question) {
                    core.garbage.push(Box::new(awaiting));
                }
                core.session.finish(question);
            });
        }
    }
}

impl Invoke for PromiseProxy {
    fn interface(&self) -> &'static InterfaceDescriptor {
        self.answer.want
    }

    fn target(&self) -> Target {
        self.target
            .get_or_init(|| {
                let node = self.driver.lock().peer_node.unwrap_or(NodeId(0));
                Target::remote(node, ObjectId(0), "(promise)", self.answer.want)
            })
            .clone()
    }

    fn resolve(&self, selector: Selector) -> Result<Option<Arc<dyn Abstraction>>, Error> {
        Ok(abstraction_of(self.kind(selector)))
    }

    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        let question = match (self.known(), self.question) {
            (Some(Err(e)), _) => return Box::pin(async move { Err(e) }),
            (_, Some(question)) => question,
            (_, None) => {
                let e = Error::new(ErrorKind::Internal, "the promise was never sent");
                return Box::pin(async move { Err(e) });
            }
        };
        let driver = Arc::clone(&self.driver);
        let to = self.address(question);
        let kind = self.kind(message.selector());
        let alive = self.me.upgrade();
        Box::pin(async move {
            let _alive = alive;
            let selector = (message.selector().id(), 0);
            let out = Prepared::new(&driver, message)?;
            if kind == AbstractionKind::Oneway {
                driver.with(|core| {
                    core.session
                        .pipeline_oneway(to, selector, out.wire, out.refs, out.bytes)
                })?;
                return Ok(Value::unit());
            }
            let deadline = out.deadline;
            reply(driver, deadline, move |session| {
                session.pipeline(to, false, selector, out.wire, out.refs, out.bytes, deadline)
            })
            .await
        })
    }

    fn pipeline(
        &self,
        message: Message,
        index: u32,
        want: &'static InterfaceDescriptor,
    ) -> Result<Ref, Message> {
        Ok(match (self.known(), self.question) {
            (Some(Err(e)), _) => PromiseProxy::failed(&self.driver, e, want),
            (_, Some(question)) => PromiseProxy::send(
                &self.driver,
                self.address(question),
                0,
                message,
                index,
                want,
            ),
            (_, None) => PromiseProxy::failed(
                &self.driver,
                Error::new(ErrorKind::Internal, "the promise was never sent"),
                want,
            ),
        })
    }

    fn describe(&self) -> Result<ViewDescriptor, Error> {
        match self.known() {
            Some(Ok(r)) => r.describe(),
            Some(Err(e)) => Err(e),
            None => Err(Error::new(
                ErrorKind::Internal,
                "a promise has no description until it resolves",
            )),
        }
    }

    fn conform(&self, want: &'static InterfaceDescriptor) -> Result<(), Error> {
        check_fingerprint(
            self.answer.want.name(),
            self.answer.want.fingerprint(),
            want,
        )
    }

    fn resolved(&self) -> Option<BoxFuture<'static, Result<Ref, Error>>> {
        let mut resolution = self.answer.resolution.subscribe();
        let mut status = self.driver.status.subscribe();
        Some(Box::pin(async move {
            let closed = status.wait_for(|s| matches!(s, Status::Closed(_)));
            tokio::select! {
                biased;
                known = resolution.wait_for(Option::is_some) => match known.as_deref() {
                    Ok(Some(Ok(r))) => Ok(r.clone()),
                    Ok(Some(Err(e))) => Err(broken_promise(e)),
                    _ => Err(disconnected("while awaiting a promised answer")),
                },
                _ = closed => Err(disconnected("before the promised answer arrived")),
            }
        }))
    }
}
