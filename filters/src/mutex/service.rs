use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tether_semantics::{BoxError, Message};
use tower::Service;

use super::ResponseFuture;
use super::lock::{Acquired, Mode, ObjectLock};

/// Lets one call at a time into the object (or many readers); see the
/// [module](super) docs.
#[derive(Clone, Debug)]
pub struct Mutex<S> {
    inner: S,
    readers: Arc<[u32]>,
    max_wait: Duration,
}

impl<S> Mutex<S> {
    /// Guards `inner`; methods whose selector ids are in `readers` share
    /// the lock.
    pub(crate) fn new(inner: S, readers: Arc<[u32]>, max_wait: Duration) -> Self {
        Mutex {
            inner,
            readers,
            max_wait,
        }
    }
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Message> for Mutex<S>
where
    S: Service<Message> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let mode = if self.readers.contains(&message.selector().id()) {
            Mode::Read
        } else {
            Mode::Write
        };
        let lock = message.target().state::<ObjectLock>();
        match lock.acquire(message.context().chain(), mode) {
            Acquired::Now(permit) => ResponseFuture::running(self.inner.call(message), permit),
            Acquired::Queued(queued) => {
                // The ready service goes with the call; a clone stays.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(queued, ready, message, self.max_wait)
            }
        }
    }
}
