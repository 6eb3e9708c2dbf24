use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;
use tether_semantics::{MethodPath, NodeId, ObjectId};
use tracing::{Level, Span};

pub(super) enum Log {
    /// A subscriber listens at the layer's level: a span, and an event at
    /// the end.
    Span {
        span: Span,
        start: Instant,
        level: Level,
    },
    /// Nobody listens at the layer's level: only a failure is logged (at
    /// `WARN`, if anybody listens there). Holds only `Copy` data.
    FailuresOnly {
        method: MethodPath,
        node: NodeId,
        object: ObjectId,
    },
}

pin_project! {
    /// What [`LoggingService`](super::LoggingService) wraps a call in when somebody
    /// listens (its service returns it boxed).
    pub struct LoggingFuture<F> {
        #[pin]
        inner: F,
        log: Log,
    }
}

impl<F> LoggingFuture<F> {
    pub(super) fn new(inner: F, log: Log) -> Self {
        LoggingFuture { inner, log }
    }
}

macro_rules! completed {
    ($level:expr, $latency:expr, $outcome:expr) => {
        tracing::event!($level, outcome = %$outcome, latency_us = $latency, "call completed")
    };
}

impl<F, T, E> Future for LoggingFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (span, start, level) = match this.log {
            Log::Span { span, start, level } => (span, start, level),
            Log::FailuresOnly {
                method,
                node,
                object,
            } => {
                let result = ready!(this.inner.poll(cx));
                if let Err(error) = &result {
                    tracing::warn!(%node, %object, %method, outcome = %error, "call failed");
                }
                return Poll::Ready(result);
            }
        };
        let _entered = span.enter();
        let result = ready!(this.inner.poll(cx));
        let latency = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        match &result {
            Err(error) => completed!(Level::WARN, latency, error),
            Ok(_) => match *level {
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

impl<F> std::fmt::Debug for LoggingFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggingFuture")
            .field("spanned", &matches!(self.log, Log::Span { .. }))
            .finish_non_exhaustive()
    }
}
