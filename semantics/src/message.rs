//! The reified message: target, selector, arguments, context.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwapOption;

use crate::BoxFuture;
use crate::abstraction::{Abstraction, AbstractionKind};
use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::ids::{NodeId, ObjectId};
use crate::interface::{InterfaceDescriptor, MethodDescriptor, MethodPath};
use crate::selector::Selector;
use crate::value::Value;

/// A call, reified: which view of which object, which method, with which
/// arguments, in which context.
///
/// Every filter sees the whole message; filters may change the context.
/// A filter is any `tower::Layer` whose service takes a `Message`; here
/// tower's `FilterLayer` with a plain function refuses large amounts
/// before the object sees them, whether the caller is local or remote
/// (the `custom_filter` example writes a filter out in full):
///
/// ```
/// use tether::{Error, ErrorKind, Message, Node};
/// use tower::filter::FilterLayer;
///
/// #[tether::interface]
/// pub trait Till {
///     async fn pay(&self, cents: u64) -> u64;
/// }
/// struct Shop;
/// impl Till for Shop {
///     async fn pay(&self, cents: u64) -> u64 { cents }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let capped = FilterLayer::new(|message: Message| {
///     assert_eq!(message.target().view(), "till");
///     let amount = message.args().args::<(u64,)>().map(|(cents,)| *cents);
///     if message.selector() == TillInterface::PAY && amount > Some(10_000) {
///         return Err(Error::new(ErrorKind::AccessDenied, "more than 100.00 in one payment"));
///     }
///     Ok(message)
/// });
///
/// let node = Node::new();
/// let shop = node.expose(Shop).with_view("till", TillInterface::view().layer(capped))?;
/// let till: TillClient = shop.client("till")?;
/// assert_eq!(till.pay(250).await?, 250);
/// assert!(till.pay(50_000).await.unwrap_err().is_access_denied());
/// # Ok(()) }
/// ```
pub struct Message {
    target: Target,
    selector: Selector,
    args: Value,
    context: Context,
}

impl Message {
    /// A message to `target`.
    pub fn new(target: Target, selector: Selector, args: Value, context: Context) -> Self {
        Message {
            target,
            selector,
            args,
            context,
        }
    }

    /// The view of the object the message is sent to.
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// The method called.
    pub fn selector(&self) -> Selector {
        self.selector
    }
    /// The arguments.
    pub fn args(&self) -> &Value {
        &self.args
    }
    /// The arguments, to change them.
    pub fn args_mut(&mut self) -> &mut Value {
        &mut self.args
    }
    /// The call context.
    pub fn context(&self) -> &Context {
        &self.context
    }
    /// The call context, to change it.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }
    /// `Interface::method`, for logs.
    pub fn method_path(&self) -> MethodPath {
        MethodPath::new(self.target.interface().name(), self.selector.name())
    }
    /// The message's parts.
    pub fn into_parts(self) -> (Target, Selector, Value, Context) {
        (self.target, self.selector, self.args, self.context)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("target", &self.target)
            .field("selector", &self.selector)
            .field("args", &self.args)
            .field("context", &self.context)
            .finish()
    }
}

/// The type name of a remote target's object.
const REMOTE: &str = "remote object";

/// The view of an object a message is sent to.
///
/// Cheap to clone. Gives filters the node, object and view names and the
/// object's [`state`](Target::state), which every view of one object shares.
#[derive(Clone)]
pub struct Target(pub(crate) Arc<ViewSlot>);

impl Target {
    /// A target that belongs to no node's objects: what a multicast group
    /// or another custom [`Invoke`](crate::Invoke) addresses its messages
    /// to. It has its own per-object state; its node is `NodeId(0)`.
    pub fn detached(
        view: &str,
        interface: &'static InterfaceDescriptor,
        type_name: &'static str,
    ) -> Self {
        Self::unattached(NodeId(0), ObjectId(0), view, interface, type_name)
    }

