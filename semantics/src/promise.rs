//! Promise pipelining on this node: a reference to what a call's result
//! will hold, usable before the call has answered.
//!
//! A transport pipelines remote calls itself (one round trip for a chain,
//! see [`Invoke::pipeline`]); every other target gets a [`LocalPromise`]:
//! calls through it wait, in the order they were made, until the result
//! is known, and are then delivered to the reference it holds.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context as TaskContext, Waker};

use tokio::sync::{oneshot, watch};

use crate::{
    Abstraction, BoxFuture, Context, Dispatched, Error, ErrorKind, InterfaceDescriptor, Invoke,
    Message, ObjectId, Ref, Selector, Target, Value, ViewDescriptor,
};

/// Starts `work` now, in order with the other work started this way from
/// the same thread: it is polled once here, and only what remains after
/// its first pending point runs in a task of its own.
///
/// This is how a transport admits a connection's calls in the order they
/// arrived (a spawned task may run after one spawned later), and how a
/// promise delivers the calls it held. Returns the task's handle if one
/// was needed. Outside a tokio runtime, work that does not finish at once
/// is dropped with a warning.
pub fn start_in_order(
    work: impl Future<Output = ()> + Send + 'static,
) -> Option<tokio::task::AbortHandle> {
    let mut work: BoxFuture<'static, ()> = Box::pin(work);
    let mut cx = TaskContext::from_waker(Waker::noop());
    if work.as_mut().poll(&mut cx).is_ready() {
        return None;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Some(runtime.spawn(work).abort_handle()),
        Err(_) => {
            tracing::warn!("work started outside a tokio runtime was dropped");
            None
        }
    }
}

/// The error a call through a promise gets when the promised answer
/// failed: the original kind, and its message.
pub fn broken_promise(original: &Error) -> Error {
    const PREFIX: &str = "the promised answer failed: ";
    let message = original.message();
    if message.starts_with(PREFIX) {
        Error::new(original.kind(), message.to_string())
    } else {
        Error::new(original.kind(), format!("{PREFIX}{message}"))
    }
}

/// The reference at `index` of the references `value` holds, offering
/// `want`.
pub fn promised_ref(
    value: &Value,
    index: u32,
    want: &'static InterfaceDescriptor,
) -> Result<Ref, Error> {
    let refs = value.encode(&mut Vec::new())?;
    let reference = refs.into_iter().nth(index as usize).ok_or_else(|| {
        Error::new(
            ErrorKind::BadArguments,
            format!(
                "the promised answer holds no reference at index {index} (a {})",
                value.type_name()
            ),
        )
    })?;
    reference.conform(want)?;
    Ok(reference)
}

/// A promise of a reference, for targets that do not pipeline themselves.
pub(crate) struct LocalPromise {
    want: &'static InterfaceDescriptor,
    state: Mutex<State>,
    settled: watch::Sender<bool>,
    /// The task that awaits the call; aborted when the last handle goes.
    driver: Mutex<Option<tokio::task::AbortHandle>>,
    target: Target,
    me: Weak<LocalPromise>,
}

struct State {
    /// `None` until the call has answered.
    resolution: Option<Result<Ref, Error>>,
    /// Held calls are being delivered: new ones queue behind them.
    draining: bool,
    held: VecDeque<Held>,
}

struct Held {
    selector: Selector,
    args: Value,
    context: Context,
    reply: oneshot::Sender<Result<Value, Error>>,
}

impl LocalPromise {
    /// A promise of the reference at `index` of `call`'s result.
    pub(crate) fn of(call: Dispatched, index: u32, want: &'static InterfaceDescriptor) -> Ref {
        let promise = Arc::new_cyclic(|me| LocalPromise {
            want,
            state: Mutex::new(State {
                resolution: None,
                draining: false,
                held: VecDeque::new(),
            }),
            settled: watch::Sender::new(false),
            driver: Mutex::new(None),
            target: Target::remote(crate::NodeId(0), ObjectId(0), "(promise)", want),
            me: me.clone(),
        });
        let weak = Arc::downgrade(&promise);
        let awaiting = async move {
            let resolution = call
                .await
                .and_then(|value| promised_ref(&value, index, want));
            if let Some(promise) = weak.upgrade() {
                promise.drain(resolution);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(awaiting);
                *lock(&promise.driver) = Some(task.abort_handle());
            }
            Err(_) => promise.drain(Err(Error::new(
                ErrorKind::Internal,
                "a call can be pipelined only inside a tokio runtime",
            ))),
        }
        Ref::from_invoke(promise)
    }

