//! The node: holds exposed objects and the names they are published under.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context as TaskContext, Poll};

use tower::Service;

use crate::ids::{NodeId, ObjectId, random_u64};
use crate::message::{ErasedStack, ViewSlot};
use crate::message::{ObjectEntry, ObjectState};
use crate::view::{Backing, Filters, sealed};
use crate::{BoxFuture, Client, Error, ErrorKind, Interface, Message, Ref, Value, View, ViewError};

/// A Tether node: exposes objects through views and publishes references
/// to them under names.
///
/// Cheap to clone; clones share the node.
///
/// ```
/// use tether::Node;
/// let node = Node::new();
/// assert!(node.lookup_ref("bank/alice").unwrap_err().is_unknown_object());
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    id: NodeId,
    next_object: AtomicU64,
    names: Directory,
    extensions: ObjectState,
}

impl Node {
    /// A new node with a random id.
    pub fn new() -> Self {
        Node {
            inner: Arc::new(NodeInner {
                id: NodeId(random_u64()),
                next_object: AtomicU64::new(1),
                names: Directory::new(),
                extensions: ObjectState::default(),
            }),
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Exposes `object`. It has no views yet: add them with
    /// [`Exposed::with_view`].
    pub fn expose<T: Send + Sync + 'static>(&self, object: T) -> Exposed<Object<T>> {
        self.expose_arc(Arc::new(object))
    }

    /// Exposes an object the caller already shares.
    pub fn expose_arc<T: Send + Sync + 'static>(&self, object: Arc<T>) -> Exposed<Object<T>> {
        let shared: Arc<dyn std::any::Any + Send + Sync> = object.clone();
        self.expose_backing(std::any::type_name::<T>(), Some(shared), Object(object))
    }

    /// Exposes a tower service of messages as an object: a hand-written
    /// skeleton, a proxy, or a multicast group serving many replicas as one.
    pub fn expose_service<S>(&self, service: S) -> Exposed<ServiceObject<S>>
    where
        S: Service<Message, Response = Value, Error = Error, Future: Send>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.expose_backing(std::any::type_name::<S>(), None, ServiceObject(service))
    }

    fn expose_backing<B>(
        &self,
        type_name: &'static str,
        object: Option<Arc<dyn std::any::Any + Send + Sync>>,
        backing: B,
    ) -> Exposed<B> {
        let id = ObjectId(self.inner.next_object.fetch_add(1, Ordering::Relaxed));
        Exposed {
            inner: Arc::new(ExposedInner {
                entry: Arc::new(ObjectEntry {
                    node: self.inner.id,
                    id,
                    type_name,
                    state: ObjectState::default(),
                    object,
                }),
                backing,
                views: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The node-wide directory: the names every connection can look up
    /// unless its listener (or the connection itself) was given a
    /// [`Directory`] of its own.
    pub fn directory(&self) -> &Directory {
        &self.inner.names
    }

    /// Publishes `reference` under `name` in the node-wide
    /// [`directory`](Node::directory), replacing and returning what was
    /// published there before.
    pub fn publish(&self, name: impl Into<String>, reference: Ref) -> Option<Ref> {
        self.inner.names.publish(name, reference)
    }

    /// Withdraws the reference published under `name` in the node-wide
    /// directory.
    pub fn unpublish(&self, name: &str) -> Option<Ref> {
        self.inner.names.unpublish(name)
    }

    /// The reference published under `name` in the node-wide directory.
    pub fn lookup_ref(&self, name: &str) -> Result<Ref, Error> {
        self.inner
            .names
            .lookup_ref(name)
            .map_err(|e| Error::new(e.kind(), format!("{} on {}", e.message(), self.inner.id)))
    }

    /// A typed client for the reference published under `name` in the
    /// node-wide directory; fails with [`ErrorKind::Incompatible`] if it
    /// offers another interface.
    pub fn lookup<C: Client>(&self, name: &str) -> Result<C, Error> {
        C::from_ref(self.lookup_ref(name)?)
    }

    /// The names published in the node-wide directory, in order.
    pub fn published(&self) -> Vec<String> {
        self.inner.names.published()
    }

    /// Per-node state of type `T`, created on first use: where a transport
    /// keeps what outlives one connection (for example the connections
    /// open to each peer node).
    pub fn extension<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        self.inner.extensions.get_or_default::<T>()
    }
}

/// Names and the references published under them: what a peer can look up
/// where it connects.
///
/// Every node has one, its [`directory`](Node::directory), which every
/// connection uses by default. A listener or a connection given a
/// directory of its own offers only that one's names, so a node can offer
/// different names in different places (members over one listener, guests
/// over another); a peer reaches only what was published where it
/// connected, or what it was handed. Cheap to clone; clones share.
///
/// ```
/// use tether::{Directory, Node};
/// let node = Node::new();
/// let guests = Directory::new();
/// # let r = node.expose_service(tower::service_fn(|_: tether::Message| async {
/// #     Ok::<_, tether::Error>(tether::Value::unit()) }));
/// # struct I; impl tether::ext::Interface for I {
/// #   const DESCRIPTOR: &'static tether::ext::InterfaceDescriptor =
/// #       &tether::ext::InterfaceDescriptor::new("I", &[], 1); }
/// # let reference = r.set_view("v", tether::View::<I>::new()).unwrap();
/// guests.publish("lobby", reference);
/// assert!(guests.lookup_ref("lobby").is_ok());
/// assert!(node.lookup_ref("lobby").unwrap_err().is_unknown_object(), "not node-wide");
/// ```
#[derive(Clone, Default)]
pub struct Directory(Arc<RwLock<BTreeMap<String, Ref>>>);

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes `reference` under `name`, replacing and returning what was
    /// published there before.
    pub fn publish(&self, name: impl Into<String>, reference: Ref) -> Option<Ref> {
        self.write().insert(name.into(), reference)
    }

    /// Withdraws the reference published under `name`.
    pub fn unpublish(&self, name: &str) -> Option<Ref> {
        self.write().remove(name)
    }

    /// The reference published under `name`; fails with
    /// [`ErrorKind::UnknownObject`] if there is none.
    pub fn lookup_ref(&self, name: &str) -> Result<Ref, Error> {
        self.read().get(name).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::UnknownObject,
                format!("nothing is published as {name:?}"),
            )
        })
    }

    /// A typed client for the reference published under `name`.
    pub fn lookup<C: Client>(&self, name: &str) -> Result<C, Error> {
        C::from_ref(self.lookup_ref(name)?)
    }

    /// The names published, in order.
    pub fn published(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Ref>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Ref>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.published()).finish()
    }
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.id)
            .field("published", &self.published())
            .finish()
    }
}

