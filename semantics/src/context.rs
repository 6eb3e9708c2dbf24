//! The call context: who calls, along which chain, under which transaction,
//! until when.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use crate::ids::{ActivationId, ChainId, TraceId};
use crate::transaction::Transaction;

/// What each thread keeps: one thread-local, so one access per use.
struct Local {
    /// The context of the call being polled on this thread, swapped in and
    /// out around each poll by [`Scoped`]: a task-local, in effect.
    current: Cell<Option<Context>>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            current: Cell::new(None),
        }
    };
}

/// Everything a call carries besides its target, selector and arguments.
///
/// Filters read and change it (an access filter reads the
/// [`principal`](Context::principal), a transaction filter sets the
/// [`transaction`](Context::transaction)). While a callee runs, its context
/// is the task's *current* context, and every call the callee makes
/// inherits it: the same call chain, transaction, deadline, trace and
/// principal. That is how a re-entrant lock recognises a callback and how a
/// transaction spans nested calls.
///
/// A caller sets a deadline or a principal for the calls in a block with
/// [`Context::scope`]:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::{Duration, Instant};
/// use tether::Context;
///
/// let ctx = Context::new().with_deadline(Instant::now() + Duration::from_secs(1));
/// let chain = ctx.chain();
/// ctx.scope(async move {
///     // Calls made here carry the deadline and the same chain id.
///     assert_eq!(Context::for_call().chain(), chain);
/// })
/// .await;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    chain: ChainId,
    /// The call this context belongs to, once it has entered a view (see
    /// [`Context::enter`]); 0 outside any call.
    activation: u64,
    /// The activations this one runs inside, innermost first.
    ancestors: Ancestry,
    /// Everything else; most calls have none of it, so a fresh context
    /// allocates nothing. Changed copy-on-write.
    extra: Option<Arc<Extra>>,
}

/// The activations a call runs inside, innermost first: a persistent list,
/// so that entering a nested call costs one small allocation and no copy.
#[derive(Clone, Debug, Default)]
struct Ancestry(Option<Arc<Link>>);

#[derive(Debug)]
struct Link {
    id: ActivationId,
    parent: Ancestry,
}

impl Ancestry {
    fn iter(&self) -> impl Iterator<Item = ActivationId> + '_ {
        let mut next = self.0.as_deref();
        std::iter::from_fn(move || {
            let link = next?;
            next = link.parent.0.as_deref();
            Some(link.id)
        })
    }

    fn push(&self, id: ActivationId) -> Self {
        Ancestry(Some(Arc::new(Link {
            id,
            parent: self.clone(),
        })))
    }
}

#[derive(Clone, Debug, Default)]
struct Extra {
    principal: Option<Principal>,
    transaction: Option<Transaction>,
    deadline: Option<Instant>,
    trace: Option<TraceId>,
}

impl Context {
    /// A fresh context: anonymous, a new call chain, no transaction, no
    /// deadline, no trace.
    pub fn new() -> Self {
        Context {
            chain: ChainId::fresh(),
            activation: 0,
            ancestors: Ancestry::default(),
            extra: None,
        }
    }

    /// The context for a call made now: the task's current context if the
    /// task runs inside a call or a [`scope`](Context::scope), a fresh one
    /// otherwise.
    pub fn for_call() -> Self {
        LOCAL
            .try_with(|local| match local.current.take() {
                Some(current) => {
                    let copy = current.clone();
                    local.current.set(Some(current));
                    copy
                }
                None => Context::new(),
            })
            .unwrap_or_else(|_| Context::new())
    }

    /// The task's current context, if it runs inside a call or a scope.
    pub fn current() -> Option<Self> {
        LOCAL
            .try_with(|local| {
                let current = local.current.take();
                let copy = current.clone();
                local.current.set(current);
                copy
            })
            .ok()
            .flatten()
    }

