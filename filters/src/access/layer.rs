use std::fmt;
use std::sync::Arc;

use tether_semantics::{Interface, InterfaceDescriptor, Method, Principal};
use tower::Layer;

use super::AccessService;

/// Who a rule lets in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Who {
    /// Every caller, anonymous ones too.
    Anyone,
    /// Every caller with a principal.
    Authenticated,
    /// Principals that hold this role.
    Role(Box<str>),
    /// The principal with this name.
    Principal(Box<str>),
}

impl Who {
    /// Principals that hold `role`.
    pub fn role(role: impl Into<Box<str>>) -> Self {
        Who::Role(role.into())
    }

    /// The principal called `name`.
    pub fn principal(name: impl Into<Box<str>>) -> Self {
        Who::Principal(name.into())
    }

    pub(crate) fn admits(&self, principal: Option<&Principal>) -> bool {
        match (self, principal) {
            (Who::Anyone, _) => true,
            (_, None) => false,
            (Who::Authenticated, Some(_)) => true,
            (Who::Role(role), Some(p)) => p.has_role(role),
            (Who::Principal(name), Some(p)) => p.name() == &**name,
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Anyone => f.write_str("anyone"),
            Who::Authenticated => f.write_str("any authenticated principal"),
            Who::Role(r) => write!(f, "role {r:?}"),
            Who::Principal(p) => write!(f, "principal {p:?}"),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) who: Who,
    /// Selector ids; `None` is every method.
    pub(crate) methods: Option<Box<[u32]>>,
    /// The interface whose methods `methods` are: a view of another
    /// interface refuses every call rather than grant nothing silently.
    pub(crate) interface: Option<&'static InterfaceDescriptor>,
}

/// Adds access control to a view; see the [module](super) docs.
///
/// ```
/// # use tether::Selector; use tether::ext::{Interface, InterfaceDescriptor, Method};
/// # struct AccountInterface;
/// # impl Interface for AccountInterface {
/// #     const DESCRIPTOR: &'static InterfaceDescriptor = &InterfaceDescriptor::new("Account", &[], 0);
/// # }
/// # impl AccountInterface { const BALANCE: Method<AccountInterface> = Method::new(Selector::new("balance")); }
/// use tether::filters::access::{AccessLayer, Who};
///
/// // Tellers may call everything; anybody may read the balance.
/// let policy = AccessLayer::allow_role("teller")
///     .allow_methods(Who::Anyone, [AccountInterface::BALANCE]);
/// # let _ = policy;
/// ```
#[derive(Clone, Debug)]
pub struct AccessLayer {
    rules: Arc<[Rule]>,
}

impl AccessLayer {
    /// A policy that refuses every call until rules allow some.
    pub fn deny_all() -> Self {
        AccessLayer {
            rules: Arc::new([]),
        }
    }

    /// A policy that lets principals with `role` call every method.
    pub fn allow_role(role: impl Into<Box<str>>) -> Self {
        Self::deny_all().allow(Who::role(role))
    }

    /// Also lets `who` call every method.
    pub fn allow(self, who: Who) -> Self {
        self.with(Rule {
            who,
            methods: None,
            interface: None,
        })
    }

    /// Also lets `who` call `methods`.
    ///
    /// The methods belong to interface `I`. Put in a view of another
    /// interface, the layer refuses every call with an `internal` error
    /// that names both (a policy that silently granted nothing would be a
    /// bug hiding as a denial).
    pub fn allow_methods<I: Interface>(
        self,
        who: Who,
        methods: impl IntoIterator<Item = Method<I>>,
    ) -> Self {
        let methods = methods.into_iter().map(|m| m.selector().id()).collect();
        self.with(Rule {
            who,
            methods: Some(methods),
            interface: Some(I::DESCRIPTOR),
        })
    }

    fn with(self, rule: Rule) -> Self {
        let mut rules = self.rules.to_vec();
        rules.push(rule);
        AccessLayer {
            rules: rules.into(),
        }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> AccessService<S> {
        AccessService::new(inner, self.rules.clone())
    }
}
