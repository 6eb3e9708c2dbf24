use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tether_semantics::{BoxError, Error, ErrorKind, Message, MethodPath, ObjectId};
use tower::Service;

use super::lock::{Permit, Queued};

pin_project! {
    /// The response future of [`MutexService`](super::MutexService): waits for the lock
    /// if it must, then runs the call holding it.
    pub struct MutexFuture<S>
    where
        S: Service<Message>,
    {
        #[pin]
        state: State<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S>
    where
        S: Service<Message>,
    {
        Waiting {
            queued: Queued,
            timer: Pin<Box<tokio::time::Sleep>>,
            call: Option<(S, Message)>,
            waited: Duration,
            method: MethodPath,
            object: ObjectId,
        },
        Running {
            #[pin]
            future: S::Future,
            permit: Option<Permit>,
        },
    }
}

impl<S: Service<Message>> MutexFuture<S> {
    pub(super) fn running(future: S::Future, permit: Permit) -> Self {
        MutexFuture {
            state: State::Running {
                future,
                permit: Some(permit),
            },
        }
    }

    pub(super) fn waiting(
        queued: Queued,
        service: S,
        message: Message,
        max_wait: Duration,
    ) -> Self {
        MutexFuture {
            state: State::Waiting {
                queued,
                timer: Box::pin(tokio::time::sleep(max_wait)),
                method: message.method_path(),
                object: message.target().object(),
                call: Some((service, message)),
                waited: max_wait,
            },
        }
    }
}

impl<S> Future for MutexFuture<S>
where
    S: Service<Message>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Waiting {
                    queued,
                    timer,
                    call,
                    waited,
                    method,
                    object,
                } => {
                    let permit = match Pin::new(&mut queued.receiver).poll(cx) {
                        Poll::Ready(Ok(permit)) => permit,
                        Poll::Ready(Err(_)) => {
                            return Poll::Ready(Err(Error::new(
                                ErrorKind::Internal,
                                "the lock dropped a waiter without an answer",
                            )
                            .into()));
                        }
                        Poll::Pending => {
                            if timer.as_mut().poll(cx).is_ready() {
                                return Poll::Ready(Err(Error::new(
                                    ErrorKind::Overloaded,
                                    format!(
                                        "{method} waited {waited:?} for the lock of {object} and gave up"
                                    ),
                                )
                                .into()));
                            }
                            return Poll::Pending;
                        }
                    };
                    let Some((mut service, message)) = call.take() else {
                        return Poll::Ready(Err(Error::new(
                            ErrorKind::Internal,
                            "mutex future polled after completion",
                        )
                        .into()));
                    };
                    let future = service.call(message);
                    self.as_mut().project().state.set(State::Running {
                        future,
                        permit: Some(permit),
                    });
                }
                StateProj::Running { future, permit } => {
                    let output = ready!(future.poll(cx));
                    drop(permit.take());
                    return Poll::Ready(output.map_err(Into::into));
                }
            }
        }
    }
}

impl<S: Service<Message>> std::fmt::Debug for MutexFuture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutexFuture").finish_non_exhaustive()
    }
}