    /// The target of a reference to an object on another node: the object
    /// `object` of node `node`, seen through its view `view`. It has its
    /// own per-object state, local to this node.
    pub fn remote(
        node: NodeId,
        object: ObjectId,
        view: &str,
        interface: &'static InterfaceDescriptor,
    ) -> Self {
        Self::unattached(node, object, view, interface, REMOTE)
    }

    /// A target with no view installed (calls go elsewhere) and its own
    /// per-object state.
    fn unattached(
        node: NodeId,
        id: ObjectId,
        view: &str,
        interface: &'static InterfaceDescriptor,
        type_name: &'static str,
    ) -> Self {
        let object = Arc::new(ObjectEntry {
            node,
            id,
            type_name,
            state: ObjectState::default(),
            object: None,
        });
        Target(Arc::new(ViewSlot::empty(object, view.into(), interface)))
    }

    /// The node that holds the object.
    pub fn node(&self) -> NodeId {
        self.0.object.node
    }
    /// The object's id on its node.
    pub fn object(&self) -> ObjectId {
        self.0.object.id
    }
    /// The name of the view.
    pub fn view(&self) -> &str {
        &self.0.name
    }
    /// The interface the view offers.
    pub fn interface(&self) -> &'static InterfaceDescriptor {
        self.0.interface
    }
    /// The Rust type of the object, for logs.
    pub fn type_name(&self) -> &'static str {
        self.0.object.type_name
    }

    /// The exposed Rust object, if it is a `T`.
    pub(crate) fn object_as<T: Any>(&self) -> Option<&T> {
        self.0.object.object.as_deref()?.downcast_ref()
    }

    /// Per-object state of type `T`, created on first use.
    ///
    /// One instance per object, shared by every view of the object: a
    /// mutual-exclusion filter keeps its lock here, so that calls through
    /// two views of one object exclude each other.
    pub fn state<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        self.0.object.state.get_or_default::<T>()
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Target {}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A remote target knows the peer's export key, not its object id:
        // say which it is, so it is not mistaken for the peer's object-N.
        if self.0.object.type_name == REMOTE {
            write!(f, "{}/export-{}", self.node(), self.object().0)?;
        } else {
            write!(f, "{}/{}", self.node(), self.object())?;
        }
        write!(f, "#{} ({})", self.view(), self.interface().name())
    }
}

/// What the node knows of one exposed object, shared by all its views.
pub(crate) struct ObjectEntry {
    pub(crate) node: NodeId,
    pub(crate) id: ObjectId,
    pub(crate) type_name: &'static str,
    pub(crate) state: ObjectState,
    /// The Rust object, for skeletons: a call's future owns its target, so
    /// the skeleton borrows the object from there instead of cloning an
    /// `Arc` per call. `None` for services exposed as objects.
    pub(crate) object: Option<Arc<dyn Any + Send + Sync>>,
}

/// A small type map of per-object filter state.
#[derive(Default)]
pub(crate) struct ObjectState(Mutex<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>);

impl ObjectState {
    pub(crate) fn get_or_default<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let id = TypeId::of::<T>();
        if let Some((_, v)) = map.iter().find(|(t, _)| *t == id) {
            if let Ok(v) = Arc::clone(v).downcast::<T>() {
                return v;
            }
        }
        let v = Arc::new(T::default());
        map.push((id, v.clone()));
        v
    }
}

/// A view's filter stack with its type erased.
#[doc(hidden)]
pub trait ErasedStack: Send + Sync + 'static {
    fn call(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>>;
}

/// A view attached to an object: its per-method table and built stack.
pub(crate) struct CompiledView {
    pub(crate) methods: Box<[MethodEntry]>,
    pub(crate) stack: Box<dyn ErasedStack>,
    /// Which of its slot's views this is: set when it is installed, and
    /// read with the view itself, so a description and the view it
    /// describes never disagree.
    pub(crate) version: u32,
}

