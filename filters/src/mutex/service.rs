use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tether_semantics::{BoxError, Message, NodeId, ObjectId};
use tower::Service;

use super::MutexFuture;
use super::lock::{Acquired, Asker, Mode, ObjectLock};

/// Lets one call at a time into the object (or many readers); see the
/// [module](super) docs.
#[derive(Clone, Debug)]
pub struct MutexService<S> {
    inner: S,
    /// One `Arc`, because a view clones its stack for every call.
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    readers: Arc<[u32]>,
    max_wait: Duration,
    /// The lock of the object this stack serves, found on the first call.
    /// A view's stack is built per object, so this saves looking the lock
    /// up in the object's state on every call; the object is checked.
    cached: OnceLock<(NodeId, ObjectId, Arc<ObjectLock>)>,
}

impl<S> MutexService<S> {
    /// Guards `inner`; methods whose selector ids are in `readers` share
    /// the lock.
    pub(crate) fn new(inner: S, readers: Arc<[u32]>, max_wait: Duration) -> Self {
        MutexService {
            inner,
            shared: Arc::new(Shared {
                readers,
                max_wait,
                cached: OnceLock::new(),
            }),
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

impl<S> Service<Message> for MutexService<S>
where
    S: Service<Message> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = MutexFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        let mode = if self.shared.readers.contains(&message.selector().id()) {
            Mode::Read
        } else {
            Mode::Write
        };
        let target = message.target();
        let (node, object) = (target.node(), target.object());
        let cached = &self.shared.cached;
        let lock = match cached.get() {
            Some((n, o, lock)) if (*n, *o) == (node, object) => lock,
            Some(_) => &target.state::<ObjectLock>(),
            None => &cached.get_or_init(|| (node, object, target.state())).2,
        };
        match lock.acquire(Asker::of(message.context()), mode) {
            Acquired::Now(permit) => MutexFuture::running(self.inner.call(message), permit),
            Acquired::Queued(queued) => {
                // The ready service goes with the call; a clone stays.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                MutexFuture::waiting(queued, ready, message, self.shared.max_wait)
            }
        }
    }
}
