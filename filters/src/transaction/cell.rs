//! Transactional state.

use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tether_semantics::transaction::Participant;
use tether_semantics::{Context, Error, ErrorKind, Transaction, TransactionId};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A value an object keeps under transactions.
///
/// Inside a transaction, the first access (read or write) locks the cell
/// to that transaction until it ends, and the transaction works on its own
/// tentative copy; the copy becomes the value if the transaction commits
/// and is thrown away if it aborts. Other transactions wait for the cell,
/// at most its lock timeout. Outside a transaction, [`get`](TxCell::get)
/// returns the last committed value at once, and writes wait for the cell
/// and take effect at once.
///
/// Cloning a `TxCell` gives another handle to the same cell.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tether::filters::transaction::TxCell;
/// let balance = TxCell::new(10_i64);
/// balance.update(|b| *b += 5).await.unwrap(); // no transaction: at once
/// assert_eq!(balance.get().await.unwrap(), 15);
/// # }
/// ```
pub struct TxCell<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    released: Notify,
    lock_timeout: Duration,
}

struct State<T> {
    committed: T,
    holder: Option<(TransactionId, T)>,
}

impl<T: Clone + Send + Sync + 'static> TxCell<T> {
    /// A cell holding `value`, whose waiters give up after 5 s.
    pub fn new(value: T) -> Self {
        Self::with_lock_timeout(value, Duration::from_secs(5))
    }

    /// A cell holding `value`, whose waiters give up after `lock_timeout`.
    pub fn with_lock_timeout(value: T, lock_timeout: Duration) -> Self {
        TxCell {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    committed: value,
                    holder: None,
                }),
                released: Notify::new(),
                lock_timeout,
            }),
        }
    }

    /// The value as the current transaction sees it, or, outside a
    /// transaction, the last committed value.
    pub async fn get(&self) -> Result<T, Error> {
        match current_transaction() {
            Some(tx) => self.in_transaction(tx, |v| v.clone()).await,
            None => Ok(self.inner.state().committed.clone()),
        }
    }

    /// Sets the value (tentatively, inside a transaction).
    pub async fn set(&self, value: T) -> Result<(), Error> {
        self.update(|v| *v = value).await
    }

    /// Changes the value with `f` (tentatively, inside a transaction) and
    /// returns what `f` returns.
    pub async fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, Error> {
        match current_transaction() {
            Some(tx) => self.in_transaction(tx, f).await,
            None => self.outside(f).await,
        }
    }

    /// The last committed value, without waiting.
    pub fn committed(&self) -> T {
        self.inner.state().committed.clone()
    }

    /// The transaction holding the cell, if any.
    pub fn holder(&self) -> Option<TransactionId> {
        self.inner.state().holder.as_ref().map(|(tx, _)| *tx)
    }

    async fn in_transaction<R>(
        &self,
        branch: Transaction,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, Error> {
        let tx = branch.id();
        let mut f = Some(f);
        let mut try_once = || {
            let mut state = self.inner.state();
            let State { committed, holder } = &mut *state;
            match holder {
                Some((holder, value)) if *holder == tx => Ok(f.take().map(|f| f(value))),
                Some((other, _)) => Err(*other),
                None => {
                    let participant: Arc<dyn Participant> = self.inner.clone();
                    if !branch.enlist(participant) {
                        return Ok(None);
                    }
                    let value = holder.insert((tx, committed.clone()));
                    Ok(f.take().map(|f| f(&mut value.1)))
                }
            }
        };
        let ended = || {
            Error::new(
                ErrorKind::Failed,
                format!("{tx} has ended; its calls can no longer change state"),
            )
        };
        self.wait_for(&mut try_once, || tx.to_string())
            .await?
            .ok_or_else(ended)
    }

    async fn outside<R>(&self, f: impl FnOnce(&mut T) -> R) -> Result<R, Error> {
        let mut f = Some(f);
        let mut try_once = || {
            let mut state = self.inner.state();
            match state.holder {
                None => Ok(f.take().map(|f| f(&mut state.committed))),
                Some((other, _)) => Err(other),
            }
        };
        self.wait_for(&mut try_once, || "a call outside transactions".to_string())
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Internal, "cell update ran twice"))
    }

    /// Runs `try_once` until it stops answering "held by another
    /// transaction", waiting for releases in between, at most the lock
    /// timeout. The first try costs no registration.
    async fn wait_for<R>(
        &self,
        try_once: &mut impl FnMut() -> Result<R, TransactionId>,
        who: impl Fn() -> String,
    ) -> Result<R, Error> {
        if let Ok(r) = try_once() {
            return Ok(r);
        }
        let deadline = Instant::now() + self.inner.lock_timeout;
        loop {
            // Registered before looking again, so a release in between is
            // seen.
            let mut released = pin!(self.inner.released.notified());
            released.as_mut().enable();
            let other = match try_once() {
                Ok(r) => return Ok(r),
                Err(holder) => holder,
            };
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(self.timed_out(who(), other));
            }
        }
    }

    fn timed_out(&self, who: String, holder: TransactionId) -> Error {
        Error::new(
            ErrorKind::Overloaded,
            format!(
                "{who} waited {:?} for a cell held by {holder}, and gave up",
                self.inner.lock_timeout
            ),
        )
    }
}

fn current_transaction() -> Option<Transaction> {
    Context::current()?.transaction().cloned()
}

impl<T> Inner<T> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Send + Sync + 'static> Participant for Inner<T> {
    fn prepare(&self, tx: TransactionId) -> BoxFuture<'static, bool> {
        // Locks are held from first access, so nothing can conflict now.
        let held = matches!(self.state().holder, Some((holder, _)) if holder == tx);
        Box::pin(std::future::ready(held))
    }

    fn commit(&self, tx: TransactionId) -> BoxFuture<'static, ()> {
        self.release(tx, true);
        Box::pin(std::future::ready(()))
    }

    fn abort(&self, tx: TransactionId) -> BoxFuture<'static, ()> {
        self.release(tx, false);
        Box::pin(std::future::ready(()))
    }
}

impl<T> Inner<T> {
    /// Ends `tx`'s hold on the cell, keeping its value if `keep`.
    fn release(&self, tx: TransactionId, keep: bool) {
        {
            let mut state = self.state();
            if matches!(state.holder, Some((holder, _)) if holder == tx) {
                if let Some((_, value)) = state.holder.take() {
                    if keep {
                        state.committed = value;
                    }
                }
            }
        }
        self.released.notify_waiters();
    }
}

impl<T> Clone for TxCell<T> {
    fn clone(&self) -> Self {
        TxCell {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for TxCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        f.debug_struct("TxCell")
            .field("committed", &state.committed)
            .field("holder", &state.holder.as_ref().map(|(tx, _)| *tx))
            .finish()
    }
}
