//! A bank on three processes: transfers are transactions that commit on
//! two nodes at once, or on neither.
//!
//! `cargo run --example bank` runs the desk (this process: the teller,
//! and the accounts of alice and bob) and starts two more processes of this
//! program: `branch` (the accounts of carol and dave) and `audit` (a journal
//! every transfer writes to). Then it:
//!
//! * moves money between the nodes, and shows a refused transfer moving
//!   nothing, and an anonymous caller being denied by the branch;
//! * runs random concurrent transfers while it injects failures: transfers
//!   that fail after both legs ran, a dropped connection to the branch,
//!   and the audit process killed;
//! * checks that the total of all balances has not changed and that no
//!   account on either node is left locked.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::ops::AddAssign;
use std::process::{Child, Command, Stdio};
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::filters::access::{AccessLayer, Who};
use tether::filters::transaction::{TxCell, active_transactions};
use tether::filters::{MutexLayer, TransactionLayer};
use tether::transports::frame::Credentials;
use tether::transports::{Config, Listener, Peer, tcp};
use tether::{Context, Node, Principal};

/// Why a bank call failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, tether::Schema)]
pub enum BankError {
    /// Not enough money.
    Insufficient {
        /// What there was.
        balance: i64,
    },
    /// A failure injected by the demo.
    Injected,
    /// Something else went wrong on the way.
    Other(String),
}

impl From<tether::Error<BankError>> for BankError {
    fn from(e: tether::Error<BankError>) -> Self {
        let text = e.to_string();
        e.into_callee().unwrap_or(BankError::Other(text))
    }
}

fn other(e: tether::Error) -> BankError {
    BankError::Other(e.to_string())
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
    /// Whether a transaction holds the account.
    async fn locked(&self) -> bool;
}

/// The audit journal.
#[tether::interface]
pub trait Journal {
    /// Records one transfer; returns how many there are.
    async fn record(&self) -> Result<u64, BankError>;
}

/// The bank's front desk.
#[tether::interface]
pub trait Bank {
    /// Moves `amount` from one account to another, all or nothing; then
    /// fails on purpose if `fail`.
    async fn transfer(
        &self,
        from: String,
        to: String,
        amount: i64,
        fail: bool,
    ) -> Result<(), BankError>;
}

struct Vault {
    balance: TxCell<i64>,
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
    async fn locked(&self) -> bool {
        self.balance.holder().is_some()
    }
}

struct Log(TxCell<u64>);

impl Journal for Log {
    async fn record(&self) -> Result<u64, BankError> {
        self.0
            .update(|n| {
                *n += 1;
                *n
            })
            .await
            .map_err(other)
    }
}

#[derive(Default)]
struct Desk {
    accounts: RwLock<HashMap<String, AccountClient>>,
    journal: RwLock<Option<JournalClient>>,
}

impl Bank for Desk {
    async fn transfer(
        &self,
        from: String,
        to: String,
        amount: i64,
        fail: bool,
    ) -> Result<(), BankError> {
        let (from, to) = {
            let accounts = self.accounts.read().unwrap();
            let find = |name: &str| {
                accounts
                    .get(name)
                    .cloned()
                    .ok_or_else(|| BankError::Other(format!("no account {name}")))
            };
            (find(&from)?, find(&to)?)
        };
        from.withdraw(amount).await?;
        to.deposit(amount).await?;
        let journal = self.journal.read().unwrap().clone();
        if let Some(journal) = journal {
            journal.record().await?;
        }
        if fail {
            return Err(BankError::Injected);
        }
        Ok(())
    }
}