/// An exposed object and its views. Cheap to clone; clones share.
///
/// Views are named. Adding a view under a name that exists replaces it at
/// once: calls already running finish under the old view, new calls use
/// the new one, and references to the name keep working (and stay equal).
///
/// ```
/// use tether::Node;
///
/// #[tether::interface]
/// pub trait Greeter {
///     async fn greet(&self, name: String) -> String;
///     async fn rename(&self, to: String);
/// }
/// struct Host(std::sync::Mutex<String>);
/// impl Greeter for Host {
///     async fn greet(&self, name: String) -> String {
///         format!("{}: hello, {name}", self.0.lock().unwrap())
///     }
///     async fn rename(&self, to: String) {
///         *self.0.lock().unwrap() = to;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::new();
/// let host = node
///     .expose(Host(std::sync::Mutex::new("host".into())))
///     .with_view("owner", GreeterInterface::view())?
///     .with_view("guest", GreeterInterface::view().only([GreeterInterface::GREET]))?;
/// assert_eq!(host.views(), ["guest", "owner"]);
///
/// let guest: GreeterClient = host.client("guest")?;
/// assert_eq!(guest.greet("ada".into()).await?, "host: hello, ada");
/// assert!(guest.rename("mallory".into()).await.unwrap_err().is_unknown_method());
///
/// // The owner closes the guest view; references to it now fail visibly.
/// assert!(host.remove_view("guest"));
/// assert!(guest.greet("ada".into()).await.unwrap_err().is_unknown_object());
/// # Ok(()) }
/// ```
pub struct Exposed<B> {
    inner: Arc<ExposedInner<B>>,
}

struct ExposedInner<B> {
    entry: Arc<ObjectEntry>,
    backing: B,
    views: Mutex<HashMap<Arc<str>, Arc<ViewSlot>>>,
}

