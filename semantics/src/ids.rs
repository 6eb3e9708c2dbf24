//! Identifiers: of nodes, objects, call chains, activations, traces.
//!
//! Random ids come from per-thread blocks of a process-wide counter that
//! starts at a random point, so a fresh one costs no atomic operation and
//! ids of two processes are unlikely to meet.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{:016x}", self.0)
    }
}

/// Identifies an exposed object within its node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u64);

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "object-{}", self.0)
    }
}

/// Identifies one activation: one call, from the moment it enters the
/// receiver's view until it answers. Unique across nodes (random base).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivationId(pub u64);

impl ActivationId {
    /// An id not handed out before by this process (and, since the counter
    /// starts at a random point, unlikely to be another process's).
    pub fn fresh() -> Self {
        loop {
            // Zero means "no activation"; the counter passes it at most once.
            if let id @ 1.. = ChainId::fresh().0 {
                return ActivationId(id);
            }
        }
    }
}

impl fmt::Display for ActivationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{:016x}", self.0)
    }
}

/// Identifies one chain of calls: a top-level call and every call made on
/// its behalf, on any node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub u64);

impl ChainId {
    /// A chain id not handed out before by this process, and unlikely to
    /// collide with another process's (the counter starts at a random
    /// point).
    pub fn fresh() -> Self {
        BLOCK
            .try_with(ChainId::fresh_in)
            .unwrap_or_else(|_| ChainId::fresh_slow())
    }

    /// Each thread takes blocks of ids from a process-wide counter, so a
    /// fresh id costs no atomic operation on the call path.
    fn fresh_in(block: &Cell<(u64, u64)>) -> Self {
        let (mut next, mut end) = block.get();
        if next == end {
            next = NEXT_BLOCK.fetch_add(CHAIN_BLOCK, Ordering::Relaxed);
            end = next + CHAIN_BLOCK;
        }
        block.set((next + 1, end));
        ChainId(chain_base().wrapping_add(next))
    }

    /// For threads whose locals are gone (exiting): a block of its own.
    fn fresh_slow() -> Self {
        ChainId(chain_base().wrapping_add(NEXT_BLOCK.fetch_add(CHAIN_BLOCK, Ordering::Relaxed)))
    }
}

thread_local! {
    /// The rest of this thread's current block of ids: next, end.
    static BLOCK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

const CHAIN_BLOCK: u64 = 1 << 16;
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(0);

fn chain_base() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(random_u64)
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Identifies a distributed trace.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// 64 random bits from the standard library's per-process hash keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

/// Ids print the same way in `Debug`, `Display` and logs.
macro_rules! debug_as_display {
    ($($id:ty),*) => {$(
        impl fmt::Debug for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}

debug_as_display!(NodeId, ObjectId, ActivationId, ChainId, TraceId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_alike_in_debug_display_and_logs() {
        let node = NodeId(0x86d7_a722_0000_0001);
        assert_eq!(format!("{node}"), "node-86d7a72200000001");
        assert_eq!(format!("{node:?}"), format!("{node}"));
        assert_eq!(format!("{:?}", ObjectId(1)), "object-1");
        let a = ActivationId(0xab);
        assert_eq!(format!("{a:?}"), format!("{a}"));
    }
}
