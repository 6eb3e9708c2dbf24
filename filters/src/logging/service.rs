use std::task::{Context, Poll};
use std::time::Instant;

use tether_semantics::{BoxFuture, Message, boxed};
use tower::Service;
use tracing::level_filters::LevelFilter;
use tracing::{Level, Span, field};

use super::LoggingFuture;
use super::future::Log;

/// Logs each call that passes through it; see the [module](super) docs.
#[derive(Clone, Debug)]
pub struct LoggingService<S> {
    inner: S,
    level: Level,
}

impl<S> LoggingService<S> {
    /// Logs calls to `inner` at `level`.
    pub fn new(inner: S, level: Level) -> Self {
        LoggingService { inner, level }
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

macro_rules! call_span {
    ($level:expr, $m:expr) => {
        tracing::span!(
            $level,
            "tether.call",
            node = %$m.target().node(),
            object = %$m.target().object(),
            view = $m.target().view(),
            method = %$m.method_path(),
            chain = %$m.context().chain(),
            principal = field::Empty,
            tx = field::Empty,
        )
    };
}

fn span_for(level: Level, message: &Message) -> Span {
    // A span's level is fixed at its call site, hence one site per level.
    let span = match level {
        Level::TRACE => call_span!(Level::TRACE, message),
        Level::DEBUG => call_span!(Level::DEBUG, message),
        Level::INFO => call_span!(Level::INFO, message),
        Level::WARN => call_span!(Level::WARN, message),
        _ => call_span!(Level::ERROR, message),
    };
    if !span.is_disabled() {
        let ctx = message.context();
        if let Some(p) = ctx.principal() {
            span.record("principal", field::display(p));
        }
        if let Some(tx) = ctx.transaction() {
            span.record("tx", field::display(tx));
        }
    }
    span
}

impl<S> Service<Message> for LoggingService<S>
where
    S: Service<Message>,
    S::Future: Send + 'static,
    S::Response: 'static,
    S::Error: std::fmt::Display + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Boxed, so that when nobody listens the inner future passes through
    /// unchanged (see [`boxed`]).
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        // The most verbose level any subscriber wants: one atomic load, and
        // `OFF` when nobody listens, so that case costs only this branch.
        let most = LevelFilter::current();
        if most < self.level && most < Level::WARN {
            return boxed(self.inner.call(message));
        }
        let span = span_for(self.level, &message);
        if span.is_disabled() {
            if !tracing::enabled!(Level::WARN) {
                return boxed(self.inner.call(message));
            }
            let log = Log::FailuresOnly {
                method: message.method_path(),
                node: message.target().node(),
                object: message.target().object(),
            };
            return Box::pin(LoggingFuture::new(self.inner.call(message), log));
        }
        let start = Instant::now();
        let inner = span.in_scope(|| self.inner.call(message));
        let log = Log::Span {
            span,
            start,
            level: self.level,
        };
        Box::pin(LoggingFuture::new(inner, log))
    }
}