/// What kind of failure `e` is, for the summary.
fn reason(e: &tether::Error<BankError>) -> &'static str {
    let text = e.to_string();
    if matches!(e.callee(), Some(BankError::Insufficient { .. })) {
        "not enough money"
    } else if text.contains("gave up") {
        "a lock wait gave up (two transfers wanted each other's accounts)"
    } else if text.contains("closed") || text.contains("disconnected") {
        "a node could not be reached (dropped connection, dead audit node)"
    } else if text.contains("aborted") {
        "a participant could not commit"
    } else {
        "other"
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Accounts on `node`: tellers may move money (inside the caller's
/// transaction, if any); anybody may read a balance; one call at a time
/// each.
fn accounts(node: &Node, names: &[&str]) -> Result<(), Failure> {
    for name in names {
        let account = node
            .expose(Vault {
                balance: TxCell::with_lock_timeout(100, Duration::from_millis(200)),
            })
            .with_view(
                "bank",
                AccountInterface::view()
                    .layer(AccessLayer::allow_role("teller").allow_methods(
                        Who::Anyone,
                        [AccountInterface::BALANCE, AccountInterface::LOCKED],
                    ))
                    .layer(TransactionLayer::supported())
                    .layer(MutexLayer::exclusive()),
            )?;
        node.publish(*name, account.view("bank")?);
    }
    Ok(())
}

/// Only the desk, with its secret, is a teller.
fn desk_only(c: Option<&Credentials>) -> Result<Option<Principal>, String> {
    match c {
        None => Ok(None),
        Some(c) if c.principal == "desk" && c.secret == b"desk secret" => {
            Ok(Some(Principal::new("desk", ["teller"])))
        }
        Some(c) => Err(format!("unknown teller {}", c.principal)),
    }
}

/// A child process: serves `node` over TCP until its stdin closes.
async fn serve(node: Node) -> Result<(), Failure> {
    let config = Config::new()
        .authenticator(desk_only)
        .transaction_timeout(Duration::from_secs(5));
    let listener: Listener = tcp::serve(&node, "127.0.0.1:0", config).await?;
    println!("listening {}", listener.local_addr());
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            line.clear();
        }
    })
    .await?;
    listener.close().await;
    Ok(())
}

/// Starts this program as `role`; returns the child and its address.
fn spawn(role: &str) -> Result<(Child, String), Failure> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("unexpected output from {role}: {line:?}"))?
        .to_string();
    println!("{role} process {} at {addr}", child.id());
    Ok((child, addr))
}

fn as_desk() -> Config {
    Config::new()
        .credentials("desk", b"desk secret".to_vec())
        .transaction_timeout(Duration::from_secs(5))
}

/// Points the desk at the branch's accounts through `peer`.
async fn link_branch(desk: &Desk, peer: &Peer) -> Result<(), Failure> {
    for name in ["carol", "dave"] {
        let client = peer.lookup::<AccountClient>(name).await?;
        desk.accounts.write().unwrap().insert(name.into(), client);
    }
    Ok(())
}

async fn total_and_locks(desk: &Desk) -> Result<(i64, usize), Failure> {
    let accounts: Vec<AccountClient> = desk.accounts.read().unwrap().values().cloned().collect();
    let (mut total, mut locked) = (0, 0);
    for account in accounts {
        total += account.balance().await?;
        locked += usize::from(account.locked().await?);
    }
    Ok((total, locked))
}

