//! Multicast: one call to a group of references.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use tether_semantics::{
    Abstraction, AbstractionKind, BoxFuture, Call, Client, Context, Dispatched, Error, ErrorKind,
    InterfaceDescriptor, Invoke, Message, MethodView, Ref, Selector, Target, Value, ViewDescriptor,
};

/// How a group's replies make one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Every member must succeed; the reply is the first member's. If any
    /// fails, the error is the first failing member's (in member order),
    /// unchanged, so a callee's typed error survives.
    All,
    /// The first success, in order of arrival. Fails only if every member
    /// fails.
    First,
    /// The first success once this many members have succeeded. Fails as
    /// soon as that can no longer happen.
    Quorum(usize),
}

/// A group of references to views of one interface, called as one.
///
/// Each member is called through its own view, with its own abstraction
/// and filters; the group combines the replies by its [`Policy`]. Members
/// still running when the policy is met (under [`Policy::First`] and
/// [`Policy::Quorum`]) run to completion in a task of their own, and their
/// failures are logged.
///
/// * A caller calls every member and sees every reply with
///   [`each`](Multicast::each), or calls the group through an ordinary
///   typed stub with [`client`](Multicast::client) and sees the combined
///   reply.
/// * A receiver exposes a replicated object as one object with
///   [`Node::expose_service`](tether_semantics::Node::expose_service): a
///   `Multicast` is a tower service of messages, so views (with filters)
///   can be attached to it, and callers of those views reach every replica
///   through an ordinary typed stub.
///
/// Arguments are copied for each member: with `Clone` when the argument
/// types have it, otherwise by a postcard round trip.
#[derive(Clone)]
pub struct Multicast {
    group: Arc<Group>,
}

struct Group {
    members: Vec<Ref>,
    policy: Policy,
    target: Target,
}

impl Multicast {
    /// A group of `members` combined by `policy`.
    ///
    /// Fails with [`ErrorKind::BadArguments`] if there are no members or
    /// the quorum is not between 1 and the number of members, and with
    /// [`ErrorKind::Incompatible`] if the members offer different
    /// interfaces.
    pub fn new(members: impl IntoIterator<Item = Ref>, policy: Policy) -> Result<Self, Error> {
        let members: Vec<Ref> = members.into_iter().collect();
        let Some(first) = members.first() else {
            return Err(Error::new(
                ErrorKind::BadArguments,
                "a multicast group needs at least one member",
            ));
        };
        let interface = first.interface();
        if let Some((i, odd)) = members
            .iter()
            .enumerate()
            .find(|(_, m)| m.interface().fingerprint() != interface.fingerprint())
        {
            return Err(Error::new(
                ErrorKind::Incompatible,
                format!(
                    "member {i} offers {}, member 0 offers {}",
                    odd.interface().name(),
                    interface.name()
                ),
            ));
        }
        if let Policy::Quorum(q) = policy {
            if q == 0 || q > members.len() {
                return Err(Error::new(
                    ErrorKind::BadArguments,
                    format!("a quorum of {q} out of {} members", members.len()),
                ));
            }
        }
        Ok(Multicast {
            group: Arc::new(Group {
                members,
                policy,
                target: Target::detached("multicast", interface, "Multicast"),
            }),
        })
    }

    /// The members, in order.
    pub fn members(&self) -> &[Ref] {
        &self.group.members
    }

    /// How replies are combined.
    pub fn policy(&self) -> Policy {
        self.group.policy
    }

    /// The interface every member offers.
    pub fn interface(&self) -> &'static InterfaceDescriptor {
        self.group.target.interface()
    }

    /// A reference that calls the whole group and answers the combined
    /// reply.
    pub fn to_ref(&self) -> Ref {
        Ref::from_invoke(self.group.clone())
    }

    /// A typed stub that calls the whole group.
    pub fn client<C: Client>(&self) -> Result<C, Error> {
        C::from_ref(self.to_ref())
    }

    /// Calls every member with `call` (given a typed stub for the member)
    /// and returns each member's own outcome, in member order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tether::abstractions::{Multicast, Policy};
    ///
    /// #[tether::interface]
    /// pub trait Calc {
    ///     async fn add(&self, a: u64, b: u64) -> u64;
    /// }
    /// struct Adder(u64);
    /// impl Calc for Adder {
    ///     async fn add(&self, a: u64, b: u64) -> u64 {
    ///         a + b + self.0
    ///     }
    /// }
    ///
    /// let node = tether::Node::new();
    /// let members = (0..3).map(|i| {
    ///     node.expose(Adder(i)).with_view("v", CalcInterface::view()).unwrap().view("v").unwrap()
    /// });
    /// let group = Multicast::new(members, Policy::All).unwrap();
    /// let sums: Vec<u64> = group
    ///     .each(|c: &CalcClient| c.add(1, 2))
    ///     .await
    ///     .into_iter()
    ///     .map(Result::unwrap)
    ///     .collect();
    /// assert_eq!(sums, [3, 4, 5]);
    /// # }
    /// ```
    pub async fn each<C, T, E>(
        &self,
        mut call: impl FnMut(&C) -> Call<T, E>,
    ) -> Vec<Result<T, Error<E>>>
    where
        C: Client,
        E: Any,
    {
        let calls: Vec<_> = self
            .group
            .members
            .iter()
            .map(|m| match C::from_ref(m.clone()) {
                Ok(client) => futures_util::future::Either::Left(call(&client)),
                Err(e) => futures_util::future::Either::Right(std::future::ready(Err(
                    e.downcast_callee::<E>()
                ))),
            })
            .collect();
        join_all(calls).await
    }

    /// Sends one message to every member: `args` is copied for all but the
    /// last. A member whose copy fails gets an
    /// [`ErrorKind::BadArguments`] outcome.
    pub fn fan_out(&self, selector: Selector, args: Value, context: Context) -> Vec<Dispatched> {
        self.group.fan_out(selector, args, context)
    }
}

