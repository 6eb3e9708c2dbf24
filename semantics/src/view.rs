//! Views: the semantics an object's owner gives to its callers.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use tower::layer::util::{Identity, Stack};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use crate::abstraction::{Abstraction, AbstractionKind};
use crate::error::Error;
use crate::interface::{Interface, Method};
use crate::message::{CompiledView, ErasedStack, Message, MethodEntry};
use crate::selector::Selector;
use crate::value::Value;
use crate::{BoxError, BoxFuture};

/// How callers see an object: an invocation abstraction per method and a
/// stack of filters, over one interface `I`.
///
/// A view is a recipe. Attaching it to an object
/// ([`Exposed::with_view`](crate::Exposed::with_view)) builds its filter stack
/// around that object's skeleton. One recipe may be attached to many
/// objects, and one object may carry many views at once, each with its own
/// abstractions and filters; replacing a view at run time lets the calls
/// already running finish under the old one.
///
/// Methods are sync unless the view says otherwise, and every method of
/// `I` is offered unless [`only`](View::only) narrows it.
///
/// # Filters are tower layers
///
/// [`layer`](View::layer) adds any `tower::Layer` whose service handles
/// [`Message`]s and answers [`Value`]s: Tether's own filters and tower's
/// middleware (timeouts, concurrency limits, load shedding) alike. An
/// error from a filter reaches the caller as a Tether [`Error`]; tower's
/// `Elapsed` and `Overloaded` keep their meaning (see [`Error::from_boxed`]).
///
/// # Order
///
/// As with `tower::ServiceBuilder`, the first layer added is the outermost:
/// it sees the message first and the reply last. The order is part of the
/// meaning:
///
/// ```text
/// .layer(access).layer(mutex)   // refused callers never queue for the lock
/// .layer(mutex).layer(access)   // everybody queues, then some are refused
/// ```
///
/// # Example
///
/// ```
/// # use tether::View; use tether::ext::{Interface, InterfaceDescriptor};
/// # struct CounterInterface;
/// # impl Interface for CounterInterface {
/// #     const DESCRIPTOR: &'static InterfaceDescriptor = &InterfaceDescriptor::new("Counter", &[], 0);
/// # }
/// use std::time::Duration;
/// let view = View::<CounterInterface>::new()
///     .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(1)));
/// # let _ = view;
/// ```
pub struct View<I, L = Identity> {
    default: Option<Arc<dyn Abstraction>>,
    overrides: Vec<(Selector, Arc<dyn Abstraction>)>,
    only: Option<Vec<Selector>>,
    layers: ServiceBuilder<L>,
    _interface: PhantomData<fn() -> I>,
}

impl<I: Interface> View<I> {
    /// A view offering every method of `I`, sync, with no filters.
    pub fn new() -> Self {
        View {
            default: None,
            overrides: Vec::new(),
            only: None,
            layers: ServiceBuilder::new(),
            _interface: PhantomData,
        }
    }
}

impl<I: Interface> Default for View<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Interface, L> View<I, L> {
    /// Uses `abstraction` for every method without its own.
    pub fn abstraction(mut self, abstraction: impl Abstraction) -> Self {
        self.default = Some(Arc::new(abstraction));
        self
    }

    /// Uses `abstraction` for `method`.
    ///
    /// Only methods that return `()` may be oneway; attaching a view that
    /// makes another method oneway fails with [`ViewError::NotOneway`].
    pub fn method(mut self, method: Method<I>, abstraction: impl Abstraction) -> Self {
        let selector = method.selector();
        self.overrides.retain(|(s, _)| *s != selector);
        self.overrides.push((selector, Arc::new(abstraction)));
        self
    }

    /// Offers only `methods`; calls to the others fail with
    /// [`ErrorKind::UnknownMethod`](crate::ErrorKind::UnknownMethod).
    pub fn only(mut self, methods: impl IntoIterator<Item = Method<I>>) -> Self {
        self.only = Some(methods.into_iter().map(Method::selector).collect());
        self
    }

