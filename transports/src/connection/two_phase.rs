//! Two-phase commit across nodes: this connection's part in transactions.
//!
//! * A call that carries a running transaction enlists the connection, once
//!   per transaction, as a participant ([`RemoteBranch`]) of the caller's
//!   branch.
//! * The callee's connection begins a subordinate branch for the id the
//!   first time a call brings it, and runs every call of that transaction
//!   inside it; it aborts unless the peer says how it ends within the
//!   transaction timeout (presumed abort).
//! * Votes and outcomes are calls to the peer's registry, which acts only
//!   on branches that this connection's calls brought.
//! * In doubt: a branch that prepared when its coordinator's connection
//!   closed waits for the outcome over another connection from the same
//!   node; what outlives one connection is kept on the [`Node`]
//!   ([`Links`]).
//!
//! The state here has its own lock, taken after the driver's, never
//! before, and never across user code.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tether_semantics::transaction::Participant;
use tether_semantics::{
    BoxFuture, Context, Error, ErrorKind, NodeId, Selector, Transaction, TransactionId, Value,
};
use tokio::task::AbortHandle;

use super::driver::{ABORT, COMMIT, Driver, PREPARE, disconnected};

/// One connection's transaction state.
pub(crate) struct TwoPhase {
    state: Mutex<State>,
    timeout: Duration,
    max_branches: usize,
}

#[derive(Default)]
struct State {
    /// The branches of transactions the peer's calls brought here, by
    /// transaction id: the peer coordinates them.
    branches: HashMap<u64, (Transaction, AbortHandle)>,
    /// The transactions of this side's whose calls reached the peer: the
    /// peer has a branch of each, which the connection stands in for.
    enlisted: HashSet<u64>,
}

impl TwoPhase {
    pub(crate) fn new(timeout: Duration, max_branches: usize) -> Self {
        TwoPhase {
            state: Mutex::new(State::default()),
            timeout,
            max_branches,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This connection's branch of transaction `id`, begun now if the
    /// peer's call is the first to bring it here; `overloaded` if the
    /// connection has as many branches as it may.
    pub(crate) fn branch(&self, driver: &Arc<Driver>, id: u64) -> Result<Transaction, Error> {
        let mut state = self.lock();
        if let Some((branch, _)) = state.branches.get(&id) {
            return Ok(branch.clone());
        }
        if state.branches.len() >= self.max_branches {
            return Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "{} transactions are open on this connection already",
                    self.max_branches
                ),
            ));
        }
        let branch = Transaction::subordinate(TransactionId(id));
        let weak = Arc::downgrade(driver);
        let timer = abort_after(self.timeout, move || {
            weak.upgrade()?.two_phase.expire_branch(id)
        });
        state.branches.insert(id, (branch.clone(), timer));
        Ok(branch)
    }

    /// Removes this connection's branch of `id` for its own timer, which
    /// goes on to abort it (stopping the timer would stop that abort).
    fn expire_branch(&self, id: u64) -> Option<Transaction> {
        self.lock().branches.remove(&id).map(|(branch, _)| branch)
    }

    /// Removes this connection's branch of `id` (and stops its timer).
    fn take_branch(&self, id: u64) -> Option<Transaction> {
        let (branch, timer) = self.lock().branches.remove(&id)?;
        timer.abort();
        Some(branch)
    }

    /// Makes the peer a participant of `transaction`, which a call to it
    /// carries, the first time.
    pub(crate) fn enlist(&self, driver: &Arc<Driver>, transaction: &Transaction) {
        let id = transaction.id().0;
        if !self.lock().enlisted.insert(id) {
            return;
        }
        let participant = Arc::new(RemoteBranch {
            driver: Arc::downgrade(driver),
            node: driver.node.clone(),
            peer: driver.lock().peer_node.map_or(0, |n| n.0),
            timeout: self.timeout,
        });
        if !transaction.enlist(participant) {
            self.lock().enlisted.remove(&id);
        }
    }
}

/// What outlives one connection, kept on the node: the open connections to
/// each peer node (so a transaction's outcome can reach a node over a new
/// connection when the one its calls took has closed), and the prepared
/// branches waiting for their outcome that way.
#[derive(Default)]
pub(crate) struct Links {
    state: Mutex<LinksState>,
}

