//! A transaction as calls carry it: a global id, and this node's branch
//! of it, which records what the transaction touched here and runs the
//! two-phase commit over it.
//!
//! A transaction has one *root* branch, on the node where it started (a
//! transaction filter begins it and finishes it when the top-level call
//! ends), and a *subordinate* branch on every other node a call of the
//! transaction reached (the transport begins it when the call arrives and
//! finishes it when the caller's node says so). Each branch enlists its
//! [`Participant`]s: transactional state on its node, and the branches on
//! the nodes it called. Finishing a branch runs two-phase commit over its
//! participants, so a transaction spread over many nodes commits as a
//! tree: the root prepares its participants, each remote participant
//! prepares its own, and so on down.

use std::fmt;
use std::future::Future;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Waker};

use futures_util::future::{BoxFuture, join_all};

use crate::ids::ChainId;

/// Identifies a transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub u64);

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx-{:016x}", self.0)
    }
}

/// Something a transaction touched, which commits or rolls back with it:
/// transactional state on this node, or the transaction's branch on
/// another node.
///
/// A participant votes in [`prepare`](Participant::prepare); once it has
/// voted yes it must be able to commit until it hears the outcome.
pub trait Participant: Send + Sync + 'static {
    /// Phase one: whether it can commit `tx`. Voting no also aborts its
    /// part.
    fn prepare(&self, tx: TransactionId) -> BoxFuture<'static, bool>;
    /// Phase two: makes `tx`'s changes permanent and releases what it
    /// holds.
    fn commit(&self, tx: TransactionId) -> BoxFuture<'static, ()>;
    /// Discards `tx`'s changes and releases what it holds. Called at most
    /// once per branch, but must tolerate a transaction it does not know.
    fn abort(&self, tx: TransactionId) -> BoxFuture<'static, ()>;
}

/// This node's branch of a transaction; see the [module](self) docs.
///
/// Cheap to clone: clones are handles to the same branch. A call's
/// [`Context`](crate::Context) carries it, so everything the call touches
/// on this node enlists in it. When the last handle to a branch that has
/// not ended is dropped, the branch aborts.
#[derive(Clone)]
pub struct Transaction(Arc<Branch>);

struct Branch {
    id: TransactionId,
    root: bool,
    state: Mutex<State>,
}

enum State {
    /// Running: new participants may enlist.
    Active(Vec<Arc<dyn Participant>>),
    /// Phase one is running over these participants.
    Preparing(Vec<Arc<dyn Participant>>),
    /// Every participant voted yes; waiting for the outcome.
    Prepared(Vec<Arc<dyn Participant>>),
    /// Committed (or had nothing to commit), or aborted.
    Ended { committed: bool },
}

/// Branches that have not ended, in this process.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many transaction branches in this process have not ended (for
/// tests and tools: zero once every transaction has committed or aborted
/// and every node has heard).
pub fn live_branches() -> usize {
    LIVE.load(Ordering::Relaxed)
}

impl Transaction {
    /// Starts a transaction here: a fresh id, and its root branch.
    pub fn begin() -> Self {
        Self::new(TransactionId(ChainId::fresh().0), true)
    }

    /// This node's branch of transaction `id`, which started elsewhere.
    pub fn subordinate(id: TransactionId) -> Self {
        Self::new(id, false)
    }

