//! A bank on one node: transfers as transactions, tellers checked by
//! access control, accounts guarded by mutual exclusion.
//!
//! `cargo run --example bank`
//!
//! (The version with accounts on two nodes needs the wire protocol.)
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::filters::access::{AccessLayer, Who};
use tether::filters::transaction::{TxCell, active_transactions};
use tether::filters::{MutexLayer, TransactionLayer};
use tether::{Context, Exposed, Node, Object, Principal};

/// Why a bank call failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BankError {
    /// Not enough money.
    Insufficient {
        /// What there was.
        balance: i64,
    },
    /// Something else went wrong on the way.
    Other(String),
}

impl From<tether::Error<BankError>> for BankError {
    fn from(e: tether::Error<BankError>) -> Self {
        let text = e.to_string();
        e.into_callee().unwrap_or(BankError::Other(text))
    }
}

/// An account.
#[tether::interface]
pub trait Account {
    /// The committed balance (or, inside a transaction, its own view).
    async fn balance(&self) -> i64;
    /// Adds `amount`.
    async fn deposit(&self, amount: i64) -> Result<i64, BankError>;
    /// Takes `amount` out, if there is enough.
    async fn withdraw(&self, amount: i64) -> Result<i64, BankError>;
}

/// The bank's front desk.
#[tether::interface]
pub trait Bank {
    /// Moves `amount` from one account to another, all or nothing.
    async fn transfer(&self, from: String, to: String, amount: i64) -> Result<(), BankError>;
}

struct Vault {
    balance: TxCell<i64>,
}

fn other(e: tether::Error) -> BankError {
    BankError::Other(e.to_string())
}

impl Account for Vault {
    async fn balance(&self) -> i64 {
        self.balance.get().await.unwrap_or_default()
    }
    async fn deposit(&self, amount: i64) -> Result<i64, BankError> {
        self.balance
            .update(|b| {
                *b += amount;
                *b
            })
            .await
            .map_err(other)
    }
    async fn withdraw(&self, amount: i64) -> Result<i64, BankError> {
        let balance = self.balance.get().await.map_err(other)?;
        if balance < amount {
            return Err(BankError::Insufficient { balance });
        }
        self.balance.set(balance - amount).await.map_err(other)?;
        Ok(balance - amount)
    }
}

struct Desk {
    node: Node,
}

impl Bank for Desk {
    async fn transfer(&self, from: String, to: String, amount: i64) -> Result<(), BankError> {
        let lookup = |name: &str| self.node.lookup::<AccountClient>(name).map_err(other);
        let (from, to) = (lookup(&from)?, lookup(&to)?);
        from.withdraw(amount).await?;
        to.deposit(amount).await?;
        Ok(())
    }
}

fn total(accounts: &[Exposed<Object<Vault>>]) -> i64 {
    accounts
        .iter()
        .map(|a| a.object().balance.committed())
        .sum()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::new();
    let teller = Context::new().with_principal(Principal::new("tess", ["teller"]));

    // Accounts: tellers may move money (inside the bank's transactions);
    // anybody may read a balance. One call at a time per account.
    let accounts: Vec<_> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|name| {
            let account = node
                .expose(Vault {
                    balance: TxCell::with_lock_timeout(100, Duration::from_millis(200)),
                })
                .with_view(
                    "bank",
                    AccountInterface::view()
                        .layer(
                            AccessLayer::allow_role("teller")
                                .allow_methods(Who::Anyone, [AccountInterface::BALANCE]),
                        )
                        .layer(TransactionLayer::supported())
                        .layer(MutexLayer::exclusive()),
                )?;
            node.publish(format!("accounts/{name}"), account.view("bank")?);
            Ok(account)
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;

    // The desk: tellers only; every transfer is a transaction.
    let desk = node.expose(Desk { node: node.clone() }).with_view(
        "desk",
        BankInterface::view()
            .layer(AccessLayer::allow_role("teller"))
            .layer(TransactionLayer::create()),
    )?;
    let bank: BankClient = desk.client("desk")?;
    println!(
        "start: total {} (alice, bob and carol have 100 each)",
        total(&accounts)
    );

    teller
        .clone()
        .scope(async {
            bank.transfer("accounts/alice".into(), "accounts/bob".into(), 30)
                .await
        })
        .await?;
    let bob: AccountClient = node.lookup("accounts/bob")?;
    println!(
        "alice -> bob 30: committed; bob has {}",
        bob.balance().await?
    );

    let refused = teller
        .clone()
        .scope(async {
            bank.transfer("accounts/bob".into(), "accounts/carol".into(), 1_000)
                .await
        })
        .await
        .unwrap_err();
    println!("bob -> carol 1000: {refused}");
    println!(
        "   nothing moved: bob {}, carol {}",
        bob.balance().await?,
        accounts[2].object().balance.committed()
    );

    let anonymous = bank
        .transfer("accounts/carol".into(), "accounts/alice".into(), 5)
        .await
        .unwrap_err();
    println!("an anonymous transfer: {anonymous}");

    println!("200 concurrent random transfers by tellers...");
    let names = ["alice", "bob", "carol"];
    let tasks: Vec<_> = (0..200_usize)
        .map(|i| {
            let bank = bank.clone();
            let (from, to) = (names[i % 3], names[(i * 7 + 1) % 3]);
            let amount = (i % 50) as i64;
            // A context belongs to a task: each spawned task gets the teller's.
            tokio::spawn(teller.clone().scope(async move {
                bank.transfer(format!("accounts/{from}"), format!("accounts/{to}"), amount)
                    .await
            }))
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok(()) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    println!(
        "   {ok} committed, {failed} refused or aborted (not enough money, or a lock wait gave up)"
    );
    for (name, account) in names.iter().zip(&accounts) {
        println!("   {name}: {}", account.object().balance.committed());
    }
    println!(
        "total {} (unchanged), transactions still open: {}",
        total(&accounts),
        active_transactions()
    );
    assert_eq!(total(&accounts), 300);
    Ok(())
}
