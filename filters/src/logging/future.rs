use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;
use tracing::{Level, Span};

pub(super) struct Log {
    pub(super) span: Span,
    pub(super) start: Instant,
    pub(super) level: Level,
}

pin_project! {
    /// The response future of [`Logging`](super::Logging).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        log: Option<Log>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, log: Option<Log>) -> Self {
        ResponseFuture { inner, log }
    }
}

macro_rules! completed {
    ($level:expr, $latency:expr, $outcome:expr) => {
        tracing::event!($level, outcome = %$outcome, latency_us = $latency, "call completed")
    };
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(log) = this.log.as_ref() else {
            return this.inner.poll(cx);
        };
        let _entered = log.span.enter();
        let result = ready!(this.inner.poll(cx));
        let latency = u64::try_from(log.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        match &result {
            Err(error) => completed!(Level::WARN, latency, error),
            Ok(_) => match log.level {
                Level::TRACE => completed!(Level::TRACE, latency, "ok"),
                Level::DEBUG => completed!(Level::DEBUG, latency, "ok"),
                Level::INFO => completed!(Level::INFO, latency, "ok"),
                Level::WARN => completed!(Level::WARN, latency, "ok"),
                _ => completed!(Level::ERROR, latency, "ok"),
            },
        }
        Poll::Ready(result)
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("logged", &self.log.is_some())
            .finish_non_exhaustive()
    }
}
