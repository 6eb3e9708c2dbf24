//! The typed handle a stub method returns.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::{Detail, Dispatched, Error, ErrorKind, Value};

/// A call made through a typed stub: a future of `Result<T, Error<E>>`.
///
/// What awaiting it means is the receiver's choice. Under a sync view the
/// call runs when awaited, and dropping the handle cancels it. Under a
/// future view the call has already started when the stub returns, and
/// dropping the handle does not stop it. Under a oneway view the message
/// is already sent and the handle resolves to `Ok(())` at once.
///
/// `E` is the callee's own error type for methods that return
/// `Result<T, E>`; for other methods it is the erased [`Detail`], never set.
#[must_use = "a call may not start until it is awaited"]
pub struct Call<T, E = Detail> {
    dispatched: Dispatched,
    take: fn(Value) -> Result<T, Value>,
    map_err: fn(Error) -> Error<E>,
    _out: PhantomData<fn() -> (T, E)>,
}

impl<T, E> Call<T, E> {
    pub(crate) fn new(
        dispatched: Dispatched,
        take: fn(Value) -> Result<T, Value>,
        map_err: fn(Error) -> Error<E>,
    ) -> Self {
        Call {
            dispatched,
            take,
            map_err,
            _out: PhantomData,
        }
    }

    /// Whether the call has started without being awaited (future and
    /// oneway views, and calls that already failed).
    pub fn is_started(&self) -> bool {
        self.dispatched.is_started()
    }
}

impl<T, E> Future for Call<T, E> {
    type Output = Result<T, Error<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let reply = std::task::ready!(Pin::new(&mut self.dispatched).poll(cx));
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
        f.debug_struct("Call")
            .field("dispatched", &self.dispatched)
            .field("returns", &std::any::type_name::<T>())
            .finish()
    }
}
