//! References: a caller's handle on one view of one object.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower::{Layer, Service};

use crate::message::{ErasedStack, ViewSlot, Watcher};
use crate::view::{Erased, FilterService};
use crate::{
    Abstraction, AbstractionKind, BoxFuture, Context, Dispatched, Error, ErrorKind, Interface,
    InterfaceDescriptor, Message, MethodPath, Outgoing, Selector, Target, Value, ViewDescriptor,
};

/// A reference to one view of one object.
///
/// Calls through a reference use the view's semantics: its abstraction for
/// the method and its filters. Two references to the same view of the same
/// object are equal (and hash alike), however they were obtained; a
/// reference keeps the object alive. Cheap to clone.
///
/// Typed stubs wrap a `Ref`; [`Ref::call`] is the untyped call they make.
///
/// ```
/// use tether::{Client, Context, Node, Value};
///
/// #[tether::interface]
/// pub trait Doubler {
///     async fn double(&self, n: u64) -> u64;
/// }
/// struct Two;
/// impl Doubler for Two {
///     async fn double(&self, n: u64) -> u64 { 2 * n }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::new();
/// let exposed = node.expose(Two).with_view("calc", DoublerInterface::view())?;
/// let reference = exposed.view("calc")?;
/// node.publish("doubler", reference.clone());
/// assert_eq!(node.lookup_ref("doubler")?, reference, "one view, equal references");
///
/// // The untyped call a stub makes: arguments are the parameter tuple.
/// let reply = reference
///     .call(DoublerInterface::DOUBLE.selector(), Value::new((21_u64,)), Context::new())
///     .await?;
/// assert_eq!(reply.downcast_ref::<u64>(), Some(&42));
///
/// // The typed stub over the same reference.
/// let doubler = DoublerClient::from_ref(reference)?;
/// assert_eq!(doubler.double(4).await?, 8);
/// # Ok(()) }
/// ```
///
/// `Ref` hashes by identity, so it is a sound key in a `HashSet` or
/// `HashMap` even though the view it points at can be replaced. Clippy's
/// `mutable_key_type` lint cannot see that; add
/// `ignore-interior-mutability = ["tether::Ref"]` to `clippy.toml`.
#[derive(Clone)]
pub struct Ref(Inner);

#[derive(Clone)]
enum Inner {
    Local(Arc<ViewSlot>),
    Custom(Arc<dyn Invoke>),
}

/// Something a [`Ref`] can point at besides a local view: a multicast
/// group, a reference with caller-side filters, a remote object.
///
/// A call goes in two steps so that the receiver's semantics cannot be
/// bypassed: [`resolve`](Invoke::resolve) says which abstraction the
/// receiver chose for the method, then [`deliver`](Invoke::deliver) carries
/// the message to the receiver's filters.
pub trait Invoke: Send + Sync + 'static {
    /// The interface the target offers.
    fn interface(&self) -> &'static InterfaceDescriptor;

    /// The target messages are addressed to.
    fn target(&self) -> Target;

    /// The abstraction the receiver chose for `selector` (`None`: sync), or
    /// why the method cannot be called.
    fn resolve(&self, selector: Selector) -> Result<Option<Arc<dyn Abstraction>>, Error>;

    /// Delivers `message` to the receiver; completes with the reply.
    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>>;

    /// What the target offers.
    fn describe(&self) -> Result<ViewDescriptor, Error>;

    /// Checks that the target offers the interface `want` (a typed stub
    /// for it is being made). By default compares fingerprints with
    /// [`interface`](Invoke::interface); a remote reference, whose
    /// interface is known only by fingerprint until a stub claims it,
    /// checks that and then takes `want` as its interface.
    fn conform(&self, want: &'static InterfaceDescriptor) -> Result<(), Error> {
        let have = self.interface();
        check_fingerprint(have.name(), have.fingerprint(), want)
    }

    /// The target as `Any`, for the code that made it to recognise its
    /// own kind of target (a transport recognises its remote references).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Starts `message` as a promise: returns, at once, a reference to the
    /// reference at `index` of the call's result (offering `want`), which
    /// takes calls before the result is known. A remote target sends the
    /// call and the calls through the promise without waiting for the
    /// answer (one round trip for a chain of calls); the default gives the
    /// message back, and the caller makes a promise on this node that
    /// awaits the result.
    fn pipeline(
        &self,
        message: Message,
        index: u32,
        want: &'static InterfaceDescriptor,
    ) -> Result<Ref, Message> {
        let _ = (index, want);
        Err(message)
    }

    /// For a promise: the reference it resolved to, once it has (see
    /// [`Ref::resolved`]); `None` (the default) for a target that is not a
    /// promise.
    fn resolved(&self) -> Option<BoxFuture<'static, Result<Ref, Error>>> {
        None
    }
}

