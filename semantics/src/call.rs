//! The typed handle a stub method returns.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::{
    Client, Context, Detail, Dispatched, Error, ErrorKind, Interface, InterfaceDescriptor, Ref,
    Selector, Value,
};

/// A call made through a typed stub: a future of `Result<T, Error<E>>`.
///
/// What awaiting it means is the receiver's choice. Under a sync view the
/// call is made when first polled (the view, its filters and the task's
/// current [`Context`] are taken then), and dropping the handle cancels
/// it. Under a future view the call has already started when the stub
/// returns, and dropping the handle does not stop it. Under a oneway view
/// the message is already sent and the handle resolves to `Ok(())` at
/// once.
///
/// `E` is the callee's own error type for methods that return
/// `Result<T, E>`; for other methods it is the erased [`Detail`], never set.
///
/// The call's [`Context`] (principal, deadline, trace) is the one in
/// scope where it is made; give a call that must not wait long a deadline:
///
/// ```
/// use std::time::{Duration, Instant};
/// use tether::{Context, Node};
///
/// #[tether::interface]
/// pub trait Slow {
///     async fn nap(&self, ms: u64) -> u64;
/// }
/// struct Sleeper;
/// impl Slow for Sleeper {
///     async fn nap(&self, ms: u64) -> u64 {
///         tokio::time::sleep(Duration::from_millis(ms)).await;
///         ms
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::new();
/// let slow: SlowClient = node.expose(Sleeper).with_view("v", SlowInterface::view())?.client("v")?;
///
/// assert_eq!(slow.nap(1).await?, 1);
///
/// let soon = Context::new().with_deadline(Instant::now() + Duration::from_millis(20));
/// let late = soon.scope(slow.nap(60_000)).await.unwrap_err();
/// assert!(late.is_deadline_exceeded());
/// # Ok(()) }
/// ```
#[must_use = "a call may not start until it is awaited"]
pub struct Call<T, E = Detail> {
    state: State,
    take: fn(Value) -> Result<T, Value>,
    map_err: fn(Error) -> Error<E>,
    _out: PhantomData<fn() -> (T, E)>,
}

enum State {
    /// A sync call, made when first polled.
    Deferred(Option<(Ref, Selector, Value)>),
    Dispatched(Dispatched),
}

impl<T, E> Call<T, E> {
    /// Starts a call through `target` as its view says: now for future and
    /// oneway methods, on first poll for sync ones.
    pub(crate) fn start(
        target: &Ref,
        selector: Selector,
        args: Value,
        take: fn(Value) -> Result<T, Value>,
        map_err: fn(Error) -> Error<E>,
    ) -> Self {
        let state = if target.is_sync(selector) {
            State::Deferred(Some((target.clone(), selector, args)))
        } else {
            State::Dispatched(target.call(selector, args, Context::for_call()))
        };
        Call {
            state,
            take,
            map_err,
            _out: PhantomData,
        }
    }

    /// Whether the call has started without being awaited (future and
    /// oneway views).
    pub fn is_started(&self) -> bool {
        match &self.state {
            State::Deferred(_) => false,
            State::Dispatched(d) => d.is_started(),
        }
    }
}

impl<T: Client, E> Call<T, E> {
    /// Sends the call now and returns, at once, a stub for the reference
    /// it will return: promise pipelining.
    ///
    /// Calls through the stub may be made before the result arrives. To a
    /// remote object they travel at once, and the callee holds them until
    /// the answer is known, so a chain of dependent calls costs one round
    /// trip instead of one each; to a local object they wait on this node.
    /// Either way they are delivered in the order they are made, through
    /// the resolved view's abstraction and filters. If this call fails,
    /// each call through the stub fails with its error's kind and message.
    /// [`Client::resolved`] waits for the reference itself.
    ///
    /// ```
    /// use tether::{Client, Node};
    ///
    /// #[tether::interface]
    /// pub trait Rows {
    ///     async fn count(&self) -> u64;
    /// }
    /// #[tether::interface]
    /// pub trait Db {
    ///     async fn table(&self, name: String) -> RowsClient;
    /// }
    /// struct Table(u64);
    /// impl Rows for Table {
    ///     async fn count(&self) -> u64 { self.0 }
    /// }
    /// struct Store(Node);
    /// impl Db for Store {
    ///     async fn table(&self, name: String) -> RowsClient {
    ///         let rows = Table(name.len() as u64);
    ///         self.0.expose(rows).with_view("v", RowsInterface::view()).unwrap().client("v").unwrap()
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = Node::new();
    /// let db: DbClient = node.expose(Store(node.clone())).with_view("v", DbInterface::view())?.client("v")?;
    ///
    /// // No await between the two calls: the second goes to the promise.
    /// let rows: RowsClient = db.table("users".into()).pipeline();
    /// assert_eq!(rows.count().await?, 5);
    /// # Ok(()) }
    /// ```
    pub fn pipeline(self) -> T {
        T::from_ref_unchecked(self.promise(0, T::Interface::DESCRIPTOR))
    }
}

impl<T, E> Call<T, E> {
    /// Like [`pipeline`](Call::pipeline), for a result that *holds*
    /// references: a stub for the one at `index`, counting the references
    /// in the order the result serializes them (fields in declaration
    /// order; the first is 0). Calls through it fail with `bad arguments`
    /// if the result holds no reference there, and `incompatible` if it
    /// offers another interface.
    pub fn pipeline_nth<C: Client>(self, index: u32) -> C {
        C::from_ref_unchecked(self.promise(index, C::Interface::DESCRIPTOR))
    }

    fn promise(self, index: u32, want: &'static InterfaceDescriptor) -> Ref {
        match self.state {
            State::Deferred(Some((target, selector, args))) => {
                target.pipeline(selector, args, Context::for_call(), index, want)
            }
            // Started already (a future view): the promise awaits it here.
            State::Dispatched(dispatched) => {
                crate::promise::LocalPromise::of(dispatched, index, want)
            }
            State::Deferred(None) => crate::promise::LocalPromise::of(
                Dispatched::ready(Err(Error::new(
                    ErrorKind::Internal,
                    "a call pipelined after it was polled",
                ))),
                index,
                want,
            ),
        }
    }
}

impl<T, E> Future for Call<T, E> {
    type Output = Result<T, Error<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if let State::Deferred(deferred) = &mut self.state {
            let Some((target, selector, args)) = deferred.take() else {
                unreachable!("a deferred call is dispatched on its first poll")
            };
            self.state = State::Dispatched(target.call_owned(selector, args, Context::for_call()));
        }
        let State::Dispatched(dispatched) = &mut self.state else {
            unreachable!("dispatched above")
        };
        let reply = std::task::ready!(Pin::new(dispatched).poll(cx));
        Poll::Ready(match reply {
            Ok(value) => (self.take)(value).map_err(|other| {
                (self.map_err)(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "the reply holds a {}, not the {} the method returns",
                        other.type_name(),
                        std::any::type_name::<T>()
                    ),
                ))
            }),
            Err(e) => Err((self.map_err)(e)),
        })
    }
}

impl<T, E> fmt::Debug for Call<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state: &dyn fmt::Debug = match &self.state {
            State::Deferred(_) => &"deferred",
            State::Dispatched(d) => d,
        };
        f.debug_struct("Call")
            .field("state", state)
            .field("returns", &std::any::type_name::<T>())
            .finish()
    }
}
