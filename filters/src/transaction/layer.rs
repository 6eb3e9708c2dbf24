use tower::Layer;

use super::Transaction;

/// How a method relates to transactions (the options Orleans users know).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOption {
    /// Always starts a new transaction, even inside one (which it does not
    /// join); commits or aborts it when the call ends.
    Create,
    /// Must run inside the caller's transaction; fails outside one.
    Join,
    /// Joins the caller's transaction, or starts one if there is none.
    CreateOrJoin,
    /// Joins the caller's transaction if there is one; otherwise runs
    /// without (its cell writes take effect at once).
    Supported,
    /// Must not run inside a transaction; fails inside one.
    NotAllowed,
    /// Runs outside any transaction, even when called inside one.
    Suppress,
}

/// Gives a view's methods a transaction option; see the [module](super)
/// docs.
///
/// ```
/// use tether_filters::transaction::TransactionLayer;
/// let transfer = TransactionLayer::create();
/// let leg = TransactionLayer::join();
/// # let _ = (transfer, leg);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TransactionLayer {
    option: TxOption,
}

impl TransactionLayer {
    /// With `option`.
    pub fn new(option: TxOption) -> Self {
        TransactionLayer { option }
    }
    /// [`TxOption::Create`].
    pub fn create() -> Self {
        Self::new(TxOption::Create)
    }
    /// [`TxOption::Join`].
    pub fn join() -> Self {
        Self::new(TxOption::Join)
    }
    /// [`TxOption::CreateOrJoin`], the usual choice.
    pub fn required() -> Self {
        Self::new(TxOption::CreateOrJoin)
    }
    /// [`TxOption::Supported`].
    pub fn supported() -> Self {
        Self::new(TxOption::Supported)
    }
    /// [`TxOption::NotAllowed`].
    pub fn not_allowed() -> Self {
        Self::new(TxOption::NotAllowed)
    }
    /// [`TxOption::Suppress`].
    pub fn suppress() -> Self {
        Self::new(TxOption::Suppress)
    }
}

impl<S> Layer<S> for TransactionLayer {
    type Service = Transaction<S>;

    fn layer(&self, inner: S) -> Transaction<S> {
        Transaction::new(inner, self.option)
    }
}
