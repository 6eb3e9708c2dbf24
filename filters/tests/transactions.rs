//! Transactions across objects on one node: a bank.
#![allow(missing_docs, clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::filters::TransactionLayer;
use tether::filters::transaction::{TxCell, active_transactions};
use tether::{Exposed, Node, Object};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, tether::Schema)]
pub enum BankError {
    Insufficient { balance: i64 },
    Injected,
    Tether(String),
}

impl From<tether::Error<BankError>> for BankError {
    fn from(e: tether::Error<BankError>) -> Self {
        e.into_callee()
            .unwrap_or(BankError::Tether("call failed".into()))
    }
}

#[tether::interface]
pub trait Account {
    async fn balance(&self) -> i64;
    async fn deposit(&self, amount: i64) -> Result<i64, BankError>;
    async fn withdraw(&self, amount: i64) -> Result<i64, BankError>;
}

#[tether::interface]
pub trait Bank {
    /// Moves `amount`; then fails if `fail` is 1, panics if 2, waits at
    /// the gate if 3.
    async fn transfer(
        &self,
        from: String,
        to: String,
        amount: i64,
        fail: u8,
    ) -> Result<(), BankError>;
}

struct Vault {
    balance: TxCell<i64>,
}

impl Account for Vault {
    async fn balance(&self) -> i64 {
        self.balance.get().await.unwrap()
    }
    async fn deposit(&self, amount: i64) -> Result<i64, BankError> {
        self.balance
            .update(|b| {
                *b += amount;
                *b
            })
            .await
            .map_err(|e| BankError::Tether(e.to_string()))
    }
    async fn withdraw(&self, amount: i64) -> Result<i64, BankError> {
        let balance = self
            .balance
            .get()
            .await
            .map_err(|e| BankError::Tether(e.to_string()))?;
        if balance < amount {
            return Err(BankError::Insufficient { balance });
        }
        self.balance
            .set(balance - amount)
            .await
            .map_err(|e| BankError::Tether(e.to_string()))?;
        Ok(balance - amount)
    }
}

struct Teller {
    node: Node,
    gate: Semaphore,
    transfers: AtomicU64,
}