/// Fails with [`ErrorKind::Incompatible`] unless `fingerprint` (of the
/// interface `name` a target offers) is `want`'s.
pub fn check_fingerprint(
    name: &str,
    fingerprint: u64,
    want: &InterfaceDescriptor,
) -> Result<(), Error> {
    if fingerprint == want.fingerprint() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Incompatible,
        format!(
            "the reference offers {name} (fingerprint {fingerprint:016x}), the client expects {} ({:016x})",
            want.name(),
            want.fingerprint()
        ),
    ))
}

impl Ref {
    pub(crate) fn local(slot: Arc<ViewSlot>) -> Self {
        Ref(Inner::Local(slot))
    }

    /// A reference to a custom target.
    pub fn from_invoke(target: Arc<dyn Invoke>) -> Self {
        Ref(Inner::Custom(target))
    }

    /// The interface the referenced view offers.
    pub fn interface(&self) -> &'static InterfaceDescriptor {
        match &self.0 {
            Inner::Local(slot) => slot.interface,
            Inner::Custom(c) => c.interface(),
        }
    }

    /// The target messages through this reference are addressed to.
    pub fn target(&self) -> Target {
        match &self.0 {
            Inner::Local(slot) => Target(Arc::clone(slot)),
            Inner::Custom(c) => c.target(),
        }
    }

    /// The custom target this reference points at, if it is not a local
    /// view.
    pub fn custom(&self) -> Option<&Arc<dyn Invoke>> {
        match &self.0 {
            Inner::Local(_) => None,
            Inner::Custom(c) => Some(c),
        }
    }

    /// Checks that the reference offers the interface `want`; fails with
    /// [`ErrorKind::Incompatible`] if their fingerprints differ.
    pub fn conform(&self, want: &'static InterfaceDescriptor) -> Result<(), Error> {
        match &self.0 {
            Inner::Local(slot) => {
                check_fingerprint(slot.interface.name(), slot.interface.fingerprint(), want)
            }
            Inner::Custom(c) => c.conform(want),
        }
    }

    /// Serves a call that arrived from another node: checks that the view
    /// offers the method, then runs the message through the view's filters
    /// into the object. The abstraction is not applied: how the caller
    /// waits was decided on the caller's side, from the view's descriptor;
    /// the returned [`Served`] says what the view says now, so that the
    /// transport can hold a caller that went by an older description to
    /// the current one.
    pub fn serve(&self, selector: Selector, args: Value, context: Context) -> Served {
        match &self.0 {
            // One load of the view checks the method, runs the stack and
            // tells its kind and version, as in `call_owned`: a swap in
            // between cannot split them.
            Inner::Local(slot) => {
                let current = slot.current.load();
                let Some(view) = current.as_ref() else {
                    return Served::failed(slot.unknown(), 0);
                };
                if let Err(e) = view.resolve(selector, slot) {
                    return Served::failed(e, view.version);
                }
                let target = Target(Arc::clone(slot));
                Served {
                    reply: view.stack.call(entering(target, selector, args, context)),
                    kind: view.kind_of(selector),
                    version: view.version,
                }
            }
            Inner::Custom(c) => match c.resolve(selector) {
                Ok(abstraction) => Served {
                    reply: c.deliver(Message::new(c.target(), selector, args, context)),
                    kind: abstraction.map_or(AbstractionKind::Sync, |a| a.kind()),
                    version: 0,
                },
                Err(e) => Served::failed(e, 0),
            },
        }
    }

    /// Asks to hear, through `watcher`, whenever the view this reference
    /// points at is replaced or removed. Does nothing for references that
    /// are not local views. A watcher is kept once, however often it asks,
    /// and forgotten when it is dropped.
    pub fn watch(&self, watcher: std::sync::Weak<dyn Watcher>) {
        if let Inner::Local(slot) = &self.0 {
            slot.watch(watcher);
        }
    }

    /// What the view offers now: its methods and their abstractions.
    pub fn describe(&self) -> Result<ViewDescriptor, Error> {
        match &self.0 {
            Inner::Local(slot) => slot.describe(),
            Inner::Custom(c) => c.describe(),
        }
    }

    /// Calls the method `selector` with `args`, using the semantics the
    /// view gives it.
    ///
    /// Typed stubs call this; `args` is the argument tuple.
    pub fn call(&self, selector: Selector, args: Value, context: Context) -> Dispatched {
        self.clone().call_owned(selector, args, context)
    }

    /// [`call`](Ref::call), consuming the reference (saves a clone).
    pub fn call_owned(self, selector: Selector, args: Value, context: Context) -> Dispatched {
        match self.0 {
            Inner::Local(slot) => {
                // One load of the current view serves the whole call: the
                // abstraction and the filter stack come from the same view.
                let current = slot.current.load();
                let Some(view) = current.as_ref() else {
                    return Dispatched::ready(Err(slot.unknown()));
                };
                let entry = match view.resolve(selector, &slot) {
                    Ok(entry) => entry,
                    Err(e) => return Dispatched::ready(Err(e)),
                };
                let method = MethodPath::new(slot.interface.name(), selector.name());
                let message = entering(Target(slot), selector, args, context);
                let delivery = view.stack.call(message);
                dispatch(entry.abstraction.as_ref(), Outgoing::new(delivery, method))
            }
            Inner::Custom(c) => {
                let abstraction = match c.resolve(selector) {
                    Ok(a) => a,
                    Err(e) => return Dispatched::ready(Err(e)),
                };
                let message = Message::new(c.target(), selector, args, context);
                let method = message.method_path();
                let delivery = c.deliver(message);
                dispatch(abstraction.as_ref(), Outgoing::new(delivery, method))
            }
        }
    }

    /// Calls `selector` as a promise: returns at once a reference to the
    /// reference at `index` of the result (offering `want`), which takes
    /// calls before the result has arrived. [`Call::pipeline`] is the typed
    /// form.
    ///
    /// Calls through the promise wait, in the order they are made, until
    /// the result is known, then go to the reference it holds through that
    /// view's abstraction and filters. To a remote target they travel
    /// without waiting: the callee holds them until the answer, so a chain
    /// of dependent calls costs one round trip. If the call fails, or its
    /// result holds no such reference, each call through the promise fails
    /// with that error's kind and message.
    ///
    /// [`Call::pipeline`]: crate::Call::pipeline
    pub fn pipeline(
        self,
        selector: Selector,
        args: Value,
        context: Context,
        index: u32,
        want: &'static InterfaceDescriptor,
    ) -> Ref {
        if let Inner::Custom(c) = &self.0 {
            let message = Message::new(c.target(), selector, args, context);
            return match c.pipeline(message, index, want) {
                Ok(promise) => promise,
                Err(message) => {
                    let (_, selector, args, context) = message.into_parts();
                    crate::promise::LocalPromise::of(
                        self.call_owned(selector, args, context),
                        index,
                        want,
                    )
                }
            };
        }
        crate::promise::LocalPromise::of(self.call_owned(selector, args, context), index, want)
    }

    /// The reference this one resolved to, if it is a promise (see
    /// [`pipeline`](Ref::pipeline)): waits for the promised answer. Any
    /// other reference resolves to itself at once.
    ///
    /// Calls through a promise keep going through the promise after it
    /// resolves, so they stay in order with the calls made before; calls
    /// through the resolved reference are calls to another reference.
    pub fn resolved(&self) -> BoxFuture<'static, Result<Ref, Error>> {
        if let Some(resolving) = self.custom().and_then(|c| c.resolved()) {
            return resolving;
        }
        Box::pin(std::future::ready(Ok(self.clone())))
    }

    /// Whether the view lets the caller start `selector` when it awaits the
    /// call (sync), rather than at once (future, oneway). A method the view
    /// does not offer counts as sync: its error appears when awaited.
    pub(crate) fn is_sync(&self, selector: Selector) -> bool {
        let kind = match &self.0 {
            Inner::Local(slot) if slot.all_sync.load(std::sync::atomic::Ordering::Acquire) => {
                return true;
            }
            Inner::Local(slot) => {
                let current = slot.current.load();
                match current.as_ref().map(|v| v.resolve(selector, slot)) {
                    Some(Ok(entry)) => entry.abstraction.as_ref().map(|a| a.kind()),
                    _ => None,
                }
            }
            Inner::Custom(c) => c.resolve(selector).ok().flatten().map(|a| a.kind()),
        };
        matches!(kind, None | Some(AbstractionKind::Sync))
    }

    /// This reference with caller-side filters.
    ///
    /// The filters wrap the delivery of every call made through the
    /// returned reference, inside the abstraction the receiver chose and
    /// outside the receiver's own filters: a caller can decorate the
    /// receiver's semantics (timeouts, retries, logging, credentials in the
    /// context) but not bypass them. The returned reference is a new
    /// reference, not equal to this one.
    pub fn layer<L>(self, layer: L) -> Ref
    where
        L: Layer<Delivery>,
        L::Service: FilterService,
    {
        let stack = Box::new(Erased(layer.layer(Delivery(self.clone()))));
        Ref::from_invoke(Arc::new(Layered { inner: self, stack }))
    }

    pub(crate) fn resolve(
        &self,
        selector: Selector,
    ) -> Result<Option<Arc<dyn Abstraction>>, Error> {
        match &self.0 {
            Inner::Local(slot) => {
                let current = slot.current.load();
                let view = current.as_ref().ok_or_else(|| slot.unknown())?;
                Ok(view.resolve(selector, slot)?.abstraction.clone())
            }
            Inner::Custom(c) => c.resolve(selector),
        }
    }

    pub(crate) fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        match &self.0 {
            Inner::Local(slot) => {
                let current = slot.current.load();
                match current.as_ref() {
                    Some(view) => {
                        let (target, selector, args, context) = message.into_parts();
                        view.stack.call(entering(target, selector, args, context))
                    }
                    None => {
                        let e = slot.unknown();
                        Box::pin(async move { Err(e) })
                    }
                }
            }
            Inner::Custom(c) => c.deliver(message),
        }
    }

    fn addr(&self) -> *const () {
        match &self.0 {
            Inner::Local(slot) => Arc::as_ptr(slot).cast(),
            Inner::Custom(c) => Arc::as_ptr(c).cast(),
        }
    }
}

