//! The per-object lock: holders by activation, a FIFO queue of waiters.
//!
//! Re-entry is causal nesting: a call is admitted past the holders when
//! each holder it conflicts with is one of its ancestors (it was made,
//! directly or through further calls, while that holder ran). Such a call
//! also skips the queue, since the waiters may be waiting for the very
//! holder it serves. Everyone else, siblings of one scope or of one callee
//! included, queues first in, first out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tether_semantics::{ActivationId, Context};
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
    /// Who holds the lock: activation, mode, how many times.
    holders: Vec<(ActivationId, Mode, usize)>,
    queue: VecDeque<Waiter>,
    next_waiter: u64,
}

/// A call asking for the lock: its activation and where it is nested.
#[derive(Clone, Debug)]
pub(crate) struct Asker {
    pub(crate) activation: ActivationId,
    pub(crate) context: Context,
}

impl Asker {
    /// The asker for a call with `context`; a context that has not entered
    /// a view (a message made by hand) counts as an activation of its own.
    pub(crate) fn of(context: &Context) -> Self {
        Asker {
            activation: context.activation().unwrap_or_else(ActivationId::fresh),
            context: context.clone(),
        }
    }

    fn admits(&self, holder: ActivationId) -> bool {
        holder == self.activation || self.context.is_nested_in(holder)
    }
}

struct Waiter {
    id: u64,
    asker: Asker,
    mode: Mode,
    grant: oneshot::Sender<Permit>,
}

/// A held lock; released when dropped.
pub(crate) struct Permit {
    lock: Arc<ObjectLock>,
    activation: ActivationId,
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
    /// Whether `asker` may take the lock in `mode` beside the holders:
    /// each holder is an ancestor of the asker, or both only read.
    fn compatible(&self, asker: &Asker, mode: Mode) -> bool {
        self.holders
            .iter()
            .all(|&(h, m, _)| asker.admits(h) || (mode == Mode::Read && m == Mode::Read))
    }

    /// Whether `asker` runs inside a holder: a callback of a call that
    /// holds the lock, which must not queue behind calls waiting for it.
    fn nested(&self, asker: &Asker) -> bool {
        self.holders.iter().any(|&(h, _, _)| asker.admits(h))
    }

    fn grant(&mut self, activation: ActivationId, mode: Mode) {
        match self
            .holders
            .iter_mut()
            .find(|(a, m, _)| *a == activation && *m == mode)
        {
            Some((_, _, n)) => *n += 1,
            None => self.holders.push((activation, mode, 1)),
        }
    }

    fn release(&mut self, activation: ActivationId, mode: Mode) {
        if let Some(i) = self
            .holders
            .iter()
            .position(|&(a, m, _)| a == activation && m == mode)
        {
            self.holders[i].2 -= 1;
            if self.holders[i].2 == 0 {
                self.holders.swap_remove(i);
            }
        }
    }

