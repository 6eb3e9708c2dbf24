//! The registry: the bootstrap object each side of a connection offers.
//!
//! It finds what is published in the connection's directory (so lookup is
//! an ordinary call returning a reference), and it takes the peer's votes
//! and outcomes for the transaction branches the peer's calls brought to
//! this side (see [`two_phase`](super::two_phase)).

use std::sync::Weak;

use tether_semantics::{
    Directory, Error, Interface, InterfaceDescriptor, Message, MethodDescriptor, Node, Param, Ref,
    Selector, Value, View,
};

use super::driver::{ABORT, COMMIT, Driver, PREPARE, disconnected};

pub(crate) const LOOKUP: Selector = Selector::new("lookup");
pub(crate) const NAMES: Selector = Selector::new("names");

/// The interface of every node's bootstrap object.
struct RegistryInterface;

pub(crate) static REGISTRY: &InterfaceDescriptor = &InterfaceDescriptor::new(
    "tether.Registry",
    &[
        MethodDescriptor::new(LOOKUP, &[Param::new("name", "String")], "Ref", None),
        MethodDescriptor::new(NAMES, &[], "Vec<String>", None),
        MethodDescriptor::new(PREPARE, &[Param::new("tx", "u64")], "bool", None),
        MethodDescriptor::new(COMMIT, &[Param::new("tx", "u64")], "()", None),
        MethodDescriptor::new(ABORT, &[Param::new("tx", "u64")], "()", None),
    ],
    0x7e7e_7265_6769_7374,
);

impl Interface for RegistryInterface {
    const DESCRIPTOR: &'static InterfaceDescriptor = REGISTRY;
}

/// The bootstrap object of one connection of `node`: it looks names up in
/// `directory` and ends the connection's transaction branches.
pub(crate) fn registry(node: &Node, directory: Directory, connection: Weak<Driver>) -> Ref {
    let service = tower::service_fn(move |message: Message| {
        let directory = directory.clone();
        let connection = connection.clone();
        async move {
            let (_, selector, args, _) = message.into_parts();
            if selector == LOOKUP {
                let (name,): (String,) = args.decode()?;
                let reference = directory.lookup_ref(&name)?;
                return Ok::<_, Error>(Value::serializable(reference));
            }
            if selector == NAMES {
                return Ok(Value::serializable(directory.published()));
            }
            let (tx,): (u64,) = args.decode()?;
            let connection = connection
                .upgrade()
                .ok_or_else(|| disconnected("while ending a transaction"))?;
            super::two_phase::end_branch(&connection, selector, tx).await
        }
    });
    let exposed = node.expose_service(service);
    match exposed.set_view("registry", View::<RegistryInterface>::new()) {
        Ok(reference) => reference,
        Err(e) => unreachable!("the registry's view has no oneway methods: {e}"),
    }
}