/// The message for a call entering a view on this node: the call begins
/// its own activation, nested in the caller's (see [`Context::enter`]).
fn entering(target: Target, selector: Selector, args: Value, mut context: Context) -> Message {
    context.enter();
    Message::new(target, selector, args, context)
}

fn dispatch(abstraction: Option<&Arc<dyn Abstraction>>, outgoing: Outgoing) -> Dispatched {
    match abstraction {
        None => Dispatched::pending(outgoing.reply()),
        Some(a) => a.dispatch(outgoing),
    }
}

impl PartialEq for Ref {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.addr(), other.addr())
    }
}

impl Eq for Ref {}

impl Hash for Ref {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr().hash(state);
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Local(slot) => write!(f, "Ref({:?})", Target(Arc::clone(slot))),
            Inner::Custom(c) => write!(f, "Ref({:?}, custom)", c.target()),
        }
    }
}

/// The innermost service of a caller-side filter stack: delivers the
/// message to the referenced view.
#[derive(Clone, Debug)]
pub struct Delivery(Ref);

impl Service<Message> for Delivery {
    type Response = Value;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Value, Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> Self::Future {
        self.0.deliver(message)
    }
}

struct Layered {
    inner: Ref,
    stack: Box<dyn ErasedStack>,
}

impl Invoke for Layered {
    fn interface(&self) -> &'static InterfaceDescriptor {
        self.inner.interface()
    }
    fn target(&self) -> Target {
        self.inner.target()
    }
    fn resolve(&self, selector: Selector) -> Result<Option<Arc<dyn Abstraction>>, Error> {
        self.inner.resolve(selector)
    }
    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        self.stack.call(message)
    }
    fn describe(&self) -> Result<ViewDescriptor, Error> {
        self.inner.describe()
    }
}