    /// Runs `future` with this context as the current one: while it is
    /// polled, [`Context::current`] is this context.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            inner: future,
            context: Some(self),
        }
    }

    fn extra(&self) -> Option<&Extra> {
        self.extra.as_deref()
    }

    fn extra_mut(&mut self) -> &mut Extra {
        Arc::make_mut(self.extra.get_or_insert_with(Default::default))
    }

    /// Sets (or clears) the extra field `field` picks. Clearing a field of
    /// a context that has no extra fields leaves it without: a fresh
    /// context allocates nothing.
    fn set_extra<T>(&mut self, value: Option<T>, field: fn(&mut Extra) -> &mut Option<T>) {
        if value.is_some() || self.extra.is_some() {
            *field(self.extra_mut()) = value;
        }
    }

    /// Who calls; `None` is anonymous.
    pub fn principal(&self) -> Option<&Principal> {
        self.extra()?.principal.as_ref()
    }
    /// The call chain this call belongs to.
    pub fn chain(&self) -> ChainId {
        self.chain
    }
    /// The activation this context belongs to: the call that runs, once it
    /// has entered its receiver's view. `None` for a context made outside
    /// any call (a fresh one, or a [`scope`](Context::scope)'s).
    pub fn activation(&self) -> Option<ActivationId> {
        (self.activation != 0).then_some(ActivationId(self.activation))
    }

    /// The activations this call runs inside, innermost (its caller) first:
    /// the calls that were running, each waiting for the next, when this
    /// one was made.
    pub fn ancestors(&self) -> impl Iterator<Item = ActivationId> + '_ {
        self.ancestors.iter()
    }

    /// Whether this call was made, directly or through further calls,
    /// while `activation` was running: whether it is causally nested
    /// inside it. A call is not nested in itself, and two calls made side
    /// by side (from one scope, or by one callee) are not nested in each
    /// other.
    ///
    /// ```
    /// use tether::Context;
    /// let mut outer = Context::new();
    /// outer.enter();
    /// let mut inner = outer.clone();
    /// inner.enter(); // a call the outer call makes
    /// let mut sibling = outer.clone();
    /// sibling.enter(); // another one, beside it
    /// let outer_id = outer.activation().unwrap();
    /// assert!(inner.is_nested_in(outer_id));
    /// assert!(!inner.is_nested_in(sibling.activation().unwrap()));
    /// assert!(!outer.is_nested_in(outer_id));
    /// ```
    pub fn is_nested_in(&self, activation: ActivationId) -> bool {
        self.ancestors.iter().any(|a| a == activation)
    }

    /// Begins a new activation: the context's current activation, if any,
    /// becomes the innermost ancestor, and the context gets a fresh one.
    ///
    /// Tether calls this when a message enters a view on this node; a
    /// custom [`Invoke`](crate::Invoke) that serves messages itself calls
    /// it as well.
    pub fn enter(&mut self) {
        if let Some(current) = self.activation() {
            self.ancestors = self.ancestors.push(current);
        }
        self.activation = ActivationId::fresh().0;
    }

    /// The activation and its ancestors, innermost first, at most `limit`
    /// of them: what travels to another node with a call (see
    /// [`set_lineage`](Context::set_lineage)).
    pub fn lineage(&self, limit: usize) -> Vec<ActivationId> {
        self.activation()
            .into_iter()
            .chain(self.ancestors.iter())
            .take(limit)
            .collect()
    }

    /// Sets the activation and its ancestors from a lineage, innermost
    /// first, as it arrived from another node: the caller's activation
    /// becomes this context's, so that [`enter`](Context::enter) makes it
    /// the new call's parent.
    pub fn set_lineage(&mut self, lineage: &[ActivationId]) {
        let mut ancestry = Ancestry::default();
        for &id in lineage.iter().skip(1).rev() {
            ancestry = ancestry.push(id);
        }
        self.activation = lineage.first().map_or(0, |a| a.0);
        self.ancestors = ancestry;
    }

    /// This node's branch of the transaction the call runs in, if any.
    pub fn transaction(&self) -> Option<&Transaction> {
        self.extra()?.transaction.as_ref()
    }
    /// When the call must have completed.
    pub fn deadline(&self) -> Option<Instant> {
        self.extra()?.deadline
    }
    /// The trace the call belongs to.
    pub fn trace(&self) -> Option<TraceId> {
        self.extra()?.trace
    }

    /// Sets who calls.
    pub fn set_principal(&mut self, principal: Option<Principal>) {
        self.set_extra(principal, |extra| &mut extra.principal);
    }
    /// Joins a call chain.
    pub fn set_chain(&mut self, chain: ChainId) {
        self.chain = chain;
    }
    /// Sets or clears the transaction.
    pub fn set_transaction(&mut self, transaction: Option<Transaction>) {
        self.set_extra(transaction, |extra| &mut extra.transaction);
    }
    /// Sets or clears the deadline. A deadline only ever gets earlier along
    /// a chain: use [`tighten_deadline`](Context::tighten_deadline) to keep
    /// that.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.set_extra(deadline, |extra| &mut extra.deadline);
    }
    /// Sets the deadline to `deadline` unless the current one is earlier.
    pub fn tighten_deadline(&mut self, deadline: Instant) {
        let extra = self.extra_mut();
        extra.deadline = Some(extra.deadline.map_or(deadline, |d| d.min(deadline)));
    }
    /// Sets or clears the trace.
    pub fn set_trace(&mut self, trace: Option<TraceId>) {
        self.set_extra(trace, |extra| &mut extra.trace);
    }

    /// Builder form of [`set_principal`](Context::set_principal).
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.set_principal(Some(principal));
        self
    }
    /// Builder form of [`tighten_deadline`](Context::tighten_deadline).
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.tighten_deadline(deadline);
        self
    }
    /// Builder form of [`set_transaction`](Context::set_transaction).
    pub fn with_transaction(mut self, transaction: Transaction) -> Self {
        self.set_transaction(Some(transaction));
        self
    }
    /// Builder form of [`set_trace`](Context::set_trace).
    pub fn with_trace(mut self, trace: TraceId) -> Self {
        self.set_trace(Some(trace));
        self
    }
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

pin_project_lite::pin_project! {
    /// A future run with a [`Context`] as the current one; see
    /// [`Context::scope`].
    #[derive(Debug)]
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        context: Option<Context>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _current = Swap::enter(this.context);
        this.inner.poll(cx)
    }
}

