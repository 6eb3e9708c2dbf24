//! Invocation abstractions: how a message is sent and how the caller waits.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::{BoxFuture, Error, ErrorKind, MethodPath, Value};

/// How a call is carried out: the Strategy half of a call's semantics.
///
/// A view gives each of its methods one abstraction; the receiver chooses,
/// not the caller. The abstraction receives the call as an [`Outgoing`]
/// delivery (the message already bound to its way to the callee, local or
/// remote) and decides how the caller waits, returning a [`Dispatched`]
/// future that the typed stub hands to the caller.
///
/// The `tether-abstractions` crate provides the standard ones: `SyncCall`,
/// `Oneway`, `FutureCall`, and `Multicast` groups.
///
/// ```
/// use tether::ext::{Abstraction, AbstractionKind, Dispatched, Outgoing};
///
/// /// Like a sync call, but logs every call it starts.
/// #[derive(Debug)]
/// struct Noisy;
///
/// impl Abstraction for Noisy {
///     fn kind(&self) -> AbstractionKind {
///         AbstractionKind::Sync
///     }
///     fn dispatch(&self, outgoing: Outgoing) -> Dispatched {
///         println!("calling {}", outgoing.method());
///         Dispatched::pending(outgoing.reply())
///     }
/// }
/// ```
pub trait Abstraction: Send + Sync + fmt::Debug + 'static {
    /// What the caller's side of the wire must do: wait for a reply, send
    /// and forget, or start now and wait later. A view checks it (only
    /// methods returning `()` may be oneway) and a remote caller learns it
    /// from the view's descriptor.
    fn kind(&self) -> AbstractionKind;

    /// Carries out one call.
    fn dispatch(&self, outgoing: Outgoing) -> Dispatched;
}

/// The kinds of waiting an abstraction can ask of the caller's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AbstractionKind {
    /// The caller waits for the reply.
    Sync,
    /// The caller sends and returns at once; there is no reply.
    Oneway,
    /// The call starts now; the caller waits for the reply later, or never.
    Future,
}

impl fmt::Display for AbstractionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AbstractionKind::Sync => "sync",
            AbstractionKind::Oneway => "oneway",
            AbstractionKind::Future => "future",
        })
    }
}

/// One call, bound to its way to the callee, not yet started.
///
/// Nothing runs until the abstraction calls [`reply`](Outgoing::reply) and
/// polls the result, or calls [`send`](Outgoing::send).
pub struct Outgoing {
    delivery: BoxFuture<'static, Result<Value, Error>>,
    method: MethodPath,
}

impl Outgoing {
    pub(crate) fn new(
        delivery: BoxFuture<'static, Result<Value, Error>>,
        method: MethodPath,
    ) -> Self {
        Outgoing { delivery, method }
    }

    /// `Interface::method`, for logs.
    pub fn method(&self) -> MethodPath {
        self.method
    }

    /// Delivers the call; the future completes with the reply.
    pub fn reply(self) -> BoxFuture<'static, Result<Value, Error>> {
        self.delivery
    }

    /// Delivers the call with no reply wanted and returns at once.
    ///
    /// The delivery runs in its own tokio task; if it fails, the failure is
    /// logged at `WARN` (a oneway call has nobody to report to, but nothing
    /// is lost silently). Fails with [`ErrorKind::Internal`] outside a
    /// tokio runtime.
    pub fn send(self) -> Result<(), Error> {
        let handle = current_runtime()?;
        let method = self.method;
        let delivery = self.delivery;
        handle.spawn(async move {
            if let Err(error) = delivery.await {
                tracing::warn!(%method, %error, "oneway call failed");
            }
        });
        Ok(())
    }
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("method", &format_args!("{}", self.method))
            .finish_non_exhaustive()
    }
}

fn current_runtime() -> Result<tokio::runtime::Handle, Error> {
    tokio::runtime::Handle::try_current().map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            "this call's view starts it in a task, which needs a tokio runtime",
        )
        .with_source(e)
    })
}

/// A call as the abstraction left it: still to be driven, running in its
/// own task, or already answered.
///
/// A future of the reply. Dropping a `pending` one cancels the call;
/// dropping a `spawned` one does not.
#[must_use = "a dispatched call does nothing unless awaited, unless its abstraction started it"]
pub struct Dispatched(Inner);

enum Inner {
    Pending(BoxFuture<'static, Result<Value, Error>>),
    Spawned(tokio::task::JoinHandle<Result<Value, Error>>),
    Ready(Option<Result<Value, Error>>),
}

impl Dispatched {
    /// A call the caller drives by awaiting it.
    pub fn pending(future: BoxFuture<'static, Result<Value, Error>>) -> Self {
        Dispatched(Inner::Pending(future))
    }

    /// A call started now in its own tokio task. Outside a runtime the
    /// result is an [`ErrorKind::Internal`] error.
    pub fn spawn(future: BoxFuture<'static, Result<Value, Error>>) -> Self {
        match current_runtime() {
            Ok(handle) => Dispatched(Inner::Spawned(handle.spawn(future))),
            Err(e) => Dispatched::ready(Err(e)),
        }
    }

    /// A call whose outcome is known already.
    pub fn ready(result: Result<Value, Error>) -> Self {
        Dispatched(Inner::Ready(Some(result)))
    }

    /// Whether the call runs (or ran) without being awaited.
    pub fn is_started(&self) -> bool {
        !matches!(self.0, Inner::Pending(_))
    }
}

impl Future for Dispatched {
    type Output = Result<Value, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Inner::Pending(f) => f.as_mut().poll(cx),
            Inner::Spawned(handle) => Pin::new(handle).poll(cx).map(|joined| match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => {
                    Err(Error::new(ErrorKind::Failed, "the call's task panicked").with_source(e))
                }
                Err(e) => Err(Error::new(
                    ErrorKind::Disconnected,
                    "the call's task was cancelled (runtime shutting down)",
                )
                .with_source(e)),
            }),
            Inner::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Internal,
                    "call polled after completion",
                ))
            })),
        }
    }
}

impl fmt::Debug for Dispatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            Inner::Pending(_) => "pending",
            Inner::Spawned(_) => "spawned",
            Inner::Ready(_) => "ready",
        };
        f.debug_tuple("Dispatched").field(&state).finish()
    }
}
