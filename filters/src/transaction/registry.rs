//! The transactions running in this process and their participants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tether_semantics::TransactionId;

/// Something a transaction touched, which must commit or roll back with
/// it: a [`TxCell`](super::TxCell) here; with the wire protocol, a
/// participant on another node.
pub(crate) trait Participant: Send + Sync {
    /// Whether it can commit `tx` (phase one).
    fn prepare(&self, tx: TransactionId) -> bool;
    /// Makes `tx`'s changes permanent and releases it (phase two).
    fn commit(&self, tx: TransactionId);
    /// Discards `tx`'s changes and releases it.
    fn abort(&self, tx: TransactionId);
}

type Participants = Vec<Arc<dyn Participant>>;

fn table() -> &'static Mutex<HashMap<TransactionId, Participants>> {
    static TABLE: OnceLock<Mutex<HashMap<TransactionId, Participants>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<TransactionId, Participants>> {
    table().lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a transaction.
pub(crate) fn begin(tx: TransactionId) {
    lock().insert(tx, Vec::new());
}

/// Adds a participant to a running transaction; false if it is not running
/// (ended, or never begun here).
pub(crate) fn enlist(tx: TransactionId, participant: Arc<dyn Participant>) -> bool {
    match lock().get_mut(&tx) {
        Some(participants) => {
            participants.push(participant);
            true
        }
        None => false,
    }
}

/// Whether `tx` is running.
pub(crate) fn is_active(tx: TransactionId) -> bool {
    lock().contains_key(&tx)
}

/// Ends `tx`: commits if `commit` and every participant prepares, else
/// aborts. Returns whether it committed.
pub(crate) fn finish(tx: TransactionId, commit: bool) -> bool {
    // Removed first: no participant can join a transaction that is ending.
    let Some(participants) = lock().remove(&tx) else {
        return false;
    };
    let commit = commit && participants.iter().all(|p| p.prepare(tx));
    for p in &participants {
        if commit {
            p.commit(tx);
        } else {
            p.abort(tx);
        }
    }
    commit
}

pub(crate) fn active() -> usize {
    lock().len()
}
