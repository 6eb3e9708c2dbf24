//! Interfaces: what the `#[interface]` macro generates from a trait.

use std::fmt;
use std::marker::PhantomData;

use crate::Selector;
use crate::schema::MethodSchema;

/// A Rust trait made callable through Tether.
///
/// Implemented by the marker type the `#[tether::interface]` macro generates
/// for a trait (`AccountInterface` for `trait Account`). Not implemented by
/// hand.
pub trait Interface: Send + Sync + 'static {
    /// What the interface looks like: its methods, their selectors, types
    /// and fingerprint.
    const DESCRIPTOR: &'static InterfaceDescriptor;
}

/// A method of interface `I`, as a view names it.
///
/// The interface macro generates one constant per method
/// (`AccountInterface::DEPOSIT`); the type parameter keeps a view of one
/// interface from being configured with another interface's methods.
pub struct Method<I> {
    selector: Selector,
    _interface: PhantomData<fn() -> I>,
}

impl<I> Method<I> {
    #[doc(hidden)]
    pub const fn new(selector: Selector) -> Self {
        Method {
            selector,
            _interface: PhantomData,
        }
    }

    /// The method's selector.
    pub const fn selector(self) -> Selector {
        self.selector
    }
}

impl<I> Clone for Method<I> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I> Copy for Method<I> {}

/// A filter can compare a message's selector with a method constant:
/// `message.selector() == AccountInterface::DEPOSIT`.
impl<I> PartialEq<Method<I>> for Selector {
    fn eq(&self, method: &Method<I>) -> bool {
        *self == method.selector
    }
}

impl<I> From<Method<I>> for Selector {
    fn from(method: Method<I>) -> Selector {
        method.selector
    }
}

impl<I> fmt::Debug for Method<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Method({:?})", self.selector)
    }
}

/// Describes an interface: its name, methods and fingerprint.
#[derive(Debug)]
pub struct InterfaceDescriptor {
    name: &'static str,
    methods: &'static [MethodDescriptor],
    fingerprint: u64,
}

impl InterfaceDescriptor {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        methods: &'static [MethodDescriptor],
        fingerprint: u64,
    ) -> Self {
        InterfaceDescriptor {
            name,
            methods,
            fingerprint,
        }
    }

    /// The trait's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The methods, in declaration order.
    pub fn methods(&self) -> &'static [MethodDescriptor] {
        self.methods
    }

    /// A 64-bit hash of the interface's canonical schema: its name and each
    /// method's name, parameter, result and error schemas (PROTOCOL.md,
    /// §9.2; [`interface_fingerprint`](crate::schema::interface_fingerprint)).
    /// Two sides with the same fingerprint agree on the wire types; any
    /// language computes it from a Description.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The method with selector id `id`.
    pub fn method(&self, id: u32) -> Option<&'static MethodDescriptor> {
        self.methods.iter().find(|m| m.selector.id() == id)
    }

    /// The position of the method with selector id `id`.
    pub fn index_of(&self, id: u32) -> Option<usize> {
        self.methods.iter().position(|m| m.selector.id() == id)
    }
}

/// Describes one method of an interface.
#[derive(Debug)]
pub struct MethodDescriptor {
    selector: Selector,
    params: &'static [Param],
    returns: &'static str,
    error: Option<&'static str>,
    reads: bool,
    schema: Option<&'static MethodSchema>,
}

impl MethodDescriptor {
    #[doc(hidden)]
    pub const fn new(
        selector: Selector,
        params: &'static [Param],
        returns: &'static str,
        error: Option<&'static str>,
    ) -> Self {
        MethodDescriptor {
            selector,
            params,
            returns,
            error,
            reads: false,
            schema: None,
        }
    }

    #[doc(hidden)]
    pub const fn with_schema(mut self, schema: &'static MethodSchema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// The wire schemas of the parameters, result and callee error, for
    /// interfaces made by the interface macro; `None` for hand-written
    /// descriptors that give none.
    pub fn schema(&self) -> Option<&'static MethodSchema> {
        self.schema
    }

    #[doc(hidden)]
    pub const fn reading(mut self) -> Self {
        self.reads = true;
        self
    }

    /// Whether the trait marks the method `#[tether(read)]`: it only reads
    /// the object, so a readers/writer lock may let it run beside other
    /// readers.
    pub fn reads(&self) -> bool {
        self.reads
    }

    /// The method's name.
    pub fn name(&self) -> &'static str {
        self.selector.name()
    }
    /// The method's selector.
    pub fn selector(&self) -> Selector {
        self.selector
    }
    /// The parameters after `&self`, in order.
    pub fn params(&self) -> &'static [Param] {
        self.params
    }
    /// The type of a successful result, as written (`"()"` for none).
    pub fn returns(&self) -> &'static str {
        self.returns
    }
    /// The callee's error type, when the method returns `Result<T, E>`.
    pub fn error(&self) -> Option<&'static str> {
        self.error
    }
    /// Whether a view may make the method oneway: only methods that return
    /// `()` (not `Result<(), E>`) may, because a oneway call has no reply to
    /// carry a result or an error.
    pub fn oneway_capable(&self) -> bool {
        self.error.is_none() && self.returns == "()"
    }
}

/// One parameter of a method.
#[derive(Debug)]
pub struct Param {
    name: &'static str,
    ty: &'static str,
}

impl Param {
    #[doc(hidden)]
    pub const fn new(name: &'static str, ty: &'static str) -> Self {
        Param { name, ty }
    }
    /// The parameter's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// Its type, as written.
    pub fn ty(&self) -> &'static str {
        self.ty
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