/// Makes a context current until dropped (also when the poll unwinds),
/// then puts the previous one back.
struct Swap<'a> {
    ours: &'a mut Option<Context>,
    previous: Option<Context>,
}

impl<'a> Swap<'a> {
    fn enter(ours: &'a mut Option<Context>) -> Self {
        let previous = exchange(ours.take());
        Swap { ours, previous }
    }
}

impl Drop for Swap<'_> {
    fn drop(&mut self) {
        *self.ours = exchange(self.previous.take());
    }
}

fn exchange(context: Option<Context>) -> Option<Context> {
    LOCAL
        .try_with(|local| local.current.replace(context))
        .ok()
        .flatten()
}

/// An authenticated caller: a name and the roles it holds.
///
/// Cheap to clone. Compared by name and roles.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal(Arc<PrincipalInner>);

#[derive(PartialEq, Eq, Hash)]
struct PrincipalInner {
    name: Box<str>,
    roles: Box<[Box<str>]>,
}

impl Principal {
    /// A principal called `name` with `roles`.
    ///
    /// ```
    /// use tether::Principal;
    /// let p = Principal::new("alice", ["teller"]);
    /// assert!(p.has_role("teller"));
    /// assert!(!p.has_role("auditor"));
    /// ```
    pub fn new<R: Into<Box<str>>>(
        name: impl Into<Box<str>>,
        roles: impl IntoIterator<Item = R>,
    ) -> Self {
        Principal(Arc::new(PrincipalInner {
            name: name.into(),
            roles: roles.into_iter().map(Into::into).collect(),
        }))
    }
    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }
    /// The roles it holds.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.0.roles.iter().map(|r| &**r)
    }
    /// Whether it holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("name", &self.name())
            .field("roles", &self.0.roles)
            .finish()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::TransactionId;

    #[test]
    fn fresh_chains_differ() {
        assert_ne!(ChainId::fresh(), ChainId::fresh());
    }

    #[test]
    fn a_context_is_four_words_and_copies_on_write() {
        assert_eq!(std::mem::size_of::<Context>(), 32);
        let a = Context::new().with_transaction(Transaction::subordinate(TransactionId(1)));
        let mut b = a.clone();
        b.set_transaction(Some(Transaction::subordinate(TransactionId(2))));
        assert_eq!(a.transaction().map(Transaction::id), Some(TransactionId(1)));
        assert_eq!(b.transaction().map(Transaction::id), Some(TransactionId(2)));
        assert_eq!(a.chain(), b.chain());
    }

    #[test]
    fn deadlines_only_tighten() {
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(5);
        let mut ctx = Context::new().with_deadline(now);
        ctx.tighten_deadline(later);
        assert_eq!(ctx.deadline(), Some(now));
    }

    #[test]
    fn lineage_travels_and_nests() {
        let mut a = Context::new();
        a.enter();
        let mut b = a.clone();
        b.enter();
        let lineage = b.lineage(32);
        assert_eq!(lineage.len(), 2);
        // On the other node: the caller's lineage, then the callee enters.
        let mut remote = Context::new();
        remote.set_lineage(&lineage);
        remote.enter();
        assert!(remote.is_nested_in(a.activation().unwrap()));
        assert!(remote.is_nested_in(b.activation().unwrap()));
        assert_eq!(remote.ancestors().count(), 2);
        assert_eq!(b.lineage(1), vec![b.activation().unwrap()], "bounded");
    }

    #[tokio::test]
    async fn scopes_nest_and_restore() {
        let outer = Context::new();
        let inner = Context::new();
        let (o, i) = (outer.chain(), inner.chain());
        outer
            .scope(async move {
                assert_eq!(Context::for_call().chain(), o);
                inner
                    .scope(async move {
                        assert_eq!(Context::for_call().chain(), i);
                        tokio::task::yield_now().await;
                        assert_eq!(Context::for_call().chain(), i);
                    })
                    .await;
                assert_eq!(Context::for_call().chain(), o);
            })
            .await;
        assert!(Context::current().is_none());
    }

    #[tokio::test]
    async fn a_scope_is_per_task_not_per_thread() {
        let ctx = Context::new();
        let chain = ctx.chain();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let scoped = tokio::spawn(ctx.scope(async move {
            rx.await.unwrap();
            Context::for_call().chain()
        }));
        // Another task on the same thread sees no context while the
        // scoped task is suspended.
        tokio::task::yield_now().await;
        assert!(Context::current().is_none());
        tx.send(()).unwrap();
        assert_eq!(scoped.await.unwrap(), chain);
    }

    #[tokio::test]
    async fn scope_is_inherited_and_ends() {
        assert!(Context::current().is_none());
        let ctx = Context::new().with_transaction(Transaction::subordinate(TransactionId(7)));
        let chain = ctx.chain();
        ctx.scope(async move {
            let inner = Context::for_call();
            assert_eq!(inner.chain(), chain);
            assert_eq!(
                inner.transaction().map(Transaction::id),
                Some(TransactionId(7))
            );
        })
        .await;
        assert!(Context::current().is_none());
        assert_ne!(Context::for_call().chain(), chain);
    }
}