impl<B> Clone for Exposed<B> {
    fn clone(&self) -> Self {
        Exposed {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: Send + Sync + 'static> Exposed<B> {
    /// The object's id on its node.
    pub fn id(&self) -> ObjectId {
        self.inner.entry.id
    }

    /// Adds (or replaces) the view `name`; builder form of
    /// [`set_view`](Exposed::set_view).
    pub fn with_view<I, L>(self, name: &str, view: View<I, L>) -> Result<Self, ViewError>
    where
        I: Interface,
        B: Backing<I>,
        L: Filters<I, B>,
    {
        self.set_view(name, view)?;
        Ok(self)
    }

    /// Adds the view `name`, or replaces it while calls are in flight, and
    /// returns a reference to it.
    pub fn set_view<I, L>(&self, name: &str, view: View<I, L>) -> Result<Ref, ViewError>
    where
        I: Interface,
        B: Backing<I>,
        L: Filters<I, B>,
    {
        let compiled = view.compile(&self.inner.backing)?;
        let slot = {
            let mut views = self.lock_views();
            match views.get(name) {
                Some(slot) if slot.interface.fingerprint() != I::DESCRIPTOR.fingerprint() => {
                    return Err(ViewError::InterfaceChanged {
                        view: name.to_string(),
                        was: slot.interface.name(),
                        now: I::DESCRIPTOR.name(),
                    });
                }
                Some(slot) => Arc::clone(slot),
                None => {
                    let name: Arc<str> = name.into();
                    let entry = Arc::clone(&self.inner.entry);
                    let slot = Arc::new(ViewSlot::empty(entry, Arc::clone(&name), I::DESCRIPTOR));
                    views.insert(name, Arc::clone(&slot));
                    slot
                }
            }
        };
        // Installed with the views unlocked: the slot tells its watchers.
        slot.replace(Some(compiled));
        Ok(Ref::local(slot))
    }

    /// Removes the view `name`. References to it fail with
    /// [`ErrorKind::UnknownObject`] until a view of that name is added
    /// again. Returns whether there was such a view.
    pub fn remove_view(&self, name: &str) -> bool {
        let slot = self.lock_views().get(name).cloned();
        slot.is_some_and(|slot| slot.replace(None))
    }

    /// A reference to the view `name`.
    pub fn view(&self, name: &str) -> Result<Ref, Error> {
        let views = self.lock_views();
        match views.get(name) {
            Some(slot) if slot.current.load().is_some() => Ok(Ref::local(Arc::clone(slot))),
            _ => Err(Error::new(
                ErrorKind::UnknownObject,
                format!("object {} has no view {name:?}", self.inner.entry.id),
            )),
        }
    }

    /// A typed client for the view `name`.
    pub fn client<C: Client>(&self, name: &str) -> Result<C, Error> {
        C::from_ref(self.view(name)?)
    }

    /// The names of the object's current views, sorted.
    pub fn views(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock_views()
            .iter()
            .filter(|(_, slot)| slot.current.load().is_some())
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort();
        names
    }

    /// What the object is backed by.
    pub fn backing(&self) -> &B {
        &self.inner.backing
    }

    fn lock_views(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<ViewSlot>>> {
        self.inner.views.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Exposed<Object<T>> {
    /// The exposed object itself, for its owner's direct use.
    pub fn object(&self) -> &Arc<T> {
        &self.inner.backing.0
    }
}

impl<B> fmt::Debug for Exposed<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let views: Vec<String> = self
            .inner
            .views
            .lock()
            .map(|v| v.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        f.debug_struct("Exposed")
            .field("node", &self.inner.entry.node)
            .field("id", &self.inner.entry.id)
            .field("type", &self.inner.entry.type_name)
            .field("views", &views)
            .finish()
    }
}

/// A Rust object, served through the skeleton of interface `I`.
#[derive(Debug)]
pub struct Object<T>(Arc<T>);

impl<T> sealed::Sealed for Object<T> {}

impl<I, T> Backing<I> for Object<T>
where
    I: Serve<T>,
    T: Send + Sync + 'static,
{
    type Service = Skeleton<I, T>;

    fn service(&self) -> Skeleton<I, T> {
        Skeleton {
            _types: PhantomData,
        }
    }

    fn direct(&self) -> Box<dyn ErasedStack> {
        Box::new(<Self as Backing<I>>::service(self))
    }
}

/// The skeleton: dispatches a message to an object of type `T`.
///
/// Generated by the interface macro for every `T` that implements the trait.
/// The object is the one the message's target names.
pub trait Serve<T>: Interface {
    /// Decodes the message's arguments, calls the method on the target's
    /// object, and returns its result as the reply.
    fn dispatch(message: Message) -> BoxFuture<'static, Result<Value, Error>>;
}

/// The innermost service of a view over an object: decodes the message and
/// calls the object (which the message's target holds), through the
/// skeleton the interface macro generated.
pub struct Skeleton<I, T> {
    _types: PhantomData<fn() -> (I, T)>,
}

impl<I, T> Clone for Skeleton<I, T> {
    fn clone(&self) -> Self {
        Skeleton {
            _types: PhantomData,
        }
    }
}

impl<I: Interface, T> fmt::Debug for Skeleton<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Skeleton")
            .field("interface", &I::DESCRIPTOR.name())
            .field("object", &std::any::type_name::<T>())
            .finish()
    }
}

impl<I: Serve<T>, T> Service<Message> for Skeleton<I, T> {
    type Response = Value;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Value, Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> Self::Future {
        I::dispatch(message)
    }
}

// A skeleton needs no readiness and no clone: with no filters, a view calls
// it directly.
impl<I: Serve<T>, T: Send + Sync + 'static> ErasedStack for Skeleton<I, T> {
    fn call(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        I::dispatch(message)
    }
}

/// A tower service of messages, exposed as an object.
#[derive(Debug)]
pub struct ServiceObject<S>(S);

impl<S> sealed::Sealed for ServiceObject<S> {}

impl<I, S> Backing<I> for ServiceObject<S>
where
    I: Interface,
    S: Service<Message, Response = Value, Error = Error, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
{
    type Service = S;

    fn service(&self) -> S {
        self.0.clone()
    }
}