impl CompiledView {
    /// Whether every method the view offers is sync, so a stub can defer
    /// any call without looking at the view.
    pub(crate) fn all_sync(&self) -> bool {
        self.methods.iter().all(|m| {
            m.abstraction
                .as_ref()
                .is_none_or(|a| a.kind() == AbstractionKind::Sync)
        })
    }
}

pub(crate) struct MethodEntry {
    pub(crate) descriptor: &'static MethodDescriptor,
    pub(crate) offered: bool,
    pub(crate) abstraction: Option<Arc<dyn Abstraction>>,
}

impl CompiledView {
    /// The view's entry for `selector`, if the view offers the method.
    pub(crate) fn resolve(
        &self,
        selector: Selector,
        slot: &ViewSlot,
    ) -> Result<&MethodEntry, Error> {
        match self
            .methods
            .iter()
            .find(|m| m.descriptor.selector() == selector)
        {
            Some(m) if m.offered => Ok(m),
            Some(_) => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!(
                    "view {:?} of {} does not offer {}::{}",
                    slot.name,
                    slot.object.id,
                    slot.interface.name(),
                    selector.name()
                ),
            )),
            None => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!(
                    "{} has no method {} (selector {:08x})",
                    slot.interface.name(),
                    selector.name(),
                    selector.id()
                ),
            )),
        }
    }

    /// The kind of abstraction the view uses for `selector`.
    pub(crate) fn kind_of(&self, selector: Selector) -> AbstractionKind {
        self.methods
            .iter()
            .find(|m| m.descriptor.selector() == selector)
            .and_then(|m| m.abstraction.as_ref())
            .map_or(AbstractionKind::Sync, |a| a.kind())
    }

    pub(crate) fn describe(&self, slot: &ViewSlot) -> ViewDescriptor {
        ViewDescriptor {
            interface: slot.interface,
            view: slot.name.to_string(),
            version: self.version,
            methods: self
                .methods
                .iter()
                .filter(|m| m.offered)
                .map(|m| MethodView {
                    method: m.descriptor,
                    kind: m
                        .abstraction
                        .as_ref()
                        .map_or(AbstractionKind::Sync, |a| a.kind()),
                })
                .collect(),
        }
    }
}

/// One named view of one object; references point here. The view it holds
/// can be replaced or removed; references stay equal.
pub(crate) struct ViewSlot {
    pub(crate) object: Arc<ObjectEntry>,
    pub(crate) name: Arc<str>,
    pub(crate) interface: &'static InterfaceDescriptor,
    pub(crate) current: ArcSwapOption<CompiledView>,
    /// Whether the current view (if any) makes every method sync; read on
    /// every stub call, so it saves loading the view twice.
    pub(crate) all_sync: AtomicBool,
    /// The version the next view installed gets.
    pub(crate) next_version: AtomicU32,
    /// Held while a view is replaced (not while calls run).
    replacing: Mutex<()>,
    /// Who wants to hear when the view is replaced (transports that
    /// exported it, to tell their peers).
    pub(crate) watchers: Mutex<Vec<Weak<dyn Watcher>>>,
}

/// Hears that a view has been replaced or removed: how a transport learns
/// to tell the remote callers that hold a reference to it (see
/// [`Ref::watch`](crate::Ref::watch)).
///
/// Called after the swap, with no lock of Tether's held.
pub trait Watcher: Send + Sync + 'static {
    /// The view `reference` points at now has version `version`.
    fn revised(&self, reference: &crate::reference::Ref, version: u32);
}

impl ViewSlot {
    /// A slot for `object`'s view `name`, with no view installed yet.
    pub(crate) fn empty(
        object: Arc<ObjectEntry>,
        name: Arc<str>,
        interface: &'static InterfaceDescriptor,
    ) -> Self {
        ViewSlot {
            object,
            name,
            interface,
            current: ArcSwapOption::empty(),
            all_sync: AtomicBool::new(true),
            next_version: AtomicU32::new(1),
            replacing: Mutex::new(()),
            watchers: Mutex::new(Vec::new()),
        }
    }

