//! One object, several views; a view swapped at run time; a multicast.
//!
//! `cargo run --example views`
//!
//! Walks through Tether's core ideas on one node and prints what happens:
//!
//! 1. An account is exposed through two views: an *owner* view that logs
//!    every call, and a *public* view that offers only `balance`,
//!    `statement` and `note`, with `note` oneway.
//! 2. The same method, `note`, is sync through one view and oneway through
//!    the other.
//! 3. The public view is replaced while a call through it is running: the
//!    running call finishes under the old view, new calls use the new one.
//! 4. One call reaches three replicas through a multicast group.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether::abstractions::{Multicast, Oneway, Policy};
use tether::filters::LoggingLayer;
use tether::{Client, Node};

/// Why a deposit was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, tether::Schema)]
pub enum AccountError {
    /// The deposit is above the account's limit.
    OverLimit {
        /// The most one deposit may be.
        limit: u64,
    },
}

/// A bank account.
#[tether::interface]
pub trait Account {
    /// The balance.
    async fn balance(&self) -> u64;
    /// Adds `amount`; returns the new balance.
    async fn deposit(&self, amount: u64) -> Result<u64, AccountError>;
    /// Leaves a note on the account.
    async fn note(&self, text: String);
    /// Every note so far; takes a while to print.
    async fn statement(&self) -> Vec<String>;
}

struct Ledger {
    name: &'static str,
    balance: AtomicU64,
    limit: u64,
    notes: Mutex<Vec<String>>,
}

impl Ledger {
    fn new(name: &'static str, limit: u64) -> Self {
        Ledger {
            name,
            balance: AtomicU64::new(0),
            limit,
            notes: Mutex::new(Vec::new()),
        }
    }
}

impl Account for Ledger {
    async fn balance(&self) -> u64 {
        self.balance.load(Ordering::SeqCst)
    }
    async fn deposit(&self, amount: u64) -> Result<u64, AccountError> {
        if amount > self.limit {
            return Err(AccountError::OverLimit { limit: self.limit });
        }
        Ok(self.balance.fetch_add(amount, Ordering::SeqCst) + amount)
    }
    async fn note(&self, text: String) {
        // Slow on purpose, so that oneway and sync differ visibly.
        tokio::time::sleep(Duration::from_millis(50)).await;
        println!("    [{}] stored note {text:?}", self.name);
        self.notes.lock().unwrap().push(text);
    }
    async fn statement(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.notes.lock().unwrap().clone()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(false)
        .without_time()
        .compact()
        .init();
    let node = Node::new();

    println!("1. alice's account, exposed through two views");
    let alice = node
        .expose(Ledger::new("alice", 1_000))
        .with_view("owner", AccountInterface::view().layer(LoggingLayer::new()))?
        .with_view(
            "public",
            AccountInterface::view()
                .only([
                    AccountInterface::BALANCE,
                    AccountInterface::STATEMENT,
                    AccountInterface::NOTE,
                ])
                .method(AccountInterface::NOTE, Oneway),
        )?;
    node.publish("bank/alice", alice.view("public")?);
    let owner: AccountClient = alice.client("owner")?;
    let public: AccountClient = node.lookup("bank/alice")?;
    for view in ["owner", "public"] {
        let d = alice.view(view)?.describe()?;
        let methods: Vec<String> = d
            .methods()
            .iter()
            .map(|m| format!("{} ({})", m.method.name(), m.kind))
            .collect();
        println!("   view {view:?} offers {}", methods.join(", "));
    }

    println!(
        "   owner deposits 250 -> balance {}",
        owner.deposit(250).await?
    );
    let refused = owner.deposit(5_000).await.unwrap_err();
    println!(
        "   owner deposits 5000 -> {refused} (callee error: {:?})",
        refused.callee()
    );
    println!("   public reads the balance -> {}", public.balance().await?);
    let e = public.deposit(1).await.unwrap_err();
    println!("   public tries to deposit -> {e}");

    println!("\n2. note: sync for the owner, oneway for the public");
    owner.note("from the owner".into()).await?;
    println!("   owner's note returned after it was stored (sync)");
    public.note("from a stranger".into()).await?;
    println!("   public's note returned at once (oneway); it is stored in the background");
    tokio::time::sleep(Duration::from_millis(100)).await;

    println!("\n3. the public view is replaced while a call through it runs");
    let running = tokio::spawn({
        let public = public.clone();
        async move { public.statement().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    alice.set_view(
        "public",
        AccountInterface::view()
            .only([AccountInterface::BALANCE])
            .layer(LoggingLayer::new()),
    )?;
    println!("   replaced: the public view now offers only balance, and logs");
    println!(
        "   the statement that was running finishes under the old view: {:?}",
        running.await??
    );
    println!(
        "   a new statement call -> {}",
        public.statement().await.unwrap_err()
    );
    println!(
        "   a new balance call (logged now) -> {}",
        public.balance().await?
    );
    println!(
        "   same reference before and after: {}",
        public.reference() == &alice.view("public")?
    );

    println!("\n3b. the public view goes away and comes back");
    alice.remove_view("public");
    println!("   removed -> {}", public.balance().await.unwrap_err());
    alice.set_view(
        "public",
        AccountInterface::view().only([AccountInterface::BALANCE]),
    )?;
    println!("   restored -> balance {}", public.balance().await?);

    println!("\n4. one deposit reaches three replicas");
    let replicas: Vec<_> = [("r1", 1_000), ("r2", 1_000), ("r3", 5)]
        .into_iter()
        .map(|(name, limit)| {
            node.expose(Ledger::new(name, limit))
                .with_view("v", AccountInterface::view())
        })
        .collect::<Result<_, _>>()?;
    let members = replicas
        .iter()
        .map(|r| r.view("v"))
        .collect::<Result<Vec<_>, _>>()?;
    let group = Multicast::new(members, Policy::All)?;
    let each = group.each(|r: &AccountClient| r.deposit(10)).await;
    for (replica, outcome) in replicas.iter().zip(&each) {
        match outcome {
            Ok(balance) => println!("   {} -> balance {balance}", replica.object().name),
            Err(e) => println!("   {} -> {e} ({:?})", replica.object().name, e.callee()),
        }
    }
    let quorum: AccountClient =
        Multicast::new(group.members().to_vec(), Policy::Quorum(2))?.client()?;
    println!(
        "   through an ordinary stub, quorum of 2: deposit 1 -> {:?}",
        quorum.deposit(1).await
    );
    let all: AccountClient = group.client()?;
    println!(
        "   through an ordinary stub, all must succeed: deposit 10 -> {}",
        all.deposit(10).await.unwrap_err()
    );
    Ok(())
}
