use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;
use tether_semantics::{BoxError, Error, ErrorKind, Message, Transaction as Branch};
use tower::Service;

use super::TxOption;

/// Starts, joins, refuses or leaves transactions as its option says; see
/// the [module](super) docs.
#[derive(Clone, Debug)]
pub struct TransactionService<S> {
    inner: S,
    option: TxOption,
    methods: std::sync::Arc<[(u32, TxOption)]>,
}

impl<S> TransactionService<S> {
    pub(crate) fn new(
        inner: S,
        option: TxOption,
        methods: std::sync::Arc<[(u32, TxOption)]>,
    ) -> Self {
        TransactionService {
            inner,
            option,
            methods,
        }
    }

    /// The option for the method `message` calls.
    fn option_for(&self, message: &Message) -> TxOption {
        let id = message.selector().id();
        self.methods
            .iter()
            .find(|(m, _)| *m == id)
            .map_or(self.option, |(_, o)| *o)
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

impl<S> Service<Message> for TransactionService<S>
where
    S: Service<Message>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TransactionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut message: Message) -> Self::Future {
        let running = message
            .context()
            .transaction()
            .filter(|tx| tx.is_active())
            .map(Branch::id);
        let refuse = |what: &str| {
            let e = Error::new(
                ErrorKind::Failed,
                format!("{} {what}", message.method_path()),
            );
            TransactionFuture::refused(e)
        };
        match (self.option_for(&message), running) {
            (TxOption::Create, _) | (TxOption::CreateOrJoin, None) => {
                let tx = Branch::begin();
                message.context_mut().set_transaction(Some(tx.clone()));
                TransactionFuture::owning(self.inner.call(message), tx)
            }
            (TxOption::Join, None) => refuse("must run inside a transaction"),
            (TxOption::NotAllowed, Some(tx)) => {
                refuse(&format!("must not run inside a transaction ({tx})"))
            }
            (TxOption::Suppress, _) | (TxOption::Supported | TxOption::NotAllowed, None) => {
                // Outside any transaction; a branch that has ended is
                // dropped too.
                if message.context().transaction().is_some() {
                    message.context_mut().set_transaction(None);
                }
                TransactionFuture::joining(self.inner.call(message))
            }
            (TxOption::Join | TxOption::CreateOrJoin | TxOption::Supported, Some(_)) => {
                TransactionFuture::joining(self.inner.call(message))
            }
        }
    }
}

pin_project! {
    /// The response future of [`TransactionService`]: when the call
    /// started the transaction, ends it (two-phase commit, or abort) as the
    /// call ends, and aborts it if dropped first.
    pub struct TransactionFuture<F: Future> {
        #[pin]
        inner: Option<F>,
        owned: Owned,
        refused: Option<Error>,
        // The call's outcome, while the transaction finishes.
        outcome: Option<F::Output>,
        finishing: Option<BoxFuture<'static, bool>>,
    }
}

/// The transaction a call started; aborted if dropped unfinished.
struct Owned(Option<Branch>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            tx.abort_now();
        }
    }
}

impl<F: Future> TransactionFuture<F> {
    fn new(inner: Option<F>, owned: Option<Branch>, refused: Option<Error>) -> Self {
        TransactionFuture {
            inner,
            owned: Owned(owned),
            refused,
            outcome: None,
            finishing: None,
        }
    }
    fn owning(inner: F, tx: Branch) -> Self {
        Self::new(Some(inner), Some(tx), None)
    }
    fn joining(inner: F) -> Self {
        Self::new(Some(inner), None, None)
    }
    fn refused(error: Error) -> Self {
        Self::new(None, None, Some(error))
    }
}

impl<F, T, E> Future for TransactionFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.finishing.is_none() {
            let Some(inner) = this.inner.as_mut().as_pin_mut() else {
                let e = this
                    .refused
                    .take()
                    .unwrap_or_else(|| Error::new(ErrorKind::Internal, "polled after completion"));
                return Poll::Ready(Err(e.into()));
            };
            let outcome = ready!(inner.poll(cx));
            this.inner.set(None);
            let Some(tx) = this.owned.0.take() else {
                return Poll::Ready(outcome.map_err(Into::into));
            };
            let commit = outcome.is_ok();
            *this.outcome = Some(outcome);
            *this.finishing = Some(Box::pin(async move { tx.finish(commit).await }));
        }
        let Some(finishing) = this.finishing.as_mut() else {
            return Poll::Pending;
        };
        let committed = ready!(finishing.as_mut().poll(cx));
        *this.finishing = None;
        let Some(outcome) = this.outcome.take() else {
            return Poll::Ready(Err(Error::new(
                ErrorKind::Internal,
                "polled after completion",
            )
            .into()));
        };
        Poll::Ready(match outcome {
            Ok(_) if !committed => Err(Error::new(
                ErrorKind::Failed,
                "the transaction aborted: a participant could not commit",
            )
            .into()),
            other => other.map_err(Into::into),
        })
    }
}

impl<F: Future> std::fmt::Debug for TransactionFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionFuture")
            .field("owns", &self.owned.0)
            .field("finishing", &self.finishing.is_some())
            .finish_non_exhaustive()
    }
}