    /// Installs `view` (or removes the current one), gives it the next
    /// version, and tells the watchers.
    pub(crate) fn replace(self: &Arc<Self>, view: Option<CompiledView>) -> bool {
        // One replacement at a time: versions are installed in the order
        // they are taken, so the newest version is the view that stays.
        let (version, had) = {
            let _one = self.replacing.lock().unwrap_or_else(|p| p.into_inner());
            let version = self.next_version.fetch_add(1, Ordering::Relaxed);
            let view = view.map(|mut v| {
                v.version = version;
                Arc::new(v)
            });
            (version, self.store(view))
        };
        let watchers: Vec<Arc<dyn Watcher>> = {
            let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
            watchers.retain(|w| w.strong_count() > 0);
            watchers.iter().filter_map(Weak::upgrade).collect()
        };
        if !watchers.is_empty() {
            let reference = crate::reference::Ref::local(Arc::clone(self));
            for w in watchers {
                w.revised(&reference, version);
            }
        }
        had
    }

    /// Adds `watcher`, unless it watches already.
    pub(crate) fn watch(&self, watcher: Weak<dyn Watcher>) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if !watchers.iter().any(|w| w.ptr_eq(&watcher)) {
            watchers.retain(|w| w.strong_count() > 0);
            watchers.push(watcher);
        }
    }

    /// Installs `view` (or removes the current one).
    fn store(&self, view: Option<Arc<CompiledView>>) -> bool {
        // Cleared first: a stub that sees `true` while the view changes
        // defers, and deferral is always correct, only slower for
        // non-sync methods, which then look at the view themselves.
        self.all_sync.store(false, Ordering::Release);
        let all_sync = view.as_ref().is_none_or(|v| v.all_sync());
        let old = self.current.swap(view);
        self.all_sync.store(all_sync, Ordering::Release);
        old.is_some()
    }

    pub(crate) fn unknown(&self) -> Error {
        Error::new(
            ErrorKind::UnknownObject,
            format!(
                "object {} has no view {:?} any more",
                self.object.id, self.name
            ),
        )
    }

    pub(crate) fn describe(&self) -> Result<ViewDescriptor, Error> {
        let view = self.current.load();
        let view = view.as_ref().ok_or_else(|| self.unknown())?;
        Ok(view.describe(self))
    }
}

/// What a view offers, as a caller (or a remote peer) sees it.
#[derive(Debug, Clone)]
pub struct ViewDescriptor {
    interface: &'static InterfaceDescriptor,
    view: String,
    version: u32,
    methods: Vec<MethodView>,
}

impl ViewDescriptor {
    /// A descriptor, for custom targets.
    pub fn new(
        interface: &'static InterfaceDescriptor,
        view: impl Into<String>,
        methods: Vec<MethodView>,
    ) -> Self {
        ViewDescriptor {
            interface,
            view: view.into(),
            version: 0,
            methods,
        }
    }

    /// The same, with the view's `version` (see [`version`](ViewDescriptor::version)).
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Which of its object's successive views under this name it describes:
    /// it changes whenever the owner replaces the view. 0 for targets that
    /// do not count versions.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The interface of the view.
    pub fn interface(&self) -> &'static InterfaceDescriptor {
        self.interface
    }
    /// The view's name.
    pub fn view(&self) -> &str {
        &self.view
    }
    /// The methods the view offers, each with its abstraction's kind.
    pub fn methods(&self) -> &[MethodView] {
        &self.methods
    }
    /// The kind of abstraction the view uses for `method`, if offered.
    pub fn kind_of(&self, method: &str) -> Option<AbstractionKind> {
        self.methods
            .iter()
            .find(|m| m.method.name() == method)
            .map(|m| m.kind)
    }
}

/// One method as a view offers it.
#[derive(Debug, Clone, Copy)]
pub struct MethodView {
    /// The method.
    pub method: &'static MethodDescriptor,
    /// How the view carries it out.
    pub kind: AbstractionKind,
}
