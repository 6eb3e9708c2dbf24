//! The per-object lock: holders by call chain, a FIFO queue of waiters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tether_semantics::ChainId;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Read,
    Write,
}

/// One object's lock. Kept in the object's state, so every view shares it.
#[derive(Default)]
pub(crate) struct ObjectLock {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Who holds the lock: chain, mode, how many times (re-entry).
    holders: Vec<(ChainId, Mode, usize)>,
    queue: VecDeque<Waiter>,
    next_waiter: u64,
}

struct Waiter {
    id: u64,
    chain: ChainId,
    mode: Mode,
    grant: oneshot::Sender<Permit>,
}

/// A held lock; released when dropped.
pub(crate) struct Permit {
    lock: Arc<ObjectLock>,
    chain: ChainId,
    mode: Mode,
}

/// The result of asking for the lock.
pub(crate) enum Acquired {
    Now(Permit),
    /// Queued: the permit arrives on `receiver`; `Queued` removes the
    /// waiter from the queue if dropped before it arrives.
    Queued(Queued),
}

pub(crate) struct Queued {
    lock: Arc<ObjectLock>,
    id: u64,
    pub(crate) receiver: oneshot::Receiver<Permit>,
}

impl State {
    /// Whether `chain` may take the lock in `mode` given the other holders.
    fn compatible(&self, chain: ChainId, mode: Mode) -> bool {
        self.holders
            .iter()
            .all(|&(c, m, _)| c == chain || (mode == Mode::Read && m == Mode::Read))
    }

    fn holds(&self, chain: ChainId) -> bool {
        self.holders.iter().any(|&(c, _, _)| c == chain)
    }

    fn grant(&mut self, chain: ChainId, mode: Mode) {
        match self
            .holders
            .iter_mut()
            .find(|(c, m, _)| *c == chain && *m == mode)
        {
            Some((_, _, n)) => *n += 1,
            None => self.holders.push((chain, mode, 1)),
        }
    }

    fn release(&mut self, chain: ChainId, mode: Mode) {
        if let Some(i) = self
            .holders
            .iter()
            .position(|&(c, m, _)| c == chain && m == mode)
        {
            self.holders[i].2 -= 1;
            if self.holders[i].2 == 0 {
                self.holders.swap_remove(i);
            }
        }
    }

    /// Grants waiters at the front of the queue, in order, while they fit.
    fn wake(&mut self, lock: &Arc<ObjectLock>) -> Vec<(oneshot::Sender<Permit>, Permit)> {
        let mut granted = Vec::new();
        while let Some(front) = self.queue.front() {
            if !self.compatible(front.chain, front.mode) {
                break;
            }
            let Some(waiter) = self.queue.pop_front() else {
                break;
            };
            self.grant(waiter.chain, waiter.mode);
            let permit = Permit {
                lock: Arc::clone(lock),
                chain: waiter.chain,
                mode: waiter.mode,
            };
            granted.push((waiter.grant, permit));
        }
        granted
    }
}

impl std::fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("ObjectLock")
            .field("holders", &state.holders)
            .field("waiting", &state.queue.len())
            .finish()
    }
}

impl ObjectLock {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the lock now if fair and free (or re-entrant), else queues.
    pub(crate) fn acquire(self: &Arc<Self>, chain: ChainId, mode: Mode) -> Acquired {
        let mut state = self.state();
        // Re-entry does not queue behind waiters: they may be waiting for
        // this very chain to finish.
        let reentrant = state.holds(chain) && state.compatible(chain, mode);
        if reentrant || (state.queue.is_empty() && state.compatible(chain, mode)) {
            state.grant(chain, mode);
            return Acquired::Now(Permit {
                lock: Arc::clone(self),
                chain,
                mode,
            });
        }
        let (grant, receiver) = oneshot::channel();
        let id = state.next_waiter;
        state.next_waiter += 1;
        state.queue.push_back(Waiter {
            id,
            chain,
            mode,
            grant,
        });
        Acquired::Queued(Queued {
            lock: Arc::clone(self),
            id,
            receiver,
        })
    }

    /// How many calls hold the lock and how many wait, for tests and tools.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let state = self.state();
        (state.holders.iter().map(|h| h.2).sum(), state.queue.len())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let granted = {
            let mut state = self.lock.state();
            state.release(self.chain, self.mode);
            state.wake(&self.lock)
        };
        // Sent with the state unlocked: a waiter that has gone away hands
        // its permit back, and dropping it releases (and locks) again.
        for (grant, permit) in granted {
            drop(grant.send(permit));
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let granted = {
            let mut state = self.lock.state();
            state.queue.retain(|w| w.id != self.id);
            // A writer that gave up may have been holding back readers.
            state.wake(&self.lock)
        };
        for (grant, permit) in granted {
            drop(grant.send(permit));
        }
        // If the permit was already sent, it is dropped with the receiver,
        // which releases it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit(a: Acquired) -> Permit {
        match a {
            Acquired::Now(p) => p,
            Acquired::Queued(_) => panic!("expected the lock at once"),
        }
    }

    #[test]
    fn writers_exclude_and_readers_share() {
        let lock = Arc::new(ObjectLock::default());
        let r1 = permit(lock.acquire(ChainId(1), Mode::Read));
        let r2 = permit(lock.acquire(ChainId(2), Mode::Read));
        let Acquired::Queued(mut w) = lock.acquire(ChainId(3), Mode::Write) else {
            panic!("a writer waits for readers")
        };
        // A reader behind a waiting writer waits too (fairness).
        let Acquired::Queued(_r3) = lock.acquire(ChainId(4), Mode::Read) else {
            panic!("no overtaking")
        };
        drop(r1);
        assert!(w.receiver.try_recv().is_err());
        drop(r2);
        let w = w
            .receiver
            .try_recv()
            .expect("granted when the readers left");
        assert_eq!(lock.counts(), (1, 1));
        drop(w);
        assert_eq!(lock.counts(), (1, 0), "the queued reader got in");
    }

    #[test]
    fn the_holding_chain_re_enters() {
        let lock = Arc::new(ObjectLock::default());
        let outer = permit(lock.acquire(ChainId(1), Mode::Write));
        let Acquired::Queued(_other) = lock.acquire(ChainId(2), Mode::Write) else {
            panic!("another chain waits")
        };
        let inner = permit(lock.acquire(ChainId(1), Mode::Write));
        let read = permit(lock.acquire(ChainId(1), Mode::Read));
        assert_eq!(lock.counts(), (3, 1));
        drop((inner, read, outer));
        assert_eq!(lock.counts(), (1, 0));
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_no_trace() {
        let lock = Arc::new(ObjectLock::default());
        let held = permit(lock.acquire(ChainId(1), Mode::Write));
        let Acquired::Queued(gone) = lock.acquire(ChainId(2), Mode::Write) else {
            panic!()
        };
        drop(gone);
        assert_eq!(lock.counts(), (1, 0));
        // Granted, but the receiver is dropped before it takes the permit.
        let Acquired::Queued(late) = lock.acquire(ChainId(3), Mode::Write) else {
            panic!()
        };
        drop(held);
        assert_eq!(lock.counts(), (1, 0), "granted to the waiter");
        drop(late);
        assert_eq!(lock.counts(), (0, 0), "its permit went back");
        let _ = permit(lock.acquire(ChainId(4), Mode::Write));
    }
}
