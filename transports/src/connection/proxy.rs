//! The proxy: the target behind a [`Ref`] to an object of the peer's.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Deserialize;
use tether_abstractions::{FutureCall, Oneway};
use tether_semantics::{
    Abstraction, AbstractionKind, BoxFuture, Error, ErrorKind, InterfaceDescriptor, Invoke,
    Message, MethodView, NodeId, ObjectId, Ref, Selector, Target, Value, ViewDescriptor,
};
use tokio::sync::{oneshot, watch};

use super::driver::{Awaiting, Driver, Status, context_to_wire, disconnected, encode};
use super::promise::PromiseProxy;
use crate::frame::{PipelineTarget, WireContext, WireView, abstraction_from_code};
use crate::session::{Callee, OutgoingRef, Session};

/// A reference to an object of the peer's: the target behind a remote
/// [`Ref`].
pub(crate) struct Proxy {
    driver: Arc<Driver>,
    key: u32,
    /// `None` for the bootstrap reference, which is not counted.
    generation: Option<u64>,
    fingerprint: u64,
    interface: OnceLock<&'static InterfaceDescriptor>,
    target: OnceLock<Target>,
    /// The view as the peer last described it; `None` until the first
    /// description arrives.
    view: watch::Sender<Option<Result<Arc<WireView>, String>>>,
    /// This proxy, for a call to hold until its frame is sent: a oneway
    /// call goes out from a task of its own, and the proxy's Release must
    /// not overtake it.
    me: std::sync::Weak<Proxy>,
}

/// The interface of a remote reference no typed stub has claimed yet.
static UNTYPED: &InterfaceDescriptor = &InterfaceDescriptor::new("(remote, untyped)", &[], 0);

pub(crate) fn proxy_of(r: &Ref) -> Option<&Proxy> {
    r.custom()?.as_any()?.downcast_ref::<Proxy>()
}