/// A call from another node as a view admitted it; see [`Ref::serve`].
#[must_use = "the reply does nothing unless polled"]
pub struct Served {
    /// The reply: the call runs when it is polled.
    pub reply: BoxFuture<'static, Result<Value, Error>>,
    /// The kind of abstraction the view gives the method now.
    pub kind: AbstractionKind,
    /// The view's version now; 0 for targets that do not count versions.
    pub version: u32,
}

impl Served {
    fn failed(e: Error, version: u32) -> Self {
        Served {
            reply: Box::pin(async move { Err(e) }),
            kind: AbstractionKind::Sync,
            version,
        }
    }
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("kind", &self.kind)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A typed stub: what the interface macro generates (`AccountClient`).
pub trait Client: Clone + Send + Sync + Sized + 'static {
    /// The interface the stub calls.
    type Interface: Interface;

    #[doc(hidden)]
    fn from_ref_unchecked(reference: Ref) -> Self;

    /// The reference the stub calls through.
    fn reference(&self) -> &Ref;

    /// A stub for `reference`; fails with [`ErrorKind::Incompatible`] if
    /// the reference offers another interface (their fingerprints differ).
    fn from_ref(reference: Ref) -> Result<Self, Error> {
        reference.conform(Self::Interface::DESCRIPTOR)?;
        Ok(Self::from_ref_unchecked(reference))
    }

    /// The stub of the reference a promise resolved to (see
    /// [`Call::pipeline`](crate::Call::pipeline)); this stub itself if it
    /// is not a promise.
    fn resolved(&self) -> BoxFuture<'static, Result<Self, Error>> {
        let resolving = self.reference().resolved();
        Box::pin(async move { Self::from_ref(resolving.await?) })
    }

    /// This stub with caller-side filters; see [`Ref::layer`].
    fn layer<L>(&self, layer: L) -> Self
    where
        L: Layer<Delivery>,
        L::Service: FilterService,
    {
        Self::from_ref_unchecked(self.reference().clone().layer(layer))
    }
}