#[derive(Default)]
struct LinksState {
    /// By peer node.
    open: HashMap<u64, Vec<Weak<Driver>>>,
    /// By (coordinating node, transaction).
    in_doubt: HashMap<(u64, u64), (Transaction, AbortHandle)>,
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, LinksState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection is open to `peer`: record it among the node's links.
pub(crate) fn opened(driver: &Arc<Driver>, peer: NodeId) {
    let links = driver.node.extension::<Links>();
    links
        .lock()
        .open
        .entry(peer.0)
        .or_default()
        .push(Arc::downgrade(driver));
}

/// The connection closed: forget it among the links, and end the branches
/// the peer coordinated. Those still running abort (presumed abort); those
/// prepared wait for the outcome over another connection from the same
/// node.
pub(crate) fn closed(driver: &Arc<Driver>, peer: Option<NodeId>, reason: &str) {
    let links = driver.node.extension::<Links>();
    if let Some(peer) = peer {
        if let Some(open) = links.lock().open.get_mut(&peer.0) {
            open.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(driver)));
        }
    }
    let (branches, enlisted) = {
        let mut state = driver.two_phase.lock();
        let branches: Vec<_> = state.branches.drain().collect();
        (branches, std::mem::take(&mut state.enlisted))
    };
    drop(enlisted);
    let timeout = driver.two_phase.timeout;
    for (id, (branch, timer)) in branches {
        timer.abort();
        match peer {
            Some(peer) if branch.is_prepared() => {
                tracing::warn!(tx = %branch.id(), %reason, ?timeout,
                    "the coordinator's connection closed after this branch prepared; waiting for the outcome");
                let key = (peer.0, id);
                let weak = Arc::downgrade(&links);
                let timer = abort_after(timeout, move || {
                    weak.upgrade()?.lock().in_doubt.remove(&key).map(|(b, _)| b)
                });
                links.lock().in_doubt.insert(key, (branch, timer));
            }
            _ => drop(tokio::spawn(async move { branch.abort().await })),
        }
    }
}

/// Aborts the branch `take` yields once `timeout` has passed (presumed
/// abort), unless the returned handle stops it first.
fn abort_after(
    timeout: Duration,
    take: impl FnOnce() -> Option<Transaction> + Send + 'static,
) -> AbortHandle {
    let timer = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let Some(branch) = take() else {
            return;
        };
        if branch.is_prepared() {
            tracing::error!(tx = %branch.id(), ?timeout,
                "a prepared branch heard no outcome in time; aborting it (heuristic: the coordinator may have committed)");
        } else {
            tracing::warn!(tx = %branch.id(), ?timeout,
                "a transaction branch heard nothing from its coordinator in time; presumed abort");
        }
        branch.abort().await;
    });
    timer.abort_handle()
}

/// Asks the peer's registry to `selector` (prepare, commit, abort) its
/// branch of `tx`.
async fn control(
    driver: &Arc<Driver>,
    selector: Selector,
    tx: TransactionId,
) -> Result<Value, Error> {
    let bootstrap = driver.lock().bootstrap.clone();
    let bootstrap = bootstrap.ok_or_else(|| disconnected("no bootstrap to reach"))?;
    let context = Context::new().with_deadline(Instant::now() + driver.two_phase.timeout);
    bootstrap
        .call(selector, Value::serializable((tx.0,)), context)
        .await
}

/// Tells the peer a transaction's outcome; false only if the connection
/// was lost on the way (another connection may do better). Any other
/// failure is final, and logged.
async fn tell(driver: &Arc<Driver>, outcome: Selector, tx: TransactionId) -> bool {
    match control(driver, outcome, tx).await {
        Ok(_) => true,
        Err(e) if e.is_disconnected() => false,
        Err(error) => {
            tracing::error!(%tx, %error, "the peer could not take the outcome");
            true
        }
    }
}

/// The peer's branch of one of this side's transactions, as a participant
/// of this side's branch: the votes and outcomes travel as calls to the
/// peer's registry.
struct RemoteBranch {
    driver: Weak<Driver>,
    /// This node, whose links find another connection to the peer when
    /// this one has closed.
    node: tether_semantics::Node,
    peer: u64,
    timeout: Duration,
}