impl Proxy {
    pub(crate) fn new(
        driver: &Arc<Driver>,
        key: u32,
        generation: Option<u64>,
        fingerprint: u64,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Proxy {
            driver: Arc::clone(driver),
            key,
            generation,
            fingerprint,
            interface: OnceLock::new(),
            target: OnceLock::new(),
            view: watch::Sender::new(None),
            me: me.clone(),
        })
    }

    /// The reference to the peer's registry, whose key its Hello named.
    pub(crate) fn bootstrap(driver: &Arc<Driver>, key: u32) -> Ref {
        let registry = super::registry::REGISTRY;
        let proxy = Proxy::new(driver, key, None, registry.fingerprint());
        let _ = proxy.interface.set(registry);
        Ref::from_invoke(proxy)
    }

    /// Its key in the peer's export table.
    pub(crate) fn key(&self) -> u32 {
        self.key
    }

    /// The fingerprint of the interface the peer said the export offers.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The kind of `selector` as the view's description says.
    pub(crate) fn kind(&self, selector: Selector) -> AbstractionKind {
        self.kind_of(selector).0
    }

    /// Whether it is a proxy of `driver`'s connection.
    pub(crate) fn is_of(&self, driver: &Arc<Driver>) -> bool {
        Arc::ptr_eq(&self.driver, driver)
    }

    /// The version of the view's description it goes by (0: none yet).
    pub(crate) fn version(&self) -> u32 {
        match &*self.view.borrow() {
            Some(Ok(view)) => view.version,
            _ => 0,
        }
    }

    pub(crate) fn set_view(&self, view: Option<WireView>) {
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
    /// The view as the peer described it, once it has.
    pub(crate) fn wire_view(&self) -> Option<Arc<WireView>> {
        match &*self.view.borrow() {
            Some(Ok(view)) => Some(Arc::clone(view)),
            _ => None,
        }
    }

    pub(crate) async fn described(&self) -> Result<(), Error> {
        if self.view.borrow().is_none() {
            let mut rx = self.view.subscribe();
            let mut status = self.driver.status.subscribe();
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

    /// The method's kind and the version of the description that says so.
    fn kind_of(&self, selector: Selector) -> (AbstractionKind, u32) {
        match &*self.view.borrow() {
            Some(Ok(view)) => (
                view.methods
                    .iter()
                    .find(|m| m.selector == selector.id())
                    .map_or(AbstractionKind::Sync, |m| abstraction_from_code(m.kind)),
                view.version,
            ),
            _ => (AbstractionKind::Sync, 0),
        }
    }

    /// Asks the peer to describe the export again (after a Revised).
    pub(crate) fn redescribe(self: &Arc<Self>) {
        let me = vec![(self.key, Arc::downgrade(self))];
        self.driver.with(|core| Driver::describe_for(core, me));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let Some(generation) = self.generation else {
            return;
        };
        let key = self.key;
        self.driver.with(|core| {
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
                let node = self.driver.lock().peer_node.unwrap_or(NodeId(0));
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
        Ok(abstraction_of(self.kind_of(selector).0))
    }

    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        let driver = Arc::clone(&self.driver);
        let key = self.key;
        let (kind, version) = self.kind_of(message.selector());
        let alive = self.me.upgrade();
        Box::pin(async move {
            let _alive = alive;
            let callee = Callee {
                key,
                selector: message.selector().id(),
                version,
            };
            let out = Prepared::new(&driver, message)?;
            if kind == AbstractionKind::Oneway {
                driver.with(|core| core.session.oneway(callee, out.wire, out.refs, out.bytes))?;
                return Ok(Value::unit());
            }
            let deadline = out.deadline;
            reply(driver, deadline, move |session| {
                session.call(callee, out.wire, out.refs, out.bytes, deadline)
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
        let version = self.kind_of(message.selector()).1;
        let target = PipelineTarget::Export { key: self.key };
        Ok(PromiseProxy::send(
            &self.driver,
            target,
            version,
            message,
            index,
            want,
        ))
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
            )
            .with_version(view.version)),
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

/// The abstraction a caller applies for a method of `kind`, as a remote
/// view describes it (`None`: sync).
pub(crate) fn abstraction_of(kind: AbstractionKind) -> Option<Arc<dyn Abstraction>> {
    match kind {
        AbstractionKind::Oneway => Some(Arc::new(Oneway)),
        AbstractionKind::Future => Some(Arc::new(FutureCall)),
        _ => None,
    }
}

/// A call's arguments and context as they travel.
pub(crate) struct Prepared {
    pub(crate) wire: WireContext,
    pub(crate) refs: Vec<OutgoingRef>,
    pub(crate) bytes: Bytes,
    pub(crate) deadline: Option<std::time::Instant>,
}

impl Prepared {
    /// Encodes `message`'s arguments (the user's `Serialize`, run here
    /// with no lock held), enlists its transaction, and classifies its
    /// references.
    pub(crate) fn new(driver: &Arc<Driver>, message: Message) -> Result<Self, Error> {
        let (_, _, args, context) = message.into_parts();
        let (refs, bytes) = encode(&args, ErrorKind::BadArguments, "arguments")?;
        // The arguments' own references are counted by the session
        // now; the value is dropped here, unlocked.
        drop(args);
        let wire = context_to_wire(&context);
        let transaction = context.transaction().filter(|_| wire.transaction.is_some());
        if let Some(transaction) = transaction {
            driver.two_phase.enlist(driver, transaction);
        }
        Ok(Prepared {
            wire,
            refs: driver.classify(refs),
            bytes,
            deadline: context.deadline(),
        })
    }
}

/// Sends a call with `send` and awaits its reply; stopping to wait
/// cancels it.
pub(crate) async fn reply(
    driver: Arc<Driver>,
    deadline: Option<std::time::Instant>,
    send: impl FnOnce(&mut Session) -> Result<u64, Error>,
) -> Result<Value, Error> {
    let (tx, rx) = oneshot::channel();
    let id = driver.with(|core| {
        let id = send(&mut core.session)?;
        core.pending.insert(id, Awaiting::Reply(tx));
        Ok::<_, Error>(id)
    })?;
    if deadline.is_some() {
        driver.wake_reader.notify_one();
    }
    let mut guard = CancelOnDrop {
        driver: Some(driver),
        id,
    };
    let reply = rx
        .await
        .unwrap_or_else(|_| Err(disconnected("the call was dropped")));
    guard.driver = None;
    reply
}

/// Sends Cancel for a call whose caller stopped waiting.
struct CancelOnDrop {
    driver: Option<Arc<Driver>>,
    id: u64,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            let id = self.id;
            driver.with(|core| {
                core.session.cancel(id);
                if let Some(tx) = core.pending.remove(&id) {
                    core.garbage.push(Box::new(tx));
                }
            });
        }
    }
}

/// An untyped reference, read from a value.
pub(crate) struct AnyRef(pub(crate) Ref);

impl<'de> Deserialize<'de> for AnyRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        tether_semantics::__private::deserialize_ref(d).map(AnyRef)
    }
}
