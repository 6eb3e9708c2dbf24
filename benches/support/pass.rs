//! A filter that does nothing but forward: the cost of one layer. Shared by
//! `benches/overhead.rs` and `examples/call_cost.rs` (through `#[path]`),
//! so that time and instruction counts measure the same layer.

use std::task::{Context, Poll};

use tower::{Layer, Service};

/// Wraps a service in [`Pass`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassLayer;

/// Forwards every call to the service inside.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pass<S>(S);

impl<S> Layer<S> for PassLayer {
    type Service = Pass<S>;
    fn layer(&self, inner: S) -> Pass<S> {
        Pass(inner)
    }
}

impl<S: Service<R>, R> Service<R> for Pass<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }
    fn call(&mut self, req: R) -> S::Future {
        self.0.call(req)
    }
}
