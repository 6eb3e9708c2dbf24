//! Writing your own filter, in full, and using tower's middleware as one.
//!
//! `cargo run --example custom_filter`
//!
//! A filter is a `tower::Layer` whose service takes a [`tether::Message`]
//! and answers a [`tether::Value`]. This example writes one by hand (a
//! quota that reads the typed arguments of `deposit` and refuses large
//! ones), shows that it gives the same answer to a remote caller as to a
//! local one, and then puts tower's `RateLimitLayer` in a view, which needs
//! a `BufferLayer` in front of it (see below why).

use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tether::transports::{Config, memory};
use tether::{BoxError, BoxFuture, Error, ErrorKind, Message, Node, Value};
use tower::buffer::BufferLayer;
use tower::limit::RateLimitLayer;
use tower::{Layer, Service};

/// An account.
#[tether::interface]
pub trait Account {
    /// Deposits `amount`; returns the new balance.
    async fn deposit(&self, amount: u64) -> u64;
    /// The balance.
    async fn balance(&self) -> u64;
}

#[derive(Default)]
struct Vault(std::sync::atomic::AtomicU64);

impl Account for Vault {
    async fn deposit(&self, amount: u64) -> u64 {
        self.0
            .fetch_add(amount, std::sync::atomic::Ordering::SeqCst)
            + amount
    }
    async fn balance(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The layer: what a view's `.layer(…)` takes. It only remembers the
/// configuration and wraps the inner service.
#[derive(Clone, Debug)]
struct QuotaLayer {
    max: u64,
}

impl<S> Layer<S> for QuotaLayer {
    type Service = Quota<S>;
    fn layer(&self, inner: S) -> Quota<S> {
        Quota {
            inner,
            max: self.max,
        }
    }
}

/// The service: sees every message before the object does. It must be
/// `Clone` (a view clones its stack for each call), `Send` and `Sync`.
#[derive(Clone, Debug)]
struct Quota<S> {
    inner: S,
    max: u64,
}

impl<S> Service<Message> for Quota<S>
where
    S: Service<Message, Response = Value> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Value;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Value, BoxError>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, message: Message) -> Self::Future {
        if message.selector() == AccountInterface::DEPOSIT.selector() {
            // The typed arguments, for a local call and a remote one alike
            // (a remote call's bytes are decoded here, once; the skeleton
            // then takes the decoded tuple). Arguments of another shape
            // are refused with a clear error.
            let amount = match message.args().try_args::<(u64,)>() {
                Ok((amount,)) => *amount,
                Err(e) => return Box::pin(async move { Err(e.into()) }),
            };
            if amount > self.max {
                let max = self.max;
                return Box::pin(async move {
                    Err(Error::new(
                        ErrorKind::AccessDenied,
                        format!("a deposit of {amount} is over the quota of {max}"),
                    )
                    .into())
                });
            }
        }
        let reply = self.inner.call(message);
        Box::pin(async move { reply.await.map_err(Into::into) })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::new();
    let vault = node.expose(Vault::default()).with_view(
        "teller",
        AccountInterface::view().layer(QuotaLayer { max: 1_000 }),
    )?;
    node.publish("vault", vault.view("teller")?);

    // Locally.
    let local: AccountClient = vault.client("teller")?;
    assert_eq!(local.deposit(300).await?, 300);
    let Err(refused) = local.deposit(5_000).await else {
        return Err("the quota let a large local deposit through".into());
    };
    println!("local caller:  {refused}");
    assert_eq!(refused.kind(), ErrorKind::AccessDenied);

    // From another node: the same filter, the same answer.
    let (to_bank, _) = memory::pair(&Node::new(), &node, Config::new(), Config::new());
    let remote: AccountClient = to_bank.lookup("vault").await?;
    assert_eq!(remote.deposit(200).await?, 500);
    let Err(refused) = remote.deposit(5_000).await else {
        return Err("the quota let a large remote deposit through".into());
    };
    println!("remote caller: {refused}");
    assert_eq!(refused.kind(), ErrorKind::AccessDenied);

    // tower's own middleware works as a filter unchanged. Rate limiting
    // keeps state in its service (the current window), so its service is
    // not `Clone`: written alone, `.layer(RateLimitLayer::new(…))` fails to
    // compile at `with_view` with "`RateLimit<…>: Clone` is not satisfied".
    // A `BufferLayer` in front fixes that: it runs the rate-limited service
    // in one task and hands out cheap clonable handles to it, so every
    // call through the view shares one limit, as it should.
    vault.set_view(
        "limited",
        AccountInterface::view()
            .layer(BufferLayer::new(64))
            .layer(RateLimitLayer::new(2, Duration::from_millis(200))),
    )?;
    let limited: AccountClient = vault.client("limited")?;
    let started = std::time::Instant::now();
    for _ in 0..6 {
        limited.balance().await?;
    }
    let took = started.elapsed();
    println!("6 calls at 2 per 200 ms took {took:?}");
    assert!(took >= Duration::from_millis(400), "the limit held");

    to_bank.close().await;
    Ok(())
}
