//! The reified message: target, selector, arguments, context.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::view::ViewSlot;
use crate::{Context, InterfaceDescriptor, NodeId, ObjectId, Selector, Value};

/// A call, reified: which view of which object, which method, with which
/// arguments, in which context.
///
/// Every filter sees the whole message; filters may change the context.
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

/// `Interface::method`, displayed lazily.
#[derive(Clone, Copy, Debug)]
pub struct MethodPath {
    interface: &'static str,
    method: &'static str,
}

impl MethodPath {
    pub(crate) fn new(interface: &'static str, method: &'static str) -> Self {
        MethodPath { interface, method }
    }
}

impl fmt::Display for MethodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.interface, self.method)
    }
}

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
        Self::unattached(node, object, view, interface, "remote object")
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
        Target(Arc::new(ViewSlot {
            object: Arc::new(ObjectEntry {
                node,
                id,
                type_name,
                state: ObjectState::default(),
                object: None,
            }),
            name: view.into(),
            interface,
            current: arc_swap::ArcSwapOption::empty(),
            all_sync: std::sync::atomic::AtomicBool::new(true),
        }))
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
        write!(
            f,
            "{}/{}#{} ({})",
            self.node(),
            self.object(),
            self.view(),
            self.interface().name()
        )
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
    fn get_or_default<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
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
