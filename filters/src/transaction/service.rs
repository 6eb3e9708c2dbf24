use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tether_semantics::{BoxError, ChainId, Error, ErrorKind, Message, TransactionId};
use tower::Service;

use super::TxOption;
use super::registry;

/// Starts, joins, refuses or leaves transactions as its option says; see
/// the [module](super) docs.
#[derive(Clone, Debug)]
pub struct Transaction<S> {
    inner: S,
    option: TxOption,
}

impl<S> Transaction<S> {
    pub(crate) fn new(inner: S, option: TxOption) -> Self {
        Transaction { inner, option }
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

impl<S> Service<Message> for Transaction<S>
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
            .filter(|tx| registry::is_active(*tx));
        let refuse = |what: &str| {
            let e = Error::new(
                ErrorKind::Failed,
                format!("{} {what}", message.method_path()),
            );
            TransactionFuture::refused(e)
        };
        match (self.option, running) {
            (TxOption::Create, _) | (TxOption::CreateOrJoin, None) => {
                let tx = TransactionId(ChainId::fresh().0);
                registry::begin(tx);
                message.context_mut().set_transaction(Some(tx));
                TransactionFuture::owning(self.inner.call(message), tx)
            }
            (TxOption::Join, None) => refuse("must run inside a transaction"),
            (TxOption::NotAllowed, Some(tx)) => {
                refuse(&format!("must not run inside a transaction ({tx})"))
            }
            (TxOption::Suppress, _) => {
                message.context_mut().set_transaction(None);
                TransactionFuture::joining(self.inner.call(message))
            }
            (TxOption::Supported | TxOption::NotAllowed, None) => {
                // A stale transaction id (one that has ended) is dropped.
                message.context_mut().set_transaction(None);
                TransactionFuture::joining(self.inner.call(message))
            }
            (TxOption::Join | TxOption::CreateOrJoin | TxOption::Supported, Some(_)) => {
                TransactionFuture::joining(self.inner.call(message))
            }
        }
    }
}

pin_project! {
    /// The response future of [`Transaction`]: when the call started the
    /// transaction, ends it (two-phase commit, or abort) as the call ends,
    /// and aborts it if dropped first.
    pub struct TransactionFuture<F> {
        #[pin]
        inner: Option<F>,
        owned: Owned,
        refused: Option<Error>,
    }
}

/// The transaction a call started; aborted if dropped unfinished.
struct Owned(Option<TransactionId>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            registry::finish(tx, false);
        }
    }
}

impl<F> TransactionFuture<F> {
    fn owning(inner: F, tx: TransactionId) -> Self {
        TransactionFuture {
            inner: Some(inner),
            owned: Owned(Some(tx)),
            refused: None,
        }
    }
    fn joining(inner: F) -> Self {
        TransactionFuture {
            inner: Some(inner),
            owned: Owned(None),
            refused: None,
        }
    }
    fn refused(error: Error) -> Self {
        TransactionFuture {
            inner: None,
            owned: Owned(None),
            refused: Some(error),
        }
    }
}

impl<F, T, E> Future for TransactionFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let e = this
                .refused
                .take()
                .unwrap_or_else(|| Error::new(ErrorKind::Internal, "polled after completion"));
            return Poll::Ready(Err(e.into()));
        };
        let outcome = ready!(inner.poll(cx)).map_err(Into::into);
        let Some(tx) = this.owned.0.take() else {
            return Poll::Ready(outcome);
        };
        let committed = registry::finish(tx, outcome.is_ok());
        Poll::Ready(match outcome {
            Ok(_) if !committed => Err(Error::new(
                ErrorKind::Failed,
                format!("{tx} aborted: a participant could not commit"),
            )
            .into()),
            other => other,
        })
    }
}

impl<F> std::fmt::Debug for TransactionFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionFuture")
            .field("owns", &self.owned.0)
            .finish_non_exhaustive()
    }
}
