use std::sync::Arc;
use std::time::Duration;

use tether_semantics::{Interface, Method};
use tower::Layer;

use super::MutexService;

/// Adds mutual exclusion to a view; see the [module](super) docs.
///
/// ```
/// # use tether::Selector; use tether::ext::{Interface, InterfaceDescriptor, Method};
/// # struct AccountInterface;
/// # impl Interface for AccountInterface {
/// #     const DESCRIPTOR: &'static InterfaceDescriptor = &InterfaceDescriptor::new("Account", &[], 0);
/// # }
/// # impl AccountInterface { const BALANCE: Method<AccountInterface> = Method::new(Selector::new("balance")); }
/// use std::time::Duration;
/// use tether::filters::MutexLayer;
///
/// let exclusive = MutexLayer::exclusive().max_wait(Duration::from_secs(2));
/// let shared_reads = MutexLayer::readers_writer([AccountInterface::BALANCE]);
/// # let _ = (exclusive, shared_reads);
/// ```
#[derive(Clone, Debug)]
pub struct MutexLayer {
    readers: Arc<[u32]>,
    max_wait: Duration,
}

impl MutexLayer {
    /// One call at a time.
    pub fn exclusive() -> Self {
        MutexLayer {
            readers: Arc::new([]),
            max_wait: Duration::from_secs(30),
        }
    }

    /// `readers` may run together; every other method runs alone.
    pub fn readers_writer<I>(readers: impl IntoIterator<Item = Method<I>>) -> Self {
        MutexLayer {
            readers: readers.into_iter().map(|m| m.selector().id()).collect(),
            ..Self::exclusive()
        }
    }

    /// Readers and writer, with the readers the interface marks: methods
    /// declared `#[tether(read)]` in the trait.
    pub fn readers_writer_of<I: Interface>() -> Self {
        MutexLayer {
            readers: I::DESCRIPTOR
                .methods()
                .iter()
                .filter(|m| m.reads())
                .map(|m| m.selector().id())
                .collect(),
            ..Self::exclusive()
        }
    }

    /// How long a caller may wait for the lock before it gets an
    /// `Overloaded` error.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

impl<S> Layer<S> for MutexLayer {
    type Service = MutexService<S>;

    fn layer(&self, inner: S) -> MutexService<S> {
        MutexService::new(inner, self.readers.clone(), self.max_wait)
    }
}