    /// Grants waiters in queue order while they fit, and, behind a waiter
    /// that does not fit, those nested in a holder that fit.
    fn wake(&mut self, lock: &Arc<ObjectLock>) -> Vec<(oneshot::Sender<Permit>, Permit)> {
        let mut granted = Vec::new();
        let mut blocked = false;
        let mut i = 0;
        while let Some(waiter) = self.queue.get(i) {
            let fits = (!blocked || self.nested(&waiter.asker))
                && self.compatible(&waiter.asker, waiter.mode);
            if !fits {
                blocked = true;
                i += 1;
                continue;
            }
            let Some(waiter) = self.queue.remove(i) else {
                break;
            };
            let activation = waiter.asker.activation;
            self.grant(activation, waiter.mode);
            let permit = Permit {
                lock: Arc::clone(lock),
                activation,
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

    /// Takes the lock now if fair and free (or the asker is nested in the
    /// holders), else queues.
    pub(crate) fn acquire(self: &Arc<Self>, asker: Asker, mode: Mode) -> Acquired {
        let mut state = self.state();
        // A nested call does not queue behind waiters: they may be waiting
        // for the very call it runs inside.
        let compatible = state.compatible(&asker, mode);
        if compatible && (state.queue.is_empty() || state.nested(&asker)) {
            state.grant(asker.activation, mode);
            return Acquired::Now(Permit {
                lock: Arc::clone(self),
                activation: asker.activation,
                mode,
            });
        }
        let (grant, receiver) = oneshot::channel();
        let id = state.next_waiter;
        state.next_waiter += 1;
        state.queue.push_back(Waiter {
            id,
            asker,
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
            state.release(self.activation, self.mode);
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
        let (granted, gone) = {
            let mut state = self.lock.state();
            let gone: VecDeque<Waiter> = {
                let (gone, kept) = std::mem::take(&mut state.queue)
                    .into_iter()
                    .partition(|w| w.id == self.id);
                state.queue = kept;
                gone
            };
            // A writer that gave up may have been holding back readers.
            (state.wake(&self.lock), gone)
        };
        drop(gone);
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

    /// A top-level call, and calls nested in it.
    fn call() -> Context {
        let mut c = Context::new();
        c.enter();
        c
    }
    fn nested(parent: &Context) -> Context {
        let mut c = parent.clone();
        c.enter();
        c
    }
    fn ask(c: &Context) -> Asker {
        Asker::of(c)
    }

    #[test]
    fn writers_exclude_and_readers_share() {
        let lock = Arc::new(ObjectLock::default());
        let r1 = permit(lock.acquire(ask(&call()), Mode::Read));
        let r2 = permit(lock.acquire(ask(&call()), Mode::Read));
        let Acquired::Queued(mut w) = lock.acquire(ask(&call()), Mode::Write) else {
            panic!("a writer waits for readers")
        };
        // A reader behind a waiting writer waits too (fairness).
        let Acquired::Queued(_r3) = lock.acquire(ask(&call()), Mode::Read) else {
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
    fn only_calls_nested_in_the_holder_re_enter() {
        let lock = Arc::new(ObjectLock::default());
        let outer = call();
        let held = permit(lock.acquire(ask(&outer), Mode::Write));
        let Acquired::Queued(_other) = lock.acquire(ask(&call()), Mode::Write) else {
            panic!("an unrelated call waits")
        };
        let callback = nested(&outer);
        let inner = permit(lock.acquire(ask(&callback), Mode::Write));
        let deeper = permit(lock.acquire(ask(&nested(&callback)), Mode::Read));
        assert_eq!(lock.counts(), (3, 1));
        // A second callback of the outer call is the first one's sibling.
        let Acquired::Queued(mut sibling) = lock.acquire(ask(&nested(&outer)), Mode::Write) else {
            panic!("a sibling of a nested holder waits")
        };
        drop((inner, deeper));
        let s = sibling
            .receiver
            .try_recv()
            .expect("then it re-enters, ahead of the other");
        drop(s);
        drop(held);
        assert_eq!(lock.counts(), (1, 0));
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_no_trace() {
        let lock = Arc::new(ObjectLock::default());
        let held = permit(lock.acquire(ask(&call()), Mode::Write));
        let Acquired::Queued(gone) = lock.acquire(ask(&call()), Mode::Write) else {
            panic!()
        };
        drop(gone);
        assert_eq!(lock.counts(), (1, 0));
        // Granted, but the receiver is dropped before it takes the permit.
        let Acquired::Queued(late) = lock.acquire(ask(&call()), Mode::Write) else {
            panic!()
        };
        drop(held);
        assert_eq!(lock.counts(), (1, 0), "granted to the waiter");
        drop(late);
        assert_eq!(lock.counts(), (0, 0), "its permit went back");
        let _ = permit(lock.acquire(ask(&call()), Mode::Write));
    }
}