async fn desk() -> Result<(), Failure> {
    let node = Node::new();
    accounts(&node, &["alice", "bob"])?;
    let (mut branch, branch_addr) = spawn("branch")?;
    let (mut audit, audit_addr) = spawn("audit")?;

    let desk = node.expose(Desk::default()).with_view(
        "desk",
        BankInterface::view()
            .layer(AccessLayer::allow_role("teller"))
            .layer(TransactionLayer::create()),
    )?;
    let teller = Context::new().with_principal(Principal::new("tess", ["teller"]));
    let bank: BankClient = desk.client("desk")?;
    for name in ["alice", "bob"] {
        let client = node.lookup::<AccountClient>(name)?;
        desk.object()
            .accounts
            .write()
            .unwrap()
            .insert(name.into(), client);
    }
    let mut to_branch = tcp::connect(&node, branch_addr.as_str(), as_desk()).await?;
    link_branch(desk.object(), &to_branch).await?;
    let to_audit = tcp::connect(&node, audit_addr.as_str(), as_desk()).await?;
    *desk.object().journal.write().unwrap() = Some(to_audit.lookup("journal").await?);
    println!(
        "start: total {} (alice and bob here, carol and dave on the branch: 100 each)",
        total_and_locks(desk.object()).await?.0
    );

    let transfer = |from: &str, to: &str, amount: i64, fail: bool| {
        let (bank, from, to) = (bank.clone(), from.to_string(), to.to_string());
        tokio::spawn(
            teller
                .clone()
                .scope(async move { bank.transfer(from, to, amount, fail).await }),
        )
    };
    transfer("alice", "carol", 30, false).await??;
    let carol = desk.object().accounts.read().unwrap()["carol"].clone();
    println!(
        "alice -> carol 30 across the nodes: committed; carol has {}",
        carol.balance().await?
    );
    let refused = transfer("bob", "dave", 1_000, false).await?.unwrap_err();
    println!("bob -> dave 1000: {refused}; nothing moved");
    let anonymous = tcp::connect(&Node::new(), branch_addr.as_str(), Config::new()).await?;
    let dave: AccountClient = anonymous.lookup("dave").await?;
    println!(
        "an anonymous caller reads dave's balance ({}) but may not withdraw: {}",
        dave.balance().await?,
        dave.withdraw(10).await.unwrap_err()
    );
    anonymous.close().await;

    println!("120 random transfers, 4 at a time, with failures injected...");
    let names = ["alice", "bob", "carol", "dave"];
    let (mut ok, mut injected, mut aborted) = (0, 0, 0);
    let mut reasons = std::collections::BTreeMap::new();
    // A fixed pseudo-random sequence (xorshift), so every run is the same.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as usize
    };
    for round in 0..30_usize {
        let batch: Vec<_> = (0..4)
            .map(|_| {
                let from = random(4);
                let to = (from + 1 + random(3)) % 4;
                transfer(
                    names[from],
                    names[to],
                    random(40) as i64 + 1,
                    random(9) == 0,
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(3)).await;
        match round {
            10 => {
                println!("   round 11: dropping the connection to the branch mid-flight");
                to_branch.abort();
            }
            20 => {
                println!("   round 21: killing the audit process mid-flight");
                audit.kill()?;
            }
            _ => {}
        }
        for task in batch {
            match task.await? {
                Ok(()) => ok += 1,
                Err(e) if e.callee() == Some(&BankError::Injected) => injected += 1,
                Err(e) => {
                    aborted += 1;
                    reasons.entry(reason(&e)).or_insert(0_u32).add_assign(1);
                }
            }
        }
        if to_branch.is_closed() {
            to_branch = tcp::connect(&node, branch_addr.as_str(), as_desk()).await?;
            link_branch(desk.object(), &to_branch).await?;
            println!("   reconnected to the branch");
        }
        if round == 20 {
            *desk.object().journal.write().unwrap() = None;
            println!("   the desk carries on without the audit journal");
        }
    }
    println!(
        "   {ok} committed, {injected} failed on purpose after both legs, {aborted} aborted otherwise:"
    );
    for (why, n) in reasons {
        println!("      {n} x {why}");
    }

    // Outcomes that could not reach the branch over the dropped connection
    // are delivered over the new one; give them a moment.
    let mut checked = total_and_locks(desk.object()).await?;
    for _ in 0..50 {
        if checked.1 == 0 && active_transactions() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        checked = total_and_locks(desk.object()).await?;
    }
    let (total, locked) = checked;
    println!(
        "total {total} (unchanged), accounts still locked: {locked}, transactions still open here: {}",
        active_transactions()
    );
    assert_eq!((total, locked, active_transactions()), (400, 0, 0));

    to_branch.close().await;
    to_audit.close().await;
    drop(branch.stdin.take());
    branch.wait()?;
    audit.wait()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => desk().await,
        ["branch"] => {
            let node = Node::new();
            accounts(&node, &["carol", "dave"])?;
            serve(node).await
        }
        ["audit"] => {
            let node = Node::new();
            let journal = node.expose(Log(TxCell::new(0))).with_view(
                "journal",
                JournalInterface::view().layer(TransactionLayer::join()),
            )?;
            node.publish("journal", journal.view("journal")?);
            serve(node).await
        }
        _ => Err("usage: bank [branch | audit]".into()),
    }
}