    fn new(id: TransactionId, root: bool) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Transaction(Arc::new(Branch {
            id,
            root,
            state: Mutex::new(State::Active(Vec::new())),
        }))
    }

    /// The transaction's id, the same on every node.
    pub fn id(&self) -> TransactionId {
        self.0.id
    }

    /// Whether this is the root branch (the transaction started here).
    pub fn is_root(&self) -> bool {
        self.0.root
    }

    /// Whether the branch still runs: participants may enlist, calls may
    /// carry it.
    pub fn is_active(&self) -> bool {
        matches!(*self.0.state(), State::Active(_))
    }

    /// Whether the branch has prepared and waits for the outcome.
    pub fn is_prepared(&self) -> bool {
        matches!(*self.0.state(), State::Prepared(_))
    }

    /// Whether the branch has committed or aborted.
    pub fn has_ended(&self) -> bool {
        matches!(*self.0.state(), State::Ended { .. })
    }

    /// Adds `participant`; false (and nothing added) once the branch has
    /// stopped running.
    pub fn enlist(&self, participant: Arc<dyn Participant>) -> bool {
        match &mut *self.0.state() {
            State::Active(participants) => {
                participants.push(participant);
                true
            }
            _ => false,
        }
    }

    /// Phase one over every participant, at once. If all vote yes the
    /// branch is prepared (or, with no participants, has nothing to do and
    /// ends) and this returns true; otherwise every participant is aborted,
    /// the branch ends, and this returns false. False too if the branch is
    /// not running.
    pub async fn prepare(&self) -> bool {
        let id = self.id();
        let participants = {
            let mut state = self.0.state();
            match &mut *state {
                State::Active(participants) if participants.is_empty() => {
                    self.0.end(&mut state, true);
                    return true;
                }
                State::Active(participants) => {
                    let participants = mem::take(participants);
                    *state = State::Preparing(participants.clone());
                    participants
                }
                _ => return false,
            }
        };
        let votes = join_all(participants.iter().map(|p| p.prepare(id))).await;
        let all_yes = votes.into_iter().all(|yes| yes);
        {
            let mut state = self.0.state();
            match &mut *state {
                // An abort may have come while the votes were out; it has
                // aborted the participants already.
                State::Preparing(_) if all_yes => {
                    *state = State::Prepared(participants);
                    return true;
                }
                State::Preparing(_) => self.0.end(&mut state, false),
                _ => return false,
            }
        }
        join_all(participants.iter().map(|p| p.abort(id))).await;
        false
    }

    /// Phase two: commits every participant and ends the branch. A branch
    /// that has not prepared prepares first (one-phase commit when the
    /// caller decides alone). Returns whether it committed.
    pub async fn commit(&self) -> bool {
        if self.is_active() && !self.prepare().await {
            return false;
        }
        let participants = {
            let mut state = self.0.state();
            match &mut *state {
                State::Prepared(participants) => {
                    let participants = mem::take(participants);
                    self.0.end(&mut state, true);
                    participants
                }
                // Read-only (ended when it prepared), or aborted.
                State::Ended { committed } => return *committed,
                _ => return false,
            }
        };
        join_all(participants.iter().map(|p| p.commit(self.id()))).await;
        true
    }

    /// Aborts every participant and ends the branch (nothing happens if it
    /// has ended already).
    pub async fn abort(&self) {
        let participants = {
            let mut state = self.0.state();
            match &mut *state {
                State::Active(p) | State::Preparing(p) | State::Prepared(p) => {
                    let participants = mem::take(p);
                    self.0.end(&mut state, false);
                    participants
                }
                State::Ended { .. } => return,
            }
        };
        join_all(participants.iter().map(|p| p.abort(self.id()))).await;
    }

    /// Commits (both phases) if `commit`, else aborts. Returns whether it
    /// committed.
    pub async fn finish(&self, commit: bool) -> bool {
        if commit {
            self.commit().await
        } else {
            self.abort().await;
            false
        }
    }

    /// Aborts without waiting: what can be done at once (local state) is
    /// done before this returns; the rest (telling other nodes) runs on
    /// the current tokio runtime, if there is one. For `Drop`.
    pub fn abort_now(&self) {
        let branch = self.clone();
        run_now(async move { branch.abort().await });
    }
}

/// Polls `future` once here; if it is not done, hands it to the runtime.
fn run_now(future: impl Future<Output = ()> + Send + 'static) {
    let mut future = Box::pin(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    if future.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(future)),
        Err(_) => tracing::warn!(
            "a transaction aborted outside a runtime; other nodes will abort their branches on their own timeout"
        ),
    }
}