impl Bank for Teller {
    async fn transfer(
        &self,
        from: String,
        to: String,
        amount: i64,
        fail: u8,
    ) -> Result<(), BankError> {
        let from: AccountClient = self.node.lookup(&from).unwrap();
        let to: AccountClient = self.node.lookup(&to).unwrap();
        from.withdraw(amount).await?;
        to.deposit(amount).await?;
        self.transfers.fetch_add(1, Ordering::SeqCst);
        match fail {
            1 => Err(BankError::Injected),
            2 => panic!("injected panic after both legs"),
            3 => {
                self.gate.acquire().await.unwrap().forget();
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

struct World {
    node: Node,
    accounts: Vec<Exposed<Object<Vault>>>,
    bank: BankClient,
    teller: Exposed<Object<Teller>>,
}

fn world(balances: &[i64], lock_timeout: Duration) -> World {
    let node = Node::new();
    let accounts: Vec<_> = balances
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let a = node
                .expose(Vault {
                    balance: TxCell::with_lock_timeout(b, lock_timeout),
                })
                .with_view(
                    "v",
                    AccountInterface::view().layer(TransactionLayer::supported()),
                )
                .unwrap();
            node.publish(format!("acct/{i}"), a.view("v").unwrap());
            a
        })
        .collect();
    let teller = node
        .expose(Teller {
            node: node.clone(),
            gate: Semaphore::new(0),
            transfers: AtomicU64::new(0),
        })
        .with_view("v", BankInterface::view().layer(TransactionLayer::create()))
        .unwrap();
    let bank = teller.client("v").unwrap();
    World {
        node,
        accounts,
        bank,
        teller,
    }
}

impl World {
    fn committed(&self) -> Vec<i64> {
        self.accounts
            .iter()
            .map(|a| a.object().balance.committed())
            .collect()
    }
    fn unlocked(&self) -> bool {
        self.accounts
            .iter()
            .all(|a| a.object().balance.holder().is_none())
    }
}

/// The tests take turns: they check process-wide counts (transactions still
/// running), which a test running beside them would change.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test waited more than 20 s")
}

#[tokio::test]
async fn a_transfer_commits_on_both_accounts() {
    let _serial = SERIAL.lock().await;
    let w = world(&[100, 0], Duration::from_secs(5));
    w.bank
        .transfer("acct/0".into(), "acct/1".into(), 30, 0)
        .await
        .unwrap();
    assert_eq!(w.committed(), [70, 30]);
    assert!(w.unlocked());
}

#[tokio::test]
async fn failures_roll_back_every_participant() {
    let _serial = SERIAL.lock().await;
    let w = world(&[100, 0], Duration::from_secs(5));
    // The second leg never runs: the first refuses.
    let e = w
        .bank
        .transfer("acct/0".into(), "acct/1".into(), 500, 0)
        .await
        .unwrap_err();
    assert_eq!(e.callee(), Some(&BankError::Insufficient { balance: 100 }));
    // Both legs ran, then the transfer failed: both are undone.
    let e = w
        .bank
        .transfer("acct/0".into(), "acct/1".into(), 30, 1)
        .await
        .unwrap_err();
    assert_eq!(e.callee(), Some(&BankError::Injected));
    let e = w
        .bank
        .transfer("acct/0".into(), "acct/1".into(), 30, 2)
        .await
        .unwrap_err();
    assert!(e.is_failed() && e.message().contains("panicked"), "{e}");
    assert_eq!(w.teller.object().transfers.load(Ordering::SeqCst), 2);
    assert_eq!(w.committed(), [100, 0]);
    assert!(w.unlocked());
    assert_eq!(active_transactions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_transaction_is_isolated_and_cancelling_it_aborts() {
    let _serial = SERIAL.lock().await;
    let w = world(&[100, 0, 0], Duration::from_secs(5));
    let running = tokio::spawn({
        let bank = w.bank.clone();
        async move { bank.transfer("acct/0".into(), "acct/1".into(), 40, 3).await }
    });
    within(async {
        while w.teller.object().transfers.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    // Both legs are done but not committed: outside, nothing has changed.
    assert_eq!(w.committed(), [100, 0, 0]);
    let outside: AccountClient = w.node.lookup("acct/1").unwrap();
    assert_eq!(outside.balance().await.unwrap(), 0);
    // Another transfer on the same account waits for the first.
    let mut second = tokio::spawn({
        let bank = w.bank.clone();
        async move { bank.transfer("acct/0".into(), "acct/2".into(), 10, 0).await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut second)
            .await
            .is_err()
    );
    // Cancel the first: it aborts, and the second goes ahead.
    running.abort();
    within(second).await.unwrap().unwrap();
    assert_eq!(w.committed(), [90, 0, 10]);
    assert!(w.unlocked());
}

#[tokio::test]
async fn options_decide_who_joins() {
    let _serial = SERIAL.lock().await;
    let w = world(&[50], Duration::from_secs(5));
    let acct = w.accounts[0].clone();
    acct.set_view(
        "join",
        AccountInterface::view().layer(TransactionLayer::join()),
    )
    .unwrap();
    acct.set_view(
        "never",
        AccountInterface::view().layer(TransactionLayer::not_allowed()),
    )
    .unwrap();
    let join: AccountClient = acct.client("join").unwrap();
    let e = join.deposit(1).await.unwrap_err();
    assert!(e.message().contains("must run inside a transaction"), "{e}");
    // Supported, outside a transaction: the write takes effect at once.
    let supported: AccountClient = acct.client("v").unwrap();
    assert_eq!(supported.deposit(5).await.unwrap(), 55);
    assert_eq!(w.committed(), [55]);
    // Not allowed: fine outside a transaction.
    let never: AccountClient = acct.client("never").unwrap();
    assert_eq!(never.balance().await.unwrap(), 55);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_transfers_with_failures_keep_the_total() {
    let _serial = SERIAL.lock().await;
    const ACCOUNTS: usize = 5;
    let w = world(&[1_000; ACCOUNTS], Duration::from_millis(100));
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let plan: Vec<(usize, usize, i64, u8)> = (0..40)
                .map(|_| {
                    let from = (next() % ACCOUNTS as u64) as usize;
                    let to = (from + 1 + (next() % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                    let fail = match next() % 10 {
                        0 => 1,
                        1 => 2,
                        _ => 0,
                    };
                    (from, to, (next() % 400) as i64, fail)
                })
                .collect();
            let bank = w.bank.clone();
            tokio::spawn(async move {
                let mut committed = 0;
                for (from, to, amount, fail) in plan {
                    if bank
                        .transfer(format!("acct/{from}"), format!("acct/{to}"), amount, fail)
                        .await
                        .is_ok()
                    {
                        committed += 1;
                    }
                }
                committed
            })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        committed += within(task).await.unwrap();
    }
    assert!(committed > 0, "some transfers went through");
    assert_eq!(w.committed().iter().sum::<i64>(), 1_000 * ACCOUNTS as i64);
    assert!(w.committed().iter().all(|b| *b >= 0), "{:?}", w.committed());
    assert!(w.unlocked(), "no cell stays locked");
    assert_eq!(active_transactions(), 0, "no transaction stays open");
}

/// Options are per method: one view, `deposit` must join a transaction,
/// `balance` runs without one (and so needs none), `withdraw` has the
/// layer's own option.
#[tokio::test]
async fn options_are_per_method() {
    use tether::filters::transaction::TxOption;
    let _serial = SERIAL.lock().await;
    let w = world(&[50], Duration::from_secs(5));
    let acct = w.accounts[0].clone();
    acct.set_view(
        "mixed",
        AccountInterface::view().layer(
            TransactionLayer::not_allowed()
                .method(AccountInterface::DEPOSIT, TxOption::Join)
                .method(AccountInterface::BALANCE, TxOption::Supported),
        ),
    )
    .unwrap();
    let mixed: AccountClient = acct.client("mixed").unwrap();
    let e = mixed.deposit(1).await.unwrap_err();
    assert!(e.message().contains("must run inside a transaction"), "{e}");
    assert_eq!(
        mixed.balance().await.unwrap(),
        50,
        "supported: runs without one"
    );
    // The layer's own option for the rest: not allowed, fine outside one.
    assert_eq!(mixed.withdraw(10).await.unwrap(), 40);
    assert_eq!(w.committed(), [40]);
}
