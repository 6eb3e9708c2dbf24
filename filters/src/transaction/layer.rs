use std::sync::Arc;

use tether_semantics::Method;
use tower::Layer;

use super::TransactionService;

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

/// Gives a view's methods a transaction option, one for all of them or
/// one per method; see the [module](super) docs.
///
/// ```
/// # use tether::Selector; use tether::ext::{Interface, InterfaceDescriptor, Method};
/// # struct AccountInterface;
/// # impl Interface for AccountInterface {
/// #     const DESCRIPTOR: &'static InterfaceDescriptor = &InterfaceDescriptor::new("Account", &[], 0);
/// # }
/// # impl AccountInterface { const BALANCE: Method<AccountInterface> = Method::new(Selector::new("balance")); }
/// use tether::filters::transaction::{TransactionLayer, TxOption};
/// let transfer = TransactionLayer::create();
/// let leg = TransactionLayer::join();
/// // Deposits and withdrawals need a transaction; reading the balance
/// // joins one if there is one, and runs without otherwise.
/// let account = TransactionLayer::required()
///     .method(AccountInterface::BALANCE, TxOption::Supported);
/// # let _ = (transfer, leg, account);
/// ```
#[derive(Clone, Debug)]
pub struct TransactionLayer {
    option: TxOption,
    /// Options of single methods, by selector id.
    methods: Arc<[(u32, TxOption)]>,
}

impl TransactionLayer {
    /// With `option` for every method.
    pub fn new(option: TxOption) -> Self {
        TransactionLayer {
            option,
            methods: Arc::new([]),
        }
    }
    /// With `option` for `method`, and the layer's own for the others.
    pub fn method<I>(self, method: Method<I>, option: TxOption) -> Self {
        let id = method.selector().id();
        let mut methods: Vec<(u32, TxOption)> = self
            .methods
            .iter()
            .copied()
            .filter(|(m, _)| *m != id)
            .collect();
        methods.push((id, option));
        TransactionLayer {
            option: self.option,
            methods: methods.into(),
        }
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
    type Service = TransactionService<S>;

    fn layer(&self, inner: S) -> TransactionService<S> {
        TransactionService::new(inner, self.option, self.methods.clone())
    }
}