impl Branch {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn end(&self, state: &mut State, committed: bool) {
        if !matches!(state, State::Ended { .. }) {
            *state = State::Ended { committed };
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Branch {
    fn drop(&mut self) {
        let state = mem::replace(
            self.state.get_mut().unwrap_or_else(|p| p.into_inner()),
            State::Ended { committed: false },
        );
        let participants = match state {
            State::Active(p) | State::Preparing(p) | State::Prepared(p) => p,
            State::Ended { .. } => return,
        };
        LIVE.fetch_sub(1, Ordering::Relaxed);
        let id = self.id;
        run_now(async move {
            join_all(participants.iter().map(|p| p.abort(id))).await;
        });
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match *self.0.state() {
            State::Active(_) => "active",
            State::Preparing(_) => "preparing",
            State::Prepared(_) => "prepared",
            State::Ended { committed: true } => "committed",
            State::Ended { committed: false } => "aborted",
        };
        f.debug_struct("Transaction")
            .field("id", &self.id())
            .field("root", &self.is_root())
            .field("state", &state)
            .finish()
    }
}

impl fmt::Display for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.id(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Votes as told and records what it was told.
    struct Recorder {
        vote: bool,
        log: Mutex<Vec<&'static str>>,
    }

    impl Recorder {
        fn new(vote: bool) -> Arc<Self> {
            Arc::new(Recorder {
                vote,
                log: Mutex::new(Vec::new()),
            })
        }
        fn log(&self) -> Vec<&'static str> {
            self.log.lock().unwrap().clone()
        }
        fn note(&self, what: &'static str) {
            self.log.lock().unwrap().push(what);
        }
    }

    impl Participant for Recorder {
        fn prepare(&self, _: TransactionId) -> BoxFuture<'static, bool> {
            self.note("prepare");
            Box::pin(std::future::ready(self.vote))
        }
        fn commit(&self, _: TransactionId) -> BoxFuture<'static, ()> {
            self.note("commit");
            Box::pin(std::future::ready(()))
        }
        fn abort(&self, _: TransactionId) -> BoxFuture<'static, ()> {
            self.note("abort");
            Box::pin(std::future::ready(()))
        }
    }

    #[tokio::test]
    async fn all_yes_commits_everyone() {
        let tx = Transaction::begin();
        let (a, b) = (Recorder::new(true), Recorder::new(true));
        assert!(tx.enlist(a.clone()) && tx.enlist(b.clone()));
        assert!(tx.finish(true).await);
        assert!(tx.has_ended());
        assert_eq!(a.log(), ["prepare", "commit"]);
        assert_eq!(b.log(), ["prepare", "commit"]);
        // An ended branch takes no one.
        assert!(!tx.enlist(Recorder::new(true)));
    }

    #[tokio::test]
    async fn one_no_aborts_everyone() {
        let tx = Transaction::subordinate(TransactionId(9));
        let (yes, no) = (Recorder::new(true), Recorder::new(false));
        tx.enlist(yes.clone());
        tx.enlist(no.clone());
        assert!(!tx.prepare().await);
        assert!(tx.has_ended());
        assert_eq!(yes.log(), ["prepare", "abort"]);
        assert_eq!(no.log(), ["prepare", "abort"]);
        // Commit after a failed prepare commits nothing.
        assert!(!tx.commit().await);
        assert_eq!(yes.log(), ["prepare", "abort"]);
    }

    #[tokio::test]
    async fn prepared_branches_wait_for_the_outcome() {
        let tx = Transaction::subordinate(TransactionId(10));
        let p = Recorder::new(true);
        tx.enlist(p.clone());
        assert!(tx.prepare().await);
        assert!(tx.is_prepared() && !tx.is_active());
        assert!(
            !tx.enlist(Recorder::new(true)),
            "prepared: closed to newcomers"
        );
        tx.abort().await;
        assert_eq!(p.log(), ["prepare", "abort"]);
        tx.abort().await;
        assert_eq!(
            p.log(),
            ["prepare", "abort"],
            "aborting twice tells no one twice"
        );
    }

    #[tokio::test]
    async fn a_branch_with_nothing_to_commit_ends_when_it_prepares() {
        let tx = Transaction::subordinate(TransactionId(11));
        assert!(tx.prepare().await);
        assert!(tx.has_ended());
        assert!(
            tx.commit().await,
            "committing a read-only branch is a no-op"
        );
    }

    #[test]
    fn dropping_a_running_branch_aborts_it() {
        let p = Recorder::new(true);
        {
            let tx = Transaction::begin();
            tx.enlist(p.clone());
            let copy = tx.clone();
            drop(tx);
            assert!(p.log().is_empty(), "a clone keeps it running");
            drop(copy);
        }
        assert_eq!(p.log(), ["abort"]);
    }
}