    /// Adds a filter. The first filter added is the outermost (see
    /// [Order](View#order)).
    ///
    /// The stack's services must be `Clone + Send + Sync` (see
    /// [`FilterService`]): a view clones its stack for every call, so
    /// that calls never wait for one another in the stack. Middleware
    /// whose service is not `Clone`, like tower's `RateLimit`, fails to
    /// compile where the view is attached ("`RateLimit<…>: Clone` is not
    /// satisfied"); put a `tower::buffer::BufferLayer` in front of it,
    /// which runs the middleware once in its own task and hands out
    /// cloneable handles (`examples/custom_filter.rs` does).
    pub fn layer<T>(self, layer: T) -> View<I, Stack<T, L>> {
        View {
            default: self.default,
            overrides: self.overrides,
            only: self.only,
            layers: self.layers.layer(layer),
            _interface: PhantomData,
        }
    }

    /// Checks the view against its interface and builds its stack over
    /// `backing`.
    pub(crate) fn compile<B>(self, backing: &B) -> Result<CompiledView, ViewError>
    where
        B: Backing<I>,
        L: Filters<I, B>,
    {
        let interface = I::DESCRIPTOR;
        let methods = interface
            .methods()
            .iter()
            .map(|m| {
                let abstraction = self
                    .overrides
                    .iter()
                    .find(|(s, _)| *s == m.selector())
                    .map(|(_, a)| a)
                    .or(self.default.as_ref())
                    .cloned();
                if let Some(a) = &abstraction {
                    if a.kind() == AbstractionKind::Oneway && !m.oneway_capable() {
                        return Err(ViewError::NotOneway {
                            interface: interface.name(),
                            method: m.name(),
                            returns: m.error().map_or_else(
                                || m.returns().to_string(),
                                |e| format!("Result<{}, {e}>", m.returns()),
                            ),
                        });
                    }
                }
                let offered = self
                    .only
                    .as_ref()
                    .is_none_or(|only| only.contains(&m.selector()));
                Ok(MethodEntry {
                    descriptor: m,
                    offered,
                    abstraction,
                })
            })
            .collect::<Result<Box<[_]>, _>>()?;
        Ok(CompiledView {
            methods,
            stack: self.layers.into_inner().erase(backing),
            version: 0,
        })
    }
}

impl<I, L: Clone> Clone for View<I, L> {
    fn clone(&self) -> Self {
        View {
            default: self.default.clone(),
            overrides: self.overrides.clone(),
            only: self.only.clone(),
            layers: self.layers.clone(),
            _interface: PhantomData,
        }
    }
}

impl<I: Interface, L> fmt::Debug for View<I, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("interface", &I::DESCRIPTOR.name())
            .field("default", &self.default)
            .field("overrides", &self.overrides)
            .field("only", &self.only)
            .field("layers", &std::any::type_name::<L>())
            .finish()
    }
}

/// Why a view could not be attached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The view makes a method oneway that returns a value or an error.
    #[error(
        "{interface}::{method} cannot be oneway: it returns {returns}, and only methods returning () may be"
    )]
    NotOneway {
        /// The interface.
        interface: &'static str,
        /// The method.
        method: &'static str,
        /// What it returns.
        returns: String,
    },
    /// A replacement view offers another interface than the view it
    /// replaces; references to the old view would break.
    #[error("view {view:?} offers {was}; a replacement must offer the same interface, not {now}")]
    InterfaceChanged {
        /// The view's name.
        view: String,
        /// The interface it offers.
        was: &'static str,
        /// The interface of the replacement.
        now: &'static str,
    },
}