    /// The call has answered: delivers the held calls in order, then lets
    /// later calls through.
    fn drain(&self, resolution: Result<Ref, Error>) {
        let resolution = {
            let mut state = lock(&self.state);
            state.draining = true;
            state
                .resolution
                .insert(resolution)
                .as_ref()
                .map_err(broken_promise)
                .cloned()
        };
        loop {
            let held: Vec<Held> = {
                let mut state = lock(&self.state);
                if state.held.is_empty() {
                    state.draining = false;
                    break;
                }
                state.held.drain(..).collect()
            };
            for call in held {
                deliver_held(&resolution, call);
            }
        }
        self.settled.send_replace(true);
    }

    fn resolution(&self) -> Option<Result<Ref, Error>> {
        let state = lock(&self.state);
        match &state.resolution {
            Some(Ok(r)) if !state.draining => Some(Ok(r.clone())),
            Some(Err(e)) => Some(Err(broken_promise(e))),
            _ => None,
        }
    }
}

fn deliver_held(resolution: &Result<Ref, Error>, call: Held) {
    if call.reply.is_closed() {
        return; // its caller stopped waiting
    }
    let reference = match resolution {
        Ok(r) => r.clone(),
        Err(e) => {
            let _ = call.reply.send(Err(broken_promise(e)));
            return;
        }
    };
    // Through the resolved view's abstraction and filters, as a call made
    // on it now would go.
    let dispatched = reference.call_owned(call.selector, call.args, call.context);
    let reply = call.reply;
    let _ = start_in_order(async move {
        let _ = reply.send(dispatched.await);
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for LocalPromise {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.driver).take() {
            task.abort();
        }
        // Held calls whose callers still wait hear why.
        let held = std::mem::take(&mut lock(&self.state).held);
        for call in held {
            let _ = call.reply.send(Err(Error::new(
                ErrorKind::Disconnected,
                "the promise was dropped before it resolved",
            )));
        }
    }
}

impl Invoke for LocalPromise {
    fn interface(&self) -> &'static InterfaceDescriptor {
        self.want
    }

    fn target(&self) -> Target {
        match self.resolution() {
            Some(Ok(r)) => r.target(),
            _ => self.target.clone(),
        }
    }

    fn resolve(&self, selector: Selector) -> Result<Option<Arc<dyn Abstraction>>, Error> {
        match self.resolution() {
            Some(Ok(r)) => r.resolve(selector),
            // Held calls get the resolved view's abstraction when delivered.
            _ => Ok(None),
        }
    }

    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        let (_, selector, args, context) = message.into_parts();
        let rx = {
            let mut state = lock(&self.state);
            match &state.resolution {
                Some(Ok(r)) if !state.draining => {
                    let r = r.clone();
                    drop(state);
                    return r.deliver(Message::new(r.target(), selector, args, context));
                }
                Some(Err(e)) => {
                    let e = broken_promise(e);
                    return Box::pin(async move { Err(e) });
                }
                _ => {
                    let (reply, rx) = oneshot::channel();
                    state.held.push_back(Held {
                        selector,
                        args,
                        context,
                        reply,
                    });
                    rx
                }
            }
        };
        // The call keeps the promise alive until it is delivered.
        let me = self.me.upgrade();
        Box::pin(async move {
            let reply = rx.await;
            drop(me);
            reply.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Disconnected,
                    "the promise was dropped before it resolved",
                ))
            })
        })
    }

    fn describe(&self) -> Result<ViewDescriptor, Error> {
        match self.resolution() {
            Some(Ok(r)) => r.describe(),
            Some(Err(e)) => Err(e),
            None => Err(Error::new(
                ErrorKind::Internal,
                "a promise has no description until it resolves",
            )),
        }
    }

    fn resolved(&self) -> Option<BoxFuture<'static, Result<Ref, Error>>> {
        let me = self.me.upgrade()?;
        let mut settled = self.settled.subscribe();
        Some(Box::pin(async move {
            let _ = settled.wait_for(|s| *s).await;
            me.resolution().unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Internal,
                    "the promise did not settle",
                ))
            })
        }))
    }
}