impl RemoteBranch {
    /// Tells the peer the outcome (commit or abort): over this connection,
    /// or, if it has closed, over any other connection to the same node
    /// that opens within the transaction timeout (in the background, so
    /// the caller is not held up).
    fn deliver(&self, outcome: Selector, tx: TransactionId) -> BoxFuture<'static, ()> {
        let driver = self.driver.clone();
        let (links, peer, timeout) = (self.node.extension::<Links>(), self.peer, self.timeout);
        Box::pin(async move {
            // A branch may end while a connection's lock is held (when its
            // last handle drops there); the first poll must not take it.
            tokio::task::yield_now().await;
            if let Some(driver) = driver.upgrade() {
                let told = tell(&driver, outcome, tx).await;
                driver.two_phase.lock().enlisted.remove(&tx.0);
                if told {
                    return;
                }
            }
            drop(tokio::spawn(redeliver(links, peer, outcome, tx, timeout)));
        })
    }
}

/// Retries an outcome over the connections open to `peer`, with backoff,
/// for at most `timeout`.
async fn redeliver(
    links: Arc<Links>,
    peer: u64,
    outcome: Selector,
    tx: TransactionId,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        let open: Vec<Arc<Driver>> = links
            .lock()
            .open
            .get(&peer)
            .map(|v| v.iter().filter_map(Weak::upgrade).collect())
            .unwrap_or_default();
        for connection in open {
            if tell(&connection, outcome, tx).await {
                return;
            }
        }
        if tokio::time::Instant::now() + pause > deadline {
            tracing::error!(%tx, ?timeout, peer = %NodeId(peer),
                "no connection to a participant's node opened in time to tell it the outcome; it decides on its own");
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

impl Participant for RemoteBranch {
    fn prepare(&self, tx: TransactionId) -> BoxFuture<'static, bool> {
        let driver = self.driver.upgrade();
        Box::pin(async move {
            let Some(driver) = driver else {
                return false;
            };
            let vote = control(&driver, PREPARE, tx)
                .await
                .and_then(|v| v.decode::<bool>());
            match vote {
                Ok(true) => true,
                Ok(false) => {
                    tracing::debug!(%tx, "the peer voted no");
                    false
                }
                Err(error) => {
                    tracing::warn!(%tx, %error, "the peer could not vote; the transaction aborts");
                    false
                }
            }
        })
    }

    fn commit(&self, tx: TransactionId) -> BoxFuture<'static, ()> {
        self.deliver(COMMIT, tx)
    }

    fn abort(&self, tx: TransactionId) -> BoxFuture<'static, ()> {
        self.deliver(ABORT, tx)
    }
}

/// Runs the peer's prepare, commit or abort on this connection's branch
/// of `tx`. A branch the connection does not have (it never began, or it
/// aborted on its own) votes no and ends as it is: presumed abort.
pub(crate) async fn end_branch(
    connection: &Arc<Driver>,
    selector: Selector,
    tx: u64,
) -> Result<Value, Error> {
    let two_phase = &connection.two_phase;
    if selector == PREPARE {
        let branch = two_phase.lock().branches.get(&tx).map(|(b, _)| b.clone());
        let Some(branch) = branch else {
            return Ok(Value::serializable(false));
        };
        let yes = branch.prepare().await;
        if !yes || branch.has_ended() {
            // Voted no, or had nothing to commit (read-only).
            if let Some(branch) = two_phase.take_branch(tx) {
                branch.abort().await;
            }
        }
        return Ok(Value::serializable(yes));
    }
    let in_doubt = || {
        let peer = connection.lock().peer_node?;
        let links = connection.node.extension::<Links>();
        let (branch, timer) = links.lock().in_doubt.remove(&(peer.0, tx))?;
        timer.abort();
        tracing::info!(tx = %TransactionId(tx), "an in-doubt branch heard its outcome over a new connection");
        Some(branch)
    };
    let Some(branch) = two_phase.take_branch(tx).or_else(in_doubt) else {
        return Ok(Value::unit());
    };
    if selector == COMMIT {
        if !branch.commit().await {
            return Err(Error::new(
                ErrorKind::Failed,
                format!("{} aborted here before it could commit", TransactionId(tx)),
            ));
        }
    } else {
        branch.abort().await;
    }
    Ok(Value::unit())
}