/// What a view is built over: an exposed object or service.
///
/// Implemented by [`Object`](crate::Object) (a Rust object and the
/// skeleton the interface macro generated for it) and
/// [`ServiceObject`](crate::ServiceObject) (any tower service of
/// messages). Sealed.
pub trait Backing<I: Interface>: sealed::Sealed + Send + Sync + 'static {
    /// The innermost service of every view's stack.
    type Service: Service<Message, Response = Value, Error = Error, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static;

    /// A new handle to the innermost service.
    fn service(&self) -> Self::Service;

    /// The stack of a view with no filters; may skip the generic path.
    #[doc(hidden)]
    fn direct(&self) -> Box<dyn ErasedStack> {
        Box::new(Erased(self.service()))
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// The layers of a view, applied over a backing. Implemented for tower's
/// `Identity` and `Stack`, which is what [`View::layer`] builds.
pub trait Filters<I: Interface, B: Backing<I>>: sealed::Sealed {
    #[doc(hidden)]
    fn erase(self, backing: &B) -> Box<dyn ErasedStack>;
}

impl sealed::Sealed for Identity {}
impl<A, B> sealed::Sealed for Stack<A, B> {}

impl<I: Interface, B: Backing<I>> Filters<I, B> for Identity {
    fn erase(self, backing: &B) -> Box<dyn ErasedStack> {
        backing.direct()
    }
}

impl<I, B, Inner, Outer> Filters<I, B> for Stack<Inner, Outer>
where
    I: Interface,
    B: Backing<I>,
    Stack<Inner, Outer>: Layer<B::Service>,
    <Stack<Inner, Outer> as Layer<B::Service>>::Service: FilterService,
{
    fn erase(self, backing: &B) -> Box<dyn ErasedStack> {
        Box::new(Erased(self.layer(backing.service())))
    }
}

/// What a stack of filters must be: a cloneable, sendable tower service of
/// messages answering values. Any tower middleware stack over Tether's
/// services is one; its error converts through [`Error::from_boxed`].
///
/// Not `Clone`? A view clones its stack per call; put middleware with
/// state that must not be cloned (tower's `RateLimit`) behind a
/// `tower::buffer::BufferLayer`, as [`View::layer`] explains.
pub trait FilterService:
    Service<Message, Response = Value, Error: Into<BoxError>, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> FilterService for S where
    S: Service<Message, Response = Value, Error: Into<BoxError>, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The generic erased stack: clone the service, make sure it is ready,
/// call it.
pub(crate) struct Erased<S>(pub(crate) S);

type Reply = BoxFuture<'static, Result<Value, Error>>;

impl<S: FilterService> ErasedStack for Erased<S> {
    fn call(&self, message: Message) -> Reply {
        let mut service = self.0.clone();
        // Most filters are ready at once: ask once without a waker, and
        // only fall back to waiting (tower's `oneshot`) when one is not.
        let mut cx = TaskContext::from_waker(Waker::noop());
        match service.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => box_reply(service.call(message)),
            Poll::Ready(Err(e)) => {
                let e = Error::from_boxed(e.into());
                Box::pin(async move { Err(e) })
            }
            Poll::Pending => Box::pin(async move {
                service
                    .oneshot(message)
                    .await
                    .map_err(|e| Error::from_boxed(e.into()))
            }),
        }
    }
}

/// A stack's response future as a boxed reply, without a second box when
/// it already is one (see [`boxed`](crate::boxed)).
fn box_reply<F, E>(future: F) -> Reply
where
    F: Future<Output = Result<Value, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    already_boxed::<F, Result<Value, Error>>(future).unwrap_or_else(|future| {
        Box::pin(async move { future.await.map_err(|e| Error::from_boxed(e.into())) })
    })
}

/// Boxes `future`, unless it already is a [`BoxFuture`]: then it is
/// returned as it is, with no second allocation.
///
/// For filters whose response future is boxed anyway: when such a filter
/// has nothing to add to a call, it can pass its inner future on through
/// this function, and a view's stack of such filters costs no allocation
/// at all (the skeleton's future is a `BoxFuture`).
///
/// ```
/// use tether::BoxFuture; use tether::ext::boxed;
/// let inner: BoxFuture<'static, u8> = Box::pin(async { 1 });
/// let addr = &*inner as *const _ as *const ();
/// let outer = boxed(inner);
/// assert_eq!(&*outer as *const _ as *const (), addr, "not boxed again");
/// ```
pub fn boxed<F>(future: F) -> BoxFuture<'static, F::Output>
where
    F: Future + Send + 'static,
    F::Output: 'static,
{
    already_boxed::<F, F::Output>(future).unwrap_or_else(|future| Box::pin(future))
}

/// `future` as a `BoxFuture<'static, O>` if that is what it is (found at
/// run time, without `unsafe`), else `future` back.
fn already_boxed<F: 'static, O: 'static>(future: F) -> Result<BoxFuture<'static, O>, F> {
    let mut slot = Some(future);
    if let Some(boxed) = (&mut slot as &mut dyn Any).downcast_mut::<Option<BoxFuture<'static, O>>>()
    {
        if let Some(boxed) = boxed.take() {
            return Ok(boxed);
        }
    }
    match slot {
        Some(future) => Err(future),
        None => unreachable!("taken only when it was a BoxFuture"),
    }
}