impl Group {
    fn fan_out(&self, selector: Selector, args: Value, context: Context) -> Vec<Dispatched> {
        let n = self.members.len();
        let mut args = Some(args);
        self.members
            .iter()
            .enumerate()
            .map(|(i, member)| {
                let copy = if i + 1 == n {
                    args.take()
                } else {
                    args.as_ref().and_then(Value::try_clone)
                };
                match copy {
                    Some(a) => member.call(selector, a, context.clone()),
                    None => Dispatched::ready(Err(Error::new(
                        ErrorKind::BadArguments,
                        format!(
                            "the arguments of {} could not be copied for member {i}",
                            selector.name()
                        ),
                    ))),
                }
            })
            .collect()
    }

    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        let (_, selector, args, context) = message.into_parts();
        let calls = self.fan_out(selector, args, context);
        Box::pin(combine(self.policy, selector, calls))
    }
}

async fn combine(
    policy: Policy,
    selector: Selector,
    calls: Vec<Dispatched>,
) -> Result<Value, Error> {
    let n = calls.len();
    let needed = match policy {
        Policy::All => {
            let mut first = None;
            for outcome in join_all(calls).await {
                match outcome {
                    Ok(v) => {
                        first.get_or_insert(v);
                    }
                    Err(e) => return Err(e),
                }
            }
            return first.ok_or_else(|| Error::new(ErrorKind::Internal, "empty multicast group"));
        }
        Policy::First => 1,
        Policy::Quorum(q) => q,
    };
    let mut pending: FuturesUnordered<_> = calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| async move { (i, call.await) })
        .collect();
    let mut successes = 0;
    let mut reply = None;
    let mut failures: Vec<(usize, Error)> = Vec::new();
    while let Some((i, outcome)) = pending.next().await {
        match outcome {
            Ok(v) => {
                successes += 1;
                reply.get_or_insert(v);
                if successes >= needed {
                    finish_in_background(pending, selector);
                    return reply.ok_or_else(|| Error::new(ErrorKind::Internal, "no reply kept"));
                }
            }
            Err(e) => {
                failures.push((i, e));
                if n - failures.len() < needed {
                    break;
                }
            }
        }
    }
    let running = n - successes - failures.len();
    finish_in_background(pending, selector);
    failures.sort_by_key(|(i, _)| *i);
    let failed = failures.len();
    let (i, first) = failures.swap_remove(0);
    Err(Error::new(
        first.kind(),
        format!(
            "{} needs {needed} of {n} members: {successes} succeeded, {failed} failed, {running} still running; member {i}: {first}",
            selector.name()
        ),
    )
    .with_source(first))
}

/// Lets the members still running finish, and logs their failures.
fn finish_in_background<S>(mut pending: S, selector: Selector)
where
    S: futures_util::Stream<Item = (usize, Result<Value, Error>)> + Unpin + Send + 'static,
{
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        while let Some((i, outcome)) = pending.next().await {
            if let Err(error) = outcome {
                tracing::warn!(method = selector.name(), member = i, %error, "multicast member failed after the group answered");
            }
        }
    });
}

impl Invoke for Group {
    fn interface(&self) -> &'static InterfaceDescriptor {
        self.target.interface()
    }

    fn target(&self) -> Target {
        self.target.clone()
    }

    fn resolve(&self, selector: Selector) -> Result<Option<Arc<dyn Abstraction>>, Error> {
        match self.target.interface().method(selector.id()) {
            Some(_) => Ok(None),
            None => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!(
                    "{} has no method {}",
                    self.target.interface().name(),
                    selector.name()
                ),
            )),
        }
    }

    fn deliver(&self, message: Message) -> BoxFuture<'static, Result<Value, Error>> {
        Group::deliver(self, message)
    }

    fn describe(&self) -> Result<ViewDescriptor, Error> {
        let interface = self.target.interface();
        Ok(ViewDescriptor::new(
            interface,
            "multicast",
            interface
                .methods()
                .iter()
                .map(|method| MethodView {
                    method,
                    kind: AbstractionKind::Sync,
                })
                .collect(),
        ))
    }
}

impl tower::Service<Message> for Multicast {
    type Response = Value;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Value, Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: Message) -> Self::Future {
        self.group.deliver(message)
    }
}

impl fmt::Debug for Multicast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multicast")
            .field("interface", &self.interface().name())
            .field("policy", &self.group.policy)
            .field("members", &self.group.members)
            .finish()
    }
}
